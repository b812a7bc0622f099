//! Upstream's bootstrap RBAC policy, created on the first start and reconciled on every
//! start as upstream's `rbac/bootstrap-roles` post-start hook does: a missing role or
//! binding is created, a role lacking some of its rules gets them back, a binding lacking a
//! subject gets it back, and a binding whose roleRef changed is replaced. Objects annotated
//! `rbac.authorization.kubernetes.io/autoupdate: "false"` are left as their owner made them.
//!
//! The policy itself is data read from a v1.33.5 cluster (`bootstrap/*.yaml`), so it is the
//! same role for role and rule for rule.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use store::Store;

use super::rbac::rules;
use crate::error::ApiError;
use crate::registry::stored;

const CLUSTER_ROLES: &str = include_str!("bootstrap/clusterroles.yaml");
const CLUSTER_ROLE_BINDINGS: &str = include_str!("bootstrap/clusterrolebindings.yaml");
const ROLES_AND_BINDINGS: &str = include_str!("bootstrap/roles-and-bindings.yaml");

const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

/// Writes done at once: enough for the embedded store to commit them in a few batches.
const CONCURRENT_WRITES: usize = 16;

/// Why the bootstrap policy could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("bootstrap policy: {0}")]
    Policy(String),
    #[error("bootstrap policy {key}: {source}")]
    Store { key: String, source: store::Error },
    #[error("bootstrap policy {key}: {source}")]
    Encode { key: String, source: Box<ApiError> },
}

/// One bootstrap object and how to reconcile it with what is stored.
enum Item {
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
}

impl Item {
    fn key(&self) -> String {
        let meta = self.metadata();
        let name = meta.name.as_deref().unwrap_or_default();
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        match self {
            Item::ClusterRole(_) => format!("/clusterroles/{name}"),
            Item::ClusterRoleBinding(_) => format!("/clusterrolebindings/{name}"),
            Item::Role(_) => format!("/roles/{namespace}/{name}"),
            Item::RoleBinding(_) => format!("/rolebindings/{namespace}/{name}"),
        }
    }

    fn metadata(&self) -> &ObjectMeta {
        match self {
            Item::ClusterRole(o) => &o.metadata,
            Item::ClusterRoleBinding(o) => &o.metadata,
            Item::Role(o) => &o.metadata,
            Item::RoleBinding(o) => &o.metadata,
        }
    }
}

/// The bootstrap policy, parsed once at start for both its users: the reconciliation (RBAC)
/// and the Node authorizer's rules.
pub struct Policy {
    items: Vec<Item>,
}

impl Policy {
    pub fn load() -> Result<Policy, BootstrapError> {
        Ok(Policy { items: policy()? })
    }

    /// The rules of upstream's `system:node` ClusterRole, which the Node authorizer grants
    /// to every node (no bootstrap binding does).
    pub fn node_rules(
        &self,
    ) -> Result<Vec<k8s_openapi::api::rbac::v1::PolicyRule>, BootstrapError> {
        self.items
            .iter()
            .find_map(|item| match item {
                Item::ClusterRole(role) if role.metadata.name.as_deref() == Some("system:node") => {
                    Some(role.rules.clone().unwrap_or_default())
                }
                _ => None,
            })
            .ok_or_else(|| BootstrapError::Policy("no system:node ClusterRole".into()))
    }

