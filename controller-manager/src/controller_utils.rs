//! What several controllers share, as upstream's `pkg/controller/controller_utils.go` and
//! `pkg/api/v1/pod`: pod readiness and availability, controller references, and claiming
//! objects by selector (adoption of orphans, release of objects that stopped matching), the
//! expectations that keep a controller from acting twice on a lagging watch, and creating
//! pods in slow-start batches.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use machinery::selector::Selector;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::events::{EventType, Recorder};
use crate::runtime::{api_message, has_cause, is_status, Error, Result};

/// Unfulfilled expectations are given up after this long, in case a watch event was lost.
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The pod's `Ready` condition.
pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// Ready for at least `min_ready_seconds` (upstream's `IsPodAvailable`).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    let Some(ready) = ready_condition(pod).filter(|c| c.status == "True") else {
        return false;
    };
    if min_ready_seconds == 0 {
        return true;
    }
    ready
        .last_transition_time
        .as_ref()
        .is_some_and(|t| t.0 + SignedDuration::from_secs(i64::from(min_ready_seconds)) < now)
}

/// The pod's phase, empty when it has none yet.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Succeeded or Failed: its containers will not run again.
pub fn is_pod_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Neither terminal nor being deleted (upstream's `IsPodActive`): counts towards replicas.
pub fn is_pod_active(pod: &Pod) -> bool {
    !is_pod_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// The owner reference marked `controller: true`.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// A reference making `owner` the controller of an object, blocking the owner's foreground
/// deletion until the object is gone (upstream's `NewControllerRef`).
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The selector of a `LabelSelector`; an invalid one is an error of the object.
pub fn selector(label_selector: &LabelSelector) -> Result<Selector> {
    Ok(Selector::from_label_selector(label_selector)?)
}

/// Whether `selector` matches the labels of `meta`.
pub fn matches(selector: &Selector, meta: &ObjectMeta) -> bool {
    selector.matches(meta.labels.as_ref())
}

/// `namespace/name`, the key upstream's caches and expectations use.
pub fn key_of<K: Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// Claims `candidates` for `owner`, like upstream's `ControllerRefManager`: keeps the ones it
/// controls that match, adopts matching orphans and releases controlled ones that stopped
/// matching. Adoption first re-reads the owner from the API server so an owner that was just
/// deleted (or replaced by a namesake) never adopts.
pub async fn claim<O, C>(
    owner: &O,
    owner_api: &Api<O>,
    child_api: &Api<C>,
    selector: &Selector,
    candidates: Vec<Arc<C>>,
) -> (Vec<Arc<C>>, Vec<Error>)
where
    O: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    C: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let owner_uid = owner.uid().unwrap_or_default();
    let owner_deleting = owner.meta().deletion_timestamp.is_some();
    let mut claimed = Vec::new();
    let mut errors = Vec::new();
    let mut can_adopt: Option<Result<(), String>> = None;
    for child in candidates {
        let matching = matches(selector, child.meta());
        match controller_of(child.meta()) {
            Some(reference) if reference.uid != owner_uid => {}
            Some(_) if matching => claimed.push(child),
            Some(_) if owner_deleting => {}
            Some(_) => {
                let patch = json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}], "uid": child.uid()}});
                let result = child_api
                    .patch(
                        &child.name_any(),
                        &PatchParams::default(),
                        &Patch::Strategic(patch),
                    )
                    .await;
                if !is_status(&result, 404) {
                    if let Err(error) = result {
                        errors.push(error.into());
                    }
                }
            }
            None if owner_deleting || !matching || child.meta().deletion_timestamp.is_some() => {}
            None => {
                let check = match &can_adopt {
                    Some(check) => check.clone(),
                    None => {
                        let check = recheck_owner(owner, owner_api).await;
                        can_adopt = Some(check.clone());
                        check
                    }
                };
                if let Err(reason) = check {
                    errors.push(Error::CannotAdopt {
                        kind: C::kind(&()).into_owned(),
                        name: child.name_any(),
                        reason,
                    });
                    continue;
                }
                let reference = controller_ref(owner);
                let patch =
                    json!({"metadata": {"ownerReferences": [reference], "uid": child.uid()}});
                match child_api
                    .patch(
                        &child.name_any(),
                        &PatchParams::default(),
                        &Patch::Strategic(patch),
                    )
                    .await
                {
                    Ok(adopted) => claimed.push(Arc::new(adopted)),
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(error) => errors.push(error.into()),
                }
            }
        }
    }
    (claimed, errors)
}

