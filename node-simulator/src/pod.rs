//! A pod on a simulated node and the status a kubelet would report for it at each stage:
//! `ContainerCreating` while images are pulled, running (ready once readiness probes'
//! initial delays pass) or stuck on an image that cannot be pulled (`ErrImagePull`, then
//! `ImagePullBackOff` until the next attempt), exited (restarted, or finished as
//! Succeeded/Failed by restart policy) and terminated on deletion. Only what the status and
//! kubelet's events need is kept, so tens of thousands of pods stay cheap.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::Ipv4Addr;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use crate::image::{self, PullPolicy, Registry};

/// Annotation on a Pod telling its containers to exit with this code (`kubectl annotate pod
/// X node-simulator/exit-code=0`): pods then finish (`Never`, or `OnFailure` with 0) or
/// restart their containers (`Always`, or `OnFailure` with a failure code).
pub const EXIT_CODE: &str = "node-simulator/exit-code";

/// Why kubelet cannot start a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocked {
    /// Its image cannot be pulled; retried after the back-off.
    Missing,
    /// Its image is not on the node and `imagePullPolicy: Never` forbids pulling it.
    NeverPull,
}

/// A container's image as kubelet handles it.
struct Image {
    image: String,
    policy: PullPolicy,
    /// Whether pulling it fails (see [`Registry`]).
    missing: bool,
    /// Set when kubelet got to the container and could not get its image.
    blocked: Option<Blocked>,
}

impl Image {
    fn new(image: Option<&String>, policy: Option<&str>, registry: &Registry, pod: &Pod) -> Image {
        let image = image.cloned().unwrap_or_default();
        let missing = registry.is_missing(
            &image,
            pod.metadata
                .annotations
                .as_ref()
                .unwrap_or(&Default::default()),
        );
        Image {
            policy: PullPolicy::of(policy, &image),
            missing,
            blocked: None,
            image,
        }
    }

    /// Whether kubelet pulls it rather than use (or miss) the node's copy.
    fn pulls(&self, present: &HashSet<String>) -> bool {
        match self.policy {
            PullPolicy::Always => true,
            PullPolicy::IfNotPresent => !present.contains(&self.image),
            PullPolicy::Never => false,
        }
    }

    /// Whether kubelet will fail to get it.
    fn fails(&self, present: &HashSet<String>) -> bool {
        match self.policy {
            PullPolicy::Never => !present.contains(&self.image),
            _ => self.missing,
        }
    }
}

struct Container {
    name: String,
    image: Image,
    /// The readiness probe's initial delay; `None` without a probe.
    readiness_delay: Option<Duration>,
}

struct InitContainer {
    name: String,
    image: Image,
    /// A sidecar (`restartPolicy: Always`) keeps running next to the app containers.
    sidecar: bool,
}

/// A kubelet event about one of the pod's containers, for machinery's event recorder
/// (which counts a repeat, such as a pull failing again, on the first one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub field_path: String,
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

fn note(field_path: &str, warning: bool, reason: &'static str, message: String) -> Note {
    Note {
        field_path: field_path.to_string(),
        warning,
        reason,
        message,
    }
}

/// Failed pulls of a pod's images, for kubelet's back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullFailure {
    /// Failed pulls so far.
    pub failures: u32,
    /// Whether kubelet has since found the pull in back-off (`ImagePullBackOff`) rather
    /// than just failed (`ErrImagePull`).
    pub backing_off: bool,
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
    /// When kubelet started pulling the images, for the `Pulled` events.
    pull_started: Option<Timestamp>,
    /// Set while images cannot be pulled.
    pub pull: Option<PullFailure>,
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

/// The events of a failed pull: the runtime's error, then the container's.
fn failed_pull(path: &str, image: &str) -> [Note; 2] {
    let message = format!(
        "Failed to pull image {image:?}: {}",
        image::pull_error(image)
    );
    [
        note(path, true, "Failed", message),
        note(path, true, "Failed", "Error: ErrImagePull".into()),
    ]
}