    /// Creates or reconciles every bootstrap object in `store`.
    pub async fn reconcile(&self, store: &Arc<dyn Store>) -> Result<(), BootstrapError> {
        let results: Vec<_> = futures::stream::iter(&self.items)
            .map(|item| reconcile_one(store.as_ref(), item))
            .buffer_unordered(CONCURRENT_WRITES)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

/// Every object of the bootstrap policy.
fn policy() -> Result<Vec<Item>, BootstrapError> {
    let mut items = Vec::new();
    for document in [CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS, ROLES_AND_BINDINGS] {
        let list = crate::yaml::to_json(document.as_bytes())
            .map_err(|e| BootstrapError::Policy(e.to_string()))?;
        for object in list["items"].as_array().into_iter().flatten() {
            let item = match object["kind"].as_str() {
                Some("ClusterRole") => Item::ClusterRole(typed(object)?),
                Some("ClusterRoleBinding") => Item::ClusterRoleBinding(typed(object)?),
                Some("Role") => Item::Role(typed(object)?),
                Some("RoleBinding") => Item::RoleBinding(typed(object)?),
                other => return Err(BootstrapError::Policy(format!("unexpected kind {other:?}"))),
            };
            items.push(item);
        }
    }
    Ok(items)
}

fn typed<T: DeserializeOwned>(object: &Value) -> Result<T, BootstrapError> {
    serde_json::from_value(object.clone()).map_err(|e| BootstrapError::Policy(e.to_string()))
}

async fn reconcile_one(store: &dyn Store, item: &Item) -> Result<(), BootstrapError> {
    let key = item.key();
    match item {
        Item::ClusterRole(expected) => reconcile_object(store, &key, expected).await,
        Item::ClusterRoleBinding(expected) => reconcile_object(store, &key, expected).await,
        Item::Role(expected) => reconcile_object(store, &key, expected).await,
        Item::RoleBinding(expected) => reconcile_object(store, &key, expected).await,
    }
}

/// What reconciling needs to know of a role or binding kind.
trait Bootstrapped:
    Serialize + DeserializeOwned + Clone + Send + Sync + k8s_openapi::Metadata<Ty = ObjectMeta>
{
    /// Adds what `expected` grants that `self` lacks; whether anything was missing.
    fn add_missing(&mut self, expected: &Self) -> bool;

    /// Whether the stored object cannot become `expected` by an update (a binding's
    /// roleRef cannot change) and must be replaced.
    fn replaced_by(&self, _expected: &Self) -> bool {
        false
    }
}

impl Bootstrapped for ClusterRole {
    fn add_missing(&mut self, expected: &Self) -> bool {
        add_rules(
            &mut self.rules,
            &expected.rules,
            &mut self.metadata,
            &expected.metadata,
        )
    }
}

impl Bootstrapped for Role {
    fn add_missing(&mut self, expected: &Self) -> bool {
        add_rules(
            &mut self.rules,
            &expected.rules,
            &mut self.metadata,
            &expected.metadata,
        )
    }
}

impl Bootstrapped for ClusterRoleBinding {
    fn add_missing(&mut self, expected: &Self) -> bool {
        add_subjects(&mut self.subjects, &expected.subjects)
    }

    fn replaced_by(&self, expected: &Self) -> bool {
        self.role_ref != expected.role_ref
    }
}

impl Bootstrapped for RoleBinding {
    fn add_missing(&mut self, expected: &Self) -> bool {
        add_subjects(&mut self.subjects, &expected.subjects)
    }

    fn replaced_by(&self, expected: &Self) -> bool {
        self.role_ref != expected.role_ref
    }
}

/// Creates `expected` at `key`, or brings what is stored there up to it.
async fn reconcile_object<T: Bootstrapped>(
    store: &dyn Store,
    key: &str,
    expected: &T,
) -> Result<(), BootstrapError> {
    let store_error = |source| BootstrapError::Store {
        key: key.to_string(),
        source,
    };
    let encode_error = |source| BootstrapError::Encode {
        key: key.to_string(),
        source: Box::new(source),
    };
    loop {
        let Some(current) = store.get(key.as_bytes()).await.map_err(store_error)? else {
            let created = fresh(expected).map_err(encode_error)?;
            match store.create(key.as_bytes(), created).await {
                Ok(_) => return Ok(()),
                Err(store::Error::AlreadyExists { .. }) => continue,
                Err(other) => return Err(store_error(other)),
            }
        };
        let mut stored: T = decode(&current.value, key)?;
        if stored.replaced_by(expected) {
            // Upstream deletes and creates such a binding again.
            let _ = store
                .delete(key.as_bytes(), Some(current.mod_revision))
                .await;
            continue;
        }
        if opted_out(stored.metadata()) || !stored.add_missing(expected) {
            return Ok(());
        }
        let encoded = stored::encode(&stored).map_err(encode_error)?;
        match store
            .update(key.as_bytes(), encoded, current.mod_revision)
            .await
        {
            Ok(_) => {
                tracing::info!(%key, "reconciled bootstrap RBAC object");
                return Ok(());
            }
            Err(store::Error::Conflict { .. }) => continue,
            Err(other) => return Err(store_error(other)),
        }
    }
}

/// A bootstrap object as first stored: with a uid and creation time like any created one.
fn fresh<T: Bootstrapped>(object: &T) -> Result<bytes::Bytes, ApiError> {
    let mut object = object.clone();
    let meta = object.metadata_mut();
    meta.uid = Some(stored::new_uid());
    meta.creation_timestamp = Some(stored::now());
    stored::encode(&object)
}

fn decode<T: DeserializeOwned>(raw: &[u8], key: &str) -> Result<T, BootstrapError> {
    serde_json::from_slice(raw).map_err(|e| BootstrapError::Policy(format!("{key}: {e}")))
}

fn opted_out(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(AUTOUPDATE))
        .is_some_and(|v| v == "false")
}

/// Adds the rules of `expected` that `rules` do not cover, and with them the bootstrap
/// labels and annotations; whether any rule was missing.
fn add_rules(
    rules: &mut Option<Vec<k8s_openapi::api::rbac::v1::PolicyRule>>,
    expected: &Option<Vec<k8s_openapi::api::rbac::v1::PolicyRule>>,
    meta: &mut ObjectMeta,
    expected_meta: &ObjectMeta,
) -> bool {
    let current = rules.get_or_insert_with(Vec::new);
    let missing = rules::uncovered(current, expected.as_deref().unwrap_or_default());
    if missing.is_empty() {
        return false;
    }
    current.extend(missing);
    merge_meta(meta, expected_meta);
    true
}

/// Adds the subjects of `expected` that `subjects` lacks; whether any were missing.
fn add_subjects(
    subjects: &mut Option<Vec<k8s_openapi::api::rbac::v1::Subject>>,
    expected: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>,
) -> bool {
    let current = subjects.get_or_insert_with(Vec::new);
    let mut changed = false;
    for subject in expected.as_deref().unwrap_or_default() {
        if !current.contains(subject) {
            current.push(subject.clone());
            changed = true;
        }
    }
    changed
}

/// The bootstrap labels and annotations an updated role carries again.
fn merge_meta(meta: &mut ObjectMeta, expected: &ObjectMeta) {
    let merge = |into: &mut Option<BTreeMap<String, String>>,
                 from: &Option<BTreeMap<String, String>>| {
        for (k, v) in from.iter().flatten() {
            into.get_or_insert_with(BTreeMap::new)
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    };
    merge(&mut meta.labels, &expected.labels);
    merge(&mut meta.annotations, &expected.annotations);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_is_upstreams() {
        let items = policy().unwrap();
        let names: Vec<String> = items.iter().map(Item::key).collect();
        for key in [
            "/clusterroles/cluster-admin",
            "/clusterroles/system:kube-scheduler",
            "/clusterroles/system:public-info-viewer",
            "/clusterrolebindings/system:public-info-viewer",
            "/clusterroles/admin",
            "/roles/kube-system/system::leader-locking-kube-scheduler",
            "/rolebindings/kube-system/system::leader-locking-kube-scheduler",
        ] {
            assert!(names.contains(&key.to_string()), "{key} missing");
        }
        assert_eq!(
            items
                .iter()
                .filter(|i| matches!(i, Item::ClusterRole(_)))
                .count(),
            66
        );
    }

    #[tokio::test]
    async fn a_removed_rule_and_subject_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            store::embedded::EmbeddedStore::open(store::embedded::EmbeddedConfig::new(dir.path()))
                .unwrap(),
        );
        Policy::load().unwrap().reconcile(&store).await.unwrap();
        let key = b"/clusterroles/system:kube-scheduler";
        let kv = store.get(key).await.unwrap().unwrap();
        let mut role: ClusterRole = serde_json::from_slice(&kv.value).unwrap();
        let full = role.rules.clone().unwrap();
        role.rules.as_mut().unwrap().truncate(1);
        store
            .update(key, stored::encode(&role).unwrap(), kv.mod_revision)
            .await
            .unwrap();
        let binding_key = b"/clusterrolebindings/system:kube-scheduler";
        let kv = store.get(binding_key).await.unwrap().unwrap();
        let mut binding: ClusterRoleBinding = serde_json::from_slice(&kv.value).unwrap();
        binding.subjects = None;
        store
            .update(
                binding_key,
                stored::encode(&binding).unwrap(),
                kv.mod_revision,
            )
            .await
            .unwrap();

        Policy::load().unwrap().reconcile(&store).await.unwrap();
        let role: ClusterRole =
            serde_json::from_slice(&store.get(key).await.unwrap().unwrap().value).unwrap();
        assert!(rules::uncovered(role.rules.as_deref().unwrap(), &full).is_empty());
        let binding: ClusterRoleBinding =
            serde_json::from_slice(&store.get(binding_key).await.unwrap().unwrap().value).unwrap();
        assert_eq!(binding.subjects.unwrap()[0].name, "system:kube-scheduler");
    }
}
