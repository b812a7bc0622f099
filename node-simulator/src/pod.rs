//! A pod on a simulated node and the status a kubelet would report for it at each stage:
//! `ContainerCreating`, running (ready once readiness probes' initial delays pass), exited
//! (restarted, or finished as Succeeded/Failed by restart policy) and terminated on deletion.
//! Only what the status needs is kept, so tens of thousands of pods stay cheap.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::Ipv4Addr;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

/// Annotation on a Pod telling its containers to exit with this code (`kubectl annotate pod
/// X node-simulator/exit-code=0`): pods then finish (`Never`, or `OnFailure` with 0) or
/// restart their containers (`Always`, or `OnFailure` with a failure code).
pub const EXIT_CODE: &str = "node-simulator/exit-code";

struct Container {
    name: String,
    image: String,
    /// The readiness probe's initial delay; `None` without a probe.
    readiness_delay: Option<Duration>,
}

struct InitContainer {
    name: String,
    image: String,
    /// A sidecar (`restartPolicy: Always`) keeps running next to the app containers.
    sidecar: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Creating,
    Running,
    /// Containers exited with this code and the pod is done.
    Finished(i32),
    /// Deleted: containers stop and the pod object is removed.
    Terminating,
}

/// How the last container run ended, shown as `lastState` after a restart.
#[derive(Debug, Clone, Copy)]
struct Termination {
    exit_code: i32,
    started: Timestamp,
    finished: Timestamp,
}

/// A pod on a simulated node, as far as its status needs.
pub struct SimPod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: String,
    host_ip: Ipv4Addr,
    pub ip: Option<Ipv4Addr>,
    pub host_network: bool,
    containers: Vec<Container>,
    init_containers: Vec<InitContainer>,
    restart_policy: String,
    created: Timestamp,
    pub started: Option<Timestamp>,
    restarts: i32,
    last_termination: Option<Termination>,
    pub stage: Stage,
    /// The exit-code annotation value already acted upon.
    pub handled_exit: Option<String>,
}

fn fake_digest(parts: &[&str]) -> String {
    (0..4u64)
        .map(|round| {
            let mut hasher = DefaultHasher::new();
            (round, parts).hash(&mut hasher);
            format!("{:016x}", hasher.finish())
        })
        .collect()
}

fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn condition(type_: &str, status: bool, since: Timestamp, reason: Option<(&str, String)>) -> Value {
    let mut condition = json!({
        "type": type_,
        "status": if status { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": time(since),
    });
    if let Some((reason, message)) = reason {
        condition["reason"] = json!(reason);
        if !message.is_empty() {
            condition["message"] = json!(message);
        }
    }
    condition
}

impl SimPod {
    /// Reads what the simulation needs from a pod bound to `node` (whose IP is `host_ip`).
    pub fn new(pod: &Pod, node: &str, host_ip: Ipv4Addr) -> SimPod {
        let spec = pod.spec.clone().unwrap_or_default();
        let containers = spec
            .containers
            .iter()
            .map(|c| Container {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                readiness_delay: c
                    .readiness_probe
                    .as_ref()
                    .map(|p| Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64)),
            })
            .collect();
        let init_containers = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| InitContainer {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                sidecar: c.restart_policy.as_deref() == Some("Always"),
            })
            .collect();
        let status = pod.status.as_ref();
        SimPod {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            node: node.to_string(),
            host_ip,
            ip: None,
            host_network: spec.host_network.unwrap_or(false),
            containers,
            init_containers,
            restart_policy: spec.restart_policy.unwrap_or_else(|| "Always".into()),
            created: status.and_then(|s| s.start_time.as_ref()).map_or_else(Timestamp::now, |t| t.0),
            started: None,
            restarts: 0,
            last_termination: None,
            stage: Stage::Creating,
            handled_exit: None,
        }
    }

    /// The distinct readiness delays after the containers start, when status must be
    /// posted again.
    pub fn readiness_delays(&self) -> Vec<Duration> {
        let mut delays: Vec<Duration> = self.containers.iter().filter_map(|c| c.readiness_delay).filter(|d| !d.is_zero()).collect();
        delays.sort();
        delays.dedup();
        delays
    }

    fn container_ready(&self, container: &Container, now: Timestamp) -> bool {
        let Some(started) = self.started else { return false };
        let delay = container.readiness_delay.unwrap_or_default();
        now.duration_since(started).as_secs_f64() >= delay.as_secs_f64()
    }

    /// Applies an exit-code annotation to a running pod; returns whether anything changed.
    pub fn exit(&mut self, code: i32, now: Timestamp) -> bool {
        if self.stage != Stage::Running {
            return false;
        }
        let finishes = match self.restart_policy.as_str() {
            "Never" => true,
            "OnFailure" => code == 0,
            _ => false,
        };
        if finishes {
            self.stage = Stage::Finished(code);
            self.last_termination = Some(Termination { exit_code: code, started: self.started.unwrap_or(now), finished: now });
        } else {
            self.last_termination = Some(Termination { exit_code: code, started: self.started.unwrap_or(now), finished: now });
            self.restarts += 1;
            self.started = Some(now);
        }
        true
    }

    fn container_id(&self, name: &str) -> String {
        format!("containerd://{}", fake_digest(&[&self.uid, name, &self.restarts.to_string()]))
    }

    fn image_id(image: &str) -> String {
        let repository = image.split(':').next().unwrap_or(image);
        format!("{repository}@sha256:{}", fake_digest(&[image]))
    }

    fn terminated(&self, name: &str, exit_code: i32, started: Timestamp, finished: Timestamp) -> Value {
        json!({"terminated": {
            "exitCode": exit_code,
            "reason": if exit_code == 0 { "Completed" } else { "Error" },
            "startedAt": time(started),
            "finishedAt": time(finished),
            "containerID": self.container_id(name),
        }})
    }

    fn init_statuses(&self, now: Timestamp) -> Vec<Value> {
        self.init_containers
            .iter()
            .map(|c| {
                let (state, ready, started) = match (self.stage, self.started) {
                    (Stage::Creating, _) | (_, None) => (json!({"waiting": {"reason": "PodInitializing"}}), false, false),
                    (Stage::Running, Some(at)) if c.sidecar => (json!({"running": {"startedAt": time(at)}}), true, true),
                    (_, Some(at)) => (self.terminated(&c.name, 0, self.created, at.min(now)), !c.sidecar, false),
                };
                json!({
                    "name": c.name,
                    "image": c.image,
                    "imageID": if matches!(self.stage, Stage::Creating) { String::new() } else { Self::image_id(&c.image) },
                    "state": state,
                    "lastState": {},
                    "ready": ready,
                    "restartCount": 0,
                    "started": started,
                })
            })
            .collect()
    }

    fn container_statuses(&self, now: Timestamp) -> Vec<Value> {
        let waiting = if self.init_containers.is_empty() { "ContainerCreating" } else { "PodInitializing" };
        self.containers
            .iter()
            .map(|c| {
                let (state, ready, started, image_id) = match (self.stage, self.started) {
                    (Stage::Running, Some(at)) => {
                        (json!({"running": {"startedAt": time(at)}}), self.container_ready(c, now), true, Self::image_id(&c.image))
                    }
                    (Stage::Finished(code), Some(at)) => (self.terminated(&c.name, code, at, now), false, false, Self::image_id(&c.image)),
                    (Stage::Terminating, Some(at)) => (self.terminated(&c.name, 0, at, now), false, false, Self::image_id(&c.image)),
                    _ => (json!({"waiting": {"reason": waiting}}), false, false, String::new()),
                };
                let last = match self.last_termination {
                    Some(t) if self.stage == Stage::Running => self.terminated(&c.name, t.exit_code, t.started, t.finished),
                    _ => json!({}),
                };
                let mut status = json!({
                    "name": c.name,
                    "image": c.image,
                    "imageID": image_id,
                    "state": state,
                    "lastState": last,
                    "ready": ready,
                    "restartCount": self.restarts,
                    "started": started,
                });
                if self.started.is_some() && self.stage != Stage::Creating {
                    status["containerID"] = json!(self.container_id(&c.name));
                }
                status
            })
            .collect()
    }

    /// The pod status for the current stage, as a strategic merge patch body.
    pub fn status(&self, now: Timestamp) -> Value {
        let containers = self.container_statuses(now);
        let unready: Vec<&str> =
            self.containers.iter().zip(&containers).filter(|(_, s)| s["ready"] != json!(true)).map(|(c, _)| c.name.as_str()).collect();
        let all_ready = unready.is_empty();
        let phase = match self.stage {
            Stage::Creating => "Pending",
            Stage::Running => "Running",
            Stage::Finished(0) | Stage::Terminating => "Succeeded",
            Stage::Finished(_) => "Failed",
        };
        let terminal = matches!(self.stage, Stage::Finished(_) | Stage::Terminating);
        let running_since = self.started.unwrap_or(self.created);
        let not_ready = if terminal {
            ("PodCompleted", String::new())
        } else {
            ("ContainersNotReady", format!("containers with unready status: [{}]", unready.join(" ")))
        };
        let ready = all_ready && !terminal;
        let ready_since = if all_ready {
            let delay = self.containers.iter().filter_map(|c| c.readiness_delay).max().unwrap_or_default();
            running_since.checked_add(jiff::SignedDuration::try_from(delay).unwrap_or_default()).unwrap_or(running_since)
        } else {
            running_since
        };
        let initialized = self.stage != Stage::Creating || self.init_containers.is_empty();
        let pending_init: Vec<&str> = self.init_containers.iter().map(|c| c.name.as_str()).collect();
        let conditions = vec![
            condition("PodReadyToStartContainers", self.stage != Stage::Creating && !terminal, running_since, None),
            condition(
                "Initialized",
                initialized,
                self.created,
                (!initialized).then(|| ("ContainersNotInitialized", format!("containers with incomplete status: [{}]", pending_init.join(" ")))),
            ),
            condition("Ready", ready, ready_since, (!ready).then(|| not_ready.clone())),
            condition("ContainersReady", ready, ready_since, (!ready).then_some(not_ready)),
            condition("PodScheduled", true, self.created, None),
        ];
        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.host_ip.to_string(),
            "hostIPs": [{"ip": self.host_ip.to_string()}],
            "startTime": time(self.created),
            "containerStatuses": containers,
        });
        if !self.init_containers.is_empty() {
            status["initContainerStatuses"] = json!(self.init_statuses(now));
        }
        if let Some(ip) = self.ip {
            status["podIP"] = json!(ip.to_string());
            status["podIPs"] = json!([{"ip": ip.to_string()}]);
        }
        json!({ "status": status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container as ApiContainer, PodSpec, Probe};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(restart_policy: &str, readiness_delay: Option<i32>) -> SimPod {
        let pod = Pod {
            metadata: ObjectMeta { name: Some("p".into()), namespace: Some("ns".into()), uid: Some("u".into()), ..Default::default() },
            spec: Some(PodSpec {
                restart_policy: Some(restart_policy.into()),
                containers: vec![ApiContainer {
                    name: "app".into(),
                    image: Some("nginx:1.27".into()),
                    readiness_probe: readiness_delay.map(|d| Probe { initial_delay_seconds: Some(d), ..Default::default() }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        SimPod::new(&pod, "node-0", "172.16.0.1".parse().unwrap())
    }

    fn condition_status(status: &Value, type_: &str) -> String {
        let conditions = status["status"]["conditions"].as_array().unwrap();
        conditions.iter().find(|c| c["type"] == type_).unwrap()["status"].as_str().unwrap().to_string()
    }

    #[test]
    fn creating_then_running_and_ready() {
        let mut p = pod("Always", None);
        let now = Timestamp::now();
        let creating = p.status(now);
        assert_eq!(creating["status"]["phase"], "Pending");
        assert_eq!(creating["status"]["containerStatuses"][0]["state"]["waiting"]["reason"], "ContainerCreating");
        assert_eq!(condition_status(&creating, "PodScheduled"), "True");
        assert_eq!(condition_status(&creating, "Ready"), "False");
        p.stage = Stage::Running;
        p.started = Some(now);
        p.ip = Some("10.244.0.2".parse().unwrap());
        let running = p.status(now);
        assert_eq!(running["status"]["phase"], "Running");
        assert_eq!(running["status"]["podIP"], "10.244.0.2");
        assert_eq!(running["status"]["containerStatuses"][0]["ready"], true);
        assert_eq!(condition_status(&running, "Ready"), "True");
    }

    #[test]
    fn readiness_waits_for_the_initial_delay() {
        let mut p = pod("Always", Some(5));
        let now = Timestamp::now();
        p.stage = Stage::Running;
        p.started = Some(now);
        assert_eq!(condition_status(&p.status(now), "Ready"), "False");
        assert_eq!(p.readiness_delays(), [Duration::from_secs(5)]);
        let later = now.checked_add(jiff::SignedDuration::from_secs(5)).unwrap();
        assert_eq!(condition_status(&p.status(later), "Ready"), "True");
    }

    #[test]
    fn exit_codes_follow_the_restart_policy() {
        let now = Timestamp::now();
        let run = |policy: &str, code: i32| {
            let mut p = pod(policy, None);
            p.stage = Stage::Running;
            p.started = Some(now);
            p.exit(code, now);
            p
        };
        assert_eq!(run("Never", 0).status(now)["status"]["phase"], "Succeeded");
        assert_eq!(run("Never", 1).status(now)["status"]["phase"], "Failed");
        assert_eq!(run("OnFailure", 0).status(now)["status"]["phase"], "Succeeded");
        let restarted = run("OnFailure", 2).status(now);
        assert_eq!(restarted["status"]["phase"], "Running");
        assert_eq!(restarted["status"]["containerStatuses"][0]["restartCount"], 1);
        assert_eq!(restarted["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"], 2);
    }
}
