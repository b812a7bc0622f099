//! The scheduler's view of the cluster, fed by informers: every node with the pods on it and
//! what they request, including pods the scheduler has *assumed* onto a node (decided, but
//! their binding not yet observed back), so that a burst of decisions never overcommits a
//! node. Pods nominated to a node by preemption are tracked too, so others do not take the
//! room being freed for them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Taint};

use crate::plugins::ClusterEvent;
use crate::pod_info::{HostPort, PodInfo};
use crate::resources::Resources;
use machinery::selector::Selector;

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const REGION_LABEL: &str = "topology.kubernetes.io/region";

/// A node and the pods on it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: Arc<str>,
    /// `None` while pods bound to the node are known but the node itself is not.
    pub node: Option<Arc<Node>>,
    pub allocatable: Resources,
    pub requested: Resources,
    /// CPU and memory requested with defaults for containers asking for nothing.
    pub non_zero_requested: (i64, i64),
    pub pods: Vec<Arc<PodInfo>>,
    pub used_ports: Vec<HostPort>,
    /// How many of the pods have any (anti-)affinity term, and how many a required
    /// anti-affinity term: inter-pod affinity skips nodes where both are zero.
    pub pods_with_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
}

impl NodeInfo {
    fn new(name: Arc<str>) -> NodeInfo {
        NodeInfo {
            name,
            node: None,
            allocatable: Resources::default(),
            requested: Resources::default(),
            non_zero_requested: (0, 0),
            pods: Vec::new(),
            used_ports: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
        }
    }

    pub fn labels(&self) -> Option<&Labels> {
        self.node.as_ref().and_then(|n| n.metadata.labels.as_ref())
    }

    pub fn label(&self, key: &str) -> Option<&String> {
        self.labels().and_then(|l| l.get(key))
    }

    pub fn taints(&self) -> &[Taint] {
        self.node
            .as_ref()
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.taints.as_deref())
            .unwrap_or(&[])
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.requested.pods += 1;
        self.non_zero_requested.0 += pod.non_zero.0;
        self.non_zero_requested.1 += pod.non_zero.1;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        self.pods_with_affinity += usize::from(pod.has_affinity());
        self.pods_with_required_anti_affinity +=
            usize::from(!pod.required_anti_affinity.is_empty());
        self.pods.push(pod);
    }

    /// Removes the pod with `uid`; returns it if it was here.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let index = self.pods.iter().position(|p| p.uid == uid)?;
        let pod = self.pods.swap_remove(index);
        self.requested.subtract(&pod.requests);
        self.requested.pods -= 1;
        self.non_zero_requested.0 -= pod.non_zero.0;
        self.non_zero_requested.1 -= pod.non_zero.1;
        for port in &pod.host_ports {
            if let Some(i) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(i);
            }
        }
        self.pods_with_affinity -= usize::from(pod.has_affinity());
        self.pods_with_required_anti_affinity -=
            usize::from(!pod.required_anti_affinity.is_empty());
        Some(pod)
    }
}

struct CachedPod {
    info: Arc<PodInfo>,
    node: Arc<str>,
    assumed: bool,
}

/// Everything the scheduling algorithm reads, behind one lock.
#[derive(Default)]
pub struct Cache {
    nodes: HashMap<Arc<str>, NodeInfo>,
    /// Names of existing nodes, zones interleaved (like upstream's node tree) so that the
    /// first feasible nodes found are spread over zones.
    order: Vec<Arc<str>>,
    order_stale: bool,
    pods: HashMap<String, CachedPod>,
    /// Labels of every namespace, for affinity terms' `namespaceSelector`.
    pub namespaces: HashMap<String, Labels>,
    /// Pending pods nominated to a node by preemption, by node; and each one's node by uid.
    nominated: HashMap<String, Vec<Arc<PodInfo>>>,
    nominated_to: HashMap<String, String>,
    /// Nodes running a pod with (anti-)affinity terms: the only ones inter-pod affinity has
    /// to visit for pods without terms of their own.
    affinity_nodes: HashSet<Arc<str>>,
    /// Selectors of the workloads whose pods are spread by default, by namespace and name.
    replica_sets: HashMap<(String, String), Selector>,
    services: HashMap<(String, String), Selector>,
    /// PodDisruptionBudgets by namespace and name, which preemption prefers not to violate.
    budgets: HashMap<(String, String), crate::preemption::Budget>,
}

