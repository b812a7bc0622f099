//! Events about pods (`Scheduled`, `FailedScheduling`, `Preempted`), posted as core/v1
//! Events in the background. Like upstream's event broadcaster, recording never blocks
//! scheduling: events queue up to a bound and are dropped beyond it, so a burst of thousands
//! of decisions costs the apiserver a bounded number of writes. A repeat of a recent event
//! (same pod, reason and message) bumps the earlier one's count, which `kubectl describe`
//! shows as "(x3 over 10s)".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::mpsc;

/// Events waiting to be posted before new ones are dropped (upstream's `maxQueuedEvents`).
const QUEUED_EVENTS: usize = 1000;
/// Events posted concurrently.
const CONCURRENT_POSTS: usize = 4;
/// Recent events remembered for counting repeats; the memory is cleared beyond this.
const REMEMBERED_EVENTS: usize = 4096;

/// A write to the apiserver: a new event, or a repeat of one.
enum Post {
    Create(Box<Event>),
    Repeat { namespace: String, name: String, count: i32, last: jiff::Timestamp },
}

/// (pod uid, reason, message) → (event name, count) of recent events.
type Recent = HashMap<(String, String, String), (String, i32)>;

#[derive(Clone)]
pub struct Recorder {
    sender: mpsc::Sender<Post>,
    component: Arc<str>,
    instance: Arc<str>,
    recent: Arc<Mutex<Recent>>,
}

fn reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        ..Default::default()
    }
}

impl Recorder {
    /// Starts posting events through `client` as `component` (the scheduler name) from
    /// `instance` (this process).
    pub fn start(client: kube::Client, component: &str, instance: &str) -> Recorder {
        let (sender, receiver) = mpsc::channel::<Post>(QUEUED_EVENTS);
        tokio::spawn(async move {
            tokio_stream_of(receiver)
                .for_each_concurrent(CONCURRENT_POSTS, |post| {
                    let client = client.clone();
                    async move {
                        let result = match post {
                            Post::Create(event) => {
                                let namespace = event.metadata.namespace.clone().unwrap_or_default();
                                let api: Api<Event> = Api::namespaced(client, &namespace);
                                api.create(&PostParams::default(), &event).await.map(drop)
                            }
                            Post::Repeat { namespace, name, count, last } => {
                                let api: Api<Event> = Api::namespaced(client, &namespace);
                                let patch = serde_json::json!({"count": count, "lastTimestamp": Time(last)});
                                api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await.map(drop)
                            }
                        };
                        if let Err(error) = result {
                            tracing::debug!(%error, "could not record event");
                        }
                    }
                })
                .await;
        });
        Recorder { sender, component: component.into(), instance: instance.into(), recent: Arc::default() }
    }

    /// Records an event about `regarding` (optionally `related` to another pod).
    pub fn record(&self, regarding: &Pod, related: Option<&Pod>, type_: &str, reason: &str, action: &str, message: String) {
        let now = jiff::Timestamp::now();
        let namespace = regarding.metadata.namespace.clone().unwrap_or_default();
        let key = (regarding.metadata.uid.clone().unwrap_or_default(), reason.to_string(), message.clone());
        let name = {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() >= REMEMBERED_EVENTS {
                recent.clear();
            }
            match recent.get_mut(&key) {
                Some((name, count)) => {
                    *count += 1;
                    let repeat = Post::Repeat { namespace, name: name.clone(), count: *count, last: now };
                    if self.sender.try_send(repeat).is_err() {
                        tracing::debug!(reason, "event queue full, dropping event");
                    }
                    return;
                }
                None => {
                    let name = format!("{}.{:x}", regarding.metadata.name.as_deref().unwrap_or_default(), now.as_nanosecond());
                    recent.insert(key, (name.clone(), 1));
                    name
                }
            }
        };
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: reference(regarding),
            related: related.map(reference),
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(type_.into()),
            action: Some(action.into()),
            source: Some(EventSource { component: Some(self.component.to_string()), host: None }),
            reporting_component: Some(self.component.to_string()),
            reporting_instance: Some(self.instance.to_string()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            series: None,
        };
        if self.sender.try_send(Post::Create(Box::new(event))).is_err() {
            tracing::debug!(reason, "event queue full, dropping event");
        }
    }
}

fn tokio_stream_of<T: Send + 'static>(mut receiver: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
