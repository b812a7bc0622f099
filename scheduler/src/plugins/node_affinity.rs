//! NodeAffinity: `spec.nodeSelector` and required node affinity decide where a pod may go
//! (all selector labels, and any one required term); preferred terms add their weights to
//! the score of nodes they match.

use std::collections::BTreeMap;

use super::{normalize, Code, Plugin, Status};
use crate::cache::NodeInfo;
use crate::pod_info::PodInfo;
use machinery::selector::NodeTerm;

/// A pod's node constraints, compiled once per scheduling cycle.
#[derive(Clone)]
pub struct NodeAffinity {
    node_selector: BTreeMap<String, String>,
    /// `None` when the pod has no required affinity; otherwise any term must match.
    required: Option<Vec<NodeTerm>>,
    preferred: Vec<(i64, NodeTerm)>,
}

impl NodeAffinity {
    pub fn new(pod: &PodInfo) -> NodeAffinity {
        let spec = pod.spec();
        let affinity = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref());
        let required = affinity
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|s| s.node_selector_terms.iter().map(NodeTerm::new).collect());
        let preferred = affinity
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .map(|t| (i64::from(t.weight), NodeTerm::new(&t.preference)))
            .collect();
        NodeAffinity {
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required,
            preferred,
        }
    }

    /// Whether the node satisfies the node selector and required terms; topology spreading
    /// also counts only such nodes.
    pub fn matches(&self, node: &NodeInfo) -> bool {
        let Some(object) = &node.node else {
            return false;
        };
        let labels = node.labels();
        let selected = self
            .node_selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
        selected
            && self
                .required
                .as_ref()
                .is_none_or(|terms| terms.iter().any(|t| t.matches(object)))
    }

    pub fn filter(&self, node: &NodeInfo) -> Result<(), Status> {
        if self.matches(node) {
            return Ok(());
        }
        Err(Status::new(
            Plugin::NodeAffinity,
            Code::UnschedulableAndUnresolvable,
            "node(s) didn't match Pod's node affinity/selector",
        ))
    }

    pub fn has_preferences(&self) -> bool {
        !self.preferred.is_empty()
    }

    pub fn score(&self, nodes: &[&NodeInfo]) -> Vec<i64> {
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|node| match &node.node {
                Some(object) => self
                    .preferred
                    .iter()
                    .filter(|(_, t)| t.matches(object))
                    .map(|(w, _)| w)
                    .sum(),
                None => 0,
            })
            .collect();
        normalize(&mut scores, false);
        scores
    }
}
