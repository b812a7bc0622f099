//! An in-process apiserver for registry tests: the real registry over an embedded store in a
//! temporary directory, driven through `Resource::handle` without HTTP, so a request costs
//! microseconds and a failure points at the registry rather than the network stack.

pub mod fixtures;

use std::sync::Arc;
use std::time::Duration;

use apiserver::registry::request::{negotiate, Query};
use apiserver::registry::{ApiRequest, Registry, Resource, Verb};
use apiserver::resources::Config;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Value};
use store::embedded::{EmbeddedConfig, EmbeddedStore};

/// How long a watch may take to deliver an event before the test gives up (a hang guard, not
/// a timing assertion).
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// `Accept` asking for a `meta.k8s.io/v1` Table, as `kubectl get` does.
pub const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
/// `Accept` of a metadata-only informer for one object (GET, WATCH).
pub const PARTIAL: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
/// `Accept` of a metadata-only informer's LIST.
pub const PARTIAL_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

/// Content types of the three patch formats besides server-side apply.
pub const MERGE_PATCH: &str = "application/merge-patch+json";
pub const JSON_PATCH: &str = "application/json-patch+json";
pub const STRATEGIC_PATCH: &str = "application/strategic-merge-patch+json";

/// The service ClusterIP range tests allocate from; small enough to read addresses at a glance.
pub const SERVICE_RANGE: &str = "10.96.0.0/24";
/// The NodePort range tests allocate from.
pub const NODE_PORT_RANGE: &str = "30000-30100";

/// Every built-in resource over a fresh store, with the `default` namespace and its `default`
/// ServiceAccount created through the registry like any client would.
pub struct Cluster {
    pub registry: Registry,
    /// Keeps the store's files alive as long as the registry.
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store: Arc<dyn store::Store> = Arc::new(
            EmbeddedStore::open(EmbeddedConfig::new(dir.path())).expect("embedded store opens"),
        );
        let config = Config {
            service_cluster_ip_range: SERVICE_RANGE.parse().expect("service range"),
            service_node_port_range: NODE_PORT_RANGE.parse().expect("node port range"),
            authentication: None,
            escalation: None,
            authorization: None,
            admission: Default::default(),
        };
        let cluster = Cluster {
            registry: apiserver::resources::registry(store, &config),
            _dir: dir,
        };
        let namespaces = cluster.resource("", "v1", "namespaces");
        let (code, body) = call(
            &namespaces,
            Call::new(Verb::Create).json(&json!({"metadata": {"name": "default"}})),
            None,
        )
        .await;
        assert_eq!(
            code,
            StatusCode::CREATED,
            "creating namespace default: {body}"
        );
        // What the controller-manager's serviceaccount controller would create: pods run as
        // it (the ServiceAccount admission plugin refuses them otherwise).
        let accounts = cluster.resource("", "v1", "serviceaccounts");
        let (code, body) = call(
            &accounts,
            Call::new(Verb::Create).json(&json!({"metadata": {"name": "default"}})),
            Some("default"),
        )
        .await;
        assert_eq!(
            code,
            StatusCode::CREATED,
            "creating service account default: {body}"
        );
        cluster
    }

    /// The served resource `group/version/plural`; panics if it is not served.
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Arc<dyn Resource> {
        self.registry
            .find(group, version, plural)
            .unwrap_or_else(|| panic!("{group}/{version}/{plural} is not served"))
            .clone()
    }
}

