//! DefaultPreemption: when a pod fits nowhere, find a node where evicting pods of lower
//! priority would make room, evicting as few and as unimportant pods as possible. The
//! preemptor is then nominated to that node and waits for its victims to go.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng;

use crate::algorithm::{reason_histogram, FitError};
use crate::cache::{Cache, NodeInfo};
use crate::plugins::{Code, CycleState};
use crate::pod_info::PodInfo;

/// Upstream's `minCandidateNodesPercentage` and `minCandidateNodesAbsolute`: how many
/// candidate nodes a dry run looks for before picking the best.
const MIN_CANDIDATE_PERCENTAGE: usize = 10;
const MIN_CANDIDATES: usize = 100;

/// A node to nominate the preemptor to, the pods to evict there, and lower-priority pods
/// nominated to it that lose their nomination.
#[derive(Debug)]
pub struct Candidate {
    pub node: Arc<str>,
    pub victims: Vec<Arc<PodInfo>>,
    pub displaced_nominations: Vec<Arc<PodInfo>>,
}

/// Why preemption cannot help, as upstream's PostFilter message ("preemption: …").
#[derive(Debug)]
pub struct NoPreemption {
    pub message: String,
    /// Whether no node could help at all, so a nomination the pod has is void; an
    /// ineligible pod keeps its nomination.
    pub clear_nomination: bool,
}

fn preempted_by_scheduler(pod: &PodInfo) -> bool {
    let conditions = pod.pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    pod.is_terminating()
        && conditions.into_iter().flatten().any(|c| {
            c.type_ == "DisruptionTarget" && c.reason.as_deref() == Some("PreemptionByScheduler")
        })
}

/// Why the pod may not preempt, if it may not.
fn ineligibility(pod: &PodInfo, cache: &Cache, fit: &FitError) -> Option<&'static str> {
    if pod.spec().preemption_policy.as_deref() == Some("Never") {
        return Some("not eligible due to preemptionPolicy=Never.");
    }
    let nominated = pod.nominated_node_name()?;
    if fit
        .statuses
        .get(nominated)
        .is_some_and(|s| s.code == Code::UnschedulableAndUnresolvable)
    {
        return None;
    }
    let node = cache.node(nominated)?;
    let waiting = node
        .pods
        .iter()
        .any(|p| p.priority < pod.priority && preempted_by_scheduler(p));
    waiting.then_some("not eligible due to a terminating pod on the nominated node.")
}

/// Evicting the lower-priority pods of `node`: the fewest, least important ones that make
/// the pod fit, or the reasons it would not fit even with all of them gone.
fn select_victims(
    state: &CycleState,
    node: &NodeInfo,
    cache: &Cache,
) -> Result<Vec<Arc<PodInfo>>, Vec<Cow<'static, str>>> {
    let pod = state.pod;
    let mut lower: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if lower.is_empty() {
        return Err(vec![Cow::Borrowed(
            "No preemption victims found for incoming pod",
        )]);
    }
    let mut state = state.clone();
    let mut simulated = node.clone();
    for victim in &lower {
        simulated.remove_pod(&victim.uid);
        state.update(victim, &simulated, -1, cache);
    }
    state
        .filter_with_nominated(&simulated, cache)
        .map_err(|status| status.reasons)?;
    // Reprieve the most important pods first: whoever can stay without breaking the fit does.
    lower.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.start_time().cmp(&b.start_time()))
    });
    let mut victims = Vec::new();
    for pod in lower {
        simulated.add_pod(pod.clone());
        state.update(&pod, &simulated, 1, cache);
        if state.filter_with_nominated(&simulated, cache).is_err() {
            simulated.remove_pod(&pod.uid);
            state.update(&pod, &simulated, -1, cache);
            victims.push(pod);
        }
    }
    Ok(victims)
}

/// Upstream's `pickOneNodeForPreemption`, minus disruption budgets: the lowest highest
/// victim priority, then the lowest priority sum, the fewest victims, and the most recently
/// started most important victim.
fn pick(candidates: Vec<(Arc<str>, Vec<Arc<PodInfo>>)>) -> Option<(Arc<str>, Vec<Arc<PodInfo>>)> {
    let key = |victims: &Vec<Arc<PodInfo>>| {
        let highest = victims.first().map_or(i32::MIN, |v| v.priority);
        let sum: i64 = victims
            .iter()
            .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
            .sum();
        let earliest_important = victims
            .iter()
            .filter(|v| v.priority == highest)
            .filter_map(|v| v.start_time())
            .min();
        (
            highest,
            sum,
            victims.len(),
            std::cmp::Reverse(earliest_important),
        )
    };
    candidates
        .into_iter()
        .enumerate()
        .min_by_key(|(i, (_, victims))| (key(victims), *i))
        .map(|(_, c)| c)
}

