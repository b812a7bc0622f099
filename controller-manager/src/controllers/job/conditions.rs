//! The job's conditions as upstream writes them: `FailureTarget` and `SuccessCriteriaMet`
//! once the outcome is decided, `Failed` and `Complete` (with the same reason and message)
//! once every pod is gone or counted, and `Suspended`.

use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Why a job ends, with upstream's reasons and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub success: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Outcome {
    pub fn failure(reason: &'static str, message: impl Into<String>) -> Outcome {
        Outcome {
            success: false,
            reason,
            message: message.into(),
        }
    }

    pub fn success(reason: &'static str, message: impl Into<String>) -> Outcome {
        Outcome {
            success: true,
            reason,
            message: message.into(),
        }
    }

    pub fn backoff_limit() -> Outcome {
        Outcome::failure(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )
    }

    pub fn deadline() -> Outcome {
        Outcome::failure(
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        )
    }

    pub fn max_failed_indexes() -> Outcome {
        Outcome::failure(
            "MaxFailedIndexesExceeded",
            "Job has exceeded the specified maximal number of failed indexes",
        )
    }

    pub fn failed_indexes() -> Outcome {
        Outcome::failure("FailedIndexes", "Job has failed indexes")
    }

    pub fn completions_reached() -> Outcome {
        Outcome::success(
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        )
    }

    /// The interim condition recording the decision.
    pub fn target_type(&self) -> &'static str {
        if self.success {
            "SuccessCriteriaMet"
        } else {
            "FailureTarget"
        }
    }

    /// The terminal condition.
    pub fn final_type(&self) -> &'static str {
        if self.success {
            "Complete"
        } else {
            "Failed"
        }
    }

    /// The outcome already decided in `status`, read back from its interim condition.
    pub fn decided(status: &JobStatus) -> Option<Outcome> {
        ["SuccessCriteriaMet", "FailureTarget"]
            .into_iter()
            .find_map(|type_| true_condition(status, type_))
            .map(|c| Outcome {
                success: c.type_ == "SuccessCriteriaMet",
                reason: known_reason(c.reason.as_deref().unwrap_or("")),
                message: c.message.clone().unwrap_or_default(),
            })
    }
}

/// The `&'static` form of a reason this controller writes (another writer's stays
/// generic).
fn known_reason(reason: &str) -> &'static str {
    [
        "BackoffLimitExceeded",
        "DeadlineExceeded",
        "MaxFailedIndexesExceeded",
        "FailedIndexes",
        "PodFailurePolicy",
        "CompletionsReached",
        "SuccessPolicy",
    ]
    .into_iter()
    .find(|r| *r == reason)
    .unwrap_or("JobFinished")
}

pub fn true_condition<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the job has ended (Complete or Failed).
pub fn finished(status: &JobStatus) -> bool {
    true_condition(status, "Complete").is_some() || true_condition(status, "Failed").is_some()
}

/// Upstream's `ensureJobConditionStatus`: sets the condition of `type_` (replacing one of the
/// same type whose status, reason or message differ); a False one is not added when absent.
/// Returns whether anything changed.
pub fn ensure(
    status: &mut JobStatus,
    type_: &str,
    value: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let value = if value { "True" } else { "False" };
    let fresh = JobCondition {
        type_: type_.into(),
        status: value.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            let same = existing.status == value
                && existing.reason.as_deref() == Some(reason)
                && existing.message.as_deref() == Some(message);
            if !same {
                *existing = fresh;
            }
            !same
        }
        None if value == "False" => false,
        None => {
            conditions.push(fresh);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decided_outcomes_are_read_back_and_conditions_replaced() {
        let now = Timestamp::now();
        let mut status = JobStatus::default();
        assert!(!ensure(
            &mut status,
            "Suspended",
            false,
            "JobResumed",
            "Job resumed",
            now
        ));
        let outcome = Outcome::backoff_limit();
        assert!(ensure(
            &mut status,
            outcome.target_type(),
            true,
            outcome.reason,
            &outcome.message,
            now
        ));
        assert!(!ensure(
            &mut status,
            outcome.target_type(),
            true,
            outcome.reason,
            &outcome.message,
            now
        ));
        assert_eq!(Outcome::decided(&status), Some(outcome));
        assert!(!finished(&status));
        assert!(ensure(
            &mut status,
            "Failed",
            true,
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            now
        ));
        assert!(finished(&status));
    }
}
