//! The Deployment controller (upstream `pkg/controller/deployment`): rolls a pod template out
//! through ReplicaSets, one per template revision, named and selected by the template's
//! `pod-template-hash`. RollingUpdate moves replicas from the old ReplicaSets to the new one
//! within `maxSurge` and `maxUnavailable`; Recreate scales the old ones to zero first. It
//! scales proportionally when a Deployment is resized mid-rollout, keeps
//! `revisionHistoryLimit` old ReplicaSets, honours pause, and reports progress through the
//! `Available` and `Progressing` conditions (`ProgressDeadlineExceeded` after
//! `progressDeadlineSeconds` without progress) that `kubectl rollout status` reads.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

use super::ControllerContext;
use crate::controller_utils::{claim, controller_of, controller_ref, matches, selector};
use crate::events::{EventType, Recorder};
use crate::informers::Change;
use crate::runtime::{self, api_message, has_cause, Error, Queue, Result};

/// The controller's name (`--controllers`, events' source, queue metrics).
pub const NAME: &str = "deployment-controller";

const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Deployment annotations never copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];
/// Longest `revision-history` annotation kept on a ReplicaSet rolled back to repeatedly.
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
const NEW_REPLICA_SET: &str = "NewReplicaSetCreated";
const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
const TIMED_OUT: &str = "ProgressDeadlineExceeded";
const PAUSED: &str = "DeploymentPaused";
const RESUMED: &str = "DeploymentResumed";

struct Context {
    client: Client,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    deployments: Store<Deployment>,
    recorder: Recorder,
    queue: Queue<Deployment>,
}

/// Wires the controller to the shared informers and starts it.
pub fn start(ctx: &ControllerContext) {
    let deployments = ctx.informers.get::<Deployment>();
    let replica_sets = ctx.informers.get::<ReplicaSet>();
    let pods = ctx.informers.get::<Pod>();
    let (queue, triggers) = Queue::new(NAME);
    let context = Arc::new(Context {
        client: ctx.client.clone(),
        replica_sets: replica_sets.store(),
        pods: pods.store(),
        deployments: deployments.store(),
        recorder: ctx.events.recorder(NAME),
        queue: queue.clone(),
    });
    tokio::spawn(watch_deployments(context.clone(), deployments.subscribe()));
    tokio::spawn(watch_replica_sets(context.clone(), replica_sets.subscribe()));
    tokio::spawn(watch_pods(context.clone(), pods.subscribe()));
    let store = context.deployments.clone();
    let workers = ctx.options.concurrent_deployment_syncs;
    let caches = vec![deployments.synced(), replica_sets.synced(), pods.synced()];
    tokio::spawn(runtime::run(queue, triggers, store, caches, workers, context, reconcile));
}

async fn watch_deployments(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<Deployment>>) {
    while let Some(change) = changes.next().await {
        if let Change::Applied { new, .. } = change {
            ctx.queue.add_object(&new);
        }
    }
}

async fn watch_replica_sets(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<ReplicaSet>>) {
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied { old: None, new } => {
                if let Some(reference) = controller_of(&new.metadata) {
                    ctx.enqueue_owner(&new, reference);
                } else if new.metadata.deletion_timestamp.is_none() {
                    ctx.enqueue_matching(&new);
                }
            }
            Change::Applied { old: Some(old), new } => {
                if old.resource_version() == new.resource_version() {
                    continue;
                }
                let (old_ref, new_ref) = (controller_of(&old.metadata), controller_of(&new.metadata));
                if old_ref != new_ref {
                    if let Some(reference) = old_ref {
                        ctx.enqueue_owner(&old, reference);
                    }
                }
                match new_ref {
                    Some(reference) => ctx.enqueue_owner(&new, reference),
                    None if old_ref != new_ref || old.metadata.labels != new.metadata.labels => ctx.enqueue_matching(&new),
                    None => {}
                }
            }
            Change::Deleted(gone) => {
                if let Some(reference) = controller_of(&gone.metadata) {
                    ctx.enqueue_owner(&gone, reference);
                }
            }
        }
    }
}

/// A Recreate rollout waits for the old pods to be gone; their deletion is its cue.
async fn watch_pods(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<Pod>>) {
    while let Some(change) = changes.next().await {
        let Change::Deleted(pod) = change else { continue };
        let namespace = pod.namespace().unwrap_or_default();
        let Some(rs_ref) = controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else { continue };
        let Some(rs) = ctx.replica_sets.get(&ObjectRef::new(&rs_ref.name).within(&namespace)) else { continue };
        if let Some(d) = controller_of(&rs.metadata).and_then(|r| ctx.resolve(&namespace, r)) {
            if strategy_type(&d) == "Recreate" {
                ctx.queue.add_object(&d);
            }
        }
    }
}

impl Context {
    fn resolve(&self, namespace: &str, reference: &OwnerReference) -> Option<Arc<Deployment>> {
        if reference.kind != "Deployment" {
            return None;
        }
        let key = ObjectRef::new(&reference.name).within(namespace);
        self.deployments.get(&key).filter(|d| d.uid().as_deref() == Some(reference.uid.as_str()))
    }

    fn enqueue_owner(&self, rs: &ReplicaSet, reference: &OwnerReference) {
        if let Some(d) = self.resolve(&rs.namespace().unwrap_or_default(), reference) {
            self.queue.add_object(&d);
        }
    }

    /// An orphan ReplicaSet: the Deployments that select it may adopt it.
    fn enqueue_matching(&self, rs: &ReplicaSet) {
        let namespace = rs.namespace();
        for d in self.deployments.state() {
            if d.namespace() != namespace {
                continue;
            }
            let Some(spec) = &d.spec else { continue };
            if !selects_nothing_in_particular(&spec.selector) && selector(&spec.selector).is_ok_and(|s| matches(&s, &rs.metadata)) {
                self.queue.add_object(&d);
            }
        }
    }
}

fn selects_nothing_in_particular(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|l| l.is_empty()) && selector.match_expressions.as_ref().is_none_or(|e| e.is_empty())
}

fn strategy_type(d: &Deployment) -> &str {
    d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate")
}

