//! CertificateSigningRequests as a learner meets them: a key and request made with the real
//! `openssl`, the request submitted and approved with the real `kubectl`, the certificate
//! issued by the controller manager from the cluster CA, and a kubeconfig built with it that
//! authenticates as the request's subject. Denials, refusals (upstream's 422 and 403
//! messages) and the automatic approval of node client certificates under RBAC too.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use e2e::fixtures::{eventually, json};
use e2e::{on_both_backends, Backend, Cluster, Process};

on_both_backends!(
    the_learners_lab,
    denied_requests_are_never_signed,
    bad_requests_are_refused_with_upstreams_messages
);

const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

/// Runs `openssl` in `dir`, failing the test if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new key `<name>.key` in `dir` (RSA, or EC P-256 with `ec`) and a request for `subject`
/// signed with it; the request as `spec.request` carries it (base64 of the PEM).
fn key_and_request(dir: &Path, name: &str, subject: &str, ec: bool) -> String {
    let key = format!("{name}.key");
    if ec {
        let curve = "ec_paramgen_curve:P-256";
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                curve,
                "-out",
                &key,
            ],
        );
    } else {
        openssl(dir, &["genrsa", "-out", &key, "2048"]);
    }
    let csr = format!("{name}.csr");
    openssl(
        dir,
        &["req", "-new", "-key", &key, "-subj", subject, "-out", &csr],
    );
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.join(csr)).unwrap())
}

/// A CertificateSigningRequest manifest as the docs write it.
fn manifest(name: &str, request: &str, signer: &str, usages: &[&str]) -> String {
    let usages: Vec<String> = usages.iter().map(|u| format!("  - {u}\n")).collect();
    format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  request: {request}\n  signerName: {signer}\n  expirationSeconds: 86400\n  usages:\n{}",
        usages.concat()
    )
}

/// The certificate controllers alone, acting as their service account.
fn certificate_controllers(cluster: &Cluster) -> Process {
    cluster.start_controller_manager(&[
        "--leader-elect=false",
        "--controllers=csrapproving,csrsigning,csrcleaner",
    ])
}

/// The certificate issued for `name` (PEM), once the signer has issued it.
async fn issued(cluster: &Cluster, name: &str) -> String {
    let jsonpath = "jsonpath={.status.certificate}";
    let encoded = eventually(10, &format!("a certificate for {name}"), || {
        Some(cluster.ok(&["get", "csr", name, "-o", jsonpath])).filter(|c| !c.is_empty())
    })
    .await;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .unwrap();
    String::from_utf8(pem).unwrap()
}

/// The CONDITION cell of `kubectl get csr <name>`.
fn condition(cluster: &Cluster, name: &str) -> String {
    let table = cluster.ok(&["get", "csr", name, "--no-headers"]);
    table
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string()
}

/// A kubeconfig for the admin's cluster with the client key `<name>.key` and `certificate`,
/// made with `kubectl config` as the docs make it.
fn kubeconfig(cluster: &Cluster, name: &str, certificate: &str) -> PathBuf {
    let dir = cluster.dir();
    std::fs::write(dir.join(format!("{name}.crt")), certificate).unwrap();
    let config = dir.join(format!("{name}.conf"));
    std::fs::copy(cluster.kubeconfig(), &config).unwrap();
    let path = config.display().to_string();
    let kubectl = |args: &[&str]| cluster.ok(&[&["--kubeconfig", &path], args].concat());
    let cluster_name = kubectl(&["config", "view", "-o", "jsonpath={.clusters[0].name}"]);
    let key = dir.join(format!("{name}.key")).display().to_string();
    let crt = dir.join(format!("{name}.crt")).display().to_string();
    kubectl(&[
        "config",
        "set-credentials",
        name,
        &format!("--client-key={key}"),
        &format!("--client-certificate={crt}"),
        "--embed-certs=true",
    ]);
    kubectl(&[
        "config",
        "set-context",
        name,
        &format!("--cluster={cluster_name}"),
        &format!("--user={name}"),
    ]);
    kubectl(&["config", "use-context", name]);
    config
}

