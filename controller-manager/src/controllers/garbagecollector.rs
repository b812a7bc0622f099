//! The garbage collector (upstream `pkg/controller/garbagecollector`): deletes objects whose
//! owners are gone, following `metadata.ownerReferences` across every served resource.
//!
//! One monitor (a dynamic watch) per deletable resource feeds a single graph builder, which
//! keeps the ownership graph (nodes by UID, owners and dependents) and queues work: objects
//! that may have lost their owners go to `attemptToDelete`, owners deleted with the `orphan`
//! finalizer go to `attemptToOrphan`. Owners referenced before they are seen become
//! "virtual" nodes that a worker verifies against the API server.
//!
//! Like upstream's, the collector reads metadata only (`PartialObjectMetadata` watches and
//! gets): owner references, finalizers and deletion are all it needs, and holding every
//! object of every resource in full would cost the memory of a second watch cache.
//!
//! Deletion modes, as upstream: background (the owner goes at once, the collector deletes its
//! dependents afterwards), foreground (the owner waits with the `foregroundDeletion`
//! finalizer until its dependents that block owner deletion are gone) and orphan (the
//! `orphan` finalizer: dependents lose the owner reference, then the owner goes).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::core::{DynamicObject, DynamicResourceScope, GroupVersion, PartialObjectMeta};
use kube::discovery::{verbs, ApiResource, Discovery, Scope};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;

use super::ControllerContext;
use crate::runtime::api_message;
use crate::workqueue::WorkQueue;

/// The controller's name (`--controllers`, queue metrics).
pub const NAME: &str = "garbage-collector-controller";

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";
/// How often discovery is re-read to monitor resources added since.
const RESYNC_DISCOVERY: Duration = Duration::from_secs(30);
/// Owners known to be absent, so their many dependents need not look each one up.
const ABSENT_OWNER_CACHE_SIZE: usize = 500;

/// What the collector knows of an object: its metadata.
type Metadata = PartialObjectMeta<DynamicObject>;

/// Coordinates of an object: what an owner reference names, plus the namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Identity {
    api_version: String,
    kind: String,
    name: String,
    uid: String,
    namespace: Option<String>,
}

impl Identity {
    fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    fn of_owner(reference: &OwnerReference, namespace: Option<String>) -> Self {
        Identity {
            api_version: reference.api_version.clone(),
            kind: reference.kind.clone(),
            name: reference.name.clone(),
            uid: reference.uid.clone(),
            namespace,
        }
    }

    /// Whether an owner reference names this object (same group, kind and name).
    fn matches(&self, reference: &OwnerReference) -> bool {
        let group = reference
            .api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group);
        group == self.group() && reference.kind == self.kind && reference.name == self.name
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version,
            self.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name,
            self.uid
        )
    }
}

/// One object in the graph.
#[derive(Clone)]
struct Node {
    identity: Identity,
    owners: Vec<OwnerReference>,
    dependents: HashSet<String>,
    /// Being deleted in the foreground: waits for its blocking dependents.
    deleting_dependents: bool,
    being_deleted: bool,
    /// Referenced as an owner but not observed (yet).
    virtual_: bool,
    /// What was last observed: deletion started, and the finalizers.
    observed: Option<(bool, Vec<String>)>,
}

/// What the monitors tell the graph builder.
enum GraphEvent {
    Observed {
        identity: Identity,
        owners: Vec<OwnerReference>,
        deleting: bool,
        finalizers: Vec<String>,
    },
    Deleted {
        identity: Identity,
    },
    /// A worker found the object missing at the API server.
    VirtualDeleted {
        identity: Identity,
    },
    /// A (re)list of one resource completed with these UIDs present.
    Listed {
        group: String,
        kind: String,
        present: HashSet<String>,
    },
}

#[derive(Default)]
struct Graph {
    nodes: HashMap<String, Node>,
    absent: VecDeque<Identity>,
    absent_set: HashSet<Identity>,
}

