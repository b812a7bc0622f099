//! Pods: defaulted and validated like upstream, created Pending with their QoS class, mostly
//! immutable afterwards, and deleted gracefully once a node runs them.

mod eviction;
mod qos;
mod table;

use async_trait::async_trait;

use k8s_openapi::api::core::v1::{
    Container, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use serde_json::Value;

use super::podspec;
use crate::error::{ApiError, ApiResult, Cause};
use crate::registry::strategy::{Action, Deleter, Effect};
use crate::registry::table::{Cell, Column};
use crate::registry::{Description, Strategy};

pub struct Pods {
    evictions: eviction::Evictions,
}

impl Pods {
    /// The pods strategy over `store`, where evictions find the PodDisruptionBudgets.
    pub fn new(store: std::sync::Arc<dyn store::Store>) -> Self {
        Pods {
            evictions: eviction::Evictions::new(store),
        }
    }
}

/// What upstream's message lists as changeable on a running pod.
const UPDATABLE_FIELDS: [&str; 5] = [
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
];

#[async_trait]
impl Strategy for Pods {
    type Object = Pod;

    fn describe(&self) -> Description {
        Description {
            short_names: &["po"],
            categories: &["all"],
            status: true,
            generation: true,
            return_deleted_object: true,
            actions: &[
                Action {
                    name: "binding",
                    group: "",
                    version: "v1",
                    kind: "Binding",
                    effect: Effect::Change,
                },
                Action {
                    name: "eviction",
                    group: "policy",
                    version: "v1",
                    kind: "Eviction",
                    effect: Effect::Delete,
                },
            ],
            field_selectors: &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            ],
            ..Description::default()
        }
    }

    fn default_fields(&self, pod: &mut Pod) {
        let spec = pod.spec.get_or_insert_with(PodSpec::default);
        podspec::default_pod_spec(spec);
        default_pod_only(spec);
        if let Some(status) = &mut pod.status {
            sync_ips(status);
        }
    }

    /// Upstream's pod status strategy: owner references stay as they were (old kubelets
    /// corrupted them, breaking garbage collection), a deletion in progress stays, and a QoS
    /// class the writer left out is kept.
    fn prepare_status_update(&self, new: &mut Pod, old: &Pod) {
        new.metadata.owner_references = old.metadata.owner_references.clone();
        new.metadata.deletion_timestamp = old.metadata.deletion_timestamp.clone();
        let old_qos = old.status.as_ref().and_then(|s| s.qos_class.clone());
        if let Some(status) = &mut new.status {
            if status.qos_class.as_deref().unwrap_or("").is_empty() {
                status.qos_class = old_qos;
            }
        }
    }

    fn prepare_create(&self, pod: &mut Pod) {
        let spec = pod.spec.get_or_insert_with(PodSpec::default);
        let mut conditions = Vec::new();
        if spec
            .scheduling_gates
            .as_ref()
            .is_some_and(|gates| !gates.is_empty())
        {
            conditions.push(PodCondition {
                type_: "PodScheduled".into(),
                status: "False".into(),
                reason: Some("SchedulingGated".into()),
                message: Some("Scheduling is blocked due to non-empty scheduling gates".into()),
                ..Default::default()
            });
        }
        pod.status = Some(PodStatus {
            phase: Some("Pending".into()),
            qos_class: Some(qos::class(spec).into()),
            conditions: (!conditions.is_empty()).then_some(conditions),
            ..Default::default()
        });
    }

    fn validate(&self, pod: &Pod) -> Vec<Cause> {
        let Some(spec) = &pod.spec else {
            return vec![Cause::required("spec.containers")];
        };
        let mut causes = podspec::validate_pod_spec(spec, "spec");
        if spec
            .ephemeral_containers
            .as_ref()
            .is_some_and(|c| !c.is_empty())
        {
            causes.push(Cause::forbidden(
                "spec.ephemeralContainers",
                "cannot be set on create",
            ));
        }
        let gated = spec
            .scheduling_gates
            .as_ref()
            .is_some_and(|g| !g.is_empty());
        if gated && spec.node_name.as_deref().is_some_and(|n| !n.is_empty()) {
            causes.push(Cause::forbidden(
                "spec.nodeName",
                "cannot be set until all schedulingGates have been cleared",
            ));
        }
        causes
    }

    fn validate_update(&self, new: &Pod, old: &Pod) -> Vec<Cause> {
        let mut causes = update_causes(new, old);
        let mut seen = std::collections::BTreeSet::new();
        causes.retain(|c| seen.insert((c.field.clone(), c.message.clone())));
        causes
    }

    fn fields(&self, pod: &Pod) -> Vec<(&'static str, String)> {
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let text = |value: Option<&String>| value.cloned().unwrap_or_default();
        vec![
            (
                "spec.nodeName",
                text(spec.and_then(|s| s.node_name.as_ref())),
            ),
            (
                "spec.restartPolicy",
                text(spec.and_then(|s| s.restart_policy.as_ref())),
            ),
            (
                "spec.schedulerName",
                text(spec.and_then(|s| s.scheduler_name.as_ref())),
            ),
            (
                "spec.serviceAccountName",
                text(spec.and_then(|s| s.service_account_name.as_ref())),
            ),
            (
                "spec.hostNetwork",
                spec.and_then(|s| s.host_network)
                    .unwrap_or(false)
                    .to_string(),
            ),
            ("status.phase", text(status.and_then(|s| s.phase.as_ref()))),
            (
                "status.podIP",
                text(
                    status
                        .and_then(|s| s.pod_ips.as_ref())
                        .and_then(|ips| ips.first())
                        .map(|ip| &ip.ip),
                ),
            ),
            (
                "status.nominatedNodeName",
                text(status.and_then(|s| s.nominated_node_name.as_ref())),
            ),
        ]
    }

    fn columns(&self) -> Vec<Column> {
        table::columns()
    }

    fn cells(&self, pod: &Pod) -> Vec<Cell> {
        table::cells(pod)
    }

    /// Upstream's `CheckGracefulDelete`: only a pod a kubelet may be running waits, for the
    /// requested period or its own `terminationGracePeriodSeconds`.
    /// A binding (`pods/binding`, what the scheduler posts) assigns the pod to its node.
    fn act(&self, action: &str, pod: &mut Pod, body: &Value) -> ApiResult<()> {
        if action != "binding" {
            return Err(ApiError::MethodNotAllowed);
        }
        bind(pod, body)
    }

    /// An eviction (`pods/eviction`) deletes only what the pod's disruption budget allows.
    async fn delete_through(
        &self,
        action: &str,
        namespace: &str,
        name: &str,
        options: DeleteOptions,
        deleter: &dyn Deleter,
    ) -> ApiResult<()> {
        match action {
            "eviction" => {
                self.evictions
                    .evict(namespace, name, options, deleter)
                    .await
            }
            _ => deleter.delete(options).await,
        }
    }

    fn grace_period(&self, pod: &Pod, requested: Option<i64>) -> Option<i64> {
        let spec = pod.spec.as_ref()?;
        let bound = spec.node_name.as_deref().is_some_and(|n| !n.is_empty());
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if !bound || matches!(phase, Some("Succeeded" | "Failed")) {
            return None;
        }
        match requested.unwrap_or(spec.termination_grace_period_seconds.unwrap_or(30)) {
            0 => None,
            negative if negative < 0 => Some(1),
            seconds => Some(seconds),
        }
    }
}

