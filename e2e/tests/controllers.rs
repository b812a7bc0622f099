//! kube-controller-manager end to end: the real apiserver, kube-scheduler and simulated nodes,
//! driven by the real kubectl the way a learner does, on both store backends.

use e2e::fixtures::{
    condition, default_service_account, deployment, eventually, is_ready, items, json, live_pods,
};
use e2e::{on_both_backends, Cluster};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

on_both_backends!(
    deployment_scales_rolls_out_and_rolls_back,
    history_is_trimmed_and_a_stuck_rollout_times_out,
    expose_lists_ready_pod_ips_in_endpoints,
    deleting_a_deployment_deletes_its_replica_sets_and_pods,
    orphan_and_foreground_cascades,
    dangling_owner_references_are_removed,
    replica_set_adopts_and_releases_pods,
    namespace_deletion_empties_the_namespace,
    restart_mid_rollout_finishes_without_extra_pods,
    two_instances_elect_one_leader,
    pods_of_a_lost_node_are_replaced_elsewhere,
);

async fn wait_ready_pods(
    cluster: &Cluster,
    namespace: &str,
    selector: &str,
    count: usize,
) -> Vec<Value> {
    eventually(
        90,
        &format!("{count} ready pods {selector} in {namespace}"),
        || {
            let pods = live_pods(cluster, namespace, selector);
            (pods.len() == count && pods.iter().all(is_ready)).then_some(pods)
        },
    )
    .await
}