impl Graph {
    fn add_absent(&mut self, identity: Identity) {
        if self.absent_set.insert(identity.clone()) {
            self.absent.push_back(identity);
            if self.absent.len() > ABSENT_OWNER_CACHE_SIZE {
                if let Some(oldest) = self.absent.pop_front() {
                    self.absent_set.remove(&oldest);
                }
            }
        }
    }
}

/// How a resource is reached: its API resource and scope.
#[derive(Clone)]
struct Mapping {
    resource: ApiResource,
    namespaced: bool,
}

struct Collector {
    client: Client,
    graph: Mutex<Graph>,
    /// Resources by (group, kind), for owner references.
    mappings: Mutex<HashMap<(String, String), Mapping>>,
    attempt_to_delete: Arc<WorkQueue<String>>,
    attempt_to_orphan: Arc<WorkQueue<String>>,
    events: UnboundedSender<GraphEvent>,
}

/// Starts discovery, the monitors, the graph builder and the workers.
pub fn start(ctx: &ControllerContext) {
    let (events, changes) = unbounded_channel();
    let collector = Arc::new(Collector {
        client: ctx.client_for(NAME),
        graph: Mutex::default(),
        mappings: Mutex::default(),
        attempt_to_delete: WorkQueue::new("garbage_collector_attempt_to_delete"),
        attempt_to_orphan: WorkQueue::new("garbage_collector_attempt_to_orphan"),
        events,
    });
    let (synced_tx, synced) = watch::channel(false);
    let workers = ctx.options.concurrent_gc_syncs;
    tokio::spawn(collector.clone().monitor_resources(synced_tx.clone()));
    tokio::spawn(collector.clone().build_graph(changes));
    for _ in 0..workers {
        tokio::spawn(collector.clone().delete_worker(synced.clone()));
        tokio::spawn(collector.clone().orphan_worker(synced.clone()));
    }
}

impl Collector {
    /// Discovers deletable resources and watches each (again every 30 s for new ones);
    /// `synced` turns true once every resource of the first discovery has been listed.
    async fn monitor_resources(self: Arc<Self>, synced: watch::Sender<bool>) {
        let mut monitored: HashSet<(String, String)> = HashSet::new();
        let (listed_tx, mut listed_rx) = unbounded_channel::<()>();
        let mut first = None;
        loop {
            match deletable_resources(&self.client).await {
                Ok(resources) => {
                    for mapping in resources {
                        let key = (
                            mapping.resource.group.clone(),
                            mapping.resource.kind.clone(),
                        );
                        self.mappings
                            .lock()
                            .expect("mappings")
                            .insert(key.clone(), mapping.clone());
                        if monitored.insert(key) {
                            tokio::spawn(self.clone().monitor(mapping, listed_tx.clone()));
                        }
                    }
                    first.get_or_insert(monitored.len());
                }
                Err(error) => tracing::warn!(%error, "garbage collector discovery failed"),
            }
            if let Some(expected) = first.filter(|_| !*synced.borrow()) {
                let mut listed = 0;
                while listed < expected {
                    if listed_rx.recv().await.is_none() {
                        return;
                    }
                    listed += 1;
                }
                tracing::info!(
                    resources = expected,
                    "garbage collector: all resource monitors have synced"
                );
                let _ = synced.send(true);
            }
            // Until the first discovery succeeds, retry soon.
            tokio::time::sleep(if first.is_some() {
                RESYNC_DISCOVERY
            } else {
                Duration::from_secs(1)
            })
            .await;
        }
    }

