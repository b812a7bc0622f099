//! ReplicationControllers, PodTemplates and HorizontalPodAutoscalers end to end: the real
//! apiserver, kube-scheduler, simulated nodes and kube-controller-manager (whose ReplicaSet
//! controller also runs ReplicationControllers), driven by the real kubectl, on both store
//! backends. HorizontalPodAutoscalers are API only: written through one version, read
//! through the other.

use e2e::fixtures::{default_service_account, eventually, items, json, live_pods};
use e2e::{on_both_backends, Cluster};
use serde_json::Value;

on_both_backends!(
    a_replication_controller_keeps_scales_and_deletes_its_pods,
    pod_templates_are_validated_and_listed,
    autoscalers_read_the_same_in_v1_and_v2,
);

const RC: &str = "apiVersion: v1
kind: ReplicationController
metadata:
  name: nginx
spec:
  replicas: 3
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
";

fn rc(cluster: &Cluster) -> Value {
    json(&cluster.ok(&["get", "rc", "nginx", "-o", "json"]))
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

async fn ready_replicas(cluster: &Cluster, wanted: i64) {
    eventually(45, &format!("{wanted} ready replicas of rc/nginx"), || {
        let status = &rc(cluster)["status"];
        let pods = live_pods(cluster, "default", "app=nginx").len() as i64;
        (status["readyReplicas"].as_i64().unwrap_or(0) == wanted
            && status["replicas"] == wanted
            && pods == wanted)
            .then_some(())
    })
    .await
}

async fn a_replication_controller_keeps_scales_and_deletes_its_pods(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(1, &[]);
    default_service_account(cluster, "default").await;
    cluster.ok_stdin(&["apply", "-f", "-"], RC);
    let created = rc(cluster);
    // Upstream's defaulting: the selector and the labels come from the template.
    assert_eq!(
        created["spec"]["selector"],
        serde_json::json!({"app": "nginx"})
    );
    assert_eq!(
        created["metadata"]["labels"],
        serde_json::json!({"app": "nginx"})
    );
    ready_replicas(cluster, 3).await;

    let table = cluster.ok(&["get", "rc", "-o", "wide"]);
    let mut lines = table.lines();
    assert_eq!(
        words(lines.next().unwrap()),
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    let row = words(lines.next().unwrap());
    assert_eq!(row[..4], ["nginx", "3", "3", "3"], "{table}");
    assert_eq!(row[5..], ["nginx", "nginx:1.27", "app=nginx"], "{table}");

    // Every pod is controlled by the RC, and a deleted one is replaced.
    let pods = live_pods(cluster, "default", "app=nginx");
    let owner = &pods[0]["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["apiVersion"], &owner["controller"]),
        (
            &Value::from("ReplicationController"),
            &Value::from("v1"),
            &Value::from(true)
        )
    );
    let victim = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    cluster.ok(&["delete", "pod", &victim, "--wait=false"]);
    eventually(45, "a replacement pod", || {
        let names: Vec<String> = live_pods(cluster, "default", "app=nginx")
            .iter()
            .map(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        (names.len() == 3 && !names.contains(&victim)).then_some(())
    })
    .await;

    // Events come from upstream's component with upstream's wording.
    let selector = "involvedObject.kind=ReplicationController,involvedObject.name=nginx";
    let created_event = eventually(30, "a SuccessfulCreate event", || {
        items(cluster, &["get", "events", "--field-selector", selector])
            .into_iter()
            .find(|e| e["reason"] == "SuccessfulCreate")
    })
    .await;
    assert_eq!(
        created_event["source"]["component"],
        "replication-controller"
    );
    assert!(created_event["message"]
        .as_str()
        .unwrap()
        .starts_with("Created pod: nginx-"));

    cluster.ok(&["scale", "rc", "nginx", "--replicas=1"]);
    ready_replicas(cluster, 1).await;
    let scale = json(&cluster.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/replicationcontrollers/nginx/scale",
    ]));
    assert_eq!(scale["spec"]["replicas"], 1);
    assert_eq!(scale["status"]["replicas"], 1);
    assert_eq!(scale["status"]["selector"], "app=nginx");

    // A selector its template does not match is refused with upstream's message.
    let bad = RC.replace(
        "  replicas: 3\n",
        "  replicas: 3\n  selector:\n    app: other\n",
    );
    let out = cluster.kubectl_version(
        33,
        &["apply", "-f", "-"],
        Some(&bad.replace("nginx", "bad")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"bad\"}: `selector` does not match template `labels`"),
        "{stderr}"
    );

    // `kubectl get all` shows the RC next to its pods.
    let all = cluster.ok(&["get", "all"]);
    assert!(all.contains("replicationcontroller/nginx"), "{all}");
    assert!(all.contains("pod/nginx-"), "{all}");
    assert!(all.contains("service/kubernetes"), "{all}");

    // Deleting the RC deletes its pods (background cascade through the garbage collector).
    cluster.ok(&["delete", "rc", "nginx"]);
    eventually(45, "the RC's pods to go", || {
        live_pods(cluster, "default", "app=nginx")
            .is_empty()
            .then_some(())
    })
    .await;
}

async fn pod_templates_are_validated_and_listed(cluster: &mut Cluster) {
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1
kind: PodTemplate
metadata:
  name: web
template:
  metadata:
    labels:
      app: web
  spec:
    containers:
    - name: nginx
      image: nginx:1.27
    - name: sidecar
      image: busybox
",
    );
    let table = cluster.ok(&["get", "podtemplates"]);
    let mut lines = table.lines();
    assert_eq!(
        words(lines.next().unwrap()),
        ["NAME", "CONTAINERS", "IMAGES", "POD", "LABELS"]
    );
    assert_eq!(
        words(lines.next().unwrap()),
        ["web", "nginx,sidecar", "nginx:1.27,busybox", "app=web"]
    );
    let stored = json(&cluster.ok(&["get", "podtemplate", "web", "-o", "json"]));
    let spec = &stored["template"]["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["containers"][0]["imagePullPolicy"], "IfNotPresent");

    let out = cluster.kubectl_version(
        33,
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: PodTemplate\nmetadata:\n  name: empty\ntemplate:\n  spec:\n    containers: []\n"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("template.spec.containers: Required value"),
        "{stderr}"
    );
    cluster.ok(&["delete", "podtemplate", "web"]);
    assert!(cluster
        .fails(&["get", "podtemplate", "web"])
        .contains("NotFound"));
}

async fn autoscalers_read_the_same_in_v1_and_v2(cluster: &mut Cluster) {
    cluster.ok(&["create", "deployment", "web", "--image=nginx"]);
    cluster.ok(&[
        "autoscale",
        "deployment",
        "web",
        "--min=2",
        "--max=5",
        "--cpu-percent=80",
    ]);
    let table = cluster.ok(&["get", "hpa"]);
    let mut lines = table.lines();
    assert_eq!(
        words(lines.next().unwrap()),
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    assert_eq!(
        words(lines.next().unwrap())[..7],
        [
            "web",
            "Deployment/web",
            "cpu:",
            "<unknown>/80%",
            "2",
            "5",
            "0"
        ],
        "{table}"
    );
    let v1 = json(&cluster.ok(&[
        "get",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "-o",
        "json",
    ]));
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 80);
    assert_eq!(v1["spec"]["minReplicas"], 2);
    let v2 = json(&cluster.ok(&[
        "get",
        "horizontalpodautoscalers.v2.autoscaling",
        "web",
        "-o",
        "json",
    ]));
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"],
        serde_json::json!({"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}})
    );

    // kubectl 1.27 writes autoscaling/v1; the default target is said explicitly in v2.
    cluster.ok(&["create", "deployment", "api", "--image=nginx"]);
    let old = cluster.kubectl_version(27, &["autoscale", "deployment", "api", "--max=3"], None);
    assert!(
        old.status.success(),
        "{}",
        String::from_utf8_lossy(&old.stderr)
    );
    let old_table = cluster.kubectl_version(27, &["get", "hpa", "api"], None);
    let old_table = String::from_utf8_lossy(&old_table.stdout).into_owned();
    assert!(old_table.contains("cpu: <unknown>/80%"), "{old_table}");
    let api = json(&cluster.ok(&[
        "get",
        "horizontalpodautoscalers.v2.autoscaling",
        "api",
        "-o",
        "json",
    ]));
    assert_eq!(api["spec"]["minReplicas"], 1);
    assert_eq!(
        api["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );

    // What v1 cannot say travels in annotations and comes back whole through a v1 write.
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: queue
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 10
  metrics:
  - type: Pods
    pods:
      metric: {name: jobs}
      target: {type: AverageValue, averageValue: '5'}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 60
",
    );
    let v1 = cluster.ok(&[
        "get",
        "horizontalpodautoscalers.v1.autoscaling",
        "queue",
        "-o",
        "json",
    ]);
    let parsed = json(&v1);
    let annotations = &parsed["metadata"]["annotations"];
    assert_eq!(
        annotations["autoscaling.alpha.kubernetes.io/metrics"],
        r#"[{"type":"Pods","pods":{"metricName":"jobs","targetAverageValue":"5"}}]"#
    );
    assert!(annotations["autoscaling.alpha.kubernetes.io/behavior"]
        .as_str()
        .unwrap()
        .contains(r#""ScaleDown":{"StabilizationWindowSeconds":60,"SelectPolicy":"Max""#));
    assert!(parsed["spec"]["targetCPUUtilizationPercentage"].is_null());
    let relabeled = v1.replace(
        "\"name\": \"queue\",",
        "\"name\": \"queue\",\n\"labels\": {\"team\": \"a\"},",
    );
    cluster.ok_stdin(&["replace", "-f", "-"], &relabeled);
    let v2 = json(&cluster.ok(&[
        "get",
        "horizontalpodautoscalers.v2.autoscaling",
        "queue",
        "-o",
        "json",
    ]));
    assert_eq!(v2["metadata"]["labels"]["team"], "a");
    let annotations = v2["metadata"]["annotations"].as_object().unwrap();
    assert!(
        annotations
            .keys()
            .all(|k| !k.starts_with("autoscaling.alpha.kubernetes.io/")),
        "{v2}"
    );
    assert_eq!(v2["spec"]["metrics"][0]["pods"]["metric"]["name"], "jobs");
    assert_eq!(v2["spec"]["metrics"].as_array().unwrap().len(), 1);
    assert_eq!(
        v2["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        60
    );

    let out = cluster.kubectl_version(
        33,
        &["apply", "-f", "-"],
        Some("apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: bad\nspec:\n  scaleTargetRef: {kind: Deployment, name: web}\n  minReplicas: 3\n  maxReplicas: 2\n"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"
        ),
        "{stderr}"
    );

    let all = cluster.ok(&["get", "all"]);
    for name in [
        "horizontalpodautoscaler.autoscaling/web",
        "deployment.apps/web",
    ] {
        assert!(all.contains(name), "{all}");
    }
}