/// `SetDefaults_Pod`, which pod templates do not get: requests default to limits, service
/// links are on, and with host networking host ports mirror container ports.
/// Upstream's `assignPod`: sets `spec.nodeName` once, records `PodScheduled=True` and copies
/// the binding's annotations.
fn bind(pod: &mut Pod, binding: &Value) -> ApiResult<()> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let conflict = |detail: String| ApiError::Conflict {
        target: crate::error::Target {
            group: String::new(),
            resource: "pods/binding".into(),
            kind: "Binding".into(),
            name: name.clone(),
        },
        detail,
    };
    let target = binding.get("target").cloned().unwrap_or(Value::Null);
    let node = target.get("name").and_then(Value::as_str).unwrap_or("");
    if !matches!(
        target.get("kind").and_then(Value::as_str),
        None | Some("") | Some("Node")
    ) {
        return Err(ApiError::BadRequest("binding target must be a Node".into()));
    }
    if node.is_empty() {
        return Err(ApiError::Invalid {
            target: crate::error::Target {
                group: String::new(),
                resource: "bindings".into(),
                kind: "Binding".into(),
                name: name.clone(),
            },
            causes: vec![Cause::required("target.name")],
        });
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Err(conflict(format!(
            "pod {name} is being deleted, cannot be assigned to a host"
        )));
    }
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    if let Some(assigned) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Err(conflict(format!(
            "pod {name} is already assigned to node {assigned:?}"
        )));
    }
    spec.node_name = Some(node.to_string());
    if let Some(annotations) = binding
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let pod_annotations = pod
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        for (key, value) in annotations {
            pod_annotations.insert(key.clone(), value.as_str().unwrap_or_default().to_string());
        }
    }
    let status = pod.status.get_or_insert_with(PodStatus::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != "PodScheduled");
    conditions.push(PodCondition {
        type_: "PodScheduled".into(),
        status: "True".into(),
        last_transition_time: Some(crate::registry::stored::now()),
        ..PodCondition::default()
    });
    Ok(())
}

