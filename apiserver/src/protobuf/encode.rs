//! JSON → Kubernetes protobuf, for answering clients that accept
//! `application/vnd.kubernetes.protobuf` (every client-go typed client, metadata informers).
//!
//! The inverse of [`super::transcode`], driven by the same schema and written the way upstream's
//! gogo-protobuf code writes: fields in ascending tag order, map entries sorted by key, each
//! entry `{key = 1, value = 2}`, repeated scalars unpacked (the Kubernetes protos are proto2
//! without `packed`), negative integers as ten-byte varints. Go also writes every field it holds
//! by value, zero or not; the JSON (upstream's and ours) omits most zero values, so those fields
//! are absent here, which every protobuf reader takes for the same zero value. A null field is
//! absent too (in a list or map, null is the zero value, as Go's JSON decoding makes it), and
//! keys the schema does not know are dropped, as upstream's JSON decoding drops them. Strings
//! are written as the JSON holds them: Quantities are expected in canonical form already, which
//! is what Go's Quantity writes.

use base64::Engine;
use serde_json::{Map, Number, Value};

use super::schema::{schema, FieldType, Label, Scalar, Shape};
use super::transcode::MAX_DEPTH;
use super::MAGIC;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// runtime.Unknown's fields.
const TYPE_META: u32 = 1;
const RAW: u32 = 2;
const CONTENT_ENCODING: u32 = 3;
const CONTENT_TYPE: u32 = 4;

/// Every list message is {metadata = 1 ListMeta, items = 2 repeated item}.
const LIST_META: u32 = 1;
const LIST_ITEMS: u32 = 2;

/// meta.v1.WatchEvent's fields, and RawExtension's one field.
const WATCH_EVENT_TYPE: u32 = 1;
const WATCH_EVENT_OBJECT: u32 = 2;
const RAW_EXTENSION_RAW: u32 = 1;

/// 0001-01-01T00:00:00Z, Go's zero time, which metav1.Time and MicroTime write as an empty
/// message.
const ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// `{"allows": true}` beside the schema of a JSONSchemaPropsOrBool given as a schema.
static ALLOWS: Value = Value::Bool(true);

/// Why a JSON object cannot be encoded; a bug in what the apiserver stored or built, since
/// every object it holds passed its JSON decoding.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    #[error("no protobuf message for kind {kind:?} in {api_version:?}")]
    UnknownKind { api_version: String, kind: String },
    #[error("kind {kind:?} in {api_version:?} is not a list")]
    NotAList { api_version: String, kind: String },
    #[error("no schema for protobuf message {0}")]
    UnknownMessage(String),
    #[error("{path}: expected {expected}, found {found}")]
    WrongType {
        path: FieldPath,
        expected: &'static str,
        found: String,
    },
    #[error("{path}: {value:?} is not an RFC 3339 time")]
    InvalidTime { path: FieldPath, value: String },
    #[error("{path}: invalid base64: {reason}")]
    InvalidBase64 { path: FieldPath, reason: String },
    #[error("JSON nested more than {0} levels deep")]
    TooDeep(usize),
}

