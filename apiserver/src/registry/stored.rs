//! The stored form of objects and the system fields of their metadata.
//!
//! Objects are stored as JSON without `resourceVersion` (it is the key's mod revision, known
//! only after the write) and always with `metadata` right after `apiVersion` and `kind`. That
//! fixed layout lets reads splice the resourceVersion into the stored bytes instead of
//! decoding and re-encoding every object: a GET or a 10,000-item list costs a copy, not a parse.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

const METADATA: &[u8] = b"\"metadata\":{";

/// Encodes an object for storage as upstream's JSON encoding writes it: `apiVersion`, `kind`,
/// `metadata` (without resourceVersion and selfLink), then the other fields.
pub fn encode<T: Serialize>(object: &T) -> ApiResult<Bytes> {
    let Value::Object(mut fields) = serde_json::to_value(object).map_err(internal)? else {
        return Err(ApiError::Internal(
            "object did not encode as a JSON object".into(),
        ));
    };
    crate::decoding::go_encode(&mut fields);
    let mut metadata = fields
        .remove("metadata")
        .unwrap_or_else(|| Value::Object(Default::default()));
    if let Some(meta) = metadata.as_object_mut() {
        meta.remove("resourceVersion");
        meta.remove("selfLink");
    }
    let mut out = Vec::with_capacity(512);
    out.push(b'{');
    let mut first = true;
    let mut write = |out: &mut Vec<u8>, key: &str, value: &Value| -> ApiResult<()> {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key).map_err(internal)?;
        out.push(b':');
        serde_json::to_writer(&mut *out, value).map_err(internal)
    };
    for key in ["apiVersion", "kind"] {
        if let Some(value) = fields.remove(key) {
            write(&mut out, key, &value)?;
        }
    }
    write(&mut out, "metadata", &metadata)?;
    for (key, value) in &fields {
        write(&mut out, key, value)?;
    }
    out.push(b'}');
    Ok(out.into())
}

/// The stored bytes with `metadata.resourceVersion` set to `revision`.
pub fn with_resource_version(stored: &[u8], revision: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored.len() + 32);
    write_with_resource_version(&mut out, stored, revision);
    out
}

/// Appends the stored bytes with `metadata.resourceVersion` set to `revision` to `out`.
pub fn write_with_resource_version(out: &mut Vec<u8>, stored: &[u8], revision: i64) {
    let Some(at) = memchr::memmem::find(stored, METADATA).map(|i| i + METADATA.len()) else {
        out.extend_from_slice(stored);
        return;
    };
    out.extend_from_slice(&stored[..at]);
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(revision.to_string().as_bytes());
    out.push(b'"');
    if stored.get(at) != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(&stored[at..]);
}

/// Appends the stored object as a list item: upstream's list items carry no `apiVersion` and
/// `kind` (the list says them once), and do carry their resourceVersion.
pub fn write_list_item(out: &mut Vec<u8>, stored: &[u8], revision: i64) {
    match memchr::memmem::find(stored, METADATA) {
        Some(at) => {
            out.push(b'{');
            write_with_resource_version(out, &stored[at..], revision);
        }
        None => out.extend_from_slice(stored),
    }
}

/// Appends the stored object's metadata as a `PartialObjectMetadata` of `api_version`
/// (`meta.k8s.io/v1`), with its resourceVersion: what metadata-only clients (the garbage
/// collector, kube-rs `metadata_watcher`) ask for. The metadata is cut from the stored bytes,
/// not decoded.
pub fn write_partial_metadata(out: &mut Vec<u8>, stored: &[u8], revision: i64, api_version: &str) {
    out.extend_from_slice(b"{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"");
    out.extend_from_slice(api_version.as_bytes());
    out.extend_from_slice(b"\",");
    match memchr::memmem::find(stored, METADATA)
        .and_then(|at| object_end(stored, at + METADATA.len() - 1).map(|end| (at, end)))
    {
        Some((at, end)) => write_with_resource_version(out, &stored[at..end], revision),
        None => out.extend_from_slice(
            format!("\"metadata\":{{\"resourceVersion\":\"{revision}\"}}").as_bytes(),
        ),
    }
    out.push(b'}');
}

/// The index just past the JSON object starting at `open` (a `{`), skipping strings.
fn object_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, byte) in bytes.iter().enumerate().skip(open) {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Decodes stored bytes into a typed object carrying `revision` as its resourceVersion.
pub fn decode<T: serde::de::DeserializeOwned>(stored: &[u8], revision: i64) -> ApiResult<T> {
    crate::decoding::from_stored(&with_resource_version(stored, revision))
        .map_err(|e| ApiError::Internal(format!("stored object does not decode: {e}")))
}

fn internal(error: serde_json::Error) -> ApiError {
    ApiError::Internal(format!("cannot encode object: {error}"))
}

/// `metadata.creationTimestamp` and friends: the current time at second precision, as
/// upstream's `metav1.Time` serialises.
pub fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let now = jiff::Timestamp::now();
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::from_second(now.as_second()).unwrap_or(now),
    )
}

/// A new object UID.
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The random suffix `generateName` gets: 5 characters from upstream's alphabet, which
/// leaves out vowels and look-alikes so generated names never spell words.
pub fn name_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[test]
    fn partial_metadata_is_cut_from_the_stored_bytes() {
        let stored = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":{"a":"}\"{"}},"spec":{"x":1}}"#;
        let mut out = Vec::new();
        write_partial_metadata(&mut out, stored, 7, "meta.k8s.io/v1");
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": "7", "name": "p", "annotations": {"a": "}\"{"}}})
        );
    }

    #[test]
    fn metadata_follows_kind_and_resource_version_is_spliced() {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("x".into());
        cm.metadata.resource_version = Some("99".into());
        cm.data = Some([("metadata".to_string(), "\"metadata\":{".to_string())].into());
        let stored = encode(&cm).unwrap();
        let text = std::str::from_utf8(&stored).unwrap();
        assert!(
            text.starts_with(
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"creationTimestamp":null,"name":"x"}"#
            ),
            "{text}"
        );
        assert!(!text.contains("99"), "resourceVersion is not stored");

        let read: ConfigMap = decode(&stored, 42).unwrap();
        assert_eq!(read.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(read.data, cm.data);
    }

    #[test]
    fn list_items_drop_type_fields() {
        let mut out = Vec::new();
        write_list_item(
            &mut out,
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{}}"#,
            3,
        );
        assert_eq!(
            out,
            br#"{"metadata":{"resourceVersion":"3","name":"p"},"spec":{}}"#
        );
    }

    #[test]
    fn empty_metadata_gets_a_valid_splice() {
        let out = with_resource_version(br#"{"kind":"X","metadata":{}}"#, 7);
        assert_eq!(out, br#"{"kind":"X","metadata":{"resourceVersion":"7"}}"#);
    }
}