fn default_pod_only(spec: &mut PodSpec) {
    spec.enable_service_links.get_or_insert(true);
    let host_network = spec.host_network == Some(true);
    for container in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        if let Some(resources) = &mut container.resources {
            if let Some(limits) = &resources.limits {
                let requests = resources.requests.get_or_insert_with(Default::default);
                for (name, limit) in limits {
                    requests
                        .entry(name.clone())
                        .or_insert_with(|| limit.clone());
                }
            }
        }
        if host_network {
            for port in container.ports.iter_mut().flatten() {
                if port.host_port.unwrap_or(0) == 0 {
                    port.host_port = Some(port.container_port);
                }
            }
        }
    }
}

/// The v1 conversion keeps the singular and plural IP fields in step: the first of the list
/// is the singular one.
fn sync_ips(status: &mut PodStatus) {
    if status.pod_ips.as_ref().is_none_or(|ips| ips.is_empty()) {
        status.pod_ips = status
            .pod_ip
            .clone()
            .filter(|ip| !ip.is_empty())
            .map(|ip| vec![PodIP { ip }]);
    }
    status.pod_ip = status
        .pod_ips
        .as_ref()
        .and_then(|ips| ips.first())
        .map(|ip| ip.ip.clone());
    if status.host_ips.as_ref().is_none_or(|ips| ips.is_empty()) {
        status.host_ips = status
            .host_ip
            .clone()
            .filter(|ip| !ip.is_empty())
            .map(|ip| vec![HostIP { ip }]);
    }
    status.host_ip = status
        .host_ips
        .as_ref()
        .and_then(|ips| ips.first())
        .map(|ip| ip.ip.clone());
}

