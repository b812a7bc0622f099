//! `NodeRestriction`: narrows what the Node authorizer lets every node do to what concerns
//! that node. A node may write only its own Node (without taints changes or labels outside
//! the kubelet's set), its own Lease, the status of pods bound to it, evictions and deletions
//! of those pods, mirror pods bound to itself that reference nothing else, and tokens bound
//! to pods it runs. Requests of anyone who is not a node pass untouched.
//!
//! kubeadm enables it next to `--authorization-mode=Node,RBAC`; upstream leaves it off unless
//! named in `--enable-admission-plugins`, and so does this server.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::service_account::MIRROR_POD;
use super::{Attributes, Lookup, Operation, Plugin};
use crate::authz::node::graph::{uses_of, Kind};
use crate::authz::node::{node_identity, NODE_LEASE_NAMESPACE};
use crate::error::{ApiError, ApiResult, Target};

/// The label namespace only administrators may set on nodes (workloads steer by it).
const RESTRICTED_LABELS: &str = "node-restriction.kubernetes.io";
/// The `kubernetes.io`/`k8s.io` labels a kubelet sets on its own Node.
const KUBELET_LABELS: [&str; 11] = [
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];
/// Label namespaces (and their subdomains) a kubelet may use freely.
const KUBELET_LABEL_NAMESPACES: [&str; 2] = ["kubelet.kubernetes.io", "node.kubernetes.io"];

pub struct NodeRestriction {
    /// Where the pods a request names are read (evictions, deletions, bound tokens).
    lookup: Arc<Lookup>,
}

impl NodeRestriction {
    pub fn new(lookup: Arc<Lookup>) -> Self {
        NodeRestriction { lookup }
    }

    /// The stored pod `name` in the request's namespace, or upstream's 404 for it.
    async fn pod(&self, attributes: &Attributes<'_>, name: &str) -> ApiResult<Value> {
        let namespace = attributes.namespace.unwrap_or_default();
        let found = self
            .lookup
            .get(&format!("/pods/{namespace}/{name}"))
            .await?;
        found
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .ok_or_else(|| {
                ApiError::NotFound(Target {
                    group: String::new(),
                    resource: "pods".into(),
                    kind: "Pod".into(),
                    name: name.into(),
                })
            })
    }

    async fn node_uid(&self, node: &str) -> ApiResult<Option<String>> {
        let found = self.lookup.get(&format!("/nodes/{node}")).await?;
        Ok(found.and_then(|raw| {
            let node: Value = serde_json::from_slice(&raw).ok()?;
            node.pointer("/metadata/uid")?.as_str().map(String::from)
        }))
    }

    async fn admit_pod(&self, node: &str, attributes: &Attributes<'_>) -> ApiResult<()> {
        match attributes.operation {
            Operation::Create => self.admit_mirror_pod(node, attributes).await,
            Operation::Delete => {
                let pod = match attributes.old_object()? {
                    Some(pod) => pod.clone(),
                    None => self.pod(attributes, attributes.name).await?,
                };
                if node_name(&pod) != node {
                    return Err(attributes.forbidden(format!(
                        "node {node:?} can only delete pods with spec.nodeName set to itself"
                    )));
                }
                Ok(())
            }
            other => Err(attributes.forbidden(format!(
                "unexpected operation {:?}, node {node:?} can only create and delete mirror pods",
                other.as_str()
            ))),
        }
    }

