//! The DaemonSet controller (upstream `pkg/controller/daemon`): one pod from the template on
//! every node that should run it (node selector, required node affinity, taints against the
//! template's tolerations plus the automatic DaemonSet ones), placed by the default scheduler
//! through a required node affinity naming the node. Nodes joining, leaving, changing labels
//! or taints add and remove pods; failed pods are replaced after a per-node back-off;
//! RollingUpdate (maxUnavailable or maxSurge) and OnDelete update them; the templates are
//! kept as ControllerRevisions for `kubectl rollout history` and `undo`.
//!
//! Split like upstream's files: this module wires the informers and runs a sync (`manage`,
//! then the update strategy, then history clean-up and status), `placement` decides which
//! nodes want a pod and builds it, `rolling` the RollingUpdate steps, `revisions` the
//! history.

mod placement;
mod revisions;
mod rolling;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use self::placement::{pin_to_node, pod_template, should_run, target_node, template_generation};
use super::ControllerContext;
use crate::controller_utils::{
    claim, controller_of, controller_ref, create_pod, is_pod_available, is_pod_ready,
    is_pod_terminal, key_of, matches, phase, selector, slow_start_batch, Expectations,
};
use crate::events::{EventType, Recorder};
use crate::history::POD_REVISION_LABEL;
use crate::informers::Change;
use crate::runtime::{self, api_message, Error, Queue, Result};

/// The controller's name (`--controllers`, events' source, queue metrics).
pub const NAME: &str = "daemonset-controller";

/// At most this many pods are created or deleted by one sync (upstream's `BurstReplicas`).
const BURST_REPLICAS: usize = 250;
/// Upstream's failed-pod back-off per DaemonSet and node: 1 s doubling to 15 minutes.
const FAILED_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const FAILED_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

struct Context {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    daemon_sets: Store<DaemonSet>,
    revisions: Store<ControllerRevision>,
    expectations: Expectations,
    failed_backoff: FailedPodBackoff,
    recorder: Recorder,
    queue: Queue<DaemonSet>,
}

/// Wires the controller to the shared informers and starts it.
pub fn start(ctx: &ControllerContext) {
    let pods = ctx.informers.get::<Pod>();
    let nodes = ctx.informers.get::<Node>();
    let daemon_sets = ctx.informers.get::<DaemonSet>();
    let revisions = ctx.informers.get::<ControllerRevision>();
    let (queue, triggers) = Queue::new(NAME);
    let context = Arc::new(Context {
        client: ctx.client_for(NAME),
        pods: pods.store(),
        nodes: nodes.store(),
        daemon_sets: daemon_sets.store(),
        revisions: revisions.store(),
        expectations: Expectations::default(),
        failed_backoff: FailedPodBackoff::default(),
        recorder: ctx.events.recorder(NAME),
        queue: queue.clone(),
    });
    tokio::spawn(watch_daemon_sets(context.clone(), daemon_sets.subscribe()));
    tokio::spawn(watch_pods(context.clone(), pods.subscribe()));
    tokio::spawn(watch_nodes(context.clone(), nodes.subscribe()));
    tokio::spawn(watch_revisions(context.clone(), revisions.subscribe()));
    let controller = runtime::Controller {
        queue,
        triggers,
        store: context.daemon_sets.clone(),
        caches: vec![
            daemon_sets.synced(),
            pods.synced(),
            nodes.synced(),
            revisions.synced(),
        ],
        workers: ctx.options.concurrent_daemonset_syncs,
    };
    tokio::spawn(controller.run(context, reconcile));
}

async fn watch_daemon_sets(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<DaemonSet>>) {
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied { new, .. } => ctx.queue.add_object(&new),
            Change::Deleted(gone) => ctx.expectations.forget(&key_of(&*gone)),
        }
    }
}