/// Upstream's `ValidatePodUpdate`: the new spec must be valid, and only images, the active
/// deadline, added tolerations and a once-negative grace period may change.
fn update_causes(new: &Pod, old: &Pod) -> Vec<Cause> {
    let empty = PodSpec::default();
    let new_spec = new.spec.as_ref().unwrap_or(&empty);
    let old_spec = old.spec.as_ref().unwrap_or(&empty);
    let mut causes = podspec::validate_pod_spec(new_spec, "spec");

    let lists: [(&[Container], &[Container], &str); 2] = [
        (
            &new_spec.containers,
            &old_spec.containers,
            "spec.containers",
        ),
        (
            new_spec.init_containers.as_deref().unwrap_or_default(),
            old_spec.init_containers.as_deref().unwrap_or_default(),
            "spec.initContainers",
        ),
    ];
    for (new_list, old_list, path) in lists {
        if new_list.len() != old_list.len() {
            causes.push(Cause::forbidden(
                path,
                "pod updates may not add or remove containers",
            ));
            return causes;
        }
        for (i, container) in new_list.iter().enumerate() {
            let image = container.image.as_deref().unwrap_or("");
            if image.is_empty() {
                causes.push(Cause::required(format!("{path}[{i}].image")));
            } else if image.trim() != image {
                causes.push(Cause::invalid(
                    format!("{path}[{i}].image"),
                    &Value::from(image),
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }

    match (
        new_spec.active_deadline_seconds,
        old_spec.active_deadline_seconds,
    ) {
        (Some(seconds), _) if !(0..=i64::from(i32::MAX)).contains(&seconds) => {
            causes.push(Cause::invalid(
                "spec.activeDeadlineSeconds",
                &Value::from(seconds),
                "must be between 0 and 2147483647, inclusive",
            ));
            return causes;
        }
        (Some(seconds), Some(previous)) if previous < seconds => {
            causes.push(Cause::invalid(
                "spec.activeDeadlineSeconds",
                &Value::from(seconds),
                "must be less than or equal to previous value",
            ));
            return causes;
        }
        (None, Some(_)) => {
            causes.push(Cause::invalid(
                "spec.activeDeadlineSeconds",
                &Value::Null,
                "must not update from a positive integer to nil value",
            ));
        }
        _ => {}
    }

    if qos::class(new_spec) != qos::class(old_spec) {
        let current = new
            .status
            .as_ref()
            .and_then(|s| s.qos_class.clone())
            .unwrap_or_default();
        causes.push(Cause::invalid(
            "metadata",
            &Value::from(current),
            "Pod QoS is immutable",
        ));
    }

    let munged = munge(new_spec, old_spec);
    if munged != *old_spec {
        let (old_value, new_value) = (to_value(old_spec), to_value(&munged));
        let mut lines = Vec::new();
        diff(&old_value, &new_value, "spec", &mut lines);
        causes.push(Cause::forbidden(
            "spec",
            format!(
                "pod updates may not change fields other than {}\n{}",
                UPDATABLE_FIELDS.join(","),
                lines.join("\n")
            ),
        ));
    }

    let new_tolerations = new_spec.tolerations.as_deref().unwrap_or_default();
    let kept = old_spec.tolerations.iter().flatten().all(|old| {
        new_tolerations.iter().any(|new| {
            Toleration {
                toleration_seconds: new.toleration_seconds,
                ..old.clone()
            } == *new
        })
    });
    if !kept {
        causes.push(Cause::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    causes
}

/// The new spec with every field an update may change taken from the old one, so any
/// remaining difference is a forbidden change.
fn munge(new: &PodSpec, old: &PodSpec) -> PodSpec {
    let mut munged = new.clone();
    for (container, previous) in munged.containers.iter_mut().zip(&old.containers) {
        container.image.clone_from(&previous.image);
    }
    let old_inits = old.init_containers.as_deref().unwrap_or_default();
    for (container, previous) in munged.init_containers.iter_mut().flatten().zip(old_inits) {
        container.image.clone_from(&previous.image);
    }
    munged.active_deadline_seconds = old.active_deadline_seconds;
    munged.tolerations.clone_from(&old.tolerations);
    munged.scheduling_gates.clone_from(&old.scheduling_gates);
    if old.termination_grace_period_seconds.is_some_and(|s| s < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old.termination_grace_period_seconds;
    }
    munged
}

fn to_value(spec: &PodSpec) -> Value {
    serde_json::to_value(spec).unwrap_or(Value::Null)
}

/// The changed leaves between two JSON documents as `- path: old` / `+ path: new` lines, so
/// the learner sees which field the update tried to change.
fn diff(old: &Value, new: &Value, path: &str, lines: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let (x, y) = (
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                );
                diff(x, y, &format!("{path}.{key}"), lines);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(x, y, &format!("{path}[{i}]"), lines);
            }
        }
        (a, b) if a != b => {
            if !a.is_null() {
                lines.push(format!("- {path}: {a}"));
            }
            if !b.is_null() {
                lines.push(format!("+ {path}: {b}"));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    fn pods() -> Pods {
        let dir = tempfile::tempdir().unwrap().keep();
        let config = store::embedded::EmbeddedConfig::new(dir);
        Pods::new(std::sync::Arc::new(
            store::embedded::EmbeddedStore::open(config).unwrap(),
        ))
    }

    fn pod(image: &str) -> Pod {
        let mut pod = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: Some(image.into()),
                    ports: Some(vec![ContainerPort {
                        container_port: 80,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        pods().default_fields(&mut pod);
        pods().prepare_create(&mut pod);
        pod
    }

    #[test]
    fn created_pods_are_pending_with_their_qos() {
        let status = pod("nginx").status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    }

    #[test]
    fn images_may_change_but_ports_may_not() {
        let old = pod("nginx:1.26");
        assert_eq!(pods().validate_update(&pod("nginx:1.27"), &old), vec![]);

        let mut changed = pod("nginx:1.27");
        changed.spec.as_mut().unwrap().containers[0]
            .ports
            .as_mut()
            .unwrap()[0]
            .container_port = 8080;
        let causes = pods().validate_update(&changed, &old);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec");
        let expected = "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n- spec.containers[0].ports[0].containerPort: 80\n+ spec.containers[0].ports[0].containerPort: 8080";
        assert_eq!(causes[0].message, expected);
    }

    #[test]
    fn containers_cannot_be_added_and_deadlines_only_shrink() {
        let old = pod("nginx");
        let mut more = pod("nginx");
        let extra = Container {
            name: "sidecar".into(),
            image: Some("busybox".into()),
            ..Default::default()
        };
        more.spec.as_mut().unwrap().containers.push(extra);
        pods().default_fields(&mut more);
        let causes = pods().validate_update(&more, &old);
        assert_eq!(
            causes.last().unwrap().message,
            "Forbidden: pod updates may not add or remove containers"
        );

        let mut old = pod("nginx");
        old.spec.as_mut().unwrap().active_deadline_seconds = Some(60);
        let mut longer = old.clone();
        longer.spec.as_mut().unwrap().active_deadline_seconds = Some(120);
        let causes = pods().validate_update(&longer, &old);
        assert_eq!(
            causes[0].message,
            "Invalid value: 120: must be less than or equal to previous value"
        );
        let mut shorter = old.clone();
        shorter.spec.as_mut().unwrap().active_deadline_seconds = Some(30);
        assert_eq!(pods().validate_update(&shorter, &old), vec![]);
    }

    #[test]
    fn tolerations_may_only_be_added() {
        let mut old = pod("nginx");
        let toleration = Toleration {
            key: Some("a".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        };
        old.spec.as_mut().unwrap().tolerations = Some(vec![toleration.clone()]);
        let mut added = old.clone();
        let second = Toleration {
            key: Some("b".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        };
        added.spec.as_mut().unwrap().tolerations = Some(vec![toleration, second.clone()]);
        assert_eq!(pods().validate_update(&added, &old), vec![]);
        let mut removed = old.clone();
        removed.spec.as_mut().unwrap().tolerations = Some(vec![second]);
        let causes = pods().validate_update(&removed, &old);
        assert_eq!(
            causes[0].message,
            "Forbidden: existing toleration can not be modified except its tolerationSeconds"
        );
    }

    #[test]
    fn only_running_pods_wait_to_be_deleted() {
        let mut pod = pod("nginx");
        assert_eq!(
            pods().grace_period(&pod, None),
            None,
            "unscheduled pods go at once"
        );
        pod.spec.as_mut().unwrap().node_name = Some("node-1".into());
        assert_eq!(pods().grace_period(&pod, None), Some(30));
        assert_eq!(pods().grace_period(&pod, Some(5)), Some(5));
        assert_eq!(pods().grace_period(&pod, Some(0)), None);
        pod.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert_eq!(
            pods().grace_period(&pod, None),
            None,
            "finished pods go at once"
        );
    }
}
