//! Admission end to end, through kubectl: what the ServiceAccount plugin does to a pod (the
//! account, the token volume and its mounts, as an upstream `kubectl get pod -o yaml` shows
//! them), opting out of the token, refusing pods of accounts that do not exist, and
//! `--enable-admission-plugins` / `--disable-admission-plugins`. No controller-manager runs:
//! cases create the `default` ServiceAccount it would.

use std::process::Command;

use e2e::fixtures::json;
use e2e::{on_both_backends, Backend, Cluster};
use serde_json::{json, Value};

on_both_backends!(
    kubectl_run_pods_mount_their_token_like_upstream,
    pods_or_their_account_may_opt_out_of_the_token,
    pods_of_missing_accounts_are_forbidden,
);

const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn pod(cluster: &Cluster, name: &str) -> Value {
    json(&cluster.ok(&["get", "pod", name, "-o", "json"]))
}

/// `kubectl run NAME --image=nginx` with `--overrides` of the pod spec, if any.
fn run(cluster: &Cluster, name: &str, spec: Option<Value>) -> std::process::Output {
    let mut args = vec!["run".to_string(), name.into(), "--image=nginx".into()];
    if let Some(spec) = spec {
        args.push("--overrides".into());
        args.push(json!({"spec": spec}).to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cluster.kubectl(&args)
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

async fn kubectl_run_pods_mount_their_token_like_upstream(cluster: &mut Cluster) {
    cluster.create_default_service_account("default");
    assert!(run(cluster, "web", None).status.success());
    let web = pod(cluster, "web");
    let spec = &web["spec"];
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["serviceAccount"], "default");
    let volume = spec["volumes"][0].clone();
    let name = volume["name"].as_str().unwrap_or_default().to_string();
    assert!(
        name.starts_with("kube-api-access-") && name.len() == "kube-api-access-".len() + 5,
        "{name}"
    );
    assert_eq!(
        volume,
        json!({"name": name, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]}})
    );
    assert_eq!(
        spec["containers"][0]["volumeMounts"],
        json!([{"name": name, "readOnly": true, "mountPath": MOUNT_PATH}])
    );
    // What kubectl shows, as an upstream cluster's `kubectl get pod -o yaml` does.
    let yaml = cluster.ok(&["get", "pod", "web", "-o", "yaml"]);
    let expected = format!(
        "    volumeMounts:\n    - mountPath: {MOUNT_PATH}\n      name: {name}\n      readOnly: true\n"
    );
    assert!(yaml.contains(&expected), "{yaml}");
    let expected = format!(
        "  volumes:\n  - name: {name}\n    projected:\n      defaultMode: 420\n      sources:\n      - serviceAccountToken:\n          expirationSeconds: 3607\n          path: token\n      - configMap:\n          items:\n          - key: ca.crt\n            path: ca.crt\n          name: kube-root-ca.crt\n      - downwardAPI:\n          items:\n          - fieldRef:\n              apiVersion: v1\n              fieldPath: metadata.namespace\n            path: namespace\n"
    );
    assert!(yaml.contains(&expected), "{yaml}");
    // What admission adds belongs to no field manager, as upstream's field manager runs
    // before admission.
    let shown = cluster.ok(&["get", "pod", "web", "-o", "json", "--show-managed-fields"]);
    let managed = json(&shown)["metadata"]["managedFields"].to_string();
    assert!(managed.contains("kubectl-run"), "{managed}");
    assert!(!managed.contains("f:volumes"), "{managed}");

    // A pod mounting the path itself keeps its own mount and gets no token volume.
    cluster.ok_stdin(
        &["create", "-f", "-"],
        &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: own\nspec:\n  containers:\n  - name: app\n    image: nginx\n    volumeMounts:\n    - {{name: own, mountPath: {MOUNT_PATH}}}\n  volumes:\n  - {{name: own, emptyDir: {{}}}}\n"),
    );
    let own = pod(cluster, "own");
    assert_eq!(own["spec"]["volumes"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        own["spec"]["containers"][0]["volumeMounts"][0]["name"],
        "own"
    );
}

async fn pods_or_their_account_may_opt_out_of_the_token(cluster: &mut Cluster) {
    cluster.create_default_service_account("default");
    cluster.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: quiet\nautomountServiceAccountToken: false\n",
    );
    let mounted = |name: &str| {
        let spec = pod(cluster, name)["spec"].clone();
        (
            spec.get("volumes").is_some(),
            spec["containers"][0].get("volumeMounts").is_some(),
        )
    };
    assert!(run(
        cluster,
        "quiet",
        Some(json!({"serviceAccountName": "quiet"}))
    )
    .status
    .success());
    assert_eq!(mounted("quiet"), (false, false), "the account opts out");
    let loud = json!({"serviceAccountName": "quiet", "automountServiceAccountToken": true});
    assert!(run(cluster, "loud", Some(loud)).status.success());
    assert_eq!(mounted("loud"), (true, true), "the pod's choice wins");
    let off = json!({"automountServiceAccountToken": false});
    assert!(run(cluster, "off", Some(off)).status.success());
    assert_eq!(mounted("off"), (false, false), "the pod opts out");
    assert_eq!(pod(cluster, "off")["spec"]["serviceAccountName"], "default");
}

