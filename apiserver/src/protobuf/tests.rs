use std::collections::BTreeMap;

use k8s_pb::api::{apps::v1 as apps, authorization::v1 as authz, coordination::v1 as coordination};
use k8s_pb::api::{core::v1 as core, policy::v1 as policy};
use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{json, Value};

use super::encode_tests::assert_round_trip;
use super::schema::{schema, FieldType};
use super::{decode, shapes, transcode, DecodeError};

/// The body client-go sends: magic, then runtime.Unknown around the object's own encoding.
fn body(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s(api_version),
            kind: s(kind),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: s(""),
        content_type: s(""),
    };
    [b"k8s\0".as_slice(), &unknown.encode_to_vec()].concat()
}

/// Decodes `object` sent as `api_version`/`kind`, checking the returned GVK and that the
/// encoder gives the same JSON back.
fn decoded(api_version: &str, kind: &str, object: &impl Message) -> Value {
    let (got_version, got_kind, json) = decode(&body(api_version, kind, object)).unwrap();
    assert_eq!(
        (got_version.as_str(), got_kind.as_str()),
        (api_version, kind)
    );
    assert_round_trip(&json);
    json
}

fn s(value: &str) -> Option<String> {
    Some(value.to_owned())
}

fn map<V>(pairs: &[(&str, V)]) -> BTreeMap<String, V>
where
    V: Clone,
{
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn quantity(value: &str) -> Quantity {
    Quantity { string: s(value) }
}

fn meta_named(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        ..Default::default()
    })
}

/// `kubectl create configmap foo --from-literal=a=b`, byte for byte as kubectl 1.33.1 sends it (checked
/// against a capture):
/// gogo-protobuf writes every non-pointer field of ObjectMeta (empty strings, generation 0, the
/// zero creationTimestamp as an empty message) and the Unknown's empty content fields.
pub(super) const KUBECTL_CREATE_CONFIGMAP: &[u8] = b"k8s\x00\
    \x0a\x0f\x0a\x02v1\x12\x09ConfigMap\
    \x12\x1d\
        \x0a\x13\x0a\x03foo\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\
        \x12\x06\x0a\x01a\x12\x01b\
    \x1a\x00\x22\x00";

#[test]
fn kubectl_create_configmap_bytes() {
    let (api_version, kind, json) = decode(KUBECTL_CREATE_CONFIGMAP).unwrap();
    assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "ConfigMap"));
    assert_eq!(
        json,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "foo", "generation": 0},
            "data": {"a": "b"},
        })
    );
    assert_round_trip(&json);
    let typed: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json).unwrap();
    assert_eq!(typed.data, Some(map(&[("a", "b".to_owned())])));
}

/// `kubectl create deployment nginx --image=nginx --replicas=2 --port=80` as kubectl 1.33.1 sent
/// it (captured). Go writes every non-pointer field, so the zeros and falses of non-pointer
/// `omitempty` fields (hostPort, stdin, paused, status counters, generation) come through, where
/// upstream's JSON would omit them; the zero creationTimestamp and empty strings do not.
pub(super) const KUBECTL_CREATE_DEPLOYMENT: &[u8] = b"\
    \x6b\x38\x73\x00\x0a\x15\x0a\x07\x61\x70\x70\x73\x2f\x76\x31\x12\x0a\x44\x65\x70\x6c\x6f\x79\x6d\
    \x65\x6e\x74\x12\xc0\x01\x0a\x23\x0a\x05\x6e\x67\x69\x6e\x78\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\
    \x00\x38\x00\x42\x00\x5a\x0c\x0a\x03\x61\x70\x70\x12\x05\x6e\x67\x69\x6e\x78\x12\x8a\x01\x08\x02\
    \x12\x0e\x0a\x0c\x0a\x03\x61\x70\x70\x12\x05\x6e\x67\x69\x6e\x78\x1a\x6e\x0a\x1e\x0a\x00\x12\x00\
    \x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x5a\x0c\x0a\x03\x61\x70\x70\x12\x05\x6e\x67\x69\
    \x6e\x78\x12\x4c\x12\x2e\x0a\x05\x6e\x67\x69\x6e\x78\x12\x05\x6e\x67\x69\x6e\x78\x2a\x00\x32\x0a\
    \x0a\x00\x10\x00\x18\x50\x22\x00\x2a\x00\x42\x00\x6a\x00\x72\x00\x80\x01\x00\x88\x01\x00\x90\x01\
    \x00\xa2\x01\x00\x1a\x00\x32\x00\x42\x00\x4a\x00\x52\x00\x58\x00\x60\x00\x68\x00\x82\x01\x00\x8a\
    \x01\x00\x9a\x01\x00\xc2\x01\x00\x22\x02\x0a\x00\x28\x00\x38\x00\x1a\x0c\x08\x00\x10\x00\x18\x00\
    \x20\x00\x28\x00\x38\x00\x1a\x00\x22\x00\
";

