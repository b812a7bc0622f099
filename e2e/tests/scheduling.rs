//! kube-scheduler and node-simulator as real processes next to the apiserver, driven with
//! kubectl: where pods land, how failures read, preemption, leader election, and what a
//! simulated kubelet reports. No controller-manager runs, so cases that create pods first
//! create the `default` ServiceAccount their pods run as.

use std::time::{Duration, Instant};

use e2e::fixtures::{eventually, json};
use e2e::{on_both_backends, Cluster, Process};
use serde_json::Value;

on_both_backends!(
    pods_land_only_on_nodes_that_fit,
    pods_spread_across_nodes,
    failed_scheduling_reads_like_upstream,
    an_unschedulable_pod_is_retried_when_a_node_is_added,
    higher_priority_pods_preempt_lower_ones,
    one_leader_schedules_and_a_standby_takes_over,
    get_wide_and_describe_node_show_placement,
    drain_evicts_pods,
    simulated_pods_walk_through_their_phases,
    stopped_heartbeats_stop_lease_renewals,
);

fn pod(cluster: &Cluster, name: &str) -> Value {
    json(&cluster.ok(&["get", "pod", name, "-o", "json"]))
}

/// The node a pod is bound to, once it is.
fn node_of(cluster: &Cluster, name: &str) -> Option<String> {
    pod(cluster, name)["spec"]["nodeName"]
        .as_str()
        .map(String::from)
}

async fn wait_for_node(cluster: &Cluster, name: &str, scheduler: &Process) -> String {
    let what = format!(
        "pod {name} to be scheduled; scheduler log:\n{}",
        scheduler.log()
    );
    eventually(20, &what, || node_of(cluster, name)).await
}

async fn wait_for_phase(cluster: &Cluster, name: &str, phase: &str) -> Value {
    eventually(20, &format!("pod {name} to be {phase}"), || {
        let pod = pod(cluster, name);
        (pod["status"]["phase"] == phase).then_some(pod)
    })
    .await
}

async fn wait_for_nodes(cluster: &Cluster, count: usize) {
    eventually(20, &format!("{count} nodes"), || {
        let nodes = json(&cluster.ok(&["get", "nodes", "-o", "json"]));
        (nodes["items"].as_array().map_or(0, Vec::len) >= count).then_some(())
    })
    .await;
}

/// A pod manifest with one container requesting `requests` (e.g. `cpu: "2"`) and `extra`
/// spec lines (already indented by two spaces). Extended resources are limited to their
/// requests, as the apiserver requires.
fn manifest(name: &str, requests: &str, extra: &str) -> String {
    let limits = if requests.contains('/') {
        format!(", limits: {{{requests}}}")
    } else {
        String::new()
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: {name}}}\nspec:\n{extra}  containers:\n  - name: app\n    image: nginx:1.27\n    resources: {{requests: {{{requests}}}{limits}}}\n"
    )
}

fn create(cluster: &Cluster, manifest: &str) {
    cluster.ok_stdin(&["create", "-f", "-"], manifest);
}

