//! The ReplicaSet controller (upstream `pkg/controller/replicaset`): keeps `spec.replicas`
//! active pods from the template, in slow-start batches, adopting matching orphans and
//! releasing pods that stopped matching, and reports replica counts in the status.
//!
//! Upstream runs the very same code as the ReplicationController controller (through
//! adapters from the core/v1 kind); here the controller is generic over [`Replicated`], the
//! little that differs between the two kinds: a label selector or an equality one, the
//! names, and the status type.
//!
//! Expectations make it safe against watch lag: after creating or deleting pods it does
//! nothing more for that ReplicaSet until the informer has observed every one of those
//! creations and deletions (or five minutes have passed), so a slow watch never makes it
//! create or delete twice.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ControllerContext;
use crate::controller_utils::{
    claim, controller_of, controller_ref, create_pod, is_pod_active, is_pod_available,
    is_pod_ready, key_of, matches, phase, ready_condition, selector, slow_start_batch,
    Expectations,
};
use crate::events::{EventType, Recorder};
use crate::informers::Change;
use crate::options::Options;
use crate::runtime::{self, api_message, Error, Queue, Result};

/// The ReplicaSet controller's name (`--controllers`, events' source, queue metrics).
pub const NAME: &str = "replicaset-controller";
/// The ReplicationController controller's name (`--controllers`, queue metrics).
pub const RC_NAME: &str = "replicationcontroller-controller";

/// What the controller needs to know of a kind it keeps replicas of.
pub trait Replicated:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The controller's name.
    const NAME: &'static str;
    /// The source component of its events, as upstream names it.
    const COMPONENT: &'static str;
    /// Upstream's `--concurrent-*-syncs` for this kind.
    fn workers(options: &Options) -> u16;
    /// `spec.replicas`, 1 when unset.
    fn replicas(&self) -> i32;
    fn min_ready_seconds(&self) -> i32;
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// The selector as a label selector (an equality selector is its `matchLabels`).
    fn label_selector(&self) -> LabelSelector;
    /// The status in the ReplicaSet's shape, which the other kind's has field for field.
    fn replica_status(&self) -> ReplicaSetStatus;
    fn set_replica_status(&mut self, status: ReplicaSetStatus);
}

impl Replicated for ReplicaSet {
    const NAME: &'static str = NAME;
    const COMPONENT: &'static str = NAME;

    fn workers(options: &Options) -> u16 {
        options.concurrent_replicaset_syncs
    }

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }

    fn label_selector(&self) -> LabelSelector {
        self.spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default()
    }

    fn replica_status(&self) -> ReplicaSetStatus {
        self.status.clone().unwrap_or_default()
    }

    fn set_replica_status(&mut self, status: ReplicaSetStatus) {
        self.status = Some(status);
    }
}

impl Replicated for ReplicationController {
    const NAME: &'static str = RC_NAME;
    /// Upstream's RC events come from "replication-controller".
    const COMPONENT: &'static str = "replication-controller";

    fn workers(options: &Options) -> u16 {
        options.concurrent_rc_syncs
    }

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }

    fn label_selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: self.spec.as_ref().and_then(|s| s.selector.clone()),
            match_expressions: None,
        }
    }

    /// The two status types (and their condition types) serialize alike.
    fn replica_status(&self) -> ReplicaSetStatus {
        self.status
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }

    fn set_replica_status(&mut self, status: ReplicaSetStatus) {
        self.status = serde_json::to_value(status)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok());
    }
}

/// At most this many pods are created or deleted by one sync (upstream's `BurstReplicas`).
const BURST_REPLICAS: usize = 500;
/// Upstream's annotation ranking pods for scale-down.
const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

struct Context<K: Replicated> {
    client: Client,
    pods: Store<Pod>,
    replica_sets: Store<K>,
    expectations: Expectations,
    recorder: Recorder,
    queue: Queue<K>,
}

