//! What a hostile or careless client must not be able to do, on both store backends: grow
//! the server's memory with amplifying patches, overwrite a recreated object with a stale
//! UID, slip invalid metadata or list options past validation, hold connections open
//! forever, or impersonate groups without a user. Each case checks the refusal in upstream's
//! words and that the server stays healthy afterwards.

use std::process::Command;
use std::time::Duration;

use e2e::{on_both_backends, Backend, Cluster};
use serde_json::{json, Value};

on_both_backends!(
    amplifying_patches_are_refused_and_memory_stays_bounded,
    a_stale_uid_cannot_overwrite_a_recreated_object,
    invalid_metadata_and_list_options_are_refused,
    impersonation_needs_a_user_and_certificates_win_over_bad_tokens,
    yaml_merge_keys_are_applied,
    large_label_selectors_in_urls_are_accepted,
);

/// Generous: a debug build idles near 30 MB; the amplification attempts must not leave
/// hundreds of megabytes behind.
const MEMORY_BOUND: u64 = 200 << 20;

/// Sends `method path` with `body` as the admin; the status code and the decoded body.
async fn send(
    cluster: &Cluster,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body)
        .unwrap();
    match cluster.client().await.request_text(request).await {
        Ok(text) => (
            200,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ),
        Err(kube::Error::Api(status)) => (
            status.code,
            json!({"message": status.message, "reason": status.reason}),
        ),
        Err(other) => panic!("{method} {path}: {other}"),
    }
}

async fn json_patch(cluster: &Cluster, path: &str, patch: &Value) -> (u16, Value) {
    send(
        cluster,
        "PATCH",
        path,
        "application/json-patch+json",
        serde_json::to_vec(patch).unwrap(),
    )
    .await
}

