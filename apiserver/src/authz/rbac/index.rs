//! Roles and bindings indexed by subject, rebuilt from watch caches whenever one changes.
//!
//! RBAC objects are few (about 150 after bootstrap) and change rarely, so the index is
//! rebuilt whole on each change and swapped in; readers take the current snapshot without
//! waiting for writers.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast::error::TryRecvError;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::authn::UserInfo;
use crate::error::ApiResult;
use crate::registry::cache::{Cache, Derived, Indexer};

/// Store prefixes of the four kinds, as the registry stores them.
const CLUSTER_ROLES: &str = "/clusterroles/";
const ROLES: &str = "/roles/";
const CLUSTER_ROLE_BINDINGS: &str = "/clusterrolebindings/";
const ROLE_BINDINGS: &str = "/rolebindings/";

/// Events kept by each of the index's caches; it never serves watchers, so few.
const CACHE_EVENTS: usize = 64;

/// The roles a binding grants, as named by its roleRef.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RoleRef {
    ClusterRole(String),
    /// A Role in the binding's namespace.
    Role(String),
}

/// A role a binding grants one subject, with upstream's description of the grant
/// (`RoleBinding "read/shop" of Role "reader" to User "jane"`), which allowed reviews give as
/// their reason.
#[derive(Debug, Clone)]
struct Grant {
    role: RoleRef,
    source: Arc<str>,
}

/// Bindings of one scope by subject.
#[derive(Debug, Default)]
struct Bindings {
    users: HashMap<String, Vec<Grant>>,
    groups: HashMap<String, Vec<Grant>>,
}

/// What a binding is called in a grant's description: `ClusterRoleBinding "name"` or
/// `RoleBinding "name/namespace"`.
struct Binder<'a> {
    kind: &'static str,
    name: &'a str,
    role_kind: &'a str,
    role_name: &'a str,
}

impl Bindings {
    /// Adds a binding of `subjects` to `role`; `namespace` is a RoleBinding's (service
    /// accounts without a namespace are in it), empty for a ClusterRoleBinding.
    fn add(&mut self, subjects: &[Subject], role: RoleRef, namespace: &str, binder: &Binder) {
        let binding = match namespace {
            "" => format!("{} {:?}", binder.kind, binder.name),
            ns => format!("{} {:?}", binder.kind, format!("{}/{ns}", binder.name)),
        };
        for subject in subjects {
            let (key, described) = match subject.kind.as_str() {
                "User" => (
                    self.users.entry(subject.name.clone()),
                    format!("User {:?}", subject.name),
                ),
                "Group" => (
                    self.groups.entry(subject.name.clone()),
                    format!("Group {:?}", subject.name),
                ),
                "ServiceAccount" => {
                    let given = subject.namespace.as_deref().unwrap_or("");
                    let account_namespace = match given {
                        "" if !namespace.is_empty() => namespace,
                        "" => continue,
                        ns => ns,
                    };
                    (
                        self.users.entry(format!(
                            "system:serviceaccount:{account_namespace}:{}",
                            subject.name
                        )),
                        format!(
                            "ServiceAccount {:?}",
                            format!("{}/{account_namespace}", subject.name)
                        ),
                    )
                }
                _ => continue,
            };
            let source = format!(
                "{binding} of {} {:?} to {described}",
                binder.role_kind, binder.role_name
            );
            key.or_default().push(Grant {
                role: role.clone(),
                source: source.into(),
            });
        }
    }

    /// The grants naming `user` directly, by a group, or as a service account.
    fn of<'a>(&'a self, user: &'a UserInfo) -> impl Iterator<Item = &'a Grant> + 'a {
        let by_name = self.users.get(&user.name).into_iter().flatten();
        let by_group = user
            .groups
            .iter()
            .filter_map(|group| self.groups.get(group))
            .flatten();
        by_name.chain(by_group)
    }
}

