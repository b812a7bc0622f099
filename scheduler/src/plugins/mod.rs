//! Upstream's default filter and score plugins, run in upstream's order with upstream's
//! weights. Each plugin module holds its own rules; this module strings them together for one
//! pod in one scheduling cycle ([`CycleState`]) and says which cluster events can make a pod
//! that a plugin rejected schedulable again ([`Plugin::requeued_by`]).

mod balanced_allocation;
mod inter_pod_affinity;
mod node_affinity;
mod node_name;
mod node_ports;
mod node_unschedulable;
mod resources_fit;
mod taint_toleration;
mod topology_spread;

use std::borrow::Cow;

use crate::cache::{Cache, NodeInfo};
use crate::pod_info::PodInfo;

/// The plugins that can reject a pod, named as upstream names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Plugin {
    NodeUnschedulable,
    NodeName,
    TaintToleration,
    NodeAffinity,
    NodePorts,
    NodeResourcesFit,
    PodTopologySpread,
    InterPodAffinity,
}

/// Changes in the cluster that may let an unschedulable pod fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterEvent {
    NodeAdd,
    NodeDelete,
    NodeAllocatableChange,
    NodeLabelChange,
    /// Taints or `spec.unschedulable` changed.
    NodeTaintChange,
    AssignedPodAdd,
    /// A bound pod's labels or requests changed, or it started terminating.
    AssignedPodUpdate,
    AssignedPodDelete,
}

impl ClusterEvent {
    /// The label of `scheduler_queue_incoming_pods_total`'s `event`.
    pub fn name(self) -> &'static str {
        match self {
            ClusterEvent::NodeAdd => "NodeAdd",
            ClusterEvent::NodeDelete => "NodeDelete",
            ClusterEvent::NodeAllocatableChange => "NodeAllocatableChange",
            ClusterEvent::NodeLabelChange => "NodeLabelChange",
            ClusterEvent::NodeTaintChange => "NodeTaintChange",
            ClusterEvent::AssignedPodAdd => "AssignedPodAdd",
            ClusterEvent::AssignedPodUpdate => "AssignedPodUpdate",
            ClusterEvent::AssignedPodDelete => "AssignedPodDelete",
        }
    }
}

impl Plugin {
    /// Whether `event` may resolve a rejection by this plugin (upstream's
    /// `EventsToRegister`), so that unschedulable pods are retried on relevant changes only.
    pub fn requeued_by(self, event: ClusterEvent) -> bool {
        use ClusterEvent::*;
        match self {
            Plugin::NodeUnschedulable | Plugin::TaintToleration => {
                matches!(event, NodeAdd | NodeTaintChange)
            }
            Plugin::NodeName => event == NodeAdd,
            Plugin::NodeAffinity => matches!(event, NodeAdd | NodeLabelChange),
            Plugin::NodePorts => matches!(event, NodeAdd | AssignedPodDelete),
            Plugin::NodeResourcesFit => matches!(
                event,
                NodeAdd | NodeAllocatableChange | AssignedPodDelete | AssignedPodUpdate
            ),
            Plugin::PodTopologySpread => event != NodeAllocatableChange,
            Plugin::InterPodAffinity => {
                !matches!(event, NodeAllocatableChange | NodeTaintChange | NodeDelete)
            }
        }
    }
}

/// How a plugin rejected a node: `Unschedulable` rejections may be resolved by preempting
/// pods on the node, `UnschedulableAndUnresolvable` ones may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unschedulable,
    UnschedulableAndUnresolvable,
}

/// A rejection, with the reasons the failure message counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub plugin: Plugin,
    pub code: Code,
    pub reasons: Vec<Cow<'static, str>>,
}

impl Status {
    pub fn new(plugin: Plugin, code: Code, reason: &'static str) -> Status {
        Status {
            plugin,
            code,
            reasons: vec![Cow::Borrowed(reason)],
        }
    }
}

/// Upstream's `DefaultNormalizeScore`: scales scores to 0–100 by the maximum, reversed for
/// plugins where a higher raw count is worse.
fn normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    for score in scores.iter_mut() {
        *score = match (max, reverse) {
            (0, true) => 100,
            (0, false) => *score,
            (max, false) => 100 * *score / max,
            (max, true) => 100 - 100 * *score / max,
        };
    }
}

