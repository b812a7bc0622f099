//! The `kubectl get pods` table: upstream's columns and its READY, STATUS and RESTARTS
//! summaries, which learners read more than any other output.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::registry::table::{age, Cell, Column, Relative};

/// NAME READY STATUS RESTARTS AGE, and with `-o wide` IP NODE NOMINATED NODE READINESS GATES.
pub fn columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
        Column::new("Status", "string", "The aggregate status of the containers in this pod."),
        Column::new(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        Column::age(),
        Column::new("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.").wide(),
        Column::new("Node", "string", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename").wide(),
        Column::new("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.").wide(),
        Column::new("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates").wide(),
    ]
}

/// One row, every column included: the server always sends wide rows and kubectl hides the
/// priority-1 cells unless asked for them.
pub fn cells(pod: &Pod) -> Vec<Cell> {
    let summary = Summary::of(pod);
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let or_none =
        |value: Option<&str>| Cell::from(value.filter(|v| !v.is_empty()).unwrap_or("<none>"));
    let ip = status
        .and_then(|s| s.pod_ips.as_ref())
        .and_then(|ips| ips.first())
        .map(|ip| ip.ip.as_str());
    vec![
        Cell::from(pod.metadata.name.clone().unwrap_or_default()),
        Cell::from(format!("{}/{}", summary.ready, summary.total)),
        Cell::from(summary.reason.clone()),
        summary.restarts_cell(),
        age(&pod.metadata),
        or_none(ip),
        or_none(spec.and_then(|s| s.node_name.as_deref())),
        or_none(status.and_then(|s| s.nominated_node_name.as_deref())),
        Cell::from(readiness_gates(pod)),
    ]
}

/// What upstream's `printPod` derives from the container statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub ready: usize,
    pub total: usize,
    pub reason: String,
    pub restarts: i64,
    pub last_restart: Option<jiff::Timestamp>,
}

impl Summary {
    pub fn of(pod: &Pod) -> Summary {
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let init_specs = spec
            .and_then(|s| s.init_containers.as_deref())
            .unwrap_or_default();
        let is_sidecar = |name: &str| {
            init_specs
                .iter()
                .any(|c| c.name == name && c.restart_policy.as_deref() == Some("Always"))
        };
        let conditions = status
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");

        let mut summary = Summary {
            ready: 0,
            total: spec.map_or(0, |s| s.containers.len())
                + init_specs.iter().filter(|c| is_sidecar(&c.name)).count(),
            reason: status
                .and_then(|s| s.reason.clone())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| phase.to_string()),
            restarts: 0,
            last_restart: None,
        };
        if conditions
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
        {
            summary.reason = "SchedulingGated".into();
        }

        let mut sidecar_restarts = 0;
        let mut last_sidecar_restart = None;
        let mut initializing = false;
        let init_statuses = status
            .and_then(|s| s.init_container_statuses.as_deref())
            .unwrap_or_default();
        for (i, container) in init_statuses.iter().enumerate() {
            summary.restarts += i64::from(container.restart_count);
            summary.last_restart = summary.last_restart.max(last_termination(container));
            let sidecar = is_sidecar(&container.name);
            if sidecar {
                sidecar_restarts += i64::from(container.restart_count);
                last_sidecar_restart = last_sidecar_restart.max(last_termination(container));
            }
            let state = container.state.as_ref();
            let terminated = state.and_then(|s| s.terminated.as_ref());
            let waiting_reason = state
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                .unwrap_or("");
            if terminated.is_some_and(|t| t.exit_code == 0) {
                continue;
            }
            if sidecar && container.started == Some(true) {
                if container.ready {
                    summary.ready += 1;
                }
                continue;
            }
            summary.reason = match terminated {
                Some(t) => match t.reason.as_deref().filter(|r| !r.is_empty()) {
                    Some(reason) => format!("Init:{reason}"),
                    None if t.signal.unwrap_or(0) != 0 => {
                        format!("Init:Signal:{}", t.signal.unwrap_or(0))
                    }
                    None => format!("Init:ExitCode:{}", t.exit_code),
                },
                None if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" => {
                    format!("Init:{waiting_reason}")
                }
                None => format!("Init:{i}/{}", init_specs.len()),
            };
            initializing = true;
            break;
        }

        if !initializing || condition_true(conditions, "Initialized") {
            summary.restarts = sidecar_restarts;
            summary.last_restart = last_sidecar_restart;
            let mut has_running = false;
            let statuses = status
                .and_then(|s| s.container_statuses.as_deref())
                .unwrap_or_default();
            for container in statuses.iter().rev() {
                summary.restarts += i64::from(container.restart_count);
                summary.last_restart = summary.last_restart.max(last_termination(container));
                let state = container.state.as_ref();
                let waiting = state
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    .filter(|r| !r.is_empty());
                let terminated = state.and_then(|s| s.terminated.as_ref());
                if let Some(reason) = waiting {
                    summary.reason = reason.to_string();
                } else if let Some(t) = terminated {
                    summary.reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                        Some(reason) => reason.to_string(),
                        None if t.signal.unwrap_or(0) != 0 => {
                            format!("Signal:{}", t.signal.unwrap_or(0))
                        }
                        None => format!("ExitCode:{}", t.exit_code),
                    };
                } else if container.ready && state.is_some_and(|s| s.running.is_some()) {
                    has_running = true;
                    summary.ready += 1;
                }
            }
            if summary.reason == "Completed" && has_running {
                summary.reason = if condition_true(conditions, "Ready") {
                    "Running"
                } else {
                    "NotReady"
                }
                .into();
            }
        }

        if pod.metadata.deletion_timestamp.is_some() {
            if status.and_then(|s| s.reason.as_deref()) == Some("NodeLost") {
                summary.reason = "Unknown".into();
            } else if phase != "Succeeded" && phase != "Failed" {
                summary.reason = "Terminating".into();
            }
        }
        summary
    }

    /// `3` or, once a container has restarted, `3 (5m ago)`.
    pub fn restarts_cell(&self) -> Cell {
        match self.last_restart {
            Some(at) if self.restarts != 0 => {
                Cell::Relative(Relative::CountSince(self.restarts, at))
            }
            _ => Cell::from(self.restarts.to_string()),
        }
    }
}

