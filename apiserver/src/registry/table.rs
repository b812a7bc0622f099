//! `meta.k8s.io/v1` Tables: what `kubectl get` prints. Without them kubectl shows only NAME
//! and AGE, so each strategy supplies upstream's columns and cells.

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

/// One row: its cells and, as `includeObject` asks, the encoded object.
pub type Row = (Vec<Value>, Option<Vec<u8>>);

/// A table with the given rows (`cells`, row object) at `resource_version`, encoded row by
/// row so a 10,000-row table never exists as one JSON tree; `headers` false leaves out the
/// column definitions, as upstream does after a watch's first event.
pub fn table(
    columns: &[Column],
    rows: impl IntoIterator<Item = ApiResult<Row>>,
    resource_version: Option<i64>,
    headers: bool,
    continue_token: Option<String>,
) -> ApiResult<Vec<u8>> {
    let encode = |e: serde_json::Error| ApiError::Internal(format!("cannot encode table: {e}"));
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
        serde_json::to_writer(&mut out, &cells).map_err(encode)?;
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
pub fn age(metadata: &ObjectMeta) -> Value {
    match &metadata.creation_timestamp {
        Some(created) => Value::from(since(created.0)),
        None => Value::from("<unknown>"),
    }
}

/// Upstream's human-readable duration since `then` (`translateTimestampSince`).
pub fn since(then: jiff::Timestamp) -> String {
    let seconds = jiff::Timestamp::now().as_second() - then.as_second();
    human_duration(seconds)
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
    use super::human_duration;

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
