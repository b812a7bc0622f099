//! The encoder, checked three ways: its bytes decode back to the same JSON (our decoder), they
//! decode to the expected values with an independent implementation (k8s-pb's prost types),
//! and where kubectl's own bytes were captured, they are the same bytes.

use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{json, Value};

use super::schema::{schema, FieldType, Label, Scalar, Shape};
use super::tests::{
    pseudo_random, KUBECTL_AUTH_CAN_I, KUBECTL_CREATE_CONFIGMAP, KUBECTL_CREATE_DEPLOYMENT,
};
use super::{encode_object, transcode, watch_frame, EncodeError, Envelope, ListEncoder};

/// Decodes any body the encoder writes; unlike [`super::decode`], which takes request bodies
/// only, it knows the kinds only responses carry (lists, Status, PartialObjectMetadata).
fn decode_response(body: &[u8]) -> Value {
    let envelope = Envelope::parse(body).unwrap();
    let (api_version, kind) = envelope.group_version_kind().unwrap();
    let message = schema().response_message(&api_version, &kind).unwrap();
    let mut object = transcode::object(message, envelope.raw, 0).unwrap();
    object.insert("apiVersion".into(), Value::String(api_version));
    object.insert("kind".into(), Value::String(kind));
    Value::Object(object)
}

/// Encodes `json` (an object with apiVersion and kind) from its bytes.
fn encode(json: &Value) -> Vec<u8> {
    let (api_version, kind) = (json["apiVersion"].as_str(), json["kind"].as_str());
    encode_object(api_version.unwrap(), kind.unwrap(), &bytes(json)).unwrap()
}

fn bytes(json: &Value) -> Vec<u8> {
    serde_json::to_vec(json).unwrap()
}

/// Encodes `json` (an object with apiVersion and kind, in the decoder's form) and decodes it
/// back: the same JSON.
pub(super) fn assert_round_trip(json: &Value) {
    assert_eq!(&decode_response(&encode(json)), json);
}

/// The envelope around `body`, checked as upstream writes it, and the object's message.
fn unwrap_envelope(body: &[u8], api_version: &str, kind: &str) -> Vec<u8> {
    let unknown = Unknown::decode(body.strip_prefix(b"k8s\0").unwrap()).unwrap();
    let type_meta = unknown.type_meta.unwrap();
    assert_eq!(type_meta.api_version.as_deref(), Some(api_version));
    assert_eq!(type_meta.kind.as_deref(), Some(kind));
    assert_eq!(unknown.content_encoding.as_deref(), Some(""));
    assert_eq!(unknown.content_type.as_deref(), Some(""));
    unknown.raw.unwrap()
}

fn rich_pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": "6b1c3d2e-0000-4000-8000-000000000001",
            "resourceVersion": "42",
            "generation": 1,
            "creationTimestamp": "2024-05-06T07:08:09Z",
            "labels": {"app": "web", "tier": "frontend"},
            "annotations": {"example.com/note": "{\"a\":1}\n", "example.com/empty": ""},
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": "web",
                "uid": "6b1c3d2e-0000-4000-8000-000000000002",
                "controller": true,
                "blockOwnerDeletion": true,
            }],
            "finalizers": ["example.com/cleanup"],
            "managedFields": [{
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2024-05-06T07:08:09Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}},
            }],
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "nginx:1.27",
                "command": ["nginx"],
                "args": ["-g", "daemon off;", ""],
                "ports": [
                    {"name": "http", "containerPort": 80, "protocol": "TCP"},
                    {"containerPort": 443, "hostPort": 8443, "protocol": "TCP"},
                ],
                "env": [
                    {"name": "A", "value": "1"},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                    {"name": "S", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password", "optional": false}}},
                ],
                "resources": {
                    "limits": {"cpu": "500m", "memory": "128Mi"},
                    "requests": {"cpu": "250m", "memory": "64Mi"},
                },
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}],
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                    "initialDelaySeconds": 3,
                    "timeoutSeconds": 1,
                    "periodSeconds": 10,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
                "readinessProbe": {"tcpSocket": {"port": "http"}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
                "securityContext": {
                    "capabilities": {"drop": ["ALL"]},
                    "runAsUser": 1000,
                    "runAsNonRoot": true,
                    "allowPrivilegeEscalation": false,
                },
            }],
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
                {"name": "config", "configMap": {
                    "name": "web-config",
                    "items": [{"key": "nginx.conf", "path": "nginx.conf", "mode": 420}],
                    "defaultMode": 420,
                }},
                {"name": "token", "projected": {
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"downwardAPI": {"items": [{
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }]}},
                    ],
                    "defaultMode": 420,
                }},
                {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "serviceAccountName": "default",
            "nodeName": "node-1",
            "securityContext": {
                "supplementalGroups": [3000, 4000],
                "fsGroup": 2000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "hostname": name,
            "subdomain": "web",
            "affinity": {
                "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]},
                ]}},
                "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"app": "web"}},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }]},
            },
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"},
            ],
            "priority": -5,
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-06T07:08:19Z"}],
            "hostIP": "10.0.0.1",
            "podIP": "10.1.0.5",
            "podIPs": [{"ip": "10.1.0.5"}],
            "startTime": "2024-05-06T07:08:10Z",
            "containerStatuses": [{
                "name": "web",
                "state": {"running": {"startedAt": "2024-05-06T07:08:15Z"}},
                "ready": true,
                "restartCount": 0,
                "image": "nginx:1.27",
                "imageID": "docker.io/library/nginx@sha256:0123",
                "containerID": "containerd://0123",
                "started": true,
            }],
            "qosClass": "Burstable",
        },
    })
}

