//! Jobs end to end: the real apiserver, kube-scheduler, simulated nodes whose containers
//! finish (`sh -c 'exit N'`, `sleep N`) and kube-controller-manager's job and
//! TTL-after-finished controllers, driven by the real kubectl the way a learner does, on
//! both store backends.

use e2e::fixtures::{condition, default_service_account, eventually, items, json};
use e2e::{on_both_backends, Backend, Cluster};
use serde_json::Value;

on_both_backends!(
    kubectl_create_job_completes,
    a_failing_job_hits_its_backoff_limit,
    an_indexed_job_fails_by_its_pod_failure_policy,
    a_suspended_job_runs_once_resumed,
    a_finished_job_is_deleted_after_its_ttl,
);

fn job(cluster: &Cluster, name: &str) -> Value {
    json(&cluster.ok(&["get", "job", name, "-o", "json"]))
}

fn events(cluster: &Cluster, name: &str) -> Vec<(String, String, String)> {
    let selector = format!("involvedObject.kind=Job,involvedObject.name={name}");
    items(cluster, &["get", "events", "--field-selector", &selector])
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (text("type"), text("reason"), text("message"))
        })
        .collect()
}

async fn wait_for_event(cluster: &Cluster, name: &str, reason: &str) -> (String, String) {
    eventually(30, &format!("a {reason} event of job {name}"), || {
        events(cluster, name)
            .into_iter()
            .find(|(_, r, _)| r == reason)
            .map(|(kind, _, message)| (kind, message))
    })
    .await
}

/// The job's pods, by completion index order of creation.
fn pods(cluster: &Cluster, name: &str) -> Vec<Value> {
    items(
        cluster,
        &[
            "get",
            "pods",
            "-l",
            &format!("batch.kubernetes.io/job-name={name}"),
        ],
    )
}

async fn kubectl_create_job_completes(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(1, &[]);
    default_service_account(cluster, "default").await;
    cluster.ok(&[
        "create",
        "job",
        "pi",
        "--image=perl",
        "--",
        "perl",
        "-Mbignum=bpi",
        "-wle",
        "print bpi(2000)",
    ]);
    cluster.ok(&[
        "wait",
        "--for=condition=complete",
        "job/pi",
        "--timeout=60s",
    ]);
    let table = cluster.ok(&["get", "jobs"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..3], ["pi", "Complete", "1/1"], "{table}");
    assert!(cluster.ok(&["get", "all"]).contains("job.batch/pi"));

    let done = job(cluster, "pi");
    let status = &done["status"];
    assert_eq!(status["succeeded"], 1);
    assert_eq!(status["uncountedTerminatedPods"], serde_json::json!({}));
    assert!(status["completionTime"].is_string() && status["startTime"].is_string());
    for type_ in ["SuccessCriteriaMet", "Complete"] {
        let c = condition(&done, type_).unwrap();
        assert_eq!(c["reason"], "CompletionsReached");
        assert_eq!(c["message"], "Reached expected number of succeeded pods");
    }
    let uid = done["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        done["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid
    );
    let pods = pods(cluster, "pi");
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    assert_eq!(pod["status"]["phase"], "Succeeded");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
    assert!(pod["metadata"]["finalizers"].is_null(), "{pod}");
    let pod_name = pod["metadata"]["name"].as_str().unwrap();
    let (kind, message) = wait_for_event(cluster, "pi", "SuccessfulCreate").await;
    assert_eq!(
        (kind.as_str(), message),
        ("Normal", format!("Created pod: {pod_name}"))
    );
    let (_, message) = wait_for_event(cluster, "pi", "Completed").await;
    assert_eq!(message, "Job completed");

    // Deleted without a propagation policy (kubectl always sends one), a batch/v1 Job
    // orphans its pods, with upstream's warning.
    let deleted = cluster.kubectl(&[
        "delete",
        "--raw",
        "/apis/batch/v1/namespaces/default/jobs/pi",
    ]);
    assert!(deleted.status.success());
    let warning = String::from_utf8_lossy(&deleted.stderr).into_owned();
    assert!(
        warning.contains("child pods are preserved by default when jobs are deleted"),
        "{warning}"
    );
    let pod_name = pod_name.to_string();
    eventually(30, "the job's pod orphaned", || {
        let pod = json(&cluster.ok(&["get", "pod", &pod_name, "-o", "json"]));
        let gone = !cluster.kubectl(&["get", "job", "pi"]).status.success();
        (gone && pod["metadata"]["ownerReferences"].is_null()).then_some(())
    })
    .await;
}