#[test]
fn kubectl_create_deployment_bytes() {
    let (_, _, json) = decode(KUBECTL_CREATE_DEPLOYMENT).unwrap();
    let labels = json!({"app": "nginx"});
    let metadata = json!({"name": "nginx", "labels": labels, "generation": 0});
    assert_eq!(
        json,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels, "generation": 0},
                    "spec": {
                        "containers": [{
                            "name": "nginx",
                            "image": "nginx",
                            "ports": [{"containerPort": 80, "hostPort": 0}],
                            "resources": {},
                            "stdin": false,
                            "stdinOnce": false,
                            "tty": false,
                        }],
                        "hostNetwork": false,
                        "hostPID": false,
                        "hostIPC": false,
                    },
                },
                "strategy": {},
                "minReadySeconds": 0,
                "paused": false,
            },
            "status": {
                "observedGeneration": 0,
                "replicas": 0,
                "updatedReplicas": 0,
                "readyReplicas": 0,
                "availableReplicas": 0,
                "unavailableReplicas": 0,
            },
        })
    );
    assert_round_trip(&json);
    let _: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json).unwrap();
}

/// `kubectl auth can-i create pods` as kubectl 1.33.1 sent it (captured).
pub(super) const KUBECTL_AUTH_CAN_I: &[u8] = b"\
    \x6b\x38\x73\x00\x0a\x32\x0a\x17\x61\x75\x74\x68\x6f\x72\x69\x7a\x61\x74\x69\x6f\x6e\x2e\x6b\x38\
    \x73\x2e\x69\x6f\x2f\x76\x31\x12\x17\x53\x65\x6c\x66\x53\x75\x62\x6a\x65\x63\x74\x41\x63\x63\x65\
    \x73\x73\x52\x65\x76\x69\x65\x77\x12\x3f\x0a\x10\x0a\x00\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\
    \x38\x00\x42\x00\x12\x21\x0a\x1f\x0a\x07\x64\x65\x66\x61\x75\x6c\x74\x12\x06\x63\x72\x65\x61\x74\
    \x65\x1a\x00\x22\x00\x2a\x04\x70\x6f\x64\x73\x32\x00\x3a\x00\x1a\x08\x08\x00\x12\x00\x1a\x00\x20\
    \x00\x1a\x00\x22\x00\
";

#[test]
fn kubectl_auth_can_i_bytes() {
    let (api_version, kind, json) = decode(KUBECTL_AUTH_CAN_I).unwrap();
    assert_eq!(
        (api_version.as_str(), kind.as_str()),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview")
    );
    assert_eq!(
        json,
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {"generation": 0},
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}},
            "status": {"allowed": false, "denied": false},
        })
    );
    assert_round_trip(&json);
    let _: k8s_openapi::api::authorization::v1::SelfSubjectAccessReview =
        serde_json::from_value(json).unwrap();
}

