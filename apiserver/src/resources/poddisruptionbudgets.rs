//! PodDisruptionBudgets (`policy/v1`): how many of an application's pods voluntary
//! disruptions (evictions, `kubectl drain`) may take down at once. The API server stores them
//! with upstream's validation; the disruption controller keeps their status, which the
//! eviction subresource of pods reads and decrements.

use k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::deployments::{int_or_percent, percent};
use super::workload;
use crate::error::Cause;
use crate::registry::table::{age, Cell, Column};
use crate::registry::{Description, Strategy};

pub struct PodDisruptionBudgets;

/// `spec.unhealthyPodEvictionPolicy` values, sorted as upstream lists them.
const POLICIES: [&str; 2] = ["AlwaysAllow", "IfHealthyBudget"];

const MIN_AVAILABLE: &str = "The minimum number of pods that must be available.";
const MAX_UNAVAILABLE: &str = "The maximum number of pods that may be unavailable.";
const ALLOWED: &str = "Calculated number of pods that may be disrupted at this time.";

impl Strategy for PodDisruptionBudgets {
    type Object = PodDisruptionBudget;

    fn describe(&self) -> Description {
        Description {
            short_names: &["pdb"],
            status: true,
            generation: true,
            ..Description::default()
        }
    }

    /// Upstream's status starts with every count zero (they are not optional).
    fn prepare_create(&self, pdb: &mut PodDisruptionBudget) {
        pdb.status = Some(PodDisruptionBudgetStatus::default());
    }

    fn validate(&self, pdb: &PodDisruptionBudget) -> Vec<Cause> {
        let default_spec = PodDisruptionBudgetSpec::default();
        validate_spec(pdb.spec.as_ref().unwrap_or(&default_spec))
    }

    /// A status write is checked for what the controller and evictions may record: counts
    /// never negative.
    fn validate_update(&self, new: &PodDisruptionBudget, _old: &PodDisruptionBudget) -> Vec<Cause> {
        let mut causes = self.validate(new);
        if let Some(status) = &new.status {
            for (field, value) in [
                ("status.disruptionsAllowed", status.disruptions_allowed),
                ("status.currentHealthy", status.current_healthy),
                ("status.desiredHealthy", status.desired_healthy),
                ("status.expectedPods", status.expected_pods),
            ] {
                if value < 0 {
                    causes.push(Cause::invalid(
                        field,
                        &Value::from(value),
                        "must be greater than or equal to 0",
                    ));
                }
            }
        }
        causes
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Min Available", "string", MIN_AVAILABLE),
            Column::new("Max Unavailable", "string", MAX_UNAVAILABLE),
            Column::new("Allowed Disruptions", "integer", ALLOWED),
            Column::age(),
        ]
    }

    fn cells(&self, pdb: &PodDisruptionBudget) -> Vec<Cell> {
        let spec = pdb.spec.as_ref();
        let text = |value: Option<&IntOrString>| match value {
            Some(IntOrString::Int(i)) => i.to_string(),
            Some(IntOrString::String(s)) => s.clone(),
            None => "N/A".into(),
        };
        vec![
            Cell::from(pdb.metadata.name.clone().unwrap_or_default()),
            Cell::from(text(spec.and_then(|s| s.min_available.as_ref()))),
            Cell::from(text(spec.and_then(|s| s.max_unavailable.as_ref()))),
            Cell::from(pdb.status.as_ref().map_or(0, |s| s.disruptions_allowed)),
            age(&pdb.metadata),
        ]
    }
}

