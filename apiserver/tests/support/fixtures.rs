//! The conformance battery's fixtures: for every served resource a valid object, an invalid
//! one with the cause upstream reports, a change an update may make, and the strategy facts
//! (generation, create-on-update, unconditional update, status) upstream's differ in.

use serde_json::{json, Value};

/// How a resource's `/status` is exercised: a status change (marked with a word, so two
/// writes differ) and a spec change the status endpoint must ignore.
pub struct StatusFixture {
    pub change: fn(&str) -> Value,
    pub ignored: fn() -> Value,
    /// A create keeps the status it is given (upstream's nodes, which kubelets register
    /// with their status); elsewhere the strategy resets it.
    pub kept_on_create: bool,
}

/// What the battery needs to know about one resource.
pub struct Fixture {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    /// A valid object without `metadata.name` (the battery names it per case).
    pub valid: fn() -> Value,
    /// An invalid object (named) and the one cause upstream reports for it:
    /// `(reason, field, message)`.
    pub invalid: fn() -> Value,
    pub cause: (&'static str, &'static str, &'static str),
    /// A merge patch that changes the object in a way an update may (spec where the
    /// resource has one), applied by PUT and by PATCH.
    pub change: fn() -> Value,
    /// How upstream's strategy keeps `metadata.generation`.
    pub generation: Generation,
    /// PUT may create a missing object (upstream's `AllowCreateOnUpdate`).
    pub create_on_update: bool,
    /// PUT without a resourceVersion is allowed (upstream's `AllowUnconditionalUpdate`).
    pub unconditional_update: bool,
    /// DELETE answers with the object rather than a `Status`, as upstream's
    /// `ReturnDeletedObject` (pods, services) and namespaces do.
    pub returns_deleted_object: bool,
    pub status: Option<StatusFixture>,
}

/// How a strategy keeps `metadata.generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    Absent,
    /// 1 on create, bumped by every change of the spec (the fixture's `change`).
    Tracked,
    /// 1 on create and never bumped (upstream's PriorityClass strategy).
    AlwaysOne,
}

impl Generation {
    /// `metadata.generation` after a create followed by `changes` spec changes.
    pub fn after(self, changes: i64) -> Value {
        match self {
            Generation::Absent => Value::Null,
            Generation::Tracked => json!(1 + changes),
            Generation::AlwaysOne => json!(1),
        }
    }
}

/// A pod template with `labels`, what workload fixtures select.
pub fn template(labels: Value) -> Value {
    json!({
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    })
}

/// A job's pod template: jobs' pods may not restart `Always`; the selector and its labels
/// are generated.
fn job_template() -> Value {
    json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}})
}

/// A condition valid for any status that takes conditions, with `reason` as the marker.
fn condition(kind: &str, reason: &str) -> Value {
    json!({
        "type": kind, "status": "True", "reason": reason, "message": "conformance",
        "lastTransitionTime": "2025-01-01T00:00:00Z",
    })
}

/// What the autoscaler fixtures scale.
fn scale_target() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "conformance"})
}

/// A number standing for `mark` where a status has no free text (an `autoscaling/v1`
/// autoscaler's): the sum of its bytes, which differs between the battery's marks.
fn marked_figure(mark: &str) -> u32 {
    mark.bytes().map(u32::from).sum()
}

/// A PEM certificate request (`CN=conformance, O=tests`, P-256), base64 as the API carries it.
const CSR_REQUEST: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlIaE1JR0lBZ0VBTUNZeEZEQVNCZ05WQkFNTUMyTnZibVp2Y20xaGJtTmxNUTR3REFZRFZRUUtEQVYwWlhOMApjekJaTUJNR0J5cUdTTTQ5QWdFR0NDcUdTTTQ5QXdFSEEwSUFCTjd6N0QzS3ZjK3dFMDVlcU1pbUUzeGdnMFVaCnppZnIyaWY4aW1lOENRZjNPUWxscENIU3I0RUtEeVBuZUpvT3ovdFlZZnYvTW9qeW1xLzBWdWYxbzFTZ0FEQUsKQmdncWhrak9QUVFEQWdOSUFEQkZBaUVBcTZKUGdIcWV3K3VVVHlSVzA2WjVucGIyZnprWjh6UFVZOG8rNFduaQpTellDSUVYaGs3ZFk5dUVQZmVwd2E5QjIvQVV5WWtoL0NBb0k2SVNWZjJiNnpwb2kKLS0tLS1FTkQgQ0VSVElGSUNBVEUgUkVRVUVTVC0tLS0tCg==";

