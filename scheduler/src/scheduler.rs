//! The scheduling loop: pop a pod, decide under the cache lock (assuming the pod onto its
//! node at once), then bind in the background so the next decision does not wait for the
//! apiserver. Failures are reported like upstream's: a `FailedScheduling` event and a
//! `PodScheduled=False` condition, with preemption nominating the pod to a node and evicting
//! its victims when that helps.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Resource;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::algorithm::{Algorithm, Failure};
use crate::cache::Cache;
use crate::metrics::Metrics;
use crate::pod_info::PodInfo;
use crate::preemption::{self, Candidate};
use crate::queue::{Attempt, Queue};
use machinery::events::{EventType, Recorder};

/// Bindings in flight at once; beyond this the loop waits, so a backlog cannot open
/// thousands of connections to the apiserver.
const CONCURRENT_BINDINGS: usize = 64;

/// What a failed attempt does to the pod's `status.nominatedNodeName`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Nomination {
    Keep,
    Set(String),
    Clear,
}

/// Everything the scheduling loop, the binding tasks and the informers share.
pub struct Scheduler {
    /// `spec.schedulerName` of the pods this scheduler owns.
    pub name: String,
    pub cache: Mutex<Cache>,
    pub queue: Queue,
    pub metrics: Arc<Metrics>,
    client: kube::Client,
    recorder: Recorder,
    bindings: Arc<Semaphore>,
}

impl Scheduler {
    pub fn new(
        name: String,
        client: kube::Client,
        recorder: Recorder,
        metrics: Arc<Metrics>,
    ) -> Scheduler {
        Scheduler {
            name,
            cache: Mutex::new(Cache::default()),
            queue: Queue::default(),
            metrics,
            client,
            recorder,
            bindings: Arc::new(Semaphore::new(CONCURRENT_BINDINGS)),
        }
    }

