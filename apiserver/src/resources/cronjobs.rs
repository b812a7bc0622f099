//! CronJobs (`batch/v1`): Jobs made on a cron schedule. Stored with upstream's defaults
//! (concurrency policy, suspend, history limits, and the defaults of the nested pod template);
//! validated as upstream does: the schedule parses as robfig's standard cron parser would
//! (its error text is the message), `TZ=`/`CRON_TZ=` in it is refused in favour of
//! `timeZone`, which must name a zone of the tz database, and the job template is checked as
//! a Job's spec whose selector will be generated. Names are limited to 52 characters on
//! create, as the controller appends an 11-character suffix to name each Job.

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, CronJobStatus, JobSpec};
use machinery::cron;
use serde_json::Value;

use super::{jobs, workload};
use crate::error::Cause;
use crate::registry::table::{age, Cell, Column, Relative};
use crate::registry::{Description, Strategy};

pub struct CronJobs;

/// A Job's name is the CronJob's, a dash and ten digits of scheduled minutes since the epoch,
/// and must stay a valid DNS-1035 label length (63).
const MAX_NAME_LENGTH: usize = 63 - 11;

const POLICIES: [&str; 3] = ["Allow", "Forbid", "Replace"];

const SCHEDULE: &str = "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.";
const TIMEZONE: &str = "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones";
const SUSPEND: &str = "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.";
const ACTIVE: &str = "A list of pointers to currently running jobs.";
const LAST_SCHEDULE: &str =
    "Information when was the last time the job was successfully scheduled.";
const CONTAINERS: &str = "Names of each container in the template.";
const IMAGES: &str = "Images referenced by each container in the template.";
const SELECTOR: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

impl Strategy for CronJobs {
    type Object = CronJob;

    fn describe(&self) -> Description {
        Description {
            short_names: &["cj"],
            categories: &["all"],
            status: true,
            generation: true,
            ..Description::default()
        }
    }

    /// Upstream's `SetDefaults_CronJob`; the job template's own fields stay as given (its
    /// Jobs are defaulted when created), only what it nests is defaulted.
    fn default_fields(&self, cron_job: &mut CronJob) {
        let spec = cron_job.spec.get_or_insert_with(CronJobSpec::default);
        if spec.concurrency_policy.as_deref().unwrap_or("").is_empty() {
            spec.concurrency_policy = Some("Allow".into());
        }
        spec.suspend.get_or_insert(false);
        spec.successful_jobs_history_limit.get_or_insert(3);
        spec.failed_jobs_history_limit.get_or_insert(1);
        jobs::default_nested(spec.job_template.spec.get_or_insert_with(JobSpec::default));
    }

    fn prepare_create(&self, cron_job: &mut CronJob) {
        cron_job.status = Some(CronJobStatus::default());
    }

    fn validate(&self, cron_job: &CronJob) -> Vec<Cause> {
        let mut causes = validate_spec(cron_job.spec.as_ref(), None);
        let name = cron_job.metadata.name.as_deref().unwrap_or("");
        if name.len() > MAX_NAME_LENGTH {
            causes.push(Cause::invalid(
                "metadata.name",
                &Value::from(name),
                format!("must be no more than {MAX_NAME_LENGTH} characters"),
            ));
        }
        causes
    }

    /// The name limit is for new CronJobs only, so older ones with longer names can still be
    /// updated and deleted.
    fn validate_update(&self, new: &CronJob, old: &CronJob) -> Vec<Cause> {
        let default = CronJobSpec::default();
        validate_spec(
            new.spec.as_ref(),
            Some(old.spec.as_ref().unwrap_or(&default)),
        )
    }

