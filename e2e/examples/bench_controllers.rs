//! Controller-manager benchmark behind `hack/bench.sh controllers`: release builds of the
//! apiserver (embedded store), kube-scheduler, 100 simulated nodes and
//! kube-controller-manager; a 1,000-replica Deployment is created and the time until 1,000
//! pods are Ready is printed, then the time for a rollout of a new image to complete, then
//! the time a Job of 1,000 completions with parallelism 100 (containers that `exit 0`) takes
//! to be Complete, then the time a 100-replica StatefulSet with `podManagementPolicy: Parallel`
//! takes to have all its pods Ready, then (with 900 more simulated nodes) the time a
//! DaemonSet takes to have a Ready pod on each of the 1,000 nodes.
//! The binaries come from `KUBE_BIN_DIR`, as for every `e2e::Cluster`. Figures only;
//! nothing here passes or fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{Backend, Cluster};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;

const REPLICAS: usize = 1_000;
const NODES: usize = 100;
const COMPLETIONS: usize = 1_000;
const PARALLELISM: usize = 100;
const STATEFUL_REPLICAS: usize = 100;
const DAEMON_NODES: usize = 1_000;

/// Pods of the benchmark by name, kept current by a watch.
type Pods = Arc<Mutex<HashMap<String, Pod>>>;