#[test]
fn deployment() {
    let labels = map(&[("app", "nginx".to_owned())]);
    let container = core::Container {
        name: s("nginx"),
        image: s("nginx:1.27"),
        ports: vec![core::ContainerPort {
            container_port: Some(80),
            protocol: s("TCP"),
            ..Default::default()
        }],
        env: vec![
            core::EnvVar {
                name: s("EMPTY"),
                value: s(""),
                ..Default::default()
            },
            core::EnvVar {
                name: s("POD"),
                value_from: Some(core::EnvVarSource {
                    field_ref: Some(core::ObjectFieldSelector {
                        field_path: s("metadata.name"),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ],
        resources: Some(core::ResourceRequirements {
            limits: map(&[("cpu", quantity("500m")), ("memory", quantity("128Mi"))]),
            requests: map(&[("cpu", quantity("250m"))]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let deployment = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: s("nginx"),
            labels: labels.clone(),
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: labels.clone(),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels,
                    creation_timestamp: Some(meta::Time::default()),
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![container],
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_surge: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("25%"),
                    }),
                    max_unavailable: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(1),
                        str_val: s(""),
                    }),
                }),
            }),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus::default()),
    };
    let json = decoded("apps/v1", "Deployment", &deployment);
    assert_eq!(
        json,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "nginx"}},
                "template": {
                    "metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{
                        "name": "nginx",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "env": [
                            {"name": "EMPTY"},
                            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        ],
                        "resources": {
                            "limits": {"cpu": "500m", "memory": "128Mi"},
                            "requests": {"cpu": "250m"},
                        },
                    }]},
                },
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            },
            "status": {},
        })
    );
    let typed: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json).unwrap();
    assert_eq!(typed.spec.unwrap().replicas, Some(0));
}

#[test]
fn secret_bytes_are_base64() {
    let secret = core::Secret {
        metadata: meta_named("creds"),
        data: map(&[("key", vec![0u8, 1, 2, 255]), ("empty", vec![])]),
        r#type: s("Opaque"),
        ..Default::default()
    };
    let json = decoded("v1", "Secret", &secret);
    assert_eq!(
        json,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "data": {"key": "AAEC/w==", "empty": ""},
            "type": "Opaque",
        })
    );
    let typed: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json).unwrap();
    assert_eq!(typed.data.unwrap()["key"].0, vec![0, 1, 2, 255]);
}

#[test]
fn namespace() {
    let namespace = core::Namespace {
        metadata: meta_named("team-a"),
        spec: Some(core::NamespaceSpec::default()),
        status: Some(core::NamespaceStatus::default()),
    };
    let json = decoded("v1", "Namespace", &namespace);
    assert_eq!(
        json,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}, "spec": {}, "status": {}})
    );
    let _: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(json).unwrap();
}

#[test]
fn service_with_int_target_port() {
    let service = core::Service {
        metadata: meta_named("web"),
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                name: s("80-8080"),
                protocol: s("TCP"),
                port: Some(80),
                target_port: Some(IntOrString {
                    r#type: Some(0),
                    int_val: Some(8080),
                    str_val: s(""),
                }),
                node_port: Some(0),
                ..Default::default()
            }],
            selector: map(&[("app", "web".to_owned())]),
            r#type: s("ClusterIP"),
            ..Default::default()
        }),
        status: None,
    };
    let json = decoded("v1", "Service", &service);
    assert_eq!(
        json,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {
                "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 0}],
                "selector": {"app": "web"},
                "type": "ClusterIP",
            },
        })
    );
    let _: k8s_openapi::api::core::v1::Service = serde_json::from_value(json).unwrap();
}

