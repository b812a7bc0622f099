//! Bodies decoded and objects encoded as upstream's Go types do, whatever encoding the client
//! uses: kubectl's protobuf creates read back like upstream's, conditions without a transition
//! time are accepted, and field validation reports like upstream's strict decoder.

use e2e::{on_both_backends, Cluster};
use k8s_pb::api::core::v1 as pb_core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;
use serde_json::{json, Value};

on_both_backends!(
    protobuf_create_reads_back_like_upstream,
    status_conditions_without_transition_time_are_accepted,
    strict_validation_lists_unknown_and_duplicate_fields,
    warn_validation_sends_one_warning_per_field,
);

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `kubectl create deployment` sends protobuf holding every Go zero value; what is stored and
/// returned is what upstream returns for it (the fixture is upstream 1.33's output, less the
/// fields that differ per run).
async fn protobuf_create_reads_back_like_upstream(cluster: &mut Cluster) {
    cluster.ok(&["create", "deployment", "web", "--image=nginx", "--port=80"]);
    let yaml = cluster.ok(&["get", "deployment", "web", "-o", "yaml"]);
    let volatile = ["  creationTimestamp: ", "  resourceVersion: ", "  uid: "];
    let stable: String = yaml
        .lines()
        .filter(|line| {
            !volatile
                .iter()
                .any(|v| line.starts_with(v) && !line.ends_with("null"))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let expected = include_str!("../fixtures/decoding/deployment-web.yaml");
    assert_eq!(stable, expected, "kubectl get -o yaml:\n{yaml}");
    let object = parse(&cluster.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "json",
        "--show-managed-fields",
    ]));
    let managed = object["metadata"]["managedFields"].to_string();
    for zero in [
        "f:stdin",
        "f:tty",
        "f:hostPort",
        "f:paused",
        "f:minReadySeconds",
        "f:hostNetwork",
    ] {
        assert!(
            !managed.contains(zero),
            "{zero} in managedFields: {managed}"
        );
    }
    assert!(managed.contains("f:containerPort"), "{managed}");
}

/// A Service status condition as client-go sends it (zero `lastTransitionTime`, which
/// protobuf leaves out) or as a JSON client may leave it: upstream accepts both.
async fn status_conditions_without_transition_time_are_accepted(cluster: &mut Cluster) {
    cluster.ok(&["create", "service", "clusterip", "db", "--tcp=5432"]);
    let service = parse(&cluster.ok(&["get", "service", "db", "-o", "json"]));
    let mut update = service.clone();
    update["status"]["conditions"] =
        json!([{"type": "Ready", "status": "True", "reason": "ByJson", "message": ""}]);
    cluster.ok_stdin(
        &[
            "replace",
            "--raw",
            "/api/v1/namespaces/default/services/db/status",
            "-f",
            "-",
        ],
        &update.to_string(),
    );
    let stored = parse(&cluster.ok(&["get", "service", "db", "-o", "json"]));
    assert_eq!(
        stored["status"]["conditions"],
        json!([{"type": "Ready", "status": "True", "reason": "ByJson", "message": "", "lastTransitionTime": null}])
    );

    let client = cluster.client().await;
    let body = protobuf_status_update(&stored);
    let request = http::Request::put("/api/v1/namespaces/default/services/db/status")
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .header("accept", "application/json")
        .body(body)
        .unwrap();
    let answer = parse(
        &client
            .request_text(request)
            .await
            .expect("protobuf status update"),
    );
    assert_eq!(
        answer["status"]["conditions"],
        json!([{"type": "Ready", "status": "True", "reason": "ByProtobuf", "message": "", "lastTransitionTime": null}])
    );
}

/// The Service as client-go's UpdateStatus sends it: the zero transition time is an empty
/// metav1.Time message.
fn protobuf_status_update(current: &Value) -> Vec<u8> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let service = pb_core::Service {
        metadata: Some(pb_meta::ObjectMeta {
            name: text(&current["metadata"]["name"]),
            namespace: text(&current["metadata"]["namespace"]),
            resource_version: text(&current["metadata"]["resourceVersion"]),
            ..Default::default()
        }),
        spec: Some(pb_core::ServiceSpec {
            ports: vec![pb_core::ServicePort {
                name: text(&current["spec"]["ports"][0]["name"]),
                port: Some(5432),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(pb_core::ServiceStatus {
            conditions: vec![pb_meta::Condition {
                r#type: Some("Ready".into()),
                status: Some("True".into()),
                reason: Some("ByProtobuf".into()),
                message: Some(String::new()),
                last_transition_time: Some(pb_meta::Time::default()),
                observed_generation: Some(0),
            }],
            load_balancer: Some(Default::default()),
        }),
    };
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
        }),
        raw: Some(service.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [b"k8s\0".as_slice(), &unknown.encode_to_vec()].concat()
}

const DEPLOYMENT_WITH_PROBLEMS: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment",
"metadata":{"name":"odd","foo":1},
"spec":{"replicas":1,"foo":true,"replicas":2,
  "selector":{"matchLabels":{"app":"odd"}},
  "template":{"metadata":{"labels":{"app":"odd"},"bar":1},
    "spec":{"containers":[{"name":"c","image":"nginx","image":"nginx:1.27"}]}}}}"#;

/// `fieldValidation=Strict` refuses the body naming every unknown and duplicate field, in
/// the body's order, in one message.
async fn strict_validation_lists_unknown_and_duplicate_fields(cluster: &mut Cluster) {
    let out = cluster.kubectl_version(
        33,
        &[
            "create",
            "--raw",
            "/apis/apps/v1/namespaces/default/deployments?fieldValidation=Strict",
            "-f",
            "-",
        ],
        Some(DEPLOYMENT_WITH_PROBLEMS),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(concat!(
            r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: "#,
            r#"unknown field "metadata.foo", unknown field "spec.foo", duplicate field "spec.replicas", "#,
            r#"unknown field "spec.template.metadata.bar", duplicate field "spec.template.spec.containers[0].image""#,
        )),
        "{stderr}"
    );
    cluster.fails(&["get", "deployment", "odd"]);
}

/// `fieldValidation=Warn` (kubectl's `--validate=warn`) accepts the body and sends one
/// warning per unknown field, which kubectl prints.
async fn warn_validation_sends_one_warning_per_field(cluster: &mut Cluster) {
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: warned\n  foo: 1\ndata:\n  a: b\nbar: true\n";
    let out = cluster.kubectl_version(33, &["apply", "--validate=warn", "-f", "-"], Some(manifest));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(r#"Warning: unknown field "bar""#),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"Warning: unknown field "metadata.foo""#),
        "{stderr}"
    );
    assert_eq!(
        parse(&cluster.ok(&["get", "configmap", "warned", "-o", "json"]))["data"],
        json!({"a": "b"})
    );
}
