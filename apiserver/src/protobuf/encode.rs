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
//!
//! The JSON is read as bytes, never built into a `serde_json::Value`: a serde visitor driven by
//! the schema writes each value as it is read. Keys arrive in the JSON's order (ours is
//! alphabetical), so each message records where each of its fields landed and, when the JSON's
//! order is not the tags', moves them into tag order once the message ends; map entries and
//! the keys of embedded raw JSON are sorted the same way. A key given twice keeps its last
//! value, as reading the JSON into a map would. The output is the same, byte for byte, as
//! encoding the parsed value would be.

use std::ops::Range;

use base64::Engine;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::Number;

use super::layout::{layouts, Field, Layout, Slot, Type};
use super::schema::{Label, Scalar, Shape};
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

/// The field of every raw-JSON message (RawExtension, FieldsV1, apiextensions JSON).
const RAW_JSON: u32 = 1;

/// A map entry's fields.
const ENTRY_KEY: u32 = 1;
const ENTRY_VALUE: u32 = 2;

/// 0001-01-01T00:00:00Z, Go's zero time, which metav1.Time and MicroTime write as an empty
/// message.
const ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// Why a JSON object cannot be encoded; a bug in what the apiserver stored or built, since
/// every object it holds passed its JSON decoding.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    #[error("no protobuf message for kind {kind:?} in {api_version:?}")]
    UnknownKind { api_version: String, kind: String },
    #[error("kind {kind:?} in {api_version:?} is not a list")]
    NotAList { api_version: String, kind: String },
    /// The bytes are not JSON (serde_json's message).
    #[error("invalid JSON: {0}")]
    Json(String),
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
/// Status (apiVersion `v1`) or PartialObjectMetadata(List) (`meta.k8s.io/v1`); `json` is the
/// object as JSON (its apiVersion and kind are ignored, as they are not part of the message).
pub fn encode_object(api_version: &str, kind: &str, json: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let layout = response_layout(api_version, kind)?;
    let mut writer = Writer {
        out: envelope_head(api_version, kind),
        ..Writer::default()
    };
    writer.length_delimited(RAW, |writer| writer.read(json, At::Content(layout)))?;
    envelope_tail(&mut writer.out);
    Ok(writer.out)
}

/// A `<Kind>List` body built item by item, so a large list is encoded while it is read: the
/// ListMeta first, then each item's message as the list's field 2, the envelope at the end.
/// Upstream's streaming list encoder writes the same bytes.
#[derive(Debug)]
pub struct ListEncoder {
    /// The body so far, from the magic to the list's message, and the bookkeeping reused from
    /// item to item.
    writer: Writer,
    /// Where the list's message starts in the body.
    raw: usize,
    /// The type of the list's items field.
    item: Type,
    items: usize,
}

impl ListEncoder {
    /// Starts a list of kind `list_kind` (`PodList`, `PartialObjectMetadataList`) with its
    /// ListMeta, as JSON.
    pub fn new(api_version: &str, list_kind: &str, list_meta: &[u8]) -> Result<Self, EncodeError> {
        let list = response_layout(api_version, list_kind)?;
        let not_a_list = || EncodeError::NotAList {
            api_version: api_version.to_owned(),
            kind: list_kind.to_owned(),
        };
        let (Some((_, meta)), Some((_, items))) = (list.field(b"metadata"), list.field(b"items"))
        else {
            return Err(not_a_list());
        };
        if (meta.tag, items.tag, items.label) != (LIST_META, LIST_ITEMS, Label::Repeated) {
            return Err(not_a_list());
        }
        let mut writer = Writer {
            out: envelope_head(api_version, list_kind),
            ..Writer::default()
        };
        let raw = open(&mut writer.out, RAW);
        let meta = At::Value {
            tag: LIST_META,
            ty: meta.ty,
            element: false,
        };
        writer
            .read(list_meta, meta)
            .map_err(|error| error.within(Step::Field("metadata")))?;
        Ok(ListEncoder {
            writer,
            raw,
            item: items.ty,
            items: 0,
        })
    }

    /// Appends one item, given as its JSON object (apiVersion and kind are ignored, as they are
    /// not part of the message). A refused item leaves the list as it was.
    pub fn push(&mut self, item: &[u8]) -> Result<(), EncodeError> {
        let at = At::Value {
            tag: LIST_ITEMS,
            ty: self.item,
            element: true,
        };
        let pushed = self.writer.read(item, at).map_err(|error| {
            error
                .within(Step::Index(self.items))
                .within(Step::Field("items"))
        });
        if pushed.is_ok() {
            self.items += 1;
        }
        pushed
    }

