//! Scheduler benchmark behind `hack/bench.sh scheduler`: for 100, 1,000 and 5,000 nodes, a
//! fresh release kube-apiserver gets the Node objects and a backlog of 10,000 pending pods,
//! then a release kube-scheduler starts and the pods/s it binds are printed (from its first
//! binding to its last, and from its start), with a check that no node was overcommitted.
//! Figures only; nothing here passes or fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Client;
use serde_json::{json, Value};

const PODS: usize = 10_000;
const NODE_COUNTS: [usize; 3] = [100, 1_000, 5_000];
/// Each node takes 110 pods and 32 CPUs, so even 100 nodes fit the whole backlog.
const NODE_CPU: &str = "32";
const POD_CPU_MILLIS: i64 = 100;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

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
    http::Request::post(path).header("content-type", "application/json").body(serde_json::to_vec(body).unwrap()).unwrap()
}

/// Creates `count` objects made by `make(i)` at `path`, 32 at a time.
async fn create_all(client: &Client, path: &str, count: usize, make: Arc<dyn Fn(usize) -> Value + Send + Sync>) {
    futures::stream::iter(0..count)
        .for_each_concurrent(32, |i| {
            let (client, make) = (client.clone(), make.clone());
            async move {
                client.request_text(post(path, &make(i))).await.expect("create");
            }
        })
        .await;
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 =
        status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    kb / 1024.0
}

/// A running control-plane binary, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_apiserver(bin: &Path, dir: &Path) -> (Running, Client) {
    let child = Command::new(bin.join("kube-apiserver"))
        .args(["--secure-port", &free_port().to_string()])
        .arg("--cert-dir")
        .arg(dir.join("pki"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start kube-apiserver");
    let kubeconfig = dir.join("pki/admin.conf");
    while !kubeconfig.exists() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let config = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let client = Client::try_from(kube::Config::from_custom_kubeconfig(config, &Default::default()).await.unwrap()).unwrap();
    let ready = || http::Request::get("/readyz").body(Vec::new()).unwrap();
    while !client.request_text(ready()).await.is_ok_and(|body| body == "ok") {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (Running(child), client)
}

/// Successful bindings so far, from the scheduler's end-to-end latency histogram.
fn bound(metrics_port: u16) -> Option<usize> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    let counts = body.lines().filter(|l| l.starts_with("scheduler_pod_scheduling_sli_duration_seconds_count"));
    Some(counts.filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum::<f64>() as usize)
}

async fn run(bin: &Path, nodes: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (_apiserver, client) = start_apiserver(bin, dir.path()).await;
    create_all(&client, "/api/v1/nodes", nodes, Arc::new(|i| node(&format!("node-{i}")))).await;
    create_all(&client, "/api/v1/namespaces/default/pods", PODS, Arc::new(|i| pod(&format!("pod-{i}")))).await;

    let port = free_port();
    let started = Instant::now();
    let scheduler = Command::new(bin.join("kube-scheduler"))
        .arg("--kubeconfig")
        .arg(dir.path().join("pki/scheduler.conf"))
        .args(["--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port", &port.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .expect("start kube-scheduler");
    let scheduler = Running(scheduler);
    let mut first: Option<Instant> = None;
    let mut peak_rss: f64 = 0.0;
    let deadline = started + Duration::from_secs(300);
    loop {
        let done = bound(port).unwrap_or(0);
        if done > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        peak_rss = peak_rss.max(rss_mb(scheduler.0.id()));
        if done >= PODS || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let finished = Instant::now();
    let done = bound(port).unwrap_or(0);
    let steady = done as f64 / (finished - first.unwrap_or(started)).as_secs_f64();
    let overall = done as f64 / (finished - started).as_secs_f64();

    let list = http::Request::get("/api/v1/namespaces/default/pods").body(Vec::new()).unwrap();
    let pods: Value = serde_json::from_str(&client.request_text(list).await.unwrap()).unwrap();
    let mut per_node: HashMap<String, i64> = HashMap::new();
    for pod in pods["items"].as_array().unwrap() {
        if let Some(node) = pod["spec"]["nodeName"].as_str() {
            *per_node.entry(node.to_string()).or_default() += 1;
        }
    }
    let cpu_capacity: i64 = NODE_CPU.parse::<i64>().unwrap() * 1000;
    let overcommitted = per_node.values().filter(|n| **n > 110 || **n * POD_CPU_MILLIS > cpu_capacity).count();
    let busiest = per_node.values().max().copied().unwrap_or(0);
    println!(
        "  {nodes:>5} nodes: {steady:>7.0} pods/s ({overall:.0} pods/s from start), {done} bound, busiest node {busiest} pods, \
         {overcommitted} overcommitted, scheduler peak RSS {peak_rss:.0} MB"
    );
}

#[tokio::main]
async fn main() {
    let bin = PathBuf::from(std::env::args().nth(1).expect("usage: bench_scheduler <directory of kube-apiserver and kube-scheduler>"));
    let counts: Vec<usize> = match std::env::args().nth(2) {
        Some(list) => list.split(',').map(|n| n.parse().expect("node count")).collect(),
        None => NODE_COUNTS.to_vec(),
    };
    println!("kube-scheduler: a backlog of {PODS} pending pods, bound as fast as possible");
    for nodes in counts {
        run(&bin, nodes).await;
    }
}
