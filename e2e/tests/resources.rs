//! Every served resource through kubectl 1.33: typed `create` commands (protobuf bodies),
//! `get` tables with upstream's columns, `describe`, and the objects a new cluster starts with.

use e2e::{on_both_backends, Cluster};
use serde_json::Value;

on_both_backends!(
    typed_create_commands_send_protobuf,
    tables_have_upstream_columns,
    describe_works_for_core_kinds,
    new_clusters_have_the_kubernetes_service,
    deletes_accept_cascade_options,
    kubectl_1_27_still_works,
    priority_classes_set_pod_priority,
    both_event_apis_see_every_event,
    endpoints_warn_that_they_are_deprecated,
);

/// Upstream v1.33 warns on every request to core/v1 Endpoints; kubectl prints it.
async fn endpoints_warn_that_they_are_deprecated(cluster: &mut Cluster) {
    let out = cluster.kubectl(&["get", "endpoints", "kubernetes"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let slices = cluster.kubectl(&["get", "endpointslices"]);
    assert!(!String::from_utf8_lossy(&slices.stderr).contains("deprecated"));
}

fn header(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or("")
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

async fn typed_create_commands_send_protobuf(cluster: &mut Cluster) {
    cluster.ok(&["create", "namespace", "shop"]);
    cluster.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "shop",
        "--from-literal=color=blue",
    ]);
    cluster.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "shop",
        "--from-literal=password=s3cret",
    ]);
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "shop",
        "--image=nginx:1.27",
        "--replicas=3",
    ]);
    cluster.ok(&[
        "create",
        "service",
        "clusterip",
        "web",
        "-n",
        "shop",
        "--tcp=80:8080",
    ]);
    cluster.ok(&["create", "serviceaccount", "robot", "-n", "shop"]);
    let secret: Value =
        serde_json::from_str(&cluster.ok(&["get", "secret", "creds", "-n", "shop", "-o", "json"]))
            .unwrap();
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["data"]["password"], "czNjcmV0");
    let deployment: Value =
        serde_json::from_str(&cluster.ok(&["get", "deploy", "web", "-n", "shop", "-o", "json"]))
            .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%",
        "defaulted"
    );
    assert_eq!(deployment["metadata"]["generation"], 1);
    let service: Value =
        serde_json::from_str(&cluster.ok(&["get", "svc", "web", "-n", "shop", "-o", "json"]))
            .unwrap();
    let ip = service["spec"]["clusterIP"].as_str().unwrap();
    assert!(
        ip.starts_with("10.") && ip != "10.96.0.1",
        "allocated from the service range: {ip}"
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 8080);
}

async fn tables_have_upstream_columns(cluster: &mut Cluster) {
    cluster.create_default_service_account("default");
    cluster.ok(&["create", "deployment", "web", "--image=nginx"]);
    cluster.ok(&["run", "solo", "--image=busybox"]);
    cluster.ok(&["expose", "deployment", "web", "--port=80"]);
    cluster.ok(&["create", "serviceaccount", "robot"]);
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["get", "pods"],
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ),
        (
            &["get", "pods", "-o", "wide"],
            &[
                "NAME",
                "READY",
                "STATUS",
                "RESTARTS",
                "AGE",
                "IP",
                "NODE",
                "NOMINATED NODE",
                "READINESS GATES",
            ],
        ),
        (
            &["get", "deployments"],
            &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ),
        (
            &["get", "deployments", "-o", "wide"],
            &[
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR",
            ],
        ),
        (
            &["get", "services"],
            &[
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
            ],
        ),
        (&["get", "namespaces"], &["NAME", "STATUS", "AGE"]),
        (
            &["get", "serviceaccounts", "-A"],
            &["NAMESPACE", "NAME", "SECRETS", "AGE"],
        ),
        (
            &["get", "endpoints", "-A"],
            &["NAMESPACE", "NAME", "ENDPOINTS", "AGE"],
        ),
    ];
    for (args, expected) in cases {
        let out = cluster.ok(args);
        assert_eq!(
            header(&out),
            *expected,
            "kubectl {}:\n{out}",
            args.join(" ")
        );
    }
    let pods = cluster.ok(&["get", "pods", "solo"]);
    let row: Vec<&str> = pods.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["solo", "0/1", "Pending", "0"]);
    let services = cluster.ok(&["get", "svc", "web"]);
    assert!(
        services.lines().nth(1).unwrap().contains("ClusterIP") && services.contains("80/TCP"),
        "{services}"
    );
    let all = cluster.ok(&["get", "all"]);
    assert!(
        all.contains("pod/solo")
            && all.contains("service/web")
            && all.contains("deployment.apps/web"),
        "{all}"
    );
}

async fn describe_works_for_core_kinds(cluster: &mut Cluster) {
    cluster.create_default_service_account("default");
    cluster.ok(&["create", "deployment", "web", "--image=nginx"]);
    cluster.ok(&["run", "solo", "--image=busybox", "--labels=app=solo"]);
    cluster.ok(&["expose", "pod", "solo", "--port=80"]);
    let pod = cluster.ok(&["describe", "pod", "solo"]);
    assert!(
        pod.contains("Name:") && pod.contains("solo") && pod.contains("Events:"),
        "{pod}"
    );
    let deployment = cluster.ok(&["describe", "deployment", "web"]);
    assert!(
        deployment.contains("RollingUpdateStrategy:  25% max unavailable, 25% max surge"),
        "{deployment}"
    );
    let service = cluster.ok(&["describe", "service", "solo"]);
    assert!(
        service.contains("Selector:") && service.contains("app=solo"),
        "{service}"
    );
    let namespace = cluster.ok(&["describe", "namespace", "default"]);
    assert!(namespace.contains("Status:       Active"), "{namespace}");
}

