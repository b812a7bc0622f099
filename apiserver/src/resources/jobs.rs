//! Jobs (`batch/v1`): pods run to completion. The API server stores them with upstream's
//! defaults, the selector and labels it generates so a job's pods are its own, validation
//! of the spec (completion modes, back-off limits, pod failure and success policies) and of
//! status transitions, and the STATUS/COMPLETIONS/DURATION table.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use machinery::selector::Selector;
use serde_json::{json, Value};

use super::{podspec, workload};
use crate::error::Cause;
use crate::registry::stored;
use crate::registry::strategy::DefaultPropagation;
use crate::registry::table::{age, human_duration, Cell, Column, Relative};
use crate::registry::validation;
use crate::registry::{Description, NameRule, Strategy};

pub struct Jobs;

/// The labels the generated selector and the pod template carry (`batch.kubernetes.io/*`
/// and the legacy unprefixed ones kept for old clients).
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";

const STATUS: &str = "Status of the job.";
const COMPLETIONS: &str = "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.";
const DURATION: &str = "Time required to complete the job.";
const CONTAINERS: &str = "Names of each container in the template.";
const IMAGES: &str = "Images referenced by each container in the template.";
const SELECTOR: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

const NON_NEGATIVE: &str = "must be greater than or equal to 0";
/// An Indexed job's parallelism is capped so `status.completedIndexes` stays bounded.
const MAX_INDEXED_PARALLELISM: i32 = 100_000;
const ACTIONS: [&str; 4] = ["Count", "FailIndex", "FailJob", "Ignore"];
const MAX_MANAGED_BY_LENGTH: usize = 63;

fn manual_selector(spec: &JobSpec) -> bool {
    spec.manual_selector.unwrap_or(false)
}

fn has_condition(status: Option<&JobStatus>, type_: &str) -> bool {
    status.and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
        c.iter()
            .any(|c: &JobCondition| c.type_ == type_ && c.status == "True")
    })
}

impl Strategy for Jobs {
    type Object = Job;

    fn describe(&self) -> Description {
        Description {
            categories: &["all"],
            status: true,
            generation: true,
            field_selectors: &["status.successful"],
            ..Description::default()
        }
    }

    /// batch/v1 keeps the behaviour from before the garbage collector: a Job deleted without
    /// a propagation policy leaves its pods, and upstream warns about it (kubectl always
    /// sends one).
    fn default_propagation(&self) -> DefaultPropagation {
        DefaultPropagation::Orphan {
            warning: Some("child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning"),
        }
    }