async fn a_failing_job_hits_its_backoff_limit(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(1, &[]);
    default_service_account(cluster, "default").await;
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: fails\nspec:\n  backoffLimit: 0\n  \
         template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: c\n        \
         image: busybox\n        command: [\"sh\", \"-c\", \"exit 1\"]\n",
    );
    cluster.ok(&[
        "wait",
        "--for=condition=failed",
        "job/fails",
        "--timeout=60s",
    ]);
    let failed = job(cluster, "fails");
    assert_eq!(failed["status"]["failed"], 1);
    for type_ in ["FailureTarget", "Failed"] {
        let c = condition(&failed, type_).unwrap();
        assert_eq!(c["reason"], "BackoffLimitExceeded");
        assert_eq!(c["message"], "Job has reached the specified backoff limit");
    }
    assert!(condition(&failed, "Complete").is_none());
    let row = cluster.ok(&["get", "job", "fails", "--no-headers"]);
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..3], ["fails", "Failed", "0/1"]);
    let (kind, message) = wait_for_event(cluster, "fails", "BackoffLimitExceeded").await;
    assert_eq!(kind, "Warning");
    assert_eq!(message, "Job has reached the specified backoff limit");
    let pods = pods(cluster, "fails");
    assert_eq!(pods.len(), 1, "no replacement after the limit");
    assert_eq!(
        pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        1
    );
}

async fn an_indexed_job_fails_by_its_pod_failure_policy(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(1, &[]);
    default_service_account(cluster, "default").await;
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: ix\nspec:\n  completions: 2\n  \
         parallelism: 2\n  completionMode: Indexed\n  podFailurePolicy:\n    rules:\n    - action: FailJob\n      \
         onExitCodes:\n        operator: In\n        values: [42]\n  template:\n    spec:\n      \
         restartPolicy: Never\n      containers:\n      - name: main\n        image: busybox\n        \
         command: [\"sleep\", \"600\"]\n",
    );
    let running = eventually(30, "two running indexed pods", || {
        let pods = pods(cluster, "ix");
        (pods.len() == 2 && pods.iter().all(|p| p["status"]["phase"] == "Running")).then_some(pods)
    })
    .await;
    let by_index = |index: &str| {
        running
            .iter()
            .find(|p| {
                p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == index
            })
            .unwrap_or_else(|| panic!("no pod of index {index}"))
            .clone()
    };
    let (first, second) = (by_index("0"), by_index("1"));
    assert_eq!(
        first["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"],
        "0"
    );
    assert_eq!(second["spec"]["hostname"], "ix-1");
    assert_eq!(
        second["spec"]["containers"][0]["env"][0]["name"],
        "JOB_COMPLETION_INDEX"
    );
    assert_eq!(
        second["metadata"]["finalizers"],
        serde_json::json!(["batch.kubernetes.io/job-tracking"])
    );
    let name = |p: &Value| p["metadata"]["name"].as_str().unwrap().to_string();
    cluster.ok(&[
        "annotate",
        "pod",
        &name(&first),
        "node-simulator/exit-code=0",
    ]);
    eventually(30, "index 0 completed", || {
        (job(cluster, "ix")["status"]["completedIndexes"] == "0").then_some(())
    })
    .await;
    cluster.ok(&[
        "annotate",
        "pod",
        &name(&second),
        "node-simulator/exit-code=42",
    ]);
    cluster.ok(&["wait", "--for=condition=failed", "job/ix", "--timeout=60s"]);
    let failed = job(cluster, "ix");
    let c = condition(&failed, "Failed").unwrap();
    assert_eq!(c["reason"], "PodFailurePolicy");
    assert_eq!(
        c["message"],
        format!(
            "Container main for pod default/{} failed with exit code 42 matching FailJob rule at index 0",
            name(&second)
        )
    );
    assert_eq!(failed["status"]["succeeded"], 1);
    assert_eq!(failed["status"]["failed"], 1);
}

