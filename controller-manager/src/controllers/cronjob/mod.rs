//! The CronJob controller (upstream's v2, `pkg/controller/cronjob`): creates a CronJob's
//! Jobs on its schedule. Each sync reconciles `status.active` with the Jobs the CronJob
//! controls (finished ones leave it, `lastSuccessfulTime` follows their completions, missing
//! ones are dropped), deletes the oldest finished Jobs beyond the history limits, and, unless
//! suspended, runs the most recent activation that is due: within `startingDeadlineSeconds`,
//! once (the Job's name is the CronJob's and the activation's minute), and as the
//! concurrency policy says when a previous Job is still active (Allow runs both, Forbid
//! skips, Replace deletes the old). The key then waits for the next activation: the clock is
//! the real one, read in `timeZone` or else the controller's own zone.

mod schedule;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use machinery::cron::{self, Schedule};

use self::schedule::{job_name, rfc3339_in, Clock, Missed};
use super::job::conditions::true_condition;
use super::ControllerContext;
use crate::controller_utils::{controller_of, controller_ref, key_of};
use crate::events::{EventType, Recorder};
use crate::informers::Change;
use crate::runtime::{self, api_message, has_cause, is_status, Error, Queue, Result};

/// The controller's name (`--controllers`, events' source, its service account).
pub const NAME: &str = "cronjob-controller";

/// The annotation carrying the activation a Job was made for, in the CronJob's zone.
const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

struct Context {
    client: Client,
    cron_jobs: Store<CronJob>,
    jobs: Store<Job>,
    recorder: Recorder,
    queue: Queue<CronJob>,
    /// The controller's own zone, for CronJobs without `timeZone` (Go's `time.Local`).
    local: TimeZone,
}

/// Wires the controller to the shared informers and starts it.
pub fn start(ctx: &ControllerContext) {
    let cron_jobs = ctx.informers.get::<CronJob>();
    let jobs = ctx.informers.get::<Job>();
    let (queue, triggers) = Queue::new(NAME);
    let context = Arc::new(Context {
        client: ctx.client_for(NAME),
        cron_jobs: cron_jobs.store(),
        jobs: jobs.store(),
        recorder: ctx.events.recorder(NAME),
        queue: queue.clone(),
        local: TimeZone::system(),
    });
    tokio::spawn(watch_cron_jobs(context.clone(), cron_jobs.subscribe()));
    tokio::spawn(watch_jobs(context.clone(), jobs.subscribe()));
    let controller = runtime::Controller {
        queue,
        triggers,
        store: context.cron_jobs.clone(),
        caches: vec![cron_jobs.synced(), jobs.synced()],
        workers: ctx.options.concurrent_cron_job_syncs,
    };
    tokio::spawn(controller.run(context, reconcile));
}

/// A changed schedule or zone is looked at when its next activation is due (a sooner one
/// than already queued then wins); any other change at once.
async fn watch_cron_jobs(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<CronJob>>) {
    while let Some(change) = changes.next().await {
        let Change::Applied { old, new } = change else {
            continue;
        };
        let spec = |c: &CronJob| {
            c.spec
                .as_ref()
                .map(|s| (s.schedule.clone(), s.time_zone.clone()))
        };
        let rescheduled = old.as_ref().is_some_and(|old| spec(old) != spec(&new));
        if !rescheduled {
            ctx.queue.add_object(&new);
            continue;
        }
        match parse(&new) {
            Ok(schedule) => {
                let zone = ctx.zone(&new).unwrap_or_else(|_| ctx.local.clone());
                if let Some(wait) = clock(&new, &schedule, &zone).requeue_after(Timestamp::now()) {
                    ctx.queue.add_after(ObjectRef::from_obj(&*new), wait);
                }
            }
            Err(_) => ctx.recorder.event(
                &*new,
                EventType::Warning,
                "UnParseableCronJobSchedule",
                format!("unparseable schedule for cronjob: {}", schedule_of(&new)),
            ),
        }
    }
}

/// A Job's changes wake the CronJob controlling it.
async fn watch_jobs(ctx: Arc<Context>, mut changes: UnboundedReceiver<Change<Job>>) {
    while let Some(change) = changes.next().await {
        let (job, old) = match change {
            Change::Applied { old, new } => {
                if old
                    .as_ref()
                    .is_some_and(|o| o.resource_version() == new.resource_version())
                {
                    continue;
                }
                (new, old)
            }
            Change::Deleted(gone) => (gone, None),
        };
        for meta in [Some(&job.metadata), old.as_ref().map(|o| &o.metadata)]
            .into_iter()
            .flatten()
        {
            if let Some(owner) = ctx.owner_of(meta, &job.namespace().unwrap_or_default()) {
                ctx.queue.add_object(&owner);
            }
        }
    }
}