/// Objects of many kinds, in the form our decoder writes.
fn fixtures() -> Vec<Value> {
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "generation": 3},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "resources": {}}]},
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {
            "observedGeneration": 3,
            "replicas": 3,
            "updatedReplicas": 3,
            "readyReplicas": 3,
            "availableReplicas": 3,
            "conditions": [{
                "type": "Available",
                "status": "True",
                "lastUpdateTime": "2024-05-06T07:08:09Z",
                "lastTransitionTime": "2024-05-06T07:08:09Z",
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
            }],
        },
    });
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                {"name": "https", "protocol": "TCP", "port": 443, "targetPort": "https", "nodePort": 30443},
            ],
            "selector": {"app": "web"},
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "type": "NodePort",
            "sessionAffinity": "None",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "externalTrafficPolicy": "Cluster",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    });
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
        "spec": {"podCIDR": "10.1.0.0/24", "podCIDRs": ["10.1.0.0/24"], "taints": [{"key": "k", "value": "v", "effect": "NoSchedule", "timeAdded": "2024-05-06T07:08:09Z"}]},
        "status": {
            "capacity": {"cpu": "4", "memory": "16331540Ki", "pods": "110", "ephemeral-storage": "102Gi"},
            "allocatable": {"cpu": "3800m", "memory": "15Gi", "pods": "110"},
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "lastHeartbeatTime": "2024-05-06T07:08:09Z",
                "lastTransitionTime": "2024-05-06T07:00:00Z",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
            }],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "node-1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "m",
                "systemUUID": "s",
                "bootID": "b",
                "kernelVersion": "6.1.0",
                "osImage": "Debian",
                "containerRuntimeVersion": "containerd://1.7.0",
                "kubeletVersion": "v1.33.1",
                "kubeProxyVersion": "v1.33.1",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "images": [{"names": ["nginx:1.27"], "sizeBytes": 72_000_000_000i64}],
        },
    });
    let core_event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web-0.17a", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-0", "uid": "u", "apiVersion": "v1", "fieldPath": "spec.containers{web}"},
        "reason": "Pulled",
        "message": "Container image already present on machine",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2024-05-06T07:08:09Z",
        "lastTimestamp": "2024-05-06T07:08:19Z",
        "count": 2,
        "type": "Normal",
        "eventTime": "2024-05-06T07:08:09.123456Z",
        "series": {"count": 2, "lastObservedTime": "2024-05-06T07:08:19.000001Z"},
        "reportingComponent": "kubelet",
        "reportingInstance": "node-1",
    });
    let events_event = json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "e", "namespace": "default"},
        "eventTime": "1969-12-31T23:59:59.500000Z",
        "reportingController": "example.com/controller",
        "reportingInstance": "i",
        "action": "Reconcile",
        "reason": "Done",
        "regarding": {"kind": "Pod", "name": "web-0"},
        "note": "done",
        "type": "Normal",
    });
    let status = json!({
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": "Pod \"web-0\" is invalid: spec.containers[0].image: Required value",
        "reason": "Invalid",
        "details": {
            "name": "web-0",
            "kind": "Pod",
            "causes": [
                {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers[0].image"},
                {"reason": "FieldValueInvalid", "message": "Invalid value"},
            ],
            "retryAfterSeconds": 2,
        },
        "code": 422,
    });
    let partial = json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": rich_pod("web-0")["metadata"].clone(),
    });
    let delete_options = json!({
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "u", "resourceVersion": "7"},
        "propagationPolicy": "Foreground",
        "dryRun": ["All"],
    });
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "data": {"password": "AAEC/w==", "empty": ""},
        "stringData": {"plain": "text"},
        "type": "Opaque",
    });
    vec![
        rich_pod("web-0"),
        deployment,
        service,
        node,
        core_event,
        events_event,
        status,
        partial,
        delete_options,
        secret,
    ]
}

#[test]
fn rich_objects_round_trip() {
    for object in fixtures() {
        assert_round_trip(&object);
    }
}

