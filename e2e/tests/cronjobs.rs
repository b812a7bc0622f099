//! CronJobs end to end: the real apiserver, kube-scheduler, simulated nodes whose containers
//! finish and kube-controller-manager's CronJob and Job controllers, driven by kubectl, on
//! both store backends.
//!
//! The controller reads the real clock, so a CronJob made now runs at the next minute. One
//! CronJob waits for that (the learner's lab); the others are given a history instead, as a
//! restored or long-unwatched CronJob has one: `status.lastScheduleTime` written five
//! minutes back (and, for the concurrency policies, a running Job in `status.active`), which
//! makes the current minute's activation due at once. All cases share one cluster and run
//! while the lab waits for its minute, so the suite waits for at most one boundary.

use e2e::fixtures::{default_service_account, eventually, items, json};
use e2e::{with_each_backend, Backend, Cluster};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

with_each_backend!(cron_jobs_run_on_schedule);

fn cron_job(cluster: &Cluster, name: &str) -> Value {
    json(&cluster.ok(&["get", "cronjob", name, "-o", "json"]))
}

fn job(cluster: &Cluster, name: &str) -> Value {
    json(&cluster.ok(&["get", "job", name, "-o", "json"]))
}

/// The names of the Jobs the CronJob `owner` controls.
fn jobs_of(cluster: &Cluster, owner: &str) -> Vec<String> {
    let mut names: Vec<String> = items(cluster, &["get", "jobs"])
        .iter()
        .filter(|j| {
            j["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r["name"] == owner && r["kind"] == "CronJob")
                })
        })
        .map(|j| {
            j["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    names.sort();
    names
}

/// `(type, reason, message)` of the events about the CronJob `name`.
fn events(cluster: &Cluster, name: &str) -> Vec<(String, String, String)> {
    let selector = format!("involvedObject.kind=CronJob,involvedObject.name={name}");
    items(cluster, &["get", "events", "--field-selector", &selector])
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (text("type"), text("reason"), text("message"))
        })
        .collect()
}

async fn event(cluster: &Cluster, name: &str, reason: &str) -> (String, String) {
    eventually(30, &format!("a {reason} event of cronjob {name}"), || {
        events(cluster, name)
            .into_iter()
            .find(|(_, r, _)| r == reason)
            .map(|(kind, _, message)| (kind, message))
    })
    .await
}

/// A CronJob every minute whose Job runs `command` (YAML flow list), with `extra` spec lines.
fn manifest(name: &str, command: &str, extra: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {name}\nspec:\n  schedule: \"* * * * *\"\n{extra}  \
         jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          \
         containers:\n          - name: c\n            image: busybox\n            command: {command}\n"
    )
}

/// Writes the history that makes the current minute due: last scheduled five minutes ago,
/// with `running` (a Job name) active if given.
fn backdate(cluster: &Cluster, name: &str, running: Option<&str>) {
    let past = Timestamp::now() - SignedDuration::from_mins(5);
    let mut status = json!({"lastScheduleTime": format!("{:.0}", past)});
    if let Some(running) = running {
        let uid = job(cluster, running)["metadata"]["uid"].clone();
        status["active"] = json!([{"apiVersion": "batch/v1", "kind": "Job", "namespace": "default",
                                   "name": running, "uid": uid}]);
    }
    cluster.ok(&[
        "patch",
        "cronjob",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &json!({"status": status}).to_string(),
    ]);
}

/// The minute-named Job the controller made for the current minute, once there is one.
async fn scheduled_job(cluster: &Cluster, owner: &str) -> String {
    let prefix = format!("{owner}-");
    eventually(30, &format!("a scheduled job of {owner}"), || {
        jobs_of(cluster, owner).into_iter().find(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|minutes| minutes.parse::<i64>().is_ok())
        })
    })
    .await
}

