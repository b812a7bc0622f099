//! PodTopologySpread: `topologySpreadConstraints` keep matching pods evenly spread over
//! topology domains (nodes, zones). `DoNotSchedule` constraints filter out nodes where the
//! skew would exceed `maxSkew`; `ScheduleAnyway` ones score domains with fewer matching pods
//! higher. Pods without constraints that belong to a ReplicaSet or Service get upstream's
//! system default spreading over hostnames (`maxSkew` 3) and zones (`maxSkew` 5).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;

use super::node_affinity::NodeAffinity;
use super::taint_toleration::tolerates;
use super::{Code, Plugin, Status};
use crate::cache::{Cache, NodeInfo};
use crate::pod_info::PodInfo;
use machinery::selector::Selector;

const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";
const SKEW_REASON: &str = "node(s) didn't match pod topology spread constraints";
const LABEL_REASON: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

#[derive(Clone)]
struct Constraint {
    max_skew: i64,
    key: String,
    selector: Selector,
    min_domains: usize,
    honor_node_affinity: bool,
    honor_taints: bool,
}

impl Constraint {
    fn new(pod: &PodInfo, c: &TopologySpreadConstraint) -> Constraint {
        let mut selector = Selector::new(c.label_selector.as_ref());
        if c.label_selector.is_some() {
            let labels = pod.labels();
            for key in c.match_label_keys.iter().flatten() {
                if let Some(value) = labels.and_then(|l| l.get(key)) {
                    selector.require(key, value, true);
                }
            }
        }
        Constraint {
            max_skew: i64::from(c.max_skew),
            key: c.topology_key.clone(),
            selector,
            min_domains: c.min_domains.map_or(1, |m| m.max(1) as usize),
            honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        }
    }

    fn system_default(key: &str, max_skew: i64, selector: &Selector) -> Constraint {
        Constraint {
            max_skew,
            key: key.to_string(),
            selector: selector.clone(),
            min_domains: 1,
            honor_node_affinity: true,
            honor_taints: false,
        }
    }

    /// Whether the node's pods count for this constraint (node inclusion policies).
    fn includes(&self, pod: &PodInfo, affinity: &NodeAffinity, node: &NodeInfo) -> bool {
        if self.honor_node_affinity && !affinity.matches(node) {
            return false;
        }
        if self.honor_taints {
            let tolerations = pod.spec().tolerations.as_deref().unwrap_or(&[]);
            let hard = |t: &&k8s_openapi::api::core::v1::Taint| {
                t.effect == "NoSchedule" || t.effect == "NoExecute"
            };
            if !node
                .taints()
                .iter()
                .filter(hard)
                .all(|t| tolerates(tolerations, t))
            {
                return false;
            }
        }
        true
    }

    /// Pods on the node this constraint counts: same namespace, not terminating, selected.
    fn count(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        node.pods.iter().filter(|p| self.counts(pod, p)).count() as i64
    }

    fn counts(&self, pod: &PodInfo, other: &PodInfo) -> bool {
        other.namespace == pod.namespace
            && !other.is_terminating()
            && self.selector.matches(other.labels())
    }
}

fn constraints(pod: &PodInfo, when: &str) -> Vec<Constraint> {
    let all = pod
        .spec()
        .topology_spread_constraints
        .as_deref()
        .unwrap_or(&[]);
    all.iter()
        .filter(|c| c.when_unsatisfiable == when)
        .map(|c| Constraint::new(pod, c))
        .collect()
}

fn has_all_keys(node: &NodeInfo, constraints: &[Constraint]) -> bool {
    constraints.iter().all(|c| node.label(&c.key).is_some())
}

/// Matching-pod counts per domain for the pod's `DoNotSchedule` constraints.
#[derive(Clone)]
pub struct FilterState {
    constraints: Vec<Constraint>,
    /// Per constraint: domain value → matching pods.
    counts: Vec<HashMap<String, i64>>,
    /// Per constraint: the smallest count over domains (0 below `minDomains` domains).
    minimums: Vec<i64>,
    self_match: Vec<bool>,
}

impl FilterState {
    pub fn new(pod: &PodInfo, affinity: &NodeAffinity, cache: &Cache) -> FilterState {
        let constraints = constraints(pod, "DoNotSchedule");
        let mut counts = vec![HashMap::new(); constraints.len()];
        if !constraints.is_empty() {
            for node in cache.nodes().filter(|n| has_all_keys(n, &constraints)) {
                for (i, c) in constraints.iter().enumerate() {
                    if c.includes(pod, affinity, node) {
                        let value = node.label(&c.key).cloned().unwrap_or_default();
                        *counts[i].entry(value).or_insert(0) += c.count(pod, node);
                    }
                }
            }
        }
        let self_match = constraints
            .iter()
            .map(|c| c.selector.matches(pod.labels()))
            .collect();
        let mut state = FilterState {
            constraints,
            counts,
            minimums: Vec::new(),
            self_match,
        };
        state.update_minimums();
        state
    }

    fn update_minimums(&mut self) {
        self.minimums = self
            .constraints
            .iter()
            .zip(&self.counts)
            .map(|(c, counts)| {
                if counts.len() < c.min_domains {
                    0
                } else {
                    counts.values().copied().min().unwrap_or(0)
                }
            })
            .collect();
    }

