//! The Job controller (upstream `pkg/controller/job`): runs a Job's pods to completion.
//! It keeps up to `parallelism` pods active until `completions` succeed (one per index for
//! Indexed jobs), replaces failed pods after upstream's exponential back-off, and decides
//! the outcome: `backoffLimit`, `backoffLimitPerIndex`/`maxFailedIndexes`, the pod failure
//! policy, `activeDeadlineSeconds` and the success policy. A decided outcome is recorded
//! first (`FailureTarget`, `SuccessCriteriaMet`), the remaining pods are removed, and the
//! terminal condition (`Failed`, `Complete`) follows once none is left. `suspend` removes
//! the active pods and resuming restarts the clock.
//!
//! Every pod holds the `batch.kubernetes.io/job-tracking` finalizer until its end is
//! counted: its UID goes into `status.uncountedTerminatedPods` first, then the finalizer
//! is removed, then the UID moves into the counters, so no end is lost or counted twice
//! whatever fails in between. Expectations (shared with the ReplicaSet controller) keep a
//! lagging watch from making it create or delete twice.

pub(super) mod conditions;
mod failure;
mod pods;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use machinery::indexes;
use serde_json::json;

use self::conditions::{ensure, finished, Outcome};
use self::failure::Verdict;
use self::pods::{index_failures, index_of, tracked, TRACKING_FINALIZER};
use super::ControllerContext;
use crate::controller_utils::{
    claim, controller_of, is_pod_ready, is_pod_terminal, key_of, phase, selector, slow_start_batch,
    Expectations,
};
use crate::events::{EventType, Recorder};
use crate::informers::Change;
use crate::runtime::{self, api_message, is_status, Error, Queue, Result};

/// The controller's name (`--controllers`, events' source, its service account).
pub const NAME: &str = "job-controller";

/// The `spec.managedBy` value that means this controller (as does none).
const MANAGED_BY_THIS: &str = "kubernetes.io/job-controller";

/// At most this many pods are created by one sync (upstream's `MaxPodCreateDeletePerSync`).
const MAX_CREATE_DELETE: usize = 500;

struct Context {
    client: Client,
    pods: Store<Pod>,
    jobs: Store<Job>,
    expectations: Expectations,
    /// Pods (by UID) whose finalizer removal was sent but not yet seen by the informer:
    /// they must not be counted again meanwhile.
    removals: Mutex<HashSet<String>>,
    /// Failures in a row of each job's pods (by job key), for the replacement back-off.
    backoffs: Mutex<HashMap<String, Backoff>>,
    recorder: Recorder,
    queue: Queue<Job>,
}

/// Upstream's back-off record: failures since the last success and when the last was.
#[derive(Debug, Clone, Copy, Default)]
struct Backoff {
    failures: u32,
    last_failure: Option<Timestamp>,
}

/// Wires the controller to the shared informers and starts it.
pub fn start(ctx: &ControllerContext) {
    let pods = ctx.informers.get::<Pod>();
    let jobs = ctx.informers.get::<Job>();
    let (queue, triggers) = Queue::new(NAME);
    let context = Arc::new(Context {
        client: ctx.client_for(NAME),
        pods: pods.store(),
        jobs: jobs.store(),
        expectations: Expectations::default(),
        removals: Mutex::default(),
        backoffs: Mutex::default(),
        recorder: ctx.events.recorder(NAME),
        queue: queue.clone(),
    });
    tokio::spawn(watch_jobs(context.clone(), jobs.subscribe()));
    tokio::spawn(watch_pods(context.clone(), pods.subscribe()));
    let controller = runtime::Controller {
        queue,
        triggers,
        store: context.jobs.clone(),
        caches: vec![jobs.synced(), pods.synced()],
        workers: ctx.options.concurrent_job_syncs,
    };
    tokio::spawn(controller.run(context, reconcile));
}

async fn watch_jobs(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<Job>>) {
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied { new, .. } => ctx.queue.add_object(&new),
            Change::Deleted(gone) => {
                let key = key_of(&*gone);
                ctx.expectations.forget(&key);
                ctx.backoffs.lock().expect("backoffs").remove(&key);
            }
        }
    }
}

