//! StatefulSets (`apps/v1`): pods with stable names (`web-0`, `web-1`...), stable storage
//! (a PersistentVolumeClaim per pod from `volumeClaimTemplates`) and ordered rollouts. The
//! API server stores them with upstream's defaults and validation; the controller manager
//! runs them.

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy,
    StatefulSetSpec, StatefulSetStatus, StatefulSetUpdateStrategy,
};
use machinery::selector::Selector;
use serde_json::Value;

use super::{persistentvolumeclaims, podspec, workload};
use crate::error::Cause;
use crate::registry::strategy::ScalePaths;
use crate::registry::table::{age, Cell, Column};
use crate::registry::{validation, Description, Strategy};

pub struct StatefulSets;

const READY: &str = "Number of the pod with ready state";
const CONTAINERS: &str = "Names of each container in the template.";
const IMAGES: &str = "Images referenced by each container in the template.";
const NON_NEGATIVE: &str = "must be greater than or equal to 0";
const IMMUTABLE_SPEC: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";
const RETENTION_POLICIES: &[&str] = &["Retain", "Delete"];

impl Strategy for StatefulSets {
    type Object = StatefulSet;

    fn describe(&self) -> Description {
        Description {
            short_names: &["sts"],
            categories: &["all"],
            status: true,
            scale: Some(ScalePaths {
                spec_replicas: "spec.replicas",
                status_replicas: "status.replicas",
                label_selector: "spec.selector",
                equality_selector: false,
            }),
            generation: true,
            ..Description::default()
        }
    }