    fn default_fields(&self, job: &mut Job) {
        let spec = job.spec.get_or_insert_with(JobSpec::default);
        if spec.completions.is_none() && spec.parallelism.is_none() {
            spec.completions = Some(1);
        }
        spec.parallelism.get_or_insert(1);
        if spec.backoff_limit.is_none() {
            spec.backoff_limit = Some(if spec.backoff_limit_per_index.is_some() {
                i32::MAX
            } else {
                6
            });
        }
        if job.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            if let Some(labels) = spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
            {
                job.metadata.labels = Some(labels);
            }
        }
        spec.completion_mode
            .get_or_insert_with(|| "NonIndexed".into());
        spec.suspend.get_or_insert(false);
        if spec.pod_replacement_policy.is_none() {
            spec.pod_replacement_policy = Some(if spec.pod_failure_policy.is_some() {
                "Failed".into()
            } else {
                "TerminatingOrFailed".into()
            });
        }
        spec.manual_selector.get_or_insert(false);
        default_nested(spec);
    }

    /// Upstream generates the selector and the pod labels from the job's name and UID,
    /// which it fills before preparing the create; so does this, naming a `generateName`
    /// job here rather than after, for its pods' `job-name` label to carry the name.
    fn prepare_create(&self, job: &mut Job) {
        job.status = Some(JobStatus::default());
        let meta = &mut job.metadata;
        if meta.name.as_deref().unwrap_or("").is_empty() {
            if let Some(base) = meta.generate_name.clone().filter(|g| !g.is_empty()) {
                meta.name = Some(format!("{base}{}", stored::name_suffix()));
            }
        }
        let name = meta.name.clone().unwrap_or_default();
        let uid = meta.uid.clone().unwrap_or_default();
        let spec = job.spec.get_or_insert_with(JobSpec::default);
        if manual_selector(spec) {
            return;
        }
        let labels = spec
            .template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new);
        for key in [LEGACY_JOB_NAME, JOB_NAME] {
            labels.entry(key.into()).or_insert_with(|| name.clone());
        }
        for key in [LEGACY_CONTROLLER_UID, CONTROLLER_UID] {
            labels.entry(key.into()).or_insert_with(|| uid.clone());
        }
        let selector = spec.selector.get_or_insert_with(LabelSelector::default);
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .entry(CONTROLLER_UID.into())
            .or_insert(uid);
    }

    fn validate(&self, job: &Job) -> Vec<Cause> {
        let default_spec = JobSpec::default();
        let spec = job.spec.as_ref().unwrap_or(&default_spec);
        let mut causes = generated_selector(job, spec);
        causes.extend(validate_spec(spec));
        causes.extend(validate_selector(spec));
        let indexed = spec.completion_mode.as_deref() == Some("Indexed");
        if let Some(completions) = spec.completions.filter(|c| indexed && *c > 0) {
            let name = job.metadata.name.clone().unwrap_or_default();
            let hostname = format!("{name}-{}", completions - 1);
            if !validation::is_dns1123_label(&hostname) {
                causes.push(Cause::invalid(
                    "metadata.name",
                    &Value::from(name),
                    format!("will not able to create pod with invalid DNS label: {hostname}"),
                ));
            }
        }
        causes
    }

    fn validate_update(&self, new: &Job, old: &Job) -> Vec<Cause> {
        let mut causes = self.validate(new);
        let (Some(spec), Some(old_spec)) = (&new.spec, &old.spec) else {
            return causes;
        };
        let immutable = |field: &str, new: Value, old: Value| {
            (new != old)
                .then(|| Cause::invalid(format!("spec.{field}"), &new, "field is immutable"))
        };
        let indexed = spec.completion_mode.as_deref() == Some("Indexed");
        if spec.completions != old_spec.completions {
            // Indexed jobs are elastic: completions may change together with parallelism.
            match (indexed, spec.completions) {
                (true, Some(completions)) if Some(completions) != spec.parallelism => {
                    causes.push(Cause::invalid(
                        "spec.completions",
                        &Value::from(completions),
                        "can only be modified in tandem with spec.parallelism",
                    ))
                }
                (true, _) => {}
                (false, _) => causes.extend(immutable(
                    "completions",
                    json!(spec.completions),
                    json!(old_spec.completions),
                )),
            }
        }
        let selector = |s: &JobSpec| s.selector.clone().unwrap_or_default();
        causes.extend(workload::immutable_selector(
            &selector(spec),
            &selector(old_spec),
        ));
        causes.extend(immutable_template(spec, old_spec, old));
        causes.extend(immutable(
            "completionMode",
            json!(spec.completion_mode),
            json!(old_spec.completion_mode),
        ));
        causes.extend(immutable(
            "podFailurePolicy",
            json!(spec.pod_failure_policy),
            json!(old_spec.pod_failure_policy),
        ));
        causes.extend(immutable(
            "backoffLimitPerIndex",
            json!(spec.backoff_limit_per_index),
            json!(old_spec.backoff_limit_per_index),
        ));
        causes.extend(immutable(
            "managedBy",
            json!(spec.managed_by),
            json!(old_spec.managed_by),
        ));
        causes.extend(immutable(
            "successPolicy",
            json!(spec.success_policy),
            json!(old_spec.success_policy),
        ));
        causes
    }

    /// A status write keeps upstream's invariants of the job's history: counters do not go
    /// back, a terminal condition stays, and a job is not both Complete and Failed.
    fn validate_subresource_update(&self, _subresource: &str, new: &Job, old: &Job) -> Vec<Cause> {
        validate_status_update(new, old)
    }

    fn fields(&self, job: &Job) -> Vec<(&'static str, String)> {
        let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
        vec![("status.successful", succeeded.to_string())]
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Status", "string", STATUS),
            Column::new("Completions", "string", COMPLETIONS),
            Column::new("Duration", "string", DURATION),
            Column::age(),
            Column::new("Containers", "string", CONTAINERS).wide(),
            Column::new("Images", "string", IMAGES).wide(),
            Column::new("Selector", "string", SELECTOR).wide(),
        ]
    }

    fn cells(&self, job: &Job) -> Vec<Cell> {
        let spec = job.spec.as_ref();
        let status = job.status.as_ref();
        let succeeded = status.and_then(|s| s.succeeded).unwrap_or(0);
        let completions = match spec.and_then(|s| s.completions) {
            Some(completions) => format!("{succeeded}/{completions}"),
            None => match spec.and_then(|s| s.parallelism).unwrap_or(0) {
                parallelism if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
                _ => format!("{succeeded}/1"),
            },
        };
        let start = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
        let end = status.and_then(|s| s.completion_time.as_ref()).map(|t| t.0);
        let duration = match (start, end) {
            (None, _) => Cell::from(""),
            (Some(start), None) => Cell::Relative(Relative::Since(Some(start))),
            (Some(start), Some(end)) => {
                Cell::from(human_duration(end.as_second() - start.as_second()))
            }
        };
        let state = if has_condition(status, "Complete") {
            "Complete"
        } else if has_condition(status, "Failed") {
            "Failed"
        } else if job.metadata.deletion_timestamp.is_some() {
            "Terminating"
        } else if has_condition(status, "Suspended") {
            "Suspended"
        } else if has_condition(status, "FailureTarget") {
            "FailureTarget"
        } else {
            "Running"
        };
        let (containers, images) = workload::container_cells(spec.map(|s| &s.template));
        let selector = spec
            .and_then(|s| s.selector.as_ref())
            .map(workload::selector_text)
            .filter(|s| !s.is_empty());
        vec![
            Cell::from(job.metadata.name.clone().unwrap_or_default()),
            Cell::from(state),
            Cell::from(completions),
            duration,
            age(&job.metadata),
            Cell::from(containers),
            Cell::from(images),
            Cell::from(selector.unwrap_or_else(|| "<none>".into())),
        ]
    }
}

