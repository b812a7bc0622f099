//! Every kubectl way of changing an object that is not server-side apply: client-side apply,
//! patch (strategic, merge, JSON), label/annotate, scale, set image, edit, cordon.

use e2e::fixtures::{deployment, json};
use e2e::{on_both_backends, Cluster};
use serde_json::Value;

on_both_backends!(
    client_side_apply_creates_changes_and_prunes_fields,
    patch_types_on_deployments_pods_and_nodes,
    label_annotate_scale_and_set_image,
    edit_with_a_scripted_editor,
    cordon_and_uncordon,
    server_side_apply_on_the_scale_subresource,
);

/// The Deployment these cases change: two `app` containers of `image`, with an extra
/// environment variable or not.
fn web(image: &str, extra_env: bool) -> String {
    let env = if extra_env {
        "  env:\n  - name: MODE\n    value: fast\n"
    } else {
        ""
    };
    deployment(
        "web",
        2,
        &format!("containers:\n- name: app\n  image: {image}\n{env}"),
    )
}

async fn client_side_apply_creates_changes_and_prunes_fields(cluster: &mut Cluster) {
    assert_eq!(
        cluster
            .ok_stdin(&["apply", "-f", "-"], &web("nginx:1.25", true))
            .trim(),
        "deployment.apps/web created"
    );
    let created = json(&cluster.ok(&["get", "deploy", "web", "-o", "json"]));
    assert!(
        created["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let rv = created["metadata"]["resourceVersion"].clone();

    assert_eq!(
        cluster
            .ok_stdin(&["apply", "-f", "-"], &web("nginx:1.25", true))
            .trim(),
        "deployment.apps/web unchanged"
    );
    assert_eq!(
        json(&cluster.ok(&["get", "deploy", "web", "-o", "json"]))["metadata"]["resourceVersion"],
        rv,
        "unchanged apply writes nothing"
    );

    assert_eq!(
        cluster
            .ok_stdin(&["apply", "-f", "-"], &web("nginx:1.27", false))
            .trim(),
        "deployment.apps/web configured"
    );
    let changed = json(&cluster.ok(&["get", "deploy", "web", "-o", "json"]));
    let container = &changed["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert!(
        container.get("env").is_none(),
        "a field removed from the file is removed: {container}"
    );
    assert_eq!(changed["metadata"]["generation"], 2);
}

async fn patch_types_on_deployments_pods_and_nodes(cluster: &mut Cluster) {
    cluster.ok_stdin(&["apply", "-f", "-"], &web("nginx:1.25", true));
    cluster.ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}"#,
    ]);
    let names = cluster.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].name}",
    ]);
    assert_eq!(
        names, "app sidecar",
        "strategic merge adds a container by name"
    );
    cluster.ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}"#,
    ]);
    assert_eq!(
        cluster.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].name}"
        ]),
        "app"
    );
    cluster.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":5}}"#,
    ]);
    cluster.ok(&["patch", "deployment", "web", "--type=json", "-p", r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.26"}]"#]);
    let patched = json(&cluster.ok(&["get", "deploy", "web", "-o", "json"]));
    assert_eq!(patched["spec"]["replicas"], 5);
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );
    let failed = cluster.fails(&[
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":1}]"#,
    ]);
    assert!(
        failed.contains("Invalid") || failed.contains("invalid"),
        "a failed test operation is 422: {failed}"
    );

    cluster.create_default_service_account("default");
    cluster.ok(&["run", "solo", "--image=busybox", "--env=A=1"]);
    cluster.ok(&[
        "patch",
        "pod",
        "solo",
        "-p",
        r#"{"spec":{"containers":[{"name":"solo","image":"busybox:1.36"}]}}"#,
    ]);
    assert_eq!(
        cluster.ok(&[
            "get",
            "pod",
            "solo",
            "-o",
            "jsonpath={.spec.containers[0].image}"
        ]),
        "busybox:1.36"
    );
    let immutable = cluster.fails(&[
        "patch",
        "pod",
        "solo",
        "-p",
        r#"{"spec":{"restartPolicy":"Never"}}"#,
    ]);
    assert!(
        immutable.contains("pod updates may not change fields other than"),
        "{immutable}"
    );

    cluster.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n  labels:\n    zone: a\n",
    );
    cluster.ok(&[
        "patch",
        "node",
        "node-1",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"zone":"b"}}}"#,
    ]);
    assert_eq!(
        cluster.ok(&[
            "get",
            "node",
            "node-1",
            "-o",
            "jsonpath={.metadata.labels.zone}"
        ]),
        "b"
    );
}