/// Objects with the shapes [`fixtures`] lacks, in forms the decoder does not give back exactly
/// (whole doubles, Quantities as numbers, nulls in lists and maps, embedded raw JSON).
fn shape_fixtures() -> Vec<Value> {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com", "generation": 2},
        "spec": {
            "group": "example.com",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList", "shortNames": ["wd"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "A widget",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "size": {"type": "integer", "minimum": 1, "maximum": 10.5, "default": 3},
                                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                                "pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "open": {"type": "object", "additionalProperties": true},
                                "closed": {"type": "object", "additionalProperties": false},
                                "mode": {"type": "string", "enum": ["a", "b", {"c": [1, null]}], "example": {"z": 1, "a": [true, null, 1.5e3]}},
                                "dependent": {"type": "object", "dependencies": {"x": ["y", "z"], "w": {"type": "object"}}},
                                "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                                "anything": {"x-kubernetes-preserve-unknown-fields": true, "nullable": true},
                            },
                        },
                    },
                    "x-kubernetes-validations": [{"rule": "self.spec.size < 10", "message": "too big"}],
                }},
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
            }],
            "conversion": {"strategy": "None"},
        },
        "status": {
            "acceptedNames": {"plural": "widgets", "kind": "Widget"},
            "storedVersions": ["v1"],
            "conditions": [{"type": "Established", "status": "True", "lastTransitionTime": "2024-05-06T07:08:09Z"}],
        },
    });
    let revision = json!({
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {"name": "web-7d9f", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u"}]},
        "data": {"spec": {"template": {"b": 1, "a": "é\"\\/", "c": [1.0, -5, 1e2, 18_446_744_073_709_551_615u64], "d": {}}}},
        "revision": 3,
    });
    // NamedRuleWithOperations embeds RuleWithOperations, which embeds Rule.
    let policy = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "p"},
        "spec": {
            "matchConstraints": {
                "resourceRules": [{
                    "resourceNames": ["a"],
                    "operations": ["CREATE", "UPDATE"],
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "resources": ["pods"],
                    "scope": "Namespaced",
                }],
                "excludeResourceRules": [{}, {"scope": "*"}],
                "matchPolicy": "Equivalent",
            },
            "validations": [{"expression": "object.spec.replicas < 5"}],
            "failurePolicy": "Fail",
        },
    });
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "jane",
            "groups": ["dev"],
            "extra": {"scopes": ["a", "b"], "empty": [], "none": null},
            "uid": "1",
            "resourceAttributes": {"verb": "get", "resource": "pods"},
        },
        "status": {"allowed": true},
    });
    // PersistentVolumeSpec embeds PersistentVolumeSource between its fields 1 and 3.
    let volume = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pv"},
        "spec": {
            "capacity": {"storage": 1_073_741_824, "cpu": 0.5, "memory": "1Gi"},
            "hostPath": {"path": "/data", "type": "DirectoryOrCreate"},
            "accessModes": ["ReadWriteOnce"],
            "claimRef": {"namespace": "default", "name": "data"},
            "persistentVolumeReclaimPolicy": "Retain",
            "mountOptions": ["ro"],
        },
        "status": {"phase": "Bound", "lastPhaseTransitionTime": "2024-05-06T07:08:09Z"},
    });
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "finalizers": [null, "f"], "labels": {"a": null, "b": "x"}},
        "data": {"z": "last", "a": null, "": "empty key"},
        "binaryData": {"k": null, "j": "AAEC"},
        "immutable": false,
    });
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "l", "namespace": "kube-node-lease"},
        "spec": {
            "holderIdentity": "node-1",
            "leaseDurationSeconds": 40,
            "acquireTime": "2024-05-06T07:08:09.000001Z",
            "renewTime": "2024-05-06T09:08:09.123456789+02:00",
            "leaseTransitions": 0,
        },
    });
    vec![crd, revision, policy, review, volume, config_map, lease]
}

/// The bytes the encoder wrote when it encoded `serde_json::Value`s, before it read JSON bytes:
/// each of [`fixtures`] and [`shape_fixtures`] in turn, after its four-byte big-endian length.
const VALUE_ENCODER_BYTES: &[u8] = include_bytes!("testdata/value_encoder.bin");

#[test]
fn bytes_are_the_value_encoders() {
    let mut golden = VALUE_ENCODER_BYTES;
    for fixture in fixtures().iter().chain(&shape_fixtures()) {
        let (length, rest) = golden.split_first_chunk::<4>().unwrap();
        let (expected, rest) = rest.split_at(u32::from_be_bytes(*length) as usize);
        assert_eq!(encode(fixture), expected, "{fixture}");
        golden = rest;
    }
    assert!(golden.is_empty());
}

