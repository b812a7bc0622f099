//! StatefulSets end to end: the real apiserver, kube-scheduler, simulated nodes and
//! kube-controller-manager's statefulset controller, driven by kubectl 1.33 the way a learner
//! does, on both store backends: ordered creation and removal with a claim per ordinal, a
//! partitioned rolling update undone through the ControllerRevisions, and the Parallel
//! policy with claims deleted on scale-down.

use e2e::fixtures::{default_service_account, eventually, is_ready, items, json};
use e2e::{on_both_backends, Cluster};
use serde_json::Value;

on_both_backends!(
    ordered_pods_with_a_claim_each,
    a_partitioned_rolling_update_is_undone,
    parallel_pods_and_claims_deleted_on_scale_down,
);

/// A StatefulSet `name` of `replicas` pods labelled `app: <name>`, with `extra` (YAML at the
/// spec's indentation) in its spec.
fn stateful_set(name: &str, replicas: u32, image: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {name}
spec:
  serviceName: {name}
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: {image}
{extra}"#
    )
}

const CLAIM_TEMPLATE: &str = r#"  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#;

fn set(cluster: &Cluster, name: &str) -> Value {
    json(&cluster.ok(&["get", "statefulset", name, "-o", "json"]))
}

/// Live pods of the set by name, sorted.
fn pod_names(cluster: &Cluster, name: &str) -> Vec<String> {
    let mut names: Vec<String> = items(cluster, &["get", "pods", "-l", &format!("app={name}")])
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    names
}

fn claim_names(cluster: &Cluster) -> Vec<String> {
    let mut names: Vec<String> = items(cluster, &["get", "pvc"])
        .iter()
        .filter(|c| c["metadata"]["deletionTimestamp"].is_null())
        .map(|c| c["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    names
}

fn events(cluster: &Cluster, name: &str) -> Vec<(String, String)> {
    let selector = format!("involvedObject.kind=StatefulSet,involvedObject.name={name}");
    items(cluster, &["get", "events", "--field-selector", &selector])
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (text("reason"), text("message"))
        })
        .collect()
}

async fn wait_for_pods(cluster: &Cluster, name: &str, want: &[&str]) {
    let want: Vec<String> = want.iter().map(|n| n.to_string()).collect();
    eventually(40, &format!("pods {want:?} of {name}"), || {
        (pod_names(cluster, name) == want).then_some(())
    })
    .await;
}

