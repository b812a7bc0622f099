//! Apiserver benchmark behind `hack/bench.sh apiserver`: starts a release kube-apiserver on
//! the embedded store (from `KUBE_BIN_DIR`, as every `e2e::Cluster`) and prints start-up
//! time, idle memory, request throughput over HTTPS, list latency and watch delivery
//! latency. Figures only; nothing here passes or fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{Backend, Cluster};
use futures::{AsyncBufReadExt, TryStreamExt};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

const NAMESPACE: &str = "default";

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10", "ports": [{"containerPort": 80}]}]},
    })
}

async fn send(client: &Client, request: http::Request<Vec<u8>>) -> String {
    client.request_text(request).await.expect("request")
}

fn post(path: &str, body: &Value) -> http::Request<Vec<u8>> {
    http::Request::post(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .unwrap()
}

fn get(path: &str) -> http::Request<Vec<u8>> {
    http::Request::get(path).body(Vec::new()).unwrap()
}

/// Requests per second, and the apiserver's CPU time per request in microseconds: the
/// figure that stays comparable on a busy machine.
struct Rate {
    per_second: f64,
    cpu_us: f64,
}

/// Runs `total` requests made by `make(i)` from `concurrency` tasks against `cluster`.
async fn throughput(
    cluster: &Cluster,
    client: &Client,
    concurrency: usize,
    total: usize,
    make: Arc<dyn Fn(usize) -> http::Request<Vec<u8>> + Send + Sync>,
) -> Rate {
    let cpu = cluster.apiserver_cpu_seconds();
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (client, make) = (client.clone(), make.clone());
            tokio::spawn(async move {
                for i in (worker..total).step_by(concurrency) {
                    send(&client, make(i)).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    Rate {
        per_second: total as f64 / started.elapsed().as_secs_f64(),
        cpu_us: (cluster.apiserver_cpu_seconds() - cpu) / total as f64 * 1e6,
    }
}

#[tokio::main]
async fn main() {
    // `APISERVER_ARGS` adds flags, for measuring what one feature costs (e.g.
    // `--authorization-mode=AlwaysAllow` or `--disable-admission-plugins=ServiceAccount`).
    let extra = std::env::var("APISERVER_ARGS").unwrap_or_default();
    let extra: Vec<&str> = extra.split_whitespace().collect();
    let started = Instant::now();
    let cluster = Cluster::start_with(Backend::Embedded, &extra).await;
    let elapsed = started.elapsed();
    let client = cluster.client().await;
    // No controller-manager runs: the account the pods run as is created here.
    cluster.create_default_service_account(NAMESPACE);
    println!("kube-apiserver (embedded store)");
    println!(
        "  start to readyz (first start, PKI generated): {:>8.1} ms",
        elapsed.as_secs_f64() * 1000.0
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "  idle RSS:                                     {:>8.1} MB",
        cluster.apiserver_rss_bytes() as f64 / 1_048_576.0
    );

    // No controller-manager runs here to create the namespace's default service account,
    // which the ServiceAccount admission plugin wants every new pod's account to be.
    cluster.kubectl(&["create", "serviceaccount", "default", "-n", NAMESPACE]);
    let base = format!("/api/v1/namespaces/{NAMESPACE}/pods");
    for concurrency in [1, 32] {
        let total = if concurrency == 1 { 1_000 } else { 5_000 };
        let path = base.clone();
        let make: Arc<dyn Fn(usize) -> http::Request<Vec<u8>> + Send + Sync> =
            Arc::new(move |i| post(&path, &pod(&format!("c{concurrency}-{i}"))));
        let rate = throughput(&cluster, &client, concurrency, total, make).await;
        println!(
            "  creates/s, {concurrency:>2} clients:                       {:>8.0} (apiserver CPU {:.0} µs each)",
            rate.per_second, rate.cpu_us
        );
    }
    for concurrency in [1, 32] {
        let path = base.clone();
        let make: Arc<dyn Fn(usize) -> http::Request<Vec<u8>> + Send + Sync> =
            Arc::new(move |i| get(&format!("{path}/c32-{}", i % 5_000)));
        let rate = throughput(&cluster, &client, concurrency, 10_000, make).await;
        println!(
            "  gets/s, {concurrency:>2} clients:                          {:>8.0} (apiserver CPU {:.0} µs each)",
            rate.per_second, rate.cpu_us
        );
    }
    // `BENCH_QUICK=1` stops here: enough to compare two builds' request costs several
    // times over in the time a full run takes.
    if std::env::var_os("BENCH_QUICK").is_some() {
        return;
    }
    let path = base.clone();
    let make: Arc<dyn Fn(usize) -> http::Request<Vec<u8>> + Send + Sync> =
        Arc::new(move |i| post(&path, &pod(&format!("fill-{i}"))));
    throughput(&cluster, &client, 32, 4_000, make).await;
    let mut json_ms = 0.0;
    for (label, accept) in [
        ("JSON", "application/json"),
        ("Table", "application/json;as=Table;v=v1;g=meta.k8s.io"),
        ("proto", "application/vnd.kubernetes.protobuf"),
    ] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let request = http::Request::get(&base)
                .header("accept", accept)
                .body(Body::empty())
                .unwrap();
            let started = Instant::now();
            let response = client.send(request).await.expect("list");
            let body = response.into_body().collect_bytes().await.expect("list");
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert!(body.len() > 1_000_000);
        }
        times.sort_by(f64::total_cmp);
        let median = times[2];
        if label == "JSON" {
            json_ms = median;
        }
        println!(
            "  list of 10,000 pods as {label:<5}:                {median:>8.1} ms ({:.2}x JSON)",
            median / json_ms
        );
    }
    let (p50, p99) = watch_latency(&client, 1_000).await;
    println!("  watch delivery, 1,000 watchers:               p50 {p50:.1} ms, p99 {p99:.1} ms");
    println!(
        "  RSS after the run:                            {:>8.1} MB",
        cluster.apiserver_rss_bytes() as f64 / 1_048_576.0
    );
    drop(cluster);
    if extra.is_empty() {
        authorization_cost().await;
    }
}

/// Creates and gets at 32 clients by a user outside `system:masters` (whom every mode
/// allows without looking at the request), once under AlwaysAllow and once under the
/// default Node,RBAC with the user holding `edit` through a RoleBinding: what authorizing
/// each request costs.
async fn authorization_cost() {
    const TOKEN: &str = "bench-token";
    let tokens = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(tokens.path(), format!("{TOKEN},bench-user,4242\n")).expect("token file");
    let token_file = tokens.path().display().to_string();
    let mut figures = Vec::new();
    for mode in ["AlwaysAllow", "Node,RBAC"] {
        let cluster = Cluster::start_with(
            Backend::Embedded,
            &[
                "--authorization-mode",
                mode,
                "--token-auth-file",
                &token_file,
            ],
        )
        .await;
        cluster.create_default_service_account(NAMESPACE);
        cluster.ok(&[
            "create",
            "rolebinding",
            "bench-edit",
            "--clusterrole=edit",
            "--user=bench-user",
            "-n",
            NAMESPACE,
        ]);
        let client = cluster.client_as_token(TOKEN).await;
        let base = format!("/api/v1/namespaces/{NAMESPACE}/pods");
        let path = base.clone();
        let make: Arc<dyn Fn(usize) -> http::Request<Vec<u8>> + Send + Sync> =
            Arc::new(move |i| post(&path, &pod(&format!("u-{i}"))));
        let creates = throughput(&cluster, &client, 32, 5_000, make).await;
        let make: Arc<dyn Fn(usize) -> http::Request<Vec<u8>> + Send + Sync> =
            Arc::new(move |i| get(&format!("{base}/u-{}", i % 5_000)));
        let gets = throughput(&cluster, &client, 32, 10_000, make).await;
        println!(
            "  as a non-admin user under {mode:<11}: creates/s {:>6.0} ({:.0} µs CPU), gets/s {:>7.0} ({:.0} µs CPU) (32 clients)",
            creates.per_second, creates.cpu_us, gets.per_second, gets.cpu_us
        );
        figures.push((creates, gets));
    }
    let [(allow_creates, allow_gets), (rbac_creates, rbac_gets)] = &figures[..] else {
        return;
    };
    println!(
        "  Node,RBAC / AlwaysAllow:                      creates {:.2}x, gets {:.2}x (CPU per request {:.2}x, {:.2}x)",
        rbac_creates.per_second / allow_creates.per_second,
        rbac_gets.per_second / allow_gets.per_second,
        rbac_creates.cpu_us / allow_creates.cpu_us,
        rbac_gets.cpu_us / allow_gets.cpu_us
    );
}

/// From a create's start to its ADDED event at each of `watchers` watchers.
async fn watch_latency(client: &Client, watchers: usize) -> (f64, f64) {
    const WRITES: usize = 50;
    let base = Instant::now();
    send(
        client,
        post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}),
        ),
    )
    .await;
    let rv: Value =
        serde_json::from_str(&send(client, get("/api/v1/namespaces/bench/configmaps")).await)
            .unwrap();
    let rv = rv["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let request = get(&format!(
            "/api/v1/namespaces/bench/configmaps?watch=true&resourceVersion={rv}"
        ));
        let lines = client.request_stream(request).await.expect("watch").lines();
        tasks.push(tokio::spawn(async move {
            let mut lines = Box::pin(lines);
            let mut latencies = Vec::with_capacity(WRITES);
            while latencies.len() < WRITES {
                let Ok(Some(line)) = lines.try_next().await else {
                    break;
                };
                let event: Value = serde_json::from_str(&line).unwrap();
                let sent: u64 = event["object"]["data"]["sent"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                latencies.push(base.elapsed().as_nanos() as u64 - sent);
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..WRITES {
        let sent = base.elapsed().as_nanos() as u64;
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("w{i}")}, "data": {"sent": sent.to_string()}});
        send(client, post("/api/v1/namespaces/bench/configmaps", &cm)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_unstable();
    let pick = |q: f64| all[((all.len() - 1) as f64 * q) as usize] as f64 / 1e6;
    (pick(0.5), pick(0.99))
}
