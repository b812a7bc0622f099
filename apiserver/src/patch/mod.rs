//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge
//! patch, applied to the current object before the normal update path (validation,
//! defaulting, concurrency) takes over. Server-side apply has its own module (`crate::apply`).

pub mod schema;
mod strategic;
pub mod table;

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use self::schema::Node;
use crate::error::{ApiError, ApiResult};
use crate::limits::{encoded_size_within, MAX_JSON_PATCH_COPY_BYTES, MAX_JSON_PATCH_OPERATIONS};

/// The four PATCH content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    /// From the request's Content-Type; 415 for anything else, as upstream answers.
    pub fn from_headers(headers: &HeaderMap) -> ApiResult<Self> {
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
            ))),
        }
    }
}

/// Applies a JSON, merge or strategic merge patch to `original`.
pub fn apply(kind: PatchType, original: &Value, body: &[u8], node: Node) -> ApiResult<Value> {
    match kind {
        PatchType::Json => json(original, body),
        PatchType::Merge => {
            let patch: Value =
                serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let mut patched = original.clone();
            json_patch::merge(&mut patched, &patch);
            Ok(patched)
        }
        PatchType::Strategic => {
            let patch: Value =
                serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            strategic::apply(original, &patch, node).map_err(ApiError::Unprocessable)
        }
        PatchType::Apply => Err(ApiError::UnsupportedMediaType(
            "server-side apply is handled separately".into(),
        )),
    }
}

/// Why a JSON patch could not be applied.
#[derive(Debug, thiserror::Error)]
enum JsonPatchError {
    #[error("Unable to complete the copy, the accumulated size increase of copy is {0}, exceeding the limit {MAX_JSON_PATCH_COPY_BYTES}")]
    CopyLimit(usize),
    #[error(transparent)]
    Operation(#[from] json_patch::PatchError),
}

/// Applies a JSON patch within upstream's bounds: at most [`MAX_JSON_PATCH_OPERATIONS`]
/// operations (413), and `copy` operations adding at most [`MAX_JSON_PATCH_COPY_BYTES`] in
/// all, checked before each copy is made, so a short patch that copies a field into itself
/// again and again cannot grow the document exponentially. A patch that does not apply is
/// upstream's generic 422, which does not say why (the reason is logged at debug level).
fn json(original: &Value, body: &[u8]) -> ApiResult<Value> {
    let patch: json_patch::Patch =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if patch.0.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(ApiError::RequestEntityTooLarge(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            patch.0.len()
        )));
    }
    apply_json(original, &patch).map_err(|error| {
        tracing::debug!(%error, "JSON patch refused");
        ApiError::PatchRejected
    })
}

fn apply_json(original: &Value, patch: &json_patch::Patch) -> Result<Value, JsonPatchError> {
    let mut patched = original.clone();
    let mut copied = 0usize;
    for (index, operation) in patch.0.iter().enumerate() {
        if let json_patch::PatchOperation::Copy(copy) = operation {
            if let Some(source) = patched.pointer(copy.from.as_str()) {
                copied += encoded_size_within(source, MAX_JSON_PATCH_COPY_BYTES);
                if copied > MAX_JSON_PATCH_COPY_BYTES {
                    return Err(JsonPatchError::CopyLimit(copied));
                }
            }
        }
        // The document is a copy, dropped on failure: no need for the crate's undo log.
        json_patch::patch_unsafe(&mut patched, std::slice::from_ref(operation)).map_err(
            |mut error| {
                error.operation = index;
                error
            },
        )?;
    }
    Ok(patched)
}

/// Adds the patch metadata extensions to the OpenAPI definitions, so kubectl computes
/// client-side apply patches with the same list semantics the server applies.
pub fn annotate(definitions: &mut Map<String, Value>) {
    for meta in table::FIELDS {
        let Some(property) = definitions
            .get_mut(meta.definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(meta.field))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        if !meta.strategy.is_empty() {
            property.insert(
                "x-kubernetes-patch-strategy".into(),
                Value::from(meta.strategy),
            );
        }
        if !meta.merge_key.is_empty() {
            property.insert(
                "x-kubernetes-patch-merge-key".into(),
                Value::from(meta.merge_key),
            );
        }
        match meta.list_type() {
            table::ListType::Map(keys) => {
                property.insert("x-kubernetes-list-type".into(), Value::from("map"));
                property.insert(
                    "x-kubernetes-list-map-keys".into(),
                    Value::from(keys.to_vec()),
                );
            }
            table::ListType::Set => {
                property.insert("x-kubernetes-list-type".into(), Value::from("set"));
            }
            table::ListType::Atomic => {}
        }
    }
    for definition in table::ATOMIC_STRUCTS {
        if let Some(schema) = definitions
            .get_mut(*definition)
            .and_then(Value::as_object_mut)
        {
            schema.insert("x-kubernetes-map-type".into(), Value::from("atomic"));
        }
    }
    for (definition, field) in table::ATOMIC_MAPS {
        let property = definitions
            .get_mut(*definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(*field));
        if let Some(property) = property.and_then(Value::as_object_mut) {
            property.insert("x-kubernetes-map-type".into(), Value::from("atomic"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_patch(original: &Value, patch: &Value) -> Result<Value, JsonPatchError> {
        apply_json(original, &serde_json::from_value(patch.clone()).unwrap())
    }

    #[test]
    fn copies_into_themselves_stop_at_the_copy_limit() {
        let original = json!({"data": {"seed": "x".repeat(4096)}});
        let copies: Vec<Value> = (0..40)
            .map(|i| json!({"op": "copy", "from": "/data", "path": format!("/data/c{i}")}))
            .collect();
        let error = json_patch(&original, &Value::from(copies.clone())).unwrap_err();
        assert!(
            matches!(error, JsonPatchError::CopyLimit(copied) if copied > MAX_JSON_PATCH_COPY_BYTES),
            "{error}"
        );
        assert!(error.to_string().ends_with("exceeding the limit 3145728"));
        let refused = json(&original, &serde_json::to_vec(&copies).unwrap()).unwrap_err();
        assert_eq!(refused.code(), 422);
        assert_eq!(
            refused.to_string(),
            "the server rejected our request due to an error in our request"
        );
    }

    #[test]
    fn too_many_operations_are_refused() {
        let operations: Vec<Value> = (0..=MAX_JSON_PATCH_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "/a", "value": 1}))
            .collect();
        let error = json(&json!({"a": 1}), &serde_json::to_vec(&operations).unwrap()).unwrap_err();
        assert_eq!(error.code(), 413);
        assert_eq!(
            error.to_string(),
            "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
        );
    }

    #[test]
    fn failures_name_the_operation_that_failed() {
        let patch = json!([{"op": "add", "path": "/b", "value": 2}, {"op": "test", "path": "/a", "value": 2}]);
        let error = json_patch(&json!({"a": 1}), &patch).unwrap_err();
        assert_eq!(
            error.to_string(),
            "operation '/1' failed at path '/a': value did not match"
        );
        let ok = json_patch(
            &json!({"a": 1}),
            &json!([{"op": "copy", "from": "/a", "path": "/b"}]),
        )
        .unwrap();
        assert_eq!(ok, json!({"a": 1, "b": 1}));
    }
}