    /// Upstream's `SetDefaults_StatefulSet` (with `StatefulSetAutoDeletePVC`, GA).
    fn default_fields(&self, set: &mut StatefulSet) {
        let spec = set.spec.get_or_insert_with(StatefulSetSpec::default);
        spec.pod_management_policy
            .get_or_insert_with(|| "OrderedReady".into());
        let strategy = spec
            .update_strategy
            .get_or_insert_with(StatefulSetUpdateStrategy::default);
        if strategy.type_.as_deref().unwrap_or("").is_empty() {
            strategy.type_ = Some("RollingUpdate".into());
            strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateStatefulSetStrategy::default);
        }
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            if let Some(rolling) = &mut strategy.rolling_update {
                rolling.partition.get_or_insert(0);
            }
        }
        let retention = spec
            .persistent_volume_claim_retention_policy
            .get_or_insert_with(StatefulSetPersistentVolumeClaimRetentionPolicy::default);
        for policy in [&mut retention.when_deleted, &mut retention.when_scaled] {
            if policy.as_deref().unwrap_or("").is_empty() {
                *policy = Some("Retain".into());
            }
        }
        spec.replicas.get_or_insert(1);
        spec.revision_history_limit.get_or_insert(10);
        podspec::default_pod_template(&mut spec.template);
        for claim in spec.volume_claim_templates.iter_mut().flatten() {
            persistentvolumeclaims::default_spec(claim.spec.get_or_insert_with(Default::default));
            claim
                .status
                .get_or_insert_with(Default::default)
                .phase
                .get_or_insert_with(|| "Pending".into());
        }
    }

    /// Upstream's status has `replicas` and `availableReplicas` always present.
    fn prepare_create(&self, set: &mut StatefulSet) {
        set.status = Some(StatefulSetStatus {
            available_replicas: Some(0),
            ..StatefulSetStatus::default()
        });
        drop_disabled_fields(set, None);
    }

    fn prepare_update(&self, new: &mut StatefulSet, old: &StatefulSet) {
        drop_disabled_fields(new, Some(old));
    }

    /// Upstream's `ValidateStatefulSetSpec`.
    fn validate(&self, set: &StatefulSet) -> Vec<Cause> {
        let spec = set.spec.clone().unwrap_or_default();
        let mut causes = Vec::new();
        match spec.pod_management_policy.as_deref() {
            Some("OrderedReady" | "Parallel") => {}
            None | Some("") => causes.push(Cause::required("spec.podManagementPolicy")),
            Some(other) => causes.push(Cause::invalid(
                "spec.podManagementPolicy",
                &Value::from(other),
                "must be 'OrderedReady' or 'Parallel'",
            )),
        }
        causes.extend(validate_update_strategy(spec.update_strategy.as_ref()));
        if let Some(retention) = &spec.persistent_volume_claim_retention_policy {
            for (field, policy) in [
                ("whenDeleted", &retention.when_deleted),
                ("whenScaled", &retention.when_scaled),
            ] {
                let policy = policy.as_deref().unwrap_or("");
                if !RETENTION_POLICIES.contains(&policy) {
                    causes.push(Cause::unsupported(
                        format!("spec.persistentVolumeClaimRetentionPolicy.{field}"),
                        &Value::from(policy),
                        RETENTION_POLICIES,
                    ));
                }
            }
        }
        for (field, value) in [
            ("spec.replicas", spec.replicas),
            ("spec.minReadySeconds", spec.min_ready_seconds),
            ("spec.revisionHistoryLimit", spec.revision_history_limit),
            (
                "spec.ordinals.start",
                spec.ordinals.as_ref().and_then(|o| o.start),
            ),
        ] {
            if let Some(value) = value.filter(|v| *v < 0) {
                causes.push(Cause::invalid(field, &Value::from(value), NON_NEGATIVE));
            }
        }
        if let Some(service) = spec.service_name.as_deref().filter(|s| !s.is_empty()) {
            for error in validation::name_errors(service, crate::registry::NameRule::Label) {
                causes.push(Cause::invalid(
                    "spec.serviceName",
                    &Value::from(service),
                    error,
                ));
            }
        }
        causes.extend(validate_selector_and_template(&spec));
        for (i, claim) in spec.volume_claim_templates.iter().flatten().enumerate() {
            let path = format!("spec.volumeClaimTemplates[{i}]");
            if claim.metadata.name.as_deref().unwrap_or("").is_empty() {
                causes.push(Cause::required_because(
                    format!("{path}.metadata.name"),
                    "name or generateName is required",
                ));
            }
            let claim_spec = claim.spec.clone().unwrap_or_default();
            causes.extend(persistentvolumeclaims::validate_spec(
                &claim_spec,
                &format!("{path}.spec"),
            ));
        }
        causes
    }

    /// Upstream's `ValidateStatefulSetUpdate`: besides the fields a rollout or scaling
    /// changes, the spec is fixed at creation.
    fn validate_update(&self, new: &StatefulSet, old: &StatefulSet) -> Vec<Cause> {
        let mut causes = self.validate(new);
        let (Some(new_spec), Some(old_spec)) = (&new.spec, &old.spec) else {
            return causes;
        };
        let mut fixed = new_spec.clone();
        fixed.replicas = old_spec.replicas;
        fixed.template = old_spec.template.clone();
        fixed.update_strategy = old_spec.update_strategy.clone();
        fixed.min_ready_seconds = old_spec.min_ready_seconds;
        fixed.ordinals = old_spec.ordinals.clone();
        fixed.revision_history_limit = old_spec.revision_history_limit;
        fixed.persistent_volume_claim_retention_policy =
            old_spec.persistent_volume_claim_retention_policy.clone();
        if !same_spec(&fixed, old_spec) {
            causes.push(Cause::forbidden("spec", IMMUTABLE_SPEC));
        }
        causes
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Ready", "string", READY),
            Column::age(),
            Column::new("Containers", "string", CONTAINERS).wide(),
            Column::new("Images", "string", IMAGES).wide(),
        ]
    }

    fn cells(&self, set: &StatefulSet) -> Vec<Cell> {
        let spec = set.spec.as_ref();
        let desired = spec.and_then(|s| s.replicas).unwrap_or(0);
        let ready = set
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        let (containers, images) = workload::container_cells(spec.map(|s| &s.template));
        vec![
            Cell::from(set.metadata.name.clone().unwrap_or_default()),
            Cell::from(format!("{ready}/{desired}")),
            age(&set.metadata),
            Cell::from(containers),
            Cell::from(images),
        ]
    }
}