#[test]
fn pod_with_time_and_embedded_structs() {
    let pod = core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: s("p"),
            namespace: s("default"),
            // Upstream's Time unmarshal drops the nanos.
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_704_164_645),
                nanos: Some(5),
            }),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: s("c"),
                image: s("busybox"),
                command: vec!["sh".into(), "-c".into(), String::new()],
                readiness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        http_get: Some(core::HttpGetAction {
                            path: s("/healthz"),
                            port: Some(IntOrString {
                                r#type: Some(1),
                                int_val: None,
                                str_val: s("http"),
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    period_seconds: Some(5),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            volumes: vec![core::Volume {
                name: s("cfg"),
                volume_source: Some(core::VolumeSource {
                    config_map: Some(core::ConfigMapVolumeSource {
                        local_object_reference: Some(core::LocalObjectReference { name: s("foo") }),
                        default_mode: Some(0o644),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            security_context: Some(core::PodSecurityContext {
                run_as_user: Some(0),
                supplemental_groups: vec![1, 2],
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    };
    let json = decoded("v1", "Pod", &pod);
    assert_eq!(
        json,
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "creationTimestamp": "2024-01-02T03:04:05Z"},
            "spec": {
                "containers": [{
                    "name": "c",
                    "image": "busybox",
                    "command": ["sh", "-c", ""],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
                }],
                "volumes": [{"name": "cfg", "configMap": {"name": "foo", "defaultMode": 420}}],
                "securityContext": {"runAsUser": 0, "supplementalGroups": [1, 2]},
            },
        })
    );
    let _: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json).unwrap();
}

#[test]
fn eviction_with_delete_options() {
    let eviction = policy::Eviction {
        metadata: Some(meta::ObjectMeta {
            name: s("p"),
            namespace: s("default"),
            ..Default::default()
        }),
        delete_options: Some(meta::DeleteOptions {
            grace_period_seconds: Some(0),
            preconditions: Some(meta::Preconditions {
                uid: s("1234"),
                resource_version: None,
            }),
            dry_run: vec!["All".into()],
            ..Default::default()
        }),
    };
    let json = decoded("policy/v1", "Eviction", &eviction);
    assert_eq!(
        json,
        json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": "p", "namespace": "default"},
            "deleteOptions": {"gracePeriodSeconds": 0, "preconditions": {"uid": "1234"}, "dryRun": ["All"]},
        })
    );
    let _: k8s_openapi::api::policy::v1::Eviction = serde_json::from_value(json).unwrap();
}

#[test]
fn self_subject_access_review() {
    let review = authz::SelfSubjectAccessReview {
        metadata: Some(meta::ObjectMeta::default()),
        spec: Some(authz::SelfSubjectAccessReviewSpec {
            resource_attributes: Some(authz::ResourceAttributes {
                namespace: s("default"),
                verb: s("create"),
                group: s(""),
                resource: s("pods"),
                ..Default::default()
            }),
            non_resource_attributes: None,
        }),
        status: Some(authz::SubjectAccessReviewStatus {
            allowed: Some(false),
            ..Default::default()
        }),
    };
    let json = decoded(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &review,
    );
    assert_eq!(
        json,
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {},
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}},
            "status": {"allowed": false},
        })
    );
    let _: k8s_openapi::api::authorization::v1::SelfSubjectAccessReview =
        serde_json::from_value(json).unwrap();
}

