//! Tables only where upstream draws them: the resource, its `/status` and its `/scale`
//! (NAME, DESIRED, AVAILABLE, AGE); a Table-only request to a create-only action, to
//! `finalize` or to discovery is `406 NotAcceptable` before anything is done, as upstream
//! answers it.

use e2e::{on_both_backends, Cluster};

on_both_backends!(tables_only_where_upstream_draws_them);

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
const NOT_ACCEPTABLE: &str =
    "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf";

/// Sends `method path` asking for a Table only; the status code and the body's message or
/// kind.
async fn table_request(cluster: &Cluster, method: &str, path: &str, body: &str) -> (u16, String) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("accept", TABLE)
        .header("content-type", "application/json")
        .body(body.as_bytes().to_vec())
        .unwrap();
    match cluster.client().await.request_text(request).await {
        Ok(text) => {
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            (200, value["kind"].as_str().unwrap_or_default().to_string())
        }
        Err(kube::Error::Api(status)) => (status.code, status.message),
        Err(other) => panic!("{method} {path}: {other}"),
    }
}

async fn tables_only_where_upstream_draws_them(cluster: &mut Cluster) {
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "--image",
        "nginx",
        "--replicas",
        "2",
    ]);
    let scale = cluster.ok(&["get", "deployment", "web", "--subresource", "scale"]);
    let header: Vec<&str> = scale.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "DESIRED", "AVAILABLE", "AGE"], "{scale}");
    assert!(scale.lines().nth(1).unwrap().starts_with("web "), "{scale}");
    let status = cluster.ok(&["get", "deployment", "web", "--subresource", "status"]);
    assert!(
        status.starts_with("NAME") && status.contains("READY"),
        "{status}"
    );

    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    // A cluster-wide list of a core resource is a resource path, not discovery.
    assert_eq!(
        table_request(cluster, "GET", "/api/v1/pods", "").await,
        (200, "Table".into())
    );
    assert_eq!(
        table_request(cluster, "GET", "/api/v1/nodes", "").await,
        (200, "Table".into())
    );
    assert_eq!(
        table_request(cluster, "GET", deployments, "").await,
        (200, "Table".into())
    );
    assert_eq!(
        table_request(cluster, "GET", &format!("{deployments}/web/scale"), "").await,
        (200, "Table".into())
    );
    let binding = r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p"},"target":{"kind":"Node","name":"n"}}"#;
    let eviction = r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"p"}}"#;
    let finalize = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default"},"spec":{"finalizers":["kubernetes"]}}"#;
    for (method, path, body) in [
        ("POST", "/api/v1/namespaces/default/pods/p/binding", binding),
        (
            "POST",
            "/api/v1/namespaces/default/pods/p/eviction",
            eviction,
        ),
        ("PUT", "/api/v1/namespaces/default/finalize", finalize),
        ("GET", "/api/v1", ""),
        ("GET", "/apis", ""),
    ] {
        assert_eq!(
            table_request(cluster, method, path, body).await,
            (406, NOT_ACCEPTABLE.into()),
            "{method} {path}"
        );
    }
    // Discovery still answers kubectl, which asks for plain or aggregated documents.
    assert!(cluster.ok(&["api-resources"]).contains("deployments"));
}