    pub fn is_empty(&self) -> bool {
        self.constraints.is_empty()
    }

    pub fn filter(&self, node: &NodeInfo) -> Result<(), Status> {
        for (i, c) in self.constraints.iter().enumerate() {
            let Some(value) = node.label(&c.key) else {
                return Err(Status::new(
                    Plugin::PodTopologySpread,
                    Code::UnschedulableAndUnresolvable,
                    LABEL_REASON,
                ));
            };
            let matching = self.counts[i].get(value).copied().unwrap_or(0);
            let skew = matching + i64::from(self.self_match[i]) - self.minimums[i];
            if skew > c.max_skew {
                return Err(Status::new(
                    Plugin::PodTopologySpread,
                    Code::Unschedulable,
                    SKEW_REASON,
                ));
            }
        }
        Ok(())
    }

    /// Accounts for `other` appearing on (`delta` 1) or leaving (`delta` -1) `node`, as
    /// preemption simulates removing victims.
    pub fn update(
        &mut self,
        pod: &PodInfo,
        affinity: &NodeAffinity,
        other: &PodInfo,
        node: &NodeInfo,
        delta: i64,
    ) {
        if self.constraints.is_empty() || !has_all_keys(node, &self.constraints) {
            return;
        }
        for (i, c) in self.constraints.iter().enumerate() {
            if c.includes(pod, affinity, node) && c.counts(pod, other) {
                let value = node.label(&c.key).cloned().unwrap_or_default();
                *self.counts[i].entry(value).or_insert(0) += delta;
            }
        }
        self.update_minimums();
    }
}

/// Scores for the pod's `ScheduleAnyway` constraints (or the system defaults), or `None`
/// when the pod has none, which upstream treats as skipping this score.
pub fn score(
    pod: &PodInfo,
    affinity: &NodeAffinity,
    cache: &Cache,
    nodes: &[&NodeInfo],
) -> Option<Vec<i64>> {
    let own = !pod
        .spec()
        .topology_spread_constraints
        .as_ref()
        .is_none_or(|c| c.is_empty());
    let constraints = if own {
        constraints(pod, "ScheduleAnyway")
    } else {
        let selector = cache.default_spread_selector(pod)?;
        vec![
            Constraint::system_default(HOSTNAME, 3, &selector),
            Constraint::system_default(ZONE, 5, &selector),
        ]
    };
    if constraints.is_empty() || nodes.is_empty() {
        return None;
    }
    // Nodes lacking a topology key are ignored, except under the system defaults, which
    // still spread over hostnames where zones are not labelled.
    let require_all = own;
    let ignored: Vec<bool> = nodes
        .iter()
        .map(|n| require_all && !has_all_keys(n, &constraints))
        .collect();
    let mut pair_counts: HashMap<(usize, String), i64> = HashMap::new();
    let mut domains = vec![0usize; constraints.len()];
    for (node, _) in nodes.iter().zip(&ignored).filter(|(_, ignored)| !**ignored) {
        for (i, c) in constraints
            .iter()
            .enumerate()
            .filter(|(_, c)| c.key != HOSTNAME)
        {
            let value = node.label(&c.key).cloned().unwrap_or_default();
            if let std::collections::hash_map::Entry::Vacant(entry) = pair_counts.entry((i, value))
            {
                entry.insert(0);
                domains[i] += 1;
            }
        }
    }
    if !pair_counts.is_empty() {
        for node in cache.nodes() {
            if require_all && !has_all_keys(node, &constraints) {
                continue;
            }
            for (i, c) in constraints
                .iter()
                .enumerate()
                .filter(|(_, c)| c.key != HOSTNAME)
            {
                if !c.includes(pod, affinity, node) {
                    continue;
                }
                let value = node.label(&c.key).cloned().unwrap_or_default();
                if let Some(count) = pair_counts.get_mut(&(i, value)) {
                    *count += c.count(pod, node);
                }
            }
        }
    }
    let considered = ignored.iter().filter(|i| !**i).count();
    let weights: Vec<f64> = constraints
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let size = if c.key == HOSTNAME {
                considered
            } else {
                domains[i]
            };
            ((size + 2) as f64).ln()
        })
        .collect();
    let raw: Vec<Option<i64>> = nodes
        .iter()
        .zip(&ignored)
        .map(|(node, ignored)| {
            if *ignored {
                return None;
            }
            let mut score = 0.0;
            for (i, c) in constraints.iter().enumerate() {
                let Some(value) = node.label(&c.key) else {
                    continue;
                };
                let count = if c.key == HOSTNAME {
                    c.count(pod, node)
                } else {
                    pair_counts.get(&(i, value.clone())).copied().unwrap_or(0)
                };
                score += count as f64 * weights[i] + (c.max_skew - 1) as f64;
            }
            Some(score.round() as i64)
        })
        .collect();
    let valid = raw.iter().flatten();
    let min = valid.clone().copied().min().unwrap_or(0);
    let max = valid.copied().max().unwrap_or(0);
    Some(
        raw.iter()
            .map(|score| match score {
                None => 0,
                Some(_) if max == 0 => 100,
                Some(s) => 100 * (max + min - s) / max,
            })
            .collect(),
    )
}
