//! PriorityClasses (scheduling.k8s.io/v1): the names pods use for `spec.priority`, which the
//! scheduler's preemption compares. The two `system-` classes exist from the first start.

use k8s_openapi::api::scheduling::v1::PriorityClass;
use serde_json::Value;

use crate::error::Cause;
use crate::registry::table::{age, Cell, Column};
use crate::registry::{Description, Strategy};

pub struct PriorityClasses;

/// Highest value a user-defined class may have; larger ones are reserved for system classes.
const HIGHEST_USER_PRIORITY: i32 = 1_000_000_000;

/// The classes upstream creates at start-up, with their values.
pub const SYSTEM_CLASSES: &[(&str, i32, &str)] = &[
    ("system-node-critical", 2_000_001_000, "Used for system critical pods that must not be moved from their current node."),
    ("system-cluster-critical", 2_000_000_000, "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."),
];

impl Strategy for PriorityClasses {
    type Object = PriorityClass;

    fn describe(&self) -> Description {
        Description {
            short_names: &["pc"],
            ..Description::default()
        }
    }

    /// Upstream sets the generation of a PriorityClass to 1 on create and never bumps it.
    fn prepare_create(&self, class: &mut PriorityClass) {
        class.metadata.generation = Some(1);
    }

    fn default_fields(&self, class: &mut PriorityClass) {
        if class.preemption_policy.is_none() {
            class.preemption_policy = Some("PreemptLowerPriority".into());
        }
    }

    fn validate(&self, class: &PriorityClass) -> Vec<Cause> {
        let mut causes = Vec::new();
        let name = class.metadata.name.as_deref().unwrap_or("");
        let system = SYSTEM_CLASSES.iter().find(|(n, _, _)| *n == name);
        match system {
            Some((_, value, _)) if class.value != *value => causes.push(Cause::forbidden(
                "metadata.name",
                format!(
                    "{name:?} is a reserved system priority class name; its value must be {value}"
                ),
            )),
            Some(_) => {}
            None if name.starts_with("system-") => causes.push(Cause::forbidden(
                "metadata.name",
                "priority class names with 'system-' prefix are reserved",
            )),
            None if class.value > HIGHEST_USER_PRIORITY => causes.push(Cause::forbidden(
                "value",
                format!(
                    "maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"
                ),
            )),
            None => {}
        }
        if let Some(policy) = class.preemption_policy.as_deref() {
            if !["PreemptLowerPriority", "Never"].contains(&policy) {
                causes.push(Cause::unsupported(
                    "preemptionPolicy",
                    &Value::from(policy),
                    &["Never", "PreemptLowerPriority"],
                ));
            }
        }
        causes
    }

    fn validate_update(&self, new: &PriorityClass, old: &PriorityClass) -> Vec<Cause> {
        let mut causes = self.validate(new);
        if new.value != old.value {
            causes.push(Cause::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        if new.preemption_policy != old.preemption_policy {
            causes.push(Cause::invalid(
                "preemptionPolicy",
                &Value::from(new.preemption_policy.clone()),
                "field is immutable",
            ));
        }
        causes
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Value", "integer", "value represents the integer value of this priority class."),
            Column::new("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class."),
            Column::age(),
            Column::new("PreemptionPolicy", "string", "preemptionPolicy is the Policy for preempting pods with lower priority."),
        ]
    }

    fn cells(&self, class: &PriorityClass) -> Vec<Cell> {
        vec![
            Cell::from(class.metadata.name.clone().unwrap_or_default()),
            Cell::from(class.value),
            Cell::from(class.global_default.unwrap_or(false)),
            age(&class.metadata),
            Cell::from(class.preemption_policy.clone().unwrap_or_default()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, value: i32) -> PriorityClass {
        let mut class = PriorityClass {
            value,
            ..Default::default()
        };
        class.metadata.name = Some(name.into());
        class
    }

    #[test]
    fn system_names_and_huge_values_are_reserved() {
        assert!(PriorityClasses.validate(&class("high", 1000)).is_empty());
        assert!(PriorityClasses
            .validate(&class("system-node-critical", 2_000_001_000))
            .is_empty());
        assert_eq!(
            PriorityClasses.validate(&class("system-mine", 5))[0].message,
            "Forbidden: priority class names with 'system-' prefix are reserved"
        );
        assert_eq!(
            PriorityClasses.validate(&class("huge", 2_000_000_000))[0].field,
            "value"
        );
        assert_eq!(
            PriorityClasses
                .validate_update(&class("high", 1), &class("high", 2))
                .len(),
            1
        );
    }
}