impl Context {
    /// The CronJob in the cache that the controller reference of `meta` names.
    fn owner_of(&self, meta: &ObjectMeta, namespace: &str) -> Option<Arc<CronJob>> {
        let reference = controller_of(meta).filter(|r| r.kind == "CronJob")?;
        self.cron_jobs
            .get(&ObjectRef::new(&reference.name).within(namespace))
            .filter(|c| c.uid().as_deref() == Some(reference.uid.as_str()))
    }

    /// The zone the schedule is read in: `timeZone`, or the controller's own.
    fn zone(&self, cron_job: &CronJob) -> Result<TimeZone, cron::UnknownTimeZone> {
        match cron_job.spec.as_ref().and_then(|s| s.time_zone.as_deref()) {
            Some(name) => cron::load_location(name),
            None => Ok(self.local.clone()),
        }
    }

    fn event(&self, cron_job: &CronJob, kind: EventType, reason: &str, message: String) {
        self.recorder.event(cron_job, kind, reason, message);
    }
}

fn schedule_of(cron_job: &CronJob) -> &str {
    cron_job.spec.as_ref().map_or("", |s| s.schedule.as_str())
}

fn parse(cron_job: &CronJob) -> Result<Schedule, cron::ParseError> {
    cron::parse_standard(schedule_of(cron_job))
}

fn clock<'a>(cron_job: &CronJob, schedule: &'a Schedule, zone: &'a TimeZone) -> Clock<'a> {
    let status = cron_job.status.as_ref();
    Clock {
        schedule,
        zone,
        created: cron_job
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
        last_scheduled: status
            .and_then(|s| s.last_schedule_time.as_ref())
            .map(|t| t.0),
        starting_deadline_seconds: cron_job
            .spec
            .as_ref()
            .and_then(|s| s.starting_deadline_seconds),
    }
}

/// `Complete` or `Failed`, once the Job has finished.
fn finished_as(job: &Job) -> Option<&'static str> {
    let status = job.status.as_ref()?;
    ["Complete", "Failed"]
        .into_iter()
        .find(|type_| true_condition(status, type_).is_some())
}

fn active(cron_job: &CronJob) -> &[ObjectReference] {
    cron_job
        .status
        .as_ref()
        .and_then(|s| s.active.as_deref())
        .unwrap_or_default()
}

fn in_active(cron_job: &CronJob, uid: Option<&str>) -> bool {
    active(cron_job).iter().any(|r| r.uid.as_deref() == uid)
}

/// Drops a Job from `status.active`, leaving no empty list behind (Go omits one).
fn remove_active(cron_job: &mut CronJob, uid: Option<&str>) {
    let status = cron_job.status.get_or_insert_default();
    if let Some(list) = status.active.as_mut() {
        list.retain(|r| r.uid.as_deref() != uid);
        if list.is_empty() {
            status.active = None;
        }
    }
}

/// A reference to `job` for `status.active`, as client-go's `GetReference` makes it.
fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

async fn reconcile(cron_job: Arc<CronJob>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = cron_job.namespace().unwrap_or_default();
    let name = cron_job.name_any();
    // Every Job whose controller reference names this CronJob, matching labels or not.
    let jobs: Vec<Arc<Job>> = ctx
        .jobs
        .state()
        .into_iter()
        .filter(|job| {
            job.namespace().as_deref() == Some(namespace.as_str())
                && controller_of(&job.metadata).is_some_and(|r| r.name == name)
        })
        .collect();
    let mut copy = (*cron_job).clone();
    let cleaned = clean_up_finished(&ctx, &mut copy, &jobs).await;
    let (requeue, synced, result) = sync(&ctx, &mut copy, &jobs).await;
    if let Err(error) = &result {
        tracing::debug!(cronjob = %key_of(&*cron_job), %error, "error reconciling cronjob");
    }
    if cleaned || synced {
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &namespace);
        api.replace_status(&name, &PostParams::default(), &copy)
            .await?;
    }
    match requeue {
        Some(wait) => Ok(Action::requeue(wait)),
        None => result.map(|()| Action::await_change()),
    }
}