/// Upstream's checks of a StatefulSet's selector and template. Unlike the other workloads'
/// templates, the pod spec itself is not validated: its volume mounts may name the
/// `volumeClaimTemplates`, which only the pods get as volumes (upstream leaves a TODO there;
/// a bad spec surfaces as `FailedCreate` events).
fn validate_selector_and_template(spec: &StatefulSetSpec) -> Vec<Cause> {
    let selector = &spec.selector;
    let mut causes = Vec::new();
    let mut usable = true;
    if workload::is_unset(selector) {
        causes.push(Cause::required("spec.selector"));
    } else {
        let shape = workload::validate_label_selector(selector, "spec.selector");
        usable = shape.is_empty();
        causes.extend(shape);
        let empty = selector.match_labels.as_ref().is_none_or(|l| l.is_empty())
            && selector
                .match_expressions
                .as_ref()
                .is_none_or(|e| e.is_empty());
        if empty {
            causes.push(Cause::invalid_printed(
                "spec.selector",
                &workload::go_label_selector(selector),
                "empty selector is invalid for statefulset",
            ));
        }
    }
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    // An absent selector selects nothing; an empty one is not compared.
    let mismatch = workload::is_unset(selector)
        || (usable
            && Selector::from_label_selector(selector)
                .is_ok_and(|s| !s.is_empty() && !s.matches(labels)));
    if mismatch {
        causes.push(workload::template_mismatch(labels));
    }
    causes.extend(validation::labels(labels, "spec.template.labels"));
    let pod_spec = spec.template.spec.clone().unwrap_or_default();
    if let Some(policy) = pod_spec
        .restart_policy
        .as_deref()
        .filter(|p| *p != "Always")
    {
        causes.push(Cause::unsupported(
            "spec.template.spec.restartPolicy",
            &Value::from(policy),
            &["Always"],
        ));
    }
    if pod_spec.active_deadline_seconds.is_some() {
        causes.push(Cause::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in StatefulSet is not Supported",
        ));
    }
    causes
}

