//! Upstream's bounds on what one request may make the server hold: the body, what a JSON
//! patch may copy, and the object any write builds. They keep an amplifying request (a patch
//! that copies a field into itself, a body that grows when decoded) from taking the
//! machine's memory, whoever sends it.

use crate::error::{ApiError, ApiResult};

/// Upstream's `MaxRequestBodyBytes`: twice etcd's recommended request size, since a JSON
/// body shrinks when stored.
pub const MAX_REQUEST_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Upstream refuses JSON patches of more operations than this (413).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Upstream's `JSONPatchMaxCopyBytes`: what the `copy` operations of one JSON patch may add
/// to the document, in encoded bytes.
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

/// The 413 for a body over [`MAX_REQUEST_BODY_BYTES`], in upstream's words.
pub fn body_too_large() -> ApiError {
    ApiError::RequestEntityTooLarge(format!("limit is {MAX_REQUEST_BODY_BYTES}"))
}

/// Refuses an encoded object larger than a request body may be: whatever a patch or an apply
/// built must fit the same bound as an object sent whole.
pub fn check_object_size(encoded: &[u8]) -> ApiResult<()> {
    if encoded.len() > MAX_REQUEST_BODY_BYTES {
        return Err(body_too_large());
    }
    Ok(())
}

/// The encoded size of `value`, counted until it exceeds `limit` (then any number above
/// it): cheap enough to run before every copy of a JSON patch.
pub fn encoded_size_within(value: &serde_json::Value, limit: usize) -> usize {
    fn walk(value: &serde_json::Value, total: &mut usize, limit: usize) {
        use serde_json::Value;
        if *total > limit {
            return;
        }
        match value {
            Value::Null => *total += 4,
            Value::Bool(b) => *total += if *b { 4 } else { 5 },
            Value::Number(n) => *total += n.to_string().len(),
            Value::String(s) => *total += s.len() + 2,
            Value::Array(items) => {
                *total += 2 + items.len().saturating_sub(1);
                for item in items {
                    walk(item, total, limit);
                }
            }
            Value::Object(fields) => {
                *total += 2 + fields.len().saturating_sub(1);
                for (key, item) in fields {
                    *total += key.len() + 3;
                    walk(item, total, limit);
                }
            }
        }
    }
    let mut total = 0;
    walk(value, &mut total, limit);
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_match_compact_json_until_the_limit() {
        let value = json!({"a": [1, "xy", null, true, {"b": false}], "c": "d"});
        let exact = serde_json::to_vec(&value).unwrap().len();
        assert_eq!(encoded_size_within(&value, usize::MAX), exact);
        assert!(encoded_size_within(&value, 3) > 3);
    }

    #[test]
    fn oversized_objects_are_refused_with_upstreams_message() {
        let error = check_object_size(&vec![b' '; MAX_REQUEST_BODY_BYTES + 1]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Request entity too large: limit is 3145728"
        );
        assert!(check_object_size(b"{}").is_ok());
    }
}
