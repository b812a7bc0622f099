//! DefaultPreemption: when a pod fits nowhere, find a node where evicting pods of lower
//! priority would make room, evicting as few and as unimportant pods as possible, and
//! preferring pods whose PodDisruptionBudgets allow the disruption. The preemptor is then
//! nominated to that node and waits for its victims to go.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use machinery::selector::Selector;
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

/// What preemption needs of a PodDisruptionBudget.
#[derive(Debug, Clone)]
pub struct Budget {
    namespace: String,
    selector: Selector,
    allowed: i32,
    /// Pods an eviction already took from the budget: evicting them costs nothing more.
    disrupted: HashSet<String>,
}

impl Budget {
    /// The budget of `pdb`; `None` for one whose selector (absent, empty or invalid)
    /// matches nothing here, as upstream's preemption reads it.
    pub fn new(pdb: &PodDisruptionBudget) -> Option<Budget> {
        let selector = pdb.spec.as_ref()?.selector.as_ref()?;
        let selector = Selector::from_label_selector(selector).ok()?;
        if selector.is_empty() {
            return None;
        }
        let status = pdb.status.clone().unwrap_or_default();
        Some(Budget {
            namespace: pdb.namespace().unwrap_or_default(),
            selector,
            allowed: status.disruptions_allowed,
            disrupted: status
                .disrupted_pods
                .unwrap_or_default()
                .into_keys()
                .collect(),
        })
    }
}

/// Upstream's `filterPodsWithPDBViolation`: splits `pods` (most important first) into those
/// whose eviction would exceed a budget's allowed disruptions, counting down each budget as
/// its pods are taken, and the others.
fn split_by_budget<'a>(
    pods: Vec<Arc<PodInfo>>,
    budgets: impl Iterator<Item = &'a Budget>,
) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut budgets: Vec<(&Budget, i32)> = budgets.map(|b| (b, b.allowed)).collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for pod in pods {
        let labels = pod.pod.metadata.labels.as_ref().filter(|l| !l.is_empty());
        let mut violated = false;
        for (budget, allowed) in &mut budgets {
            if labels.is_none()
                || budget.namespace != pod.namespace
                || !budget.selector.matches(labels)
                || budget.disrupted.contains(&pod.name)
            {
                continue;
            }
            *allowed -= 1;
            violated |= *allowed < 0;
        }
        if violated {
            violating.push(pod);
        } else {
            fine.push(pod);
        }
    }
    (violating, fine)
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

/// The victims chosen on a node and how many of them violate their budget.
type Selected = (Vec<Arc<PodInfo>>, usize);

/// Evicting the lower-priority pods of `node`: the fewest, least important ones that make
/// the pod fit, reprieving pods a budget protects first, with how many of the victims
/// violate their budget; or the reasons it would not fit even with all of them gone.
fn select_victims(
    state: &CycleState,
    node: &NodeInfo,
    cache: &Cache,
) -> Result<Selected, Vec<Cow<'static, str>>> {
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
    let (violating, fine) = split_by_budget(lower, cache.budgets());
    let mut victims = Vec::new();
    let mut violations = 0;
    for (pod, violates) in violating
        .into_iter()
        .map(|p| (p, true))
        .chain(fine.into_iter().map(|p| (p, false)))
    {
        simulated.add_pod(pod.clone());
        state.update(&pod, &simulated, 1, cache);
        if state.filter_with_nominated(&simulated, cache).is_err() {
            simulated.remove_pod(&pod.uid);
            state.update(&pod, &simulated, -1, cache);
            victims.push(pod);
            violations += usize::from(violates);
        }
    }
    // Victims are reported most important first, as the pick compares them.
    victims.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.start_time().cmp(&b.start_time()))
    });
    Ok((victims, violations))
}

/// Upstream's `pickOneNodeForPreemption`: the fewest disruption budget violations, then the
/// lowest highest victim priority, the lowest priority sum, the fewest victims, and the most
/// recently started most important victim.
fn pick(candidates: Vec<Victims>) -> Option<(Arc<str>, Vec<Arc<PodInfo>>)> {
    let key = |violations: usize, victims: &Vec<Arc<PodInfo>>| {
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
            violations,
            highest,
            sum,
            victims.len(),
            std::cmp::Reverse(earliest_important),
        )
    };
    candidates
        .into_iter()
        .enumerate()
        .min_by_key(|(i, (_, victims, violations))| (key(*violations, victims), *i))
        .map(|(_, (node, victims, _))| (node, victims))
}

/// A candidate node, its victims and how many of them violate their budget.
type Victims = (Arc<str>, Vec<Arc<PodInfo>>, usize);

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
            Ok((victims, violations)) => {
                candidates.push((node.name.clone(), victims, violations));
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
    fn victims_whose_budget_allows_the_disruption_are_preferred() {
        let labelled = |name: &str, app: &str, node: &str| {
            let mut pod = pod(name, "900m", 0, Some(node)).pod.as_ref().clone();
            pod.metadata.labels = Some([("app".to_string(), app.to_string())].into());
            Arc::new(PodInfo::new(pod))
        };
        let budget = |app: &str, allowed: i32| -> PodDisruptionBudget {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": app, "namespace": "ns"},
                "spec": {"selector": {"matchLabels": {"app": app}}},
                "status": {"disruptionsAllowed": allowed, "currentHealthy": 0,
                           "desiredHealthy": 0, "expectedPods": 0}
            }))
            .unwrap()
        };
        let mut cache = Cache::default();
        cache.update_node(node("a"));
        cache.update_node(node("b"));
        cache.update_bound_pod(labelled("guarded-a", "guarded", "a"));
        cache.update_bound_pod(labelled("guarded-a2", "guarded", "a"));
        cache.update_bound_pod(labelled("spare-b", "spare", "b"));
        cache.update_bound_pod(labelled("spare-b2", "spare", "b"));
        cache.set_budget("ns", "guarded", Budget::new(&budget("guarded", 0)));
        cache.set_budget("ns", "spare", Budget::new(&budget("spare", 1)));
        let preemptor = pod("high", "1", 100, None);
        let fit = fit_error(&mut cache, &preemptor);
        for _ in 0..10 {
            let candidate = preempt(&cache, &preemptor, &fit).unwrap();
            assert_eq!(
                &*candidate.node, "b",
                "the budget of node a's pods allows nothing"
            );
            assert_eq!(candidate.victims.len(), 1);
        }
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
