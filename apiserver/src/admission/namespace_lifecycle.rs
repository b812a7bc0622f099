//! `NamespaceLifecycle`: nothing is created in a namespace that does not exist or is being
//! deleted, and the namespaces every cluster relies on cannot be deleted.
//!
//! Upstream also checks updates, but an update reads its object first, which fails on its own
//! once the namespace (emptied before it goes) is gone; only creates and deletes are looked at
//! here, so the store is read only when something is created.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{Attributes, Lookup, Operation, Plugin};
use crate::error::{ApiError, ApiResult, Target};

/// Namespaces upstream refuses to delete.
const IMMORTAL: [&str; 3] = ["default", "kube-system", "kube-public"];

pub struct NamespaceLifecycle {
    lookup: Arc<Lookup>,
}

impl NamespaceLifecycle {
    pub fn new(lookup: Arc<Lookup>) -> Self {
        NamespaceLifecycle { lookup }
    }
}

fn is_namespace(attributes: &Attributes<'_>) -> bool {
    attributes.resource.is_core("namespaces")
}

#[async_trait]
impl Plugin for NamespaceLifecycle {
    fn handles(&self, attributes: &Attributes<'_>) -> bool {
        match attributes.operation {
            Operation::Create => attributes.namespace.is_some() && !is_namespace(attributes),
            Operation::Delete => is_namespace(attributes) && attributes.subresource.is_none(),
            Operation::Update | Operation::Connect => false,
        }
    }

    async fn admit(&self, attributes: &mut Attributes<'_>) -> ApiResult<()> {
        if attributes.operation == Operation::Delete {
            if IMMORTAL.contains(&attributes.name) {
                return Err(attributes.forbidden("this namespace may not be deleted"));
            }
            return Ok(());
        }
        let namespace = attributes.namespace.unwrap_or_default();
        let Some(raw) = self.lookup.get(&format!("/namespaces/{namespace}")).await? else {
            return Err(ApiError::NotFound(Target {
                group: String::new(),
                resource: "namespaces".into(),
                kind: "Namespace".into(),
                name: namespace.into(),
            }));
        };
        let terminating = serde_json::from_slice::<Value>(&raw)
            .is_ok_and(|ns| ns.pointer("/status/phase") == Some(&Value::from("Terminating")));
        if terminating {
            return Err(attributes.forbidden(format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::tests::{attributes, user, Fixture};

    #[tokio::test]
    async fn creates_need_a_live_namespace() {
        let fixture = Fixture::new().await;
        fixture
            .put("/namespaces/gone", r#"{"status":{"phase":"Terminating"}}"#)
            .await;
        let plugin = NamespaceLifecycle::new(fixture.lookup());
        let user = user();

        let mut live = attributes(Operation::Create, "configmaps", Some("default"), "a", &user);
        assert!(plugin.handles(&live));
        plugin.admit(&mut live).await.unwrap();

        let mut missing = attributes(Operation::Create, "configmaps", Some("nope"), "a", &user);
        assert_eq!(
            plugin.admit(&mut missing).await.unwrap_err().to_string(),
            r#"namespaces "nope" not found"#
        );
        let mut terminating = attributes(Operation::Create, "configmaps", Some("gone"), "a", &user);
        assert_eq!(
            plugin
                .admit(&mut terminating)
                .await
                .unwrap_err()
                .to_string(),
            r#"configmaps "a" is forbidden: unable to create new content in namespace gone because it is being terminated"#
        );
        let update = attributes(Operation::Update, "configmaps", Some("gone"), "a", &user);
        assert!(!plugin.handles(&update));
        let cluster_scoped = attributes(Operation::Create, "nodes", None, "a", &user);
        assert!(!plugin.handles(&cluster_scoped));
    }

    #[tokio::test]
    async fn system_namespaces_cannot_be_deleted() {
        let fixture = Fixture::new().await;
        let plugin = NamespaceLifecycle::new(fixture.lookup());
        let user = user();
        let mut default = attributes(Operation::Delete, "namespaces", None, "default", &user);
        assert!(plugin.handles(&default));
        assert_eq!(
            plugin.admit(&mut default).await.unwrap_err().to_string(),
            r#"namespaces "default" is forbidden: this namespace may not be deleted"#
        );
        let mut lab = attributes(Operation::Delete, "namespaces", None, "lab", &user);
        plugin.admit(&mut lab).await.unwrap();
        let pod = attributes(Operation::Delete, "pods", Some("default"), "web", &user);
        assert!(!plugin.handles(&pod));
    }
}