/// What one schedule pass decided: when to look again, whether the status changed, and how
/// the pass ended.
type Synced = (Option<std::time::Duration>, bool, Result<()>);

/// Upstream's `syncCronJob`.
async fn sync(ctx: &Context, cron_job: &mut CronJob, jobs: &[Arc<Job>]) -> Synced {
    let mut changed = false;
    let namespace = cron_job.namespace().unwrap_or_default();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let children: HashSet<Option<&str>> = jobs.iter().map(|j| j.metadata.uid.as_deref()).collect();
    for job in jobs {
        let uid = job.metadata.uid.as_deref();
        let found = in_active(cron_job, uid);
        match finished_as(job) {
            None if !found => {
                // Perhaps this very controller made it and the cache has not seen the status
                // update yet: check the CronJob as it is now.
                let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &namespace);
                match api.get(&cron_job.name_any()).await {
                    Ok(fresh) if in_active(&fresh, uid) => {
                        *cron_job = fresh;
                        continue;
                    }
                    Ok(_) => {}
                    Err(error) => return (None, changed, Err(error.into())),
                }
                ctx.event(
                    cron_job,
                    EventType::Warning,
                    "UnexpectedJob",
                    format!(
                        "Saw a job that the controller did not create or forgot: {}",
                        job.name_any()
                    ),
                );
            }
            None => {}
            Some(condition) => {
                if found {
                    remove_active(cron_job, uid);
                    ctx.event(
                        cron_job,
                        EventType::Normal,
                        "SawCompletedJob",
                        format!(
                            "Saw completed job: {}, condition: {condition}",
                            job.name_any()
                        ),
                    );
                    changed = true;
                }
                let completed = job.status.as_ref().and_then(|s| s.completion_time.clone());
                if condition == "Complete" {
                    let status = cron_job.status.get_or_insert_default();
                    let later = match (&status.last_successful_time, &completed) {
                        (None, _) => true,
                        (Some(last), Some(done)) => done.0 > last.0,
                        (Some(_), None) => false,
                    };
                    if later {
                        status.last_successful_time = completed;
                        changed = true;
                    }
                }
            }
        }
    }
    // Active Jobs that are gone: confirmed with the API, as the cache may lag.
    let vanished: Vec<ObjectReference> = active(cron_job)
        .iter()
        .filter(|r| !children.contains(&r.uid.as_deref()))
        .cloned()
        .collect();
    for gone in vanished {
        let name = gone.name.clone().unwrap_or_default();
        match jobs_api.get_opt(&name).await {
            Ok(None) => {
                ctx.event(
                    cron_job,
                    EventType::Normal,
                    "MissingJob",
                    format!("Active job went missing: {name}"),
                );
                remove_active(cron_job, gone.uid.as_deref());
                changed = true;
            }
            Ok(Some(_)) => {}
            Err(error) => return (None, changed, Err(error.into())),
        }
    }
    if cron_job.metadata.deletion_timestamp.is_some() {
        return (None, changed, Ok(()));
    }
    let spec = cron_job.spec.clone().unwrap_or_default();
    let zone = match ctx.zone(cron_job) {
        Ok(zone) => zone,
        Err(error) => {
            let zone = spec.time_zone.clone().unwrap_or_default();
            ctx.event(
                cron_job,
                EventType::Warning,
                "UnknownTimeZone",
                format!("invalid timeZone: {zone:?}: {error}"),
            );
            return (None, changed, Ok(()));
        }
    };
    if spec.suspend == Some(true) {
        return (None, changed, Ok(()));
    }
    if spec.schedule.contains("TZ") {
        ctx.event(
            cron_job,
            EventType::Warning,
            "UnsupportedSchedule",
            format!(
                "CRON_TZ or TZ used in schedule {:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                spec.schedule
            ),
        );
    }
    let schedule = match parse(cron_job) {
        Ok(schedule) => schedule,
        Err(error) => {
            ctx.event(
                cron_job,
                EventType::Warning,
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {error}", spec.schedule),
            );
            return (None, changed, Ok(()));
        }
    };
    let now = Timestamp::now();
    let timing = clock(cron_job, &schedule, &zone);
    let (due, missed) = match timing.due(now) {
        Ok(due) => due,
        Err(error) => {
            ctx.event(
                cron_job,
                EventType::Warning,
                "InvalidSchedule",
                format!("invalid schedule: {} : {error}", spec.schedule),
            );
            return (None, changed, Ok(()));
        }
    };
    if missed == Missed::Many {
        ctx.event(
            cron_job,
            EventType::Warning,
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
        );
        tracing::info!(cronjob = %key_of(&*cron_job), "too many missed times");
    }
    let requeue = timing.requeue_after(now);
    let Some(scheduled) = due else {
        return (requeue, changed, Ok(()));
    };
    let name = job_name(&cron_job.name_any(), scheduled);
    let processed = active(cron_job)
        .iter()
        .any(|r| r.name.as_deref() == Some(name.as_str()))
        || cron_job
            .status
            .as_ref()
            .and_then(|s| s.last_schedule_time.as_ref())
            .is_some_and(|t| t.0 == scheduled);
    if processed {
        return (requeue, changed, Ok(()));
    }
    let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
    if policy == "Forbid" && !active(cron_job).is_empty() {
        ctx.event(
            cron_job,
            EventType::Normal,
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid"
                .into(),
        );
        return (requeue, changed, Ok(()));
    }
    if policy == "Replace" {
        for running in active(cron_job).to_vec() {
            let running_name = running.name.clone().unwrap_or_default();
            let job = match jobs_api.get(&running_name).await {
                Ok(job) => job,
                Err(error) => {
                    ctx.event(
                        cron_job,
                        EventType::Warning,
                        "FailedGet",
                        format!("Get job: {}", api_message(&error)),
                    );
                    return (None, changed, Err(error.into()));
                }
            };
            if !delete_job(ctx, &jobs_api, cron_job, &job).await {
                let failed = Error::ReplaceFailed(format!("{namespace}/{running_name}"));
                return (None, changed, Err(failed));
            }
            changed = true;
        }
    }
    let job = job_from_template(cron_job, &name, scheduled, &zone);
    let created = match jobs_api.create(&PostParams::default(), &job).await {
        Ok(created) => {
            ctx.event(
                cron_job,
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created job {}", created.name_any()),
            );
            created
        }
        Err(error) if has_cause(&error, "NamespaceTerminating") => {
            return (None, changed, Err(error.into()));
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            // Made before, by this controller whose status update was lost, or by
            // someone else, who is left to it.
            let existing = match jobs_api.get(&name).await {
                Ok(existing) => existing,
                Err(error) => return (None, changed, Err(error.into())),
            };
            let ours = controller_of(&existing.metadata)
                .is_some_and(|r| Some(r.uid.as_str()) == cron_job.uid().as_deref());
            if !ours || in_active(cron_job, existing.metadata.uid.as_deref()) {
                return (None, changed, Ok(()));
            }
            tracing::info!(cronjob = %key_of(&*cron_job), job = name, "job already exists");
            existing
        }
        Err(error) => {
            ctx.event(
                cron_job,
                EventType::Warning,
                "FailedCreate",
                format!("Error creating job: {}", api_message(&error)),
            );
            return (None, changed, Err(error.into()));
        }
    };
    let status = cron_job.status.get_or_insert_default();
    status
        .active
        .get_or_insert_with(Vec::new)
        .push(reference(&created));
    status.last_schedule_time = Some(Time(scheduled));
    let requeue = clock(cron_job, &schedule, &zone).requeue_after(now);
    (requeue, true, Ok(()))
}

