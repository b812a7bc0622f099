//! The StatefulSet controller (upstream `pkg/controller/statefulset`): pods with stable
//! ordinal names and claims, created in order and each waiting for its predecessors to be
//! Running and Ready (`OrderedReady`) or all at once (`Parallel`), removed in reverse order,
//! and rolled to new templates from the highest ordinal down to the `partition`. The
//! templates are kept as ControllerRevisions (see [`crate::history`]): pods name the revision
//! that made them, and the status says which revision is current and which is being rolled
//! out.

mod identity;
mod sync;

use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};

use super::ControllerContext;
use crate::controller_utils::{controller_of, is_pod_ready, matches, selector};
use crate::events::Recorder;
use crate::informers::Change;
use crate::runtime::{self, Queue};

/// The controller's name (`--controllers`, events' source, queue metrics).
pub const NAME: &str = "statefulset-controller";

struct Context {
    client: Client,
    pods: Store<Pod>,
    sets: Store<StatefulSet>,
    revisions: Store<ControllerRevision>,
    claims: Store<PersistentVolumeClaim>,
    recorder: Recorder,
    queue: Queue<StatefulSet>,
}

/// Wires the controller to the shared informers and starts it.
pub fn start(ctx: &ControllerContext) {
    let pods = ctx.informers.get::<Pod>();
    let sets = ctx.informers.get::<StatefulSet>();
    let revisions = ctx.informers.get::<ControllerRevision>();
    let claims = ctx.informers.get::<PersistentVolumeClaim>();
    let (queue, triggers) = Queue::new(NAME);
    let context = Arc::new(Context {
        client: ctx.client_for(NAME),
        pods: pods.store(),
        sets: sets.store(),
        revisions: revisions.store(),
        claims: claims.store(),
        recorder: ctx.events.recorder(NAME),
        queue: queue.clone(),
    });
    tokio::spawn(watch_sets(context.clone(), sets.subscribe()));
    tokio::spawn(watch_pods(context.clone(), pods.subscribe()));
    tokio::spawn(watch_revisions(context.clone(), revisions.subscribe()));
    let controller = runtime::Controller {
        queue,
        triggers,
        store: context.sets.clone(),
        caches: vec![
            sets.synced(),
            pods.synced(),
            revisions.synced(),
            claims.synced(),
        ],
        workers: ctx.options.concurrent_statefulset_syncs,
    };
    tokio::spawn(controller.run(context, sync::reconcile));
}

async fn watch_sets(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<StatefulSet>>) {
    while let Some(change) = changes.next().await {
        if let Change::Applied { new, .. } = change {
            ctx.queue.add_object(&new);
        }
    }
}

async fn watch_pods(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<Pod>>) {
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied { old, new } => {
                if let Some(old) = &old {
                    if old.resource_version() == new.resource_version() {
                        continue;
                    }
                    if controller_of(&old.metadata) != controller_of(&new.metadata) {
                        ctx.enqueue_owner_or_matching(old);
                    }
                    ctx.requeue_when_available(old, &new);
                }
                ctx.enqueue_owner_or_matching(&new);
            }
            Change::Deleted(gone) => ctx.enqueue_owner_or_matching(&gone),
        }
    }
}

async fn watch_revisions(
    ctx: Arc<Context>,
    mut changes: UnboundedReceiver<Change<ControllerRevision>>,
) {
    while let Some(change) = changes.next().await {
        let revision = match change {
            Change::Applied { new, .. } => new,
            Change::Deleted(gone) => gone,
        };
        if let Some(set) =
            controller_of(&revision.metadata).and_then(|r| ctx.resolve(&*revision, r))
        {
            ctx.queue.add_object(&set);
        }
    }
}

impl Context {
    /// The StatefulSet a controller reference points to, if it is that very object.
    fn resolve<K: Resource>(
        &self,
        child: &K,
        reference: &OwnerReference,
    ) -> Option<Arc<StatefulSet>> {
        if reference.kind != "StatefulSet" || !reference.api_version.starts_with("apps/") {
            return None;
        }
        let key = ObjectRef::new(&reference.name).within(&child.namespace().unwrap_or_default());
        self.sets
            .get(&key)
            .filter(|set| set.uid().as_deref() == Some(reference.uid.as_str()))
    }

    /// Its controlling set, or for an orphan every set that may adopt it.
    fn enqueue_owner_or_matching(&self, pod: &Pod) {
        if let Some(reference) = controller_of(&pod.metadata) {
            if let Some(set) = self.resolve(pod, reference) {
                self.queue.add_object(&set);
            }
            return;
        }
        let namespace = pod.namespace();
        for set in self.sets.state() {
            if set.namespace() != namespace {
                continue;
            }
            let Some(spec) = &set.spec else { continue };
            if selector(&spec.selector).is_ok_and(|s| !s.is_empty() && matches(&s, &pod.metadata)) {
                self.queue.add_object(&set);
            }
        }
    }

    /// A pod that just became ready is available `minReadySeconds` later: look again then.
    fn requeue_when_available(&self, old: &Pod, new: &Pod) {
        if is_pod_ready(old) || !is_pod_ready(new) {
            return;
        }
        let Some(set) = controller_of(&new.metadata).and_then(|r| self.resolve(new, r)) else {
            return;
        };
        let min_ready = identity::min_ready_seconds(&set);
        if min_ready > 0 {
            self.queue.add_after(
                ObjectRef::from_obj(&*set),
                Duration::from_secs(min_ready as u64 + 1),
            );
        }
    }
}