fn ready_with_image(pods: &Pods, image: &str) -> usize {
    pods.lock()
        .unwrap()
        .values()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.spec
                .as_ref()
                .is_some_and(|s| s.containers[0].image.as_deref() == Some(image))
        })
        .filter(|p| {
            let conditions = p.status.as_ref().and_then(|s| s.conditions.as_ref());
            conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count()
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < timeout,
            "gave up waiting for {what} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let cluster = Cluster::start(Backend::Embedded).await;
    let _scheduler = cluster.start_scheduler(&["--leader-elect=false"]);
    let _nodes = cluster.start_node_simulator(&["--nodes", &NODES.to_string()]);
    let manager = cluster.start_controller_manager(&["--leader-elect=false"]);
    let client = cluster.client().await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    while nodes
        .list(&Default::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
        < NODES
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let pods: Pods = Arc::default();
    let watched = pods.clone();
    let pod_api: Api<Pod> = Api::default_namespaced(client.clone());
    tokio::spawn(async move {
        let mut events =
            watcher::watcher(pod_api, watcher::Config::default().labels("app=bench")).boxed();
        while let Some(event) = events.next().await {
            let mut pods = watched.lock().unwrap();
            match event {
                Ok(Event::Apply(pod) | Event::InitApply(pod)) => {
                    pods.insert(pod.metadata.name.clone().unwrap_or_default(), pod);
                }
                Ok(Event::Delete(pod)) => {
                    pods.remove(pod.metadata.name.as_deref().unwrap_or_default());
                }
                _ => {}
            }
        }
    });

    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": "bench"}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }))
    .unwrap();
    println!("kube-controller-manager: a {REPLICAS}-replica Deployment on {NODES} simulated nodes");
    let started = Instant::now();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");
    wait_for("1,000 ready pods", Duration::from_secs(600), || {
        ready_with_image(&pods, "registry.k8s.io/pause:3.10") == REPLICAS
    })
    .await;
    let created = started.elapsed();
    println!(
        "  create to {REPLICAS} Ready pods:           {:>8.1} s",
        created.as_secs_f64()
    );

    let started = Instant::now();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]}}}});
    deployments
        .patch("bench", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("patch image");
    loop {
        let d = deployments.get("bench").await.expect("get deployment");
        let status = d.status.unwrap_or_default();
        let all = Some(REPLICAS as i32);
        let complete = status.observed_generation >= d.metadata.generation
            && status.updated_replicas == all
            && status.replicas == all
            && status.available_replicas == all;
        if complete {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "gave up waiting for the rollout"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rolled = started.elapsed();
    println!(
        "  rollout of a new image to completion:  {:>8.1} s",
        rolled.as_secs_f64()
    );
    println!(
        "  Ready pods with the new image:         {:>8}",
        ready_with_image(&pods, "registry.k8s.io/pause:3.9")
    );
    println!(
        "  Job of {COMPLETIONS} completions, parallelism {PARALLELISM}, to Complete: {:>6.1} s",
        run_job(&client).await.as_secs_f64()
    );
    println!(
        "  {STATEFUL_REPLICAS}-replica StatefulSet (Parallel) to Ready: {:>7.1} s",
        run_stateful_set(&client).await.as_secs_f64()
    );
    println!(
        "  DaemonSet across {DAEMON_NODES} simulated nodes to all Ready: {:>5.1} s",
        run_daemon_set(&cluster, &client).await.as_secs_f64()
    );
    println!(
        "  controller-manager RSS:                {:>8.1} MB",
        manager.rss_bytes() as f64 / 1_048_576.0
    );
}

/// Creates the benchmark Job and waits for its Complete condition.
async fn run_job(client: &kube::Client) -> Duration {
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "bench"},
        "spec": {
            "completions": COMPLETIONS,
            "parallelism": PARALLELISM,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "work", "image": "busybox:1.36", "command": ["sh", "-c", "exit 0"]}],
            }},
        },
    }))
    .unwrap();
    let started = Instant::now();
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create job");
    loop {
        let job = jobs.get("bench").await.expect("get job");
        let conditions = job.status.and_then(|s| s.conditions).unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True")
        {
            return started.elapsed();
        }
        assert!(
            !conditions
                .iter()
                .any(|c| c.type_ == "Failed" && c.status == "True"),
            "the benchmark job failed: {conditions:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "gave up waiting for the job"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates the benchmark StatefulSet (Parallel) and waits until its status counts every
/// replica Ready.
async fn run_stateful_set(client: &kube::Client) -> Duration {
    let sets: Api<StatefulSet> = Api::default_namespaced(client.clone());
    let set: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": STATEFUL_REPLICAS,
            "podManagementPolicy": "Parallel",
            "serviceName": "bench",
            "selector": {"matchLabels": {"app": "bench-sts"}},
            "template": {
                "metadata": {"labels": {"app": "bench-sts"}},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }))
    .unwrap();
    let started = Instant::now();
    sets.create(&PostParams::default(), &set)
        .await
        .expect("create statefulset");
    loop {
        let set = sets.get("bench").await.expect("get statefulset");
        let ready = set.status.and_then(|s| s.ready_replicas).unwrap_or(0);
        if ready == STATEFUL_REPLICAS as i32 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "gave up waiting for the statefulset"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Grows the cluster to 1,000 simulated nodes, then creates the benchmark DaemonSet and
/// waits until its status counts a Ready pod on every node.
async fn run_daemon_set(cluster: &Cluster, client: &kube::Client) -> Duration {
    let extra = (DAEMON_NODES - NODES).to_string();
    // Pod CIDRs of their own: the first simulator's default 10.244.0.0/16 holds only 256
    // node /24s, and these 900 must not overlap its 100.
    let _more = cluster.start_node_simulator(&[
        "--nodes",
        &extra,
        "--node-name-prefix",
        "ds-",
        "--cluster-cidr",
        "10.128.0.0/14",
    ]);
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    while nodes
        .list(&Default::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
        < DAEMON_NODES
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sets: Api<DaemonSet> = Api::default_namespaced(client.clone());
    let set: DaemonSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "bench"},
        "spec": {
            "selector": {"matchLabels": {"app": "bench-ds"}},
            "template": {
                "metadata": {"labels": {"app": "bench-ds"}},
                "spec": {"containers": [{"name": "agent", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }))
    .unwrap();
    let started = Instant::now();
    sets.create(&PostParams::default(), &set)
        .await
        .expect("create daemonset");
    loop {
        let status = sets
            .get("bench")
            .await
            .expect("get daemonset")
            .status
            .unwrap_or_default();
        if status.desired_number_scheduled == DAEMON_NODES as i32
            && status.number_ready == DAEMON_NODES as i32
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "gave up waiting for the daemonset"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