async fn amplifying_patches_are_refused_and_memory_stays_bounded(cluster: &mut Cluster) {
    cluster.ok(&[
        "create",
        "configmap",
        "seed",
        "--from-literal",
        &format!("seed={}", "x".repeat(1024)),
    ]);
    let path = "/api/v1/namespaces/default/configmaps/seed";
    let copies: Vec<Value> = (0..40)
        .map(|i| json!({"op": "copy", "from": "/data", "path": format!("/data/c{i}")}))
        .collect();
    for query in ["", "?dryRun=All"] {
        let (code, status) = json_patch(
            cluster,
            &format!("{path}{query}"),
            &Value::from(copies.clone()),
        )
        .await;
        assert_eq!(code, 422, "{status}");
        // Upstream's generic 422 for a JSON patch that does not apply; the memory bound
        // below is what shows the copies were stopped.
        assert_eq!(
            status["message"],
            "the server rejected our request due to an error in our request"
        );
    }
    let operations: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/kind", "value": "ConfigMap"}))
        .collect();
    let (code, status) = json_patch(cluster, path, &Value::from(operations)).await;
    assert_eq!((code, status["message"].as_str().unwrap()), (413, "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"));
    // Two bodies under the limit that together would make an object over it (a container's
    // environment has no size limit of its own).
    cluster.ok(&["create", "deployment", "big", "--image", "nginx"]);
    let env = "/apis/apps/v1/namespaces/default/deployments/big";
    // The first stays under etcd's own request limit (1.5 MiB).
    let add = json!([{"op": "add", "path": "/spec/template/spec/containers/0/env", "value": [{"name": "A", "value": "y".repeat(1200 << 10)}]}]);
    assert_eq!(json_patch(cluster, env, &add).await.0, 200);
    let more = json!([{"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "B", "value": "z".repeat(2 << 20)}}]);
    let (code, status) = json_patch(cluster, env, &more).await;
    assert_eq!(
        (code, status["message"].as_str().unwrap()),
        (413, "Request entity too large: limit is 3145728")
    );
    let names = cluster.ok(&[
        "get",
        "deployment",
        "big",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env[*].name}",
    ]);
    assert_eq!(names, "A", "nothing half-written");
    let rss = cluster.apiserver_rss_bytes();
    assert!(
        rss < MEMORY_BOUND,
        "apiserver holds {} MB after the attempts",
        rss >> 20
    );
    cluster.ok(&["get", "--raw", "/readyz"]);
}

async fn a_stale_uid_cannot_overwrite_a_recreated_object(cluster: &mut Cluster) {
    cluster.ok(&[
        "create",
        "configmap",
        "twin",
        "--from-literal",
        "generation=first",
    ]);
    let mut stale: Value =
        serde_json::from_str(&cluster.ok(&["get", "configmap", "twin", "-o", "json"])).unwrap();
    let stale_uid = stale["metadata"]["uid"].as_str().unwrap().to_string();
    cluster.ok(&["delete", "configmap", "twin"]);
    cluster.ok(&[
        "create",
        "configmap",
        "twin",
        "--from-literal",
        "generation=second",
    ]);
    let new_uid = cluster.ok(&["get", "configmap", "twin", "-o", "jsonpath={.metadata.uid}"]);
    stale["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    stale["data"]["generation"] = json!("overwritten");
    let path = "/api/v1/namespaces/default/configmaps/twin";
    let (code, status) = send(
        cluster,
        "PUT",
        path,
        "application/json",
        serde_json::to_vec(&stale).unwrap(),
    )
    .await;
    assert_eq!(code, 409, "{status}");
    assert_eq!(
        status["message"].as_str().unwrap(),
        // Upstream's storage layer refuses it, naming the full key.
        format!(
            "Operation cannot be fulfilled on configmaps \"twin\": StorageError: invalid object, Code: 4, \
             Key: /registry/configmaps/default/twin, ResourceVersion: 0, AdditionalErrorMsg: \
             Precondition failed: UID in precondition: {stale_uid}, UID in object meta: {new_uid}"
        )
    );
    for (field, value) in [
        ("uid", json!("forged")),
        ("creationTimestamp", json!("2020-01-01T00:00:00Z")),
        ("deletionTimestamp", json!("2030-01-01T00:00:00Z")),
    ] {
        let (code, status) = json_patch(
            cluster,
            path,
            &json!([{"op": "add", "path": format!("/metadata/{field}"), "value": value}]),
        )
        .await;
        let message = status["message"].as_str().unwrap_or_default().to_string();
        if field == "creationTimestamp" {
            // Upstream keeps the stored creation time whatever the client sends.
            assert_eq!(code, 200, "{message}");
        } else {
            assert_eq!(code, 422, "{field}: {message}");
            assert!(
                message.contains(&format!("metadata.{field}: Invalid value"))
                    && message.ends_with("field is immutable"),
                "{message}"
            );
        }
    }
    let kept = cluster.ok(&[
        "get",
        "configmap",
        "twin",
        "-o",
        "jsonpath={.metadata.uid} {.data.generation}",
    ]);
    assert_eq!(kept, format!("{new_uid} second"));
}

async fn invalid_metadata_and_list_options_are_refused(cluster: &mut Cluster) {
    let create = |metadata: Value| {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata});
        serde_json::to_vec(&body).unwrap()
    };
    let path = "/api/v1/namespaces/default/configmaps";
    let owner = |name: &str, controller: bool| json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": format!("uid-{name}"), "controller": controller});
    for (metadata, expected) in [
        (json!({"name": "f", "finalizers": ["bad finalizer!"]}), "metadata.finalizers: Invalid value: \"bad finalizer!\": name part must consist of"),
        (json!({"name": "o", "ownerReferences": [{"apiVersion": "", "kind": "", "name": "", "uid": ""}]}), "metadata.ownerReferences.apiVersion: Invalid value: \"\": version must not be empty"),
        (json!({"name": "c", "ownerReferences": [owner("a", true), owner("b", true)]}), "Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/a and ReplicaSet/b"),
    ] {
        let (code, status) = send(cluster, "POST", path, "application/json", create(metadata)).await;
        assert_eq!(code, 422, "{status}");
        assert!(status["message"].as_str().unwrap().contains(expected), "{status}");
    }
    let raw = |query: &str| {
        cluster.kubectl(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/default/configmaps?{query}"),
        ])
    };
    let exact_zero = raw("resourceVersion=0&resourceVersionMatch=Exact");
    assert!(!exact_zero.status.success());
    assert!(String::from_utf8_lossy(&exact_zero.stderr)
        .contains("resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""));
    let negative = raw("resourceVersion=-1");
    assert!(String::from_utf8_lossy(&negative.stderr)
        .contains("invalid resource version: resourceVersion: Invalid value: \"-1\""));
    let escaping = base64_url(r#"{"v":"meta.k8s.io/v1","rv":1,"start":"default/../../secrets/x"}"#);
    let token = raw(&format!("limit=1&continue={escaping}"));
    assert!(
        String::from_utf8_lossy(&token.stderr).contains("continue key is not valid"),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    // timeoutSeconds=0 is Go's unset value: the watch stays open.
    let mut watch = Command::new(e2e::kubectl_path(33))
        .args([
            "--kubeconfig",
            &cluster.kubeconfig().display().to_string(),
            "get",
            "--raw",
            "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=0",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        watch.try_wait().unwrap().is_none(),
        "a watch with timeoutSeconds=0 ended at once"
    );
    let _ = watch.kill();
    let _ = watch.wait();
}

async fn impersonation_needs_a_user_and_certificates_win_over_bad_tokens(cluster: &mut Cluster) {
    // AlwaysAllow (the default) lets anyone impersonate anyone, as upstream's does.
    assert_eq!(
        cluster.ok(&[
            "auth",
            "whoami",
            "--as",
            "bob",
            "-o",
            "jsonpath={.status.userInfo.username}"
        ]),
        "bob"
    );
    // A group without a user: upstream v1.33's plain-text internal error, not a Status.
    let request = http::Request::get("/api/v1/namespaces")
        .header("impersonate-group", "system:masters")
        .body(Vec::new())
        .unwrap();
    match cluster.client().await.request_text(request).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 500);
            assert_eq!(
                status.message,
                r#"Internal Server Error: "/api/v1/namespaces": requested [{Group  system:masters    }] without impersonating a user"#
            );
        }
        other => panic!("expected 500, got {other:?}"),
    }
    // The admin kubeconfig's client certificate authenticates even with a wrong token.
    let out = cluster.ok(&[
        "get",
        "namespace",
        "default",
        "-o",
        "name",
        "--token",
        "wrong",
    ]);
    assert_eq!(out.trim(), "namespace/default");
}

async fn yaml_merge_keys_are_applied(cluster: &mut Cluster) {
    let body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: merged\n  labels:\n    <<: &common {app: web, tier: front}\n    extra: x\ndata:\n  <<: *common\n";
    let (code, status) = send(
        cluster,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/yaml",
        body.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(
        cluster.ok(&[
            "get",
            "configmap",
            "merged",
            "-o",
            "jsonpath={.metadata.labels.app} {.data.tier}"
        ]),
        "web front"
    );
}

/// A label selector of about 50 KB in the URL is answered over both HTTP/2 (kube-rs) and
/// HTTP/1.1 (the Python client's urllib3). Upstream allows 1 MB of headers; the `http` crate
/// caps a URI at 64 KiB, so that is the most a URL can carry here.
async fn large_label_selectors_in_urls_are_accepted(cluster: &mut Cluster) {
    cluster.ok(&["create", "configmap", "picked", "--from-literal", "a=b"]);
    cluster.ok(&["label", "configmap", "picked", "pick=value-0"]);
    let values: Vec<String> = (0..5_000).map(|i| format!("value-{i}")).collect();
    let selector = format!("pick in ({})", values.join(","));
    assert!(selector.len() > 50_000);
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(cluster.client().await, "default");
    let listed = configmaps
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let script = format!(
        "from kubernetes import client, config\n\
         config.load_kube_config({:?})\n\
         items = client.CoreV1Api().list_namespaced_config_map('default', label_selector={selector:?}).items\n\
         print(len(items))",
        cluster.kubeconfig().display().to_string()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Connections that never start TLS, TLS sessions that never send a request and headers
/// sent a byte at a time are all closed after the (shortened) timeouts, while kubectl keeps
/// answering; plain HTTP gets Go's 400; a request holding the only mutating slot makes other
/// writers wait with 429 (the admin excepted) and times out with 504.
async fn connections_are_bounded_and_timed_out(backend: Backend) {
    let tokens = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tokens.path(), "user-token,alice,1001\n").unwrap();
    let token_file = tokens.path().display().to_string();
    let cluster = Cluster::start_with(
        backend,
        &[
            "--token-auth-file",
            &token_file,
            "--read-header-timeout",
            "2s",
            "--idle-connection-timeout",
            "3s",
            "--request-timeout",
            "4s",
            "--max-mutating-requests-inflight",
            "1",
        ],
    )
    .await;
    let fresh_rss = cluster.apiserver_rss_bytes();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/connection_abuse.py");
    let abuse = Command::new("python3")
        .args([
            script.display().to_string(),
            cluster.port.to_string(),
            "2000".into(),
            "200".into(),
            "6".into(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        cluster
            .ok(&["get", "namespaces", "-o", "name"])
            .contains("namespace/default"),
        "kubectl answers while the connections are open"
    );
    let report = abuse.wait_with_output().unwrap();
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(
        report,
        json!({"tcp_closed": 2000, "tls_closed": 200, "slow_headers_closed": true})
    );
    let plain = std::net::TcpStream::connect(("127.0.0.1", cluster.port)).unwrap();
    let answer = plain_http(plain);
    assert_eq!(
        answer,
        "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
    );

    // A body that never arrives holds the one mutating slot: a write by alice, who may
    // write (the limit comes before authorization, but a refused request would free it).
    cluster.ok(&[
        "create",
        "rolebinding",
        "alice-edit",
        "--clusterrole=edit",
        "--user=alice",
    ]);
    let holder = Command::new("python3")
        .args(["-c", HOLD_SLOT, &cluster.port.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let as_alice =
        cluster.kubectl_as_token("user-token", &["create", "configmap", "throttled", "-v=6"]);
    let log = String::from_utf8_lossy(&as_alice.stderr).into_owned();
    assert!(log.contains("429 Too Many Requests"), "{log}");
    cluster.ok(&["create", "configmap", "by-admin"]);
    let held = holder.wait_with_output().unwrap();
    let held = String::from_utf8_lossy(&held.stdout);
    assert!(held.starts_with("HTTP/1.1 504"), "{held}");
    assert!(held.contains("Timeout: request did not complete within requested timeout - context deadline exceeded"), "{held}");
    let rss = cluster.apiserver_rss_bytes();
    println!(
        "apiserver RSS: fresh {} MB, after the connection test {} MB",
        fresh_rss >> 20,
        rss >> 20
    );
    assert!(rss < MEMORY_BOUND);
}

/// With etcd down, a list fails within the request timeout (upstream's 504) instead of
/// hanging, and the server answers again once etcd is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_fail_within_the_request_timeout_while_etcd_is_down() {
    let mut cluster = Cluster::start_with(Backend::Etcd, &["--request-timeout", "3s"]).await;
    cluster.ok(&["create", "configmap", "before"]);
    cluster.set_etcd_running(false);
    let started = std::time::Instant::now();
    let out = cluster.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps?limit=10",
    ]);
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the list took {:?}",
        started.elapsed()
    );
    cluster.set_etcd_running(true);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !cluster
        .kubectl(&["get", "configmap", "before"])
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the apiserver did not recover:\n{}",
            cluster.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Python: POSTs as the token user with a Content-Length it never sends, then prints what
/// the server answers.
const HOLD_SLOT: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
s.sendall(b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer user-token\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
s.settimeout(20)
print(s.recv(4096).decode(errors="replace"))
"#;

fn plain_http(mut stream: std::net::TcpStream) -> String {
    use std::io::{Read, Write};
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE.encode(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_bounded_and_timed_out_embedded() {
    connections_are_bounded_and_timed_out(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_bounded_and_timed_out_etcd() {
    connections_are_bounded_and_timed_out(Backend::Etcd).await;
}
