//! Voluntary disruptions end to end: PodDisruptionBudgets kept by the disruption controller,
//! evictions that honour them (upstream's 429, then allowed once the Deployment has a spare
//! pod), `kubectl drain` waiting on a budget, and the pod garbage collector removing the pods
//! of a deleted node. The real apiserver, kube-scheduler, simulated kubelets and
//! kube-controller-manager, driven by kubectl 1.33, on both store backends.

use std::process::{Child, Command, Stdio};

use e2e::fixtures::{condition, eventually, items, json, live_pods};
use e2e::{on_both_backends, Cluster};
use serde_json::Value;

on_both_backends!(
    a_budget_follows_its_deployment_and_guards_evictions,
    drain_waits_for_the_budget_and_pods_of_a_deleted_node_are_collected,
);

const REFUSED: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

fn budget(cluster: &Cluster, name: &str) -> Value {
    json(&cluster.ok(&["get", "pdb", name, "-o", "json"]))
}

/// Waits until the budget's status has these numbers, observed at its generation.
async fn wait_for_status(
    cluster: &Cluster,
    name: &str,
    (healthy, desired, expected, allowed): (i64, i64, i64, i64),
) -> Value {
    let what = format!("budget {name} at {healthy}/{desired}/{expected}/{allowed}");
    eventually(45, &what, || {
        let pdb = budget(cluster, name);
        let status = &pdb["status"];
        let numbers = [
            &status["currentHealthy"],
            &status["desiredHealthy"],
            &status["expectedPods"],
            &status["disruptionsAllowed"],
        ]
        .map(|v| v.as_i64().unwrap_or(-1));
        let observed = status["observedGeneration"] == pdb["metadata"]["generation"];
        (numbers == [healthy, desired, expected, allowed] && observed).then_some(pdb)
    })
    .await
}

/// Posts an Eviction of `pod`, as kubectl drain does.
fn evict(cluster: &Cluster, pod: &str) -> std::process::Output {
    evict_with(cluster, pod, serde_json::json!({}))
}

/// Posts an Eviction of `pod` with these delete options.
fn evict_with(cluster: &Cluster, pod: &str, options: Value) -> std::process::Output {
    let path = cluster.dir().join(format!("eviction-{pod}.json"));
    let eviction = serde_json::json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod, "namespace": "default"},
        "deleteOptions": options,
    });
    std::fs::write(&path, eviction.to_string()).unwrap();
    cluster.kubectl(&[
        "create",
        "--raw",
        &format!("/api/v1/namespaces/default/pods/{pod}/eviction"),
        "-f",
        path.to_str().unwrap(),
    ])
}

fn name(object: &Value) -> String {
    object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn a_budget_follows_its_deployment_and_guards_evictions(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(2, &[]);
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    cluster.ok(&[
        "create",
        "pdb",
        "web",
        "--selector=app=web",
        "--min-available=2",
    ]);
    let pdb = wait_for_status(cluster, "web", (2, 2, 2, 0)).await;
    let allowed = condition(&pdb, "DisruptionAllowed").expect("DisruptionAllowed condition");
    assert_eq!(
        (&allowed["status"], &allowed["reason"]),
        (&Value::from("False"), &Value::from("InsufficientPods"))
    );
    let table = cluster.ok(&["get", "pdb"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "MIN",
            "AVAILABLE",
            "MAX",
            "UNAVAILABLE",
            "ALLOWED",
            "DISRUPTIONS",
            "AGE"
        ]
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..4], ["web", "2", "N/A", "0"], "{table}");

    let both = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: both\n\
                spec:\n  minAvailable: 1\n  maxUnavailable: 1\n  selector:\n    matchLabels:\n      app: web\n";
    let refused = cluster.kubectl_version(33, &["create", "-f", "-"], Some(both));
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains("minAvailable and maxUnavailable cannot be both set"),
        "{error}"
    );
    let victim = name(&live_pods(cluster, "default", "app=web")[0]);
    let refused = evict(cluster, &victim);
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains(&format!("Error from server (TooManyRequests): {REFUSED}")),
        "{error}"
    );

    // An Eviction naming another pod than its URL is refused before anything is asked.
    let path = cluster.dir().join("eviction-mismatch.json");
    let mismatched = r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"other"}}"#;
    std::fs::write(&path, mismatched).unwrap();
    let refused = cluster.kubectl(&[
        "create",
        "--raw",
        &format!("/api/v1/namespaces/default/pods/{victim}/eviction"),
        "-f",
        path.to_str().unwrap(),
    ]);
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains("(BadRequest): name in URL does not match name in Eviction object"),
        "{error}"
    );

    cluster.ok(&["scale", "deployment/web", "--replicas=3"]);
    wait_for_status(cluster, "web", (3, 2, 3, 1)).await;
    // A dry run is allowed but neither takes from the budget nor deletes the pod.
    let dry = evict_with(cluster, &victim, serde_json::json!({"dryRun": ["All"]}));
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert_eq!(budget(cluster, "web")["status"]["disruptionsAllowed"], 1);
    let kept = json(&cluster.ok(&["get", "pod", &victim, "-o", "json"]));
    assert!(kept["metadata"]["deletionTimestamp"].is_null(), "{kept}");
    let granted = evict(cluster, &victim);
    assert!(
        granted.status.success(),
        "{}",
        String::from_utf8_lossy(&granted.stderr)
    );
    // The evicted pod is marked as the eviction's target and on its way out.
    let pods = items(cluster, &["get", "pods", "-l", "app=web"]);
    if let Some(evicted) = pods.iter().find(|p| name(p) == victim) {
        let target = condition(evicted, "DisruptionTarget").expect("DisruptionTarget");
        assert_eq!(target["reason"], "EvictionByEvictionAPI", "{evicted}");
        assert_eq!(target["message"], "Eviction API: evicting", "{evicted}");
        assert!(!evicted["metadata"]["deletionTimestamp"].is_null());
    }
    // The ReplicaSet replaces the evicted pod and the budget allows one again.
    wait_for_status(cluster, "web", (3, 2, 3, 1)).await;

    // A pod two budgets select cannot be evicted.
    cluster.ok(&[
        "create",
        "pdb",
        "web-too",
        "--selector=app=web",
        "--max-unavailable=50%",
    ]);
    wait_for_status(cluster, "web-too", (3, 1, 3, 2)).await;
    let pod = name(&live_pods(cluster, "default", "app=web")[0]);
    let ambiguous = evict(cluster, &pod);
    let error = String::from_utf8_lossy(&ambiguous.stderr);
    assert!(
        error.contains(
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
        ),
        "{error}"
    );
}