/// One sync of one Deployment, with the API handles it writes through.
struct Sync<'a> {
    ctx: &'a Context,
    deployments: Api<Deployment>,
    replica_sets: Api<ReplicaSet>,
    d: Deployment,
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = d.namespace().unwrap_or_default();
    let mut sync = Sync {
        ctx: &ctx,
        deployments: Api::namespaced(ctx.client.clone(), &namespace),
        replica_sets: Api::namespaced(ctx.client.clone(), &namespace),
        d: (*d).clone(),
    };
    let spec = d.spec.clone().unwrap_or_default();
    if selects_nothing_in_particular(&spec.selector) {
        let message = "This deployment is selecting all pods. A non-empty selector is required.".to_string();
        ctx.recorder.event(&*d, EventType::Warning, "SelectingAll", message);
        let status = sync.d.status.get_or_insert_with(Default::default);
        if status.observed_generation < d.metadata.generation {
            status.observed_generation = d.metadata.generation;
            sync.write_status().await?;
        }
        return Ok(Action::await_change());
    }
    let rs_list = sync.claim_replica_sets().await?;
    if d.metadata.deletion_timestamp.is_some() {
        let (new_rs, old_rss) = sync.new_and_old(&rs_list, false).await?;
        sync.sync_status(&all(&new_rs, &old_rss), new_rs.as_deref()).await?;
        return Ok(Action::await_change());
    }
    sync.check_paused_conditions().await?;
    if spec.paused == Some(true) || sync.is_scaling_event(&rs_list).await? {
        sync.scale_and_sync(&rs_list).await?;
        return Ok(Action::await_change());
    }
    if strategy_type(&d) == "Recreate" {
        sync.rollout_recreate(&rs_list).await
    } else {
        sync.rollout_rolling(&rs_list).await
    }
}

fn all(new_rs: &Option<Arc<ReplicaSet>>, old_rss: &[Arc<ReplicaSet>]) -> Vec<Arc<ReplicaSet>> {
    old_rss.iter().cloned().chain(new_rs.clone()).collect()
}

