//! One scheduling decision: filter nodes until enough feasible ones are found (upstream's
//! adaptive `percentageOfNodesToScore`, starting where the previous pod stopped so every node
//! gets its turn), score those, and pick the best, breaking ties at random. When nothing
//! fits, the per-node rejections make upstream's "0/N nodes are available: …" message.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::Rng;

use crate::cache::Cache;
use crate::plugins::{CycleState, Plugin, Status};
use crate::pod_info::PodInfo;

/// Below this many nodes every node is considered; upstream's `minFeasibleNodesToFind`.
const MIN_FEASIBLE_NODES: usize = 100;
/// The adaptive percentage never drops below this (`minFeasibleNodesPercentageToFind`).
const MIN_FEASIBLE_PERCENTAGE: usize = 5;

/// How many feasible nodes are enough to pick from: all of a small cluster, a share
/// shrinking from 50% with cluster size in a large one.
pub fn feasible_nodes_to_find(all: usize) -> usize {
    if all < MIN_FEASIBLE_NODES {
        return all;
    }
    let percentage = 50usize
        .saturating_sub(all / 125)
        .max(MIN_FEASIBLE_PERCENTAGE);
    (all * percentage / 100).max(MIN_FEASIBLE_NODES)
}

/// Why a pod fits nowhere: each node's rejection, and what preemption had to say.
#[derive(Debug, Clone)]
pub struct FitError {
    pub all_nodes: usize,
    pub statuses: BTreeMap<Arc<str>, Status>,
    /// The preemption (PostFilter) outcome, when it did not help.
    pub post_filter_message: Option<String>,
}

/// Upstream's reason histogram: `"<count> <reason>"` entries sorted as strings.
pub fn reason_histogram<'a>(reasons: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for reason in reasons {
        *counts.entry(reason).or_default() += 1;
    }
    let mut entries: Vec<String> = counts
        .iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    entries.sort();
    entries.join(", ")
}

impl FitError {
    /// The message of the `FailedScheduling` event and the `PodScheduled` condition.
    pub fn message(&self) -> String {
        let mut message = format!("0/{} nodes are available:", self.all_nodes);
        let histogram = reason_histogram(
            self.statuses
                .values()
                .flat_map(|s| s.reasons.iter().map(|r| r.as_ref())),
        );
        if !histogram.is_empty() {
            message.push_str(&format!(" {histogram}."));
        }
        if let Some(post) = &self.post_filter_message {
            message.push(' ');
            message.push_str(post);
        }
        message
    }

    /// The plugins that rejected some node: only events they care about retry the pod.
    pub fn plugins(&self) -> BTreeSet<Plugin> {
        self.statuses.values().map(|s| s.plugin).collect()
    }
}

/// Why a scheduling attempt failed.
#[derive(Debug, Clone)]
pub enum Failure {
    /// There are no nodes at all (upstream's `ErrNoNodesAvailable`).
    NoNodes,
    Unfit(FitError),
}

impl Failure {
    pub fn message(&self) -> String {
        match self {
            Failure::NoNodes => "no nodes available to schedule pods".into(),
            Failure::Unfit(error) => error.message(),
        }
    }
}

/// The decision-making state carried from one pod to the next.
#[derive(Default)]
pub struct Algorithm {
    next_start: usize,
}

impl Algorithm {
    /// Picks a node for `pod`.
    pub fn schedule(&mut self, cache: &mut Cache, pod: &PodInfo) -> Result<Arc<str>, Failure> {
        cache.refresh_order();
        let cache = &*cache;
        let order = cache.order();
        let total = order.len();
        if total == 0 {
            return Err(Failure::NoNodes);
        }
        let state = CycleState::new(pod, cache);
        if let Some(nominated) = pod.nominated_node_name().and_then(|n| cache.node(n)) {
            if state.filter_with_nominated(nominated, cache).is_ok() {
                return Ok(nominated.name.clone());
            }
        }
        let wanted = feasible_nodes_to_find(total);
        let mut feasible = Vec::with_capacity(wanted.min(total));
        let mut statuses = BTreeMap::new();
        let mut processed = 0;
        for i in 0..total {
            let name = &order[(self.next_start + i) % total];
            let node = cache.node(name).expect("ordered nodes exist");
            processed += 1;
            match state.filter_with_nominated(node, cache) {
                Ok(()) => {
                    feasible.push(node);
                    if feasible.len() >= wanted {
                        break;
                    }
                }
                Err(status) => {
                    statuses.insert(name.clone(), status);
                }
            }
        }
        self.next_start = (self.next_start + processed) % total;
        match feasible.len() {
            0 => Err(Failure::Unfit(FitError {
                all_nodes: total,
                statuses,
                post_filter_message: None,
            })),
            1 => Ok(feasible[0].name.clone()),
            _ => {
                let scores = state.score(cache, &feasible);
                Ok(feasible[select(&scores)].name.clone())
            }
        }
    }
}

/// The index of a highest score, chosen uniformly among ties.
fn select(scores: &[i64]) -> usize {
    let mut rng = rand::rng();
    let mut best = 0;
    let mut ties = 0;
    for (i, score) in scores.iter().enumerate() {
        if *score > scores[best] {
            best = i;
            ties = 1;
        } else if *score == scores[best] {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::Code;

    #[test]
    fn adaptive_share_of_nodes() {
        assert_eq!(feasible_nodes_to_find(50), 50);
        assert_eq!(feasible_nodes_to_find(100), 100);
        assert_eq!(feasible_nodes_to_find(1000), 420);
        assert_eq!(feasible_nodes_to_find(5000), 500);
        assert_eq!(feasible_nodes_to_find(1500), 570);
    }

    #[test]
    fn failure_message_reads_like_upstream() {
        let mut statuses = BTreeMap::new();
        statuses.insert(
            "a".into(),
            Status::new(
                Plugin::NodeResourcesFit,
                Code::Unschedulable,
                "Insufficient cpu",
            ),
        );
        let taint = "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }";
        for node in ["b", "c"] {
            statuses.insert(
                node.into(),
                Status::new(
                    Plugin::TaintToleration,
                    Code::UnschedulableAndUnresolvable,
                    taint,
                ),
            );
        }
        let error = FitError {
            all_nodes: 3,
            statuses,
            post_filter_message: Some(
                "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
                    .into(),
            ),
        };
        assert_eq!(
            error.message(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
        assert_eq!(
            error.plugins(),
            [Plugin::TaintToleration, Plugin::NodeResourcesFit].into()
        );
    }

    #[test]
    fn ties_are_broken_among_the_best_only() {
        for _ in 0..50 {
            let chosen = select(&[3, 7, 1, 7]);
            assert!(chosen == 1 || chosen == 3);
        }
    }
}