    /// Watches one resource, reporting objects to the graph builder and each completed list
    /// (the first one on `listed`).
    async fn monitor(self: Arc<Self>, mapping: Mapping, listed: UnboundedSender<()>) {
        let api: Api<Metadata> = Api::all_with(self.client.clone(), &mapping.resource);
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let (group, kind) = (
            mapping.resource.group.clone(),
            mapping.resource.kind.clone(),
        );
        let mut present = HashSet::new();
        let mut first = true;
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Apply(object)) | Ok(Event::InitApply(object)) => {
                    if let Some(uid) = object.uid() {
                        present.insert(uid);
                    }
                    let _ = self.events.send(observed(&mapping.resource, &object));
                }
                Ok(Event::Delete(object)) => {
                    let _ = self.events.send(GraphEvent::Deleted {
                        identity: identity(&mapping.resource, &object),
                    });
                }
                Ok(Event::Init) => present.clear(),
                Ok(Event::InitDone) => {
                    let present = std::mem::take(&mut present);
                    let _ = self.events.send(GraphEvent::Listed {
                        group: group.clone(),
                        kind: kind.clone(),
                        present,
                    });
                    if std::mem::take(&mut first) {
                        let _ = listed.send(());
                    }
                }
                Err(error) => {
                    tracing::debug!(resource = mapping.resource.plural, %error, "garbage collector watch failed")
                }
            }
        }
    }

    /// The single writer of the graph.
    async fn build_graph(self: Arc<Self>, mut changes: UnboundedReceiver<GraphEvent>) {
        while let Some(change) = changes.recv().await {
            let mut graph = self.graph.lock().expect("graph");
            match change {
                GraphEvent::Observed {
                    identity,
                    owners,
                    deleting,
                    finalizers,
                } => self.process_observed(&mut graph, identity, owners, deleting, finalizers),
                GraphEvent::Deleted { identity } => self.process_deleted(&mut graph, &identity),
                GraphEvent::VirtualDeleted { identity } => {
                    self.process_virtual_deleted(&mut graph, &identity)
                }
                GraphEvent::Listed {
                    group,
                    kind,
                    present,
                } => {
                    let gone: Vec<Identity> = graph
                        .nodes
                        .values()
                        .filter(|n| {
                            !n.virtual_
                                && n.identity.group() == group
                                && n.identity.kind == kind
                                && !present.contains(&n.identity.uid)
                        })
                        .map(|n| n.identity.clone())
                        .collect();
                    for identity in gone {
                        self.process_deleted(&mut graph, &identity);
                    }
                }
            }
        }
    }

    fn process_observed(
        &self,
        graph: &mut Graph,
        identity: Identity,
        owners: Vec<OwnerReference>,
        deleting: bool,
        finalizers: Vec<String>,
    ) {
        let uid = identity.uid.clone();
        let mut previous = None;
        match graph.nodes.get_mut(&uid) {
            None => {
                let node = Node {
                    identity,
                    owners: owners.clone(),
                    dependents: HashSet::new(),
                    deleting_dependents: deleting && finalizers.iter().any(|f| f == FOREGROUND),
                    being_deleted: deleting,
                    virtual_: false,
                    observed: None,
                };
                graph.nodes.insert(uid.clone(), node);
                self.add_dependent_to_owners(graph, &uid, &owners);
            }
            Some(node) => {
                if node.virtual_ {
                    // Now observed: dependents that named it differently may be dangling.
                    if node.identity != identity {
                        for dependent in &node.dependents {
                            self.attempt_to_delete.add(dependent.clone());
                        }
                        node.identity = identity;
                    }
                    node.virtual_ = false;
                } else {
                    previous = node.observed.clone();
                }
                let old_owners = std::mem::replace(&mut node.owners, owners.clone());
                if deleting {
                    node.being_deleted = true;
                }
                let (added, removed, changed) = reference_diffs(&old_owners, &owners);
                self.add_unblocked_owners_to_delete_queue(graph, &removed, &changed);
                self.add_dependent_to_owners(graph, &uid, &added);
                remove_dependent_from_owners(graph, &uid, &removed);
            }
        }
        let node = graph.nodes.get_mut(&uid).expect("just inserted");
        node.observed = Some((deleting, finalizers.clone()));
        let starts = |finalizer: &str| {
            deleting
                && finalizers.iter().any(|f| f == finalizer)
                && previous.as_ref().is_none_or(|(was_deleting, had)| {
                    !was_deleting || !had.iter().any(|f| f == finalizer)
                })
        };
        if starts(ORPHAN) {
            self.attempt_to_orphan.add(uid);
        } else if starts(FOREGROUND) {
            node.deleting_dependents = true;
            for dependent in &node.dependents {
                self.attempt_to_delete.add(dependent.clone());
            }
            self.attempt_to_delete.add(uid);
        }
    }

    /// Links a node to its owners, creating virtual nodes for owners not seen yet (a worker
    /// checks whether they exist).
    fn add_dependent_to_owners(&self, graph: &mut Graph, uid: &str, owners: &[OwnerReference]) {
        let namespace = graph
            .nodes
            .get(uid)
            .and_then(|n| n.identity.namespace.clone());
        for owner in owners {
            match graph.nodes.get_mut(&owner.uid) {
                Some(node) => {
                    node.dependents.insert(uid.to_string());
                }
                None => {
                    let node = Node {
                        identity: Identity::of_owner(owner, namespace.clone()),
                        owners: Vec::new(),
                        dependents: HashSet::from([uid.to_string()]),
                        deleting_dependents: false,
                        being_deleted: false,
                        virtual_: true,
                        observed: None,
                    };
                    graph.nodes.insert(owner.uid.clone(), node);
                    self.attempt_to_delete.add(owner.uid.clone());
                }
            }
        }
    }

    /// Owners waiting in the foreground for dependents that no longer block them.
    fn add_unblocked_owners_to_delete_queue(
        &self,
        graph: &Graph,
        removed: &[OwnerReference],
        changed: &[(OwnerReference, OwnerReference)],
    ) {
        let unblocked = removed
            .iter()
            .filter(|r| r.block_owner_deletion == Some(true))
            .chain(
                changed
                    .iter()
                    .filter(|(old, new)| {
                        old.block_owner_deletion == Some(true)
                            && new.block_owner_deletion != Some(true)
                    })
                    .map(|(old, _)| old),
            );
        for reference in unblocked {
            if graph
                .nodes
                .get(&reference.uid)
                .is_some_and(|n| n.deleting_dependents)
            {
                self.attempt_to_delete.add(reference.uid.clone());
            }
        }
    }

    fn process_deleted(&self, graph: &mut Graph, identity: &Identity) {
        let Some(node) = graph.nodes.remove(&identity.uid) else {
            return;
        };
        remove_dependent_from_owners(graph, &identity.uid, &node.owners);
        if !node.dependents.is_empty() {
            graph.add_absent(node.identity.clone());
        }
        for dependent in &node.dependents {
            self.attempt_to_delete.add(dependent.clone());
        }
        for owner in &node.owners {
            if graph
                .nodes
                .get(&owner.uid)
                .is_some_and(|n| n.deleting_dependents)
            {
                self.attempt_to_delete.add(owner.uid.clone());
            }
        }
    }

    /// A worker found `identity` missing. A virtual node goes; an observed node known by
    /// other coordinates stays, and only the dependents that named the missing coordinates
    /// are reconsidered.
    fn process_virtual_deleted(&self, graph: &mut Graph, identity: &Identity) {
        let Some(node) = graph.nodes.get(&identity.uid) else {
            return;
        };
        if node.virtual_ || node.identity == *identity {
            self.process_deleted(graph, identity);
            return;
        }
        let matching: Vec<String> = node
            .dependents
            .iter()
            .filter(|d| {
                graph.nodes.get(*d).is_some_and(|d| {
                    d.owners
                        .iter()
                        .any(|o| o.uid == identity.uid && identity.matches(o))
                })
            })
            .cloned()
            .collect();
        if !matching.is_empty() {
            graph.add_absent(identity.clone());
        }
        for dependent in matching {
            self.attempt_to_delete.add(dependent);
        }
    }

    async fn delete_worker(self: Arc<Self>, mut synced: watch::Receiver<bool>) {
        let _ = synced.wait_for(|s| *s).await;
        loop {
            let uid = self.attempt_to_delete.get().await;
            match self.attempt_to_delete_item(&uid).await {
                Ok(true) => self.attempt_to_delete.forget(&uid),
                Ok(false) => self.attempt_to_delete.add_rate_limited(uid.clone()),
                Err(error) => {
                    tracing::info!(uid, %error, "garbage collector: error syncing item");
                    self.attempt_to_delete.add_rate_limited(uid.clone());
                }
            }
            self.attempt_to_delete.done(&uid);
        }
    }

    /// Deletes the item if none of its owners remains (returns whether it is done with it).
    async fn attempt_to_delete_item(&self, uid: &str) -> Result<bool, String> {
        let Some(node) = self.graph.lock().expect("graph").nodes.get(uid).cloned() else {
            return Ok(true);
        };
        if node.being_deleted && !node.deleting_dependents {
            return Ok(true);
        }
        let Some(latest) = self.get(&node.identity).await? else {
            let _ = self.events.send(GraphEvent::VirtualDeleted {
                identity: node.identity.clone(),
            });
            return Ok(true);
        };
        if latest.uid().as_deref() != Some(uid) {
            let _ = self.events.send(GraphEvent::VirtualDeleted {
                identity: node.identity.clone(),
            });
            return Ok(true);
        }
        if node.deleting_dependents {
            self.process_deleting_dependents(&node).await?;
            return Ok(true);
        }
        let owners = latest.owner_references().to_vec();
        if owners.is_empty() {
            return Ok(!self.is_virtual(uid));
        }
        let mut solid = Vec::new();
        let mut dangling = Vec::new();
        let mut waiting = Vec::new();
        for owner in owners {
            match self.owner_state(&owner, &node).await? {
                OwnerState::Dangling => dangling.push(owner),
                OwnerState::WaitingForDependentsDeletion => waiting.push(owner),
                OwnerState::Solid => solid.push(owner),
                OwnerState::Invalid => return Ok(true),
            }
        }
        if !solid.is_empty() {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(!self.is_virtual(uid));
            }
            // Keep the live owners; drop references to gone owners, and to owners waiting
            // for their dependents (which would otherwise wait forever).
            let uids: Vec<&str> = dangling
                .iter()
                .chain(&waiting)
                .map(|o| o.uid.as_str())
                .collect();
            self.remove_owner_references(&node.identity, &uids).await?;
        } else if !waiting.is_empty() && !node.dependents.is_empty() {
            let cycle = {
                let graph = self.graph.lock().expect("graph");
                node.dependents
                    .iter()
                    .any(|d| graph.nodes.get(d).is_some_and(|d| d.deleting_dependents))
            };
            if cycle {
                self.unblock_owner_references(&node.identity, &latest)
                    .await?;
            }
            self.delete(&node.identity, &latest, PropagationPolicy::Foreground)
                .await?;
        } else {
            let finalizers = latest.finalizers();
            let policy = if finalizers.iter().any(|f| f == ORPHAN) {
                PropagationPolicy::Orphan
            } else if finalizers.iter().any(|f| f == FOREGROUND) {
                PropagationPolicy::Foreground
            } else {
                PropagationPolicy::Background
            };
            tracing::info!(item = %node.identity, ?policy, "garbage collector: deleting object whose owners are gone");
            self.delete(&node.identity, &latest, policy).await?;
        }
        Ok(!self.is_virtual(uid))
    }

    fn is_virtual(&self, uid: &str) -> bool {
        self.graph
            .lock()
            .expect("graph")
            .nodes
            .get(uid)
            .is_some_and(|n| n.virtual_)
    }

    /// An owner deleted in the foreground: once no dependent blocks it, its finalizer goes;
    /// until then its blocking dependents are deleted.
    async fn process_deleting_dependents(&self, node: &Node) -> Result<(), String> {
        let blocking: Vec<(String, bool)> = {
            let graph = self.graph.lock().expect("graph");
            node.dependents
                .iter()
                .filter_map(|d| graph.nodes.get(d))
                .filter(|d| {
                    d.owners
                        .iter()
                        .any(|o| o.uid == node.identity.uid && o.block_owner_deletion == Some(true))
                })
                .map(|d| (d.identity.uid.clone(), d.deleting_dependents))
                .collect()
        };
        if blocking.is_empty() {
            return self.remove_finalizer(&node.identity, FOREGROUND).await;
        }
        for (uid, deleting_dependents) in blocking {
            if !deleting_dependents {
                self.attempt_to_delete.add(uid);
            }
        }
        Ok(())
    }

    async fn orphan_worker(self: Arc<Self>, mut synced: watch::Receiver<bool>) {
        let _ = synced.wait_for(|s| *s).await;
        loop {
            let uid = self.attempt_to_orphan.get().await;
            match self.orphan_dependents(&uid).await {
                Ok(()) => self.attempt_to_orphan.forget(&uid),
                Err(error) => {
                    tracing::info!(uid, %error, "garbage collector: orphaning failed");
                    self.attempt_to_orphan.add_rate_limited(uid.clone());
                }
            }
            self.attempt_to_orphan.done(&uid);
        }
    }

    /// Removes the owner from its dependents' references, then its `orphan` finalizer.
    async fn orphan_dependents(&self, uid: &str) -> Result<(), String> {
        let Some((owner, dependents)) = ({
            let graph = self.graph.lock().expect("graph");
            graph.nodes.get(uid).map(|owner| {
                let dependents: Vec<Identity> = owner
                    .dependents
                    .iter()
                    .filter_map(|d| graph.nodes.get(d))
                    .map(|d| d.identity.clone())
                    .collect();
                (owner.identity.clone(), dependents)
            })
        }) else {
            return Ok(());
        };
        let owner_uid = [uid];
        let results = futures::future::join_all(
            dependents
                .iter()
                .map(|d| self.remove_owner_references(d, &owner_uid)),
        )
        .await;
        let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        if !errors.is_empty() {
            return Err(format!(
                "failed to orphan dependents of owner {owner}, got errors: {}",
                errors.join(", ")
            ));
        }
        self.remove_finalizer(&owner, ORPHAN).await
    }

    fn mapping(&self, api_version: &str, kind: &str) -> Result<Mapping, String> {
        let group = api_version
            .parse::<GroupVersion>()
            .map(|gv| gv.group)
            .unwrap_or_default();
        self.mappings
            .lock()
            .expect("mappings")
            .get(&(group, kind.to_string()))
            .cloned()
            .ok_or_else(|| format!("unable to get REST mapping for {api_version}/{kind}"))
    }

    /// The API of the identity's resource: `Api<Metadata>` reads metadata only, `Api<DynamicObject>`
    /// writes.
    fn api<K>(&self, identity: &Identity) -> Result<Api<K>, String>
    where
        K: Resource<DynamicType = ApiResource, Scope = DynamicResourceScope>,
    {
        let mapping = self.mapping(&identity.api_version, &identity.kind)?;
        Ok(match (&identity.namespace, mapping.namespaced) {
            (Some(namespace), true) => {
                Api::namespaced_with(self.client.clone(), namespace, &mapping.resource)
            }
            _ => Api::all_with(self.client.clone(), &mapping.resource),
        })
    }

    async fn get(&self, identity: &Identity) -> Result<Option<Metadata>, String> {
        self.api::<Metadata>(identity)?
            .get_opt(&identity.name)
            .await
            .map_err(|e| api_message(&e))
    }

    /// Whether an owner still stands, is gone, or is itself waiting for its dependents.
    async fn owner_state(&self, owner: &OwnerReference, item: &Node) -> Result<OwnerState, String> {
        let cluster_key = Identity::of_owner(owner, None);
        let namespaced_key = Identity::of_owner(owner, item.identity.namespace.clone());
        {
            let graph = self.graph.lock().expect("graph");
            if graph.absent_set.contains(&cluster_key) || graph.absent_set.contains(&namespaced_key)
            {
                return Ok(OwnerState::Dangling);
            }
        }
        let mapping = self.mapping(&owner.api_version, &owner.kind)?;
        if item.identity.namespace.is_none() && mapping.namespaced {
            // A cluster-scoped object cannot be owned by a namespaced one.
            return Ok(OwnerState::Invalid);
        }
        let key = if mapping.namespaced {
            namespaced_key
        } else {
            cluster_key
        };
        match self.get(&key).await? {
            Some(live) if live.uid().as_deref() == Some(owner.uid.as_str()) => {
                let waiting = live.metadata.deletion_timestamp.is_some()
                    && live.finalizers().iter().any(|f| f == FOREGROUND);
                Ok(if waiting {
                    OwnerState::WaitingForDependentsDeletion
                } else {
                    OwnerState::Solid
                })
            }
            _ => {
                self.graph.lock().expect("graph").add_absent(key);
                Ok(OwnerState::Dangling)
            }
        }
    }

    async fn delete(
        &self,
        identity: &Identity,
        latest: &Metadata,
        policy: PropagationPolicy,
    ) -> Result<(), String> {
        let params = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(identity.uid.clone()),
                resource_version: latest.resource_version(),
            }),
            ..DeleteParams::default()
        };
        match self
            .api::<DynamicObject>(identity)?
            .delete(&identity.name, &params)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                let _ = self.events.send(GraphEvent::VirtualDeleted {
                    identity: identity.clone(),
                });
                Ok(())
            }
            Err(error) => Err(api_message(&error)),
        }
    }

    /// Strategic-merge deletes the owner references with `uids` (the object's UID guards
    /// against a namesake).
    async fn remove_owner_references(
        &self,
        identity: &Identity,
        uids: &[&str],
    ) -> Result<(), String> {
        let references: Vec<_> = uids
            .iter()
            .map(|uid| json!({"$patch": "delete", "uid": uid}))
            .collect();
        let patch = json!({"metadata": {"ownerReferences": references, "uid": identity.uid}});
        match self
            .api::<DynamicObject>(identity)?
            .patch(
                &identity.name,
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(format!(
                "orphaning {identity} failed, {}",
                api_message(&error)
            )),
        }
    }

    /// Makes the item's references non-blocking, so a foreground deletion of the item and of
    /// its owner cannot wait on each other.
    async fn unblock_owner_references(
        &self,
        identity: &Identity,
        latest: &Metadata,
    ) -> Result<(), String> {
        let references: Vec<_> = latest
            .owner_references()
            .iter()
            .filter(|o| o.block_owner_deletion == Some(true))
            .map(|o| json!({"uid": o.uid, "blockOwnerDeletion": false}))
            .collect();
        if references.is_empty() {
            return Ok(());
        }
        let patch = json!({"metadata": {"ownerReferences": references, "uid": identity.uid}});
        self.api::<DynamicObject>(identity)?
            .patch(
                &identity.name,
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
            .map(|_| ())
            .map_err(|e| api_message(&e))
    }

    /// Removes one finalizer with a merge patch of the remaining ones, guarded by the
    /// resourceVersion it was read at, retrying conflicts (upstream's `removeFinalizer`).
    async fn remove_finalizer(&self, identity: &Identity, finalizer: &str) -> Result<(), String> {
        let api = self.api::<DynamicObject>(identity)?;
        for _ in 0..5 {
            let Some(object) = self.get(identity).await? else {
                return Ok(());
            };
            if object.uid().as_deref() != Some(identity.uid.as_str())
                || !object.finalizers().iter().any(|f| f == finalizer)
            {
                return Ok(());
            }
            let remaining: Vec<&String> = object
                .finalizers()
                .iter()
                .filter(|f| *f != finalizer)
                .collect();
            let finalizers = if remaining.is_empty() {
                Value::Null
            } else {
                json!(remaining)
            };
            let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": object.resource_version()}});
            match api
                .patch(
                    &identity.name,
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
                Err(error) => {
                    return Err(format!(
                        "cannot finalize owner {identity}: {}",
                        api_message(&error)
                    ))
                }
            }
        }
        Err(format!("updateMaxRetries(5) has reached. The garbage collector will retry later for owner {identity}."))
    }
}

