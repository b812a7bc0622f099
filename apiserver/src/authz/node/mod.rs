//! The Node authorizer (`--authorization-mode=Node`): what a kubelet, authenticated as
//! `system:node:<name>` in group `system:nodes`, may do. Reads of secrets, config maps,
//! claims and pods are allowed only for objects a pod bound to that node uses ([`graph`]);
//! its own Node and Lease by name; pods only through a `spec.nodeName=<node>` watch; and
//! everything else by the rules of upstream's `system:node` role, which no binding grants in
//! a kubeadm cluster: this authorizer is how nodes hold them. Writes a node may make only to
//! its own objects are narrowed further by the NodeRestriction admission plugin.
//!
//! The decisions and their reasons are upstream's (v1.33, with `AuthorizeNodeWithSelectors`
//! on, as it is by default).

pub mod graph;

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::PolicyRule;

use self::graph::{Graph, Kind, Vertex};
use super::rbac::rules;
use super::{Attributes, Decision, ResourceAttributes, RuleSet};
use crate::authn::UserInfo;

/// The group every node identity is in.
pub const NODES_GROUP: &str = "system:nodes";
/// The user-name prefix of node identities.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// Where node Leases live.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The node a user is, by upstream's node identifier: `Some("")` for a member of
/// `system:nodes` whose name does not say which node, `None` for anyone else.
pub fn node_identity(user: &UserInfo) -> Option<&str> {
    if !user.groups.iter().any(|g| g == NODES_GROUP) {
        return None;
    }
    Some(user.name.strip_prefix(NODE_USER_PREFIX).unwrap_or(""))
}

/// Authorizes nodes.
pub struct Authorizer {
    graph: Arc<Graph>,
    /// Upstream's `system:node` rules, for the requests not subdivided by object.
    rules: Vec<PolicyRule>,
}

impl Authorizer {
    pub fn new(graph: Arc<Graph>, rules: Vec<PolicyRule>) -> Self {
        Authorizer { graph, rules }
    }

    /// Allowed when a pod bound to `node` uses the named object.
    fn related(&self, node: &str, kind: Kind, resource: &ResourceAttributes) -> Decision {
        if resource.name.is_empty() {
            return no("No Object name found");
        }
        let vertex = Vertex {
            kind,
            namespace: resource.namespace.clone(),
            name: resource.name.clone(),
        };
        if self.graph.reaches(node, &vertex) {
            Decision::Allow
        } else {
            no(&format!(
                "no relationship found between node '{node}' and this object"
            ))
        }
    }

    fn read_namespaced(
        &self,
        node: &str,
        kind: Kind,
        verb: &str,
        r: &ResourceAttributes,
    ) -> Decision {
        if !matches!(verb, "get" | "list" | "watch") {
            return no("can only read resources of this type");
        }
        if !r.subresource.is_empty() {
            return no("cannot read subresource");
        }
        if r.namespace.is_empty() {
            return no("can only read namespaced object of this type");
        }
        self.related(node, kind, r)
    }

    fn get(&self, node: &str, kind: Kind, verb: &str, r: &ResourceAttributes) -> Decision {
        if verb != "get" {
            return no("can only get individual resources of this type");
        }
        if !r.subresource.is_empty() {
            return no("cannot get subresource");
        }
        self.related(node, kind, r)
    }

    fn claim(&self, node: &str, verb: &str, r: &ResourceAttributes) -> Decision {
        if r.subresource != "status" {
            return self.get(node, Kind::PersistentVolumeClaim, verb, r);
        }
        if !matches!(verb, "update" | "patch") {
            return no("can only get/update/patch this type");
        }
        self.related(node, Kind::PersistentVolumeClaim, r)
    }

    fn token(&self, node: &str, verb: &str, r: &ResourceAttributes) -> Decision {
        if verb != "create" || r.name.is_empty() {
            return no("can only create tokens for individual service accounts");
        }
        if r.subresource != "token" {
            return no("can only create token subresource of serviceaccount");
        }
        self.related(node, Kind::ServiceAccount, r)
    }

