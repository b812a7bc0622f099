//! The node lifecycle controller (upstream `pkg/controller/nodelifecycle`): watches node
//! heartbeats (the node's Lease in `kube-node-lease`, and its Ready condition). A node not
//! heard from for `--node-monitor-grace-period` gets its conditions set to Unknown, its pods
//! marked not ready, and the `node.kubernetes.io/unreachable` taints: NoSchedule keeps new
//! pods away, NoExecute lets the taint eviction controller evict the pods once their
//! tolerations run out. The taints go when the node reports Ready again.
//!
//! As upstream, when every node is unhealthy the problem is more likely on this side (the
//! controller lost the nodes, not the nodes their workloads), so no NoExecute taints are
//! placed then, nor in a small zone that is mostly down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, ObjectReference, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use super::ControllerContext;
use crate::events::{EventType, Recorder};
use crate::informers::Change;
use crate::runtime::{self, api_message, Queue, Result};

/// The controller's name (`--controllers`, queue metrics).
pub const NAME: &str = "node-lifecycle-controller";

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Share of unhealthy nodes making a zone partially disrupted (`--unhealthy-zone-threshold`).
const UNHEALTHY_ZONE_THRESHOLD: f64 = 0.55;
/// Zones up to this size stop evicting when partially disrupted (`--large-cluster-size-threshold`).
const LARGE_CLUSTER_SIZE: usize = 50;

/// NoSchedule taints by node condition and status (upstream's `nodeConditionToTaintKeyStatusMap`).
const CONDITION_TAINTS: &[(&str, &str, &str)] = &[
    ("Ready", "False", NOT_READY),
    ("Ready", "Unknown", UNREACHABLE),
    (
        "MemoryPressure",
        "True",
        "node.kubernetes.io/memory-pressure",
    ),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    (
        "NetworkUnavailable",
        "True",
        "node.kubernetes.io/network-unavailable",
    ),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
];

/// What was last heard from a node, on this process's clock.
#[derive(Clone)]
struct Health {
    probed: Instant,
    heartbeat: Option<Time>,
    transition: Option<Time>,
    lease_renewed: Option<MicroTime>,
}

struct Context {
    client: Client,
    nodes: Store<Node>,
    pods: Store<Pod>,
    leases: Store<Lease>,
    health: Mutex<HashMap<String, Health>>,
    /// The Ready status each node was last seen with, for zone health.
    observed_ready: Mutex<HashMap<String, String>>,
    grace_period: Duration,
    startup_grace_period: Duration,
    monitor_period: Duration,
    recorder: Recorder,
}

/// Wires the controller to the shared informers and starts it.
pub fn start(ctx: &ControllerContext) {
    let nodes = ctx.informers.get::<Node>();
    let pods = ctx.informers.get::<Pod>();
    let leases = ctx.informers.get::<Lease>();
    let (queue, triggers) = Queue::new(NAME);
    let options = &ctx.options;
    let context = Arc::new(Context {
        client: ctx.client_for(NAME),
        nodes: nodes.store(),
        pods: pods.store(),
        leases: leases.store(),
        health: Mutex::default(),
        observed_ready: Mutex::default(),
        grace_period: options.node_monitor_grace_period,
        startup_grace_period: options.node_startup_grace_period,
        monitor_period: options.node_monitor_period,
        recorder: ctx.events.recorder("node-controller"),
    });
    tokio::spawn(watch_nodes(queue.clone(), nodes.subscribe()));
    let controller = runtime::Controller {
        queue,
        triggers,
        store: context.nodes.clone(),
        caches: vec![nodes.synced(), pods.synced(), leases.synced()],
        workers: 1,
    };
    tokio::spawn(controller.run(context, reconcile));
}

