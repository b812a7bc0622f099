//! RBAC policy rules: whether a rule allows a request, and whether a set of rules covers
//! another (what privilege-escalation prevention asks), with upstream's wildcards: `*` verbs,
//! groups and resources, `*/subresource`, non-resource URL prefixes ending in `*`, and
//! resource names restricting a rule to named objects.

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::authz::Attributes;

const ALL: &str = "*";

fn has(set: &Option<Vec<String>>, value: &str) -> bool {
    set.as_deref()
        .unwrap_or_default()
        .iter()
        .any(|v| v == value)
}

fn list(set: &Option<Vec<String>>) -> &[String] {
    set.as_deref().unwrap_or_default()
}

/// Everything, as `cluster-admin` holds it: every verb on every resource and every
/// non-resource URL. What AlwaysAllow lists as a user's rules, and what setting an
/// aggregation rule requires (the rule may gather any permission into the role).
pub fn everything() -> [PolicyRule; 2] {
    let all = || Some(vec![ALL.to_string()]);
    [
        PolicyRule {
            verbs: vec![ALL.into()],
            api_groups: all(),
            resources: all(),
            ..Default::default()
        },
        PolicyRule {
            verbs: vec![ALL.into()],
            non_resource_urls: all(),
            ..Default::default()
        },
    ]
}

/// Whether `rule` allows the request `attributes` describes.
pub fn allows(rule: &PolicyRule, attributes: &Attributes) -> bool {
    if !(rule.verbs.iter().any(|v| v == ALL || *v == attributes.verb)) {
        return false;
    }
    match &attributes.resource {
        None => list(&rule.non_resource_urls)
            .iter()
            .any(|url| url_covers(url, &attributes.path)),
        Some(request) => {
            let group_matches = has(&rule.api_groups, ALL) || has(&rule.api_groups, &request.group);
            let combined = match request.subresource.as_str() {
                "" => request.resource.clone(),
                sub => format!("{}/{sub}", request.resource),
            };
            let resource_matches = list(&rule.resources).iter().any(|r| {
                r == ALL
                    || *r == combined
                    || (!request.subresource.is_empty()
                        && r.strip_prefix("*/") == Some(request.subresource.as_str()))
            });
            let names = list(&rule.resource_names);
            let name_matches = names.is_empty() || names.contains(&request.name);
            group_matches && resource_matches && name_matches
        }
    }
}

/// A non-resource URL rule's path, exact or a prefix ending in `*`.
fn url_covers(owner: &str, path: &str) -> bool {
    owner == path
        || owner == ALL
        || owner
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

/// The rules of `requested` that `owner` does not cover, each broken down to one verb, group,
/// resource and name (or URL), as upstream's escalation check reports them.
pub fn uncovered(owner: &[PolicyRule], requested: &[PolicyRule]) -> Vec<PolicyRule> {
    requested
        .iter()
        .flat_map(breakdown)
        .filter(|simple| !owner.iter().any(|rule| covers(rule, simple)))
        .collect()
}

/// One rule per verb × group × resource × name, and per verb × URL.
pub fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |value: &String| Some(vec![value.clone()]);
    let mut simple = Vec::new();
    for group in list(&rule.api_groups) {
        for resource in list(&rule.resources) {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    api_groups: one(group),
                    resources: one(resource),
                    verbs: vec![verb.clone()],
                    ..Default::default()
                };
                match list(&rule.resource_names) {
                    [] => simple.push(base),
                    names => simple.extend(names.iter().map(|name| PolicyRule {
                        resource_names: one(name),
                        ..base.clone()
                    })),
                }
            }
        }
    }
    for url in list(&rule.non_resource_urls) {
        for verb in &rule.verbs {
            simple.push(PolicyRule {
                non_resource_urls: one(url),
                verbs: vec![verb.clone()],
                ..Default::default()
            });
        }
    }
    simple
}