fn last_termination(container: &ContainerStatus) -> Option<jiff::Timestamp> {
    let terminated = container.last_state.as_ref()?.terminated.as_ref()?;
    terminated.finished_at.as_ref().map(|Time(at)| *at)
}

fn condition_true(conditions: &[PodCondition], kind: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == kind && c.status == "True")
}

/// `<none>`, or how many of the readiness gates' conditions are true: `1/2`.
fn readiness_gates(pod: &Pod) -> String {
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or_default();
    if gates.is_empty() {
        return "<none>".into();
    }
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let passing = gates
        .iter()
        .filter(|gate| {
            conditions
                .iter()
                .find(|c| c.type_ == gate.condition_type)
                .is_some_and(|c| c.status == "True")
        })
        .count();
    format!("{passing}/{}", gates.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
        ContainerStateWaiting, PodSpec, PodStatus,
    };
    use serde_json::{json, Value};

    use crate::registry::table::rendered;

    fn pod(value: Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn running(name: &str, ready: bool, restarts: i32) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            ready,
            restart_count: restarts,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn waiting(name: &str, reason: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn terminated(name: &str, exit_code: i32, reason: Option<&str>) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code,
                    reason: reason.map(String::from),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn with(containers: &[&str], inits: &[(&str, bool)], status: PodStatus) -> Pod {
        let container = |name: &str| Container {
            name: name.into(),
            ..Default::default()
        };
        Pod {
            spec: Some(PodSpec {
                containers: containers.iter().map(|n| container(n)).collect(),
                init_containers: Some(
                    inits
                        .iter()
                        .map(|(n, sidecar)| Container {
                            restart_policy: sidecar.then(|| "Always".into()),
                            ..container(n)
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: Some(status),
            ..Default::default()
        }
    }

    fn phase(phase: &str) -> PodStatus {
        PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }
    }

    #[test]
    fn pending_and_running_pods() {
        let summary = Summary::of(&with(&["web"], &[], phase("Pending")));
        assert_eq!(
            (summary.ready, summary.total, summary.reason.as_str()),
            (0, 1, "Pending")
        );

        let status = PodStatus {
            container_statuses: Some(vec![waiting("web", "ContainerCreating")]),
            ..phase("Pending")
        };
        assert_eq!(
            Summary::of(&with(&["web"], &[], status)).reason,
            "ContainerCreating"
        );

        let status = PodStatus {
            container_statuses: Some(vec![running("a", true, 0), running("b", false, 0)]),
            ..phase("Running")
        };
        let summary = Summary::of(&with(&["a", "b"], &[], status));
        assert_eq!(
            (summary.ready, summary.total, summary.reason.as_str()),
            (1, 2, "Running")
        );
    }

    #[test]
    fn terminated_containers_name_the_outcome() {
        let status = PodStatus {
            container_statuses: Some(vec![terminated("job", 0, Some("Completed"))]),
            ..phase("Succeeded")
        };
        assert_eq!(
            Summary::of(&with(&["job"], &[], status)).reason,
            "Completed"
        );
        let status = PodStatus {
            container_statuses: Some(vec![terminated("job", 1, Some("Error"))]),
            ..phase("Failed")
        };
        assert_eq!(Summary::of(&with(&["job"], &[], status)).reason, "Error");
        let status = PodStatus {
            container_statuses: Some(vec![terminated("job", 137, None)]),
            ..phase("Failed")
        };
        assert_eq!(
            Summary::of(&with(&["job"], &[], status)).reason,
            "ExitCode:137"
        );
        let status = PodStatus {
            container_statuses: Some(vec![waiting("web", "CrashLoopBackOff")]),
            ..phase("Running")
        };
        assert_eq!(
            Summary::of(&with(&["web"], &[], status)).reason,
            "CrashLoopBackOff"
        );
    }

    #[test]
    fn completed_sibling_of_a_running_container_reads_running_or_not_ready() {
        let statuses = vec![
            terminated("done", 0, Some("Completed")),
            running("web", true, 0),
        ];
        let ready = PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        };
        let status = PodStatus {
            container_statuses: Some(statuses.clone()),
            conditions: Some(vec![ready]),
            ..phase("Running")
        };
        assert_eq!(
            Summary::of(&with(&["web", "done"], &[], status)).reason,
            "Running"
        );
        let status = PodStatus {
            container_statuses: Some(statuses),
            ..phase("Running")
        };
        assert_eq!(
            Summary::of(&with(&["web", "done"], &[], status)).reason,
            "NotReady"
        );
    }

    #[test]
    fn init_containers_report_progress() {
        let status = PodStatus {
            init_container_statuses: Some(vec![waiting("setup", "PodInitializing")]),
            ..phase("Pending")
        };
        assert_eq!(
            Summary::of(&with(&["web"], &[("setup", false)], status)).reason,
            "Init:0/1"
        );
        let statuses = vec![
            terminated("a", 0, Some("Completed")),
            running("b", false, 0),
        ];
        let status = PodStatus {
            init_container_statuses: Some(statuses),
            ..phase("Pending")
        };
        assert_eq!(
            Summary::of(&with(&["web"], &[("a", false), ("b", false)], status)).reason,
            "Init:1/2"
        );
        let status = PodStatus {
            init_container_statuses: Some(vec![terminated("a", 1, Some("Error"))]),
            ..phase("Pending")
        };
        assert_eq!(
            Summary::of(&with(&["web"], &[("a", false)], status)).reason,
            "Init:Error"
        );
        let status = PodStatus {
            init_container_statuses: Some(vec![waiting("a", "CrashLoopBackOff")]),
            ..phase("Pending")
        };
        assert_eq!(
            Summary::of(&with(&["web"], &[("a", false)], status)).reason,
            "Init:CrashLoopBackOff"
        );
    }

    #[test]
    fn started_sidecars_count_towards_ready() {
        let mut sidecar = running("proxy", true, 2);
        sidecar.started = Some(true);
        let status = PodStatus {
            init_container_statuses: Some(vec![sidecar]),
            container_statuses: Some(vec![running("web", true, 1)]),
            ..phase("Running")
        };
        let summary = Summary::of(&with(&["web"], &[("proxy", true)], status));
        assert_eq!(
            (
                summary.ready,
                summary.total,
                summary.reason.as_str(),
                summary.restarts
            ),
            (2, 2, "Running", 3)
        );
    }

    #[test]
    fn deletion_shows_terminating_unless_finished() {
        let mut pod = with(&["web"], &[], phase("Running"));
        pod.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        assert_eq!(Summary::of(&pod).reason, "Terminating");
        pod.status = Some(phase("Succeeded"));
        assert_eq!(Summary::of(&pod).reason, "Succeeded");
    }

    #[test]
    fn restarts_mention_the_last_one() {
        let crashed = pod(json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "web"}]},
            "status": {"phase": "Running", "containerStatuses": [{
                "name": "web", "ready": false, "restartCount": 3, "image": "", "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-01-01T00:00:00Z"}}
            }]}
        }));
        let summary = Summary::of(&crashed);
        let now: jiff::Timestamp = "2025-01-01T00:05:00Z".parse().unwrap();
        let pending = Summary::of(&with(&["web"], &[], phase("Pending")));
        assert_eq!(
            rendered(&[summary.restarts_cell(), pending.restarts_cell()], now),
            ["3 (5m ago)", "0"]
        );
        let cells = rendered(&cells(&crashed), now);
        assert_eq!(cells[3], "3 (5m ago)");
        assert_eq!(cells[1], "0/1");
        assert_eq!(cells[2], "CrashLoopBackOff");
        assert_eq!(cells[5], "<none>");
        assert_eq!(cells[8], "<none>");
    }
}