impl Sync<'_> {
    fn replicas(&self) -> i32 {
        self.d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn min_ready_seconds(&self) -> Option<i32> {
        self.d.spec.as_ref().and_then(|s| s.min_ready_seconds)
    }

    fn template(&self) -> PodTemplateSpec {
        self.d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default()
    }

    fn status(&mut self) -> &mut DeploymentStatus {
        self.d.status.get_or_insert_with(Default::default)
    }

    /// The ReplicaSets this Deployment controls after adopting and releasing by selector.
    async fn claim_replica_sets(&self) -> Result<Vec<Arc<ReplicaSet>>> {
        let spec = self.d.spec.clone().unwrap_or_default();
        let selector = selector(&spec.selector)?;
        let namespace = self.d.namespace();
        let candidates: Vec<Arc<ReplicaSet>> =
            self.ctx.replica_sets.state().into_iter().filter(|rs| rs.namespace() == namespace).collect();
        let (claimed, mut errors) = claim(&self.d, &self.deployments, &self.replica_sets, &selector, candidates).await;
        if errors.is_empty() { Ok(claimed) } else { Err(errors.swap_remove(0)) }
    }

    async fn write_status(&mut self) -> Result<()> {
        self.d = self.deployments.replace_status(&self.d.name_any(), &PostParams::default(), &self.d).await?;
        Ok(())
    }

    /// Records `revision` on the Deployment along with its status, as upstream does; an API
    /// server whose status updates drop metadata changes gets the annotation through the
    /// Deployment itself.
    async fn set_revision(&mut self, revision: &str) -> Result<bool> {
        if self.d.annotations().get(REVISION).map(String::as_str) == Some(revision) {
            return Ok(false);
        }
        self.d.annotations_mut().insert(REVISION.into(), revision.into());
        let wanted = self.d.clone();
        self.write_status().await?;
        if self.d.annotations().get(REVISION).map(String::as_str) != Some(revision) {
            let status = self.d.status.clone();
            let mut annotated = self.d.clone();
            annotated.metadata.annotations = wanted.metadata.annotations;
            self.d = self.deployments.replace(&annotated.name_any(), &PostParams::default(), &annotated).await?;
            self.d.status = status;
        }
        Ok(true)
    }

    /// The ReplicaSet running the current template (created if asked and missing) and all
    /// the others, with revisions brought up to date.
    async fn new_and_old(
        &mut self,
        rs_list: &[Arc<ReplicaSet>],
        create: bool,
    ) -> Result<(Option<Arc<ReplicaSet>>, Vec<Arc<ReplicaSet>>)> {
        let template = self.template();
        let existing = find_new_replica_set(&template, rs_list);
        let old: Vec<Arc<ReplicaSet>> =
            rs_list.iter().filter(|rs| existing.as_ref().is_none_or(|n| n.uid() != rs.uid())).cloned().collect();
        let new_revision = (old.iter().map(|rs| revision(rs)).max().unwrap_or(0) + 1).to_string();
        if let Some(existing) = existing {
            let mut rs = (*existing).clone();
            let annotations_changed = set_new_replica_set_annotations(&self.d, &mut rs, &new_revision, true);
            let spec = rs.spec.get_or_insert_with(Default::default);
            if annotations_changed || spec.min_ready_seconds != self.min_ready_seconds() {
                spec.min_ready_seconds = self.min_ready_seconds();
                let updated = self.replica_sets.replace(&rs.name_any(), &PostParams::default(), &rs).await?;
                return Ok((Some(Arc::new(updated)), old));
            }
            let rs_revision = rs.annotations().get(REVISION).cloned().unwrap_or_default();
            self.set_revision(&rs_revision).await?;
            if has_progress_deadline(&self.d) && condition(self.d.status.as_ref(), "Progressing").is_none() {
                let message = format!("Found new replica set {:?}", rs.name_any());
                set_condition(self.status(), new_condition("Progressing", "True", FOUND_NEW_RS, message));
                self.write_status().await?;
            }
            return Ok((Some(existing), old));
        }
        if !create {
            return Ok((None, old));
        }
        let created = self.create_new_replica_set(&template, &old, &new_revision).await?;
        Ok((Some(created), old))
    }

    async fn create_new_replica_set(
        &mut self,
        template: &PodTemplateSpec,
        old: &[Arc<ReplicaSet>],
        new_revision: &str,
    ) -> Result<Arc<ReplicaSet>> {
        let hash = compute_hash(template, self.d.status.as_ref().and_then(|s| s.collision_count));
        let mut new_template = template.clone();
        new_template.metadata.get_or_insert_with(Default::default).labels.get_or_insert_with(Default::default).insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut rs_selector = self.d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        rs_selector.match_labels.get_or_insert_with(Default::default).insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let name = format!("{}-{}", self.d.name_any(), hash);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.namespace(),
                owner_references: Some(vec![controller_ref(&self.d)]),
                labels: new_template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: self.min_ready_seconds(),
                selector: rs_selector,
                template: Some(new_template),
            }),
            status: None,
        };
        let replicas = new_rs_new_replicas(&self.d, &all(&None, old), &rs)?;
        rs.spec.as_mut().expect("spec").replicas = Some(replicas);
        set_new_replica_set_annotations(&self.d, &mut rs, new_revision, false);
        let (created, already_existed) = match self.replica_sets.create(&PostParams::default(), &rs).await {
            Ok(created) => (created, false),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let existing = self.replica_sets.get(&name).await?;
                let ours = controller_of(&existing.metadata).is_some_and(|r| Some(&r.uid) == self.d.uid().as_ref());
                let same = existing.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| equal_ignore_hash(t, template));
                if !(ours && same) {
                    // A hash collision with a foreign ReplicaSet: hash again with a new count.
                    let status = self.status();
                    status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                    self.write_status().await?;
                    return Err(Error::Other(format!("replica set {name:?} already exists with another template")));
                }
                (existing, true)
            }
            Err(error) if has_cause(&error, "NamespaceTerminating") => return Err(error.into()),
            Err(error) => {
                let message = format!("Failed to create new replica set {name:?}: {}", api_message(&error));
                if has_progress_deadline(&self.d) {
                    set_condition(self.status(), new_condition("Progressing", "False", FAILED_RS_CREATE, message.clone()));
                    let _ = self.write_status().await;
                }
                self.ctx.recorder.event(&self.d, EventType::Warning, FAILED_RS_CREATE, message);
                return Err(error.into());
            }
        };
        if !already_existed && replicas > 0 {
            let message = format!("Scaled up replica set {name} from 0 to {replicas}");
            self.ctx.recorder.event(&self.d, EventType::Normal, "ScalingReplicaSet", message);
        }
        self.set_revision(new_revision).await?;
        if !already_existed && has_progress_deadline(&self.d) {
            let message = format!("Created new replica set {name:?}");
            set_condition(self.status(), new_condition("Progressing", "True", NEW_REPLICA_SET, message));
            self.write_status().await?;
        }
        Ok(Arc::new(created))
    }

    /// Paused and resumed show in the Progressing condition (unless the rollout timed out).
    async fn check_paused_conditions(&mut self) -> Result<()> {
        if !has_progress_deadline(&self.d) {
            return Ok(());
        }
        let current = condition(self.d.status.as_ref(), "Progressing").and_then(|c| c.reason.clone());
        if current.as_deref() == Some(TIMED_OUT) {
            return Ok(());
        }
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let paused_shown = current.as_deref() == Some(PAUSED);
        let update = if paused && !paused_shown {
            new_condition("Progressing", "Unknown", PAUSED, "Deployment is paused".into())
        } else if !paused && paused_shown {
            new_condition("Progressing", "Unknown", RESUMED, "Deployment is resumed".into())
        } else {
            return Ok(());
        };
        set_condition(self.status(), update);
        self.write_status().await
    }

    /// Whether the Deployment was resized since its ReplicaSets were last scaled.
    async fn is_scaling_event(&mut self, rs_list: &[Arc<ReplicaSet>]) -> Result<bool> {
        let (new_rs, old_rss) = self.new_and_old(rs_list, false).await?;
        let replicas = self.replicas();
        Ok(all(&new_rs, &old_rss)
            .iter()
            .filter(|rs| rs_replicas(rs) > 0)
            .filter_map(|rs| annotation_i32(rs, DESIRED_REPLICAS))
            .any(|desired| desired != replicas))
    }

    /// A resize or a paused Deployment: scale without rolling out.
    async fn scale_and_sync(&mut self, rs_list: &[Arc<ReplicaSet>]) -> Result<()> {
        let (new_rs, old_rss) = self.new_and_old(rs_list, false).await?;
        let (new_rs, old_rss) = self.scale(new_rs, old_rss).await?;
        if self.d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            self.cleanup(&old_rss).await?;
        }
        self.sync_status(&all(&new_rs, &old_rss), new_rs.as_deref()).await
    }

    /// Proportional scaling: spreads a resize over the active ReplicaSets by their share of
    /// the Deployment before the resize (the `max-replicas` annotation), biggest first.
    async fn scale(
        &mut self,
        new_rs: Option<Arc<ReplicaSet>>,
        mut old_rss: Vec<Arc<ReplicaSet>>,
    ) -> Result<(Option<Arc<ReplicaSet>>, Vec<Arc<ReplicaSet>>)> {
        let replicas = self.replicas();
        if let Some(target) = find_active_or_latest(&new_rs, &old_rss) {
            if rs_replicas(&target) != replicas {
                self.scale_replica_set(&target, replicas).await?;
            }
            return Ok((new_rs, old_rss));
        }
        if new_rs.as_ref().is_some_and(|rs| is_saturated(&self.d, rs)) {
            for old in old_rss.iter_mut().filter(|rs| rs_replicas(rs) > 0) {
                *old = self.scale_replica_set(old, 0).await?.1;
            }
            return Ok((new_rs, old_rss));
        }
        if strategy_type(&self.d) != "RollingUpdate" {
            return Ok((new_rs, old_rss));
        }
        let mut active: Vec<Arc<ReplicaSet>> = all(&new_rs, &old_rss).into_iter().filter(|rs| rs_replicas(rs) > 0).collect();
        let allowed = if replicas > 0 { replicas + max_surge(&self.d)? } else { 0 };
        let to_add = allowed - active.iter().map(|rs| rs_replicas(rs)).sum::<i32>();
        let operation = match to_add.cmp(&0) {
            Ordering::Greater => {
                active.sort_by(|a, b| rs_replicas(b).cmp(&rs_replicas(a)).then_with(|| by_creation(b, a)));
                "up"
            }
            Ordering::Less => {
                active.sort_by(|a, b| rs_replicas(b).cmp(&rs_replicas(a)).then_with(|| by_creation(a, b)));
                "down"
            }
            Ordering::Equal => "",
        };
        let mut added = 0;
        let mut sizes = Vec::with_capacity(active.len());
        for rs in &active {
            let proportion = if to_add != 0 { replica_set_proportion(rs, &self.d, to_add, added)? } else { 0 };
            sizes.push(rs_replicas(rs) + proportion);
            added += proportion;
        }
        if let Some(largest) = sizes.first_mut() {
            if to_add != 0 {
                *largest = (*largest + to_add - added).max(0);
            }
        }
        for (rs, size) in active.iter().zip(sizes) {
            self.scale_replica_set_as(rs, size, operation).await?;
        }
        Ok((new_rs, old_rss))
    }

    async fn scale_replica_set(&mut self, rs: &Arc<ReplicaSet>, size: i32) -> Result<(bool, Arc<ReplicaSet>)> {
        let operation = if rs_replicas(rs) < size { "up" } else { "down" };
        self.scale_replica_set_as(rs, size, operation).await
    }

    /// Sets a ReplicaSet's size and the Deployment size it was scaled for; returns whether
    /// the size changed, and the ReplicaSet as written.
    async fn scale_replica_set_as(&mut self, rs: &Arc<ReplicaSet>, size: i32, operation: &str) -> Result<(bool, Arc<ReplicaSet>)> {
        let replicas = self.replicas();
        let max = replicas + max_surge(&self.d)?;
        let old_size = rs_replicas(rs);
        let resize = old_size != size;
        let annotate = annotation_i32(rs, DESIRED_REPLICAS) != Some(replicas) || annotation_i32(rs, MAX_REPLICAS) != Some(max);
        if !resize && !annotate {
            return Ok((false, rs.clone()));
        }
        let mut updated = (**rs).clone();
        updated.spec.get_or_insert_with(Default::default).replicas = Some(size);
        set_replicas_annotations(&mut updated, replicas, max);
        let written = Arc::new(self.replica_sets.replace(&rs.name_any(), &PostParams::default(), &updated).await?);
        if resize {
            let message = format!("Scaled {operation} replica set {} from {old_size} to {size}", rs.name_any());
            self.ctx.recorder.event(&self.d, EventType::Normal, "ScalingReplicaSet", message);
        }
        Ok((resize, written))
    }

    async fn rollout_rolling(&mut self, rs_list: &[Arc<ReplicaSet>]) -> Result<Action> {
        let (new_rs, old_rss) = self.new_and_old(rs_list, true).await?;
        let new_rs = new_rs.expect("created when missing");
        let (scaled_up, new_rs) = self.reconcile_new_replica_set(&old_rss, new_rs).await?;
        if scaled_up {
            return self.sync_rollout_status(&all(&Some(new_rs.clone()), &old_rss), Some(&new_rs)).await;
        }
        let (scaled_down, old_rss) = self.reconcile_old_replica_sets(old_rss, &new_rs).await?;
        if !scaled_down && deployment_complete(&self.d, self.d.status.as_ref()) {
            self.cleanup(&old_rss).await?;
        }
        self.sync_rollout_status(&all(&Some(new_rs.clone()), &old_rss), Some(&new_rs)).await
    }

    /// Scales the new ReplicaSet up as far as `maxSurge` allows (or down to the Deployment's size).
    async fn reconcile_new_replica_set(&mut self, old_rss: &[Arc<ReplicaSet>], new_rs: Arc<ReplicaSet>) -> Result<(bool, Arc<ReplicaSet>)> {
        let replicas = self.replicas();
        let current = rs_replicas(&new_rs);
        if current == replicas {
            return Ok((false, new_rs));
        }
        let target = if current > replicas { replicas } else { new_rs_new_replicas(&self.d, &all(&Some(new_rs.clone()), old_rss), &new_rs)? };
        self.scale_replica_set(&new_rs, target).await
    }

    /// Scales old ReplicaSets down as far as `maxUnavailable` allows, unhealthy replicas first.
    async fn reconcile_old_replica_sets(&mut self, old_rss: Vec<Arc<ReplicaSet>>, new_rs: &Arc<ReplicaSet>) -> Result<(bool, Vec<Arc<ReplicaSet>>)> {
        let old_count: i32 = old_rss.iter().map(|rs| rs_replicas(rs)).sum();
        if old_count == 0 {
            return Ok((false, old_rss));
        }
        let all_count = old_count + rs_replicas(new_rs);
        let min_available = self.replicas() - max_unavailable(&self.d)?;
        let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok((false, old_rss));
        }
        let (old_rss, cleaned) = self.cleanup_unhealthy_replicas(old_rss, max_scaled_down).await?;
        let (old_rss, scaled) = self.scale_down_old_for_rolling_update(old_rss, new_rs).await?;
        Ok((cleaned + scaled > 0, old_rss))
    }

    async fn cleanup_unhealthy_replicas(&mut self, mut old_rss: Vec<Arc<ReplicaSet>>, max_cleanup: i32) -> Result<(Vec<Arc<ReplicaSet>>, i32)> {
        old_rss.sort_by(|a, b| by_creation(a, b));
        let mut total = 0;
        for slot in old_rss.iter_mut() {
            if total >= max_cleanup {
                break;
            }
            let rs = slot.clone();
            let (replicas, available) = (rs_replicas(&rs), rs_available(&rs));
            if replicas == 0 || replicas == available {
                continue;
            }
            let down = (max_cleanup - total).min(replicas - available);
            *slot = self.scale_replica_set(&rs, replicas - down).await?.1;
            total += down;
        }
        Ok((old_rss, total))
    }

    async fn scale_down_old_for_rolling_update(&mut self, mut old_rss: Vec<Arc<ReplicaSet>>, new_rs: &Arc<ReplicaSet>) -> Result<(Vec<Arc<ReplicaSet>>, i32)> {
        let min_available = self.replicas() - max_unavailable(&self.d)?;
        let available: i32 = old_rss.iter().chain(Some(new_rs)).map(|rs| rs_available(rs)).sum();
        if available <= min_available {
            return Ok((old_rss, 0));
        }
        old_rss.sort_by(|a, b| by_creation(a, b));
        let wanted = available - min_available;
        let mut total = 0;
        for slot in old_rss.iter_mut() {
            if total >= wanted {
                break;
            }
            let rs = slot.clone();
            let replicas = rs_replicas(&rs);
            if replicas == 0 {
                continue;
            }
            let down = replicas.min(wanted - total);
            *slot = self.scale_replica_set(&rs, replicas - down).await?.1;
            total += down;
        }
        Ok((old_rss, total))
    }

    async fn rollout_recreate(&mut self, rs_list: &[Arc<ReplicaSet>]) -> Result<Action> {
        let (mut new_rs, mut old_rss) = self.new_and_old(rs_list, false).await?;
        let mut scaled_down = false;
        for old in old_rss.iter_mut().filter(|rs| rs_replicas(rs) > 0) {
            let (scaled, written) = self.scale_replica_set(old, 0).await?;
            *old = written;
            scaled_down |= scaled;
        }
        if scaled_down || self.old_pods_running(new_rs.as_deref(), &old_rss, rs_list) {
            return self.sync_rollout_status(&all(&new_rs, &old_rss), new_rs.as_deref()).await;
        }
        if new_rs.is_none() {
            (new_rs, old_rss) = self.new_and_old(rs_list, true).await?;
        }
        let target = new_rs.clone().expect("created when missing");
        let replicas = self.replicas();
        new_rs = Some(self.scale_replica_set(&target, replicas).await?.1);
        if deployment_complete(&self.d, self.d.status.as_ref()) {
            self.cleanup(&old_rss).await?;
        }
        self.sync_rollout_status(&all(&new_rs, &old_rss), new_rs.as_deref()).await
    }

    /// Whether pods of the old ReplicaSets may still run (Recreate must wait for them).
    fn old_pods_running(&self, new_rs: Option<&ReplicaSet>, old_rss: &[Arc<ReplicaSet>], rs_list: &[Arc<ReplicaSet>]) -> bool {
        if old_rss.iter().map(|rs| rs.status.as_ref().map_or(0, |s| s.replicas)).sum::<i32>() > 0 {
            return true;
        }
        let Ok(selector) = selector(&self.d.spec.clone().unwrap_or_default().selector) else { return false };
        let namespace = self.d.namespace();
        let new_uid = new_rs.and_then(|rs| rs.uid());
        self.ctx.pods.state().iter().any(|pod| {
            pod.namespace() == namespace
                && matches(&selector, &pod.metadata)
                && controller_of(&pod.metadata).is_some_and(|r| {
                    Some(&r.uid) != new_uid.as_ref() && rs_list.iter().any(|rs| rs.uid().as_ref() == Some(&r.uid))
                })
                && !matches!(crate::controller_utils::phase(pod), "Failed" | "Succeeded")
        })
    }

    /// Deletes the oldest scaled-down ReplicaSets beyond `revisionHistoryLimit`.
    async fn cleanup(&self, old_rss: &[Arc<ReplicaSet>]) -> Result<()> {
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit) else { return Ok(()) };
        let mut cleanable: Vec<&Arc<ReplicaSet>> = old_rss.iter().filter(|rs| rs.metadata.deletion_timestamp.is_none()).collect();
        let excess = cleanable.len() as i64 - i64::from(limit);
        if excess <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| revision(a).cmp(&revision(b)).then_with(|| by_creation(a, b)));
        for rs in cleanable.into_iter().take(excess as usize) {
            let status = rs.status.clone().unwrap_or_default();
            if status.replicas != 0 || rs_replicas(rs) != 0 || rs.metadata.generation > status.observed_generation {
                continue;
            }
            match self.replica_sets.delete(&rs.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    async fn sync_status(&mut self, all_rss: &[Arc<ReplicaSet>], new_rs: Option<&ReplicaSet>) -> Result<()> {
        let status = calculate_status(&self.d, all_rss, new_rs)?;
        if self.d.status.as_ref() != Some(&status) {
            self.d.status = Some(status);
            self.write_status().await?;
        }
        Ok(())
    }

    /// The status with the Progressing condition brought up to date; a rollout still within
    /// its deadline is looked at again when the deadline passes.
    async fn sync_rollout_status(&mut self, all_rss: &[Arc<ReplicaSet>], new_rs: Option<&ReplicaSet>) -> Result<Action> {
        let mut status = calculate_status(&self.d, all_rss, new_rs)?;
        let deadline = has_progress_deadline(&self.d);
        if !deadline {
            remove_condition(&mut status, "Progressing");
        }
        let current = condition(self.d.status.as_ref(), "Progressing").cloned();
        let complete_before = status.replicas == status.updated_replicas
            && current.as_ref().is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
        let name = |what: &str| match new_rs {
            Some(rs) => format!("ReplicaSet {:?} {what}", rs.name_any()),
            None => format!("Deployment {:?} {what}", self.d.name_any()),
        };
        if deadline && !complete_before {
            if deployment_complete(&self.d, Some(&status)) {
                set_condition(&mut status, new_condition("Progressing", "True", NEW_RS_AVAILABLE, name("has successfully progressed.")));
            } else if deployment_progressing(&self.d, &status) {
                let mut progressing = new_condition("Progressing", "True", REPLICA_SET_UPDATED, name("is progressing."));
                if let Some(current) = &current {
                    if current.status == "True" {
                        progressing.last_transition_time = current.last_transition_time.clone();
                    }
                    remove_condition(&mut status, "Progressing");
                }
                set_condition(&mut status, progressing);
            } else if deployment_timed_out(&self.d, &status) {
                set_condition(&mut status, new_condition("Progressing", "False", TIMED_OUT, name("has timed out progressing.")));
            }
        }
        match all_rss.iter().find_map(|rs| replica_failure(rs)) {
            Some(failure) => set_condition(&mut status, failure),
            None => remove_condition(&mut status, "ReplicaFailure"),
        }
        if self.d.status.as_ref() == Some(&status) {
            return Ok(self.requeue_stuck(&status));
        }
        self.d.status = Some(status);
        self.write_status().await?;
        Ok(Action::await_change())
    }

    /// A rollout that has not completed is checked again when its progress deadline passes.
    fn requeue_stuck(&self, status: &DeploymentStatus) -> Action {
        let Some(current) = condition(Some(status), "Progressing") else { return Action::await_change() };
        if !has_progress_deadline(&self.d) || deployment_complete(&self.d, Some(status)) || current.reason.as_deref() == Some(TIMED_OUT) {
            return Action::await_change();
        }
        let seconds = self.d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).unwrap_or(600);
        let Some(updated) = &current.last_update_time else { return Action::await_change() };
        let after = (updated.0 + SignedDuration::from_secs(i64::from(seconds))).duration_since(Timestamp::now());
        let after = Duration::try_from(after).unwrap_or(Duration::ZERO);
        Action::requeue(after.max(Duration::from_millis(500)) + Duration::from_secs(1))
    }
}

