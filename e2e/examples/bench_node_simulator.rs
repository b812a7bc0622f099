//! node-simulator benchmark behind `hack/bench.sh node-simulator`: a release kube-apiserver,
//! kube-scheduler and one node-simulator process with 1,000 nodes, then 30,000 pods created
//! and walked to Running. Prints how long that took and the simulator's memory. The
//! binaries come from `KUBE_BIN_DIR`, as for every `e2e::Cluster`. Figures only; nothing here
//! passes or fails.

use std::time::{Duration, Instant};

use e2e::{Backend, Cluster};
use futures::StreamExt;
use kube::Client;
use serde_json::{json, Value};

const NODES: usize = 1_000;
const PODS: usize = 30_000;

fn get(path: &str) -> http::Request<Vec<u8>> {
    http::Request::get(path).body(Vec::new()).unwrap()
}

/// How many pods are not Running yet (counting at most one page).
async fn not_running(client: &Client) -> usize {
    let list =
        get("/api/v1/namespaces/default/pods?fieldSelector=status.phase!%3DRunning&limit=500");
    let Ok(text) = client.request_text(list).await else {
        return usize::MAX;
    };
    let list: Value = serde_json::from_str(&text).unwrap_or_default();
    list["items"].as_array().map_or(usize::MAX, Vec::len)
}

#[tokio::main]
async fn main() {
    let cluster = Cluster::start(Backend::Embedded).await;
    let client = cluster.client().await;
    // No controller-manager runs: the account the pods run as is created here.
    cluster.create_default_service_account("default");

    let started = Instant::now();
    let simulator = cluster.start_node_simulator(&[
        "--nodes",
        &NODES.to_string(),
        "--cluster-cidr",
        "10.128.0.0/9",
        "--pod-startup-delay",
        "1s",
    ]);
    loop {
        let nodes: Value = serde_json::from_str(
            &client
                .request_text(get("/api/v1/nodes?limit=2000"))
                .await
                .unwrap(),
        )
        .unwrap();
        if nodes["items"].as_array().map_or(0, Vec::len) >= NODES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("node-simulator: {NODES} nodes, {PODS} pods");
    println!(
        "  nodes registered in:         {:>8.1} s",
        started.elapsed().as_secs_f64()
    );
    let _scheduler = cluster.start_scheduler(&["--leader-elect=false"]);

    let started = Instant::now();
    futures::stream::iter(0..PODS)
        .for_each_concurrent(32, |i| {
            let client = client.clone();
            async move {
                let pod = json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": format!("pod-{i}"), "labels": {"app": "bench"}},
                    "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": "10m"}}}]},
                });
                let request = http::Request::post("/api/v1/namespaces/default/pods")
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&pod).unwrap())
                    .unwrap();
                client.request_text(request).await.expect("create pod");
            }
        })
        .await;
    println!(
        "  pods created in:             {:>8.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut peak = 0.0f64;
    while not_running(&client).await > 0 {
        peak = peak.max(simulator.rss_bytes() as f64 / 1_048_576.0);
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "pods still not running after 15 minutes"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let settled = simulator.rss_bytes() as f64 / 1_048_576.0;
    peak = peak.max(settled);
    println!("  all pods Running after:      {elapsed:>8.1} s ({:.0} pods/s created, scheduled and started)", PODS as f64 / elapsed);
    println!("  simulator RSS, peak:         {peak:>8.1} MB");
    println!("  simulator RSS, settled:      {settled:>8.1} MB");
}