/// `json` written with each object's members in a pseudo-random order.
fn shuffled(json: &Value, seed: &mut u64) -> String {
    match json {
        Value::Object(members) => {
            let mut members: Vec<_> = members.iter().collect();
            for i in (1..members.len()).rev() {
                members.swap(i, pseudo_random(seed) as usize % (i + 1));
            }
            let members: Vec<_> = members
                .into_iter()
                .map(|(key, value)| {
                    format!("{}:{}", Value::from(key.as_str()), shuffled(value, seed))
                })
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Value::Array(items) => {
            let items: Vec<_> = items.iter().map(|item| shuffled(item, seed)).collect();
            format!("[{}]", items.join(","))
        }
        scalar => scalar.to_string(),
    }
}

/// Fields are written in tag order, map entries and raw JSON keys sorted, whatever the order of
/// the JSON's keys.
#[test]
fn key_order_does_not_change_the_bytes() {
    let mut seed = 0x2545_f491_4f6c_dd1d;
    for fixture in fixtures().iter().chain(&shape_fixtures()) {
        let expected = encode(fixture);
        let (api_version, kind) = (fixture["apiVersion"].as_str(), fixture["kind"].as_str());
        for _ in 0..4 {
            let json = shuffled(fixture, &mut seed);
            let body = encode_object(api_version.unwrap(), kind.unwrap(), json.as_bytes());
            assert_eq!(body.unwrap(), expected, "{json}");
        }
    }
}

#[test]
fn unknown_keys_and_null_fields_leave_no_trace() {
    let pod = rich_pod("web-0");
    let mut noisy = pod.clone();
    let unknown = json!({"deep": [1, {"x": null}, "s", [[]]], "n": -1.5e300});
    noisy["unknown"] = unknown.clone();
    noisy["metadata"]["bogus"] = unknown.clone();
    noisy["metadata"]["deletionTimestamp"] = Value::Null;
    noisy["spec"]["hostNetwork"] = Value::Null;
    noisy["spec"]["overhead"] = Value::Null;
    noisy["spec"]["initContainers"] = Value::Null;
    noisy["spec"]["volumes"][0]["hostPath"] = Value::Null;
    let container = &mut noisy["spec"]["containers"][0];
    container["stdin"] = Value::Null;
    container["x-unknown"] = unknown.clone();
    container["livenessProbe"]["exec"] = Value::Null;
    container["livenessProbe"]["bogus"] = unknown.clone();
    container["env"][2]["valueFrom"]["secretKeyRef"]["bogus"] = unknown;
    noisy["status"]["message"] = Value::Null;
    assert_eq!(
        encode_object("v1", "Pod", &bytes(&noisy)).unwrap(),
        encode(&pod)
    );
}

/// As reading the JSON into a map would: a later value, null included, replaces an earlier one.
#[test]
fn a_key_given_twice_keeps_its_last_value() {
    let twice = br#"{
        "metadata": {"name": "a", "labels": {"k": "1", "j": "0", "k": "2"}, "name": "b",
            "namespace": "x", "namespace": null},
        "data": {"k": "1", "k": "2"}
    }"#;
    let once = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "b", "labels": {"j": "0", "k": "2"}},
        "data": {"k": "2"},
    });
    assert_eq!(
        encode_object("v1", "ConfigMap", twice).unwrap(),
        encode(&once)
    );
    let twice = br#"{"data": {"b": 1, "a": 2, "b": {"y": 1, "x": 2, "y": 3}}, "revision": 1}"#;
    let once = json!({
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "data": {"a": 2, "b": {"x": 2, "y": 3}},
        "revision": 1,
    });
    assert_eq!(
        encode_object("apps/v1", "ControllerRevision", twice).unwrap(),
        encode(&once)
    );
}

/// Raw JSON (RawExtension, FieldsV1) carries the JSON as serde_json writes it parsed: compact,
/// keys sorted, its own escapes and number forms.
#[test]
fn raw_json_is_written_as_parsed() {
    let data = r#"{ "z": [1, -0, 2.50, 1E3, 12345678901234567890, -9223372036854775808, 1e-7,
        true, null, "\u00e9\/\"\\\t\u0001\ud83d\ude00"], "a\"b": {}, "a": {"y": [], "x": [{}]},
        "": "" }"#;
    let parsed: Value = serde_json::from_str(data).unwrap();
    let revision = format!(r#"{{"data": {data}, "revision": 2}}"#);
    let body = encode_object("apps/v1", "ControllerRevision", revision.as_bytes()).unwrap();
    let raw = unwrap_envelope(&body, "apps/v1", "ControllerRevision");
    let decoded = k8s_pb::api::apps::v1::ControllerRevision::decode(raw.as_slice()).unwrap();
    assert_eq!(
        decoded.data.unwrap().raw.unwrap(),
        parsed.to_string().as_bytes()
    );
    let canonical = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "data": parsed, "revision": 2});
    assert_eq!(body, encode(&canonical));
}

#[test]
fn invalid_json_is_refused() {
    for json in [
        &b""[..],
        b"{",
        br#"{"unknown": [1,]}"#,
        br#"{"metadata": {}} x"#,
    ] {
        let error = encode_object("v1", "ConfigMap", json).unwrap_err();
        assert!(matches!(error, EncodeError::Json(_)), "{error:?}");
    }
}

/// Every kind the apiserver may answer with encodes, and decodes back (an empty object of each).
#[test]
fn every_response_kind_encodes() {
    for (api_version, kind, _) in schema().kinds().chain(schema().response_kinds()) {
        assert_round_trip(&json!({"apiVersion": api_version, "kind": kind}));
    }
    assert_round_trip(&json!({"apiVersion": "apps/v1", "kind": "DeleteOptions"}));
}