/// Upstream's `RecheckDeletionTimestamp`: the live owner must be the same object, not deleted.
async fn recheck_owner<O>(owner: &O, api: &Api<O>) -> Result<(), String>
where
    O: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let fresh = api
        .get(&owner.name_any())
        .await
        .map_err(|e| e.to_string())?;
    if fresh.uid() != owner.uid() {
        return Err(format!(
            "original {} {}/{} is gone: got uid {}, wanted {}",
            O::kind(&()),
            owner.namespace().unwrap_or_default(),
            owner.name_any(),
            fresh.uid().unwrap_or_default(),
            owner.uid().unwrap_or_default()
        ));
    }
    if let Some(deleted) = &fresh.meta().deletion_timestamp {
        return Err(format!(
            "{}/{} has just been deleted at {}",
            owner.namespace().unwrap_or_default(),
            owner.name_any(),
            deleted.0
        ));
    }
    Ok(())
}

/// Creates `pod` for `owner`, recording upstream's `SuccessfulCreate` or `FailedCreate` event
/// on the owner, as every pod-creating controller does. A namespace being deleted is not an
/// error: nothing should be created in it.
pub async fn create_pod<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    owner: &K,
    api: &Api<Pod>,
    pod: &Pod,
) -> Result<()> {
    match api.create(&kube::api::PostParams::default(), pod).await {
        Ok(pod) => {
            recorder.event(
                owner,
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created pod: {}", pod.name_any()),
            );
            Ok(())
        }
        Err(error) if has_cause(&error, "NamespaceTerminating") => Ok(()),
        Err(error) => {
            recorder.event(
                owner,
                EventType::Warning,
                "FailedCreate",
                format!("Error creating: {}", api_message(&error)),
            );
            Err(error.into())
        }
    }
}

/// Runs `count` calls of `call` in batches of 1, 2, 4, ... so a template the API refuses
/// costs one failed request, not hundreds; stops at the first batch with a failure. Returns
/// the successes and the first error.
pub async fn slow_start_batch<'a, F, Fut>(count: usize, call: F) -> (usize, Option<Error>)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<()>> + 'a,
{
    let mut done = 0;
    let mut batch = 1.min(count);
    while batch > 0 {
        let results = futures::future::join_all((0..batch).map(|_| call())).await;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(()) => done += 1,
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if first_error.is_some() {
            return (done, first_error);
        }
        batch = (2 * batch).min(count - done);
    }
    (done, None)
}

/// Upstream's `ControllerExpectations`: the pod creations and deletions a controller made for
/// each of its objects (by key) and has not yet seen in its informer. While any are
/// outstanding the object is not managed again, so a slow watch never makes a controller
/// create or delete twice; expectations older than five minutes are given up, in case a
/// watch event was lost.
#[derive(Default)]
pub struct Expectations {
    entries: Mutex<HashMap<String, Expected>>,
}

/// Creations and deletions an object's controller still waits to observe; deletions are tracked by pod
/// so one observed twice (graceful deletion, then removal) counts once.
struct Expected {
    creations: i64,
    deletions: HashSet<String>,
    since: Instant,
}

impl Expectations {
    pub fn satisfied(&self, key: &str) -> bool {
        self.entries
            .lock()
            .expect("expectations")
            .get(key)
            .is_none_or(|e| {
                (e.creations <= 0 && e.deletions.is_empty())
                    || e.since.elapsed() > EXPECTATIONS_TIMEOUT
            })
    }

    pub fn expect_creations(&self, key: &str, count: usize) {
        let expected = Expected {
            creations: count as i64,
            deletions: HashSet::new(),
            since: Instant::now(),
        };
        self.entries
            .lock()
            .expect("expectations")
            .insert(key.to_string(), expected);
    }

    pub fn expect_deletions(&self, key: &str, pods: HashSet<String>) {
        let expected = Expected {
            creations: 0,
            deletions: pods,
            since: Instant::now(),
        };
        self.entries
            .lock()
            .expect("expectations")
            .insert(key.to_string(), expected);
    }

    /// Creations and deletions at once, for a sync that does both (a DaemonSet's).
    pub fn expect(&self, key: &str, creations: usize, deletions: HashSet<String>) {
        let expected = Expected {
            creations: creations as i64,
            deletions,
            since: Instant::now(),
        };
        self.entries
            .lock()
            .expect("expectations")
            .insert(key.to_string(), expected);
    }

    pub fn creation_observed(&self, key: &str) {
        if let Some(expected) = self.entries.lock().expect("expectations").get_mut(key) {
            expected.creations -= 1;
        }
    }

    pub fn deletion_observed(&self, key: &str, pod: &str) {
        if let Some(expected) = self.entries.lock().expect("expectations").get_mut(key) {
            expected.deletions.remove(pod);
        }
    }

    pub fn forget(&self, key: &str) {
        self.entries.lock().expect("expectations").remove(key);
    }
}