/// The defaults of what a job spec nests (its pod template, the pod failure policy's
/// condition patterns), which a CronJob's job template gets too: upstream defaults nested
/// types wherever they appear, the JobSpec's own fields only in a Job.
pub(super) fn default_nested(spec: &mut JobSpec) {
    if let Some(policy) = &mut spec.pod_failure_policy {
        for pattern in policy
            .rules
            .iter_mut()
            .flat_map(|r| r.on_pod_conditions.iter_mut().flatten())
        {
            if pattern.status.is_empty() {
                pattern.status = "True".into();
            }
        }
    }
    podspec::default_pod_template(&mut spec.template);
}

/// Upstream's `validateGeneratedSelector`: unless the selector is manual, the template
/// carries the generated labels and the selector picks exactly them.
fn generated_selector(job: &Job, spec: &JobSpec) -> Vec<Cause> {
    let Some(selector) = spec.selector.as_ref().filter(|_| !manual_selector(spec)) else {
        return Vec::new();
    };
    let mut causes = Vec::new();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    if uid.is_empty() {
        causes.push(Cause::required("metadata.uid"));
    }
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    let expected = [
        (LEGACY_CONTROLLER_UID, &uid),
        (LEGACY_JOB_NAME, &name),
        (CONTROLLER_UID, &uid),
        (JOB_NAME, &name),
    ];
    for (key, value) in expected {
        let path = format!("spec.template.metadata.labels[{key}]");
        match labels.and_then(|l| l.get(key)) {
            None => causes.push(Cause::required_because(path, value)),
            Some(actual) if actual != value => causes.push(Cause::invalid_printed(
                path,
                &workload::go_string_map(labels),
                format!("must be '{value}'"),
            )),
            Some(_) => {}
        }
    }
    let expected: BTreeMap<String, String> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Ok(parsed) = Selector::from_label_selector(selector) {
        if !parsed.matches(Some(&expected)) {
            causes.push(Cause::invalid_printed(
                "spec.selector",
                &workload::go_label_selector(selector),
                "`selector` not auto-generated",
            ));
        }
    }
    causes
}

fn non_negative(causes: &mut Vec<Cause>, field: &str, value: Option<i32>) {
    if let Some(value) = value.filter(|v| *v < 0) {
        causes.push(Cause::invalid(
            format!("spec.{field}"),
            &Value::from(value),
            NON_NEGATIVE,
        ));
    }
}