/// Whether `owner` grants everything `sub` does.
pub fn covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let all_in = |set: &[String], values: &[String]| values.iter().all(|v| set.contains(v));
    let verbs = owner.verbs.iter().any(|v| v == ALL) || all_in(&owner.verbs, &sub.verbs);
    let groups =
        has(&owner.api_groups, ALL) || all_in(list(&owner.api_groups), list(&sub.api_groups));
    let resources = list(&sub.resources).iter().all(|resource| {
        let owned = list(&owner.resources);
        owned.iter().any(|r| r == ALL || r == resource)
            || resource
                .split_once('/')
                .is_some_and(|(_, sub)| owned.contains(&format!("*/{sub}")))
    });
    let urls = list(&sub.non_resource_urls).iter().all(|url| {
        list(&owner.non_resource_urls)
            .iter()
            .any(|o| url_covers(o, url))
    });
    let names = match (list(&owner.resource_names), list(&sub.resource_names)) {
        ([], _) => true,
        (_, []) => false,
        (owned, wanted) => all_in(owned, wanted),
    };
    verbs && groups && resources && urls && names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::UserInfo;
    use crate::authz::ResourceAttributes;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
        let strings = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        PolicyRule {
            api_groups: strings(groups),
            resources: strings(resources),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            resource_names: (!names.is_empty()).then(|| strings(names)).flatten(),
            non_resource_urls: None,
        }
    }

    fn request(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            user: UserInfo {
                name: "jane".into(),
                uid: String::new(),
                groups: vec![],
                extra: Default::default(),
            },
            verb: verb.into(),
            resource: Some(ResourceAttributes {
                namespace: "default".into(),
                group: group.into(),
                version: "v1".into(),
                resource: resource.into(),
                subresource: sub.into(),
                name: name.into(),
                field_equals: Vec::new(),
            }),
            path: String::new(),
        }
    }

    #[test]
    fn rules_match_with_upstreams_wildcards() {
        let pods = rule(&[""], &["pods"], &["get", "list"], &[]);
        assert!(allows(&pods, &request("get", "", "pods", "", "web")));
        assert!(!allows(&pods, &request("delete", "", "pods", "", "web")));
        assert!(!allows(&pods, &request("get", "apps", "pods", "", "web")));
        assert!(
            !allows(&pods, &request("get", "", "pods", "log", "web")),
            "subresources are separate"
        );
        let logs = rule(&[""], &["*/log"], &["get"], &[]);
        assert!(allows(&logs, &request("get", "", "pods", "log", "web")));
        let named = rule(&["apps"], &["deployments"], &["*"], &["web"]);
        assert!(allows(
            &named,
            &request("patch", "apps", "deployments", "", "web")
        ));
        assert!(!allows(
            &named,
            &request("list", "apps", "deployments", "", "")
        ));
        let all = rule(&["*"], &["*"], &["*"], &[]);
        assert!(allows(
            &all,
            &request("deletecollection", "batch", "jobs", "", "")
        ));
        let urls = PolicyRule {
            non_resource_urls: Some(vec!["/healthz".into(), "/api/*".into()]),
            verbs: vec!["get".into()],
            ..Default::default()
        };
        let mut path = request("get", "", "", "", "");
        path.resource = None;
        for (p, allowed) in [("/healthz", true), ("/api/v1", true), ("/apis", false)] {
            path.path = p.into();
            assert_eq!(allows(&urls, &path), allowed, "{p}");
        }
    }

    #[test]
    fn coverage_breaks_rules_down() {
        let owner = [
            rule(&[""], &["pods", "*/status"], &["get", "list"], &[]),
            rule(&["apps"], &["deployments"], &["get"], &["web"]),
        ];
        assert!(uncovered(&owner, &[rule(&[""], &["pods"], &["get"], &[])]).is_empty());
        assert!(uncovered(&owner, &[rule(&[""], &["services/status"], &["list"], &[])]).is_empty());
        assert!(uncovered(
            &owner,
            &[rule(&["apps"], &["deployments"], &["get"], &["web"])]
        )
        .is_empty());
        let missing = uncovered(
            &owner,
            &[rule(
                &["", "apps"],
                &["pods", "deployments"],
                &["get", "delete"],
                &[],
            )],
        );
        // Every (group, resource, verb) but ("", pods, get) is missing.
        assert_eq!(missing.len(), 7, "{missing:?}");
        assert_eq!(missing[0], rule(&[""], &["pods"], &["delete"], &[]));
    }
}
