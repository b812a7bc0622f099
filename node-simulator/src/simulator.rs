//! The simulation loop: registers the nodes, keeps their Leases and status fresh, and walks
//! every pod bound to them through its lifecycle. All API writes go through one bounded
//! pool of workers; delays (startup, readiness, heartbeat periods) go through one timer
//! heap, so the cost per simulated node and pod is a few hundred bytes, not a task.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::ResourceExt;
use machinery::events::{Backlog, Broadcaster, EventType};
use rand::Rng;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::image::Registry;
use crate::ipam::Ipam;
use crate::node::{SimNode, STOP_HEARTBEATS};
use crate::pod::{Note, SimPod, Stage, EXIT_CODE};

/// How soon after a failed pull kubelet syncs the pod again and finds the pull in back-off
/// (its own status update and the sandbox's start wake the pod worker within a second or
/// two), turning `ErrImagePull` into `ImagePullBackOff`.
const PULL_RESYNC: Duration = Duration::from_secs(1);

/// Timing and limits from the flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub pod_startup_delay: Duration,
    pub lease_duration_seconds: i32,
    pub status_report_frequency: Duration,
    pub concurrency: usize,
    /// Which images cannot be pulled.
    pub registry: Registry,
}

/// One unit of API work.
#[derive(Debug, Clone)]
enum Work {
    /// Post the `ContainerCreating` status of a newly bound pod, then start it after the
    /// startup delay.
    CreatePod(String),
    /// Finish pulling the pod's images and start its containers.
    StartPod(String),
    /// Sync a pod whose pull failed again within the back-off (`ImagePullBackOff`).
    BackOffPull(String),
    /// Pull a pod's missing images again once the back-off is over.
    RetryPull(String),
    /// Post the pod's status as it stands.
    PostPod(String),
    /// Work out what the pod's containers did by now (exits, restarts, readiness) and post
    /// the status if it changed.
    Tick(String),
    /// Post the terminated status of a deleted pod and remove it.
    TerminatePod(String),
    /// Renew the node's Lease (and post status if the node was marked unhealthy).
    RenewLease(String),
    /// Post the node's periodic status.
    ReportNode(String),
}

#[derive(Default)]
struct State {
    nodes: HashMap<String, SimNode>,
    pods: HashMap<String, SimPod>,
}

/// The simulated nodes and their pods, and the channels feeding the API workers.
pub struct Simulator {
    /// The simulator's own identity: the pod and node watches, and nodes without one.
    client: kube::Client,
    /// Each node's own identity (`--tls-bootstrap`), for the writes its kubelet would make.
    node_clients: HashMap<String, kube::Client>,
    settings: Settings,
    state: Mutex<State>,
    work: mpsc::UnboundedSender<Work>,
    timers: mpsc::UnboundedSender<(Instant, Work)>,
    /// Work queued or in progress, which events give way to.
    pending: Arc<AtomicUsize>,
    /// Posts kubelet's events, behind `pending`: one process stands in for many kubelets,
    /// each of which would post its events over its own connection, so here pod status
    /// comes first and, under a load the apiserver cannot keep up with, events are what
    /// gets dropped.
    events: Broadcaster,
}

fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

impl Simulator {
    /// Registers `nodes` and simulates them until the process ends.
    pub async fn run(
        client: kube::Client,
        node_clients: HashMap<String, kube::Client>,
        settings: Settings,
        nodes: Vec<SimNode>,
    ) -> Result<(), kube::Error> {
        let (work, work_queue) = mpsc::unbounded_channel();
        let (timers, timer_queue) = mpsc::unbounded_channel();
        let state = State {
            nodes: nodes.into_iter().map(|n| (n.name.clone(), n)).collect(),
            pods: HashMap::new(),
        };
        let pending = Arc::new(AtomicUsize::new(0));
        let events = Broadcaster::start_behind(
            client.clone(),
            Backlog {
                pending: pending.clone(),
                concurrency: settings.concurrency,
            },
        );
        let simulator = Arc::new(Simulator {
            client,
            node_clients,
            settings,
            state: Mutex::new(state),
            work,
            timers,
            pending,
            events,
        });
        simulator.register().await?;
        tokio::spawn(simulator.clone().run_timers(timer_queue));
        tokio::spawn(simulator.clone().run_workers(work_queue));
        tokio::spawn(simulator.clone().watch_nodes());
        simulator.watch_pods().await;
        Ok(())
    }