enum OwnerState {
    Solid,
    Dangling,
    WaitingForDependentsDeletion,
    /// A reference the collector never acts on (namespaced owner of a cluster-scoped object).
    Invalid,
}

fn remove_dependent_from_owners(graph: &mut Graph, uid: &str, owners: &[OwnerReference]) {
    for owner in owners {
        if let Some(node) = graph.nodes.get_mut(&owner.uid) {
            node.dependents.remove(uid);
        }
    }
}

/// Owner references added, removed, and changed (same UID, other fields), by UID.
fn reference_diffs(
    old: &[OwnerReference],
    new: &[OwnerReference],
) -> (
    Vec<OwnerReference>,
    Vec<OwnerReference>,
    Vec<(OwnerReference, OwnerReference)>,
) {
    let old_by_uid: HashMap<&str, &OwnerReference> =
        old.iter().map(|r| (r.uid.as_str(), r)).collect();
    let new_uids: HashSet<&str> = new.iter().map(|r| r.uid.as_str()).collect();
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for reference in new {
        match old_by_uid.get(reference.uid.as_str()) {
            None => added.push(reference.clone()),
            Some(previous) if *previous != reference => {
                changed.push(((*previous).clone(), reference.clone()))
            }
            Some(_) => {}
        }
    }
    let removed = old
        .iter()
        .filter(|r| !new_uids.contains(r.uid.as_str()))
        .cloned()
        .collect();
    (added, removed, changed)
}

