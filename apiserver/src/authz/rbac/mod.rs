//! The RBAC authorizer: a request is allowed when a binding that names the user (by name,
//! group or service account) refers to a role with a rule allowing it, cluster-wide through
//! ClusterRoleBindings, in a namespace through that namespace's RoleBindings.
//!
//! Bindings and roles come from an in-memory [`index`] kept current by store watches, so an
//! authorization is a few hash lookups, not a read per request (upstream reads its informers
//! the same way).

pub mod index;
pub mod rules;

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::PolicyRule;

use self::index::{Index, Snapshot};
use crate::authn::UserInfo;
use crate::authz::{Attributes, Decision};

/// Authorizes by RBAC; also tells which rules a user holds (for escalation checks and rules
/// reviews).
pub struct Authorizer {
    index: Arc<Index>,
}

impl Authorizer {
    pub fn new(index: Arc<Index>) -> Self {
        Authorizer { index }
    }

    /// The rules `user` holds in `namespace` (cluster-wide ones included; `""` for the
    /// cluster scope), with the errors met resolving them (a binding to a missing role).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        let snapshot = self.index.snapshot();
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        snapshot.visit(user, namespace, |found, _| {
            match found {
                Ok(role_rules) => rules.extend(role_rules.iter().cloned()),
                Err(error) => errors.push(error),
            }
            false
        });
        (rules, errors)
    }
}

impl crate::authz::Authorizer for Authorizer {
    fn authorize(&self, attributes: &Attributes) -> Decision {
        let snapshot: Arc<Snapshot> = self.index.snapshot();
        let namespace = attributes
            .resource
            .as_ref()
            .map(|r| r.namespace.as_str())
            .unwrap_or("");
        let mut errors = Vec::new();
        let allowed = snapshot.visit(&attributes.user, namespace, |found, _| match found {
            Ok(role_rules) => role_rules
                .iter()
                .any(|rule| rules::allows(rule, attributes)),
            Err(error) => {
                errors.push(error);
                false
            }
        });
        if allowed {
            return Decision::Allow;
        }
        // Like upstream, bindings to missing roles are the only reason RBAC gives.
        match errors.is_empty() {
            true => Decision::NoOpinion(String::new()),
            false => Decision::NoOpinion(format!("RBAC: [{}]", errors.join(", "))),
        }
    }

    /// Upstream's `RBAC: allowed by RoleBinding "read/shop" of Role "reader" to User "jane"`:
    /// the first grant allowing the request.
    fn allow_reason(&self, attributes: &Attributes) -> String {
        let namespace = attributes
            .resource
            .as_ref()
            .map(|r| r.namespace.as_str())
            .unwrap_or("");
        let mut reason = String::new();
        self.index
            .snapshot()
            .visit(&attributes.user, namespace, |found, source| {
                let allows = found.is_ok_and(|role_rules| {
                    role_rules.iter().any(|r| rules::allows(r, attributes))
                });
                if allows {
                    reason = format!("RBAC: allowed by {source}");
                }
                allows
            });
        reason
    }

    fn rules_for(&self, user: &UserInfo, namespace: &str) -> crate::authz::RuleSet {
        let (rules, errors) = Authorizer::rules_for(self, user, namespace);
        crate::authz::RuleSet {
            incomplete: !errors.is_empty(),
            rules,
            errors,
        }
    }
}
