//! DaemonSets (`apps/v1`): one pod from a template on every eligible node. The API server
//! stores them with upstream's defaults (RollingUpdate with `maxUnavailable: 1` and
//! `maxSurge: 0`, ten revisions kept), validation and the DESIRED/CURRENT/READY table; the
//! controller manager places the pods.
//!
//! Upstream's internal type has a `spec.templateGeneration`, counted up on every template
//! change, that `apps/v1` carries as the `deprecated.daemonset.template.generation`
//! annotation: the controller labels pods with it (`pod-template-generation`), so it is kept
//! here as upstream keeps it, whatever a client sends.

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetStatus, DaemonSetUpdateStrategy, RollingUpdateDaemonSet,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use machinery::selector::Selector;
use serde_json::Value;

use super::deployments::{amount, int_or_percent, percent};
use super::{podspec, workload};
use crate::error::Cause;
use crate::registry::table::{age, Cell, Column};
use crate::registry::{Description, Strategy};

pub struct DaemonSets;

/// The annotation holding upstream's internal `spec.templateGeneration` in `apps/v1`.
pub const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

const DESIRED: &str = "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
const CURRENT: &str = "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
const READY: &str = "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.";
const UP_TO_DATE: &str = "The total number of nodes that are running updated daemon pod";
const AVAILABLE: &str = "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)";
const NODE_SELECTOR: &str = "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/";
const CONTAINERS: &str = "Names of each container in the template.";
const IMAGES: &str = "Images referenced by each container in the template.";
const SELECTOR: &str = "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

const NON_NEGATIVE: &str = "must be greater than or equal to 0";

impl Strategy for DaemonSets {
    type Object = DaemonSet;

    fn describe(&self) -> Description {
        Description {
            short_names: &["ds"],
            categories: &["all"],
            status: true,
            generation: true,
            ..Description::default()
        }
    }

    /// Upstream's `SetDefaults_DaemonSet` and the template's pod defaults.
    fn default_fields(&self, daemon_set: &mut DaemonSet) {
        let spec = daemon_set.spec.get_or_insert_with(DaemonSetSpec::default);
        let strategy = spec
            .update_strategy
            .get_or_insert_with(DaemonSetUpdateStrategy::default);
        let kind = strategy.type_.get_or_insert_with(|| "RollingUpdate".into());
        if kind == "RollingUpdate" {
            let rolling = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDaemonSet::default);
            rolling.max_unavailable.get_or_insert(IntOrString::Int(1));
            rolling.max_surge.get_or_insert(IntOrString::Int(0));
        }
        spec.revision_history_limit.get_or_insert(10);
        podspec::default_pod_template(&mut spec.template);
    }

    /// A new DaemonSet starts at template generation 1 (or what the client asked for above
    /// it, as upstream keeps a larger one), with upstream's always-present status counters.
    fn prepare_create(&self, daemon_set: &mut DaemonSet) {
        daemon_set.status = Some(DaemonSetStatus::default());
        let generation = template_generation(daemon_set).max(1);
        set_template_generation(daemon_set, generation);
    }

    /// The template generation is the stored one, counted up when the template changes;
    /// clients cannot set it.
    fn prepare_update(&self, new: &mut DaemonSet, old: &DaemonSet) {
        let mut generation = template_generation(old);
        if defaulted_template(new) != defaulted_template(old) {
            generation += 1;
        }
        set_template_generation(new, generation);
    }

    /// Upstream's status strategy keeps the whole spec, template generation included.
    fn prepare_status_update(&self, new: &mut DaemonSet, old: &DaemonSet) {
        set_template_generation(new, template_generation(old));
    }

    fn validate(&self, daemon_set: &DaemonSet) -> Vec<Cause> {
        let default_spec = DaemonSetSpec::default();
        let spec = daemon_set.spec.as_ref().unwrap_or(&default_spec);
        let mut causes = validate_selector(spec);
        causes.extend(workload::validate_controller_template(
            &spec.template,
            "DaemonSet",
        ));
        if let Some(min_ready) = spec.min_ready_seconds.filter(|s| *s < 0) {
            causes.push(Cause::invalid(
                "spec.minReadySeconds",
                &Value::from(min_ready),
                NON_NEGATIVE,
            ));
        }
        if let Some(strategy) = &spec.update_strategy {
            causes.extend(validate_update_strategy(strategy));
        }
        if let Some(limit) = spec.revision_history_limit.filter(|l| *l < 0) {
            causes.push(Cause::invalid(
                "spec.revisionHistoryLimit",
                &Value::from(limit),
                NON_NEGATIVE,
            ));
        }
        causes
    }

    /// The create checks, an immutable selector (in `apps/v1`), and upstream's status rules:
    /// no negative counters, and a collision count that never goes down.
    fn validate_update(&self, new: &DaemonSet, old: &DaemonSet) -> Vec<Cause> {
        let mut causes = self.validate(new);
        if let (Some(new_spec), Some(old_spec)) = (&new.spec, &old.spec) {
            causes.extend(workload::immutable_selector(
                &new_spec.selector,
                &old_spec.selector,
            ));
        }
        causes.extend(validate_status(new, old));
        causes
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Desired", "integer", DESIRED),
            Column::new("Current", "integer", CURRENT),
            Column::new("Ready", "integer", READY),
            Column::new("Up-to-date", "integer", UP_TO_DATE),
            Column::new("Available", "integer", AVAILABLE),
            Column::new("Node Selector", "string", NODE_SELECTOR),
            Column::age(),
            Column::new("Containers", "string", CONTAINERS).wide(),
            Column::new("Images", "string", IMAGES).wide(),
            Column::new("Selector", "string", SELECTOR).wide(),
        ]
    }

    fn cells(&self, daemon_set: &DaemonSet) -> Vec<Cell> {
        let spec = daemon_set.spec.as_ref();
        let status = daemon_set.status.clone().unwrap_or_default();
        let template = spec.map(|s| &s.template);
        let (containers, images) = workload::container_cells(template);
        let node_selector = template
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.node_selector.as_ref());
        let selector = spec
            .map(|s| workload::selector_text(&s.selector))
            .filter(|s| !s.is_empty());
        vec![
            Cell::from(daemon_set.metadata.name.clone().unwrap_or_default()),
            Cell::from(status.desired_number_scheduled),
            Cell::from(status.current_number_scheduled),
            Cell::from(status.number_ready),
            Cell::from(status.updated_number_scheduled.unwrap_or(0)),
            Cell::from(status.number_available.unwrap_or(0)),
            Cell::from(workload::labels_text(node_selector)),
            age(&daemon_set.metadata),
            Cell::from(containers),
            Cell::from(images),
            Cell::from(selector.unwrap_or_else(|| "<none>".into())),
        ]
    }
}

