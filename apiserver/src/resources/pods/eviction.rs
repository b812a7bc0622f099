//! `pods/eviction` as upstream's eviction REST: a deletion that honours the pod's
//! PodDisruptionBudget. Pods that are finished, pending or already being deleted go at once;
//! otherwise the one budget selecting the pod must allow a disruption, which the eviction
//! takes (decrementing `status.disruptionsAllowed` and recording the pod in
//! `status.disruptedPods`, under optimistic concurrency) before the pod is marked with the
//! `DisruptionTarget` condition and deleted. A refusal is upstream's 429, which kubectl's
//! drain retries.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, Preconditions};
use machinery::selector::Selector;
use store::Store;

use crate::error::{ApiError, ApiResult, Target};
use crate::registry::stored;
use crate::registry::strategy::Deleter;

/// Budgets with more pods awaiting deletion than this refuse further evictions: the
/// disruption controller has fallen behind (upstream's `MaxDisruptedPodSize`).
const MAX_DISRUPTED_PODS: usize = 2000;
/// Upstream's `EvictionsRetry`: conflicting writes are retried 20 times, half a second apart.
const RETRIES: usize = 20;
const RETRY_DELAY: Duration = Duration::from_millis(500);
/// The cause type of a refusal by a budget (`policyv1.DisruptionBudgetCause`).
const DISRUPTION_BUDGET: &str = "DisruptionBudget";

/// Evicts pods of the store the pods resource serves from, reading and updating the
/// PodDisruptionBudgets kept in the same store.
pub struct Evictions {
    store: Arc<dyn Store>,
}

