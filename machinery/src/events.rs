//! Events about the objects a component acts on, written as core/v1 Events so `kubectl
//! describe` lists them. Recording never blocks the caller: events queue up to upstream's
//! 1,000 (`maxQueuedEvents`) and are dropped beyond, and one writer task correlates them as
//! client-go does before posting a few at a time:
//!
//! - a repeat of an event (same object, type, reason, message, source) bumps the first one's
//!   `count` and `lastTimestamp`, which `kubectl describe` shows as "(x3 over 10s)";
//! - for recorders without a reporting instance (client-go's legacy `record` package, which
//!   the controllers use), more than ten similar events of one object within ten minutes are
//!   combined into one, and each object gets at most 25 events in a burst, then one per five
//!   minutes, so a 1,000-pod scale-up does not write 1,000 events;
//! - recorders with a reporting instance (the `events.k8s.io` recorder the scheduler uses)
//!   also fill in `eventTime`, `action`, `related` and `reportingInstance`;
//! - recorders on a host (kubelet's, the node-simulator's) name it as `source.host` and
//!   `reportingInstance`.
//!
//! A component whose own API requests matter more than its events (the node-simulator,
//! standing in for many kubelets) starts the writer with a [`Backlog`]: posts then wait
//! while those requests are backed up, the queue fills and events are what gets dropped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde_json::json;
use tokio::sync::mpsc;

/// Events waiting to be written before new ones are dropped (upstream's `maxQueuedEvents`).
const QUEUED_EVENTS: usize = 1000;
/// Events posted concurrently.
const CONCURRENT_POSTS: usize = 4;
/// Distinct messages of similar events before they are combined.
const MAX_SIMILAR: usize = 10;
/// How long similar events are remembered.
const SIMILAR_WINDOW: Duration = Duration::from_secs(600);
/// Events per object in a burst, then one per refill period.
const BURST: f64 = 25.0;
const REFILL: Duration = Duration::from_secs(300);
/// Correlation entries kept before the cache starts over.
const CACHE_SIZE: usize = 4096;
const COMBINED_PREFIX: &str = "(combined from similar events): ";
/// How often a post held back by a [`Backlog`] looks again.
const BACKLOG_POLL: Duration = Duration::from_millis(20);

/// `Normal` or `Warning`, the two event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

struct Record {
    regarding: ObjectReference,
    related: Option<ObjectReference>,
    kind: EventType,
    reason: String,
    action: Option<String>,
    message: String,
    component: Arc<str>,
    instance: Option<Arc<str>>,
    host: Option<Arc<str>>,
    /// When it happened: the time recorded, not the (possibly much later) time posted.
    at: Timestamp,
}

/// Records events on behalf of one component (the event's `source.component`).
#[derive(Clone)]
pub struct Recorder {
    component: Arc<str>,
    instance: Option<Arc<str>>,
    host: Option<Arc<str>>,
    tx: mpsc::Sender<Record>,
}

impl Recorder {
    /// Records an event about `object`.
    pub fn event<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        kind: EventType,
        reason: &str,
        message: String,
    ) {
        self.event_on(object.object_ref(&()), kind, reason, message);
    }

    /// Records an event about the object `regarding` refers to.
    pub fn event_on(
        &self,
        regarding: ObjectReference,
        kind: EventType,
        reason: &str,
        message: String,
    ) {
        self.send(Record {
            regarding,
            related: None,
            kind,
            reason: reason.to_string(),
            action: None,
            message,
            component: self.component.clone(),
            instance: self.instance.clone(),
            host: self.host.clone(),
            at: Timestamp::now(),
        });
    }

    /// Records what the component did (`action`) to `regarding`, possibly on behalf of
    /// `related`, like upstream's `events.k8s.io` recorder (`Eventf`).
    pub fn action_event(
        &self,
        regarding: ObjectReference,
        related: Option<ObjectReference>,
        kind: EventType,
        reason: &str,
        action: &str,
        message: String,
    ) {
        self.send(Record {
            regarding,
            related,
            kind,
            reason: reason.to_string(),
            action: Some(action.to_string()),
            message,
            component: self.component.clone(),
            instance: self.instance.clone(),
            host: self.host.clone(),
            at: Timestamp::now(),
        });
    }

    fn send(&self, record: Record) {
        if self.tx.try_send(record).is_err() {
            tracing::debug!(component = %self.component, "event queue full, dropping event");
        }
    }
}

