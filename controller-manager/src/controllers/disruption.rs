//! The disruption controller (upstream `pkg/controller/disruption`): keeps every
//! PodDisruptionBudget's status, which the eviction subresource reads and decrements.
//!
//! For each budget it counts the pods it selects that are ready and not on their way out
//! (`currentHealthy`), works out how many must stay (`desiredHealthy`: `minAvailable`, or the
//! expected pods less `maxUnavailable`, a percentage of the expected pods rounded up), where
//! the expected pods are the replicas the pods' controllers ask for (a Deployment's through
//! its ReplicaSet, a ReplicaSet's, and any other owner's `/scale` subresource), and allows the
//! difference. Pods an eviction recorded in `disruptedPods` do not count as healthy for two
//! minutes, after which the entry is dropped (the deletion evidently did not happen). A
//! budget whose status cannot be computed allows nothing (`SyncFailed`).
//!
//! It also clears a `DisruptionTarget` condition an eviction left on a pod that was not
//! deleted after all, two minutes on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use machinery::disruption::{
    set_condition, update_disruption_allowed_condition, DISRUPTION_ALLOWED, SYNC_FAILED,
};
use machinery::selector::Selector;

use super::deployment::scaled_value;
use super::ControllerContext;
use crate::controller_utils::{controller_of, is_pod_ready, is_pod_terminal};
use crate::events::{EventType, Recorder};
use crate::informers::Change;
use crate::runtime::{self, is_status, Error, Queue, Result};

/// The controller's name (`--controllers`, its service account, queue metrics).
pub const NAME: &str = "disruption-controller";
/// The source of its events: upstream's disruption controller records as the manager.
const COMPONENT: &str = "controllermanager";
/// How long a pod an eviction recorded in `disruptedPods` is expected to take to go
/// (upstream's `DeletionTimeout`).
const DELETION_TIMEOUT: SignedDuration = SignedDuration::from_secs(2 * 60);
/// How long a `DisruptionTarget` condition may stay on a pod that is not being deleted.
const STALE_DISRUPTION_TIMEOUT: SignedDuration = SignedDuration::from_secs(2 * 60);

struct Context {
    client: Client,
    pods: Store<Pod>,
    budgets: Store<PodDisruptionBudget>,
    replica_sets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    recorder: Recorder,
    queue: Queue<PodDisruptionBudget>,
    stale: Queue<Pod>,
    /// The API resources of owner kinds found through discovery, by group, version and kind.
    resources: Mutex<HashMap<(String, String, String), ApiResource>>,
}

/// Wires the controller to the shared informers and starts it.
pub fn start(ctx: &ControllerContext) {
    let pods = ctx.informers.get::<Pod>();
    let budgets = ctx.informers.get::<PodDisruptionBudget>();
    let replica_sets = ctx.informers.get::<ReplicaSet>();
    let deployments = ctx.informers.get::<Deployment>();
    let (queue, triggers) = Queue::new(NAME);
    let (stale, stale_triggers) = Queue::new("disruption-recheck");
    let context = Arc::new(Context {
        client: ctx.client_for(NAME),
        pods: pods.store(),
        budgets: budgets.store(),
        replica_sets: replica_sets.store(),
        deployments: deployments.store(),
        recorder: ctx.events.recorder(COMPONENT),
        queue: queue.clone(),
        stale: stale.clone(),
        resources: Mutex::default(),
    });
    tokio::spawn(watch_budgets(context.clone(), budgets.subscribe()));
    tokio::spawn(watch_pods(context.clone(), pods.subscribe()));
    let caches = || {
        vec![
            pods.synced(),
            budgets.synced(),
            replica_sets.synced(),
            deployments.synced(),
        ]
    };
    let controller = runtime::Controller {
        queue,
        triggers,
        store: context.budgets.clone(),
        caches: caches(),
        workers: 1,
    };
    tokio::spawn(controller.run(context.clone(), reconcile));
    let cleaner = runtime::Controller {
        queue: stale,
        triggers: stale_triggers,
        store: context.pods.clone(),
        caches: caches(),
        workers: 1,
    };
    tokio::spawn(cleaner.run(context, clear_stale_disruption));
}

async fn watch_budgets(
    ctx: Arc<Context>,
    mut changes: UnboundedReceiver<Change<PodDisruptionBudget>>,
) {
    while let Some(change) = changes.next().await {
        if let Change::Applied { new, .. } = change {
            ctx.queue.add_object(&new);
        }
    }
}

