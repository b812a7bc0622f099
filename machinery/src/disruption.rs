//! What the eviction subresource and the disruption controller both do to a
//! PodDisruptionBudget's status: upstream's component-helpers `UpdateDisruptionAllowedCondition`
//! and apimachinery's `SetStatusCondition`, written once for both binaries.

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The condition type saying whether the budget allows a disruption now.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
/// Its reason while disruptions are allowed.
pub const SUFFICIENT_PODS: &str = "SufficientPods";
/// Its reason while no disruption is allowed.
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
/// Its reason when the controller could not compute the status.
pub const SYNC_FAILED: &str = "SyncFailed";

/// Sets `DisruptionAllowed` from `status.disruptionsAllowed`: True (SufficientPods) above
/// zero, False (InsufficientPods) otherwise, observed at `status.observedGeneration`.
pub fn update_disruption_allowed_condition(pdb: &mut PodDisruptionBudget, now: &Time) {
    let status = pdb.status.get_or_insert_with(Default::default);
    let (state, reason) = if status.disruptions_allowed > 0 {
        ("True", SUFFICIENT_PODS)
    } else {
        ("False", INSUFFICIENT_PODS)
    };
    let condition = Condition {
        type_: DISRUPTION_ALLOWED.into(),
        status: state.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: status.observed_generation,
        last_transition_time: now.clone(),
    };
    set_condition(status.conditions.get_or_insert_with(Vec::new), condition);
}

/// Upstream's `meta.SetStatusCondition`: adds the condition or updates the one of its type,
/// keeping its transition time unless the status changes.
pub fn set_condition(conditions: &mut Vec<Condition>, condition: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        None => conditions.push(condition),
        Some(existing) => {
            if existing.status != condition.status {
                existing.status = condition.status;
                existing.last_transition_time = condition.last_transition_time;
            }
            existing.reason = condition.reason;
            existing.message = condition.message;
            existing.observed_generation = condition.observed_generation;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn the_condition_follows_disruptions_allowed_and_keeps_its_transition_time() {
        let mut pdb = PodDisruptionBudget::default();
        let first = Time(Timestamp::from_second(100).unwrap());
        let later = Time(Timestamp::from_second(200).unwrap());
        update_disruption_allowed_condition(&mut pdb, &first);
        let condition = &pdb.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("False", INSUFFICIENT_PODS)
        );
        update_disruption_allowed_condition(&mut pdb, &later);
        let conditions = pdb.status.as_ref().unwrap().conditions.as_ref().unwrap();
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, first);
        pdb.status.as_mut().unwrap().disruptions_allowed = 1;
        update_disruption_allowed_condition(&mut pdb, &later);
        let condition = &pdb.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("True", SUFFICIENT_PODS)
        );
        assert_eq!(condition.last_transition_time, later);
    }
}