async fn watch_pods(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<Pod>>) {
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

fn pod_added(ctx: &Context, pod: &Pod) {
    if pod.metadata.deletion_timestamp.is_some() {
        pod_deleted(ctx, pod);
        return;
    }
    match controller_of(&pod.metadata) {
        Some(reference) => {
            if let Some(ds) = ctx.resolve(pod.namespace().as_deref(), reference) {
                ctx.expectations.creation_observed(&key_of(&*ds));
                ctx.queue.add_object(&ds);
            }
        }
        None => {
            for ds in ctx.selecting(pod.namespace().as_deref(), &pod.metadata) {
                ctx.queue.add_object(&ds);
            }
        }
    }
}

fn pod_updated(ctx: &Context, old: &Pod, new: &Pod) {
    if old.resource_version() == new.resource_version() {
        return;
    }
    if new.metadata.deletion_timestamp.is_some() {
        pod_deleted(ctx, new);
        return;
    }
    let old_ref = controller_of(&old.metadata);
    let new_ref = controller_of(&new.metadata);
    if old_ref != new_ref {
        if let Some(ds) = old_ref.and_then(|r| ctx.resolve(old.namespace().as_deref(), r)) {
            ctx.queue.add_object(&ds);
        }
    }
    match new_ref.and_then(|r| ctx.resolve(new.namespace().as_deref(), r)) {
        Some(ds) => {
            ctx.queue.add_object(&ds);
            let min_ready = min_ready_seconds(&ds);
            if min_ready > 0 && !is_pod_ready(old) && is_pod_ready(new) {
                ctx.queue.add_after(
                    ObjectRef::from_obj(&*ds),
                    Duration::from_secs(min_ready as u64 + 1),
                );
            }
        }
        None if new_ref.is_none()
            && (old.metadata.labels != new.metadata.labels || old_ref.is_some()) =>
        {
            for ds in ctx.selecting(new.namespace().as_deref(), &new.metadata) {
                ctx.queue.add_object(&ds);
            }
        }
        None => {}
    }
}

fn pod_deleted(ctx: &Context, pod: &Pod) {
    let Some(reference) = controller_of(&pod.metadata) else {
        return;
    };
    if let Some(ds) = ctx.resolve(pod.namespace().as_deref(), reference) {
        ctx.expectations
            .deletion_observed(&key_of(&*ds), &key_of(pod));
        ctx.queue.add_object(&ds);
    }
}

async fn watch_nodes(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<Node>>) {
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied { old, new } => {
                for ds in ctx.daemon_sets.state() {
                    // Only a change of what decides placement matters: heartbeats do not.
                    let now = should_run(&new, &ds);
                    if old.as_ref().is_none_or(|old| should_run(old, &ds) != now) {
                        ctx.queue.add_object(&ds);
                    }
                }
            }
            // Its pods' counts change; they are garbage-collected with the node.
            Change::Deleted(_) => {
                for ds in ctx.daemon_sets.state() {
                    ctx.queue.add_object(&ds);
                }
            }
        }
    }
}

async fn watch_revisions(
    ctx: Arc<Context>,
    mut changes: UnboundedReceiver<Change<ControllerRevision>>,
) {
    while let Some(change) = changes.next().await {
        let revision = match &change {
            Change::Applied { new, .. } => new.clone(),
            Change::Deleted(gone) => gone.clone(),
        };
        let namespace = revision.namespace();
        match controller_of(&revision.metadata) {
            Some(reference) => {
                if let Some(ds) = ctx.resolve(namespace.as_deref(), reference) {
                    ctx.queue.add_object(&ds);
                }
            }
            None => {
                for ds in ctx.selecting(namespace.as_deref(), &revision.metadata) {
                    ctx.queue.add_object(&ds);
                }
            }
        }
    }
}

impl Context {
    /// The DaemonSet a controller reference points to, if it is that very object.
    fn resolve(
        &self,
        namespace: Option<&str>,
        reference: &OwnerReference,
    ) -> Option<Arc<DaemonSet>> {
        if reference.kind != "DaemonSet" || !reference.api_version.starts_with("apps/") {
            return None;
        }
        let key = ObjectRef::new(&reference.name).within(namespace.unwrap_or_default());
        self.daemon_sets
            .get(&key)
            .filter(|ds| ds.uid().as_deref() == Some(reference.uid.as_str()))
    }

