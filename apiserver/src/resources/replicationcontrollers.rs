//! ReplicationControllers (`v1`): the original ReplicaSet, selecting its pods by label
//! equality. Still served, and run by the same controller as ReplicaSets; defaulting takes
//! the selector and the object's labels from the template when they are left out.

use k8s_openapi::api::core::v1::{
    ReplicationController, ReplicationControllerSpec, ReplicationControllerStatus,
};
use serde_json::Value;

use super::{podspec, workload};
use crate::error::Cause;
use crate::registry::strategy::{DefaultPropagation, ScalePaths};
use crate::registry::table::{age, Cell, Column};
use crate::registry::{Description, Strategy};

pub struct ReplicationControllers;

const DESIRED: &str = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
const CURRENT: &str = "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
const READY: &str = "The number of ready replicas for this replication controller.";
const CONTAINERS: &str = "Names of each container in the template.";
const IMAGES: &str = "Images referenced by each container in the template.";
const SELECTOR: &str = "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

impl Strategy for ReplicationControllers {
    type Object = ReplicationController;

    fn describe(&self) -> Description {
        Description {
            short_names: &["rc"],
            categories: &["all"],
            status: true,
            scale: Some(ScalePaths {
                spec_replicas: "spec.replicas",
                status_replicas: "status.replicas",
                label_selector: "spec.selector",
                equality_selector: true,
            }),
            generation: true,
            field_selectors: &["status.replicas"],
            ..Description::default()
        }
    }

    /// v1 keeps the behaviour from before the garbage collector: an RC deleted without a
    /// propagation policy leaves its pods (silently, unlike a Job).
    fn default_propagation(&self) -> DefaultPropagation {
        DefaultPropagation::Orphan { warning: None }
    }

    /// Upstream's `SetDefaults_ReplicationController`: an empty selector and empty object
    /// labels take the template's labels; one replica.
    fn default_fields(&self, rc: &mut ReplicationController) {
        let spec = rc
            .spec
            .get_or_insert_with(ReplicationControllerSpec::default);
        let template_labels = spec
            .template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone());
        if let Some(labels) = template_labels {
            if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
                spec.selector = Some(labels.clone());
            }
            if rc.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
                rc.metadata.labels = Some(labels);
            }
        }
        spec.replicas.get_or_insert(1);
        if let Some(template) = &mut spec.template {
            podspec::default_pod_template(template);
        }
    }

    /// Upstream's status has a `replicas` number that is always present.
    fn prepare_create(&self, rc: &mut ReplicationController) {
        rc.status = Some(ReplicationControllerStatus::default());
    }

    /// Upstream's `ValidateReplicationControllerSpec`.
    fn validate(&self, rc: &ReplicationController) -> Vec<Cause> {
        let default_spec = ReplicationControllerSpec::default();
        let spec = rc.spec.as_ref().unwrap_or(&default_spec);
        let mut causes = Vec::new();
        if let Some(value) = spec.min_ready_seconds.filter(|v| *v < 0) {
            causes.push(negative("spec.minReadySeconds", value));
        }
        let selector = spec.selector.as_ref().filter(|s| !s.is_empty());
        if selector.is_none() {
            causes.push(Cause::required("spec.selector"));
        }
        if let Some(value) = spec.replicas.filter(|v| *v < 0) {
            causes.push(negative("spec.replicas", value));
        }
        match &spec.template {
            None => causes.push(Cause::required("spec.template")),
            Some(template) => {
                let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
                let matching = |selector: &std::collections::BTreeMap<String, String>| {
                    selector
                        .iter()
                        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
                };
                if selector.is_some_and(|s| !matching(s)) {
                    causes.push(workload::template_mismatch(labels));
                }
                causes.extend(workload::validate_controller_template(
                    template,
                    "ReplicationController",
                ));
            }
        }
        causes
    }

    fn fields(&self, rc: &ReplicationController) -> Vec<(&'static str, String)> {
        vec![(
            "status.replicas",
            rc.status.as_ref().map_or(0, |s| s.replicas).to_string(),
        )]
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Desired", "integer", DESIRED),
            Column::new("Current", "integer", CURRENT),
            Column::new("Ready", "integer", READY),
            Column::age(),
            Column::new("Containers", "string", CONTAINERS).wide(),
            Column::new("Images", "string", IMAGES).wide(),
            Column::new("Selector", "string", SELECTOR).wide(),
        ]
    }

    fn cells(&self, rc: &ReplicationController) -> Vec<Cell> {
        let spec = rc.spec.as_ref();
        let status = rc.status.clone().unwrap_or_default();
        let (containers, images) =
            workload::container_cells(spec.and_then(|s| s.template.as_ref()));
        vec![
            Cell::from(rc.metadata.name.clone().unwrap_or_default()),
            Cell::from(spec.and_then(|s| s.replicas).unwrap_or(0)),
            Cell::from(status.replicas),
            Cell::from(status.ready_replicas.unwrap_or(0)),
            age(&rc.metadata),
            Cell::from(containers),
            Cell::from(images),
            Cell::from(workload::labels_text(
                spec.and_then(|s| s.selector.as_ref()),
            )),
        ]
    }
}

fn negative(field: &str, value: i32) -> Cause {
    Cause::invalid(
        field,
        &Value::from(value),
        "must be greater than or equal to 0",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::table::rendered;

    fn rc(value: Value) -> ReplicationController {
        serde_json::from_value(value).unwrap()
    }

    fn lines(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn selector_and_labels_default_from_the_template() {
        let mut nginx = rc(json!({
            "metadata": {"name": "nginx"},
            "spec": {"template": {"metadata": {"labels": {"app": "nginx"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}
        }));
        ReplicationControllers.default_fields(&mut nginx);
        ReplicationControllers.prepare_create(&mut nginx);
        let value = serde_json::to_value(&nginx).unwrap();
        assert_eq!(value["spec"]["selector"], json!({"app": "nginx"}));
        assert_eq!(value["metadata"]["labels"], json!({"app": "nginx"}));
        assert_eq!(value["spec"]["replicas"], 1);
        assert_eq!(value["status"], json!({"replicas": 0}));
        assert!(ReplicationControllers.validate(&nginx).is_empty());
        let cells = rendered(
            &ReplicationControllers.cells(&nginx),
            jiff::Timestamp::now(),
        );
        assert_eq!(cells[1..4], [json!(1), json!(0), json!(0)]);
        assert_eq!(
            cells[5..],
            [json!("nginx"), json!("nginx"), json!("app=nginx")]
        );
    }

    #[test]
    fn validation_speaks_upstream() {
        let mut bad = rc(json!({
            "metadata": {"name": "bad"},
            "spec": {"replicas": -1, "selector": {"app": "other"},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"restartPolicy": "Never", "activeDeadlineSeconds": 5,
                                           "containers": [{"name": "c", "image": "i"}]}}}
        }));
        ReplicationControllers.default_fields(&mut bad);
        assert_eq!(
            lines(&ReplicationControllers.validate(&bad)),
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`"#,
                r#"spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always""#,
                "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicationController is not Supported",
            ]
        );
        let mut empty = rc(json!({"metadata": {"name": "empty"}, "spec": {}}));
        ReplicationControllers.default_fields(&mut empty);
        assert_eq!(
            lines(&ReplicationControllers.validate(&empty)),
            [
                "spec.selector: Required value",
                "spec.template: Required value"
            ]
        );
    }
}