#[test]
fn pod_decodes_with_k8s_pb() {
    let body = encode(&rich_pod("web-0"));
    let pod = core::Pod::decode(unwrap_envelope(&body, "v1", "Pod").as_slice()).unwrap();

    let metadata = pod.metadata.unwrap();
    assert_eq!(metadata.name.as_deref(), Some("web-0"));
    assert_eq!(metadata.generation, Some(1));
    assert_eq!(
        metadata.creation_timestamp,
        Some(meta::Time {
            seconds: Some(1_714_979_289),
            nanos: Some(0),
        })
    );
    assert_eq!(metadata.labels["tier"], "frontend");
    assert_eq!(metadata.annotations["example.com/empty"], "");
    let fields_v1 = metadata.managed_fields[0].fields_v1.clone().unwrap();
    let fields: Value = serde_json::from_slice(&fields_v1.raw.unwrap()).unwrap();
    assert_eq!(fields["f:metadata"]["f:labels"]["f:app"], json!({}));

    let spec = pod.spec.unwrap();
    let container = &spec.containers[0];
    assert_eq!(container.image.as_deref(), Some("nginx:1.27"));
    assert_eq!(container.args, ["-g", "daemon off;", ""]);
    assert_eq!(container.ports[1].host_port, Some(8443));
    let resources = container.resources.clone().unwrap();
    assert_eq!(resources.limits["cpu"].string.as_deref(), Some("500m"));
    assert_eq!(resources.requests["memory"].string.as_deref(), Some("64Mi"));
    let liveness = container.liveness_probe.clone().unwrap();
    let http_get = liveness.handler.unwrap().http_get.unwrap();
    assert_eq!(
        http_get.port.unwrap(),
        k8s_pb::apimachinery::pkg::util::intstr::IntOrString {
            r#type: Some(0),
            int_val: Some(8080),
            str_val: Some(String::new()),
        }
    );
    let readiness = container.readiness_probe.clone().unwrap();
    let tcp_port = readiness.handler.unwrap().tcp_socket.unwrap().port.unwrap();
    assert_eq!(
        (tcp_port.r#type, tcp_port.str_val.as_deref()),
        (Some(1), Some("http"))
    );
    let config = spec.volumes[1]
        .volume_source
        .clone()
        .unwrap()
        .config_map
        .unwrap();
    assert_eq!(
        config.local_object_reference.unwrap().name.as_deref(),
        Some("web-config")
    );
    assert_eq!(config.default_mode, Some(420));
    assert_eq!(spec.tolerations[0].toleration_seconds, Some(300));
    assert_eq!(spec.priority, Some(-5));
    assert_eq!(
        spec.security_context.unwrap().supplemental_groups,
        [3000, 4000]
    );
    let affinity = spec.affinity.unwrap();
    let term = &affinity
        .pod_anti_affinity
        .unwrap()
        .preferred_during_scheduling_ignored_during_execution[0];
    assert_eq!(term.weight, Some(100));

    let status = pod.status.unwrap();
    let started = status.container_statuses[0]
        .state
        .clone()
        .unwrap()
        .running
        .unwrap();
    assert_eq!(started.started_at.unwrap().seconds, Some(1_714_979_295));
}

/// gogo's wire details that a lenient decoder would not notice.
#[test]
fn wire_details_match_gogo() {
    let body = encode(&rich_pod("web-0"));
    // priority -5 sign-extended to a ten-byte varint, as Go's uint64(int32) does.
    let priority = b"\xc8\x01\xfb\xff\xff\xff\xff\xff\xff\xff\xff\x01";
    assert!(body.windows(priority.len()).any(|w| w == priority));
    // supplementalGroups (PodSecurityContext field 4) unpacked: one key per element.
    let groups = b"\x20\xb8\x17\x20\xa0\x1f";
    assert!(body.windows(groups.len()).any(|w| w == groups));
    // Map entries sorted by key, each {key = 1, value = 2}.
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"b": "2", "a": "1"}});
    assert_eq!(
        unwrap_envelope(&encode(&config_map), "v1", "ConfigMap"),
        b"\x12\x06\x0a\x01a\x12\x011\x12\x06\x0a\x01b\x12\x012"
    );
    // An embedded struct (ConfigMapKeySelector's LocalObjectReference) is written even empty,
    // as Go holds it by value: env[0] = {name = 1, valueFrom = 3 {configMapKeyRef = 3 {
    // localObjectReference = 1 {}, key = 2}}}.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{
        "env": [{"name": "E", "valueFrom": {"configMapKeyRef": {"key": "k"}}}],
    }]}});
    let env = b"\x3a\x0c\x0a\x01E\x1a\x07\x1a\x05\x0a\x00\x12\x01k";
    let body = encode(&pod);
    assert!(body.windows(env.len()).any(|w| w == env));
    // A nested message longer than 127 and 16383 bytes: two- and three-byte lengths.
    for size in [200, 20_000] {
        let config_map = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "big"},
            "data": {"k": "x".repeat(size)},
        });
        let body = encode(&config_map);
        let raw = unwrap_envelope(&body, "v1", "ConfigMap");
        let decoded = core::ConfigMap::decode(raw.as_slice()).unwrap();
        assert_eq!(decoded.data["k"].len(), size);
        assert_round_trip(&config_map);
    }
}