/// One consistent view of every role and binding.
#[derive(Debug, Default)]
pub struct Snapshot {
    cluster_roles: HashMap<String, Vec<PolicyRule>>,
    roles: HashMap<(String, String), Vec<PolicyRule>>,
    cluster_bindings: Bindings,
    namespace_bindings: HashMap<String, Bindings>,
}

impl Snapshot {
    /// Calls `visit` with the rules of each role bound to `user` that applies in
    /// `namespace` (cluster bindings first; `""` for the cluster scope), or the error of a
    /// binding to a missing role, and the grant's description, until `visit` returns true;
    /// returns whether it did.
    pub fn visit(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(Result<&[PolicyRule], String>, &str) -> bool,
    ) -> bool {
        let mut resolve = |grant: &Grant, namespace: &str| {
            let found = match &grant.role {
                RoleRef::ClusterRole(name) => self
                    .cluster_roles
                    .get(name)
                    .map(Vec::as_slice)
                    .ok_or_else(|| {
                        format!("clusterrole.rbac.authorization.k8s.io {name:?} not found")
                    }),
                RoleRef::Role(name) => self
                    .roles
                    .get(&(namespace.to_string(), name.clone()))
                    .map(Vec::as_slice)
                    .ok_or_else(|| format!("role.rbac.authorization.k8s.io {name:?} not found")),
            };
            visit(found, &grant.source)
        };
        if self
            .cluster_bindings
            .of(user)
            .any(|grant| resolve(grant, ""))
        {
            return true;
        }
        !namespace.is_empty()
            && self
                .namespace_bindings
                .get(namespace)
                .is_some_and(|bindings| bindings.of(user).any(|grant| resolve(grant, namespace)))
    }
}

/// The live index: four watch caches and the snapshot built from them.
pub struct Index {
    caches: [Arc<Cache>; 4],
    snapshot: RwLock<Arc<Snapshot>>,
    /// Held for a whole rebuild, so a rebuild that read the caches earlier never swaps its
    /// older snapshot in after a later one (start-up's and the follower's can overlap).
    rebuilding: tokio::sync::Mutex<()>,
    _stop: DropGuard,
}

