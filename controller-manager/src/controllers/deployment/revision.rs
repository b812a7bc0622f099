//! Which ReplicaSet holds which revision of the pod template: the `pod-template-hash` that
//! names and selects a ReplicaSet, template equality ignoring it, and the `revision`
//! annotations. A rollback (`kubectl rollout undo` puts an old template back) finds the old
//! ReplicaSet again by its template and moves it to the newest revision, remembering the
//! ones it had in `revision-history`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::ResourceExt;
use serde_json::Value;

use crate::hash::{Fnv32, Variant};

use super::util::{
    by_creation, max_surge, replicas, set_replicas_annotations, POD_TEMPLATE_HASH, REVISION,
    REVISION_HISTORY,
};

/// Deployment annotations never copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    super::util::DESIRED_REPLICAS,
    super::util::MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];
/// Longest `revision-history` annotation kept on a ReplicaSet rolled back to repeatedly.
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// The oldest ReplicaSet whose template is the Deployment's.
pub fn find_new_replica_set(
    template: &PodTemplateSpec,
    rs_list: &[Arc<ReplicaSet>],
) -> Option<Arc<ReplicaSet>> {
    let mut sorted: Vec<&Arc<ReplicaSet>> = rs_list.iter().collect();
    sorted.sort_by(|a, b| by_creation(a, b));
    sorted
        .into_iter()
        .find(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, template))
        })
        .cloned()
}

/// Templates equal but for the `pod-template-hash` label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    canonical(a) == canonical(b)
}

/// The template as compared and hashed: without the `pod-template-hash` label or empty label
/// maps. Templates come from the apiserver, which returns them as upstream's Go encoding writes
/// them whatever encoding the client sent, so equal templates serialize alike.
fn canonical(template: &PodTemplateSpec) -> Value {
    let mut value = serde_json::to_value(template).expect("template serializes");
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove(POD_TEMPLATE_HASH);
            if labels.is_empty() {
                metadata.remove("labels");
            }
        }
        if metadata.is_empty() {
            value.as_object_mut().expect("object").remove("metadata");
        }
    }
    value
}

/// The `pod-template-hash`: FNV-32a of the template (and the collision count), spelled in
/// the consonant-and-digit alphabet upstream uses so it never spells words.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut hash = Fnv32::new(Variant::Fnv1a);
    hash.write(&serde_json::to_vec(&canonical(template)).expect("template serializes"));
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        hash.write(&bytes);
    }
    hash.encoded()
}

/// Copies the Deployment's annotations, sets the revision (keeping the ones it replaces in
/// `revision-history` when an old ReplicaSet is reused by a rollback) and, for a new
/// ReplicaSet, the replica annotations. Returns whether anything changed.
pub fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: &str,
    exists: bool,
) -> bool {
    let mut changed = false;
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (key, value) in d.annotations() {
        if NOT_COPIED.contains(&key.as_str()) || annotations.get(key) == Some(value) {
            continue;
        }
        annotations.insert(key.clone(), value.clone());
        changed = true;
    }
    let old_revision = annotations.get(REVISION).cloned();
    // A revision that is not a number leaves the ReplicaSet to be written as it was.
    let Ok(old) = old_revision.as_deref().map_or(Ok(0), str::parse::<i64>) else {
        return false;
    };
    let Ok(new) = new_revision.parse::<i64>() else {
        return false;
    };
    if old < new {
        annotations.insert(REVISION.into(), new_revision.into());
        changed = true;
        if let Some(old_revision) = old_revision {
            let history = annotations
                .get(REVISION_HISTORY)
                .cloned()
                .unwrap_or_default();
            let mut revisions: Vec<&str> = if history.is_empty() {
                Vec::new()
            } else {
                history.split(',').collect()
            };
            let mut length = history.len() + old_revision.len() + 1;
            while length > MAX_REVISION_HISTORY_CHARS && !revisions.is_empty() {
                length -= revisions.remove(0).len() + 1;
            }
            revisions.push(&old_revision);
            annotations.insert(REVISION_HISTORY.into(), revisions.join(","));
        }
    }
    if !exists {
        changed |=
            set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d).unwrap_or(0));
    }
    changed
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    #[test]
    fn hash_is_stable_and_safe() {
        let template = PodTemplateSpec::default();
        let hash = compute_hash(&template, None);
        assert_eq!(hash, compute_hash(&template, None));
        assert_ne!(hash, compute_hash(&template, Some(1)));
        assert!(hash
            .chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn rollback_keeps_revision_history() {
        let d = Deployment::default();
        let mut old = ReplicaSet::default();
        old.annotations_mut().insert(REVISION.into(), "1".into());
        assert!(set_new_replica_set_annotations(&d, &mut old, "3", true));
        assert_eq!(old.annotations()[REVISION], "3");
        assert_eq!(old.annotations()[REVISION_HISTORY], "1");
        assert!(set_new_replica_set_annotations(&d, &mut old, "5", true));
        assert_eq!(old.annotations()[REVISION_HISTORY], "1,3");
        assert!(!set_new_replica_set_annotations(&d, &mut old, "4", true));
    }

    #[test]
    fn template_hash_label_is_ignored_when_comparing() {
        let labels = Some(BTreeMap::from([(
            POD_TEMPLATE_HASH.to_string(),
            "abc".to_string(),
        )]));
        let with_hash = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels,
                ..ObjectMeta::default()
            }),
            ..PodTemplateSpec::default()
        };
        assert!(equal_ignore_hash(&with_hash, &PodTemplateSpec::default()));
    }
}