#[test]
fn times_follow_upstream() {
    let lease = |renew: &str| {
        let body = encode(&json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "l", "creationTimestamp": renew},
            "spec": {"renewTime": renew},
        }));
        let raw = unwrap_envelope(&body, "coordination.k8s.io/v1", "Lease");
        let lease = k8s_pb::api::coordination::v1::Lease::decode(raw.as_slice()).unwrap();
        let time = lease.metadata.unwrap().creation_timestamp.unwrap();
        let micro = lease.spec.unwrap().renew_time.unwrap();
        ((time.seconds, time.nanos), (micro.seconds, micro.nanos))
    };
    // Time keeps whole seconds, MicroTime microseconds.
    assert_eq!(
        lease("2024-01-02T03:04:05.123456789Z"),
        (
            (Some(1_704_164_645), Some(0)),
            (Some(1_704_164_645), Some(123_456_000))
        )
    );
    assert_eq!(
        lease("2024-01-02T05:04:05.5+02:00"),
        (
            (Some(1_704_164_645), Some(0)),
            (Some(1_704_164_645), Some(500_000_000))
        )
    );
    assert_eq!(
        lease("1969-12-31T23:59:59.25Z"),
        ((Some(-1), Some(0)), (Some(-1), Some(250_000_000)))
    );
    assert_eq!(
        lease("9999-12-31T23:59:59Z").0,
        (Some(253_402_300_799), Some(0))
    );
    // Go's zero time is the empty message.
    assert_eq!(lease("0001-01-01T00:00:00Z"), ((None, None), (None, None)));
}

