//! Storage benchmark behind `hack/bench.sh store`: prints throughput and watch latency of one
//! backend, so the figures in the README can be reproduced on any machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use store::embedded::{EmbeddedConfig, EmbeddedStore};
use store::etcd::{EtcdConfig, EtcdStore};
use store::{ListOptions, Store, WatchResponse};

#[derive(Parser)]
struct Args {
    /// Benchmark etcd at these comma-separated endpoints instead of the embedded store.
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// Data dir for the embedded store (a fresh temp dir when not given).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Watchers in the watch latency test.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
}

/// A small object, about the size of a ConfigMap with a few keys.
fn value(i: usize) -> Bytes {
    Bytes::from(format!(
        "{{\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"cm-{i}\"}},\"data\":{{\"k\":\"{}\"}}}}",
        "x".repeat(200)
    ))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let temp = tempfile::tempdir().expect("temp dir");
    let (name, store): (&str, Arc<dyn Store>) = if args.etcd_servers.is_empty() {
        let dir = args
            .data_dir
            .clone()
            .unwrap_or_else(|| temp.path().to_path_buf());
        (
            "embedded",
            Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir)).expect("open store")),
        )
    } else {
        let config = EtcdConfig::new(args.etcd_servers.clone());
        (
            "etcd",
            Arc::new(EtcdStore::connect(config).await.expect("connect to etcd")),
        )
    };
    println!("store backend: {name}");
    let creates_1 = creates(&store, "/bench/c1/", 1, 3_000).await;
    println!("  creates/s, 1 writer:        {creates_1:>10.0}");
    let creates_16 = creates(&store, "/bench/c16/", 16, 30_000).await;
    println!("  creates/s, 16 writers:      {creates_16:>10.0}");
    println!(
        "  gets/s, 1 reader:           {:>10.0}",
        gets(&store, "/bench/c16/", 1, 20_000).await
    );
    println!(
        "  gets/s, 16 readers:         {:>10.0}",
        gets(&store, "/bench/c16/", 16, 50_000).await
    );
    let list_ms = list(&store).await;
    println!("  list of 10,000 keys:        {list_ms:>10.1} ms");
    let (p50, p99) = watch_latency(&store, args.watchers).await;
    println!(
        "  watch delivery, {} watchers: p50 {p50:.2} ms, p99 {p99:.2} ms",
        args.watchers
    );
}

/// Creates `total` keys from `writers` concurrent tasks; returns creates per second.
async fn creates(store: &Arc<dyn Store>, prefix: &str, writers: usize, total: usize) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let prefix = prefix.to_string();
            tokio::spawn(async move {
                for i in (w..total).step_by(writers) {
                    store
                        .create(format!("{prefix}{i:06}").as_bytes(), value(i))
                        .await
                        .expect("create");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

async fn gets(store: &Arc<dyn Store>, prefix: &str, readers: usize, total: usize) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..readers)
        .map(|r| {
            let store = store.clone();
            let prefix = prefix.to_string();
            tokio::spawn(async move {
                for i in (r..total).step_by(readers) {
                    let key = format!("{prefix}{:06}", (i * 7919) % 30_000);
                    store
                        .get(key.as_bytes())
                        .await
                        .expect("get")
                        .expect("key exists");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Median of five full lists of a 10,000-key prefix, in milliseconds.
async fn list(store: &Arc<dyn Store>) -> f64 {
    creates(store, "/bench/list/", 16, 10_000).await;
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let result = store
            .list(b"/bench/list/", ListOptions::default())
            .await
            .expect("list");
        assert_eq!(result.kvs.len(), 10_000);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times[2]
}

/// Latency from a write's start to its delivery to each of `watchers` watchers.
async fn watch_latency(store: &Arc<dyn Store>, watchers: usize) -> (f64, f64) {
    const WRITES: usize = 200;
    let base = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let mut watch = store.watch(b"/bench/watch/", 0).await.expect("watch");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(WRITES);
            while latencies.len() < WRITES {
                let Some(response) = watch.next().await else {
                    break;
                };
                if let WatchResponse::Events(events) = response.expect("watch") {
                    let now = base.elapsed().as_nanos() as u64;
                    for event in events {
                        let sent: u64 = String::from_utf8_lossy(
                            event.key().rsplit(|b| *b == b'/').next().unwrap(),
                        )
                        .parse()
                        .unwrap();
                        latencies.push(Duration::from_nanos(now - sent));
                    }
                }
            }
            latencies
        }));
    }
    for _ in 0..WRITES {
        let sent = base.elapsed().as_nanos() as u64;
        store
            .create(format!("/bench/watch/{sent}").as_bytes(), value(0))
            .await
            .expect("create");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    let pick = |q: f64| all[((all.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    (pick(0.5), pick(0.99))
}
