//! Upstream's patch metadata for built-in types: which lists merge (and by which key), which
//! structs keep only the keys a patch names (`retainKeys`), and the list-map keys of
//! associative lists. These are the `x-kubernetes-patch-strategy`,
//! `x-kubernetes-patch-merge-key`, `x-kubernetes-list-type` and `x-kubernetes-list-map-keys`
//! values upstream's OpenAPI documents publish (from the `patchStrategy`/`patchMergeKey`
//! struct tags and `+listType` markers of k8s.io/api); every field not listed is replaced
//! whole by a strategic merge patch and atomic for server-side apply.
//!
//! One table serves strategic merge patch, server-side apply and the OpenAPI extensions, so
//! the server and kubectl (which computes client-side apply patches from our OpenAPI) agree.
//! Beside it, the few other type facts server-side apply needs and the schemas cannot say:
//! structs and maps owned as a whole (`+structType=atomic`, `+mapType=atomic`), defaults of
//! list-map keys, and the shape of the empty object a create starts from.

use serde_json::{json, Value};

/// One field's patch metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldMeta {
    /// The OpenAPI definition holding the field, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub definition: &'static str,
    pub field: &'static str,
    /// `merge`, `retainKeys` or `merge,retainKeys`; empty for lists that are associative for
    /// server-side apply only (`+listType=map` without a patch strategy).
    pub strategy: &'static str,
    /// Key of the list items a `merge` list merges by; empty for lists of primitives.
    pub merge_key: &'static str,
    /// Keys identifying items for server-side apply, when more than the merge key.
    pub map_keys: &'static [&'static str],
}

const fn merge(
    definition: &'static str,
    field: &'static str,
    merge_key: &'static str,
) -> FieldMeta {
    FieldMeta {
        definition,
        field,
        strategy: "merge",
        merge_key,
        map_keys: &[],
    }
}

const fn merge_keys(
    definition: &'static str,
    field: &'static str,
    merge_key: &'static str,
    map_keys: &'static [&'static str],
) -> FieldMeta {
    FieldMeta {
        definition,
        field,
        strategy: "merge",
        merge_key,
        map_keys,
    }
}

const fn list_map(
    definition: &'static str,
    field: &'static str,
    map_keys: &'static [&'static str],
) -> FieldMeta {
    FieldMeta {
        definition,
        field,
        strategy: "",
        merge_key: "",
        map_keys,
    }
}

const fn with_strategy(
    definition: &'static str,
    field: &'static str,
    strategy: &'static str,
    merge_key: &'static str,
) -> FieldMeta {
    FieldMeta {
        definition,
        field,
        strategy,
        merge_key,
        map_keys: &[],
    }
}

macro_rules! core {
    ($name:literal) => {
        concat!("io.k8s.api.core.v1.", $name)
    };
}

macro_rules! apps {
    ($name:literal) => {
        concat!("io.k8s.api.apps.v1.", $name)
    };
}

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Every field with non-default patch metadata.
pub const FIELDS: &[FieldMeta] = &[
    merge(META, "finalizers", ""),
    merge(META, "ownerReferences", "uid"),
    // Pods and pod templates.
    with_strategy(core!("PodSpec"), "volumes", "merge,retainKeys", "name"),
    merge(core!("PodSpec"), "initContainers", "name"),
    merge(core!("PodSpec"), "containers", "name"),
    merge(core!("PodSpec"), "ephemeralContainers", "name"),
    merge(core!("PodSpec"), "imagePullSecrets", "name"),
    merge(core!("PodSpec"), "hostAliases", "ip"),
    merge_keys(
        core!("PodSpec"),
        "topologySpreadConstraints",
        "topologyKey",
        &["topologyKey", "whenUnsatisfiable"],
    ),
    with_strategy(
        core!("PodSpec"),
        "resourceClaims",
        "merge,retainKeys",
        "name",
    ),
    merge(core!("PodSpec"), "schedulingGates", "name"),
    merge_keys(
        core!("Container"),
        "ports",
        "containerPort",
        &["containerPort", "protocol"],
    ),
    list_map(core!("ResourceRequirements"), "claims", &["name"]),
    merge(core!("Container"), "env", "name"),
    merge(core!("Container"), "volumeMounts", "mountPath"),
    merge(core!("Container"), "volumeDevices", "devicePath"),
    merge_keys(
        core!("EphemeralContainer"),
        "ports",
        "containerPort",
        &["containerPort", "protocol"],
    ),
    merge(core!("EphemeralContainer"), "env", "name"),
    merge(core!("EphemeralContainer"), "volumeMounts", "mountPath"),
    merge(core!("EphemeralContainer"), "volumeDevices", "devicePath"),
    merge(core!("PodStatus"), "conditions", "type"),
    merge(core!("PodStatus"), "podIPs", "ip"),
    merge(core!("PodStatus"), "hostIPs", "ip"),
    with_strategy(
        core!("PodStatus"),
        "resourceClaimStatuses",
        "merge,retainKeys",
        "name",
    ),
    // Nodes.
    merge(core!("NodeSpec"), "podCIDRs", ""),
    merge(core!("NodeStatus"), "conditions", "type"),
    merge(core!("NodeStatus"), "addresses", "type"),
    // Services, accounts, namespaces, volumes.
    merge_keys(core!("ServiceSpec"), "ports", "port", &["port", "protocol"]),
    merge(core!("ServiceAccount"), "secrets", "name"),
    merge(core!("NamespaceStatus"), "conditions", "type"),
    merge(core!("PersistentVolumeClaimStatus"), "conditions", "type"),
    merge(core!("ReplicationControllerStatus"), "conditions", "type"),
    merge(core!("ServiceStatus"), "conditions", "type"),
    // Workloads.
    with_strategy(apps!("DeploymentSpec"), "strategy", "retainKeys", ""),
    merge(apps!("DeploymentStatus"), "conditions", "type"),
    merge(apps!("ReplicaSetStatus"), "conditions", "type"),
    merge(apps!("StatefulSetStatus"), "conditions", "type"),
    merge(apps!("DaemonSetStatus"), "conditions", "type"),
    merge("io.k8s.api.batch.v1.JobStatus", "conditions", "type"),
];