/// Watches pods and records the most live pods and the fewest ready live pods ever seen at
/// once, to check a rollout against maxSurge and maxUnavailable.
struct PodWatch {
    max_live: Arc<AtomicUsize>,
    min_ready: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl PodWatch {
    async fn start(cluster: &Cluster, selector: &str) -> PodWatch {
        let api: Api<Pod> = Api::default_namespaced(cluster.client().await);
        let max_live = Arc::new(AtomicUsize::new(0));
        let min_ready = Arc::new(AtomicUsize::new(usize::MAX));
        let (max, min) = (max_live.clone(), min_ready.clone());
        let initial = api
            .list(&ListParams::default().labels(selector))
            .await
            .expect("list pods");
        let pods: Arc<Mutex<HashMap<String, Pod>>> = Arc::new(Mutex::new(
            initial
                .items
                .into_iter()
                .map(|p| (p.metadata.name.clone().unwrap(), p))
                .collect(),
        ));
        let config = watcher::Config::default().labels(selector);
        let task = tokio::spawn(async move {
            let mut events = watcher::watcher(api, config).boxed();
            while let Some(Ok(event)) = events.next().await {
                let mut pods = pods.lock().unwrap();
                match event {
                    Event::Apply(pod) | Event::InitApply(pod) => {
                        pods.insert(pod.metadata.name.clone().unwrap(), pod);
                    }
                    Event::Delete(pod) => {
                        pods.remove(pod.metadata.name.as_deref().unwrap());
                    }
                    Event::Init | Event::InitDone => continue,
                }
                let live: Vec<&Pod> = pods
                    .values()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                let ready = live
                    .iter()
                    .filter(|p| {
                        let conditions = p.status.as_ref().and_then(|s| s.conditions.as_ref());
                        conditions.is_some_and(|c| {
                            c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                    })
                    .count();
                max.fetch_max(live.len(), Ordering::SeqCst);
                min.fetch_min(ready, Ordering::SeqCst);
            }
        });
        PodWatch {
            max_live,
            min_ready,
            task,
        }
    }

    fn stop(self) -> (usize, usize) {
        self.task.abort();
        (
            self.max_live.load(Ordering::SeqCst),
            self.min_ready.load(Ordering::SeqCst),
        )
    }
}

fn replica_sets(cluster: &Cluster, selector: &str) -> Vec<Value> {
    items(cluster, &["get", "rs", "-l", selector])
}

async fn deployment_scales_rolls_out_and_rolls_back(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(3, &[]);
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=3",
    ]);
    cluster.ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=90s",
    ]);
    let pods = wait_ready_pods(cluster, "default", "app=web", 3).await;
    assert!(
        pods.iter().all(|p| p["status"]["podIP"].is_string()),
        "running pods have IPs"
    );
    let table = cluster.ok(&["get", "deployment", "web"]);
    assert!(table.contains("3/3"), "{table}");

    cluster.ok(&["scale", "deployment/web", "--replicas=5"]);
    wait_ready_pods(cluster, "default", "app=web", 5).await;
    cluster.ok(&["scale", "deployment/web", "--replicas=3"]);
    wait_ready_pods(cluster, "default", "app=web", 3).await;
    let events = cluster.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=Deployment",
    ]);
    assert!(
        events.contains("ScalingReplicaSet") && events.contains("Scaled down replica set"),
        "{events}"
    );

    // 3 replicas at 25%: at most 1 extra pod, never fewer than 3 ready.
    let watch = PodWatch::start(cluster, "app=web").await;
    cluster.ok(&["set", "image", "deployment/web", "nginx=nginx:1.27"]);
    let status = cluster.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let (max_live, min_ready) = watch.stop();
    assert!(max_live <= 4, "maxSurge 1 exceeded: {max_live} live pods");
    assert!(
        min_ready >= 3,
        "maxUnavailable 0 exceeded: only {min_ready} ready pods"
    );
    let pods = wait_ready_pods(cluster, "default", "app=web", 3).await;
    assert!(pods
        .iter()
        .all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.27"));

    let history = cluster.ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let first = replica_sets(cluster, "app=web")
        .into_iter()
        .find(|rs| rs["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx")
        .expect("the first revision's replica set is kept");

    cluster.ok(&["rollout", "undo", "deployment/web"]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    let sets = replica_sets(cluster, "app=web");
    assert_eq!(sets.len(), 2, "the rollback reuses the first replica set");
    let reused = sets
        .iter()
        .find(|rs| rs["metadata"]["name"] == first["metadata"]["name"])
        .unwrap();
    assert_eq!(
        reused["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(
        reused["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"],
        "1"
    );
    assert_eq!(reused["spec"]["replicas"], 3);
    let deployment = json(&cluster.ok(&["get", "deployment", "web", "-o", "json"]));
    assert_eq!(
        deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let progressing = condition(&deployment, "Progressing").unwrap();
    assert_eq!(progressing["reason"], "NewReplicaSetAvailable");
    assert_eq!(
        progressing["message"],
        format!(
            "ReplicaSet {} has successfully progressed.",
            first["metadata"]["name"]
        )
    );
    let history = cluster.ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");

    // Pause: a template change waits for resume.
    cluster.ok(&["rollout", "pause", "deployment/web"]);
    cluster.ok(&["set", "image", "deployment/web", "nginx=nginx:1.28"]);
    eventually(
        30,
        "the Progressing condition to read DeploymentPaused",
        || {
            let d = json(&cluster.ok(&["get", "deployment", "web", "-o", "json"]));
            d["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["reason"] == "DeploymentPaused")
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        replica_sets(cluster, "app=web").len(),
        2,
        "no rollout while paused"
    );
    cluster.ok(&["rollout", "resume", "deployment/web"]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert_eq!(replica_sets(cluster, "app=web").len(), 3);
}

async fn history_is_trimmed_and_a_stuck_rollout_times_out(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(2, &[]);
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    cluster.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"revisionHistoryLimit":1}}"#,
    ]);
    for image in ["nginx:1", "nginx:2", "nginx:3"] {
        cluster.ok(&["set", "image", "deployment/web", &format!("nginx={image}")]);
        cluster.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    }
    eventually(
        30,
        "old replica sets beyond the history limit to be deleted",
        || (replica_sets(cluster, "app=web").len() == 2).then_some(()),
    )
    .await;

    // Pods that can never be scheduled make no progress: the deadline passes.
    let patch = r#"{"spec":{"progressDeadlineSeconds":3,"template":{"spec":{"nodeSelector":{"disktype":"none"}}}}}"#;
    cluster.ok(&["patch", "deployment", "web", "--type=merge", "-p", patch]);
    let condition = eventually(60, "ProgressDeadlineExceeded", || {
        let d = json(&cluster.ok(&["get", "deployment", "web", "-o", "json"]));
        d["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded")
            .cloned()
    })
    .await;
    assert_eq!(condition["status"], "False");
    let stuck = replica_sets(cluster, "app=web")
        .into_iter()
        .find(|rs| !rs["spec"]["template"]["spec"]["nodeSelector"].is_null())
        .unwrap();
    assert_eq!(
        condition["message"],
        format!(
            "ReplicaSet {} has timed out progressing.",
            stuck["metadata"]["name"]
        )
    );
    let error = cluster.fails(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert!(error.contains("exceeded its progress deadline"), "{error}");
    assert_eq!(
        live_pods(cluster, "default", "app=web")
            .iter()
            .filter(|p| is_ready(p))
            .count(),
        2,
        "maxUnavailable keeps the old pods"
    );
}

async fn expose_lists_ready_pod_ips_in_endpoints(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(2, &[]);
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=3",
        "--port=80",
    ]);
    let pods = wait_ready_pods(cluster, "default", "app=web", 3).await;
    let mut ips: Vec<String> = pods
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_string())
        .collect();
    ips.sort();
    cluster.ok(&["expose", "deployment", "web", "--port=80"]);
    let endpoints = eventually(30, "endpoints with the 3 pod IPs", || {
        let ep = json(&cluster.ok(&["get", "endpoints", "web", "-o", "json"]));
        let mut found: Vec<String> = ep["subsets"][0]["addresses"]
            .as_array()?
            .iter()
            .map(|a| a["ip"].as_str().unwrap().to_string())
            .collect();
        found.sort();
        (found == ips).then_some(ep)
    })
    .await;
    assert_eq!(endpoints["subsets"][0]["ports"][0]["port"], 80);
    assert_eq!(
        endpoints["subsets"][0]["addresses"][0]["targetRef"]["kind"],
        "Pod"
    );
    let table = cluster.ok(&["get", "ep", "web"]);
    assert!(
        ips.iter().all(|ip| table.contains(ip.as_str())) || table.contains("more..."),
        "{table}"
    );
    let slices = items(
        cluster,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
        ],
    );
    assert_eq!(slices.len(), 1);
    assert_eq!(
        slices[0]["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slices[0]["endpoints"].as_array().unwrap().len(), 3);
    assert!(slices[0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["conditions"]["ready"] == true));
    eventually(30, "describe svc to show the endpoints", || {
        let describe = cluster.ok(&["describe", "svc", "web"]);
        describe
            .lines()
            .any(|l| l.starts_with("Endpoints:") && l.contains(":80"))
            .then_some(())
    })
    .await;

    // A pod that stops being ready moves to notReadyAddresses.
    let victim = pods[0]["metadata"]["name"].as_str().unwrap();
    let ip = pods[0]["status"]["podIP"].as_str().unwrap();
    let patch = r#"{"status":{"conditions":[{"type":"Ready","status":"False"}]}}"#;
    cluster.ok(&[
        "patch",
        "pod",
        victim,
        "--subresource=status",
        "--type=strategic",
        "-p",
        patch,
    ]);
    eventually(30, "the unready pod in notReadyAddresses", || {
        let ep = json(&cluster.ok(&["get", "endpoints", "web", "-o", "json"]));
        let not_ready = ep["subsets"][0]["notReadyAddresses"].as_array()?;
        (not_ready.iter().any(|a| a["ip"] == ip)
            && ep["subsets"][0]["addresses"].as_array()?.len() == 2)
            .then_some(())
    })
    .await;
}

async fn deleting_a_deployment_deletes_its_replica_sets_and_pods(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(2, &[]);
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=3",
    ]);
    wait_ready_pods(cluster, "default", "app=web", 3).await;
    cluster.ok(&["delete", "deployment", "web"]);
    eventually(60, "replica sets and pods to be garbage collected", || {
        (replica_sets(cluster, "app=web").is_empty()
            && items(cluster, &["get", "pods", "-l", "app=web"]).is_empty())
        .then_some(())
    })
    .await;
}

