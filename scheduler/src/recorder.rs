//! Events about pods (`Scheduled`, `FailedScheduling`, `Preempted`), posted as core/v1
//! Events in the background. Like upstream's event broadcaster, recording never blocks
//! scheduling: events queue up to a bound and are dropped beyond it, so a burst of thousands
//! of decisions costs the apiserver a bounded number of writes.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, PostParams};
use tokio::sync::mpsc;

/// Events waiting to be posted before new ones are dropped (upstream's `maxQueuedEvents`).
const QUEUED_EVENTS: usize = 1000;
/// Events posted concurrently.
const CONCURRENT_POSTS: usize = 4;

#[derive(Clone)]
pub struct Recorder {
    sender: mpsc::Sender<Event>,
    component: Arc<str>,
    instance: Arc<str>,
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
        let (sender, receiver) = mpsc::channel::<Event>(QUEUED_EVENTS);
        tokio::spawn(async move {
            tokio_stream_of(receiver)
                .for_each_concurrent(CONCURRENT_POSTS, |event| {
                    let client = client.clone();
                    async move {
                        let namespace = event.metadata.namespace.clone().unwrap_or_default();
                        let api: Api<Event> = Api::namespaced(client, &namespace);
                        if let Err(error) = api.create(&PostParams::default(), &event).await {
                            tracing::debug!(%error, reason = ?event.reason, "could not record event");
                        }
                    }
                })
                .await;
        });
        Recorder { sender, component: component.into(), instance: instance.into() }
    }

    /// Records an event about `regarding` (optionally `related` to another pod).
    pub fn record(&self, regarding: &Pod, related: Option<&Pod>, type_: &str, reason: &str, action: &str, message: String) {
        let now = jiff::Timestamp::now();
        let name = regarding.metadata.name.clone().unwrap_or_default();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: regarding.metadata.namespace.clone(),
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
        if self.sender.try_send(event).is_err() {
            tracing::debug!(reason, "event queue full, dropping event");
        }
    }
}

fn tokio_stream_of<T: Send + 'static>(mut receiver: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
