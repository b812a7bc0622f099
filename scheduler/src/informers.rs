//! Watches feeding the scheduler: nodes and pods into the cache and queue (with the cluster
//! events they represent), namespaces for affinity namespace selectors, and the ReplicaSets
//! and Services whose selectors drive default spreading. Each watch re-lists after a gap and
//! reports objects that disappeared meanwhile as deleted.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::plugins::ClusterEvent;
use crate::pod_info::PodInfo;
use crate::scheduler::Scheduler;
use machinery::selector::Selector;

/// Identifies a deleted object: its namespace, name and uid.
struct Deleted {
    namespace: String,
    name: String,
    uid: String,
}

/// Watches `api` forever, calling `apply` with every added or changed object and `delete`
/// for every removed one; `synced` fires once the first full list has been applied.
async fn inform<K, A, D>(api: Api<K>, config: watcher::Config, mut apply: A, mut delete: D, synced: oneshot::Sender<()>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
    A: FnMut(K),
    D: FnMut(Deleted),
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let mut synced = Some(synced);
    let mut known: HashMap<(String, String), String> = HashMap::new();
    let mut listed: Option<HashSet<(String, String)>> = None;
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => listed = Some(HashSet::new()),
            Ok(Event::InitApply(object) | Event::Apply(object)) => {
                let key = (object.namespace().unwrap_or_default(), object.name_any());
                if let Some(listed) = &mut listed {
                    listed.insert(key.clone());
                }
                known.insert(key, object.uid().unwrap_or_default());
                apply(object);
            }
            Ok(Event::Delete(object)) => {
                let key = (object.namespace().unwrap_or_default(), object.name_any());
                known.remove(&key);
                delete(Deleted { namespace: key.0, name: key.1, uid: object.uid().unwrap_or_default() });
            }
            Ok(Event::InitDone) => {
                let listed = listed.take().unwrap_or_default();
                let gone: Vec<(String, String)> = known.keys().filter(|k| !listed.contains(*k)).cloned().collect();
                for key in gone {
                    let uid = known.remove(&key).unwrap_or_default();
                    delete(Deleted { namespace: key.0, name: key.1, uid });
                }
                if let Some(synced) = synced.take() {
                    let _ = synced.send(());
                }
            }
            Err(error) => tracing::warn!(%error, kind, "watch failed; retrying"),
        }
    }
}

fn on_node(scheduler: &Scheduler, node: Node) {
    let events = scheduler.cache().update_node(node);
    for event in events {
        requeue(scheduler, event);
    }
}

fn requeue(scheduler: &Scheduler, event: ClusterEvent) {
    let moved = scheduler.queue.on_event(event);
    if moved > 0 {
        scheduler.metrics.queue_incoming.with_label_values(&["active", event.name()]).inc_by(moved as u64);
    }
}

fn on_pod(scheduler: &Scheduler, pod: Pod) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let bound = spec.and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    let finished = matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"));
    if bound {
        scheduler.queue.remove(&uid);
        let event = if finished {
            scheduler.cache().remove_pod(&uid).then_some(ClusterEvent::AssignedPodDelete)
        } else {
            scheduler.cache().update_bound_pod(Arc::new(PodInfo::new(pod)))
        };
        if let Some(event) = event {
            requeue(scheduler, event);
        }
        return;
    }
    let ours = spec.and_then(|s| s.scheduler_name.as_deref()).unwrap_or("default-scheduler") == scheduler.name;
    let gated = spec.and_then(|s| s.scheduling_gates.as_ref()).is_some_and(|g| !g.is_empty());
    if !ours || finished || gated || pod.metadata.deletion_timestamp.is_some() {
        scheduler.queue.remove(&uid);
        scheduler.cache().forget_nomination(&uid);
        return;
    }
    let info = Arc::new(PodInfo::new(pod));
    scheduler.cache().nominate(info.clone(), info.nominated_node_name());
    scheduler.queue.add_or_update(info);
}

fn on_pod_deleted(scheduler: &Scheduler, deleted: Deleted) {
    scheduler.queue.remove(&deleted.uid);
    if scheduler.cache().remove_pod(&deleted.uid) {
        requeue(scheduler, ClusterEvent::AssignedPodDelete);
    }
}

/// Starts every watch; resolves once nodes and pods have been listed, when scheduling can
/// begin without mistaking an incomplete view for the cluster.
pub async fn start(scheduler: Arc<Scheduler>, client: kube::Client) {
    let (nodes_synced, nodes_ready) = oneshot::channel();
    let (pods_synced, pods_ready) = oneshot::channel();

    let s = scheduler.clone();
    let s2 = scheduler.clone();
    tokio::spawn(inform(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        move |node| on_node(&s, node),
        move |deleted| {
            s2.cache().remove_node(&deleted.name);
            requeue(&s2, ClusterEvent::NodeDelete);
        },
        nodes_synced,
    ));

    let s = scheduler.clone();
    let s2 = scheduler.clone();
    tokio::spawn(inform(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed"),
        move |pod| on_pod(&s, pod),
        move |deleted| on_pod_deleted(&s2, deleted),
        pods_synced,
    ));

    let s = scheduler.clone();
    let s2 = scheduler.clone();
    tokio::spawn(inform(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
        move |namespace: Namespace| {
            let name = namespace.name_any();
            s.cache().namespaces.insert(name, namespace.metadata.labels.unwrap_or_default());
        },
        move |deleted| {
            s2.cache().namespaces.remove(&deleted.name);
        },
        oneshot::channel().0,
    ));

    let s = scheduler.clone();
    let s2 = scheduler.clone();
    tokio::spawn(inform(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
        move |rs: ReplicaSet| {
            let selector = rs.spec.as_ref().map(|spec| Selector::new(Some(&spec.selector)));
            s.cache().set_replica_set(&rs.namespace().unwrap_or_default(), &rs.name_any(), selector);
        },
        move |deleted| s2.cache().set_replica_set(&deleted.namespace, &deleted.name, None),
        oneshot::channel().0,
    ));

    let s = scheduler.clone();
    let s2 = scheduler;
    tokio::spawn(inform(
        Api::<Service>::all(client),
        watcher::Config::default(),
        move |service: Service| {
            let selector = service.spec.as_ref().and_then(|s| s.selector.as_ref()).filter(|s| !s.is_empty());
            let selector = selector.map(Selector::from_labels);
            s.cache().set_service(&service.namespace().unwrap_or_default(), &service.name_any(), selector);
        },
        move |deleted| s2.cache().set_service(&deleted.namespace, &deleted.name, None),
        oneshot::channel().0,
    ));

    let _ = nodes_ready.await;
    let _ = pods_ready.await;
}