fn warning_events(cluster: &Cluster, pod: &str) -> Vec<String> {
    let selector = format!("involvedObject.name={pod},reason=FailedScheduling");
    let events = json(&cluster.ok(&["get", "events", "--field-selector", &selector, "-o", "json"]));
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

const MIXED_NODES: &str = "\
nodeGroups:
- namePrefix: small-
  count: 1
  capacity: {cpu: \"1\", memory: 2Gi}
  labels: {disk: hdd, topology.kubernetes.io/zone: zone-a}
- namePrefix: big-
  count: 1
  capacity: {cpu: \"8\", memory: 16Gi, example.com/gpu: \"2\"}
  labels: {disk: ssd, topology.kubernetes.io/zone: zone-b}
- namePrefix: tainted-
  count: 1
  capacity: {cpu: \"8\", memory: 16Gi}
  labels: {disk: ssd, topology.kubernetes.io/zone: zone-c}
  taints: [{key: dedicated, value: infra, effect: NoSchedule}]
- namePrefix: spare-
  count: 1
  capacity: {cpu: \"8\", memory: 16Gi}
";

const ZONE_C_AFFINITY: &str = "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [zone-c]}]\n";

async fn mixed_cluster(cluster: &Cluster) -> (Process, Process) {
    let config = cluster.dir().join("nodes.yaml");
    std::fs::write(&config, MIXED_NODES).unwrap();
    let simulator = cluster.start_node_simulator(&[
        "--config",
        config.to_str().unwrap(),
        "--pod-startup-delay=200ms",
    ]);
    wait_for_nodes(cluster, 4).await;
    cluster.ok(&["cordon", "spare-0"]);
    (simulator, cluster.start_scheduler(&[]))
}

async fn pods_land_only_on_nodes_that_fit(cluster: &mut Cluster) {
    cluster.create_default_service_account("default");
    let (_simulator, scheduler) = mixed_cluster(cluster).await;
    create(cluster, &manifest("two-cpus", "cpu: \"2\"", ""));
    create(cluster, &manifest("gpu", "example.com/gpu: \"1\"", ""));
    create(
        cluster,
        &manifest("hdd", "cpu: 100m", "  nodeSelector: {disk: hdd}\n"),
    );
    let tolerating = format!("{ZONE_C_AFFINITY}  tolerations: [{{key: dedicated, operator: Equal, value: infra, effect: NoSchedule}}]\n");
    create(cluster, &manifest("zone-c", "cpu: 100m", &tolerating));
    assert_eq!(
        wait_for_node(cluster, "two-cpus", &scheduler).await,
        "big-0",
        "only big-0 has 2 CPUs free, untainted and schedulable"
    );
    assert_eq!(wait_for_node(cluster, "gpu", &scheduler).await, "big-0");
    assert_eq!(wait_for_node(cluster, "hdd", &scheduler).await, "small-0");
    assert_eq!(
        wait_for_node(cluster, "zone-c", &scheduler).await,
        "tainted-0"
    );
    // Filling big-0 leaves no room for another GPU pair, and cordoned spare-0 takes nothing.
    create(cluster, &manifest("gpu-pair", "example.com/gpu: \"2\"", ""));
    let what = "a FailedScheduling event for gpu-pair";
    let message = eventually(20, what, || warning_events(cluster, "gpu-pair").pop()).await;
    assert!(
        message.starts_with("0/4 nodes are available: "),
        "{message}"
    );
    assert!(
        message.contains("2 Insufficient example.com/gpu"),
        "{message}"
    );
    assert!(
        message.contains("1 node(s) were unschedulable"),
        "{message}"
    );
    cluster.ok(&["uncordon", "spare-0"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        node_of(cluster, "gpu-pair"),
        None,
        "spare-0 has no GPUs either"
    );
}

async fn pods_spread_across_nodes(cluster: &mut Cluster) {
    cluster.create_default_service_account("default");
    let _simulator =
        cluster.start_node_simulator(&["--nodes", "3", "--cpu", "4", "--pod-startup-delay=200ms"]);
    wait_for_nodes(cluster, 3).await;
    let scheduler = cluster.start_scheduler(&[]);
    for i in 0..6 {
        create(cluster, &manifest(&format!("web-{i}"), "cpu: 500m", ""));
    }
    let mut per_node = std::collections::BTreeMap::new();
    for i in 0..6 {
        *per_node
            .entry(wait_for_node(cluster, &format!("web-{i}"), &scheduler).await)
            .or_insert(0) += 1;
    }
    assert_eq!(
        per_node.values().copied().collect::<Vec<_>>(),
        [2, 2, 2],
        "{per_node:?}"
    );
}

async fn failed_scheduling_reads_like_upstream(cluster: &mut Cluster) {
    cluster.create_default_service_account("default");
    let (_simulator, _scheduler) = mixed_cluster(cluster).await;
    create(
        cluster,
        &manifest("intolerant", "cpu: 100m", ZONE_C_AFFINITY),
    );
    let expected = "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}, 1 node(s) were unschedulable, \
                    2 node(s) didn't match Pod's node affinity/selector. preemption: 0/4 nodes are available: \
                    4 Preemption is not helpful for scheduling.";
    let message = eventually(20, "a FailedScheduling event", || {
        warning_events(cluster, "intolerant").pop()
    })
    .await;
    assert_eq!(message, expected);
    let condition = eventually(10, "the PodScheduled condition", || {
        let pod = pod(cluster, "intolerant");
        let conditions = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conditions.into_iter().find(|c| c["type"] == "PodScheduled")
    })
    .await;
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "Unschedulable");
    assert_eq!(condition["message"], expected);
    let described = cluster.ok(&["describe", "pod", "intolerant"]);
    assert!(
        described.contains("FailedScheduling") && described.contains("default-scheduler"),
        "{described}"
    );
}

async fn an_unschedulable_pod_is_retried_when_a_node_is_added(cluster: &mut Cluster) {
    cluster.create_default_service_account("default");
    let _small =
        cluster.start_node_simulator(&["--nodes", "1", "--cpu", "1", "--pod-startup-delay=200ms"]);
    wait_for_nodes(cluster, 1).await;
    let scheduler = cluster.start_scheduler(&[]);
    create(cluster, &manifest("needs-four", "cpu: \"4\"", ""));
    let message = eventually(20, "a FailedScheduling event", || {
        warning_events(cluster, "needs-four").pop()
    })
    .await;
    assert!(
        message.starts_with("0/1 nodes are available: 1 Insufficient cpu."),
        "{message}"
    );
    // Nothing retries it until a node that may fit appears (a retry would count the event again).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let selector = "involvedObject.name=needs-four,reason=FailedScheduling";
    let events = json(&cluster.ok(&["get", "events", "--field-selector", selector, "-o", "json"]));
    let counts: Vec<i64> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["count"].as_i64().unwrap_or(1))
        .collect();
    assert_eq!(counts, [1], "no polling while nothing changes");
    let added = Instant::now();
    let _big = cluster.start_node_simulator(&[
        "--nodes",
        "1",
        "--node-name-prefix",
        "big-",
        "--cpu",
        "8",
        "--cluster-cidr",
        "10.245.0.0/16",
    ]);
    assert_eq!(
        wait_for_node(cluster, "needs-four", &scheduler).await,
        "big-0"
    );
    assert!(
        added.elapsed() < Duration::from_secs(10),
        "retried {:?} after the node came",
        added.elapsed()
    );
}

async fn higher_priority_pods_preempt_lower_ones(cluster: &mut Cluster) {
    cluster.create_default_service_account("default");
    let _simulator =
        cluster.start_node_simulator(&["--nodes", "1", "--cpu", "2", "--pod-startup-delay=200ms"]);
    wait_for_nodes(cluster, 1).await;
    let scheduler = cluster.start_scheduler(&[]);
    create(cluster, &manifest("low-a", "cpu: 900m", ""));
    create(cluster, &manifest("low-b", "cpu: 900m", ""));
    wait_for_node(cluster, "low-a", &scheduler).await;
    wait_for_node(cluster, "low-b", &scheduler).await;
    // Priority comes from the built-in system-cluster-critical PriorityClass (2000000000).
    create(
        cluster,
        &manifest(
            "critical",
            "cpu: \"1\"",
            "  priorityClassName: system-cluster-critical\n",
        ),
    );
    assert_eq!(
        wait_for_node(cluster, "critical", &scheduler).await,
        "node-0"
    );
    let remaining = json(&cluster.ok(&["get", "pods", "-o", "json"]));
    let names: Vec<&str> = remaining["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "exactly one low-priority pod was preempted: {names:?}"
    );
    assert_eq!(
        pod(cluster, "critical")["status"]["nominatedNodeName"],
        "node-0"
    );
    let events = json(&cluster.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=Preempted",
        "-o",
        "json",
    ]));
    let message = events["items"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let uid = pod(cluster, "critical")["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(message, format!("Preempted by pod {uid} on node node-0"));
}

async fn one_leader_schedules_and_a_standby_takes_over(cluster: &mut Cluster) {
    cluster.create_default_service_account("default");
    let _simulator = cluster.start_node_simulator(&["--nodes", "2", "--pod-startup-delay=200ms"]);
    wait_for_nodes(cluster, 2).await;
    let lease = [
        "--leader-elect-lease-duration=10s",
        "--leader-elect-renew-deadline=8s",
        "--leader-elect-retry-period=1s",
    ];
    let mut first = cluster.start_scheduler(&lease);
    let leader_status = "leader_election_master_status{name=\"kube-scheduler\"}";
    eventually(20, "the first scheduler to lead", || {
        (first.metric(leader_status) == Some(1.0)).then_some(())
    })
    .await;
    let second = cluster.start_scheduler(&lease);
    eventually(20, "the second scheduler to stand by", || {
        (second.metric(leader_status) == Some(0.0)).then_some(())
    })
    .await;
    let holder = json(&cluster.ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-scheduler",
        "-o",
        "json",
    ]))["spec"]["holderIdentity"]
        .clone();
    for i in 0..3 {
        create(cluster, &manifest(&format!("before-{i}"), "cpu: 100m", ""));
        wait_for_node(cluster, &format!("before-{i}"), &first).await;
    }
    let attempts =
        "scheduler_schedule_attempts_total{profile=\"default-scheduler\",result=\"scheduled\"}";
    assert_eq!(first.metric(attempts), Some(3.0));
    assert_eq!(
        second.metric(attempts),
        None,
        "the standby scheduled nothing"
    );

    first.kill();
    let killed = Instant::now();
    create(cluster, &manifest("after", "cpu: 100m", ""));
    wait_for_node(cluster, "after", &second).await;
    assert!(
        killed.elapsed() < Duration::from_secs(15),
        "took over after {:?}",
        killed.elapsed()
    );
    let lease = json(&cluster.ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-scheduler",
        "-o",
        "json",
    ]));
    assert_ne!(lease["spec"]["holderIdentity"], holder);
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
}