impl Evictions {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Evictions { store }
    }

    /// Evicts the pod `name` with the eviction's delete options, deleting through `deleter`.
    pub async fn evict(
        &self,
        namespace: &str,
        name: &str,
        options: DeleteOptions,
        deleter: &dyn Deleter,
    ) -> ApiResult<()> {
        let dry_run = options.dry_run.as_ref().is_some_and(|d| !d.is_empty());
        let version_given = resource_version_of(&options).is_some();
        // Pods whose disruption already happened (or cannot disrupt) need no budget; a
        // conflict with a change of the pod meanwhile is retried unless the client pinned
        // the version.
        let mut attempt = 0;
        let (pod, revision) = loop {
            let (pod, revision) = self.pod(namespace, name).await?;
            if !can_ignore_budget(&pod) {
                break (pod, revision);
            }
            let mut pinned = options.clone();
            if enforces_resource_version(&pod) && !version_given {
                pin_resource_version(&mut pinned, revision);
            }
            match self.mark_and_delete(namespace, name, pinned, deleter).await {
                Err(ApiError::Conflict { .. }) if !version_given && attempt < RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(RETRY_DELAY).await;
                }
                done => return done,
            }
        };

        let mut budgets = self.budgets_of(namespace, &pod).await?;
        if budgets.len() > 1 {
            return Err(ApiError::Unclassified(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
            ));
        }
        let Some((budget, budget_revision)) = budgets.pop() else {
            return self
                .mark_and_delete(namespace, name, options, deleter)
                .await;
        };
        let budget_name = budget.metadata.name.clone().unwrap_or_default();
        if !is_ready(&pod) && unhealthy_may_go(&budget) {
            // An unready pod does not count as healthy: deleting it takes nothing from the
            // budget, as long as it does not turn ready meanwhile.
            let mut pinned = options.clone();
            pin_resource_version(&mut pinned, revision);
            return match self.mark_and_delete(namespace, name, pinned, deleter).await {
                Err(ApiError::Conflict { .. }) if !version_given => {
                    Err(still_processing(&budget_name))
                }
                done => done,
            };
        }
        self.take_disruption(namespace, name, budget, budget_revision, dry_run)
            .await?;
        self.mark_and_delete(namespace, name, options, deleter)
            .await
    }

    /// Checks the budget allows a disruption and takes one, retrying conflicting writes on
    /// a fresh read (upstream's `checkAndDecrement` under `RetryOnConflict`).
    async fn take_disruption(
        &self,
        namespace: &str,
        pod: &str,
        mut budget: PodDisruptionBudget,
        mut revision: i64,
        dry_run: bool,
    ) -> ApiResult<()> {
        let name = budget.metadata.name.clone().unwrap_or_default();
        let key = budget_key(namespace, &name);
        for _ in 0..RETRIES {
            check_allows(&budget)?;
            let status = budget.status.get_or_insert_with(Default::default);
            status.disruptions_allowed -= 1;
            if status.disruptions_allowed == 0 {
                machinery::disruption::update_disruption_allowed_condition(
                    &mut budget,
                    &stored::now(),
                );
            }
            if dry_run {
                return Ok(());
            }
            // The controller must not count the pod as available while its deletion is
            // under way; it forgets the entry if the pod is still there two minutes later.
            budget
                .status
                .get_or_insert_with(Default::default)
                .disrupted_pods
                .get_or_insert_with(Default::default)
                .insert(pod.to_string(), stored::now());
            let raw = stored::encode(&budget)?;
            match self.store.update(key.as_bytes(), raw, revision).await {
                Ok(_) => return Ok(()),
                Err(store::Error::Conflict { .. }) => {
                    let kv = self
                        .store
                        .get(key.as_bytes())
                        .await?
                        .ok_or_else(|| ApiError::NotFound(budget_target(&name)))?;
                    budget = stored::decode(&kv.value, kv.mod_revision)?;
                    revision = kv.mod_revision;
                    tokio::time::sleep(RETRY_DELAY).await;
                }
                Err(store::Error::NotFound { .. }) => {
                    return Err(ApiError::NotFound(budget_target(&name)))
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(ApiError::Timeout(format!(
            "couldn't update PodDisruptionBudget {name:?} due to conflicts"
        )))
    }

    /// Upstream's `addConditionAndDeletePod`: unless a dry run, records on the latest pod
    /// (checked against the preconditions) that the eviction API disrupts it, then deletes
    /// it with the preconditions moved to that write.
    async fn mark_and_delete(
        &self,
        namespace: &str,
        name: &str,
        mut options: DeleteOptions,
        deleter: &dyn Deleter,
    ) -> ApiResult<()> {
        if options.dry_run.as_ref().is_none_or(|d| d.is_empty()) {
            let key = pod_key(namespace, name);
            let mut attempt = 0;
            let written = loop {
                let (mut pod, revision) = self.pod(namespace, name).await?;
                check_preconditions(&options, &pod, name)?;
                if !mark_disruption_target(&mut pod) {
                    break revision;
                }
                match self
                    .store
                    .update(key.as_bytes(), stored::encode(&pod)?, revision)
                    .await
                {
                    Ok(written) => break written,
                    Err(store::Error::Conflict { .. }) if attempt < RETRIES => attempt += 1,
                    Err(store::Error::NotFound { .. }) | Err(store::Error::Conflict { .. }) => {
                        return Err(ApiError::Conflict {
                            target: pod_precondition_target(name),
                            detail: "the object has been modified; please apply your changes to the latest version and try again".into(),
                        })
                    }
                    Err(other) => return Err(other.into()),
                }
            };
            if resource_version_of(&options).is_some() {
                pin_resource_version(&mut options, written);
            }
        }
        deleter.delete(options).await
    }

    async fn pod(&self, namespace: &str, name: &str) -> ApiResult<(Pod, i64)> {
        let kv = self
            .store
            .get(pod_key(namespace, name).as_bytes())
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(Target {
                    group: String::new(),
                    resource: "pods".into(),
                    kind: "Pod".into(),
                    name: name.into(),
                })
            })?;
        Ok((stored::decode(&kv.value, kv.mod_revision)?, kv.mod_revision))
    }

    /// The budgets of the pod's namespace whose selector picks it (an invalid or absent
    /// selector picks nothing; an empty one picks every pod).
    async fn budgets_of(
        &self,
        namespace: &str,
        pod: &Pod,
    ) -> ApiResult<Vec<(PodDisruptionBudget, i64)>> {
        let prefix = format!("/poddisruptionbudgets/{namespace}/");
        let listed = self
            .store
            .list(prefix.as_bytes(), store::ListOptions::default())
            .await?;
        let mut budgets = Vec::new();
        for kv in listed.kvs {
            let budget: PodDisruptionBudget = stored::decode(&kv.value, kv.mod_revision)?;
            let selector = Selector::new(budget.spec.as_ref().and_then(|s| s.selector.as_ref()));
            if selector.matches(pod.metadata.labels.as_ref()) {
                budgets.push((budget, kv.mod_revision));
            }
        }
        Ok(budgets)
    }
}