/// `kubectl drain` started in the background.
fn start_drain(cluster: &Cluster, node: &str) -> Child {
    Command::new(e2e::kubectl_path(33))
        .args(["drain", node, "--ignore-daemonsets", "--timeout=90s"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("HOME", cluster.dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl drain")
}

fn node_of(pod: &Value) -> String {
    pod["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn drain_waits_for_the_budget_and_pods_of_a_deleted_node_are_collected(
    cluster: &mut Cluster,
) {
    let _plane = cluster.start_control_plane(3, &[]);
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    cluster.ok(&[
        "create",
        "pdb",
        "web",
        "--selector=app=web",
        "--max-unavailable=0",
    ]);
    wait_for_status(cluster, "web", (2, 2, 2, 0)).await;

    let drained = node_of(&live_pods(cluster, "default", "app=web")[0]);
    let mut drain = start_drain(cluster, &drained);
    // kubectl retries the refused eviction every 5 s; the node stays cordoned meanwhile.
    eventually(20, "the node to be cordoned", || {
        let node = json(&cluster.ok(&["get", "node", &drained, "-o", "json"]));
        (node["spec"]["unschedulable"] == true).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        drain.try_wait().unwrap().is_none(),
        "drain ended despite the budget"
    );

    // A third replica lands elsewhere; the budget then allows one eviction at a time.
    cluster.ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"maxUnavailable":1}}"#,
    ]);
    cluster.ok(&["scale", "deployment/web", "--replicas=3"]);
    let status = eventually(90, "the drain to finish", || drain.try_wait().unwrap()).await;
    let output = drain.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("node/{drained} drained")),
        "{stdout}{stderr}"
    );
    assert!(
        stderr.contains(REFUSED),
        "the drain was never refused: {stderr}"
    );
    assert!(live_pods(cluster, "default", "app=web")
        .iter()
        .all(|p| node_of(p) != drained));

    // Deleting a node leaves its pods to the pod garbage collector, which marks them
    // Failed with the DisruptionTarget condition and removes them after its quarantine.
    let mut watch = Command::new(e2e::kubectl_path(33))
        .args([
            "get",
            "pods",
            "--watch",
            "-o",
            "json",
            "--output-watch-events",
        ])
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("HOME", cluster.dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pods = live_pods(cluster, "default", "app=web");
    let gone_node = node_of(&pods[0]);
    let orphans: Vec<String> = pods
        .iter()
        .filter(|p| node_of(p) == gone_node)
        .map(name)
        .collect();
    cluster.ok(&["delete", "node", &gone_node]);
    eventually(90, "the orphaned pods to be collected", || {
        let left = items(cluster, &["get", "pods", "-l", "app=web"]);
        left.iter()
            .all(|p| !orphans.contains(&name(p)))
            .then_some(())
    })
    .await;
    watch.kill().unwrap();
    let output = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let marked = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .filter_map(Result::ok)
        .map(|event| event["object"].clone())
        .find(|pod| orphans.contains(&name(pod)) && pod["status"]["phase"] == "Failed")
        .expect("an orphan marked Failed before its deletion");
    let target = condition(&marked, "DisruptionTarget").expect("DisruptionTarget");
    assert_eq!(target["reason"], "DeletionByPodGC", "{marked}");
    assert_eq!(target["message"], "PodGC: node no longer exists");
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
}