    fn pod(&self, node: &str, verb: &str, r: &ResourceAttributes) -> Decision {
        match (r.subresource.as_str(), verb) {
            ("", "get") => self.get(node, Kind::Pod, verb, r),
            ("", "list" | "watch") => {
                if r.field_equals
                    .iter()
                    .any(|(field, value)| field == "spec.nodeName" && value == node)
                {
                    Decision::Allow
                } else if !r.name.is_empty() {
                    self.related(node, Kind::Pod, r)
                } else {
                    no("can only list/watch pods with spec.nodeName field selector")
                }
            }
            // Mirror pods, status and evictions: NodeRestriction narrows them to the node's
            // own pods.
            ("", "create" | "delete") | ("status", "update" | "patch") | ("eviction", "create") => {
                Decision::Allow
            }
            _ => no(""),
        }
    }
}

/// Upstream's node authorizer answers "no opinion" (never an explicit deny), with a reason.
fn no(reason: &str) -> Decision {
    Decision::NoOpinion(reason.to_string())
}

/// Nodes: create and write their own (NodeRestriction checks which), read only their own by
/// name, so a kubelet can look for its Node before creating it.
fn node_object(node: &str, verb: &str, r: &ResourceAttributes) -> Decision {
    match (r.subresource.as_str(), verb) {
        ("", "create" | "update" | "patch") | ("status", "update" | "patch") => Decision::Allow,
        ("", "get" | "list" | "watch") => match r.name.as_str() {
            name if name == node => Decision::Allow,
            "" => no(&format!(
                "node '{node}' cannot read all nodes, only its own Node object"
            )),
            other => no(&format!(
                "node '{node}' cannot read '{other}', only its own Node object"
            )),
        },
        _ => no(""),
    }
}

/// Leases: only the node's own, in `kube-node-lease` (a create is checked by
/// NodeRestriction, as the name is in the body).
fn lease(node: &str, verb: &str, r: &ResourceAttributes) -> Decision {
    if !matches!(verb, "get" | "create" | "update" | "patch" | "delete") {
        return no("can only get, create, update, patch, or delete a node lease");
    }
    if r.namespace != NODE_LEASE_NAMESPACE {
        return no(&format!(
            "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
        ));
    }
    if verb != "create" && r.name != node {
        return no("can only access node lease with the same name as the requesting node");
    }
    Decision::Allow
}

impl super::Authorizer for Authorizer {
    fn authorize(&self, attributes: &Attributes) -> Decision {
        let Some(node) = node_identity(&attributes.user) else {
            return no("");
        };
        if node.is_empty() {
            return no(&format!("unknown node for user {:?}", attributes.user.name));
        }
        let verb = attributes.verb.as_str();
        if let Some(r) = &attributes.resource {
            let decided = match (r.group.as_str(), r.resource.as_str()) {
                ("", "secrets") => Some(self.read_namespaced(node, Kind::Secret, verb, r)),
                ("", "configmaps") => Some(self.read_namespaced(node, Kind::ConfigMap, verb, r)),
                ("", "persistentvolumeclaims") => Some(self.claim(node, verb, r)),
                ("resource.k8s.io", "resourceclaims") => {
                    Some(self.get(node, Kind::ResourceClaim, verb, r))
                }
                ("", "serviceaccounts") => Some(self.token(node, verb, r)),
                ("coordination.k8s.io", "leases") => Some(lease(node, verb, r)),
                ("", "nodes") => Some(node_object(node, verb, r)),
                ("", "pods") => Some(self.pod(node, verb, r)),
                _ => None,
            };
            if let Some(decision) = decided {
                return decision;
            }
        }
        if self
            .rules
            .iter()
            .any(|rule| rules::allows(rule, attributes))
        {
            Decision::Allow
        } else {
            no("")
        }
    }

