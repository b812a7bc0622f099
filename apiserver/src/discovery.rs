//! API discovery: the legacy per-version documents and aggregated discovery v2, which
//! kubectl 1.33 asks for first so one request describes every group.
//!
//! All documents are computed once at start-up (the set of resources is fixed) with their
//! ETags, so revalidation by kubectl's disk cache costs a header comparison.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::registry::{Registry, ResourceInfo};

const MAIN_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const SUB_VERBS: &[&str] = &["get", "patch", "update"];

/// A subresource as discovery lists it.
struct Sub {
    name: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
}

fn subresources(info: &ResourceInfo) -> Vec<Sub> {
    let own = |name, verbs| Sub {
        name,
        group: info.group,
        version: info.version,
        kind: info.kind,
        verbs,
    };
    let d = &info.description;
    let mut subs: Vec<Sub> = d
        .actions
        .iter()
        .map(|a| Sub {
            name: a.name,
            group: a.group,
            version: a.version,
            kind: a.kind,
            verbs: &["create"],
        })
        .collect();
    if d.finalize {
        subs.push(own("finalize", &["update"]));
    }
    if d.scale.is_some() {
        subs.push(Sub {
            name: "scale",
            group: "autoscaling",
            version: "v1",
            kind: "Scale",
            verbs: SUB_VERBS,
        });
    }
    if d.status {
        subs.push(own("status", SUB_VERBS));
    }
    for name in d.update_subresources {
        subs.push(own(name, SUB_VERBS));
    }
    subs.sort_by_key(|s| s.name);
    subs
}

/// One precomputed document with its ETag.
struct Document {
    body: Vec<u8>,
    etag: String,
}

impl Document {
    fn new(value: &Value) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_default();
        let digest = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            body.hash(&mut hasher);
            hasher.finish()
        };
        Document {
            etag: format!("\"{digest:016X}\""),
            body,
        }
    }

    fn respond(&self, headers: &HeaderMap, content_type: &str) -> Response {
        let etag = HeaderValue::from_str(&self.etag).expect("hex etag is a valid header");
        if headers
            .get("if-none-match")
            .is_some_and(|v| v.as_bytes() == self.etag.as_bytes())
        {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            response.headers_mut().insert("etag", etag);
            return response;
        }
        let mut response = (StatusCode::OK, self.body.clone()).into_response();
        response.headers_mut().insert(
            "content-type",
            HeaderValue::from_str(content_type).expect("static content type"),
        );
        response.headers_mut().insert("etag", etag);
        response
    }
}

