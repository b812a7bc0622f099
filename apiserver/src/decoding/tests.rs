use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::{coordination, discovery, events, scheduling};
use k8s_pb::api::apps::v1 as pb_apps;
use k8s_pb::api::core::v1 as pb_core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::*;

/// The body client-go sends: magic, then runtime.Unknown around the object's own encoding.
fn protobuf(api_version: &str, kind: &str, object: &impl Message) -> Value {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: None,
        content_type: None,
    };
    let body = [b"k8s\0".as_slice(), &unknown.encode_to_vec()].concat();
    crate::protobuf::decode(&body).unwrap().2
}

fn named(name: &str) -> Option<pb_meta::ObjectMeta> {
    Some(pb_meta::ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    })
}

/// Decodes like a request body, then encodes like storage does.
fn round_trip<T: DeserializeOwned + Serialize>(input: Value) -> (T, Value) {
    let (object, unknown) = decode::<T>(input, true).unwrap();
    assert_eq!(unknown, Vec::<String>::new());
    let Value::Object(mut encoded) = serde_json::to_value(&object).unwrap() else {
        panic!("objects encode as JSON objects");
    };
    go_encode(&mut encoded);
    (object, Value::Object(encoded))
}

/// A minimal object of every served kind, plus what its validation needs, decodes from JSON,
/// YAML and protobuf alike.
#[test]
fn minimal_objects_decode_in_every_encoding() {
    fn check<T: DeserializeOwned + Serialize>(json: Value, protobuf: Value) {
        let yaml = crate::yaml::to_json(crate::yaml::from_json(&json).unwrap().as_bytes()).unwrap();
        let (_, from_json) = round_trip::<T>(json);
        let (_, from_yaml) = round_trip::<T>(yaml);
        let (_, from_protobuf) = round_trip::<T>(protobuf);
        assert_eq!(from_json, from_yaml);
        assert_eq!(from_json, from_protobuf);
    }
    let minimal = |api_version: &str, kind: &str| json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}});
    check::<core::Namespace>(
        minimal("v1", "Namespace"),
        protobuf(
            "v1",
            "Namespace",
            &pb_core::Namespace {
                metadata: named("x"),
                ..Default::default()
            },
        ),
    );
    check::<core::ConfigMap>(
        minimal("v1", "ConfigMap"),
        protobuf(
            "v1",
            "ConfigMap",
            &pb_core::ConfigMap {
                metadata: named("x"),
                ..Default::default()
            },
        ),
    );
    check::<core::Secret>(
        minimal("v1", "Secret"),
        protobuf(
            "v1",
            "Secret",
            &pb_core::Secret {
                metadata: named("x"),
                ..Default::default()
            },
        ),
    );
    check::<core::ServiceAccount>(
        minimal("v1", "ServiceAccount"),
        protobuf(
            "v1",
            "ServiceAccount",
            &pb_core::ServiceAccount {
                metadata: named("x"),
                ..Default::default()
            },
        ),
    );
    check::<core::Endpoints>(
        minimal("v1", "Endpoints"),
        protobuf(
            "v1",
            "Endpoints",
            &pb_core::Endpoints {
                metadata: named("x"),
                ..Default::default()
            },
        ),
    );
    check::<core::Node>(
        minimal("v1", "Node"),
        protobuf(
            "v1",
            "Node",
            &pb_core::Node {
                metadata: named("x"),
                ..Default::default()
            },
        ),
    );
    check::<core::Service>(
        minimal("v1", "Service"),
        protobuf(
            "v1",
            "Service",
            &pb_core::Service {
                metadata: named("x"),
                ..Default::default()
            },
        ),
    );
    check::<core::Event>(
        minimal("v1", "Event"),
        protobuf(
            "v1",
            "Event",
            &pb_core::Event {
                metadata: named("x"),
                ..Default::default()
            },
        ),
    );
    check::<core::Pod>(
        minimal("v1", "Pod"),
        protobuf(
            "v1",
            "Pod",
            &pb_core::Pod {
                metadata: named("x"),
                ..Default::default()
            },
        ),
    );
    check::<apps::Deployment>(
        minimal("apps/v1", "Deployment"),
        protobuf(
            "apps/v1",
            "Deployment",
            &pb_apps::Deployment {
                metadata: named("x"),
                ..Default::default()
            },
        ),
    );
    check::<apps::ReplicaSet>(
        minimal("apps/v1", "ReplicaSet"),
        protobuf(
            "apps/v1",
            "ReplicaSet",
            &pb_apps::ReplicaSet {
                metadata: named("x"),
                ..Default::default()
            },
        ),
    );
    check::<coordination::v1::Lease>(
        minimal("coordination.k8s.io/v1", "Lease"),
        protobuf(
            "coordination.k8s.io/v1",
            "Lease",
            &k8s_pb::api::coordination::v1::Lease {
                metadata: named("x"),
                ..Default::default()
            },
        ),
    );
    check::<discovery::v1::EndpointSlice>(
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "x"}, "addressType": "IPv4"}),
        protobuf(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            &k8s_pb::api::discovery::v1::EndpointSlice {
                metadata: named("x"),
                address_type: Some("IPv4".into()),
                ..Default::default()
            },
        ),
    );
    check::<events::v1::Event>(
        minimal("events.k8s.io/v1", "Event"),
        protobuf(
            "events.k8s.io/v1",
            "Event",
            &k8s_pb::api::events::v1::Event {
                metadata: named("x"),
                ..Default::default()
            },
        ),
    );
    check::<scheduling::v1::PriorityClass>(
        minimal("scheduling.k8s.io/v1", "PriorityClass"),
        protobuf(
            "scheduling.k8s.io/v1",
            "PriorityClass",
            &k8s_pb::api::scheduling::v1::PriorityClass {
                metadata: named("x"),
                ..Default::default()
            },
        ),
    );
}