/// `kubectl auth whoami` with `config`: the user name and groups it prints.
fn whoami(cluster: &Cluster, config: &Path) -> (String, String) {
    let path = config.display().to_string();
    let table = cluster.ok(&["--kubeconfig", &path, "auth", "whoami"]);
    let value = |attribute: &str| {
        table
            .lines()
            .find_map(|l| l.strip_prefix(attribute))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    (value("Username"), value("Groups"))
}

async fn the_learners_lab(cluster: &mut Cluster) {
    let _controllers = certificate_controllers(cluster);
    let request = key_and_request(cluster.dir(), "jane", "/CN=jane/O=devs", false);
    cluster.ok_stdin(
        &["create", "-f", "-"],
        &manifest("jane", &request, CLIENT_SIGNER, &["client auth"]),
    );
    let table = cluster.ok(&["get", "csr"]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "AGE",
            "SIGNERNAME",
            "REQUESTOR",
            "REQUESTEDDURATION",
            "CONDITION"
        ],
        "{table}"
    );
    assert_eq!(
        [rows[1][0], rows[1][2], rows[1][3], rows[1][4], rows[1][5]],
        ["jane", CLIENT_SIGNER, "kubernetes-admin", "24h", "Pending"],
        "{table}"
    );
    assert_eq!(
        cluster.ok(&["certificate", "approve", "jane"]).trim(),
        "certificatesigningrequest.certificates.k8s.io/jane approved"
    );
    let certificate = issued(cluster, "jane").await;
    assert_eq!(condition(cluster, "jane"), "Approved,Issued");
    let csr = json(&cluster.ok(&["get", "csr", "jane", "-o", "json"]));
    let approved = &csr["status"]["conditions"][0];
    assert_eq!(approved["reason"], "KubectlApprove");
    assert!(approved["lastUpdateTime"].is_string(), "{approved}");

    let config = kubeconfig(cluster, "jane", &certificate);
    assert_eq!(
        whoami(cluster, &config),
        ("jane".into(), "[devs system:authenticated]".into())
    );
}