/// The weights of the default score plugins.
const TAINT_TOLERATION_WEIGHT: i64 = 3;
const NODE_AFFINITY_WEIGHT: i64 = 2;
const RESOURCES_FIT_WEIGHT: i64 = 1;
const BALANCED_ALLOCATION_WEIGHT: i64 = 1;
const TOPOLOGY_SPREAD_WEIGHT: i64 = 2;
const INTER_POD_AFFINITY_WEIGHT: i64 = 2;

/// What the plugins precompute for one pod in one scheduling cycle (upstream's PreFilter).
#[derive(Clone)]
pub struct CycleState<'a> {
    pub pod: &'a PodInfo,
    node_affinity: node_affinity::NodeAffinity,
    spread: topology_spread::FilterState,
    affinity: inter_pod_affinity::FilterState,
}

impl<'a> CycleState<'a> {
    pub fn new(pod: &'a PodInfo, cache: &Cache) -> CycleState<'a> {
        let node_affinity = node_affinity::NodeAffinity::new(pod);
        let spread = topology_spread::FilterState::new(pod, &node_affinity, cache);
        let affinity = inter_pod_affinity::FilterState::new(pod, cache);
        CycleState {
            pod,
            node_affinity,
            spread,
            affinity,
        }
    }

    /// Runs the filters in upstream's order; the first rejection decides.
    pub fn filter(&self, node: &NodeInfo, cache: &Cache) -> Result<(), Status> {
        let pod = self.pod;
        node_unschedulable::filter(pod, node)?;
        node_name::filter(pod, node)?;
        taint_toleration::filter(pod, node)?;
        self.node_affinity.filter(node)?;
        node_ports::filter(pod, node)?;
        resources_fit::filter(pod, node)?;
        if !self.spread.is_empty() {
            self.spread.filter(node)?;
        }
        self.affinity.filter(pod, node, &cache.namespaces)
    }

    /// Filters as if the pods nominated to the node with at least this pod's priority were
    /// already there (and also without them), so the room preemption freed stays theirs.
    pub fn filter_with_nominated(&self, node: &NodeInfo, cache: &Cache) -> Result<(), Status> {
        let pod = self.pod;
        let mut nominated = cache
            .nominated_pods(&node.name)
            .iter()
            .filter(|p| p.uid != pod.uid && p.priority >= pod.priority)
            .peekable();
        if nominated.peek().is_some() {
            let mut with_nominated = node.clone();
            for other in nominated {
                with_nominated.add_pod(other.clone());
            }
            self.filter(&with_nominated, cache)?;
        }
        self.filter(node, cache)
    }

    /// Accounts for `other` appearing on (`delta` 1) or leaving (`delta` -1) `node` in the
    /// precomputed state, as preemption simulates removing victims.
    pub fn update(&mut self, other: &PodInfo, node: &NodeInfo, delta: i64, cache: &Cache) {
        self.spread
            .update(self.pod, &self.node_affinity, other, node, delta);
        self.affinity.update(self.pod, other, node, delta, cache);
    }

    /// Weighted total scores of the feasible `nodes`.
    pub fn score(&self, cache: &Cache, nodes: &[&NodeInfo]) -> Vec<i64> {
        let pod = self.pod;
        let mut totals: Vec<i64> = nodes
            .iter()
            .map(|n| {
                let balanced = if balanced_allocation::skips(pod) {
                    0
                } else {
                    balanced_allocation::score(pod, n)
                };
                RESOURCES_FIT_WEIGHT * resources_fit::score(pod, n)
                    + BALANCED_ALLOCATION_WEIGHT * balanced
            })
            .collect();
        let mut add = |scores: Vec<i64>, weight: i64| {
            for (total, score) in totals.iter_mut().zip(scores) {
                *total += weight * score;
            }
        };
        add(taint_toleration::score(pod, nodes), TAINT_TOLERATION_WEIGHT);
        if self.node_affinity.has_preferences() {
            add(self.node_affinity.score(nodes), NODE_AFFINITY_WEIGHT);
        }
        if let Some(scores) = topology_spread::score(pod, &self.node_affinity, cache, nodes) {
            add(scores, TOPOLOGY_SPREAD_WEIGHT);
        }
        if let Some(scores) = inter_pod_affinity::score(pod, cache, nodes) {
            add(scores, INTER_POD_AFFINITY_WEIGHT);
        }
        totals
    }
}

#[cfg(test)]
mod tests;