/// Wires the ReplicaSet controller to the shared informers and starts it.
pub fn start(ctx: &ControllerContext) {
    start_for::<ReplicaSet>(ctx);
}

/// Wires the ReplicationController controller to the shared informers and starts it.
pub fn start_rc(ctx: &ControllerContext) {
    start_for::<ReplicationController>(ctx);
}

fn start_for<K: Replicated>(ctx: &ControllerContext) {
    let pods = ctx.informers.get::<Pod>();
    let replica_sets = ctx.informers.get::<K>();
    let (queue, triggers) = Queue::new(K::NAME);
    let context = Arc::new(Context {
        client: ctx.client_for(K::NAME),
        pods: pods.store(),
        replica_sets: replica_sets.store(),
        expectations: Expectations::default(),
        recorder: ctx.events.recorder(K::COMPONENT),
        queue: queue.clone(),
    });
    tokio::spawn(watch_replica_sets(
        context.clone(),
        replica_sets.subscribe(),
    ));
    tokio::spawn(watch_pods(context.clone(), pods.subscribe()));
    let controller = runtime::Controller {
        queue,
        triggers,
        store: context.replica_sets.clone(),
        caches: vec![replica_sets.synced(), pods.synced()],
        workers: K::workers(&ctx.options),
    };
    tokio::spawn(controller.run(context, reconcile));
}

async fn watch_replica_sets<K: Replicated>(
    ctx: Arc<Context<K>>,
    mut changes: UnboundedReceiver<Change<K>>,
) {
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied { new, .. } => ctx.queue.add_object(&new),
            Change::Deleted(gone) => ctx.expectations.forget(&key_of(&*gone)),
        }
    }
}

async fn watch_pods<K: Replicated>(
    ctx: Arc<Context<K>>,
    mut changes: UnboundedReceiver<Change<Pod>>,
) {
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied { old: None, new } => pod_added(&ctx, &new),
            Change::Applied {
                old: Some(old),
                new,
            } => pod_updated(&ctx, &old, &new),
            Change::Deleted(gone) => pod_deleted(&ctx, &gone),
        }
    }
}

fn pod_added<K: Replicated>(ctx: &Context<K>, pod: &Pod) {
    if pod.metadata.deletion_timestamp.is_some() {
        // Seen for the first time already being deleted (after a relist): a deletion.
        pod_deleted(ctx, pod);
        return;
    }
    if let Some(reference) = controller_of(&pod.metadata) {
        if let Some(rs) = ctx.resolve(pod, reference) {
            ctx.expectations.creation_observed(&key_of(&*rs));
            ctx.queue.add_object(&rs);
        }
        return;
    }
    // An orphan: the ReplicaSets that match it may adopt it.
    for rs in ctx.matching_replica_sets(pod) {
        ctx.queue.add_object(&rs);
    }
}

fn pod_updated<K: Replicated>(ctx: &Context<K>, old: &Pod, new: &Pod) {
    if old.resource_version() == new.resource_version() {
        return;
    }
    let labels_changed = old.metadata.labels != new.metadata.labels;
    if new.metadata.deletion_timestamp.is_some() {
        // Graceful deletion started: the pod no longer counts, so observe the deletion now
        // rather than when the kubelet finally removes it.
        pod_deleted(ctx, new);
        if labels_changed {
            pod_deleted(ctx, old);
        }
        return;
    }
    let old_ref = controller_of(&old.metadata);
    let new_ref = controller_of(&new.metadata);
    let ref_changed = old_ref != new_ref;
    if ref_changed {
        if let Some(rs) = old_ref.and_then(|r| ctx.resolve(old, r)) {
            ctx.queue.add_object(&rs);
        }
    }
    if let Some(reference) = new_ref {
        if let Some(rs) = ctx.resolve(new, reference) {
            ctx.queue.add_object(&rs);
            let min_ready = rs.min_ready_seconds();
            if min_ready > 0 && !is_pod_ready(old) && is_pod_ready(new) {
                // It becomes available minReadySeconds from now: look again then.
                ctx.queue.add_after(
                    ObjectRef::from_obj(&*rs),
                    Duration::from_secs(min_ready as u64 + 1),
                );
            }
        }
        return;
    }
    if labels_changed || ref_changed {
        for rs in ctx.matching_replica_sets(new) {
            ctx.queue.add_object(&rs);
        }
    }
}

