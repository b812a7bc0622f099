//! `rbac.authorization.k8s.io/v1`: Roles, ClusterRoles and the bindings granting them, which
//! the RBAC authorizer (`crate::authz::rbac`) reads from the store. Writes are checked for
//! privilege escalation ([`escalation`]) when RBAC authorizes requests.

mod bindings;
mod escalation;
mod roles;

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use store::Store;

use self::bindings::{BindingChecks, Bindings};
pub use self::escalation::Escalation;
use self::escalation::GROUP;
use self::roles::Roles;
use crate::error::Cause;
use crate::registry::table::{Cell, Column};
use crate::registry::{validation, NameRule, Registry, Rest};

/// Serves the four RBAC resources over `store`, their writes checked by `escalation` if
/// given.
pub fn add(registry: &mut Registry, store: &Arc<dyn Store>, escalation: Option<&Arc<Escalation>>) {
    let checks = || {
        escalation.map(|escalation| BindingChecks {
            escalation: escalation.clone(),
            store: store.clone(),
        })
    };
    let escalation = escalation.cloned();
    registry.add(Arc::new(Rest::new(
        Roles::<Role>::new(escalation.clone()),
        store.clone(),
    )));
    registry.add(Arc::new(Rest::new(
        Roles::<ClusterRole>::new(escalation),
        store.clone(),
    )));
    registry.add(Arc::new(Rest::new(
        Bindings::<RoleBinding>::new(checks()),
        store.clone(),
    )));
    registry.add(Arc::new(Rest::new(
        Bindings::<ClusterRoleBinding>::new(checks()),
        store.clone(),
    )));
}