async fn watch_nodes(queue: Queue<Node>, mut changes: UnboundedReceiver<Change<Node>>) {
    while let Some(change) = changes.next().await {
        if let Change::Applied { new, .. } = change {
            queue.add_object(&new);
        }
    }
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn now_time() -> Time {
    Time(Timestamp::from_second(Timestamp::now().as_second()).expect("now"))
}

/// Checks one node's health, taints and pods; every node is checked every monitor period.
async fn reconcile(cached: Arc<Node>, ctx: Arc<Context>) -> Result<Action> {
    let mut node = (*cached).clone();
    let name = node.name_any();
    let (observed, current) = ctx.update_health(&mut node).await?;
    ctx.observed_ready
        .lock()
        .expect("observed")
        .insert(name.clone(), observed.status.clone());
    ctx.no_schedule_taints(&mut node).await?;
    if let Some(current) = current {
        ctx.no_execute_taints(&mut node, &observed.status).await?;
        if current.status != "True" && observed.status == "True" {
            tracing::info!(node = name, "node is not ready; marking its pods not ready");
            let reference = ObjectReference {
                kind: Some("Node".into()),
                name: Some(name.clone()),
                uid: Some(name.clone()),
                ..ObjectReference::default()
            };
            ctx.recorder.event_on(
                reference,
                EventType::Normal,
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            );
            ctx.mark_pods_not_ready(&name).await?;
        }
    }
    Ok(Action::requeue(ctx.monitor_period))
}

impl Context {
    /// Upstream's `tryUpdateNodeHealth`: refreshes when the node was last heard from (a
    /// changed heartbeat or a renewed Lease) and, past the grace period, sets its conditions
    /// to Unknown. Returns the Ready condition as observed and as it is now.
    async fn update_health(
        &self,
        node: &mut Node,
    ) -> Result<(NodeCondition, Option<NodeCondition>)> {
        let name = node.name_any();
        let created = node.metadata.creation_timestamp.clone();
        let current = condition(node, "Ready").cloned();
        let (observed, grace) = match &current {
            Some(ready) => (ready.clone(), self.grace_period),
            None => (
                NodeCondition {
                    type_: "Ready".into(),
                    status: "Unknown".into(),
                    last_heartbeat_time: created.clone(),
                    last_transition_time: created.clone(),
                    ..NodeCondition::default()
                },
                self.startup_grace_period,
            ),
        };
        let lease = self
            .leases
            .get(&ObjectRef::new(&name).within(LEASE_NAMESPACE));
        let renewed = lease
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.renew_time.clone());
        let health = {
            let mut all = self.health.lock().expect("health");
            let now = Instant::now();
            let entry = all.entry(name.clone()).or_insert_with(|| Health {
                probed: now,
                heartbeat: current.as_ref().and_then(|c| c.last_heartbeat_time.clone()),
                transition: current
                    .as_ref()
                    .and_then(|c| c.last_transition_time.clone()),
                lease_renewed: None,
            });
            let heartbeat = current.as_ref().and_then(|c| c.last_heartbeat_time.clone());
            if heartbeat != entry.heartbeat {
                entry.probed = now;
                entry.heartbeat = heartbeat;
                entry.transition = current
                    .as_ref()
                    .and_then(|c| c.last_transition_time.clone());
            }
            if renewed.is_some()
                && renewed.as_ref().map(|r| r.0) > entry.lease_renewed.as_ref().map(|r| r.0)
            {
                entry.lease_renewed = renewed;
                entry.probed = now;
            }
            entry.clone()
        };
        if health.probed.elapsed() <= grace {
            return Ok((observed, current));
        }
        let now = now_time();
        let conditions = node
            .status
            .get_or_insert_with(Default::default)
            .conditions
            .get_or_insert_with(Vec::new);
        for type_ in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
            match conditions.iter_mut().find(|c| c.type_ == type_) {
                None => conditions.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: created.clone(),
                    last_transition_time: Some(now.clone()),
                }),
                Some(existing) if existing.status != "Unknown" => {
                    existing.status = "Unknown".into();
                    existing.reason = Some("NodeStatusUnknown".into());
                    existing.message = Some("Kubelet stopped posting node status.".into());
                    existing.last_transition_time = Some(now.clone());
                }
                Some(_) => {}
            }
        }
        let updated = condition(node, "Ready").cloned();
        if updated.as_ref() != Some(&observed) {
            tracing::info!(node = name, since = ?health.probed.elapsed(), "node stopped posting status; marking it Unknown");
            let api: Api<Node> = Api::all(self.client.clone());
            *node = api
                .replace_status(&name, &PostParams::default(), node)
                .await?;
        }
        Ok((observed, updated))
    }

    /// NoSchedule taints follow the node's conditions and `unschedulable`.
    async fn no_schedule_taints(&self, node: &mut Node) -> Result<()> {
        let mut wanted: Vec<String> = CONDITION_TAINTS
            .iter()
            .filter(|(type_, status, _)| {
                condition(node, type_).is_some_and(|c| c.status == *status)
            })
            .map(|(_, _, key)| key.to_string())
            .collect();
        if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
            wanted.push(UNSCHEDULABLE.into());
        }
        let managed = |t: &Taint| {
            t.effect == "NoSchedule"
                && (t.key == UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|(_, _, k)| *k == t.key))
        };
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let present: Vec<&Taint> = taints.iter().filter(|t| managed(t)).collect();
        let add: Vec<Taint> = wanted
            .iter()
            .filter(|key| !present.iter().any(|t| t.key == **key))
            .map(|key| Taint {
                key: key.clone(),
                effect: "NoSchedule".into(),
                ..Taint::default()
            })
            .collect();
        let remove: Vec<Taint> = present
            .iter()
            .filter(|t| !wanted.contains(&t.key))
            .map(|t| (*t).clone())
            .collect();
        self.swap_taints(node, add, remove).await
    }

    /// NoExecute taints follow the Ready status, unless the node's whole zone is down.
    async fn no_execute_taints(&self, node: &mut Node, ready: &str) -> Result<()> {
        let taint = |key: &str| Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            time_added: Some(now_time()),
            ..Taint::default()
        };
        let has = |node: &Node, key: &str| {
            node.spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .is_some_and(|t| t.iter().any(|t| t.key == key && t.effect == "NoExecute"))
        };
        let (add, remove) = match ready {
            "True" => (None, vec![UNREACHABLE, NOT_READY]),
            _ if !self.may_evict(node) => (None, vec![UNREACHABLE, NOT_READY]),
            "False" => (Some(NOT_READY), vec![UNREACHABLE]),
            _ => (Some(UNREACHABLE), vec![NOT_READY]),
        };
        let add: Vec<Taint> = add
            .filter(|key| !has(node, key))
            .map(taint)
            .into_iter()
            .collect();
        let remove: Vec<Taint> = remove
            .into_iter()
            .filter(|key| has(node, key))
            .map(|key| Taint {
                key: key.into(),
                effect: "NoExecute".into(),
                ..Taint::default()
            })
            .collect();
        self.swap_taints(node, add, remove).await
    }

    /// Upstream's zone states: with every node of every zone unhealthy the controller has
    /// more likely lost the nodes than the nodes their workloads, and a small zone mostly
    /// down (partial disruption) is left alone too; otherwise unhealthy nodes are tainted.
    fn may_evict(&self, node: &Node) -> bool {
        let zone_of = |n: &Node| n.labels().get(ZONE_LABEL).cloned().unwrap_or_default();
        let observed = self.observed_ready.lock().expect("observed");
        let mut zones: HashMap<String, (usize, usize)> = HashMap::new();
        for member in self.nodes.state() {
            let counts = zones.entry(zone_of(&member)).or_default();
            if observed
                .get(&member.name_any())
                .is_some_and(|s| s == "True")
            {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
        }
        if !zones.is_empty()
            && zones
                .values()
                .all(|(ready, not_ready)| *ready == 0 && *not_ready > 0)
        {
            return false;
        }
        let (ready, not_ready) = zones.get(&zone_of(node)).copied().unwrap_or_default();
        let partial = ready > 0
            && not_ready > 2
            && not_ready as f64 / (ready + not_ready) as f64 >= UNHEALTHY_ZONE_THRESHOLD;
        !(partial && ready + not_ready <= LARGE_CLUSTER_SIZE)
    }

    /// Adds and removes taints (matched by key and effect) in one update.
    async fn swap_taints(
        &self,
        node: &mut Node,
        add: Vec<Taint>,
        remove: Vec<Taint>,
    ) -> Result<()> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let api: Api<Node> = Api::all(self.client.clone());
        let spec = node.spec.get_or_insert_with(Default::default);
        let taints = spec.taints.get_or_insert_with(Vec::new);
        taints.retain(|t| {
            !remove
                .iter()
                .any(|r| r.key == t.key && r.effect == t.effect)
        });
        for taint in &add {
            tracing::info!(
                node = node.metadata.name.as_deref().unwrap_or(""),
                taint = taint.key,
                effect = taint.effect,
                "tainting node"
            );
        }
        taints.extend(add);
        if taints.is_empty() {
            spec.taints = None;
        }
        *node = api
            .replace(&node.name_any(), &PostParams::default(), node)
            .await?;
        Ok(())
    }

    /// Upstream's `MarkPodsNotReady`: the pods of a lost node stop being ready, so they drop
    /// out of service endpoints.
    async fn mark_pods_not_ready(&self, node: &str) -> Result<()> {
        let now = now_time();
        for pod in self.pods.state() {
            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
                continue;
            }
            let mut updated = (*pod).clone();
            let Some(ready) = updated
                .status
                .as_mut()
                .and_then(|s| s.conditions.as_mut())
                .and_then(|c| c.iter_mut().find(|c| c.type_ == "Ready"))
            else {
                continue;
            };
            if ready.status == "False" {
                continue;
            }
            ready.status = "False".into();
            ready.last_transition_time = Some(now.clone());
            let api: Api<Pod> =
                Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            if let Err(error) = api
                .replace_status(&pod.name_any(), &PostParams::default(), &updated)
                .await
            {
                tracing::warn!(
                    pod = pod.name_any(),
                    error = api_message(&error),
                    "could not mark pod not ready"
                );
            }
            self.recorder.event(
                &*pod,
                EventType::Warning,
                "NodeNotReady",
                "Node is not ready".into(),
            );
        }
        Ok(())
    }
}