    /// Nodes create only mirror pods: bound to themselves, controlled by their Node, and
    /// using no other object (nothing the node could not read anyway).
    async fn admit_mirror_pod(&self, node: &str, attributes: &Attributes<'_>) -> ApiResult<()> {
        let Some(pod) = attributes.object()? else {
            return Ok(());
        };
        let refuse = |reason: String| Err(attributes.forbidden(reason));
        if pod
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(MIRROR_POD))
            .is_none()
        {
            return refuse(format!(
                "pod does not have {MIRROR_POD:?} annotation, node {node:?} can only create mirror pods"
            ));
        }
        if node_name(pod) != node {
            return refuse(format!(
                "node {node:?} can only create pods with spec.nodeName set to itself"
            ));
        }
        let owners = pod
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let owner = match owners {
            [] => {
                return refuse(format!(
                    "node {node:?} can only create pods with an owner reference set to itself"
                ))
            }
            [owner] => owner,
            _ => {
                return refuse(format!(
                    "node {node:?} can only create pods with a single owner reference set to itself"
                ))
            }
        };
        let text = |field: &str| owner[field].as_str().unwrap_or("");
        if text("apiVersion") != "v1" || text("kind") != "Node" || text("name") != node {
            return refuse(format!(
                "node {node:?} can only create pods with an owner reference set to itself"
            ));
        }
        if owner["controller"].as_bool() != Some(true) {
            return refuse(format!(
                "node {node:?} can only create pods with a controller owner reference set to itself"
            ));
        }
        if owner["blockOwnerDeletion"].as_bool() == Some(true) {
            return refuse(format!(
                "node {node:?} must not set blockOwnerDeletion on an owner reference"
            ));
        }
        let Some(uid) = self.node_uid(node).await? else {
            return Err(ApiError::NotFound(Target {
                group: String::new(),
                resource: "nodes".into(),
                kind: "Node".into(),
                name: node.into(),
            }));
        };
        if uid != text("uid") {
            return refuse(format!(
                "node {node} UID mismatch: expected {} got {uid}",
                text("uid")
            ));
        }
        if pod
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .is_some_and(|name| !name.is_empty())
        {
            return refuse(format!(
                "node {node:?} can not create pods that reference a service account"
            ));
        }
        let used = uses_of(pod).vertices;
        for (kind, what) in [
            (Kind::Secret, "secrets"),
            (Kind::ConfigMap, "configmaps"),
            (Kind::PersistentVolumeClaim, "persistentvolumeclaims"),
        ] {
            // A generic ephemeral volume's claim is created for the pod, not referenced.
            let referenced = used.iter().any(|v| v.kind == kind)
                && (kind != Kind::PersistentVolumeClaim || has_claim_volume(pod));
            if referenced {
                return refuse(format!(
                    "node {node:?} can not create pods that reference {what}"
                ));
            }
        }
        if pod
            .pointer("/spec/resourceClaims")
            .and_then(Value::as_array)
            .is_some_and(|claims| !claims.is_empty())
        {
            return refuse(format!(
                "node {node:?} can not create pods that reference resourceclaims"
            ));
        }
        Ok(())
    }

    async fn admit_eviction(&self, node: &str, attributes: &Attributes<'_>) -> ApiResult<()> {
        if attributes.operation != Operation::Create {
            return Err(attributes.forbidden(format!(
                "unexpected operation {:?}",
                attributes.operation.as_str()
            )));
        }
        let posted = attributes
            .object()?
            .and_then(|e| e.pointer("/metadata/name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = match (attributes.name, posted) {
            ("", "") => {
                return Err(attributes.forbidden("could not determine pod from request data"))
            }
            ("", posted) => posted,
            (name, _) => name,
        };
        let pod = self.pod(attributes, name).await?;
        if node_name(&pod) != node {
            return Err(attributes.forbidden(format!(
                "node {node} can only evict pods with spec.nodeName set to itself"
            )));
        }
        Ok(())
    }

    /// Tokens a node asks for must be bound to a pod it runs, so a node cannot mint tokens
    /// for accounts it has no pod of.
    async fn admit_token(&self, node: &str, attributes: &Attributes<'_>) -> ApiResult<()> {
        let reference = attributes
            .object()?
            .and_then(|request| request.pointer("/spec/boundObjectRef"))
            .cloned()
            .unwrap_or(Value::Null);
        let text = |field: &str| reference[field].as_str().unwrap_or("").to_string();
        if reference.is_null()
            || text("apiVersion") != "v1"
            || text("kind") != "Pod"
            || text("name").is_empty()
        {
            return Err(attributes.forbidden("node requested token not bound to a pod"));
        }
        let uid = text("uid");
        if uid.is_empty() {
            return Err(
                attributes.forbidden("node requested token with a pod binding without a uid")
            );
        }
        let pod = self.pod(attributes, &text("name")).await?;
        if pod.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid.as_str()) {
            return Err(attributes.forbidden(format!(
                "the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
            )));
        }
        if node_name(&pod) != node {
            return Err(attributes
                .forbidden("node requested token bound to a pod scheduled on a different node"));
        }
        Ok(())
    }
}