/// Upstream's `ValidatePodDisruptionBudgetSpec`.
fn validate_spec(spec: &PodDisruptionBudgetSpec) -> Vec<Cause> {
    let mut causes = Vec::new();
    if spec.min_available.is_some() && spec.max_unavailable.is_some() {
        causes.push(Cause::invalid_printed(
            "spec",
            &go_spec(spec),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (field, value) in [
        ("spec.minAvailable", &spec.min_available),
        ("spec.maxUnavailable", &spec.max_unavailable),
    ] {
        let Some(value) = value else { continue };
        causes.extend(int_or_percent(value, field));
        if percent(value).is_some_and(|p| p > 100) {
            causes.push(Cause::invalid_printed(
                field,
                &workload::go_int_or_string(value),
                "must not be greater than 100%",
            ));
        }
    }
    if let Some(selector) = &spec.selector {
        causes.extend(workload::validate_label_selector(selector, "spec.selector"));
    }
    if let Some(policy) = spec
        .unhealthy_pod_eviction_policy
        .as_deref()
        .filter(|p| !POLICIES.contains(p))
    {
        causes.push(Cause::unsupported(
            "spec.unhealthyPodEvictionPolicy",
            &Value::from(policy),
            &POLICIES,
        ));
    }
    causes
}

/// The spec as upstream prints it in the both-set message (Go's `%#v`; the pointers Go
/// would print as addresses are shown by value).
fn go_spec(spec: &PodDisruptionBudgetSpec) -> String {
    let int_or_string = |value: &Option<IntOrString>| match value {
        Some(value) => format!("&{}", workload::go_int_or_string(value)),
        None => "nil".into(),
    };
    let selector = match &spec.selector {
        Some(selector) => format!("&{}", workload::go_label_selector(selector)),
        None => "nil".into(),
    };
    let policy = match &spec.unhealthy_pod_eviction_policy {
        Some(policy) => format!("&{policy:?}"),
        None => "nil".into(),
    };
    format!(
        "policy.PodDisruptionBudgetSpec{{MinAvailable:{}, Selector:{selector}, MaxUnavailable:{}, UnhealthyPodEvictionPolicy:{policy}}}",
        int_or_string(&spec.min_available),
        int_or_string(&spec.max_unavailable),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::table::rendered;

    fn pdb(spec: Value) -> PodDisruptionBudget {
        let mut pdb: PodDisruptionBudget =
            serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": spec})).unwrap();
        PodDisruptionBudgets.prepare_create(&mut pdb);
        pdb
    }

    #[test]
    fn min_available_xor_max_unavailable_as_numbers_or_percentages() {
        let ok = pdb(json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}));
        assert_eq!(PodDisruptionBudgets.validate(&ok), vec![]);
        let both = pdb(json!({"minAvailable": 1, "maxUnavailable": "50%"}));
        let causes = PodDisruptionBudgets.validate(&both);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec");
        assert!(causes[0]
            .message
            .ends_with(": minAvailable and maxUnavailable cannot be both set"));
        let bad = pdb(json!({"maxUnavailable": "150%", "unhealthyPodEvictionPolicy": "Never"}));
        let messages: Vec<String> = PodDisruptionBudgets
            .validate(&bad)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            messages,
            [
                r#"spec.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"150%"}: must not be greater than 100%"#,
                r#"spec.unhealthyPodEvictionPolicy: Unsupported value: "Never": supported values: "AlwaysAllow", "IfHealthyBudget""#,
            ]
        );
        let negative = pdb(json!({"minAvailable": -1}));
        assert_eq!(
            PodDisruptionBudgets.validate(&negative)[0].message,
            "Invalid value: -1: must be greater than or equal to 0"
        );
    }

    #[test]
    fn rows_show_the_budget_and_allowed_disruptions() {
        let mut pdb = pdb(json!({"minAvailable": "50%"}));
        assert_eq!(
            serde_json::to_value(&pdb).unwrap()["status"],
            json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0})
        );
        pdb.status.as_mut().unwrap().disruptions_allowed = 2;
        let cells = rendered(&PodDisruptionBudgets.cells(&pdb), jiff::Timestamp::now());
        assert_eq!(
            cells[..4],
            [json!("web"), json!("50%"), json!("N/A"), json!(2)]
        );
    }
}