fn pod_deleted<K: Replicated>(ctx: &Context<K>, pod: &Pod) {
    if let Some(rs) = controller_of(&pod.metadata).and_then(|r| ctx.resolve(pod, r)) {
        ctx.expectations
            .deletion_observed(&key_of(&*rs), &key_of(pod));
        ctx.queue.add_object(&rs);
    }
}

impl<K: Replicated> Context<K> {
    /// The object a controller reference points to, if it is that very object (of this
    /// kind, in this group).
    fn resolve(&self, pod: &Pod, reference: &OwnerReference) -> Option<Arc<K>> {
        let group = reference
            .api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group);
        if reference.kind != K::kind(&()) || group != K::group(&()) {
            return None;
        }
        let key = ObjectRef::new(&reference.name).within(&pod.namespace().unwrap_or_default());
        self.replica_sets
            .get(&key)
            .filter(|rs| rs.uid().as_deref() == Some(reference.uid.as_str()))
    }

    /// Objects in the pod's namespace whose (non-empty) selector matches it.
    fn matching_replica_sets(&self, pod: &Pod) -> Vec<Arc<K>> {
        let namespace = pod.namespace();
        self.replica_sets
            .state()
            .into_iter()
            .filter(|rs| rs.namespace() == namespace)
            .filter(|rs| {
                let label_selector = rs.label_selector();
                let empty = label_selector
                    .match_labels
                    .as_ref()
                    .is_none_or(|l| l.is_empty())
                    && label_selector
                        .match_expressions
                        .as_ref()
                        .is_none_or(|e| e.is_empty());
                !empty && selector(&label_selector).is_ok_and(|s| matches(&s, &pod.metadata))
            })
            .collect()
    }
}

async fn reconcile<K: Replicated>(rs: Arc<K>, ctx: Arc<Context<K>>) -> Result<Action> {
    let key = key_of(&*rs);
    let namespace = rs.namespace().unwrap_or_default();
    let selector = match selector(&rs.label_selector()) {
        Ok(selector) => selector,
        Err(error) => {
            tracing::warn!(replicaset = key, %error, "not syncing");
            return Ok(Action::await_change());
        }
    };
    let needs_sync = ctx.expectations.satisfied(&key) && rs.meta().deletion_timestamp.is_none();
    let active: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|pod| pod.namespace().as_deref() == Some(namespace.as_str()) && is_pod_active(pod))
        .collect();
    let rs_api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let (pods, mut errors) = claim(&*rs, &rs_api, &pod_api, &selector, active).await;
    if !errors.is_empty() {
        return Err(errors.swap_remove(0));
    }
    let manage_error = if needs_sync {
        manage_replicas(&ctx, &rs, &pods, &pod_api).await.err()
    } else {
        None
    };
    let status = calculate_status(&*rs, &pods, manage_error.as_ref());
    let updated = update_status(&rs_api, &rs, status).await?;
    if let Some(error) = manage_error {
        return Err(error);
    }
    let replicas = rs.replicas();
    let min_ready = rs.min_ready_seconds();
    let status = updated.replica_status();
    if min_ready > 0
        && status.ready_replicas.unwrap_or(0) == replicas
        && status.available_replicas.unwrap_or(0) != replicas
    {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::await_change())
}

