//! One sync of a StatefulSet, as upstream's `stateful_set_control.go`: claim its pods and
//! revisions, settle the current and update revisions, bring every ordinal in range to a
//! live pod (with its claims) and remove the ones out of range, roll pods to the update
//! revision from the highest ordinal down to the partition, then write the status and prune
//! the revision history.
//!
//! `OrderedReady` stops at the first pod that is not yet Running, Ready and available, so
//! pods appear one at a time in ordinal order and go away in reverse; `Parallel` acts on all
//! of them at once, in slow-start batches.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::identity::{self, revision_of};
use super::Context;
use crate::controller_utils::{claim, phase, selector, slow_start_batch};
use crate::events::EventType;
use crate::history;
use crate::runtime::{api_message, is_status, Error, Result};

/// Attempts at writing the status over conflicting writers.
const STATUS_RETRIES: usize = 5;

/// A slot of the ordinal range: a pod that exists, or the one to create.
enum Replica {
    Live(Arc<Pod>),
    New(Box<Pod>),
}

impl Replica {
    fn pod(&self) -> &Pod {
        match self {
            Replica::Live(pod) => pod,
            Replica::New(pod) => pod,
        }
    }
}

pub(super) async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = set.namespace().unwrap_or_default();
    let spec = identity::spec(&set);
    let selector = match selector(&spec.selector) {
        Ok(selector) => selector,
        Err(error) => {
            tracing::warn!(statefulset = %set.name_any(), %error, "not syncing");
            return Ok(Action::await_change());
        }
    };
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let revisions_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &namespace);

    // Only pods named after the set are its members (upstream's `isMemberOf`).
    let candidates: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|pod| pod.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|pod| identity::parent_and_ordinal(pod).is_some_and(|(p, _)| p == set.name_any()))
        .collect();
    let (pods, mut errors) = claim(&*set, &sets, &pods_api, &selector, candidates).await;
    if !errors.is_empty() {
        return Err(errors.swap_remove(0));
    }
    let candidates = history::candidates(&ctx.revisions, &namespace, &selector);
    let (mut revisions, mut errors) =
        claim(&*set, &sets, &revisions_api, &selector, candidates).await;
    if !errors.is_empty() {
        return Err(errors.swap_remove(0));
    }
    history::sort(&mut revisions);

    let old_status = set.status.clone().unwrap_or_default();
    let mut collision_count = old_status.collision_count.unwrap_or(0);
    let update = update_revision(&set, &revisions_api, &revisions, &mut collision_count).await?;
    let current = revisions
        .iter()
        .find(|r| Some(r.name_any()) == old_status.current_revision)
        .cloned()
        .unwrap_or_else(|| update.clone());

    let sync = Sync {
        ctx: &ctx,
        set: &set,
        pods: pods_api,
        claims: Api::namespaced(ctx.client.clone(), &namespace),
        current_template: identity::revision_template(&current).unwrap_or(spec.template.clone()),
        update_template: identity::revision_template(&update).unwrap_or(spec.template.clone()),
        current: &current,
        update: &update,
        now: Timestamp::now(),
    };
    let (mut status, outcome) = sync.run(pods.clone()).await;
    status.collision_count = Some(collision_count);
    complete_rolling_update(&set, &mut status);
    write_status(&sets, &set, status.clone()).await?;

    let mut live: HashSet<String> = pods.iter().map(|p| revision_of(p).to_string()).collect();
    live.insert(current.name_any());
    live.insert(update.name_any());
    let limit = spec.revision_history_limit.unwrap_or(10);
    history::truncate(&revisions_api, &revisions, &live, limit).await?;
    outcome?;

    let min_ready = identity::min_ready_seconds(&set);
    if min_ready > 0 && status.ready_replicas != status.available_replicas {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::await_change())
}

/// The revision of the set's template now: the newest if it already holds it, an older one
/// holding it renumbered as the newest (a rollback), or a new one (upstream's
/// `getStatefulSetRevisions`).
async fn update_revision(
    set: &StatefulSet,
    api: &Api<ControllerRevision>,
    revisions: &[Arc<ControllerRevision>],
    collision_count: &mut i32,
) -> Result<Arc<ControllerRevision>> {
    let template_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let mut wanted = history::new_revision(
        set,
        template_labels,
        identity::revision_data(set),
        history::next_revision(revisions),
        Some(*collision_count),
    );
    if !set.annotations().is_empty() {
        wanted.annotations_mut().extend(set.annotations().clone());
    }
    let equal = history::find_equal(revisions, &wanted);
    match (revisions.last(), equal.last()) {
        (Some(latest), Some(same)) if history::equal(latest, same) => Ok(latest.clone()),
        (_, Some(same)) => Ok(Arc::new(
            history::renumber(api, same, wanted.revision).await?,
        )),
        (_, None) => Ok(Arc::new(
            history::create(api, &set.name_any(), &wanted, collision_count).await?,
        )),
    }
}