/// A component's own API requests, queued or in flight, and how many it runs at once:
/// events wait while there are more, so they never compete with the work they report on.
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

/// The writer task and the recorders that feed it.
#[derive(Clone)]
pub struct Broadcaster {
    tx: mpsc::Sender<Record>,
}

impl Broadcaster {
    /// Starts the writer task.
    pub fn start(client: Client) -> Self {
        Self::spawn(client, None)
    }

    /// Starts the writer task, whose posts give way to `backlog`.
    pub fn start_behind(client: Client, backlog: Backlog) -> Self {
        Self::spawn(client, Some(backlog))
    }

    fn spawn(client: Client, backlog: Option<Backlog>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUED_EVENTS);
        tokio::spawn(write_events(client, rx, backlog));
        Broadcaster { tx }
    }

    /// A recorder whose events read `component` as their source, like client-go's legacy
    /// recorder (the controllers').
    pub fn recorder(&self, component: &str) -> Recorder {
        Recorder {
            component: component.into(),
            instance: None,
            host: None,
            tx: self.tx.clone(),
        }
    }

    /// A legacy recorder on `host`, like kubelet's (`source: {component: kubelet, host:
    /// <node>}`), which client-go also reports as the `reportingInstance`.
    pub fn host_recorder(&self, component: &str, host: &str) -> Recorder {
        Recorder {
            component: component.into(),
            instance: None,
            host: Some(host.into()),
            tx: self.tx.clone(),
        }
    }

    /// A recorder that also names the reporting `instance` (this process), like client-go's
    /// `events.k8s.io` recorder (the scheduler's).
    pub fn instance_recorder(&self, component: &str, instance: &str) -> Recorder {
        Recorder {
            component: component.into(),
            instance: Some(instance.into()),
            host: None,
            tx: self.tx.clone(),
        }
    }
}

/// Events of one object, type and reason from one component: similar events.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Similar {
    component: Arc<str>,
    host: Option<Arc<str>>,
    uid: Option<String>,
    name: Option<String>,
    kind: EventType,
    reason: String,
}

/// A component and the object (UID, name) its events are about.
type Source = (Arc<str>, Option<String>, Option<String>);

/// An event already written: where it is and how often it happened.
struct Written {
    name: String,
    namespace: String,
    count: i32,
    first: Timestamp,
}

/// What to write for a record.
enum Write {
    Create(Box<Event>),
    Repeat {
        namespace: String,
        name: String,
        count: i32,
        message: String,
        event: Box<Event>,
    },
}

#[derive(Default)]
struct Correlator {
    /// Distinct messages of similar events, and when the last one came.
    similar: HashMap<Similar, (HashSet<String>, Instant)>,
    /// Events written, by similarity, field path and message (empty for combined ones).
    written: HashMap<(Similar, Option<String>, String), Written>,
    /// Token buckets (tokens, last refill) per component and object.
    budgets: HashMap<Source, (f64, Instant)>,
}

impl Correlator {
    /// The message to write (possibly combined), or `None` when the object's budget is spent.
    /// Only legacy recorders aggregate and rate-limit.
    fn aggregate(&mut self, record: &Record, similar: &Similar) -> Option<String> {
        if record.instance.is_some() {
            return Some(record.message.clone());
        }
        let (messages, last) = self
            .similar
            .entry(similar.clone())
            .or_insert_with(|| (HashSet::new(), Instant::now()));
        if last.elapsed() > SIMILAR_WINDOW {
            messages.clear();
        }
        *last = Instant::now();
        messages.insert(record.message.clone());
        let message = if messages.len() < MAX_SIMILAR {
            record.message.clone()
        } else {
            format!("{COMBINED_PREFIX}{}", record.message)
        };
        let key = (
            record.component.clone(),
            record.regarding.uid.clone(),
            record.regarding.name.clone(),
        );
        let (tokens, refilled) = self.budgets.entry(key).or_insert((BURST, Instant::now()));
        *tokens = (*tokens + refilled.elapsed().as_secs_f64() / REFILL.as_secs_f64()).min(BURST);
        *refilled = Instant::now();
        if *tokens < 1.0 {
            return None;
        }
        *tokens -= 1.0;
        Some(message)
    }