async fn denied_requests_are_never_signed(cluster: &mut Cluster) {
    let _controllers = certificate_controllers(cluster);
    for name in ["mallory", "jane"] {
        let request = key_and_request(cluster.dir(), name, &format!("/CN={name}"), true);
        cluster.ok_stdin(
            &["create", "-f", "-"],
            &manifest(name, &request, CLIENT_SIGNER, &["client auth"]),
        );
    }
    assert_eq!(
        cluster.ok(&["certificate", "deny", "mallory"]).trim(),
        "certificatesigningrequest.certificates.k8s.io/mallory denied"
    );
    assert_eq!(condition(cluster, "mallory"), "Denied");
    assert!(cluster
        .fails(&["certificate", "approve", "mallory"])
        .contains(r#"certificate signing request "mallory" is already Denied"#));
    // Once a request approved after the denial is issued, the signer has seen both.
    cluster.ok(&["certificate", "approve", "jane"]);
    issued(cluster, "jane").await;
    assert_eq!(condition(cluster, "mallory"), "Denied");
}

async fn bad_requests_are_refused_with_upstreams_messages(cluster: &mut Cluster) {
    let not_pem = base64::engine::general_purpose::STANDARD.encode("hello\n");
    let error = cluster.fails(&[
        "create",
        "-f",
        &write(
            cluster,
            "bad.yaml",
            &manifest("bad", &not_pem, CLIENT_SIGNER, &["client auth"]),
        ),
    ]);
    assert!(
        error.contains(r#"The CertificateSigningRequest "bad" is invalid: spec.request: Invalid value: []byte{0x68, 0x65, 0x6c, 0x6c, 0x6f, 0xa}: PEM block type must be CERTIFICATE REQUEST"#),
        "{error}"
    );
    let request = key_and_request(cluster.dir(), "eve", "/CN=eve/O=system:masters", true);
    let error = cluster.fails(&[
        "create",
        "-f",
        &write(
            cluster,
            "eve.yaml",
            &manifest("eve", &request, "example", &["flying"]),
        ),
    ]);
    for cause in [
        r#"spec.usages[0]: Unsupported value: "flying": supported values: "any", "cert sign""#,
        r#"spec.signerName: Invalid value: "example": must be a fully qualified domain and path of the form 'example.com/signer-name'"#,
    ] {
        assert!(error.contains(cause), "{error}");
    }
    let error = cluster.fails(&[
        "create",
        "-f",
        &write(
            cluster,
            "eve2.yaml",
            &manifest("eve", &request, CLIENT_SIGNER, &["client auth"]),
        ),
    ]);
    assert!(
        error.contains(r#"certificatesigningrequests.certificates.k8s.io "eve" is forbidden: use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"#),
        "{error}"
    );
}

/// Writes `text` to `name` in the cluster's directory; its path.
fn write(cluster: &Cluster, name: &str, text: &str) -> String {
    let path = cluster.dir().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A cluster authorizing with RBAC, with the bearer tokens `tokens` (token-file lines).
async fn rbac_cluster(backend: Backend, tokens: &str) -> (Cluster, tempfile::NamedTempFile) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), tokens).unwrap();
    let path = file.path().display().to_string();
    let args = ["--authorization-mode", "RBAC", "--token-auth-file", &path];
    (Cluster::start_with(backend, &args).await, file)
}

/// Approving needs `approve` on the signer besides `update` on `/approval`.
async fn approving_needs_the_signer(backend: Backend) {
    let (cluster, _tokens) = rbac_cluster(backend, "alice-token,alice,1001\n").await;
    let rules = "--verb=get,list,watch,create,update";
    let resources = "--resource=certificatesigningrequests,certificatesigningrequests/approval";
    cluster.ok(&["create", "clusterrole", "csr-clerk", rules, resources]);
    cluster.ok(&[
        "create",
        "clusterrolebinding",
        "alice-clerk",
        "--clusterrole=csr-clerk",
        "--user=alice",
    ]);
    let request = key_and_request(cluster.dir(), "alice", "/CN=alice", true);
    let manifest = write(
        &cluster,
        "alice.yaml",
        &manifest("alice", &request, CLIENT_SIGNER, &["client auth"]),
    );
    let alice = |args: &[&str]| cluster.kubectl_as_token("alice-token", args);
    assert!(alice(&["create", "-f", &manifest]).status.success());
    let requestor = cluster.ok(&[
        "get",
        "csr",
        "alice",
        "-o",
        "jsonpath={.spec.username} {.spec.groups}",
    ]);
    assert_eq!(requestor, r#"alice ["system:authenticated"]"#);
    let refused = alice(&["certificate", "approve", "alice"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(r#"certificatesigningrequests.certificates.k8s.io "alice" is forbidden: user not permitted to approve requests with signerName "kubernetes.io/kube-apiserver-client""#),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    cluster.ok(&[
        "create",
        "clusterrolebinding",
        "alice-approver",
        "--clusterrole=system:certificates.k8s.io:kube-apiserver-client-approver",
        "--user=alice",
    ]);
    let approved = eventually(10, "alice's approval to be allowed", || {
        let out = alice(&["certificate", "approve", "alice"]);
        out.status.success().then_some(out)
    })
    .await;
    assert_eq!(
        String::from_utf8_lossy(&approved.stdout).trim(),
        "certificatesigningrequest.certificates.k8s.io/alice approved"
    );
}

/// A bootstrap identity allowed `certificatesigningrequests/nodeclient` gets node client
/// certificates without anyone approving them, and the node authenticates with it.
async fn node_client_requests_are_approved_automatically(backend: Backend) {
    let tokens = "bootstrap-token,kubelet-bootstrap,10001,\"system:bootstrappers\"\n";
    let (cluster, _tokens) = rbac_cluster(backend, tokens).await;
    for (binding, role) in [
        ("bootstrap-requests", "system:node-bootstrapper"),
        (
            "bootstrap-node-client",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        ),
    ] {
        cluster.ok(&[
            "create",
            "clusterrolebinding",
            binding,
            &format!("--clusterrole={role}"),
            "--group=system:bootstrappers",
        ]);
    }
    let _controllers = certificate_controllers(&cluster);
    let subject = "/O=system:nodes/CN=system:node:n1";
    let request = key_and_request(cluster.dir(), "n1", subject, true);
    let usages = ["digital signature", "client auth"];
    let manifest = write(
        &cluster,
        "n1.yaml",
        &manifest("node-n1", &request, KUBELET_CLIENT_SIGNER, &usages),
    );
    let created = cluster.kubectl_as_token("bootstrap-token", &["create", "-f", &manifest]);
    assert!(created.status.success(), "{created:?}");
    let certificate = issued(&cluster, "node-n1").await;
    let csr = json(&cluster.ok(&["get", "csr", "node-n1", "-o", "json"]));
    let approved = &csr["status"]["conditions"][0];
    assert_eq!(approved["reason"], "AutoApproved");
    assert_eq!(
        approved["message"],
        "Auto approving kubelet client certificate after SubjectAccessReview."
    );
    let config = kubeconfig(&cluster, "n1", &certificate);
    assert_eq!(
        whoami(&cluster, &config),
        (
            "system:node:n1".into(),
            "[system:nodes system:authenticated]".into()
        )
    );
}

e2e::with_each_backend!(
    in rbac_embedded, rbac_etcd:
    approving_needs_the_signer,
    node_client_requests_are_approved_automatically
);