impl Index {
    /// Starts watching the RBAC objects in `store`; [`Index::ready`] resolves once the
    /// first snapshot reflects what the store held when it started.
    pub fn start(store: Arc<dyn store::Store>) -> Arc<Index> {
        let stop = CancellationToken::new();
        let cache = |prefix: &str| {
            let indexer: Indexer = Arc::new(|raw: &Bytes| Ok((Derived::default(), raw.clone())));
            Cache::start(
                store.clone(),
                Bytes::from(prefix.to_string()),
                indexer,
                CACHE_EVENTS,
                stop.clone(),
            )
        };
        let index = Arc::new(Index {
            caches: [
                cache(CLUSTER_ROLES),
                cache(ROLES),
                cache(CLUSTER_ROLE_BINDINGS),
                cache(ROLE_BINDINGS),
            ],
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            rebuilding: tokio::sync::Mutex::new(()),
            _stop: stop.clone().drop_guard(),
        });
        let weak = Arc::downgrade(&index);
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = follow(weak) => {}
            }
        });
        index
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().expect("rbac snapshot").clone()
    }

    /// Waits until every cache has listed the store once, and the snapshot with them.
    pub async fn ready(&self) -> ApiResult<()> {
        for cache in &self.caches {
            cache.wait_for(1).await?;
        }
        self.rebuild().await;
        Ok(())
    }

    /// Builds a snapshot from what the caches hold now and swaps it in.
    async fn rebuild(&self) {
        let _rebuilding = self.rebuilding.lock().await;
        let [cluster_roles, roles, cluster_bindings, role_bindings] = &self.caches;
        let mut snapshot = Snapshot::default();
        for role in objects::<ClusterRole>(cluster_roles, CLUSTER_ROLES).await {
            let name = role.metadata.name.unwrap_or_default();
            snapshot
                .cluster_roles
                .insert(name, role.rules.unwrap_or_default());
        }
        for role in objects::<Role>(roles, ROLES).await {
            let key = (
                role.metadata.namespace.unwrap_or_default(),
                role.metadata.name.unwrap_or_default(),
            );
            snapshot.roles.insert(key, role.rules.unwrap_or_default());
        }
        for binding in objects::<ClusterRoleBinding>(cluster_bindings, CLUSTER_ROLE_BINDINGS).await
        {
            if binding.role_ref.kind == "ClusterRole" {
                let binder = Binder {
                    kind: "ClusterRoleBinding",
                    name: binding.metadata.name.as_deref().unwrap_or_default(),
                    role_kind: &binding.role_ref.kind,
                    role_name: &binding.role_ref.name,
                };
                snapshot.cluster_bindings.add(
                    binding.subjects.as_deref().unwrap_or_default(),
                    RoleRef::ClusterRole(binding.role_ref.name.clone()),
                    "",
                    &binder,
                );
            }
        }
        for binding in objects::<RoleBinding>(role_bindings, ROLE_BINDINGS).await {
            let namespace = binding.metadata.namespace.unwrap_or_default();
            let role = match binding.role_ref.kind.as_str() {
                "ClusterRole" => RoleRef::ClusterRole(binding.role_ref.name.clone()),
                "Role" => RoleRef::Role(binding.role_ref.name.clone()),
                _ => continue,
            };
            let binder = Binder {
                kind: "RoleBinding",
                name: binding.metadata.name.as_deref().unwrap_or_default(),
                role_kind: &binding.role_ref.kind,
                role_name: &binding.role_ref.name,
            };
            snapshot
                .namespace_bindings
                .entry(namespace.clone())
                .or_default()
                .add(
                    binding.subjects.as_deref().unwrap_or_default(),
                    role,
                    &namespace,
                    &binder,
                );
        }
        *self.snapshot.write().expect("rbac snapshot") = Arc::new(snapshot);
    }
}

/// Rebuilds the snapshot after every change of any of the caches, coalescing bursts (the
/// bootstrap policy is a hundred writes). Resubscribes when a cache resyncs.
async fn follow(index: std::sync::Weak<Index>) {
    loop {
        let Some(strong) = index.upgrade() else {
            return;
        };
        let mut subscriptions = Vec::new();
        for cache in &strong.caches {
            match cache.subscribe(b"", None).await {
                Ok(subscription) => subscriptions.push(subscription.live),
                Err(_) => break,
            }
        }
        strong.rebuild().await;
        drop(strong);
        let mut receivers: Vec<_> = subscriptions.into_iter().collect();
        'changes: loop {
            let received =
                futures::future::select_all(receivers.iter_mut().map(|r| Box::pin(r.recv())))
                    .await
                    .0;
            if received.is_err() {
                break 'changes;
            }
            for receiver in &mut receivers {
                loop {
                    match receiver.try_recv() {
                        Ok(_) => {}
                        Err(TryRecvError::Empty) => break,
                        Err(_) => break 'changes,
                    }
                }
            }
            let Some(strong) = index.upgrade() else {
                return;
            };
            strong.rebuild().await;
        }
    }
}

/// Every object of a cache, decoded; an undecodable one is logged and left out (it cannot
/// grant anything).
async fn objects<T: DeserializeOwned>(cache: &Cache, prefix: &str) -> Vec<T> {
    let (entries, _) = cache.list(prefix.as_bytes()).await;
    entries
        .iter()
        .filter_map(|entry| match serde_json::from_slice(&entry.stored) {
            Ok(object) => Some(object),
            Err(error) => {
                tracing::warn!(key = %String::from_utf8_lossy(&entry.key), %error, "unreadable RBAC object");
                None
            }
        })
        .collect()
}
