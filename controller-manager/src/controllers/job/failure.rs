//! How the job controller judges a failed pod: `spec.podFailurePolicy` (exit codes of
//! terminated containers, pod conditions such as `DisruptionTarget`) and upstream's
//! exponential back-off before a failed pod is replaced.

use std::time::Duration;

use k8s_openapi::api::batch::v1::{PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

/// Upstream's `DefaultJobPodFailureBackOff` and `MaxJobPodFailureBackOff`.
const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(600);

/// What the first matching rule of a pod failure policy says about a failed pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The job fails at once, with this message.
    FailJob(String),
    /// The pod's index fails at once (backoffLimitPerIndex jobs).
    FailIndex,
    /// The failure is not counted against any limit.
    Ignore,
    /// Counted as usual, as when no rule matches.
    Count,
}

/// Judges a pod in phase Failed by `policy`'s rules, in order.
pub fn judge(policy: &PodFailurePolicy, pod: &Pod) -> Verdict {
    let status = pod.status.clone().unwrap_or_default();
    let name = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
    for (index, rule) in policy.rules.iter().enumerate() {
        let matched = if let Some(requirement) = &rule.on_exit_codes {
            let containers = status.container_statuses.iter().flatten();
            let init = status.init_container_statuses.iter().flatten();
            let container = containers
                .filter(|c| exit_code_matches(c, requirement))
                .chain(init.filter(|c| exit_code_matches(c, requirement)))
                .next();
            container.map(|c| {
                let code = terminated_code(c).unwrap_or_default();
                format!(
                    "Container {} for pod {name} failed with exit code {code} matching {} rule at index {index}",
                    c.name, rule.action
                )
            })
        } else {
            rule.on_pod_conditions.iter().flatten().find_map(|pattern| {
                let conditions = status.conditions.iter().flatten();
                conditions
                    .filter(|c| c.type_ == pattern.type_ && c.status == pattern.status)
                    .map(|c| {
                        format!(
                            "Pod {name} has condition {} matching {} rule at index {index}",
                            c.type_, rule.action
                        )
                    })
                    .next()
            })
        };
        let Some(message) = matched else { continue };
        return match rule.action.as_str() {
            "FailJob" => Verdict::FailJob(message),
            "FailIndex" => Verdict::FailIndex,
            "Ignore" => Verdict::Ignore,
            _ => Verdict::Count,
        };
    }
    Verdict::Count
}

fn terminated_code(container: &ContainerStatus) -> Option<i32> {
    container
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code)
}

/// A terminated container (of the named one, if the requirement names one) whose non-zero
/// exit code the operator accepts.
fn exit_code_matches(
    container: &ContainerStatus,
    requirement: &PodFailurePolicyOnExitCodesRequirement,
) -> bool {
    let Some(code) = terminated_code(container).filter(|c| *c != 0) else {
        return false;
    };
    if requirement
        .container_name
        .as_ref()
        .is_some_and(|n| *n != container.name)
    {
        return false;
    }
    let listed = requirement.values.contains(&code);
    match requirement.operator.as_str() {
        "In" => listed,
        "NotIn" => !listed,
        _ => false,
    }
}

/// When a pod finished: its containers' last finish, else its deletion, else `now`.
pub fn finished_at(pod: &Pod, now: Timestamp) -> Timestamp {
    let status = pod.status.as_ref();
    let containers = status
        .into_iter()
        .flat_map(|s| s.container_statuses.iter().flatten());
    let finished = containers
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    finished
        .or_else(|| pod.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now)
}

/// Upstream's back-off after `failures` failures in a row: 10 s doubling, at most 10 min.
pub fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    BACKOFF_INITIAL
        .saturating_mul(1 << (failures - 1).min(16))
        .min(BACKOFF_MAX)
}

/// How long until a replacement may be created, the last failure at `last` after
/// `failures` failures in a row.
pub fn remaining(failures: u32, last: Option<Timestamp>, now: Timestamp) -> Duration {
    let Some(last) = last else {
        return Duration::ZERO;
    };
    let due = last
        .checked_add(SignedDuration::try_from(backoff(failures)).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX);
    Duration::try_from(due.duration_since(now)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn failed_pod(code: i32, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "pi-0-x", "namespace": "default"},
            "status": {"phase": "Failed", "conditions": conditions, "containerStatuses": [
                {"name": "main", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": code, "finishedAt": "2025-01-01T00:00:05Z", "startedAt": "2025-01-01T00:00:00Z"}}}
            ]}
        }))
        .unwrap()
    }

    fn policy() -> PodFailurePolicy {
        serde_json::from_value(json!({"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"containerName": "main", "operator": "NotIn", "values": [1]}},
        ]}))
        .unwrap()
    }

    #[test]
    fn rules_match_in_order_with_upstream_messages() {
        assert_eq!(
            judge(&policy(), &failed_pod(42, json!([]))),
            Verdict::FailJob(
                "Container main for pod default/pi-0-x failed with exit code 42 matching FailJob rule at index 1".into()
            )
        );
        let disrupted = failed_pod(42, json!([{"type": "DisruptionTarget", "status": "True"}]));
        assert_eq!(judge(&policy(), &disrupted), Verdict::Ignore);
        assert_eq!(judge(&policy(), &failed_pod(1, json!([]))), Verdict::Count);
        assert_eq!(judge(&policy(), &failed_pod(7, json!([]))), Verdict::Count);
        let at = finished_at(&failed_pod(1, json!([])), Timestamp::now());
        assert_eq!(at.to_string(), "2025-01-01T00:00:05Z");
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_to_ten_minutes() {
        let delays: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 600, 600]);
        let now = Timestamp::now();
        let last = now - SignedDuration::from_secs(4);
        assert_eq!(remaining(1, Some(last), now), Duration::from_secs(6));
        assert_eq!(remaining(1, None, now), Duration::ZERO);
    }
}
