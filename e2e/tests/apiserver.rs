//! kube-apiserver driven by the real kubectl 1.33 and kube-rs, on both store backends.

use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::fixtures::json;
use e2e::{on_both_backends, Cluster};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::Value;

on_both_backends!(
    version_and_health_endpoints,
    bad_credentials_get_401_and_none_are_anonymous,
    discovery_lists_resources_with_short_names,
    multi_document_create_then_get_in_every_format,
    selectors_filter_lists,
    errors_read_like_upstream,
    stale_updates_conflict,
    get_watch_streams_changes,
    an_old_resource_version_is_gone,
    chunked_lists_page_through_everything,
    restart_keeps_objects_and_revisions_grow,
    deleting_a_namespace_makes_it_terminating,
    kube_rs_lists_and_watches,
    bad_requests_get_clear_statuses,
    streaming_list_watches_send_initial_events,
);

const NAMESPACE_AND_CONFIGMAP: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: lab
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: lab
  labels:
    app: web
    tier: front
data:
  color: blue
  size: large
";

async fn version_and_health_endpoints(cluster: &mut Cluster) {
    let version = json(&cluster.ok(&["version", "-o", "json"]));
    assert_eq!(version["serverVersion"]["major"], "1");
    assert_eq!(version["serverVersion"]["minor"], "33");
    assert!(version["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap()
        .starts_with("v1.33."));
    let ready = cluster.ok(&["get", "--raw", "/readyz?verbose"]);
    assert!(
        ready.contains("[+]etcd ok") && ready.contains("readyz check passed"),
        "{ready}"
    );
    assert_eq!(cluster.ok(&["get", "--raw", "/livez"]), "ok");
    cluster.ok(&["get", "namespaces"]);
    let metrics = cluster.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains("apiserver_request_total{"),
        "request metrics are exported"
    );
}

async fn bad_credentials_get_401_and_none_are_anonymous(cluster: &mut Cluster) {
    let anonymous = cluster.dir().join("anonymous.conf");
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{}\n    insecure-skip-tls-verify: true\n\
         contexts:\n- name: c\n  context:\n    cluster: c\n    user: nobody\ncurrent-context: c\nusers:\n- name: nobody\n  user: {{}}\n",
        cluster.port
    );
    std::fs::write(&anonymous, config).unwrap();
    let kubeconfig = anonymous.display().to_string();
    let error = cluster.fails(&[
        "--kubeconfig",
        &kubeconfig,
        "--token",
        "wrong",
        "get",
        "configmaps",
    ]);
    assert!(
        error.contains("error: You must be logged in to the server"),
        "{error}"
    );
    // With no credentials at all kubectl would prompt for a password; kube-rs just asks, and
    // is anonymous, whom the default Node,RBAC lets read only health, version and discovery.
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&anonymous).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let anonymous_client = kube::Client::try_from(config).unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(anonymous_client.clone(), "default");
    match configmaps.list(&Default::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(
                (status.code, status.reason.as_str(), status.message.as_str()),
                (403, "Forbidden", "configmaps is forbidden: User \"system:anonymous\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\"")
            )
        }
        other => panic!("expected 403, got {other:?}"),
    }
    // Health and version stay public, as upstream's system:public-info-viewer allows.
    let request = http::Request::get("/healthz").body(Vec::new()).unwrap();
    assert_eq!(anonymous_client.request_text(request).await.unwrap(), "ok");
}

async fn discovery_lists_resources_with_short_names(cluster: &mut Cluster) {
    let resources = cluster.ok(&["api-resources"]);
    let configmaps = resources
        .lines()
        .find(|l| l.starts_with("configmaps "))
        .expect("configmaps listed");
    let columns: Vec<&str> = configmaps.split_whitespace().collect();
    assert_eq!(columns, ["configmaps", "cm", "v1", "true", "ConfigMap"]);
    let legacy = json(&cluster.ok(&["get", "--raw", "/api/v1"]));
    let names: Vec<&str> = legacy["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"namespaces/status") && names.contains(&"namespaces/finalize"),
        "{names:?}"
    );
    let versions = json(&cluster.ok(&["get", "--raw", "/api"]));
    assert_eq!(versions["versions"][0], "v1");
}

