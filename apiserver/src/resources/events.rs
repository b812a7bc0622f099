//! Events, in both APIs that serve them: core/v1 (what `kubectl get events` reads) and
//! events.k8s.io/v1 (what newer components write). Upstream converts both to one internal
//! type, so they share the validation rules, the selectable fields and the table here.
//!
//! Upstream also stores both under the same key; this framework serves stored bytes as
//! they are, without version conversion, so each API keeps its own key prefix.

use k8s_openapi::api::core::v1::{Event as CoreEvent, EventSource, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use serde::Serialize;
use serde_json::Value;

use crate::error::Cause;
use crate::registry::strategy::Conversion;
use crate::registry::table::{Cell, Column, Relative};
use crate::registry::validation;
use crate::registry::{Description, NameRule, Strategy};

/// core/v1 Events.
pub struct CoreEvents;

/// events.k8s.io/v1 Events.
pub struct Events;

/// Upstream's length limits on event fields.
const REASON_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REPORTING_INSTANCE_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

impl Strategy for CoreEvents {
    type Object = CoreEvent;

    fn describe(&self) -> Description {
        Description {
            short_names: &["ev"],
            create_on_update: true,
            name_rule: NameRule::PathSegment,
            field_selectors: &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            ..Description::default()
        }
    }

    /// core/v1 keeps only the legacy checks, for old clients.
    fn validate(&self, event: &CoreEvent) -> Vec<Cause> {
        Internal::core(event).legacy_errors("reportingComponent")
    }

    fn fields(&self, event: &CoreEvent) -> Vec<(&'static str, String)> {
        Internal::core(event).fields()
    }

    fn columns(&self) -> Vec<Column> {
        columns()
    }

    fn cells(&self, event: &CoreEvent) -> Vec<Cell> {
        Internal::core(event).cells()
    }
}

/// Field names that differ between events.k8s.io/v1 and core/v1 Events, as upstream's
/// conversion maps them: (events.k8s.io, core).
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(object: &Value, api_version: &str, to_core: bool) -> Value {
    let Value::Object(fields) = object else {
        return object.clone();
    };
    let mut out = serde_json::Map::new();
    for (key, value) in fields {
        let renamed = RENAMED
            .iter()
            .find(|(events, core)| if to_core { events == key } else { core == key })
            .map(|(events, core)| if to_core { *core } else { *events })
            .unwrap_or(key.as_str());
        out.insert(renamed.to_string(), value.clone());
    }
    out.insert("apiVersion".into(), Value::from(api_version));
    out.insert("kind".into(), Value::from("Event"));
    Value::Object(out)
}

/// A stored core/v1 Event as an events.k8s.io/v1 Event.
fn from_core(stored: &Value) -> Value {
    rename(stored, "events.k8s.io/v1", false)
}

/// An events.k8s.io/v1 Event as the core/v1 Event it is stored as.
fn to_core(event: &Value) -> Value {
    rename(event, "v1", true)
}

impl Strategy for Events {
    type Object = Event;

    fn describe(&self) -> Description {
        Description {
            short_names: &["ev"],
            create_on_update: true,
            field_selectors: &[
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "regarding.apiVersion",
                "regarding.resourceVersion",
                "regarding.fieldPath",
                "reason",
                "reportingController",
                "type",
            ],
            // Stored as core/v1 Events (upstream's storage version), so each API sees both.
            conversion: Some(Conversion {
                from_storage: from_core,
                to_storage: to_core,
            }),
            ..Description::default()
        }
    }

    fn validate(&self, event: &Event) -> Vec<Cause> {
        let internal = Internal::v1(event);
        let mut causes = internal.legacy_errors("reportingController");
        causes.extend(series_errors(event));
        if event.event_time.is_none() {
            causes.push(Cause::required("eventTime"));
        }
        if !matches!(internal.type_, "Normal" | "Warning") {
            causes.push(Cause::invalid(
                "type",
                &Value::from(""),
                format!("has invalid value: {}", internal.type_),
            ));
        }
        let deprecated = [
            (
                "deprecatedFirstTimestamp",
                event.deprecated_first_timestamp.is_some(),
            ),
            (
                "deprecatedLastTimestamp",
                event.deprecated_last_timestamp.is_some(),
            ),
            ("deprecatedCount", event.deprecated_count.unwrap_or(0) != 0),
            (
                "deprecatedSource",
                !internal.source_component.is_empty() || !internal.source_host.is_empty(),
            ),
        ];
        for (field, _) in deprecated.iter().filter(|(_, set)| *set) {
            causes.push(Cause::invalid(
                *field,
                &Value::from(""),
                "needs to be unset",
            ));
        }
        causes
    }

    /// Upstream's strict update rules for events.k8s.io: only the series may change.
    fn validate_update(&self, new: &Event, old: &Event) -> Vec<Cause> {
        let mut causes = Internal::v1(new).legacy_errors("reportingController");
        if new.series != old.series {
            causes.extend(series_errors(new));
        }
        let immutable = [
            ("involvedObject", json(&new.regarding), json(&old.regarding)),
            ("reason", json(&new.reason), json(&old.reason)),
            ("message", json(&new.note), json(&old.note)),
            (
                "source",
                json(&new.deprecated_source),
                json(&old.deprecated_source),
            ),
            (
                "firstTimestamp",
                json(&new.deprecated_first_timestamp),
                json(&old.deprecated_first_timestamp),
            ),
            (
                "lastTimestamp",
                json(&new.deprecated_last_timestamp),
                json(&old.deprecated_last_timestamp),
            ),
            (
                "count",
                json(&new.deprecated_count),
                json(&old.deprecated_count),
            ),
            ("type", json(&new.type_), json(&old.type_)),
            ("eventTime", json(&new.event_time), json(&old.event_time)),
            ("action", json(&new.action), json(&old.action)),
            ("related", json(&new.related), json(&old.related)),
            (
                "reportingController",
                json(&new.reporting_controller),
                json(&old.reporting_controller),
            ),
            (
                "reportingInstance",
                json(&new.reporting_instance),
                json(&old.reporting_instance),
            ),
        ];
        for (field, new_value, old_value) in immutable {
            if new_value != old_value {
                causes.push(Cause::invalid(field, &new_value, "field is immutable"));
            }
        }
        causes
    }

    fn fields(&self, event: &Event) -> Vec<(&'static str, String)> {
        let internal = Internal::v1(event);
        let regarding = internal.involved_object;
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        vec![
            ("regarding.kind", text(&regarding.kind)),
            ("regarding.namespace", text(&regarding.namespace)),
            ("regarding.name", text(&regarding.name)),
            ("regarding.uid", text(&regarding.uid)),
            ("regarding.apiVersion", text(&regarding.api_version)),
            (
                "regarding.resourceVersion",
                text(&regarding.resource_version),
            ),
            ("regarding.fieldPath", text(&regarding.field_path)),
            ("reason", internal.reason.to_string()),
            (
                "reportingController",
                internal.reporting_controller.to_string(),
            ),
            ("type", internal.type_.to_string()),
        ]
    }

    fn columns(&self) -> Vec<Column> {
        columns()
    }

    fn cells(&self, event: &Event) -> Vec<Cell> {
        Internal::v1(event).cells()
    }
}

fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// `validateV1EventSeries`: a series has seen the event at least twice.
fn series_errors(event: &Event) -> Vec<Cause> {
    match &event.series {
        Some(series) if series.count < 2 => vec![Cause::invalid(
            "series.count",
            &Value::from(""),
            "should be at least 2",
        )],
        _ => Vec::new(),
    }
}

/// An event seen through upstream's internal type, whichever API it came in through.
struct Internal<'a> {
    name: &'a str,
    namespace: &'a str,
    involved_object: ObjectReference,
    reason: &'a str,
    message: &'a str,
    type_: &'a str,
    source_component: &'a str,
    source_host: &'a str,
    first_timestamp: Option<jiff::Timestamp>,
    last_timestamp: Option<jiff::Timestamp>,
    event_time: Option<jiff::Timestamp>,
    count: i32,
    /// The series' count and last observation, when the event repeats as a series.
    series: Option<(i32, Option<jiff::Timestamp>)>,
    action: &'a str,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
}