/// The template generation recorded in the annotation; 0 when absent or not a number.
fn template_generation(daemon_set: &DaemonSet) -> i64 {
    daemon_set
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_GENERATION))
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

fn set_template_generation(daemon_set: &mut DaemonSet, generation: i64) {
    daemon_set
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(TEMPLATE_GENERATION.into(), generation.to_string());
}

/// The template with its pod defaults, so a PUT leaving defaults out does not count as a
/// template change (defaulting runs after `prepare_update`).
fn defaulted_template(daemon_set: &DaemonSet) -> PodTemplateSpec {
    let mut template = daemon_set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    podspec::default_pod_template(&mut template);
    template
}

/// Upstream's selector checks of `ValidateDaemonSetSpec`, in its order: a well-formed
/// selector, one matching the template's labels (an absent selector matches nothing), and
/// not an empty one.
fn validate_selector(spec: &DaemonSetSpec) -> Vec<Cause> {
    let selector = &spec.selector;
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    let mut causes = Vec::new();
    let unset = workload::is_unset(selector);
    if !unset {
        causes.extend(workload::validate_label_selector(selector, "spec.selector"));
    }
    let matches = !unset
        && match Selector::from_label_selector(selector) {
            Ok(compiled) => compiled.matches(labels),
            // Upstream only compares a selector that converts.
            Err(_) => true,
        };
    if !matches {
        causes.push(workload::template_mismatch(labels));
    }
    let empty = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty());
    if !unset && empty {
        causes.push(Cause::invalid_printed(
            "spec.selector",
            &workload::go_label_selector(selector),
            "empty selector is invalid for daemonset",
        ));
    }
    causes
}

/// Upstream's `ValidateDaemonSetUpdateStrategy`.
fn validate_update_strategy(strategy: &DaemonSetUpdateStrategy) -> Vec<Cause> {
    let path = "spec.updateStrategy";
    match strategy.type_.as_deref().unwrap_or("") {
        "OnDelete" => Vec::new(),
        "RollingUpdate" => match &strategy.rolling_update {
            None => vec![Cause::required(format!("{path}.rollingUpdate"))],
            Some(rolling) => validate_rolling_update(rolling),
        },
        other => {
            // Go prints the pointer's address here; any address reads the same to a person.
            let rolling = if strategy.rolling_update.is_some() {
                "(*apps.RollingUpdateDaemonSet)(0xc000000000)"
            } else {
                "(*apps.RollingUpdateDaemonSet)(nil)"
            };
            vec![Cause {
                reason: "FieldValueNotSupported",
                field: path.into(),
                message: format!(
                    "Unsupported value: apps.DaemonSetUpdateStrategy{{Type:{other:?}, RollingUpdate:{rolling}}}: supported values: \"RollingUpdate\", \"OnDelete\""
                ),
            }]
        }
    }
}