/// The ReplicaSet's `ReplicaFailure` condition as a Deployment condition.
fn replica_failure(rs: &ReplicaSet) -> Option<DeploymentCondition> {
    let failure = rs.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "ReplicaFailure")?;
    Some(DeploymentCondition {
        type_: "ReplicaFailure".into(),
        status: failure.status.clone(),
        reason: failure.reason.clone(),
        message: failure.message.clone(),
        last_update_time: failure.last_transition_time.clone(),
        last_transition_time: failure.last_transition_time.clone(),
    })
}

fn calculate_status(d: &Deployment, all_rss: &[Arc<ReplicaSet>], new_rs: Option<&ReplicaSet>) -> Result<DeploymentStatus> {
    let current = d.status.clone().unwrap_or_default();
    let available: i32 = all_rss.iter().map(|rs| rs_available(rs)).sum();
    let total: i32 = all_rss.iter().map(|rs| rs_replicas(rs)).sum();
    let actual = |rs: &ReplicaSet| rs.status.as_ref().map_or(0, |s| s.replicas);
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nonzero(all_rss.iter().map(|rs| actual(rs)).sum()),
        updated_replicas: nonzero(new_rs.map_or(0, actual)),
        ready_replicas: nonzero(all_rss.iter().map(|rs| rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)).sum()),
        available_replicas: nonzero(available),
        unavailable_replicas: nonzero((total - available).max(0)),
        collision_count: current.collision_count,
        conditions: current.conditions.clone(),
        terminating_replicas: current.terminating_replicas,
    };
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if available >= replicas - max_unavailable(d)? {
        set_condition(&mut status, new_condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.".into()));
    } else {
        set_condition(&mut status, new_condition("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.".into()));
    }
    Ok(status)
}

