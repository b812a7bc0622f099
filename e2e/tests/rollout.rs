//! Rollouts to an image that cannot be pulled, as a learner's lab and outside suites run
//! them: the real apiserver, kube-scheduler, kube-controller-manager and simulated kubelets,
//! driven by kubectl 1.33, on both store backends. The new pods stall in `ErrImagePull` and
//! `ImagePullBackOff` with kubelet's events while the old ReplicaSet keeps serving, `kubectl
//! rollout undo` recovers, and a resize of the stalled rollout splits the replicas between
//! the two ReplicaSets by upstream's arithmetic.

use e2e::fixtures::{condition, eventually, is_ready, items, json, live_pods};
use e2e::{on_both_backends, Cluster};
use serde_json::Value;

on_both_backends!(
    unpullable_image_stalls_the_rollout_until_undo,
    resizing_a_stalled_rollout_splits_like_upstream
);

fn image(pod_or_rs_template: &Value) -> &str {
    pod_or_rs_template["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
}

/// Live (not terminating) pods of the `app=web` Deployment.
fn pods(cluster: &Cluster) -> Vec<Value> {
    live_pods(cluster, "default", "app=web")
}

/// The `app=web` ReplicaSets' target sizes by image.
fn replica_set_sizes(cluster: &Cluster) -> Vec<(String, i64)> {
    let mut sizes: Vec<(String, i64)> = items(cluster, &["get", "rs", "-l", "app=web"])
        .iter()
        .map(|rs| {
            (
                image(&rs["spec"]["template"]).to_string(),
                rs["spec"]["replicas"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    sizes.sort();
    sizes
}

async fn unpullable_image_stalls_the_rollout_until_undo(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(2, &[]);
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=3",
    ]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let serving = pods(cluster);
    let old = serving[0]["metadata"]["name"].as_str().unwrap().to_string();
    let described = eventually(30, "the pull events of a running pod", || {
        let text = cluster.ok(&["describe", "pod", &old]);
        (text.contains("Pulled") && text.contains("kubelet")).then_some(text)
    })
    .await;
    assert!(
        described.contains("Successfully pulled image \"nginx:1.27\" in ")
            || described.contains("Container image \"nginx:1.27\" already present on machine"),
        "{described}"
    );

    cluster.ok(&["set", "image", "deployment/web", "nginx=nginx:doesnotexist"]);
    let error = cluster.fails(&["rollout", "status", "deployment/web", "--timeout=3s"]);
    assert!(
        error.contains("timed out waiting for the condition"),
        "{error}"
    );

    let table = eventually(60, "a pod in ImagePullBackOff", || {
        let table = cluster.ok(&["get", "pods", "-l", "app=web"]);
        table.contains("ImagePullBackOff").then_some(table)
    })
    .await;
    let stuck: Vec<Value> = pods(cluster)
        .into_iter()
        .filter(|p| image(p) == "nginx:doesnotexist")
        .collect();
    assert_eq!(stuck.len(), 1, "maxSurge 1 (25% of 3): {table}");
    let pod = &stuck[0];
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&name) && l.contains("0/1") && l.contains("ImagePullBackOff")),
        "{table}"
    );
    assert_eq!(pod["status"]["phase"], "Pending");
    let waiting = &pod["status"]["containerStatuses"][0]["state"]["waiting"];
    assert!(
        matches!(
            waiting["reason"].as_str(),
            Some("ErrImagePull" | "ImagePullBackOff")
        ),
        "{waiting}"
    );
    let message = waiting["message"].as_str().unwrap_or_default();
    assert!(
        message
            .contains("failed to pull and unpack image \"docker.io/library/nginx:doesnotexist\""),
        "{message}"
    );
    let ready = condition(pod, "Ready").unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("ContainersNotReady"))
    );
    assert_eq!(ready["message"], "containers with unready status: [nginx]");

    let described = eventually(30, "the image pull events", || {
        let text = cluster.ok(&["describe", "pod", &name]);
        text.contains("Error: ImagePullBackOff").then_some(text)
    })
    .await;
    for expected in [
        "Pulling image \"nginx:doesnotexist\"",
        "Failed to pull image \"nginx:doesnotexist\": rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/library/nginx:doesnotexist\"",
        "Error: ErrImagePull",
        "Back-off pulling image \"nginx:doesnotexist\"",
    ] {
        assert!(described.contains(expected), "missing {expected:?} in:\n{described}");
    }
    let events = items(
        cluster,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name},reason=BackOff"),
        ],
    );
    assert_eq!(events[0]["source"]["component"], "kubelet");
    assert_eq!(events[0]["source"]["host"], pod["spec"]["nodeName"]);
    assert_eq!(
        events[0]["involvedObject"]["fieldPath"],
        "spec.containers{nginx}"
    );

    // The old ReplicaSet keeps serving all three replicas.
    let old_pods: Vec<Value> = pods(cluster)
        .into_iter()
        .filter(|p| image(p) == "nginx:1.27")
        .collect();
    assert_eq!(old_pods.len(), 3);
    assert!(old_pods.iter().all(is_ready));
    let deployment = json(&cluster.ok(&["get", "deployment", "web", "-o", "json"]));
    assert_eq!(
        (
            deployment["status"]["updatedReplicas"].as_i64(),
            deployment["status"]["availableReplicas"].as_i64()
        ),
        (Some(1), Some(3))
    );

    cluster.ok(&["rollout", "undo", "deployment/web"]);
    let status = cluster.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    eventually(30, "only the three nginx:1.27 pods", || {
        let live = pods(cluster);
        (live.len() == 3 && live.iter().all(|p| image(p) == "nginx:1.27" && is_ready(p)))
            .then_some(())
    })
    .await;
    assert_eq!(
        replica_set_sizes(cluster),
        [
            ("nginx:1.27".to_string(), 3),
            ("nginx:doesnotexist".to_string(), 0)
        ]
    );
}