async fn pods_of_missing_accounts_are_forbidden(cluster: &mut Cluster) {
    let nobody = run(cluster, "x", Some(json!({"serviceAccountName": "nobody"})));
    assert_eq!(
        stderr(&nobody),
        r#"Error from server (Forbidden): pods "x" is forbidden: error looking up service account default/nobody: serviceaccount "nobody" not found"#
    );
    // Without a controller-manager nobody creates a new namespace's `default` account: the
    // apiserver waits a moment for it, then refuses.
    cluster.ok(&["create", "namespace", "lab"]);
    let lab = cluster.kubectl(&["run", "y", "--image=nginx", "-n", "lab"]);
    assert_eq!(
        stderr(&lab),
        r#"Error from server (Forbidden): pods "y" is forbidden: error looking up service account lab/default: serviceaccount "default" not found"#
    );
    cluster.create_default_service_account("lab");
    cluster.ok(&["run", "y", "--image=nginx", "-n", "lab"]);
    // A generated name is not made yet when the account is looked up.
    let generated = cluster.kubectl_version(
        33,
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: Pod\nmetadata:\n  generateName: gen-\nspec:\n  serviceAccountName: nobody\n  containers:\n  - {name: app, image: nginx}\n"),
    );
    assert!(
        stderr(&generated).contains(
            r#"pods "gen-" is forbidden: error looking up service account default/nobody"#
        ),
        "{}",
        stderr(&generated)
    );
}

/// `--disable-admission-plugins=ServiceAccount`: pods need no account and get no token.
async fn the_service_account_plugin_can_be_disabled(backend: Backend) {
    let cluster =
        Cluster::start_with(backend, &["--disable-admission-plugins=ServiceAccount"]).await;
    cluster.ok(&["run", "web", "--image=nginx"]);
    let spec = pod(&cluster, "web")["spec"].clone();
    assert_eq!(spec.get("serviceAccountName"), None, "{spec}");
    assert_eq!(spec.get("volumes"), None, "{spec}");
    assert_eq!(spec["priority"], 0, "the other plugins still run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_account_plugin_can_be_disabled_embedded() {
    the_service_account_plugin_can_be_disabled(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_account_plugin_can_be_disabled_etcd() {
    the_service_account_plugin_can_be_disabled(Backend::Etcd).await;
}

/// Unknown plugin names stop the apiserver before it serves anything, in upstream's words.
#[test]
fn unknown_plugins_stop_the_apiserver() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(e2e::bin_dir().join("kube-apiserver"))
        .args(["--enable-admission-plugins=ServiceAccount,Bogus"])
        .args(["--disable-admission-plugins=Priority,ServiceAccount"])
        .args(["--cert-dir", &dir.path().join("pki").display().to_string()])
        .args(["--data-dir", &dir.path().join("data").display().to_string()])
        .output()
        .expect("run kube-apiserver (run `cargo build --workspace` first)");
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains(r#"[enable-admission-plugins plugin "Bogus" is unknown, [ServiceAccount] in enable-admission-plugins and disable-admission-plugins overlapped]"#),
        "{log}"
    );
}