/// Upstream's `validateJobSpec`: what a Job's spec and a CronJob's job template share (the
/// selector is the Job's alone, see [`validate_selector`]). Fields are named `spec.*`.
pub(super) fn validate_spec(spec: &JobSpec) -> Vec<Cause> {
    let mut causes = Vec::new();
    non_negative(&mut causes, "parallelism", spec.parallelism);
    non_negative(&mut causes, "completions", spec.completions);
    let deadline = spec.active_deadline_seconds.filter(|d| *d < 0);
    if let Some(deadline) = deadline {
        causes.push(Cause::invalid(
            "spec.activeDeadlineSeconds",
            &Value::from(deadline),
            NON_NEGATIVE,
        ));
    }
    non_negative(&mut causes, "backoffLimit", spec.backoff_limit);
    non_negative(
        &mut causes,
        "ttlSecondsAfterFinished",
        spec.ttl_seconds_after_finished,
    );
    non_negative(
        &mut causes,
        "backoffLimitPerIndex",
        spec.backoff_limit_per_index,
    );
    non_negative(&mut causes, "maxFailedIndexes", spec.max_failed_indexes);
    if spec.max_failed_indexes.is_some() && spec.backoff_limit_per_index.is_none() {
        causes.push(Cause::required_because(
            "spec.backoffLimitPerIndex",
            "when maxFailedIndexes is specified",
        ));
    }
    let mode = spec.completion_mode.as_deref();
    match mode {
        None | Some("NonIndexed") => {
            for (field, value) in [
                ("backoffLimitPerIndex", spec.backoff_limit_per_index),
                ("maxFailedIndexes", spec.max_failed_indexes),
            ] {
                if let Some(value) = value {
                    causes.push(Cause::invalid(
                        format!("spec.{field}"),
                        &Value::from(value),
                        "requires indexed completion mode",
                    ));
                }
            }
        }
        Some("Indexed") => {
            if spec.completions.is_none() {
                causes.push(Cause::required_because(
                    "spec.completions",
                    "when completion mode is Indexed",
                ));
            }
            if let Some(parallelism) = spec.parallelism.filter(|p| *p > MAX_INDEXED_PARALLELISM) {
                causes.push(Cause::invalid(
                    "spec.parallelism",
                    &Value::from(parallelism),
                    format!(
                        "must be less than or equal to {MAX_INDEXED_PARALLELISM} when completion mode is Indexed"
                    ),
                ));
            }
            if let (Some(completions), Some(max)) = (spec.completions, spec.max_failed_indexes) {
                if max > completions {
                    causes.push(Cause::invalid(
                        "spec.maxFailedIndexes",
                        &Value::from(max),
                        "must be less than or equal to completions",
                    ));
                }
            }
        }
        Some(other) => causes.push(Cause::unsupported(
            "spec.completionMode",
            &Value::from(other),
            &["NonIndexed", "Indexed"],
        )),
    }
    causes.extend(validate_pod_failure_policy(spec));
    causes.extend(validate_success_policy(spec));
    if let Some(policy) = spec.pod_replacement_policy.as_deref() {
        let allowed: &[&str] = if spec.pod_failure_policy.is_some() {
            &["Failed"]
        } else {
            &["Failed", "TerminatingOrFailed"]
        };
        if !allowed.contains(&policy) {
            causes.push(Cause::unsupported(
                "spec.podReplacementPolicy",
                &Value::from(policy),
                allowed,
            ));
        }
    }
    let template = &spec.template;
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    causes.extend(validation::labels(labels, "spec.template.labels"));
    let default_pod = Default::default();
    let pod = template.spec.as_ref().unwrap_or(&default_pod);
    causes.extend(podspec::validate_pod_spec(pod, "spec.template.spec"));
    match pod.restart_policy.as_deref().unwrap_or("") {
        "Always" | "" => causes.push(Cause::required_because(
            "spec.template.spec.restartPolicy",
            r#"valid values: "OnFailure", "Never""#,
        )),
        "OnFailure" if spec.pod_failure_policy.is_some() => causes.push(Cause::invalid(
            "spec.template.spec.restartPolicy",
            &Value::from("OnFailure"),
            r#"only "Never" is supported when podFailurePolicy is specified"#,
        )),
        "OnFailure" | "Never" => {}
        other => causes.push(Cause::unsupported(
            "spec.template.spec.restartPolicy",
            &Value::from(other),
            &["OnFailure", "Never"],
        )),
    }
    if let Some(manager) = &spec.managed_by {
        causes.extend(validate_managed_by(manager));
    }
    causes
}