    /// The complete body.
    pub fn finish(self) -> Vec<u8> {
        let mut body = self.writer.out;
        close(&mut body, self.raw);
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

fn response_layout(api_version: &str, kind: &str) -> Result<&'static Layout, EncodeError> {
    super::schema::schema()
        .response_message(api_version, kind)
        .and_then(|name| layouts().named(name))
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

/// What the JSON value being read becomes.
#[derive(Clone, Copy)]
enum At {
    /// The fields of a message, inside a length its caller writes.
    Content(&'static Layout),
    /// One value of field `tag`: the field itself, which a null omits, or an element of a list
    /// or map, where null is the zero value (as Go's JSON decoding makes it).
    Value { tag: u32, ty: Type, element: bool },
    /// Field `tag` once per element of a JSON array.
    Repeated { tag: u32, ty: Type },
    /// Field `tag` once per member of a JSON object, as an entry {key = 1, value = 2}.
    Map { tag: u32, ty: Type },
    /// Any JSON, written back as serde_json writes it parsed: compact, object keys sorted
    /// (the bytes of a RawExtension or FieldsV1).
    Raw,
}

/// A JSON scalar.
enum Token<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(&'a str),
}

impl Token<'_> {
    /// How a refused value is named in errors.
    fn found(&self) -> String {
        match self {
            Token::Null => "null".to_owned(),
            Token::Bool(b) => b.to_string(),
            Token::Number(n) => n.to_string(),
            Token::String(_) => "a string".to_owned(),
        }
    }
}

/// The protobuf being written, and where the fields and entries of the messages and objects
/// still open were written, to put them in order when they end.
#[derive(Debug, Default)]
struct Writer {
    out: Vec<u8>,
    /// The fields written so far of each message being read, innermost last.
    fields: Vec<Written>,
    /// The entries written so far of each map or raw JSON object being read, innermost last.
    entries: Vec<Entry>,
    /// The keys of `entries`, unescaped: they sort as the strings they are.
    keys: Vec<u8>,
    /// Where a message's fields are moved to while they are written back in order.
    scratch: Vec<u8>,
    /// Why the JSON was refused: serde's errors carry only a message.
    error: Option<EncodeError>,
}

/// One field of a message, where it was written.
#[derive(Debug)]
struct Written {
    slot: usize,
    bytes: Range<usize>,
}

/// One entry of a map or member of a raw JSON object: its key in `Writer::keys`, and where it
/// was written.
#[derive(Debug)]
struct Entry {
    key: Range<usize>,
    bytes: Range<usize>,
}

impl Writer {
    /// Appends `json` read `at` to the output; refused JSON leaves the output as it was.
    fn read(&mut self, json: &[u8], at: At) -> Result<(), EncodeError> {
        let mark = self.out.len();
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        let read = Json {
            writer: self,
            at,
            depth: 0,
        }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
        read.map_err(|error| {
            self.out.truncate(mark);
            self.fields.clear();
            self.entries.clear();
            self.keys.clear();
            self.error
                .take()
                .unwrap_or_else(|| EncodeError::Json(error.to_string()))
        })
    }

    /// Keeps `error` for [`Writer::read`] and stops serde with a stand-in.
    fn refuse<E: de::Error>(&mut self, error: EncodeError) -> E {
        self.error = Some(error);
        E::custom("refused")
    }

    /// Adds `step` to the path of the kept error, as serde's stand-in unwinds through it.
    fn within<E>(&mut self, error: E, step: Step) -> E {
        self.error = self.error.take().map(|kept| kept.within(step));
        error
    }

    /// Field `tag` holding what `write` appends.
    fn length_delimited<E>(
        &mut self,
        tag: u32,
        write: impl FnOnce(&mut Self) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = open(&mut self.out, tag);
        write(self)?;
        close(&mut self.out, start);
        Ok(())
    }

    /// A JSON scalar read `at`: null, bool, number or string.
    fn token(&mut self, at: At, token: Token) -> Result<(), EncodeError> {
        match (at, token) {
            (At::Content(layout), token) => self.shaped(layout, token),
            (
                At::Value { element: false, .. } | At::Repeated { .. } | At::Map { .. },
                Token::Null,
            ) => Ok(()),
            (
                At::Value {
                    tag,
                    ty: Type::Scalar(scalar),
                    ..
                },
                token,
            ) => write_scalar(&mut self.out, tag, scalar, token),
            (
                At::Value {
                    tag,
                    ty: Type::Message(index),
                    ..
                },
                token,
            ) => self.length_delimited(tag, |writer| writer.shaped(layouts().get(index), token)),
            (At::Repeated { .. }, token) => Err(wrong_type("array", token.found())),
            (At::Map { .. }, token) => Err(wrong_type("object", token.found())),
            (At::Raw, token) => {
                match token {
                    Token::Null => self.out.extend_from_slice(b"null"),
                    Token::Bool(b) => write_json(&mut self.out, &b)?,
                    Token::Number(n) => write_json(&mut self.out, &n)?,
                    Token::String(s) => write_json(&mut self.out, s)?,
                }
                Ok(())
            }
        }
    }

    /// The content of a message whose JSON is a scalar, as its Go type marshals it.
    fn shaped(&mut self, layout: &Layout, token: Token) -> Result<(), EncodeError> {
        let out = &mut self.out;
        match (layout.shape, token) {
            (_, Token::Null) => {}
            // Upstream's Time keeps whole seconds on the wire; MicroTime microseconds.
            (Some(Shape::Time), Token::String(text)) => {
                let (seconds, nanos) = parse_time(text)?;
                timestamp(out, seconds, nanos, 0);
            }
            (Some(Shape::MicroTime), Token::String(text)) => {
                let (seconds, nanos) = parse_time(text)?;
                timestamp(out, seconds, nanos, nanos / 1_000 * 1_000);
            }
            (Some(Shape::Quantity), Token::String(text)) => bytes_field(out, 1, text.as_bytes()),
            // Go's Quantity reads a JSON number as its text.
            (Some(Shape::Quantity), Token::Number(n)) => {
                bytes_field(out, 1, n.to_string().as_bytes())
            }
            // IntOrString {type, intVal, strVal}: three Go values, all written.
            (Some(Shape::IntOrString), Token::Number(n)) => {
                let n = int32(&n)?;
                varint_field(out, 1, 0);
                varint_field(out, 2, n as u64);
                bytes_field(out, 3, b"");
            }
            (Some(Shape::IntOrString), Token::String(s)) => {
                varint_field(out, 1, 1);
                varint_field(out, 2, 0);
                bytes_field(out, 3, s.as_bytes());
            }
            (Some(Shape::RawJson), token) => {
                self.length_delimited(RAW_JSON, |writer| writer.token(At::Raw, token))?
            }
            (Some(Shape::SchemaOrBool), Token::Bool(allows)) => {
                varint_field(out, layout.part("allows").tag, u64::from(allows))
            }
            (shape, token) => return Err(wrong_type(expected(shape), token.found())),
        }
        Ok(())
    }

    /// The content of a message whose JSON is an array.
    fn shaped_array<'de, A: SeqAccess<'de>>(
        &mut self,
        layout: &Layout,
        seq: A,
        depth: usize,
    ) -> Result<(), A::Error> {
        let part = match layout.shape {
            Some(Shape::RawJson) => {
                return self.length_delimited(RAW_JSON, |writer| writer.raw_array(seq))
            }
            Some(Shape::Items) => "items",
            Some(Shape::SchemaOrArray) => "jSONSchemas",
            Some(Shape::SchemaOrStringArray) => "property",
            shape => return Err(self.refuse(wrong_type(expected(shape), "an array".into()))),
        };
        if depth > MAX_DEPTH {
            return Err(self.refuse(EncodeError::TooDeep(MAX_DEPTH)));
        }
        let field = layout.part(part);
        self.elements(field.tag, field.ty, seq, depth)
            .map_err(|error| self.within(error, Step::Field(part)))
    }

    /// The content of a message whose JSON is an object.
    fn shaped_object<'de, A: MapAccess<'de>>(
        &mut self,
        layout: &'static Layout,
        map: A,
        depth: usize,
    ) -> Result<(), A::Error> {
        match layout.shape {
            None => return self.fields(layout, map, depth),
            Some(Shape::RawJson) => {
                return self.length_delimited(RAW_JSON, |writer| writer.raw_object(map))
            }
            Some(Shape::SchemaOrBool) => {
                varint_field(&mut self.out, layout.part("allows").tag, 1);
            }
            Some(Shape::SchemaOrArray | Shape::SchemaOrStringArray) => {}
            shape => return Err(self.refuse(wrong_type(expected(shape), "an object".into()))),
        }
        if depth > MAX_DEPTH {
            return Err(self.refuse(EncodeError::TooDeep(MAX_DEPTH)));
        }
        let schema = layout.part("schema");
        let at = At::Value {
            tag: schema.tag,
            ty: schema.ty,
            element: false,
        };
        Json {
            writer: self,
            at,
            depth,
        }
        .visit_map(map)
        .map_err(|error| self.within(error, Step::Field("schema")))
    }

    /// The fields of a plain message, put in tag order when the JSON's order is not.
    fn fields<'de, A: MapAccess<'de>>(
        &mut self,
        layout: &'static Layout,
        mut map: A,
        depth: usize,
    ) -> Result<(), A::Error> {
        if depth > MAX_DEPTH {
            return Err(self.refuse(EncodeError::TooDeep(MAX_DEPTH)));
        }
        let (start, base) = (self.out.len(), self.fields.len());
        while let Some(field) = map.next_key_seed(FieldName(layout))? {
            let Some((slot, field)) = field else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let at = match field.label {
                Label::Repeated => At::Repeated {
                    tag: field.tag,
                    ty: field.ty,
                },
                Label::Map => At::Map {
                    tag: field.tag,
                    ty: field.ty,
                },
                Label::Singular | Label::Inline => At::Value {
                    tag: field.tag,
                    ty: field.ty,
                    element: false,
                },
            };
            let from = self.out.len();
            let value = Json {
                writer: self,
                at,
                depth,
            };
            if let Err(error) = map.next_value_seed(value) {
                return Err(self.within(error, Step::Field(field.json_name)));
            }
            // A null leaves an empty span, so that it replaces an earlier value of its key.
            self.fields.push(Written {
                slot,
                bytes: from..self.out.len(),
            });
        }
        self.order_fields(layout, start, base);
        Ok(())
    }

    /// Puts the fields written since `fields[base]` (from `out[start]`) in the message's
    /// order, and writes its embedded structs around theirs.
    fn order_fields(&mut self, layout: &Layout, start: usize, base: usize) {
        let written = &mut self.fields[base..];
        let ordered = written.windows(2).all(|pair| pair[0].slot < pair[1].slot);
        if ordered && !layout.embeds {
            self.fields.truncate(base);
            return;
        }
        // Stable: of a key given twice, the later stays last, and is the one kept.
        written.sort_by_key(|field| field.slot);
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.out[start..]);
        self.out.truncate(start);
        let mut written = &self.fields[base..];
        let moved = Moved {
            from: &self.scratch,
            offset: start,
        };
        moved.fields(layout, 0..layout.slots.len(), &mut written, &mut self.out);
        self.fields.truncate(base);
    }

    /// Field `tag` once per element, in the JSON's order (repeated scalars are unpacked).
    fn elements<'de, A: SeqAccess<'de>>(
        &mut self,
        tag: u32,
        ty: Type,
        mut seq: A,
        depth: usize,
    ) -> Result<(), A::Error> {
        let at = At::Value {
            tag,
            ty,
            element: true,
        };
        for index in 0.. {
            let element = Json {
                writer: self,
                at,
                depth,
            };
            match seq.next_element_seed(element) {
                Ok(Some(())) => {}
                Ok(None) => break,
                Err(error) => return Err(self.within(error, Step::Index(index))),
            }
        }
        Ok(())
    }

    /// One entry message per key, sorted as gogo sorts them (so equal maps encode equally),
    /// each with its value even when zero.
    fn entries<'de, A: MapAccess<'de>>(
        &mut self,
        tag: u32,
        ty: Type,
        mut map: A,
        depth: usize,
    ) -> Result<(), A::Error> {
        let (start, base, keys) = (self.out.len(), self.entries.len(), self.keys.len());
        let at = At::Value {
            tag: ENTRY_VALUE,
            ty,
            element: true,
        };
        while let Some(key) = map.next_key_seed(Key {
            keys: &mut self.keys,
            json: None,
        })? {
            let from = self.out.len();
            let entry = open(&mut self.out, tag);
            bytes_field(&mut self.out, ENTRY_KEY, &self.keys[key.clone()]);
            let value = Json {
                writer: self,
                at,
                depth,
            };
            if let Err(error) = map.next_value_seed(value) {
                let key = String::from_utf8_lossy(&self.keys[key]).into_owned();
                return Err(self.within(error, Step::Key(&key)));
            }
            close(&mut self.out, entry);
            self.entries.push(Entry {
                key,
                bytes: from..self.out.len(),
            });
        }
        self.order_entries(start, base, keys, None);
        Ok(())
    }

    /// A JSON array inside raw JSON, written compactly.
    fn raw_array<'de, A: SeqAccess<'de>>(&mut self, mut seq: A) -> Result<(), A::Error> {
        self.out.push(b'[');
        for index in 0.. {
            // The comma goes before the next element, if there is one.
            let mark = self.out.len();
            if index > 0 {
                self.out.push(b',');
            }
            let element = Json {
                writer: self,
                at: At::Raw,
                depth: 0,
            };
            if seq.next_element_seed(element)?.is_none() {
                self.out.truncate(mark);
                break;
            }
        }
        self.out.push(b']');
        Ok(())
    }

    /// A JSON object inside raw JSON, written compactly with its keys sorted, as serde_json
    /// writes the map it parses into.
    fn raw_object<'de, A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
        self.out.push(b'{');
        let (start, base, keys) = (self.out.len(), self.entries.len(), self.keys.len());
        loop {
            // The comma goes before the next member, if there is one.
            let mark = self.out.len();
            if self.entries.len() > base {
                self.out.push(b',');
            }
            let from = self.out.len();
            let key = Key {
                keys: &mut self.keys,
                json: Some(&mut self.out),
            };
            let Some(key) = map.next_key_seed(key)? else {
                self.out.truncate(mark);
                break;
            };
            self.out.push(b':');
            map.next_value_seed(Json {
                writer: self,
                at: At::Raw,
                depth: 0,
            })?;
            self.entries.push(Entry {
                key,
                bytes: from..self.out.len(),
            });
        }
        self.order_entries(start, base, keys, Some(b','));
        self.out.push(b'}');
        Ok(())
    }

