//! InterPodAffinity: required pod affinity puts a pod in a topology domain with pods its
//! terms select; required anti-affinity (its own, and that of pods already running) keeps it
//! out of domains with them. Preferred terms, on both sides, score domains.

use std::collections::HashMap;

use super::{Code, Plugin, Status};
use crate::cache::{Cache, Labels, NodeInfo};
use crate::pod_info::{AffinityTerm, PodInfo, WeightedTerm};

/// Matching-term counts per topology pair (`key`, `value`).
type Counts = HashMap<(String, String), i64>;

fn bump(counts: &mut Counts, node: &NodeInfo, key: &str, delta: i64) {
    if let Some(value) = node.label(key) {
        let pair = (key.to_string(), value.clone());
        let count = counts.entry(pair.clone()).or_insert(0);
        *count += delta;
        if *count == 0 {
            counts.remove(&pair);
        }
    }
}

/// What the filter needs, computed once per scheduling cycle.
#[derive(Clone)]
pub struct FilterState {
    /// Pairs where a running pod's required anti-affinity rejects the incoming pod.
    existing_anti: Counts,
    /// Pairs with pods matching all of the incoming pod's required affinity terms.
    affinity: Counts,
    /// Pairs with pods matching one of its required anti-affinity terms.
    anti_affinity: Counts,
}

impl FilterState {
    pub fn new(pod: &PodInfo, cache: &Cache) -> FilterState {
        let mut state = FilterState {
            existing_anti: Counts::new(),
            affinity: Counts::new(),
            anti_affinity: Counts::new(),
        };
        let own_terms = !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty();
        let nodes: Box<dyn Iterator<Item = &NodeInfo>> = if own_terms {
            Box::new(cache.nodes())
        } else {
            Box::new(
                cache
                    .nodes_with_affinity()
                    .filter(|n| n.pods_with_required_anti_affinity > 0),
            )
        };
        for node in nodes {
            for other in &node.pods {
                state.account(pod, other, node, 1, &cache.namespaces);
            }
        }
        state
    }

    fn account(
        &mut self,
        pod: &PodInfo,
        other: &PodInfo,
        node: &NodeInfo,
        delta: i64,
        namespaces: &HashMap<String, Labels>,
    ) {
        for term in &other.required_anti_affinity {
            if term.matches(pod, namespaces) {
                bump(&mut self.existing_anti, node, &term.topology_key, delta);
            }
        }
        if !pod.required_affinity.is_empty()
            && pod
                .required_affinity
                .iter()
                .all(|t| t.matches(other, namespaces))
        {
            for term in &pod.required_affinity {
                bump(&mut self.affinity, node, &term.topology_key, delta);
            }
        }
        for term in &pod.required_anti_affinity {
            if term.matches(other, namespaces) {
                bump(&mut self.anti_affinity, node, &term.topology_key, delta);
            }
        }
    }

    /// Accounts for `other` appearing on (`delta` 1) or leaving (`delta` -1) `node`, as
    /// preemption simulates removing victims.
    pub fn update(
        &mut self,
        pod: &PodInfo,
        other: &PodInfo,
        node: &NodeInfo,
        delta: i64,
        cache: &Cache,
    ) {
        self.account(pod, other, node, delta, &cache.namespaces);
    }

    pub fn filter(
        &self,
        pod: &PodInfo,
        node: &NodeInfo,
        namespaces: &HashMap<String, Labels>,
    ) -> Result<(), Status> {
        if !self.satisfies_affinity(pod, node, namespaces) {
            return Err(Status::new(
                Plugin::InterPodAffinity,
                Code::UnschedulableAndUnresolvable,
                "node(s) didn't match pod affinity rules",
            ));
        }
        let anti = pod
            .required_anti_affinity
            .iter()
            .any(|t| self.count(&self.anti_affinity, node, t) > 0);
        if anti {
            return Err(Status::new(
                Plugin::InterPodAffinity,
                Code::Unschedulable,
                "node(s) didn't match pod anti-affinity rules",
            ));
        }
        let rejected = !self.existing_anti.is_empty()
            && node.labels().into_iter().flatten().any(|(k, v)| {
                self.existing_anti
                    .get(&(k.clone(), v.clone()))
                    .is_some_and(|c| *c > 0)
            });
        if rejected {
            return Err(Status::new(
                Plugin::InterPodAffinity,
                Code::Unschedulable,
                "node(s) didn't satisfy existing pods anti-affinity rules",
            ));
        }
        Ok(())
    }

