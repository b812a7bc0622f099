//! Privilege-escalation prevention, as upstream's policy-based RBAC storage: a user may
//! write a role only with rules they already hold (or with the `escalate` verb on it), and a
//! binding only to a role whose rules they hold (or with the `bind` verb on it). Otherwise
//! anyone allowed to create roles and bindings could grant themselves anything.

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;

use crate::authn::UserInfo;
use crate::authz::rbac::{rules, Authorizer as RbacAuthorizer};
use crate::authz::{Attributes, Chain, Decision, ResourceAttributes};
use crate::error::{ApiError, Target};

pub(super) const GROUP: &str = "rbac.authorization.k8s.io";

/// What the checks ask: the authorization chain (for `escalate` and `bind`) and the RBAC
/// authorizer (for the rules a user holds). Only built when RBAC is an authorization mode:
/// upstream serves plain storage otherwise, so `AlwaysAllow` clusters check nothing.
pub struct Escalation {
    chain: Arc<Chain>,
    rbac: Arc<RbacAuthorizer>,
}

impl std::fmt::Debug for Escalation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Escalation").finish_non_exhaustive()
    }
}

/// A role or binding resource the checks speak about: its plural and the request's name and
/// namespace (the authorization request upstream builds uses the URL's, not the body's).
pub(super) struct Written<'a> {
    pub resource: &'static str,
    pub namespace: &'a str,
    pub request_name: &'a str,
    /// The object's name, for the Forbidden error.
    pub name: &'a str,
}

impl Written<'_> {
    fn forbidden(&self, reason: String) -> ApiError {
        ApiError::Forbidden {
            target: Target {
                group: GROUP.into(),
                resource: self.resource.into(),
                kind: self.resource.into(),
                name: self.name.into(),
            },
            reason,
        }
    }
}

impl Escalation {
    pub fn new(chain: Arc<Chain>, rbac: Arc<RbacAuthorizer>) -> Self {
        Escalation { chain, rbac }
    }

    /// Whether the authorization chain allows `verb` on `resource` `name` (in `group`, in
    /// `namespace`) to `user`.
    fn allowed(&self, user: &UserInfo, verb: &str, group: &str, at: &Written, name: &str) -> bool {
        let attributes = Attributes {
            user: user.clone(),
            verb: verb.into(),
            resource: Some(ResourceAttributes {
                namespace: at.namespace.into(),
                group: group.into(),
                version: "*".into(),
                resource: at.resource.into(),
                subresource: String::new(),
                name: name.into(),
                field_equals: Vec::new(),
            }),
            path: String::new(),
        };
        self.chain.decide(&attributes) == Decision::Allow
    }

    /// A Role or ClusterRole write: allowed with `escalate` on it, else only with rules the
    /// user holds; an aggregation rule (new or old) needs full authority.
    pub(super) fn check_role(
        &self,
        user: &UserInfo,
        at: &Written,
        rules: &[PolicyRule],
        aggregates: bool,
    ) -> Result<(), ApiError> {
        if privileged(user) || self.allowed(user, "escalate", GROUP, at, at.request_name) {
            return Ok(());
        }
        self.confirm_held(user, at.namespace, rules)
            .map_err(|reason| at.forbidden(reason))?;
        if aggregates
            && self
                .confirm_held(user, at.namespace, &crate::authz::rbac::rules::everything())
                .is_err()
        {
            return Err(at.forbidden(
                "must have cluster-admin privileges to use the aggregationRule".into(),
            ));
        }
        Ok(())
    }

    /// A RoleBinding or ClusterRoleBinding write: allowed with `bind` on the referenced role,
    /// else only if the user holds every rule of the role, which `role_rules` resolves
    /// (upstream's Forbidden carries why it could not).
    pub(super) async fn check_binding<F>(
        &self,
        user: &UserInfo,
        at: &Written<'_>,
        role: &RoleRef,
        role_rules: F,
    ) -> Result<(), ApiError>
    where
        F: std::future::Future<Output = Result<Vec<PolicyRule>, String>>,
    {
        if privileged(user) {
            return Ok(());
        }
        let resource = match role.kind.as_str() {
            "Role" => "roles",
            "ClusterRole" => "clusterroles",
            _ => "",
        };
        if !resource.is_empty() {
            let bound = Written { resource, ..*at };
            if self.allowed(user, "bind", &role.api_group, &bound, &role.name) {
                return Ok(());
            }
        }
        let rules = role_rules.await.map_err(|reason| at.forbidden(reason))?;
        self.confirm_held(user, at.namespace, &rules)
            .map_err(|reason| at.forbidden(reason))
    }

    /// Upstream's `ConfirmNoEscalation`: the rules `user` holds in `namespace` cover
    /// `requested`, or the message listing what they do not (compacted, one rule a line,
    /// sorted), with any bindings that could not be resolved.
    fn confirm_held(
        &self,
        user: &UserInfo,
        namespace: &str,
        requested: &[PolicyRule],
    ) -> Result<(), String> {
        let (held, errors) = self.rbac.rules_for(user, namespace);
        let missing = rules::uncovered(&held, requested);
        if missing.is_empty() {
            return Ok(());
        }
        let mut lines: Vec<String> = compact(missing).iter().map(compact_string).collect();
        lines.sort();
        lines.dedup();
        let mut message = format!(
            "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
            user.name,
            go_quoted(&user.groups),
            lines.join("\n")
        );
        // Upstream appends its one aggregate error, printed in a list: `[e]`, `[[e1, e2]]`.
        match errors.as_slice() {
            [] => {}
            [one] => message.push_str(&format!("; resolution errors: [{one}]")),
            many => message.push_str(&format!("; resolution errors: [[{}]]", many.join(", "))),
        }
        Err(message)
    }
}