#[test]
fn every_served_kind_is_described() {
    let mut kinds: Vec<&str> = types::go_types().kinds().collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "apps/v1/ControllerRevision",
            "apps/v1/DaemonSet",
            "apps/v1/Deployment",
            "apps/v1/ReplicaSet",
            "apps/v1/StatefulSet",
            "autoscaling/v1/HorizontalPodAutoscaler",
            "autoscaling/v2/HorizontalPodAutoscaler",
            "batch/v1/CronJob",
            "batch/v1/Job",
            "certificates.k8s.io/v1/CertificateSigningRequest",
            "coordination.k8s.io/v1/Lease",
            "discovery.k8s.io/v1/EndpointSlice",
            "events.k8s.io/v1/Event",
            "policy/v1/PodDisruptionBudget",
            "rbac.authorization.k8s.io/v1/ClusterRole",
            "rbac.authorization.k8s.io/v1/ClusterRoleBinding",
            "rbac.authorization.k8s.io/v1/Role",
            "rbac.authorization.k8s.io/v1/RoleBinding",
            "scheduling.k8s.io/v1/PriorityClass",
            "v1/Binding",
            "v1/ConfigMap",
            "v1/Endpoints",
            "v1/Event",
            "v1/Namespace",
            "v1/Node",
            "v1/PersistentVolumeClaim",
            "v1/Pod",
            "v1/PodTemplate",
            "v1/ReplicationController",
            "v1/Secret",
            "v1/Service",
            "v1/ServiceAccount",
        ]
    );
}

