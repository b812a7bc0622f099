//! Events about the objects the controllers act on (`SuccessfulCreate`, `ScalingReplicaSet`,
//! ...), written as core/v1 Events like upstream's legacy event recorder so `kubectl describe`
//! lists them. Recording never blocks a reconcile: events go through a queue to one writer
//! task, which folds a repeat of the same event into the existing one (`count`,
//! `lastTimestamp`), as client-go's event correlator does.

use std::collections::HashMap;

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

/// `Normal` or `Warning`, the two event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

struct Record {
    regarding: ObjectReference,
    kind: EventType,
    reason: String,
    message: String,
    component: &'static str,
}

/// Records events on behalf of one controller (the event's `source.component`).
#[derive(Clone)]
pub struct Recorder {
    component: &'static str,
    tx: UnboundedSender<Record>,
}

impl Recorder {
    /// Records an event about `object`.
    pub fn event<K: Resource<DynamicType = ()>>(&self, object: &K, kind: EventType, reason: &str, message: String) {
        self.event_on(object.object_ref(&()), kind, reason, message);
    }

    /// Records an event about the object `regarding` refers to.
    pub fn event_on(&self, regarding: ObjectReference, kind: EventType, reason: &str, message: String) {
        let record = Record { regarding, kind, reason: reason.to_string(), message, component: self.component };
        let _ = self.tx.unbounded_send(record);
    }
}

/// The writer task and the recorders that feed it.
pub struct Broadcaster {
    tx: UnboundedSender<Record>,
}

impl Broadcaster {
    /// Starts the writer task.
    pub fn start(client: Client) -> Self {
        let (tx, rx) = unbounded();
        tokio::spawn(write_events(client, rx));
        Broadcaster { tx }
    }

    /// A recorder for the controller whose events read `component` as their source.
    pub fn recorder(&self, component: &'static str) -> Recorder {
        Recorder { component, tx: self.tx.clone() }
    }
}

#[derive(PartialEq, Eq, Hash)]
struct Correlation {
    uid: Option<String>,
    name: Option<String>,
    kind: EventType,
    reason: String,
    message: String,
    component: &'static str,
}

async fn write_events(client: Client, mut records: UnboundedReceiver<Record>) {
    // Events already written: name and count, so a repeat updates the existing one.
    let mut written: HashMap<Correlation, (String, String, i32)> = HashMap::new();
    while let Some(record) = records.next().await {
        let namespace = record.regarding.namespace.clone().filter(|ns| !ns.is_empty()).unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        let now = Timestamp::now();
        let correlation = Correlation {
            uid: record.regarding.uid.clone(),
            name: record.regarding.name.clone(),
            kind: record.kind,
            reason: record.reason.clone(),
            message: record.message.clone(),
            component: record.component,
        };
        if let Some((name, event_namespace, count)) = written.get_mut(&correlation) {
            *count += 1;
            let patch = json!({"count": *count, "lastTimestamp": Time(now)});
            let events: Api<Event> = Api::namespaced(client.clone(), event_namespace);
            if events.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.is_ok() {
                continue;
            }
        }
        let name = format!("{}.{:x}", record.regarding.name.as_deref().unwrap_or(record.component), now.as_nanosecond());
        let event = Event {
            metadata: ObjectMeta { name: Some(name), namespace: Some(namespace.clone()), ..ObjectMeta::default() },
            involved_object: record.regarding,
            reason: Some(record.reason),
            message: Some(record.message),
            type_: Some(record.kind.as_str().into()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            source: Some(EventSource { component: Some(record.component.into()), host: None }),
            reporting_component: Some(record.component.into()),
            ..Event::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(created) => {
                if written.len() > 4096 {
                    written.clear();
                }
                written.insert(correlation, (created.name_any(), namespace, 1));
            }
            Err(error) => tracing::debug!(%error, "could not write event"),
        }
    }
}
