//! OpenAPI v3 (what kubectl 1.33 reads for `explain`, `apply` and to learn that the server
//! validates fields itself) and v2, generated from the k8s-openapi schemas of the served
//! resources, with the Kubernetes extensions clients look for.
//!
//! kubectl decides between server-side and client-side field validation by looking for a
//! PATCH operation tagged with the kind's `x-kubernetes-group-version-kind` that takes a
//! `fieldValidation` query parameter, so every resource's paths carry one.

mod protobuf;

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use schemars::generate::SchemaSettings;
use schemars::transform::RemoveRefSiblings;
use serde_json::{json, Map, Value};

use crate::registry::{Registry, Resource, ResourceInfo};
use crate::routes::GIT_VERSION;

/// A rendered document and the hash clients use as its cache key.
struct Document {
    /// Shared with every response rather than copied into it (the v2 document is megabytes).
    body: bytes::Bytes,
    hash: String,
}

impl Document {
    fn new(value: &Value) -> Self {
        Document::from_body(serde_json::to_vec(value).unwrap_or_default())
    }

    fn from_body(body: Vec<u8>) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA512, &body);
        let hash = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        Document {
            body: body.into(),
            hash,
        }
    }

    fn respond(&self, headers: &HeaderMap, content_type: &'static str) -> Response {
        let etag = format!("\"{}\"", self.hash);
        if headers
            .get("if-none-match")
            .is_some_and(|v| v.as_bytes() == etag.as_bytes())
        {
            return StatusCode::NOT_MODIFIED.into_response();
        }
        let mut response = (StatusCode::OK, self.body.clone()).into_response();
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static(content_type));
        if let Ok(value) = HeaderValue::from_str(&etag) {
            headers.insert("etag", value);
        }
        response
    }
}

/// Every OpenAPI document, rendered once at start-up.
pub struct OpenApi {
    v3_index: Document,
    v3: BTreeMap<String, Document>,
    v2: Document,
    /// The v2 document as protobuf, which kubectl up to 1.27 asks for.
    v2_protobuf: Document,
}

impl OpenApi {
    pub fn new(registry: &Registry) -> Self {
        let mut by_gv: BTreeMap<String, Vec<&dyn Resource>> = BTreeMap::new();
        for resource in registry.all() {
            let info = resource.info();
            let path = if info.group.is_empty() {
                format!("api/{}", info.version)
            } else {
                format!("apis/{}/{}", info.group, info.version)
            };
            by_gv.entry(path).or_default().push(resource.as_ref());
        }
        let v3: BTreeMap<String, Document> = by_gv
            .iter()
            .map(|(path, resources)| (path.clone(), Document::new(&v3_document(resources))))
            .collect();
        let index: Map<String, Value> = v3
            .iter()
            .map(|(path, doc)| {
                (
                    path.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", doc.hash)}),
                )
            })
            .collect();
        let all: Vec<&dyn Resource> = by_gv.values().flatten().copied().collect();
        let v2 = v2_document(&all);
        OpenApi {
            v3_index: Document::new(&json!({"paths": index})),
            v3,
            v2: Document::new(&v2),
            v2_protobuf: Document::from_body(protobuf::encode(&v2)),
        }
    }

    /// `/openapi/v3`, `/openapi/v3/<group-version path>` and `/openapi/v2`.
    pub fn respond(&self, path: &str, headers: &HeaderMap) -> Option<Response> {
        match path.trim_end_matches('/') {
            "/openapi/v3" => Some(self.v3_index.respond(headers, "text/plain; charset=utf-8")),
            "/openapi/v2" => {
                let mut response = match v2_media_type(headers) {
                    Some(protobuf::MEDIA_TYPE) => {
                        self.v2_protobuf.respond(headers, protobuf::MEDIA_TYPE)
                    }
                    Some(json) => self.v2.respond(headers, json),
                    None => StatusCode::NOT_ACCEPTABLE.into_response(),
                };
                response
                    .headers_mut()
                    .insert("vary", HeaderValue::from_static("Accept"));
                Some(response)
            }
            other => {
                let gv = other.strip_prefix("/openapi/v3/")?;
                Some(self.v3.get(gv)?.respond(headers, "application/json"))
            }
        }
    }
}

