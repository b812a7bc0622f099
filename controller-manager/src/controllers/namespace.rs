//! The namespace controller (upstream `pkg/controller/namespace`): empties a namespace being
//! deleted, then removes the `kubernetes` finalizer so the API server lets it go.
//!
//! Content is found through discovery (every namespaced resource that can be deleted), not a
//! fixed list, so resources the server adds later are cleaned up too. Each pass deletes what
//! is left (a collection delete where supported) and reports progress in the namespace's
//! conditions; while objects remain (pods terminating gracefully, finalizers pending) the
//! namespace is looked at again after half the estimated time. Content is listed as metadata
//! only (`PartialObjectMetadataList`), as upstream's deleter does: names and finalizers are
//! all it needs.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::core::DynamicObject;
use kube::discovery::{verbs, ApiCapabilities, ApiResource, Discovery, Scope};
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};

use super::ControllerContext;
use crate::informers::Change;
use crate::runtime::{self, api_message, Queue, Result};

/// The controller's name (`--controllers`, queue metrics).
pub const NAME: &str = "namespace-controller";

/// The finalizer this controller owns (`spec.finalizers`).
const FINALIZER: &str = "kubernetes";
/// Wait assumed for objects held by finalizers.
const FINALIZER_ESTIMATE_SECONDS: i64 = 15;

