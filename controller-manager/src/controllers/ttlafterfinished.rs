//! The TTL-after-finished controller (upstream `pkg/controller/ttlafterfinished`): deletes a
//! finished Job `ttlSecondsAfterFinished` seconds after its Complete or Failed condition,
//! in the foreground so its pods go first. The decision is checked again on a fresh read
//! and the delete is conditional on that read's resource version, so a job whose TTL was
//! just raised is never deleted on stale data.

use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};

use super::ControllerContext;
use crate::informers::Change;
use crate::runtime::{self, is_status, Queue, Result};

/// The controller's name (`--controllers`, its service account).
pub const NAME: &str = "ttl-after-finished-controller";

struct Context {
    client: Client,
    queue: Queue<Job>,
}

/// Wires the controller to the shared job informer and starts it.
pub fn start(ctx: &ControllerContext) {
    let jobs = ctx.informers.get::<Job>();
    let (queue, triggers) = Queue::new(NAME);
    let context = Arc::new(Context {
        client: ctx.client_for(NAME),
        queue: queue.clone(),
    });
    tokio::spawn(watch_jobs(context.clone(), jobs.subscribe()));
    let controller = runtime::Controller {
        queue,
        triggers,
        store: jobs.store(),
        caches: vec![jobs.synced()],
        workers: ctx.options.concurrent_ttl_after_finished_syncs,
    };
    tokio::spawn(controller.run(context, reconcile));
}

async fn watch_jobs(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<Job>>) {
    while let Some(change) = changes.next().await {
        if let Change::Applied { new, .. } = change {
            if expires_at(&new).is_some() {
                ctx.queue.add_object(&new);
            }
        }
    }
}

/// When a finished job with a TTL expires; `None` for one without a TTL, not finished or
/// already being deleted.
fn expires_at(job: &Job) -> Option<Timestamp> {
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let finished = job
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .filter(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .find_map(|c| c.last_transition_time.as_ref())?
        .0;
    finished
        .checked_add(SignedDuration::from_secs(i64::from(ttl)))
        .ok()
}

/// How long until `at`, `None` once it has passed.
fn until(at: Timestamp, now: Timestamp) -> Option<Duration> {
    Duration::try_from(at.duration_since(now))
        .ok()
        .filter(|d| !d.is_zero())
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Context>) -> Result<Action> {
    let Some(expiry) = expires_at(&job) else {
        return Ok(Action::await_change());
    };
    if let Some(wait) = until(expiry, Timestamp::now()) {
        return Ok(Action::requeue(wait));
    }
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let Some(fresh) = api.get_opt(&job.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let Some(expiry) = expires_at(&fresh) else {
        return Ok(Action::await_change());
    };
    if let Some(wait) = until(expiry, Timestamp::now()) {
        return Ok(Action::requeue(wait));
    }
    tracing::info!(job = %format!("{}/{}", fresh.namespace().unwrap_or_default(), fresh.name_any()), "cleaning up finished job");
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: None,
            resource_version: fresh.resource_version(),
        }),
        ..DeleteParams::default()
    };
    let result = api.delete(&fresh.name_any(), &params).await;
    if is_status(&result, 404) {
        return Ok(Action::await_change());
    }
    result?;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finished_jobs_expire_ttl_seconds_after_their_terminal_condition() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "pi"},
            "spec": {"ttlSecondsAfterFinished": 30, "template": {}},
            "status": {"conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"},
                {"type": "Complete", "status": "True", "lastTransitionTime": "2025-01-01T00:00:01Z"},
            ]}
        }))
        .unwrap();
        assert_eq!(
            expires_at(&job).unwrap().to_string(),
            "2025-01-01T00:00:31Z"
        );
        let mut running = job.clone();
        running.status = None;
        assert_eq!(expires_at(&running), None);
        let now: Timestamp = "2025-01-01T00:00:21Z".parse().unwrap();
        assert_eq!(
            until(expires_at(&job).unwrap(), now),
            Some(Duration::from_secs(10))
        );
    }
}
