//! `meta.k8s.io/v1` Tables: what `kubectl get` prints. Without them kubectl shows only NAME
//! and AGE, so each strategy supplies upstream's columns and cells.

use std::borrow::Cow;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};

/// One column definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub kind: &'static str,
    /// `name` for the NAME column, otherwise usually empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: i32,
}

impl Column {
    pub const fn new(name: &'static str, kind: &'static str, description: &'static str) -> Self {
        Column {
            name,
            kind,
            format: "",
            description,
            priority: 0,
        }
    }

    /// Shown only with `-o wide`.
    pub const fn wide(mut self) -> Self {
        self.priority = 1;
        self
    }

    pub const fn name() -> Self {
        Column {
            name: "Name",
            kind: "string",
            format: "name",
            description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
            priority: 0,
        }
    }

    pub const fn age() -> Self {
        Column::new(
            "Age",
            "string",
            "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
        )
    }

    fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// What each row carries besides its cells (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }

    /// The row's `object`, cut from the stored bytes rather than re-encoded: the metadata as
    /// a `PartialObjectMetadata` (what kubectl asks for), the whole object, or nothing.
    pub fn row_object(self, stored: &[u8], revision: i64) -> Option<Vec<u8>> {
        match self {
            IncludeObject::None => None,
            IncludeObject::Object => Some(super::stored::with_resource_version(stored, revision)),
            IncludeObject::Metadata => {
                let mut out = Vec::with_capacity(stored.len().min(2048));
                super::stored::write_partial_metadata(&mut out, stored, revision, "meta.k8s.io/v1");
                Some(out)
            }
        }
    }
}

/// One cell as a strategy draws it. Cells that read differently as time passes keep their
/// instants instead of text, so a row computed once (and kept by the watch cache) still reads
/// as of each response.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Fixed(Value),
    Relative(Relative),
}

impl<T: Into<Value>> From<T> for Cell {
    fn from(value: T) -> Self {
        Cell::Fixed(value.into())
    }
}

/// A time-relative cell, rendered when a response is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relative {
    /// How long ago the instant was (`5m`), `<unknown>` without one: AGE, an event's LAST
    /// SEEN.
    Since(Option<Timestamp>),
    /// A count and how long ago the last one was: a pod's RESTARTS, `3 (5m ago)`.
    CountSince(i64, Timestamp),
}

impl Relative {
    fn text(self, now: Timestamp) -> String {
        let ago = |at: Timestamp| human_duration(now.as_second() - at.as_second());
        match self {
            Relative::Since(Some(at)) => ago(at),
            Relative::Since(None) => "<unknown>".into(),
            Relative::CountSince(count, at) => format!("{count} ({} ago)", ago(at)),
        }
    }
}

/// A row's cells as a JSON array encoded once, with holes where the time-relative cells go:
/// writing a row is then a copy and a few durations, and a cached row costs about its JSON
/// text rather than a tree of `Value`s.
#[derive(Debug, Clone, PartialEq)]
pub struct Cells {
    /// `[` the fixed cells `]`, each relative cell left out (its comma kept).
    encoded: Box<[u8]>,
    /// Each relative cell with the offset in `encoded` it is written at, in order.
    relative: Box<[(usize, Relative)]>,
}

impl Cells {
    pub fn new(cells: &[Cell]) -> ApiResult<Cells> {
        let mut encoded = Vec::with_capacity(128);
        let mut relative = Vec::new();
        encoded.push(b'[');
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                encoded.push(b',');
            }
            match cell {
                Cell::Fixed(value) => serde_json::to_writer(&mut encoded, value)
                    .map_err(|e| ApiError::Internal(format!("cannot encode table cells: {e}")))?,
                Cell::Relative(cell) => relative.push((encoded.len(), *cell)),
            }
        }
        encoded.push(b']');
        Ok(Cells {
            encoded: encoded.into_boxed_slice(),
            relative: relative.into_boxed_slice(),
        })
    }

    /// Appends the JSON array, relative cells as of `now`.
    fn write(&self, out: &mut Vec<u8>, now: Timestamp) {
        let mut written = 0;
        for (at, cell) in self.relative.iter() {
            out.extend_from_slice(&self.encoded[written..*at]);
            // Durations, counts, `<unknown>`: nothing a JSON string escapes.
            out.push(b'"');
            out.extend_from_slice(cell.text(now).as_bytes());
            out.push(b'"');
            written = *at;
        }
        out.extend_from_slice(&self.encoded[written..]);
    }
}

