//! Server-side apply and managed fields driven by the real kubectl 1.33, on both backends.

use e2e::fixtures::{deployment, json};
use e2e::{on_both_backends, Cluster};
use serde_json::{json, Value};

on_both_backends!(
    server_side_apply_creates_then_updates,
    conflicts_name_the_other_manager_until_forced,
    fields_no_longer_applied_are_removed,
    server_side_then_client_side_apply,
    client_side_then_server_side_then_client_side_apply,
    deployments_conflict_with_other_managers,
    deployments_move_between_client_and_server_side_apply,
    scaling_takes_replicas_from_the_applier,
    creates_and_updates_record_their_managers,
    apply_needs_a_field_manager,
);

fn configmap(name: &str, data: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n"
    );
    for (key, value) in data {
        yaml.push_str(&format!("  {key}: \"{value}\"\n"));
    }
    yaml
}

/// The object with its managed fields (kubectl hides them unless asked).
fn get(cluster: &Cluster, resource: &str) -> Value {
    json(&cluster.ok(&["get", resource, "-o", "json", "--show-managed-fields"]))
}

/// The managed fields entry of `manager`.
fn entry<'a>(object: &'a Value, manager: &str) -> Option<&'a Value> {
    object["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
}

async fn server_side_apply_creates_then_updates(cluster: &mut Cluster) {
    let out = cluster.kubectl_version(
        33,
        &["apply", "--server-side", "-f", "-", "-v=6"],
        Some(&configmap("settings", &[("color", "blue")])),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "configmap/settings serverside-applied\n"
    );
    assert!(
        stderr.contains("verb=\"PATCH\"") && stderr.contains("status=\"201 Created\""),
        "create-on-apply answers 201:\n{stderr}"
    );

    let object = get(cluster, "configmap/settings");
    let applied = entry(&object, "kubectl").expect("kubectl manages the applied fields");
    assert_eq!(applied["operation"], "Apply");
    assert_eq!(applied["apiVersion"], "v1");
    assert_eq!(applied["fieldsType"], "FieldsV1");
    assert_eq!(applied["fieldsV1"], json!({"f:data": {"f:color": {}}}));
    assert!(applied["time"].is_string());
    assert_eq!(
        object["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let out = cluster.ok_stdin(
        &["apply", "--server-side", "-f", "-"],
        &configmap("settings", &[("color", "red"), ("size", "large")]),
    );
    assert_eq!(out, "configmap/settings serverside-applied\n");
    let object = get(cluster, "configmap/settings");
    assert_eq!(object["data"], json!({"color": "red", "size": "large"}));
    assert_eq!(
        entry(&object, "kubectl").unwrap()["fieldsV1"],
        json!({"f:data": {"f:color": {}, "f:size": {}}})
    );

    let out = cluster.ok_stdin(
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            "-",
        ],
        &configmap("settings", &[("color", "green")]),
    );
    assert_eq!(json(&out)["data"]["color"], "green");
    assert_eq!(
        get(cluster, "configmap/settings")["data"]["color"],
        "red",
        "a dry run stores nothing"
    );
}

async fn conflicts_name_the_other_manager_until_forced(cluster: &mut Cluster) {
    cluster.ok_stdin(
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        &configmap("shared", &[("a", "1"), ("b", "2")]),
    );
    // The same values: shared ownership, no conflict.
    cluster.ok_stdin(
        &["apply", "--server-side", "-f", "-"],
        &configmap("shared", &[("a", "1")]),
    );
    let object = get(cluster, "configmap/shared");
    assert_eq!(
        entry(&object, "kubectl").unwrap()["fieldsV1"],
        json!({"f:data": {"f:a": {}}})
    );
    assert_eq!(
        entry(&object, "other").unwrap()["fieldsV1"],
        json!({"f:data": {"f:a": {}, "f:b": {}}})
    );

    let out = cluster.kubectl_version(
        33,
        &["apply", "--server-side", "-f", "-"],
        Some(&configmap("shared", &[("a", "9")])),
    );
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains(r#"error: Apply failed with 1 conflict: conflict with "other": .data.a"#),
        "{error}"
    );
    assert!(
        error.contains("--force-conflicts"),
        "kubectl explains the conflict: {error}"
    );
    assert_eq!(get(cluster, "configmap/shared")["data"]["a"], "1");

    let out = cluster.kubectl_version(
        33,
        &["apply", "--server-side", "-f", "-"],
        Some(&configmap("shared", &[("a", "9"), ("b", "8")])),
    );
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains(
            "error: Apply failed with 2 conflicts: conflicts with \"other\":\n- .data.a\n- .data.b"
        ),
        "{error}"
    );

    cluster.ok_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &configmap("shared", &[("a", "9")]),
    );
    let object = get(cluster, "configmap/shared");
    assert_eq!(object["data"], json!({"a": "9", "b": "2"}));
    assert_eq!(
        entry(&object, "kubectl").unwrap()["fieldsV1"],
        json!({"f:data": {"f:a": {}}})
    );
    assert_eq!(
        entry(&object, "other").unwrap()["fieldsV1"],
        json!({"f:data": {"f:b": {}}}),
        "forcing took .data.a from other"
    );
}