/// `spec.managedBy` names the controller in charge: a domain-prefixed path (upstream's
/// `IsDomainPrefixedPath`) of at most 63 bytes.
fn validate_managed_by(manager: &str) -> Vec<Cause> {
    const FIELD: &str = "spec.managedBy";
    let mut causes = Vec::new();
    match manager.split_once('/') {
        _ if manager.is_empty() => causes.push(Cause::required(FIELD)),
        Some((host, path)) if !host.is_empty() && !path.is_empty() => {
            for error in validation::name_errors(host, NameRule::Subdomain) {
                causes.push(Cause::invalid(FIELD, &Value::from(host), error));
            }
            let path_char = |c: char| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c);
            if !path.chars().all(path_char) {
                causes.push(Cause::invalid(
                    FIELD,
                    &Value::from(path),
                    r"Invalid path (regex used for validation is '[A-Za-z0-9/\-._~%!$&'()*+,;=:]+')",
                ));
            }
        }
        _ => causes.push(Cause::invalid(
            FIELD,
            &Value::from(manager),
            r#"must be a domain-prefixed path (such as "acme.io/foo")"#,
        )),
    }
    if manager.len() > MAX_MANAGED_BY_LENGTH {
        causes.push(Cause {
            reason: "FieldValueTooLong",
            field: FIELD.into(),
            message: format!("Too long: may not be more than {MAX_MANAGED_BY_LENGTH} bytes"),
        });
    }
    causes
}