async fn watch_pods(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<Pod>>) {
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied { old, new } => {
                if let Some(old) = old.filter(|o| o.metadata.labels != new.metadata.labels) {
                    ctx.enqueue_budget_of(&old);
                }
                ctx.enqueue_budget_of(&new);
                if let Some(wait) = stale_disruption(&new, Timestamp::now()) {
                    ctx.stale.add_after(ObjectRef::from_obj(&*new), wait);
                }
            }
            Change::Deleted(gone) => ctx.enqueue_budget_of(&gone),
        }
    }
}

impl Context {
    /// Queues the budget selecting `pod`; a pod several budgets select is reported, and
    /// the first by name chosen, as upstream chooses one arbitrarily.
    fn enqueue_budget_of(&self, pod: &Pod) {
        if pod.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            return;
        }
        let namespace = pod.namespace().unwrap_or_default();
        let mut budgets: Vec<Arc<PodDisruptionBudget>> = self
            .budgets
            .state()
            .into_iter()
            .filter(|b| b.namespace().as_deref() == Some(namespace.as_str()))
            .filter(|b| {
                b.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .and_then(|s| Selector::from_label_selector(s).ok())
                    .is_some_and(|s| s.matches(pod.metadata.labels.as_ref()))
            })
            .collect();
        budgets.sort_by_key(|b| b.name_any());
        let Some(first) = budgets.first() else {
            return;
        };
        if budgets.len() > 1 {
            self.recorder.event(
                pod,
                EventType::Warning,
                "MultiplePodDisruptionBudgets",
                format!(
                    "Pod {namespace:?}/{:?} matches multiple PodDisruptionBudgets.  Chose {:?} arbitrarily.",
                    pod.name_any(),
                    first.name_any()
                ),
            );
        }
        self.queue.add_object(first);
    }

    /// The pods of the budget's namespace its selector picks (none without a selector).
    fn pods_of(&self, budget: &PodDisruptionBudget) -> Result<Vec<Arc<Pod>>> {
        let Some(selector) = budget.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            return Ok(Vec::new());
        };
        let selector = Selector::from_label_selector(selector)?;
        let namespace = budget.namespace();
        Ok(self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.namespace() == namespace && selector.matches(p.metadata.labels.as_ref()))
            .collect())
    }
}

/// What a budget's numbers are computed from.
#[derive(Debug, PartialEq)]
struct Expectation {
    expected: i32,
    desired_healthy: i32,
    /// Pods without a controller, which a budget relative to the expected pods cannot count.
    unmanaged: Vec<String>,
}

async fn reconcile(budget: Arc<PodDisruptionBudget>, ctx: Arc<Context>) -> Result<Action> {
    match sync(&budget, &ctx).await {
        Ok(action) => Ok(action),
        // A write based on a stale cache: retried without giving up the budget.
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 409 => {
            Err(Error::Kube(kube::Error::Api(status)))
        }
        Err(error) => {
            tracing::warn!(budget = %format!("{}/{}", budget.namespace().unwrap_or_default(), budget.name_any()), %error, "failed to sync PodDisruptionBudget");
            fail_safe(&budget, &ctx, &error).await?;
            Ok(Action::await_change())
        }
    }
}

async fn sync(budget: &PodDisruptionBudget, ctx: &Context) -> Result<Action> {
    let pods = ctx.pods_of(budget)?;
    if pods.is_empty() {
        ctx.recorder.event(
            budget,
            EventType::Normal,
            "NoPods",
            "No matching pods found".into(),
        );
    }
    let expectation = match expected_pods(budget, &pods, ctx).await {
        Ok(expectation) => expectation,
        Err(error) => {
            ctx.recorder.event(
                budget,
                EventType::Warning,
                "CalculateExpectedPodCountFailed",
                format!("Failed to calculate the number of expected pods: {error}"),
            );
            return Err(error);
        }
    };
    if !expectation.unmanaged.is_empty() {
        tracing::debug!(pods = ?expectation.unmanaged, "found unmanaged pods associated with this PDB");
        let selector = budget.spec.as_ref().and_then(|s| s.selector.as_ref());
        ctx.recorder.event(
            budget,
            EventType::Warning,
            "UnmanagedPods",
            format!(
                "Pods selected by this PodDisruptionBudget (selector: {}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.",
                go_selector(selector)
            ),
        );
    }
    let now = Timestamp::now();
    let (disrupted, recheck) = disrupted_pods(budget, &pods, now, ctx);
    let healthy = current_healthy(&pods, &disrupted, now);
    update_status(budget, healthy, &expectation, disrupted, ctx).await?;
    Ok(match recheck {
        Some(at) => Action::requeue(Duration::try_from(at.duration_since(now)).unwrap_or_default()),
        None => Action::await_change(),
    })
}

