//! A controller's rollout history kept as ControllerRevisions, as upstream's
//! `pkg/controller/history`: StatefulSets and DaemonSets snapshot the part of themselves that
//! makes their pods (the pod template, as a patch) into immutable revisions named
//! `<owner>-<hash>`, so pods can say which revision made them (`controller-revision-hash`),
//! and `kubectl rollout history` and `undo` can list and put back old states.
//!
//! The owner's revisions are claimed like pods ([`crate::controller_utils::claim`]: adopt
//! matching orphans, release the ones that stopped matching); this module names, hashes,
//! creates (resolving hash collisions), orders, renumbers and prunes them.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};
use machinery::selector::Selector;

use crate::controller_utils::{controller_ref, matches};
use crate::hash::{Fnv32, Variant};
use crate::runtime::{is_status, Result};

/// The label holding the hash of a revision's data (upstream's
/// `ControllerRevisionHashLabel`).
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// The label on pods naming the revision that made them (`apps/v1`'s
/// `ControllerRevisionHashLabelKey`).
pub const POD_REVISION_LABEL: &str = "controller-revision-hash";
/// Longest owner name kept in a revision name, leaving room for the hash within 253.
const MAX_PREFIX: usize = 223;
/// Attempts at renumbering a revision that keeps conflicting with other writers.
const UPDATE_RETRIES: usize = 5;

/// `<prefix>-<hash>`, the prefix cut to 223 bytes.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let mut end = prefix.len().min(MAX_PREFIX);
    while !prefix.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", &prefix[..end])
}

/// Upstream's `HashControllerRevision`: FNV-32 of the data's JSON and, when given, of the
/// collision count in decimal, safely encoded.
pub fn hash_revision(data: Option<&RawExtension>, collision_count: Option<i32>) -> String {
    let mut hash = Fnv32::new(Variant::Fnv1);
    if let Some(data) = data.filter(|d| !d.0.is_null()) {
        hash.write(&serde_json::to_vec(&data.0).expect("JSON values serialize"));
    }
    if let Some(count) = collision_count {
        hash.write(count.to_string().as_bytes());
    }
    hash.encoded()
}

/// A revision of `parent` holding `data`, with the template's labels plus the hash label,
/// controlled by `parent` (upstream's `NewControllerRevision`).
pub fn new_revision<K: Resource<DynamicType = ()>>(
    parent: &K,
    template_labels: Option<&BTreeMap<String, String>>,
    data: RawExtension,
    revision: i64,
    collision_count: Option<i32>,
) -> ControllerRevision {
    let data = Some(data);
    let hash = hash_revision(data.as_ref(), collision_count);
    let mut labels = template_labels.cloned().unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&parent.name_any(), &hash)),
            namespace: parent.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![controller_ref(parent)]),
            ..ObjectMeta::default()
        },
        data,
        revision,
    }
}

/// Same data (upstream's `EqualRevision`).
pub fn equal(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    a.data == b.data
}

/// The revisions among `revisions` with the same data as `needle`.
pub fn find_equal(
    revisions: &[Arc<ControllerRevision>],
    needle: &ControllerRevision,
) -> Vec<Arc<ControllerRevision>> {
    revisions
        .iter()
        .filter(|r| equal(r, needle))
        .cloned()
        .collect()
}

/// Oldest first: by revision number, then creation time, then name (upstream's
/// `SortControllerRevisions`).
pub fn sort(revisions: &mut [Arc<ControllerRevision>]) {
    revisions.sort_by(|a, b| by_revision(a, b));
}

fn by_revision(a: &ControllerRevision, b: &ControllerRevision) -> Ordering {
    a.revision
        .cmp(&b.revision)
        .then_with(|| {
            let created = |r: &ControllerRevision| r.metadata.creation_timestamp.clone();
            created(a).cmp(&created(b))
        })
        .then_with(|| a.name_any().cmp(&b.name_any()))
}

/// The number the next revision gets: one more than the newest of `revisions`, 1 for the
/// first.
pub fn next_revision(revisions: &[Arc<ControllerRevision>]) -> i64 {
    revisions.iter().map(|r| r.revision).max().unwrap_or(0) + 1
}

/// The revisions in `namespace` matching `selector`: the candidates to claim for an owner.
pub fn candidates(
    store: &Store<ControllerRevision>,
    namespace: &str,
    selector: &Selector,
) -> Vec<Arc<ControllerRevision>> {
    store
        .state()
        .into_iter()
        .filter(|r| r.namespace().as_deref() == Some(namespace))
        .filter(|r| matches(selector, &r.metadata))
        .collect()
}

