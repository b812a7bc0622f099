//! Impersonation under `--authorization-mode=RBAC` (`kubectl --as`, `--as-group`): the admin
//! may act as anyone, a user only as whom a role lets them impersonate, and every refusal
//! is upstream's, word for word.

use std::time::{Duration, Instant};

use e2e::{Backend, Cluster};

/// Starts a cluster where jane and bob hold tokens and RBAC authorizes them.
async fn rbac_cluster(backend: Backend) -> (Cluster, tempfile::NamedTempFile) {
    let tokens = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tokens.path(), "jane-token,jane,1001\nbob-token,bob,1002\n").unwrap();
    let path = tokens.path().display().to_string();
    let cluster = Cluster::start_with(
        backend,
        &["--authorization-mode", "RBAC", "--token-auth-file", &path],
    )
    .await;
    (cluster, tokens)
}

e2e::with_each_backend!(
    the_admin_acts_as_anyone,
    users_impersonate_only_whom_they_may,
    groups_without_a_user_are_refused,
);

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Sends GET `path` with bearer `token` and `headers`: the body, or the refusal's Status
/// (for a plain-text refusal, kube-rs's Status carrying the text as its message).
async fn get_as(
    cluster: &Cluster,
    token: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<String, Box<kube::core::Status>> {
    let client = cluster.client_as_token(token).await;
    let mut request = http::Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    match client.request_text(request.body(Vec::new()).unwrap()).await {
        Ok(body) => Ok(body),
        Err(kube::Error::Api(status)) => Err(status),
        Err(other) => panic!("{path}: {other}"),
    }
}

/// Runs `check` until it holds: RBAC changes reach the authorizer through a watch, a few
/// milliseconds after the write that made them.
async fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match check() {
            Ok(()) => return,
            Err(last) if Instant::now() > deadline => panic!("{what}: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The admin (system:masters) may impersonate anyone: `auth whoami` shows the impersonated
/// user, jane's requests get jane's 403, and a service account gets its groups.
async fn the_admin_acts_as_anyone(backend: Backend) {
    let (cluster, _tokens) = rbac_cluster(backend).await;
    let whoami = |args: &[&str]| {
        let mut all = vec![
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        ];
        all.extend_from_slice(args);
        cluster.ok(&all)
    };
    assert_eq!(
        whoami(&["--as", "jane", "--as-group", "devs"]),
        r#"jane ["devs","system:authenticated"]"#
    );
    assert_eq!(
        whoami(&["--as", "system:serviceaccount:default:default"]),
        r#"system:serviceaccount:default:default ["system:serviceaccounts","system:serviceaccounts:default","system:authenticated"]"#
    );
    assert!(cluster.fails(&["get", "pods", "--as", "jane"]).contains(
        r#"Error from server (Forbidden): pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "default""#
    ));
    assert!(cluster
        .fails(&["get", "pods", "--as", "system:serviceaccount:default:default"])
        .contains(r#"Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:default:default" cannot list resource "pods" in API group "" in the namespace "default""#));
    // `auth can-i` answers for jane (and exits 1 for "no").
    let can_i = cluster.kubectl(&["auth", "can-i", "list", "pods", "--as", "jane"]);
    assert_eq!(String::from_utf8_lossy(&can_i.stdout), "no\n");
}

/// bob may impersonate nobody until a ClusterRole lets him impersonate jane; then he acts
/// as jane (and reads what jane may read) but still as no one else.
async fn users_impersonate_only_whom_they_may(backend: Backend) {
    let (cluster, _tokens) = rbac_cluster(backend).await;
    let bob = |args: &[&str]| cluster.kubectl_as_token("bob-token", args);
    // kubectl's discovery is refused first, which it reports as upstream's kubectl does;
    // a raw GET shows the refusal itself.
    let output = bob(&["get", "pods", "--as", "jane"]);
    assert!(!output.status.success(), "bob acted as jane");
    assert!(
        stderr(&output).contains("Error from server (Forbidden): unknown"),
        "{}",
        stderr(&output)
    );
    let pods = "/api/v1/namespaces/default/pods";
    let raw_as = |extra: &[&str]| {
        let mut args = vec!["get", "--raw", pods];
        args.extend_from_slice(extra);
        stderr(&bob(&args))
    };
    let refused = r#"users "jane" is forbidden: User "bob" cannot impersonate resource "users" in API group "" at the cluster scope"#;
    assert!(raw_as(&["--as", "jane"]).contains(refused));
    let status = get_as(&cluster, "bob-token", pods, &[("impersonate-user", "jane")])
        .await
        .unwrap_err();
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(status.message, refused);
    let details = status.details.unwrap();
    assert_eq!(
        (
            details.name.as_str(),
            details.group.as_str(),
            details.kind.as_str()
        ),
        ("jane", "", "users")
    );

    cluster.ok_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: impersonate-jane
rules:
- apiGroups: [""]
  resources: ["users"]
  resourceNames: ["jane"]
  verbs: ["impersonate"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: bob-impersonates-jane
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: impersonate-jane
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: bob
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: jane-views
  namespace: default
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: view
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: jane
"#,
    );
    eventually("bob lists pods as jane", || {
        let output = bob(&["get", "pods", "--as", "jane"]);
        match output.status.success() {
            true => Ok(()),
            false => Err(stderr(&output)),
        }
    })
    .await;
    // bob himself still may not, and may not be anyone else, nor add a group.
    assert!(stderr(&bob(&["get", "pods"])).contains(
        r#"pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "default""#
    ));
    assert!(raw_as(&["--as", "alice"]).contains(
        r#"users "alice" is forbidden: User "bob" cannot impersonate resource "users" in API group "" at the cluster scope"#
    ));
    assert!(raw_as(&["--as", "jane", "--as-group", "system:masters"]).contains(
        r#"groups "system:masters" is forbidden: User "bob" cannot impersonate resource "groups" in API group "" at the cluster scope"#
    ));
    // The reviews answer for jane too.
    let rules = String::from_utf8_lossy(&bob(&["auth", "can-i", "--list", "--as", "jane"]).stdout)
        .into_owned();
    assert!(
        rules
            .lines()
            .any(|line| line.starts_with("pods ") && line.contains("[get list watch]")),
        "{rules}"
    );
    assert_eq!(
        String::from_utf8_lossy(
            &bob(&[
                "auth",
                "whoami",
                "--as",
                "jane",
                "-o",
                "jsonpath={.status.userInfo.username}"
            ])
            .stdout
        ),
        "jane"
    );
}

/// Groups, a UID or extras without a user: upstream v1.33's plain-text internal error
/// (kubectl refuses `--as-group` without `--as` itself, so this is a raw request).
async fn groups_without_a_user_are_refused(backend: Backend) {
    let (cluster, _tokens) = rbac_cluster(backend).await;
    let status = get_as(
        &cluster,
        "bob-token",
        "/api/v1/namespaces?limit=1",
        &[
            ("impersonate-group", "system:masters"),
            ("impersonate-uid", "1"),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code, 500);
    assert_eq!(
        status.message,
        r#"Internal Server Error: "/api/v1/namespaces?limit=1": requested [{Group  system:masters    } {UID  1  authentication.k8s.io/v1  }] without impersonating a user"#
    );
}
