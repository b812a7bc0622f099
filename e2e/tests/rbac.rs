//! Authorization with `--authorization-mode=Node,RBAC`, as a kubeadm cluster runs: upstream's
//! bootstrap policy lets users read what it lets them read (discovery, version, health),
//! forbids the rest with upstream's exact messages, and lets the scheduler do its job under
//! its own identity.

use std::time::{Duration, Instant};

use e2e::{Backend, Cluster};

const RBAC: &str = "Node,RBAC";

async fn rbac_cluster(backend: Backend) -> (Cluster, tempfile::NamedTempFile) {
    let tokens = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tokens.path(), "jane-token,jane,1001\n").unwrap();
    let path = tokens.path().display().to_string();
    let cluster = Cluster::start_with(
        backend,
        &["--authorization-mode", RBAC, "--token-auth-file", &path],
    )
    .await;
    (cluster, tokens)
}

/// A GET with no credentials at all: an anonymous request. The status code and the body
/// (or the Status message).
async fn anonymous(cluster: &Cluster, path: &str) -> (u16, String) {
    let server = cluster.ok(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let mut config = kube::Config::new(server.trim().parse().unwrap());
    config.accept_invalid_certs = true;
    let client = kube::Client::try_from(config).unwrap();
    let request = http::Request::get(path).body(Vec::new()).unwrap();
    match client.request_text(request).await {
        Ok(body) => (200, body),
        Err(kube::Error::Api(status)) => (status.code, status.message),
        Err(other) => panic!("{path}: {other}"),
    }
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn forbids_with_upstreams_messages(backend: Backend) {
    let (cluster, _tokens) = rbac_cluster(backend).await;
    // The admin (system:masters) may do anything.
    cluster.ok(&["create", "namespace", "team"]);
    cluster.ok(&["create", "configmap", "settings", "-n", "team"]);

    let jane = |args: &[&str]| cluster.kubectl_as_token("jane-token", args);
    for (args, message) in [
        (
            vec!["get", "pods"],
            r#"Error from server (Forbidden): pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "default""#,
        ),
        (
            vec!["get", "configmap", "settings", "-n", "team"],
            r#"Error from server (Forbidden): configmaps "settings" is forbidden: User "jane" cannot get resource "configmaps" in API group "" in the namespace "team""#,
        ),
        (
            vec!["get", "nodes"],
            r#"Error from server (Forbidden): nodes is forbidden: User "jane" cannot list resource "nodes" in API group "" at the cluster scope"#,
        ),
        (
            vec!["scale", "deployment", "web", "--replicas", "2"],
            r#"deployments.apps "web" is forbidden: User "jane" cannot get resource "deployments" in API group "apps" in the namespace "default""#,
        ),
        (
            vec!["get", "--raw", "/metrics"],
            r#"Error from server (Forbidden): forbidden: User "jane" cannot get path "/metrics""#,
        ),
    ] {
        let output = jane(&args);
        assert!(!output.status.success(), "{args:?} was allowed");
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // What the bootstrap policy grants every authenticated user.
    for args in [
        vec!["get", "--raw", "/version"],
        vec!["get", "--raw", "/readyz"],
        vec!["get", "--raw", "/apis"],
        vec!["api-resources"],
    ] {
        let output = jane(&args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }

    // Anonymous callers: health and version (system:public-info-viewer), nothing else.
    for path in ["/version", "/readyz", "/healthz", "/livez"] {
        let (code, body) = anonymous(&cluster, path).await;
        assert_eq!(code, 200, "{path}: {body}");
    }
    assert_eq!(
        anonymous(&cluster, "/api/v1/pods").await,
        (
            403,
            r#"pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group "" at the cluster scope"#.into()
        )
    );
    assert_eq!(
        anonymous(&cluster, "/apis").await,
        (
            403,
            r#"forbidden: User "system:anonymous" cannot get path "/apis""#.into()
        )
    );
}
/// The scheduler authenticates as `system:kube-scheduler` and schedules with only what the
/// bootstrap policy grants that identity.
async fn the_scheduler_works_under_rbac(backend: Backend) {
    let (cluster, _tokens) = rbac_cluster(backend).await;
    let _nodes = cluster.start_node_simulator(&["--nodes", "1", "--pod-startup-delay=100ms"]);
    let scheduler = cluster.start_scheduler(&[]);
    cluster.ok(&["run", "web", "--image", "nginx"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let node = cluster.ok(&["get", "pod", "web", "-o", "jsonpath={.spec.nodeName}"]);
        if !node.trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "web was not scheduled; scheduler log:\n{}",
            scheduler.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !scheduler.log().contains("Forbidden"),
        "the scheduler was refused something:\n{}",
        scheduler.log()
    );
}

macro_rules! both_backends {
    ($($case:ident),*) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(e2e::Backend::Embedded).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(e2e::Backend::Etcd).await;
                }
            )*
        }
    };
}

both_backends!(
    forbids_with_upstreams_messages,
    the_scheduler_works_under_rbac
);