/// Upstream's `canIgnorePDB`: a pod that finished, never started or is already going.
fn can_ignore_budget(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed" | "Pending")
        || pod.metadata.deletion_timestamp.is_some()
}

/// Upstream's `shouldEnforceResourceVersion`: only a pod that may still turn ready (and so
/// count for a budget) is deleted pinned to the version the decision was made on.
fn enforces_resource_version(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether an unready pod may be evicted without taking from the budget: always under
/// `unhealthyPodEvictionPolicy: AlwaysAllow`, otherwise (IfHealthyBudget, the default)
/// while the budget has the healthy pods it needs.
fn unhealthy_may_go(budget: &PodDisruptionBudget) -> bool {
    let policy = budget
        .spec
        .as_ref()
        .and_then(|s| s.unhealthy_pod_eviction_policy.as_deref());
    let status = budget.status.clone().unwrap_or_default();
    policy == Some("AlwaysAllow")
        || (status.current_healthy >= status.desired_healthy && status.desired_healthy > 0)
}

/// Refuses a disruption the budget does not allow now, as upstream's `checkAndDecrement`.
fn check_allows(budget: &PodDisruptionBudget) -> ApiResult<()> {
    let name = budget.metadata.name.clone().unwrap_or_default();
    let status = budget.status.clone().unwrap_or_default();
    if status.observed_generation.unwrap_or(0) < budget.metadata.generation.unwrap_or(0) {
        return Err(still_processing(&name));
    }
    let forbidden = |reason: &str| ApiError::Forbidden {
        target: Target {
            group: "policy".into(),
            resource: "poddisruptionbudget".into(),
            kind: "PodDisruptionBudget".into(),
            name: name.clone(),
        },
        reason: reason.into(),
    };
    if status.disruptions_allowed < 0 {
        return Err(forbidden("pdb disruptions allowed is negative"));
    }
    if status.disrupted_pods.as_ref().map_or(0, |p| p.len()) > MAX_DISRUPTED_PODS {
        return Err(forbidden(
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if status.disruptions_allowed == 0 {
        return Err(too_many_requests(
            0,
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                status.desired_healthy, status.current_healthy
            ),
        ));
    }
    Ok(())
}

/// The 429 of a budget the controller has not caught up with yet.
fn still_processing(name: &str) -> ApiError {
    too_many_requests(
        10,
        format!("The disruption budget {name} is still being processed by the server."),
    )
}

fn too_many_requests(retry_after: u32, cause: String) -> ApiError {
    ApiError::TooManyRequests {
        message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
        retry_after,
        causes: vec![(DISRUPTION_BUDGET, cause)],
    }
}

/// Upstream's `DisruptionTarget` condition of an evicted pod; false if it is already there.
fn mark_disruption_target(pod: &mut Pod) -> bool {
    let conditions = pod
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    let reason = Some("EvictionByEvictionAPI".to_string());
    let message = Some("Eviction API: evicting".to_string());
    match conditions
        .iter_mut()
        .find(|c| c.type_ == "DisruptionTarget")
    {
        Some(existing)
            if existing.status == "True"
                && existing.reason == reason
                && existing.message == message =>
        {
            false
        }
        Some(existing) => {
            if existing.status != "True" {
                existing.status = "True".into();
                existing.last_transition_time = Some(stored::now());
            }
            existing.reason = reason;
            existing.message = message;
            true
        }
        None => {
            conditions.push(PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                reason,
                message,
                last_transition_time: Some(stored::now()),
                ..Default::default()
            });
            true
        }
    }
}

/// The delete preconditions checked against the latest pod, with upstream's messages (which
/// name the kind `Pod` here).
fn check_preconditions(options: &DeleteOptions, pod: &Pod, name: &str) -> ApiResult<()> {
    let Some(preconditions) = &options.preconditions else {
        return Ok(());
    };
    let conflict = |detail: String| ApiError::Conflict {
        target: pod_precondition_target(name),
        detail,
    };
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    if let Some(wanted) = preconditions
        .uid
        .as_deref()
        .filter(|u| !u.is_empty() && *u != uid)
    {
        return Err(conflict(format!(
            "the UID in the precondition ({wanted}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
        )));
    }
    let version = pod.metadata.resource_version.as_deref().unwrap_or_default();
    if let Some(wanted) = preconditions
        .resource_version
        .as_deref()
        .filter(|v| !v.is_empty() && *v != version)
    {
        return Err(conflict(format!(
            "the ResourceVersion in the precondition ({wanted}) does not match the ResourceVersion in record ({version}). The object might have been modified"
        )));
    }
    Ok(())
}

fn resource_version_of(options: &DeleteOptions) -> Option<&str> {
    options
        .preconditions
        .as_ref()
        .and_then(|p| p.resource_version.as_deref())
}

fn pin_resource_version(options: &mut DeleteOptions, revision: i64) {
    options
        .preconditions
        .get_or_insert_with(Preconditions::default)
        .resource_version = Some(revision.to_string());
}

fn pod_key(namespace: &str, name: &str) -> String {
    format!("/pods/{namespace}/{name}")
}

fn budget_key(namespace: &str, name: &str) -> String {
    format!("/poddisruptionbudgets/{namespace}/{name}")
}

fn budget_target(name: &str) -> Target {
    Target {
        group: "policy".into(),
        resource: "poddisruptionbudgets".into(),
        kind: "PodDisruptionBudget".into(),
        name: name.into(),
    }
}

fn pod_precondition_target(name: &str) -> Target {
    Target {
        group: String::new(),
        resource: "Pod".into(),
        kind: "Pod".into(),
        name: name.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn budget(status: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 1},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_budget_without_disruptions_refuses_with_upstreams_429() {
        let exhausted = budget(json!({"observedGeneration": 1, "disruptionsAllowed": 0,
            "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2}));
        let status = check_allows(&exhausted).unwrap_err().status();
        assert_eq!(status["code"], 429);
        assert_eq!(status["reason"], "TooManyRequests");
        assert_eq!(
            status["message"],
            "Cannot evict pod as it would violate the pod's disruption budget."
        );
        assert_eq!(
            status["details"]["causes"],
            json!([{"reason": "DisruptionBudget", "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}])
        );
        assert!(status["details"].get("retryAfterSeconds").is_none());

        let stale = budget(json!({"disruptionsAllowed": 1, "currentHealthy": 3,
            "desiredHealthy": 2, "expectedPods": 3}));
        let status = check_allows(&stale).unwrap_err().status();
        assert_eq!(status["details"]["retryAfterSeconds"], 10);
        assert_eq!(
            status["details"]["causes"][0]["message"],
            "The disruption budget web is still being processed by the server."
        );

        let allows = budget(json!({"observedGeneration": 1, "disruptionsAllowed": 1,
            "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3}));
        assert!(check_allows(&allows).is_ok());
    }

    #[test]
    fn finished_and_pending_pods_ignore_budgets() {
        let pod = |phase: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p"}, "status": {"phase": phase}}))
                .unwrap()
        };
        assert!(can_ignore_budget(&pod("Succeeded")));
        assert!(can_ignore_budget(&pod("Pending")));
        assert!(!can_ignore_budget(&pod("Running")));
        assert!(enforces_resource_version(&pod("Pending")));
        assert!(!enforces_resource_version(&pod("Failed")));
        let mut running = pod("Running");
        assert!(mark_disruption_target(&mut running));
        assert!(!mark_disruption_target(&mut running));
        let condition = &running.status.unwrap().conditions.unwrap()[0];
        assert_eq!(condition.reason.as_deref(), Some("EvictionByEvictionAPI"));
    }
}