/// Upstream's `getExpectedPodCount`: how many pods there should be and how many must stay
/// healthy.
async fn expected_pods(
    budget: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    ctx: &Context,
) -> Result<Expectation> {
    let spec = budget.spec.clone().unwrap_or_default();
    let mut expectation = Expectation {
        expected: 0,
        desired_healthy: 0,
        unmanaged: Vec::new(),
    };
    if let Some(max_unavailable) = &spec.max_unavailable {
        let (expected, unmanaged) = expected_scale(pods, ctx).await?;
        let unavailable = scaled_value(max_unavailable, expected, true)?;
        expectation = Expectation {
            expected,
            desired_healthy: (expected - unavailable).max(0),
            unmanaged,
        };
    } else if let Some(min_available) = &spec.min_available {
        expectation = match min_available {
            IntOrString::Int(n) => Expectation {
                expected: pods.len() as i32,
                desired_healthy: *n,
                unmanaged: Vec::new(),
            },
            IntOrString::String(_) => {
                let (expected, unmanaged) = expected_scale(pods, ctx).await?;
                Expectation {
                    expected,
                    desired_healthy: scaled_value(min_available, expected, true)?,
                    unmanaged,
                }
            }
        };
    }
    Ok(expectation)
}

/// The replicas the pods' controllers ask for, each controller counted once, and the pods
/// without a controller.
async fn expected_scale(pods: &[Arc<Pod>], ctx: &Context) -> Result<(i32, Vec<String>)> {
    let mut scales: BTreeMap<String, i32> = BTreeMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let Some(owner) = controller_of(&pod.metadata) else {
            unmanaged.push(pod.name_any());
            continue;
        };
        if scales.contains_key(&owner.uid) {
            continue;
        }
        let namespace = pod.namespace().unwrap_or_default();
        let (uid, replicas) = match ctx.controller_scale(owner, &namespace).await? {
            Some(found) => found,
            None => return Err(Error::NoControllers(pod.name_any())),
        };
        scales.insert(uid, replicas);
    }
    Ok((scales.values().sum(), unmanaged))
}

impl Context {
    /// The controlling workload of a pod and its desired replicas: a ReplicaSet's (or the
    /// Deployment's owning it) from the caches, any other kind's through its `/scale`.
    /// `None` when the owner is gone or was replaced by a namesake.
    async fn controller_scale(
        &self,
        owner: &OwnerReference,
        namespace: &str,
    ) -> Result<Option<(String, i32)>> {
        if owner.kind == "ReplicaSet" && owner.api_version == "apps/v1" {
            let key = ObjectRef::new(&owner.name).within(namespace);
            if let Some(rs) = self
                .replica_sets
                .get(&key)
                .filter(|rs| rs.uid().as_deref() == Some(owner.uid.as_str()))
            {
                return Ok(match controller_of(&rs.metadata) {
                    Some(parent)
                        if parent.kind == "Deployment" && parent.api_version == "apps/v1" =>
                    {
                        let key = ObjectRef::new(&parent.name).within(namespace);
                        self.deployments
                            .get(&key)
                            .filter(|d| d.uid().as_deref() == Some(parent.uid.as_str()))
                            .map(|d| {
                                (
                                    parent.uid.clone(),
                                    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                                )
                            })
                    }
                    _ => Some((
                        owner.uid.clone(),
                        rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    )),
                });
            }
        }
        self.scale_of(owner, namespace).await
    }

    /// The owner's desired replicas as its `/scale` subresource says.
    async fn scale_of(
        &self,
        owner: &OwnerReference,
        namespace: &str,
    ) -> Result<Option<(String, i32)>> {
        let resource = self.api_resource(owner).await?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let scale = match api.get_scale(&owner.name).await {
            Ok(scale) => scale,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(None),
            Err(other) => return Err(other.into()),
        };
        if scale.metadata.uid.as_deref() != Some(owner.uid.as_str()) {
            return Ok(None);
        }
        Ok(Some((
            owner.uid.clone(),
            scale.spec.and_then(|s| s.replicas).unwrap_or(0),
        )))
    }