/// Upstream's `ValidateRollingUpdateDaemonSet`: numbers or percentages of at most 100%, and
/// exactly one of `maxUnavailable` and `maxSurge` above zero (a surge replaces each pod
/// before the old one goes, so nothing may be unavailable on purpose then).
fn validate_rolling_update(rolling: &RollingUpdateDaemonSet) -> Vec<Cause> {
    let zero = IntOrString::Int(0);
    let max_unavailable = rolling.max_unavailable.as_ref().unwrap_or(&zero);
    let max_surge = rolling.max_surge.as_ref().unwrap_or(&zero);
    let path = "spec.updateStrategy.rollingUpdate";
    let unavailable_path = format!("{path}.maxUnavailable");
    let surge_path = format!("{path}.maxSurge");
    let mut causes = int_or_percent(max_unavailable, &unavailable_path);
    causes.extend(int_or_percent(max_surge, &surge_path));
    for (value, field) in [
        (max_unavailable, &unavailable_path),
        (max_surge, &surge_path),
    ] {
        if percent(value).is_some_and(|p| p > 100) {
            causes.push(Cause::invalid_printed(
                field.as_str(),
                &workload::go_int_or_string(value),
                "must not be greater than 100%",
            ));
        }
    }
    let has_unavailable = amount(max_unavailable) != 0;
    let has_surge = amount(max_surge) != 0;
    if has_unavailable && has_surge {
        causes.push(Cause::invalid_printed(
            surge_path,
            &workload::go_int_or_string(max_surge),
            "may not be set when maxUnavailable is non-zero",
        ));
    } else if !has_unavailable && !has_surge {
        causes.push(Cause::required_because(
            unavailable_path,
            "cannot be 0 when maxSurge is 0",
        ));
    }
    causes
}

