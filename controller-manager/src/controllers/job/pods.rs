//! The pods a Job creates: its template with the tracking finalizer and a controller
//! reference, and for Indexed jobs the completion index (annotation, label, hostname and
//! `JOB_COMPLETION_INDEX`) and, under `backoffLimitPerIndex`, the index's failure count.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::controller_utils::controller_ref;

/// Held by every pod the controller creates until its end is counted in the job's status.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The completion index of an Indexed job's pod (annotation and label).
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Failures of the pod's index before it, under `backoffLimitPerIndex`.
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// The completion index a pod carries, if any.
pub fn index_of(pod: &Pod) -> Option<i32> {
    pod.annotations()
        .get(COMPLETION_INDEX)
        .and_then(|i| i.parse().ok())
        .filter(|i| *i >= 0)
}

/// The failures recorded for the pod's index before this pod.
pub fn index_failures(pod: &Pod) -> u32 {
    pod.annotations()
        .get(INDEX_FAILURE_COUNT)
        .and_then(|i| i.parse().ok())
        .unwrap_or(0)
}

/// The pod `job` creates, for completion `index` of an Indexed job, whose index failed
/// `failures` times before.
pub fn from_template(job: &Job, index: Option<i32>, failures: u32) -> Pod {
    let spec = job.spec.clone().unwrap_or_default();
    let template = spec.template;
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    let mut pod_spec = template.spec.unwrap_or_default();
    let mut finalizers = meta.finalizers.unwrap_or_default();
    finalizers.push(TRACKING_FINALIZER.into());
    let name = job.name_any();
    let generate_name = match index {
        Some(index) => {
            annotations.insert(COMPLETION_INDEX.into(), index.to_string());
            labels.insert(COMPLETION_INDEX.into(), index.to_string());
            if spec.backoff_limit_per_index.is_some() {
                annotations.insert(INDEX_FAILURE_COUNT.into(), failures.to_string());
            }
            if pod_spec.hostname.as_deref().unwrap_or("").is_empty() {
                pod_spec.hostname = Some(format!("{name}-{index}"));
            }
            let env = EnvVar {
                name: COMPLETION_INDEX_ENV.into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                        api_version: None,
                    }),
                    ..Default::default()
                }),
            };
            for container in pod_spec
                .init_containers
                .iter_mut()
                .flatten()
                .chain(pod_spec.containers.iter_mut())
            {
                container.env.get_or_insert_with(Vec::new).push(env.clone());
            }
            format!("{name}-{index}-")
        }
        None => format!("{name}-"),
    };
    let mut owner = controller_ref(job);
    owner.block_owner_deletion = Some(true);
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.namespace(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

/// Whether the pod still holds the tracking finalizer.
pub fn tracked(pod: &Pod) -> bool {
    pod.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn indexed_pods_carry_their_index() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "ix", "namespace": "default", "uid": "u"},
            "spec": {"completionMode": "Indexed", "completions": 3, "backoffLimitPerIndex": 1,
                     "template": {"metadata": {"labels": {"job-name": "ix"}},
                                  "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}
        }))
        .unwrap();
        let pod = serde_json::to_value(from_template(&job, Some(2), 1)).unwrap();
        assert_eq!(pod["metadata"]["generateName"], "ix-2-");
        assert_eq!(pod["metadata"]["annotations"][COMPLETION_INDEX], "2");
        assert_eq!(pod["metadata"]["annotations"][INDEX_FAILURE_COUNT], "1");
        assert_eq!(pod["metadata"]["labels"][COMPLETION_INDEX], "2");
        assert_eq!(pod["metadata"]["finalizers"], json!([TRACKING_FINALIZER]));
        assert_eq!(
            pod["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
            true
        );
        assert_eq!(pod["spec"]["hostname"], "ix-2");
        assert_eq!(
            pod["spec"]["containers"][0]["env"][0],
            json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}})
        );
        let plain = from_template(&job, None, 0);
        assert_eq!(plain.metadata.generate_name.as_deref(), Some("ix-"));
    }
}