    /// The API resource serving the owner's kind, found through discovery once.
    async fn api_resource(&self, owner: &OwnerReference) -> Result<ApiResource> {
        let (group, version) = match owner.api_version.split_once('/') {
            Some((group, version)) => (group.to_string(), version.to_string()),
            None => (String::new(), owner.api_version.clone()),
        };
        let key = (group.clone(), version.clone(), owner.kind.clone());
        if let Some(found) = self.resources.lock().expect("resources").get(&key) {
            return Ok(found.clone());
        }
        let gvk = GroupVersionKind::gvk(&group, &version, &owner.kind);
        let (resource, _) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|_| Error::NoMapping {
                kind: owner.kind.clone(),
                group_version: owner.api_version.clone(),
            })?;
        self.resources
            .lock()
            .expect("resources")
            .insert(key, resource.clone());
        Ok(resource)
    }
}

/// The `disruptedPods` entries still awaiting their pod's deletion, and when the earliest
/// expires; entries past the deadline are dropped with a `NotDeleted` event on the pod.
fn disrupted_pods(
    budget: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    now: Timestamp,
    ctx: &Context,
) -> (BTreeMap<String, Time>, Option<Timestamp>) {
    let recorded = budget
        .status
        .as_ref()
        .and_then(|s| s.disrupted_pods.clone())
        .unwrap_or_default();
    let mut kept = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(at) = recorded.get(&pod.name_any()) else {
            continue;
        };
        let deadline = at.0 + DELETION_TIMEOUT;
        if deadline < now {
            ctx.recorder.event(
                &**pod,
                EventType::Warning,
                "NotDeleted",
                format!(
                    "Pod was expected by PDB {}/{} to be deleted but it wasn't",
                    budget.namespace().unwrap_or_default(),
                    budget.name_any()
                ),
            );
        } else {
            recheck = Some(recheck.map_or(deadline, |r| r.min(deadline)));
            kept.insert(pod.name_any(), at.clone());
        }
    }
    (kept, recheck)
}

/// Ready pods neither being deleted nor just evicted.
fn current_healthy(pods: &[Arc<Pod>], disrupted: &BTreeMap<String, Time>, now: Timestamp) -> i32 {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            disrupted
                .get(&p.name_any())
                .is_none_or(|at| at.0 + DELETION_TIMEOUT <= now)
        })
        .filter(|p| is_pod_ready(p))
        .count() as i32
}

async fn update_status(
    budget: &PodDisruptionBudget,
    current_healthy: i32,
    expectation: &Expectation,
    disrupted: BTreeMap<String, Time>,
    ctx: &Context,
) -> Result<()> {
    let allowed = match current_healthy - expectation.desired_healthy {
        n if expectation.expected <= 0 || n <= 0 => 0,
        n => n,
    };
    let old = budget.status.clone().unwrap_or_default();
    let disrupted = (!disrupted.is_empty()).then_some(disrupted);
    let unchanged = old.current_healthy == current_healthy
        && old.desired_healthy == expectation.desired_healthy
        && old.expected_pods == expectation.expected
        && old.disruptions_allowed == allowed
        && old.observed_generation == budget.metadata.generation
        && old.disrupted_pods.clone().filter(|d| !d.is_empty()) == disrupted;
    if unchanged {
        return Ok(());
    }
    let mut updated = budget.clone();
    updated.status = Some(PodDisruptionBudgetStatus {
        current_healthy,
        desired_healthy: expectation.desired_healthy,
        expected_pods: expectation.expected,
        disruptions_allowed: allowed,
        disrupted_pods: disrupted,
        observed_generation: budget.metadata.generation,
        conditions: old.conditions,
    });
    update_disruption_allowed_condition(&mut updated, &Time(Timestamp::now()));
    write_status(&updated, ctx).await
}

/// Upstream's `failSafe`: a budget whose status cannot be computed allows no disruption.
async fn fail_safe(budget: &PodDisruptionBudget, ctx: &Context, error: &Error) -> Result<()> {
    let mut updated = budget.clone();
    let status = updated.status.get_or_insert_with(Default::default);
    status.disruptions_allowed = 0;
    let observed_generation = status.observed_generation;
    set_condition(
        status.conditions.get_or_insert_with(Vec::new),
        Condition {
            type_: DISRUPTION_ALLOWED.into(),
            status: "False".into(),
            reason: SYNC_FAILED.into(),
            message: error.to_string(),
            observed_generation,
            last_transition_time: Time(Timestamp::now()),
        },
    );
    write_status(&updated, ctx).await
}

async fn write_status(budget: &PodDisruptionBudget, ctx: &Context) -> Result<()> {
    let api: Api<PodDisruptionBudget> =
        Api::namespaced(ctx.client.clone(), &budget.namespace().unwrap_or_default());
    let result = api
        .replace_status(&budget.name_any(), &PostParams::default(), budget)
        .await;
    if is_status(&result, 404) {
        return Ok(());
    }
    result?;
    Ok(())
}

