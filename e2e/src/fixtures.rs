//! What the suites share besides the processes: reading kubectl's JSON, polling until the
//! cluster gets somewhere, pod readiness and conditions, and the manifests they create, so
//! each suite file holds its cases and little else.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Cluster, Process};

/// Parses kubectl's `-o json` output, failing the test with the text if it is not JSON.
pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Polls `check` every 200 ms until it returns `Some`, failing after `seconds` with `what`.
/// The limit only bounds a hung test; nothing is asserted about how long it took.
pub async fn eventually<T>(seconds: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {seconds} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `items` of a kubectl list (`args` without `-o json`).
pub fn items(cluster: &Cluster, args: &[&str]) -> Vec<Value> {
    json(&cluster.ok(&[args, &["-o", "json"]].concat()))["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The condition of type `type_` in an object's `status.conditions`.
pub fn condition(object: &Value, type_: &str) -> Option<Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

/// Whether a pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Value) -> bool {
    condition(pod, "Ready").is_some_and(|c| c["status"] == "True")
}

/// Pods matching `selector` in `namespace` that are not being deleted.
pub fn live_pods(cluster: &Cluster, namespace: &str, selector: &str) -> Vec<Value> {
    items(cluster, &["get", "pods", "-n", namespace, "-l", selector])
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

/// A Deployment `name` of `replicas` pods labelled `app: <name>` (its selector), whose pod
/// spec is `pod_spec` (YAML, unindented).
pub fn deployment(name: &str, replicas: u32, pod_spec: &str) -> String {
    let pod_spec: String = pod_spec.lines().map(|l| format!("      {l}\n")).collect();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels:\n    app: {name}\n\
         spec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n  \
         template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n{pod_spec}"
    )
}

/// Waits until `namespace` has its `default` ServiceAccount, which the controller-manager
/// creates after the namespace, as upstream's e2e framework waits before creating pods: the
/// ServiceAccount admission plugin refuses pods whose account does not exist.
pub async fn default_service_account(cluster: &Cluster, namespace: &str) {
    let what = format!("the default service account of {namespace}");
    eventually(60, &what, || {
        let out = cluster.kubectl(&["get", "serviceaccount", "default", "-n", namespace]);
        out.status.success().then_some(())
    })
    .await
}

impl Cluster {
    /// Creates the `default` ServiceAccount of `namespace` as the controller-manager's
    /// serviceaccount controller would, for suites that create pods without running one.
    pub fn create_default_service_account(&self, namespace: &str) {
        self.ok(&["create", "serviceaccount", "default", "-n", namespace]);
    }
}

/// kube-scheduler, simulated nodes and kube-controller-manager next to the apiserver,
/// stopped when dropped.
pub struct ControlPlane {
    pub scheduler: Process,
    pub nodes: Process,
    pub manager: Process,
}

impl Cluster {
    /// Starts a scheduler, `nodes` simulated nodes (pods start in 200 ms, each node with its
    /// own identity from the controller-manager's signer) and a controller-manager with
    /// `manager_args`, none of them electing a leader.
    pub fn start_control_plane(&self, nodes: usize, manager_args: &[&str]) -> ControlPlane {
        let nodes = nodes.to_string();
        ControlPlane {
            scheduler: self.start_scheduler(&["--leader-elect=false"]),
            nodes: self.start_node_simulator(&[
                "--nodes",
                &nodes,
                "--pod-startup-delay",
                "200ms",
                "--tls-bootstrap",
            ]),
            manager: self
                .start_controller_manager(&[&["--leader-elect=false"], manager_args].concat()),
        }
    }
}