/// Creates `revision` under the name its data hashes to with `collision_count`. When that
/// name is taken by a revision with other data, raises `collision_count` and tries the next
/// name (upstream's `CreateControllerRevision`); when it is taken by one with the same data,
/// that one is the answer.
pub async fn create(
    api: &Api<ControllerRevision>,
    parent_name: &str,
    revision: &ControllerRevision,
    collision_count: &mut i32,
) -> Result<ControllerRevision> {
    let mut candidate = revision.clone();
    loop {
        let hash = hash_revision(revision.data.as_ref(), Some(*collision_count));
        candidate.metadata.name = Some(revision_name(parent_name, &hash));
        let created = api.create(&PostParams::default(), &candidate).await;
        if !is_status(&created, 409) {
            return Ok(created?);
        }
        let existing = api.get(&candidate.name_any()).await?;
        if equal(&existing, &candidate) {
            return Ok(existing);
        }
        *collision_count += 1;
    }
}

/// Gives `revision` the number `number` (a rollback makes an old state the newest), retrying
/// on conflicts with a fresh copy (upstream's `UpdateControllerRevision`).
pub async fn renumber(
    api: &Api<ControllerRevision>,
    revision: &ControllerRevision,
    number: i64,
) -> Result<ControllerRevision> {
    let mut current = revision.clone();
    let mut attempt = 0;
    loop {
        if current.revision == number {
            return Ok(current);
        }
        current.revision = number;
        let updated = api
            .replace(&current.name_any(), &PostParams::default(), &current)
            .await;
        attempt += 1;
        if is_status(&updated, 409) && attempt < UPDATE_RETRIES {
            current = api.get(&current.name_any()).await?;
            continue;
        }
        return Ok(updated?);
    }
}

/// The revisions to delete so at most `limit` remain besides the live ones: the oldest of
/// those not in `live` (names of revisions still in use: the current and update revisions,
/// those pods were made from). `sorted` is oldest first.
pub fn beyond_limit(
    sorted: &[Arc<ControllerRevision>],
    live: &HashSet<String>,
    limit: i32,
) -> Vec<Arc<ControllerRevision>> {
    let history: Vec<&Arc<ControllerRevision>> = sorted
        .iter()
        .filter(|r| !live.contains(&r.name_any()))
        .collect();
    let excess = history.len().saturating_sub(limit.max(0) as usize);
    history.into_iter().take(excess).cloned().collect()
}

/// Deletes the revisions [`beyond_limit`] picks; one already gone is no error.
pub async fn truncate(
    api: &Api<ControllerRevision>,
    sorted: &[Arc<ControllerRevision>],
    live: &HashSet<String>,
    limit: i32,
) -> Result<()> {
    for revision in beyond_limit(sorted, live, limit) {
        let deleted = api
            .delete(&revision.name_any(), &DeleteParams::default())
            .await;
        if !is_status(&deleted, 404) {
            deleted?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use serde_json::json;

    use super::*;

    fn parent() -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "lab", "uid": "u-1"}
        }))
        .unwrap()
    }

    fn numbered(name: &str, revision: i64) -> Arc<ControllerRevision> {
        Arc::new(ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            data: Some(RawExtension(json!({"n": revision}))),
            revision,
        })
    }

    #[test]
    fn names_and_hashes() {
        let data = RawExtension(json!({"spec": {"template": {"$patch": "replace"}}}));
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let revision = new_revision(&parent(), Some(&labels), data.clone(), 1, None);
        let hash = revision.labels()[HASH_LABEL].clone();
        assert_eq!(revision.name_any(), format!("web-{hash}"));
        assert_eq!(revision.labels()["app"], "web");
        assert_eq!(revision.namespace().as_deref(), Some("lab"));
        let owner = &revision.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("StatefulSet", Some(true))
        );
        assert_eq!(hash, hash_revision(Some(&data), None));
        assert_ne!(hash, hash_revision(Some(&data), Some(0)));
        assert_ne!(
            hash_revision(Some(&data), Some(0)),
            hash_revision(Some(&data), Some(1))
        );
        assert_eq!(revision_name(&"a".repeat(300), "h").len(), 225);
    }

    #[test]
    fn equality_is_by_data() {
        let data = RawExtension(json!({"spec": {}}));
        let a = new_revision(&parent(), None, data.clone(), 1, None);
        let b = new_revision(&parent(), None, data, 2, Some(3));
        assert!(equal(&a, &b));
        let c = new_revision(&parent(), None, RawExtension(json!({"x": 1})), 1, None);
        assert!(!equal(&a, &c));
        assert_eq!(find_equal(&[Arc::new(b), Arc::new(c)], &a).len(), 1);
    }

    #[test]
    fn ordering_numbering_and_pruning() {
        let mut revisions = vec![numbered("c", 3), numbered("a", 1), numbered("b", 2)];
        sort(&mut revisions);
        let names: Vec<String> = revisions.iter().map(|r| r.name_any()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(next_revision(&revisions), 4);
        assert_eq!(next_revision(&[]), 1);

        let live = HashSet::from(["a".to_string(), "c".to_string()]);
        assert!(beyond_limit(&revisions, &live, 1).is_empty());
        let pruned = beyond_limit(&revisions, &live, 0);
        assert_eq!(pruned.len(), 1);
        assert_eq!(pruned[0].name_any(), "b");
        let pruned = beyond_limit(&revisions, &HashSet::new(), 1);
        let names: Vec<String> = pruned.iter().map(|r| r.name_any()).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
