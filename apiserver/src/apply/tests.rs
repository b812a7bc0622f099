//! The entry points end to end on JSON documents: what kubectl and controllers see.

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::patch::schema::Schemas;
use crate::registry::request::{Output, Query};
use crate::registry::Verb;

fn schemas() -> Arc<Schemas> {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<k8s_openapi::api::apps::v1::Deployment>();
    generator.subschema_for::<k8s_openapi::api::core::v1::ConfigMap>();
    Schemas::new(generator.take_definitions(true))
}

fn deployments(schemas: &Schemas) -> Context<'_> {
    Context {
        schema: schemas.root("io.k8s.api.apps.v1.Deployment"),
        definition: "io.k8s.api.apps.v1.Deployment",
        api_version: "apps/v1",
        kind: "Deployment",
        subresource: None,
        has_status: true,
    }
}

fn configmaps(schemas: &Schemas) -> Context<'_> {
    Context {
        schema: schemas.root("io.k8s.api.core.v1.ConfigMap"),
        definition: "io.k8s.api.core.v1.ConfigMap",
        api_version: "v1",
        kind: "ConfigMap",
        subresource: None,
        has_status: false,
    }
}

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: nginx
";

/// Strips the times so documents compare.
fn entries(object: &Value) -> Value {
    let mut list = object["metadata"]["managedFields"].clone();
    for entry in list.as_array_mut().into_iter().flatten() {
        entry.as_object_mut().unwrap().remove("time");
    }
    list
}

#[test]
fn apply_creates_with_the_applied_fields() {
    let schemas = schemas();
    let object = apply(
        None,
        DEPLOYMENT.as_bytes(),
        &deployments(&schemas),
        "kubectl",
        false,
    )
    .unwrap();
    assert_eq!(object["spec"]["replicas"], 2);
    assert_eq!(
        entries(&object),
        json!([{
            "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                    }
                }
            }
        }])
    );
    assert!(object["metadata"]["managedFields"][0]["time"].is_string());
}

#[test]
fn conflicts_read_like_upstream() {
    let schemas = schemas();
    let context = deployments(&schemas);
    let mut created = serde_yaml_ng::from_str::<Value>(DEPLOYMENT).unwrap();
    track(None, &mut created, &context, "kubectl-client-side-apply");

    let changed = DEPLOYMENT.replace("replicas: 2", "replicas: 3");
    let error = apply(Some(&created), changed.as_bytes(), &context, "other", false).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
    );
    let status = error.status();
    assert_eq!(status["code"], 409);
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["details"],
        json!({"causes": [{"reason": "FieldManagerConflict", "message": "conflict with \"kubectl-client-side-apply\" using apps/v1", "field": ".spec.replicas"}]})
    );

    let changed = changed.replace("image: nginx", "image: httpd");
    let error = apply(Some(&created), changed.as_bytes(), &context, "other", false).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"app\"].image"
    );

    let forced = apply(Some(&created), changed.as_bytes(), &context, "other", true).unwrap();
    assert_eq!(forced["spec"]["replicas"], 3);
    let list = entries(&forced);
    assert_eq!(list[0]["manager"], "other");
    assert_eq!(list[1]["manager"], "kubectl-client-side-apply");
    assert_eq!(list[1]["fieldsV1"]["f:spec"].get("f:replicas"), None);
}

#[test]
fn appliers_conflict_by_name_alone() {
    let schemas = schemas();
    let context = configmaps(&schemas);
    let config = |value: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: \"{value}\"\n")
    };
    let first = apply(None, config("1").as_bytes(), &context, "one", false).unwrap();
    let same = apply(Some(&first), config("1").as_bytes(), &context, "two", false).unwrap();
    assert_eq!(
        entries(&same).as_array().unwrap().len(),
        2,
        "same value: shared ownership"
    );
    let error = apply(
        Some(&same),
        config("2").as_bytes(),
        &context,
        "three",
        false,
    )
    .unwrap_err();
    assert_eq!(error.to_string(), "Apply failed with 2 conflicts: conflicts with \"one\":\n- .data.a\nconflicts with \"two\":\n- .data.a");
}