#[test]
fn list_encoder_matches_k8s_pb_and_whole_list() {
    let list_meta = json!({"resourceVersion": "100", "continue": "abc", "remainingItemCount": 5});
    let names = ["web-0", "web-1", "web-2"];
    let mut encoder = ListEncoder::new("v1", "PodList", &bytes(&list_meta)).unwrap();
    for name in names {
        encoder.push(&bytes(&rich_pod(name))).unwrap();
    }
    let body = encoder.finish();

    let list = core::PodList::decode(unwrap_envelope(&body, "v1", "PodList").as_slice()).unwrap();
    let metadata = list.metadata.unwrap();
    assert_eq!(metadata.resource_version.as_deref(), Some("100"));
    assert_eq!(metadata.r#continue.as_deref(), Some("abc"));
    assert_eq!(metadata.remaining_item_count, Some(5));
    let items: Vec<_> = list
        .items
        .iter()
        .map(|pod| {
            let spec = pod.spec.clone().unwrap();
            (
                pod.metadata.clone().unwrap().name.unwrap(),
                spec.containers[0].image.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        items,
        names.map(|name| (name.to_owned(), "nginx:1.27".to_owned()))
    );

    // Items are messages, without apiVersion and kind, as in upstream's lists.
    let item = |name| {
        let mut pod = rich_pod(name);
        let object = pod.as_object_mut().unwrap();
        object.remove("apiVersion");
        object.remove("kind");
        pod
    };
    let whole = json!({
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": list_meta,
        "items": names.map(item),
    });
    assert_eq!(decode_response(&body), whole);
    assert_eq!(body, encode(&whole));
}

#[test]
fn partial_object_metadata_list() {
    let mut encoder = ListEncoder::new(
        "meta.k8s.io/v1",
        "PartialObjectMetadataList",
        &bytes(&json!({"resourceVersion": "9"})),
    )
    .unwrap();
    for name in ["a", "b"] {
        let item = json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": {"name": name, "namespace": "default", "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u"}]},
        });
        encoder.push(&bytes(&item)).unwrap();
    }
    let body = encoder.finish();
    let raw = unwrap_envelope(&body, "meta.k8s.io/v1", "PartialObjectMetadataList");
    let list = meta::PartialObjectMetadataList::decode(raw.as_slice()).unwrap();
    let names: Vec<_> = list
        .items
        .iter()
        .map(|item| item.metadata.clone().unwrap().name.unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        list.items[1].metadata.clone().unwrap().owner_references[0]
            .kind
            .as_deref(),
        Some("Pod")
    );
}

#[test]
fn watch_frames_decode_with_k8s_pb() {
    let body = encode(&rich_pod("web-0"));
    let frame = watch_frame("MODIFIED", &body);
    let (length, event) = frame.split_at(4);
    assert_eq!(
        u32::from_be_bytes(length.try_into().unwrap()) as usize,
        event.len()
    );
    let event = meta::WatchEvent::decode(event).unwrap();
    assert_eq!(event.r#type.as_deref(), Some("MODIFIED"));
    let raw = event.object.unwrap().raw.unwrap();
    assert_eq!(raw, body);
    let pod = core::Pod::decode(unwrap_envelope(&raw, "v1", "Pod").as_slice()).unwrap();
    assert_eq!(pod.metadata.unwrap().name.as_deref(), Some("web-0"));

    // By hand: length 18, type = 1 "ADDED", object = 2 {raw = 1 "k8s\0xyz"}.
    assert_eq!(
        watch_frame("ADDED", b"k8s\0xyz"),
        b"\0\0\0\x12\x0a\x05ADDED\x12\x09\x0a\x07k8s\0xyz"
    );
}

/// watch_frame writes WatchEvent's tags by hand; the generated schema must agree.
#[test]
fn watch_frame_tags_match_the_schema() {
    let event = schema()
        .message("apimachinery.pkg.apis.meta.v1.WatchEvent")
        .unwrap();
    let fields: Vec<_> = event
        .fields()
        .map(|(tag, field)| (tag, field.json_name.as_str(), &field.ty, field.label))
        .collect();
    let raw_extension = "apimachinery.pkg.runtime.RawExtension";
    assert_eq!(
        fields,
        [
            (
                1,
                "type",
                &FieldType::Scalar(Scalar::String),
                Label::Singular
            ),
            (
                2,
                "object",
                &FieldType::Message(raw_extension.into()),
                Label::Singular
            ),
        ]
    );
    // RawExtension is {raw = 1 bytes}: the generator checks the tag of every rawJson shape.
    assert_eq!(schema().shape(raw_extension), Some(Shape::RawJson));
}

/// kubectl's captured bytes, from JSON holding every field Go wrote: the zero values of its Go
/// value fields (empty strings, 0, false, the zero time as `0001-01-01T00:00:00Z`), which
/// upstream's JSON and our decoder omit.
#[test]
fn kubectl_bytes_from_complete_json() {
    let empty_meta = |name: &str| {
        json!({
            "name": name, "generateName": "", "namespace": "", "selfLink": "", "uid": "",
            "resourceVersion": "", "generation": 0, "creationTimestamp": "0001-01-01T00:00:00Z",
        })
    };
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": empty_meta("foo"),
        "data": {"a": "b"},
    });
    assert_eq!(encode(&config_map), KUBECTL_CREATE_CONFIGMAP);

    let review = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": empty_meta(""),
        "spec": {"resourceAttributes": {
            "namespace": "default", "verb": "create", "group": "", "version": "",
            "resource": "pods", "subresource": "", "name": "",
        }},
        "status": {"allowed": false, "reason": "", "evaluationError": "", "denied": false},
    });
    assert_eq!(encode(&review), KUBECTL_AUTH_CAN_I);

    let labelled = |name: &str| {
        let mut metadata = empty_meta(name);
        metadata["labels"] = json!({"app": "nginx"});
        metadata
    };
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": labelled("nginx"),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": labelled(""),
                "spec": {
                    "containers": [{
                        "name": "nginx", "image": "nginx", "workingDir": "",
                        "ports": [{"name": "", "hostPort": 0, "containerPort": 80, "protocol": "", "hostIP": ""}],
                        "resources": {}, "terminationMessagePath": "", "imagePullPolicy": "",
                        "stdin": false, "stdinOnce": false, "tty": false, "terminationMessagePolicy": "",
                    }],
                    "restartPolicy": "", "dnsPolicy": "", "serviceAccountName": "", "serviceAccount": "",
                    "nodeName": "", "hostNetwork": false, "hostPID": false, "hostIPC": false,
                    "hostname": "", "subdomain": "", "schedulerName": "", "priorityClassName": "",
                },
            },
            "strategy": {"type": ""},
            "minReadySeconds": 0,
            "paused": false,
        },
        "status": {
            "observedGeneration": 0, "replicas": 0, "updatedReplicas": 0, "availableReplicas": 0,
            "unavailableReplicas": 0, "readyReplicas": 0,
        },
    });
    assert_eq!(encode(&deployment), KUBECTL_CREATE_DEPLOYMENT);
}

#[test]
fn unknown_keys_are_dropped() {
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "bogus": {"deep": [1]}},
        "data": {"a": "b"},
        "extra": true,
        "immutable": null,
    });
    assert_eq!(
        decode_response(&encode(&config_map)),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}})
    );
}

#[test]
fn nulls_in_lists_and_maps_are_zero_values() {
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "finalizers": [null, "f"]},
        "data": {"a": null},
    });
    assert_eq!(
        decode_response(&encode(&config_map)),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["", "f"]}, "data": {"a": ""}})
    );
}