async fn resizing_a_stalled_rollout_splits_like_upstream(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(2, &[]);
    let manifest = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {
        "replicas": 10, "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}}"#;
    cluster.ok_stdin(&["create", "-f", "-"], manifest);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);

    // 10 old + 3 new reach replicas + maxSurge; the old shrinks by maxUnavailable to 8; the
    // new grows to 5; its 5 unavailable replicas then hold everything.
    cluster.ok(&["set", "image", "deployment/web", "nginx=nginx:doesnotexist"]);
    let stalled = [
        ("nginx:1.27".to_string(), 8),
        ("nginx:doesnotexist".to_string(), 5),
    ];
    eventually(60, "the rollout to stall at 8 old and 5 new", || {
        (replica_set_sizes(cluster) == stalled).then_some(())
    })
    .await;
    eventually(60, "8 ready old pods and 5 stuck new ones", || {
        let live = pods(cluster);
        let ready_old = live
            .iter()
            .filter(|p| image(p) == "nginx:1.27" && is_ready(p))
            .count();
        let new = live
            .iter()
            .filter(|p| image(p) == "nginx:doesnotexist" && !is_ready(p))
            .count();
        (live.len() == 13 && ready_old == 8 && new == 5).then_some(())
    })
    .await;
    assert_eq!(
        replica_set_sizes(cluster),
        stalled,
        "nothing moves once stalled"
    );

    // Resized to 30 (33 with surge): 8 * 33 / 13 = 20.3 and 5 * 33 / 13 = 12.7, so the 20
    // replicas added go 12 to the old ReplicaSet (larger, first) and the 8 left to the new.
    cluster.ok(&["scale", "deployment/web", "--replicas=30"]);
    let split = [
        ("nginx:1.27".to_string(), 20),
        ("nginx:doesnotexist".to_string(), 13),
    ];
    eventually(60, "the resize to split 20 old and 13 new", || {
        (replica_set_sizes(cluster) == split).then_some(())
    })
    .await;
    eventually(90, "20 ready old pods and 13 stuck new ones", || {
        let live = pods(cluster);
        let ready_old = live
            .iter()
            .filter(|p| image(p) == "nginx:1.27" && is_ready(p))
            .count();
        (live.len() == 33 && ready_old == 20).then_some(())
    })
    .await;
    assert_eq!(
        replica_set_sizes(cluster),
        split,
        "the rollout stays stalled at 33 with 13 unavailable"
    );
    for rs in items(cluster, &["get", "rs", "-l", "app=web"]) {
        let annotations = &rs["metadata"]["annotations"];
        assert_eq!(
            annotations["deployment.kubernetes.io/desired-replicas"],
            "30"
        );
        assert_eq!(annotations["deployment.kubernetes.io/max-replicas"], "33");
    }
    let deployment = json(&cluster.ok(&["get", "deployment", "web", "-o", "json"]));
    let status = &deployment["status"];
    assert_eq!(
        (
            status["replicas"].as_i64(),
            status["updatedReplicas"].as_i64()
        ),
        (Some(33), Some(13))
    );
    assert_eq!(
        (
            status["availableReplicas"].as_i64(),
            status["unavailableReplicas"].as_i64()
        ),
        (Some(20), Some(13))
    );
}