async fn get_wide_and_describe_node_show_placement(cluster: &mut Cluster) {
    cluster.create_default_service_account("default");
    let _simulator = cluster.start_node_simulator(&[
        "--nodes",
        "2",
        "--cpu",
        "4",
        "--memory",
        "8Gi",
        "--pod-startup-delay=200ms",
    ]);
    wait_for_nodes(cluster, 2).await;
    let scheduler = cluster.start_scheduler(&[]);
    create(cluster, &manifest("web", "cpu: 500m, memory: 256Mi", ""));
    let node = wait_for_node(cluster, "web", &scheduler).await;
    let running = wait_for_phase(cluster, "web", "Running").await;
    let ip = running["status"]["podIP"].as_str().unwrap().to_string();
    let cidr = json(&cluster.ok(&["get", "node", &node, "-o", "json"]))["spec"]["podCIDR"]
        .as_str()
        .unwrap()
        .to_string();
    let prefix = cidr.trim_end_matches("0/24");
    assert!(
        ip.starts_with(prefix),
        "pod IP {ip} is from the node's pod CIDR {cidr}"
    );
    let wide = cluster.ok(&["get", "pods", "-o", "wide"]);
    let row = wide
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_else(|| panic!("{wide}"));
    assert!(
        row.contains("Running") && row.contains(&ip) && row.contains(&node),
        "{wide}"
    );
    let described = cluster.ok(&["describe", "node", &node]);
    assert!(
        described.contains("Non-terminated Pods:          (1 in total)"),
        "{described}"
    );
    assert!(
        described.contains("cpu                500m (12%)"),
        "{described}"
    );
    assert!(
        described.contains("memory             256Mi (3%)"),
        "{described}"
    );
    assert!(described.contains("KubeletReady"), "{described}");
}

