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
    let client = cluster.anonymous_client().await;
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
    cluster.create_default_service_account("default");
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

/// kubeadm's `--use-service-account-credentials`: each controller writes as its own service
/// account in kube-system, which the manager creates and gets tokens for, and the bootstrap
/// policy alone lets them roll out a Deployment and delete a namespace, with no extra binding.
async fn controllers_work_as_their_service_accounts(backend: Backend) {
    let (cluster, _tokens) = rbac_cluster(backend).await;
    let manager = cluster.start_controller_manager(&["--leader-elect=false"]);
    let _nodes = cluster.start_node_simulator(&["--nodes", "1", "--pod-startup-delay=100ms"]);
    let _scheduler = cluster.start_scheduler(&[]);
    let in_log = |what: &str| format!("{what}; controller-manager log:\n{}", manager.log());
    e2e::fixtures::default_service_account(&cluster, "default").await;
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "--image",
        "nginx",
        "--replicas",
        "3",
    ]);
    eventually_within("3 web pods Running", Duration::from_secs(60), || {
        let phases = cluster.ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ]);
        match phases
            .split_whitespace()
            .filter(|p| *p == "Running")
            .count()
        {
            3 => Ok(()),
            _ => Err(in_log(&format!("phases: {phases:?}"))),
        }
    })
    .await;
    let replica_set = cluster.ok(&[
        "get",
        "replicasets",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let owners = cluster.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {end}",
    ]);
    let expected = format!("ReplicaSet/{replica_set}");
    assert_eq!(
        owners.split_whitespace().collect::<Vec<_>>(),
        [expected.as_str(); 3]
    );

    cluster.ok(&["create", "namespace", "doomed"]);
    cluster.ok(&["create", "configmap", "settings", "-n", "doomed"]);
    cluster.ok(&["delete", "namespace", "doomed", "--wait=false"]);
    eventually_within("namespace doomed deleted", Duration::from_secs(60), || {
        let output = cluster.kubectl(&["get", "namespace", "doomed"]);
        match stderr(&output).contains("NotFound") {
            true => Ok(()),
            false => Err(in_log(&format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                stderr(&output)
            ))),
        }
    })
    .await;

    let accounts = cluster.ok(&["get", "serviceaccounts", "-n", "kube-system", "-o", "name"]);
    for account in [
        "replicaset-controller",
        "deployment-controller",
        "generic-garbage-collector",
        "namespace-controller",
        "service-account-controller",
        "root-ca-cert-publisher",
        "endpoint-controller",
        "endpointslice-controller",
        "node-controller",
        "clusterrole-aggregation-controller",
    ] {
        assert!(
            accounts.contains(&format!("serviceaccount/{account}\n")),
            "{account} missing from kube-system:\n{accounts}"
        );
    }
    assert!(
        !manager.log().contains("Forbidden"),
        "a controller was refused something:\n{}",
        manager.log()
    );
}

/// Runs `check` until it holds: RBAC changes reach the authorizer through a watch, a few
/// milliseconds after the write that made them.
async fn eventually(what: &str, check: impl FnMut() -> Result<(), String>) {
    eventually_within(what, Duration::from_secs(10), check).await;
}

/// [`eventually`], for checks that wait on controllers (pods started, namespaces emptied).
async fn eventually_within(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return,
            Err(last) if Instant::now() > deadline => panic!("{what}: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The words of each line of a `kubectl get` table.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.split_whitespace().map(String::from).collect())
        .collect()
}

/// As the admin: a namespace `lab` where a Role and RoleBinding made by `kubectl create` let
/// jane read pods.
fn grant_jane_pod_reading(cluster: &Cluster) {
    cluster.ok(&["create", "namespace", "lab"]);
    cluster.ok(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get,list,watch",
        "--resource=pods",
        "-n",
        "lab",
    ]);
    cluster.ok(&[
        "create",
        "rolebinding",
        "jane-reads",
        "--role=pod-reader",
        "--user=jane",
        "-n",
        "lab",
    ]);
}

