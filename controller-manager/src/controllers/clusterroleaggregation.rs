//! The ClusterRole aggregation controller (upstream `pkg/controller/clusterroleaggregation`):
//! a ClusterRole with an `aggregationRule` holds the rules of every ClusterRole its selectors
//! match, so `admin`, `edit` and `view` grow when an extension labels its roles
//! `rbac.authorization.k8s.io/aggregate-to-edit: "true"`.
//!
//! Like upstream, the aggregated rules are the selected roles' rules in order of role name,
//! duplicates dropped, written with a forced server-side apply as the controller's field
//! manager, so the rules have one owner.

use std::sync::Arc;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use machinery::selector::Selector;
use serde_json::json;

use super::ControllerContext;
use crate::informers::Change;
use crate::runtime::{self, Queue, Result};

/// The controller's name (`--controllers`, queue metrics, field manager).
pub const NAME: &str = "clusterrole-aggregation-controller";

struct Context {
    client: Client,
    roles: Store<ClusterRole>,
}

/// Wires the controller to the shared informers and starts it.
pub fn start(ctx: &ControllerContext) {
    let roles = ctx.informers.get::<ClusterRole>();
    let (queue, triggers) = Queue::new(NAME);
    tokio::spawn(watch_roles(queue.clone(), roles.store(), roles.subscribe()));
    let context = Arc::new(Context {
        client: ctx.client_for(NAME),
        roles: roles.store(),
    });
    let controller = runtime::Controller {
        queue,
        triggers,
        store: roles.store(),
        caches: vec![roles.synced()],
        workers: 1,
    };
    tokio::spawn(controller.run(context, reconcile));
}

/// Any ClusterRole change may change what an aggregated role selects: every aggregated role
/// is looked at again, as upstream's handlers do.
async fn watch_roles(
    queue: Queue<ClusterRole>,
    roles: Store<ClusterRole>,
    mut changes: UnboundedReceiver<Change<ClusterRole>>,
) {
    while changes.next().await.is_some() {
        for role in roles.state() {
            if role.aggregation_rule.is_some() {
                queue.add_object(&role);
            }
        }
    }
}

/// The rules `role` aggregates from `all`.
fn aggregated(role: &ClusterRole, all: &[Arc<ClusterRole>]) -> Option<Vec<PolicyRule>> {
    let rule = role.aggregation_rule.as_ref()?;
    let mut sorted: Vec<&Arc<ClusterRole>> = all.iter().collect();
    sorted.sort_by_key(|r| r.name_any());
    let mut rules: Vec<PolicyRule> = Vec::new();
    for selector in rule.cluster_role_selectors.iter().flatten() {
        let selector = Selector::new(Some(selector));
        for other in &sorted {
            if other.name_any() == role.name_any() || !selector.matches(other.labels()) {
                continue;
            }
            for candidate in other.rules.iter().flatten() {
                if !rules.contains(candidate) {
                    rules.push(candidate.clone());
                }
            }
        }
    }
    Some(rules)
}

async fn reconcile(role: Arc<ClusterRole>, ctx: Arc<Context>) -> Result<Action> {
    let Some(rules) = aggregated(&role, &ctx.roles.state()) else {
        return Ok(Action::await_change());
    };
    if rules == role.rules.clone().unwrap_or_default() {
        return Ok(Action::await_change());
    }
    let api: Api<ClusterRole> = Api::all(ctx.client.clone());
    let apply = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": role.name_any()},
        "rules": rules,
    });
    api.patch(
        &role.name_any(),
        &PatchParams::apply(NAME).force(),
        &Patch::Apply(&apply),
    )
    .await?;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::AggregationRule;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn role(name: &str, label: Option<&str>, verbs: &[&str]) -> Arc<ClusterRole> {
        Arc::new(ClusterRole {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: label.map(|l| [(l.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            rules: Some(
                verbs
                    .iter()
                    .map(|verb| PolicyRule {
                        api_groups: Some(vec![String::new()]),
                        resources: Some(vec!["pods".into()]),
                        verbs: vec![verb.to_string()],
                        ..Default::default()
                    })
                    .collect(),
            ),
            aggregation_rule: None,
        })
    }

    #[test]
    fn rules_come_from_matching_roles_by_name_without_duplicates() {
        let label = "rbac.authorization.k8s.io/aggregate-to-view";
        let mut view = (*role("view", None, &["stale"])).clone();
        view.aggregation_rule = Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some([(label.to_string(), "true".to_string())].into()),
                ..Default::default()
            }]),
        });
        let all = vec![
            role("b-extension", Some(label), &["list", "get"]),
            role("a-extension", Some(label), &["get"]),
            role("unrelated", None, &["delete"]),
            Arc::new(view.clone()),
        ];
        let verbs: Vec<String> = aggregated(&view, &all)
            .unwrap()
            .into_iter()
            .map(|r| r.verbs[0].clone())
            .collect();
        assert_eq!(verbs, ["get", "list"]);
        assert_eq!(aggregated(&all[2], &all), None);
    }
}