    /// Sorts the entries written since `entries[base]` (from `out[start]`, their keys from
    /// `keys[keys_base]`) by key, keeping the last of equal keys, `separator` between them.
    fn order_entries(
        &mut self,
        start: usize,
        base: usize,
        keys_base: usize,
        separator: Option<u8>,
    ) {
        let keys = &self.keys;
        let key = |entry: &Entry| &keys[entry.key.clone()];
        let written = &mut self.entries[base..];
        if !written.windows(2).all(|pair| key(&pair[0]) < key(&pair[1])) {
            written.sort_by(|a, b| key(a).cmp(key(b)));
            self.scratch.clear();
            self.scratch.extend_from_slice(&self.out[start..]);
            self.out.truncate(start);
            let mut first = true;
            for (index, entry) in written.iter().enumerate() {
                if written
                    .get(index + 1)
                    .is_some_and(|next| key(next) == key(entry))
                {
                    continue;
                }
                if let (Some(separator), false) = (separator, std::mem::take(&mut first)) {
                    self.out.push(separator);
                }
                let bytes = entry.bytes.start - start..entry.bytes.end - start;
                self.out.extend_from_slice(&self.scratch[bytes]);
            }
        }
        self.entries.truncate(base);
        self.keys.truncate(keys_base);
    }
}