/// The Job for the activation at `scheduled`: the template's labels, annotations and spec,
/// the scheduled time, and the CronJob as its controller.
fn job_from_template(cron_job: &CronJob, name: &str, scheduled: Timestamp, zone: &TimeZone) -> Job {
    let template = cron_job
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations: BTreeMap<String, String> = meta.annotations.unwrap_or_default();
    // Upstream reads the zone again with `time.LoadLocation`, where no `timeZone` means UTC.
    let annotation_zone = if cron_job
        .spec
        .as_ref()
        .and_then(|s| s.time_zone.as_ref())
        .is_some()
    {
        zone.clone()
    } else {
        TimeZone::UTC
    };
    annotations.insert(
        SCHEDULED_TIMESTAMP.into(),
        rfc3339_in(scheduled, &annotation_zone),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: meta.labels.filter(|l| !l.is_empty()),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cron_job)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Deletes a Job (its pods in the background) and drops it from `status.active`, with
/// upstream's events; false when the delete failed.
async fn delete_job(ctx: &Context, api: &Api<Job>, cron_job: &mut CronJob, job: &Job) -> bool {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    let result = api.delete(&job.name_any(), &params).await;
    if let Some(error) = result.as_ref().err().filter(|_| !is_status(&result, 404)) {
        ctx.event(
            cron_job,
            EventType::Warning,
            "FailedDelete",
            format!("Deleted job: {}", api_message(error)),
        );
        tracing::warn!(cronjob = %key_of(&*cron_job), job = job.name_any(), %error, "error deleting job from cronjob");
        return false;
    }
    remove_active(cron_job, job.metadata.uid.as_deref());
    ctx.event(
        cron_job,
        EventType::Normal,
        "SuccessfulDelete",
        format!("Deleted job {}", job.name_any()),
    );
    true
}

/// Upstream's `cleanupFinishedJobs`: beyond each history limit, the finished Jobs that
/// started first (never started last, then by name) are deleted. Whether the status changed.
async fn clean_up_finished(ctx: &Context, cron_job: &mut CronJob, jobs: &[Arc<Job>]) -> bool {
    let spec = cron_job.spec.clone().unwrap_or_default();
    let api: Api<Job> = Api::namespaced(
        ctx.client.clone(),
        &cron_job.namespace().unwrap_or_default(),
    );
    let mut changed = false;
    for (condition, limit) in [
        ("Complete", spec.successful_jobs_history_limit),
        ("Failed", spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let mut finished: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| finished_as(j) == Some(condition))
            .collect();
        let excess = finished
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(0));
        if excess == 0 {
            continue;
        }
        let started = |j: &Job| {
            j.status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0)
        };
        finished.sort_by(|a, b| {
            let order = match (started(a), started(b)) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            order.then_with(|| a.name_any().cmp(&b.name_any()))
        });
        for job in finished.into_iter().take(excess) {
            changed |= delete_job(ctx, &api, cron_job, job).await;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cron_job(spec: serde_json::Value) -> CronJob {
        serde_json::from_value(json!({
            "metadata": {"name": "hello", "namespace": "lab", "uid": "cj-1"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn jobs_carry_the_template_the_activation_and_their_controller() {
        let cj = cron_job(json!({
            "schedule": "*/1 * * * *",
            "jobTemplate": {
                "metadata": {"labels": {"app": "hello"}, "annotations": {"team": "a"}},
                "spec": {"backoffLimit": 2, "template": {"spec": {"containers": []}}},
            },
        }));
        let at: Timestamp = "2025-01-01T10:01:00Z".parse().unwrap();
        let job = serde_json::to_value(job_from_template(
            &cj,
            &job_name("hello", at),
            at,
            &cron::load_location("Asia/Tokyo").unwrap(),
        ))
        .unwrap();
        assert_eq!(job["metadata"]["name"], "hello-28928761");
        assert_eq!(job["metadata"]["labels"], json!({"app": "hello"}));
        assert_eq!(
            job["metadata"]["annotations"],
            json!({"team": "a", SCHEDULED_TIMESTAMP: "2025-01-01T10:01:00Z"})
        );
        assert_eq!(
            job["metadata"]["ownerReferences"],
            json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": "hello", "uid": "cj-1",
                    "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(job["spec"]["backoffLimit"], 2);
        let mut zoned = cj.clone();
        zoned.spec.as_mut().unwrap().time_zone = Some("Asia/Tokyo".into());
        let job = job_from_template(&zoned, "x", at, &cron::load_location("Asia/Tokyo").unwrap());
        assert_eq!(
            job.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP],
            "2025-01-01T19:01:00+09:00"
        );
    }

    #[test]
    fn finished_jobs_are_complete_or_failed() {
        let job = |conditions: serde_json::Value| -> Job {
            serde_json::from_value(json!({"status": {"conditions": conditions}})).unwrap()
        };
        assert_eq!(finished_as(&job(json!([]))), None);
        assert_eq!(
            finished_as(&job(
                json!([{"type": "SuccessCriteriaMet", "status": "True"},
                                    {"type": "Complete", "status": "True"}])
            )),
            Some("Complete")
        );
        assert_eq!(
            finished_as(&job(json!([{"type": "Failed", "status": "True"}]))),
            Some("Failed")
        );
        assert_eq!(
            finished_as(&job(json!([{"type": "Failed", "status": "False"}]))),
            None
        );
    }
}