/// The learner's lab: an admin grants jane read access to pods in one namespace with a
/// Role and a RoleBinding made by `kubectl create`, jane can read them there and nowhere
/// else, and kubectl lists roles and bindings with upstream's columns.
async fn roles_and_bindings_grant_access(backend: Backend) {
    let (cluster, _tokens) = rbac_cluster(backend).await;
    let jane = |args: &[&str]| cluster.kubectl_as_token("jane-token", args);
    grant_jane_pod_reading(&cluster);
    eventually("jane lists pods in lab", || {
        let output = jane(&["get", "pods", "-n", "lab"]);
        match output.status.success() {
            true => Ok(()),
            false => Err(stderr(&output)),
        }
    })
    .await;
    let output = jane(&["get", "pods"]);
    assert!(!output.status.success(), "jane listed pods in default");
    assert!(
        stderr(&output).contains(r#"Error from server (Forbidden): pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "default""#),
        "{}",
        stderr(&output)
    );

    let listed = rows(&cluster.ok(&["get", "roles,rolebindings", "-n", "lab"]));
    assert_eq!(listed[0], ["NAME", "CREATED", "AT"], "{listed:?}");
    assert_eq!(listed[1][0], "role.rbac.authorization.k8s.io/pod-reader");
    assert!(
        listed[1][1].len() == 20 && listed[1][1].ends_with('Z'),
        "CREATED AT is an RFC 3339 time: {listed:?}"
    );
    assert_eq!(listed[2], ["NAME", "ROLE", "AGE"], "{listed:?}");
    assert_eq!(
        listed[3][..2],
        [
            "rolebinding.rbac.authorization.k8s.io/jane-reads",
            "Role/pod-reader"
        ]
    );
    let wide = rows(&cluster.ok(&["get", "rolebindings", "-n", "lab", "-o", "wide"]));
    assert_eq!(
        wide[0],
        ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    );
    assert_eq!(wide[1][..2], ["jane-reads", "Role/pod-reader"]);
    assert_eq!(wide[1][3..], ["jane"]);

    // Cluster-wide: a ClusterRole bound by a ClusterRoleBinding to a user, a group and a
    // service account.
    cluster.ok(&[
        "create",
        "clusterrole",
        "node-viewer",
        "--verb=get,list",
        "--resource=nodes",
    ]);
    cluster.ok(&[
        "create",
        "clusterrolebinding",
        "node-viewers",
        "--clusterrole=node-viewer",
        "--user=jane",
        "--group=auditors",
        "--serviceaccount=lab:ci",
    ]);
    let wide = rows(&cluster.ok(&["get", "clusterrolebinding", "node-viewers", "-o", "wide"]));
    assert_eq!(
        wide[0],
        ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    );
    assert_eq!(wide[1][..2], ["node-viewers", "ClusterRole/node-viewer"]);
    assert_eq!(wide[1][3..], ["jane", "auditors", "lab/ci"]);
    eventually("jane lists nodes", || {
        let output = jane(&["get", "nodes"]);
        match output.status.success() {
            true => Ok(()),
            false => Err(stderr(&output)),
        }
    })
    .await;

    // The bootstrap policy is served like any other roles.
    let names: Vec<String> = rows(&cluster.ok(&["get", "clusterroles", "--no-headers"]))
        .into_iter()
        .map(|row| row[0].clone())
        .collect();
    for role in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "node-viewer",
    ] {
        assert!(names.iter().any(|n| n == role), "{role} not in {names:?}");
    }

    // Upstream's validation: rules need verbs, and a binding's role is fixed.
    let invalid = cluster.kubectl_version(
        33,
        &["create", "-f", "-"],
        Some(
            r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "no-verbs", "namespace": "lab"},
                "rules": [{"apiGroups": [""], "resources": ["pods"]}]}"#,
        ),
    );
    assert!(
        stderr(&invalid).contains(r#"The Role "no-verbs" is invalid: rules[0].verbs: Required value: verbs must contain at least one value"#),
        "{}",
        stderr(&invalid)
    );
    let changed = cluster.fails(&[
        "patch",
        "rolebinding",
        "jane-reads",
        "-n",
        "lab",
        "--type=merge",
        "-p",
        r#"{"roleRef": {"name": "other"}}"#,
    ]);
    assert!(
        changed.contains(r#"The RoleBinding "jane-reads" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", Name:"other"}: cannot change roleRef"#),
        "{changed}"
    );
}

/// Privilege escalation: jane, who may write roles and bindings in lab and read pods
/// there, may grant reading pods but not deleting them, and may bind a role only with what
/// it grants or with the `bind` verb on it.
async fn escalation_is_refused(backend: Backend) {
    let (cluster, _tokens) = rbac_cluster(backend).await;
    let jane = |args: &[&str]| cluster.kubectl_as_token("jane-token", args);
    cluster.ok(&["create", "namespace", "lab"]);
    cluster.ok(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get,list,watch",
        "--resource=pods",
        "-n",
        "lab",
    ]);
    cluster.ok(&[
        "create",
        "role",
        "rbac-writer",
        "--verb=create,get,list",
        "--resource=roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io",
        "-n",
        "lab",
    ]);
    for role in ["pod-reader", "rbac-writer"] {
        cluster.ok(&[
            "create",
            "rolebinding",
            &format!("jane-{role}"),
            &format!("--role={role}"),
            "--user=jane",
            "-n",
            "lab",
        ]);
    }
    eventually("jane lists roles and pods in lab", || {
        for args in [["get", "roles", "-n", "lab"], ["get", "pods", "-n", "lab"]] {
            let output = jane(&args);
            if !output.status.success() {
                return Err(stderr(&output));
            }
        }
        Ok(())
    })
    .await;

    let refused = jane(&[
        "create",
        "role",
        "pod-deleter",
        "--verb=get,delete",
        "--resource=pods",
        "-n",
        "lab",
    ]);
    assert!(!refused.status.success(), "jane granted delete on pods");
    assert!(
        stderr(&refused).contains("Error from server (Forbidden): roles.rbac.authorization.k8s.io \"pod-deleter\" is forbidden: user \"jane\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}"),
        "{}",
        stderr(&refused)
    );
    let granted = jane(&[
        "create",
        "role",
        "pod-getter",
        "--verb=get",
        "--resource=pods",
        "-n",
        "lab",
    ]);
    assert!(granted.status.success(), "{}", stderr(&granted));

    // Bindings: to a role whose rules jane holds, yes; to `edit`, no; to `edit` once she
    // may `bind` it, yes.
    let bound = jane(&[
        "create",
        "rolebinding",
        "ci-gets",
        "--role=pod-getter",
        "--serviceaccount=lab:ci",
        "-n",
        "lab",
    ]);
    assert!(bound.status.success(), "{}", stderr(&bound));
    let edit = [
        "create",
        "rolebinding",
        "ci-edits",
        "--clusterrole=edit",
        "--serviceaccount=lab:ci",
        "-n",
        "lab",
    ];
    let refused = jane(&edit);
    assert!(!refused.status.success(), "jane bound edit");
    assert!(
        stderr(&refused).contains("error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io \"ci-edits\" is forbidden: user \"jane\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"bindings\"], Verbs:[\"get\" \"list\" \"watch\"]}\n{APIGroups:[\"\"], Resources:[\"configmaps\"], Verbs:["),
        "{}",
        stderr(&refused)
    );
    cluster.ok(&[
        "create",
        "role",
        "edit-binder",
        "--verb=bind",
        "--resource=clusterroles",
        "--resource-name=edit",
        "-n",
        "lab",
    ]);
    cluster.ok(&[
        "create",
        "rolebinding",
        "jane-binds-edit",
        "--role=edit-binder",
        "--user=jane",
        "-n",
        "lab",
    ]);
    eventually("jane binds edit", || {
        let output = jane(&edit);
        match output.status.success() {
            true => Ok(()),
            false => Err(stderr(&output)),
        }
    })
    .await;
}