/// Runs preemption for a pod that fits nowhere.
pub fn preempt(cache: &Cache, pod: &PodInfo, fit: &FitError) -> Result<Candidate, NoPreemption> {
    if let Some(reason) = ineligibility(pod, cache, fit) {
        return Err(NoPreemption {
            message: format!("preemption: {reason}"),
            clear_nomination: false,
        });
    }
    let potential: Vec<&NodeInfo> = cache
        .order()
        .iter()
        .filter(|name| {
            fit.statuses
                .get(*name)
                .is_some_and(|s| s.code == Code::Unschedulable)
        })
        .filter_map(|name| cache.node(name))
        .collect();
    let wanted = (potential.len() * MIN_CANDIDATE_PERCENTAGE / 100)
        .max(MIN_CANDIDATES)
        .min(potential.len());
    let offset = if potential.is_empty() {
        0
    } else {
        rand::rng().random_range(0..potential.len())
    };
    let state = CycleState::new(pod, cache);
    let mut rejections: BTreeMap<Arc<str>, Vec<Cow<'static, str>>> = BTreeMap::new();
    let mut candidates = Vec::new();
    for i in 0..potential.len() {
        let node = potential[(offset + i) % potential.len()];
        match select_victims(&state, node, cache) {
            Ok(victims) => {
                candidates.push((node.name.clone(), victims));
                if candidates.len() >= wanted {
                    break;
                }
            }
            Err(reasons) => {
                rejections.insert(node.name.clone(), reasons);
            }
        }
    }
    let Some((node, victims)) = pick(candidates) else {
        let all = cache.order().len();
        let absent = all - rejections.len();
        let unhelpful = std::iter::repeat_n("Preemption is not helpful for scheduling", absent);
        let reasons = rejections
            .values()
            .flat_map(|r| r.iter().map(|r| r.as_ref()))
            .chain(unhelpful);
        let message = format!(
            "preemption: 0/{all} nodes are available: {}.",
            reason_histogram(reasons)
        );
        return Err(NoPreemption {
            message,
            clear_nomination: true,
        });
    };
    let displaced_nominations = cache
        .nominated_pods(&node)
        .iter()
        .filter(|p| p.priority < pod.priority && p.uid != pod.uid)
        .cloned()
        .collect();
    Ok(Candidate {
        node,
        victims,
        displaced_nominations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::{Algorithm, Failure};
    use k8s_openapi::api::core::v1::{
        Container, Node, NodeStatus, Pod, PodSpec, ResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            status: Some(NodeStatus {
                allocatable: Some(
                    [
                        ("cpu".to_string(), Quantity("2".into())),
                        ("pods".to_string(), Quantity("110".into())),
                    ]
                    .into(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(name: &str, cpu: &str, priority: i32, node: Option<&str>) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(String::from),
                priority: Some(priority),
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some([("cpu".to_string(), Quantity(cpu.into()))].into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    fn fit_error(cache: &mut Cache, preemptor: &PodInfo) -> FitError {
        match Algorithm::default().schedule(cache, preemptor) {
            Err(Failure::Unfit(error)) => error,
            other => panic!("expected no fit, got {other:?}"),
        }
    }

    #[test]
    fn evicts_the_fewest_lower_priority_pods() {
        let mut cache = Cache::default();
        cache.update_node(node("n"));
        cache.update_bound_pod(pod("low-a", "900m", 0, Some("n")));
        cache.update_bound_pod(pod("low-b", "900m", 0, Some("n")));
        let preemptor = pod("high", "1", 100, None);
        let fit = fit_error(&mut cache, &preemptor);
        let candidate = preempt(&cache, &preemptor, &fit).unwrap();
        assert_eq!(&*candidate.node, "n");
        assert_eq!(
            candidate.victims.len(),
            1,
            "evicting one 900m pod frees enough"
        );
    }

    #[test]
    fn nothing_to_preempt_reads_like_upstream() {
        let mut cache = Cache::default();
        cache.update_node(node("n"));
        cache.update_bound_pod(pod("peer", "1500m", 100, Some("n")));
        let preemptor = pod("high", "1", 100, None);
        let fit = fit_error(&mut cache, &preemptor);
        let none = preempt(&cache, &preemptor, &fit).unwrap_err();
        assert_eq!(
            none.message,
            "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        );
        assert!(none.clear_nomination);
    }

    #[test]
    fn preemption_policy_never_is_not_eligible() {
        let mut cache = Cache::default();
        cache.update_node(node("n"));
        cache.update_bound_pod(pod("low", "1500m", 0, Some("n")));
        let mut never = (*pod("polite", "1", 100, None).pod).clone();
        never.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
        let preemptor = PodInfo::new(never);
        let fit = fit_error(&mut cache, &preemptor);
        let none = preempt(&cache, &preemptor, &fit).unwrap_err();
        assert_eq!(
            none.message,
            "preemption: not eligible due to preemptionPolicy=Never."
        );
        assert!(!none.clear_nomination);
    }
}
