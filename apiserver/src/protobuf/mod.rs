//! Kubernetes protobuf (`application/vnd.kubernetes.protobuf`) request bodies → JSON, and JSON
//! → protobuf responses ([`encode_object`], [`ListEncoder`], [`watch_frame`]).
//!
//! kubectl and every client-go typed client send built-in objects as protobuf (`kubectl create
//! deployment`, `drain`'s Eviction, `auth can-i`'s SelfSubjectAccessReview, controllers' writes)
//! and do not fall back to JSON on 415, so the apiserver, which stores JSON, transcodes them.
//!
//! The body is the magic `k8s\0` followed by a `runtime.Unknown` {typeMeta = 1 {apiVersion = 1,
//! kind = 2}, raw = 2, contentEncoding = 3, contentType = 4}; `raw` is the object's own message.
//! The transcoding is generic, driven by `schema.json` (field tags, wire types and upstream JSON
//! names of every message reachable from a served kind), which `hack/gen-protobuf-schema.py`
//! generates from the k8s-pb and k8s-openapi crates in the cargo registry; regenerate it with
//! `python3 hack/gen-protobuf-schema.py` when either crate is upgraded. The JSON is what
//! upstream's JSON encoding of the same Go object would be: empty strings, zero Times and empty
//! raw JSON are omitted, Times are RFC 3339, Quantities strings, IntOrStrings numbers or strings,
//! bytes base64, embedded structs flattened. Zero numbers and false are kept: pointer fields
//! (`replicas: 0`) need them; `crate::decoding` drops those of non-pointer `omitempty` fields,
//! as upstream's JSON encoding does.
//!
//! Responses go the other way (`encode.rs`): client-go typed clients and metadata informers
//! accept protobuf first, and get the same envelope around the object's message, lists built
//! item by item, and watch events as length-prefixed `WatchEvent`s around enveloped objects.

mod encode;
mod layout;
mod schema;
mod shapes;
mod transcode;
mod wire;

#[cfg(test)]
mod encode_tests;
#[cfg(test)]
mod tests;

use serde_json::Value;

pub use encode::{encode_object, watch_frame, EncodeError, FieldPath, ListEncoder};

use wire::{Fields, WireValue};

/// The prefix of every Kubernetes protobuf body; the fourth byte is the (only) encoding style.
const MAGIC: &[u8; 4] = b"k8s\0";

/// Why a protobuf body was refused; the message (upstream's own where it has one) is meant for
/// a 400 BadRequest.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty data")]
    Empty,
    #[error(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    )]
    NotProtobuf,
    #[error("empty body")]
    EmptyBody,
    #[error("Object 'Kind' is missing in '{0}'")]
    MissingKind(String),
    #[error("Object 'apiVersion' is missing in '{0}'")]
    MissingVersion(String),
    #[error("no kind {kind:?} is registered for version {api_version:?} in scheme \"k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30\"")]
    NotRegistered { api_version: String, kind: String },
    /// The bytes are not valid protobuf (gogo-protobuf's message).
    #[error("{0}")]
    Malformed(String),
    /// Valid protobuf holding a value JSON cannot carry (year 10000, invalid embedded JSON).
    #[error("{0}")]
    Invalid(String),
    #[error("protobuf message nested more than {0} levels deep")]
    TooDeep(usize),
}

/// Decodes a Kubernetes protobuf body (the `k8s\0` magic + runtime.Unknown envelope) into
/// (apiVersion, kind, JSON object with apiVersion and kind set), exactly the JSON upstream
/// would accept for the same object.
pub fn decode(body: &[u8]) -> Result<(String, String, Value), DecodeError> {
    let envelope = Envelope::parse(body)?;
    let (api_version, kind) = envelope.group_version_kind()?;
    let message = schema::schema()
        .kind_message(&api_version, &kind)
        .ok_or_else(|| DecodeError::NotRegistered {
            api_version: api_version.clone(),
            kind: kind.clone(),
        })?;
    let mut object = transcode::object(message, envelope.raw, 0)?;
    object.insert("apiVersion".into(), Value::String(api_version.clone()));
    object.insert("kind".into(), Value::String(kind.clone()));
    Ok((api_version, kind, Value::Object(object)))
}

/// runtime.Unknown; contentEncoding and contentType are ignored, as upstream does.
#[derive(Debug, Default)]
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
}

impl<'a> Envelope<'a> {
    fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let unknown = match body.strip_prefix(MAGIC) {
            _ if body.is_empty() => return Err(DecodeError::Empty),
            None => return Err(DecodeError::NotProtobuf),
            Some([]) => return Err(DecodeError::EmptyBody),
            Some(unknown) => unknown,
        };
        let mut envelope = Envelope::default();
        for field in Fields::new(unknown) {
            match field? {
                (1, WireValue::Bytes(type_meta)) => envelope.merge_type_meta(type_meta)?,
                (2, WireValue::Bytes(raw)) => envelope.raw = raw,
                (3 | 4, WireValue::Bytes(_)) => {}
                (number @ 1..=4, other) => return Err(wrong_wire_type("Unknown", number, &other)),
                _ => {}
            }
        }
        Ok(envelope)
    }

    fn merge_type_meta(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        for field in Fields::new(data) {
            match field? {
                (1, WireValue::Bytes(s)) => {
                    self.api_version = String::from_utf8_lossy(s).into_owned()
                }
                (2, WireValue::Bytes(s)) => self.kind = String::from_utf8_lossy(s).into_owned(),
                (number @ (1 | 2), other) => {
                    return Err(wrong_wire_type("TypeMeta", number, &other))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The canonical apiVersion (`group/version`, or `version` for the core group) and kind,
    /// with upstream's checks: a kind, and an apiVersion that parses to a non-empty version.
    fn group_version_kind(&self) -> Result<(String, String), DecodeError> {
        let type_meta = || {
            format!(
                "runtime.TypeMeta{{APIVersion:{:?}, Kind:{:?}}}",
                self.api_version, self.kind
            )
        };
        if self.kind.is_empty() {
            return Err(DecodeError::MissingKind(type_meta()));
        }
        let (group, version) = match self.api_version.split_once('/') {
            _ if self.api_version == "/" => ("", ""),
            None => ("", self.api_version.as_str()),
            Some((_, version)) if version.contains('/') => ("", ""),
            Some(split) => split,
        };
        match (group, version) {
            (_, "") => Err(DecodeError::MissingVersion(type_meta())),
            ("", version) => Ok((version.to_owned(), self.kind.clone())),
            (group, version) => Ok((format!("{group}/{version}"), self.kind.clone())),
        }
    }
}

fn wrong_wire_type(message: &str, number: u64, value: &WireValue) -> DecodeError {
    DecodeError::Malformed(format!(
        "proto: {message}: wrong wireType = {} for field {number}",
        value.wire_type()
    ))
}