/// One request, built the way a client states it: verb, name, subresource, query string,
/// `Accept` and a body with its content type.
#[derive(Debug, Clone)]
pub struct Call {
    verb: Verb,
    name: Option<String>,
    subresource: Option<&'static str>,
    query: String,
    accept: Option<&'static str>,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Call {
    pub fn new(verb: Verb) -> Self {
        Call {
            verb,
            name: None,
            subresource: None,
            query: String::new(),
            accept: None,
            content_type: "application/json",
            body: Vec::new(),
        }
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    pub fn subresource(mut self, subresource: &'static str) -> Self {
        self.subresource = Some(subresource);
        self
    }

    /// The raw query string, percent-encoded as a client sends it.
    pub fn query(mut self, query: &str) -> Self {
        self.query = query.to_string();
        self
    }

    pub fn accept(mut self, accept: &'static str) -> Self {
        self.accept = Some(accept);
        self
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.body = serde_json::to_vec(body).expect("JSON body");
        self
    }

    pub fn patch(mut self, content_type: &'static str, body: &Value) -> Self {
        self.content_type = content_type;
        self.json(body)
    }

    /// Sends this call to `resource` in `namespace`, with the output format negotiated from
    /// `Accept` as the router does; an error becomes the `Status` response the server would
    /// write.
    pub async fn send(self, resource: &Arc<dyn Resource>, namespace: Option<&str>) -> Response {
        let query = match Query::parse(Some(&self.query)) {
            Ok(query) => query,
            Err(error) => return error.into_response(),
        };
        let mut headers = HeaderMap::new();
        if let Some(accept) = self.accept {
            headers.insert("accept", HeaderValue::from_static(accept));
        }
        headers.insert("content-type", HeaderValue::from_static(self.content_type));
        let output = match negotiate(&headers, query.include_object.as_deref()) {
            Ok(output) => output,
            Err(error) => return error.into_response(),
        };
        let request = ApiRequest {
            verb: self.verb,
            namespace: namespace.map(String::from),
            name: self.name,
            subresource: self.subresource.map(String::from),
            query,
            output,
            headers,
            body: self.body.into(),
            user: apiserver::authn::UserInfo {
                name: "kubernetes-admin".into(),
                uid: String::new(),
                groups: vec!["system:masters".into(), "system:authenticated".into()],
                extra: Default::default(),
            },
        };
        resource
            .handle(request)
            .await
            .unwrap_or_else(IntoResponse::into_response)
    }
}

/// Sends `call` and decodes the whole response body as JSON.
pub async fn call(
    resource: &Arc<dyn Resource>,
    call: Call,
    namespace: Option<&str>,
) -> (StatusCode, Value) {
    let response = call.send(resource, namespace).await;
    let code = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("response body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "response ({code}) is not JSON: {e}: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (code, body)
}

/// The events of a watch response, read line by line off its streamed body.
pub struct Watch {
    stream: axum::body::BodyDataStream,
    buffer: Vec<u8>,
}

impl Watch {
    /// Opens the watch; panics with the Status if the request was refused.
    pub async fn open(resource: &Arc<dyn Resource>, call: Call, namespace: Option<&str>) -> Self {
        let response = call.send(resource, namespace).await;
        if response.status() != StatusCode::OK {
            let code = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap_or_default();
            panic!("watch refused ({code}): {}", String::from_utf8_lossy(&body));
        }
        Watch {
            stream: response.into_body().into_data_stream(),
            buffer: Vec::new(),
        }
    }

    /// The next event as `(type, object)`; panics if none comes within [`EVENT_WAIT`].
    pub async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let event: Value = serde_json::from_slice(&line).unwrap_or_else(|e| {
                    panic!(
                        "watch line is not JSON: {e}: {}",
                        String::from_utf8_lossy(&line)
                    )
                });
                let kind = event["type"].as_str().unwrap_or_default().to_string();
                return (kind, event["object"].clone());
            }
            let chunk = tokio::time::timeout(EVENT_WAIT, self.stream.next())
                .await
                .expect("no watch event arrived")
                .expect("the watch ended")
                .expect("watch body chunk");
            self.buffer.extend_from_slice(&chunk);
        }
    }

    /// Asserts the server ends the stream (within [`EVENT_WAIT`]) with no further event.
    pub async fn assert_ends(&mut self) {
        let next = tokio::time::timeout(EVENT_WAIT, self.stream.next())
            .await
            .expect("the watch did not end");
        assert!(
            next.is_none() && self.buffer.is_empty(),
            "an event came instead of the end: {next:?}"
        );
    }
}

/// Whether `actual` has everything `expected` states: objects key by key (a `null` meaning
/// absent, as in a merge patch), arrays element by element, other values equal. Lets a test
/// state a change without restating the defaults the server adds around it.
pub fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            expected.iter().all(|(key, want)| match actual.get(key) {
                None | Some(Value::Null) => want.is_null(),
                Some(have) => contains(have, want),
            })
        }
        (Value::Array(actual), Value::Array(expected)) => {
            actual.len() == expected.len()
                && actual.iter().zip(expected).all(|(a, e)| contains(a, e))
        }
        _ => actual == expected,
    }
}

/// `document` with the JSON merge patch `patch` applied (RFC 7386).
pub fn merged(document: &Value, patch: &Value) -> Value {
    let mut document = document.clone();
    json_patch::merge(&mut document, patch);
    document
}

/// Asserts a `Status` failure: its code, reason and exact message.
#[track_caller]
pub fn assert_failure(
    code: StatusCode,
    body: &Value,
    want: StatusCode,
    reason: &str,
    message: &str,
) {
    assert_eq!(code, want, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["code"], want.as_u16(), "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert_eq!(body["message"], message, "{body}");
}

/// The `metadata.resourceVersion` every served object and list carries.
#[track_caller]
pub fn resource_version(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .filter(|rv| !rv.is_empty())
        .unwrap_or_else(|| panic!("no resourceVersion: {object}"))
        .to_string()
}

/// The `metadata.name`s of a list's items, in the order served.
pub fn item_names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| {
            item["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}