/// Where in the object a value was refused (`spec.containers[0].ports[1].containerPort`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(String);

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("the object")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// One step into a JSON value, for error paths.
enum Step<'a> {
    Field(&'a str),
    Index(usize),
    Key(&'a str),
}

impl EncodeError {
    /// The error seen from one level further out; paths are built only on the error path.
    fn within(mut self, step: Step) -> Self {
        if let EncodeError::WrongType { path, .. }
        | EncodeError::InvalidTime { path, .. }
        | EncodeError::InvalidBase64 { path, .. } = &mut self
        {
            let head = match step {
                Step::Field(name) => name.to_owned(),
                Step::Index(index) => format!("[{index}]"),
                Step::Key(key) => format!("[{key:?}]"),
            };
            let dot = if path.0.is_empty() || path.0.starts_with('[') {
                ""
            } else {
                "."
            };
            path.0 = format!("{head}{dot}{}", path.0);
        }
        self
    }
}

/// The complete body upstream answers one object with: the magic `k8s\0` and a runtime.Unknown
/// {typeMeta {apiVersion, kind}, raw = the object's message, contentEncoding "", contentType ""}.
/// `kind` is any kind the apiserver answers with: a served kind, its list, DeleteOptions,
/// Status (apiVersion `v1`) or PartialObjectMetadata(List) (`meta.k8s.io/v1`).
pub fn encode_object(
    api_version: &str,
    kind: &str,
    object: &Value,
) -> Result<Vec<u8>, EncodeError> {
    let name = response_message(api_version, kind)?;
    let mut body = envelope_head(api_version, kind);
    message_field(&mut body, RAW, |out| message_content(name, object, out, 0))?;
    envelope_tail(&mut body);
    Ok(body)
}

/// A `<Kind>List` body built item by item, so a large list is encoded while it is read: the
/// ListMeta first, then each item's message as the list's field 2, the envelope at the end.
/// Upstream's streaming list encoder writes the same bytes.
#[derive(Debug)]
pub struct ListEncoder {
    /// Magic and the envelope's typeMeta field.
    head: Vec<u8>,
    /// The type of the list's items field.
    item: &'static FieldType,
    /// The list's message so far.
    raw: Vec<u8>,
    items: usize,
}

impl ListEncoder {
    /// Starts a list of kind `list_kind` (`PodList`, `PartialObjectMetadataList`) with its
    /// ListMeta, as JSON.
    pub fn new(api_version: &str, list_kind: &str, list_meta: &Value) -> Result<Self, EncodeError> {
        let name = response_message(api_version, list_kind)?;
        let not_a_list = || EncodeError::NotAList {
            api_version: api_version.to_owned(),
            kind: list_kind.to_owned(),
        };
        let list = schema().message(name).ok_or_else(not_a_list)?;
        let (Some(meta), Some(items)) = (list.get(LIST_META), list.get(LIST_ITEMS)) else {
            return Err(not_a_list());
        };
        if meta.json_name != "metadata"
            || items.json_name != "items"
            || items.label != Label::Repeated
        {
            return Err(not_a_list());
        }
        let mut raw = Vec::new();
        if !list_meta.is_null() {
            value(LIST_META, &meta.ty, list_meta, &mut raw, 0)
                .map_err(|error| error.within(Step::Field("metadata")))?;
        }
        Ok(ListEncoder {
            head: envelope_head(api_version, list_kind),
            item: &items.ty,
            raw,
            items: 0,
        })
    }

    /// Appends one item, given as its JSON object (apiVersion and kind are ignored, as they are
    /// not part of the message). A refused item leaves the list as it was.
    pub fn push(&mut self, item: &Value) -> Result<(), EncodeError> {
        let mark = self.raw.len();
        let pushed = value(LIST_ITEMS, self.item, item, &mut self.raw, 0).map_err(|error| {
            error
                .within(Step::Index(self.items))
                .within(Step::Field("items"))
        });
        match pushed {
            Ok(()) => self.items += 1,
            Err(_) => self.raw.truncate(mark),
        }
        pushed
    }

    /// The complete body.
    pub fn finish(self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.head.len() + 11 + self.raw.len() + 4);
        body.extend_from_slice(&self.head);
        bytes_field(&mut body, RAW, &self.raw);
        envelope_tail(&mut body);
        body
    }
}