/// Upstream's `ValidateDaemonSetStatusUpdate` beyond metadata.
fn validate_status(new: &DaemonSet, old: &DaemonSet) -> Vec<Cause> {
    let status = new.status.clone().unwrap_or_default();
    let count = |n: Option<i32>| n.map(i64::from);
    let counters = [
        (
            "currentNumberScheduled",
            count(Some(status.current_number_scheduled)),
        ),
        (
            "numberMisscheduled",
            count(Some(status.number_misscheduled)),
        ),
        (
            "desiredNumberScheduled",
            count(Some(status.desired_number_scheduled)),
        ),
        ("numberReady", count(Some(status.number_ready))),
        ("observedGeneration", status.observed_generation),
        (
            "updatedNumberScheduled",
            count(status.updated_number_scheduled),
        ),
        ("numberAvailable", count(status.number_available)),
        ("numberUnavailable", count(status.number_unavailable)),
        ("collisionCount", count(status.collision_count)),
    ];
    let mut causes = Vec::new();
    for (field, value) in counters {
        if let Some(value) = value.filter(|v| *v < 0) {
            causes.push(Cause::invalid(
                format!("status.{field}"),
                &Value::from(value),
                NON_NEGATIVE,
            ));
        }
    }
    let old_count = old.status.as_ref().and_then(|s| s.collision_count);
    if let Some(previous) = old_count {
        let now = status.collision_count.unwrap_or(0);
        if now < previous {
            causes.push(Cause::invalid(
                "status.collisionCount",
                &Value::from(now),
                "cannot be decremented",
            ));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::table::rendered;

    fn daemon_set(value: Value) -> DaemonSet {
        let mut daemon_set: DaemonSet = serde_json::from_value(value).unwrap();
        DaemonSets.default_fields(&mut daemon_set);
        daemon_set
    }

    fn agent() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "agent", "image": "fluentd:1"}]}}
            }
        })
    }

    fn lines(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn defaults_match_upstream() {
        let mut ds = daemon_set(agent());
        DaemonSets.prepare_create(&mut ds);
        let value = serde_json::to_value(&ds).unwrap();
        assert_eq!(
            value["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(value["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(value["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(value["metadata"]["annotations"][TEMPLATE_GENERATION], "1");
        assert_eq!(
            value["status"],
            json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0})
        );
        assert!(DaemonSets.validate(&ds).is_empty());
        let mut on_delete = agent();
        on_delete["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        let value = serde_json::to_value(daemon_set(on_delete)).unwrap();
        assert_eq!(value["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
    }

    #[test]
    fn template_changes_count_the_template_generation() {
        let mut old = daemon_set(agent());
        DaemonSets.prepare_create(&mut old);
        // A client cannot set the annotation; an unchanged template keeps it.
        let mut same = old.clone();
        set_template_generation(&mut same, 7);
        same.spec.as_mut().unwrap().min_ready_seconds = Some(5);
        DaemonSets.prepare_update(&mut same, &old);
        assert_eq!(template_generation(&same), 1);
        // A PUT leaving the pod defaults out changes nothing either.
        let mut bare: DaemonSet = serde_json::from_value(agent()).unwrap();
        DaemonSets.prepare_update(&mut bare, &old);
        assert_eq!(template_generation(&bare), 1);
        let mut changed = old.clone();
        changed
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("fluentd:2".into());
        DaemonSets.prepare_update(&mut changed, &old);
        assert_eq!(template_generation(&changed), 2);
        let mut status = changed.clone();
        set_template_generation(&mut status, 9);
        DaemonSets.prepare_status_update(&mut status, &changed);
        assert_eq!(template_generation(&status), 2);
    }

    #[test]
    fn invalid_daemon_sets_read_like_upstream() {
        let mut value = agent();
        value["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
        value["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        value["spec"]["minReadySeconds"] = json!(-1);
        value["spec"]["updateStrategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%", "maxSurge": 1}});
        assert_eq!(
            lines(&DaemonSets.validate(&daemon_set(value))),
            [
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"other"}: `selector` does not match template `labels`"#,
                r#"spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always""#,
                "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0",
                r#"spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"150%"}: must not be greater than 100%"#,
                r#"spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:0, IntVal:1, StrVal:""}: may not be set when maxUnavailable is non-zero"#,
            ]
        );
        let mut zero = agent();
        zero["spec"]["updateStrategy"]["rollingUpdate"] =
            json!({"maxUnavailable": 0, "maxSurge": "0%"});
        assert_eq!(
            lines(&DaemonSets.validate(&daemon_set(zero))),
            ["spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"]
        );
        let mut surge = agent();
        surge["spec"]["updateStrategy"]["rollingUpdate"] =
            json!({"maxUnavailable": 0, "maxSurge": "10%"});
        assert!(DaemonSets.validate(&daemon_set(surge)).is_empty());
        let mut unknown = agent();
        unknown["spec"]["updateStrategy"] = json!({"type": "Recreate"});
        assert_eq!(
            lines(&DaemonSets.validate(&daemon_set(unknown))),
            [
                r#"spec.updateStrategy: Unsupported value: apps.DaemonSetUpdateStrategy{Type:"Recreate", RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}: supported values: "RollingUpdate", "OnDelete""#
            ]
        );
        let mut empty = agent();
        empty["spec"]["selector"] = json!({"matchLabels": {}});
        assert_eq!(
            lines(&DaemonSets.validate(&daemon_set(empty))),
            ["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for daemonset"]
        );
    }

    #[test]
    fn selector_is_immutable_and_collision_count_only_grows() {
        let old = daemon_set(agent());
        let mut new = old.clone();
        new.spec.as_mut().unwrap().selector.match_labels = Some(
            [
                ("app".to_string(), "agent".to_string()),
                ("x".to_string(), "y".to_string()),
            ]
            .into(),
        );
        new.spec
            .as_mut()
            .unwrap()
            .template
            .metadata
            .as_mut()
            .unwrap()
            .labels = new.spec.as_ref().unwrap().selector.match_labels.clone();
        let causes = DaemonSets.validate_update(&new, &old);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert!(causes[0].message.ends_with("field is immutable"));
        let mut counted = old.clone();
        counted.status = Some(DaemonSetStatus {
            collision_count: Some(2),
            ..Default::default()
        });
        let mut lowered = counted.clone();
        lowered.status.as_mut().unwrap().collision_count = Some(1);
        lowered.status.as_mut().unwrap().number_ready = -1;
        assert_eq!(
            lines(&DaemonSets.validate_update(&lowered, &counted)),
            [
                "status.numberReady: Invalid value: -1: must be greater than or equal to 0",
                "status.collisionCount: Invalid value: 1: cannot be decremented",
            ]
        );
    }

    #[test]
    fn rows_show_counts_and_node_selector() {
        let mut value = agent();
        value["spec"]["template"]["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
        let mut ds = daemon_set(value);
        ds.status = Some(DaemonSetStatus {
            desired_number_scheduled: 3,
            current_number_scheduled: 3,
            number_ready: 2,
            updated_number_scheduled: Some(3),
            number_available: Some(2),
            ..Default::default()
        });
        let cells = rendered(&DaemonSets.cells(&ds), jiff::Timestamp::now());
        assert_eq!(
            cells[1..6],
            [json!(3), json!(3), json!(2), json!(3), json!(2)]
        );
        assert_eq!(cells[6], "kubernetes.io/os=linux");
        assert_eq!(
            cells[8..],
            [json!("agent"), json!("fluentd:1"), json!("app=agent")]
        );
        let plain = daemon_set(agent());
        assert_eq!(
            rendered(&DaemonSets.cells(&plain), jiff::Timestamp::now())[6],
            "<none>"
        );
    }
}
