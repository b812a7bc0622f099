//! Deployments (`apps/v1`): a pod template rolled out through replica sets. The API server
//! only stores them (the controller manager rolls them out); what it adds is upstream's
//! defaults, validation and the READY/UP-TO-DATE/AVAILABLE table.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStatus, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::{podspec, workload};
use crate::error::Cause;
use crate::registry::strategy::ScalePaths;
use crate::registry::table::{age, Cell, Column};
use crate::registry::{Description, Strategy};

pub struct Deployments;

/// `Column::new` needs `&'static str`s: upstream's column descriptions.
const READY: &str = "Number of the pod with ready state";
const UP_TO_DATE: &str = "Total number of non-terminating pods targeted by this deployment that have the desired template spec.";
const AVAILABLE: &str = "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.";
const CONTAINERS: &str = "Names of each container in the template.";
const IMAGES: &str = "Images referenced by each container in the template.";
const SELECTOR: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.";

const PERCENT: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";
const NON_NEGATIVE: &str = "must be greater than or equal to 0";

impl Strategy for Deployments {
    type Object = Deployment;

    fn describe(&self) -> Description {
        Description {
            short_names: &["deploy"],
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

    fn default_fields(&self, deployment: &mut Deployment) {
        let spec = deployment.spec.get_or_insert_with(DeploymentSpec::default);
        spec.replicas.get_or_insert(1);
        let strategy = spec
            .strategy
            .get_or_insert_with(DeploymentStrategy::default);
        let kind = strategy.type_.get_or_insert_with(|| "RollingUpdate".into());
        if kind == "RollingUpdate" {
            let rolling = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDeployment::default);
            rolling
                .max_unavailable
                .get_or_insert_with(|| IntOrString::String("25%".into()));
            rolling
                .max_surge
                .get_or_insert_with(|| IntOrString::String("25%".into()));
        }
        spec.revision_history_limit.get_or_insert(10);
        spec.progress_deadline_seconds.get_or_insert(600);
        podspec::default_pod_template(&mut spec.template);
    }

    fn prepare_create(&self, deployment: &mut Deployment) {
        deployment.status = Some(DeploymentStatus::default());
    }

    /// Annotations are copied to the replica sets, so changing them is a new generation too.
    fn prepare_update(&self, new: &mut Deployment, old: &Deployment) {
        if new.metadata.annotations != old.metadata.annotations
            && new.metadata.generation == old.metadata.generation
        {
            new.metadata.generation = Some(old.metadata.generation.unwrap_or(0) + 1);
        }
    }

    /// Upstream's Deployment status strategy keeps the labels too: a status writer (the
    /// controller) must not change what selects the Deployment.
    fn prepare_status_update(&self, new: &mut Deployment, old: &Deployment) {
        new.metadata.labels = old.metadata.labels.clone();
    }

    fn validate(&self, deployment: &Deployment) -> Vec<Cause> {
        let default_spec = DeploymentSpec::default();
        let spec = deployment.spec.as_ref().unwrap_or(&default_spec);
        let mut causes = Vec::new();
        if let Some(replicas) = spec.replicas.filter(|r| *r < 0) {
            causes.push(Cause::invalid(
                "spec.replicas",
                &Value::from(replicas),
                NON_NEGATIVE,
            ));
        }
        causes.extend(workload::validate_selector_and_template(
            &spec.selector,
            Some(&spec.template),
            "deployment",
        ));
        if let Some(strategy) = &spec.strategy {
            causes.extend(validate_strategy(strategy));
        }
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        if min_ready < 0 {
            causes.push(Cause::invalid(
                "spec.minReadySeconds",
                &Value::from(min_ready),
                NON_NEGATIVE,
            ));
        }
        if let Some(limit) = spec.revision_history_limit.filter(|l| *l < 0) {
            causes.push(Cause::invalid(
                "spec.revisionHistoryLimit",
                &Value::from(limit),
                NON_NEGATIVE,
            ));
        }
        if let Some(deadline) = spec.progress_deadline_seconds {
            if deadline < 0 {
                causes.push(Cause::invalid(
                    "spec.progressDeadlineSeconds",
                    &Value::from(deadline),
                    NON_NEGATIVE,
                ));
            }
            if deadline <= min_ready {
                causes.push(Cause::invalid(
                    "spec.progressDeadlineSeconds",
                    &Value::from(deadline),
                    "must be greater than minReadySeconds",
                ));
            }
        }
        causes
    }

    fn validate_update(&self, new: &Deployment, old: &Deployment) -> Vec<Cause> {
        let mut causes = self.validate(new);
        if let (Some(new_spec), Some(old_spec)) = (&new.spec, &old.spec) {
            causes.extend(workload::immutable_selector(
                &new_spec.selector,
                &old_spec.selector,
            ));
        }
        causes
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Ready", "string", READY),
            Column::new("Up-to-date", "integer", UP_TO_DATE),
            Column::new("Available", "integer", AVAILABLE),
            Column::age(),
            Column::new("Containers", "string", CONTAINERS).wide(),
            Column::new("Images", "string", IMAGES).wide(),
            Column::new("Selector", "string", SELECTOR).wide(),
        ]
    }

