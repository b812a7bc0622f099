//! RoleBindings (a Role or ClusterRole granted in one namespace) and ClusterRoleBindings (a
//! ClusterRole granted everywhere) to users, groups and service accounts.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef,
};
use store::Store;

use super::escalation::{only_gc_fields, Escalation, Written};
use super::{
    binding_cells, binding_columns, default_binding, immutable_role_ref, validate_binding, Scope,
    GROUP,
};
use crate::error::{ApiResult, Cause};
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

pub struct RoleBindings {
    /// `None` when RBAC does not authorize requests (nothing to escalate past).
    pub checks: Option<BindingChecks>,
}

#[async_trait]
impl Strategy for RoleBindings {
    type Object = RoleBinding;

    fn describe(&self) -> Description {
        describe()
    }

    fn default_fields(&self, binding: &mut RoleBinding) {
        default_binding(&mut binding.role_ref, binding.subjects.as_mut());
    }

    fn validate(&self, binding: &RoleBinding) -> Vec<Cause> {
        validate_binding(
            &binding.role_ref,
            binding.subjects.as_deref(),
            &["Role", "ClusterRole"],
            Scope::Namespaced,
        )
    }

    fn validate_update(&self, new: &RoleBinding, old: &RoleBinding) -> Vec<Cause> {
        let mut causes = self.validate(new);
        causes.extend(immutable_role_ref(&new.role_ref, &old.role_ref));
        causes
    }

    async fn authorize_write(
        &self,
        request: &ApiRequest,
        binding: &RoleBinding,
        old: Option<&RoleBinding>,
    ) -> ApiResult<()> {
        let Some(checks) = &self.checks else {
            return Ok(());
        };
        if old.is_some_and(|old| only_gc_fields(binding, old)) {
            return Ok(());
        }
        let written = Written {
            resource: "rolebindings",
            namespace: request.namespace.as_deref().unwrap_or(""),
            request_name: request.name.as_deref().unwrap_or(""),
            name: binding.metadata.name.as_deref().unwrap_or(""),
        };
        checks.check(request, &written, &binding.role_ref).await
    }

    fn columns(&self) -> Vec<Column> {
        binding_columns(&[
            "Users in the roleBinding",
            "Groups in the roleBinding",
            "ServiceAccounts in the roleBinding",
        ])
    }

    fn cells(&self, binding: &RoleBinding) -> Vec<Cell> {
        binding_cells(
            &binding.metadata,
            &binding.role_ref,
            binding.subjects.as_deref(),
        )
    }
}

pub struct ClusterRoleBindings {
    /// `None` when RBAC does not authorize requests (nothing to escalate past).
    pub checks: Option<BindingChecks>,
}

#[async_trait]
impl Strategy for ClusterRoleBindings {
    type Object = ClusterRoleBinding;

    fn describe(&self) -> Description {
        describe()
    }

    fn default_fields(&self, binding: &mut ClusterRoleBinding) {
        default_binding(&mut binding.role_ref, binding.subjects.as_mut());
    }

    fn validate(&self, binding: &ClusterRoleBinding) -> Vec<Cause> {
        validate_binding(
            &binding.role_ref,
            binding.subjects.as_deref(),
            &["ClusterRole"],
            Scope::Cluster,
        )
    }

    fn validate_update(&self, new: &ClusterRoleBinding, old: &ClusterRoleBinding) -> Vec<Cause> {
        let mut causes = self.validate(new);
        causes.extend(immutable_role_ref(&new.role_ref, &old.role_ref));
        causes
    }

    async fn authorize_write(
        &self,
        request: &ApiRequest,
        binding: &ClusterRoleBinding,
        old: Option<&ClusterRoleBinding>,
    ) -> ApiResult<()> {
        let Some(checks) = &self.checks else {
            return Ok(());
        };
        if old.is_some_and(|old| only_gc_fields(binding, old)) {
            return Ok(());
        }
        let written = Written {
            resource: "clusterrolebindings",
            namespace: "",
            request_name: request.name.as_deref().unwrap_or(""),
            name: binding.metadata.name.as_deref().unwrap_or(""),
        };
        checks.check(request, &written, &binding.role_ref).await
    }

    fn columns(&self) -> Vec<Column> {
        binding_columns(&[
            "Users in the clusterRoleBinding",
            "Groups in the clusterRoleBinding",
            "ServiceAccounts in the clusterRoleBinding",
        ])
    }

    fn cells(&self, binding: &ClusterRoleBinding) -> Vec<Cell> {
        binding_cells(
            &binding.metadata,
            &binding.role_ref,
            binding.subjects.as_deref(),
        )
    }
}
