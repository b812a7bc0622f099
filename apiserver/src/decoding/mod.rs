//! Objects decoded and encoded as upstream's Go types do, whatever the client's encoding.
//!
//! Upstream decodes a request into Go structs: a field held by value that the request leaves
//! out is its zero value, never an error, and "required" is for validation to say. It encodes
//! from the same structs, so what is stored and returned follows each field's Go type
//! (`omitempty`, pointer or value), not what the client sent: `stdin: false` from a protobuf
//! body is dropped, `resources: {}` and `creationTimestamp: null` are written. The k8s-openapi
//! types are stricter on input (no default for a metav1.Time) and looser on output (they know
//! only "optional"), so requests and objects pass through [`zero`] with the generated
//! description of the Go types in `go_fields.json` (see `hack/gen-go-fields.py`): one source
//! of truth for both directions.
//!
//! Cost: one walk over the request's JSON tree on decode (it also tells whether any key is
//! unknown to the Go types, so the exact unknown-field check, a serialization of the decoded
//! object and a diff, runs only for bodies that have such keys) and one walk over the
//! serialized object on encode.

mod strict;
mod types;
mod zero;

#[cfg(test)]
mod tests;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

pub use strict::{in_document_order, Problem};

/// The text an object was decoded from, for what field validation finds in the text itself
/// (repeated keys) rather than in the decoded object.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Json(&'a [u8]),
    Yaml(&'a [u8]),
    /// Protobuf (which cannot repeat a field), or an object built by a patch.
    Other,
}

impl<'a> Source<'a> {
    /// The request body by its `Content-Type` (JSON when there is none, as upstream assumes).
    pub fn of(headers: &axum::http::HeaderMap, body: &'a [u8]) -> Self {
        let media = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map_or("application/json", |v| {
                v.split(';').next().unwrap_or("").trim()
            });
        match media.to_ascii_lowercase().as_str() {
            "application/json" | "" => Source::Json(body),
            "application/yaml" => Source::Yaml(body),
            _ => Source::Other,
        }
    }

    /// Field validation's findings, worded and ordered as upstream's strict decoder reports
    /// them: for JSON, unknown and duplicate fields in the body's order; for YAML, the YAML
    /// decoder's complaint about repeated keys, then the unknown fields.
    pub fn problems(self, unknown: Vec<String>) -> Vec<String> {
        match self {
            Source::Json(body) => in_document_order(body, &unknown)
                .iter()
                .map(ToString::to_string)
                .collect(),
            Source::Yaml(body) => crate::yaml::duplicate_keys(body)
                .into_iter()
                .chain(
                    unknown
                        .into_iter()
                        .map(|path| Problem::Unknown(path).to_string()),
                )
                .collect(),
            Source::Other => unknown
                .into_iter()
                .map(|path| Problem::Unknown(path).to_string())
                .collect(),
        }
    }
}

/// Why a body did not become the typed object.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body does not fit the type (a string for a number...).
    #[error("{0}")]
    Invalid(#[from] serde_json::Error),
    /// The decoded object could not be encoded back for field validation.
    #[error("cannot encode the decoded object: {0}")]
    Encode(serde_json::Error),
}

/// A request body as the typed object, with the paths of the fields it dropped when `check`
/// (field validation other than Ignore) asks for them. `input` carries its apiVersion and kind.
pub fn decode<T: DeserializeOwned + Serialize>(
    mut input: Value,
    check: bool,
) -> Result<(T, Vec<String>), DecodeError> {
    let maybe_unknown = match input.as_object_mut() {
        Some(object) => canonical(object),
        None => true,
    };
    let original = (check && maybe_unknown).then(|| input.clone());
    let object: T = serde_json::from_value(input)?;
    let unknown = match original {
        Some(original) => {
            let decoded = serde_json::to_value(&object).map_err(DecodeError::Encode)?;
            strict::unknown(&original, &decoded)
        }
        None => Vec::new(),
    };
    Ok((object, unknown))
}

/// A stored (or served) object as the typed object. Stored objects are written as Go writes
/// them, so a metav1.Condition may hold `lastTransitionTime: null`, which k8s-openapi refuses:
/// such objects are read again with the zero values filled in.
pub fn from_stored<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes).or_else(|error| {
        let mut value: Value = serde_json::from_slice(bytes)?;
        match value.as_object_mut() {
            Some(object) => {
                canonical(object);
                serde_json::from_value(value)
            }
            None => Err(error),
        }
    })
}

/// Writes an object (with its apiVersion and kind) as upstream's JSON encoding would.
pub fn go_encode(object: &mut Map<String, Value>) {
    let types = types::go_types();
    if let Some(fields) = kind_of(object).and_then(|(v, k)| types.kind(v, k)) {
        zero::go_encode(types, fields, object);
    }
}

/// Brings a body to Go's decoded form; whether it has keys the Go types do not know (always
/// true for kinds the data does not cover).
fn canonical(object: &mut Map<String, Value>) -> bool {
    let types = types::go_types();
    match kind_of(object).and_then(|(v, k)| types.kind(v, k)) {
        Some(fields) => zero::canonical(types, fields, object),
        None => true,
    }
}

fn kind_of(object: &Map<String, Value>) -> Option<(&str, &str)> {
    Some((
        object.get("apiVersion")?.as_str()?,
        object.get("kind")?.as_str()?,
    ))
}