    /// Upstream's node authorizer cannot list a node's permissions; it says so for nodes
    /// and adds nothing for anyone else.
    fn rules_for(&self, user: &UserInfo, _namespace: &str) -> RuleSet {
        match node_identity(user) {
            Some(_) => RuleSet {
                incomplete: true,
                errors: vec!["node authorizer does not support user rule resolution".into()],
                ..Default::default()
            },
            None => RuleSet::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::Authorizer as _;
    use axum::http::Method;
    use std::time::Duration;
    use store::Store;

    fn node_user(name: &str) -> UserInfo {
        UserInfo {
            name: format!("{NODE_USER_PREFIX}{name}"),
            uid: String::new(),
            groups: vec![NODES_GROUP.into(), "system:authenticated".into()],
            extra: Default::default(),
        }
    }

    fn decide(authorizer: &Authorizer, user: &UserInfo, method: Method, uri: &str) -> Decision {
        authorizer.authorize(&Attributes::of(user, &method, &uri.parse().unwrap()))
    }

    #[tokio::test]
    async fn nodes_read_what_their_pods_use_and_their_own_objects() {
        let dir = tempfile::tempdir().unwrap();
        let config = store::embedded::EmbeddedConfig::new(dir.path());
        let store: Arc<dyn Store> = Arc::new(store::embedded::EmbeddedStore::open(config).unwrap());
        let pod = serde_json::json!({
            "metadata": {"namespace": "shop", "name": "web"},
            "spec": {"nodeName": "a", "serviceAccountName": "default",
                     "volumes": [{"name": "s", "secret": {"secretName": "db"}}]}
        });
        store
            .create(b"/pods/shop/web", serde_json::to_vec(&pod).unwrap().into())
            .await
            .unwrap();
        let graph = Graph::start(store.clone());
        graph.ready().await.unwrap();
        let authorizer = Authorizer::new(
            graph.clone(),
            super::super::bootstrap::Policy::load()
                .unwrap()
                .node_rules()
                .unwrap(),
        );
        let (a, b) = (node_user("a"), node_user("b"));

        let secret = "/api/v1/namespaces/shop/secrets/db";
        assert_eq!(
            decide(&authorizer, &a, Method::GET, secret),
            Decision::Allow
        );
        assert_eq!(
            decide(&authorizer, &b, Method::GET, secret),
            no("no relationship found between node 'b' and this object")
        );
        assert_eq!(
            decide(&authorizer, &a, Method::DELETE, secret),
            no("can only read resources of this type")
        );
        assert_eq!(
            decide(
                &authorizer,
                &a,
                Method::GET,
                "/api/v1/namespaces/shop/secrets"
            ),
            no("No Object name found")
        );
        let token = "/api/v1/namespaces/shop/serviceaccounts/default/token";
        assert_eq!(
            decide(&authorizer, &a, Method::POST, token),
            Decision::Allow
        );

        assert_eq!(
            decide(
                &authorizer,
                &a,
                Method::GET,
                "/api/v1/pods?fieldSelector=spec.nodeName%3Da&watch=true"
            ),
            Decision::Allow
        );
        assert_eq!(
            decide(&authorizer, &a, Method::GET, "/api/v1/pods"),
            no("can only list/watch pods with spec.nodeName field selector")
        );
        assert_eq!(
            decide(&authorizer, &a, Method::GET, "/api/v1/nodes/a"),
            Decision::Allow
        );
        assert_eq!(
            decide(&authorizer, &a, Method::GET, "/api/v1/nodes/b"),
            no("node 'a' cannot read 'b', only its own Node object")
        );
        assert_eq!(
            decide(
                &authorizer,
                &a,
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/b"
            ),
            no("can only access node lease with the same name as the requesting node")
        );
        assert_eq!(
            decide(&authorizer, &a, Method::GET, "/api/v1/services"),
            Decision::Allow,
            "system:node's rules"
        );
        assert_eq!(
            decide(
                &authorizer,
                &a,
                Method::DELETE,
                "/api/v1/namespaces/shop/services/x"
            ),
            no("")
        );

        // The pod moves off the node: its secret is no longer the node's to read.
        store.delete(b"/pods/shop/web", None).await.unwrap();
        for _ in 0..200 {
            if decide(&authorizer, &a, Method::GET, secret) != Decision::Allow {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_ne!(
            decide(&authorizer, &a, Method::GET, secret),
            Decision::Allow
        );
    }

    #[test]
    fn only_members_of_system_nodes_are_nodes() {
        assert_eq!(node_identity(&node_user("a")), Some("a"));
        let mut impostor = node_user("a");
        impostor.groups.clear();
        assert_eq!(node_identity(&impostor), None);
        let mut nameless = node_user("a");
        nameless.name = "kubelet".into();
        assert_eq!(node_identity(&nameless), Some(""));
    }
}