    /// DaemonSets in `namespace` whose non-empty selector matches `meta`: an orphan's
    /// possible adopters.
    fn selecting(&self, namespace: Option<&str>, meta: &ObjectMeta) -> Vec<Arc<DaemonSet>> {
        self.daemon_sets
            .state()
            .into_iter()
            .filter(|ds| ds.namespace().as_deref() == namespace)
            .filter(|ds| {
                let Some(spec) = &ds.spec else { return false };
                !selects_everything(ds) && selector(&spec.selector).is_ok_and(|s| matches(&s, meta))
            })
            .collect()
    }
}

fn selects_everything(ds: &DaemonSet) -> bool {
    ds.spec.as_ref().is_none_or(|s| {
        s.selector
            .match_labels
            .as_ref()
            .is_none_or(|l| l.is_empty())
            && s.selector
                .match_expressions
                .as_ref()
                .is_none_or(|e| e.is_empty())
    })
}

fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// Made from the current template: its revision hash, or its template generation
/// (upstream's `IsPodUpdated`).
fn is_updated(pod: &Pod, hash: &str, ds: &DaemonSet) -> bool {
    let labels = pod.labels();
    let generation_matches = template_generation(ds)
        .is_some_and(|g| labels.get(placement::TEMPLATE_GENERATION_LABEL) == Some(&g.to_string()));
    let hash_matches =
        !hash.is_empty() && labels.get(POD_REVISION_LABEL).map(String::as_str) == Some(hash);
    hash_matches || generation_matches
}