    /// What to write for `record`, or nothing when it is rate-limited.
    fn correlate(&mut self, record: Record) -> Option<Write> {
        let now = record.at;
        if self.written.len() > CACHE_SIZE {
            *self = Correlator::default();
        }
        let similar = Similar {
            component: record.component.clone(),
            host: record.host.clone(),
            uid: record.regarding.uid.clone(),
            name: record.regarding.name.clone(),
            kind: record.kind,
            reason: record.reason.clone(),
        };
        let message = self.aggregate(&record, &similar)?;
        let combined = message.starts_with(COMBINED_PREFIX);
        let key = (
            similar,
            record.regarding.field_path.clone(),
            if combined {
                String::new()
            } else {
                message.clone()
            },
        );
        let namespace = record
            .regarding
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".into());
        if let Some(written) = self.written.get_mut(&key) {
            written.count += 1;
            let event = event(
                &record,
                &written.name,
                &written.namespace,
                &message,
                written.count,
                written.first,
                now,
            );
            return Some(Write::Repeat {
                namespace: written.namespace.clone(),
                name: written.name.clone(),
                count: written.count,
                message,
                event: Box::new(event),
            });
        }
        let object = record
            .regarding
            .name
            .as_deref()
            .unwrap_or(&record.component);
        let name = format!("{object}.{:x}", now.as_nanosecond());
        let event = event(&record, &name, &namespace, &message, 1, now, now);
        self.written.insert(
            key,
            Written {
                name,
                namespace,
                count: 1,
                first: now,
            },
        );
        Some(Write::Create(Box::new(event)))
    }
}

fn event(
    record: &Record,
    name: &str,
    namespace: &str,
    message: &str,
    count: i32,
    first: Timestamp,
    now: Timestamp,
) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        involved_object: record.regarding.clone(),
        related: record.related.clone(),
        reason: Some(record.reason.clone()),
        message: Some(message.into()),
        type_: Some(record.kind.as_str().into()),
        action: record.action.clone(),
        count: Some(count),
        first_timestamp: Some(Time(first)),
        last_timestamp: Some(Time(now)),
        event_time: record.instance.as_ref().map(|_| MicroTime(first)),
        source: Some(EventSource {
            component: Some(record.component.to_string()),
            host: record.host.as_ref().map(|h| h.to_string()),
        }),
        reporting_component: Some(record.component.to_string()),
        reporting_instance: record
            .instance
            .as_ref()
            .or(record.host.as_ref())
            .map(|i| i.to_string()),
        series: None,
    }
}

async fn write_events(
    client: Client,
    mut records: mpsc::Receiver<Record>,
    backlog: Option<Backlog>,
) {
    let mut correlator = Correlator::default();
    let writes = futures::stream::poll_fn(move |cx| records.poll_recv(cx))
        .filter_map(move |record| std::future::ready(correlator.correlate(record)));
    writes
        .for_each_concurrent(CONCURRENT_POSTS, |write| {
            let (client, backlog) = (client.clone(), backlog.clone());
            async move {
                if let Some(backlog) = backlog {
                    backlog.wait().await;
                }
                if let Err(error) = post(client, write).await {
                    tracing::debug!(%error, "could not write event");
                }
            }
        })
        .await;
}