async fn drain_evicts_pods(cluster: &mut Cluster) {
    cluster.create_default_service_account("default");
    let _simulator = cluster.start_node_simulator(&["--nodes", "2", "--pod-startup-delay=200ms"]);
    wait_for_nodes(cluster, 2).await;
    let scheduler = cluster.start_scheduler(&[]);
    for name in ["a", "b"] {
        create(
            cluster,
            &manifest(
                name,
                "cpu: 100m",
                "  nodeSelector: {kubernetes.io/hostname: node-0}\n",
            ),
        );
        wait_for_node(cluster, name, &scheduler).await;
        wait_for_phase(cluster, name, "Running").await;
    }
    let out = cluster.ok(&["drain", "node-0", "--force", "--timeout=60s"]);
    assert!(
        out.contains("pod/a evicted") && out.contains("node/node-0 drained"),
        "{out}"
    );
    assert_eq!(cluster.ok(&["get", "pods", "-o", "name"]), "");
    let nodes = cluster.ok(&["get", "nodes"]);
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with("node-0") && l.contains("SchedulingDisabled")),
        "{nodes}"
    );
}

async fn simulated_pods_walk_through_their_phases(cluster: &mut Cluster) {
    cluster.create_default_service_account("default");
    let _simulator = cluster.start_node_simulator(&["--nodes", "1", "--pod-startup-delay=2s"]);
    wait_for_nodes(cluster, 1).await;
    let scheduler = cluster.start_scheduler(&[]);
    let probe = "  containers:\n  - name: app\n    image: nginx:1.27\n    readinessProbe: {httpGet: {port: 80}, initialDelaySeconds: 3}\n";
    let slow = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: slow}}\nspec:\n{probe}");
    create(cluster, &slow);
    wait_for_node(cluster, "slow", &scheduler).await;
    let creating = eventually(10, "ContainerCreating", || {
        let pod = pod(cluster, "slow");
        (pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating")
            .then_some(pod)
    })
    .await;
    assert_eq!(creating["status"]["phase"], "Pending");
    let running = wait_for_phase(cluster, "slow", "Running").await;
    assert_eq!(
        running["status"]["containerStatuses"][0]["ready"], false,
        "not ready before the probe's initial delay"
    );
    assert!(
        running["status"]["podIP"].as_str().is_some()
            && running["status"]["startTime"].as_str().is_some()
    );
    let ready = eventually(10, "readiness", || {
        let pod = pod(cluster, "slow");
        (pod["status"]["containerStatuses"][0]["ready"] == true).then_some(pod)
    })
    .await;
    let conditions: Vec<(String, String)> = ready["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for expected in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert!(
            conditions.contains(&(expected.to_string(), "True".to_string())),
            "{expected}: {conditions:?}"
        );
    }

    for (name, code, phase) in [("job-ok", "0", "Succeeded"), ("job-failing", "3", "Failed")] {
        create(
            cluster,
            &manifest(name, "cpu: 10m", "  restartPolicy: Never\n"),
        );
        wait_for_phase(cluster, name, "Running").await;
        cluster.ok(&[
            "annotate",
            "pod",
            name,
            &format!("node-simulator/exit-code={code}"),
        ]);
        let done = wait_for_phase(cluster, name, phase).await;
        assert_eq!(
            done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            code.parse::<i64>().unwrap()
        );
    }

    let started = Instant::now();
    cluster.ok(&["delete", "pod", "slow"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "graceful deletion took {:?}",
        started.elapsed()
    );
    cluster.fails(&["get", "pod", "slow"]);
}

async fn stopped_heartbeats_stop_lease_renewals(cluster: &mut Cluster) {
    let _simulator =
        cluster.start_node_simulator(&["--nodes", "1", "--node-lease-duration-seconds=4"]);
    wait_for_nodes(cluster, 1).await;
    let renewed = || {
        let lease = cluster.kubectl(&[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            "node-0",
            "-o",
            "jsonpath={.spec.renewTime}",
        ]);
        String::from_utf8_lossy(&lease.stdout).into_owned()
    };
    let first = eventually(10, "the node lease", || {
        Some(renewed()).filter(|r| !r.is_empty())
    })
    .await;
    eventually(10, "a lease renewal", || (renewed() != first).then_some(())).await;
    cluster.ok(&[
        "annotate",
        "node",
        "node-0",
        "node-simulator/stop-heartbeats=true",
    ]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped = renewed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        renewed(),
        stopped,
        "no renewals while the annotation is there"
    );
    cluster.ok(&[
        "annotate",
        "node",
        "node-0",
        "node-simulator/stop-heartbeats-",
    ]);
    eventually(10, "renewals to resume", || {
        (renewed() != stopped).then_some(())
    })
    .await;
}