/// A message's fields moved out of the output, to be written back in order.
struct Moved<'a> {
    from: &'a [u8],
    /// Where `from` was in the output, which the fields' spans count from.
    offset: usize,
}

impl Moved<'_> {
    /// Writes back the fields of `slots` from `written` (sorted by slot, consumed as written),
    /// the last of each slot, embedded structs around their fields even when empty.
    fn fields(
        &self,
        layout: &Layout,
        slots: Range<usize>,
        written: &mut &[Written],
        out: &mut Vec<u8>,
    ) {
        let mut slot = slots.start;
        while slot < slots.end {
            if let Slot::Embedded { tag, end } = layout.slots[slot] {
                let start = open(out, tag);
                self.fields(layout, slot + 1..end, written, out);
                close(out, start);
                slot = end;
                continue;
            }
            let count = written
                .iter()
                .take_while(|field| field.slot == slot)
                .count();
            if let Some(last) = written[..count].last() {
                out.extend_from_slice(
                    &self.from[last.bytes.start - self.offset..last.bytes.end - self.offset],
                );
            }
            *written = &written[count..];
            // Without embedded structs, no slot between two fields needs anything.
            slot = match written.first() {
                Some(next) if !layout.embeds => next.slot,
                None if !layout.embeds => slots.end,
                _ => slot + 1,
            };
        }
    }
}

