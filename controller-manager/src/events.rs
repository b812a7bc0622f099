//! Events about the objects the controllers act on (`SuccessfulCreate`, `ScalingReplicaSet`,
//! ...), written as core/v1 Events like upstream's legacy event recorder so `kubectl describe`
//! lists them. Recording never blocks a reconcile: events go through a queue to one writer
//! task, which correlates them as client-go does: a repeat of an event updates it (`count`,
//! `lastTimestamp`), more than ten similar events of one object within ten minutes are
//! combined into one, and each object gets at most 25 events in a burst, then one per five
//! minutes, so a 1,000-pod scale-up does not write 1,000 events.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

/// Distinct messages of similar events before they are combined.
const MAX_SIMILAR: usize = 10;
/// How long similar events are remembered.
const SIMILAR_WINDOW: Duration = Duration::from_secs(600);
/// Events per object in a burst, then one per refill period.
const BURST: f64 = 25.0;
const REFILL: Duration = Duration::from_secs(300);
/// Correlation entries kept before the cache starts over.
const CACHE_SIZE: usize = 4096;

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

/// Events of one object, type and reason from one component: similar events.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Similar {
    component: &'static str,
    uid: Option<String>,
    name: Option<String>,
    kind: EventType,
    reason: String,
}

/// A component and the object (UID, name) its events are about.
type Source = (&'static str, Option<String>, Option<String>);

#[derive(Default)]
struct Correlator {
    /// Distinct messages of similar events, and when the last one came.
    similar: HashMap<Similar, (HashSet<String>, Instant)>,
    /// Events written: name, namespace and count, by similarity and message.
    written: HashMap<(Similar, String), (String, String, i32)>,
    /// Token buckets (tokens, last refill) per component and object.
    budgets: HashMap<Source, (f64, Instant)>,
}

impl Correlator {
    /// The message to write (possibly combined), or `None` when the object's budget is spent.
    fn correlate(&mut self, record: &Record) -> Option<(Similar, String)> {
        if self.written.len() > CACHE_SIZE {
            *self = Correlator::default();
        }
        let similar = Similar {
            component: record.component,
            uid: record.regarding.uid.clone(),
            name: record.regarding.name.clone(),
            kind: record.kind,
            reason: record.reason.clone(),
        };
        let (messages, last) = self.similar.entry(similar.clone()).or_insert_with(|| (HashSet::new(), Instant::now()));
        if last.elapsed() > SIMILAR_WINDOW {
            messages.clear();
        }
        *last = Instant::now();
        messages.insert(record.message.clone());
        let message = if messages.len() < MAX_SIMILAR {
            record.message.clone()
        } else {
            format!("(combined from similar events): {}", record.message)
        };
        let key = (record.component, record.regarding.uid.clone(), record.regarding.name.clone());
        let (tokens, refilled) = self.budgets.entry(key).or_insert((BURST, Instant::now()));
        *tokens = (*tokens + refilled.elapsed().as_secs_f64() / REFILL.as_secs_f64()).min(BURST);
        *refilled = Instant::now();
        if *tokens < 1.0 {
            return None;
        }
        *tokens -= 1.0;
        Some((similar, message))
    }
}

async fn write_events(client: Client, mut records: UnboundedReceiver<Record>) {
    let mut correlator = Correlator::default();
    while let Some(record) = records.next().await {
        let Some((similar, message)) = correlator.correlate(&record) else { continue };
        let combined = message.starts_with("(combined from similar events)");
        let key = (similar, if combined { String::new() } else { message.clone() });
        let now = Time(Timestamp::now());
        if let Some((name, namespace, count)) = correlator.written.get_mut(&key) {
            *count += 1;
            let patch = json!({"count": *count, "lastTimestamp": now, "message": message});
            let events: Api<Event> = Api::namespaced(client.clone(), namespace);
            if events.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.is_ok() {
                continue;
            }
        }
        let namespace = record.regarding.namespace.clone().filter(|ns| !ns.is_empty()).unwrap_or_else(|| "default".into());
        let name = format!("{}.{:x}", record.regarding.name.as_deref().unwrap_or(record.component), now.0.as_nanosecond());
        let event = Event {
            metadata: ObjectMeta { name: Some(name), namespace: Some(namespace.clone()), ..ObjectMeta::default() },
            involved_object: record.regarding,
            reason: Some(record.reason),
            message: Some(message),
            type_: Some(record.kind.as_str().into()),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            source: Some(EventSource { component: Some(record.component.into()), host: None }),
            reporting_component: Some(record.component.into()),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        match api.create(&PostParams::default(), &event).await {
            Ok(created) => {
                correlator.written.insert(key, (created.name_any(), namespace, 1));
            }
            Err(error) => tracing::debug!(%error, "could not write event"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(message: &str) -> Record {
        Record {
            regarding: ObjectReference { name: Some("web".into()), uid: Some("u".into()), ..ObjectReference::default() },
            kind: EventType::Normal,
            reason: "SuccessfulCreate".into(),
            message: message.into(),
            component: "replicaset-controller",
        }
    }

    #[test]
    fn similar_events_are_combined_then_rate_limited() {
        let mut correlator = Correlator::default();
        let messages: Vec<Option<String>> = (0..30).map(|i| correlator.correlate(&record(&format!("Created pod: web-{i}"))).map(|(_, m)| m)).collect();
        assert_eq!(messages[8].as_deref(), Some("Created pod: web-8"));
        assert_eq!(messages[9].as_deref(), Some("(combined from similar events): Created pod: web-9"));
        assert_eq!(messages.iter().filter(|m| m.is_some()).count(), 25, "a burst of 25 per object");
    }
}