/// The controller-manager's aggregation controller fills `view` (and so `edit` and `admin`)
/// with the rules of a ClusterRole labelled to aggregate to it, and takes them away again.
async fn cluster_roles_aggregate(backend: Backend) {
    let (cluster, _tokens) = rbac_cluster(backend).await;
    // The controller-manager runs every controller as itself until it uses per-controller
    // service-account credentials; grant it this controller's bootstrap role meanwhile.
    cluster.ok(&[
        "create",
        "clusterrolebinding",
        "aggregation-by-manager",
        "--clusterrole=system:controller:clusterrole-aggregation-controller",
        "--user=system:kube-controller-manager",
    ]);
    let manager = cluster.start_controller_manager(&[
        "--leader-elect=false",
        "--controllers",
        "clusterrole-aggregation-controller",
    ]);
    // A role for a resource the cluster does not serve (yet): kubectl create would refuse it.
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widget-reader
  labels: {rbac.authorization.k8s.io/aggregate-to-view: \"true\"}
rules:
- apiGroups: [example.com]
  resources: [widgets]
  verbs: [get, list]
",
    );
    let holds_widgets = |role: &str| {
        cluster
            .ok(&["get", "clusterrole", role, "-o", "json"])
            .contains("\"widgets\"")
    };
    for role in ["view", "edit", "admin"] {
        eventually(&format!("{role} aggregates widgets"), || {
            holds_widgets(role).then_some(()).ok_or_else(|| {
                format!(
                    "{role} has no widgets rule; manager log:\n{}",
                    manager.log()
                )
            })
        })
        .await;
    }
    cluster.ok(&["delete", "clusterrole", "widget-reader"]);
    eventually("view drops widgets", || {
        (!holds_widgets("view"))
            .then_some(())
            .ok_or_else(|| "view still has the widgets rule".into())
    })
    .await;
}

