//! Roles (namespaced) and ClusterRoles: sets of rules. A ClusterRole's `aggregationRule` is
//! kept as sent; filling its rules from the selected roles is a controller's work.

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::rbac::v1::{AggregationRule, ClusterRole, PolicyRule, Role};

use super::escalation::{only_gc_fields, Escalation, Written};
use super::{role_cells, role_columns, validate_rules, Scope};
use crate::error::{ApiResult, Cause};
use crate::registry::strategy::ApiObject;
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

/// What tells a Role from a ClusterRole; everything else is shared.
pub trait RoleKind: ApiObject + PartialEq {
    /// The plural, as escalation messages name it.
    const RESOURCE: &'static str;
    const SCOPE: Scope;
    fn rules(&self) -> Option<&[PolicyRule]>;
    /// A ClusterRole's aggregation rule; Roles have none.
    fn aggregation_rule(&self) -> Option<&AggregationRule>;
}

impl RoleKind for Role {
    const RESOURCE: &'static str = "roles";
    const SCOPE: Scope = Scope::Namespaced;
    fn rules(&self) -> Option<&[PolicyRule]> {
        self.rules.as_deref()
    }
    fn aggregation_rule(&self) -> Option<&AggregationRule> {
        None
    }
}

impl RoleKind for ClusterRole {
    const RESOURCE: &'static str = "clusterroles";
    const SCOPE: Scope = Scope::Cluster;
    fn rules(&self) -> Option<&[PolicyRule]> {
        self.rules.as_deref()
    }
    fn aggregation_rule(&self) -> Option<&AggregationRule> {
        self.aggregation_rule.as_ref()
    }
}

/// The strategy of either role kind `R`.
pub struct Roles<R> {
    /// `None` when RBAC does not authorize requests (nothing to escalate past).
    escalation: Option<Arc<Escalation>>,
    kind: PhantomData<fn() -> R>,
}

impl<R> Roles<R> {
    pub fn new(escalation: Option<Arc<Escalation>>) -> Self {
        Roles {
            escalation,
            kind: PhantomData,
        }
    }
}

#[async_trait]
impl<R: RoleKind> Strategy for Roles<R> {
    type Object = R;

    fn describe(&self) -> Description {
        describe()
    }

    /// The rules (non-resource URLs only in cluster roles); an aggregation rule needs
    /// selectors.
    fn validate(&self, role: &R) -> Vec<Cause> {
        let mut causes = validate_rules(role.rules(), R::SCOPE);
        if let Some(aggregation) = role.aggregation_rule() {
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

    /// The rules written must be held by the writer; an aggregation rule, set or being
    /// removed, needs full authority: it can gather any permission into the role.
    async fn authorize_write(
        &self,
        request: &ApiRequest,
        role: &R,
        old: Option<&R>,
    ) -> ApiResult<()> {
        let Some(escalation) = &self.escalation else {
            return Ok(());
        };
        if old.is_some_and(|old| only_gc_fields(role, old)) {
            return Ok(());
        }
        let namespace = match R::SCOPE {
            Scope::Namespaced => request.namespace.as_deref().unwrap_or(""),
            Scope::Cluster => "",
        };
        let written = Written {
            resource: R::RESOURCE,
            namespace,
            request_name: request.name.as_deref().unwrap_or(""),
            name: role.metadata().name.as_deref().unwrap_or(""),
        };
        let aggregates = role.aggregation_rule().is_some()
            || old.is_some_and(|old| old.aggregation_rule().is_some());
        let rules = role.rules().unwrap_or_default();
        escalation.check_role(&request.user, &written, rules, aggregates)
    }

    fn columns(&self) -> Vec<Column> {
        role_columns()
    }

    fn cells(&self, role: &R) -> Vec<Cell> {
        role_cells(role.metadata())
    }
}