    fn count(&self, counts: &Counts, node: &NodeInfo, term: &AffinityTerm) -> i64 {
        match node.label(&term.topology_key) {
            Some(value) => counts
                .get(&(term.topology_key.clone(), value.clone()))
                .copied()
                .unwrap_or(0),
            None => 0,
        }
    }

    fn satisfies_affinity(
        &self,
        pod: &PodInfo,
        node: &NodeInfo,
        namespaces: &HashMap<String, Labels>,
    ) -> bool {
        let mut pods_exist = true;
        for term in &pod.required_affinity {
            if node.label(&term.topology_key).is_none() {
                return false;
            }
            if self.count(&self.affinity, node, term) <= 0 {
                pods_exist = false;
            }
        }
        // The first pod of a group with affinity to itself may go anywhere with the
        // topology, or it would wait forever.
        pods_exist
            || (self.affinity.is_empty()
                && pod
                    .required_affinity
                    .iter()
                    .all(|t| t.matches(pod, namespaces)))
    }
}

/// Preferred terms with their weights, negated for anti-affinity (`sign` -1).
fn weighted(terms: &[WeightedTerm], sign: i64) -> impl Iterator<Item = (&AffinityTerm, i64)> {
    terms.iter().map(move |t| (&t.term, t.weight * sign))
}

/// Scores from preferred terms of the pod and of running pods (and running pods' required
/// affinity, at weight 1), or `None` when no term is involved (the score is skipped).
pub fn score(pod: &PodInfo, cache: &Cache, nodes: &[&NodeInfo]) -> Option<Vec<i64>> {
    let own = !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
    let namespaces = &cache.namespaces;
    let mut topology: HashMap<String, HashMap<String, i64>> = HashMap::new();
    let mut add = |term: &AffinityTerm, weight: i64, target: &PodInfo, node: &NodeInfo| {
        if let Some(value) = node.label(&term.topology_key) {
            if term.matches(target, namespaces) {
                *topology
                    .entry(term.topology_key.clone())
                    .or_default()
                    .entry(value.clone())
                    .or_insert(0) += weight;
            }
        }
    };
    let visited: Box<dyn Iterator<Item = &NodeInfo>> = if own {
        Box::new(cache.nodes())
    } else {
        Box::new(cache.nodes_with_affinity())
    };
    for node in visited {
        for other in &node.pods {
            if !own && !other.has_affinity() {
                continue;
            }
            for (term, weight) in weighted(&pod.preferred_affinity, 1)
                .chain(weighted(&pod.preferred_anti_affinity, -1))
            {
                add(term, weight, other, node);
            }
            for term in &other.required_affinity {
                add(term, 1, pod, node);
            }
            for (term, weight) in weighted(&other.preferred_affinity, 1)
                .chain(weighted(&other.preferred_anti_affinity, -1))
            {
                add(term, weight, pod, node);
            }
        }
    }
    if topology.is_empty() {
        return None;
    }
    let raw: Vec<i64> = nodes
        .iter()
        .map(|node| {
            topology
                .iter()
                .filter_map(|(key, values)| node.label(key).and_then(|v| values.get(v)))
                .sum()
        })
        .collect();
    let min = raw.iter().copied().min().unwrap_or(0);
    let max = raw.iter().copied().max().unwrap_or(0);
    Some(
        raw.iter()
            .map(|s| {
                if max > min {
                    (100.0 * (s - min) as f64 / (max - min) as f64) as i64
                } else {
                    0
                }
            })
            .collect(),
    )
}
