//! ReplicaSets (`apps/v1`): keep a number of pods from a template running. Deployments
//! create them; the API server stores them with upstream's defaults and validation.

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus};
use serde_json::Value;

use super::{podspec, workload};
use crate::error::Cause;
use crate::registry::strategy::ScalePaths;
use crate::registry::table::{age, Cell, Column};
use crate::registry::{Description, Strategy};

pub struct ReplicaSets;

const DESIRED: &str = "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset";
const CURRENT: &str = "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset";
const READY: &str =
    "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.";
const CONTAINERS: &str = "Names of each container in the template.";
const IMAGES: &str = "Images referenced by each container in the template.";
const SELECTOR: &str = "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

impl Strategy for ReplicaSets {
    type Object = ReplicaSet;

    fn describe(&self) -> Description {
        Description {
            short_names: &["rs"],
            categories: &["all"],
            status: true,
            scale: Some(ScalePaths {
                spec_replicas: "spec.replicas",
                status_replicas: "status.replicas",
                label_selector: "spec.selector",
                equality_selector: false,
            }),
            generation: true,
            field_selectors: &["status.replicas"],
            ..Description::default()
        }
    }

    fn default_fields(&self, replica_set: &mut ReplicaSet) {
        let spec = replica_set.spec.get_or_insert_with(ReplicaSetSpec::default);
        spec.replicas.get_or_insert(1);
        if let Some(template) = &mut spec.template {
            podspec::default_pod_template(template);
        }
    }

    /// Upstream's status has a `replicas` number that is always present.
    fn prepare_create(&self, replica_set: &mut ReplicaSet) {
        replica_set.status = Some(ReplicaSetStatus::default());
    }

    fn validate(&self, replica_set: &ReplicaSet) -> Vec<Cause> {
        let default_spec = ReplicaSetSpec::default();
        let spec = replica_set.spec.as_ref().unwrap_or(&default_spec);
        let mut causes = Vec::new();
        if let Some(replicas) = spec.replicas.filter(|r| *r < 0) {
            causes.push(Cause::invalid(
                "spec.replicas",
                &Value::from(replicas),
                "must be greater than or equal to 0",
            ));
        }
        if let Some(min_ready) = spec.min_ready_seconds.filter(|s| *s < 0) {
            causes.push(Cause::invalid(
                "spec.minReadySeconds",
                &Value::from(min_ready),
                "must be greater than or equal to 0",
            ));
        }
        causes.extend(workload::validate_selector_and_template(
            &spec.selector,
            spec.template.as_ref(),
            "deployment",
        ));
        causes
    }

    fn validate_update(&self, new: &ReplicaSet, old: &ReplicaSet) -> Vec<Cause> {
        let mut causes = self.validate(new);
        if let (Some(new_spec), Some(old_spec)) = (&new.spec, &old.spec) {
            causes.extend(workload::immutable_selector(
                &new_spec.selector,
                &old_spec.selector,
            ));
        }
        causes
    }

    fn fields(&self, replica_set: &ReplicaSet) -> Vec<(&'static str, String)> {
        vec![(
            "status.replicas",
            replica_set
                .status
                .as_ref()
                .map_or(0, |s| s.replicas)
                .to_string(),
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

    fn cells(&self, replica_set: &ReplicaSet) -> Vec<Cell> {
        let spec = replica_set.spec.as_ref();
        let status = replica_set.status.clone().unwrap_or_default();
        let (containers, images) =
            workload::container_cells(spec.and_then(|s| s.template.as_ref()));
        let selector = spec
            .map(|s| workload::selector_text(&s.selector))
            .filter(|s| !s.is_empty());
        vec![
            Cell::from(replica_set.metadata.name.clone().unwrap_or_default()),
            Cell::from(spec.and_then(|s| s.replicas).unwrap_or(0)),
            Cell::from(status.replicas),
            Cell::from(status.ready_replicas.unwrap_or(0)),
            age(&replica_set.metadata),
            Cell::from(containers),
            Cell::from(images),
            Cell::from(selector.unwrap_or_else(|| "<none>".into())),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::table::rendered;

    #[test]
    fn defaults_validation_and_rows() {
        let mut rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web-5d8f"},
            "spec": {
                "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8f"}},
                "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "5d8f"}},
                             "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}
            }
        }))
        .unwrap();
        ReplicaSets.default_fields(&mut rs);
        ReplicaSets.prepare_create(&mut rs);
        assert!(ReplicaSets.validate(&rs).is_empty());
        assert_eq!(
            serde_json::to_value(&rs).unwrap()["status"],
            json!({"replicas": 0})
        );
        let cells = rendered(&ReplicaSets.cells(&rs), jiff::Timestamp::now());
        assert_eq!(cells[1..4], [json!(1), json!(0), json!(0)]);
        assert_eq!(cells[7], "app=web,pod-template-hash=5d8f");

        let mut changed = rs.clone();
        changed.spec.as_mut().unwrap().selector.match_labels =
            Some([("app".to_string(), "web".to_string())].into());
        let causes = ReplicaSets.validate_update(&changed, &rs);
        assert_eq!(causes.len(), 1);
        assert!(
            causes[0].message.ends_with("field is immutable"),
            "{causes:?}"
        );
    }
}