fn text(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("")
}

impl<'a> Internal<'a> {
    fn core(event: &'a CoreEvent) -> Self {
        let source = event.source.as_ref();
        Internal {
            name: text(&event.metadata.name),
            namespace: text(&event.metadata.namespace),
            involved_object: event.involved_object.clone(),
            reason: text(&event.reason),
            message: text(&event.message),
            type_: text(&event.type_),
            source_component: source.map_or("", |s| text(&s.component)),
            source_host: source.map_or("", |s| text(&s.host)),
            first_timestamp: event.first_timestamp.as_ref().map(|t| t.0),
            last_timestamp: event.last_timestamp.as_ref().map(|t| t.0),
            event_time: event.event_time.as_ref().map(|t| t.0),
            count: event.count.unwrap_or(0),
            series: event.series.as_ref().map(|s| {
                (
                    s.count.unwrap_or(0),
                    s.last_observed_time.as_ref().map(|t| t.0),
                )
            }),
            action: text(&event.action),
            reporting_controller: text(&event.reporting_component),
            reporting_instance: text(&event.reporting_instance),
        }
    }

    fn v1(event: &'a Event) -> Self {
        let source: Option<&EventSource> = event.deprecated_source.as_ref();
        Internal {
            name: text(&event.metadata.name),
            namespace: text(&event.metadata.namespace),
            involved_object: event.regarding.clone().unwrap_or_default(),
            reason: text(&event.reason),
            message: text(&event.note),
            type_: text(&event.type_),
            source_component: source.map_or("", |s| text(&s.component)),
            source_host: source.map_or("", |s| text(&s.host)),
            first_timestamp: event.deprecated_first_timestamp.as_ref().map(|t| t.0),
            last_timestamp: event.deprecated_last_timestamp.as_ref().map(|t| t.0),
            event_time: event.event_time.as_ref().map(|t| t.0),
            count: event.deprecated_count.unwrap_or(0),
            series: event
                .series
                .as_ref()
                .map(|s| (s.count, Some(s.last_observed_time.0))),
            action: text(&event.action),
            reporting_controller: text(&event.reporting_controller),
            reporting_instance: text(&event.reporting_instance),
        }
    }