fn images(cluster: &Cluster, name: &str) -> Vec<(String, String)> {
    let mut pods: Vec<(String, String)> =
        items(cluster, &["get", "pods", "-l", &format!("app={name}")])
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    p["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect();
    pods.sort();
    pods
}

async fn ordered_pods_with_a_claim_each(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(1, &[]);
    default_service_account(cluster, "default").await;
    cluster.ok(&["create", "service", "clusterip", "web", "--clusterip=None"]);
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        &stateful_set("web", 3, "nginx", CLAIM_TEMPLATE).replace(
            "        image: nginx\n",
            "        image: nginx\n        volumeMounts: [{name: data, mountPath: /data}]\n",
        ),
    );
    cluster.ok(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    wait_for_pods(cluster, "web", &["web-0", "web-1", "web-2"]).await;

    let table = cluster.ok(&["get", "sts"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "AGE"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..2], ["web", "3/3"], "{table}");
    assert!(cluster.ok(&["get", "all"]).contains("statefulset.apps/web"));

    // Each pod has its identity and its own claim, made before it and never bound here.
    let pods = items(cluster, &["get", "pods", "-l", "app=web"]);
    let mut ready_at = Vec::new();
    for pod in &pods {
        let name = pod["metadata"]["name"].as_str().unwrap();
        let ordinal = name.trim_start_matches("web-");
        let labels = &pod["metadata"]["labels"];
        assert_eq!(labels["statefulset.kubernetes.io/pod-name"], name);
        assert_eq!(labels["apps.kubernetes.io/pod-index"], ordinal);
        assert!(labels["controller-revision-hash"]
            .as_str()
            .unwrap()
            .starts_with("web-"));
        assert_eq!(pod["spec"]["hostname"], name);
        assert_eq!(pod["spec"]["subdomain"], "web");
        let claim = pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "data")
            .unwrap();
        assert_eq!(
            claim["persistentVolumeClaim"]["claimName"],
            format!("data-web-{ordinal}")
        );
        assert!(is_ready(pod));
        let ready = pod["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()["lastTransitionTime"]
            .as_str()
            .unwrap()
            .to_string();
        ready_at.push((
            name.to_string(),
            pod["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap()
                .to_string(),
            ready,
        ));
    }
    ready_at.sort();
    // OrderedReady: each pod is made only once its predecessor is Ready.
    for pair in ready_at.windows(2) {
        assert!(pair[1].1 >= pair[0].2, "{pair:?}");
    }
    assert_eq!(
        claim_names(cluster),
        ["data-web-0", "data-web-1", "data-web-2"]
    );
    let claims = cluster.ok(&["get", "pvc", "data-web-0"]);
    let header: Vec<&str> = claims.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS",
            "MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE"
        ]
    );
    assert!(
        claims.lines().nth(1).unwrap().contains("Pending"),
        "{claims}"
    );
    let claim = json(&cluster.ok(&["get", "pvc", "data-web-1", "-o", "json"]));
    assert_eq!(claim["metadata"]["labels"]["app"], "web");
    assert_eq!(claim["spec"]["volumeMode"], "Filesystem");

    let created = events(cluster, "web");
    assert!(
        created.contains(&(
            "SuccessfulCreate".into(),
            "create Pod web-0 in StatefulSet web successful".into()
        )),
        "{created:?}"
    );
    assert!(
        created.contains(&(
            "SuccessfulCreate".into(),
            "create Claim data-web-0 Pod web-0 in StatefulSet web success".into()
        )),
        "{created:?}"
    );

    // Scaling down removes the highest ordinals and keeps their claims (Retain).
    cluster.ok(&["scale", "statefulset", "web", "--replicas=1"]);
    wait_for_pods(cluster, "web", &["web-0"]).await;
    cluster.ok(&["rollout", "status", "statefulset/web", "--timeout=30s"]);
    assert_eq!(
        claim_names(cluster),
        ["data-web-0", "data-web-1", "data-web-2"]
    );
    let deleted = eventually(20, "the scale-down events", || {
        let all = events(cluster, "web");
        all.iter()
            .any(|(r, m)| {
                r == "SuccessfulDelete" && m == "delete Pod web-1 in StatefulSet web successful"
            })
            .then_some(all)
    })
    .await;
    assert!(deleted
        .iter()
        .any(|(_, m)| m == "delete Pod web-2 in StatefulSet web successful"));
    let status = &set(cluster, "web")["status"];
    assert_eq!(
        (status["replicas"].clone(), status["readyReplicas"].clone()),
        (1.into(), 1.into())
    );

    // The spec is fixed but for the fields a rollout or scaling changes.
    let refused = cluster.fails(&[
        "patch",
        "statefulset",
        "web",
        "-p",
        r#"{"spec":{"serviceName":"other"}}"#,
    ]);
    assert!(
        refused.contains("spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"),
        "{refused}"
    );
}