fn node_events(old: &Node, new: &Node) -> Vec<ClusterEvent> {
    let mut events = Vec::new();
    let allocatable = |n: &Node| n.status.as_ref().and_then(|s| s.allocatable.clone());
    if allocatable(old) != allocatable(new) {
        events.push(ClusterEvent::NodeAllocatableChange);
    }
    if old.metadata.labels != new.metadata.labels {
        events.push(ClusterEvent::NodeLabelChange);
    }
    let taints = |n: &Node| n.spec.as_ref().map(|s| (s.taints.clone(), s.unschedulable));
    if taints(old) != taints(new) {
        events.push(ClusterEvent::NodeTaintChange);
    }
    events
}

impl Cache {
    /// Adds or updates a node; returns what changed, for requeueing unschedulable pods.
    pub fn update_node(&mut self, node: impl Into<Arc<Node>>) -> Vec<ClusterEvent> {
        let node = node.into();
        let name: Arc<str> = node.metadata.name.as_deref().unwrap_or_default().into();
        let info = self
            .nodes
            .entry(name.clone())
            .or_insert_with(|| NodeInfo::new(name));
        let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        info.allocatable = allocatable.map(Resources::from_list).unwrap_or_default();
        let events = match &info.node {
            Some(old) => node_events(old, &node),
            None => {
                self.order_stale = true;
                vec![ClusterEvent::NodeAdd]
            }
        };
        info.node = Some(node);
        events
    }