    /// Upstream's `legacyValidateEvent`: the namespace must match the involved object's,
    /// and events with an `eventTime` (the new style) must say who reported what.
    fn legacy_errors(&self, reporting_controller_field: &str) -> Vec<Cause> {
        let mut causes = Vec::new();
        let object_namespace = text(&self.involved_object.namespace);
        let mismatch = || {
            Cause::invalid(
                "involvedObject.namespace",
                &Value::from(object_namespace),
                "does not match event.namespace",
            )
        };
        if self.event_time.is_none() {
            let matches = if object_namespace.is_empty() {
                matches!(self.namespace, "" | "default")
            } else {
                self.namespace == object_namespace
            };
            if !matches {
                causes.push(mismatch());
            }
            return causes;
        }
        if object_namespace.is_empty() && !matches!(self.namespace, "default" | "kube-system") {
            causes.push(mismatch());
        }
        if self.reporting_controller.is_empty() {
            causes.push(Cause::required(reporting_controller_field));
        }
        for error in validation::qualified_name_errors(self.reporting_controller) {
            causes.push(Cause::invalid(
                reporting_controller_field,
                &Value::from(self.reporting_controller),
                error,
            ));
        }
        let lengths = [
            (
                "reportingInstance",
                self.reporting_instance,
                REPORTING_INSTANCE_LIMIT,
                true,
            ),
            ("action", self.action, ACTION_LIMIT, true),
            ("reason", self.reason, REASON_LIMIT, true),
            ("message", self.message, NOTE_LIMIT, false),
        ];
        for (field, value, limit, required) in lengths {
            if required && value.is_empty() {
                causes.push(Cause::required(field));
            }
            if value.len() > limit {
                causes.push(Cause::invalid(
                    field,
                    &Value::from(""),
                    format!("can have at most {limit} characters"),
                ));
            }
        }
        causes
    }

    /// Upstream's `ToSelectableFields` of the internal event (as core/v1 names them).
    fn fields(&self) -> Vec<(&'static str, String)> {
        let object = &self.involved_object;
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        let source = if self.source_component.is_empty() {
            self.reporting_controller
        } else {
            self.source_component
        };
        vec![
            ("involvedObject.kind", text(&object.kind)),
            ("involvedObject.namespace", text(&object.namespace)),
            ("involvedObject.name", text(&object.name)),
            ("involvedObject.uid", text(&object.uid)),
            ("involvedObject.apiVersion", text(&object.api_version)),
            (
                "involvedObject.resourceVersion",
                text(&object.resource_version),
            ),
            ("involvedObject.fieldPath", text(&object.field_path)),
            ("reason", self.reason.to_string()),
            ("reportingComponent", self.reporting_controller.to_string()),
            ("source", source.to_string()),
            ("type", self.type_.to_string()),
        ]
    }