/// The rest of upstream's `ValidateJobSpec`: a Job's selector is required, well-formed and
/// selects its template's labels.
fn validate_selector(spec: &JobSpec) -> Vec<Cause> {
    let mut causes = Vec::new();
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    match &spec.selector {
        None => causes.push(Cause::required("spec.selector")),
        Some(selector) => {
            causes.extend(workload::validate_label_selector(selector, "spec.selector"));
            if let Ok(parsed) = Selector::from_label_selector(selector) {
                if !parsed.matches(labels) {
                    causes.push(Cause::invalid_printed(
                        "spec.template.metadata.labels",
                        &workload::go_string_map(labels),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
    }
    causes
}

/// Upstream's checks of `spec.podFailurePolicy`'s rules.
fn validate_pod_failure_policy(spec: &JobSpec) -> Vec<Cause> {
    let Some(policy) = &spec.pod_failure_policy else {
        return Vec::new();
    };
    let mut causes = Vec::new();
    if policy.rules.len() > 20 {
        causes.push(Cause {
            reason: "FieldValueTooMany",
            field: "spec.podFailurePolicy.rules".into(),
            message: format!(
                "Too many: {}: must have at most 20 items",
                policy.rules.len()
            ),
        });
    }
    let pod = spec.template.spec.clone().unwrap_or_default();
    let containers: Vec<&str> = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .map(|c| c.name.as_str())
        .collect();
    for (i, rule) in policy.rules.iter().enumerate() {
        let path = format!("spec.podFailurePolicy.rules[{i}]");
        let action = format!("{path}.action");
        match rule.action.as_str() {
            "" => causes.push(Cause::required_because(
                action,
                r#"valid values: ["Count" "FailIndex" "FailJob" "Ignore"]"#,
            )),
            "FailIndex" if spec.backoff_limit_per_index.is_none() => causes.push(Cause::invalid(
                action,
                &Value::from("FailIndex"),
                "requires the backoffLimitPerIndex to be set",
            )),
            a if !ACTIONS.contains(&a) => {
                causes.push(Cause::unsupported(action, &Value::from(a), &ACTIONS))
            }
            _ => {}
        }
        if let Some(on_exit) = &rule.on_exit_codes {
            let exit_path = format!("{path}.onExitCodes");
            match on_exit.operator.as_str() {
                "" => causes.push(Cause::required_because(
                    format!("{exit_path}.operator"),
                    r#"valid values: ["In" "NotIn"]"#,
                )),
                "In" | "NotIn" => {}
                other => causes.push(Cause::unsupported(
                    format!("{exit_path}.operator"),
                    &Value::from(other),
                    &["In", "NotIn"],
                )),
            }
            if let Some(name) = on_exit.container_name.as_deref() {
                if !containers.contains(&name) {
                    causes.push(Cause::invalid(
                        format!("{exit_path}.containerName"),
                        &Value::from(name),
                        "must be one of the container or initContainer names in the pod template",
                    ));
                }
            }
            let values = &on_exit.values;
            if values.is_empty() {
                causes.push(Cause::invalid_printed(
                    format!("{exit_path}.values"),
                    "[]int32(nil)",
                    "at least one value is required",
                ));
            }
            for (j, value) in values.iter().enumerate() {
                let value_path = format!("{exit_path}.values[{j}]");
                if on_exit.operator == "In" && *value == 0 {
                    causes.push(Cause::invalid(
                        value_path.clone(),
                        &Value::from(0),
                        "must not be 0 for the In operator",
                    ));
                }
                if values[..j].contains(value) {
                    causes.push(Cause::duplicate(value_path, &Value::from(*value)));
                }
            }
            if values.windows(2).any(|w| w[0] > w[1]) {
                let printed: Vec<String> = values.iter().map(i32::to_string).collect();
                causes.push(Cause::invalid_printed(
                    format!("{exit_path}.values"),
                    &format!("[]int32{{{}}}", printed.join(", ")),
                    "must be ordered",
                ));
            }
        }
        for (j, pattern) in rule.on_pod_conditions.iter().flatten().enumerate() {
            let status = format!("{path}.onPodConditions[{j}].status");
            if !["True", "False", "Unknown"].contains(&pattern.status.as_str()) {
                causes.push(Cause::unsupported(
                    status,
                    &Value::from(pattern.status.clone()),
                    &["False", "True", "Unknown"],
                ));
            }
        }
        let on_conditions = rule
            .on_pod_conditions
            .as_ref()
            .is_some_and(|c| !c.is_empty());
        match (rule.on_exit_codes.is_some(), on_conditions) {
            (true, true) => causes.push(Cause::invalid_printed(
                path,
                "\"\"",
                "specifying both OnExitCodes and OnPodConditions is not supported",
            )),
            (false, false) => causes.push(Cause::invalid_printed(
                path,
                "\"\"",
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            _ => {}
        }
    }
    causes
}

/// Upstream's checks of `spec.successPolicy`, which only Indexed jobs may have.
fn validate_success_policy(spec: &JobSpec) -> Vec<Cause> {
    let Some(policy) = &spec.success_policy else {
        return Vec::new();
    };
    if spec.completion_mode.as_deref() != Some("Indexed") {
        return vec![Cause::invalid(
            "spec.successPolicy",
            &json!(policy),
            "requires indexed completion mode",
        )];
    }
    let mut causes = Vec::new();
    if policy.rules.is_empty() {
        causes.push(Cause::required_because(
            "spec.successPolicy.rules",
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    let completions = spec.completions.unwrap_or(0);
    for (i, rule) in policy.rules.iter().enumerate() {
        let path = format!("spec.successPolicy.rules[{i}]");
        if rule.succeeded_count.is_none() && rule.succeeded_indexes.is_none() {
            causes.push(Cause::required_because(
                path.clone(),
                "at least one of succeededCount or succeededIndexes must be specified",
            ));
        }
        let mut total = None;
        if let Some(indexes) = &rule.succeeded_indexes {
            match machinery::indexes::parse(indexes, completions) {
                Ok(parsed) => total = Some(parsed.len() as i32),
                Err(error) => causes.push(Cause::invalid(
                    format!("{path}.succeededIndexes"),
                    &Value::from(indexes.clone()),
                    format!("error parsing succeededIndexes: {error}"),
                )),
            }
        }
        if let Some(count) = rule.succeeded_count {
            let count_path = format!("{path}.succeededCount");
            if count < 0 {
                causes.push(Cause::invalid(
                    count_path.clone(),
                    &Value::from(count),
                    NON_NEGATIVE,
                ));
            }
            if count > completions {
                causes.push(Cause::invalid(
                    count_path.clone(),
                    &Value::from(count),
                    format!(
                        "must be less than or equal to {completions} (the number of specified completions)"
                    ),
                ));
            }
            if let Some(total) = total.filter(|t| count > *t) {
                causes.push(Cause::invalid(
                    count_path,
                    &Value::from(count),
                    format!("must be less than or equal to {total} (the number of indexes in the specified succeededIndexes field)"),
                ));
            }
        }
    }
    causes
}

/// The pod template is immutable, except the scheduling directives of a job that is
/// suspended and never started (so a queueing controller can place it before it runs).
fn immutable_template(spec: &JobSpec, old_spec: &JobSpec, old: &Job) -> Option<Cause> {
    let never_started = old.status.as_ref().is_none_or(|s| s.start_time.is_none());
    let mut old_template = old_spec.template.clone();
    let template = &spec.template;
    if old_spec.suspend == Some(true) && never_started {
        let (new_pod, old_pod) = (
            template.spec.clone().unwrap_or_default(),
            old_template.spec.get_or_insert_with(Default::default),
        );
        let node_affinity = new_pod
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.clone());
        match (&new_pod.affinity, &mut old_pod.affinity) {
            (None, Some(affinity)) => {
                affinity.node_affinity = None;
                if affinity == &Default::default() {
                    old_pod.affinity = None;
                }
            }
            (Some(_), None) => {
                old_pod.affinity = Some(k8s_openapi::api::core::v1::Affinity {
                    node_affinity,
                    ..Default::default()
                })
            }
            (Some(_), Some(affinity)) => affinity.node_affinity = node_affinity,
            (None, None) => {}
        }
        old_pod.node_selector = new_pod.node_selector.clone();
        old_pod.tolerations = new_pod.tolerations.clone();
        old_pod.scheduling_gates = new_pod.scheduling_gates.clone();
        let new_meta = template.metadata.clone().unwrap_or_default();
        let old_meta = old_template.metadata.get_or_insert_with(Default::default);
        old_meta.annotations = new_meta.annotations;
        old_meta.labels = new_meta.labels;
    }
    let same = |a: &PodTemplateSpec, b: &PodTemplateSpec| json!(a) == json!(b);
    (!same(template, &old_template))
        .then(|| Cause::invalid("spec.template", &json!(template), "field is immutable"))
}

/// Upstream's status transition rules that hold for every writer.
fn validate_status_update(new: &Job, old: &Job) -> Vec<Cause> {
    let mut causes = Vec::new();
    let status = new.status.clone().unwrap_or_default();
    let old_status = old.status.clone().unwrap_or_default();
    for (field, value) in [
        ("active", status.active),
        ("succeeded", status.succeeded),
        ("failed", status.failed),
        ("ready", status.ready),
        ("terminating", status.terminating),
    ] {
        if let Some(value) = value.filter(|v| *v < 0) {
            causes.push(Cause::invalid(
                format!("status.{field}"),
                &Value::from(value),
                NON_NEGATIVE,
            ));
        }
    }
    let complete = has_condition(Some(&status), "Complete");
    if complete && has_condition(Some(&status), "Failed") {
        causes.push(Cause::invalid_printed(
            "status.conditions",
            "\"\"",
            "cannot set Complete=True and Failed=true conditions",
        ));
    }
    for type_ in ["Failed", "Complete", "FailureTarget"] {
        if has_condition(Some(&old_status), type_) && !has_condition(Some(&status), type_) {
            causes.push(Cause::invalid_printed(
                "status.conditions",
                "\"\"",
                format!("cannot disable the terminal {type_}=True condition"),
            ));
        }
    }
    for (field, new, old) in [
        ("failed", status.failed, old_status.failed),
        ("succeeded", status.succeeded, old_status.succeeded),
    ] {
        if new.unwrap_or(0) < old.unwrap_or(0) {
            causes.push(Cause::invalid(
                format!("status.{field}"),
                &Value::from(new.unwrap_or(0)),
                format!("cannot decrease the {field} counter"),
            ));
        }
    }
    if let (Some(new_time), Some(old_time)) = (&status.completion_time, &old_status.completion_time)
    {
        if new_time != old_time {
            causes.push(Cause::invalid(
                "status.completionTime",
                &json!(new_time),
                "completionTime cannot be mutated",
            ));
        }
    }
    if complete && status.completion_time.is_none() {
        causes.push(Cause::required_because(
            "status.completionTime",
            "completionTime is required for Complete jobs",
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::table::rendered;

    fn created(value: Value) -> Job {
        let mut job: Job = serde_json::from_value(value).unwrap();
        job.metadata.uid = Some("u-1".into());
        Jobs.prepare_create(&mut job);
        Jobs.default_fields(&mut job);
        job
    }

    fn pi() -> Job {
        created(json!({
            "metadata": {"name": "pi"},
            "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "pi", "image": "perl", "command": ["perl", "-e", "exit 0"]}],
            }}}
        }))
    }

    #[test]
    fn defaults_and_the_generated_selector() {
        let job = pi();
        assert!(Jobs.validate(&job).is_empty(), "{:?}", Jobs.validate(&job));
        let value = serde_json::to_value(&job).unwrap();
        let spec = &value["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["manualSelector"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        assert_eq!(
            spec["template"]["metadata"]["labels"],
            json!({
                "batch.kubernetes.io/controller-uid": "u-1",
                "batch.kubernetes.io/job-name": "pi",
                "controller-uid": "u-1",
                "job-name": "pi",
            })
        );
        assert_eq!(
            value["metadata"]["labels"],
            spec["template"]["metadata"]["labels"]
        );
    }

    #[test]
    fn restart_policy_and_indexed_rules() {
        let mut job = pi();
        job.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .restart_policy = Some("Always".into());
        let messages: Vec<String> = Jobs
            .validate(&job)
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            messages,
            [
                r#"spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#
            ]
        );
        let indexed = created(json!({
            "metadata": {"name": "ix"},
            "spec": {"completionMode": "Indexed", "parallelism": 2, "backoffLimitPerIndex": 1,
                     "template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "c", "image": "busybox"}]}}}
        }));
        let messages: Vec<String> = Jobs
            .validate(&indexed)
            .iter()
            .map(|c| c.message.clone())
            .collect();
        assert_eq!(
            messages,
            ["Required value: when completion mode is Indexed"]
        );
        assert_eq!(indexed.spec.as_ref().unwrap().backoff_limit, Some(i32::MAX));
    }

    #[test]
    fn managed_by_is_a_short_domain_prefixed_path() {
        let with = |manager: &str| {
            let mut job = pi();
            job.spec.as_mut().unwrap().managed_by = Some(manager.into());
            Jobs.validate(&job)
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect::<Vec<_>>()
        };
        assert!(with("kueue.x-k8s.io/multikueue").is_empty());
        assert_eq!(
            with("my controller"),
            [
                r#"spec.managedBy: Invalid value: "my controller": must be a domain-prefixed path (such as "acme.io/foo")"#
            ]
        );
        let long = format!("example.com/{}", "x".repeat(60));
        assert_eq!(
            with(&long),
            ["spec.managedBy: Too long: may not be more than 63 bytes"]
        );
    }

    #[test]
    fn template_is_immutable_unless_suspended_and_never_started() {
        let old = pi();
        let mut new = old.clone();
        let pod = new.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
        pod.node_selector = Some([("disk".to_string(), "ssd".to_string())].into());
        let causes = Jobs.validate_update(&new, &old);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.template");
        let mut suspended = old.clone();
        suspended.spec.as_mut().unwrap().suspend = Some(true);
        let mut new = new.clone();
        new.spec.as_mut().unwrap().suspend = Some(true);
        assert!(Jobs.validate_update(&new, &suspended).is_empty());
    }

    #[test]
    fn rows() {
        let mut job = pi();
        let now = jiff::Timestamp::now();
        let cells = rendered(&Jobs.cells(&job), now);
        assert_eq!(cells[1..4], [json!("Running"), json!("0/1"), json!("")]);
        let status = job.status.get_or_insert_with(Default::default);
        status.succeeded = Some(1);
        status.start_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
        status.completion_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            now.checked_add(jiff::SignedDuration::from_secs(5)).unwrap(),
        ));
        status.conditions = Some(vec![JobCondition {
            type_: "Complete".into(),
            status: "True".into(),
            ..Default::default()
        }]);
        let cells = rendered(&Jobs.cells(&job), now);
        assert_eq!(cells[1..4], [json!("Complete"), json!("1/1"), json!("5s")]);
        assert_eq!(cells[7], "batch.kubernetes.io/controller-uid=u-1");
    }
}
