//! Roles (namespaced) and ClusterRoles: sets of rules. A ClusterRole's `aggregationRule` is
//! kept as sent; filling its rules from the selected roles is a controller's work.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};

use super::escalation::{only_gc_fields, Escalation, Written};
use super::{role_cells, role_columns, validate_rules, Scope};
use crate::error::{ApiResult, Cause};
use crate::registry::table::{Cell, Column};
use crate::registry::{ApiRequest, Description, NameRule, Strategy};
use crate::resources::workload::validate_label_selector;

/// RBAC names only need to be usable in a URL (upstream's `ValidateRBACName`).
fn describe() -> Description {
    Description {
        name_rule: NameRule::PathSegment,
        ..Description::default()
    }
}

pub struct Roles {
    /// `None` when RBAC does not authorize requests (nothing to escalate past).
    pub escalation: Option<Arc<Escalation>>,
}

#[async_trait]
impl Strategy for Roles {
    type Object = Role;

    fn describe(&self) -> Description {
        describe()
    }

    fn validate(&self, role: &Role) -> Vec<Cause> {
        validate_rules(role.rules.as_deref(), Scope::Namespaced)
    }

    async fn authorize_write(
        &self,
        request: &ApiRequest,
        role: &Role,
        old: Option<&Role>,
    ) -> ApiResult<()> {
        let Some(escalation) = &self.escalation else {
            return Ok(());
        };
        if old.is_some_and(|old| only_gc_fields(role, old)) {
            return Ok(());
        }
        let written = Written {
            resource: "roles",
            namespace: request.namespace.as_deref().unwrap_or(""),
            request_name: request.name.as_deref().unwrap_or(""),
            name: role.metadata.name.as_deref().unwrap_or(""),
        };
        let rules = role.rules.as_deref().unwrap_or_default();
        escalation.check_role(&request.user, &written, rules, false)
    }

    fn columns(&self) -> Vec<Column> {
        role_columns()
    }

    fn cells(&self, role: &Role) -> Vec<Cell> {
        role_cells(&role.metadata)
    }
}

pub struct ClusterRoles {
    /// `None` when RBAC does not authorize requests (nothing to escalate past).
    pub escalation: Option<Arc<Escalation>>,
}

#[async_trait]
impl Strategy for ClusterRoles {
    type Object = ClusterRole;

    fn describe(&self) -> Description {
        describe()
    }

    /// Rules as a Role's, non-resource URLs allowed; an aggregation rule needs selectors.
    fn validate(&self, role: &ClusterRole) -> Vec<Cause> {
        let mut causes = validate_rules(role.rules.as_deref(), Scope::Cluster);
        if let Some(aggregation) = &role.aggregation_rule {
            let selectors = aggregation
                .cluster_role_selectors
                .as_deref()
                .unwrap_or_default();
            if selectors.is_empty() {
                causes.push(Cause::required_because(
                    "aggregationRule.clusterRoleSelectors",
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                ));
            }
            for (i, selector) in selectors.iter().enumerate() {
                causes.extend(validate_label_selector(
                    selector,
                    &format!("aggregationRule.clusterRoleSelectors[{i}]"),
                ));
            }
        }
        causes
    }

    /// Like a Role's, and an aggregation rule, set or being removed, needs full authority:
    /// it can gather any permission into the role.
    async fn authorize_write(
        &self,
        request: &ApiRequest,
        role: &ClusterRole,
        old: Option<&ClusterRole>,
    ) -> ApiResult<()> {
        let Some(escalation) = &self.escalation else {
            return Ok(());
        };
        if old.is_some_and(|old| only_gc_fields(role, old)) {
            return Ok(());
        }
        let written = Written {
            resource: "clusterroles",
            namespace: "",
            request_name: request.name.as_deref().unwrap_or(""),
            name: role.metadata.name.as_deref().unwrap_or(""),
        };
        let aggregates = role.aggregation_rule.is_some()
            || old.is_some_and(|old| old.aggregation_rule.is_some());
        let rules = role.rules.as_deref().unwrap_or_default();
        escalation.check_role(&request.user, &written, rules, aggregates)
    }

    fn columns(&self) -> Vec<Column> {
        role_columns()
    }

    fn cells(&self, role: &ClusterRole) -> Vec<Cell> {
        role_cells(&role.metadata)
    }
}