/// A pod's `spec.nodeName`.
fn node_name(pod: &Value) -> &str {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn has_claim_volume(pod: &Value) -> bool {
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|volume| volume.get("persistentVolumeClaim").is_some())
}

fn admit_status(node: &str, attributes: &Attributes<'_>) -> ApiResult<()> {
    if attributes.operation != Operation::Update {
        return Err(attributes.forbidden(format!(
            "unexpected operation {:?}",
            attributes.operation.as_str()
        )));
    }
    let old = attributes.old_object()?.cloned().unwrap_or(Value::Null);
    if node_name(&old) != node {
        return Err(attributes.forbidden(format!(
            "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
        )));
    }
    let new = attributes.object()?.cloned().unwrap_or(Value::Null);
    if labels(&new) != labels(&old) {
        return Err(attributes.forbidden(format!(
            "node {node:?} cannot update labels through pod status"
        )));
    }
    let claims = |pod: &Value| pod.pointer("/status/resourceClaimStatuses").cloned();
    if claims(&new) != claims(&old) {
        return Err(attributes.forbidden(format!(
            "node {node:?} cannot update resource claim statues"
        )));
    }
    Ok(())
}

fn labels(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A node's own Node only; on create without labels it may not set, on update without
/// changing its taints or such labels (either would let a node steer workloads to itself).
fn admit_node(node: &str, attributes: &Attributes<'_>) -> ApiResult<()> {
    if attributes.name != node {
        return Err(attributes.forbidden(format!(
            "node {node:?} is not allowed to modify node {:?}",
            attributes.name
        )));
    }
    let new = attributes.object()?.cloned().unwrap_or(Value::Null);
    match attributes.operation {
        Operation::Create => {
            let forbidden = forbidden_labels(labels(&new).keys());
            if !forbidden.is_empty() {
                return Err(attributes.forbidden(format!(
                    "node {node:?} is not allowed to set the following labels: {}",
                    forbidden.join(", ")
                )));
            }
        }
        Operation::Update => {
            let old = attributes.old_object()?.cloned().unwrap_or(Value::Null);
            let taints = |n: &Value| n.pointer("/spec/taints").cloned().filter(|t| !t.is_null());
            let no_taints = |t: &Option<Value>| {
                t.as_ref()
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty)
            };
            let (new_taints, old_taints) = (taints(&new), taints(&old));
            if new_taints != old_taints && !(no_taints(&new_taints) && no_taints(&old_taints)) {
                return Err(
                    attributes.forbidden(format!("node {node:?} is not allowed to modify taints"))
                );
            }
            let (new_labels, old_labels) = (labels(&new), labels(&old));
            let modified = new_labels
                .iter()
                .filter(|(k, v)| old_labels.get(*k) != Some(v))
                .map(|(k, _)| k)
                .chain(old_labels.keys().filter(|k| !new_labels.contains_key(*k)));
            let forbidden = forbidden_labels(modified);
            if !forbidden.is_empty() {
                return Err(attributes.forbidden(format!(
                    "node {node:?} is not allowed to modify labels: {}",
                    forbidden.join(", ")
                )));
            }
        }
        Operation::Delete | Operation::Connect => {}
    }
    Ok(())
}

/// The labels among `keys` a kubelet may not set, sorted: anything under
/// `node-restriction.kubernetes.io`, and `kubernetes.io`/`k8s.io` labels outside the
/// kubelet's own set.
fn forbidden_labels<'k>(keys: impl Iterator<Item = &'k String>) -> Vec<String> {
    let mut forbidden: Vec<String> = keys
        .filter(|key| {
            let namespace = key.split_once('/').map_or("", |(n, _)| n);
            let under =
                |domain: &str| namespace == domain || namespace.ends_with(&format!(".{domain}"));
            under(RESTRICTED_LABELS)
                || ((under("kubernetes.io") || under("k8s.io"))
                    && !KUBELET_LABELS.contains(&key.as_str())
                    && !KUBELET_LABEL_NAMESPACES.iter().any(|n| under(n)))
        })
        .cloned()
        .collect();
    forbidden.sort();
    forbidden.dedup();
    forbidden
}