pub const FIXTURES: &[Fixture] = &[
    Fixture {
        group: "",
        version: "v1",
        plural: "namespaces",
        valid: || json!({}),
        invalid: || json!({"metadata": {"name": "Not_Valid"}}),
        cause: (
            "FieldValueInvalid",
            "metadata.name",
            "Invalid value: \"Not_Valid\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ),
        change: || json!({"metadata": {"labels": {"changed": "yes"}}}),
        generation: Generation::Absent,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: true,
        status: Some(StatusFixture {
            change: |mark| {
                json!({"status": {"conditions": [condition("NamespaceDeletionDiscoveryFailure", mark)]}})
            },
            ignored: || json!({"spec": {"finalizers": ["kubernetes", "example.com/extra"]}}),
            kept_on_create: false,
        }),
    },
    Fixture {
        group: "",
        version: "v1",
        plural: "configmaps",
        valid: || json!({"data": {"key": "value"}}),
        invalid: || json!({"metadata": {"name": "invalid"}, "data": {"a b": "x"}}),
        cause: (
            "FieldValueInvalid",
            "data[a b]",
            "Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        ),
        change: || json!({"data": {"key": "changed"}}),
        generation: Generation::Absent,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: None,
    },
    Fixture {
        group: "",
        version: "v1",
        plural: "pods",
        valid: || json!({"spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "spec": {"containers": [{"name": "c"}]}})
        },
        cause: (
            "FieldValueRequired",
            "spec.containers[0].image",
            "Required value",
        ),
        change: || json!({"spec": {"activeDeadlineSeconds": 60}}),
        generation: Generation::Tracked,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: true,
        status: Some(StatusFixture {
            change: |mark| json!({"status": {"message": mark}}),
            ignored: || json!({"spec": {"activeDeadlineSeconds": 60}}),
            kept_on_create: false,
        }),
    },
    Fixture {
        group: "scheduling.k8s.io",
        version: "v1",
        plural: "priorityclasses",
        valid: || json!({"value": 1000, "description": "conformance"}),
        invalid: || json!({"metadata": {"name": "invalid"}, "value": 2_000_000_000}),
        cause: (
            "FieldValueForbidden",
            "value",
            "Forbidden: maximum allowed value of a user defined priority is 1000000000",
        ),
        change: || json!({"description": "changed"}),
        generation: Generation::AlwaysOne,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: None,
    },
    Fixture {
        group: "",
        version: "v1",
        plural: "nodes",
        valid: || json!({"spec": {}}),
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "spec": {"taints": [{"key": "k", "effect": ""}]}})
        },
        cause: (
            "FieldValueRequired",
            "metadata.taints[0].effect",
            "Required value",
        ),
        change: || json!({"spec": {"unschedulable": true}}),
        generation: Generation::Absent,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: Some(StatusFixture {
            change: |mark| json!({"status": {"conditions": [condition("Ready", mark)]}}),
            ignored: || json!({"spec": {"unschedulable": true}}),
            kept_on_create: true,
        }),
    },
    Fixture {
        group: "",
        version: "v1",
        plural: "events",
        valid: || {
            json!({
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
                "reason": "Tested", "message": "conformance", "type": "Normal",
            })
        },
        invalid: || {
            json!({
                "metadata": {"name": "invalid"},
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "other"},
            })
        },
        cause: (
            "FieldValueInvalid",
            "involvedObject.namespace",
            "Invalid value: \"other\": does not match event.namespace",
        ),
        change: || json!({"message": "changed", "count": 2}),
        generation: Generation::Absent,
        create_on_update: true,
        unconditional_update: true,
        returns_deleted_object: false,
        status: None,
    },
    Fixture {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        valid: || {
            json!({
                "eventTime": "2025-01-01T00:00:00.000000Z",
                "reportingController": "example.com/conformance",
                "reportingInstance": "conformance-1",
                "action": "Test", "reason": "Tested", "note": "conformance", "type": "Normal",
                "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
            })
        },
        invalid: || {
            json!({
                "metadata": {"name": "invalid"},
                "eventTime": "2025-01-01T00:00:00.000000Z",
                "reportingController": "example.com/conformance",
                "reportingInstance": "conformance-1",
                "action": "Test", "reason": "Tested", "type": "Bogus",
                "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
            })
        },
        cause: (
            "FieldValueInvalid",
            "type",
            "Invalid value: \"\": has invalid value: Bogus",
        ),
        // events.k8s.io allows only the series to change besides metadata.
        change: || json!({"metadata": {"labels": {"changed": "yes"}}}),
        generation: Generation::Absent,
        create_on_update: true,
        unconditional_update: true,
        returns_deleted_object: false,
        status: None,
    },
    Fixture {
        group: "",
        version: "v1",
        plural: "secrets",
        valid: || json!({"type": "Opaque", "data": {"key": "dmFsdWU="}}),
        invalid: || json!({"metadata": {"name": "invalid"}, "data": {"a b": "eA=="}}),
        cause: (
            "FieldValueInvalid",
            "data[a b]",
            "Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        ),
        change: || json!({"data": {"key": "Y2hhbmdlZA=="}}),
        generation: Generation::Absent,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: None,
    },
    Fixture {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        valid: || json!({}),
        invalid: || json!({"metadata": {"name": "Not_Valid"}}),
        cause: (
            "FieldValueInvalid",
            "metadata.name",
            "Invalid value: \"Not_Valid\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ),
        change: || json!({"automountServiceAccountToken": false}),
        generation: Generation::Absent,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: true,
        status: None,
    },
    Fixture {
        group: "apps",
        version: "v1",
        plural: "deployments",
        valid: || {
            json!({"spec": {
                "selector": {"matchLabels": {"app": "conformance"}},
                "template": template(json!({"app": "conformance"})),
            }})
        },
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "spec": {
                "replicas": -1,
                "selector": {"matchLabels": {"app": "conformance"}},
                "template": template(json!({"app": "conformance"})),
            }})
        },
        cause: (
            "FieldValueInvalid",
            "spec.replicas",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
        change: || json!({"spec": {"replicas": 3}}),
        generation: Generation::Tracked,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: Some(StatusFixture {
            change: |mark| json!({"status": {"replicas": 1, "conditions": [condition("Available", mark)]}}),
            ignored: || json!({"spec": {"replicas": 3}}),
            kept_on_create: false,
        }),
    },
    Fixture {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        valid: || {
            json!({"spec": {
                "selector": {"matchLabels": {"app": "conformance"}},
                "template": template(json!({"app": "conformance"})),
            }})
        },
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "spec": {
                "replicas": -1,
                "selector": {"matchLabels": {"app": "conformance"}},
                "template": template(json!({"app": "conformance"})),
            }})
        },
        cause: (
            "FieldValueInvalid",
            "spec.replicas",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
        change: || json!({"spec": {"replicas": 3}}),
        generation: Generation::Tracked,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: Some(StatusFixture {
            change: |mark| json!({"status": {"replicas": 1, "conditions": [condition("ReplicaFailure", mark)]}}),
            ignored: || json!({"spec": {"replicas": 3}}),
            kept_on_create: false,
        }),
    },
    Fixture {
        group: "batch",
        version: "v1",
        plural: "cronjobs",
        valid: || {
            json!({"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": job_template()}}}})
        },
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "spec": {
                "schedule": "61 * * * *",
                "jobTemplate": {"spec": {"template": job_template()}},
            }})
        },
        cause: (
            "FieldValueInvalid",
            "spec.schedule",
            "Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61",
        ),
        change: || json!({"spec": {"schedule": "@hourly"}}),
        generation: Generation::Tracked,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: Some(StatusFixture {
            change: |mark| {
                json!({"status": {"active": [{"kind": "Job", "name": mark}], "lastScheduleTime": "2025-01-01T00:00:00Z"}})
            },
            ignored: || json!({"spec": {"suspend": true}}),
            kept_on_create: false,
        }),
    },
    Fixture {
        group: "batch",
        version: "v1",
        plural: "jobs",
        valid: || json!({"spec": {"template": job_template()}}),
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "spec": {
                "parallelism": -1,
                "template": job_template(),
            }})
        },
        cause: (
            "FieldValueInvalid",
            "spec.parallelism",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
        change: || json!({"spec": {"parallelism": 3}}),
        generation: Generation::Tracked,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: Some(StatusFixture {
            change: |mark| json!({"status": {"active": 1, "conditions": [condition("Suspended", mark)]}}),
            ignored: || json!({"spec": {"parallelism": 3}}),
            kept_on_create: false,
        }),
    },
    Fixture {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        valid: || {
            json!({"spec": {
                "selector": {"matchLabels": {"app": "conformance"}},
                "template": template(json!({"app": "conformance"})),
            }})
        },
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "spec": {
                "minReadySeconds": -1,
                "selector": {"matchLabels": {"app": "conformance"}},
                "template": template(json!({"app": "conformance"})),
            }})
        },
        cause: (
            "FieldValueInvalid",
            "spec.minReadySeconds",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
        change: || json!({"spec": {"minReadySeconds": 3}}),
        generation: Generation::Tracked,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: Some(StatusFixture {
            change: |mark| json!({"status": {"numberReady": 1, "conditions": [condition("Stalled", mark)]}}),
            ignored: || json!({"spec": {"minReadySeconds": 3}}),
            kept_on_create: false,
        }),
    },
    Fixture {
        group: "",
        version: "v1",
        plural: "services",
        valid: || json!({"spec": {"ports": [{"port": 80}], "selector": {"app": "conformance"}}}),
        invalid: || json!({"metadata": {"name": "invalid"}, "spec": {"selector": {"app": "x"}}}),
        cause: ("FieldValueRequired", "spec.ports", "Required value"),
        change: || json!({"spec": {"publishNotReadyAddresses": true}}),
        generation: Generation::Absent,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: true,
        status: Some(StatusFixture {
            change: |mark| json!({"status": {"conditions": [condition("Checked", mark)]}}),
            ignored: || json!({"spec": {"publishNotReadyAddresses": true}}),
            kept_on_create: false,
        }),
    },
    Fixture {
        group: "",
        version: "v1",
        plural: "endpoints",
        valid: || json!({"subsets": [{"addresses": [{"ip": "10.1.0.1"}], "ports": [{"port": 80}]}]}),
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "subsets": [{"addresses": [{"ip": "not-an-ip"}]}]})
        },
        cause: (
            "FieldValueInvalid",
            "subsets[0].addresses[0].ip",
            "Invalid value: \"not-an-ip\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ),
        change: || {
            json!({"subsets": [{"addresses": [{"ip": "10.1.0.2"}], "ports": [{"port": 8080}]}]})
        },
        generation: Generation::Absent,
        create_on_update: true,
        unconditional_update: true,
        returns_deleted_object: false,
        status: None,
    },
    Fixture {
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        valid: || {
            json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.1.0.1"]}], "ports": [{"port": 80}]})
        },
        invalid: || json!({"metadata": {"name": "invalid"}, "addressType": "IPv5", "endpoints": []}),
        cause: (
            "FieldValueNotSupported",
            "addressType",
            "Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
        ),
        change: || json!({"endpoints": [{"addresses": ["10.1.0.2"]}]}),
        generation: Generation::Tracked,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: None,
    },
    Fixture {
        group: "certificates.k8s.io",
        version: "v1",
        plural: "certificatesigningrequests",
        valid: || {
            json!({"spec": {"request": CSR_REQUEST, "signerName": "example.com/conformance", "usages": ["client auth"]}})
        },
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "spec": {"request": CSR_REQUEST, "usages": ["client auth"]}})
        },
        cause: ("FieldValueRequired", "spec.signerName", "Required value"),
        // The spec is immutable (an update keeps the stored one): labels are what changes.
        change: || json!({"metadata": {"labels": {"changed": "yes"}}}),
        generation: Generation::Absent,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: Some(StatusFixture {
            change: |mark| json!({"status": {"conditions": [condition("Failed", mark)]}}),
            ignored: || json!({"spec": {"usages": ["server auth"]}}),
            kept_on_create: false,
        }),
    },
    Fixture {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        valid: || json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}),
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "spec": {"leaseDurationSeconds": 0}})
        },
        cause: (
            "FieldValueInvalid",
            "spec.leaseDurationSeconds",
            "Invalid value: 0: must be greater than 0",
        ),
        change: || json!({"spec": {"holderIdentity": "b"}}),
        generation: Generation::Absent,
        create_on_update: true,
        unconditional_update: false,
        returns_deleted_object: false,
        status: None,
    },
    Fixture {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "roles",
        valid: || json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]})
        },
        cause: (
            "FieldValueRequired",
            "rules[0].verbs",
            "Required value: verbs must contain at least one value",
        ),
        change: || json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
        generation: Generation::Absent,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: None,
    },
    Fixture {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterroles",
        valid: || json!({"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}),
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "rules": [{"verbs": ["get"], "resources": ["pods"]}]})
        },
        cause: (
            "FieldValueRequired",
            "rules[0].apiGroups",
            "Required value: resource rules must supply at least one api group",
        ),
        change: || json!({"rules": [{"nonResourceURLs": ["/livez"], "verbs": ["get"]}]}),
        generation: Generation::Absent,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: None,
    },
    Fixture {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "rolebindings",
        valid: || {
            json!({
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}],
            })
        },
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "roleRef": {"kind": "Pod", "name": "view"}})
        },
        cause: (
            "FieldValueNotSupported",
            "roleRef.kind",
            "Unsupported value: \"Pod\": supported values: \"Role\", \"ClusterRole\"",
        ),
        change: || {
            json!({"subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"}]})
        },
        generation: Generation::Absent,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: None,
    },
    Fixture {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterrolebindings",
        valid: || {
            json!({
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": "default"}],
            })
        },
        invalid: || {
            json!({
                "metadata": {"name": "invalid"},
                "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "ci"}],
            })
        },
        cause: ("FieldValueRequired", "subjects[0].namespace", "Required value"),
        change: || {
            json!({"subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"}]})
        },
        generation: Generation::Absent,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: None,
    },
    Fixture {
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        valid: || {
            json!({"spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "conformance"}}}})
        },
        invalid: || json!({"metadata": {"name": "invalid"}, "spec": {"minAvailable": -1}}),
        cause: (
            "FieldValueInvalid",
            "spec.minAvailable",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
        change: || json!({"spec": {"minAvailable": 2}}),
        generation: Generation::Tracked,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: Some(StatusFixture {
            change: |mark| {
                json!({"status": {
                    "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1,
                    "conditions": [condition("DisruptionAllowed", mark)],
                }})
            },
            ignored: || json!({"spec": {"minAvailable": 2}}),
            kept_on_create: false,
        }),
    },
    Fixture {
        group: "",
        version: "v1",
        plural: "replicationcontrollers",
        valid: || {
            json!({"spec": {
                "selector": {"app": "conformance"},
                "template": template(json!({"app": "conformance"})),
            }})
        },
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "spec": {
                "replicas": -1,
                "selector": {"app": "conformance"},
                "template": template(json!({"app": "conformance"})),
            }})
        },
        cause: (
            "FieldValueInvalid",
            "spec.replicas",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
        change: || json!({"spec": {"replicas": 3}}),
        generation: Generation::Tracked,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: Some(StatusFixture {
            change: |mark| json!({"status": {"replicas": 1, "conditions": [condition("ReplicaFailure", mark)]}}),
            ignored: || json!({"spec": {"replicas": 3}}),
            kept_on_create: false,
        }),
    },
    Fixture {
        group: "",
        version: "v1",
        plural: "podtemplates",
        valid: || json!({"template": template(json!({"app": "conformance"}))}),
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "template": {"spec": {"containers": [{"name": "c"}]}}})
        },
        cause: (
            "FieldValueRequired",
            "template.spec.containers[0].image",
            "Required value",
        ),
        change: || json!({"template": {"spec": {"terminationGracePeriodSeconds": 10}}}),
        // Bumped by every change of the template, as upstream's strategy does.
        generation: Generation::Tracked,
        create_on_update: false,
        unconditional_update: true,
        // Upstream's pod template storage sets `ReturnDeletedObject`.
        returns_deleted_object: true,
        status: None,
    },
    Fixture {
        group: "autoscaling",
        version: "v2",
        plural: "horizontalpodautoscalers",
        valid: || {
            json!({"spec": {"scaleTargetRef": scale_target(), "maxReplicas": 3}})
        },
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "spec": {
                "scaleTargetRef": scale_target(), "minReplicas": 3, "maxReplicas": 2,
            }})
        },
        cause: (
            "FieldValueInvalid",
            "spec.maxReplicas",
            "Invalid value: 2: must be greater than or equal to `minReplicas`",
        ),
        change: || json!({"spec": {"maxReplicas": 5}}),
        // v1.33's strategy keeps no generation (the `HPAGeneration` gate came later).
        generation: Generation::Absent,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: Some(StatusFixture {
            change: |mark| {
                json!({"status": {
                    "currentReplicas": 1, "desiredReplicas": 2,
                    "conditions": [condition("AbleToScale", mark)],
                }})
            },
            ignored: || json!({"spec": {"maxReplicas": 5}}),
            kept_on_create: false,
        }),
    },
    Fixture {
        group: "autoscaling",
        version: "v1",
        plural: "horizontalpodautoscalers",
        valid: || {
            json!({"spec": {
                "scaleTargetRef": scale_target(), "maxReplicas": 3,
                "targetCPUUtilizationPercentage": 50,
            }})
        },
        // Upstream validates the internal (v2-shaped) object v1 converts to, so the cause
        // names the metric the CPU target becomes.
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "spec": {
                "scaleTargetRef": scale_target(), "maxReplicas": 3,
                "targetCPUUtilizationPercentage": 0,
            }})
        },
        cause: (
            "FieldValueInvalid",
            "spec.metrics[0].resource.target.averageUtilization",
            "Invalid value: 0: must be greater than 0",
        ),
        change: || json!({"spec": {"maxReplicas": 5}}),
        generation: Generation::Absent,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: Some(StatusFixture {
            // The mark goes in the replica counts: upstream's v1 conversion takes current CPU
            // from the `current-metrics` annotation a read returns, ignoring the status field
            // when a client sends both back, so a changed CPU figure would not stick.
            change: |mark| {
                json!({"status": {
                    "currentReplicas": 1, "desiredReplicas": marked_figure(mark),
                }})
            },
            ignored: || json!({"spec": {"maxReplicas": 5}}),
            kept_on_create: false,
        }),
    },
    Fixture {
        group: "apps",
        version: "v1",
        plural: "controllerrevisions",
        valid: || {
            json!({"data": {"spec": {"template": template(json!({"app": "conformance"}))}}, "revision": 1})
        },
        invalid: || json!({"metadata": {"name": "invalid"}, "revision": 1}),
        cause: ("FieldValueRequired", "data", "Required value: data is mandatory"),
        // `data` is immutable; a rollback renumbers a revision, which is what changes.
        change: || json!({"revision": 2}),
        generation: Generation::Absent,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: None,
    },
    Fixture {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        valid: || {
            json!({"spec": {
                "serviceName": "conformance",
                "selector": {"matchLabels": {"app": "conformance"}},
                "template": template(json!({"app": "conformance"})),
            }})
        },
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "spec": {
                "replicas": -1,
                "serviceName": "conformance",
                "selector": {"matchLabels": {"app": "conformance"}},
                "template": template(json!({"app": "conformance"})),
            }})
        },
        cause: (
            "FieldValueInvalid",
            "spec.replicas",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
        // One of the few spec fields an update may change.
        change: || json!({"spec": {"replicas": 3}}),
        generation: Generation::Tracked,
        create_on_update: false,
        unconditional_update: true,
        returns_deleted_object: false,
        status: Some(StatusFixture {
            change: |mark| json!({"status": {"replicas": 1, "conditions": [condition("Available", mark)]}}),
            ignored: || json!({"spec": {"replicas": 3}}),
            kept_on_create: false,
        }),
    },
    Fixture {
        group: "",
        version: "v1",
        plural: "persistentvolumeclaims",
        valid: || {
            json!({"spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            }})
        },
        invalid: || {
            json!({"metadata": {"name": "invalid"}, "spec": {
                "resources": {"requests": {"storage": "1Gi"}},
            }})
        },
        cause: (
            "FieldValueRequired",
            "spec.accessModes",
            "Required value: at least 1 access mode is required",
        ),
        // The spec is immutable but for binding an unbound claim to a volume, once.
        change: || json!({"spec": {"volumeName": "pv-conformance"}}),
        generation: Generation::Absent,
        create_on_update: false,
        unconditional_update: true,
        // Upstream's claim storage sets `ReturnDeletedObject`.
        returns_deleted_object: true,
        status: Some(StatusFixture {
            change: |mark| {
                json!({"status": {"phase": "Bound", "conditions": [condition("Resizing", mark)]}})
            },
            ignored: || json!({"spec": {"volumeName": "pv-ignored"}}),
            kept_on_create: false,
        }),
    },
];

pub fn fixture(group: &str, version: &str, plural: &str) -> Option<&'static Fixture> {
    FIXTURES
        .iter()
        .find(|f| f.group == group && f.version == version && f.plural == plural)
}