/// How long until the pod's `DisruptionTarget` condition is stale: set (not by the kubelet)
/// on a pod neither terminal nor being deleted. `None` when there is no such condition.
fn stale_disruption(pod: &Pod, now: Timestamp) -> Option<Duration> {
    if pod.metadata.deletion_timestamp.is_some() || is_pod_terminal(pod) {
        return None;
    }
    let condition = disruption_target(pod)?;
    if condition.status != "True" || condition.reason.as_deref() == Some("TerminationByKubelet") {
        return None;
    }
    let since = condition.last_transition_time.as_ref().map_or(now, |t| t.0);
    let left = STALE_DISRUPTION_TIMEOUT - now.duration_since(since);
    Some(Duration::try_from(left).unwrap_or_default())
}

fn disruption_target(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "DisruptionTarget")
}

/// Resets a stale `DisruptionTarget` condition to False, as upstream's
/// `syncStalePodDisruption` does for a pod an eviction marked but did not delete.
async fn clear_stale_disruption(pod: Arc<Pod>, ctx: Arc<Context>) -> Result<Action> {
    match stale_disruption(&pod, Timestamp::now()) {
        None => return Ok(Action::await_change()),
        Some(wait) if !wait.is_zero() => return Ok(Action::requeue(wait)),
        Some(_) => {}
    }
    let mut updated = (*pod).clone();
    if let Some(conditions) = updated.status.as_mut().and_then(|s| s.conditions.as_mut()) {
        if let Some(condition) = conditions
            .iter_mut()
            .find(|c| c.type_ == "DisruptionTarget")
        {
            *condition = PodCondition {
                type_: "DisruptionTarget".into(),
                status: "False".into(),
                last_transition_time: Some(Time(Timestamp::now())),
                ..PodCondition::default()
            };
        }
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    let result = api
        .replace_status(&pod.name_any(), &PostParams::default(), &updated)
        .await;
    if is_status(&result, 404) {
        return Ok(Action::await_change());
    }
    result?;
    tracing::debug!(pod = %format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any()), "reset stale DisruptionTarget condition");
    Ok(Action::await_change())
}

/// A label selector as Go's generated `String()` prints it in the UnmanagedPods event.
fn go_selector(selector: Option<&LabelSelector>) -> String {
    let Some(selector) = selector else {
        return "nil".into();
    };
    let labels: String = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {v},"))
        .collect();
    let expressions: String = selector
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
                e.key,
                e.operator,
                e.values.clone().unwrap_or_default().join(" ")
            )
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{{expressions}}},}}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": if ready { "True" } else { "False" }}
                ]}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn evicted_and_unready_pods_are_not_healthy_until_the_eviction_expires() {
        let now: Timestamp = "2025-01-01T00:10:00Z".parse().unwrap();
        let pods = [pod("a", true), pod("b", true), pod("c", false)];
        let mut disrupted = BTreeMap::new();
        disrupted.insert(
            "a".to_string(),
            Time("2025-01-01T00:09:30Z".parse().unwrap()),
        );
        assert_eq!(current_healthy(&pods, &disrupted, now), 1);
        disrupted.insert(
            "a".to_string(),
            Time("2025-01-01T00:07:00Z".parse().unwrap()),
        );
        assert_eq!(current_healthy(&pods, &disrupted, now), 2);
    }

    #[test]
    fn stale_disruption_conditions_wait_two_minutes() {
        let now: Timestamp = "2025-01-01T00:10:00Z".parse().unwrap();
        let mut marked = (*pod("a", true)).clone();
        marked
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
            .push(PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                reason: Some("EvictionByEvictionAPI".into()),
                last_transition_time: Some(Time("2025-01-01T00:09:00Z".parse().unwrap())),
                ..Default::default()
            });
        assert_eq!(
            stale_disruption(&marked, now),
            Some(Duration::from_secs(60))
        );
        marked.status.as_mut().unwrap().phase = Some("Failed".into());
        assert_eq!(stale_disruption(&marked, now), None);
        assert_eq!(stale_disruption(&pod("b", true), now), None);
    }

    #[test]
    fn selectors_print_as_go_does() {
        let selector: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]
        }))
        .unwrap();
        assert_eq!(
            go_selector(Some(&selector)),
            "&LabelSelector{MatchLabels:map[string]string{app: web,},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:tier,Operator:In,Values:[a b],},},}"
        );
    }
}