/// A JSON value to read `at`, `depth` messages deep.
struct Json<'w> {
    writer: &'w mut Writer,
    at: At,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Json<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Json<'_> {
    fn token<E: de::Error>(self, token: Token) -> Result<(), E> {
        let written = self.writer.token(self.at, token);
        written.map_err(|error| self.writer.refuse(error))
    }

    /// The error for a container where `at` takes something else.
    fn refused<E: de::Error>(self, found: &str) -> E {
        let expected = match self.at {
            At::Value {
                ty: Type::Scalar(scalar),
                ..
            } => scalar_name(scalar),
            At::Repeated { .. } => "array",
            _ => "object",
        };
        self.writer.refuse(wrong_type(expected, found.to_owned()))
    }
}

impl<'de> Visitor<'de> for Json<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.token(Token::Null)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<(), E> {
        self.token(Token::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<(), E> {
        self.token(Token::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<(), E> {
        self.token(Token::Number(value.into()))
    }

    /// As serde_json's own Value takes a float: JSON has no infinities, so never null.
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<(), E> {
        self.token(Number::from_f64(value).map_or(Token::Null, Token::Number))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        self.token(Token::String(value))
    }

    /// A string lent from the JSON had no escapes there, and needs none: raw JSON copies it.
    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<(), E> {
        if let At::Raw = self.at {
            quote(&mut self.writer.out, value);
            return Ok(());
        }
        self.visit_str(value)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let Json { writer, at, depth } = self;
        match at {
            At::Repeated { tag, ty } => writer.elements(tag, ty, seq, depth),
            At::Content(layout) => writer.shaped_array(layout, seq, depth),
            At::Value {
                tag,
                ty: Type::Message(index),
                ..
            } => writer.length_delimited(tag, |writer| {
                writer.shaped_array(layouts().get(index), seq, depth + 1)
            }),
            At::Raw => writer.raw_array(seq),
            At::Value { .. } | At::Map { .. } => {
                Err(Json { writer, at, depth }.refused("an array"))
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let Json { writer, at, depth } = self;
        match at {
            At::Map { tag, ty } => writer.entries(tag, ty, map, depth),
            At::Content(layout) => writer.shaped_object(layout, map, depth),
            At::Value {
                tag,
                ty: Type::Message(index),
                ..
            } => writer.length_delimited(tag, |writer| {
                writer.shaped_object(layouts().get(index), map, depth + 1)
            }),
            At::Raw => writer.raw_object(map),
            At::Value { .. } | At::Repeated { .. } => {
                Err(Json { writer, at, depth }.refused("an object"))
            }
        }
    }
}

/// A message's key: its field and slot, or None for a key the schema does not know. Read as
/// bytes, which spares checking that it is UTF-8: only the schema's names match.
struct FieldName(&'static Layout);

impl<'de> DeserializeSeed<'de> for FieldName {
    type Value = Option<(usize, &'static Field)>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for FieldName {
    type Value = Option<(usize, &'static Field)>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_bytes<E: de::Error>(self, name: &[u8]) -> Result<Self::Value, E> {
        Ok(self.0.field(name))
    }
}

/// A map's or raw JSON object's key, appended to the keys, where the seed gives its place, and
/// for raw JSON also written to `json` as serde_json writes it.
struct Key<'k> {
    keys: &'k mut Vec<u8>,
    json: Option<&'k mut Vec<u8>>,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Range<usize>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Range<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        self.keep(key, true)
    }

    /// As [`Json::visit_borrowed_str`]: a key lent from the JSON needs no escapes.
    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        self.keep(key, false)
    }
}

impl Key<'_> {
    /// Keeps `key`, writing it to `json` escaped when it came with escapes.
    fn keep<E: de::Error>(self, key: &str, escape: bool) -> Result<Range<usize>, E> {
        match self.json {
            Some(json) if escape => serde_json::to_writer(json, key).map_err(E::custom)?,
            Some(json) => quote(json, key),
            None => {}
        }
        let start = self.keys.len();
        self.keys.extend_from_slice(key.as_bytes());
        Ok(start..self.keys.len())
    }
}

/// `text` as a JSON string, for text without the characters JSON escapes.
fn quote(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// Field `tag` of a scalar type, from its JSON; null (which only lists and maps pass) is the
/// zero value.
fn write_scalar(
    out: &mut Vec<u8>,
    tag: u32,
    scalar: Scalar,
    token: Token,
) -> Result<(), EncodeError> {
    match (scalar, token) {
        (Scalar::String, Token::String(s)) => bytes_field(out, tag, s.as_bytes()),
        (Scalar::Bytes, Token::String(s)) => {
            // Go's encoding/json reads []byte as standard, padded base64.
            let start = open(out, tag);
            base64::engine::general_purpose::STANDARD
                .decode_vec(s, out)
                .map_err(|error| EncodeError::InvalidBase64 {
                    path: FieldPath::default(),
                    reason: error.to_string(),
                })?;
            close(out, start);
        }
        (Scalar::Int32, Token::Number(n)) => varint_field(out, tag, int32(&n)? as u64),
        (Scalar::Int64, Token::Number(n)) => {
            let n = n
                .as_i64()
                .ok_or_else(|| wrong_type("int64", n.to_string()))?;
            varint_field(out, tag, n as u64)
        }
        (Scalar::Bool, Token::Bool(b)) => varint_field(out, tag, u64::from(b)),
        (Scalar::Double, Token::Number(n)) => {
            let n = n
                .as_f64()
                .ok_or_else(|| wrong_type("number", n.to_string()))?;
            fixed64_field(out, tag, n.to_bits())
        }
        (Scalar::String | Scalar::Bytes, Token::Null) => bytes_field(out, tag, b""),
        (Scalar::Int32 | Scalar::Int64 | Scalar::Bool, Token::Null) => varint_field(out, tag, 0),
        (Scalar::Double, Token::Null) => fixed64_field(out, tag, 0),
        (scalar, token) => return Err(wrong_type(scalar_name(scalar), token.found())),
    }
    Ok(())
}

fn scalar_name(scalar: Scalar) -> &'static str {
    match scalar {
        Scalar::String => "string",
        Scalar::Bytes => "base64 string",
        Scalar::Int32 => "int32",
        Scalar::Int64 => "int64",
        Scalar::Bool => "bool",
        Scalar::Double => "number",
    }
}

/// What the JSON of a message with `shape` must be.
fn expected(shape: Option<Shape>) -> &'static str {
    match shape {
        None => "object",
        Some(Shape::Time | Shape::MicroTime) => "RFC 3339 time string",
        Some(Shape::Quantity | Shape::IntOrString) => "number or string",
        Some(Shape::Items) => "array",
        Some(Shape::SchemaOrArray | Shape::SchemaOrStringArray) => "object or array",
        Some(Shape::SchemaOrBool) => "object or bool",
        Some(Shape::RawJson) => "JSON",
    }
}

/// An int32 as a varint sign-extends to 64 bits, as Go's `uint64(int32)` does: ten bytes for a
/// negative value.
fn int32(n: &Number) -> Result<i64, EncodeError> {
    n.as_i64()
        .filter(|n| i32::try_from(*n).is_ok())
        .ok_or_else(|| wrong_type("int32", n.to_string()))
}

/// Appends `value` as serde_json writes it.
fn write_json(out: &mut Vec<u8>, value: &(impl Serialize + ?Sized)) -> Result<(), EncodeError> {
    serde_json::to_writer(out, value).map_err(|error| EncodeError::Json(error.to_string()))
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

fn wrong_type(expected: &'static str, found: String) -> EncodeError {
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

/// Starts a length-delimited field: its key, and one byte for its length, which is all most
/// nested messages need; returns where the content starts.
fn open(out: &mut Vec<u8>, tag: u32) -> usize {
    key(out, tag, LEN);
    out.push(0);
    out.len()
}

/// Ends the field [`open`] started at `start`: writes its length, moving the content right
/// once by the extra length bytes if it needs more than one.
fn close(out: &mut Vec<u8>, start: usize) {
    let length = out.len() - start;
    let width = varint_len(length);
    if width > 1 {
        let end = out.len();
        out.resize(end + width - 1, 0);
        out.copy_within(start..end, start - 1 + width);
    }
    let mut rest = length;
    for byte in &mut out[start - 1..start - 1 + width] {
        *byte = rest as u8 | 0x80;
        rest >>= 7;
    }
    out[start - 2 + width] &= 0x7f;
}