/// Creates or deletes pods towards `spec.replicas`.
async fn manage_replicas<K: Replicated>(
    ctx: &Context<K>,
    rs: &Arc<K>,
    pods: &[Arc<Pod>],
    pod_api: &Api<Pod>,
) -> Result<()> {
    let key = key_of(&**rs);
    let wanted = rs.replicas().max(0) as usize;
    match pods.len().cmp(&wanted) {
        Ordering::Equal => Ok(()),
        Ordering::Less => {
            let count = (wanted - pods.len()).min(BURST_REPLICAS);
            // Expect every creation before the first is sent: its watch event may come back
            // before the request does.
            ctx.expectations.expect_creations(&key, count);
            let template = pod_from_template(&**rs);
            let (created, error) = slow_start_batch(count, || {
                create_pod(&ctx.recorder, &**rs, pod_api, &template)
            })
            .await;
            // Pods never created will never be observed.
            for _ in created..count {
                ctx.expectations.creation_observed(&key);
            }
            error.map_or(Ok(()), Err)
        }
        Ordering::Greater => {
            let count = (pods.len() - wanted).min(BURST_REPLICAS);
            let related = ctx.indirectly_related_pods(rs);
            let doomed = pods_to_delete(pods.to_vec(), &related, count);
            ctx.expectations
                .expect_deletions(&key, doomed.iter().map(|p| key_of(&**p)).collect());
            let key = &key;
            let deletions = doomed.iter().map(|pod| async move {
                let name = pod.name_any();
                match pod_api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {
                        ctx.recorder.event(
                            &**rs,
                            EventType::Normal,
                            "SuccessfulDelete",
                            format!("Deleted pod: {name}"),
                        );
                        Ok(())
                    }
                    Err(error) => {
                        // The informer will never see this deletion.
                        ctx.expectations.deletion_observed(key, &key_of(&**pod));
                        if matches!(&error, kube::Error::Api(status) if status.code == 404) {
                            return Ok(());
                        }
                        let message = api_message(&error);
                        ctx.recorder.event(
                            &**rs,
                            EventType::Warning,
                            "FailedDelete",
                            format!("Error deleting: {message}"),
                        );
                        Err(Error::from(error))
                    }
                }
            });
            futures::future::join_all(deletions)
                .await
                .into_iter()
                .find_map(|r| r.err())
                .map_or(Ok(()), Err)
        }
    }
}