/// Upstream's `podByCreationTimestampAndPhase`: bound pods first, then oldest, then name.
fn by_age(pods: &mut [Arc<Pod>]) {
    let bound = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some_and(|n| !n.is_empty())
    };
    pods.sort_by(|a, b| {
        bound(b)
            .cmp(&bound(a))
            .then_with(|| {
                let created = |p: &Pod| p.metadata.creation_timestamp.clone();
                created(a).cmp(&created(b))
            })
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Context>) -> Result<Action> {
    let key = key_of(&*ds);
    if selects_everything(&ds) {
        ctx.recorder.event(
            &*ds,
            EventType::Warning,
            "SelectingAll",
            "This daemon set is selecting all pods. A non-empty selector is required.".into(),
        );
        return Ok(Action::await_change());
    }
    // Its revisions may be going with it: no reliable status to compute.
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let nodes = ctx.nodes.state();
    let (current, old) = revisions::construct(&ctx, &ds).await?;
    let hash = current
        .labels()
        .get(POD_REVISION_LABEL)
        .cloned()
        .unwrap_or_default();
    if !ctx.expectations.satisfied(&key) {
        let by_node = ctx.pods_by_node(&ds, false).await?;
        update_status(&ctx, &ds, &nodes, &by_node, &hash, false).await?;
        return Ok(Action::await_change());
    }
    let synced = sync(&ctx, &ds, &nodes, &hash, old).await;
    let by_node = ctx.pods_by_node(&ds, false).await?;
    let status = update_status(&ctx, &ds, &nodes, &by_node, &hash, true).await;
    synced?;
    let requeue = status?;
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Upstream's `updateDaemonSet`: manage the pods per node, then (expectations allowing) take
/// a step of the update strategy, then prune the history.
async fn sync(
    ctx: &Context,
    ds: &Arc<DaemonSet>,
    nodes: &[Arc<Node>],
    hash: &str,
    old: Vec<Arc<ControllerRevision>>,
) -> Result<()> {
    let key = key_of(&**ds);
    let by_node = ctx.pods_by_node(ds, false).await?;
    let (create, delete) = ctx.manage(ds, nodes, &by_node, hash);
    sync_nodes(ctx, ds, delete, create, hash).await?;
    if ctx.expectations.satisfied(&key) {
        let strategy = ds
            .spec
            .as_ref()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|s| s.type_.as_deref());
        if strategy == Some("RollingUpdate") {
            let by_node = ctx.pods_by_node(ds, false).await?;
            let step = rolling::step(ds, nodes, by_node, hash)?;
            sync_nodes(ctx, ds, step.delete, step.create, hash).await?;
        }
    }
    let live: HashSet<String> = ctx
        .pods_by_node(ds, true)
        .await?
        .values()
        .flatten()
        .filter_map(|p| p.labels().get(POD_REVISION_LABEL).cloned())
        .collect();
    revisions::cleanup(ctx, ds, old, &live).await
}

impl Context {
    /// The DaemonSet's pods (claimed: matching orphans adopted, controlled pods that stopped
    /// matching released) by the node each is for; terminal pods being deleted are left out
    /// unless `with_deleted_terminal`.
    async fn pods_by_node(
        &self,
        ds: &Arc<DaemonSet>,
        with_deleted_terminal: bool,
    ) -> Result<BTreeMap<String, Vec<Arc<Pod>>>> {
        let namespace = ds.namespace().unwrap_or_default();
        let spec = ds.spec.clone().unwrap_or_default();
        let selector = selector(&spec.selector)?;
        let candidates: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(namespace.as_str()))
            .collect();
        let ds_api: Api<DaemonSet> = Api::namespaced(self.client.clone(), &namespace);
        let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let (pods, mut errors) = claim(&**ds, &ds_api, &pod_api, &selector, candidates).await;
        if !errors.is_empty() {
            return Err(errors.swap_remove(0));
        }
        let mut by_node: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
        for pod in pods {
            if !with_deleted_terminal
                && is_pod_terminal(&pod)
                && pod.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            if let Some(node) = target_node(&pod) {
                by_node.entry(node).or_default().push(pod);
            }
        }
        Ok(by_node)
    }

    /// Upstream's `manage`: the nodes needing a pod and the pods to delete, node by node
    /// (`podsShouldBeOnNode`), plus unscheduled pods for nodes that are gone.
    fn manage(
        &self,
        ds: &Arc<DaemonSet>,
        nodes: &[Arc<Node>],
        by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
        hash: &str,
    ) -> (Vec<String>, Vec<String>) {
        let mut create = Vec::new();
        let mut delete = Vec::new();
        let surge = allows_surge(ds);
        for node in nodes {
            let name = node.name_any();
            let pods = by_node.get(&name).cloned().unwrap_or_default();
            let (should, may_continue) = should_run(node, ds);
            if should && pods.is_empty() {
                create.push(name);
                continue;
            }
            if !may_continue {
                delete.extend(
                    pods.iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none())
                        .map(|p| p.name_any()),
                );
                continue;
            }
            let mut running = Vec::new();
            for pod in pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
            {
                match phase(pod) {
                    "Failed" => {
                        let backoff_key = format!("{}/{name}", ds.uid().unwrap_or_default());
                        if let Some(delay) = self.failed_backoff.wait(&backoff_key) {
                            self.queue.add_after(ObjectRef::from_obj(&**ds), delay);
                            continue;
                        }
                        self.recorder.event(
                            &**ds,
                            EventType::Warning,
                            "FailedDaemonPod",
                            format!(
                                "Found failed daemon pod {}/{} on node {name}, will try to kill it",
                                pod.namespace().unwrap_or_default(),
                                pod.name_any()
                            ),
                        );
                        delete.push(pod.name_any());
                    }
                    "Succeeded" => {
                        self.recorder.event(
                            &**ds,
                            EventType::Normal,
                            "SucceededDaemonPod",
                            format!(
                                "Found succeeded daemon pod {}/{} on node {name}, will try to delete it",
                                pod.namespace().unwrap_or_default(),
                                pod.name_any()
                            ),
                        );
                        delete.push(pod.name_any());
                    }
                    _ => running.push(pod.clone()),
                }
            }
            by_age(&mut running);
            if !surge {
                // One pod per node: all but the oldest go.
                delete.extend(running.iter().skip(1).map(|p| p.name_any()));
                continue;
            }
            if running.is_empty() {
                if should {
                    create.push(name);
                }
                continue;
            }
            // With surge, an old and a new pod may share a node while the new one is
            // not yet available; everything else beyond the oldest of each goes.
            let min_ready = min_ready_seconds(ds);
            let (mut oldest_new, mut oldest_old) = (None, None);
            for pod in running {
                let slot = if pod.labels().get(POD_REVISION_LABEL).map(String::as_str) == Some(hash)
                {
                    &mut oldest_new
                } else {
                    &mut oldest_old
                };
                if slot.is_none() {
                    *slot = Some(pod);
                } else {
                    delete.push(pod.name_any());
                }
            }
            if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
                if !is_pod_ready(&old) || is_pod_available(&new, min_ready, Timestamp::now()) {
                    delete.push(old.name_any());
                }
            }
        }
        // Unscheduled pods for nodes that no longer exist would never be scheduled, and
        // pod garbage collection only removes bound ones.
        let existing: HashSet<String> = nodes.iter().map(|n| n.name_any()).collect();
        for (node, pods) in by_node {
            if existing.contains(node) {
                continue;
            }
            delete.extend(
                pods.iter()
                    .filter(|p| {
                        p.spec
                            .as_ref()
                            .and_then(|s| s.node_name.as_ref())
                            .is_none_or(|n| n.is_empty())
                    })
                    .map(|p| p.name_any()),
            );
        }
        (create, delete)
    }
}