/// One frame of a protobuf watch stream (`application/vnd.kubernetes.protobuf;stream=watch`):
/// a four-byte big-endian length, then meta.v1.WatchEvent {type, object = RawExtension {raw}}.
/// Upstream encodes the event with its "raw" serializer (no magic, no envelope) and the object
/// with the ordinary one, so `object_body` is a complete body from [`encode_object`].
pub fn watch_frame(event_type: &str, object_body: &[u8]) -> Vec<u8> {
    let raw_extension = 1 + varint_len(object_body.len()) + object_body.len();
    let event = 1
        + varint_len(event_type.len())
        + event_type.len()
        + 1
        + varint_len(raw_extension)
        + raw_extension;
    // Objects are bounded by the request body limit (3 MiB), far from 4 GiB.
    let length = u32::try_from(event).expect("a watch event is smaller than 4 GiB");
    let mut frame = Vec::with_capacity(4 + event);
    frame.extend_from_slice(&length.to_be_bytes());
    bytes_field(&mut frame, WATCH_EVENT_TYPE, event_type.as_bytes());
    key(&mut frame, WATCH_EVENT_OBJECT, LEN);
    varint(&mut frame, raw_extension as u64);
    bytes_field(&mut frame, RAW_EXTENSION_RAW, object_body);
    frame
}

fn response_message(api_version: &str, kind: &str) -> Result<&'static str, EncodeError> {
    schema()
        .response_message(api_version, kind)
        .ok_or_else(|| EncodeError::UnknownKind {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        })
}

/// The magic and runtime.Unknown's typeMeta; both TypeMeta strings are Go values, always
/// written.
fn envelope_head(api_version: &str, kind: &str) -> Vec<u8> {
    let mut head = MAGIC.to_vec();
    key(&mut head, TYPE_META, LEN);
    varint(
        &mut head,
        (2 + varint_len(api_version.len())
            + api_version.len()
            + varint_len(kind.len())
            + kind.len()) as u64,
    );
    bytes_field(&mut head, 1, api_version.as_bytes());
    bytes_field(&mut head, 2, kind.as_bytes());
    head
}

/// runtime.Unknown's contentEncoding and contentType: empty, but Go strings, so written.
fn envelope_tail(body: &mut Vec<u8>) {
    bytes_field(body, CONTENT_ENCODING, b"");
    bytes_field(body, CONTENT_TYPE, b"");
}

/// Where a message's fields come from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// A JSON object, one key per field; an embedded struct's fields are its keys too.
    Object(&'a Map<String, Value>),
    /// The parts a shaped value's JSON stands for, by field JSON name (`"schema"` and
    /// `"allows"` for a JSONSchemaPropsOrBool given as a schema).
    Parts(&'a [(&'a str, &'a Value)]),
}

impl<'a> Source<'a> {
    fn get(self, json_name: &str) -> Option<&'a Value> {
        match self {
            Source::Object(object) => object.get(json_name),
            Source::Parts(parts) => parts
                .iter()
                .find(|(name, _)| *name == json_name)
                .map(|(_, value)| *value),
        }
    }
}

/// Appends the fields of message `name` taken from `source`.
fn message(name: &str, source: Source, out: &mut Vec<u8>, depth: usize) -> Result<(), EncodeError> {
    if depth > MAX_DEPTH {
        return Err(EncodeError::TooDeep(MAX_DEPTH));
    }
    let fields = schema()
        .message(name)
        .ok_or_else(|| EncodeError::UnknownMessage(name.to_owned()))?;
    for (tag, field) in fields.fields() {
        match (field.label, &field.ty) {
            // An embedded Go struct is held by value, so gogo writes it even when empty.
            (Label::Inline, FieldType::Message(inner)) => {
                message_field(out, tag, |out| message(inner, source, out, depth + 1))?
            }
            (Label::Inline, FieldType::Scalar(_)) => {
                unreachable!("schema.rs refuses inline scalars")
            }
            (label, ty) => {
                let Some(json) = source.get(&field.json_name).filter(|json| !json.is_null()) else {
                    continue;
                };
                let written = match label {
                    Label::Repeated => repeated(tag, ty, json, out, depth),
                    Label::Map => map(tag, ty, json, out, depth),
                    _ => value(tag, ty, json, out, depth),
                };
                written.map_err(|error| error.within(Step::Field(&field.json_name)))?;
            }
        }
    }
    Ok(())
}

