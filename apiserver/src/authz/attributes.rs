//! What a request asks for, in the terms authorizers decide on: upstream's `RequestInfo`
//! (verb from the method and the path, namespace, API group, resource, subresource, name),
//! or a non-resource path (`/healthz`, `/version`, discovery) with the method as its verb.

use axum::http::{Method, Uri};

use crate::authn::UserInfo;
use crate::registry::request::percent_decode;

/// The request of one user, as authorizers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub user: UserInfo,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`
    /// (or the lowercase method for a non-resource path).
    pub verb: String,
    /// `None` for a non-resource request.
    pub resource: Option<ResourceAttributes>,
    /// The request path, which non-resource rules match.
    pub path: String,
}

/// The object a resource request is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    pub namespace: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The `field=value` terms of a list's or watch's field selector, which the Node
    /// authorizer reads (`spec.nodeName=<node>` scopes a kubelet's pod watch).
    pub field_equals: Vec<(String, String)>,
}

/// The verbs a path segment can put before the resource path (`/api/v1/watch/pods`), which
/// upstream keeps for old clients.
const PATH_VERBS: [&str; 2] = ["watch", "proxy"];

impl Attributes {
    /// The attributes of `method uri` by `user`, as upstream's request-info factory reads
    /// them.
    pub fn of(user: &UserInfo, method: &Method, uri: &Uri) -> Attributes {
        let path = uri.path().to_string();
        let non_resource = |path: String| Attributes {
            user: user.clone(),
            verb: method.as_str().to_ascii_lowercase(),
            resource: None,
            path,
        };
        let parts: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(|p| percent_decode(p, false))
            .collect();
        let (group, version, mut rest) = match parts.as_slice() {
            [api, version, rest @ ..] if api == "api" && !rest.is_empty() => {
                (String::new(), version.clone(), rest)
            }
            [apis, group, version, rest @ ..] if apis == "apis" && !rest.is_empty() => {
                (group.clone(), version.clone(), rest)
            }
            _ => return non_resource(path),
        };
        let mut verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        }
        .to_string();
        if let Some(special) = PATH_VERBS.iter().find(|v| **v == rest[0]) {
            if rest.len() < 2 {
                return non_resource(path);
            }
            verb = special.to_string();
            rest = &rest[1..];
        }
        let mut attributes = ResourceAttributes {
            group,
            version,
            ..Default::default()
        };
        if rest[0] == "namespaces" && rest.len() > 1 {
            attributes.namespace = rest[1].clone();
            // `/namespaces/{ns}/{resource}...` is about the resource; `/namespaces/{ns}`,
            // `.../status` and `.../finalize` about the namespace itself.
            if rest.len() > 2 && !matches!(rest[2].as_str(), "status" | "finalize") {
                rest = &rest[2..];
            }
        }
        attributes.resource = rest[0].clone();
        if let Some(name) = rest.get(1) {
            attributes.name = name.clone();
        }
        // A proxy's further segments are the proxied path, not a subresource.
        if let Some(subresource) = rest.get(2).filter(|_| verb != "proxy") {
            attributes.subresource = subresource.clone();
        }
        if attributes.name.is_empty() && verb == "get" {
            let query = Query::of(uri.query());
            verb = if query.watch { "watch" } else { "list" }.to_string();
            if let Some(name) = query.name {
                attributes.name = name;
            }
            attributes.field_equals = query.field_equals;
        }
        if attributes.name.is_empty() && verb == "delete" {
            verb = "deletecollection".to_string();
        }
        Attributes {
            user: user.clone(),
            verb,
            resource: Some(attributes),
            path,
        }
    }
}

/// What a list's query string adds to its attributes.
struct Query {
    watch: bool,
    /// The name a `metadata.name` field selector pins.
    name: Option<String>,
    /// The field selector's equality terms.
    field_equals: Vec<(String, String)>,
}