fn identity(resource: &ApiResource, object: &Metadata) -> Identity {
    Identity {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
        name: object.name_any(),
        uid: object.uid().unwrap_or_default(),
        namespace: object.namespace(),
    }
}

fn observed(resource: &ApiResource, object: &Metadata) -> GraphEvent {
    GraphEvent::Observed {
        identity: identity(resource, object),
        owners: object.owner_references().to_vec(),
        deleting: object.metadata.deletion_timestamp.is_some(),
        finalizers: object.finalizers().to_vec(),
    }
}

/// Resources the collector can watch and delete (upstream's `GetDeletableResources`), at
/// their preferred versions; events are never owners or owned.
async fn deletable_resources(client: &Client) -> Result<Vec<Mapping>, String> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(|e| e.to_string())?;
    let mut resources = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            let ignored = resource.plural == "events"
                && (resource.group.is_empty() || resource.group == "events.k8s.io");
            let deletable = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                .iter()
                .all(|v| caps.supports_operation(v));
            if deletable && !ignored {
                resources.push(Mapping {
                    namespaced: caps.scope == Scope::Namespaced,
                    resource,
                });
            }
        }
    }
    Ok(resources)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("rs-{uid}"),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(block),
        }
    }

    #[test]
    fn owner_reference_diffs_by_uid() {
        let (added, removed, changed) = reference_diffs(
            &[reference("a", true), reference("b", true)],
            &[reference("b", false), reference("c", true)],
        );
        assert_eq!(
            added.iter().map(|r| r.uid.as_str()).collect::<Vec<_>>(),
            ["c"]
        );
        assert_eq!(
            removed.iter().map(|r| r.uid.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].1.block_owner_deletion, Some(false));
    }

    #[test]
    fn identity_matches_references_by_group_kind_and_name() {
        let identity = Identity::of_owner(&reference("a", true), Some("ns".into()));
        let mut other_version = reference("a", true);
        other_version.api_version = "apps/v1beta2".into();
        assert!(identity.matches(&other_version));
        other_version.name = "else".into();
        assert!(!identity.matches(&other_version));
    }
}
