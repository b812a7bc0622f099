//! node-simulator benchmark behind `hack/bench.sh node-simulator`: a release kube-apiserver,
//! kube-scheduler and one node-simulator process with 1,000 nodes, then 30,000 pods created
//! and walked to Running. Prints how long that took and the simulator's memory. Figures
//! only; nothing here passes or fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Client;
use serde_json::{json, Value};

const NODES: usize = 1_000;
const PODS: usize = 30_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 =
        status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    kb / 1024.0
}

/// A running binary, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(bin: &Path, name: &str, args: &[String]) -> Running {
    Running(Command::new(bin.join(name)).args(args).stderr(Stdio::null()).spawn().unwrap_or_else(|e| panic!("start {name}: {e}")))
}

fn get(path: &str) -> http::Request<Vec<u8>> {
    http::Request::get(path).body(Vec::new()).unwrap()
}

/// How many pods are not Running yet (counting at most one page).
async fn not_running(client: &Client) -> usize {
    let list = get("/api/v1/namespaces/default/pods?fieldSelector=status.phase!%3DRunning&limit=500");
    let Ok(text) = client.request_text(list).await else { return usize::MAX };
    let list: Value = serde_json::from_str(&text).unwrap_or_default();
    list["items"].as_array().map_or(usize::MAX, Vec::len)
}

#[tokio::main]
async fn main() {
    let bin = PathBuf::from(std::env::args().nth(1).expect("usage: bench_node_simulator <directory of the release binaries>"));
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = |sub: &str| dir.path().join(sub).display().to_string();
    let _apiserver = start(
        &bin,
        "kube-apiserver",
        &["--secure-port".into(), free_port().to_string(), "--cert-dir".into(), dir_arg("pki"), "--data-dir".into(), dir_arg("data")],
    );
    let kubeconfig = dir.path().join("pki/admin.conf");
    while !kubeconfig.exists() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let config = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let client = Client::try_from(kube::Config::from_custom_kubeconfig(config, &Default::default()).await.unwrap()).unwrap();
    while !client.request_text(get("/readyz")).await.is_ok_and(|body| body == "ok") {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let started = Instant::now();
    let simulator = start(
        &bin,
        "node-simulator",
        &[
            "--kubeconfig".into(),
            dir_arg("pki/admin.conf"),
            "--nodes".into(),
            NODES.to_string(),
            "--cluster-cidr".into(),
            "10.128.0.0/9".into(),
            "--pod-startup-delay".into(),
            "1s".into(),
        ],
    );
    loop {
        let nodes: Value = serde_json::from_str(&client.request_text(get("/api/v1/nodes?limit=2000")).await.unwrap()).unwrap();
        if nodes["items"].as_array().map_or(0, Vec::len) >= NODES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("node-simulator: {NODES} nodes, {PODS} pods");
    println!("  nodes registered in:         {:>8.1} s", started.elapsed().as_secs_f64());
    let _scheduler = start(
        &bin,
        "kube-scheduler",
        &["--kubeconfig".into(), dir_arg("pki/scheduler.conf"), "--leader-elect=false".into(), "--secure-port=0".into()],
    );

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
    println!("  pods created in:             {:>8.1} s", started.elapsed().as_secs_f64());
    let mut peak = 0.0f64;
    while not_running(&client).await > 0 {
        peak = peak.max(rss_mb(simulator.0.id()));
        assert!(started.elapsed() < Duration::from_secs(900), "pods still not running after 15 minutes");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let settled = rss_mb(simulator.0.id());
    peak = peak.max(settled);
    println!("  all pods Running after:      {elapsed:>8.1} s ({:.0} pods/s created, scheduled and started)", PODS as f64 / elapsed);
    println!("  simulator RSS, peak:         {peak:>8.1} MB");
    println!("  simulator RSS, settled:      {settled:>8.1} MB");
}
