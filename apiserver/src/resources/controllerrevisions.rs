//! ControllerRevisions (`apps/v1`): immutable snapshots of a controller's state (a
//! StatefulSet's or DaemonSet's pod template) that their controllers keep as rollout history,
//! which `kubectl rollout history` lists and `kubectl rollout undo` puts back.

use k8s_openapi::api::apps::v1::ControllerRevision;
use serde_json::Value;

use crate::error::Cause;
use crate::registry::table::{age, Cell, Column};
use crate::registry::Strategy;

pub struct ControllerRevisions;

const CONTROLLER: &str = "Controller of the object";
const REVISION: &str = "Revision indicates the revision of the state represented by Data.";

impl Strategy for ControllerRevisions {
    type Object = ControllerRevision;

    /// Upstream's `ValidateControllerRevisionCreate`.
    fn validate(&self, revision: &ControllerRevision) -> Vec<Cause> {
        let mut causes = Vec::new();
        if revision.data.is_none() {
            causes.push(Cause::required_because("data", "data is mandatory"));
        }
        if revision.revision < 0 {
            causes.push(Cause::invalid(
                "revision",
                &Value::from(revision.revision),
                "must be greater than or equal to 0",
            ));
        }
        causes
    }

    /// Upstream's `ValidateControllerRevisionUpdate`: the data of a revision never changes
    /// (only its metadata does, when a controller adopts or releases it, and its revision
    /// number, when a rollback makes an old state the newest again).
    fn validate_update(&self, new: &ControllerRevision, old: &ControllerRevision) -> Vec<Cause> {
        let mut causes = self.validate(new);
        if new.data != old.data {
            let data = new.data.as_ref().map_or(Value::Null, |d| d.0.clone());
            causes.push(Cause::invalid("data", &data, "field is immutable"));
        }
        causes
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Controller", "string", CONTROLLER),
            Column::new("Revision", "string", REVISION),
            Column::age(),
        ]
    }

    fn cells(&self, revision: &ControllerRevision) -> Vec<Cell> {
        vec![
            Cell::from(revision.metadata.name.clone().unwrap_or_default()),
            Cell::from(controller_of(revision)),
            Cell::from(revision.revision),
            age(&revision.metadata),
        ]
    }
}

/// The controlling owner as upstream prints it: `statefulset.apps/web` (the kind and group
/// lowercased), `<none>` without one.
fn controller_of(revision: &ControllerRevision) -> String {
    let owner = revision
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    let Some(owner) = owner else {
        return "<none>".into();
    };
    let group = owner
        .api_version
        .rsplit_once('/')
        .map_or("", |(group, _)| group);
    let kind = if group.is_empty() {
        owner.kind.clone()
    } else {
        format!("{}.{group}", owner.kind)
    };
    format!("{}/{}", kind.to_lowercase(), owner.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::table::rendered;

    fn revision(data: Value, number: i64) -> ControllerRevision {
        serde_json::from_value(json!({
            "metadata": {"name": "web-7b9f", "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                "uid": "1", "controller": true
            }]},
            "data": data,
            "revision": number
        }))
        .unwrap()
    }

    #[test]
    fn data_is_required_and_immutable() {
        let ok = revision(json!({"spec": {"template": {}}}), 1);
        assert!(ControllerRevisions.validate(&ok).is_empty());

        let mut missing = ok.clone();
        missing.data = None;
        missing.revision = -1;
        let causes = ControllerRevisions.validate(&missing);
        assert_eq!(causes[0].field, "data");
        assert_eq!(causes[0].message, "Required value: data is mandatory");
        assert_eq!(
            causes[1].message,
            "Invalid value: -1: must be greater than or equal to 0"
        );

        let mut renumbered = ok.clone();
        renumbered.revision = 3;
        assert!(ControllerRevisions
            .validate_update(&renumbered, &ok)
            .is_empty());
        let changed = revision(json!({"spec": {}}), 1);
        let causes = ControllerRevisions.validate_update(&changed, &ok);
        assert_eq!(causes.len(), 1);
        assert!(causes[0].message.ends_with("field is immutable"));
    }

    #[test]
    fn rows_name_the_controller() {
        let row = rendered(
            &ControllerRevisions.cells(&revision(json!({}), 2)),
            jiff::Timestamp::now(),
        );
        assert_eq!(
            row[..3],
            [json!("web-7b9f"), json!("statefulset.apps/web"), json!(2)]
        );
        let mut orphan = revision(json!({}), 2);
        orphan.metadata.owner_references = None;
        assert_eq!(controller_of(&orphan), "<none>");
    }
}
