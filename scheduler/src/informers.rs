//! Watches feeding the scheduler, through the shared informers of `machinery::informers`:
//! nodes and pods into the cache and queue (with the cluster events they represent),
//! namespaces for affinity namespace selectors, the ReplicaSets and Services whose
//! selectors drive default spreading, and the PodDisruptionBudgets preemption respects. The informers' store holds the pods and nodes the cache
//! refers to (shared, not copied), and a relist after a watch gap reports objects that
//! disappeared meanwhile as deleted.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::{Resource, ResourceExt};
use machinery::informers::{Change, Informer, Informers};
use machinery::selector::Selector;
use tokio::sync::oneshot;

use crate::plugins::ClusterEvent;
use crate::pod_info::PodInfo;
use crate::scheduler::Scheduler;

/// Hands every change of `informer` to `handle`, in order; `synced` fires once the first list
/// has been handled (not merely received), so scheduling never starts from a partial view.
/// Subscribes at once, so it must be called before the informers start.
fn feed<K>(
    informer: &Informer<K>,
    mut handle: impl FnMut(Change<K>) + Send + 'static,
    synced: oneshot::Sender<()>,
) -> impl Future<Output = ()> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let mut changes = informer.subscribe();
    let mut listed = informer.synced();
    async move {
        let mut synced = Some(synced);
        loop {
            tokio::select! {
                biased;
                change = changes.next() => match change {
                    Some(change) => handle(change),
                    None => return,
                },
                () = &mut listed, if synced.is_some() => {
                    // The informer publishes the whole first list before it reports it synced.
                    while let Ok(change) = changes.try_recv() {
                        handle(change);
                    }
                    if let Some(synced) = synced.take() {
                        let _ = synced.send(());
                    }
                }
            }
        }
    }
}

fn on_node(scheduler: &Scheduler, node: Arc<Node>) {
    let events = scheduler.cache().update_node(node);
    for event in events {
        requeue(scheduler, event);
    }
}

fn requeue(scheduler: &Scheduler, event: ClusterEvent) {
    let moved = scheduler.queue.on_event(event);
    if moved > 0 {
        scheduler
            .metrics
            .queue_incoming
            .with_label_values(&["active", event.name()])
            .inc_by(moved as u64);
    }
}

fn on_pod(scheduler: &Scheduler, pod: Arc<Pod>) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let bound = spec
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    if bound {
        scheduler.queue.remove(&uid);
        let event = if finished {
            scheduler
                .cache()
                .remove_pod(&uid)
                .then_some(ClusterEvent::AssignedPodDelete)
        } else {
            scheduler
                .cache()
                .update_bound_pod(Arc::new(PodInfo::new(pod)))
        };
        if let Some(event) = event {
            requeue(scheduler, event);
        }
        return;
    }
    let ours = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or("default-scheduler")
        == scheduler.name;
    let gated = spec
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| !g.is_empty());
    if !ours || finished || gated || pod.metadata.deletion_timestamp.is_some() {
        scheduler.queue.remove(&uid);
        scheduler.cache().forget_nomination(&uid);
        return;
    }
    let info = Arc::new(PodInfo::new(pod));
    scheduler
        .cache()
        .nominate(info.clone(), info.nominated_node_name());
    scheduler.queue.add_or_update(info);
}

fn on_pod_deleted(scheduler: &Scheduler, pod: &Pod) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    scheduler.queue.remove(&uid);
    if scheduler.cache().remove_pod(&uid) {
        requeue(scheduler, ClusterEvent::AssignedPodDelete);
    }
}

/// Starts every watch; resolves once nodes and pods have been listed and handled, when
/// scheduling can begin without mistaking an incomplete view for the cluster. The watches
/// run as long as the returned informers are kept.
pub async fn start(scheduler: Arc<Scheduler>, client: kube::Client) -> Informers {
    let informers = Informers::new(client);
    let (nodes_synced, nodes_ready) = oneshot::channel();
    let (pods_synced, pods_ready) = oneshot::channel();

    let s = scheduler.clone();
    tokio::spawn(feed(
        &informers.get::<Node>(),
        move |change| match change {
            Change::Applied { new, .. } => on_node(&s, new),
            Change::Deleted(node) => {
                s.cache().remove_node(&node.name_any());
                requeue(&s, ClusterEvent::NodeDelete);
            }
        },
        nodes_synced,
    ));

    let s = scheduler.clone();
    tokio::spawn(feed(
        &informers.get_selected::<Pod>("status.phase!=Succeeded,status.phase!=Failed"),
        move |change| match change {
            Change::Applied { new, .. } => on_pod(&s, new),
            Change::Deleted(pod) => on_pod_deleted(&s, &pod),
        },
        pods_synced,
    ));

    let s = scheduler.clone();
    tokio::spawn(feed(
        &informers.get::<Namespace>(),
        move |change| match change {
            Change::Applied { new, .. } => {
                s.cache().namespaces.insert(
                    new.name_any(),
                    new.metadata.labels.clone().unwrap_or_default(),
                );
            }
            Change::Deleted(namespace) => {
                s.cache().namespaces.remove(&namespace.name_any());
            }
        },
        oneshot::channel().0,
    ));

    let s = scheduler.clone();
    tokio::spawn(feed(
        &informers.get::<ReplicaSet>(),
        move |change| {
            let (rs, selector) = match change {
                Change::Applied { new, .. } => {
                    let selector = new
                        .spec
                        .as_ref()
                        .map(|spec| Selector::new(Some(&spec.selector)));
                    (new, selector)
                }
                Change::Deleted(rs) => (rs, None),
            };
            s.cache().set_replica_set(
                &rs.namespace().unwrap_or_default(),
                &rs.name_any(),
                selector,
            );
        },
        oneshot::channel().0,
    ));

    let s = scheduler.clone();
    tokio::spawn(feed(
        &informers.get::<PodDisruptionBudget>(),
        move |change| {
            let (budget, kept) = match change {
                Change::Applied { new, .. } => {
                    let kept = crate::preemption::Budget::new(&new);
                    (new, kept)
                }
                Change::Deleted(budget) => (budget, None),
            };
            s.cache().set_budget(
                &budget.namespace().unwrap_or_default(),
                &budget.name_any(),
                kept,
            );
        },
        oneshot::channel().0,
    ));

    let s = scheduler;
    tokio::spawn(feed(
        &informers.get::<Service>(),
        move |change| {
            let (service, selector) = match change {
                Change::Applied { new, .. } => {
                    let selector = new
                        .spec
                        .as_ref()
                        .and_then(|s| s.selector.as_ref())
                        .filter(|s| !s.is_empty());
                    let selector = selector.map(Selector::from_labels);
                    (new, selector)
                }
                Change::Deleted(service) => (service, None),
            };
            s.cache().set_service(
                &service.namespace().unwrap_or_default(),
                &service.name_any(),
                selector,
            );
        },
        oneshot::channel().0,
    ));

    informers.start();
    let _ = nodes_ready.await;
    let _ = pods_ready.await;
    informers
}