/// The metadata of `field` in `definition`, if it has any.
pub fn lookup(definition: &str, field: &str) -> Option<&'static FieldMeta> {
    FIELDS
        .iter()
        .find(|f| f.definition == definition && f.field == field)
}

/// How server-side apply treats a list (upstream's `x-kubernetes-list-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// Replaced and owned as a whole: every list without metadata.
    Atomic,
    /// Primitive items owned one by one (`v:<value>`).
    Set,
    /// Object items owned one by one, identified by these keys (`k:{...}`).
    Map(&'static [&'static str]),
}

impl FieldMeta {
    /// The list type this metadata implies, as upstream derives `x-kubernetes-list-type` from
    /// `+listType` markers or, without them, from the patch strategy.
    pub fn list_type(&'static self) -> ListType {
        if !self.map_keys.is_empty() {
            ListType::Map(self.map_keys)
        } else if !self.merge_key.is_empty() {
            ListType::Map(std::slice::from_ref(&self.merge_key))
        } else if self.strategy.split(',').any(|s| s == "merge") {
            ListType::Set
        } else {
            ListType::Atomic
        }
    }
}

/// Structs owned as a whole (`+structType=atomic`): references and selectors, whose fields
/// mean something only together.
pub const ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
    core!("LocalObjectReference"),
    core!("ObjectReference"),
    core!("TypedLocalObjectReference"),
    core!("SecretReference"),
    core!("ConfigMapKeySelector"),
    core!("SecretKeySelector"),
    core!("ObjectFieldSelector"),
    core!("ResourceFieldSelector"),
    core!("ConfigMapEnvSource"),
    core!("SecretEnvSource"),
    core!("NodeSelector"),
    core!("NodeSelectorTerm"),
    core!("TopologySelectorTerm"),
];

/// Map fields owned as a whole (`+mapType=atomic`).
pub const ATOMIC_MAPS: &[(&str, &str)] = &[(core!("PodSpec"), "nodeSelector")];

/// Whether values of `definition` are owned as a whole.
pub fn atomic_struct(definition: &str) -> bool {
    ATOMIC_STRUCTS.contains(&definition)
}

/// Whether map field `field` of `definition` is owned as a whole.
pub fn atomic_map(definition: &str, field: &str) -> bool {
    ATOMIC_MAPS.contains(&(definition, field))
}

/// Defaults of list-map keys (`+default` on the key field): an applied port without a
/// protocol is the TCP port the server stores.
const KEY_DEFAULTS: &[(&str, &str, &str)] = &[
    (core!("ContainerPort"), "protocol", "TCP"),
    (core!("ServicePort"), "protocol", "TCP"),
];

/// The default of key field `field` of list items of type `definition`.
pub fn key_default(definition: &str, field: &str) -> Option<Value> {
    KEY_DEFAULTS
        .iter()
        .find(|(d, f, _)| *d == definition && *f == field)
        .map(|(_, _, v)| Value::from(*v))
}

/// The empty object a create starts from, as upstream's typed Go zero value serializes:
/// struct fields that are not pointers appear as `{}` and required lists as `null`. The
/// fields a create adds on top of it are what its manager owns, so `spec` and `template`
/// are not owned as such but a new `labels` map is (`.` in FieldsV1). Scalars do not matter.
pub fn zero_object(definition: &str) -> Value {
    let template = json!({"metadata": {}, "spec": {"containers": null}});
    let mut zero = json!({"metadata": {}});
    let extra = match definition {
        "io.k8s.api.core.v1.Pod" => json!({"spec": {"containers": null}, "status": {}}),
        "io.k8s.api.core.v1.Namespace"
        | "io.k8s.api.core.v1.Node"
        | "io.k8s.api.core.v1.PersistentVolumeClaim" => {
            json!({"spec": {}, "status": {}})
        }
        "io.k8s.api.core.v1.Service" => json!({"spec": {}, "status": {"loadBalancer": {}}}),
        "io.k8s.api.core.v1.ReplicationController" => json!({"spec": {}, "status": {}}),
        "io.k8s.api.core.v1.PodTemplate" => json!({"template": template}),
        "io.k8s.api.apps.v1.Deployment" => {
            json!({"spec": {"strategy": {}, "template": template}, "status": {}})
        }
        "io.k8s.api.apps.v1.ReplicaSet" | "io.k8s.api.batch.v1.Job" => {
            json!({"spec": {"template": template}, "status": {}})
        }
        "io.k8s.api.apps.v1.StatefulSet" | "io.k8s.api.apps.v1.DaemonSet" => {
            json!({"spec": {"template": template, "updateStrategy": {}}, "status": {}})
        }
        "io.k8s.api.batch.v1.CronJob" => {
            json!({"spec": {"jobTemplate": {"metadata": {}, "spec": {"template": template}}}, "status": {}})
        }
        _ => json!({}),
    };
    if let (Some(zero), Value::Object(extra)) = (zero.as_object_mut(), extra) {
        zero.extend(extra);
    }
    zero
}
