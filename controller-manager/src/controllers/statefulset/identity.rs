//! What makes a StatefulSet's pod the one it is: its ordinal (`web-2`), the labels and DNS
//! identity that go with it, the PersistentVolumeClaims it mounts (`data-web-2`), which
//! revision of the template made it, and who owns its claims under the set's retention
//! policy. Pure functions of the set and its pods, as upstream's `stateful_set_utils.go`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::{json, Value};

use crate::controller_utils::{controller_ref, is_pod_available, is_pod_ready, phase};
use crate::history::POD_REVISION_LABEL;

/// The label naming each pod, so a Service can select exactly one.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label holding each pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

pub fn spec(set: &StatefulSet) -> StatefulSetSpec {
    set.spec.clone().unwrap_or_default()
}

pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
}

pub fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// `Parallel` pod management: create and delete without waiting for the others.
pub fn allows_burst(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        == Some("Parallel")
}

pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set.name_any())
}

/// The set name and ordinal a pod name spells (`web-2` is `("web", 2)`).
pub fn parent_and_ordinal(pod: &Pod) -> Option<(String, i32)> {
    let name = pod.metadata.name.as_deref()?;
    let (parent, ordinal) = name.rsplit_once('-')?;
    if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent.to_string(), ordinal.parse().ok()?))
}

pub fn ordinal(pod: &Pod) -> Option<i32> {
    parent_and_ordinal(pod).map(|(_, ordinal)| ordinal)
}

/// Whether the pod's ordinal is one the set should have now.
pub fn in_ordinal_range(set: &StatefulSet, ordinal: i32) -> bool {
    let start = start_ordinal(set);
    ordinal >= start && ordinal < start + replicas(set)
}

/// The claim a template gives the pod of `ordinal`: `<template>-<set>-<ordinal>`.
pub fn claim_name(set: &StatefulSet, template: &str, ordinal: i32) -> String {
    format!("{template}-{}-{ordinal}", set.name_any())
}

/// The claims the pod of `ordinal` mounts, by template name: the templates named for the
/// pod, labelled with the set's `matchLabels`.
pub fn claims(set: &StatefulSet, ordinal: i32) -> Vec<(String, PersistentVolumeClaim)> {
    let spec = spec(set);
    let selector_labels = spec.selector.match_labels.clone().unwrap_or_default();
    spec.volume_claim_templates
        .unwrap_or_default()
        .into_iter()
        .map(|template| {
            let template_name = template.name_any();
            let mut claim = template;
            claim.metadata.name = Some(claim_name(set, &template_name, ordinal));
            claim.metadata.namespace = set.namespace();
            let labels = claim.metadata.labels.get_or_insert_with(BTreeMap::new);
            labels.extend(selector_labels.clone());
            claim.status = None;
            (template_name, claim)
        })
        .collect()
}

/// The pod of `ordinal` from `template` (the template of the revision that makes it), with
/// its identity, its claims mounted and the revision label.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i32) -> Pod {
    let template_meta = template.metadata.clone().unwrap_or_default();
    let mut pod = Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(set, ordinal)),
            namespace: set.namespace(),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![controller_ref(set)]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    };
    set_identity(set, &mut pod, ordinal);
    set_storage(set, &mut pod, ordinal);
    pod.labels_mut()
        .insert(POD_REVISION_LABEL.into(), revision.into());
    pod
}

/// Upstream's `updateIdentity`: name labels, and the hostname and subdomain that give the pod
/// its DNS name under the set's governing Service.
fn set_identity(set: &StatefulSet, pod: &mut Pod, ordinal: i32) {
    let name = pod_name(set, ordinal);
    let labels = pod.labels_mut();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(name);
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
}

/// Upstream's `updateStorage`: a volume per claim template, replacing any template volume
/// of the same name.
fn set_storage(set: &StatefulSet, pod: &mut Pod, ordinal: i32) {
    let claims = claims(set, ordinal);
    if claims.is_empty() {
        return;
    }
    let spec = pod.spec.get_or_insert_with(Default::default);
    let mut volumes: Vec<Volume> = spec
        .volumes
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|v| !claims.iter().any(|(name, _)| *name == v.name))
        .collect();
    for (name, claim) in claims {
        volumes.push(Volume {
            name,
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.name_any(),
                read_only: None,
            }),
            ..Volume::default()
        });
    }
    spec.volumes = Some(volumes);
}