fn nonzero(count: i32) -> Option<i32> {
    (count != 0).then_some(count)
}

fn condition<'a>(status: Option<&'a DeploymentStatus>, type_: &str) -> Option<&'a DeploymentCondition> {
    status?.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// A condition stamped now (to the second, as the API stores it).
fn new_condition(type_: &str, status: &str, reason: &str, message: String) -> DeploymentCondition {
    let now = Time(Timestamp::from_second(Timestamp::now().as_second()).expect("now"));
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Replaces the condition of its type unless one with the same status and reason is there;
/// the transition time is kept while the status stays the same.
fn set_condition(status: &mut DeploymentStatus, mut new: DeploymentCondition) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(current) = conditions.iter().find(|c| c.type_ == new.type_) {
        if current.status == new.status && current.reason == new.reason {
            return;
        }
        if current.status == new.status {
            new.last_transition_time = current.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_ != new.type_);
    conditions.push(new);
}

fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = &mut status.conditions {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).is_some_and(|s| s != i32::MAX)
}

/// Every replica updated and available, and the latest generation observed.
fn deployment_complete(d: &Deployment, status: Option<&DeploymentStatus>) -> bool {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = status else { return replicas == 0 && d.metadata.generation.is_none() };
    status.updated_replicas.unwrap_or(0) == replicas
        && status.replicas.unwrap_or(0) == replicas
        && status.available_replicas.unwrap_or(0) == replicas
        && status.observed_generation >= d.metadata.generation
}

