//! The taint eviction controller (upstream `pkg/controller/tainteviction`): deletes pods
//! running on nodes with `NoExecute` taints they do not tolerate, at once, or when the
//! shortest matching `tolerationSeconds` has passed since the taint was seen (pods admitted
//! without tolerations get 300 s for `not-ready` and `unreachable` from the API server).
//! A pod whose node loses the taint in time is spared.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use super::ControllerContext;
use crate::controller_utils::key_of;
use crate::events::{EventType, Recorder};
use crate::informers::Change;
use crate::runtime::{self, Queue, Result};
use machinery::taints::tolerates;

/// The controller's name (`--controllers`, events' source, queue metrics).
pub const NAME: &str = "taint-eviction-controller";

struct Context {
    client: Client,
    nodes: Store<Node>,
    pods: Store<Pod>,
    /// When each pod's eviction was first scheduled.
    scheduled: Mutex<HashMap<String, Instant>>,
    recorder: Recorder,
}

/// Wires the controller to the shared informers and starts it.
pub fn start(ctx: &ControllerContext) {
    let nodes = ctx.informers.get::<Node>();
    let pods = ctx.informers.get::<Pod>();
    let (queue, triggers) = Queue::new(NAME);
    let context = Arc::new(Context {
        client: ctx.client_for(NAME),
        nodes: nodes.store(),
        pods: pods.store(),
        scheduled: Mutex::default(),
        recorder: ctx.events.recorder(NAME),
    });
    tokio::spawn(watch_pods(queue.clone(), pods.subscribe(), context.clone()));
    tokio::spawn(watch_nodes(
        queue.clone(),
        nodes.subscribe(),
        context.pods.clone(),
    ));
    let controller = runtime::Controller {
        queue,
        triggers,
        store: context.pods.clone(),
        caches: vec![pods.synced(), nodes.synced()],
        workers: 8,
    };
    tokio::spawn(controller.run(context, reconcile));
}

async fn watch_pods(
    queue: Queue<Pod>,
    mut changes: UnboundedReceiver<Change<Pod>>,
    ctx: Arc<Context>,
) {
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied { old, new } => {
                let bound = new
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some();
                let relevant = old.as_ref().is_none_or(|old| {
                    old.spec.as_ref().map(|s| (&s.node_name, &s.tolerations))
                        != new.spec.as_ref().map(|s| (&s.node_name, &s.tolerations))
                });
                if bound && relevant {
                    queue.add_object(&new);
                }
            }
            Change::Deleted(gone) => {
                ctx.scheduled
                    .lock()
                    .expect("scheduled")
                    .remove(&key_of(&*gone));
            }
        }
    }
}

/// A change of a node's NoExecute taints concerns all its pods.
async fn watch_nodes(
    queue: Queue<Pod>,
    mut changes: UnboundedReceiver<Change<Node>>,
    pods: Store<Pod>,
) {
    while let Some(change) = changes.next().await {
        let Change::Applied { old, new } = change else {
            continue;
        };
        if old
            .as_ref()
            .is_some_and(|old| no_execute_taints(old) == no_execute_taints(&new))
        {
            continue;
        }
        let name = new.name_any();
        for pod in pods.state() {
            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()) {
                queue.add_object(&pod);
            }
        }
    }
}

fn no_execute_taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|t| {
            t.iter()
                .filter(|t| t.effect == "NoExecute")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// How long the pod may stay: `None` if some taint is not tolerated, otherwise the shortest
/// `tolerationSeconds` of the tolerations used (`Duration::MAX` when they tolerate forever).
fn tolerated_for(taints: &[Taint], tolerations: &[Toleration]) -> Option<Duration> {
    let mut shortest = Duration::MAX;
    for taint in taints {
        let used: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if used.is_empty() {
            return None;
        }
        for toleration in used {
            if let Some(seconds) = toleration.toleration_seconds {
                shortest = shortest.min(Duration::from_secs(seconds.max(0) as u64));
            }
        }
    }
    Some(shortest)
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Context>) -> Result<Action> {
    let key = key_of(&*pod);
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .and_then(|n| ctx.nodes.get(&ObjectRef::new(&n)));
    if pod.metadata.deletion_timestamp.is_some() || node.is_none() {
        ctx.scheduled.lock().expect("scheduled").remove(&key);
        return Ok(Action::await_change());
    }
    let taints = no_execute_taints(&node.expect("checked"));
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let wait = if taints.is_empty() {
        Some(Duration::MAX)
    } else {
        tolerated_for(&taints, &tolerations)
    };
    if wait == Some(Duration::MAX) {
        if ctx
            .scheduled
            .lock()
            .expect("scheduled")
            .remove(&key)
            .is_some()
        {
            ctx.recorder.event(
                &*pod,
                EventType::Normal,
                "TaintManagerEviction",
                format!("Cancelling deletion of Pod {key}"),
            );
        }
        return Ok(Action::await_change());
    }
    let started = *ctx
        .scheduled
        .lock()
        .expect("scheduled")
        .entry(key.clone())
        .or_insert_with(Instant::now);
    if let Some(wait) = wait {
        let elapsed = started.elapsed();
        if elapsed < wait {
            return Ok(Action::requeue(wait - elapsed));
        }
    }
    evict(&ctx, &pod).await?;
    ctx.scheduled.lock().expect("scheduled").remove(&key);
    Ok(Action::await_change())
}

/// Marks the pod as disrupted (the `DisruptionTarget` condition) and deletes it.
async fn evict(ctx: &Context, pod: &Pod) -> Result<()> {
    let key = key_of(pod);
    tracing::info!(pod = key, "deleting pod because of a NoExecute taint");
    ctx.recorder.event(
        pod,
        EventType::Normal,
        "TaintManagerEviction",
        format!("Marking for deletion Pod {key}"),
    );
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    let mut marked = pod.clone();
    let conditions = marked
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    if !conditions
        .iter()
        .any(|c| c.type_ == "DisruptionTarget" && c.status == "True")
    {
        conditions.retain(|c| c.type_ != "DisruptionTarget");
        conditions.push(PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some("DeletionByTaintManager".into()),
            message: Some("Taint manager: deleting due to NoExecute taint".into()),
            last_transition_time: Some(Time(
                Timestamp::from_second(Timestamp::now().as_second()).expect("now"),
            )),
            ..PodCondition::default()
        });
        // Best effort: the deletion matters, the condition explains it.
        let _ = api
            .replace_status(&pod.name_any(), &PostParams::default(), &marked)
            .await;
    }
    match api.delete(&pod.name_any(), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            ..Taint::default()
        }
    }

    fn toleration(key: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: seconds,
            ..Toleration::default()
        }
    }

    #[test]
    fn the_shortest_matching_toleration_wins() {
        let taints = [taint("node.kubernetes.io/unreachable")];
        assert_eq!(tolerated_for(&taints, &[]), None);
        assert_eq!(
            tolerated_for(
                &taints,
                &[
                    toleration("node.kubernetes.io/unreachable", Some(300)),
                    toleration("", Some(30))
                ]
            ),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            tolerated_for(
                &taints,
                &[toleration("node.kubernetes.io/unreachable", None)]
            ),
            Some(Duration::MAX)
        );
        assert_eq!(
            tolerated_for(
                &taints,
                &[toleration("node.kubernetes.io/not-ready", Some(300))]
            ),
            None
        );
    }
}