/// Whether the pod carries the identity of its ordinal in `set`.
pub fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let Some((parent, ordinal)) = parent_and_ordinal(pod) else {
        return false;
    };
    let labels = pod.labels();
    parent == set.name_any()
        && pod.namespace() == set.namespace()
        && labels.get(POD_NAME_LABEL) == Some(&pod.name_any())
        && labels.get(POD_INDEX_LABEL) == Some(&ordinal.to_string())
}

/// The labels a pod missing its identity labels gets (a pod adopted from elsewhere).
pub fn identity_labels(pod: &Pod) -> Option<BTreeMap<String, String>> {
    let ordinal = ordinal(pod)?;
    Some(BTreeMap::from([
        (POD_NAME_LABEL.to_string(), pod.name_any()),
        (POD_INDEX_LABEL.to_string(), ordinal.to_string()),
    ]))
}

pub fn revision_of(pod: &Pod) -> &str {
    pod.labels()
        .get(POD_REVISION_LABEL)
        .map_or("", String::as_str)
}

/// The revision data of the set's template: a patch replacing the template wholesale, as
/// upstream's `getPatch` writes it, so `kubectl rollout undo` can apply it to the set.
pub fn revision_data(set: &StatefulSet) -> RawExtension {
    let mut template = serde_json::to_value(&spec(set).template).unwrap_or(Value::Null);
    if let Some(object) = template.as_object_mut() {
        object.insert("$patch".into(), "replace".into());
    }
    RawExtension(json!({"spec": {"template": template}}))
}

/// The template a revision holds (upstream's `ApplyRevision`, for the one field revisions
/// carry); `None` for data that holds none.
pub fn revision_template(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision.data.as_ref()?.0.pointer("/spec/template")?.clone();
    template.as_object_mut()?.remove("$patch");
    serde_json::from_value(template).ok()
}

pub fn is_created(pod: &Pod) -> bool {
    !phase(pod).is_empty()
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_pod_ready(pod)
}

pub fn is_running_and_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    phase(pod) == "Running" && is_pod_available(pod, min_ready_seconds, now)
}

pub fn is_healthy(pod: &Pod) -> bool {
    is_running_and_ready(pod) && !is_terminating(pod)
}

/// The owners a claim should have under the set's retention policy: the set (deleted with
/// it, `whenDeleted: Delete`) and/or its pod (deleted with the pod when scaled away,
/// `whenScaled: Delete`). `scaled_down` says whether the pod's ordinal is outside the set.
pub fn wanted_claim_owners(set: &StatefulSet, scaled_down: bool) -> (bool, bool) {
    let policy = spec(set)
        .persistent_volume_claim_retention_policy
        .unwrap_or_default();
    let delete = |p: &Option<String>| p.as_deref() == Some("Delete");
    match (delete(&policy.when_scaled), delete(&policy.when_deleted)) {
        (false, false) => (false, false),
        (false, true) => (true, false),
        (true, false) => (false, scaled_down),
        (true, true) => (!scaled_down, scaled_down),
    }
}

fn owner_ref(api_version: &str, kind: &str, name: String, uid: String) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name,
        uid,
        ..OwnerReference::default()
    }
}

/// The claim's owner references as the retention policy wants them, or `None` if they
/// already are.
pub fn retention_owner_refs(
    set: &StatefulSet,
    pod: &Pod,
    claim: &PersistentVolumeClaim,
) -> Option<Vec<OwnerReference>> {
    let scaled_down = ordinal(pod).is_none_or(|o| !in_ordinal_range(set, o));
    let (want_set, want_pod) = wanted_claim_owners(set, scaled_down);
    let set_uid = set.uid().unwrap_or_default();
    let pod_uid = pod.uid().unwrap_or_default();
    let mut refs = claim.owner_references().to_vec();
    let before = refs.clone();
    let want = |refs: &mut Vec<OwnerReference>, wanted: bool, reference: OwnerReference| {
        let present = refs.iter().any(|r| r.uid == reference.uid);
        if wanted && !present && !reference.uid.is_empty() {
            refs.push(reference);
        } else if !wanted && present {
            refs.retain(|r| r.uid != reference.uid);
        }
    };
    want(
        &mut refs,
        want_set,
        owner_ref("apps/v1", "StatefulSet", set.name_any(), set_uid),
    );
    want(
        &mut refs,
        want_pod,
        owner_ref("v1", "Pod", pod.name_any(), pod_uid),
    );
    (refs != before).then_some(refs)
}