async fn multi_document_create_then_get_in_every_format(cluster: &mut Cluster) {
    let created = cluster.ok_stdin(&["create", "-f", "-"], NAMESPACE_AND_CONFIGMAP);
    assert_eq!(
        created.trim(),
        "namespace/lab created\nconfigmap/settings created"
    );
    let object = json(&cluster.ok(&["get", "configmap", "settings", "-n", "lab", "-o", "json"]));
    assert_eq!(object["data"]["color"], "blue");
    assert!(object["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| u.len() == 36));
    assert!(
        object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
    assert!(object["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let yaml = cluster.ok(&["get", "cm", "settings", "-n", "lab", "-o", "yaml"]);
    assert!(yaml.contains("  color: blue"), "{yaml}");
    assert_eq!(
        cluster.ok(&["get", "cm", "-n", "lab", "-o", "name"]).trim(),
        "configmap/settings"
    );
    assert_eq!(
        cluster.ok(&[
            "get",
            "cm",
            "settings",
            "-n",
            "lab",
            "-o",
            "jsonpath={.data.size}"
        ]),
        "large"
    );
    let custom = cluster.ok(&[
        "get",
        "cm",
        "-n",
        "lab",
        "-o",
        "custom-columns=NAME:.metadata.name,COLOR:.data.color",
    ]);
    assert_eq!(
        custom.lines().collect::<Vec<_>>(),
        ["NAME       COLOR", "settings   blue"]
    );
    let table = cluster.ok(&["get", "cm", "-n", "lab"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "DATA", "AGE"]);
    assert!(
        table.lines().nth(1).unwrap().starts_with("settings   2 "),
        "{table}"
    );
    let all = cluster.ok(&["get", "cm", "-A"]);
    assert!(
        all.lines().next().unwrap().starts_with("NAMESPACE"),
        "{all}"
    );
    assert!(all.contains("lab         settings"), "{all}");
    let namespaces = cluster.ok(&["get", "ns"]);
    for name in [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "lab",
    ] {
        assert!(
            namespaces
                .lines()
                .any(|l| l.starts_with(name) && l.contains("Active")),
            "{namespaces}"
        );
    }
    cluster.ok(&["delete", "cm", "settings", "-n", "lab"]);
    assert!(cluster
        .fails(&["get", "cm", "settings", "-n", "lab"])
        .contains("NotFound"));
}

async fn selectors_filter_lists(cluster: &mut Cluster) {
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        let doc = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n    app: {app}\n");
        cluster.ok_stdin(&["create", "-f", "-"], &doc);
    }
    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["get", "cm", "-o", "jsonpath={.items[*].metadata.name}"];
        all.extend_from_slice(args);
        cluster
            .ok(&all)
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(names(&["-l", "app=web"]), ["a", "b"]);
    assert_eq!(names(&["-l", "app!=web"]), ["c"]);
    assert_eq!(names(&["-l", "app in (db)"]), ["c"]);
    assert_eq!(names(&["--field-selector", "metadata.name=b"]), ["b"]);
    assert_eq!(
        names(&["--field-selector", "metadata.name!=b", "-l", "app=web"]),
        ["a"]
    );
    let error = cluster.fails(&["get", "cm", "--field-selector", "spec.nope=x"]);
    assert!(
        error.contains("field label not supported: spec.nope"),
        "{error}"
    );
}

async fn errors_read_like_upstream(cluster: &mut Cluster) {
    assert!(cluster
        .fails(&["get", "cm", "nope"])
        .contains(r#"Error from server (NotFound): configmaps "nope" not found"#));
    let missing_ns = cluster.kubectl_version(
        33,
        &["create", "-f", "-", "-n", "ghost"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"),
    );
    assert!(String::from_utf8_lossy(&missing_ns.stderr).contains(r#"namespaces "ghost" not found"#));
    let doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: twice\n";
    cluster.ok_stdin(&["create", "-f", "-"], doc);
    let again = cluster.kubectl_version(33, &["create", "-f", "-"], Some(doc));
    assert!(String::from_utf8_lossy(&again.stderr).contains(r#"configmaps "twice" already exists"#));
    let invalid = cluster.kubectl_version(
        33,
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n"),
    );
    let stderr = String::from_utf8_lossy(&invalid.stderr);
    assert!(stderr.contains(r#"ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain"#), "{stderr}");
    let unknown = cluster.kubectl_version(
        33,
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\nbogus: 1\n"),
    );
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("unknown field \"bogus\""), "{stderr}");
    let gone = cluster.fails(&["get", "--raw", "/api/v1/nothing"]);
    assert!(gone.contains("NotFound"), "{gone}");
}

async fn stale_updates_conflict(cluster: &mut Cluster) {
    cluster.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cas\ndata:\n  v: \"1\"\n",
    );
    let stale = cluster.ok(&["get", "cm", "cas", "-o", "json"]);
    let mut first = json(&stale);
    first["data"]["v"] = "2".into();
    cluster.ok_stdin(&["replace", "-f", "-"], &first.to_string());
    let mut second = json(&stale);
    second["data"]["v"] = "3".into();
    let out = cluster.kubectl_version(33, &["replace", "-f", "-"], Some(&second.to_string()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"Operation cannot be fulfilled on configmaps "cas": the object has been modified; please apply your changes to the latest version and try again"#),
        "{stderr}"
    );
    assert_eq!(
        cluster.ok(&["get", "cm", "cas", "-o", "jsonpath={.data.v}"]),
        "2"
    );
}

async fn get_watch_streams_changes(cluster: &mut Cluster) {
    let mut watch = Command::new(e2e::kubectl_path(33))
        .args(["get", "configmaps", "--watch", "--output-watch-events"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("HOME", cluster.dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    cluster.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n",
    );
    let mut object = json(&cluster.ok(&["get", "cm", "watched", "-o", "json"]));
    object["data"] = serde_json::json!({"seen": "yes"});
    cluster.ok_stdin(&["replace", "-f", "-"], &object.to_string());
    cluster.ok(&["delete", "cm", "watched"]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    watch.kill().unwrap();
    let output = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(events, ["EVENT", "ADDED", "MODIFIED", "DELETED"], "{text}");
}

async fn an_old_resource_version_is_gone(cluster: &mut Cluster) {
    for i in 0..3 {
        cluster.ok_stdin(
            &["create", "-f", "-"],
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old-{i}\n"),
        );
    }
    cluster.restart().await;
    let raw = cluster.ok(&[
        "get",
        "--raw",
        "/api/v1/configmaps?watch=true&resourceVersion=1&timeoutSeconds=1",
    ]);
    let event = json(raw.lines().next().unwrap());
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");
    assert!(event["object"]["message"]
        .as_str()
        .unwrap()
        .starts_with("too old resource version: 1 ("));
}

async fn chunked_lists_page_through_everything(cluster: &mut Cluster) {
    let docs: String = (0..25)
        .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: page-{i:02}\n"))
        .collect();
    cluster.ok_stdin(&["create", "-f", "-"], &docs);
    let listed = cluster.ok(&["get", "cm", "--chunk-size", "10", "-o", "name"]);
    assert_eq!(listed.lines().count(), 25);
    let first = json(&cluster.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps?limit=10",
    ]));
    assert_eq!(first["items"].as_array().unwrap().len(), 10);
    assert_eq!(first["metadata"]["remainingItemCount"], 15);
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    let second = json(&cluster.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/default/configmaps?limit=10&continue={token}"),
    ]));
    assert_eq!(second["items"][0]["metadata"]["name"], "page-10");
    assert_eq!(
        second["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"],
        "one point in time"
    );
}

async fn restart_keeps_objects_and_revisions_grow(cluster: &mut Cluster) {
    cluster.ok_stdin(&["create", "-f", "-"], NAMESPACE_AND_CONFIGMAP);
    let before = json(&cluster.ok(&["get", "cm", "settings", "-n", "lab", "-o", "json"]));
    cluster.restart().await;
    let after = json(&cluster.ok(&["get", "cm", "settings", "-n", "lab", "-o", "json"]));
    assert_eq!(
        before, after,
        "the object survives unchanged, resourceVersion included"
    );
    cluster.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: later\n  namespace: lab\n",
    );
    let later = json(&cluster.ok(&["get", "cm", "later", "-n", "lab", "-o", "json"]));
    let rv = |v: &Value| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    assert!(rv(&later) > rv(&before));
}

async fn deleting_a_namespace_makes_it_terminating(cluster: &mut Cluster) {
    cluster.ok_stdin(&["create", "-f", "-"], NAMESPACE_AND_CONFIGMAP);
    cluster.ok(&["delete", "namespace", "lab", "--wait=false"]);
    let phase = cluster.ok(&["get", "ns", "lab", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(phase, "Terminating");
    let out = cluster.kubectl_version(
        33,
        &["create", "-f", "-", "-n", "lab"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: late\n"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Forbidden") && stderr.contains("because it is being terminated"),
        "{stderr}"
    );
}

async fn kube_rs_lists_and_watches(cluster: &mut Cluster) {
    let client = cluster.client().await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client, "default");
    let events = watcher(configmaps.clone(), watcher::Config::default()).applied_objects();
    let mut events = Box::pin(events);
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("from-kube-rs".into());
    cm.data = Some([("k".to_string(), "v".to_string())].into());
    configmaps
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), events.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seen.metadata.name.as_deref(), Some("from-kube-rs"));
    let listed = configmaps.list(&Default::default()).await.unwrap();
    assert!(listed
        .items
        .iter()
        .any(|c| c.metadata.name.as_deref() == Some("from-kube-rs")));
}

/// A continue token whose revision was compacted away is 410 Expired, as upstream answers.
async fn compacted_continue_tokens_expire(backend: e2e::Backend) {
    let cluster = Cluster::start_with(backend, &["--etcd-compaction-interval", "500ms"]).await;
    let docs: String = (0..5)
        .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n"))
        .collect();
    cluster.ok_stdin(&["create", "-f", "-"], &docs);
    let first = json(&cluster.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps?limit=2",
    ]));
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    cluster.ok(&["create", "configmap", "later"]);
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let error = cluster.fails(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/default/configmaps?limit=2&continue={token}"),
    ]);
    assert!(
        error.contains("Expired") || error.contains("410") || error.contains("too old"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_continue_tokens_expire_embedded() {
    compacted_continue_tokens_expire(e2e::Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_continue_tokens_expire_etcd() {
    compacted_continue_tokens_expire(e2e::Backend::Etcd).await;
}

/// Oversized bodies are 413, malformed ones 400, unknown content types 415, as upstream.
async fn bad_requests_get_clear_statuses(cluster: &mut Cluster) {
    let client = cluster.client().await;
    let send = |content_type: &str, body: Vec<u8>| {
        http::Request::post("/api/v1/namespaces/default/configmaps")
            .header("content-type", content_type)
            .body(body)
            .unwrap()
    };
    let huge = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"huge"}},"data":{{"x":"{}"}}}}"#,
        "a".repeat(4 << 20)
    );
    for (request, code) in [
        (send("application/json", huge.into_bytes()), 413),
        (send("application/json", b"{not json".to_vec()), 400),
        (
            send("application/vnd.kubernetes.protobuf", b"garbage".to_vec()),
            400,
        ),
        (send("text/plain", b"hello".to_vec()), 415),
    ] {
        match client.request_text(request).await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, code, "{status:?}"),
            other => panic!("expected {code}, got {other:?}"),
        }
    }
    assert!(
        cluster.fails(&["get", "cm", "huge"]).contains("NotFound"),
        "nothing half-written"
    );
}

/// kube-rs's streaming lists (`sendInitialEvents`) get the initial state then a bookmark.
async fn streaming_list_watches_send_initial_events(cluster: &mut Cluster) {
    cluster.ok(&["create", "configmap", "before"]);
    let configmaps: Api<ConfigMap> = Api::namespaced(cluster.client().await, "default");
    let mut events = Box::pin(watcher(
        configmaps,
        watcher::Config::default().streaming_lists(),
    ));
    let mut initial = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match event {
            watcher::Event::InitApply(cm) => initial.push(cm.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, ["before"]);
}

/// Static bearer tokens from `--token-auth-file` (upstream's CSV format) authenticate, with
/// their groups (a binding to one of them lets alice read).
async fn token_file_users_are_authenticated(backend: e2e::Backend) {
    let tokens = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tokens.path(), "s3cr3t-token,alice,1001,\"dev,ops\"\n").unwrap();
    let path = tokens.path().display().to_string();
    let cluster = Cluster::start_with(backend, &["--token-auth-file", &path]).await;
    cluster.ok(&[
        "create",
        "clusterrolebinding",
        "ops-view",
        "--clusterrole=view",
        "--group=ops",
    ]);
    let as_token =
        |token: &str| cluster.kubectl_as_token(token, &["get", "namespaces", "-o", "name"]);
    let ok = as_token("s3cr3t-token");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("namespace/kube-system"));
    let wrong = as_token("not-the-token");
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("You must be logged in to the server"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_users_are_authenticated_embedded() {
    token_file_users_are_authenticated(e2e::Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_users_are_authenticated_etcd() {
    token_file_users_are_authenticated(e2e::Backend::Etcd).await;
}