impl Query {
    fn of(query: Option<&str>) -> Query {
        let mut parsed = Query {
            watch: false,
            name: None,
            field_equals: Vec::new(),
        };
        for pair in query.unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value, true);
            match key {
                "watch" => parsed.watch = matches!(value.as_str(), "true" | "1"),
                "fieldSelector" => {
                    parsed.field_equals = equality_terms(&value);
                    parsed.name = parsed
                        .field_equals
                        .iter()
                        .find(|(field, name)| field == "metadata.name" && !name.is_empty())
                        .map(|(_, name)| name.clone());
                }
                _ => {}
            }
        }
        parsed
    }
}

/// The `field=value` (or `==`) terms of a field selector; `!=` terms are left out, as they
/// never scope a request to one value.
pub fn equality_terms(selector: &str) -> Vec<(String, String)> {
    selector
        .split(',')
        .filter_map(|term| {
            let (field, value) = term
                .split_once("==")
                .or_else(|| term.split_once('='))
                .filter(|(field, _)| !field.ends_with('!'))?;
            Some((field.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jane() -> UserInfo {
        UserInfo {
            name: "jane".into(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
            extra: Default::default(),
        }
    }

    fn of(method: Method, uri: &str) -> (String, Option<ResourceAttributes>) {
        let attributes = Attributes::of(&jane(), &method, &uri.parse().unwrap());
        (attributes.verb, attributes.resource)
    }

    fn resource(
        ns: &str,
        group: &str,
        resource: &str,
        sub: &str,
        name: &str,
    ) -> ResourceAttributes {
        ResourceAttributes {
            namespace: ns.into(),
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            field_equals: Vec::new(),
        }
    }

    #[test]
    fn verbs_and_objects_read_like_upstream() {
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/default/pods",
                "list",
                resource("default", "", "pods", "", ""),
            ),
            (
                Method::GET,
                "/api/v1/pods?watch=true",
                "watch",
                resource("", "", "pods", "", ""),
            ),
            (
                Method::GET,
                "/api/v1/watch/namespaces/default/pods",
                "watch",
                resource("default", "", "pods", "", ""),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods/web",
                "get",
                resource("default", "", "pods", "", "web"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods/web/log",
                "get",
                resource("default", "", "pods", "log", "web"),
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/pods/web/eviction",
                "create",
                resource("default", "", "pods", "eviction", "web"),
            ),
            (
                Method::DELETE,
                "/apis/apps/v1/namespaces/ns/deployments",
                "deletecollection",
                resource("ns", "apps", "deployments", "", ""),
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/ns/deployments/d/scale",
                "patch",
                resource("ns", "apps", "deployments", "scale", "d"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/kube-system",
                "get",
                resource("kube-system", "", "namespaces", "", "kube-system"),
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/gone/finalize",
                "update",
                resource("gone", "", "namespaces", "finalize", "gone"),
            ),
            (
                Method::GET,
                "/api/v1/nodes?fieldSelector=metadata.name%3Dn1",
                "list",
                ResourceAttributes {
                    field_equals: vec![("metadata.name".into(), "n1".into())],
                    ..resource("", "", "nodes", "", "n1")
                },
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods/web/proxy/a/b",
                "get",
                resource("default", "", "pods", "proxy", "web"),
            ),
        ];
        for (method, uri, verb, expected) in cases {
            assert_eq!(of(method, uri), (verb.to_string(), Some(expected)), "{uri}");
        }
    }

    #[test]
    fn discovery_and_health_are_paths() {
        for uri in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/healthz",
            "/version",
            "/openapi/v3",
        ] {
            let attributes = Attributes::of(&jane(), &Method::GET, &uri.parse().unwrap());
            assert_eq!(attributes.resource, None, "{uri}");
            assert_eq!(
                (attributes.verb.as_str(), attributes.path.as_str()),
                ("get", uri)
            );
        }
    }
}