#[test]
fn extra_values_are_bare_arrays() {
    let review = authz::SubjectAccessReview {
        spec: Some(authz::SubjectAccessReviewSpec {
            user: s("alice"),
            extra: map(&[
                (
                    "scopes",
                    authz::ExtraValue {
                        items: vec!["a".into(), "b".into()],
                    },
                ),
                ("none", authz::ExtraValue { items: vec![] }),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let json = decoded("authorization.k8s.io/v1", "SubjectAccessReview", &review);
    assert_eq!(
        json["spec"],
        json!({"user": "alice", "extra": {"scopes": ["a", "b"], "none": []}})
    );
    let _: k8s_openapi::api::authorization::v1::SubjectAccessReview =
        serde_json::from_value(json).unwrap();
}

#[test]
fn delete_options_in_any_group_version() {
    let options = meta::DeleteOptions {
        propagation_policy: s("Background"),
        ..Default::default()
    };
    for api_version in ["meta.k8s.io/v1", "v1", "apps/v1"] {
        let json = decoded(api_version, "DeleteOptions", &options);
        assert_eq!(
            json,
            json!({"apiVersion": api_version, "kind": "DeleteOptions", "propagationPolicy": "Background"})
        );
    }
}

#[test]
fn lease_micro_time() {
    let lease = coordination::Lease {
        metadata: meta_named("kube-controller-manager"),
        spec: Some(coordination::LeaseSpec {
            holder_identity: s("node-1"),
            lease_duration_seconds: Some(15),
            acquire_time: Some(meta::MicroTime {
                seconds: Some(1_704_164_645),
                nanos: Some(0),
            }),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_704_164_645),
                nanos: Some(123_456_789),
            }),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    };
    let json = decoded("coordination.k8s.io/v1", "Lease", &lease);
    assert_eq!(
        json["spec"],
        json!({
            "holderIdentity": "node-1",
            "leaseDurationSeconds": 15,
            "acquireTime": "2024-01-02T03:04:05.000000Z",
            "renewTime": "2024-01-02T03:04:05.123456Z",
            "leaseTransitions": 0,
        })
    );
    let _: k8s_openapi::api::coordination::v1::Lease = serde_json::from_value(json).unwrap();
}

#[test]
fn raw_json_fields() {
    let revision = apps::ControllerRevision {
        metadata: Some(meta::ObjectMeta {
            name: s("rev"),
            managed_fields: vec![meta::ManagedFieldsEntry {
                manager: s("kubectl"),
                operation: s("Update"),
                api_version: s("apps/v1"),
                time: Some(meta::Time {
                    seconds: Some(0),
                    nanos: Some(0),
                }),
                fields_type: s("FieldsV1"),
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(br#"{"f:data":{}}"#.to_vec()),
                }),
                subresource: s(""),
            }],
            ..Default::default()
        }),
        data: Some(RawExtension {
            raw: Some(br#"{"spec":{"x":[1,"y"]}}"#.to_vec()),
        }),
        revision: Some(3),
    };
    let json = decoded("apps/v1", "ControllerRevision", &revision);
    assert_eq!(
        json,
        json!({
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {"name": "rev", "managedFields": [{
                "manager": "kubectl",
                "operation": "Update",
                "apiVersion": "apps/v1",
                "time": "1970-01-01T00:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {}},
            }]},
            "data": {"spec": {"x": [1, "y"]}},
            "revision": 3,
        })
    );
    let _: k8s_openapi::api::apps::v1::ControllerRevision = serde_json::from_value(json).unwrap();
}

#[test]
fn crd_schema_shapes() {
    let string_schema = apiext::JsonSchemaProps {
        r#type: s("string"),
        r#enum: vec![apiext::Json {
            raw: Some(br#""a""#.to_vec()),
        }],
        ..Default::default()
    };
    let open_api_v3_schema = apiext::JsonSchemaProps {
        r#type: s("object"),
        properties: map(&[
            (
                "spec",
                apiext::JsonSchemaProps {
                    r#type: s("object"),
                    x_kubernetes_preserve_unknown_fields: Some(true),
                    default: Some(apiext::Json {
                        raw: Some(br#"{"a":1}"#.to_vec()),
                    }),
                    ..Default::default()
                },
            ),
            (
                "tags",
                apiext::JsonSchemaProps {
                    r#type: s("array"),
                    items: Some(Box::new(apiext::JsonSchemaPropsOrArray {
                        schema: Some(Box::new(string_schema.clone())),
                        j_son_schemas: vec![],
                    })),
                    ..Default::default()
                },
            ),
            (
                "pair",
                apiext::JsonSchemaProps {
                    r#type: s("array"),
                    items: Some(Box::new(apiext::JsonSchemaPropsOrArray {
                        schema: None,
                        j_son_schemas: vec![string_schema.clone(), string_schema],
                    })),
                    ..Default::default()
                },
            ),
        ]),
        additional_properties: Some(Box::new(apiext::JsonSchemaPropsOrBool {
            allows: Some(false),
            schema: None,
        })),
        ..Default::default()
    };
    let crd = apiext::CustomResourceDefinition {
        metadata: meta_named("widgets.example.com"),
        spec: Some(apiext::CustomResourceDefinitionSpec {
            group: s("example.com"),
            names: Some(apiext::CustomResourceDefinitionNames {
                plural: s("widgets"),
                kind: s("Widget"),
                ..Default::default()
            }),
            scope: s("Namespaced"),
            versions: vec![apiext::CustomResourceDefinitionVersion {
                name: s("v1"),
                served: Some(true),
                storage: Some(true),
                schema: Some(apiext::CustomResourceValidation {
                    open_apiv3_schema: Some(open_api_v3_schema),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let json = decoded("apiextensions.k8s.io/v1", "CustomResourceDefinition", &crd);
    let string_json = json!({"type": "string", "enum": ["a"]});
    assert_eq!(
        json["spec"]["versions"][0]["schema"],
        json!({"openAPIV3Schema": {
            "type": "object",
            "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "default": {"a": 1}},
                "tags": {"type": "array", "items": string_json},
                "pair": {"type": "array", "items": [string_json, string_json]},
            },
            "additionalProperties": false,
        }})
    );
    assert_eq!(
        json["spec"]["names"],
        json!({"plural": "widgets", "kind": "Widget"})
    );
    let _: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_json::from_value(json).unwrap();
}

#[test]
fn times_render_like_go() {
    let timestamp = |seconds: i64, nanos: i32| {
        meta::Time {
            seconds: Some(seconds),
            nanos: Some(nanos),
        }
        .encode_to_vec()
    };
    assert_eq!(shapes::time(&[]).unwrap(), None);
    assert_eq!(
        shapes::time(&timestamp(-62_135_596_800, 0)).unwrap(),
        Some(json!("0001-01-01T00:00:00Z"))
    );
    assert_eq!(
        shapes::time(&timestamp(253_402_300_799, 999)).unwrap(),
        Some(json!("9999-12-31T23:59:59Z"))
    );
    assert_eq!(
        shapes::micro_time(&timestamp(1, -1)).unwrap(),
        Some(json!("1970-01-01T00:00:00.999999Z"))
    );
    assert_eq!(
        shapes::micro_time(&timestamp(0, 1_500_000_000)).unwrap(),
        Some(json!("1970-01-01T00:00:01.500000Z"))
    );
    assert!(shapes::micro_time(&timestamp(-62_167_219_201, 0)).is_err());
}

/// Encodes one length-delimited field.
fn length_delimited(tag: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 128);
    [&[tag << 3 | 2, payload.len() as u8][..], payload].concat()
}

/// The envelope around hand-made object bytes.
fn raw_body(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s(api_version),
            kind: s(kind),
        }),
        raw: Some(raw.to_vec()),
        ..Default::default()
    };
    [b"k8s\0".as_slice(), &unknown.encode_to_vec()].concat()
}

#[test]
fn unknown_tags_are_skipped_and_repeats_merge() {
    let name = length_delimited(1, b"\x0a\x01x");
    let namespace = length_delimited(1, b"\x1a\x02ns");
    let raw = [
        name.as_slice(),
        b"\xf8\x06\x07",             // field 111, varint
        b"\x9d\x07\x01\x02\x03\x04", // field 115, fixed32
        b"\x9b\x07\x08\x01\x9c\x07", // field 115, a group holding a varint
        &namespace,
        &length_delimited(2, b"\x0a\x01k\x12\x01v"),
    ]
    .concat();
    let (_, _, json) = decode(&raw_body("v1", "ConfigMap", &raw)).unwrap();
    assert_eq!(
        json,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "ns"}, "data": {"k": "v"}})
    );
}

#[test]
fn packed_repeated_scalars() {
    // Pod.spec (2) → PodSpec.securityContext (14) → supplementalGroups (4), sent packed and then
    // unpacked: both forms land in one list.
    let security_context = [&b"\x22\x02\x01\x02"[..], b"\x20\x03"].concat();
    let spec = length_delimited(14, &security_context);
    let raw = length_delimited(2, &spec);
    let (_, _, json) = decode(&raw_body("v1", "Pod", &raw)).unwrap();
    assert_eq!(
        json["spec"]["securityContext"]["supplementalGroups"],
        json!([1, 2, 3])
    );
    assert_round_trip(&json);
}

#[test]
fn api_version_is_canonicalized() {
    let (api_version, _, json) = decode(&raw_body("/v1", "ConfigMap", b"")).unwrap();
    assert_eq!(api_version, "v1");
    assert_eq!(json, json!({"apiVersion": "v1", "kind": "ConfigMap"}));
}

#[test]
fn errors_read_like_upstream() {
    let error = |body: &[u8]| decode(body).unwrap_err().to_string();
    assert_eq!(error(b""), "empty data");
    assert_eq!(error(b"k8s\0"), "empty body");
    assert_eq!(
        error(b"{\"kind\":\"ConfigMap\"}"),
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    );
    assert_eq!(
        error(&raw_body("v1", "", b"")),
        r#"Object 'Kind' is missing in 'runtime.TypeMeta{APIVersion:"v1", Kind:""}'"#
    );
    assert_eq!(
        error(&raw_body("a/b/c", "Pod", b"")),
        r#"Object 'apiVersion' is missing in 'runtime.TypeMeta{APIVersion:"a/b/c", Kind:"Pod"}'"#
    );
    assert_eq!(
        error(&raw_body("v1", "Foo", b"")),
        r#"no kind "Foo" is registered for version "v1" in scheme "k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30""#
    );
    assert_eq!(
        error(&raw_body("apps/v1", "ConfigMap", b"")),
        r#"no kind "ConfigMap" is registered for version "apps/v1" in scheme "k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30""#
    );
    assert_eq!(
        error(&raw_body("v1", "ConfigMap", b"\x0a\x05\x0a\x03fo")),
        "unexpected EOF"
    );
    assert_eq!(
        error(&raw_body("v1", "ConfigMap", b"\x08\x01")),
        "proto: wrong wireType = 0 for field metadata"
    );
    assert_eq!(
        error(&raw_body("v1", "ConfigMap", b"\x00\x01")),
        "proto: illegal tag 0 (wire type 0)"
    );
    assert_eq!(
        error(&raw_body(
            "v1",
            "ConfigMap",
            b"\x20\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"
        )),
        "proto: integer overflow"
    );
    assert!(matches!(
        decode(&raw_body("v1", "ConfigMap", b"\x0a\x02\x42\x00\x0f")),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn invalid_values_are_refused() {
    let intstr = b"\x08\x07"; // IntOrString type 7
    let port = length_delimited(4, intstr);
    let spec = length_delimited(1, &port);
    let raw = length_delimited(2, &spec);
    let error = decode(&raw_body("v1", "Service", &raw)).unwrap_err();
    assert_eq!(error.to_string(), "impossible IntOrString.Type 7");

    let year_10000 = meta::Time {
        seconds: Some(253_402_300_800),
        nanos: None,
    };
    let metadata = meta::ObjectMeta {
        creation_timestamp: Some(year_10000),
        ..Default::default()
    };
    let config_map = core::ConfigMap {
        metadata: Some(metadata),
        ..Default::default()
    };
    let error = decode(&body("v1", "ConfigMap", &config_map)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Time.MarshalJSON: year outside of range [0,9999]"
    );

    let revision = apps::ControllerRevision {
        data: Some(RawExtension {
            raw: Some(b"k8s\0\x01".to_vec()),
        }),
        ..Default::default()
    };
    assert!(matches!(
        decode(&body("apps/v1", "ControllerRevision", &revision)),
        Err(DecodeError::Invalid(_))
    ));
}

/// Appends a protobuf varint.
fn varint(mut value: usize, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// `levels` JSONSchemaProps nested through `wrap`, innermost `{"type": "object"}`.
fn nested_schema(levels: usize, wrap: impl Fn(Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    (0..levels).fold(b"\x2a\x06object".to_vec(), |inner, _| wrap(inner))
}

/// One length-delimited field, its key already encoded.
fn field(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = key.to_vec();
    varint(payload.len(), &mut out);
    out.extend_from_slice(payload);
    out
}

/// Nesting stops at the depth limit, well within the 2 MiB stack of a tokio worker, on each
/// recursive path: a singular message, a map value, a shaped message holding a message.
#[test]
fn deep_nesting_is_refused() {
    let not = |inner: Vec<u8>| field(b"\xe2\x01", &inner); // not = 28
    let property = |inner: Vec<u8>| {
        field(
            b"\xea\x01",
            &[&b"\x0a\x01p"[..], &field(b"\x12", &inner)].concat(),
        )
    };
    let items = |inner: Vec<u8>| field(b"\xc2\x01", &field(b"\x0a", &inner)); // items = 24, its schema = 1
    let shallow = [
        nested_schema(10, not),
        nested_schema(10, property),
        nested_schema(10, items),
    ];
    let deep = [
        nested_schema(300, not),
        nested_schema(300, property),
        nested_schema(300, items),
    ];
    let name = "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps";
    let results = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let decode = |data: &[u8]| transcode::object(name, data, 0);
            (
                shallow.map(|data| decode(&data).is_ok()),
                deep.map(|data| decode(&data).unwrap_err()),
            )
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(
        results,
        (
            [true; 3],
            [
                DecodeError::TooDeep(100),
                DecodeError::TooDeep(100),
                DecodeError::TooDeep(100)
            ]
        )
    );
}

/// Tiny deterministic xorshift, to fuzz without a dependency.
pub(super) fn pseudo_random(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn never_panics_on_damaged_bodies() {
    let service = core::Service {
        metadata: meta_named("web"),
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                port: Some(80),
                target_port: Some(IntOrString {
                    r#type: Some(1),
                    int_val: None,
                    str_val: s("http"),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let bodies = [
        KUBECTL_CREATE_CONFIGMAP.to_vec(),
        KUBECTL_CREATE_DEPLOYMENT.to_vec(),
        KUBECTL_AUTH_CAN_I.to_vec(),
        body("v1", "Service", &service),
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for valid in &bodies {
        for end in 0..valid.len() {
            let _ = decode(&valid[..end]);
        }
        for _ in 0..2000 {
            let mut damaged = valid.clone();
            let at = pseudo_random(&mut seed) as usize % damaged.len();
            damaged[at] = pseudo_random(&mut seed) as u8;
            let _ = decode(&damaged);
        }
    }
    for _ in 0..2000 {
        let length = pseudo_random(&mut seed) as usize % 64;
        let garbage: Vec<u8> = (0..length)
            .map(|_| pseudo_random(&mut seed) as u8)
            .collect();
        let _ = decode(&[b"k8s\0".as_slice(), &garbage].concat());
        let _ = decode(&raw_body("v1", "Pod", &garbage));
    }
}

#[test]
fn schema_is_consistent() {
    for (name, message) in schema().messages() {
        for (tag, field) in message.fields() {
            if let FieldType::Message(type_name) = &field.ty {
                assert!(
                    schema().message(type_name).is_some() || schema().shape(type_name).is_some(),
                    "{name} field {tag} refers to unknown message {type_name}"
                );
            }
        }
    }
    for (api_version, kind, message) in schema().kinds() {
        assert!(
            schema().message(message).is_some(),
            "{api_version} {kind} → {message}"
        );
        let (_, _, json) = decode(&raw_body(api_version, kind, b"")).unwrap();
        assert_eq!(json, json!({"apiVersion": api_version, "kind": kind}));
        assert_round_trip(&json);
    }
}

fn assert_served<T: k8s_pb::Resource>() {
    assert!(
        schema().kind_message(T::API_VERSION, T::KIND).is_some(),
        "{} {} is not served",
        T::API_VERSION,
        T::KIND
    );
}

#[test]
fn k8s_pb_kinds_are_served() {
    assert_served::<core::Pod>();
    assert_served::<core::Binding>();
    assert_served::<core::PersistentVolumeClaim>();
    assert_served::<apps::StatefulSet>();
    assert_served::<k8s_pb::api::batch::v1::CronJob>();
    assert_served::<k8s_pb::api::rbac::v1::ClusterRoleBinding>();
    assert_served::<k8s_pb::api::networking::v1::IPAddress>();
    assert_served::<k8s_pb::api::discovery::v1::EndpointSlice>();
    assert_served::<k8s_pb::api::events::v1::Event>();
    assert_served::<k8s_pb::api::storage::v1::CSIDriver>();
    assert_served::<k8s_pb::api::flowcontrol::v1::FlowSchema>();
    assert_served::<k8s_pb::api::apiserverinternal::v1alpha1::StorageVersion>();
    assert_served::<k8s_pb::api::admissionregistration::v1::ValidatingAdmissionPolicy>();
    assert_served::<k8s_pb::kube_aggregator::pkg::apis::apiregistration::v1::APIService>();
    assert_served::<apiext::CustomResourceDefinition>();
    assert_served::<coordination::Lease>();
    assert_served::<authz::SelfSubjectAccessReview>();
}
