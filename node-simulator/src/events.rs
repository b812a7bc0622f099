//! Pod events as kubelet records them (`source.component: kubelet`, `source.host: <node>`,
//! the container as `fieldPath`), posted apart from pod status so they never hold up the
//! simulation: a bounded queue that drops when full, like client-go's event broadcaster
//! (1,000 queued events), and a few dedicated workers that also wait while the simulator's
//! own API requests are backed up. One process stands in for many kubelets, each of which
//! would post its events over its own connection; here pod status comes first, and under a
//! load the apiserver cannot keep up with, events are what gets dropped. Repeats of an
//! event that can recur (a pull failing again) bump the first event's `count` like
//! client-go's correlator, so `kubectl describe` shows `(x3 over 40s)`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;

/// Events waiting to be posted before new ones are dropped.
const QUEUE: usize = 1000;
/// Event requests in flight at once: few, so that status updates keep the apiserver's
/// attention in a large simulation.
const WORKERS: usize = 4;
/// How often a worker held back by a backlog looks again.
const BACKLOG_POLL: Duration = Duration::from_millis(20);

/// The pod an event is about.
#[derive(Debug, Clone)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: String,
}

/// One kubelet event about a pod's container.
#[derive(Debug, Clone)]
pub struct PodEvent {
    pub pod: PodRef,
    /// `spec.containers{name}` or `spec.initContainers{name}`.
    pub field_path: String,
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
    /// Whether it may recur and should then be counted on the first one.
    pub repeats: bool,
    /// When kubelet recorded it.
    pub at: jiff::Timestamp,
}

/// What makes two events of one pod the same: the reason, the container and the message.
type EventKey = (&'static str, String);

/// Recurring events posted, by pod UID.
type Recurring = HashMap<String, HashMap<EventKey, Posted>>;

/// A recurring event already posted: its name and how often it happened.
struct Posted {
    name: String,
    count: i32,
}

/// The simulator's API requests queued or in flight, and how many it runs at once: events
/// wait while there are more.
#[derive(Clone)]
pub struct Backlog {
    pub pending: Arc<AtomicUsize>,
    pub concurrency: usize,
}

impl Backlog {
    async fn wait(&self) {
        while self.pending.load(Ordering::Relaxed) > self.concurrency {
            tokio::time::sleep(BACKLOG_POLL).await;
        }
    }
}

/// Where the simulator sends events.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<PodEvent>,
    backlog: Backlog,
    posted: Arc<Mutex<Recurring>>,
}

impl Recorder {
    /// Starts the workers posting through `client`, holding back while `backlog` is long.
    pub fn start(client: kube::Client, backlog: Backlog) -> Recorder {
        let (queue, incoming) = mpsc::channel(QUEUE);
        let recorder = Recorder {
            queue,
            backlog,
            posted: Arc::default(),
        };
        tokio::spawn(recorder.clone().run(client, incoming));
        recorder
    }

    /// Queues an event, dropping it when the queue is full.
    pub fn record(&self, event: PodEvent) {
        if let Err(mpsc::error::TrySendError::Full(event)) = self.queue.try_send(event) {
            tracing::debug!(pod = %event.pod.name, reason = event.reason, "event queue full; dropping event");
        }
    }

    /// Forgets the recurring events of a pod that is gone.
    pub fn forget(&self, uid: &str) {
        self.posted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    async fn run(self, client: kube::Client, mut incoming: mpsc::Receiver<PodEvent>) {
        futures::stream::poll_fn(move |cx| incoming.poll_recv(cx))
            .for_each_concurrent(WORKERS, |event| {
                let (recorder, client) = (self.clone(), client.clone());
                async move { recorder.post(client, event).await }
            })
            .await;
    }

    async fn post(&self, client: kube::Client, event: PodEvent) {
        self.backlog.wait().await;
        let now = Time(jiff::Timestamp::from_second(event.at.as_second()).unwrap_or(event.at));
        let api: Api<Event> = Api::namespaced(client, &event.pod.namespace);
        let key = (
            event.reason,
            format!("{}\0{}", event.field_path, event.message),
        );
        let repeat = if event.repeats {
            let mut posted = self.posted.lock().unwrap_or_else(|e| e.into_inner());
            posted
                .get_mut(&event.pod.uid)
                .and_then(|pod| pod.get_mut(&key))
                .map(|p| {
                    p.count += 1;
                    (p.name.clone(), p.count)
                })
        } else {
            None
        };
        if let Some((name, count)) = repeat {
            let patch = Patch::Merge(json!({"count": count, "lastTimestamp": now}));
            match api.patch(&name, &PatchParams::default(), &patch).await {
                Ok(_) => return,
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => {
                    tracing::debug!(%error, event = name, "could not update event");
                    return;
                }
            }
        }
        let nanos = event.at.as_nanosecond();
        let name = format!("{}.{:x}", event.pod.name, nanos);
        let object = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(event.pod.namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(event.pod.namespace.clone()),
                name: Some(event.pod.name.clone()),
                uid: Some(event.pod.uid.clone()),
                field_path: Some(event.field_path.clone()),
                ..ObjectReference::default()
            },
            reason: Some(event.reason.into()),
            message: Some(event.message.clone()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(event.pod.node.clone()),
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            type_: Some(if event.warning { "Warning" } else { "Normal" }.into()),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(event.pod.node.clone()),
            ..Event::default()
        };
        match api.create(&PostParams::default(), &object).await {
            Ok(_) if event.repeats => {
                let mut posted = self.posted.lock().unwrap_or_else(|e| e.into_inner());
                posted
                    .entry(event.pod.uid.clone())
                    .or_default()
                    .insert(key, Posted { name, count: 1 });
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, pod = %event.pod.name, reason = event.reason, "could not post event")
            }
        }
    }
}