/// The representation of `/openapi/v2` the Accept header asks for, negotiated like upstream:
/// clauses by descending quality (then specificity), the first matching JSON or protobuf wins;
/// no Accept header means JSON, nothing matching means None (406). Returns the Content-Type.
fn v2_media_type(headers: &HeaderMap) -> Option<&'static str> {
    let accept: Vec<&str> = headers
        .get_all("accept")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let accept = if accept.is_empty() {
        "*/*".to_string()
    } else {
        accept.join(",")
    };
    let mut clauses: Vec<(f32, &str)> = accept
        .split(',')
        .filter_map(|clause| {
            let mut parts = clause.split(';');
            let media_type = parts.next()?.trim();
            let quality = parts
                .filter_map(|param| param.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (!media_type.is_empty() && quality > 0.0).then_some((quality, media_type))
        })
        .collect();
    let wildcards = |media_type: &str| media_type.matches('*').count();
    clauses.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| wildcards(a.1).cmp(&wildcards(b.1)))
    });
    let offered = [
        ("application/json", "application/json"),
        (protobuf::LEGACY_MEDIA_TYPE, protobuf::MEDIA_TYPE),
        (protobuf::MEDIA_TYPE, protobuf::MEDIA_TYPE),
    ];
    clauses.iter().find_map(|(_, media_type)| {
        let (kind, subtype) = media_type.split_once('/')?;
        offered.into_iter().find_map(|(accepted, served)| {
            let (accepted_kind, accepted_subtype) = accepted.split_once('/')?;
            let matches = (kind == "*" || kind == accepted_kind)
                && (subtype == "*" || subtype == accepted_subtype);
            matches.then_some(served)
        })
    })
}

/// Schemas of `resources` (and everything they reference) with the GVK extension on each kind.
fn schemas(
    resources: &[&dyn Resource],
    settings: SchemaSettings,
) -> (Map<String, Value>, Vec<(String, ResourceInfo)>) {
    let mut generator = settings.into_generator();
    let names: Vec<(String, ResourceInfo)> = resources
        .iter()
        .map(|r| (r.schema(&mut generator), r.info().clone()))
        .collect();
    let mut definitions = generator.take_definitions(true);
    crate::patch::annotate(&mut definitions);
    for (name, info) in &names {
        if let Some(schema) = definitions.get_mut(name).and_then(Value::as_object_mut) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": info.group, "kind": info.kind, "version": info.version}]),
            );
            // Upstream does not require metadata; clients omit it on generated objects.
            if let Some(required) = schema.get_mut("required").and_then(Value::as_array_mut) {
                required.retain(|field| field != "metadata");
                if required.is_empty() {
                    schema.remove("required");
                }
            }
        }
    }
    (definitions, names)
}

fn v3_document(resources: &[&dyn Resource]) -> Value {
    let (definitions, names) = schemas(resources, SchemaSettings::openapi3());
    let mut paths = Map::new();
    for (schema, info) in &names {
        let reference = json!({"$ref": format!("#/components/schemas/{schema}")});
        for (path, operations) in resource_paths(info) {
            let mut item = Map::new();
            for (method, action) in operations {
                item.insert(method.into(), v3_operation(info, action, &reference));
            }
            paths.insert(path, Value::Object(item));
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": definitions},
    })
}

fn v3_operation(info: &ResourceInfo, action: &str, reference: &Value) -> Value {
    let mut parameters = vec![
        json!({"name": "pretty", "in": "query", "schema": {"type": "string", "uniqueItems": true}}),
    ];
    if matches!(action, "post" | "put" | "patch") {
        for name in ["dryRun", "fieldManager", "fieldValidation"] {
            parameters.push(json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}}));
        }
    }
    let content = json!({"application/json": {"schema": reference}});
    let mut operation = json!({
        "operationId": format!("{action}{}", info.kind),
        "parameters": parameters,
        "responses": {"200": {"description": "OK", "content": content}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": info.group, "version": info.version, "kind": info.kind},
    });
    if matches!(action, "post" | "put") {
        operation["requestBody"] =
            json!({"content": {"*/*": {"schema": reference}}, "required": true});
    }
    if action == "patch" {
        let body = json!({"schema": {"type": "object"}});
        operation["requestBody"] = json!({"content": {
            "application/apply-patch+yaml": body,
            "application/json-patch+json": body,
            "application/merge-patch+json": body,
            "application/strategic-merge-patch+json": body,
        }, "required": true});
    }
    operation
}

