//! The pod garbage collector (upstream `pkg/controller/podgc`): force-deletes pods no
//! kubelet will ever finish deleting, every 20 seconds:
//!
//! - finished pods beyond `--terminated-pod-gc-threshold`, evicted ones then the oldest first;
//! - terminating pods on a node that is not ready and tainted `out-of-service`;
//! - pods bound to a node that no longer exists, once the node has stayed missing for a
//!   40-second quarantine and the API server confirms it is gone (a node deletion starts the
//!   quarantine at once, and the collection runs when it ends);
//! - terminating pods never scheduled.
//!
//! A pod not yet finished is first marked `Failed` (orphans also with the `DisruptionTarget`
//! condition, reason `DeletionByPodGC`) by a server-side apply of its status, so whoever
//! watches it sees why it went.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::ControllerContext;
use crate::controller_utils::{is_pod_terminal, phase};
use crate::informers::Change;
use crate::runtime::{api_message, is_status};

/// The controller's name (`--controllers`, queue metrics).
pub const NAME: &str = "pod-garbage-collector-controller";
/// How often the collector looks at every pod (upstream's `gcCheckPeriod`).
const CHECK_PERIOD: Duration = Duration::from_secs(20);
/// How long a node must stay missing before its pods are orphans (upstream's
/// `quarantineTime`): a node briefly absent from the cache is not gone.
const QUARANTINE: Duration = Duration::from_secs(40);
/// The field manager of the collector's status writes.
const FIELD_MANAGER: &str = "PodGC";
/// Deletions under way at once.
const PARALLEL_DELETIONS: usize = 10;
/// The taint marking a node shut down for good, whose pods may go.
const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

struct Collector {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    /// `--terminated-pod-gc-threshold`; 0 or less keeps every finished pod.
    threshold: i32,
    /// Missing nodes and when their quarantine ends.
    quarantined: Mutex<HashMap<String, Instant>>,
    /// Wakes the loop early when a quarantine starts.
    wake: Notify,
}

/// Starts the collector on the shared pod and node informers.
pub fn start(ctx: &ControllerContext) {
    let pods = ctx.informers.get::<Pod>();
    let nodes = ctx.informers.get::<Node>();
    let collector = Arc::new(Collector {
        client: ctx.client_for(NAME),
        pods: pods.store(),
        nodes: nodes.store(),
        threshold: ctx.options.terminated_pod_gc_threshold,
        quarantined: Mutex::default(),
        wake: Notify::new(),
    });
    tokio::spawn(watch_nodes(collector.clone(), nodes.subscribe()));
    let synced = [pods.synced(), nodes.synced()];
    tokio::spawn(async move {
        futures::future::join_all(synced).await;
        collector.run().await;
    });
}

/// A deleted node starts its quarantine at once rather than at the next pass.
async fn watch_nodes(collector: Arc<Collector>, mut changes: UnboundedReceiver<Change<Node>>) {
    while let Some(change) = changes.next().await {
        if let Change::Deleted(node) = change {
            collector.quarantine(&node.name_any());
            collector.wake.notify_one();
        }
    }
}

impl Collector {
    async fn run(&self) {
        loop {
            self.collect().await;
            let next = self
                .quarantined
                .lock()
                .expect("quarantined")
                .values()
                .min()
                .map_or(CHECK_PERIOD, |due| {
                    due.saturating_duration_since(Instant::now())
                        .min(CHECK_PERIOD)
                });
            tokio::select! {
                _ = tokio::time::sleep(next) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    fn quarantine(&self, node: &str) {
        self.quarantined
            .lock()
            .expect("quarantined")
            .entry(node.to_string())
            .or_insert_with(|| Instant::now() + QUARANTINE);
    }

    /// One pass over every pod (upstream's `gc`).
    async fn collect(&self) {
        let pods = self.pods.state();
        let nodes: HashMap<String, Arc<Node>> = self
            .nodes
            .state()
            .into_iter()
            .map(|n| (n.name_any(), n))
            .collect();
        let mut doomed: Vec<(Arc<Pod>, Option<Disruption>)> = Vec::new();
        if self.threshold > 0 {
            let excess = terminated_excess(&pods, self.threshold as usize);
            if !excess.is_empty() {
                tracing::info!(pods = excess.len(), "garbage collecting pods");
            }
            doomed.extend(excess.into_iter().map(|p| (p, None)));
        }
        doomed.extend(
            pods.iter()
                .filter(|p| p.metadata.deletion_timestamp.is_some())
                .filter(|p| nodes.get(node_of(p)).is_some_and(|n| is_out_of_service(n)))
                .map(|p| (p.clone(), None)),
        );
        let deleted = self.deleted_nodes(&pods, &nodes).await;
        doomed.extend(
            pods.iter()
                .filter(|p| deleted.contains(node_of(p)))
                .map(|p| (p.clone(), Some(Disruption::NodeGone))),
        );
        doomed.extend(
            pods.iter()
                .filter(|p| p.metadata.deletion_timestamp.is_some() && node_of(p).is_empty())
                .map(|p| (p.clone(), None)),
        );
        let mut seen = HashSet::new();
        doomed.retain(|(p, _)| seen.insert(p.uid()));
        futures::stream::iter(doomed)
            .for_each_concurrent(PARALLEL_DELETIONS, |(pod, disruption)| async move {
                if let Err(error) = self.fail_and_delete(&pod, disruption).await {
                    tracing::warn!(pod = %format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any()), error = %api_message(&error), "failed to garbage collect pod");
                }
            })
            .await;
    }

    /// The nodes pods are bound to that have been missing for the whole quarantine and that
    /// the API server confirms are gone; nodes newly found missing start their quarantine.
    async fn deleted_nodes(
        &self,
        pods: &[Arc<Pod>],
        nodes: &HashMap<String, Arc<Node>>,
    ) -> HashSet<String> {
        for pod in pods {
            let node = node_of(pod);
            if !node.is_empty() && !nodes.contains_key(node) {
                self.quarantine(node);
            }
        }
        let now = Instant::now();
        let due: Vec<String> = {
            let mut quarantined = self.quarantined.lock().expect("quarantined");
            let due: Vec<String> = quarantined
                .iter()
                .filter(|(_, until)| **until <= now)
                .map(|(name, _)| name.clone())
                .collect();
            for name in &due {
                quarantined.remove(name);
            }
            due
        };
        let api: Api<Node> = Api::all(self.client.clone());
        let mut deleted = HashSet::new();
        for name in due {
            if nodes.contains_key(&name) {
                continue;
            }
            match api.get(&name).await {
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    deleted.insert(name);
                }
                Err(error) => {
                    tracing::warn!(node = name, error = %api_message(&error), "could not check whether node exists")
                }
                Ok(_) => {}
            }
        }
        deleted
    }

    /// Upstream's `markFailedAndDeletePodWithCondition`: a pod no kubelet will finish is
    /// made `Failed` first, then removed without grace.
    async fn fail_and_delete(
        &self,
        pod: &Pod,
        disruption: Option<Disruption>,
    ) -> Result<(), kube::Error> {
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        tracing::info!(pod = %format!("{namespace}/{name}"), "PodGC is force deleting Pod");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        if !is_pod_terminal(pod) {
            let mut status = json!({"phase": "Failed"});
            if let Some(disruption) = disruption {
                status["conditions"] = json!([disruption.condition(Timestamp::now())]);
            }
            let apply = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace},
                "status": status,
            });
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let result = api
                .patch_status(&name, &params, &Patch::Apply(&apply))
                .await;
            if is_status(&result, 404) {
                return Ok(());
            }
            result?;
        }
        let result = api
            .delete(&name, &DeleteParams::default().grace_period(0))
            .await;
        if is_status(&result, 404) {
            return Ok(());
        }
        result.map(drop)
    }
}