/// Every discovery document.
pub struct Discovery {
    api_versions: Document,
    group_list: Document,
    groups: Vec<(String, Document)>,
    resource_lists: Vec<(String, Document)>,
    /// Aggregated documents for `/api` and `/apis`, per apiVersion (v2 and v2beta1).
    aggregated: Vec<(&'static str, Document, Document)>,
}

impl Discovery {
    pub fn new(registry: &Registry, server_address: &str) -> Self {
        let mut group_versions: Vec<(&str, &str)> = Vec::new();
        for resource in registry.all() {
            let info = resource.info();
            if !group_versions.contains(&(info.group, info.version)) {
                group_versions.push((info.group, info.version));
            }
        }
        let infos = |group: &str, version: &str| -> Vec<ResourceInfo> {
            let mut infos: Vec<ResourceInfo> = registry
                .all()
                .iter()
                .map(|r| r.info().clone())
                .filter(|i| i.group == group && i.version == version)
                .collect();
            infos.sort_by_key(|i| i.plural);
            infos
        };
        let cidrs = json!([{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]);
        let api_versions = Document::new(&json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": cidrs,
        }));
        // A group served in several versions (autoscaling v2 and v1) is one group, its
        // versions in registration order, the first preferred.
        let mut group_names: Vec<&str> = Vec::new();
        for (g, _) in &group_versions {
            if !g.is_empty() && !group_names.contains(g) {
                group_names.push(g);
            }
        }
        let versions_of = |group: &str| -> Vec<&str> {
            group_versions
                .iter()
                .filter(|(g, _)| *g == group)
                .map(|(_, v)| *v)
                .collect()
        };
        let groups: Vec<(String, Value)> = group_names
            .iter()
            .map(|g| {
                let versions: Vec<Value> = versions_of(g)
                    .iter()
                    .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                    .collect();
                let preferred = versions[0].clone();
                (
                    g.to_string(),
                    json!({"name": g, "versions": versions, "preferredVersion": preferred}),
                )
            })
            .collect();
        let group_list = Document::new(&json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": groups.iter().map(|(_, g)| g.clone()).collect::<Vec<_>>(),
        }));
        let group_docs = groups
            .iter()
            .map(|(name, group)| {
                let mut doc = group.clone();
                doc["kind"] = json!("APIGroup");
                doc["apiVersion"] = json!("v1");
                (name.clone(), Document::new(&doc))
            })
            .collect();
        let resource_lists = group_versions
            .iter()
            .map(|(g, v)| {
                let gv = if g.is_empty() { v.to_string() } else { format!("{g}/{v}") };
                let mut resources = Vec::new();
                for info in infos(g, v) {
                    resources.push(legacy_resource(&info));
                    for sub in subresources(&info) {
                        let mut entry = json!({
                            "name": format!("{}/{}", info.plural, sub.name),
                            "singularName": "",
                            "namespaced": info.namespaced,
                            "kind": sub.kind,
                            "verbs": sub.verbs,
                        });
                        if sub.group != info.group || sub.version != info.version {
                            entry["group"] = json!(sub.group);
                            entry["version"] = json!(sub.version);
                        }
                        resources.push(entry);
                    }
                }
                let doc = json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources});
                (gv, Document::new(&doc))
            })
            .collect();
        let aggregated_items = |core: bool| -> Vec<Value> {
            let mut items = Vec::new();
            let names: Vec<&str> = if core { vec![""] } else { group_names.clone() };
            for g in names {
                let versions: Vec<Value> = versions_of(g)
                    .iter()
                    .map(|v| {
                        let resources: Vec<Value> =
                            infos(g, v).iter().map(aggregated_resource).collect();
                        json!({"version": v, "resources": resources, "freshness": "Current"})
                    })
                    .collect();
                let metadata = if g.is_empty() {
                    json!({"creationTimestamp": null})
                } else {
                    json!({"name": g, "creationTimestamp": null})
                };
                items.push(json!({"metadata": metadata, "versions": versions}));
            }
            items
        };
        let aggregated = ["v2", "v2beta1"]
            .into_iter()
            .map(|version| {
                let list = |items: Vec<Value>| {
                    Document::new(&json!({
                        "kind": "APIGroupDiscoveryList",
                        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
                        "metadata": {},
                        "items": items,
                    }))
                };
                (
                    version,
                    list(aggregated_items(true)),
                    list(aggregated_items(false)),
                )
            })
            .collect();
        Discovery {
            api_versions,
            group_list,
            groups: group_docs,
            resource_lists,
            aggregated,
        }
    }

    /// `/api` or `/apis`: aggregated when the client asks for it, legacy otherwise.
    pub fn root(&self, core: bool, headers: &HeaderMap) -> Response {
        if let Some(version) = aggregated_version(headers) {
            if let Some((version, api, apis)) =
                self.aggregated.iter().find(|(v, _, _)| *v == version)
            {
                let content_type = format!(
                    "application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
                );
                return if core {
                    api.respond(headers, &content_type)
                } else {
                    apis.respond(headers, &content_type)
                };
            }
        }
        let document = if core {
            &self.api_versions
        } else {
            &self.group_list
        };
        document.respond(headers, "application/json")
    }

    pub fn group(&self, group: &str, headers: &HeaderMap) -> Option<Response> {
        let (_, document) = self.groups.iter().find(|(name, _)| name == group)?;
        Some(document.respond(headers, "application/json"))
    }

    pub fn resources(&self, group_version: &str, headers: &HeaderMap) -> Option<Response> {
        let (_, document) = self
            .resource_lists
            .iter()
            .find(|(gv, _)| gv == group_version)?;
        Some(document.respond(headers, "application/json"))
    }
}

/// The aggregated discovery version the Accept header asks for first, if any.
fn aggregated_version(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get("accept")?.to_str().ok()?;
    for entry in accept.split(',') {
        let params: Vec<&str> = entry.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if has("g=apidiscovery.k8s.io") && has("as=APIGroupDiscoveryList") {
            if has("v=v2") {
                return Some("v2");
            }
            if has("v=v2beta1") {
                return Some("v2beta1");
            }
        } else if params
            .first()
            .is_some_and(|m| *m == "application/json" || *m == "*/*")
        {
            return None;
        }
    }
    None
}

/// The verbs of a resource itself, as discovery lists them.
fn main_verbs(info: &ResourceInfo) -> Vec<&'static str> {
    if info.description.create_only {
        return vec!["create"];
    }
    MAIN_VERBS
        .iter()
        .copied()
        .filter(|verb| *verb != "deletecollection" || info.description.delete_collection)
        .collect()
}

fn legacy_resource(info: &ResourceInfo) -> Value {
    let d = &info.description;
    let mut entry = json!({
        "name": info.plural,
        "singularName": info.singular,
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": main_verbs(info),
    });
    if !d.short_names.is_empty() {
        entry["shortNames"] = json!(d.short_names);
    }
    if !d.categories.is_empty() {
        entry["categories"] = json!(d.categories);
    }
    entry
}

fn aggregated_resource(info: &ResourceInfo) -> Value {
    let d = &info.description;
    let mut entry = json!({
        "resource": info.plural,
        "responseKind": {"group": info.group, "version": info.version, "kind": info.kind},
        "scope": if info.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": info.singular,
        "verbs": main_verbs(info),
    });
    if !d.short_names.is_empty() {
        entry["shortNames"] = json!(d.short_names);
    }
    if !d.categories.is_empty() {
        entry["categories"] = json!(d.categories);
    }
    let subs: Vec<Value> = subresources(info)
        .iter()
        .map(|s| {
            json!({
                "subresource": s.name,
                "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                "verbs": s.verbs,
            })
        })
        .collect();
    if !subs.is_empty() {
        entry["subresources"] = json!(subs);
    }
    entry
}