async fn fields_no_longer_applied_are_removed(cluster: &mut Cluster) {
    cluster.ok_stdin(
        &["apply", "--server-side", "-f", "-"],
        &configmap("trim", &[("keep", "1"), ("drop", "2"), ("both", "3")]),
    );
    cluster.ok_stdin(
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        &configmap("trim", &[("both", "3")]),
    );
    cluster.ok_stdin(
        &["apply", "--server-side", "-f", "-"],
        &configmap("trim", &[("keep", "1")]),
    );
    let object = get(cluster, "configmap/trim");
    assert_eq!(
        object["data"],
        json!({"keep": "1", "both": "3"}),
        "drop went; both stays, other still applies it"
    );
    assert_eq!(
        entry(&object, "kubectl").unwrap()["fieldsV1"],
        json!({"f:data": {"f:keep": {}}})
    );
}

async fn server_side_then_client_side_apply(cluster: &mut Cluster) {
    cluster.ok_stdin(
        &["apply", "--server-side", "-f", "-"],
        &configmap("mixed", &[("a", "1")]),
    );
    let out = cluster.kubectl_version(
        33,
        &["apply", "-f", "-"],
        Some(&configmap("mixed", &[("a", "2"), ("c", "3")])),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "configmap/mixed configured\n"
    );
    let object = get(cluster, "configmap/mixed");
    assert_eq!(object["data"], json!({"a": "2", "c": "3"}));
    assert!(
        object["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let updated =
        entry(&object, "kubectl-client-side-apply").expect("client-side apply records an update");
    assert_eq!(updated["operation"], "Update");
    assert_eq!(updated["fieldsV1"]["f:data"], json!({"f:a": {}, "f:c": {}}));
    assert_eq!(
        entry(&object, "kubectl"),
        None,
        "the changed field moved to the client-side apply"
    );
}

async fn client_side_then_server_side_then_client_side_apply(cluster: &mut Cluster) {
    assert_eq!(
        cluster.ok_stdin(
            &["apply", "-f", "-"],
            &configmap("migrate", &[("a", "1"), ("b", "2")])
        ),
        "configmap/migrate created\n"
    );
    // kubectl takes over what its client-side apply set, without conflicts.
    let out = cluster.ok_stdin(
        &["apply", "--server-side", "-f", "-"],
        &configmap("migrate", &[("a", "5")]),
    );
    assert_eq!(out, "configmap/migrate serverside-applied\n");
    let object = get(cluster, "configmap/migrate");
    assert_eq!(
        object["data"],
        json!({"a": "5"}),
        "b was the client-side apply's, now kubectl's, and no longer applied"
    );
    let last = object["metadata"]["annotations"]
        ["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap();
    assert_eq!(
        json(last)["data"],
        json!({"a": "5"}),
        "the annotation follows the server-side apply"
    );
    let out = cluster.ok_stdin(&["apply", "-f", "-"], &configmap("migrate", &[("a", "6")]));
    assert_eq!(out, "configmap/migrate configured\n");
    assert_eq!(get(cluster, "configmap/migrate")["data"], json!({"a": "6"}));
}

/// The Deployment these cases apply, of `replicas` pods.
fn web(replicas: u32) -> String {
    deployment(
        "web",
        replicas,
        "containers:\n- name: app\n  image: nginx\n  ports:\n  - containerPort: 80\n",
    )
}

async fn deployments_conflict_with_other_managers(cluster: &mut Cluster) {
    cluster.ok_stdin(&["create", "-f", "-"], &web(2));
    let scaled = web(3);
    let out = cluster.kubectl_version(
        33,
        &["apply", "--server-side", "--field-manager=ci", "-f", "-"],
        Some(&scaled),
    );
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains(r#"Apply failed with 1 conflict: conflict with "kubectl-create" using apps/v1: .spec.replicas"#), "{error}");
    cluster.ok_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=ci",
            "--force-conflicts",
            "-f",
            "-",
        ],
        &scaled,
    );
    let object = get(cluster, "deployment/web");
    assert_eq!(object["spec"]["replicas"], 3);
    let ci = entry(&object, "ci").unwrap();
    assert_eq!(ci["operation"], "Apply");
    assert_eq!(
        ci["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"],
        json!({"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}, "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}})
    );
    let created = entry(&object, "kubectl-create").unwrap();
    assert_eq!(created["operation"], "Update");
    assert_eq!(
        created["fieldsV1"]["f:spec"].get("f:replicas"),
        None,
        "forcing took .spec.replicas"
    );
    assert_eq!(created["fieldsV1"]["f:spec"]["f:selector"], json!({}));
}

async fn deployments_move_between_client_and_server_side_apply(cluster: &mut Cluster) {
    cluster.ok_stdin(&["apply", "-f", "-"], &web(2));
    let scaled = web(3);
    assert_eq!(
        cluster.ok_stdin(&["apply", "--server-side", "-f", "-"], &scaled),
        "deployment.apps/web serverside-applied\n"
    );
    let object = get(cluster, "deployment/web");
    assert_eq!(object["spec"]["replicas"], 3);
    assert!(entry(&object, "kubectl").unwrap()["fieldsV1"]["f:spec"]
        .get("f:replicas")
        .is_some());
    let rescaled = web(4);
    assert_eq!(
        cluster.ok_stdin(&["apply", "-f", "-"], &rescaled),
        "deployment.apps/web configured\n"
    );
    assert_eq!(get(cluster, "deployment/web")["spec"]["replicas"], 4);
}

async fn scaling_takes_replicas_from_the_applier(cluster: &mut Cluster) {
    cluster.ok_stdin(&["apply", "--server-side", "-f", "-"], &web(2));
    cluster.ok(&["scale", "deployment", "web", "--replicas=5"]);
    let object = get(cluster, "deployment/web");
    let entries = object["metadata"]["managedFields"].as_array().unwrap();
    // The manager is the User-Agent's product: kubectl's binary name.
    let scaler = entries
        .iter()
        .find(|e| e["subresource"] == "scale")
        .expect("the scale is recorded with its subresource");
    assert_eq!(scaler["operation"], "Update");
    assert_eq!(scaler["apiVersion"], "apps/v1");
    assert_eq!(scaler["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert_eq!(
        entry(&object, "kubectl").unwrap()["fieldsV1"]["f:spec"].get("f:replicas"),
        None
    );
    let out = cluster.kubectl_version(33, &["apply", "--server-side", "-f", "-"], Some(&web(2)));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains(r#"with subresource "scale" using apps/v1: .spec.replicas"#),
        "{error}"
    );
    assert_eq!(get(cluster, "deployment/web")["spec"]["replicas"], 5);
}

async fn creates_and_updates_record_their_managers(cluster: &mut Cluster) {
    cluster.ok(&["create", "configmap", "made", "--from-literal=a=1"]);
    let object = get(cluster, "configmap/made");
    let created = entry(&object, "kubectl-create").expect("kubectl create records its manager");
    assert_eq!(created["operation"], "Update");
    assert_eq!(created["fieldsV1"], json!({"f:data": {".": {}, "f:a": {}}}));
    cluster.ok(&["label", "configmap", "made", "tier=front"]);
    let object = get(cluster, "configmap/made");
    assert_eq!(
        entry(&object, "kubectl-label").unwrap()["fieldsV1"],
        json!({"f:metadata": {"f:labels": {".": {}, "f:tier": {}}}})
    );
    cluster.ok(&["patch", "configmap", "made", "-p", r#"{"data":{"a":"2"}}"#]);
    let object = get(cluster, "configmap/made");
    assert_eq!(
        entry(&object, "kubectl-patch").unwrap()["fieldsV1"],
        json!({"f:data": {"f:a": {}}})
    );
    assert_eq!(
        entry(&object, "kubectl-create").unwrap()["fieldsV1"],
        json!({"f:data": {}}),
        "the patch took .data.a"
    );
}

async fn apply_needs_a_field_manager(cluster: &mut Cluster) {
    let client = cluster.client().await;
    let request = http::Request::patch("/api/v1/namespaces/default/configmaps/raw")
        .header("content-type", "application/apply-patch+yaml")
        .body(configmap("raw", &[("a", "1")]).into_bytes())
        .unwrap();
    match client.request_text(request).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422);
            assert_eq!(
                status.message,
                r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
    let request =
        http::Request::patch("/api/v1/namespaces/default/configmaps/raw?fieldManager=raw")
            .header("content-type", "application/apply-patch+yaml")
            .body(configmap("raw", &[("a", "1")]).into_bytes())
            .unwrap();
    let created = json(&client.request_text(request).await.expect("apply creates"));
    assert_eq!(created["metadata"]["managedFields"][0]["manager"], "raw");
}