    pub fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Schedules pods until the process ends.
    pub async fn run(self: Arc<Self>) {
        let housekeeping = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                housekeeping.queue.flush();
                let sizes = housekeeping.queue.sizes();
                let gauge = &housekeeping.metrics.pending_pods;
                gauge
                    .with_label_values(&["active"])
                    .set(sizes.active as i64);
                gauge
                    .with_label_values(&["backoff"])
                    .set(sizes.backoff as i64);
                gauge
                    .with_label_values(&["unschedulable"])
                    .set(sizes.unschedulable as i64);
            }
        });
        let mut algorithm = Algorithm::default();
        loop {
            let attempt = self.queue.pop().await;
            self.schedule_one(&mut algorithm, attempt).await;
        }
    }

    async fn schedule_one(self: &Arc<Self>, algorithm: &mut Algorithm, attempt: Attempt) {
        let started = Instant::now();
        let pod = attempt.pod.clone();
        let outcome = {
            let mut cache = self.cache();
            if cache.pod(&pod.uid).is_some() {
                // Already assumed or bound; a stale queue entry.
                drop(cache);
                self.queue.done(&pod.uid);
                return;
            }
            match algorithm.schedule(&mut cache, &pod) {
                Ok(node) => {
                    cache.assume(pod.clone(), &node);
                    Ok(node)
                }
                Err(Failure::Unfit(mut fit)) => {
                    self.metrics.preemption_attempts.inc();
                    match preemption::preempt(&cache, &pod, &fit) {
                        Ok(candidate) => {
                            cache.nominate(pod.clone(), Some(&candidate.node));
                            for displaced in &candidate.displaced_nominations {
                                cache.nominate(displaced.clone(), None);
                            }
                            Err((Failure::Unfit(fit), Some(candidate), Nomination::Keep))
                        }
                        Err(none) => {
                            fit.post_filter_message = Some(none.message);
                            let nomination =
                                if none.clear_nomination && pod.nominated_node_name().is_some() {
                                    cache.nominate(pod.clone(), None);
                                    Nomination::Clear
                                } else {
                                    Nomination::Keep
                                };
                            Err((Failure::Unfit(fit), None, nomination))
                        }
                    }
                }
                Err(failure) => Err((failure, None, Nomination::Keep)),
            }
        };
        let profile = self.name.as_str();
        match outcome {
            Ok(node) => {
                self.queue.done(&pod.uid);
                self.metrics
                    .attempts
                    .with_label_values(&["scheduled", profile])
                    .inc();
                self.metrics
                    .attempt_duration
                    .with_label_values(&["scheduled", profile])
                    .observe(started.elapsed().as_secs_f64());
                let permit = self
                    .bindings
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore never closed");
                let scheduler = self.clone();
                tokio::spawn(async move {
                    scheduler.bind(attempt, node).await;
                    drop(permit);
                });
            }
            Err((failure, candidate, nomination)) => {
                let rejected_by = match &failure {
                    Failure::Unfit(fit) => fit.plugins(),
                    Failure::NoNodes => BTreeSet::new(),
                };
                self.queue.unschedulable(&attempt, rejected_by);
                self.metrics
                    .attempts
                    .with_label_values(&["unschedulable", profile])
                    .inc();
                self.metrics
                    .attempt_duration
                    .with_label_values(&["unschedulable", profile])
                    .observe(started.elapsed().as_secs_f64());
                tracing::debug!(pod = %pod.key(), reason = %failure.message(), "unable to schedule pod; waiting");
                let scheduler = self.clone();
                tokio::spawn(async move {
                    let nomination = match candidate {
                        Some(candidate) => {
                            let node = candidate.node.to_string();
                            scheduler.evict(&pod, candidate).await;
                            Nomination::Set(node)
                        }
                        None => nomination,
                    };
                    scheduler
                        .report_failure(&pod, "Unschedulable", &failure.message(), nomination)
                        .await;
                });
            }
        }
    }

    /// Binds an assumed pod through the `pods/binding` subresource; on failure the
    /// assumption is undone and the pod retried after backoff.
    async fn bind(&self, attempt: Attempt, node: Arc<str>) {
        let pod = &attempt.pod;
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                uid: Some(pod.uid.clone()),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.to_string()),
                ..Default::default()
            },
        };
        let result: Result<Value, kube::Error> = self
            .pods(&pod.namespace)
            .create_subresource("binding", &pod.name, &PostParams::default(), &binding)
            .await;
        match result {
            Ok(_) => {
                let attempts = attempt.attempts.to_string();
                self.metrics
                    .pod_scheduling_duration
                    .with_label_values(&[attempts.as_str()])
                    .observe(attempt.queued_at.elapsed().as_secs_f64());
                let message = format!("Successfully assigned {} to {node}", pod.key());
                self.recorder.action_event(
                    pod.pod.object_ref(&()),
                    None,
                    EventType::Normal,
                    "Scheduled",
                    "Binding",
                    message,
                );
            }
            Err(error) => {
                self.cache().forget(&pod.uid);
                if matches!(&error, kube::Error::Api(status) if status.code == 404) {
                    return;
                }
                tracing::warn!(pod = %pod.key(), %node, %error, "binding rejected");
                self.metrics
                    .attempts
                    .with_label_values(&["error", self.name.as_str()])
                    .inc();
                self.queue.retry_after_backoff(&attempt);
                let message = format!("Binding rejected: {error}");
                self.report_failure(pod, "SchedulerError", &message, Nomination::Keep)
                    .await;
            }
        }
    }

    /// A `FailedScheduling` event and the `PodScheduled=False` condition (with the node the
    /// pod is nominated to, if preemption nominated one).
    async fn report_failure(
        &self,
        pod: &PodInfo,
        reason: &str,
        message: &str,
        nomination: Nomination,
    ) {
        let regarding = pod.pod.object_ref(&());
        self.recorder.action_event(
            regarding,
            None,
            EventType::Warning,
            "FailedScheduling",
            "Scheduling",
            message.to_string(),
        );
        let status = pod.pod.status.as_ref();
        let current = status.and_then(|s| {
            s.conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "PodScheduled")
        });
        let same_condition = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message)
        });
        if same_condition && nomination == Nomination::Keep {
            return;
        }
        let transition = match current {
            Some(c) if c.status == "False" => {
                c.last_transition_time.as_ref().map(|t| t.0.to_string())
            }
            _ => None,
        }
        .unwrap_or_else(|| jiff::Timestamp::now().to_string());
        let mut status = json!({
            "conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": reason,
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": transition,
            }]
        });
        match nomination {
            Nomination::Keep => {}
            Nomination::Set(node) => status["nominatedNodeName"] = json!(node),
            Nomination::Clear => status["nominatedNodeName"] = Value::Null,
        }
        let patch = Patch::Strategic(json!({ "status": status }));
        if let Err(error) = self
            .pods(&pod.namespace)
            .patch_status(&pod.name, &PatchParams::default(), &patch)
            .await
        {
            tracing::debug!(pod = %pod.key(), %error, "could not update the PodScheduled condition");
        }
    }

    /// Preemption's API side: mark each victim with a `DisruptionTarget` condition, delete
    /// it, tell it why, and take the nomination away from displaced lower-priority pods.
    async fn evict(&self, preemptor: &PodInfo, candidate: Candidate) {
        self.metrics
            .preemption_victims
            .observe(candidate.victims.len() as f64);
        let node = candidate.node.to_string();
        let evictions = candidate.victims.iter().map(|victim| async {
            let api = self.pods(&victim.namespace);
            let condition = json!({"status": {"conditions": [{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "PreemptionByScheduler",
                "message": format!("{}: preempting to accommodate a higher priority pod", self.name),
                "lastTransitionTime": jiff::Timestamp::now().to_string(),
            }]}});
            if let Err(error) = api.patch_status(&victim.name, &PatchParams::default(), &Patch::Strategic(condition)).await {
                tracing::debug!(victim = %victim.key(), %error, "could not mark preemption victim");
            }
            match api.delete(&victim.name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(preemptor = %preemptor.key(), victim = %victim.key(), %node, "preemptor pod preempted victim pod");
                    let message = format!("Preempted by pod {} on node {node}", preemptor.uid);
                    let (regarding, related) = (victim.pod.object_ref(&()), Some(preemptor.pod.object_ref(&())));
                    self.recorder.action_event(regarding, related, EventType::Normal, "Preempted", "Preempting", message);
                }
                Err(error) => tracing::warn!(victim = %victim.key(), %error, "could not delete preemption victim"),
            }
        });
        futures::future::join_all(evictions).await;
        for displaced in &candidate.displaced_nominations {
            let patch = Patch::Strategic(json!({"status": {"nominatedNodeName": null}}));
            let api = self.pods(&displaced.namespace);
            if let Err(error) = api
                .patch_status(&displaced.name, &PatchParams::default(), &patch)
                .await
            {
                tracing::debug!(pod = %displaced.key(), %error, "could not clear nominated node");
            }
        }
    }
}
