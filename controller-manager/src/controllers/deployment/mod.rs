//! The Deployment controller (upstream `pkg/controller/deployment`): rolls a pod template out
//! through ReplicaSets, one per template revision, named and selected by the template's
//! `pod-template-hash`. RollingUpdate moves replicas from the old ReplicaSets to the new one
//! within `maxSurge` and `maxUnavailable`; Recreate scales the old ones to zero first. It
//! scales proportionally when a Deployment is resized mid-rollout, keeps
//! `revisionHistoryLimit` old ReplicaSets, honours pause, and reports progress through the
//! `Available` and `Progressing` conditions (`ProgressDeadlineExceeded` after
//! `progressDeadlineSeconds` without progress) that `kubectl rollout status` reads.
//!
//! Split along upstream's seams so each piece can be read against its counterpart: this
//! module wires the informers and dispatches a sync; `sync` holds what every strategy
//! shares (new ReplicaSet, revisions, resizes, history), `rolling` and `recreate` the two
//! strategies, `progress` the status and conditions, `revision` template hashing and
//! revision annotations, `util` the replica arithmetic.

mod progress;
mod recreate;
mod revision;
mod rolling;
mod sync;
mod util;

pub(crate) use revision::compute_hash;
pub(crate) use util::scaled_value;

use std::sync::Arc;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use self::util::{all, selects_nothing_in_particular, strategy_type};
use super::ControllerContext;
use crate::controller_utils::{claim, controller_of, matches, selector};
use crate::events::{EventType, Recorder};
use crate::informers::Change;
use crate::runtime::{self, Queue, Result};

/// The controller's name (`--controllers`, events' source, queue metrics).
pub const NAME: &str = "deployment-controller";

struct Context {
    client: Client,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    deployments: Store<Deployment>,
    recorder: Recorder,
    queue: Queue<Deployment>,
}

/// Wires the controller to the shared informers and starts it.
pub fn start(ctx: &ControllerContext) {
    let deployments = ctx.informers.get::<Deployment>();
    let replica_sets = ctx.informers.get::<ReplicaSet>();
    let pods = ctx.informers.get::<Pod>();
    let (queue, triggers) = Queue::new(NAME);
    let context = Arc::new(Context {
        client: ctx.client_for(NAME),
        replica_sets: replica_sets.store(),
        pods: pods.store(),
        deployments: deployments.store(),
        recorder: ctx.events.recorder(NAME),
        queue: queue.clone(),
    });
    tokio::spawn(watch_deployments(context.clone(), deployments.subscribe()));
    tokio::spawn(watch_replica_sets(
        context.clone(),
        replica_sets.subscribe(),
    ));
    tokio::spawn(watch_pods(context.clone(), pods.subscribe()));
    let controller = runtime::Controller {
        queue,
        triggers,
        store: context.deployments.clone(),
        caches: vec![deployments.synced(), replica_sets.synced(), pods.synced()],
        workers: ctx.options.concurrent_deployment_syncs,
    };
    tokio::spawn(controller.run(context, reconcile));
}

async fn watch_deployments(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<Deployment>>) {
    while let Some(change) = changes.next().await {
        if let Change::Applied { new, .. } = change {
            ctx.queue.add_object(&new);
        }
    }
}

async fn watch_replica_sets(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<ReplicaSet>>) {
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied { old: None, new } => {
                if let Some(reference) = controller_of(&new.metadata) {
                    ctx.enqueue_owner(&new, reference);
                } else if new.metadata.deletion_timestamp.is_none() {
                    ctx.enqueue_matching(&new);
                }
            }
            Change::Applied {
                old: Some(old),
                new,
            } => {
                if old.resource_version() == new.resource_version() {
                    continue;
                }
                let (old_ref, new_ref) =
                    (controller_of(&old.metadata), controller_of(&new.metadata));
                if old_ref != new_ref {
                    if let Some(reference) = old_ref {
                        ctx.enqueue_owner(&old, reference);
                    }
                }
                match new_ref {
                    Some(reference) => ctx.enqueue_owner(&new, reference),
                    None if old_ref != new_ref || old.metadata.labels != new.metadata.labels => {
                        ctx.enqueue_matching(&new)
                    }
                    None => {}
                }
            }
            Change::Deleted(gone) => {
                if let Some(reference) = controller_of(&gone.metadata) {
                    ctx.enqueue_owner(&gone, reference);
                }
            }
        }
    }
}

/// A Recreate rollout waits for the old pods to be gone; their deletion is its cue.
async fn watch_pods(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<Pod>>) {
    while let Some(change) = changes.next().await {
        let Change::Deleted(pod) = change else {
            continue;
        };
        let namespace = pod.namespace().unwrap_or_default();
        let Some(rs_ref) = controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
            continue;
        };
        let Some(rs) = ctx
            .replica_sets
            .get(&ObjectRef::new(&rs_ref.name).within(&namespace))
        else {
            continue;
        };
        if let Some(d) = controller_of(&rs.metadata).and_then(|r| ctx.resolve(&namespace, r)) {
            if strategy_type(&d) == "Recreate" {
                ctx.queue.add_object(&d);
            }
        }
    }
}