/// The REST paths of a resource and the operations (method, Kubernetes action) on each.
fn resource_paths(info: &ResourceInfo) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    let base = if info.group.is_empty() {
        format!("/api/{}", info.version)
    } else {
        format!("/apis/{}/{}", info.group, info.version)
    };
    let collection = if info.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", info.plural)
    } else {
        format!("{base}/{}", info.plural)
    };
    if info.description.create_only {
        return vec![(collection, vec![("post", "post")])];
    }
    let mut paths = vec![
        (
            collection.clone(),
            vec![
                ("get", "list"),
                ("post", "post"),
                ("delete", "deletecollection"),
            ],
        ),
        (
            format!("{collection}/{{name}}"),
            vec![
                ("get", "get"),
                ("put", "put"),
                ("patch", "patch"),
                ("delete", "delete"),
            ],
        ),
    ];
    if info.namespaced {
        paths.push((format!("{base}/{}", info.plural), vec![("get", "list")]));
    }
    let description = &info.description;
    let updatable = description.status.then_some("status").into_iter();
    for sub in updatable.chain(description.update_subresources.iter().copied()) {
        paths.push((
            format!("{collection}/{{name}}/{sub}"),
            vec![("get", "get"), ("put", "put"), ("patch", "patch")],
        ));
    }
    paths
}

fn v2_document(resources: &[&dyn Resource]) -> Value {
    // Swagger 2.0 allows siblings of `$ref` (upstream puts each field's description there), and
    // kubectl's v2 parser only follows a bare `$ref`, not the `allOf` wrapper OpenAPI 3 needs.
    let settings = SchemaSettings::openapi3().with(|s| {
        s.definitions_path = "/definitions".into();
        s.transforms.retain(|t| !t.is::<RemoveRefSiblings>());
    });
    let (definitions, names) = schemas(resources, settings);
    let mut paths = Map::new();
    for (schema, info) in &names {
        let reference = json!({"$ref": format!("#/definitions/{schema}")});
        for (path, operations) in resource_paths(info) {
            let mut item = Map::new();
            for (method, action) in operations {
                let mut parameters = Vec::new();
                if matches!(action, "post" | "put") {
                    parameters.push(json!({"name": "body", "in": "body", "required": true, "schema": reference}));
                }
                if matches!(action, "post" | "put" | "patch") {
                    for name in ["dryRun", "fieldManager", "fieldValidation"] {
                        parameters.push(json!({"name": name, "in": "query", "type": "string", "uniqueItems": true}));
                    }
                }
                item.insert(method.into(), json!({
                    "operationId": format!("{action}{}", info.kind),
                    "parameters": parameters,
                    "responses": {"200": {"description": "OK", "schema": reference}},
                    "x-kubernetes-action": action,
                    "x-kubernetes-group-version-kind": {"group": info.group, "version": info.version, "kind": info.kind},
                }));
            }
            paths.insert(path, Value::Object(item));
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "definitions": definitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiate(accept: Option<&str>) -> Option<&'static str> {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert("accept", HeaderValue::from_str(accept).unwrap());
        }
        v2_media_type(&headers)
    }

    #[test]
    fn v2_negotiation_follows_upstream() {
        assert_eq!(negotiate(None), Some("application/json"));
        assert_eq!(negotiate(Some("*/*")), Some("application/json"));
        // client-go asks with the `@` form and gets the `.` form back.
        assert_eq!(
            negotiate(Some(protobuf::LEGACY_MEDIA_TYPE)),
            Some(protobuf::MEDIA_TYPE)
        );
        assert_eq!(
            negotiate(Some(protobuf::MEDIA_TYPE)),
            Some(protobuf::MEDIA_TYPE)
        );
        let weighted = format!("application/json;q=0.9, {}", protobuf::LEGACY_MEDIA_TYPE);
        assert_eq!(negotiate(Some(&weighted)), Some(protobuf::MEDIA_TYPE));
        assert_eq!(
            negotiate(Some("application/*;q=0.5, application/json")),
            Some("application/json")
        );
        assert_eq!(negotiate(Some("text/html")), None);
    }
}