/// client-go sends the zero metav1.Time, which protobuf leaves out; a client may leave it out
/// of JSON. Upstream decodes both, and writes the zero time as null.
#[test]
fn conditions_without_transition_time_decode() {
    let condition = json!({"type": "Ready", "status": "True", "reason": "Fine", "message": ""});
    let json = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
        "status": {"conditions": [condition]},
    });
    let pb = protobuf(
        "v1",
        "Service",
        &pb_core::Service {
            metadata: named("x"),
            status: Some(pb_core::ServiceStatus {
                conditions: vec![pb_meta::Condition {
                    r#type: Some("Ready".into()),
                    status: Some("True".into()),
                    reason: Some("Fine".into()),
                    last_transition_time: Some(pb_meta::Time::default()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    for input in [json, pb] {
        let (_, encoded) = round_trip::<core::Service>(input);
        assert_eq!(
            encoded["status"],
            json!({
                "loadBalancer": {},
                "conditions": [{"type": "Ready", "status": "True", "reason": "Fine", "message": "", "lastTransitionTime": null}],
            })
        );
        let stored: core::Service = from_stored(&serde_json::to_vec(&encoded).unwrap()).unwrap();
        let conditions = stored.status.unwrap().conditions.unwrap();
        assert_eq!(conditions[0].reason, "Fine");
    }
}

/// What `kubectl create deployment` sends as protobuf holds every non-pointer zero value;
/// upstream stores and returns what its JSON encoding of the Go struct writes.
#[test]
fn protobuf_zero_values_encode_like_go() {
    let labels = std::collections::BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    let meta = pb_meta::ObjectMeta {
        labels: labels.clone(),
        generation: Some(0),
        ..Default::default()
    };
    let deployment = pb_apps::Deployment {
        metadata: Some(pb_meta::ObjectMeta {
            name: Some("web".into()),
            ..meta.clone()
        }),
        spec: Some(pb_apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(pb_meta::LabelSelector {
                match_labels: labels,
                ..Default::default()
            }),
            template: Some(pb_core::PodTemplateSpec {
                metadata: Some(meta),
                spec: Some(pb_core::PodSpec {
                    containers: vec![pb_core::Container {
                        name: Some("nginx".into()),
                        image: Some("nginx".into()),
                        ports: vec![pb_core::ContainerPort {
                            container_port: Some(80),
                            host_port: Some(0),
                            ..Default::default()
                        }],
                        resources: Some(Default::default()),
                        stdin: Some(false),
                        stdin_once: Some(false),
                        tty: Some(false),
                        ..Default::default()
                    }],
                    host_network: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(Default::default()),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(pb_apps::DeploymentStatus {
            observed_generation: Some(0),
            replicas: Some(0),
            ..Default::default()
        }),
    };
    let (object, encoded) =
        round_trip::<apps::Deployment>(protobuf("apps/v1", "Deployment", &deployment));
    assert_eq!(object.spec.as_ref().unwrap().paused, None);
    assert_eq!(
        encoded,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "creationTimestamp": null},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                    "spec": {"containers": [{
                        "name": "nginx",
                        "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "resources": {},
                    }]},
                },
                "strategy": {},
            },
            "status": {},
        })
    );
}

#[test]
fn nil_fields_without_omitempty_are_null_and_zero_scalars_are_written() {
    let (_, encoded) = round_trip::<core::Event>(json!({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "x"},
    }));
    assert_eq!(
        encoded,
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "x", "creationTimestamp": null},
            "involvedObject": {},
            "source": {},
            "firstTimestamp": null,
            "lastTimestamp": null,
            "eventTime": null,
            "reportingComponent": "",
            "reportingInstance": "",
        })
    );
}

#[test]
fn unknown_fields_are_found_through_the_typed_object() {
    let (_, unknown) = decode::<apps::Deployment>(
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "foo": 1},
            "spec": {"foo": 1, "template": {"metadata": {"foo": 1}}},
        }),
        true,
    )
    .unwrap();
    assert_eq!(
        unknown,
        ["metadata.foo", "spec.foo", "spec.template.metadata.foo"]
    );
    let (_, ignored) = decode::<apps::Deployment>(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"foo": 1}}),
        false,
    )
    .unwrap();
    assert!(ignored.is_empty());
}

#[test]
fn yaml_repeats_come_first_then_unknown_fields() {
    let body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\nfoo: 1\n";
    assert_eq!(
        Source::Yaml(body).problems(vec!["foo".into()]),
        [
            "yaml: unmarshal errors:\n  line 5: key \"name\" already set in map",
            "unknown field \"foo\"",
        ]
    );
    assert_eq!(
        Source::Other.problems(vec!["foo".into()]),
        ["unknown field \"foo\""]
    );
}

