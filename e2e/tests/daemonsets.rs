//! DaemonSets end to end: the real apiserver, kube-scheduler, simulated nodes and
//! kube-controller-manager's daemonset controller, driven by kubectl 1.33 the way a learner
//! does, on both store backends: a pod on every node, taints keeping pods off unless
//! tolerated, nodes joining and leaving, and a rolling update undone.

use e2e::fixtures::{default_service_account, eventually, items, json};
use e2e::{on_both_backends, Cluster};
use serde_json::Value;

on_both_backends!(daemon_sets_follow_nodes, a_rolling_update_is_undone);

fn daemon_set(name: &str, image: &str, tolerations: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {name}
spec:
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      tolerations: {tolerations}
      containers:
      - name: agent
        image: {image}
"#
    )
}

fn status(cluster: &Cluster, name: &str) -> Value {
    json(&cluster.ok(&["get", "daemonset", name, "-o", "json"]))["status"].clone()
}

/// The nodes of the DaemonSet's live pods, sorted.
fn pod_nodes(cluster: &Cluster, name: &str) -> Vec<String> {
    let mut nodes: Vec<String> = items(cluster, &["get", "pods", "-l", &format!("app={name}")])
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
        .collect();
    nodes.sort();
    nodes
}

/// Waits until the DaemonSet's pods run on exactly `nodes`, all ready and counted.
async fn wait_on_nodes(cluster: &Cluster, name: &str, nodes: &[&str]) {
    let want: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    let count = nodes.len() as i64;
    eventually(40, &format!("daemon set {name} on {nodes:?}"), || {
        let status = status(cluster, name);
        (pod_nodes(cluster, name) == want
            && status["desiredNumberScheduled"] == count
            && status["numberReady"] == count
            && status["numberAvailable"] == count)
            .then_some(())
    })
    .await;
}

async fn daemon_sets_follow_nodes(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(2, &[]);
    default_service_account(cluster, "default").await;
    cluster.ok(&["taint", "node", "node-1", "dedicated=infra:NoSchedule"]);
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        &daemon_set("plain", "fluentd:1", "[]"),
    );
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        &daemon_set(
            "tolerant",
            "fluentd:1",
            "[{key: dedicated, operator: Exists, effect: NoSchedule}]",
        ),
    );
    // The tainted node runs only the pod that tolerates its taint.
    wait_on_nodes(cluster, "plain", &["node-0"]).await;
    wait_on_nodes(cluster, "tolerant", &["node-0", "node-1"]).await;
    let row = cluster.ok(&["get", "ds", "tolerant", "--no-headers"]);
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[..7],
        ["tolerant", "2", "2", "2", "2", "2", "<none>"],
        "{row}"
    );

    // Each pod carries the automatic tolerations and is pinned to its node by affinity.
    let pod = &items(cluster, &["get", "pods", "-l", "app=plain"])[0];
    assert_eq!(
        pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchFields"][0],
        serde_json::json!({"key": "metadata.name", "operator": "In", "values": ["node-0"]})
    );
    let tolerations: Vec<&str> = pod["spec"]["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap_or(""))
        .collect();
    assert!(
        tolerations.contains(&"node.kubernetes.io/unschedulable")
            && tolerations.contains(&"node.kubernetes.io/not-ready"),
        "{tolerations:?}"
    );
    assert_eq!(pod["metadata"]["generateName"], "plain-");
    assert_eq!(pod["metadata"]["labels"]["pod-template-generation"], "1");
    assert!(pod["metadata"]["labels"]["controller-revision-hash"].is_string());
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    let events = cluster.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=DaemonSet,involvedObject.name=plain,reason=SuccessfulCreate",
    ]);
    assert!(events.contains("Created pod: plain-"), "{events}");

    // Untainting lets the other DaemonSet in; cordoning keeps daemon pods.
    cluster.ok(&["taint", "node", "node-1", "dedicated-"]);
    wait_on_nodes(cluster, "plain", &["node-0", "node-1"]).await;
    cluster.ok(&["cordon", "node-1"]);
    assert_eq!(status(cluster, "plain")["desiredNumberScheduled"], 2);

    // A node joining gets a pod of each; once it is deleted, it counts no more.
    let mut extra = cluster.start_node_simulator(&[
        "--nodes",
        "1",
        "--node-name-prefix",
        "extra-",
        "--pod-startup-delay",
        "200ms",
    ]);
    wait_on_nodes(cluster, "plain", &["extra-0", "node-0", "node-1"]).await;
    wait_on_nodes(cluster, "tolerant", &["extra-0", "node-0", "node-1"]).await;
    extra.kill();
    cluster.ok(&["delete", "node", "extra-0"]);
    eventually(30, "the deleted node no longer counted", || {
        let status = status(cluster, "plain");
        (status["desiredNumberScheduled"] == 2 && status["currentNumberScheduled"] == 2)
            .then_some(())
    })
    .await;
    assert!(
        !pod_nodes(cluster, "plain").iter().any(|n| n.is_empty()),
        "no pod waits for the deleted node"
    );
}

fn images(cluster: &Cluster, name: &str) -> Vec<String> {
    items(cluster, &["get", "pods", "-l", &format!("app={name}")])
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

async fn a_rolling_update_is_undone(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(3, &[]);
    default_service_account(cluster, "default").await;
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        &daemon_set("agent", "fluentd:1", "[]"),
    );
    let done = cluster.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);
    assert!(
        done.contains("daemon set \"agent\" successfully rolled out"),
        "{done}"
    );

    cluster.ok(&["set", "image", "daemonset/agent", "agent=fluentd:2"]);
    cluster.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);
    eventually(30, "every pod on the new image", || {
        (images(cluster, "agent") == ["fluentd:2"; 3]).then_some(())
    })
    .await;
    let pod = &items(cluster, &["get", "pods", "-l", "app=agent"])[0];
    assert_eq!(pod["metadata"]["labels"]["pod-template-generation"], "2");
    let history = cluster.ok(&["rollout", "history", "daemonset/agent"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let revisions = items(cluster, &["get", "controllerrevisions", "-l", "app=agent"]);
    assert_eq!(revisions.len(), 2);

    cluster.ok(&["rollout", "undo", "daemonset/agent"]);
    cluster.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);
    eventually(30, "every pod back on the old image", || {
        (images(cluster, "agent") == ["fluentd:1"; 3]).then_some(())
    })
    .await;
    let history = cluster.ok(&["rollout", "history", "daemonset/agent"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
    let detail = cluster.ok(&["rollout", "history", "daemonset/agent", "--revision=3"]);
    assert!(detail.contains("fluentd:1"), "{detail}");
}