/// Whether the RollingUpdate strategy surges (upstream's `AllowsSurge`).
fn allows_surge(ds: &DaemonSet) -> bool {
    let rolling = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .filter(|s| s.type_.as_deref() == Some("RollingUpdate"))
        .and_then(|s| s.rolling_update.as_ref());
    rolling
        .and_then(|r| r.max_surge.as_ref())
        .and_then(|s| crate::controllers::deployment::scaled_value(s, 1, true).ok())
        .is_some_and(|s| s != 0)
}

/// Upstream's `syncNodes`: expectations first, then the creations in slow-start batches
/// (each pod pinned to its node) and the deletions, at most 250 of each per sync.
async fn sync_nodes(
    ctx: &Context,
    ds: &Arc<DaemonSet>,
    mut delete: Vec<String>,
    mut create: Vec<String>,
    hash: &str,
) -> Result<()> {
    if create.is_empty() && delete.is_empty() {
        return Ok(());
    }
    let key = key_of(&**ds);
    let namespace = ds.namespace().unwrap_or_default();
    create.truncate(BURST_REPLICAS);
    delete.truncate(BURST_REPLICAS);
    ctx.expectations.expect(
        &key,
        create.len(),
        delete.iter().map(|n| format!("{namespace}/{n}")).collect(),
    );
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let template = pod_template(ds, hash);
    let next = Mutex::new(create.iter());
    let (created, create_error) = slow_start_batch(create.len(), || {
        let node = next
            .lock()
            .expect("nodes")
            .next()
            .cloned()
            .unwrap_or_default();
        let mut spec = template.spec.clone().unwrap_or_default();
        pin_to_node(&mut spec, &node);
        let meta = template.metadata.clone().unwrap_or_default();
        let pod = Pod {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}-", ds.name_any())),
                namespace: Some(namespace.clone()),
                labels: meta.labels,
                annotations: meta.annotations,
                finalizers: meta.finalizers,
                owner_references: Some(vec![controller_ref(&**ds)]),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
            status: None,
        };
        let pod_api = &pod_api;
        async move { create_pod(&ctx.recorder, &**ds, pod_api, &pod).await }
    })
    .await;
    for _ in created..create.len() {
        ctx.expectations.creation_observed(&key);
    }
    let deletions = delete.iter().map(|name| {
        let pod_api = &pod_api;
        let key = &key;
        let namespace = &namespace;
        async move {
            match pod_api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {
                    ctx.recorder.event(
                        &**ds,
                        EventType::Normal,
                        "SuccessfulDelete",
                        format!("Deleted pod: {name}"),
                    );
                    Ok(())
                }
                Err(error) => {
                    ctx.expectations
                        .deletion_observed(key, &format!("{namespace}/{name}"));
                    if matches!(&error, kube::Error::Api(s) if s.code == 404) {
                        return Ok(());
                    }
                    ctx.recorder.event(
                        &**ds,
                        EventType::Warning,
                        "FailedDelete",
                        format!("Error deleting: {}", api_message(&error)),
                    );
                    Err(Error::from(error))
                }
            }
        }
    });
    let delete_error = futures::future::join_all(deletions)
        .await
        .into_iter()
        .find_map(|r| r.err());
    match create_error.or(delete_error) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Upstream's `updateDaemonSetStatus`: the counts over the nodes that should run a pod