/// Leases: only the node's own, in `kube-node-lease`.
fn admit_lease(node: &str, attributes: &Attributes<'_>) -> ApiResult<()> {
    if attributes.namespace != Some(NODE_LEASE_NAMESPACE) {
        return Err(attributes.forbidden(format!(
            "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
        )));
    }
    let name = match attributes.operation {
        Operation::Create => attributes
            .object()?
            .and_then(|l| l.pointer("/metadata/name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        _ => attributes.name.to_string(),
    };
    if name != node {
        return Err(attributes
            .forbidden("can only access node lease with the same name as the requesting node"));
    }
    Ok(())
}

#[async_trait]
impl Plugin for NodeRestriction {
    fn handles(&self, attributes: &Attributes<'_>) -> bool {
        if node_identity(attributes.user).is_none() {
            return false;
        }
        let resource = &attributes.resource;
        match (resource.group, resource.resource) {
            ("", "pods" | "nodes") => true,
            ("", "serviceaccounts") => {
                attributes.operation == Operation::Create && attributes.subresource == Some("token")
            }
            ("coordination.k8s.io", "leases") => true,
            _ => false,
        }
    }

    async fn admit(&self, attributes: &mut Attributes<'_>) -> ApiResult<()> {
        let node = node_identity(attributes.user).unwrap_or("").to_string();
        if node.is_empty() {
            return Err(attributes.forbidden(format!(
                "could not determine node from user {:?}",
                attributes.user.name
            )));
        }
        let attributes = &*attributes;
        match (attributes.resource.resource, attributes.subresource) {
            ("pods", None) => self.admit_pod(&node, attributes).await,
            ("pods", Some("status")) => admit_status(&node, attributes),
            ("pods", Some("eviction")) => self.admit_eviction(&node, attributes).await,
            ("pods", Some(other)) => {
                Err(attributes.forbidden(format!("unexpected subresource {other:?}")))
            }
            ("nodes", _) => admit_node(&node, attributes),
            ("serviceaccounts", _) => self.admit_token(&node, attributes).await,
            ("leases", _) => admit_lease(&node, attributes),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::tests::{attributes, pod_attributes, user, Fixture};
    use crate::admission::Object;
    use crate::authn::UserInfo;
    use serde_json::json;

    fn node_user(name: &str) -> UserInfo {
        UserInfo {
            name: format!("system:node:{name}"),
            uid: String::new(),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
            extra: Default::default(),
        }
    }

    async fn refusal(plugin: &NodeRestriction, attributes: &mut Attributes<'_>) -> String {
        assert!(plugin.handles(attributes));
        plugin.admit(attributes).await.unwrap_err().to_string()
    }

    #[tokio::test]
    async fn nodes_write_only_their_own_pods() {
        let fixture = Fixture::new().await;
        let plugin = NodeRestriction::new(fixture.lookup());
        let a = node_user("a");
        let on_b =
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"nodeName": "b"}});
        let on_a =
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"nodeName": "a"}});

        let mut status = pod_attributes(Operation::Update, &on_b, Some(&on_b), &a);
        status.subresource = Some("status");
        assert_eq!(
            refusal(&plugin, &mut status).await,
            r#"pods "web" is forbidden: node "a" can only update pod status for pods with spec.nodeName set to itself"#
        );
        let mut own = pod_attributes(Operation::Update, &on_a, Some(&on_a), &a);
        own.subresource = Some("status");
        plugin.admit(&mut own).await.unwrap();

        let mut delete = pod_attributes(Operation::Delete, &Value::Null, Some(&on_b), &a);
        delete.name = "web";
        assert_eq!(
            refusal(&plugin, &mut delete).await,
            r#"pods "web" is forbidden: node "a" can only delete pods with spec.nodeName set to itself"#
        );
        let mut create = pod_attributes(Operation::Create, &on_a, None, &a);
        assert_eq!(
            refusal(&plugin, &mut create).await,
            r#"pods "web" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "a" can only create mirror pods"#
        );
        let mut update = pod_attributes(Operation::Update, &on_a, Some(&on_a), &a);
        assert_eq!(
            refusal(&plugin, &mut update).await,
            r#"pods "web" is forbidden: unexpected operation "UPDATE", node "a" can only create and delete mirror pods"#
        );

        fixture.put("/pods/default/web", &on_b.to_string()).await;
        let mut eviction = attributes(Operation::Create, "pods", Some("default"), "web", &a);
        eviction.subresource = Some("eviction");
        eviction.object = Object::json(json!({"metadata": {"name": "web"}}));
        assert_eq!(
            refusal(&plugin, &mut eviction).await,
            r#"pods "web" is forbidden: node a can only evict pods with spec.nodeName set to itself"#
        );

        let admin = user();
        let mut anyone = pod_attributes(Operation::Update, &on_b, Some(&on_b), &admin);
        anyone.subresource = Some("status");
        assert!(!plugin.handles(&anyone), "only nodes are restricted");
    }

    #[tokio::test]
    async fn nodes_keep_to_their_own_node_and_lease() {
        let fixture = Fixture::new().await;
        let plugin = NodeRestriction::new(fixture.lookup());
        let a = node_user("a");

        let mut other = attributes(Operation::Update, "nodes", None, "b", &a);
        assert_eq!(
            refusal(&plugin, &mut other).await,
            r#"nodes "b" is forbidden: node "a" is not allowed to modify node "b""#
        );
        let mut labelled = attributes(Operation::Create, "nodes", None, "a", &a);
        labelled.object = Object::json(json!({"metadata": {"name": "a", "labels": {
            "kubernetes.io/hostname": "a",
            "node.kubernetes.io/exclude-from-external-load-balancers": "",
            "node-restriction.kubernetes.io/pci": "yes",
            "node-role.kubernetes.io/control-plane": "",
            "example.com/rack": "7"
        }}}));
        assert_eq!(
            refusal(&plugin, &mut labelled).await,
            r#"nodes "a" is forbidden: node "a" is not allowed to set the following labels: node-restriction.kubernetes.io/pci, node-role.kubernetes.io/control-plane"#
        );
        let old = json!({"metadata": {"name": "a"}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}});
        let mut untainted = attributes(Operation::Update, "nodes", None, "a", &a);
        untainted.object = Object::json(json!({"metadata": {"name": "a"}, "spec": {}}));
        untainted.old_object = Object::json(old);
        assert_eq!(
            refusal(&plugin, &mut untainted).await,
            r#"nodes "a" is forbidden: node "a" is not allowed to modify taints"#
        );

        let mut lease = attributes(
            Operation::Update,
            "leases",
            Some("kube-node-lease"),
            "b",
            &a,
        );
        lease.resource.group = "coordination.k8s.io";
        assert_eq!(
            refusal(&plugin, &mut lease).await,
            r#"leases.coordination.k8s.io "b" is forbidden: can only access node lease with the same name as the requesting node"#
        );
        let mut own = attributes(Operation::Create, "leases", Some("kube-node-lease"), "", &a);
        own.resource.group = "coordination.k8s.io";
        own.object = Object::json(json!({"metadata": {"name": "a"}}));
        plugin.admit(&mut own).await.unwrap();
    }

    #[tokio::test]
    async fn node_tokens_are_bound_to_their_pods() {
        let fixture = Fixture::new().await;
        let plugin = NodeRestriction::new(fixture.lookup());
        let a = node_user("a");
        fixture
            .put(
                "/pods/default/web",
                r#"{"metadata": {"name": "web", "uid": "u1"}, "spec": {"nodeName": "b"}}"#,
            )
            .await;
        let mut unbound = attributes(
            Operation::Create,
            "serviceaccounts",
            Some("default"),
            "default",
            &a,
        );
        unbound.subresource = Some("token");
        unbound.object = Object::json(json!({"spec": {}}));
        assert_eq!(
            refusal(&plugin, &mut unbound).await,
            r#"serviceaccounts "default" is forbidden: node requested token not bound to a pod"#
        );
        let mut elsewhere = attributes(
            Operation::Create,
            "serviceaccounts",
            Some("default"),
            "default",
            &a,
        );
        elsewhere.subresource = Some("token");
        elsewhere.object = Object::json(json!({"spec": {"boundObjectRef": {
            "apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "u1"}}}));
        assert_eq!(
            refusal(&plugin, &mut elsewhere).await,
            r#"serviceaccounts "default" is forbidden: node requested token bound to a pod scheduled on a different node"#
        );
    }
}
