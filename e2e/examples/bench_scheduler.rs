//! Scheduler benchmark behind `hack/bench.sh scheduler`: for 100, 1,000 and 5,000 nodes (or
//! the comma-separated counts given as the argument), a fresh release kube-apiserver gets the
//! Node objects and a backlog of 10,000 pending pods, then a release kube-scheduler starts
//! and the pods/s it binds are printed (from its first binding to its last, and from its
//! start), with a check that no node was overcommitted. The binaries come from
//! `KUBE_BIN_DIR`, as for every `e2e::Cluster`. Figures only; nothing here passes or fails.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{Backend, Cluster, Process};
use futures::StreamExt;
use kube::Client;
use serde_json::{json, Value};

const PODS: usize = 10_000;
const NODE_COUNTS: [usize; 3] = [100, 1_000, 5_000];
/// Each node takes 110 pods and 32 CPUs, so even 100 nodes fit the whole backlog.
const NODE_CPU: &str = "32";
const POD_CPU_MILLIS: i64 = 100;

fn node(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": format!("zone-{}", name.len() % 3)}},
        "status": {
            "capacity": {"cpu": NODE_CPU, "memory": "256Gi", "pods": "110"},
            "allocatable": {"cpu": NODE_CPU, "memory": "256Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
        },
    })
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{
            "name": "app",
            "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": format!("{POD_CPU_MILLIS}m"), "memory": "100Mi"}},
        }]},
    })
}

fn post(path: &str, body: &Value) -> http::Request<Vec<u8>> {
    http::Request::post(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .unwrap()
}

/// Creates `count` objects made by `make(i)` at `path`, 32 at a time.
async fn create_all(
    client: &Client,
    path: &str,
    count: usize,
    make: Arc<dyn Fn(usize) -> Value + Send + Sync>,
) {
    futures::stream::iter(0..count)
        .for_each_concurrent(32, |i| {
            let (client, make) = (client.clone(), make.clone());
            async move {
                client
                    .request_text(post(path, &make(i)))
                    .await
                    .expect("create");
            }
        })
        .await;
}

/// Successful bindings so far, from the scheduler's end-to-end latency histogram.
fn bound(scheduler: &Process) -> Option<usize> {
    let metrics = scheduler.http_get("/metrics")?;
    let counts = metrics
        .lines()
        .filter(|l| l.starts_with("scheduler_pod_scheduling_sli_duration_seconds_count"));
    Some(
        counts
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as usize,
    )
}

async fn run(nodes: usize) {
    let cluster = Cluster::start(Backend::Embedded).await;
    let client = cluster.client().await;
    // No controller-manager runs: the account the pods run as is created here.
    cluster.create_default_service_account("default");
    create_all(
        &client,
        "/api/v1/nodes",
        nodes,
        Arc::new(|i| node(&format!("node-{i}"))),
    )
    .await;
    create_all(
        &client,
        "/api/v1/namespaces/default/pods",
        PODS,
        Arc::new(|i| pod(&format!("pod-{i}"))),
    )
    .await;

    let started = Instant::now();
    let scheduler = cluster.start_scheduler(&["--leader-elect=false"]);
    let mut first: Option<Instant> = None;
    let mut peak_rss: f64 = 0.0;
    let deadline = started + Duration::from_secs(300);
    loop {
        let done = bound(&scheduler).unwrap_or(0);
        if done > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        peak_rss = peak_rss.max(scheduler.rss_bytes() as f64 / 1_048_576.0);
        if done >= PODS || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let finished = Instant::now();
    let done = bound(&scheduler).unwrap_or(0);
    let steady = done as f64 / (finished - first.unwrap_or(started)).as_secs_f64();
    let overall = done as f64 / (finished - started).as_secs_f64();

    let list = http::Request::get("/api/v1/namespaces/default/pods")
        .body(Vec::new())
        .unwrap();
    let pods: Value = serde_json::from_str(&client.request_text(list).await.unwrap()).unwrap();
    let mut per_node: HashMap<String, i64> = HashMap::new();
    for pod in pods["items"].as_array().unwrap() {
        if let Some(node) = pod["spec"]["nodeName"].as_str() {
            *per_node.entry(node.to_string()).or_default() += 1;
        }
    }
    let cpu_capacity: i64 = NODE_CPU.parse::<i64>().unwrap() * 1000;
    let overcommitted = per_node
        .values()
        .filter(|n| **n > 110 || **n * POD_CPU_MILLIS > cpu_capacity)
        .count();
    let busiest = per_node.values().max().copied().unwrap_or(0);
    println!(
        "  {nodes:>5} nodes: {steady:>7.0} pods/s ({overall:.0} pods/s from start), {done} bound, busiest node {busiest} pods, \
         {overcommitted} overcommitted, scheduler peak RSS {peak_rss:.0} MB"
    );
}

#[tokio::main]
async fn main() {
    let counts: Vec<usize> = match std::env::args().nth(1) {
        Some(list) => list
            .split(',')
            .map(|n| n.parse().expect("node count"))
            .collect(),
        None => NODE_COUNTS.to_vec(),
    };
    println!("kube-scheduler: a backlog of {PODS} pending pods, bound as fast as possible");
    for nodes in counts {
        run(nodes).await;
    }
}