/// Why a pod is collected, as its `DisruptionTarget` condition says.
#[derive(Debug, Clone, Copy)]
enum Disruption {
    NodeGone,
}

impl Disruption {
    fn condition(self, now: Timestamp) -> serde_json::Value {
        let message = match self {
            Disruption::NodeGone => "PodGC: node no longer exists",
        };
        json!({
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByPodGC",
            "message": message,
            "lastTransitionTime": now.to_string(),
        })
    }
}

fn node_of(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// Not ready and tainted out of service: shut down for good.
fn is_out_of_service(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| t.iter().any(|t| t.key == OUT_OF_SERVICE));
    !ready && tainted
}

/// The finished pods beyond `threshold`: evicted pods first, then the oldest (by name
/// among equals), as upstream's `byEvictionAndCreationTimestamp`.
fn terminated_excess(pods: &[Arc<Pod>], threshold: usize) -> Vec<Arc<Pod>> {
    let mut finished: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| !matches!(phase(p), "" | "Pending" | "Running" | "Unknown"))
        .cloned()
        .collect();
    let Some(excess) = finished.len().checked_sub(threshold).filter(|n| *n > 0) else {
        return Vec::new();
    };
    let evicted = |p: &Pod| {
        phase(p) == "Failed"
            && p.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted")
    };
    finished.sort_by(|a, b| {
        evicted(b)
            .cmp(&evicted(a))
            .then_with(|| {
                a.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0)
                    .cmp(&b.metadata.creation_timestamp.as_ref().map(|t| t.0))
            })
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    finished.truncate(excess);
    finished
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, created: &str, reason: Option<&str>) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "creationTimestamp": created},
                "status": {"phase": phase, "reason": reason}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn evicted_then_oldest_finished_pods_go_beyond_the_threshold() {
        let pods = [
            pod("old", "Succeeded", "2025-01-01T00:00:00Z", None),
            pod("new", "Failed", "2025-01-03T00:00:00Z", None),
            pod("evicted", "Failed", "2025-01-04T00:00:00Z", Some("Evicted")),
            pod("running", "Running", "2024-01-01T00:00:00Z", None),
            pod("middle", "Succeeded", "2025-01-02T00:00:00Z", None),
        ];
        let names = |n: usize| -> Vec<String> {
            terminated_excess(&pods, n)
                .iter()
                .map(|p| p.name_any())
                .collect()
        };
        assert_eq!(names(2), ["evicted", "old"]);
        assert_eq!(names(4), Vec::<String>::new());
        assert_eq!(names(0).len(), 4);
    }

    #[test]
    fn only_unready_nodes_tainted_out_of_service_release_their_pods() {
        let node = |ready: &str, taint: bool| -> Node {
            let taints = if taint {
                json!([{"key": OUT_OF_SERVICE, "value": "nodeshutdown", "effect": "NoExecute"}])
            } else {
                json!([])
            };
            serde_json::from_value(json!({
                "spec": {"taints": taints},
                "status": {"conditions": [{"type": "Ready", "status": ready}]}
            }))
            .unwrap()
        };
        assert!(is_out_of_service(&node("False", true)));
        assert!(!is_out_of_service(&node("True", true)));
        assert!(!is_out_of_service(&node("False", false)));
    }
}