/// Condition types this controller maintains, in upstream's order.
const CONDITIONS: [(&str, &str, &str); 5] = [
    (
        "NamespaceDeletionDiscoveryFailure",
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        "NamespaceDeletionGroupVersionParsingFailure",
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    (
        "NamespaceContentRemaining",
        "ContentRemoved",
        "All content successfully removed",
    ),
    (
        "NamespaceFinalizersRemaining",
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
];

struct Context {
    client: Client,
    queue: Queue<Namespace>,
}

/// Wires the controller to the shared informers and starts it.
pub fn start(ctx: &ControllerContext) {
    let namespaces = ctx.informers.get::<Namespace>();
    let (queue, triggers) = Queue::new(NAME);
    let context = Arc::new(Context {
        client: ctx.client_for(NAME),
        queue: queue.clone(),
    });
    tokio::spawn(watch_namespaces(context.clone(), namespaces.subscribe()));
    let controller = runtime::Controller {
        queue,
        triggers,
        store: namespaces.store(),
        caches: vec![namespaces.synced()],
        workers: ctx.options.concurrent_namespace_syncs,
    };
    tokio::spawn(controller.run(context, reconcile));
}

async fn watch_namespaces(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<Namespace>>) {
    while let Some(change) = changes.next().await {
        if let Change::Applied { new, .. } = change {
            if new.metadata.deletion_timestamp.is_some() {
                ctx.queue.add_object(&new);
            }
        }
    }
}

async fn reconcile(cached: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action> {
    if cached.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    // Several controllers edit a namespace being deleted: start from the latest state.
    let Some(mut namespace) = api.get_opt(&cached.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if namespace.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let status = namespace.status.get_or_insert_with(Default::default);
    if status.phase.as_deref() != Some("Terminating") {
        status.phase = Some("Terminating".into());
        namespace = api
            .replace_status(&namespace.name_any(), &PostParams::default(), &namespace)
            .await?;
    }
    let finalizers = namespace
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let estimate = delete_all_content(&ctx.client, &api, &mut namespace).await?;
    if estimate > 0 {
        tracing::info!(
            namespace = namespace.name_any(),
            estimate,
            "content remains in the namespace"
        );
        return Ok(Action::requeue(Duration::from_secs(
            (estimate / 2 + 1) as u64,
        )));
    }
    let spec = namespace.spec.get_or_insert_with(Default::default);
    spec.finalizers = Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
    match api
        .replace_subresource(
            "finalize",
            &namespace.name_any(),
            &PostParams::default(),
            &namespace,
        )
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Action::await_change()),
        Err(error) => Err(error.into()),
    }
}

/// Deletes everything in the namespace and records the outcome in its conditions; returns
/// the seconds to wait before what remains should be gone (0 when nothing remains).
async fn delete_all_content(
    client: &Client,
    api: &Api<Namespace>,
    namespace: &mut Namespace,
) -> Result<i64> {
    let name = namespace.name_any();
    let mut failures: Vec<(&str, String, String)> = Vec::new();
    let mut content_errors = Vec::new();
    let resources = match namespaced_deletable_resources(client).await {
        Ok(resources) => resources,
        Err(error) => {
            failures.push((
                "NamespaceDeletionDiscoveryFailure",
                "DiscoveryFailed".into(),
                error,
            ));
            Vec::new()
        }
    };
    let mut estimate = 0;
    let mut remaining_by_resource = Vec::new();
    let mut remaining_by_finalizer: BTreeMap<String, usize> = BTreeMap::new();
    for (resource, caps) in &resources {
        match delete_resource_content(client, &name, resource, caps).await {
            Ok(outcome) => {
                estimate = estimate.max(outcome.estimate);
                if outcome.remaining > 0 {
                    remaining_by_resource.push(format!(
                        "{}.{} has {} resource instances",
                        resource.plural, resource.group, outcome.remaining
                    ));
                    for finalizer in outcome.finalizers {
                        *remaining_by_finalizer.entry(finalizer).or_default() += 1;
                    }
                }
            }
            Err((partial_estimate, error)) => {
                estimate = estimate.max(partial_estimate);
                content_errors.push(error);
            }
        }
    }
    if !content_errors.is_empty() {
        content_errors.sort();
        let message = format!(
            "Failed to delete all resource types, {} remaining: {}",
            content_errors.len(),
            content_errors.join(", ")
        );
        failures.push((
            "NamespaceDeletionContentFailure",
            "ContentDeletionFailed".into(),
            message,
        ));
    }
    if !remaining_by_resource.is_empty() {
        remaining_by_resource.sort();
        let message = format!(
            "Some resources are remaining: {}",
            remaining_by_resource.join(", ")
        );
        failures.push((
            "NamespaceContentRemaining",
            "SomeResourcesRemain".into(),
            message,
        ));
    }
    if !remaining_by_finalizer.is_empty() {
        let mut entries: Vec<String> = remaining_by_finalizer
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        entries.sort();
        let message = format!(
            "Some content in the namespace has finalizers remaining: {}",
            entries.join(", ")
        );
        failures.push((
            "NamespaceFinalizersRemaining",
            "SomeFinalizersRemain".into(),
            message,
        ));
    }
    if update_conditions(namespace, &failures) {
        match api
            .replace_status(&name, &PostParams::default(), namespace)
            .await
        {
            Ok(updated) => *namespace = updated,
            Err(error) => tracing::warn!(
                namespace = name,
                error = api_message(&error),
                "could not update namespace conditions"
            ),
        }
    }
    let errors: Vec<String> = failures
        .iter()
        .filter(|(kind, _, _)| {
            matches!(
                *kind,
                "NamespaceDeletionDiscoveryFailure" | "NamespaceDeletionContentFailure"
            )
        })
        .map(|(_, _, message)| message.clone())
        .collect();
    if !errors.is_empty() {
        return Err(crate::runtime::Error::NamespaceContent(errors));
    }
    Ok(estimate)
}

/// Sets each maintained condition to its failure (if listed) or its success; returns
/// whether any changed.
fn update_conditions(namespace: &mut Namespace, failures: &[(&str, String, String)]) -> bool {
    let now = Time(Timestamp::from_second(Timestamp::now().as_second()).expect("now"));
    let conditions = namespace
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    let mut changed = false;
    for (type_, ok_reason, ok_message) in CONDITIONS {
        let (status, reason, message) = match failures.iter().find(|(t, _, _)| *t == type_) {
            Some((_, reason, message)) => ("True", reason.clone(), message.clone()),
            None => ("False", ok_reason.to_string(), ok_message.to_string()),
        };
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            None => {
                conditions.push(NamespaceCondition {
                    type_: type_.into(),
                    status: status.into(),
                    reason: Some(reason),
                    message: Some(message),
                    last_transition_time: Some(now.clone()),
                });
                changed = true;
            }
            Some(current) => {
                if current.status != status
                    || current.reason.as_deref() != Some(&reason)
                    || current.message.as_deref() != Some(&message)
                {
                    if current.status != status {
                        current.last_transition_time = Some(now.clone());
                    }
                    current.status = status.into();
                    current.reason = Some(reason);
                    current.message = Some(message);
                    changed = true;
                }
            }
        }
    }
    changed
}

struct Outcome {
    estimate: i64,
    remaining: usize,
    finalizers: Vec<String>,
}

/// Deletes one resource's objects in the namespace and counts what is left.
async fn delete_resource_content(
    client: &Client,
    namespace: &str,
    resource: &ApiResource,
    caps: &ApiCapabilities,
) -> std::result::Result<Outcome, (i64, String)> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    let estimate = if resource.group.is_empty() && resource.plural == "pods" {
        pod_termination_estimate(client, namespace).await
    } else {
        0
    };
    let fail = |error: kube::Error| {
        (
            estimate,
            format!(
                "{}.{}: {}",
                resource.plural,
                resource.group,
                api_message(&error)
            ),
        )
    };
    let background = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    let list_supported = caps.supports_operation(verbs::LIST);
    if caps.supports_operation(verbs::DELETE_COLLECTION) {
        api.delete_collection(&background, &ListParams::default())
            .await
            .map_err(fail)?;
    } else if list_supported {
        for object in api
            .list_metadata(&ListParams::default())
            .await
            .map_err(fail)?
        {
            match api.delete(&object.name_any(), &background).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(fail(error)),
            }
        }
    }
    if !list_supported {
        return Ok(Outcome {
            estimate,
            remaining: 0,
            finalizers: Vec::new(),
        });
    }
    let left = api
        .list_metadata(&ListParams::default())
        .await
        .map_err(fail)?
        .items;
    if left.is_empty() {
        return Ok(Outcome {
            estimate: 0,
            remaining: 0,
            finalizers: Vec::new(),
        });
    }
    let finalizers: Vec<String> = left.iter().flat_map(|o| o.finalizers().to_vec()).collect();
    let distinct: HashSet<&String> = finalizers.iter().collect();
    if estimate == 0 && distinct.is_empty() {
        let error = format!(
            "unexpected items still remain in namespace: {namespace} for gvr: {}/{}, Resource={}",
            resource.group, resource.version, resource.plural
        );
        return Err((estimate, error));
    }
    Ok(Outcome {
        estimate: if estimate == 0 {
            FINALIZER_ESTIMATE_SECONDS
        } else {
            estimate
        },
        remaining: left.len(),
        finalizers,
    })
}

/// The longest grace period of the namespace's running pods.
async fn pod_termination_estimate(client: &Client, namespace: &str) -> i64 {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = pods.list(&ListParams::default()).await else {
        return 0;
    };
    list.items
        .iter()
        .filter(|pod| !matches!(crate::controller_utils::phase(pod), "Succeeded" | "Failed"))
        .filter_map(|pod| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .max()
        .unwrap_or(0)
}

/// Every namespaced resource that can be deleted, at its preferred version.
async fn namespaced_deletable_resources(
    client: &Client,
) -> std::result::Result<Vec<(ApiResource, ApiCapabilities)>, String> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(|e| e.to_string())?;
    Ok(discovery
        .groups()
        .flat_map(|group| group.recommended_resources())
        .filter(|(_, caps)| {
            caps.scope == Scope::Namespaced && caps.supports_operation(verbs::DELETE)
        })
        .collect())
}