    /// The client for `node`'s writes: its own identity if it has one.
    fn client_for(&self, node: &str) -> kube::Client {
        self.node_clients.get(node).unwrap_or(&self.client).clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, work: Work) {
        self.pending.fetch_add(1, Ordering::Relaxed);
        if self.work.send(work).is_err() {
            self.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn after(&self, delay: Duration, work: Work) {
        let _ = self.timers.send((Instant::now() + delay, work));
    }

    /// Creates every Node (taking over existing ones, as a restarted kubelet does), then
    /// starts each node's heartbeats at a random offset so renewals spread evenly.
    async fn register(self: &Arc<Self>) -> Result<(), kube::Error> {
        let names: Vec<String> = self.state().nodes.keys().cloned().collect();
        let results: Vec<Result<(), kube::Error>> = futures::stream::iter(names.iter().cloned())
            .map(|name| async move { self.register_node(&name).await })
            .buffer_unordered(self.settings.concurrency)
            .collect()
            .await;
        results.into_iter().collect::<Result<(), _>>()?;
        tracing::info!(nodes = names.len(), "registered nodes");
        let renew_every = self.renew_interval();
        let mut rng = rand::rng();
        for name in names {
            self.after(
                renew_every.mul_f64(rng.random_range(0.0..0.1)),
                Work::RenewLease(name.clone()),
            );
            self.after(
                self.settings
                    .status_report_frequency
                    .mul_f64(rng.random_range(0.0..1.0)),
                Work::ReportNode(name),
            );
        }
        Ok(())
    }

    async fn register_node(&self, name: &str) -> Result<(), kube::Error> {
        let api: Api<Node> = Api::all(self.client_for(name));
        let object = self.state().nodes[name].object();
        let registered = match api.create(&PostParams::default(), &object).await {
            Ok(created) => created,
            Err(error) if is_status(&error, 409) => {
                let patch = json!({ "status": object.status });
                api.patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
                    .await?
            }
            Err(error) => return Err(error),
        };
        let mut state = self.state();
        let node = state
            .nodes
            .get_mut(name)
            .expect("registered nodes are known");
        node.uid = registered.metadata.uid.clone();
        let cidr = registered
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .and_then(|c| c.parse().ok());
        if let Some(cidr) = cidr.filter(|c| *c != node.ipam.cidr()) {
            tracing::info!(node = name, %cidr, "keeping the pod CIDR the node already has");
            node.ipam = Ipam::new(cidr);
        }
        Ok(())
    }

    fn renew_interval(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.settings.lease_duration_seconds.max(4)) / 4.0)
    }