fn repeated(
    tag: u32,
    ty: &FieldType,
    json: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), EncodeError> {
    let items = json.as_array().ok_or_else(|| wrong_type("array", json))?;
    for (index, item) in items.iter().enumerate() {
        value(tag, ty, item, out, depth).map_err(|error| error.within(Step::Index(index)))?;
    }
    Ok(())
}

/// One entry message per key, sorted as gogo sorts them (so equal maps encode equally), each
/// with its value even when zero.
fn map(
    tag: u32,
    ty: &FieldType,
    json: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), EncodeError> {
    let object = json.as_object().ok_or_else(|| wrong_type("object", json))?;
    let mut entries: Vec<_> = object.iter().collect();
    entries.sort_unstable_by_key(|(key, _)| *key);
    for (entry_key, entry_value) in entries {
        message_field(out, tag, |out| {
            bytes_field(out, 1, entry_key.as_bytes());
            value(2, ty, entry_value, out, depth)
        })
        .map_err(|error| error.within(Step::Key(entry_key)))?;
    }
    Ok(())
}

/// One value of field `tag`, singular, in a list or in a map. Null, which only lists and maps
/// pass, is the type's zero value, as Go's JSON decoding makes it.
fn value(
    tag: u32,
    ty: &FieldType,
    json: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), EncodeError> {
    match ty {
        FieldType::Scalar(scalar) => self::scalar(tag, *scalar, json, out),
        FieldType::Message(name) => {
            message_field(out, tag, |out| message_content(name, json, out, depth + 1))
        }
    }
}

/// The content of message `name` whose JSON is `json`.
fn message_content(
    name: &str,
    json: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), EncodeError> {
    match (schema().shape(name), json) {
        (_, Value::Null) => Ok(()),
        (Some(shape), json) => shaped(name, shape, json, out, depth),
        (None, Value::Object(object)) => message(name, Source::Object(object), out, depth),
        (None, json) => Err(wrong_type("object", json)),
    }
}

fn scalar(tag: u32, scalar: Scalar, json: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match (scalar, json) {
        (Scalar::String, Value::String(s)) => bytes_field(out, tag, s.as_bytes()),
        (Scalar::Bytes, Value::String(s)) => {
            // Go's encoding/json reads []byte as standard, padded base64.
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|error| EncodeError::InvalidBase64 {
                    path: FieldPath::default(),
                    reason: error.to_string(),
                })?;
            bytes_field(out, tag, &bytes)
        }
        (Scalar::Int32, Value::Number(n)) => varint_field(out, tag, int32(n, json)? as u64),
        (Scalar::Int64, Value::Number(n)) => {
            let n = n.as_i64().ok_or_else(|| wrong_type("int64", json))?;
            varint_field(out, tag, n as u64)
        }
        (Scalar::Bool, Value::Bool(b)) => varint_field(out, tag, u64::from(*b)),
        (Scalar::Double, Value::Number(n)) => {
            let n = n.as_f64().ok_or_else(|| wrong_type("number", json))?;
            fixed64_field(out, tag, n.to_bits())
        }
        (Scalar::String | Scalar::Bytes, Value::Null) => bytes_field(out, tag, b""),
        (Scalar::Int32 | Scalar::Int64 | Scalar::Bool, Value::Null) => varint_field(out, tag, 0),
        (Scalar::Double, Value::Null) => fixed64_field(out, tag, 0),
        (scalar, json) => {
            let expected = match scalar {
                Scalar::String => "string",
                Scalar::Bytes => "base64 string",
                Scalar::Int32 => "int32",
                Scalar::Int64 => "int64",
                Scalar::Bool => "bool",
                Scalar::Double => "number",
            };
            return Err(wrong_type(expected, json));
        }
    }
    Ok(())
}