/// More pods updated, fewer old ones, or more ready or available than last recorded.
fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new_old < old_old
        || new.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

fn deployment_timed_out(d: &Deployment, status: &DeploymentStatus) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(current) = condition(Some(status), "Progressing") else { return false };
    match current.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => return false,
        Some(TIMED_OUT) => return true,
        _ => {}
    }
    let seconds = d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).unwrap_or(600);
    current.last_update_time.as_ref().is_some_and(|t| t.0 + SignedDuration::from_secs(i64::from(seconds)) < Timestamp::now())
}

fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations().get(REVISION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

fn annotation_i32(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.annotations().get(key).and_then(|v| v.parse().ok())
}

fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    a.metadata.creation_timestamp.as_ref().map(|t| t.0).cmp(&b.metadata.creation_timestamp.as_ref().map(|t| t.0)).then_with(|| a.name_any().cmp(&b.name_any()))
}

/// The oldest ReplicaSet whose template is the Deployment's.
fn find_new_replica_set(template: &PodTemplateSpec, rs_list: &[Arc<ReplicaSet>]) -> Option<Arc<ReplicaSet>> {
    let mut sorted: Vec<&Arc<ReplicaSet>> = rs_list.iter().collect();
    sorted.sort_by(|a, b| by_creation(a, b));
    sorted.into_iter().find(|rs| rs.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| equal_ignore_hash(t, template))).cloned()
}

/// Templates equal but for the `pod-template-hash` label.
fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    canonical(a) == canonical(b)
}

/// Non-pointer Go fields whose zero value and absence are the same to upstream's semantic
/// equality, but which an object written as protobuf spells out.
fn zero_means_absent(key: &str, value: &Value) -> bool {
    match key {
        "generation" | "hostPort" => value.as_i64() == Some(0),
        "stdin" | "stdinOnce" | "tty" | "hostNetwork" | "hostPID" | "hostIPC" | "readOnly" => *value == Value::Bool(false),
        _ => false,
    }
}

