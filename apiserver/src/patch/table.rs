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

/// One field's patch metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldMeta {
    /// The OpenAPI definition holding the field, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub definition: &'static str,
    pub field: &'static str,
    /// `merge`, `retainKeys` or `merge,retainKeys`.
    pub strategy: &'static str,
    /// Key of the list items a `merge` list merges by; empty for lists of primitives.
    pub merge_key: &'static str,
    /// Keys identifying items for server-side apply, when more than the merge key.
    pub map_keys: &'static [&'static str],
}

const fn merge(definition: &'static str, field: &'static str, merge_key: &'static str) -> FieldMeta {
    FieldMeta { definition, field, strategy: "merge", merge_key, map_keys: &[] }
}

const fn merge_keys(definition: &'static str, field: &'static str, merge_key: &'static str, map_keys: &'static [&'static str]) -> FieldMeta {
    FieldMeta { definition, field, strategy: "merge", merge_key, map_keys }
}

const fn with_strategy(definition: &'static str, field: &'static str, strategy: &'static str, merge_key: &'static str) -> FieldMeta {
    FieldMeta { definition, field, strategy, merge_key, map_keys: &[] }
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
    merge_keys(core!("PodSpec"), "topologySpreadConstraints", "topologyKey", &["topologyKey", "whenUnsatisfiable"]),
    with_strategy(core!("PodSpec"), "resourceClaims", "merge,retainKeys", "name"),
    merge(core!("PodSpec"), "schedulingGates", "name"),
    merge_keys(core!("Container"), "ports", "containerPort", &["containerPort", "protocol"]),
    merge(core!("Container"), "env", "name"),
    merge(core!("Container"), "volumeMounts", "mountPath"),
    merge(core!("Container"), "volumeDevices", "devicePath"),
    merge_keys(core!("EphemeralContainer"), "ports", "containerPort", &["containerPort", "protocol"]),
    merge(core!("EphemeralContainer"), "env", "name"),
    merge(core!("EphemeralContainer"), "volumeMounts", "mountPath"),
    merge(core!("EphemeralContainer"), "volumeDevices", "devicePath"),
    merge(core!("PodStatus"), "conditions", "type"),
    merge(core!("PodStatus"), "podIPs", "ip"),
    merge(core!("PodStatus"), "hostIPs", "ip"),
    with_strategy(core!("PodStatus"), "resourceClaimStatuses", "merge,retainKeys", "name"),
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
    FIELDS.iter().find(|f| f.definition == definition && f.field == field)
}
