//! A DaemonSet's history as ControllerRevisions (upstream's `constructHistory`, `snapshot`
//! and `cleanupHistory`): each template is saved as the strategic merge patch that puts it
//! back (what `kubectl rollout undo` applies), in a revision named `<ds>-<template hash>`
//! and labelled with that hash, which the pods made from it carry too.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};

use super::Context;
use crate::controller_utils::{claim, controller_ref, selector};
use crate::controllers::deployment::compute_hash;
use crate::history::{self, POD_REVISION_LABEL};
use crate::runtime::{is_status, Error, Result};

/// The revision data of the DaemonSet's template: upstream's `getPatch`, a patch replacing
/// `spec.template`.
pub fn patch(ds: &DaemonSet) -> Value {
    let mut template =
        serde_json::to_value(ds.spec.as_ref().map(|s| &s.template)).unwrap_or(Value::Null);
    if let Some(map) = template.as_object_mut() {
        map.insert("$patch".into(), "replace".into());
    }
    json!({"spec": {"template": template}})
}

/// The current revision (created or renumbered as the newest when needed) and the old
/// ones, after claiming the revisions the DaemonSet's selector matches.
pub async fn construct(
    ctx: &Context,
    ds: &Arc<DaemonSet>,
) -> Result<(ControllerRevision, Vec<Arc<ControllerRevision>>)> {
    let namespace = ds.namespace().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &namespace);
    let ds_api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let spec = ds.spec.clone().unwrap_or_default();
    let selector = selector(&spec.selector)?;
    let candidates = history::candidates(&ctx.revisions, &namespace, &selector);
    let (claimed, mut errors) = claim(&**ds, &ds_api, &api, &selector, candidates).await;
    if !errors.is_empty() {
        return Err(errors.swap_remove(0));
    }
    let data = patch(ds);
    let mut current = Vec::new();
    let mut old = Vec::new();
    for revision in claimed {
        let revision = if revision.labels().contains_key(POD_REVISION_LABEL) {
            revision
        } else {
            // Older revisions lack the hash label: their name stands in for it.
            let name = revision.name_any();
            let labelled = json!({"metadata": {"labels": {POD_REVISION_LABEL: name}}});
            Arc::new(
                api.patch(&name, &PatchParams::default(), &Patch::Merge(labelled))
                    .await?,
            )
        };
        if revision.data.as_ref().map(|d| &d.0) == Some(&data) {
            current.push(revision);
        } else {
            old.push(revision);
        }
    }
    let next = history::next_revision(&old);
    let current = match current.len() {
        0 => snapshot(ds, &api, &ds_api, data, next).await?,
        _ => {
            let kept = dedup(ctx, ds, current).await?;
            history::renumber(&api, &kept, next.max(kept.revision)).await?
        }
    };
    Ok((current, old))
}

/// Keeps the newest of several revisions with the current template, moving the pods of
/// the others to it (upstream's `dedupCurHistories`).
async fn dedup(
    ctx: &Context,
    ds: &DaemonSet,
    mut current: Vec<Arc<ControllerRevision>>,
) -> Result<ControllerRevision> {
    history::sort(&mut current);
    let kept = current.pop().expect("at least one current revision");
    if current.is_empty() {
        return Ok((*kept).clone());
    }
    let namespace = ds.namespace().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &namespace);
    let pod_api: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(ctx.client.clone(), &namespace);
    let kept_hash = kept
        .labels()
        .get(POD_REVISION_LABEL)
        .cloned()
        .unwrap_or_default();
    for duplicate in current {
        let hash = duplicate.labels().get(POD_REVISION_LABEL).cloned();
        for pod in ctx.pods.state() {
            if pod.namespace().as_deref() == Some(namespace.as_str())
                && hash.is_some()
                && pod.labels().get(POD_REVISION_LABEL) == hash.as_ref()
            {
                let relabel = json!({"metadata": {"labels": {POD_REVISION_LABEL: kept_hash}}});
                pod_api
                    .patch(
                        &pod.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(relabel),
                    )
                    .await?;
            }
        }
        let deleted = api
            .delete(&duplicate.name_any(), &DeleteParams::default())
            .await;
        if !is_status(&deleted, 404) {
            deleted?;
        }
    }
    Ok((*kept).clone())
}

/// Saves the current template as revision `number` (upstream's `snapshot`). A name taken by
/// another template is a hash collision: the DaemonSet's `collisionCount` goes up and the
/// sync is retried with the next name.
async fn snapshot(
    ds: &DaemonSet,
    api: &Api<ControllerRevision>,
    ds_api: &Api<DaemonSet>,
    data: Value,
    number: i64,
) -> Result<ControllerRevision> {
    let spec = ds.spec.clone().unwrap_or_default();
    let collision_count = ds.status.as_ref().and_then(|s| s.collision_count);
    let hash = compute_hash(&spec.template, collision_count);
    let name = format!("{}-{hash}", ds.name_any());
    let mut labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(POD_REVISION_LABEL.into(), hash.clone());
    let revision = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: ds.namespace(),
            labels: Some(labels),
            annotations: ds.metadata.annotations.clone(),
            owner_references: Some(vec![controller_ref(ds)]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(data.clone())),
        revision: number,
    };
    let conflict = match api.create(&PostParams::default(), &revision).await {
        Err(kube::Error::Api(status)) if status.code == 409 => status,
        created => return Ok(created?),
    };
    let existing = api.get(&name).await?;
    if existing.data.as_ref().map(|d| &d.0) == Some(&data) {
        return Ok(existing);
    }
    let mut fresh = ds_api.get(&ds.name_any()).await?;
    let fresh_count = fresh.status.as_ref().and_then(|s| s.collision_count);
    if fresh_count != collision_count {
        return Err(Error::StaleCollisionCount {
            name: ds.name_any(),
            seen: collision_count.unwrap_or(0),
            current: fresh_count.unwrap_or(0),
        });
    }
    let status = fresh.status.get_or_insert_with(Default::default);
    status.collision_count = Some(collision_count.unwrap_or(0) + 1);
    ds_api
        .replace_status(&ds.name_any(), &PostParams::default(), &fresh)
        .await?;
    tracing::info!(daemonset = %ds.name_any(), hash, "hash collision; collisionCount raised");
    Err(Error::Kube(kube::Error::Api(conflict)))
}

/// Deletes the oldest revisions beyond `revisionHistoryLimit` that no pod was made from
/// (upstream's `cleanupHistory`: the count includes the revisions pods still use, which are
/// kept anyway).
pub async fn cleanup(
    ctx: &Context,
    ds: &DaemonSet,
    mut old: Vec<Arc<ControllerRevision>>,
    live_hashes: &HashSet<String>,
) -> Result<()> {
    let limit = ds
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0) as usize;
    let mut to_kill = old.len().saturating_sub(limit);
    if to_kill == 0 {
        return Ok(());
    }
    let api: Api<ControllerRevision> =
        Api::namespaced(ctx.client.clone(), &ds.namespace().unwrap_or_default());
    history::sort(&mut old);
    for revision in old {
        if to_kill == 0 {
            break;
        }
        if revision
            .labels()
            .get(POD_REVISION_LABEL)
            .is_some_and(|h| live_hashes.contains(h))
        {
            continue;
        }
        let deleted = api
            .delete(&revision.name_any(), &DeleteParams::default())
            .await;
        if !is_status(&deleted, 404) {
            deleted?;
        }
        to_kill -= 1;
    }
    Ok(())
}