impl SimPod {
    /// Reads what the simulation needs from a pod bound to `node` (whose IP is `host_ip`);
    /// `registry` tells which of its images cannot be pulled.
    pub fn new(pod: &Pod, node: &str, host_ip: Ipv4Addr, registry: &Registry) -> SimPod {
        let spec = pod.spec.clone().unwrap_or_default();
        let containers = spec
            .containers
            .iter()
            .map(|c| Container {
                name: c.name.clone(),
                image: Image::new(
                    c.image.as_ref(),
                    c.image_pull_policy.as_deref(),
                    registry,
                    pod,
                ),
                readiness_delay: c.readiness_probe.as_ref().map(|p| {
                    Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64)
                }),
            })
            .collect();
        let init_containers = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| InitContainer {
                name: c.name.clone(),
                image: Image::new(
                    c.image.as_ref(),
                    c.image_pull_policy.as_deref(),
                    registry,
                    pod,
                ),
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
            created: status
                .and_then(|s| s.start_time.as_ref())
                .map_or_else(Timestamp::now, |t| t.0),
            started: None,
            restarts: 0,
            last_termination: None,
            stage: Stage::Creating,
            handled_exit: None,
            pull_started: None,
            pull: None,
        }
    }

    /// The containers kubelet gets to, in its order, as (is init container, index): init
    /// containers up to the first whose image it cannot get, then the app containers.
    fn reached(&self, present: &HashSet<String>) -> Vec<(bool, usize)> {
        let mut reached = Vec::new();
        for (i, c) in self.init_containers.iter().enumerate() {
            reached.push((true, i));
            if c.image.blocked.is_some() || c.image.fails(present) {
                return reached;
            }
        }
        reached.extend((0..self.containers.len()).map(|i| (false, i)));
        reached
    }

    fn image(&self, (init, i): (bool, usize)) -> &Image {
        if init {
            &self.init_containers[i].image
        } else {
            &self.containers[i].image
        }
    }

    fn image_mut(&mut self, (init, i): (bool, usize)) -> &mut Image {
        if init {
            &mut self.init_containers[i].image
        } else {
            &mut self.containers[i].image
        }
    }

    fn field_path(&self, (init, i): (bool, usize)) -> String {
        if init {
            format!("spec.initContainers{{{}}}", self.init_containers[i].name)
        } else {
            format!("spec.containers{{{}}}", self.containers[i].name)
        }
    }

    /// kubelet starts pulling the images it lacks (or must pull again, `Always`) on a node
    /// holding `present`: the `Pulling` events.
    pub fn begin_pulls(&mut self, present: &HashSet<String>, now: Timestamp) -> Vec<Note> {
        self.pull_started = Some(now);
        let mut notes = Vec::new();
        for slot in self.reached(present) {
            if self.image(slot).pulls(present) {
                let image = self.image(slot);
                notes.push(note(
                    &self.field_path(slot),
                    false,
                    "Pulling",
                    format!("Pulling image {:?}", image.image),
                ));
            }
        }
        notes
    }

    /// The pulls end: images found go into `present`, missing ones block their containers
    /// (`ErrImagePull`, or `ErrImageNeverPull` under `imagePullPolicy: Never`). Returns the
    /// events, and whether a pull failed (the back-off starts).
    pub fn finish_pulls(
        &mut self,
        present: &mut HashSet<String>,
        now: Timestamp,
    ) -> (Vec<Note>, bool) {
        let took = self.pull_started.map_or(Duration::ZERO, |t| {
            Duration::try_from(now.duration_since(t)).unwrap_or_default()
        });
        let took = image::go_duration(took);
        let mut notes = Vec::new();
        let mut failed = false;
        for slot in self.reached(present) {
            let path = self.field_path(slot);
            let image = self.image(slot);
            let name = image.image.clone();
            if image.fails(present) {
                if image.policy == PullPolicy::Never {
                    let message = format!(
                        "Container image {name:?} is not present with pull policy of Never"
                    );
                    notes.push(note(&path, true, "ErrImageNeverPull", message));
                    notes.push(note(
                        &path,
                        true,
                        "Failed",
                        "Error: ErrImageNeverPull".into(),
                    ));
                    self.image_mut(slot).blocked = Some(Blocked::NeverPull);
                } else {
                    notes.extend(failed_pull(&path, &name));
                    self.image_mut(slot).blocked = Some(Blocked::Missing);
                    failed = true;
                }
            } else if image.pulls(present) {
                let size = image::size(&name);
                let message = format!("Successfully pulled image {name:?} in {took} ({took} including waiting). Image size: {size} bytes.");
                notes.push(note(&path, false, "Pulled", message));
                present.insert(name);
            } else {
                notes.push(note(
                    &path,
                    false,
                    "Pulled",
                    format!("Container image {name:?} already present on machine"),
                ));
            }
        }
        if failed {
            self.pull = Some(PullFailure {
                failures: 1,
                backing_off: false,
            });
        }
        (notes, failed)
    }

    fn missing_slots(&self) -> Vec<(bool, usize)> {
        let init = (0..self.init_containers.len()).map(|i| (true, i));
        let app = (0..self.containers.len()).map(|i| (false, i));
        init.chain(app)
            .filter(|slot| self.image(*slot).blocked == Some(Blocked::Missing))
            .collect()
    }

    /// kubelet syncs the pod again before the back-off is over: `ImagePullBackOff`. Returns
    /// the events, none if the pod is not failing a pull or already backing off.
    pub fn back_off(&mut self) -> Vec<Note> {
        let Some(pull) = self.pull.as_mut().filter(|p| !p.backing_off) else {
            return Vec::new();
        };
        pull.backing_off = true;
        let mut notes = Vec::new();
        for slot in self.missing_slots() {
            let (path, image) = (self.field_path(slot), &self.image(slot).image);
            notes.push(note(
                &path,
                false,
                "BackOff",
                format!("Back-off pulling image {image:?}"),
            ));
            notes.push(note(
                &path,
                true,
                "Failed",
                "Error: ImagePullBackOff".into(),
            ));
        }
        notes
    }

    /// The back-off is over and kubelet pulls again, failing again. Returns the events and
    /// the next back-off.
    pub fn retry_pulls(&mut self) -> (Vec<Note>, Duration) {
        let Some(pull) = self.pull.as_mut() else {
            return (Vec::new(), Duration::ZERO);
        };
        pull.failures += 1;
        pull.backing_off = false;
        let backoff = image::backoff(pull.failures);
        let mut notes = Vec::new();
        for slot in self.missing_slots() {
            let (path, image) = (self.field_path(slot), self.image(slot).image.clone());
            notes.push(note(
                &path,
                false,
                "Pulling",
                format!("Pulling image {image:?}"),
            ));
            notes.extend(failed_pull(&path, &image));
        }
        (notes, backoff)
    }

    /// The waiting state of a container kubelet could not get the image of.
    fn blocked_state(&self, image: &Image) -> Option<Value> {
        let (reason, message) = match image.blocked? {
            Blocked::NeverPull => (
                "ErrImageNeverPull",
                format!(
                    "Container image {:?} is not present with pull policy of Never",
                    image.image
                ),
            ),
            Blocked::Missing if self.pull.is_some_and(|p| p.backing_off) => (
                "ImagePullBackOff",
                format!(
                    "Back-off pulling image {:?}: ErrImagePull: {}",
                    image.image,
                    image::pull_error(&image.image)
                ),
            ),
            Blocked::Missing => ("ErrImagePull", image::pull_error(&image.image)),
        };
        Some(json!({"waiting": {"reason": reason, "message": message}}))
    }

    fn blocked(&self) -> bool {
        self.init_containers
            .iter()
            .map(|c| &c.image)
            .chain(self.containers.iter().map(|c| &c.image))
            .any(|i| i.blocked.is_some())
    }

    /// The distinct readiness delays after the containers start, when status must be
    /// posted again.
    pub fn readiness_delays(&self) -> Vec<Duration> {
        let mut delays: Vec<Duration> = self
            .containers
            .iter()
            .filter_map(|c| c.readiness_delay)
            .filter(|d| !d.is_zero())
            .collect();
        delays.sort();
        delays.dedup();
        delays
    }

    fn container_ready(&self, container: &Container, now: Timestamp) -> bool {
        let Some(started) = self.started else {
            return false;
        };
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
            self.last_termination = Some(Termination {
                exit_code: code,
                started: self.started.unwrap_or(now),
                finished: now,
            });
        } else {
            self.last_termination = Some(Termination {
                exit_code: code,
                started: self.started.unwrap_or(now),
                finished: now,
            });
            self.restarts += 1;
            self.started = Some(now);
        }
        true
    }

    fn container_id(&self, name: &str) -> String {
        format!(
            "containerd://{}",
            fake_digest(&[&self.uid, name, &self.restarts.to_string()])
        )
    }

    fn image_id(image: &Image) -> String {
        let image = image.image.as_str();
        let repository = image.split(':').next().unwrap_or(image);
        format!("{repository}@sha256:{}", fake_digest(&[image]))
    }

    fn terminated(
        &self,
        name: &str,
        exit_code: i32,
        started: Timestamp,
        finished: Timestamp,
    ) -> Value {
        json!({"terminated": {
            "exitCode": exit_code,
            "reason": if exit_code == 0 { "Completed" } else { "Error" },
            "startedAt": time(started),
            "finishedAt": time(finished),
            "containerID": self.container_id(name),
        }})
    }

    fn init_statuses(&self, now: Timestamp) -> Vec<Value> {
        let first_blocked = self
            .init_containers
            .iter()
            .position(|c| c.image.blocked.is_some());
        self.init_containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let initializing = json!({"waiting": {"reason": "PodInitializing"}});
                let (state, ready, started) = match (self.stage, self.started) {
                    _ if c.image.blocked.is_some() => (
                        self.blocked_state(&c.image).unwrap_or(initializing),
                        false,
                        false,
                    ),
                    _ if first_blocked.is_some_and(|b| i > b) => (initializing, false, false),
                    (Stage::Creating, _) | (_, None) => (initializing, false, false),
                    (Stage::Running, Some(at)) if c.sidecar => {
                        (json!({"running": {"startedAt": time(at)}}), true, true)
                    }
                    (_, Some(at)) => (
                        self.terminated(&c.name, 0, self.created, at.min(now)),
                        !c.sidecar,
                        false,
                    ),
                };
                let image_id = if state.get("waiting").is_some() {
                    String::new()
                } else {
                    Self::image_id(&c.image)
                };
                json!({
                    "name": c.name,
                    "image": c.image.image,
                    "imageID": image_id,
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
        let init_blocked = self
            .init_containers
            .iter()
            .any(|c| c.image.blocked.is_some());
        let waiting = if self.init_containers.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        self.containers
            .iter()
            .map(|c| {
                let initializing = json!({"waiting": {"reason": "PodInitializing"}});
                let (state, ready, started, image_id) = match (self.stage, self.started) {
                    _ if c.image.blocked.is_some() => (
                        self.blocked_state(&c.image).unwrap_or(initializing),
                        false,
                        false,
                        String::new(),
                    ),
                    _ if init_blocked => (initializing, false, false, String::new()),
                    (Stage::Running, Some(at)) => (
                        json!({"running": {"startedAt": time(at)}}),
                        self.container_ready(c, now),
                        true,
                        Self::image_id(&c.image),
                    ),
                    (Stage::Finished(code), Some(at)) => (
                        self.terminated(&c.name, code, at, now),
                        false,
                        false,
                        Self::image_id(&c.image),
                    ),
                    (Stage::Terminating, Some(at)) => (
                        self.terminated(&c.name, 0, at, now),
                        false,
                        false,
                        Self::image_id(&c.image),
                    ),
                    _ => (
                        json!({"waiting": {"reason": waiting}}),
                        false,
                        false,
                        String::new(),
                    ),
                };
                let last = match self.last_termination {
                    Some(t) if self.stage == Stage::Running => {
                        self.terminated(&c.name, t.exit_code, t.started, t.finished)
                    }
                    _ => json!({}),
                };
                let has_container = state.get("waiting").is_none();
                let mut status = json!({
                    "name": c.name,
                    "image": c.image.image,
                    "imageID": image_id,
                    "state": state,
                    "lastState": last,
                    "ready": ready,
                    "restartCount": self.restarts,
                    "started": started,
                });
                if self.started.is_some() && self.stage != Stage::Creating && has_container {
                    status["containerID"] = json!(self.container_id(&c.name));
                }
                status
            })
            .collect()
    }

    /// The pod status for the current stage, as a strategic merge patch body.
    pub fn status(&self, now: Timestamp) -> Value {
        let containers = self.container_statuses(now);
        let unready: Vec<&str> = self
            .containers
            .iter()
            .zip(&containers)
            .filter(|(_, s)| s["ready"] != json!(true))
            .map(|(c, _)| c.name.as_str())
            .collect();
        let all_ready = unready.is_empty();
        // A container still waiting for its image keeps the pod Pending, as kubelet's phase
        // counts waiting containers before running ones.
        let phase = match self.stage {
            Stage::Creating => "Pending",
            Stage::Running if self.blocked() => "Pending",
            Stage::Running => "Running",
            Stage::Finished(0) | Stage::Terminating => "Succeeded",
            Stage::Finished(_) => "Failed",
        };
        let terminal = matches!(self.stage, Stage::Finished(_) | Stage::Terminating);
        let running_since = self.started.unwrap_or(self.created);
        let not_ready = if terminal {
            ("PodCompleted", String::new())
        } else {
            (
                "ContainersNotReady",
                format!("containers with unready status: [{}]", unready.join(" ")),
            )
        };
        let ready = all_ready && !terminal;
        let ready_since = if all_ready {
            let delay = self
                .containers
                .iter()
                .filter_map(|c| c.readiness_delay)
                .max()
                .unwrap_or_default();
            running_since
                .checked_add(jiff::SignedDuration::try_from(delay).unwrap_or_default())
                .unwrap_or(running_since)
        } else {
            running_since
        };
        let first_blocked = self
            .init_containers
            .iter()
            .position(|c| c.image.blocked.is_some());
        let initialized = (self.stage != Stage::Creating || self.init_containers.is_empty())
            && first_blocked.is_none();
        let pending_init: Vec<&str> = self
            .init_containers
            .iter()
            .skip(first_blocked.unwrap_or(0))
            .map(|c| c.name.as_str())
            .collect();
        let conditions = vec![
            condition(
                "PodReadyToStartContainers",
                self.stage != Stage::Creating && !terminal,
                running_since,
                None,
            ),
            condition(
                "Initialized",
                initialized,
                self.created,
                (!initialized).then(|| {
                    (
                        "ContainersNotInitialized",
                        format!(
                            "containers with incomplete status: [{}]",
                            pending_init.join(" ")
                        ),
                    )
                }),
            ),
            condition(
                "Ready",
                ready,
                ready_since,
                (!ready).then(|| not_ready.clone()),
            ),
            condition(
                "ContainersReady",
                ready,
                ready_since,
                (!ready).then_some(not_ready),
            ),
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
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some(restart_policy.into()),
                containers: vec![ApiContainer {
                    name: "app".into(),
                    image: Some("nginx:1.27".into()),
                    readiness_probe: readiness_delay.map(|d| Probe {
                        initial_delay_seconds: Some(d),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        SimPod::new(&pod, "node-0", "172.16.0.1".parse().unwrap(), &registry())
    }

    fn registry() -> Registry {
        Registry::new(regex::Regex::new(image::DEFAULT_MISSING_IMAGES).unwrap())
    }

    fn pod_with_images(images: &[(&str, Option<&str>)]) -> SimPod {
        let containers = images
            .iter()
            .enumerate()
            .map(|(i, (image, policy))| ApiContainer {
                name: format!("c{i}"),
                image: Some(image.to_string()),
                image_pull_policy: policy.map(str::to_string),
                ..Default::default()
            })
            .collect();
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers,
                ..Default::default()
            }),
            ..Default::default()
        };
        SimPod::new(&pod, "node-0", "172.16.0.1".parse().unwrap(), &registry())
    }

    /// Walks a pod through kubelet's pulls on a node holding `present`, as the simulator does.
    fn start(p: &mut SimPod, present: &mut HashSet<String>, now: Timestamp) -> (Vec<Note>, bool) {
        let mut notes = p.begin_pulls(present, now);
        let later = now
            .checked_add(jiff::SignedDuration::from_millis(1200))
            .unwrap();
        let (finished, failed) = p.finish_pulls(present, later);
        notes.extend(finished);
        p.stage = Stage::Running;
        p.started = Some(later);
        p.ip = Some("10.244.0.2".parse().unwrap());
        (notes, failed)
    }

    fn messages(notes: &[Note]) -> Vec<String> {
        notes
            .iter()
            .map(|n| format!("{} {}", n.reason, n.message))
            .collect()
    }

    fn condition_status(status: &Value, type_: &str) -> String {
        let conditions = status["status"]["conditions"].as_array().unwrap();
        conditions.iter().find(|c| c["type"] == type_).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn creating_then_running_and_ready() {
        let mut p = pod("Always", None);
        let now = Timestamp::now();
        let creating = p.status(now);
        assert_eq!(creating["status"]["phase"], "Pending");
        assert_eq!(
            creating["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
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
        assert_eq!(
            run("OnFailure", 0).status(now)["status"]["phase"],
            "Succeeded"
        );
        let restarted = run("OnFailure", 2).status(now);
        assert_eq!(restarted["status"]["phase"], "Running");
        assert_eq!(
            restarted["status"]["containerStatuses"][0]["restartCount"],
            1
        );
        assert_eq!(
            restarted["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
            2
        );
    }

    #[test]
    fn pulls_once_per_node_then_finds_the_image_present() {
        let now = Timestamp::now();
        let mut present = HashSet::new();
        let mut first = pod_with_images(&[("nginx:1.27", None)]);
        let (notes, failed) = start(&mut first, &mut present, now);
        assert!(!failed);
        let size = image::size("nginx:1.27");
        assert_eq!(
            messages(&notes),
            [
                "Pulling Pulling image \"nginx:1.27\"".to_string(),
                format!("Pulled Successfully pulled image \"nginx:1.27\" in 1.2s (1.2s including waiting). Image size: {size} bytes."),
            ]
        );
        assert_eq!(notes[0].field_path, "spec.containers{c0}");
        let mut second = pod_with_images(&[("nginx:1.27", None), ("nginx", None)]);
        let (notes, _) = start(&mut second, &mut present, now);
        assert_eq!(messages(&notes)[0], "Pulling Pulling image \"nginx\"");
        assert_eq!(
            messages(&notes)[1],
            "Pulled Container image \"nginx:1.27\" already present on machine"
        );
        assert_eq!(second.status(now)["status"]["phase"], "Running");
    }

    #[test]
    fn missing_image_fails_then_backs_off_and_never_gets_ready() {
        let now = Timestamp::now();
        let mut present = HashSet::new();
        let mut p = pod_with_images(&[("nginx:doesnotexist", None), ("sidecar:1", None)]);
        let (notes, failed) = start(&mut p, &mut present, now);
        assert!(failed);
        let now = p.started.unwrap();
        let error = "rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/library/nginx:doesnotexist\": failed to resolve reference \"docker.io/library/nginx:doesnotexist\": docker.io/library/nginx:doesnotexist: not found";
        let failures: Vec<Note> = notes
            .iter()
            .filter(|n| n.reason == "Failed")
            .cloned()
            .collect();
        assert_eq!(
            messages(&failures),
            [
                format!("Failed Failed to pull image \"nginx:doesnotexist\": {error}"),
                "Failed Error: ErrImagePull".to_string()
            ]
        );
        assert!(failures.iter().all(|n| n.warning));
        let status = p.status(now);
        let waiting = &status["status"]["containerStatuses"][0]["state"]["waiting"];
        assert_eq!(waiting["reason"], "ErrImagePull");
        assert_eq!(waiting["message"], error);
        assert_eq!(status["status"]["containerStatuses"][1]["ready"], true);
        assert_eq!(status["status"]["phase"], "Pending");
        let ready = status["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "ContainersNotReady");
        assert_eq!(ready["message"], "containers with unready status: [c0]");

        let notes = p.back_off();
        assert_eq!(
            messages(&notes),
            [
                "BackOff Back-off pulling image \"nginx:doesnotexist\"",
                "Failed Error: ImagePullBackOff"
            ]
        );
        assert!(!notes[0].warning && notes[1].warning);
        assert!(p.back_off().is_empty(), "one back-off per failed pull");
        let waiting = p.status(now)["status"]["containerStatuses"][0]["state"]["waiting"].clone();
        assert_eq!(waiting["reason"], "ImagePullBackOff");
        assert_eq!(
            waiting["message"],
            format!("Back-off pulling image \"nginx:doesnotexist\": ErrImagePull: {error}")
        );

        let (notes, backoff) = p.retry_pulls();
        assert_eq!(backoff, Duration::from_secs(20));
        assert_eq!(notes[0].reason, "Pulling");
        assert_eq!(
            p.status(now)["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ErrImagePull"
        );
        assert!(!present.contains("nginx:doesnotexist"));
    }

    #[test]
    fn never_policy_without_the_image_is_err_image_never_pull() {
        let now = Timestamp::now();
        let mut p = pod_with_images(&[("nginx:1.27", Some("Never"))]);
        let (notes, failed) = start(&mut p, &mut HashSet::new(), now);
        assert!(!failed, "nothing to retry");
        assert_eq!(notes[0].reason, "ErrImageNeverPull");
        let waiting = p.status(now)["status"]["containerStatuses"][0]["state"]["waiting"].clone();
        assert_eq!(waiting["reason"], "ErrImageNeverPull");
        assert_eq!(
            waiting["message"],
            "Container image \"nginx:1.27\" is not present with pull policy of Never"
        );
    }
}