async fn watch_pods(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<Pod>>) {
    while let Some(change) = changes.next().await {
        let (pod, created) = match change {
            Change::Applied { old, new } => {
                if old
                    .as_ref()
                    .is_some_and(|o| o.resource_version() == new.resource_version())
                {
                    continue;
                }
                (new, old.is_none())
            }
            Change::Deleted(gone) => {
                ctx.forget_removal(&gone);
                if let Some(job) = ctx.job_of(&gone) {
                    ctx.expectations
                        .deletion_observed(&key_of(&*job), &key_of(&*gone));
                    ctx.queue.add_object(&job);
                }
                continue;
            }
        };
        if !tracked(&pod) {
            ctx.forget_removal(&pod);
        }
        let Some(reference) = controller_of(&pod.metadata).filter(|r| r.kind == "Job") else {
            continue;
        };
        let Some(job) = ctx.job_of(&pod) else {
            if tracked(&pod) {
                tokio::spawn(release_orphan(ctx.clone(), pod.clone(), reference.clone()));
            }
            continue;
        };
        let key = key_of(&*job);
        if pod.metadata.deletion_timestamp.is_some() {
            ctx.expectations.deletion_observed(&key, &key_of(&*pod));
        } else if created {
            ctx.expectations.creation_observed(&key);
        }
        ctx.queue.add_object(&job);
    }
}

impl Context {
    /// The Job that controls `pod`, if it is in the cache as that very object.
    fn job_of(&self, pod: &Pod) -> Option<Arc<Job>> {
        let reference = controller_of(&pod.metadata)?;
        if reference.kind != "Job" || !reference.api_version.starts_with("batch/") {
            return None;
        }
        let key = ObjectRef::new(&reference.name).within(&pod.namespace().unwrap_or_default());
        self.jobs
            .get(&key)
            .filter(|job| job.uid().as_deref() == Some(reference.uid.as_str()))
    }

    fn forget_removal(&self, pod: &Pod) {
        if let Some(uid) = pod.uid() {
            self.removals.lock().expect("removals").remove(&uid);
        }
    }

    fn removal_pending(&self, pod: &Pod) -> bool {
        pod.uid()
            .is_some_and(|uid| self.removals.lock().expect("removals").contains(&uid))
    }
}

/// The controller named by `spec.managedBy` when it is not this one: such a Job (Kueue's
/// MultiKueue, say) is left alone entirely, its status written by that controller.
fn managed_elsewhere(job: &Job) -> Option<&str> {
    job.spec
        .as_ref()?
        .managed_by
        .as_deref()
        .filter(|m| *m != MANAGED_BY_THIS)
}

/// A pod still holding the finalizer whose Job is not in the cache: once the API confirms
/// the Job is gone (or replaced by a namesake), nothing will count the pod, so its finalizer
/// goes, letting it be deleted.
async fn release_orphan(ctx: Arc<Context>, pod: Arc<Pod>, owner: OwnerReference) {
    let namespace = pod.namespace().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let gone = match jobs.get_opt(&owner.name).await {
        Ok(found) => found.is_none_or(|job| job.uid().as_deref() != Some(owner.uid.as_str())),
        Err(error) => {
            tracing::warn!(pod = %key_of(&*pod), %error, "could not look up the pod's job");
            false
        }
    };
    if gone {
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
        if let Err(error) = remove_finalizer(&api, &pod).await {
            tracing::warn!(pod = %key_of(&*pod), %error, "could not remove the job tracking finalizer");
        }
    }
}

/// Removes the tracking finalizer with upstream's strategic merge patch.
async fn remove_finalizer(api: &Api<Pod>, pod: &Pod) -> std::result::Result<(), kube::Error> {
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}});
    let result = api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await;
    if is_status(&result, 404) {
        return Ok(());
    }
    result.map(|_| ())
}

/// Whether a pod has failed for the job's counting: phase Failed, or (unless only failed
/// pods are replaced) deleted before it succeeded.
fn pod_failed(pod: &Pod, spec: &JobSpec) -> bool {
    if phase(pod) == "Failed" {
        return true;
    }
    let only_failed = spec.pod_replacement_policy.as_deref() == Some("Failed");
    !only_failed && pod.metadata.deletion_timestamp.is_some() && phase(pod) != "Succeeded"
}

/// What one sync found among the job's pods.
#[derive(Default)]
struct Tally {
    active: Vec<Arc<Pod>>,
    ready: i32,
    /// Deleted pods not finished yet.
    terminating: Vec<Arc<Pod>>,
    /// Ended pods to record in `uncountedTerminatedPods` now.
    new_succeeded: Vec<Arc<Pod>>,
    new_failed: Vec<Arc<Pod>>,
    /// Ended pods whose failure the pod failure policy ignores: released uncounted.
    ignored: Vec<Arc<Pod>>,
    /// A FailJob rule matched.
    fail_job: Option<String>,
    /// Indexes failing now (backoffLimitPerIndex).
    failed_indexes: BTreeSet<i32>,
    /// Each index's failures so far and when its last failure was.
    index_failures: HashMap<i32, (u32, Option<Timestamp>)>,
    succeeded_indexes: BTreeSet<i32>,
}