/// `kubectl auth can-i` (SelfSubjectAccessReview), `auth can-i --list`
/// (SelfSubjectRulesReview) and SubjectAccessReviews answer what the authorizer then does.
async fn reviews_agree_with_what_happens(backend: Backend) {
    let (cluster, _tokens) = rbac_cluster(backend).await;
    grant_jane_pod_reading(&cluster);
    let jane = |args: &[&str]| cluster.kubectl_as_token("jane-token", args);
    eventually("jane can list pods in lab", || {
        let output = jane(&["auth", "can-i", "list", "pods", "-n", "lab"]);
        let answer = String::from_utf8_lossy(&output.stdout).trim().to_string();
        (answer == "yes").then_some(()).ok_or(answer)
    })
    .await;
    assert!(jane(&["get", "pods", "-n", "lab"]).status.success());
    for (args, expected) in [
        (vec!["auth", "can-i", "delete", "pods", "-n", "lab"], "no"),
        (vec!["auth", "can-i", "list", "pods", "-n", "default"], "no"),
        (vec!["auth", "can-i", "get", "/version"], "yes"),
        (vec!["auth", "can-i", "get", "/metrics"], "no"),
    ] {
        let output = jane(&args);
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            expected,
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(output.status.success(), expected == "yes", "{args:?}");
    }
    let list = jane(&["auth", "can-i", "--list", "-n", "lab"]);
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    let pods = list
        .lines()
        .find(|line| line.starts_with("pods "))
        .unwrap_or_else(|| panic!("no pods rule in:\n{list}"));
    assert!(pods.ends_with("[get list watch]"), "{pods}");
    assert!(
        list.lines()
            .any(|l| l.contains("/version") && l.ends_with("[get]")),
        "{list}"
    );
    // The admin asks about jane.
    let review = |namespace: &str| {
        format!(
            r#"{{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{{"user":"jane","groups":["system:authenticated"],"resourceAttributes":{{"namespace":"{namespace}","verb":"list","resource":"pods"}}}}}}"#
        )
    };
    let allowed_by =
        r#"RBAC: allowed by RoleBinding "jane-reads/lab" of Role "pod-reader" to User "jane""#;
    for (namespace, allowed, reason) in [("lab", true, Some(allowed_by)), ("default", false, None)]
    {
        let answer = cluster.ok_stdin(
            &["create", "-f", "-", "-o", "json", "--validate=false"],
            &review(namespace),
        );
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(
            answer["status"]["allowed"], allowed,
            "{namespace}: {answer}"
        );
        assert_eq!(answer["status"]["reason"].as_str(), reason, "{answer}");
    }
}

e2e::with_each_backend!(
    forbids_with_upstreams_messages,
    the_scheduler_works_under_rbac,
    controllers_work_as_their_service_accounts,
    roles_and_bindings_grant_access,
    escalation_is_refused,
    cluster_roles_aggregate,
    reviews_agree_with_what_happens
);