    pub fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.get_mut(name) {
            info.node = None;
            if info.pods.is_empty() {
                self.nodes.remove(name);
            }
            self.order_stale = true;
        }
    }

    fn node_entry(&mut self, name: &str) -> &mut NodeInfo {
        if !self.nodes.contains_key(name) {
            let name: Arc<str> = name.into();
            self.nodes.insert(name.clone(), NodeInfo::new(name));
        }
        self.nodes.get_mut(name).expect("inserted above")
    }

    fn detach(&mut self, uid: &str) -> Option<CachedPod> {
        let cached = self.pods.remove(uid)?;
        if let Some(info) = self.nodes.get_mut(&*cached.node) {
            info.remove_pod(uid);
            if info.node.is_none() && info.pods.is_empty() {
                self.nodes.remove(&*cached.node);
            }
        }
        self.track_affinity(&cached.node);
        Some(cached)
    }

    /// Places `pod` on `node` in the cache.
    fn attach(&mut self, pod: Arc<PodInfo>, node: &str, assumed: bool) {
        let info = self.node_entry(node);
        let node = info.name.clone();
        info.add_pod(pod.clone());
        self.track_affinity(&node);
        self.pods.insert(
            pod.uid.clone(),
            CachedPod {
                info: pod,
                node,
                assumed,
            },
        );
    }

    fn track_affinity(&mut self, node: &Arc<str>) {
        if self
            .nodes
            .get(node)
            .is_some_and(|n| n.pods_with_affinity > 0)
        {
            self.affinity_nodes.insert(node.clone());
        } else {
            self.affinity_nodes.remove(node);
        }
    }

    /// Nodes (with a Node object) running pods that have affinity terms.
    pub fn nodes_with_affinity(&self) -> impl Iterator<Item = &NodeInfo> {
        self.affinity_nodes
            .iter()
            .filter_map(|name| self.node(name))
    }

    /// Records a decision before the binding is observed, so the node's resources count the
    /// pod at once.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.forget_nomination(&pod.uid);
        self.detach(&pod.uid);
        self.attach(pod, node, true);
    }

    /// Undoes an assumption whose binding failed.
    pub fn forget(&mut self, uid: &str) {
        if self.pods.get(uid).is_some_and(|p| p.assumed) {
            self.detach(uid);
        }
    }

    /// Adds or updates a pod bound to a node (confirming an assumption); returns the cluster
    /// event it represents, if any: status-only updates change nothing for scheduling.
    pub fn update_bound_pod(&mut self, pod: Arc<PodInfo>) -> Option<ClusterEvent> {
        let node = pod.node_name().unwrap_or_default().to_string();
        self.forget_nomination(&pod.uid);
        let previous = self.detach(&pod.uid);
        let event = match &previous {
            Some(old) if !old.assumed => {
                let relevant = old.info.labels() != pod.labels()
                    || old.info.requests != pod.requests
                    || old.info.is_terminating() != pod.is_terminating()
                    || *old.node != *node;
                relevant.then_some(ClusterEvent::AssignedPodUpdate)
            }
            _ => Some(ClusterEvent::AssignedPodAdd),
        };
        self.attach(pod, &node, false);
        event
    }

    /// Removes a bound pod that was deleted or finished.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        self.forget_nomination(uid);
        self.detach(uid).is_some()
    }

    pub fn pod(&self, uid: &str) -> Option<&Arc<PodInfo>> {
        self.pods.get(uid).map(|p| &p.info)
    }

    /// Records (or clears) the node a pending pod was nominated to.
    pub fn nominate(&mut self, pod: Arc<PodInfo>, node: Option<&str>) {
        self.forget_nomination(&pod.uid);
        if let Some(node) = node {
            self.nominated_to.insert(pod.uid.clone(), node.to_string());
            self.nominated
                .entry(node.to_string())
                .or_default()
                .push(pod);
        }
    }

    pub fn forget_nomination(&mut self, uid: &str) {
        if let Some(node) = self.nominated_to.remove(uid) {
            if let Some(pods) = self.nominated.get_mut(&node) {
                pods.retain(|p| p.uid != uid);
                if pods.is_empty() {
                    self.nominated.remove(&node);
                }
            }
        }
    }

    /// Pods nominated to `node`.
    pub fn nominated_pods(&self, node: &str) -> &[Arc<PodInfo>] {
        self.nominated.get(node).map_or(&[], Vec::as_slice)
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name).filter(|n| n.node.is_some())
    }

    /// Brings the scheduling order up to date with added and removed nodes.
    pub fn refresh_order(&mut self) {
        if self.order_stale {
            self.rebuild_order();
        }
    }

    /// Existing nodes in scheduling order (zones interleaved), as of the last
    /// [`Cache::refresh_order`].
    pub fn order(&self) -> &[Arc<str>] {
        &self.order
    }

    fn rebuild_order(&mut self) {
        let mut zones: Vec<(String, Vec<Arc<str>>)> = Vec::new();
        let mut names: Vec<&NodeInfo> = self.nodes.values().filter(|n| n.node.is_some()).collect();
        names.sort_by(|a, b| a.name.cmp(&b.name));
        for info in names {
            let zone = format!(
                "{}:\0:{}",
                info.label(REGION_LABEL).map_or("", String::as_str),
                info.label(ZONE_LABEL).map_or("", String::as_str)
            );
            match zones.iter_mut().find(|(z, _)| *z == zone) {
                Some((_, members)) => members.push(info.name.clone()),
                None => zones.push((zone, vec![info.name.clone()])),
            }
        }
        let longest = zones.iter().map(|(_, m)| m.len()).max().unwrap_or(0);
        self.order.clear();
        for i in 0..longest {
            self.order
                .extend(zones.iter().filter_map(|(_, m)| m.get(i).cloned()));
        }
        self.order_stale = false;
    }

    /// Every node (with a Node object), in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.values().filter(|n| n.node.is_some())
    }

    pub fn set_replica_set(&mut self, namespace: &str, name: &str, selector: Option<Selector>) {
        let key = (namespace.to_string(), name.to_string());
        match selector {
            Some(selector) => self.replica_sets.insert(key, selector),
            None => self.replica_sets.remove(&key),
        };
    }

    pub fn set_budget(
        &mut self,
        namespace: &str,
        name: &str,
        budget: Option<crate::preemption::Budget>,
    ) {
        let key = (namespace.to_string(), name.to_string());
        match budget {
            Some(budget) => self.budgets.insert(key, budget),
            None => self.budgets.remove(&key),
        };
    }

    /// The PodDisruptionBudgets of every namespace.
    pub fn budgets(&self) -> impl Iterator<Item = &crate::preemption::Budget> {
        self.budgets.values()
    }

    pub fn set_service(&mut self, namespace: &str, name: &str, selector: Option<Selector>) {
        let key = (namespace.to_string(), name.to_string());
        match selector {
            Some(selector) => self.services.insert(key, selector),
            None => self.services.remove(&key),
        };
    }

    /// Upstream's `DefaultSelector`: the combined selectors of the Services and ReplicaSets
    /// selecting the pod, which default topology spreading counts its siblings by. `None`
    /// when nothing selects the pod.
    pub fn default_spread_selector(&self, pod: &PodInfo) -> Option<Selector> {
        let labels = pod.labels();
        let mut combined: Option<Selector> = None;
        let owners = self.services.iter().chain(self.replica_sets.iter());
        for ((namespace, _), selector) in owners {
            if *namespace == pod.namespace && !selector.is_empty() && selector.matches(labels) {
                combined
                    .get_or_insert_with(Selector::everything)
                    .extend(selector);
            }
        }
        combined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeStatus, Pod, PodSpec};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub fn node(name: &str, zone: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([(ZONE_LABEL.to_string(), zone.to_string())].into()),
                ..Default::default()
            },
            status: Some(NodeStatus {
                allocatable: Some(
                    [
                        ("cpu".to_string(), Quantity("4".into())),
                        ("pods".to_string(), Quantity("110".into())),
                    ]
                    .into(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(uid: &str, node: &str) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(Pod {
            metadata: ObjectMeta {
                name: Some(uid.into()),
                namespace: Some("default".into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    #[test]
    fn nodes_are_ordered_with_zones_interleaved() {
        let mut cache = Cache::default();
        for (name, zone) in [
            ("a1", "a"),
            ("a2", "a"),
            ("a3", "a"),
            ("b1", "b"),
            ("c1", "c"),
        ] {
            assert_eq!(
                cache.update_node(node(name, zone)),
                vec![ClusterEvent::NodeAdd]
            );
        }
        cache.refresh_order();
        let order: Vec<&str> = cache.order().iter().map(|n| &**n).collect();
        assert_eq!(order, ["a1", "b1", "c1", "a2", "a3"]);
    }

    #[test]
    fn assumed_pods_count_until_confirmed_or_forgotten() {
        let mut cache = Cache::default();
        cache.update_node(node("n", "a"));
        cache.assume(pod("p1", ""), "n");
        assert_eq!(cache.node("n").unwrap().requested.pods, 1);
        assert_eq!(
            cache.update_bound_pod(pod("p1", "n")),
            Some(ClusterEvent::AssignedPodAdd)
        );
        assert_eq!(
            cache.update_bound_pod(pod("p1", "n")),
            None,
            "nothing changed"
        );
        assert_eq!(
            cache.node("n").unwrap().requested.pods,
            1,
            "confirming does not double count"
        );
        cache.assume(pod("p2", ""), "n");
        cache.forget("p2");
        assert_eq!(cache.node("n").unwrap().requested.pods, 1);
        assert!(cache.remove_pod("p1"));
        assert_eq!(cache.node("n").unwrap().requested.pods, 0);
    }

    #[test]
    fn node_updates_report_what_changed() {
        let mut cache = Cache::default();
        cache.update_node(node("n", "a"));
        let mut cordoned = node("n", "a");
        cordoned.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            unschedulable: Some(true),
            ..Default::default()
        });
        assert_eq!(
            cache.update_node(cordoned),
            vec![ClusterEvent::NodeTaintChange]
        );
        assert_eq!(
            cache.update_node(node("n", "b")),
            vec![ClusterEvent::NodeLabelChange, ClusterEvent::NodeTaintChange]
        );
    }
}