/// The template as compared and hashed: without the `pod-template-hash` label, empty label
/// maps or explicit zeros of non-pointer fields.
fn canonical(template: &PodTemplateSpec) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.retain(|key, v| !zero_means_absent(key, v));
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(template).expect("template serializes");
    strip(&mut value);
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove(POD_TEMPLATE_HASH);
            if labels.is_empty() {
                metadata.remove("labels");
            }
        }
        if metadata.is_empty() {
            value.as_object_mut().expect("object").remove("metadata");
        }
    }
    value
}

/// The `pod-template-hash`: FNV-32a of the template (and the collision count), spelled in
/// the consonant-and-digit alphabet upstream uses so it never spells words.
fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let mut write = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u32::from(*byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    write(&serde_json::to_vec(&canonical(template)).expect("template serializes"));
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        write(&bytes);
    }
    safe_encode(&hash.to_string())
}

fn safe_encode(text: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    text.bytes().map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char).collect()
}

/// Copies the Deployment's annotations, sets the revision (keeping the ones it replaces in
/// `revision-history` when an old ReplicaSet is reused by a rollback) and, for a new
/// ReplicaSet, the replica annotations. Returns whether anything changed.
fn set_new_replica_set_annotations(d: &Deployment, rs: &mut ReplicaSet, new_revision: &str, exists: bool) -> bool {
    let mut changed = false;
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (key, value) in d.annotations() {
        if NOT_COPIED.contains(&key.as_str()) || annotations.get(key) == Some(value) {
            continue;
        }
        annotations.insert(key.clone(), value.clone());
        changed = true;
    }
    let old_revision = annotations.get(REVISION).cloned();
    let Ok(old) = old_revision.as_deref().map_or(Ok(0), str::parse::<i64>) else { return changed };
    let Ok(new) = new_revision.parse::<i64>() else { return changed };
    if old < new {
        annotations.insert(REVISION.into(), new_revision.into());
        changed = true;
        if let Some(old_revision) = old_revision {
            let history = annotations.get(REVISION_HISTORY).cloned().unwrap_or_default();
            let mut revisions: Vec<&str> = if history.is_empty() { Vec::new() } else { history.split(',').collect() };
            let mut length = history.len() + old_revision.len() + 1;
            while length > MAX_REVISION_HISTORY_CHARS && !revisions.is_empty() {
                length -= revisions.remove(0).len() + 1;
            }
            revisions.push(&old_revision);
            annotations.insert(REVISION_HISTORY.into(), revisions.join(","));
        }
    }
    if !exists {
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        changed |= set_replicas_annotations(rs, replicas, replicas + max_surge(d).unwrap_or(0));
    }
    changed
}

fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        if annotations.get(key) != Some(&value.to_string()) {
            annotations.insert(key.into(), value.to_string());
            changed = true;
        }
    }
    changed
}

/// `maxSurge` and `maxUnavailable` as numbers: percentages of the replicas, surge rounded
/// up and unavailability down; both zero would deadlock, so unavailability becomes 1.
fn resolve_fenceposts(d: &Deployment) -> Result<(i32, i32)> {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let rolling = d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
    let default = IntOrString::String("25%".into());
    let surge = scaled_value(rolling.and_then(|r| r.max_surge.as_ref()).unwrap_or(&default), replicas, true)?;
    let unavailable = scaled_value(rolling.and_then(|r| r.max_unavailable.as_ref()).unwrap_or(&default), replicas, false)?;
    Ok(if surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) })
}

fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(text) => {
            let percent: i64 = text
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| Error::Other(format!("invalid value for IntOrString: invalid value {text:?}")))?;
            let scaled = percent * i64::from(total);
            Ok((if round_up { (scaled + 99) / 100 } else { scaled / 100 }) as i32)
        }
    }
}

fn max_surge(d: &Deployment) -> Result<i32> {
    if strategy_type(d) != "RollingUpdate" {
        return Ok(0);
    }
    Ok(resolve_fenceposts(d)?.0)
}

fn max_unavailable(d: &Deployment) -> Result<i32> {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if strategy_type(d) != "RollingUpdate" || replicas == 0 {
        return Ok(0);
    }
    Ok(resolve_fenceposts(d)?.1.min(replicas))
}

/// How many replicas the new ReplicaSet may have now. A ReplicaSet counts with its pods
/// still running when it has more than it was scaled to: upstream counts only the sizes, so
/// a new pod could start before an old one it replaces stops, briefly exceeding `maxSurge`.
fn new_rs_new_replicas(d: &Deployment, all_rss: &[Arc<ReplicaSet>], new_rs: &ReplicaSet) -> Result<i32> {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if strategy_type(d) != "RollingUpdate" {
        return Ok(replicas);
    }
    let current: i32 = all_rss.iter().map(|rs| rs_replicas(rs).max(rs.status.as_ref().map_or(0, |s| s.replicas))).sum();
    let max_total = replicas + max_surge(d)?;
    let new_current = rs_replicas(new_rs);
    if current >= max_total {
        return Ok(new_current);
    }
    Ok(new_current + (max_total - current).min(replicas - new_current))
}

/// The only active ReplicaSet, or the newest when none is active; `None` with several.
fn find_active_or_latest(new_rs: &Option<Arc<ReplicaSet>>, old_rss: &[Arc<ReplicaSet>]) -> Option<Arc<ReplicaSet>> {
    if new_rs.is_none() && old_rss.is_empty() {
        return None;
    }
    let mut old_sorted = old_rss.to_vec();
    old_sorted.sort_by(|a, b| by_creation(b, a));
    let active: Vec<Arc<ReplicaSet>> = all(new_rs, &old_sorted).into_iter().filter(|rs| rs_replicas(rs) > 0).collect();
    match active.len() {
        0 => new_rs.clone().or_else(|| old_sorted.first().cloned()),
        1 => active.into_iter().next(),
        _ => None,
    }
}

fn is_saturated(d: &Deployment, rs: &ReplicaSet) -> bool {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    rs_replicas(rs) == replicas && annotation_i32(rs, DESIRED_REPLICAS) == Some(replicas) && rs_available(rs) == replicas
}