/// (the oldest pod of each node judged), written when changed; `observedGeneration` only
/// when this sync acted on the generation. Returns when to look again for pods turning
/// available after `minReadySeconds`.
async fn update_status(
    ctx: &Context,
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
    hash: &str,
    observe_generation: bool,
) -> Result<Option<Duration>> {
    let min_ready = min_ready_seconds(ds);
    let now = Timestamp::now();
    let mut status = ds.status.clone().unwrap_or_default();
    let (mut desired, mut current, mut misscheduled) = (0, 0, 0);
    let (mut ready, mut available, mut updated) = (0, 0, 0);
    for node in nodes {
        let (should, _) = should_run(node, ds);
        let mut pods = by_node.get(&node.name_any()).cloned().unwrap_or_default();
        if !should {
            if !pods.is_empty() {
                misscheduled += 1;
            }
            continue;
        }
        desired += 1;
        if pods.is_empty() {
            continue;
        }
        current += 1;
        by_age(&mut pods);
        let pod = &pods[0];
        if is_pod_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready, now) {
                available += 1;
            }
        }
        if is_updated(pod, hash, ds) {
            updated += 1;
        }
    }
    let nonzero = |n: i32| (n != 0).then_some(n);
    let before = status.clone();
    status.desired_number_scheduled = desired;
    status.current_number_scheduled = current;
    status.number_misscheduled = misscheduled;
    status.number_ready = ready;
    status.updated_number_scheduled = nonzero(updated);
    status.number_available = nonzero(available);
    status.number_unavailable = nonzero(desired - available);
    if observe_generation {
        status.observed_generation = ds.metadata.generation;
    }
    let requeue =
        (min_ready > 0 && ready != available).then(|| Duration::from_secs(min_ready as u64));
    if status == before {
        return Ok(requeue);
    }
    let api: Api<DaemonSet> =
        Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
    let mut updated_ds = ds.clone();
    updated_ds.status = Some(status.clone());
    match api
        .replace_status(&ds.name_any(), &PostParams::default(), &updated_ds)
        .await
    {
        Ok(_) => Ok(requeue),
        // One retry on a fresh copy, as upstream's `StatusUpdateRetries`.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let mut fresh = api.get(&ds.name_any()).await?;
            let kept = fresh.status.clone().unwrap_or_default();
            fresh.status = Some(DaemonSetStatus {
                collision_count: kept.collision_count,
                conditions: kept.conditions,
                ..status
            });
            api.replace_status(&ds.name_any(), &PostParams::default(), &fresh)
                .await?;
            Ok(requeue)
        }
        Err(error) => Err(error.into()),
    }
}

/// Upstream's `failedPodsBackoff` (client-go's `flowcontrol.Backoff`): per DaemonSet and
/// node, deleting a failed pod waits 1 s, doubling to 15 minutes, so a node that keeps
/// failing daemon pods (a kubelet refusing them) is not hot-looped; reset after twice the
/// maximum without a failure.
#[derive(Default)]
struct FailedPodBackoff {
    entries: Mutex<HashMap<String, (Duration, Instant)>>,
}

impl FailedPodBackoff {
    /// `None` when a failed pod may be deleted now (the back-off then grows); otherwise how
    /// long to wait.
    fn wait(&self, key: &str) -> Option<Duration> {
        let mut entries = self.entries.lock().expect("backoff");
        let now = Instant::now();
        match entries.get_mut(key) {
            Some((delay, since)) if now.duration_since(*since) < *delay => {
                Some(*delay - now.duration_since(*since))
            }
            Some((delay, since)) => {
                *delay = if now.duration_since(*since) > 2 * FAILED_BACKOFF_MAX {
                    FAILED_BACKOFF_INITIAL
                } else {
                    (*delay * 2).min(FAILED_BACKOFF_MAX)
                };
                *since = now;
                None
            }
            None => {
                entries.insert(key.to_string(), (FAILED_BACKOFF_INITIAL, now));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_pod_deletions_back_off_per_node() {
        let backoff = FailedPodBackoff::default();
        assert_eq!(backoff.wait("ds/n1"), None);
        assert!(backoff
            .wait("ds/n1")
            .is_some_and(|d| d <= FAILED_BACKOFF_INITIAL));
        assert_eq!(backoff.wait("ds/n2"), None);
    }
}