    /// Holds delayed work until it is due.
    async fn run_timers(self: Arc<Self>, mut incoming: mpsc::UnboundedReceiver<(Instant, Work)>) {
        let mut heap: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
        let mut waiting: HashMap<u64, Work> = HashMap::new();
        let mut sequence = 0u64;
        loop {
            let next = heap.peek().map(|Reverse((at, _))| *at);
            tokio::select! {
                item = incoming.recv() => {
                    let Some((at, work)) = item else { return };
                    sequence += 1;
                    heap.push(Reverse((at, sequence)));
                    waiting.insert(sequence, work);
                }
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    let now = Instant::now();
                    while let Some(Reverse((at, id))) = heap.peek().copied() {
                        if at > now {
                            break;
                        }
                        heap.pop();
                        if let Some(work) = waiting.remove(&id) {
                            self.push(work);
                        }
                    }
                }
            }
        }
    }

    async fn run_workers(self: Arc<Self>, mut queue: mpsc::UnboundedReceiver<Work>) {
        futures::stream::poll_fn(move |cx| queue.poll_recv(cx))
            .for_each_concurrent(self.settings.concurrency, |work| {
                let simulator = self.clone();
                async move {
                    simulator.handle(work).await;
                    simulator.pending.fetch_sub(1, Ordering::Relaxed);
                }
            })
            .await;
    }

    async fn handle(&self, work: Work) {
        match work {
            Work::CreatePod(uid) => {
                if self.post_pod(&uid).await {
                    self.begin_pulls(&uid);
                    self.after(self.settings.pod_startup_delay, Work::StartPod(uid));
                }
            }
            Work::StartPod(uid) => self.start_pod(&uid).await,
            Work::BackOffPull(uid) => self.back_off_pull(&uid).await,
            Work::RetryPull(uid) => self.retry_pull(&uid).await,
            Work::PostPod(uid) => {
                self.post_pod(&uid).await;
            }
            Work::Tick(uid) => self.tick(&uid).await,
            Work::TerminatePod(uid) => self.terminate_pod(&uid).await,
            Work::RenewLease(node) => self.renew_lease(&node).await,
            Work::ReportNode(node) => self.report_node(&node).await,
        }
    }

    /// Posts a pod's current status; returns whether the pod still exists.
    async fn post_pod(&self, uid: &str) -> bool {
        let (namespace, name, node, status) = {
            let state = self.state();
            let Some(pod) = state.pods.get(uid) else {
                return false;
            };
            (
                pod.namespace.clone(),
                pod.name.clone(),
                pod.node.clone(),
                pod.status(jiff::Timestamp::now()),
            )
        };
        let api: Api<Pod> = Api::namespaced(self.client_for(&node), &namespace);
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(status))
            .await
        {
            Ok(_) => true,
            Err(error) if is_status(&error, 404) => false,
            Err(error) => {
                tracing::warn!(pod = %format!("{namespace}/{name}"), %error, "could not update pod status; retrying");
                self.after(Duration::from_secs(1), Work::PostPod(uid.to_string()));
                true
            }
        }
    }

    /// Records kubelet's events about a pod's containers, as the kubelet of the pod's node
    /// (`source.host`), the container as `fieldPath`.
    fn record(&self, pod: &SimPod, notes: Vec<Note>) {
        if notes.is_empty() {
            return;
        }
        let recorder = self.events.host_recorder("kubelet", &pod.node);
        for note in notes {
            let regarding = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(pod.namespace.clone()),
                name: Some(pod.name.clone()),
                uid: Some(pod.uid.clone()),
                field_path: Some(note.field_path),
                ..ObjectReference::default()
            };
            let kind = if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            };
            recorder.event_on(regarding, kind, note.reason, note.message);
        }
    }

    fn begin_pulls(&self, uid: &str) {
        let mut state = self.state();
        let State { nodes, pods } = &mut *state;
        let Some(pod) = pods.get_mut(uid).filter(|p| p.stage == Stage::Creating) else {
            return;
        };
        let Some(node) = nodes.get(&pod.node) else {
            return;
        };
        let notes = pod.begin_pulls(&node.images, jiff::Timestamp::now());
        self.record(pod, notes);
    }

    /// A failed pull: the pod is found in back-off shortly after, and pulled again when the
    /// back-off is over.
    fn schedule_retry(&self, uid: &str, backoff: Duration) {
        self.after(PULL_RESYNC, Work::BackOffPull(uid.to_string()));
        self.after(backoff, Work::RetryPull(uid.to_string()));
    }

    async fn back_off_pull(&self, uid: &str) {
        {
            let mut state = self.state();
            let Some(pod) = state
                .pods
                .get_mut(uid)
                .filter(|p| p.stage == Stage::Running)
            else {
                return;
            };
            let notes = pod.back_off();
            if notes.is_empty() {
                return;
            }
            self.record(pod, notes);
        }
        self.post_pod(uid).await;
    }

    async fn retry_pull(&self, uid: &str) {
        let backoff = {
            let mut state = self.state();
            let Some(pod) = state
                .pods
                .get_mut(uid)
                .filter(|p| p.stage == Stage::Running && p.pull.is_some())
            else {
                return;
            };
            let (notes, backoff) = pod.retry_pulls();
            self.record(pod, notes);
            backoff
        };
        if self.post_pod(uid).await {
            self.schedule_retry(uid, backoff);
        }
    }

    /// Schedules a [`Work::Tick`] for when the pod's containers next do something by
    /// themselves, unless one as early is already scheduled.
    fn schedule_tick(&self, pod: &mut SimPod, now: jiff::Timestamp) {
        let Some(at) = pod.next_due(now) else { return };
        if pod.tick.is_some_and(|t| t > now && t <= at) {
            return;
        }
        pod.tick = Some(at);
        let delay = Duration::try_from(at.duration_since(now)).unwrap_or_default();
        // A little late rather than early, so the tick finds the transition due.
        self.after(
            delay + Duration::from_millis(1),
            Work::Tick(pod.uid.clone()),
        );
    }

    async fn tick(&self, uid: &str) {
        let changed = {
            let mut state = self.state();
            let Some(pod) = state.pods.get_mut(uid) else {
                return;
            };
            let now = jiff::Timestamp::now();
            if pod.tick.is_some_and(|t| t <= now) {
                pod.tick = None;
            }
            let (changed, notes) = pod.advance(now);
            self.record(pod, notes);
            self.schedule_tick(pod, now);
            changed
        };
        if changed {
            self.post_pod(uid).await;
        }
    }

    async fn start_pod(&self, uid: &str) {
        let pull_failed = {
            let mut state = self.state();
            let State { nodes, pods } = &mut *state;
            let Some(pod) = pods.get_mut(uid) else { return };
            if pod.stage != Stage::Creating {
                return;
            }
            if pod.ip.is_none() {
                let Some(node) = nodes.get_mut(&pod.node) else {
                    return;
                };
                pod.ip = if pod.host_network {
                    Some(node.internal_ip)
                } else {
                    node.ipam.allocate()
                };
                if pod.ip.is_none() {
                    tracing::warn!(pod = %pod.name, node = %pod.node, "no pod IP left in the node's pod CIDR; retrying");
                    drop(state);
                    self.after(Duration::from_secs(5), Work::StartPod(uid.to_string()));
                    return;
                }
            }
            let now = jiff::Timestamp::now();
            let Some(node) = nodes.get_mut(&pod.node) else {
                return;
            };
            let (notes, pull_failed) = pod.finish_pulls(&mut node.images, now);
            self.record(pod, notes);
            let notes = pod.start(now);
            self.record(pod, notes);
            self.schedule_tick(pod, now);
            pull_failed
        };
        if self.post_pod(uid).await && pull_failed {
            self.schedule_retry(uid, crate::image::backoff(1));
        }
    }

    async fn terminate_pod(&self, uid: &str) {
        let Some((namespace, name, node)) = self
            .state()
            .pods
            .get(uid)
            .map(|p| (p.namespace.clone(), p.name.clone(), p.node.clone()))
        else {
            return;
        };
        self.post_pod(uid).await;
        let api: Api<Pod> = Api::namespaced(self.client_for(&node), &namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {}
            Err(error) if is_status(&error, 404) || is_status(&error, 409) => {}
            Err(error) => {
                tracing::warn!(pod = %format!("{namespace}/{name}"), %error, "could not delete pod; retrying");
                self.after(Duration::from_secs(1), Work::TerminatePod(uid.to_string()));
            }
        }
    }

    async fn renew_lease(&self, name: &str) {
        let (silenced, owner, unhealthy) = {
            let state = self.state();
            let Some(node) = state.nodes.get(name) else {
                return;
            };
            let ready = node
                .observed_conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            (
                node.silenced,
                node.uid.clone(),
                !ready && !node.observed_conditions.is_empty(),
            )
        };
        self.after(self.renew_interval(), Work::RenewLease(name.to_string()));
        if silenced {
            return;
        }
        let api: Api<Lease> = Api::namespaced(self.client_for(name), "kube-node-lease");
        let spec = LeaseSpec {
            holder_identity: Some(name.to_string()),
            lease_duration_seconds: Some(self.settings.lease_duration_seconds),
            renew_time: Some(MicroTime(jiff::Timestamp::now())),
            ..Default::default()
        };
        let patch = Patch::Merge(json!({ "spec": spec }));
        match api.patch(name, &PatchParams::default(), &patch).await {
            Ok(_) => {}
            Err(error) if is_status(&error, 404) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.to_string()),
                        namespace: Some("kube-node-lease".into()),
                        owner_references: owner.map(|uid| {
                            vec![OwnerReference {
                                api_version: "v1".into(),
                                kind: "Node".into(),
                                name: name.to_string(),
                                uid,
                                ..Default::default()
                            }]
                        }),
                        ..Default::default()
                    },
                    spec: Some(spec),
                };
                if let Err(error) = api.create(&PostParams::default(), &lease).await {
                    tracing::warn!(node = name, %error, "could not create node lease");
                }
            }
            Err(error) => tracing::warn!(node = name, %error, "could not renew node lease"),
        }
        // Like kubelet, post status at once when the node is seen as unhealthy (after
        // heartbeats resume) rather than waiting for the next periodic report.
        if unhealthy {
            self.post_node_status(name).await;
        }
    }

    async fn report_node(&self, name: &str) {
        let silenced = match self.state().nodes.get(name) {
            Some(node) => node.silenced,
            None => return,
        };
        self.after(
            self.settings.status_report_frequency,
            Work::ReportNode(name.to_string()),
        );
        if !silenced {
            self.post_node_status(name).await;
        }
    }

    async fn post_node_status(&self, name: &str) {
        let Some(conditions) = self.state().nodes.get(name).map(SimNode::conditions) else {
            return;
        };
        let api: Api<Node> = Api::all(self.client_for(name));
        let patch = Patch::Strategic(json!({ "status": { "conditions": conditions } }));
        match api
            .patch_status(name, &PatchParams::default(), &patch)
            .await
        {
            Ok(node) => self.observe_node(&node),
            Err(error) => tracing::warn!(node = name, %error, "could not update node status"),
        }
    }

    fn observe_node(&self, node: &Node) {
        let mut state = self.state();
        let Some(sim) = state.nodes.get_mut(&node.name_any()) else {
            return;
        };
        sim.uid = node.metadata.uid.clone();
        sim.observed_conditions = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let silenced = node.annotations().contains_key(STOP_HEARTBEATS);
        if silenced != sim.silenced {
            tracing::info!(node = %node.name_any(), silenced, "node heartbeats {}", if silenced { "stopped" } else { "resumed" });
            sim.silenced = silenced;
        }
    }

    async fn watch_nodes(self: Arc<Self>) {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Apply(node) | Event::InitApply(node)) => self.observe_node(&node),
                Ok(Event::Delete(node)) => self.forget_node(&node.name_any()),
                Ok(Event::Init | Event::InitDone) => {}
                Err(error) => tracing::warn!(%error, "node watch failed; retrying"),
            }
        }
    }

    /// A simulated Node object was deleted: like a kubelet whose node is gone, stop
    /// reporting for it; its pods are left to the pod garbage collector.
    fn forget_node(&self, name: &str) {
        let mut state = self.state();
        if state.nodes.remove(name).is_some() {
            tracing::warn!(node = name, "node was deleted; no longer simulating it");
            state.pods.retain(|_, p| p.node != name);
        }
    }

    async fn watch_pods(&self) {
        let api: Api<Pod> = Api::all(self.client.clone());
        let config = watcher::Config::default().fields("spec.nodeName!=");
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        let mut listed: Option<HashSet<String>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init) => listed = Some(HashSet::new()),
                Ok(Event::InitApply(pod) | Event::Apply(pod)) => {
                    if let Some(listed) = &mut listed {
                        listed.insert(pod.uid().unwrap_or_default());
                    }
                    self.on_pod(&pod);
                }
                Ok(Event::Delete(pod)) => self.forget_pod(&pod.uid().unwrap_or_default()),
                Ok(Event::InitDone) => {
                    let listed = listed.take().unwrap_or_default();
                    let gone: Vec<String> = self
                        .state()
                        .pods
                        .keys()
                        .filter(|uid| !listed.contains(*uid))
                        .cloned()
                        .collect();
                    for uid in gone {
                        self.forget_pod(&uid);
                    }
                }
                Err(error) => tracing::warn!(%error, "pod watch failed; retrying"),
            }
        }
    }

    fn forget_pod(&self, uid: &str) {
        let mut state = self.state();
        let State { nodes, pods } = &mut *state;
        if let Some(pod) = pods.remove(uid) {
            if let (Some(ip), Some(node)) = (pod.ip, nodes.get_mut(&pod.node)) {
                if !pod.host_network {
                    node.ipam.release(ip);
                }
            }
        }
    }

    fn on_pod(&self, pod: &Pod) {
        let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            return;
        };
        let uid = pod.uid().unwrap_or_default();
        let mut state = self.state();
        let State { nodes, pods } = &mut *state;
        let Some(node) = nodes.get_mut(&node_name) else {
            return;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            let sim = pods
                .entry(uid.clone())
                .or_insert_with(|| adopt(pod, &node_name, node, &self.settings.registry));
            if sim.stage != Stage::Terminating {
                sim.terminate(jiff::Timestamp::now());
                self.push(Work::TerminatePod(uid));
            }
            return;
        }
        if let Some(sim) = pods.get_mut(&uid) {
            let exit = pod.annotations().get(EXIT_CODE);
            if exit.is_some() && exit != sim.handled_exit.as_ref() && sim.stage == Stage::Running {
                sim.handled_exit = exit.cloned();
                match exit.and_then(|code| code.parse::<i32>().ok()) {
                    Some(code) => {
                        let now = jiff::Timestamp::now();
                        let (changed, notes) = sim.exit(code, now);
                        self.record(sim, notes);
                        self.schedule_tick(sim, now);
                        if changed {
                            self.push(Work::PostPod(uid));
                        }
                    }
                    None => {
                        tracing::warn!(pod = %pod.name_any(), "ignoring non-numeric {EXIT_CODE} annotation")
                    }
                }
            }
            return;
        }
        let mut sim = adopt(pod, &node_name, node, &self.settings.registry);
        let fresh = sim.stage == Stage::Creating;
        self.schedule_tick(&mut sim, jiff::Timestamp::now());
        pods.insert(uid.clone(), sim);
        if fresh {
            self.push(Work::CreatePod(uid));
        }
    }
}

/// Tracks a pod bound to `node`: a new one starts from `ContainerCreating`; one already
/// running or finished (found after a restart) is taken over as it is, its IP reserved.
fn adopt(pod: &Pod, node_name: &str, node: &mut SimNode, registry: &Registry) -> SimPod {
    let mut sim = SimPod::new(pod, node_name, node.internal_ip, registry);
    let status = pod.status.as_ref();
    let ip: Option<Ipv4Addr> = status
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    let phase = status.and_then(|s| s.phase.as_deref());
    let stage = match phase {
        Some("Running") => Some(Stage::Running),
        Some("Succeeded" | "Failed") => Some(Stage::Finished),
        _ => None,
    };
    if let (Some(stage), Some(ip)) = (stage, ip) {
        sim.take_over(
            pod,
            stage,
            status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
        );
        sim.ip = Some(ip);
        sim.handled_exit = pod.annotations().get(EXIT_CODE).cloned();
        if !sim.host_network {
            node.ipam.reserve(ip);
        }
    }
    sim
}