/// The share of `to_add` this ReplicaSet gets: its size scaled by the Deployment's growth
/// since it was last sized, capped by what is left to hand out.
fn replica_set_proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> Result<i32> {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return Ok(0);
    }
    let fraction = replica_set_fraction(rs, d)?;
    let allowed = to_add - added;
    Ok(if to_add > 0 { fraction.min(allowed) } else { fraction.max(allowed) })
}

fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> Result<i32> {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if replicas == 0 {
        return Ok(-rs_replicas(rs));
    }
    let max_after = replicas + max_surge(d)?;
    let max_before = match annotation_i32(rs, MAX_REPLICAS).filter(|m| *m != 0) {
        Some(max) => max,
        None => match d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0) {
            0 => return Ok(0),
            actual => actual,
        },
    };
    let scaled = f64::from(rs_replicas(rs)) * f64::from(max_after) / f64::from(max_before);
    Ok(scaled.round() as i32 - rs_replicas(rs))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment};

    use super::*;

    fn deployment(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment { max_surge: Some(surge), max_unavailable: Some(unavailable) }),
                }),
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        }
    }

    fn rs(name: &str, replicas: i32, available: i32, max_replicas: Option<i32>) -> Arc<ReplicaSet> {
        let annotations = max_replicas.map(|m| BTreeMap::from([(MAX_REPLICAS.to_string(), m.to_string())]));
        Arc::new(ReplicaSet {
            metadata: ObjectMeta { name: Some(name.into()), annotations, ..ObjectMeta::default() },
            spec: Some(ReplicaSetSpec { replicas: Some(replicas), ..ReplicaSetSpec::default() }),
            status: Some(ReplicaSetStatus { replicas, available_replicas: Some(available), ..ReplicaSetStatus::default() }),
        })
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        let pct = |p: &str| IntOrString::String(p.into());
        assert_eq!(resolve_fenceposts(&deployment(10, pct("25%"), pct("25%"))).unwrap(), (3, 2));
        assert_eq!(resolve_fenceposts(&deployment(3, pct("25%"), pct("25%"))).unwrap(), (1, 0));
        assert_eq!(resolve_fenceposts(&deployment(3, IntOrString::Int(0), IntOrString::Int(0))).unwrap(), (0, 1));
        assert_eq!(max_unavailable(&deployment(2, IntOrString::Int(0), IntOrString::Int(5))).unwrap(), 2);
        assert!(resolve_fenceposts(&deployment(3, pct("x%"), pct("1%"))).is_err());
    }

    #[test]
    fn new_replica_set_grows_within_surge() {
        let d = deployment(10, IntOrString::Int(3), IntOrString::Int(2));
        let old = rs("old", 10, 10, None);
        let new = rs("new", 0, 0, None);
        assert_eq!(new_rs_new_replicas(&d, &[old.clone(), new.clone()], &new).unwrap(), 3);
        let grown = rs("new", 3, 0, None);
        assert_eq!(new_rs_new_replicas(&d, &[old, grown.clone()], &grown).unwrap(), 3);
    }

    #[test]
    fn proportional_scaling_uses_the_size_before_the_resize() {
        // 10 replicas (max 13 with surge 3) grown to 20 (max 23): each keeps its share.
        let d = deployment(20, IntOrString::Int(3), IntOrString::Int(2));
        assert_eq!(replica_set_proportion(&rs("a", 8, 8, Some(13)), &d, 10, 0).unwrap(), 6);
        assert_eq!(replica_set_proportion(&rs("b", 5, 0, Some(13)), &d, 10, 6).unwrap(), 4);
    }

    #[test]
    fn hash_is_stable_and_safe() {
        let template = PodTemplateSpec::default();
        let hash = compute_hash(&template, None);
        assert_eq!(hash, compute_hash(&template, None));
        assert_ne!(hash, compute_hash(&template, Some(1)));
        assert!(hash.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn rollback_keeps_revision_history() {
        let d = Deployment::default();
        let mut old = (*rs("old", 0, 0, None)).clone();
        old.annotations_mut().insert(REVISION.into(), "1".into());
        assert!(set_new_replica_set_annotations(&d, &mut old, "3", true));
        assert_eq!(old.annotations()[REVISION], "3");
        assert_eq!(old.annotations()[REVISION_HISTORY], "1");
        assert!(set_new_replica_set_annotations(&d, &mut old, "5", true));
        assert_eq!(old.annotations()[REVISION_HISTORY], "1,3");
        assert!(!set_new_replica_set_annotations(&d, &mut old, "4", true));
    }

    #[test]
    fn explicit_zeros_of_non_pointer_fields_compare_equal() {
        let explicit: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"generation": 0, "labels": {"app": "web"}},
            "spec": {"hostIPC": false, "containers": [{"name": "c", "stdin": false, "ports": [{"containerPort": 80, "hostPort": 0}]}]}
        }))
        .unwrap();
        let omitted: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}
        }))
        .unwrap();
        assert!(equal_ignore_hash(&explicit, &omitted));
        assert_eq!(compute_hash(&explicit, None), compute_hash(&omitted, None));
    }

    #[test]
    fn template_hash_label_is_ignored_when_comparing() {
        let labels = Some(BTreeMap::from([(POD_TEMPLATE_HASH.to_string(), "abc".to_string())]));
        let with_hash = PodTemplateSpec { metadata: Some(ObjectMeta { labels, ..ObjectMeta::default() }), ..PodTemplateSpec::default() };
        assert!(equal_ignore_hash(&with_hash, &PodTemplateSpec::default()));
    }

    #[test]
    fn conditions_keep_transition_time_while_status_holds() {
        let mut status = DeploymentStatus::default();
        let mut first = new_condition("Progressing", "True", NEW_REPLICA_SET, "a".into());
        first.last_transition_time = Some(Time(Timestamp::UNIX_EPOCH));
        set_condition(&mut status, first);
        set_condition(&mut status, new_condition("Progressing", "True", REPLICA_SET_UPDATED, "b".into()));
        let current = condition(Some(&status), "Progressing").unwrap();
        assert_eq!(current.reason.as_deref(), Some(REPLICA_SET_UPDATED));
        assert_eq!(current.last_transition_time, Some(Time(Timestamp::UNIX_EPOCH)));
        assert_eq!(status.conditions.as_ref().unwrap().len(), 1);
    }
}
