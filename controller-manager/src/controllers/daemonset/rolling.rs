//! RollingUpdate (upstream's `rollingUpdate`): without surge, old pods are deleted while
//! fewer than `maxUnavailable` nodes are unavailable and the core loop creates their
//! replacements; with `maxSurge`, a new pod is started next to an old one on up to
//! `maxSurge` nodes and the old pod deleted once the new one is available.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::placement::should_run;
use super::{is_updated, min_ready_seconds};
use crate::controller_utils::is_pod_available;
use crate::controllers::deployment::scaled_value;
use crate::runtime::Result;

/// The pods to delete and the nodes to start new pods on for one step of the rollout.
pub struct Step {
    pub delete: Vec<String>,
    pub create: Vec<String>,
}

/// A node's pod made from the current template and its pod made from an older one.
type NewAndOld<'a> = (Option<&'a Arc<Pod>>, Option<&'a Arc<Pod>>);

/// Upstream's `findUpdatedPodsOnNode`: the node's one new and one old pod (not being
/// deleted), or `None` when it has more, for the core loop to prune first.
fn updated_and_old<'a>(ds: &DaemonSet, pods: &'a [Arc<Pod>], hash: &str) -> Option<NewAndOld<'a>> {
    let (mut new, mut old) = (None, None);
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_updated(pod, hash, ds) {
            &mut new
        } else {
            &mut old
        };
        if slot.replace(pod).is_some() {
            return None;
        }
    }
    Some((new, old))
}

/// Upstream's `updatedDesiredNodeCounts`: maxSurge, maxUnavailable (percentages of the
/// desired nodes, rounded up; both zero becomes one unavailable) and the desired count;
/// every node that should run a pod gets an entry in `by_node`.
fn counts(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    by_node: &mut BTreeMap<String, Vec<Arc<Pod>>>,
) -> Result<(i32, i32, i32)> {
    let mut desired = 0;
    for node in nodes {
        if should_run(node, ds).0 {
            desired += 1;
            by_node.entry(node.name_any()).or_default();
        }
    }
    let rolling = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let zero = IntOrString::Int(0);
    let surge = scaled_value(rolling.max_surge.as_ref().unwrap_or(&zero), desired, true)?;
    let mut unavailable = scaled_value(
        rolling
            .max_unavailable
            .as_ref()
            .unwrap_or(&IntOrString::Int(1)),
        desired,
        true,
    )?;
    if desired > 0 && unavailable == 0 && surge == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable, desired))
}

/// One step of the rollout over the pods by node.
pub fn step(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    mut by_node: BTreeMap<String, Vec<Arc<Pod>>>,
    hash: &str,
) -> Result<Step> {
    let (max_surge, max_unavailable, desired) = counts(ds, nodes, &mut by_node)?;
    let min_ready = min_ready_seconds(ds);
    let now = Timestamp::now();
    let available = |pod: &Pod| is_pod_available(pod, min_ready, now);
    if max_surge == 0 {
        let mut unavailable = 0;
        let mut replace = Vec::new();
        let mut candidates = Vec::new();
        for pods in by_node.values() {
            let Some((new, old)) = updated_and_old(ds, pods, hash) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) if !available(old) => replace.push(old.name_any()),
                (None, Some(_)) if unavailable >= max_unavailable => {}
                (None, Some(old)) => candidates.push(old.name_any()),
            }
        }
        let room = (max_unavailable - unavailable).max(0) as usize;
        candidates.truncate(room);
        replace.extend(candidates);
        return Ok(Step {
            delete: replace,
            create: Vec::new(),
        });
    }
    let node_named = |name: &str| nodes.iter().find(|n| n.name_any() == name);
    let mut delete = Vec::new();
    let mut not_wanted = Vec::new();
    let mut allowed = Vec::new();
    let mut candidates = Vec::new();
    let mut surging = 0;
    let mut available_count = 0;
    for (node_name, pods) in &by_node {
        let Some((new, old)) = updated_and_old(ds, pods, hash) else {
            surging += 1;
            continue;
        };
        if old.or(new).is_some_and(|p| available(p)) {
            available_count += 1;
        }
        let wanted = || node_named(node_name).is_some_and(|n| should_run(n, ds).0);
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) if !available(old) => {
                if wanted() {
                    allowed.push(node_name.clone());
                } else {
                    delete.push(old.name_any());
                }
            }
            (None, Some(old)) => {
                if !wanted() {
                    not_wanted.push(old.name_any());
                } else if surging < max_surge {
                    candidates.push(node_name.clone());
                }
            }
            (Some(new), Some(old)) => {
                if available(new) {
                    delete.push(old.name_any());
                } else {
                    surging += 1;
                }
            }
        }
    }
    // Pods on nodes that no longer want one go only once enough others are available.
    let deletable = (available_count - desired).max(0) as usize;
    delete.extend(not_wanted.into_iter().take(deletable));
    let room = (max_surge - surging).max(0) as usize;
    candidates.truncate(room);
    allowed.extend(candidates);
    Ok(Step {
        delete,
        create: allowed,
    })
}