/// An int32 as a varint sign-extends to 64 bits, as Go's `uint64(int32)` does: ten bytes for a
/// negative value.
fn int32(n: &Number, json: &Value) -> Result<i64, EncodeError> {
    n.as_i64()
        .filter(|n| i32::try_from(*n).is_ok())
        .ok_or_else(|| wrong_type("int32", json))
}

/// The content of a message whose JSON is not one key per field, as its Go type marshals it.
fn shaped(
    name: &str,
    shape: Shape,
    json: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), EncodeError> {
    let parts = |parts: &[(&str, &Value)], out: &mut Vec<u8>| {
        message(name, Source::Parts(parts), out, depth)
    };
    match (shape, json) {
        // Upstream's Time keeps whole seconds on the wire; MicroTime microseconds.
        (Shape::Time, Value::String(text)) => {
            let (seconds, nanos) = parse_time(text)?;
            timestamp(out, seconds, nanos, 0);
        }
        (Shape::MicroTime, Value::String(text)) => {
            let (seconds, nanos) = parse_time(text)?;
            timestamp(out, seconds, nanos, nanos / 1_000 * 1_000);
        }
        (Shape::Quantity, Value::String(text)) => bytes_field(out, 1, text.as_bytes()),
        // Go's Quantity reads a JSON number as its text.
        (Shape::Quantity, Value::Number(n)) => bytes_field(out, 1, n.to_string().as_bytes()),
        // IntOrString {type, intVal, strVal}: three Go values, all written.
        (Shape::IntOrString, Value::Number(n)) => {
            varint_field(out, 1, 0);
            varint_field(out, 2, int32(n, json)? as u64);
            bytes_field(out, 3, b"");
        }
        (Shape::IntOrString, Value::String(s)) => {
            varint_field(out, 1, 1);
            varint_field(out, 2, 0);
            bytes_field(out, 3, s.as_bytes());
        }
        (Shape::RawJson, json) => bytes_field(out, 1, json.to_string().as_bytes()),
        (Shape::Items, Value::Array(_)) => parts(&[("items", json)], out)?,
        (Shape::SchemaOrArray, Value::Array(_)) => parts(&[("jSONSchemas", json)], out)?,
        (Shape::SchemaOrArray | Shape::SchemaOrStringArray, Value::Object(_)) => {
            parts(&[("schema", json)], out)?
        }
        (Shape::SchemaOrBool, Value::Bool(_)) => parts(&[("allows", json)], out)?,
        (Shape::SchemaOrBool, Value::Object(_)) => {
            parts(&[("allows", &ALLOWS), ("schema", json)], out)?
        }
        (Shape::SchemaOrStringArray, Value::Array(_)) => parts(&[("property", json)], out)?,
        (shape, json) => {
            let expected = match shape {
                Shape::Time | Shape::MicroTime => "RFC 3339 time string",
                Shape::Quantity | Shape::IntOrString => "number or string",
                Shape::Items => "array",
                Shape::SchemaOrArray | Shape::SchemaOrStringArray => "object or array",
                Shape::SchemaOrBool => "object or bool",
                Shape::RawJson => "JSON",
            };
            return Err(wrong_type(expected, json));
        }
    }
    Ok(())
}