/// The pod a ReplicaSet creates: the template's metadata and spec, named after the ReplicaSet
/// and controlled by it.
fn pod_from_template<K: Replicated>(rs: &K) -> Pod {
    let template = rs.template().cloned().unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(rs)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

impl<K: Replicated> Context<K> {
    /// Pods of every ReplicaSet with the same controller (the Deployment's other revisions):
    /// deleting where they crowd a node spreads the survivors.
    fn indirectly_related_pods(&self, rs: &K) -> Vec<Arc<Pod>> {
        let namespace = rs.namespace();
        let related: Vec<Arc<K>> = match controller_of(rs.meta()) {
            None => self
                .replica_sets
                .get(&ObjectRef::from_obj(rs))
                .into_iter()
                .collect(),
            Some(owner) => self
                .replica_sets
                .state()
                .into_iter()
                .filter(|other| {
                    other.namespace() == namespace
                        && controller_of(other.meta()).is_some_and(|o| o.uid == owner.uid)
                })
                .collect(),
        };
        let mut seen = HashSet::new();
        let mut pods = Vec::new();
        for other in related {
            let Ok(selector) = selector(&other.label_selector()) else {
                continue;
            };
            for pod in self.pods.state() {
                if pod.namespace() == namespace
                    && matches(&selector, &pod.metadata)
                    && seen.insert(pod.uid())
                {
                    pods.push(pod);
                }
            }
        }
        pods
    }
}

/// The `count` pods to delete first: upstream's `ActivePodsWithRanks` order, where a pod's
/// rank is the number of related active pods on its node.
fn pods_to_delete(pods: Vec<Arc<Pod>>, related: &[Arc<Pod>], count: usize) -> Vec<Arc<Pod>> {
    let mut pods = if count < pods.len() {
        let mut on_node: HashMap<String, usize> = HashMap::new();
        for pod in related.iter().filter(|p| is_pod_active(p)) {
            *on_node.entry(node_name(pod).to_string()).or_default() += 1;
        }
        let now = Timestamp::now();
        let ranked = pods
            .into_iter()
            .map(|pod| {
                let rank = on_node.get(node_name(&pod)).copied().unwrap_or(0);
                DeletionRank::new(pod, rank)
            })
            .collect();
        merge_sort(ranked, &|a: &DeletionRank, b: &DeletionRank| {
            a.compare(b, now)
        })
        .into_iter()
        .map(|r| r.pod)
        .collect()
    } else {
        pods
    };
    pods.truncate(count);
    pods
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// What upstream's deletion order looks at in a pod.
struct DeletionRank {
    pod: Arc<Pod>,
    assigned: bool,
    /// Pending (and any other phase) 0, Unknown 1, Running 2.
    phase: u8,
    ready: bool,
    cost: i32,
    /// Related active pods on the pod's node.
    rank: usize,
    /// When a ready pod turned ready; `None` for a zero time.
    ready_since: Option<Timestamp>,
    /// The most restarts of an app container, then of a sidecar.
    restarts: (i32, i32),
    created: Option<Timestamp>,
    uid: String,
}

impl DeletionRank {
    fn new(shared: Arc<Pod>, rank: usize) -> DeletionRank {
        let pod = &*shared;
        let ready = is_pod_ready(pod);
        let status = pod.status.as_ref();
        let sidecars: HashSet<&str> = pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten())
            .filter(|c| c.restart_policy.as_deref() == Some("Always"))
            .map(|c| c.name.as_str())
            .collect();
        let max_restarts = |statuses: Option<&Vec<ContainerStatus>>,
                            only: Option<&HashSet<&str>>| {
            let counts = statuses
                .iter()
                .flat_map(|s| s.iter())
                .filter(|c| only.is_none_or(|names| names.contains(c.name.as_str())));
            counts.map(|c| c.restart_count).max().unwrap_or(0)
        };
        DeletionRank {
            assigned: !node_name(pod).is_empty(),
            phase: match phase(pod) {
                "Unknown" => 1,
                "Running" => 2,
                _ => 0,
            },
            ready,
            cost: pod
                .annotations()
                .get(POD_DELETION_COST)
                .and_then(|c| c.parse::<i32>().ok())
                .unwrap_or(0),
            rank,
            ready_since: if ready {
                ready_condition(pod)
                    .and_then(|c| c.last_transition_time.as_ref())
                    .map(|t| t.0)
            } else {
                None
            },
            restarts: (
                max_restarts(status.and_then(|s| s.container_statuses.as_ref()), None),
                max_restarts(
                    status.and_then(|s| s.init_container_statuses.as_ref()),
                    Some(&sidecars),
                ),
            ),
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            uid: pod.uid().unwrap_or_default(),
            pod: shared,
        }
    }

    /// Upstream's `ActivePodsWithRanks.Less` as an ordering (`Less`: `self` goes first;
    /// `Equal`: neither does):
    /// 1. unassigned before assigned;
    /// 2. Pending before Unknown before Running;
    /// 3. not ready before ready;
    /// 4. lower `pod-deletion-cost` first;
    /// 5. more related pods on its node (rank) first;
    /// 6. of ready pods, ready for less time first;
    /// 7. more app container restarts first, then more sidecar restarts;
    /// 8. newer before older.
    ///
    /// Times compare on a logarithmic scale (upstream's `LogarithmicScaleDown`) and, within
    /// one bucket, by UID, a pseudo-random but stable choice; equal times fall through to
    /// the next rule, so pods created in the same second are equal, as upstream has them.
    fn compare(&self, other: &DeletionRank, now: Timestamp) -> Ordering {
        if self.assigned != other.assigned {
            return self.assigned.cmp(&other.assigned);
        }
        let first = self
            .phase
            .cmp(&other.phase)
            .then(self.ready.cmp(&other.ready))
            .then(self.cost.cmp(&other.cost))
            .then(other.rank.cmp(&self.rank));
        if first != Ordering::Equal {
            return first;
        }
        if self.ready && other.ready && self.ready_since != other.ready_since {
            return self.newer_first(self.ready_since, other.ready_since, other, now);
        }
        if self.restarts != other.restarts {
            return other.restarts.cmp(&self.restarts);
        }
        if self.created != other.created {
            return self.newer_first(self.created, other.created, other, now);
        }
        Ordering::Equal
    }

    /// Of two different times, a zero one first, then the newer on a log2 scale of their
    /// age, the same bucket ordered by UID.
    fn newer_first(
        &self,
        mine: Option<Timestamp>,
        theirs: Option<Timestamp>,
        other: &DeletionRank,
        now: Timestamp,
    ) -> Ordering {
        let (Some(mine), Some(theirs)) = (mine, theirs) else {
            return if mine.is_none() {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        };
        let bucket = |t: Timestamp| {
            let nanos = now.duration_since(t).as_nanos();
            if nanos > 0 {
                (nanos as f64).log2() as i64
            } else {
                -1
            }
        };
        bucket(mine)
            .cmp(&bucket(theirs))
            .then_with(|| self.uid.cmp(&other.uid))
    }
}

/// A stable merge sort that, unlike the standard library's sorts, accepts a comparison
/// that is not a total order (upstream's is not: UIDs order pods within a time bucket,
/// while pods with equal times are equal), never panicking and keeping the input order of
/// pods it cannot tell apart.
fn merge_sort<T>(mut items: Vec<T>, compare: &dyn Fn(&T, &T) -> Ordering) -> Vec<T> {
    if items.len() <= 1 {
        return items;
    }
    let right = merge_sort(items.split_off(items.len() / 2), compare);
    let left = merge_sort(items, compare);
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let (mut left, mut right) = (left.into_iter().peekable(), right.into_iter().peekable());
    while let (Some(l), Some(r)) = (left.peek(), right.peek()) {
        let next = if compare(r, l) == Ordering::Less {
            right.next()
        } else {
            left.next()
        };
        merged.extend(next);
    }
    merged.extend(left);
    merged.extend(right);
    merged
}

/// The status for the claimed active pods; a failed create or delete shows as the
/// `ReplicaFailure` condition until a sync manages without error.
fn calculate_status<K: Replicated>(
    rs: &K,
    pods: &[Arc<Pod>],
    manage_error: Option<&Error>,
) -> ReplicaSetStatus {
    let mut status = rs.replica_status();
    let template_labels: BTreeMap<String, String> = rs
        .template()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = rs.min_ready_seconds();
    let now = Timestamp::now();
    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for pod in pods {
        let labels = pod.labels();
        if template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            fully_labeled += 1;
        }
        if is_pod_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    status.replicas = pods.len() as i32;
    status.fully_labeled_replicas = nonzero(fully_labeled);
    status.ready_replicas = nonzero(ready);
    status.available_replicas = nonzero(available);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let failing = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match manage_error {
        Some(error) if !failing => {
            let reason = match (pods.len() as i32).cmp(&rs.replicas()) {
                Ordering::Less => "FailedCreate",
                Ordering::Greater => "FailedDelete",
                Ordering::Equal => "",
            };
            conditions.push(ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(error.to_string()),
                last_transition_time: Some(Time(now)),
            });
        }
        None if failing => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    if conditions.is_empty() {
        status.conditions = None;
    }
    status
}

fn nonzero(count: i32) -> Option<i32> {
    (count != 0).then_some(count)
}

/// Writes the status if it changed (stamping `observedGeneration`), retrying once on a
/// conflict with the latest object.
async fn update_status<K: Replicated>(api: &Api<K>, rs: &K, status: ReplicaSetStatus) -> Result<K> {
    let mut current = rs.clone();
    for attempt in 0..2 {
        let old = current.replica_status();
        let generation = current.meta().generation;
        let same = old.replicas == status.replicas
            && old.fully_labeled_replicas.unwrap_or(0)
                == status.fully_labeled_replicas.unwrap_or(0)
            && old.ready_replicas.unwrap_or(0) == status.ready_replicas.unwrap_or(0)
            && old.available_replicas.unwrap_or(0) == status.available_replicas.unwrap_or(0)
            && old.observed_generation == generation
            && old.conditions.as_deref().unwrap_or_default()
                == status.conditions.as_deref().unwrap_or_default();
        if same {
            return Ok(current);
        }
        let mut updated = current.clone();
        updated.set_replica_status(ReplicaSetStatus {
            observed_generation: generation,
            ..status.clone()
        });
        match api
            .replace_status(&current.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(written) => return Ok(written),
            Err(error)
                if attempt == 0 && matches!(&error, kube::Error::Api(s) if s.code == 409) =>
            {
                current = api.get(&rs.name_any()).await?;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::StatusConflict(rs.name_any()))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::jiff::SignedDuration;

    use super::*;

    /// An API refusal, as a failed pod creation returns it.
    fn refused(message: &str) -> Error {
        let status = kube::core::Status::failure(message, "Forbidden").with_code(403);
        Error::Kube(kube::Error::Api(status.boxed()))
    }

    fn pod(
        name: &str,
        node: &str,
        phase: &str,
        ready_for: Option<i64>,
        created_ago: i64,
    ) -> Arc<Pod> {
        let now = Timestamp::now();
        let conditions = ready_for.map(|secs| {
            vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(now - SignedDuration::from_secs(secs))),
                ..PodCondition::default()
            }]
        });
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(name.into()),
                creation_timestamp: Some(Time(now - SignedDuration::from_secs(created_ago))),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.into()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions,
                ..PodStatus::default()
            }),
        })
    }

    fn names(pods: Vec<Arc<Pod>>) -> Vec<String> {
        pods.iter().map(|p| p.name_any()).collect()
    }

    #[test]
    fn deletes_unassigned_then_pending_then_not_ready_then_newest() {
        let pods = vec![
            pod("running-old", "n1", "Running", Some(1000), 5000),
            pod("running-new", "n2", "Running", Some(10), 20),
            pod("not-ready", "n3", "Running", None, 6000),
            pod("pending", "n4", "Pending", None, 7000),
            pod("unassigned", "", "Pending", None, 8000),
        ];
        let order = names(pods_to_delete(pods.clone(), &pods, 4));
        assert_eq!(order, ["unassigned", "pending", "not-ready", "running-new"]);
    }

    /// `pod` created at exactly `at` (and ready since then when ready).
    fn at(pod: &Arc<Pod>, at: Timestamp) -> Arc<Pod> {
        let mut pod = (**pod).clone();
        pod.metadata.creation_timestamp = Some(Time(at));
        for condition in pod.status.as_mut().unwrap().conditions.iter_mut().flatten() {
            condition.last_transition_time = Some(Time(at));
        }
        Arc::new(pod)
    }

    #[test]
    fn equal_times_are_equal_and_a_time_bucket_is_ordered_by_uid() {
        let second = Timestamp::from_second(Timestamp::now().as_second() - 100).unwrap();
        // Created in the same second: upstream finds no difference, so the order given stays.
        let same = vec![
            at(&pod("b", "n1", "Running", None, 0), second),
            at(&pod("a", "n1", "Running", None, 0), second),
        ];
        assert_eq!(names(pods_to_delete(same.clone(), &same, 1)), ["b"]);
        // Different seconds of the same log2 bucket of age: ordered by UID.
        let earlier = second - SignedDuration::from_secs(1);
        let bucket = vec![
            at(&pod("y", "n1", "Running", None, 0), second),
            at(&pod("x", "n1", "Running", None, 0), earlier),
        ];
        assert_eq!(names(pods_to_delete(bucket.clone(), &bucket, 1)), ["x"]);
        // Ready pods: the same, on the time they turned ready.
        let ready = vec![
            at(&pod("d", "n1", "Running", Some(0), 0), second),
            at(&pod("c", "n1", "Running", Some(0), 0), second),
        ];
        assert_eq!(names(pods_to_delete(ready.clone(), &ready, 1)), ["d"]);
    }

    #[test]
    fn more_restarts_go_first() {
        let mut restarted = (*pod("restarted", "n1", "Running", Some(100), 100)).clone();
        restarted.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
            name: "c".into(),
            restart_count: 2,
            ..ContainerStatus::default()
        }]);
        let pods = [
            pod("steady", "n1", "Running", Some(100), 100),
            Arc::new(restarted),
        ];
        let second = Timestamp::from_second(Timestamp::now().as_second() - 100).unwrap();
        let pods: Vec<Arc<Pod>> = pods.iter().map(|p| at(p, second)).collect();
        assert_eq!(names(pods_to_delete(pods.clone(), &pods, 1)), ["restarted"]);
    }

    #[test]
    fn prefers_crowded_nodes() {
        let pods = vec![
            pod("alone", "n1", "Running", Some(100), 100),
            pod("crowded", "n2", "Running", Some(100), 100),
        ];
        let related = vec![
            pods[0].clone(),
            pods[1].clone(),
            pod("other", "n2", "Running", Some(100), 100),
        ];
        assert_eq!(names(pods_to_delete(pods, &related, 1)), ["crowded"]);
    }

    #[test]
    fn a_failed_create_shows_as_replica_failure_until_a_clean_sync() {
        let rs = ReplicaSet {
            spec: Some(k8s_openapi::api::apps::v1::ReplicaSetSpec {
                replicas: Some(3),
                ..Default::default()
            }),
            ..ReplicaSet::default()
        };
        let pods = vec![pod("a", "n1", "Running", Some(10), 10)];
        let failed = calculate_status(&rs, &pods, Some(&refused("pods \"x\" is forbidden: quota")));
        let condition = &failed.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (condition.type_.as_str(), condition.reason.as_deref()),
            ("ReplicaFailure", Some("FailedCreate"))
        );
        assert_eq!(
            condition.message.as_deref(),
            Some("pods \"x\" is forbidden: quota")
        );
        assert_eq!(
            (
                failed.replicas,
                failed.ready_replicas,
                failed.available_replicas
            ),
            (1, Some(1), Some(1))
        );
        let recovered = calculate_status(
            &ReplicaSet {
                status: Some(failed),
                ..rs
            },
            &pods,
            None,
        );
        assert!(recovered.conditions.is_none());
    }

    #[tokio::test]
    async fn slow_start_doubles_batches_and_stops_at_first_failure() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let (done, error) = slow_start_batch(10, || async {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n >= 4 {
                Err(refused("quota"))
            } else {
                Ok(())
            }
        })
        .await;
        // Batches of 1 and 2 succeed; the batch of 4 has one success, then failures.
        assert_eq!((done, calls.into_inner()), (4, 7));
        assert!(error.is_some());
    }

    #[test]
    fn expectations_wait_for_every_observation() {
        let expectations = Expectations::default();
        expectations.expect_creations("ns/rs", 2);
        expectations.creation_observed("ns/rs");
        assert!(!expectations.satisfied("ns/rs"));
        expectations.creation_observed("ns/rs");
        assert!(expectations.satisfied("ns/rs"));
        expectations.expect_deletions("ns/rs", ["ns/a".to_string()].into());
        expectations.deletion_observed("ns/rs", "ns/b");
        assert!(!expectations.satisfied("ns/rs"));
        expectations.deletion_observed("ns/rs", "ns/a");
        expectations.deletion_observed("ns/rs", "ns/a");
        assert!(expectations.satisfied("ns/rs"));
    }
}