/// `system:masters` may write any role and binding (upstream's `EscalationAllowed`), even
/// one naming a role of an unknown kind.
fn privileged(user: &UserInfo) -> bool {
    user.groups
        .iter()
        .any(|g| g == crate::authz::PRIVILEGED_GROUP)
}

/// Upstream's `CompactRules`: broken-down rules for the same group, resource and name merged
/// into one with all their verbs; anything else (non-resource URLs) kept as it is.
fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut merged: Vec<PolicyRule> = Vec::new();
    let mut others = Vec::new();
    for rule in rules {
        let one = |set: &Option<Vec<String>>| set.as_ref().is_some_and(|s| s.len() == 1);
        let names = rule.resource_names.as_deref().unwrap_or_default().len();
        let simple = one(&rule.api_groups)
            && one(&rule.resources)
            && names <= 1
            && rule
                .non_resource_urls
                .as_deref()
                .unwrap_or_default()
                .is_empty();
        if !simple {
            others.push(rule);
            continue;
        }
        let same = |m: &&mut PolicyRule| {
            m.api_groups == rule.api_groups
                && m.resources == rule.resources
                && m.resource_names.as_deref().unwrap_or_default()
                    == rule.resource_names.as_deref().unwrap_or_default()
        };
        match merged.iter_mut().find(same) {
            Some(existing) => {
                for verb in rule.verbs {
                    if !existing.verbs.contains(&verb) {
                        existing.verbs.push(verb);
                    }
                }
            }
            None => merged.push(rule),
        }
    }
    others.extend(merged);
    others
}

/// Upstream's `CompactString` of a rule: `{APIGroups:[""], Resources:["pods"],
/// Verbs:["get" "list"]}`, empty parts left out.
fn compact_string(rule: &PolicyRule) -> String {
    let parts = [
        ("APIGroups", rule.api_groups.as_deref().unwrap_or_default()),
        ("Resources", rule.resources.as_deref().unwrap_or_default()),
        (
            "NonResourceURLs",
            rule.non_resource_urls.as_deref().unwrap_or_default(),
        ),
        (
            "ResourceNames",
            rule.resource_names.as_deref().unwrap_or_default(),
        ),
        ("Verbs", rule.verbs.as_slice()),
    ];
    let parts: Vec<String> = parts
        .iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(label, values)| format!("{label}:{}", go_quoted(values)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// A string slice as Go's `%q` prints it: `["a" "b"]`.
fn go_quoted(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// Upstream's `IsOnlyMutatingGCFields`: an update touching nothing but owner references and
/// finalizers (and the bookkeeping of managed fields) is never an escalation, so the garbage
/// collector can always finish deleting a role it could not have written.
pub(super) fn only_gc_fields<T>(new: &T, old: &T) -> bool
where
    T: Metadata<Ty = ObjectMeta> + Clone + PartialEq,
{
    let mut copy = new.clone();
    let (meta, old_meta) = (copy.metadata_mut(), old.metadata());
    meta.owner_references = old_meta.owner_references.clone();
    meta.finalizers = old_meta.finalizers.clone();
    meta.self_link = old_meta.self_link.clone();
    meta.managed_fields = old_meta.managed_fields.clone();
    meta.resource_version = old_meta.resource_version.clone();
    copy == *old
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PolicyRule {
            api_groups: Some(strings(groups)),
            resources: Some(strings(resources)),
            verbs: strings(verbs),
            ..Default::default()
        }
    }

    #[test]
    fn missing_rules_compact_as_upstream_prints_them() {
        let missing = rules::uncovered(
            &[rule(&[""], &["pods"], &["get"])],
            &[
                rule(&["", "apps"], &["pods"], &["get", "delete", "list"]),
                PolicyRule {
                    verbs: vec!["get".into()],
                    non_resource_urls: Some(vec!["/metrics".into()]),
                    ..Default::default()
                },
            ],
        );
        let mut lines: Vec<String> = compact(missing).iter().map(compact_string).collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete" "list"]}"#,
                r#"{APIGroups:["apps"], Resources:["pods"], Verbs:["get" "delete" "list"]}"#,
                r#"{NonResourceURLs:["/metrics"], Verbs:["get"]}"#,
            ]
        );
    }

    #[test]
    fn named_rules_stay_apart_from_unnamed_ones() {
        let mut named = rule(&[""], &["pods"], &["get"]);
        named.resource_names = Some(vec!["web".into()]);
        let compacted = compact(vec![named.clone(), rule(&[""], &["pods"], &["list"])]);
        assert_eq!(compacted.len(), 2);
        assert_eq!(
            compact_string(&named),
            r#"{APIGroups:[""], Resources:["pods"], ResourceNames:["web"], Verbs:["get"]}"#
        );
    }

    #[test]
    fn only_owner_references_and_finalizers_are_gc_fields() {
        let mut old = k8s_openapi::api::rbac::v1::Role::default();
        old.metadata.name = Some("r".into());
        old.metadata.resource_version = Some("5".into());
        let mut new = old.clone();
        new.metadata.finalizers = Some(vec!["foregroundDeletion".into()]);
        new.metadata.resource_version = None;
        assert!(only_gc_fields(&new, &old));
        new.rules = Some(vec![rule(&[""], &["pods"], &["get"])]);
        assert!(!only_gc_fields(&new, &old));
    }
}