fn tally(ctx: &Context, job: &Job, pods: &[Arc<Pod>], now: Timestamp) -> Tally {
    let spec = job.spec.clone().unwrap_or_default();
    let status = job.status.clone().unwrap_or_default();
    let uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let counted_before: HashSet<&String> = uncounted
        .succeeded
        .iter()
        .flatten()
        .chain(uncounted.failed.iter().flatten())
        .collect();
    let completions = spec.completions.unwrap_or(0);
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let per_index = spec.backoff_limit_per_index;
    let mut tally = Tally::default();
    for pod in pods {
        let index = index_of(pod).filter(|i| *i < completions);
        if !is_pod_terminal(pod) && pod.metadata.deletion_timestamp.is_none() {
            tally.ready += i32::from(is_pod_ready(pod));
            tally.active.push(pod.clone());
            continue;
        }
        if !is_pod_terminal(pod) {
            tally.terminating.push(pod.clone());
        }
        let succeeded = phase(pod) == "Succeeded";
        let failed = pod_failed(pod, &spec);
        if failed {
            if let Some(index) = index {
                let entry = tally.index_failures.entry(index).or_default();
                let count = index_failures(pod) + 1;
                if count >= entry.0 {
                    *entry = (count, Some(failure::finished_at(pod, now)));
                }
            }
        }
        if !tracked(pod)
            || ctx.removal_pending(pod)
            || pod.uid().is_some_and(|uid| counted_before.contains(&uid))
        {
            continue;
        }
        if succeeded {
            if let Some(index) = index.filter(|_| indexed) {
                tally.succeeded_indexes.insert(index);
            }
            tally.new_succeeded.push(pod.clone());
        } else if failed {
            let verdict = match &spec.pod_failure_policy {
                Some(policy) if phase(pod) == "Failed" => failure::judge(policy, pod),
                _ => Verdict::Count,
            };
            match verdict {
                Verdict::Ignore => {
                    tally.ignored.push(pod.clone());
                    continue;
                }
                Verdict::FailJob(message) => {
                    tally.fail_job.get_or_insert(message);
                }
                Verdict::FailIndex => tally.failed_indexes.extend(index),
                Verdict::Count => {}
            }
            if let (Some(limit), Some(index)) = (per_index, index) {
                if index_failures(pod) + 1 > limit.max(0) as u32 {
                    tally.failed_indexes.insert(index);
                }
            }
            tally.new_failed.push(pod.clone());
        }
    }
    tally
}

