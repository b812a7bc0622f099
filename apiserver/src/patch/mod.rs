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
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
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
        PatchType::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let mut patched = original.clone();
            json_patch::patch(&mut patched, &patch).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
            Ok(patched)
        }
        PatchType::Merge => {
            let patch: Value = serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let mut patched = original.clone();
            json_patch::merge(&mut patched, &patch);
            Ok(patched)
        }
        PatchType::Strategic => {
            let patch: Value = serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            strategic::apply(original, &patch, node).map_err(ApiError::Unprocessable)
        }
        PatchType::Apply => Err(ApiError::UnsupportedMediaType("server-side apply is handled separately".into())),
    }
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
            property.insert("x-kubernetes-patch-strategy".into(), Value::from(meta.strategy));
        }
        if !meta.merge_key.is_empty() {
            property.insert("x-kubernetes-patch-merge-key".into(), Value::from(meta.merge_key));
        }
        match meta.list_type() {
            table::ListType::Map(keys) => {
                property.insert("x-kubernetes-list-type".into(), Value::from("map"));
                property.insert("x-kubernetes-list-map-keys".into(), Value::from(keys.to_vec()));
            }
            table::ListType::Set => {
                property.insert("x-kubernetes-list-type".into(), Value::from("set"));
            }
            table::ListType::Atomic => {}
        }
    }
    for definition in table::ATOMIC_STRUCTS {
        if let Some(schema) = definitions.get_mut(*definition).and_then(Value::as_object_mut) {
            schema.insert("x-kubernetes-map-type".into(), Value::from("atomic"));
        }
    }
    for (definition, field) in table::ATOMIC_MAPS {
        let property = definitions.get_mut(*definition).and_then(|d| d.get_mut("properties")).and_then(|p| p.get_mut(*field));
        if let Some(property) = property.and_then(Value::as_object_mut) {
            property.insert("x-kubernetes-map-type".into(), Value::from("atomic"));
        }
    }
}