async fn new_clusters_have_the_kubernetes_service(cluster: &mut Cluster) {
    let service: Value =
        serde_json::from_str(&cluster.ok(&["get", "svc", "kubernetes", "-o", "json"])).unwrap();
    assert_eq!(service["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(service["spec"]["ports"][0]["port"], 443);
    let endpoints = cluster.ok(&["get", "endpoints", "kubernetes"]);
    assert!(
        endpoints.contains(&format!("127.0.0.1:{}", cluster.port)),
        "{endpoints}"
    );
}

async fn deletes_accept_cascade_options(cluster: &mut Cluster) {
    for name in ["a", "b", "c"] {
        cluster.ok(&["create", "configmap", name]);
    }
    cluster.ok(&["delete", "configmap", "b", "--cascade=background"]);
    assert!(cluster.fails(&["get", "cm", "b"]).contains("NotFound"));
    // Orphan and foreground deletions leave the object with the garbage collector's
    // finalizer (no controller-manager runs here to finish them).
    for (name, cascade, finalizer) in [
        ("a", "orphan", "orphan"),
        ("c", "foreground", "foregroundDeletion"),
    ] {
        cluster.ok(&[
            "delete",
            "configmap",
            name,
            &format!("--cascade={cascade}"),
            "--wait=false",
        ]);
        let object: Value =
            serde_json::from_str(&cluster.ok(&["get", "cm", name, "-o", "json"])).unwrap();
        assert_eq!(
            object["metadata"]["finalizers"],
            serde_json::json!([finalizer])
        );
        assert!(object["metadata"]["deletionTimestamp"].is_string());
    }
}

async fn kubectl_1_27_still_works(cluster: &mut Cluster) {
    let version = |args: &[&str], stdin: Option<&str>| {
        let out = cluster.kubectl_version(27, args, stdin);
        assert!(
            out.status.success(),
            "kubectl 1.27 {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    version(
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old\ndata:\n  a: b\n"),
    );
    version(&["create", "deployment", "web", "--image=nginx"], None);
    let pods = version(&["get", "cm,deploy"], None);
    assert!(
        pods.contains("configmap/old") && pods.contains("deployment.apps/web"),
        "{pods}"
    );
    assert!(version(&["explain", "configmap.data"], None)
        .contains("Data contains the configuration data"));
    version(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old\ndata:\n  a: c\n"),
    );
    assert_eq!(
        version(&["get", "cm", "old", "-o", "jsonpath={.data.a}"], None),
        "c"
    );
}

async fn priority_classes_set_pod_priority(cluster: &mut Cluster) {
    let classes = cluster.ok(&["get", "priorityclasses"]);
    assert_eq!(
        header(&classes),
        ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    );
    assert!(
        classes.contains("system-node-critical") && classes.contains("2000001000"),
        "{classes}"
    );
    cluster.ok(&["create", "priorityclass", "high", "--value=1000"]);
    cluster.create_default_service_account("default");
    cluster.ok_stdin(&["create", "-f", "-"], "apiVersion: v1\nkind: Pod\nmetadata:\n  name: vip\nspec:\n  priorityClassName: high\n  containers:\n  - name: app\n    image: nginx\n");
    assert_eq!(
        cluster.ok(&["get", "pod", "vip", "-o", "jsonpath={.spec.priority}"]),
        "1000"
    );
    let missing = cluster.kubectl_version(33, &["create", "-f", "-"], Some("apiVersion: v1\nkind: Pod\nmetadata:\n  name: lost\nspec:\n  priorityClassName: nope\n  containers:\n  - name: app\n    image: nginx\n"));
    assert!(String::from_utf8_lossy(&missing.stderr)
        .contains("no PriorityClass with name nope was found"));
    let reserved = cluster.fails(&["create", "priorityclass", "system-mine", "--value=5"]);
    assert!(
        reserved.contains("priority class names with 'system-' prefix are reserved"),
        "{reserved}"
    );
}

async fn both_event_apis_see_every_event(cluster: &mut Cluster) {
    let new_api = "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: from-new-api\neventTime: \"2026-01-01T00:00:00.000000Z\"\nreportingController: example.com/ctl\nreportingInstance: ctl-1\naction: Testing\nreason: Probed\ntype: Normal\nnote: written through events.k8s.io\nregarding:\n  kind: Pod\n  name: p\n  namespace: default\n";
    cluster.ok_stdin(&["create", "-f", "-"], new_api);
    let core: Value =
        serde_json::from_str(&cluster.ok(&["get", "events.v1.", "from-new-api", "-o", "json"]))
            .unwrap();
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["message"], "written through events.k8s.io");
    assert_eq!(core["involvedObject"]["name"], "p");
    assert_eq!(core["reportingComponent"], "example.com/ctl");
    let old_api = "apiVersion: v1\nkind: Event\nmetadata:\n  name: from-core\ninvolvedObject:\n  kind: Pod\n  name: p\n  namespace: default\nreason: Started\nmessage: written through core\ntype: Normal\nsource:\n  component: kubelet\n";
    cluster.ok_stdin(&["create", "-f", "-"], old_api);
    let new: Value = serde_json::from_str(&cluster.ok(&[
        "get",
        "events.v1.events.k8s.io",
        "from-core",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(new["apiVersion"], "events.k8s.io/v1");
    assert_eq!(new["note"], "written through core");
    assert_eq!(new["regarding"]["name"], "p");
    assert_eq!(new["deprecatedSource"]["component"], "kubelet");
    let listed = cluster.ok(&["get", "events"]);
    assert!(
        listed.contains("written through events.k8s.io") && listed.contains("written through core"),
        "{listed}"
    );
}