/// One row: its cells, computed for this response or kept by the watch cache, and, as
/// `includeObject` asks, the encoded object.
pub type Row<'a> = (Cow<'a, Cells>, Option<Vec<u8>>);

/// A table with the given rows at `resource_version`, encoded row by row so a 10,000-row
/// table never exists as one JSON tree; `headers` false leaves out the column definitions, as
/// upstream does after a watch's first event. Time-relative cells read as of now.
pub fn table<'a>(
    columns: &[Column],
    rows: impl IntoIterator<Item = ApiResult<Row<'a>>>,
    resource_version: Option<i64>,
    headers: bool,
    continue_token: Option<String>,
) -> ApiResult<Vec<u8>> {
    let encode = |e: serde_json::Error| ApiError::Internal(format!("cannot encode table: {e}"));
    let now = Timestamp::now();
    let mut metadata = serde_json::Map::new();
    if let Some(rv) = resource_version {
        metadata.insert("resourceVersion".into(), Value::from(rv.to_string()));
    }
    if let Some(token) = continue_token {
        metadata.insert("continue".into(), Value::from(token));
    }
    let definitions: Vec<Value> = if headers {
        columns.iter().map(Column::definition).collect()
    } else {
        Vec::new()
    };
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(br#"{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":"#);
    serde_json::to_writer(&mut out, &metadata).map_err(encode)?;
    out.extend_from_slice(br#","columnDefinitions":"#);
    serde_json::to_writer(&mut out, &definitions).map_err(encode)?;
    out.extend_from_slice(br#","rows":["#);
    for (i, row) in rows.into_iter().enumerate() {
        let (cells, object) = row?;
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"cells":"#);
        cells.write(&mut out, now);
        if let Some(object) = object {
            out.extend_from_slice(br#","object":"#);
            out.extend_from_slice(&object);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// The AGE cell of an object.
pub fn age(metadata: &ObjectMeta) -> Cell {
    Cell::Relative(Relative::Since(
        metadata
            .creation_timestamp
            .as_ref()
            .map(|created| created.0),
    ))
}

/// The cells as a response written at `now` shows them, for tests of strategies' rows.
#[cfg(test)]
pub(crate) fn rendered(cells: &[Cell], now: Timestamp) -> Vec<Value> {
    let mut out = Vec::new();
    Cells::new(cells).unwrap().write(&mut out, now);
    serde_json::from_slice(&out).unwrap()
}

/// Upstream's `duration.HumanDuration`: precise when recent, coarser as it grows.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_cells_read_as_of_each_response() {
        let created: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let cells = [
            Cell::from("web"),
            Cell::Relative(Relative::CountSince(3, created)),
            Cell::from(json!({"a": "\"<b>\""})),
            Cell::Relative(Relative::Since(Some(created))),
            Cell::Relative(Relative::Since(None)),
        ];
        let at = |minutes: i64| created + jiff::SignedDuration::from_mins(minutes);
        assert_eq!(
            rendered(&cells, at(5)),
            [
                json!("web"),
                json!("3 (5m ago)"),
                json!({"a": "\"<b>\""}),
                json!("5m"),
                json!("<unknown>")
            ]
        );
        // The same encoded cells, written later, say so.
        let kept = Cells::new(&cells).unwrap();
        let mut later = Vec::new();
        kept.write(&mut later, at(60 * 5));
        let later: Vec<Value> = serde_json::from_slice(&later).unwrap();
        assert_eq!((&later[1], &later[3]), (&json!("3 (5h ago)"), &json!("5h")));
        assert_eq!(rendered(&[], at(0)), Vec::<Value>::new());
    }

    #[test]
    fn durations_read_like_kubectl() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 1800, "3h30m"),
            (30 * 3600, "30h"),
            (50 * 3600, "2d2h"),
            (10 * 86400, "10d"),
            (3 * 365 * 86400 + 5 * 86400, "3y5d"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(human_duration(seconds), expected, "{seconds}");
        }
    }
}