async fn label_annotate_scale_and_set_image(cluster: &mut Cluster) {
    cluster.ok_stdin(&["apply", "-f", "-"], &web("nginx:1.25", false));
    cluster.ok(&["label", "deployment", "web", "tier=front"]);
    cluster.ok(&["label", "deployment", "web", "tier=back", "--overwrite"]);
    cluster.ok(&["annotate", "deployment", "web", "owner=team-a"]);
    let labelled = json(&cluster.ok(&["get", "deploy", "web", "-o", "json"]));
    assert_eq!(labelled["metadata"]["labels"]["tier"], "back");
    assert_eq!(labelled["metadata"]["annotations"]["owner"], "team-a");
    cluster.ok(&["label", "deployment", "web", "tier-"]);
    cluster.ok(&["annotate", "deployment", "web", "owner-"]);
    let cleaned = json(&cluster.ok(&["get", "deploy", "web", "-o", "json"]));
    assert!(
        cleaned["metadata"]["labels"].get("tier").is_none()
            && cleaned["metadata"]["annotations"].get("owner").is_none()
    );

    assert_eq!(
        cluster
            .ok(&["scale", "deployment", "web", "--replicas=7"])
            .trim(),
        "deployment.apps/web scaled"
    );
    assert_eq!(
        cluster.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "7"
    );
    let scale = json(&cluster.ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
    ]));
    assert_eq!(scale["spec"]["replicas"], 7);
    assert_eq!(scale["status"]["selector"], "app=web");

    cluster.ok(&["set", "image", "deployment/web", "app=nginx:1.27"]);
    assert_eq!(
        cluster.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "nginx:1.27"
    );
}

async fn edit_with_a_scripted_editor(cluster: &mut Cluster) {
    cluster.ok(&["create", "configmap", "tuned", "--from-literal=level=1"]);
    let editor = cluster.dir().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/level: \"1\"/level: \"2\"/' \"$1\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(e2e::kubectl_path(33))
        .args(["edit", "configmap", "tuned"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("HOME", cluster.dir())
        .env("KUBE_EDITOR", &editor)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "configmap/tuned edited"
    );
    assert_eq!(
        cluster.ok(&["get", "cm", "tuned", "-o", "jsonpath={.data.level}"]),
        "2"
    );
}

async fn cordon_and_uncordon(cluster: &mut Cluster) {
    cluster.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n",
    );
    assert_eq!(
        cluster.ok(&["cordon", "node-1"]).trim(),
        "node/node-1 cordoned"
    );
    assert_eq!(
        cluster.ok(&[
            "get",
            "node",
            "node-1",
            "-o",
            "jsonpath={.spec.unschedulable}"
        ]),
        "true"
    );
    let nodes = cluster.ok(&["get", "nodes"]);
    assert!(nodes.contains("SchedulingDisabled"), "{nodes}");
    assert_eq!(
        cluster.ok(&["uncordon", "node-1"]).trim(),
        "node/node-1 uncordoned"
    );
    assert_eq!(
        cluster.ok(&[
            "get",
            "node",
            "node-1",
            "-o",
            "jsonpath={.spec.unschedulable}"
        ]),
        ""
    );
}

async fn server_side_apply_on_the_scale_subresource(cluster: &mut Cluster) {
    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    cluster.ok(&["scale", "deployment", "web", "--replicas=3"]);
    let client = cluster.client().await;
    let apply = |force: bool| {
        let query = if force {
            "fieldManager=hpa&force=true"
        } else {
            "fieldManager=hpa"
        };
        http::Request::patch(format!("/apis/apps/v1/namespaces/default/deployments/web/scale?{query}"))
            .header("content-type", "application/apply-patch+yaml")
            .body(b"apiVersion: autoscaling/v1\nkind: Scale\nmetadata:\n  name: web\nspec:\n  replicas: 5\n".to_vec())
            .unwrap()
    };
    match client.request_text(apply(false)).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 409);
            assert!(
                status.message.contains("Apply failed with 1 conflict")
                    && status.message.contains(".spec.replicas"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a conflict with kubectl scale, got {other:?}"),
    }
    let scale: Value =
        serde_json::from_str(&client.request_text(apply(true)).await.unwrap()).unwrap();
    assert_eq!(scale["spec"]["replicas"], 5);
    let deployment = json(&cluster.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "json",
        "--show-managed-fields",
    ]));
    let hpa = deployment["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == "hpa")
        .unwrap()
        .clone();
    assert_eq!(
        (hpa["operation"].as_str(), hpa["subresource"].as_str()),
        (Some("Apply"), Some("scale"))
    );
    assert_eq!(deployment["spec"]["replicas"], 5);
}