impl Context {
    fn resolve(&self, namespace: &str, reference: &OwnerReference) -> Option<Arc<Deployment>> {
        if reference.kind != "Deployment" {
            return None;
        }
        let key = ObjectRef::new(&reference.name).within(namespace);
        self.deployments
            .get(&key)
            .filter(|d| d.uid().as_deref() == Some(reference.uid.as_str()))
    }

    fn enqueue_owner(&self, rs: &ReplicaSet, reference: &OwnerReference) {
        if let Some(d) = self.resolve(&rs.namespace().unwrap_or_default(), reference) {
            self.queue.add_object(&d);
        }
    }

    /// An orphan ReplicaSet: the Deployments that select it may adopt it.
    fn enqueue_matching(&self, rs: &ReplicaSet) {
        let namespace = rs.namespace();
        for d in self.deployments.state() {
            if d.namespace() != namespace {
                continue;
            }
            let Some(spec) = &d.spec else { continue };
            if !selects_nothing_in_particular(&spec.selector)
                && selector(&spec.selector).is_ok_and(|s| matches(&s, &rs.metadata))
            {
                self.queue.add_object(&d);
            }
        }
    }
}

/// One sync of one Deployment, with the API handles it writes through.
struct Sync<'a> {
    ctx: &'a Context,
    deployments: Api<Deployment>,
    replica_sets: Api<ReplicaSet>,
    d: Deployment,
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = d.namespace().unwrap_or_default();
    let mut sync = Sync {
        ctx: &ctx,
        deployments: Api::namespaced(ctx.client.clone(), &namespace),
        replica_sets: Api::namespaced(ctx.client.clone(), &namespace),
        d: (*d).clone(),
    };
    let spec = d.spec.clone().unwrap_or_default();
    if selects_nothing_in_particular(&spec.selector) {
        let message =
            "This deployment is selecting all pods. A non-empty selector is required.".to_string();
        ctx.recorder
            .event(&*d, EventType::Warning, "SelectingAll", message);
        let status = sync.d.status.get_or_insert_with(Default::default);
        if status.observed_generation < d.metadata.generation {
            status.observed_generation = d.metadata.generation;
            sync.write_status().await?;
        }
        return Ok(Action::await_change());
    }
    let rs_list = sync.claim_replica_sets().await?;
    if d.metadata.deletion_timestamp.is_some() {
        let (new_rs, old_rss) = sync.new_and_old(&rs_list, false).await?;
        sync.sync_status(&all(&new_rs, &old_rss), new_rs.as_deref())
            .await?;
        return Ok(Action::await_change());
    }
    sync.check_paused_conditions().await?;
    if spec.paused == Some(true) || sync.is_scaling_event(&rs_list).await? {
        sync.scale_and_sync(&rs_list).await?;
        return Ok(Action::await_change());
    }
    if strategy_type(&d) == "Recreate" {
        sync.rollout_recreate(&rs_list).await
    } else {
        sync.rollout_rolling(&rs_list).await
    }
}

impl Sync<'_> {
    fn replicas(&self) -> i32 {
        util::replicas(&self.d)
    }

    fn min_ready_seconds(&self) -> Option<i32> {
        self.d.spec.as_ref().and_then(|s| s.min_ready_seconds)
    }

    fn template(&self) -> PodTemplateSpec {
        self.d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default()
    }

    fn status(&mut self) -> &mut DeploymentStatus {
        self.d.status.get_or_insert_with(Default::default)
    }

    /// The ReplicaSets this Deployment controls after adopting and releasing by selector.
    async fn claim_replica_sets(&self) -> Result<Vec<Arc<ReplicaSet>>> {
        let spec = self.d.spec.clone().unwrap_or_default();
        let selector = selector(&spec.selector)?;
        let namespace = self.d.namespace();
        let candidates: Vec<Arc<ReplicaSet>> = self
            .ctx
            .replica_sets
            .state()
            .into_iter()
            .filter(|rs| rs.namespace() == namespace)
            .collect();
        let (claimed, mut errors) = claim(
            &self.d,
            &self.deployments,
            &self.replica_sets,
            &selector,
            candidates,
        )
        .await;
        if errors.is_empty() {
            Ok(claimed)
        } else {
            Err(errors.swap_remove(0))
        }
    }

    async fn write_status(&mut self) -> Result<()> {
        self.d = self
            .deployments
            .replace_status(&self.d.name_any(), &PostParams::default(), &self.d)
            .await?;
        Ok(())
    }
}