/// Upstream's `validateStatefulSetUpdateStrategy` (without `maxUnavailable`, which the
/// alpha `MaxUnavailableStatefulSet` gate, off in 1.33, would allow).
fn validate_update_strategy(strategy: Option<&StatefulSetUpdateStrategy>) -> Vec<Cause> {
    let default = StatefulSetUpdateStrategy::default();
    let strategy = strategy.unwrap_or(&default);
    let mut causes = Vec::new();
    match strategy.type_.as_deref().unwrap_or("") {
        "" => causes.push(Cause::required("spec.updateStrategy")),
        "OnDelete" => {
            if let Some(rolling) = &strategy.rolling_update {
                causes.push(Cause::invalid_printed(
                    "spec.updateStrategy.rollingUpdate",
                    &go_rolling_update(rolling),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            let partition = strategy
                .rolling_update
                .as_ref()
                .and_then(|r| r.partition)
                .unwrap_or(0);
            if partition < 0 {
                causes.push(Cause::invalid(
                    "spec.updateStrategy.rollingUpdate.partition",
                    &Value::from(partition),
                    NON_NEGATIVE,
                ));
            }
        }
        other => causes.push(Cause::invalid_printed(
            "spec.updateStrategy",
            &format!(
                "apps.StatefulSetUpdateStrategy{{Type:{other:?}, RollingUpdate:{}}}",
                strategy.rolling_update.as_ref().map_or(
                    "(*apps.RollingUpdateStatefulSetStrategy)(nil)".into(),
                    |r| { format!("&{}", go_rolling_update(r)) }
                )
            ),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    causes
}

/// Go's `%#v` of a rolling update strategy, as upstream prints it in messages.
fn go_rolling_update(rolling: &RollingUpdateStatefulSetStrategy) -> String {
    let partition = rolling.partition.unwrap_or(0);
    format!(
        "apps.RollingUpdateStatefulSetStrategy{{Partition:{partition}, MaxUnavailable:(*intstr.IntOrString)(nil)}}"
    )
}

/// `maxUnavailable` is kept only where it already was: the `MaxUnavailableStatefulSet` gate
/// is off in 1.33 (upstream's `dropStatefulSetDisabledFields`).
fn drop_disabled_fields(new: &mut StatefulSet, old: Option<&StatefulSet>) {
    let in_use = old
        .and_then(|o| o.spec.as_ref())
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .is_some_and(|r| r.max_unavailable.is_some());
    if in_use {
        return;
    }
    if let Some(rolling) = new
        .spec
        .as_mut()
        .and_then(|s| s.update_strategy.as_mut())
        .and_then(|s| s.rolling_update.as_mut())
    {
        rolling.max_unavailable = None;
    }
}

/// Equality as upstream's semantic comparison sees it, on the JSON forms (absent and empty
/// collections print alike once defaulted).
fn same_spec(a: &StatefulSetSpec, b: &StatefulSetSpec) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::table::rendered;

    fn set(extra: Value) -> StatefulSet {
        let mut value = json!({
            "metadata": {"name": "web"},
            "spec": {
                "serviceName": "web",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "nginx", "image": "nginx",
                                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "1Gi"}}}}]
            }
        });
        for (key, field) in extra.as_object().unwrap() {
            value["spec"][key] = field.clone();
        }
        let mut set: StatefulSet = serde_json::from_value(value).unwrap();
        StatefulSets.default_fields(&mut set);
        StatefulSets.prepare_create(&mut set);
        set
    }

    #[test]
    fn defaults() {
        let set = set(json!({}));
        assert!(
            StatefulSets.validate(&set).is_empty(),
            "{:?}",
            StatefulSets.validate(&set)
        );
        let value = serde_json::to_value(&set).unwrap();
        let spec = &value["spec"];
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            spec["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(
            (
                spec["replicas"].clone(),
                spec["revisionHistoryLimit"].clone()
            ),
            (json!(1), json!(10))
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(
            value["status"],
            json!({"replicas": 0, "availableReplicas": 0})
        );
    }

    #[test]
    fn validation() {
        let bad = set(json!({"podManagementPolicy": "Whenever",
                             "updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}},
                             "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Keep"},
                             "ordinals": {"start": -1}}));
        let causes = StatefulSets.validate(&bad);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.podManagementPolicy",
                "spec.updateStrategy.rollingUpdate",
                "spec.persistentVolumeClaimRetentionPolicy.whenDeleted",
                "spec.ordinals.start"
            ]
        );
        let unmatched = set(json!({"selector": {"matchLabels": {"app": "db"}}}));
        assert!(StatefulSets.validate(&unmatched).iter().any(|c| c
            .message
            .ends_with("`selector` does not match template `labels`")));
    }

    #[test]
    fn only_some_fields_change() {
        let old = set(json!({}));
        let scaled = set(json!({"replicas": 3, "minReadySeconds": 5,
                                "updateStrategy": {"type": "OnDelete"}}));
        assert!(StatefulSets.validate_update(&scaled, &old).is_empty());
        let renamed = set(json!({"serviceName": "other"}));
        let causes = StatefulSets.validate_update(&renamed, &old);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].message, format!("Forbidden: {IMMUTABLE_SPEC}"));
    }

    #[test]
    fn rows_and_dropped_fields() {
        let mut set = set(json!({"replicas": 3,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}}));
        assert!(set
            .spec
            .as_ref()
            .unwrap()
            .update_strategy
            .as_ref()
            .unwrap()
            .rolling_update
            .as_ref()
            .unwrap()
            .max_unavailable
            .is_none());
        set.status.as_mut().unwrap().ready_replicas = Some(2);
        let cells = rendered(&StatefulSets.cells(&set), jiff::Timestamp::now());
        assert_eq!(cells[1], "2/3");
        assert_eq!(cells[3..5], [json!("nginx"), json!("nginx")]);
    }
}