/// What Go writes for a minimal object of each kind added after the first ones decodes again
/// without unknown fields and encodes unchanged. Pod templates hold a container: a template
/// left out is written with Go's nil `containers: null`, which k8s-openapi reads back as an
/// empty list.
#[test]
fn encoded_objects_decode_and_encode_unchanged() {
    fn check<T: DeserializeOwned + Serialize>(input: Value) {
        let (_, encoded) = round_trip::<T>(input);
        let (_, again) = round_trip::<T>(encoded.clone());
        assert_eq!(encoded, again);
    }
    use k8s_openapi::api::{autoscaling, batch, certificates, policy, rbac};
    let object = |api_version: &str, kind: &str, fields: Value| {
        let mut object =
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}});
        if let (Value::Object(object), Value::Object(fields)) = (&mut object, fields) {
            object.extend(fields);
        }
        object
    };
    let minimal = |api_version: &str, kind: &str| object(api_version, kind, json!({}));
    let template = json!({"spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let with_template = json!({"spec": {"template": template}});
    check::<core::ReplicationController>(minimal("v1", "ReplicationController"));
    check::<core::PodTemplate>(object("v1", "PodTemplate", json!({"template": template})));
    check::<core::PersistentVolumeClaim>(minimal("v1", "PersistentVolumeClaim"));
    check::<apps::StatefulSet>(object("apps/v1", "StatefulSet", with_template.clone()));
    check::<apps::DaemonSet>(object("apps/v1", "DaemonSet", with_template.clone()));
    check::<apps::ControllerRevision>(minimal("apps/v1", "ControllerRevision"));
    check::<batch::v1::Job>(object("batch/v1", "Job", with_template.clone()));
    check::<batch::v1::CronJob>(object(
        "batch/v1",
        "CronJob",
        json!({"spec": {"schedule": "@daily", "jobTemplate": with_template}}),
    ));
    check::<policy::v1::PodDisruptionBudget>(minimal("policy/v1", "PodDisruptionBudget"));
    check::<autoscaling::v1::HorizontalPodAutoscaler>(minimal(
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
    ));
    check::<autoscaling::v2::HorizontalPodAutoscaler>(minimal(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
    ));
    let rbac = "rbac.authorization.k8s.io/v1";
    check::<rbac::v1::Role>(minimal(rbac, "Role"));
    check::<rbac::v1::ClusterRole>(minimal(rbac, "ClusterRole"));
    check::<rbac::v1::RoleBinding>(minimal(rbac, "RoleBinding"));
    check::<rbac::v1::ClusterRoleBinding>(minimal(rbac, "ClusterRoleBinding"));
    check::<certificates::v1::CertificateSigningRequest>(minimal(
        "certificates.k8s.io/v1",
        "CertificateSigningRequest",
    ));
}

/// `kubectl create cronjob echo --image=busybox --schedule='* * * * *'` sends, and upstream
/// stores and returns, the CronJob as Go writes it: a zero `creationTimestamp` as null in
/// both templates, `resources: {}` and an empty `status: {}`.
#[test]
fn cron_jobs_encode_their_templates_like_go() {
    let (_, encoded) = round_trip::<k8s_openapi::api::batch::v1::CronJob>(json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "echo"},
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {
                "metadata": {"name": "echo"},
                "spec": {"template": {"spec": {
                    "containers": [{"name": "echo", "image": "busybox"}],
                    "restartPolicy": "OnFailure",
                }}},
            },
        },
    }));
    assert_eq!(
        encoded,
        json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "echo", "creationTimestamp": null},
            "spec": {
                "schedule": "* * * * *",
                "jobTemplate": {
                    "metadata": {"name": "echo", "creationTimestamp": null},
                    "spec": {"template": {
                        "metadata": {"creationTimestamp": null},
                        "spec": {
                            "containers": [{"name": "echo", "image": "busybox", "resources": {}}],
                            "restartPolicy": "OnFailure",
                        },
                    }},
                },
            },
            "status": {},
        })
    );
}

/// Counters Go holds by value without `omitempty` are written as 0 before any controller
/// ran: a new DaemonSet's four node counts, a new v2 HorizontalPodAutoscaler's
/// `desiredReplicas` beside its nil `currentMetrics`.
#[test]
fn status_counters_without_omitempty_are_written_as_zero() {
    let (_, daemon_set) = round_trip::<apps::DaemonSet>(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "x"},
    }));
    assert_eq!(
        daemon_set["status"],
        json!({
            "currentNumberScheduled": 0,
            "numberMisscheduled": 0,
            "desiredNumberScheduled": 0,
            "numberReady": 0,
        })
    );
    let (_, autoscaler) = round_trip::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "x"}}),
    );
    assert_eq!(
        autoscaler["status"],
        json!({"desiredReplicas": 0, "currentMetrics": null})
    );
}