/// A claim left by an earlier pod of the same ordinal that the garbage collector is about to
/// delete (owned by a pod other than `pod`): the pod must wait for it to go.
pub fn claim_is_stale(claim: &PersistentVolumeClaim, pod: &Pod) -> bool {
    let pod_uid = pod.uid().unwrap_or_default();
    claim.metadata.deletion_timestamp.is_some()
        || claim
            .owner_references()
            .iter()
            .any(|r| r.kind == "Pod" && r.api_version == "v1" && r.uid != pod_uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(extra: Value) -> StatefulSet {
        let mut value = json!({
            "metadata": {"name": "web", "namespace": "lab", "uid": "set-uid"},
            "spec": {
                "replicas": 2,
                "serviceName": "nginx",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "nginx", "image": "nginx"}],
                                      "volumes": [{"name": "data", "emptyDir": {}}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "1Gi"}}}}]
            }
        });
        for (key, field) in extra.as_object().unwrap() {
            value["spec"][key] = field.clone();
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn pods_get_their_identity_and_claims() {
        let set = set(json!({}));
        let pod = new_pod(&set, &spec(&set).template, "web-abc", 1);
        assert_eq!(pod.name_any(), "web-1");
        assert_eq!(pod.labels()[POD_NAME_LABEL], "web-1");
        assert_eq!(pod.labels()[POD_INDEX_LABEL], "1");
        assert_eq!(pod.labels()[POD_REVISION_LABEL], "web-abc");
        assert_eq!(pod.labels()["app"], "web");
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-1"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let volumes = spec.volumes.as_ref().unwrap();
        assert_eq!(volumes.len(), 1);
        assert_eq!(
            volumes[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            "data-web-1"
        );
        assert!(identity_matches(&set, &pod));
        assert_eq!(parent_and_ordinal(&pod), Some(("web".into(), 1)));
        let (_, claim) = &claims(&set, 1)[0];
        assert_eq!(claim.labels()["app"], "web");
    }

    #[test]
    fn revision_data_round_trips_the_template() {
        let set = set(json!({}));
        let data = revision_data(&set);
        assert_eq!(data.0["spec"]["template"]["$patch"], "replace");
        let revision = ControllerRevision {
            data: Some(data),
            ..ControllerRevision::default()
        };
        assert_eq!(revision_template(&revision), Some(spec(&set).template));
    }

    #[test]
    fn retention_owners() {
        let deleted = set(json!({"persistentVolumeClaimRetentionPolicy":
            {"whenDeleted": "Delete", "whenScaled": "Retain"}}));
        let mut pod = new_pod(&deleted, &spec(&deleted).template, "r", 0);
        pod.metadata.uid = Some("pod-uid".into());
        let (_, claim) = claims(&deleted, 0).remove(0);
        let refs = retention_owner_refs(&deleted, &pod, &claim).unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(
            (refs[0].kind.as_str(), refs[0].uid.as_str()),
            ("StatefulSet", "set-uid")
        );

        let scaled = set(
            json!({"replicas": 0, "persistentVolumeClaimRetentionPolicy":
            {"whenDeleted": "Delete", "whenScaled": "Delete"}}),
        );
        let mut owned = claim.clone();
        owned.metadata.owner_references = Some(refs);
        let refs = retention_owner_refs(&scaled, &pod, &owned).unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].kind, "Pod");
        assert!(claim_is_stale(
            &PersistentVolumeClaim {
                metadata: ObjectMeta {
                    owner_references: Some(refs),
                    ..ObjectMeta::default()
                },
                ..PersistentVolumeClaim::default()
            },
            &Pod::default()
        ));
        let retained = set(json!({}));
        assert_eq!(retention_owner_refs(&retained, &pod, &claim), None);
    }
}
