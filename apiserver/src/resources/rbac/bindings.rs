//! RoleBindings (a Role or ClusterRole granted in one namespace) and ClusterRoleBindings (a
//! ClusterRole granted everywhere) to users, groups and service accounts.

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use store::Store;

use super::escalation::{only_gc_fields, Escalation, Written};
use super::{
    binding_cells, binding_columns, default_binding, immutable_role_ref, validate_binding, Scope,
    GROUP,
};
use crate::error::{ApiResult, Cause};
use crate::registry::strategy::ApiObject;
use crate::registry::table::{Cell, Column};
use crate::registry::{ApiRequest, Description, NameRule, Strategy};

/// RBAC names only need to be usable in a URL (upstream's `ValidateRBACName`).
fn describe() -> Description {
    Description {
        name_rule: NameRule::PathSegment,
        ..Description::default()
    }
}

/// What an escalation check of a binding needs: the checks, and the store to read the
/// bound role from (the current one, not the authorizer's index, which may lag a write the
/// same client just made).
pub struct BindingChecks {
    pub escalation: Arc<Escalation>,
    pub store: Arc<dyn Store>,
}

impl BindingChecks {
    /// The rules of the role `role` names for a binding in `namespace` (`""` for a
    /// ClusterRoleBinding), or why there are none, worded as upstream's rule resolver.
    async fn rules(&self, role: &RoleRef, namespace: &str) -> Result<Vec<PolicyRule>, String> {
        let (key, resource) = match role.kind.as_str() {
            "Role" => (format!("/roles/{namespace}/{}", role.name), "roles"),
            "ClusterRole" => (format!("/clusterroles/{}", role.name), "clusterroles"),
            other => return Err(format!("unsupported role reference kind: {other:?}")),
        };
        let stored = self
            .store
            .get(key.as_bytes())
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{resource}.{GROUP} {:?} not found", role.name))?;
        let rules = match role.kind.as_str() {
            "Role" => serde_json::from_slice::<Role>(&stored.value).map(|r| r.rules),
            _ => serde_json::from_slice::<ClusterRole>(&stored.value).map(|r| r.rules),
        };
        rules
            .map(Option::unwrap_or_default)
            .map_err(|e| e.to_string())
    }

    async fn check(&self, request: &ApiRequest, at: &Written<'_>, role: &RoleRef) -> ApiResult<()> {
        let rules = self.rules(role, at.namespace);
        self.escalation
            .check_binding(&request.user, at, role, rules)
            .await
    }
}

/// What tells a RoleBinding from a ClusterRoleBinding; everything else is shared.
pub trait Binding: ApiObject + PartialEq {
    /// The plural, as escalation messages name it.
    const RESOURCE: &'static str;
    /// The role kinds it may refer to.
    const ROLE_KINDS: &'static [&'static str];
    const SCOPE: Scope;
    /// Upstream's descriptions of the Users, Groups and ServiceAccounts columns.
    const SUBJECT_COLUMNS: &'static [&'static str; 3];
    fn role_ref(&self) -> &RoleRef;
    fn parts_mut(&mut self) -> (&mut RoleRef, Option<&mut Vec<Subject>>);
    fn subjects(&self) -> Option<&[Subject]>;
}

impl Binding for RoleBinding {
    const RESOURCE: &'static str = "rolebindings";
    const ROLE_KINDS: &'static [&'static str] = &["Role", "ClusterRole"];
    const SCOPE: Scope = Scope::Namespaced;
    const SUBJECT_COLUMNS: &'static [&'static str; 3] = &[
        "Users in the roleBinding",
        "Groups in the roleBinding",
        "ServiceAccounts in the roleBinding",
    ];
    fn role_ref(&self) -> &RoleRef {
        &self.role_ref
    }
    fn parts_mut(&mut self) -> (&mut RoleRef, Option<&mut Vec<Subject>>) {
        (&mut self.role_ref, self.subjects.as_mut())
    }
    fn subjects(&self) -> Option<&[Subject]> {
        self.subjects.as_deref()
    }
}

impl Binding for ClusterRoleBinding {
    const RESOURCE: &'static str = "clusterrolebindings";
    const ROLE_KINDS: &'static [&'static str] = &["ClusterRole"];
    const SCOPE: Scope = Scope::Cluster;
    const SUBJECT_COLUMNS: &'static [&'static str; 3] = &[
        "Users in the clusterRoleBinding",
        "Groups in the clusterRoleBinding",
        "ServiceAccounts in the clusterRoleBinding",
    ];
    fn role_ref(&self) -> &RoleRef {
        &self.role_ref
    }
    fn parts_mut(&mut self) -> (&mut RoleRef, Option<&mut Vec<Subject>>) {
        (&mut self.role_ref, self.subjects.as_mut())
    }
    fn subjects(&self) -> Option<&[Subject]> {
        self.subjects.as_deref()
    }
}

/// The strategy of either binding kind `B`.
pub struct Bindings<B> {
    /// `None` when RBAC does not authorize requests (nothing to escalate past).
    checks: Option<BindingChecks>,
    kind: PhantomData<fn() -> B>,
}

impl<B> Bindings<B> {
    pub fn new(checks: Option<BindingChecks>) -> Self {
        Bindings {
            checks,
            kind: PhantomData,
        }
    }
}

#[async_trait]
impl<B: Binding> Strategy for Bindings<B> {
    type Object = B;

    fn describe(&self) -> Description {
        describe()
    }

    fn default_fields(&self, binding: &mut B) {
        let (role, subjects) = binding.parts_mut();
        default_binding(role, subjects);
    }

    fn validate(&self, binding: &B) -> Vec<Cause> {
        validate_binding(
            binding.role_ref(),
            binding.subjects(),
            B::ROLE_KINDS,
            B::SCOPE,
        )
    }

    fn validate_update(&self, new: &B, old: &B) -> Vec<Cause> {
        let mut causes = self.validate(new);
        causes.extend(immutable_role_ref(new.role_ref(), old.role_ref()));
        causes
    }

    async fn authorize_write(
        &self,
        request: &ApiRequest,
        binding: &B,
        old: Option<&B>,
    ) -> ApiResult<()> {
        let Some(checks) = &self.checks else {
            return Ok(());
        };
        if old.is_some_and(|old| only_gc_fields(binding, old)) {
            return Ok(());
        }
        let namespace = match B::SCOPE {
            Scope::Namespaced => request.namespace.as_deref().unwrap_or(""),
            Scope::Cluster => "",
        };
        let written = Written {
            resource: B::RESOURCE,
            namespace,
            request_name: request.name.as_deref().unwrap_or(""),
            name: binding.metadata().name.as_deref().unwrap_or(""),
        };
        checks.check(request, &written, binding.role_ref()).await
    }

    fn columns(&self) -> Vec<Column> {
        binding_columns(B::SUBJECT_COLUMNS)
    }

    fn cells(&self, binding: &B) -> Vec<Cell> {
        binding_cells(binding.metadata(), binding.role_ref(), binding.subjects())
    }
}