    /// Upstream's `printEvent` row: LAST SEEN TYPE REASON OBJECT SUBOBJECT SOURCE MESSAGE
    /// FIRST SEEN COUNT NAME.
    fn cells(&self) -> Vec<Cell> {
        let first_seen = self.first_timestamp.or(self.event_time);
        let (last_seen, count) = match self.series {
            Some((count, last_observed)) => (last_observed, count),
            None => (
                self.last_timestamp.or(first_seen),
                if self.count == 0 { 1 } else { self.count },
            ),
        };
        let kind = text(&self.involved_object.kind).to_lowercase();
        let object = match text(&self.involved_object.name) {
            "" => kind,
            name => format!("{kind}/{name}"),
        };
        let component = if self.source_component.is_empty() {
            self.reporting_controller
        } else {
            self.source_component
        };
        let instance = if self.source_host.is_empty() {
            self.reporting_instance
        } else {
            self.source_host
        };
        let source = if instance.is_empty() {
            component.to_string()
        } else {
            format!("{component}, {instance}")
        };
        vec![
            Cell::Relative(Relative::Since(last_seen)),
            Cell::from(self.type_),
            Cell::from(self.reason),
            Cell::from(object),
            Cell::from(text(&self.involved_object.field_path)),
            Cell::from(source),
            Cell::from(self.message.trim()),
            Cell::Relative(Relative::Since(first_seen)),
            Cell::from(count),
            Cell::from(self.name),
        ]
    }
}

/// The `kubectl get events` columns; the subobject, source, first-seen, count and name
/// columns show with `-o wide`.
fn columns() -> Vec<Column> {
    vec![
        Column::new("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
        Column::new("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
        Column::new("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
        Column::new("Object", "string", "The object that this event is about."),
        Column::new("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.").wide(),
        Column::new("Source", "string", "The component reporting this event. Should be a short machine understandable string.").wide(),
        Column::new("Message", "string", "A human-readable description of the status of this operation."),
        Column::new("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)").wide(),
        Column::new("Count", "string", "The number of times this event has occurred.").wide(),
        Column::name().wide(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::table::rendered;

    fn now() -> jiff::Timestamp {
        "2025-01-01T01:00:00Z".parse().unwrap()
    }

    fn lines(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn core_event_rows_read_like_kubectl() {
        let event: CoreEvent = serde_json::from_value(json!({
            "metadata": {"name": "web.17a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "fieldPath": "spec.containers{web}"},
            "reason": "Pulled", "message": "Successfully pulled image \"nginx\"\n", "type": "Normal",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2025-01-01T00:50:00Z", "lastTimestamp": "2025-01-01T00:58:00Z", "count": 3
        }))
        .unwrap();
        let cells = rendered(&Internal::core(&event).cells(), now());
        assert_eq!(
            cells,
            vec![
                json!("2m"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web"),
                json!("spec.containers{web}"),
                json!("kubelet, node-1"),
                json!("Successfully pulled image \"nginx\""),
                json!("10m"),
                json!(3),
                json!("web.17a"),
            ]
        );
        assert_eq!(cells.len(), CoreEvents.columns().len());
    }

    #[test]
    fn new_style_events_use_series_and_reporting_controller() {
        let event: Event = serde_json::from_value(json!({
            "metadata": {"name": "x", "namespace": "default"},
            "regarding": {"kind": "Node", "name": "node-1"},
            "reason": "Starting", "note": "Starting kubelet.", "type": "Normal", "action": "StartKubelet",
            "eventTime": "2025-01-01T00:00:00.000000Z", "reportingController": "kubelet", "reportingInstance": "node-1",
            "series": {"count": 4, "lastObservedTime": "2025-01-01T00:59:30.000000Z"}
        }))
        .unwrap();
        let cells = rendered(&Internal::v1(&event).cells(), now());
        assert_eq!(cells[0], "30s");
        assert_eq!(cells[3], "node/node-1");
        assert_eq!(cells[5], "kubelet, node-1");
        assert_eq!(cells[7], "60m");
        assert_eq!(cells[8], 4);
        assert_eq!(lines(&Events.validate(&event)), Vec::<String>::new());
    }

    #[test]
    fn event_namespace_must_match_the_object() {
        let event: CoreEvent = serde_json::from_value(json!({
            "metadata": {"name": "x", "namespace": "team-a"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "team-b"}
        }))
        .unwrap();
        assert_eq!(lines(&CoreEvents.validate(&event)), ["involvedObject.namespace: Invalid value: \"team-b\": does not match event.namespace"]);
    }

    #[test]
    fn events_k8s_io_is_strict() {
        let event: Event = serde_json::from_value(json!({
            "metadata": {"name": "x", "namespace": "default"},
            "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
            "type": "Info", "deprecatedCount": 2
        }))
        .unwrap();
        assert_eq!(
            lines(&Events.validate(&event)),
            [
                "eventTime: Required value",
                "type: Invalid value: \"\": has invalid value: Info",
                "deprecatedCount: Invalid value: \"\": needs to be unset",
            ]
        );
        let mut changed = event.clone();
        changed.reason = Some("Other".into());
        assert_eq!(
            lines(&Events.validate_update(&changed, &event)),
            ["reason: Invalid value: \"Other\": field is immutable"]
        );
    }
}