    /// Upstream checks nothing in a status write.
    fn validate_subresource_update(
        &self,
        _subresource: &str,
        _new: &CronJob,
        _old: &CronJob,
    ) -> Vec<Cause> {
        Vec::new()
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Schedule", "string", SCHEDULE),
            Column::new("Timezone", "string", TIMEZONE),
            Column::new("Suspend", "boolean", SUSPEND),
            Column::new("Active", "integer", ACTIVE),
            Column::new("Last Schedule", "string", LAST_SCHEDULE),
            Column::age(),
            Column::new("Containers", "string", CONTAINERS).wide(),
            Column::new("Images", "string", IMAGES).wide(),
            Column::new("Selector", "string", SELECTOR).wide(),
        ]
    }

    fn cells(&self, cron_job: &CronJob) -> Vec<Cell> {
        let spec = cron_job.spec.as_ref();
        let status = cron_job.status.as_ref();
        let suspend = match spec.and_then(|s| s.suspend) {
            Some(true) => "True",
            Some(false) => "False",
            None => "<unset>",
        };
        let active = status.and_then(|s| s.active.as_ref()).map_or(0, Vec::len);
        let last_schedule = match status.and_then(|s| s.last_schedule_time.as_ref()) {
            Some(time) => Cell::Relative(Relative::Since(Some(time.0))),
            None => Cell::from("<none>"),
        };
        let job_spec = spec.and_then(|s| s.job_template.spec.as_ref());
        let (containers, images) = workload::container_cells(job_spec.map(|s| &s.template));
        let selector = job_spec
            .and_then(|s| s.selector.as_ref())
            .map(workload::selector_text)
            .filter(|s| !s.is_empty());
        vec![
            Cell::from(cron_job.metadata.name.clone().unwrap_or_default()),
            Cell::from(spec.map(|s| s.schedule.clone()).unwrap_or_default()),
            Cell::from(
                spec.and_then(|s| s.time_zone.clone())
                    .unwrap_or_else(|| "<none>".into()),
            ),
            Cell::from(suspend),
            Cell::from(active as i64),
            last_schedule,
            age(&cron_job.metadata),
            Cell::from(containers),
            Cell::from(images),
            Cell::from(selector.unwrap_or_else(|| "<none>".into())),
        ]
    }
}

fn non_negative(causes: &mut Vec<Cause>, field: &str, value: Option<i64>) {
    if let Some(value) = value.filter(|v| *v < 0) {
        causes.push(Cause::invalid(
            format!("spec.{field}"),
            &Value::from(value),
            "must be greater than or equal to 0",
        ));
    }
}

/// Upstream's `validateCronJobSpec`; `old` is the spec before an update.
fn validate_spec(spec: Option<&CronJobSpec>, old: Option<&CronJobSpec>) -> Vec<Cause> {
    let default = CronJobSpec::default();
    let spec = spec.unwrap_or(&default);
    let mut causes = Vec::new();
    if spec.schedule.is_empty() {
        causes.push(Cause::required("spec.schedule"));
    } else {
        // A schedule that already carried a zone may keep it (it predates `timeZone`).
        let tz_allowed = old.is_some_and(|o| o.schedule.contains("TZ"));
        causes.extend(validate_schedule(
            &spec.schedule,
            tz_allowed,
            spec.time_zone.is_some(),
        ));
    }
    non_negative(
        &mut causes,
        "startingDeadlineSeconds",
        spec.starting_deadline_seconds,
    );
    if old.is_none_or(|o| o.time_zone != spec.time_zone) {
        causes.extend(validate_time_zone(spec.time_zone.as_deref()));
    }
    match spec.concurrency_policy.as_deref().unwrap_or("") {
        "" => causes.push(Cause::required("spec.concurrencyPolicy")),
        policy if !POLICIES.contains(&policy) => causes.push(Cause::unsupported(
            "spec.concurrencyPolicy",
            &Value::from(policy),
            &POLICIES,
        )),
        _ => {}
    }
    causes.extend(validate_job_template(spec));
    non_negative(
        &mut causes,
        "successfulJobsHistoryLimit",
        spec.successful_jobs_history_limit.map(i64::from),
    );
    non_negative(
        &mut causes,
        "failedJobsHistoryLimit",
        spec.failed_jobs_history_limit.map(i64::from),
    );
    causes
}

fn validate_schedule(schedule: &str, tz_allowed: bool, has_time_zone: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let invalid = |detail: &str| Cause::invalid("spec.schedule", &Value::from(schedule), detail);
    if let Err(error) = cron::parse_standard(schedule) {
        causes.push(invalid(&error.to_string()));
    }
    let zoned = schedule.contains("TZ");
    if tz_allowed && zoned && has_time_zone {
        causes.push(invalid(
            "cannot use both timeZone field and TZ or CRON_TZ in schedule",
        ));
    } else if !tz_allowed && zoned {
        causes.push(invalid(
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ));
    }
    causes
}