async fn orphan_and_foreground_cascades(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(2, &[]);
    cluster.ok(&[
        "create",
        "deployment",
        "keep",
        "--image=nginx",
        "--replicas=2",
    ]);
    wait_ready_pods(cluster, "default", "app=keep", 2).await;
    cluster.ok(&["delete", "deployment", "keep", "--cascade=orphan"]);
    let orphan = eventually(30, "the replica set to lose its owner", || {
        let sets = replica_sets(cluster, "app=keep");
        (sets.len() == 1 && sets[0]["metadata"]["ownerReferences"].is_null())
            .then(|| sets[0].clone())
    })
    .await;
    let name = orphan["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        live_pods(cluster, "default", "app=keep").len(),
        2,
        "orphaned pods keep running"
    );
    cluster.ok(&["delete", "rs", name, "--cascade=orphan"]);
    eventually(30, "the pods to lose their owner", || {
        let pods = live_pods(cluster, "default", "app=keep");
        (replica_sets(cluster, "app=keep").is_empty()
            && pods.len() == 2
            && pods
                .iter()
                .all(|p| p["metadata"]["ownerReferences"].is_null()))
        .then_some(())
    })
    .await;

    cluster.ok(&[
        "create",
        "deployment",
        "fg",
        "--image=nginx",
        "--replicas=2",
    ]);
    wait_ready_pods(cluster, "default", "app=fg", 2).await;
    cluster.ok(&[
        "delete",
        "deployment",
        "fg",
        "--cascade=foreground",
        "--wait=false",
    ]);
    let waiting = cluster.kubectl(&["get", "deployment", "fg", "-o", "json"]);
    if waiting.status.success() {
        let deployment = json(&String::from_utf8_lossy(&waiting.stdout));
        assert!(deployment["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "foregroundDeletion"));
    }
    eventually(
        60,
        "the deployment to go after its replica set and pods",
        || {
            let gone = !cluster
                .kubectl(&["get", "deployment", "fg"])
                .status
                .success();
            (gone
                && replica_sets(cluster, "app=fg").is_empty()
                && items(cluster, &["get", "pods", "-l", "app=fg"]).is_empty())
            .then_some(())
        },
    )
    .await;
}

async fn dangling_owner_references_are_removed(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(1, &[]);
    cluster.ok(&["create", "configmap", "owner"]);
    let owner = json(&cluster.ok(&["get", "configmap", "owner", "-o", "json"]));
    let uid = owner["metadata"]["uid"].as_str().unwrap();
    let dependent = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dependent\n  ownerReferences:\n  \
         - {{apiVersion: v1, kind: ConfigMap, name: owner, uid: {uid}}}\n  \
         - {{apiVersion: v1, kind: ConfigMap, name: ghost, uid: 00000000-0000-0000-0000-000000000000}}\n"
    );
    cluster.ok_stdin(&["create", "-f", "-"], &dependent);
    eventually(
        30,
        "the reference to the missing owner to be removed",
        || {
            let refs = json(&cluster.ok(&["get", "configmap", "dependent", "-o", "json"]))
                ["metadata"]["ownerReferences"]
                .clone();
            (refs.as_array()?.len() == 1 && refs[0]["name"] == "owner").then_some(())
        },
    )
    .await;
    cluster.ok(&["delete", "configmap", "owner"]);
    eventually(30, "the dependent to follow its last owner", || {
        (!cluster
            .kubectl(&["get", "configmap", "dependent"])
            .status
            .success())
        .then_some(())
    })
    .await;
}

const ADOPTER: &str = "\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: adopter
spec:
  replicas: 2
  selector:
    matchLabels:
      app: adopt
  template:
    metadata:
      labels:
        app: adopt
    spec:
      containers:
      - name: c
        image: nginx
";

async fn replica_set_adopts_and_releases_pods(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(2, &[]);
    default_service_account(cluster, "default").await;
    cluster.ok(&["run", "bare", "--image=nginx", "--labels=app=adopt"]);
    wait_ready_pods(cluster, "default", "app=adopt", 1).await;
    cluster.ok_stdin(&["create", "-f", "-"], ADOPTER);
    let pods = wait_ready_pods(cluster, "default", "app=adopt", 2).await;
    let bare = pods
        .iter()
        .find(|p| p["metadata"]["name"] == "bare")
        .expect("the bare pod is kept, not replaced");
    let owner = &bare["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            owner["kind"].as_str(),
            owner["name"].as_str(),
            owner["controller"].as_bool()
        ),
        (Some("ReplicaSet"), Some("adopter"), Some(true))
    );
    assert_eq!(owner["blockOwnerDeletion"], true);

    cluster.ok(&["label", "pod", "bare", "app=gone", "--overwrite"]);
    wait_ready_pods(cluster, "default", "app=adopt", 2).await;
    let released = eventually(30, "the relabelled pod to be released", || {
        let pod = json(&cluster.ok(&["get", "pod", "bare", "-o", "json"]));
        pod["metadata"]["ownerReferences"].is_null().then_some(pod)
    })
    .await;
    assert_eq!(released["metadata"]["labels"]["app"], "gone");
    let rs = json(&cluster.ok(&["get", "rs", "adopter", "-o", "json"]));
    assert_eq!(
        (
            rs["status"]["replicas"].as_i64(),
            rs["status"]["readyReplicas"].as_i64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(
        rs["status"]["observedGeneration"],
        rs["metadata"]["generation"]
    );
    let events = cluster.ok(&["describe", "rs", "adopter"]);
    assert!(
        events.contains("SuccessfulCreate") && events.contains("Created pod: adopter-"),
        "{events}"
    );
}

async fn namespace_deletion_empties_the_namespace(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(2, &[]);
    cluster.ok(&["create", "namespace", "lab"]);
    eventually(30, "the default service account and root CA", || {
        let ok = cluster
            .kubectl(&["get", "serviceaccount", "default", "-n", "lab"])
            .status
            .success()
            && cluster
                .kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", "lab"])
                .status
                .success();
        ok.then_some(())
    })
    .await;
    let mut objects = String::new();
    for i in 0..30 {
        objects += &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: lab\ndata:\n  k: v\n---\n");
    }
    for i in 0..10 {
        objects += &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s-{i}\n  namespace: lab\nstringData:\n  k: v\n---\n");
    }
    for i in 0..5 {
        objects += &format!("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa-{i}\n  namespace: lab\n---\n");
    }
    objects += "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: lab\n  finalizers: [example.com/hold]\n";
    cluster.ok_stdin(&["create", "-f", "-"], &objects);
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "lab",
        "--image=nginx",
        "--replicas=3",
    ]);
    cluster.ok(&["expose", "deployment", "web", "-n", "lab", "--port=80"]);
    wait_ready_pods(cluster, "lab", "app=web", 3).await;

    cluster.ok(&["delete", "namespace", "lab", "--wait=false"]);
    let conditions = eventually(60, "the namespace to report the held config map", || {
        let ns = json(&cluster.ok(&["get", "namespace", "lab", "-o", "json"]));
        let conditions = ns["status"]["conditions"].as_array()?.clone();
        let held = conditions
            .iter()
            .any(|c| c["type"] == "NamespaceFinalizersRemaining" && c["status"] == "True");
        (held && items(cluster, &["get", "pods", "-n", "lab"]).is_empty()).then_some(conditions)
    })
    .await;
    let find = |t: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(find("NamespaceFinalizersRemaining")["message"], "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances");
    assert_eq!(
        find("NamespaceContentRemaining")["reason"],
        "SomeResourcesRemain"
    );
    assert_eq!(
        find("NamespaceDeletionDiscoveryFailure")["reason"],
        "ResourcesDiscovered"
    );
    assert_eq!(find("NamespaceDeletionContentFailure")["status"], "False");
    let left = cluster.ok(&[
        "get",
        "configmaps,secrets,deployments,replicasets,services",
        "-n",
        "lab",
        "-o",
        "name",
    ]);
    assert_eq!(left.trim(), "configmap/held", "everything else is gone");

    cluster.ok(&[
        "patch",
        "configmap",
        "held",
        "-n",
        "lab",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    eventually(60, "the namespace to disappear", || {
        (!cluster
            .kubectl(&["get", "namespace", "lab"])
            .status
            .success())
        .then_some(())
    })
    .await;
}

async fn restart_mid_rollout_finishes_without_extra_pods(cluster: &mut Cluster) {
    let mut plane = cluster.start_control_plane(3, &[]);
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=6",
    ]);
    cluster.ok(&["patch", "deployment", "web", "--type=merge", "-p", r#"{"spec":{"minReadySeconds":2,"strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0}}}}"#]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    let watch = PodWatch::start(cluster, "app=web").await;
    cluster.ok(&["set", "image", "deployment/web", "nginx=nginx:1.27"]);
    eventually(60, "the rollout to be under way", || {
        let d = json(&cluster.ok(&["get", "deployment", "web", "-o", "json"]));
        let updated = d["status"]["updatedReplicas"].as_i64().unwrap_or(0);
        (2..6).contains(&updated).then_some(())
    })
    .await;
    plane.manager.kill();
    plane.manager = cluster.start_controller_manager(&["--leader-elect=false"]);
    let status = cluster.ok(&["rollout", "status", "deployment/web", "--timeout=180s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let (max_live, min_ready) = watch.stop();
    assert!(
        max_live <= 7,
        "more than replicas + maxSurge pods: {max_live}"
    );
    assert!(
        min_ready >= 6,
        "fewer than replicas - maxUnavailable ready: {min_ready}"
    );
    let pods = wait_ready_pods(cluster, "default", "app=web", 6).await;
    assert!(pods
        .iter()
        .all(|p| p["spec"]["containers"][0]["image"] == "nginx:1.27"));
}

async fn two_instances_elect_one_leader(cluster: &mut Cluster) {
    let _scheduler = cluster.start_scheduler(&["--leader-elect=false"]);
    let _nodes = cluster.start_node_simulator(&["--nodes", "2", "--pod-startup-delay", "200ms"]);
    let timing = [
        "--leader-elect-lease-duration=4s",
        "--leader-elect-renew-deadline=3s",
        "--leader-elect-retry-period=500ms",
    ];
    let mut first = cluster.start_controller_manager(&timing);
    let mut second = cluster.start_controller_manager(&timing);
    // The Lease exists once an instance has taken it; until then the get fails.
    let holder = eventually(30, "a leader", || {
        let out = cluster.kubectl(&[
            "get",
            "lease",
            "kube-controller-manager",
            "-n",
            "kube-system",
            "-o",
            "json",
        ]);
        let lease = out
            .status
            .success()
            .then(|| json(&String::from_utf8_lossy(&out.stdout)))?;
        lease["spec"]["holderIdentity"].as_str().map(String::from)
    })
    .await;
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    wait_ready_pods(cluster, "default", "app=web", 2).await;
    let leaders = [&first, &second]
        .iter()
        .filter(|p| {
            p.metric("leader_election_master_status{name=\"kube-controller-manager\"}") == Some(1.0)
        })
        .count();
    assert_eq!(leaders, 1, "exactly one instance leads");

    // The leader dies: the other takes over and keeps reconciling.
    let (leader, follower) = if first
        .metric("leader_election_master_status{name=\"kube-controller-manager\"}")
        == Some(1.0)
    {
        (&mut first, &second)
    } else {
        (&mut second, &first)
    };
    leader.kill();
    let new_holder = eventually(30, "the lease to move", || {
        let lease = json(&cluster.ok(&[
            "get",
            "lease",
            "kube-controller-manager",
            "-n",
            "kube-system",
            "-o",
            "json",
        ]));
        lease["spec"]["holderIdentity"]
            .as_str()
            .filter(|h| *h != holder)
            .map(String::from)
    })
    .await;
    assert_ne!(new_holder, holder);
    let lease = json(&cluster.ok(&[
        "get",
        "lease",
        "kube-controller-manager",
        "-n",
        "kube-system",
        "-o",
        "json",
    ]));
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    cluster.ok(&["scale", "deployment/web", "--replicas=3"]);
    wait_ready_pods(cluster, "default", "app=web", 3).await;
    assert_eq!(
        follower.metric("leader_election_master_status{name=\"kube-controller-manager\"}"),
        Some(1.0)
    );
}

/// A Deployment of six pods that leave a NoExecute-tainted unreachable node after 2 s.
fn tolerant() -> String {
    deployment(
        "web",
        6,
        "tolerations:\n- key: node.kubernetes.io/unreachable\n  operator: Exists\n  effect: NoExecute\n  tolerationSeconds: 2\ncontainers:\n- name: c\n  image: nginx\n",
    )
}

async fn pods_of_a_lost_node_are_replaced_elsewhere(cluster: &mut Cluster) {
    let _scheduler = cluster.start_scheduler(&["--leader-elect=false"]);
    let lease = [
        "--node-lease-duration-seconds",
        "4",
        "--pod-startup-delay",
        "200ms",
    ];
    let _stable = cluster.start_node_simulator(
        &[
            &["--nodes", "2", "--node-name-prefix", "stable-"],
            &lease[..],
        ]
        .concat(),
    );
    let mut doomed = cluster.start_node_simulator(
        &[
            &["--nodes", "1", "--node-name-prefix", "doomed-"],
            &lease[..],
        ]
        .concat(),
    );
    let manager = cluster.start_controller_manager(&[
        "--leader-elect=false",
        "--node-monitor-grace-period=6s",
        "--node-monitor-period=1s",
    ]);
    cluster.ok_stdin(&["create", "-f", "-"], &tolerant());
    let pods = wait_ready_pods(cluster, "default", "app=web", 6).await;
    let lost: Vec<String> = pods
        .iter()
        .filter(|p| p["spec"]["nodeName"] == "doomed-0")
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !lost.is_empty(),
        "some pods run on the node about to be lost"
    );

    doomed.kill();
    let node = eventually(60, "the lost node to be unreachable and tainted", || {
        let node = json(&cluster.ok(&["get", "node", "doomed-0", "-o", "json"]));
        let ready = node["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")?
            .clone();
        let taints: Vec<(String, String)> = node["spec"]["taints"]
            .as_array()?
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().unwrap().to_string(),
                    t["effect"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let tainted = ["NoExecute", "NoSchedule"]
            .iter()
            .all(|e| taints.contains(&("node.kubernetes.io/unreachable".into(), e.to_string())));
        (ready["status"] == "Unknown" && tainted).then_some(node)
    })
    .await;
    let ready = condition(&node, "Ready").unwrap();
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");

    let replaced = eventually(90, "replacements on the remaining nodes", || {
        let pods = live_pods(cluster, "default", "app=web");
        let elsewhere = pods
            .iter()
            .filter(|p| p["spec"]["nodeName"] != "doomed-0" && is_ready(p))
            .count();
        (elsewhere == 6 && pods.len() == 6).then_some(pods)
    })
    .await;
    assert!(replaced
        .iter()
        .all(|p| !lost.contains(&p["metadata"]["name"].as_str().unwrap().to_string())));
    for name in &lost {
        let pod = cluster.kubectl(&["get", "pod", name, "-o", "json"]);
        if pod.status.success() {
            let pod = json(&String::from_utf8_lossy(&pod.stdout));
            assert!(
                !pod["metadata"]["deletionTimestamp"].is_null(),
                "evicted pod {name} is being deleted"
            );
        }
    }
    assert!(
        manager.log().contains("doomed-0"),
        "the manager noticed the node"
    );

    // The node comes back: Ready again, untainted.
    let _revived = cluster.start_node_simulator(
        &[
            &["--nodes", "1", "--node-name-prefix", "doomed-"],
            &lease[..],
        ]
        .concat(),
    );
    eventually(60, "the node to be Ready without taints", || {
        let node = json(&cluster.ok(&["get", "node", "doomed-0", "-o", "json"]));
        let ready = node["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        let tainted = node["spec"]["taints"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["key"] == "node.kubernetes.io/unreachable")
        });
        (ready && !tainted).then_some(())
    })
    .await;
}