/// Whether rules of a role may name non-resource URLs (only cluster roles' may).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// Upstream's `ValidatePolicyRule` for each rule.
fn validate_rules(rules: Option<&[PolicyRule]>, scope: Scope) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, rule) in rules.unwrap_or_default().iter().enumerate() {
        let at = |field: &str| format!("rules[{i}].{field}");
        let set = |values: &Option<Vec<String>>| values.as_deref().unwrap_or_default().len();
        if rule.verbs.is_empty() {
            causes.push(Cause::required_because(
                at("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
        if !urls.is_empty() {
            let printed = go_string_slice(urls);
            if scope == Scope::Namespaced {
                causes.push(Cause::invalid_printed(
                    at("nonResourceURLs"),
                    &printed,
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if set(&rule.api_groups) + set(&rule.resources) + set(&rule.resource_names) > 0 {
                causes.push(Cause::invalid_printed(
                    at("nonResourceURLs"),
                    &printed,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if set(&rule.api_groups) == 0 {
            causes.push(Cause::required_because(
                at("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if set(&rule.resources) == 0 {
            causes.push(Cause::required_because(
                at("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    causes
}

/// Upstream's binding defaults: the roleRef's and users' and groups' API group is RBAC's.
fn default_binding(role: &mut RoleRef, subjects: Option<&mut Vec<Subject>>) {
    if role.api_group.is_empty() {
        role.api_group = GROUP.into();
    }
    for subject in subjects.into_iter().flatten() {
        if subject.api_group.as_deref().unwrap_or("").is_empty()
            && matches!(subject.kind.as_str(), "User" | "Group")
        {
            subject.api_group = Some(GROUP.into());
        }
    }
}

/// Upstream's `ValidateRoleBinding` and `ValidateClusterRoleBinding` beyond metadata: the
/// roleRef (`kinds` allowed) and each subject; service accounts bound cluster-wide must say
/// which namespace they are in.
fn validate_binding(
    role: &RoleRef,
    subjects: Option<&[Subject]>,
    kinds: &[&str],
    scope: Scope,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    if role.api_group != GROUP {
        causes.push(Cause::unsupported(
            "roleRef.apiGroup",
            &Value::from(role.api_group.as_str()),
            &[GROUP],
        ));
    }
    if !kinds.contains(&role.kind.as_str()) {
        causes.push(Cause::unsupported(
            "roleRef.kind",
            &Value::from(role.kind.as_str()),
            kinds,
        ));
    }
    if role.name.is_empty() {
        causes.push(Cause::required("roleRef.name"));
    }
    for error in validation::name_errors(&role.name, NameRule::PathSegment) {
        causes.push(Cause::invalid(
            "roleRef.name",
            &Value::from(role.name.as_str()),
            error,
        ));
    }
    for (i, subject) in subjects.unwrap_or_default().iter().enumerate() {
        let at = |field: &str| format!("subjects[{i}].{field}");
        let group = subject.api_group.as_deref().unwrap_or("");
        if subject.name.is_empty() {
            causes.push(Cause::required(at("name")));
        }
        match subject.kind.as_str() {
            "ServiceAccount" => {
                if !subject.name.is_empty() {
                    for error in validation::name_errors(&subject.name, NameRule::Subdomain) {
                        causes.push(Cause::invalid(
                            at("name"),
                            &Value::from(subject.name.as_str()),
                            error,
                        ));
                    }
                }
                if !group.is_empty() {
                    causes.push(Cause::unsupported(
                        at("apiGroup"),
                        &Value::from(group),
                        &[""],
                    ));
                }
                if scope == Scope::Cluster && subject.namespace.as_deref().unwrap_or("").is_empty()
                {
                    causes.push(Cause::required(at("namespace")));
                }
            }
            "User" | "Group" if group != GROUP => causes.push(Cause::unsupported(
                at("apiGroup"),
                &Value::from(group),
                &[GROUP],
            )),
            "User" | "Group" => {}
            other => causes.push(Cause::unsupported(
                at("kind"),
                &Value::from(other),
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    causes
}

/// Upstream's update rule for bindings: the role granted is fixed for the binding's life,
/// so whoever may edit its subjects cannot swap in a stronger role. The value printed is
/// the new roleRef as Go's `%#v` shows its internal struct.
fn immutable_role_ref(new: &RoleRef, old: &RoleRef) -> Option<Cause> {
    (new != old).then(|| {
        Cause::invalid_printed(
            "roleRef",
            &format!(
                "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}",
                new.api_group, new.kind, new.name
            ),
            "cannot change roleRef",
        )
    })
}

/// A string slice as Go's `%#v` prints it in a field error: `[]string{"/healthz"}`.
fn go_string_slice(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// Roles' and ClusterRoles' columns: NAME and CREATED AT (a date, not an age).
fn role_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column {
            name: "Created At",
            kind: "date",
            ..Column::age()
        },
    ]
}

/// The cells of a role: its name and creation time in RFC 3339, as upstream's printer.
fn role_cells(meta: &ObjectMeta) -> Vec<Cell> {
    let created = meta
        .creation_timestamp
        .as_ref()
        .and_then(|t| serde_json::to_value(t).ok())
        .unwrap_or_else(|| Value::from("0001-01-01T00:00:00Z"));
    vec![
        Cell::from(meta.name.clone().unwrap_or_default()),
        Cell::Fixed(created),
    ]
}

const ROLE_REF: &str = "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.";

/// Bindings' columns: NAME, ROLE, AGE, and with `-o wide` the subjects by kind.
fn binding_columns(of: &'static [&'static str; 3]) -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Role", "string", ROLE_REF),
        Column::age(),
        Column::new("Users", "string", of[0]).wide(),
        Column::new("Groups", "string", of[1]).wide(),
        Column::new("ServiceAccounts", "string", of[2]).wide(),
    ]
}

/// The cells of a binding: `Kind/name` of its role, and its users, groups and service
/// accounts (`namespace/name`) each comma-separated, as upstream's printer.
fn binding_cells(meta: &ObjectMeta, role: &RoleRef, subjects: Option<&[Subject]>) -> Vec<Cell> {
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in subjects.unwrap_or_default() {
        match subject.kind.as_str() {
            "User" => users.push(subject.name.clone()),
            "Group" => groups.push(subject.name.clone()),
            "ServiceAccount" => accounts.push(format!(
                "{}/{}",
                subject.namespace.as_deref().unwrap_or(""),
                subject.name
            )),
            _ => {}
        }
    }
    vec![
        Cell::from(meta.name.clone().unwrap_or_default()),
        Cell::from(format!("{}/{}", role.kind, role.name)),
        crate::registry::table::age(meta),
        Cell::from(users.join(", ")),
        Cell::from(groups.join(", ")),
        Cell::from(accounts.join(", ")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_need_verbs_groups_and_resources_or_only_urls() {
        let empty = PolicyRule::default();
        let causes = validate_rules(Some(&[empty]), Scope::Namespaced);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            ["rules[0].verbs", "rules[0].apiGroups", "rules[0].resources"]
        );
        assert_eq!(
            causes[0].message,
            "Required value: verbs must contain at least one value"
        );
        let mixed = PolicyRule {
            verbs: vec!["get".into()],
            resources: Some(vec!["pods".into()]),
            non_resource_urls: Some(vec!["/healthz".into()]),
            ..Default::default()
        };
        let namespaced = validate_rules(Some(std::slice::from_ref(&mixed)), Scope::Namespaced);
        assert_eq!(namespaced.len(), 2);
        assert_eq!(
            namespaced[0].message,
            "Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs"
        );
        assert_eq!(validate_rules(Some(&[mixed]), Scope::Cluster).len(), 1);
    }

    #[test]
    fn subjects_and_role_refs_follow_upstreams_rules() {
        let mut role = RoleRef {
            kind: "Role".into(),
            name: "pod-reader".into(),
            ..Default::default()
        };
        let mut subjects = vec![
            Subject {
                kind: "User".into(),
                name: "jane".into(),
                ..Default::default()
            },
            Subject {
                kind: "ServiceAccount".into(),
                name: "builder".into(),
                ..Default::default()
            },
        ];
        default_binding(&mut role, Some(&mut subjects));
        assert_eq!(role.api_group, GROUP);
        assert_eq!(subjects[0].api_group.as_deref(), Some(GROUP));
        assert_eq!(subjects[1].api_group, None);
        let kinds = &["Role", "ClusterRole"];
        assert!(validate_binding(&role, Some(&subjects), kinds, Scope::Namespaced).is_empty());
        let cluster = validate_binding(&role, Some(&subjects), &["ClusterRole"], Scope::Cluster);
        let fields: Vec<&str> = cluster.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["roleRef.kind", "subjects[1].namespace"]);
        assert_eq!(
            cluster[0].message,
            "Unsupported value: \"Role\": supported values: \"ClusterRole\""
        );
        let changed = RoleRef {
            name: "admin".into(),
            ..role.clone()
        };
        assert_eq!(
            immutable_role_ref(&changed, &role).unwrap().message,
            "Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"admin\"}: cannot change roleRef"
        );
        assert!(immutable_role_ref(&role, &role).is_none());
    }

    #[test]
    fn binding_rows_name_the_role_and_subjects_by_kind() {
        let role = RoleRef {
            kind: "ClusterRole".into(),
            name: "view".into(),
            api_group: GROUP.into(),
        };
        let subject = |kind: &str, name: &str, ns: Option<&str>| Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(String::from),
            api_group: None,
        };
        let subjects = [
            subject("User", "jane", None),
            subject("User", "joe", None),
            subject("Group", "devs", None),
            subject("ServiceAccount", "ci", Some("lab")),
        ];
        let cells = binding_cells(&ObjectMeta::default(), &role, Some(&subjects));
        assert_eq!(cells[1], Cell::from("ClusterRole/view"));
        assert_eq!(cells[3], Cell::from("jane, joe"));
        assert_eq!(cells[4], Cell::from("devs"));
        assert_eq!(cells[5], Cell::from("lab/ci"));
    }
}
