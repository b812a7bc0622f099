//! PodTemplates (`v1`): a stored pod template, validated like the template of a workload.

use k8s_openapi::api::core::v1::PodTemplate;

use super::{podspec, workload};
use crate::error::Cause;
use crate::registry::table::{Cell, Column};
use crate::registry::{validation, Description, Strategy};

pub struct PodTemplates;

const CONTAINERS: &str = "Names of each container in the template.";
const IMAGES: &str = "Images referenced by each container in the template.";
const POD_LABELS: &str = "The labels for the pod template.";

impl Strategy for PodTemplates {
    type Object = PodTemplate;

    fn describe(&self) -> Description {
        Description {
            // Upstream bumps the generation when the template changes.
            generation: true,
            // Upstream's storage answers a DELETE with the deleted object.
            return_deleted_object: true,
            ..Description::default()
        }
    }

    fn default_fields(&self, template: &mut PodTemplate) {
        if let Some(template) = &mut template.template {
            podspec::default_pod_template(template);
        }
    }

    /// Upstream's `ValidatePodTemplateSpec` at `template`.
    fn validate(&self, template: &PodTemplate) -> Vec<Cause> {
        let template = template.template.clone().unwrap_or_default();
        let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
        let mut causes = validation::labels(labels, "template.labels");
        let spec = template.spec.unwrap_or_default();
        causes.extend(podspec::validate_pod_spec(&spec, "template.spec"));
        causes
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Containers", "string", CONTAINERS),
            Column::new("Images", "string", IMAGES),
            Column::new("Pod Labels", "string", POD_LABELS),
        ]
    }

    fn cells(&self, template: &PodTemplate) -> Vec<Cell> {
        let spec = template.template.as_ref();
        let (containers, images) = workload::container_cells(spec);
        let labels = spec
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.as_ref());
        vec![
            Cell::from(template.metadata.name.clone().unwrap_or_default()),
            Cell::from(containers),
            Cell::from(images),
            Cell::from(workload::labels_text(labels)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::table::rendered;

    #[test]
    fn validates_the_template_and_prints_its_pods() {
        let mut template: PodTemplate = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}
        }))
        .unwrap();
        PodTemplates.default_fields(&mut template);
        assert!(PodTemplates.validate(&template).is_empty());
        let value = serde_json::to_value(&template).unwrap();
        assert_eq!(value["template"]["spec"]["restartPolicy"], "Always");
        let cells = rendered(&PodTemplates.cells(&template), jiff::Timestamp::now());
        assert_eq!(
            cells,
            [
                json!("web"),
                json!("nginx"),
                json!("nginx:1.27"),
                json!("app=web")
            ]
        );

        let empty: PodTemplate =
            serde_json::from_value(json!({"metadata": {"name": "empty"}})).unwrap();
        let fields: Vec<String> = PodTemplates
            .validate(&empty)
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert!(
            fields.contains(&"template.spec.containers: Required value".to_string()),
            "{fields:?}"
        );
    }
}
