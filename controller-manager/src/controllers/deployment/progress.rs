//! How a rollout is reported: the status counts, the `Available` condition and the
//! `Progressing` condition with upstream's reasons, which `kubectl rollout status` reads to
//! decide whether a rollout finished, is still moving, or exceeded its
//! `progressDeadlineSeconds` (a rollout stuck on an image that cannot be pulled ends there).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::controller::Action;
use kube::ResourceExt;

use super::util::{max_unavailable, replicas, rs_available, rs_replicas};
use super::Sync;
use crate::runtime::Result;

pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
pub const NEW_REPLICA_SET: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";

impl Sync<'_> {
    /// The status with the Progressing condition brought up to date; a rollout still within
    /// its deadline is looked at again when the deadline passes.
    pub(super) async fn sync_rollout_status(
        &mut self,
        all_rss: &[Arc<ReplicaSet>],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<Action> {
        let mut status = calculate_status(&self.d, all_rss, new_rs)?;
        let deadline = has_progress_deadline(&self.d);
        if !deadline {
            remove_condition(&mut status, "Progressing");
        }
        let current = condition(self.d.status.as_ref(), "Progressing").cloned();
        let complete_before = status.replicas == status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
        let name = |what: &str| match new_rs {
            Some(rs) => format!("ReplicaSet {:?} {what}", rs.name_any()),
            None => format!("Deployment {:?} {what}", self.d.name_any()),
        };
        if deadline && !complete_before {
            if deployment_complete(&self.d, Some(&status)) {
                set_condition(
                    &mut status,
                    new_condition(
                        "Progressing",
                        "True",
                        NEW_RS_AVAILABLE,
                        name("has successfully progressed."),
                    ),
                );
            } else if deployment_progressing(&self.d, &status) {
                let mut progressing = new_condition(
                    "Progressing",
                    "True",
                    REPLICA_SET_UPDATED,
                    name("is progressing."),
                );
                if let Some(current) = &current {
                    if current.status == "True" {
                        progressing.last_transition_time = current.last_transition_time.clone();
                    }
                    remove_condition(&mut status, "Progressing");
                }
                set_condition(&mut status, progressing);
            } else if deployment_timed_out(&self.d, &status) {
                set_condition(
                    &mut status,
                    new_condition(
                        "Progressing",
                        "False",
                        TIMED_OUT,
                        name("has timed out progressing."),
                    ),
                );
            }
        }
        match all_rss.iter().find_map(|rs| replica_failure(rs)) {
            Some(failure) => set_condition(&mut status, failure),
            None => remove_condition(&mut status, "ReplicaFailure"),
        }
        if self.d.status.as_ref() == Some(&status) {
            return Ok(self.requeue_stuck(&status));
        }
        self.d.status = Some(status);
        self.write_status().await?;
        Ok(Action::await_change())
    }

    /// A rollout that has not completed is checked again when its progress deadline passes.
    fn requeue_stuck(&self, status: &DeploymentStatus) -> Action {
        let Some(current) = condition(Some(status), "Progressing") else {
            return Action::await_change();
        };
        if !has_progress_deadline(&self.d)
            || deployment_complete(&self.d, Some(status))
            || current.reason.as_deref() == Some(TIMED_OUT)
        {
            return Action::await_change();
        }
        let seconds = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(600);
        let Some(updated) = &current.last_update_time else {
            return Action::await_change();
        };
        let after = (updated.0 + SignedDuration::from_secs(i64::from(seconds)))
            .duration_since(Timestamp::now());
        let after = Duration::try_from(after).unwrap_or(Duration::ZERO);
        Action::requeue(after.max(Duration::from_millis(500)) + Duration::from_secs(1))
    }
}

/// The ReplicaSet's `ReplicaFailure` condition as a Deployment condition.
fn replica_failure(rs: &ReplicaSet) -> Option<DeploymentCondition> {
    let failure = rs
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "ReplicaFailure")?;
    Some(DeploymentCondition {
        type_: "ReplicaFailure".into(),
        status: failure.status.clone(),
        reason: failure.reason.clone(),
        message: failure.message.clone(),
        last_update_time: failure.last_transition_time.clone(),
        last_transition_time: failure.last_transition_time.clone(),
    })
}