    fn cells(&self, deployment: &Deployment) -> Vec<Cell> {
        let spec = deployment.spec.as_ref();
        let status = deployment.status.clone().unwrap_or_default();
        let desired = spec.and_then(|s| s.replicas).unwrap_or(0);
        let (containers, images) = workload::container_cells(spec.map(|s| &s.template));
        vec![
            Cell::from(deployment.metadata.name.clone().unwrap_or_default()),
            Cell::from(format!("{}/{desired}", status.ready_replicas.unwrap_or(0))),
            Cell::from(status.updated_replicas.unwrap_or(0)),
            Cell::from(status.available_replicas.unwrap_or(0)),
            age(&deployment.metadata),
            Cell::from(containers),
            Cell::from(images),
            Cell::from(
                spec.map(|s| workload::selector_text(&s.selector))
                    .unwrap_or_default(),
            ),
        ]
    }
}

/// Upstream's `ValidateDeploymentStrategy`.
fn validate_strategy(strategy: &DeploymentStrategy) -> Vec<Cause> {
    let mut causes = Vec::new();
    match strategy.type_.as_deref().unwrap_or("") {
        "Recreate" => {
            if strategy.rolling_update.is_some() {
                causes.push(Cause::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match &strategy.rolling_update {
            None => causes.push(Cause::required_because(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
            Some(rolling) => causes.extend(validate_rolling_update(rolling)),
        },
        other => {
            // Go prints the pointer's address here; any address reads the same to a person.
            let rolling = if strategy.rolling_update.is_some() {
                "(*apps.RollingUpdateDeployment)(0xc000000000)"
            } else {
                "(*apps.RollingUpdateDeployment)(nil)"
            };
            causes.push(Cause {
                reason: "FieldValueNotSupported",
                field: "spec.strategy".into(),
                message: format!(
                    "Unsupported value: apps.DeploymentStrategy{{Type:{other:?}, RollingUpdate:{rolling}}}: supported values: \"Recreate\", \"RollingUpdate\""
                ),
            });
        }
    }
    causes
}

/// Upstream's `ValidateRollingUpdateDeployment`: valid numbers or percentages, not both
/// zero (the rollout could never progress), at most 100% unavailable.
fn validate_rolling_update(rolling: &RollingUpdateDeployment) -> Vec<Cause> {
    let zero = IntOrString::Int(0);
    let max_unavailable = rolling.max_unavailable.as_ref().unwrap_or(&zero);
    let max_surge = rolling.max_surge.as_ref().unwrap_or(&zero);
    let path = "spec.strategy.rollingUpdate";
    let mut causes = int_or_percent(max_unavailable, &format!("{path}.maxUnavailable"));
    causes.extend(int_or_percent(max_surge, &format!("{path}.maxSurge")));
    if amount(max_unavailable) == 0 && amount(max_surge) == 0 {
        causes.push(Cause::invalid_printed(
            format!("{path}.maxUnavailable"),
            &workload::go_int_or_string(max_unavailable),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    if percent(max_unavailable).is_some_and(|p| p > 100) {
        causes.push(Cause::invalid_printed(
            format!("{path}.maxUnavailable"),
            &workload::go_int_or_string(max_unavailable),
            "must not be greater than 100%",
        ));
    }
    causes
}

/// Upstream's `ValidatePositiveIntOrPercent`.
pub(super) fn int_or_percent(value: &IntOrString, field: &str) -> Vec<Cause> {
    match value {
        IntOrString::Int(i) if *i < 0 => {
            vec![Cause::invalid(field, &Value::from(*i), NON_NEGATIVE)]
        }
        IntOrString::String(_) if percent(value).is_none() => {
            vec![Cause::invalid_printed(
                field,
                &workload::go_int_or_string(value),
                PERCENT,
            )]
        }
        _ => Vec::new(),
    }
}

/// The number of a `"25%"` string.
pub(super) fn percent(value: &IntOrString) -> Option<i64> {
    match value {
        IntOrString::String(s) => {
            let digits = s.strip_suffix('%')?;
            (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
                .then(|| digits.parse().unwrap_or(i64::MAX))
        }
        IntOrString::Int(_) => None,
    }
}

/// The value upstream compares with zero: the percentage, or the integer (an unparsable
/// string counts as zero).
pub(super) fn amount(value: &IntOrString) -> i64 {
    match value {
        IntOrString::Int(i) => i64::from(*i),
        IntOrString::String(s) => percent(value).unwrap_or_else(|| s.parse().unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::table::rendered;

    fn deployment(value: Value) -> Deployment {
        let mut deployment: Deployment = serde_json::from_value(value).unwrap();
        Deployments.default_fields(&mut deployment);
        deployment
    }

    fn web() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}
            }
        })
    }

    #[test]
    fn defaults_match_upstream() {
        let value = serde_json::to_value(deployment(web())).unwrap();
        let spec = &value["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        assert_eq!(
            spec["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
        assert!(Deployments.validate(&deployment(web())).is_empty());
    }

    #[test]
    fn invalid_deployments_read_like_upstream() {
        let mut value = web();
        value["spec"]["replicas"] = json!(-1);
        value["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}});
        value["spec"]["template"]["metadata"]["labels"] = json!({"app": "api"});
        let lines: Vec<String> = Deployments
            .validate(&deployment(value))
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            lines,
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"api"}: `selector` does not match template `labels`"#,
                r#"spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:""}: may not be 0 when `maxSurge` is 0"#,
            ]
        );
    }

    #[test]
    fn annotation_changes_bump_the_generation() {
        let mut old = deployment(web());
        old.metadata.generation = Some(3);
        let mut new = old.clone();
        new.metadata.annotations = Some([("note".to_string(), "x".to_string())].into());
        Deployments.prepare_update(&mut new, &old);
        assert_eq!(new.metadata.generation, Some(4));
    }

    #[test]
    fn rows_show_ready_over_desired() {
        let mut d = deployment(web());
        d.spec.as_mut().unwrap().replicas = Some(3);
        d.status = Some(DeploymentStatus {
            ready_replicas: Some(2),
            updated_replicas: Some(3),
            available_replicas: Some(2),
            ..Default::default()
        });
        let cells = rendered(&Deployments.cells(&d), jiff::Timestamp::now());
        assert_eq!(cells[1], "2/3");
        assert_eq!(cells[2], 3);
        assert_eq!(cells[5], "nginx");
        assert_eq!(cells[6], "nginx:1.27");
        assert_eq!(cells[7], "app=web");
    }
}