struct Sync<'a> {
    ctx: &'a Context,
    set: &'a StatefulSet,
    pods: Api<Pod>,
    claims: Api<PersistentVolumeClaim>,
    current: &'a ControllerRevision,
    update: &'a ControllerRevision,
    current_template: PodTemplateSpec,
    update_template: PodTemplateSpec,
    now: Timestamp,
}

impl Sync<'_> {
    /// Upstream's `updateStatefulSet`: the status reached and the error that stopped the
    /// sync, if any (the status is written either way).
    async fn run(&self, pods: Vec<Arc<Pod>>) -> (StatefulSetStatus, Result<()>) {
        let start = identity::start_ordinal(self.set);
        let count = identity::replicas(self.set).max(0) as usize;
        let mut slots: Vec<Option<Arc<Pod>>> = vec![None; count];
        let mut condemned: Vec<Arc<Pod>> = Vec::new();
        for pod in pods {
            let Some(ordinal) = identity::ordinal(&pod) else {
                continue;
            };
            if identity::in_ordinal_range(self.set, ordinal) {
                slots[(ordinal - start) as usize] = Some(pod);
            } else {
                condemned.push(pod);
            }
        }
        let replicas: Vec<Replica> = slots
            .into_iter()
            .enumerate()
            .map(|(i, slot)| match slot {
                Some(pod) => Replica::Live(pod),
                None => Replica::New(Box::new(self.versioned_pod(start + i as i32))),
            })
            .collect();
        condemned.sort_by_key(|pod| std::cmp::Reverse(identity::ordinal(pod)));
        let first_unhealthy = replicas
            .iter()
            .map(Replica::pod)
            .chain(condemned.iter().map(|p| &**p))
            .find(|pod| !identity::is_healthy(pod))
            .map(ResourceExt::name_any);

        let outcome = self
            .manage(&replicas, &condemned, first_unhealthy.as_deref())
            .await;
        let status = self.status(&replicas, &condemned);
        match outcome {
            Ok(Some(Rollout::Deleted)) => {
                let mut status = status;
                status.current_replicas = nonzero(status.current_replicas.unwrap_or(0) - 1);
                (status, Ok(()))
            }
            Ok(_) => (status, Ok(())),
            Err(error) => (status, Err(error)),
        }
    }

    /// Creates, repairs, deletes and rolls pods; `Ok(None)` when the sync stopped early to
    /// wait, `Ok(Some(_))` when it reached the rolling update.
    async fn manage(
        &self,
        replicas: &[Replica],
        condemned: &[Arc<Pod>],
        first_unhealthy: Option<&str>,
    ) -> Result<Option<Rollout>> {
        if self.set.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let monotonic = !identity::allows_burst(self.set);
        if self
            .for_all(replicas.len(), monotonic, |i| {
                self.process_replica(&replicas[i], monotonic)
            })
            .await?
        {
            return Ok(None);
        }
        if self
            .for_all(condemned.len(), monotonic, |i| {
                self.fix_claims(&condemned[i])
            })
            .await?
        {
            return Ok(None);
        }
        if self
            .for_all(condemned.len(), monotonic, |i| {
                self.process_condemned(&condemned[i], monotonic, first_unhealthy)
            })
            .await?
        {
            return Ok(None);
        }
        let strategy = identity::spec(self.set).update_strategy.unwrap_or_default();
        if strategy.type_.as_deref() == Some("OnDelete") {
            return Ok(Some(Rollout::Waiting));
        }
        let partition = strategy
            .rolling_update
            .and_then(|r| r.partition)
            .unwrap_or(0)
            .max(0) as usize;
        let update = self.update.name_any();
        for replica in replicas.iter().skip(partition).rev() {
            let pod = replica.pod();
            if revision_of(pod) != update && !identity::is_terminating(pod) {
                tracing::debug!(pod = %pod.name_any(), "terminating for update");
                self.delete_pod(pod).await?;
                return Ok(Some(Rollout::Deleted));
            }
            if !identity::is_healthy(pod) {
                return Ok(Some(Rollout::Waiting));
            }
        }
        Ok(Some(Rollout::Waiting))
    }

    /// Upstream's `runForAll`: in order, stopping at the first call asking to stop
    /// (`OrderedReady`), or all at once in slow-start batches, stopping at an error
    /// (`Parallel`). Whether the sync should stop here.
    async fn for_all<'s, F, Fut>(&'s self, count: usize, monotonic: bool, call: F) -> Result<bool>
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = Result<bool>> + 's,
    {
        if monotonic {
            for i in 0..count {
                if call(i).await? {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        let next = AtomicUsize::new(0);
        let (_, error) = slow_start_batch(count, || {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let run = call(i);
            async move { run.await.map(|_| ()) }
        })
        .await;
        match error {
            Some(error) => Err(error),
            None => Ok(false),
        }
    }

    /// Upstream's `processReplica`: replaces a failed pod, creates a missing one, waits (in
    /// order) for one not yet Running, Ready and available, and repairs an existing pod's
    /// identity and claims.
    async fn process_replica(&self, replica: &Replica, monotonic: bool) -> Result<bool> {
        let pod = match replica {
            Replica::New(pod) => {
                if self.claims_are_stale(pod) {
                    return Ok(true);
                }
                self.create_pod(pod).await?;
                return Ok(monotonic);
            }
            Replica::Live(pod) => pod,
        };
        // A failed or finished pod (evicted, or stopped with its node) is deleted; the next
        // sync, once it is gone, makes it again.
        if matches!(phase(pod), "Failed" | "Succeeded") {
            if !identity::is_terminating(pod) {
                self.delete_pod(pod).await?;
            }
            return Ok(true);
        }
        if phase(pod) == "Pending" {
            self.create_claims(pod).await?;
        }
        if monotonic
            && (identity::is_terminating(pod)
                || !identity::is_running_and_available(
                    pod,
                    identity::min_ready_seconds(self.set),
                    self.now,
                ))
        {
            return Ok(true);
        }
        if !identity::identity_matches(self.set, pod) {
            self.repair_identity(pod).await?;
        }
        self.fix_claims(pod).await?;
        Ok(false)
    }

    /// Upstream's `processCondemned`: deletes a pod beyond the range, in order only once
    /// those before it are gone and it is healthy or the first unhealthy one.
    async fn process_condemned(
        &self,
        pod: &Pod,
        monotonic: bool,
        first_unhealthy: Option<&str>,
    ) -> Result<bool> {
        if identity::is_terminating(pod) {
            return Ok(monotonic);
        }
        let first = first_unhealthy == Some(pod.name_any().as_str());
        let min_ready = identity::min_ready_seconds(self.set);
        if monotonic
            && !first
            && (!identity::is_running_and_ready(pod)
                || !identity::is_running_and_available(pod, min_ready, self.now))
        {
            return Ok(true);
        }
        tracing::debug!(pod = %pod.name_any(), "terminating for scale down");
        self.delete_pod(pod).await?;
        Ok(true)
    }

    /// The pod of `ordinal` at the revision it should have: below the partition the current
    /// one, else the update one (upstream's `newVersionedStatefulSetPod`).
    fn versioned_pod(&self, ordinal: i32) -> Pod {
        let spec = identity::spec(self.set);
        let strategy = spec.update_strategy.unwrap_or_default();
        let start = identity::start_ordinal(self.set);
        let current_replicas = self
            .set
            .status
            .as_ref()
            .and_then(|s| s.current_replicas)
            .unwrap_or(0);
        let keep_current = match &strategy.rolling_update {
            None => {
                strategy.type_.as_deref() == Some("RollingUpdate")
                    && ordinal < start + current_replicas
            }
            Some(rolling) => ordinal < start + rolling.partition.unwrap_or(0),
        };
        if keep_current {
            identity::new_pod(
                self.set,
                &self.current_template,
                &self.current.name_any(),
                ordinal,
            )
        } else {
            identity::new_pod(
                self.set,
                &self.update_template,
                &self.update.name_any(),
                ordinal,
            )
        }
    }

    fn claims_are_stale(&self, pod: &Pod) -> bool {
        let ordinal = identity::ordinal(pod).unwrap_or_default();
        identity::claims(self.set, ordinal)
            .iter()
            .filter_map(|(_, claim)| self.cached_claim(&claim.name_any()))
            .any(|claim| identity::claim_is_stale(&claim, pod))
    }

    fn cached_claim(&self, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        let namespace = self.set.namespace().unwrap_or_default();
        self.ctx
            .claims
            .get(&ObjectRef::new(name).within(&namespace))
    }

    /// Creates the pod's claims and then the pod (upstream's `CreateStatefulPod`).
    async fn create_pod(&self, pod: &Pod) -> Result<()> {
        if let Err(error) = self.create_claims(pod).await {
            self.pod_event("create", pod, Some(&error));
            return Err(error);
        }
        match self.pods.create(&PostParams::default(), pod).await {
            Ok(created) => {
                let fixed = self.fix_claims(&created).await;
                if let Err(error) = &fixed {
                    self.pod_event("update", &created, Some(error));
                }
                self.pod_event("create", pod, None);
                fixed.map(|_| ())
            }
            // Already made, by a sync that ran on an older cache: not worth an event.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                Err(kube::Error::Api(status).into())
            }
            Err(error) => {
                let error = Error::from(error);
                self.pod_event("create", pod, Some(&error));
                Err(error)
            }
        }
    }

    /// Creates the claims of `pod` that do not exist yet; a claim still being deleted holds
    /// the pod back.
    async fn create_claims(&self, pod: &Pod) -> Result<()> {
        let ordinal = identity::ordinal(pod).unwrap_or_default();
        for (_, mut claim) in identity::claims(self.set, ordinal) {
            let name = claim.name_any();
            match self.cached_claim(&name) {
                Some(existing) if existing.metadata.deletion_timestamp.is_some() => {
                    return Err(Error::ClaimDeleting(name));
                }
                Some(_) => continue,
                None => {}
            }
            // Owned by the set from the start when the set's deletion should take it.
            if let Some(refs) = identity::retention_owner_refs(self.set, pod, &claim) {
                claim.metadata.owner_references = Some(refs);
            }
            match self.claims.create(&PostParams::default(), &claim).await {
                Ok(_) => self.ctx.recorder.event(
                    self.set,
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!(
                        "create Claim {name} Pod {} in StatefulSet {} success",
                        pod.name_any(),
                        self.set.name_any()
                    ),
                ),
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(error) => {
                    self.ctx.recorder.event(
                        self.set,
                        EventType::Warning,
                        "FailedCreate",
                        format!(
                            "create Claim {name} for Pod {} in StatefulSet {} failed error: {}",
                            pod.name_any(),
                            self.set.name_any(),
                            api_message(&error)
                        ),
                    );
                    return Err(error.into());
                }
            }
        }
        Ok(())
    }

    /// Gives the pod's claims the owners the retention policy wants (upstream's
    /// `UpdatePodClaimForRetentionPolicy`); never asks the sync to stop.
    async fn fix_claims(&self, pod: &Pod) -> Result<bool> {
        let ordinal = identity::ordinal(pod).unwrap_or_default();
        for (_, wanted) in identity::claims(self.set, ordinal) {
            let Some(claim) = self.cached_claim(&wanted.name_any()) else {
                continue;
            };
            let Some(refs) = identity::retention_owner_refs(self.set, pod, &claim) else {
                continue;
            };
            let mut claim = (*claim).clone();
            claim.metadata.owner_references = Some(refs);
            let updated = self
                .claims
                .replace(&claim.name_any(), &PostParams::default(), &claim)
                .await;
            if !is_status(&updated, 404) {
                updated?;
            }
        }
        Ok(false)
    }

    /// Puts back the name and index labels of an adopted or edited pod.
    async fn repair_identity(&self, pod: &Pod) -> Result<()> {
        let Some(labels) = identity::identity_labels(pod) else {
            return Ok(());
        };
        let patch = json!({"metadata": {"labels": labels}});
        let result = self
            .pods
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await;
        match result {
            Ok(_) => {
                self.pod_event("update", pod, None);
                Ok(())
            }
            Err(error) => {
                let error = Error::from(error);
                self.pod_event("update", pod, Some(&error));
                Err(error)
            }
        }
    }

    async fn delete_pod(&self, pod: &Pod) -> Result<()> {
        let result = self
            .pods
            .delete(&pod.name_any(), &DeleteParams::default())
            .await;
        if is_status(&result, 404) {
            return Ok(());
        }
        match result {
            Ok(_) => {
                self.pod_event("delete", pod, None);
                Ok(())
            }
            Err(error) => {
                let error = Error::from(error);
                self.pod_event("delete", pod, Some(&error));
                Err(error)
            }
        }
    }

    /// Upstream's `recordPodEvent`: `SuccessfulCreate` "create Pod web-0 in StatefulSet web
    /// successful", `FailedDelete` "delete Pod web-1 in StatefulSet web failed error: ...".
    fn pod_event(&self, verb: &str, pod: &Pod, error: Option<&Error>) {
        let mut title = verb.to_string();
        if let Some(first) = title.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        let subject = format!(
            "{verb} Pod {} in StatefulSet {}",
            pod.name_any(),
            self.set.name_any()
        );
        let (kind, reason, message) = match error {
            None => (
                EventType::Normal,
                format!("Successful{title}"),
                format!("{subject} successful"),
            ),
            Some(error) => (
                EventType::Warning,
                format!("Failed{title}"),
                format!("{subject} failed error: {error}"),
            ),
        };
        self.ctx.recorder.event(self.set, kind, &reason, message);
    }

    /// Upstream's `computeReplicaStatus` over the pods that exist.
    fn status(&self, replicas: &[Replica], condemned: &[Arc<Pod>]) -> StatefulSetStatus {
        let min_ready = identity::min_ready_seconds(self.set);
        let (current, update) = (self.current.name_any(), self.update.name_any());
        let (mut count, mut ready, mut available, mut at_current, mut updated) = (0, 0, 0, 0, 0);
        let live = replicas
            .iter()
            .filter_map(|r| match r {
                Replica::Live(pod) => Some(&**pod),
                Replica::New(_) => None,
            })
            .chain(condemned.iter().map(|p| &**p));
        for pod in live.filter(|p| identity::is_created(p)) {
            count += 1;
            if identity::is_running_and_ready(pod) {
                ready += 1;
                if identity::is_running_and_available(pod, min_ready, self.now) {
                    available += 1;
                }
            }
            if !identity::is_terminating(pod) {
                let revision = revision_of(pod);
                at_current += i32::from(revision == current);
                updated += i32::from(revision == update);
            }
        }
        let old = self.set.status.clone().unwrap_or_default();
        StatefulSetStatus {
            observed_generation: self.set.metadata.generation,
            replicas: count,
            ready_replicas: nonzero(ready),
            available_replicas: Some(available),
            current_replicas: nonzero(at_current),
            updated_replicas: nonzero(updated),
            current_revision: Some(current),
            update_revision: Some(update),
            collision_count: old.collision_count,
            conditions: old.conditions,
        }
    }
}

/// How the rolling update ended its sync.
enum Rollout {
    /// A pod at an old revision was deleted, to come back at the update revision.
    Deleted,
    /// Nothing to roll, or waiting for a pod to become healthy.
    Waiting,
}

/// Upstream leaves zero counts out of the status (`omitempty`).
fn nonzero(count: i32) -> Option<i32> {
    (count > 0).then_some(count)
}

/// A finished rolling update makes the update revision current (upstream's
/// `completeRollingUpdate`).
fn complete_rolling_update(set: &StatefulSet, status: &mut StatefulSetStatus) {
    let rolling = identity::spec(set)
        .update_strategy
        .and_then(|s| s.type_)
        .as_deref()
        == Some("RollingUpdate");
    let updated = status.updated_replicas.unwrap_or(0);
    if rolling
        && updated == status.replicas
        && status.ready_replicas.unwrap_or(0) == status.replicas
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
}

/// Writes `status` unless it is already the set's, retrying on conflicts with a fresh copy.
async fn write_status(
    api: &Api<StatefulSet>,
    set: &StatefulSet,
    status: StatefulSetStatus,
) -> Result<()> {
    if set.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let mut current = set.clone();
    for attempt in 1..=STATUS_RETRIES {
        current.status = Some(status.clone());
        let result = api
            .replace_status(&current.name_any(), &PostParams::default(), &current)
            .await;
        match result {
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < STATUS_RETRIES => {
                current = api.get(&set.name_any()).await?;
            }
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            other => {
                other?;
                return Ok(());
            }
        }
    }
    Ok(())
}