pub fn calculate_status(
    d: &Deployment,
    all_rss: &[Arc<ReplicaSet>],
    new_rs: Option<&ReplicaSet>,
) -> Result<DeploymentStatus> {
    let current = d.status.clone().unwrap_or_default();
    let available: i32 = all_rss.iter().map(|rs| rs_available(rs)).sum();
    let total: i32 = all_rss.iter().map(|rs| rs_replicas(rs)).sum();
    let actual = |rs: &ReplicaSet| rs.status.as_ref().map_or(0, |s| s.replicas);
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nonzero(all_rss.iter().map(|rs| actual(rs)).sum()),
        updated_replicas: nonzero(new_rs.map_or(0, actual)),
        ready_replicas: nonzero(
            all_rss
                .iter()
                .map(|rs| {
                    rs.status
                        .as_ref()
                        .and_then(|s| s.ready_replicas)
                        .unwrap_or(0)
                })
                .sum(),
        ),
        available_replicas: nonzero(available),
        unavailable_replicas: nonzero((total - available).max(0)),
        collision_count: current.collision_count,
        conditions: current.conditions.clone(),
        terminating_replicas: current.terminating_replicas,
    };
    if available >= replicas(d) - max_unavailable(d)? {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
            ),
        );
    }
    Ok(status)
}

fn nonzero(count: i32) -> Option<i32> {
    (count != 0).then_some(count)
}

pub fn condition<'a>(
    status: Option<&'a DeploymentStatus>,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// A condition stamped now (to the second, as the API stores it).
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) -> DeploymentCondition {
    let now = Time(Timestamp::from_second(Timestamp::now().as_second()).expect("now"));
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Replaces the condition of its type unless one with the same status and reason is there;
/// the transition time is kept while the status stays the same.
pub fn set_condition(status: &mut DeploymentStatus, mut new: DeploymentCondition) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(current) = conditions.iter().find(|c| c.type_ == new.type_) {
        if current.status == new.status && current.reason == new.reason {
            return;
        }
        if current.status == new.status {
            new.last_transition_time = current.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_ != new.type_);
    conditions.push(new);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = &mut status.conditions {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|s| s != i32::MAX)
}

/// Every replica updated and available, and the latest generation observed.
pub fn deployment_complete(d: &Deployment, status: Option<&DeploymentStatus>) -> bool {
    let replicas = replicas(d);
    let Some(status) = status else {
        return replicas == 0 && d.metadata.generation.is_none();
    };
    status.updated_replicas.unwrap_or(0) == replicas
        && status.replicas.unwrap_or(0) == replicas
        && status.available_replicas.unwrap_or(0) == replicas
        && status.observed_generation >= d.metadata.generation
}

/// More pods updated, fewer old ones, or more ready or available than last recorded.
fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new_old < old_old
        || new.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

fn deployment_timed_out(d: &Deployment, status: &DeploymentStatus) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(current) = condition(Some(status), "Progressing") else {
        return false;
    };
    match current.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => return false,
        Some(TIMED_OUT) => return true,
        _ => {}
    }
    let seconds = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(600);
    current
        .last_update_time
        .as_ref()
        .is_some_and(|t| t.0 + SignedDuration::from_secs(i64::from(seconds)) < Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_keep_transition_time_while_status_holds() {
        let mut status = DeploymentStatus::default();
        let mut first = new_condition("Progressing", "True", NEW_REPLICA_SET, "a".into());
        first.last_transition_time = Some(Time(Timestamp::UNIX_EPOCH));
        set_condition(&mut status, first);
        set_condition(
            &mut status,
            new_condition("Progressing", "True", REPLICA_SET_UPDATED, "b".into()),
        );
        let current = condition(Some(&status), "Progressing").unwrap();
        assert_eq!(current.reason.as_deref(), Some(REPLICA_SET_UPDATED));
        assert_eq!(
            current.last_transition_time,
            Some(Time(Timestamp::UNIX_EPOCH))
        );
        assert_eq!(status.conditions.as_ref().unwrap().len(), 1);
    }
}