async fn a_suspended_job_runs_once_resumed(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(1, &[]);
    default_service_account(cluster, "default").await;
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: later\nspec:\n  suspend: true\n  \
         completions: 2\n  parallelism: 2\n  template:\n    spec:\n      restartPolicy: Never\n      \
         containers:\n      - name: c\n        image: busybox\n        command: [\"sleep\", \"1\"]\n",
    );
    let suspended = eventually(30, "the Suspended condition", || {
        let job = job(cluster, "later");
        condition(&job, "Suspended").map(|c| (job, c))
    })
    .await;
    assert_eq!(suspended.1["status"], "True");
    assert_eq!(suspended.1["reason"], "JobSuspended");
    assert_eq!(suspended.1["message"], "Job suspended");
    assert!(suspended.0["status"]["startTime"].is_null());
    assert!(pods(cluster, "later").is_empty());
    let row = cluster.ok(&["get", "job", "later", "--no-headers"]);
    assert_eq!(row.split_whitespace().nth(1), Some("Suspended"));

    cluster.ok(&[
        "patch",
        "job",
        "later",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    cluster.ok(&[
        "wait",
        "--for=condition=complete",
        "job/later",
        "--timeout=60s",
    ]);
    let done = job(cluster, "later");
    let resumed = condition(&done, "Suspended").unwrap();
    assert_eq!(resumed["status"], "False");
    assert_eq!(resumed["reason"], "JobResumed");
    assert_eq!(done["status"]["succeeded"], 2);
    wait_for_event(cluster, "later", "Suspended").await;
    let (_, message) = wait_for_event(cluster, "later", "Resumed").await;
    assert_eq!(message, "Job resumed");
}

async fn a_finished_job_is_deleted_after_its_ttl(cluster: &mut Cluster) {
    let _plane = cluster.start_control_plane(1, &[]);
    default_service_account(cluster, "default").await;
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: brief\nspec:\n  ttlSecondsAfterFinished: 1\n  \
         template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: c\n        \
         image: busybox\n        command: [\"true\"]\n",
    );
    eventually(60, "the finished job and its pod deleted", || {
        let gone = !cluster.kubectl(&["get", "job", "brief"]).status.success();
        (gone && pods(cluster, "brief").is_empty()).then_some(())
    })
    .await;
    let (_, message) = wait_for_event(cluster, "brief", "Completed").await;
    assert_eq!(message, "Job completed", "it was deleted once finished");
}

/// Under `Node,RBAC` the job and TTL controllers write as their own service accounts, which
/// the bootstrap roles `system:controller:job-controller` and
/// `system:controller:ttl-after-finished-controller` alone must allow.
async fn jobs_run_under_node_rbac(backend: Backend) {
    let cluster = Cluster::start_with(backend, &["--authorization-mode", "Node,RBAC"]).await;
    let plane = cluster.start_control_plane(1, &[]);
    default_service_account(&cluster, "default").await;
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: rbac\nspec:\n  completions: 2\n  \
         ttlSecondsAfterFinished: 2\n  template:\n    spec:\n      restartPolicy: Never\n      \
         containers:\n      - name: c\n        image: busybox\n        command: [\"true\"]\n",
    );
    eventually(60, "the job completed and deleted after its TTL", || {
        let gone = !cluster.kubectl(&["get", "job", "rbac"]).status.success();
        (gone && pods(&cluster, "rbac").is_empty()).then_some(())
    })
    .await;
    let log = plane.manager.log();
    assert!(
        !log.contains("forbidden"),
        "a controller was refused:\n{log}"
    );
    let (_, message) = wait_for_event(&cluster, "rbac", "Completed").await;
    assert_eq!(message, "Job completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_jobs_run_under_node_rbac() {
    jobs_run_under_node_rbac(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_jobs_run_under_node_rbac() {
    jobs_run_under_node_rbac(Backend::Etcd).await;
}