/// Upstream's `validateTimeZone`: the IANA naming rules for each part (digits and `+`
/// tolerated for legacy names), not `Local`, and a zone the database knows.
fn validate_time_zone(time_zone: Option<&str>) -> Vec<Cause> {
    let Some(zone) = time_zone else {
        return Vec::new();
    };
    let invalid = |detail: &str| Cause::invalid("spec.timeZone", &Value::from(zone), detail);
    if zone.is_empty() {
        return vec![invalid("timeZone must be nil or non-empty string")];
    }
    let well_formed = |part: &str| {
        (1..=14).contains(&part.len())
            && part != "."
            && part != ".."
            && !part.starts_with('-')
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_+".contains(&b))
    };
    if !zone.split('/').all(well_formed) {
        return vec![invalid(&format!("unknown time zone {zone}"))];
    }
    if zone.eq_ignore_ascii_case("Local") {
        // Go's `time.LoadLocation("Local")` succeeds, so this is the only complaint.
        return vec![invalid(
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        )];
    }
    match cron::load_location(zone) {
        Ok(_) => Vec::new(),
        Err(error) => vec![invalid(&error.to_string())],
    }
}

/// Upstream's `ValidateJobTemplateSpec`: the Job spec rules under `spec.jobTemplate.spec`,
/// and no selector of its own, as each Job's is generated.
fn validate_job_template(spec: &CronJobSpec) -> Vec<Cause> {
    let default = JobSpec::default();
    let job = spec.job_template.spec.as_ref().unwrap_or(&default);
    let mut causes: Vec<Cause> = jobs::validate_spec(job)
        .into_iter()
        .map(|mut cause| {
            if let Some(rest) = cause.field.strip_prefix("spec.") {
                cause.field = format!("spec.jobTemplate.spec.{rest}");
            }
            cause
        })
        .collect();
    if let Some(selector) = &job.selector {
        causes.push(Cause::invalid_printed(
            "spec.jobTemplate.spec.selector",
            &workload::go_label_selector(selector),
            "`selector` will be auto-generated",
        ));
    }
    if job.manual_selector == Some(true) {
        causes.push(Cause::unsupported(
            "spec.jobTemplate.spec.manualSelector",
            &Value::from(true),
            &["nil", "false"],
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::table::rendered;
    use serde_json::json;

    fn created(value: Value) -> CronJob {
        let mut cron_job: CronJob = serde_json::from_value(value).unwrap();
        CronJobs.prepare_create(&mut cron_job);
        CronJobs.default_fields(&mut cron_job);
        cron_job
    }

    /// What `kubectl create cronjob hello --image=busybox --schedule="*/1 * * * *" --
    /// sh -c 'exit 0'` sends.
    fn hello() -> CronJob {
        created(json!({
            "metadata": {"name": "hello"},
            "spec": {
                "schedule": "*/1 * * * *",
                "jobTemplate": {"metadata": {"name": "hello"}, "spec": {"template": {"spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{"name": "hello", "image": "busybox",
                                    "command": ["sh", "-c", "exit 0"]}],
                }}}},
            }
        }))
    }

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    fn with(change: impl FnOnce(&mut CronJobSpec)) -> Vec<String> {
        let mut cron_job = hello();
        change(cron_job.spec.as_mut().unwrap());
        messages(&CronJobs.validate(&cron_job))
    }

    #[test]
    fn defaults_leave_the_job_spec_to_its_jobs() {
        let cron_job = hello();
        assert!(CronJobs.validate(&cron_job).is_empty());
        let value = serde_json::to_value(&cron_job).unwrap();
        let spec = &value["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Allow");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["successfulJobsHistoryLimit"], 3);
        assert_eq!(spec["failedJobsHistoryLimit"], 1);
        let job = &spec["jobTemplate"]["spec"];
        assert!(job["completions"].is_null() && job["backoffLimit"].is_null());
        assert_eq!(job["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        assert_eq!(
            job["template"]["spec"]["containers"][0]["terminationMessagePath"],
            "/dev/termination-log"
        );
        assert_eq!(value["status"], json!({}));
    }

    #[test]
    fn schedules_and_time_zones() {
        assert!(with(|s| s.schedule = "@hourly".into()).is_empty());
        assert!(with(|s| s.schedule = "0 9 * * MON-FRI".into()).is_empty());
        assert!(with(|s| s.schedule = "@every 5m".into()).is_empty());
        assert!(with(|s| s.time_zone = Some("Europe/Berlin".into())).is_empty());
        assert_eq!(
            with(|s| s.schedule = "61 * * * *".into()),
            [
                r#"spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61"#
            ]
        );
        assert_eq!(
            with(|s| s.schedule = "".into()),
            ["spec.schedule: Required value"]
        );
        assert_eq!(
            with(|s| s.schedule = "TZ=UTC 0 * * * *".into()),
            [
                r#"spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"#
            ]
        );
        assert_eq!(
            with(|s| s.time_zone = Some("Mars/Olympus_Mons".into())),
            [
                r#"spec.timeZone: Invalid value: "Mars/Olympus_Mons": unknown time zone Mars/Olympus_Mons"#
            ]
        );
        assert_eq!(
            with(|s| s.time_zone = Some("../etc/passwd".into())),
            [r#"spec.timeZone: Invalid value: "../etc/passwd": unknown time zone ../etc/passwd"#]
        );
        assert_eq!(
            with(|s| s.time_zone = Some("Local".into())),
            [
                r#"spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"#
            ]
        );
        assert_eq!(
            with(|s| s.time_zone = Some(String::new())),
            [r#"spec.timeZone: Invalid value: "": timeZone must be nil or non-empty string"#]
        );
    }

    #[test]
    fn a_zone_in_the_schedule_may_stay_if_it_was_there() {
        let mut old = hello();
        old.spec.as_mut().unwrap().schedule = "TZ=UTC 0 * * * *".into();
        let mut new = old.clone();
        new.spec.as_mut().unwrap().schedule = "TZ=UTC 5 * * * *".into();
        assert!(CronJobs.validate_update(&new, &old).is_empty());
        new.spec.as_mut().unwrap().time_zone = Some("UTC".into());
        assert_eq!(
            messages(&CronJobs.validate_update(&new, &old)),
            [
                r#"spec.schedule: Invalid value: "TZ=UTC 5 * * * *": cannot use both timeZone field and TZ or CRON_TZ in schedule"#
            ]
        );
    }

    #[test]
    fn spec_limits_and_the_job_template() {
        assert_eq!(
            with(|s| {
                s.starting_deadline_seconds = Some(-1);
                s.successful_jobs_history_limit = Some(-1);
                s.concurrency_policy = Some("Sometimes".into());
            }),
            [
                "spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0",
                r#"spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace""#,
                "spec.successfulJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
        assert_eq!(
            with(|s| {
                let job = s.job_template.spec.as_mut().unwrap();
                job.template.spec.as_mut().unwrap().restart_policy = Some("Always".into());
                job.parallelism = Some(-1);
                job.manual_selector = Some(true);
                job.selector = Some(Default::default());
            }),
            [
                "spec.jobTemplate.spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                r#"spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#,
                "spec.jobTemplate.spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` will be auto-generated",
                r#"spec.jobTemplate.spec.manualSelector: Unsupported value: true: supported values: "nil", "false""#,
            ]
        );
    }

    #[test]
    fn names_are_limited_on_create_only() {
        let mut cron_job = hello();
        let long = "a".repeat(53);
        cron_job.metadata.name = Some(long.clone());
        assert_eq!(
            messages(&CronJobs.validate(&cron_job)),
            [format!(
                "metadata.name: Invalid value: \"{long}\": must be no more than 52 characters"
            )]
        );
        assert!(CronJobs.validate_update(&cron_job, &cron_job).is_empty());
    }

    #[test]
    fn rows() {
        let mut cron_job = hello();
        let now = jiff::Timestamp::now();
        let cells = rendered(&CronJobs.cells(&cron_job), now);
        assert_eq!(
            cells[1..6],
            [
                json!("*/1 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(0),
                json!("<none>")
            ]
        );
        assert_eq!(
            cells[7..],
            [json!("hello"), json!("busybox"), json!("<none>")]
        );
        let status = cron_job.status.get_or_insert_with(Default::default);
        status.active = Some(vec![Default::default()]);
        status.last_schedule_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            now.checked_sub(jiff::SignedDuration::from_secs(42))
                .unwrap(),
        ));
        cron_job.spec.as_mut().unwrap().time_zone = Some("Asia/Tokyo".into());
        let cells = rendered(&CronJobs.cells(&cron_job), now);
        assert_eq!(
            cells[2..6],
            [json!("Asia/Tokyo"), json!("False"), json!(1), json!("42s")]
        );
    }
}