async fn a_partitioned_rolling_update_is_undone(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(1, &[]);
    default_service_account(cluster, "default").await;
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        &stateful_set("db", 3, "postgres:16", ""),
    );
    cluster.ok(&["rollout", "status", "statefulset/db", "--timeout=60s"]);
    let first = set(cluster, "db")["status"]["currentRevision"]
        .as_str()
        .unwrap()
        .to_string();

    // Only ordinals at or above the partition move to the new template.
    cluster.ok(&[
        "patch",
        "statefulset",
        "db",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}"#,
    ]);
    cluster.ok(&["set", "image", "statefulset/db", "app=postgres:17"]);
    let old = "postgres:16".to_string();
    let new = "postgres:17".to_string();
    eventually(40, "db-2 on the new template", || {
        (images(cluster, "db")
            == [
                ("db-0".into(), old.clone()),
                ("db-1".into(), old.clone()),
                ("db-2".into(), new.clone()),
            ])
        .then_some(())
    })
    .await;
    let out = cluster.ok(&["rollout", "status", "statefulset/db", "--timeout=60s"]);
    assert!(
        out.contains("partitioned roll out complete: 1 new pods have been updated..."),
        "{out}"
    );
    let status = set(cluster, "db")["status"].clone();
    assert_eq!(status["currentRevision"], first.as_str());
    let second = status["updateRevision"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    assert_eq!(status["updatedReplicas"], 1);
    assert_eq!(status["currentReplicas"], 2);

    // Lowering the partition finishes the rollout, from the highest ordinal down.
    cluster.ok(&[
        "patch",
        "statefulset",
        "db",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#,
    ]);
    cluster.ok(&["rollout", "status", "statefulset/db", "--timeout=60s"]);
    eventually(40, "every pod on the new template", || {
        images(cluster, "db")
            .iter()
            .all(|(_, image)| *image == new)
            .then_some(())
    })
    .await;
    eventually(20, "the rollout to complete", || {
        let status = set(cluster, "db")["status"].clone();
        (status["currentRevision"] == second.as_str() && status["updatedReplicas"] == 3)
            .then_some(())
    })
    .await;

    let revisions = cluster.ok(&["get", "controllerrevisions"]);
    let header: Vec<&str> = revisions
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "CONTROLLER", "REVISION", "AGE"]);
    assert!(
        revisions.contains(&first) && revisions.contains("statefulset.apps/db"),
        "{revisions}"
    );
    let history = cluster.ok(&["rollout", "history", "statefulset/db"]);
    let numbers: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(numbers, ["1", "2"], "{history}");

    // Undo puts the first template back; its revision becomes the newest.
    let out = cluster.ok(&["rollout", "undo", "statefulset/db"]);
    assert!(out.contains("statefulset.apps/db rolled back"), "{out}");
    cluster.ok(&["rollout", "status", "statefulset/db", "--timeout=60s"]);
    eventually(40, "every pod back on the old template", || {
        images(cluster, "db")
            .iter()
            .all(|(_, image)| *image == old)
            .then_some(())
    })
    .await;
    let status = eventually(20, "the undo to complete", || {
        let status = set(cluster, "db")["status"].clone();
        (status["currentRevision"] == first.as_str()).then_some(status)
    })
    .await;
    assert_eq!(status["updateRevision"], first.as_str());
    let revision = json(&cluster.ok(&["get", "controllerrevision", &first, "-o", "json"]));
    assert_eq!(revision["revision"], 3);
}

async fn parallel_pods_and_claims_deleted_on_scale_down(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(1, &[]);
    default_service_account(cluster, "default").await;
    // Pods that can never be scheduled: OrderedReady would make only cache-0.
    let extra = format!(
        "  podManagementPolicy: Parallel\n  persistentVolumeClaimRetentionPolicy:\n    \
         whenScaled: Delete\n{CLAIM_TEMPLATE}"
    );
    let manifest = stateful_set("cache", 4, "redis", &extra).replace(
        "      containers:",
        "      nodeSelector: {disk: none}\n      containers:",
    );
    cluster.ok_stdin(&["apply", "-f", "-"], &manifest);
    wait_for_pods(
        cluster,
        "cache",
        &["cache-0", "cache-1", "cache-2", "cache-3"],
    )
    .await;
    eventually(20, "the claims", || {
        (claim_names(cluster)
            == [
                "data-cache-0",
                "data-cache-1",
                "data-cache-2",
                "data-cache-3",
            ])
        .then_some(())
    })
    .await;
    let set_value = set(cluster, "cache");
    assert_eq!(set_value["spec"]["podManagementPolicy"], "Parallel");
    assert_eq!(
        set_value["spec"]["persistentVolumeClaimRetentionPolicy"],
        serde_json::json!({"whenDeleted": "Retain", "whenScaled": "Delete"})
    );

    // Parallel removes unready pods too; their claims go with them (whenScaled: Delete).
    cluster.ok(&["scale", "statefulset", "cache", "--replicas=1"]);
    wait_for_pods(cluster, "cache", &["cache-0"]).await;
    eventually(40, "the scaled-down claims deleted", || {
        (claim_names(cluster) == ["data-cache-0"]).then_some(())
    })
    .await;
    let status = eventually(20, "the status", || {
        let status = set(cluster, "cache")["status"].clone();
        (status["replicas"] == 1).then_some(status)
    })
    .await;
    assert!(status["readyReplicas"].is_null(), "{status}");
    assert_eq!(status["availableReplicas"], 0);
}