#[test]
fn kubectl_takes_over_its_client_side_apply() {
    let schemas = schemas();
    let context = configmaps(&schemas);
    let last = r#"{"apiVersion":"v1","data":{"a":"1","b":"2"},"kind":"ConfigMap","metadata":{"annotations":{},"name":"x"}}"#;
    let mut live = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x", "annotations": {LAST_APPLIED: format!("{last}\n")}},
        "data": {"a": "1", "b": "2"}
    });
    track(None, &mut live, &context, "kubectl-client-side-apply");

    let config = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: \"9\"\n";
    let error = apply(Some(&live), config.as_bytes(), &context, "someone", false).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("conflict with \"kubectl-client-side-apply\" using v1: .data.a"),
        "{error}"
    );

    let applied = apply(Some(&live), config.as_bytes(), &context, "kubectl", false).unwrap();
    assert_eq!(applied["data"], json!({"a": "9", "b": "2"}));
    assert_eq!(
        applied["metadata"]["annotations"][LAST_APPLIED],
        "{\"apiVersion\":\"v1\",\"data\":{\"a\":\"9\"},\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"x\"}}\n"
    );
    let list = entries(&applied);
    assert_eq!(list[0]["manager"], "kubectl");
    assert_eq!(list[0]["fieldsV1"], json!({"f:data": {"f:a": {}}}));
    assert_eq!(
        list[1]["fieldsV1"],
        json!({"f:data": {".": {}, "f:b": {}}, "f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}}})
    );

    let mut drifted = live.clone();
    drifted["data"]["a"] = json!("5");
    let error = apply(
        Some(&drifted),
        config.as_bytes(),
        &context,
        "kubectl",
        false,
    )
    .unwrap_err();
    assert!(
        matches!(error, ApiError::ApplyConflict { .. }),
        "a value changed since the client-side apply is not kubectl's to take"
    );
}

#[test]
fn configurations_are_validated() {
    let schemas = schemas();
    let context = configmaps(&schemas);
    let error = |body: &str| {
        apply(None, body.as_bytes(), &context, "m", false)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        error("apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n"),
        "invalid object type: /v1, Kind=Secret"
    );
    assert_eq!(
        error("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  managedFields: []\n"),
        "metadata.managedFields must be nil"
    );
    assert_eq!(
        error("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: ns\nbogus: 1\n"),
        "failed to create typed patch object (ns/x; /v1, Kind=ConfigMap): .bogus: field not declared in schema"
    );
    assert!(error("[1, 2]").starts_with("error decoding YAML"));
    let status = apply(
        None,
        b"apiVersion: v1\nkind: ConfigMap\nbogus: 1\n",
        &context,
        "m",
        false,
    )
    .unwrap_err()
    .status();
    assert_eq!(
        (status["code"].as_u64(), status.get("reason")),
        (Some(500), None),
        "upstream reports typing failures without a reason"
    );
}

#[test]
fn updates_track_and_reset_managed_fields() {
    let schemas = schemas();
    let context = configmaps(&schemas);
    let mut created = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "uid": "u"}, "data": {"a": "1"}});
    track(None, &mut created, &context, "kubectl-create");
    assert_eq!(
        entries(&created),
        json!([{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {".": {}, "f:a": {}}}}])
    );

    let mut unchanged = created.clone();
    unchanged["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    track(Some(created.clone()), &mut unchanged, &context, "other");
    assert_eq!(
        unchanged["metadata"]["managedFields"], created["metadata"]["managedFields"],
        "a body without managedFields keeps the live ones"
    );

    let mut reset = created.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    track(Some(created.clone()), &mut reset, &context, "other");
    assert_eq!(
        reset["metadata"].get("managedFields"),
        None,
        "[{{}}] clears them"
    );
}

fn request(query: &str, agent: &str) -> ApiRequest {
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("user-agent", agent.parse().unwrap());
    ApiRequest {
        verb: Verb::Patch,
        namespace: None,
        name: Some("x".into()),
        subresource: None,
        query: Query::parse(Some(query)).unwrap(),
        output: Output::Json,
        headers,
        body: Default::default(),
        user: crate::authn::UserInfo::anonymous(),
    }
}

#[test]
fn field_managers_default_to_the_user_agent() {
    let agent = "kubectl/v1.33.0 (linux/amd64) kubernetes/abcdef";
    assert_eq!(
        field_manager(&request("", agent), "UpdateOptions", false).unwrap(),
        "kubectl"
    );
    assert_eq!(
        field_manager(&request("fieldManager=mine", agent), "UpdateOptions", false).unwrap(),
        "mine"
    );
    let error = field_manager(&request("", agent), "PatchOptions", true).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#
    );
    assert_eq!(error.status()["code"], 422);
    let error = field_manager(&request("force=true", agent), "PatchOptions", false).unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch"#
    );
    let long = "x".repeat(129);
    assert!(field_manager(
        &request(&format!("fieldManager={long}"), agent),
        "CreateOptions",
        false
    )
    .is_err());
}