async fn cron_jobs_run_on_schedule(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let _plane = cluster.start_control_plane(1, &[]);
    default_service_account(&cluster, "default").await;

    // The lab: created now, it first runs at the next minute.
    cluster.ok(&[
        "create",
        "cronjob",
        "hello",
        "--image=busybox",
        "--schedule=*/1 * * * *",
        "--",
        "sh",
        "-c",
        "exit 0",
    ]);
    let created = cron_job(&cluster, "hello");
    assert_eq!(created["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(created["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(created["spec"]["failedJobsHistoryLimit"], 1);
    assert_eq!(created["spec"]["suspend"], false);
    let table = cluster.ok(&["get", "cj"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row[..8],
        ["hello", "*/1", "*", "*", "*", "*", "<none>", "False"],
        "{table}"
    );
    assert!(cluster.ok(&["get", "all"]).contains("cronjob.batch/hello"));
    let resources = cluster.ok(&["api-resources", "-o", "wide", "--api-group=batch"]);
    let line = resources
        .lines()
        .find(|l| l.starts_with("cronjobs "))
        .unwrap();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        [
            "cronjobs",
            "cj",
            "batch/v1",
            "true",
            "CronJob",
            "create,delete,deletecollection,get,list,patch,update,watch",
            "all"
        ]
    );
    let refused = cluster.fails(&[
        "create",
        "cronjob",
        "bad",
        "--image=busybox",
        "--schedule=61 * * * *",
    ]);
    assert!(
        refused.contains(r#"CronJob.batch "bad" is invalid: spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61"#),
        "{refused}"
    );

    // A Job made by hand from it is the CronJob's, marked manual, and runs like any.
    cluster.ok(&["create", "job", "by-hand", "--from=cronjob/hello"]);
    let manual = job(&cluster, "by-hand");
    assert_eq!(
        manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    assert_eq!(manual["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    cluster.ok(&[
        "wait",
        "--for=condition=complete",
        "job/by-hand",
        "--timeout=60s",
    ]);

    // History limits: three finished Jobs, one kept.
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        &manifest(
            "history",
            "[\"true\"]",
            "  suspend: true\n  successfulJobsHistoryLimit: 1\n",
        ),
    );
    for name in ["history-a", "history-b", "history-c"] {
        cluster.ok(&["create", "job", name, "--from=cronjob/history"]);
        cluster.ok(&[
            "wait",
            "--for=condition=complete",
            &format!("job/{name}"),
            "--timeout=60s",
        ]);
    }

    // Concurrency policies, each with a Job still running from the last activation.
    let sleeper = "[\"sleep\", \"600\"]";
    for (name, policy) in [
        ("allow", "Allow"),
        ("forbid", "Forbid"),
        ("replace", "Replace"),
    ] {
        cluster.ok_stdin(
            &["apply", "-f", "-"],
            &manifest(name, sleeper, &format!("  concurrencyPolicy: {policy}\n")),
        );
        let running = format!("{name}-running");
        cluster.ok(&["create", "job", &running, &format!("--from=cronjob/{name}")]);
        backdate(&cluster, name, Some(&running));
    }
    // Suspended: even an overdue activation waits.
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        &manifest("paused", "[\"true\"]", "  suspend: true\n"),
    );
    backdate(&cluster, "paused", None);

    eventually(60, "history pruned to one Job", || {
        (jobs_of(&cluster, "history").len() == 1).then_some(())
    })
    .await;
    // The oldest go first (by start time, then name).
    assert_eq!(jobs_of(&cluster, "history"), ["history-c"]);
    let (_, message) = event(&cluster, "history", "SuccessfulDelete").await;
    assert!(message.starts_with("Deleted job history-"), "{message}");

    // Allow: the due Job runs beside the running one.
    let allowed = scheduled_job(&cluster, "allow").await;
    let (kind, message) = event(&cluster, "allow", "SuccessfulCreate").await;
    assert_eq!(
        (kind.as_str(), message),
        ("Normal", format!("Created job {allowed}"))
    );
    let allow = eventually(30, "the running and the new job active", || {
        let cj = cron_job(&cluster, "allow");
        let names: Vec<Value> = cj["status"]["active"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let both = names.iter().any(|r| r["name"] == "allow-running")
            && names.iter().any(|r| r["name"] == allowed.as_str());
        both.then_some(cj)
    })
    .await;
    // The Job of the last activation is named after its minute and carries its time.
    let last: Timestamp = allow["status"]["lastScheduleTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let latest = format!("allow-{}", last.as_second() / 60);
    let made = job(&cluster, &latest);
    let scheduled = last;
    assert_eq!(
        made["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        format!("{:.0}", scheduled).as_str()
    );
    let owner = &made["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "CronJob");
    assert_eq!(owner["controller"], true);
    assert_eq!(owner["blockOwnerDeletion"], true);

    // Forbid: skipped while the last one runs.
    let (_, message) = event(&cluster, "forbid", "JobAlreadyActive").await;
    assert_eq!(
        message,
        "Not starting job because prior execution is running and concurrency policy is Forbid"
    );
    assert_eq!(jobs_of(&cluster, "forbid"), ["forbid-running"]);

    // Replace: the running one is deleted for the new one.
    let replacement = scheduled_job(&cluster, "replace").await;
    let (_, message) = event(&cluster, "replace", "SuccessfulDelete").await;
    assert_eq!(message, "Deleted job replace-running");
    assert_ne!(replacement, "replace-running");
    eventually(30, "the replaced job gone and one new one active", || {
        let cj = cron_job(&cluster, "replace");
        let active = cj["status"]["active"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let jobs = jobs_of(&cluster, "replace");
        let replaced = active.len() == 1
            && active[0]["name"] != "replace-running"
            && jobs.len() == 1
            && jobs[0] == active[0]["name"].as_str().unwrap_or_default();
        replaced.then_some(())
    })
    .await;

    // Suspended: nothing ran; resumed, the overdue activation runs at once.
    assert!(jobs_of(&cluster, "paused").is_empty());
    cluster.ok(&[
        "patch",
        "cronjob",
        "paused",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    let resumed = scheduled_job(&cluster, "paused").await;
    cluster.ok(&[
        "wait",
        "--for=condition=complete",
        &format!("job/{resumed}"),
        "--timeout=60s",
    ]);

    // The lab's own run, at the first minute after it was made.
    let first = eventually(75, "hello's first scheduled job", || {
        jobs_of(&cluster, "hello")
            .into_iter()
            .find(|n| n != "by-hand")
    })
    .await;
    cluster.ok(&[
        "wait",
        "--for=condition=complete",
        &format!("job/{first}"),
        "--timeout=60s",
    ]);
    let done = eventually(30, "lastSuccessfulTime", || {
        let cj = cron_job(&cluster, "hello");
        cj["status"]["lastSuccessfulTime"].is_string().then_some(cj)
    })
    .await;
    assert!(done["status"]["lastScheduleTime"].is_string());
    let (_, message) = event(&cluster, "hello", "SawCompletedJob").await;
    assert_eq!(
        message,
        format!("Saw completed job: {first}, condition: Complete")
    );
    let row = cluster.ok(&["get", "cronjob", "hello", "--no-headers"]);
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_ne!(cells[cells.len() - 2], "<none>", "a LAST SCHEDULE: {row}");
}