/// Writes one event; a repeat whose first event is gone is written anew, as client-go does.
async fn post(client: Client, write: Write) -> Result<(), kube::Error> {
    let event = match write {
        Write::Create(event) => event,
        Write::Repeat {
            namespace,
            name,
            count,
            message,
            event,
        } => {
            let patch =
                json!({"count": count, "lastTimestamp": event.last_timestamp, "message": message});
            let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Err(kube::Error::Api(status)) if status.code == 404 => event,
                result => return result.map(drop),
            }
        }
    };
    let namespace = event.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(client, &namespace);
    api.create(&PostParams::default(), &event).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(message: &str, instance: Option<&str>) -> Record {
        Record {
            regarding: ObjectReference {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                ..ObjectReference::default()
            },
            related: None,
            kind: EventType::Normal,
            reason: "SuccessfulCreate".into(),
            action: None,
            message: message.into(),
            component: "replicaset-controller".into(),
            instance: instance.map(Arc::from),
            host: None,
            at: Timestamp::now(),
        }
    }

    fn message(write: &Write) -> &str {
        match write {
            Write::Create(event) => event.message.as_deref().unwrap_or_default(),
            Write::Repeat { message, .. } => message,
        }
    }

    #[test]
    fn similar_events_are_combined_then_rate_limited() {
        let mut correlator = Correlator::default();
        let writes: Vec<Option<Write>> = (0..30)
            .map(|i| correlator.correlate(record(&format!("Created pod: web-{i}"), None)))
            .collect();
        assert_eq!(writes[8].as_ref().map(message), Some("Created pod: web-8"));
        assert_eq!(
            writes[9].as_ref().map(message),
            Some("(combined from similar events): Created pod: web-9")
        );
        assert!(
            matches!(writes[10], Some(Write::Repeat { count: 2, .. })),
            "combined events count up"
        );
        assert_eq!(
            writes.iter().filter(|m| m.is_some()).count(),
            25,
            "a burst of 25 per object"
        );
    }

    #[test]
    fn repeats_count_up_on_the_first_event() {
        let mut correlator = Correlator::default();
        let first = correlator
            .correlate(record("Scheduled", Some("scheduler-1")))
            .unwrap();
        let Write::Create(created) = first else {
            panic!("the first event is created")
        };
        assert_eq!(created.reporting_instance.as_deref(), Some("scheduler-1"));
        assert!(created.event_time.is_some());
        assert_eq!(created.metadata.namespace.as_deref(), Some("ns"));
        let second = correlator
            .correlate(record("Scheduled", Some("scheduler-1")))
            .unwrap();
        let Write::Repeat { name, count, .. } = second else {
            panic!("a repeat is a patch")
        };
        assert_eq!(
            (name.as_str(), count),
            (created.metadata.name.as_deref().unwrap(), 2)
        );
    }

    #[test]
    fn host_recorders_name_the_host_and_count_per_field_path() {
        let mut correlator = Correlator::default();
        let on = |path: &str| {
            let mut record = record("Pulling image \"nginx\"", None);
            record.component = "kubelet".into();
            record.host = Some("node-0".into());
            record.regarding.field_path = Some(path.into());
            record
        };
        let Some(Write::Create(first)) = correlator.correlate(on("spec.containers{a}")) else {
            panic!("the first event is created")
        };
        let source = first.source.as_ref().unwrap();
        assert_eq!(source.host.as_deref(), Some("node-0"));
        assert_eq!(first.reporting_instance.as_deref(), Some("node-0"));
        assert!(
            matches!(
                correlator.correlate(on("spec.containers{b}")),
                Some(Write::Create(_))
            ),
            "another container's event is another event"
        );
        assert!(
            matches!(
                correlator.correlate(on("spec.containers{a}")),
                Some(Write::Repeat { count: 2, .. })
            ),
            "the same container's repeat is counted"
        );
    }

    #[test]
    fn instance_recorders_are_not_rate_limited() {
        let mut correlator = Correlator::default();
        let written = (0..40)
            .filter_map(|i| correlator.correlate(record(&format!("m{i}"), Some("s"))))
            .count();
        assert_eq!(written, 40);
    }
}