/// metav1.Timestamp {seconds, nanos} (both Go values, so written) of a time whose nanoseconds
/// are `nanos`, with `kept` of them on the wire; Go's zero time is the empty message.
fn timestamp(out: &mut Vec<u8>, seconds: i64, nanos: u32, kept: u32) {
    if seconds == ZERO_TIME_SECONDS && nanos == 0 {
        return;
    }
    varint_field(out, 1, seconds as u64);
    varint_field(out, 2, u64::from(kept));
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, what Go's `time.Parse(time.RFC3339, …)` reads
/// for metav1.Time (and MicroTime, whose layout only fixes six fraction digits): (Unix seconds,
/// nanoseconds).
fn parse_time(text: &str) -> Result<(i64, u32), EncodeError> {
    let invalid = || EncodeError::InvalidTime {
        path: FieldPath::default(),
        value: text.to_owned(),
    };
    let bytes = text.as_bytes();
    let number = |at: usize, width: usize| -> Option<i64> {
        let digits = bytes.get(at..at + width)?;
        digits.iter().try_fold(0i64, |number, &digit| {
            digit
                .is_ascii_digit()
                .then(|| number * 10 + i64::from(digit - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, c)| bytes.get(at) != Some(&c)) {
        return Err(invalid());
    }
    let fields = [(0, 4), (5, 2), (8, 2), (11, 2), (14, 2), (17, 2)].map(|(at, w)| number(at, w));
    let [Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)] = fields
    else {
        return Err(invalid());
    };
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        // Digits past nanoseconds are dropped, as Go drops them.
        let kept = &fraction.as_bytes()[..digits.min(9)];
        nanos = kept
            .iter()
            .fold(0, |nanos, &digit| nanos * 10 + u32::from(digit - b'0'))
            * 10u32.pow(9 - kept.len() as u32);
        rest = &fraction[digits..];
    }
    let offset = match rest.as_bytes() {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let [hours, minutes] = [[h1, h2], [m1, m2]].map(|pair| {
                pair.iter().try_fold(0i64, |n, &&d| {
                    d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
                })
            });
            let (Some(hours @ 0..=23), Some(minutes @ 0..=59)) = (hours, minutes) else {
                return Err(invalid());
            };
            let offset = (hours * 60 + minutes) * 60;
            if *sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return Err(invalid()),
    };
    let civil = |n: i64| i8::try_from(n).map_err(|_| invalid());
    let local = jiff::civil::DateTime::new(
        i16::try_from(year).map_err(|_| invalid())?,
        civil(month)?,
        civil(day)?,
        civil(hour)?,
        civil(minute)?,
        civil(second)?,
        0,
    )
    .map_err(|_| invalid())?;
    let epoch = jiff::civil::DateTime::constant(1970, 1, 1, 0, 0, 0, 0);
    Ok((local.duration_since(epoch).as_secs() - offset, nanos))
}

fn wrong_type(expected: &'static str, found: &Value) -> EncodeError {
    let found = match found {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    };
    EncodeError::WrongType {
        path: FieldPath::default(),
        expected,
        found,
    }
}

fn key(out: &mut Vec<u8>, tag: u32, wire_type: u8) {
    varint(out, u64::from(tag) << 3 | u64::from(wire_type));
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint_len(value: usize) -> usize {
    (usize::BITS - (value | 1).leading_zeros()).div_ceil(7) as usize
}

fn varint_field(out: &mut Vec<u8>, tag: u32, value: u64) {
    key(out, tag, VARINT);
    varint(out, value);
}

fn fixed64_field(out: &mut Vec<u8>, tag: u32, value: u64) {
    key(out, tag, FIXED64);
    out.extend_from_slice(&value.to_le_bytes());
}

fn bytes_field(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    key(out, tag, LEN);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Field `tag` holding the message `write` appends, written in place in one buffer: one byte is
/// reserved for the length, which is all most nested messages need; a longer message moves
/// right by the extra length bytes once, so a large list is not copied once per item.
fn message_field(
    out: &mut Vec<u8>,
    tag: u32,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    key(out, tag, LEN);
    let start = out.len();
    out.push(0);
    write(out)?;
    let length = out.len() - start - 1;
    let width = varint_len(length);
    if width > 1 {
        let end = out.len();
        out.resize(end + width - 1, 0);
        out.copy_within(start + 1..end, start + width);
    }
    let mut rest = length;
    for byte in &mut out[start..start + width] {
        *byte = rest as u8 | 0x80;
        rest >>= 7;
    }
    out[start + width - 1] &= 0x7f;
    Ok(())
}