/// upstream's `pastBackoffLimitOnFailure`: restarts of running pods count as failures
/// under `restartPolicy: OnFailure`.
fn restarts_past_limit(spec: &JobSpec, pods: &[Arc<Pod>]) -> bool {
    let template = spec.template.spec.as_ref();
    if template.and_then(|s| s.restart_policy.as_deref()) != Some("OnFailure") {
        return false;
    }
    let restarts: i32 = pods
        .iter()
        .filter(|p| matches!(phase(p), "Running" | "Pending"))
        .flat_map(|p| {
            let status = p.status.clone().unwrap_or_default();
            let init = status.init_container_statuses.unwrap_or_default();
            init.into_iter()
                .chain(status.container_statuses.unwrap_or_default())
                .map(|c| c.restart_count)
        })
        .sum();
    let limit = spec.backoff_limit.unwrap_or(6);
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// The index of the first success policy rule the succeeded indexes satisfy.
fn success_rule(spec: &JobSpec, succeeded: &BTreeSet<i32>) -> Option<usize> {
    let policy = spec.success_policy.as_ref()?;
    let completions = spec.completions.unwrap_or(0);
    policy.rules.iter().position(|rule| {
        let chosen = rule
            .succeeded_indexes
            .as_deref()
            .map(|text| indexes::parse_lenient(text, completions));
        let matched = match &chosen {
            Some(chosen) => chosen.intersection(succeeded).count(),
            None => succeeded.len(),
        };
        match rule.succeeded_count {
            Some(count) => matched >= count.max(0) as usize,
            None => chosen.is_some_and(|c| matched == c.len()),
        }
    })
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Context>) -> Result<Action> {
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if let Some(manager) = managed_elsewhere(&job) {
        tracing::debug!(
            job = key_of(&*job),
            manager,
            "skip syncing the job as it is managed by an external controller"
        );
        return Ok(Action::await_change());
    }
    let key = key_of(&*job);
    let namespace = job.namespace().unwrap_or_default();
    let spec = job.spec.clone().unwrap_or_default();
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let selector = match selector(&spec.selector.clone().unwrap_or_default()) {
        Ok(selector) => selector,
        Err(error) => {
            tracing::warn!(job = key, %error, "not syncing");
            return Ok(Action::await_change());
        }
    };
    let candidates: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|pod| pod.namespace().as_deref() == Some(namespace.as_str()))
        .collect();
    let (pods, mut errors) = claim(&*job, &job_api, &pod_api, &selector, candidates).await;
    if !errors.is_empty() {
        return Err(errors.swap_remove(0));
    }
    let old_status = job.status.clone().unwrap_or_default();
    if finished(&old_status) {
        // Pods that outlive the end (a deletion racing the last sync) are not counted.
        release(&ctx, &pod_api, pods.iter().filter(|p| tracked(p)).cloned()).await?;
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    let tally = tally(&ctx, &job, &pods, now);
    let mut sync = Sync::new(&ctx, &job, &tally, now);
    sync.record_backoff();
    let outcome = sync.decide(&pods);
    let suspended = spec.suspend == Some(true);
    let (mut created, mut deleted) = (0, 0);
    let mut manage_error = None;
    if ctx.expectations.satisfied(&key) {
        let doomed: Vec<Arc<Pod>> = match &outcome {
            Some(_) => tally.active.clone(),
            None if suspended => tally.active.clone(),
            None => sync.excess(),
        };
        let (count, deletion) = delete_pods(&ctx, &job, &pod_api, &doomed).await;
        deleted = count;
        manage_error = deletion.err();
        if outcome.is_none() && !suspended {
            let (count, creation) = sync.create(&pod_api).await;
            created = count;
            manage_error = manage_error.or(creation.err());
        }
    }
    let requeue = sync.requeue;
    sync.write(&job_api, &pod_api, outcome, suspended, created, deleted)
        .await?;
    if let Some(error) = manage_error {
        return Err(error);
    }
    // The requeue stands even when the status was written: the event of that write may
    // find nothing new to do, and a sync held back by the failure back-off must still run
    // once it has passed (a Job of 1,000 completions stalled there).
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Deletes pods, expecting each deletion first. Returns how many were deleted and the
/// first error.
async fn delete_pods(
    ctx: &Context,
    job: &Arc<Job>,
    api: &Api<Pod>,
    doomed: &[Arc<Pod>],
) -> (usize, Result<()>) {
    if doomed.is_empty() {
        return (0, Ok(()));
    }
    let key = key_of(&**job);
    ctx.expectations
        .expect_deletions(&key, doomed.iter().map(|p| key_of(&**p)).collect());
    let deletions = doomed.iter().take(MAX_CREATE_DELETE).map(|pod| {
        let key = key.clone();
        async move {
            let name = pod.name_any();
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {
                    ctx.recorder.event(
                        &**job,
                        EventType::Normal,
                        "SuccessfulDelete",
                        format!("Deleted pod: {name}"),
                    );
                    Ok(())
                }
                Err(error) => {
                    ctx.expectations.deletion_observed(&key, &key_of(&**pod));
                    if matches!(&error, kube::Error::Api(s) if s.code == 404) {
                        return Ok(());
                    }
                    ctx.recorder.event(
                        &**job,
                        EventType::Warning,
                        "FailedDelete",
                        format!("Error deleting: {}", api_message(&error)),
                    );
                    Err(Error::from(error))
                }
            }
        }
    });
    let results = futures::future::join_all(deletions).await;
    let deleted = results.iter().filter(|r| r.is_ok()).count();
    let error = results.into_iter().find_map(|r| r.err());
    (deleted, error.map_or(Ok(()), Err))
}

/// Removes the tracking finalizer of `pods`, remembering each removal until the informer
/// sees it. Returns the UIDs released.
async fn release(
    ctx: &Context,
    api: &Api<Pod>,
    pods: impl Iterator<Item = Arc<Pod>>,
) -> Result<HashSet<String>> {
    let removals = pods.map(|pod| async move {
        remove_finalizer(api, &pod)
            .await
            .map(|()| pod.uid().unwrap_or_default())
    });
    let mut released = HashSet::new();
    let mut first_error = None;
    for result in futures::future::join_all(removals).await {
        match result {
            Ok(uid) => {
                ctx.removals.lock().expect("removals").insert(uid.clone());
                released.insert(uid);
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(released), |e| Err(e.into()))
}

/// One sync's view of a job: its pods' tally, and what it wants next.
struct Sync<'a> {
    ctx: &'a Context,
    job: &'a Arc<Job>,
    spec: JobSpec,
    tally: &'a Tally,
    now: Timestamp,
    indexed: bool,
    /// Succeeded pods (completed indexes for Indexed jobs), including the new ones.
    succeeded: i32,
    failed: i32,
    completed_indexes: BTreeSet<i32>,
    failed_indexes: BTreeSet<i32>,
    /// When to look again (back-off, deadline), if nothing else triggers a sync.
    requeue: Option<Duration>,
}

impl<'a> Sync<'a> {
    fn new(ctx: &'a Context, job: &'a Arc<Job>, tally: &'a Tally, now: Timestamp) -> Sync<'a> {
        let spec = job.spec.clone().unwrap_or_default();
        let status = job.status.clone().unwrap_or_default();
        let uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
        let indexed = spec.completion_mode.as_deref() == Some("Indexed");
        let completions = spec.completions.unwrap_or(0);
        let mut completed_indexes = indexes::parse_lenient(
            status.completed_indexes.as_deref().unwrap_or(""),
            completions,
        );
        completed_indexes.extend(tally.succeeded_indexes.iter().copied());
        let mut failed_indexes =
            indexes::parse_lenient(status.failed_indexes.as_deref().unwrap_or(""), completions);
        failed_indexes.extend(
            tally
                .failed_indexes
                .iter()
                .filter(|i| !completed_indexes.contains(i)),
        );
        let succeeded = if indexed {
            completed_indexes.len() as i32
        } else {
            status.succeeded.unwrap_or(0)
                + uncounted.succeeded.as_ref().map_or(0, |u| u.len() as i32)
                + tally.new_succeeded.len() as i32
        };
        let failed = status.failed.unwrap_or(0)
            + uncounted.failed.as_ref().map_or(0, |u| u.len() as i32)
            + tally.new_failed.len() as i32;
        Sync {
            ctx,
            job,
            spec,
            tally,
            now,
            indexed,
            succeeded,
            failed,
            completed_indexes,
            failed_indexes,
            requeue: None,
        }
    }

    fn wait(&mut self, delay: Duration) {
        if !delay.is_zero() {
            self.requeue = Some(self.requeue.map_or(delay, |r| r.min(delay)));
        }
    }

    /// The outcome, decided before or now.
    fn decide(&mut self, pods: &[Arc<Pod>]) -> Option<Outcome> {
        let status = self.job.status.clone().unwrap_or_default();
        if let Some(decided) = Outcome::decided(&status) {
            return Some(decided);
        }
        let spec = self.spec.clone();
        if let Some(message) = &self.tally.fail_job {
            return Some(Outcome::failure("PodFailurePolicy", message.clone()));
        }
        let limit = spec.backoff_limit.unwrap_or(6);
        if self.failed > limit || restarts_past_limit(&spec, pods) {
            return Some(Outcome::backoff_limit());
        }
        let start = status.start_time.as_ref().map(|t| t.0);
        if let (Some(start), Some(deadline)) = (start, spec.active_deadline_seconds) {
            let due = start
                .checked_add(SignedDuration::from_secs(deadline))
                .unwrap_or(Timestamp::MAX);
            if due <= self.now && spec.suspend != Some(true) {
                return Some(Outcome::deadline());
            }
            self.wait(Duration::try_from(due.duration_since(self.now)).unwrap_or_default());
        }
        let completions = spec.completions.unwrap_or(0);
        if self.indexed && spec.backoff_limit_per_index.is_some() {
            let failed = self.failed_indexes.len() as i32;
            if spec.max_failed_indexes.is_some_and(|max| failed > max) {
                return Some(Outcome::max_failed_indexes());
            }
            let done = (self.completed_indexes.len() + self.failed_indexes.len()) as i32;
            if failed > 0 && done >= completions {
                return Some(Outcome::failed_indexes());
            }
        }
        if let Some(rule) = success_rule(&spec, &self.completed_indexes) {
            return Some(Outcome::success(
                "SuccessPolicy",
                format!("Matched rules at index {rule}"),
            ));
        }
        let complete = match spec.completions {
            Some(completions) => self.succeeded >= completions,
            None => self.succeeded > 0 && self.tally.active.is_empty(),
        };
        complete.then(Outcome::completions_reached)
    }

    /// Active pods beyond what is wanted: for NonIndexed jobs over `parallelism` or the
    /// remaining completions (unready and newest first); for Indexed jobs duplicates and
    /// pods of indexes already completed.
    fn excess(&self) -> Vec<Arc<Pod>> {
        let active = &self.tally.active;
        if self.indexed {
            let mut seen = HashSet::new();
            return active
                .iter()
                .filter(|p| {
                    let index = index_of(p).filter(|i| *i < self.spec.completions.unwrap_or(0));
                    match index {
                        Some(index) => {
                            self.completed_indexes.contains(&index)
                                || self.failed_indexes.contains(&index)
                                || !seen.insert(index)
                        }
                        None => true,
                    }
                })
                .cloned()
                .collect();
        }
        let wanted = self.wanted_active();
        if active.len() <= wanted {
            return Vec::new();
        }
        let mut ranked = active.clone();
        ranked.sort_by_key(|p| {
            (
                is_pod_ready(p),
                std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0)),
            )
        });
        ranked.truncate(active.len() - wanted);
        ranked
    }

    /// Active pods a NonIndexed job wants.
    fn wanted_active(&self) -> usize {
        let parallelism = self.spec.parallelism.unwrap_or(1).max(0);
        let wanted = match self.spec.completions {
            Some(completions) => parallelism.min(completions - self.succeeded),
            None if self.succeeded > 0 => self.tally.active.len() as i32,
            None => parallelism,
        };
        wanted.max(0) as usize
    }

    /// Pods that hold a place: active ones, and terminating ones when only failed pods are
    /// replaced.
    fn holding(&self) -> Vec<&Arc<Pod>> {
        let only_failed = self.spec.pod_replacement_policy.as_deref() == Some("Failed");
        let terminating = self.tally.terminating.iter().filter(|_| only_failed);
        self.tally.active.iter().chain(terminating).collect()
    }

    /// Creates the missing pods (after the failure back-off), as slow-start batches.
    /// Returns how many were created and the first error.
    async fn create(&mut self, api: &Api<Pod>) -> (usize, Result<()>) {
        let holding = self.holding();
        let parallelism = self.spec.parallelism.unwrap_or(1).max(0) as usize;
        let mut plans: Vec<(Option<i32>, u32)> = Vec::new();
        if self.indexed {
            let held: HashSet<i32> = holding.iter().filter_map(|p| index_of(p)).collect();
            let room = parallelism.saturating_sub(holding.len());
            let completions = self.spec.completions.unwrap_or(0);
            for index in 0..completions {
                if plans.len() >= room {
                    break;
                }
                if held.contains(&index)
                    || self.completed_indexes.contains(&index)
                    || self.failed_indexes.contains(&index)
                {
                    continue;
                }
                let (failures, last) = self
                    .tally
                    .index_failures
                    .get(&index)
                    .copied()
                    .unwrap_or_default();
                if self.spec.backoff_limit_per_index.is_some() {
                    let wait = failure::remaining(failures, last, self.now);
                    if !wait.is_zero() {
                        self.wait(wait);
                        continue;
                    }
                }
                plans.push((Some(index), failures));
            }
        } else {
            let wanted = self.wanted_active();
            let missing = wanted.saturating_sub(holding.len());
            plans.extend(std::iter::repeat_n((None, 0), missing));
        }
        if !plans.is_empty() && self.spec.backoff_limit_per_index.is_none() {
            let wait = self.job_backoff();
            if !wait.is_zero() {
                self.wait(wait);
                return (0, Ok(()));
            }
        }
        plans.truncate(MAX_CREATE_DELETE);
        if plans.is_empty() {
            return (0, Ok(()));
        }
        let key = key_of(&**self.job);
        let count = plans.len();
        self.ctx.expectations.expect_creations(&key, count);
        let next = Mutex::new(plans.into_iter());
        let (ctx, job) = (self.ctx, self.job);
        let (created, error) = slow_start_batch(count, || {
            let plan = next.lock().expect("plans").next();
            async move {
                let Some((index, failures)) = plan else {
                    return Ok(());
                };
                create_pod(ctx, job, api, index, failures).await
            }
        })
        .await;
        for _ in created..count {
            self.ctx.expectations.creation_observed(&key);
        }
        (created, error.map_or(Ok(()), Err))
    }

    /// The back-off of a job without per-index limits after its failures in a row.
    fn job_backoff(&self) -> Duration {
        let key = key_of(&**self.job);
        let backoffs = self.ctx.backoffs.lock().expect("backoffs");
        let record = backoffs.get(&key).copied().unwrap_or_default();
        failure::remaining(record.failures, record.last_failure, self.now)
    }

    /// Updates the job's failures in a row with this sync's new ends: a success resets
    /// the count to the failures after it.
    fn record_backoff(&self) {
        let key = key_of(&**self.job);
        let mut backoffs = self.ctx.backoffs.lock().expect("backoffs");
        let record = backoffs.entry(key).or_default();
        let successes = self.tally.new_succeeded.iter();
        let last_success = successes.map(|p| failure::finished_at(p, self.now)).max();
        let failures: Vec<Timestamp> = self
            .tally
            .new_failed
            .iter()
            .map(|p| failure::finished_at(p, self.now))
            .collect();
        match last_success {
            Some(success) => {
                record.failures = failures.iter().filter(|f| **f > success).count() as u32
            }
            None => record.failures += failures.len() as u32,
        }
        record.last_failure = record.last_failure.max(failures.iter().max().copied());
    }

    /// Writes the status: new ends into `uncountedTerminatedPods` first, then their
    /// finalizers go, then they move into the counters; once the outcome is decided and no
    /// pod is left, the terminal condition.
    async fn write(
        &mut self,
        job_api: &Api<Job>,
        pod_api: &Api<Pod>,
        outcome: Option<Outcome>,
        suspended: bool,
        created: usize,
        deleted: usize,
    ) -> Result<()> {
        let old = self.job.status.clone().unwrap_or_default();
        let mut status = old.clone();
        let mut events: Vec<(EventType, &'static str, String)> = Vec::new();
        let uncounted = status
            .uncounted_terminated_pods
            .get_or_insert_with(UncountedTerminatedPods::default);
        let uids =
            |pods: &[Arc<Pod>]| -> Vec<String> { pods.iter().filter_map(|p| p.uid()).collect() };
        uncounted
            .succeeded
            .get_or_insert_with(Vec::new)
            .extend(uids(&self.tally.new_succeeded));
        uncounted
            .failed
            .get_or_insert_with(Vec::new)
            .extend(uids(&self.tally.new_failed));
        normalize(uncounted);
        let active = (self.tally.active.len() + created).saturating_sub(deleted);
        status.active = nonzero(active as i32);
        status.ready = Some(self.tally.ready);
        status.terminating = Some(self.tally.terminating.len() as i32);
        if self.indexed {
            let completed = indexes::format(&self.completed_indexes);
            status.completed_indexes = (!completed.is_empty()).then_some(completed);
            if self.spec.backoff_limit_per_index.is_some() {
                status.failed_indexes = Some(indexes::format(&self.failed_indexes));
            }
        }
        let now = self.now;
        if suspended && outcome.is_none() {
            if ensure(
                &mut status,
                "Suspended",
                true,
                "JobSuspended",
                "Job suspended",
                now,
            ) {
                events.push((EventType::Normal, "Suspended", "Job suspended".into()));
            }
            if self.tally.active.is_empty() {
                status.start_time = None;
            }
        } else {
            let was_suspended = conditions::true_condition(&old, "Suspended").is_some();
            if ensure(
                &mut status,
                "Suspended",
                false,
                "JobResumed",
                "Job resumed",
                now,
            ) && was_suspended
            {
                events.push((EventType::Normal, "Resumed", "Job resumed".into()));
                status.start_time = Some(Time(now));
            }
            status.start_time.get_or_insert(Time(now));
        }
        if let Some(outcome) = &outcome {
            ensure(
                &mut status,
                outcome.target_type(),
                true,
                outcome.reason,
                &outcome.message,
                now,
            );
        }
        let mut current = (**self.job).clone();
        if status != old {
            current = self.update(job_api, current, status.clone()).await?;
        }
        // The ends are recorded: their finalizers can go, then they are counted.
        let pending: HashSet<String> = uncounted_uids(&status);
        let releasable = self
            .tally
            .new_succeeded
            .iter()
            .chain(&self.tally.new_failed)
            .chain(&self.tally.ignored)
            .cloned()
            .collect::<Vec<_>>();
        let already: Vec<Arc<Pod>> = self
            .ctx
            .pods
            .state()
            .into_iter()
            .filter(|p| p.uid().is_some_and(|u| pending.contains(&u)) && tracked(p))
            .filter(|p| !self.ctx.removal_pending(p))
            .collect();
        let released = release(
            self.ctx,
            pod_api,
            releasable
                .into_iter()
                .chain(already)
                .collect::<Vec<_>>()
                .into_iter(),
        )
        .await?;
        let mut counted = current.status.clone().unwrap_or_default();
        let still_tracked: HashSet<String> = self
            .ctx
            .pods
            .state()
            .into_iter()
            .filter(|p| tracked(p) && !self.ctx.removal_pending(p))
            .filter_map(|p| p.uid())
            .collect();
        let done = |uid: &String| released.contains(uid) || !still_tracked.contains(uid);
        let uncounted = counted
            .uncounted_terminated_pods
            .get_or_insert_with(UncountedTerminatedPods::default);
        let (succeeded, kept): (Vec<String>, Vec<String>) = uncounted
            .succeeded
            .take()
            .unwrap_or_default()
            .into_iter()
            .partition(done);
        uncounted.succeeded = Some(kept);
        let (failed, kept): (Vec<String>, Vec<String>) = uncounted
            .failed
            .take()
            .unwrap_or_default()
            .into_iter()
            .partition(done);
        uncounted.failed = Some(kept);
        normalize(uncounted);
        let left = uncounted_uids(&counted).len();
        counted.failed = nonzero(counted.failed.unwrap_or(0) + failed.len() as i32);
        counted.succeeded = if self.indexed {
            nonzero(self.completed_indexes.len() as i32)
        } else {
            nonzero(counted.succeeded.unwrap_or(0) + succeeded.len() as i32)
        };
        // The terminal condition waits until the pods this sync found are all ended and
        // counted, so none ends after it.
        let gone = self.tally.active.is_empty() && self.tally.terminating.is_empty();
        if let Some(outcome) = outcome.filter(|_| left == 0 && gone) {
            let type_ = outcome.final_type();
            ensure(
                &mut counted,
                type_,
                true,
                outcome.reason,
                &outcome.message,
                now,
            );
            if outcome.success {
                counted.completion_time = Some(Time(now));
                events.push((EventType::Normal, "Completed", "Job completed".into()));
            } else {
                events.push((EventType::Warning, outcome.reason, outcome.message.clone()));
            }
        }
        let changed = counted != current.status.clone().unwrap_or_default();
        if changed {
            self.update(job_api, current, counted).await?;
        }
        for (kind, reason, message) in events {
            self.ctx.recorder.event(&**self.job, kind, reason, message);
        }
        Ok(())
    }

    async fn update(&self, api: &Api<Job>, mut job: Job, status: JobStatus) -> Result<Job> {
        job.status = Some(status);
        Ok(api
            .replace_status(&job.name_any(), &PostParams::default(), &job)
            .await?)
    }
}

/// Upstream keeps `uncountedTerminatedPods: {}` with empty lists left out.
fn normalize(uncounted: &mut UncountedTerminatedPods) {
    if uncounted.succeeded.as_ref().is_some_and(|u| u.is_empty()) {
        uncounted.succeeded = None;
    }
    if uncounted.failed.as_ref().is_some_and(|u| u.is_empty()) {
        uncounted.failed = None;
    }
}

fn uncounted_uids(status: &JobStatus) -> HashSet<String> {
    let uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    uncounted
        .succeeded
        .into_iter()
        .flatten()
        .chain(uncounted.failed.into_iter().flatten())
        .collect()
}

fn nonzero(count: i32) -> Option<i32> {
    (count != 0).then_some(count)
}

/// Creates one pod, reporting it as an event.
async fn create_pod(
    ctx: &Context,
    job: &Job,
    api: &Api<Pod>,
    index: Option<i32>,
    failures: u32,
) -> Result<()> {
    let pod = pods::from_template(job, index, failures);
    crate::controller_utils::create_pod(&ctx.recorder, job, api, &pod).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> JobSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn jobs_managed_by_another_controller_are_left_alone() {
        let job = |managed_by: serde_json::Value| Job {
            spec: Some(spec(json!({"managedBy": managed_by, "template": {}}))),
            ..Job::default()
        };
        assert_eq!(managed_elsewhere(&job(json!(null))), None);
        assert_eq!(
            managed_elsewhere(&job(json!("kubernetes.io/job-controller"))),
            None
        );
        assert_eq!(
            managed_elsewhere(&job(json!("kueue.x-k8s.io/multikueue"))),
            Some("kueue.x-k8s.io/multikueue")
        );
    }

    #[test]
    fn success_policy_rules() {
        let spec = spec(json!({
            "completions": 5,
            "template": {},
            "successPolicy": {"rules": [
                {"succeededIndexes": "0-2", "succeededCount": 3},
                {"succeededIndexes": "4"},
            ]}
        }));
        assert_eq!(success_rule(&spec, &[0, 1].into()), None);
        assert_eq!(success_rule(&spec, &[4].into()), Some(1));
        assert_eq!(success_rule(&spec, &[0, 1, 2].into()), Some(0));
    }

    #[test]
    fn on_failure_restarts_count_against_the_backoff_limit() {
        let job = spec(json!({
            "backoffLimit": 2,
            "template": {"spec": {"restartPolicy": "OnFailure", "containers": []}}
        }));
        let pod = |restarts: i32| -> Arc<Pod> {
            Arc::new(
                serde_json::from_value(json!({
                    "metadata": {"name": "p"},
                    "status": {"phase": "Running", "containerStatuses": [
                        {"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": restarts}
                    ]}
                }))
                .unwrap(),
            )
        };
        assert!(!restarts_past_limit(&job, &[pod(1)]));
        assert!(restarts_past_limit(&job, &[pod(1), pod(1)]));
    }

    #[test]
    fn deleted_pods_fail_unless_only_failed_pods_are_replaced() {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "deletionTimestamp": "2025-01-01T00:00:00Z"},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        let replace_terminating =
            spec(json!({"template": {}, "podReplacementPolicy": "TerminatingOrFailed"}));
        let only_failed = spec(json!({"template": {}, "podReplacementPolicy": "Failed"}));
        assert!(pod_failed(&pod, &replace_terminating));
        assert!(!pod_failed(&pod, &only_failed));
        pod.status.as_mut().unwrap().phase = Some("Failed".into());
        assert!(pod_failed(&pod, &only_failed));
    }
}