#[test]
fn errors_name_the_field() {
    let error = |api_version: &str, kind: &str, object: Value| {
        encode_object(api_version, kind, &bytes(&object))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        error("v1", "Foo", json!({})),
        r#"no protobuf message for kind "Foo" in "v1""#
    );
    assert_eq!(
        error("apps/v1", "Status", json!({})),
        r#"no protobuf message for kind "Status" in "apps/v1""#
    );
    assert_eq!(
        error("v1", "Pod", json!([1])),
        "the object: expected object, found an array"
    );
    let port = |port: Value| json!({"spec": {"containers": [{"name": "c"}, {"name": "d", "ports": [{"containerPort": port}]}]}});
    assert_eq!(
        error("v1", "Pod", port(json!("80"))),
        "spec.containers[1].ports[0].containerPort: expected int32, found a string"
    );
    assert_eq!(
        error("v1", "Pod", port(json!(3_000_000_000i64))),
        "spec.containers[1].ports[0].containerPort: expected int32, found 3000000000"
    );
    assert_eq!(
        error("v1", "Pod", port(json!(80.5))),
        "spec.containers[1].ports[0].containerPort: expected int32, found 80.5"
    );
    assert_eq!(
        error(
            "v1",
            "Pod",
            json!({"metadata": {"creationTimestamp": "yesterday"}})
        ),
        r#"metadata.creationTimestamp: "yesterday" is not an RFC 3339 time"#
    );
    for time in [
        "2024-02-30T00:00:00Z",
        "2024-01-02T24:00:00Z",
        "2024-01-02T03:04:05",
        "2024-01-02 03:04:05Z",
        "2024-01-02T03:04:05.Z",
        "2024-01-02T03:04:05+0200",
    ] {
        assert!(matches!(
            encode_object(
                "v1",
                "Pod",
                &bytes(&json!({"metadata": {"creationTimestamp": time}}))
            ),
            Err(EncodeError::InvalidTime { .. })
        ));
    }
    assert!(error("v1", "Secret", json!({"data": {"k": "not base64!"}}))
        .starts_with(r#"data["k"]: invalid base64: "#));
    assert_eq!(
        error(
            "v1",
            "Service",
            json!({"spec": {"ports": [{"targetPort": true}]}})
        ),
        "spec.ports[0].targetPort: expected number or string, found true"
    );
    assert_eq!(
        error("v1", "ConfigMap", json!({"metadata": {"labels": ["a"]}})),
        "metadata.labels: expected object, found an array"
    );
}

#[test]
fn list_encoder_refuses_non_lists_and_keeps_going_after_a_bad_item() {
    assert_eq!(
        ListEncoder::new("v1", "Pod", b"{}").unwrap_err(),
        EncodeError::NotAList {
            api_version: "v1".into(),
            kind: "Pod".into()
        }
    );
    let mut encoder = ListEncoder::new("v1", "ConfigMapList", b"{}").unwrap();
    encoder.push(br#"{"metadata": {"name": "a"}}"#).unwrap();
    let error = encoder
        .push(br#"{"metadata": {"name": "b"}, "data": {"k": 1}}"#)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"items[1].data["k"]: expected string, found 1"#
    );
    let error = encoder.push(br#"{"metadata": {"name": "b"#).unwrap_err();
    assert!(matches!(error, EncodeError::Json(_)), "{error:?}");
    encoder.push(br#"{"metadata": {"name": "c"}}"#).unwrap();
    let body = encoder.finish();
    assert_eq!(
        decode_response(&body),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMapList",
            "metadata": {},
            "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "c"}}],
        })
    );
}

#[test]
fn deep_nesting_is_refused() {
    let nested = |levels: usize| {
        let mut schema = json!({"type": "object"});
        for _ in 0..levels {
            schema = json!({"not": schema});
        }
        json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema}}]}})
    };
    let encode_crd = |object: &Value| {
        encode_object(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            &bytes(object),
        )
    };
    assert!(encode_crd(&nested(10)).is_ok());
    assert_eq!(
        encode_crd(&nested(150)).unwrap_err(),
        EncodeError::TooDeep(100)
    );
}

/// A pod as the apiserver stores the benchmark's pods: defaults and managedFields added.
fn stored_pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": "6b1c3d2e-0000-4000-8000-000000000001",
            "resourceVersion": "12345",
            "creationTimestamp": "2024-05-06T07:08:09Z",
            "labels": {"app": "bench"},
            "managedFields": [{
                "manager": "bench",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2024-05-06T07:08:09Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}}}, "f:resources": {}, "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}}, "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}}},
            }],
        },
        "spec": {
            "containers": [{
                "name": "app",
                "image": "registry.k8s.io/pause:3.10",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
        },
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    })
}

/// Timing of 10,000-pod lists for the lead to judge (`cargo test --release -- --ignored
/// --nocapture`); nothing is asserted about the time.
#[test]
#[ignore]
fn ten_thousand_pods() {
    for (label, make) in [
        ("stored pod", stored_pod as fn(&str) -> Value),
        ("rich pod", rich_pod),
    ] {
        let stored: Vec<Vec<u8>> = (0..10_000)
            .map(|i| bytes(&make(&format!("web-{i}"))))
            .collect();
        let size: usize = stored.iter().map(Vec::len).sum();
        let mut fastest = std::time::Duration::MAX;
        let mut body = Vec::new();
        for _ in 0..7 {
            let started = std::time::Instant::now();
            let mut encoder =
                ListEncoder::new("v1", "PodList", br#"{"resourceVersion": "1"}"#).unwrap();
            for json in &stored {
                encoder.push(json).unwrap();
            }
            body = encoder.finish();
            fastest = fastest.min(started.elapsed());
        }
        println!(
            "10,000 {label}s: {size} bytes of JSON to {} of protobuf in {fastest:?} (fastest of 7)",
            body.len()
        );
    }
}
