//! A pod on a simulated node and the status a kubelet would report for it at each stage:
//! `ContainerCreating` while images are pulled, then its containers run as kubelet runs
//! them: init containers one after the other (sidecars, `restartPolicy: Always`, starting
//! and staying up), then the app containers, each ending when its [`Program`] does or the
//! exit-code annotation says, restarted by restart policy after kubelet's crash back-off,
//! until the pod is Succeeded or Failed; or stuck on an image that cannot be pulled
//! (`ErrImagePull`, then `ImagePullBackOff` until the next attempt); and terminated on
//! deletion. Only what the status and kubelet's events need is kept, so tens of thousands of
//! pods stay cheap.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::Ipv4Addr;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Container as ApiContainer, ContainerStatus, Pod};
use serde_json::{json, Value};

use crate::image::{self, PullPolicy, Registry};
use crate::lifecycle::{Lifecycle, State, Termination};
use crate::program::Program;

/// Annotation on a Pod telling its app containers to exit with this code (`kubectl annotate
/// pod X node-simulator/exit-code=0`): they then finish or restart by restart policy.
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

/// Where a container sits in the pod spec, which decides when it starts and restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A regular init container: runs to completion before the next one starts.
    Init,
    /// An init container with `restartPolicy: Always`: started in turn, then kept running.
    Sidecar,
    App,
}

struct Container {
    name: String,
    kind: Kind,
    image: Image,
    /// The readiness probe's initial delay; `None` without a probe.
    readiness_delay: Option<Duration>,
    run: Lifecycle,
}

impl Container {
    fn new(c: &ApiContainer, kind: Kind, registry: &Registry, pod: &Pod) -> Container {
        let program = Program::of(
            c.command.as_deref().unwrap_or_default(),
            c.args.as_deref().unwrap_or_default(),
        );
        // Init containers used to complete at once whatever they ran; one running an
        // unrecognised command (waiting for a service, copying files) still does, rather
        // than hold its pod in `Init:0/1` for ever.
        let program = match (kind, program) {
            (Kind::Init, Program::Forever) => Program::Exits {
                after: Duration::ZERO,
                code: 0,
            },
            (_, program) => program,
        };
        Container {
            name: c.name.clone(),
            kind,
            image: Image::new(
                c.image.as_ref(),
                c.image_pull_policy.as_deref(),
                registry,
                pod,
            ),
            readiness_delay: c
                .readiness_probe
                .as_ref()
                .map(|p| Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64)),
            run: Lifecycle::new(program),
        }
    }

    /// When a running app container or sidecar turns ready.
    fn ready_at(&self) -> Option<Timestamp> {
        match (self.kind, self.run.state) {
            (Kind::Init, _) => None,
            (_, State::Running { since }) => {
                Some(plus(since, self.readiness_delay.unwrap_or_default()))
            }
            _ => None,
        }
    }

    fn ready(&self, now: Timestamp) -> bool {
        match self.run.state {
            State::Terminated(t) if self.kind == Kind::Init => t.exit_code == 0,
            _ => self.ready_at().is_some_and(|at| at <= now),
        }
    }
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
    /// Its containers are done for good: the pod is Succeeded or Failed.
    Finished,
    /// Deleted: containers stop and the pod object is removed.
    Terminating,
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
    /// Init containers (and sidecars) in spec order, then the app containers.
    containers: Vec<Container>,
    restart_policy: String,
    created: Timestamp,
    /// When the sandbox was up and the first container could start.
    pub started: Option<Timestamp>,
    pub stage: Stage,
    /// Up to when container transitions have been worked out.
    advanced_to: Timestamp,
    /// When the simulator's next look at the containers is due, if one is scheduled.
    pub tick: Option<Timestamp>,
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

fn plus(at: Timestamp, duration: Duration) -> Timestamp {
    at.checked_add(SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
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

/// A container's state as kubelet's phase computation sees it.
enum Seen {
    Running,
    Terminated(i32),
    /// Waiting, after an earlier run that ended with this code.
    Restarting(i32),
    Waiting,
}

impl SimPod {
    /// Reads what the simulation needs from a pod bound to `node` (whose IP is `host_ip`);
    /// `registry` tells which of its images cannot be pulled.
    pub fn new(pod: &Pod, node: &str, host_ip: Ipv4Addr, registry: &Registry) -> SimPod {
        let spec = pod.spec.clone().unwrap_or_default();
        let init = spec.init_containers.iter().flatten().map(|c| {
            let kind = if c.restart_policy.as_deref() == Some("Always") {
                Kind::Sidecar
            } else {
                Kind::Init
            };
            Container::new(c, kind, registry, pod)
        });
        let app = spec
            .containers
            .iter()
            .map(|c| Container::new(c, Kind::App, registry, pod));
        let containers = init.chain(app).collect();
        let status = pod.status.as_ref();
        let created = status
            .and_then(|s| s.start_time.as_ref())
            .map_or_else(Timestamp::now, |t| t.0);
        SimPod {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            node: node.to_string(),
            host_ip,
            ip: None,
            host_network: spec.host_network.unwrap_or(false),
            containers,
            restart_policy: spec.restart_policy.unwrap_or_else(|| "Always".into()),
            created,
            started: None,
            stage: Stage::Creating,
            advanced_to: created,
            tick: None,
            handled_exit: None,
            pull_started: None,
            pull: None,
        }
    }

    /// Takes over a pod found `stage` (after a restart) as its status shows it: containers
    /// running since they started, or ended with the codes they ended with.
    pub fn take_over(&mut self, pod: &Pod, stage: Stage, started: Option<Timestamp>) {
        let status = pod.status.as_ref();
        let statuses: Vec<&ContainerStatus> = status
            .into_iter()
            .flat_map(|s| {
                let init = s.init_container_statuses.iter().flatten();
                init.chain(s.container_statuses.iter().flatten())
            })
            .collect();
        let failed = status.and_then(|s| s.phase.as_deref()) == Some("Failed");
        let since = started.unwrap_or(self.created);
        self.stage = stage;
        self.started = started;
        self.advanced_to = Timestamp::now();
        for c in &mut self.containers {
            let seen = statuses.iter().find(|s| s.name == c.name);
            c.run.restarts = seen.map_or(0, |s| s.restart_count);
            let state = seen.and_then(|s| s.state.as_ref());
            let running = state.and_then(|s| s.running.as_ref());
            let terminated = state.and_then(|s| s.terminated.as_ref());
            let ended = |code| {
                State::Terminated(Termination {
                    exit_code: code,
                    started: since,
                    finished: since,
                })
            };
            c.run.state = match (stage, c.kind) {
                (Stage::Running, Kind::Init) => ended(0),
                (Stage::Running, _) => State::Running {
                    since: running
                        .and_then(|r| r.started_at.as_ref())
                        .map_or(since, |t| t.0),
                },
                _ => ended(
                    terminated.map_or(i32::from(failed && c.kind == Kind::App), |t| t.exit_code),
                ),
            };
        }
    }

    /// The containers kubelet gets to, in its order: init containers up to the first whose
    /// image it cannot get, then the app containers.
    fn reached(&self, present: &HashSet<String>) -> Vec<usize> {
        let mut reached = Vec::new();
        for (i, c) in self.containers.iter().enumerate() {
            reached.push(i);
            if c.kind != Kind::App && (c.image.blocked.is_some() || c.image.fails(present)) {
                return reached;
            }
        }
        reached
    }

    fn has_init(&self) -> bool {
        self.containers.iter().any(|c| c.kind != Kind::App)
    }

    fn field_path(&self, i: usize) -> String {
        let c = &self.containers[i];
        if c.kind == Kind::App {
            format!("spec.containers{{{}}}", c.name)
        } else {
            format!("spec.initContainers{{{}}}", c.name)
        }
    }

    /// kubelet starts pulling the images it lacks (or must pull again, `Always`) on a node
    /// holding `present`: the `Pulling` events.
    pub fn begin_pulls(&mut self, present: &HashSet<String>, now: Timestamp) -> Vec<Note> {
        self.pull_started = Some(now);
        let mut notes = Vec::new();
        for i in self.reached(present) {
            let image = &self.containers[i].image;
            if image.pulls(present) {
                notes.push(note(
                    &self.field_path(i),
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
        for i in self.reached(present) {
            let path = self.field_path(i);
            let image = &mut self.containers[i].image;
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
                    image.blocked = Some(Blocked::NeverPull);
                } else {
                    notes.extend(failed_pull(&path, &name));
                    image.blocked = Some(Blocked::Missing);
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

    fn missing_slots(&self) -> Vec<usize> {
        (0..self.containers.len())
            .filter(|i| self.containers[*i].image.blocked == Some(Blocked::Missing))
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
        for i in self.missing_slots() {
            let (path, image) = (self.field_path(i), &self.containers[i].image.image);
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
        for i in self.missing_slots() {
            let (path, image) = (self.field_path(i), self.containers[i].image.image.clone());
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

    /// The sandbox is up at `now`: containers start, the first init container or the app
    /// containers. Returns kubelet's events.
    pub fn start(&mut self, now: Timestamp) -> Vec<Note> {
        self.stage = Stage::Running;
        self.started = Some(now);
        self.advanced_to = now;
        self.start_next(now);
        self.advance(now).1
    }

    /// Whether kubelet restarts a container of this kind that exited with `code`.
    fn restarts(&self, kind: Kind, code: i32) -> bool {
        match (kind, self.restart_policy.as_str()) {
            (Kind::Sidecar, _) => true,
            (Kind::Init, "Never") => false,
            (Kind::Init, _) => code != 0,
            (Kind::App, "Always") => true,
            (Kind::App, "OnFailure") => code != 0,
            (Kind::App, _) => false,
        }
    }

    /// Starts at `at` what may start: the next init container once the one before it has
    /// completed (sidecars do not hold the next one back), the app containers once all
    /// have. Returns whether any started.
    fn start_next(&mut self, at: Timestamp) -> bool {
        let mut started = false;
        for c in &mut self.containers {
            if c.image.blocked.is_some() {
                if c.kind == Kind::App {
                    continue;
                }
                return started;
            }
            match (c.kind, c.run.state) {
                (_, State::Waiting) => {
                    c.run.start(at);
                    started = true;
                    if c.kind == Kind::Init {
                        return true;
                    }
                }
                (Kind::Init, State::Terminated(t)) if t.exit_code == 0 => {}
                (Kind::Init, _) => return started,
                _ => {}
            }
        }
        started
    }

    /// The pod is done once every app container has ended for good, or an init container
    /// failed under `restartPolicy: Never`; its sidecars are then stopped.
    fn finish_if_done(&mut self, at: Timestamp) {
        let init_failed = self
            .containers
            .iter()
            .any(|c| c.kind == Kind::Init && c.run.terminated().is_some_and(|code| code != 0));
        let apps_done = self
            .containers
            .iter()
            .filter(|c| c.kind == Kind::App)
            .all(|c| c.run.terminated().is_some());
        if init_failed || apps_done {
            for c in &mut self.containers {
                c.run.stop(at);
            }
            self.stage = Stage::Finished;
        }
    }

    fn back_off_note(&self, i: usize) -> Note {
        let name = &self.containers[i].name;
        note(
            &self.field_path(i),
            true,
            "BackOff",
            format!(
                "Back-off restarting failed container {name} in pod {}_{}({})",
                self.name, self.namespace, self.uid
            ),
        )
    }

    /// A container ended at `at` with `code`: restarted or not by restart policy, and the
    /// pod perhaps done.
    fn container_exited(&mut self, i: usize, code: i32, at: Timestamp, notes: &mut Vec<Note>) {
        let restart = self.restarts(self.containers[i].kind, code);
        if self.containers[i].run.exit(code, at, restart).is_some() {
            notes.push(self.back_off_note(i));
        }
        self.finish_if_done(at);
    }

    /// Works out what happened to the containers up to `now`, each transition at its own
    /// time: exits, restarts after a back-off, the next containers starting. Returns
    /// whether the status changed (a container also turning ready) and kubelet's events.
    pub fn advance(&mut self, now: Timestamp) -> (bool, Vec<Note>) {
        let mut notes = Vec::new();
        let since = self.advanced_to;
        let mut changed = self
            .containers
            .iter()
            .filter_map(Container::ready_at)
            .any(|at| at > since && at <= now);
        self.advanced_to = self.advanced_to.max(now);
        while self.stage == Stage::Running {
            let due = self
                .containers
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.run.due().map(|at| (at, i)))
                .filter(|(at, _)| *at <= now)
                .min();
            let Some((at, i)) = due else { break };
            changed = true;
            match self.containers[i].run.state {
                State::BackOff { .. } => self.containers[i].run.resume(at),
                _ => {
                    let code = self.containers[i].run.exit_code().unwrap_or(0);
                    self.container_exited(i, code, at, &mut notes);
                }
            }
            if self.stage == Stage::Running {
                self.start_next(at);
            }
        }
        (changed, notes)
    }

    /// When [`advance`](Self::advance) next has something to do after `now`.
    pub fn next_due(&self, now: Timestamp) -> Option<Timestamp> {
        if self.stage != Stage::Running {
            return None;
        }
        self.containers
            .iter()
            .flat_map(|c| [c.run.due(), c.ready_at()])
            .flatten()
            .filter(|at| *at > now)
            .min()
    }

    /// Applies an exit-code annotation: the running app containers exit with `code` at
    /// `now`. Returns whether anything changed, and kubelet's events.
    pub fn exit(&mut self, code: i32, now: Timestamp) -> (bool, Vec<Note>) {
        if self.stage != Stage::Running {
            return (false, Vec::new());
        }
        let (mut changed, mut notes) = self.advance(now);
        for i in 0..self.containers.len() {
            let c = &self.containers[i];
            if self.stage == Stage::Running
                && c.kind == Kind::App
                && matches!(c.run.state, State::Running { .. })
            {
                self.container_exited(i, code, now, &mut notes);
                changed = true;
            }
        }
        if self.stage == Stage::Running {
            self.start_next(now);
        }
        (changed, notes)
    }

    /// The pod was deleted: kubelet stops its containers at `now`.
    pub fn terminate(&mut self, now: Timestamp) {
        for c in &mut self.containers {
            c.run.stop(now);
        }
        self.stage = Stage::Terminating;
    }

    fn container_id(&self, name: &str, run: i32) -> String {
        format!(
            "containerd://{}",
            fake_digest(&[&self.uid, name, &run.to_string()])
        )
    }

    fn image_id(image: &Image) -> String {
        let image = image.image.as_str();
        let repository = image.split(':').next().unwrap_or(image);
        format!("{repository}@sha256:{}", fake_digest(&[image]))
    }

    fn terminated(&self, name: &str, run: i32, t: Termination) -> Value {
        json!({"terminated": {
            "exitCode": t.exit_code,
            "reason": if t.exit_code == 0 { "Completed" } else { "Error" },
            "startedAt": time(t.started),
            "finishedAt": time(t.finished),
            "containerID": self.container_id(name, run),
        }})
    }

    /// The first init container kubelet cannot get the image of.
    fn first_blocked_init(&self) -> Option<usize> {
        self.containers
            .iter()
            .position(|c| c.kind != Kind::App && c.image.blocked.is_some())
    }

    fn container_status(&self, i: usize, now: Timestamp) -> Value {
        let c = &self.containers[i];
        let first_blocked = self.first_blocked_init();
        let waiting = if c.kind == Kind::App && !self.has_init() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let run = &c.run;
        let state = match run.state {
            _ if c.image.blocked.is_some() => self
                .blocked_state(&c.image)
                .unwrap_or_else(|| json!({"waiting": {"reason": waiting}})),
            _ if first_blocked.is_some_and(|b| i > b) => {
                json!({"waiting": {"reason": "PodInitializing"}})
            }
            State::Waiting => json!({"waiting": {"reason": waiting}}),
            State::Running { since } => json!({"running": {"startedAt": time(since)}}),
            State::Terminated(t) => self.terminated(&c.name, run.restarts, t),
            State::BackOff { delay, .. } => json!({"waiting": {
                "reason": "CrashLoopBackOff",
                "message": format!(
                    "back-off {} restarting failed container={} pod={}_{}({})",
                    image::go_duration(delay),
                    c.name,
                    self.name,
                    self.namespace,
                    self.uid
                ),
            }}),
        };
        let last_run = match run.state {
            State::BackOff { .. } => run.restarts,
            _ => run.restarts - 1,
        };
        let last = match run.last {
            Some(t) if run.state != State::Waiting => self.terminated(&c.name, last_run, t),
            _ => json!({}),
        };
        let has_run = run.has_run() && c.image.blocked.is_none();
        let mut status = json!({
            "name": c.name,
            "image": c.image.image,
            "imageID": if has_run { Self::image_id(&c.image) } else { String::new() },
            "state": state,
            "lastState": last,
            "ready": c.ready(now),
            "restartCount": run.restarts,
            "started": matches!(run.state, State::Running { .. }),
        });
        if has_run {
            let current = match run.state {
                State::BackOff { .. } => last_run,
                _ => run.restarts,
            };
            status["containerID"] = json!(self.container_id(&c.name, current));
        }
        status
    }

    /// How kubelet's phase computation sees a container.
    fn seen(&self, c: &Container) -> Seen {
        match c.run.state {
            _ if c.image.blocked.is_some() => Seen::Waiting,
            State::Running { .. } => Seen::Running,
            State::Terminated(t) => Seen::Terminated(t.exit_code),
            State::BackOff { .. } => Seen::Restarting(c.run.last.map_or(0, |t| t.exit_code)),
            State::Waiting => Seen::Waiting,
        }
    }

    /// The pod phase by kubelet's rules: init containers pending or failed, then waiting,
    /// running and stopped app containers under the restart policy.
    fn phase(&self) -> &'static str {
        if self.stage == Stage::Creating {
            return "Pending";
        }
        let terminal = matches!(self.stage, Stage::Finished | Stage::Terminating);
        let (mut pending_init, mut failed_init) = (0, 0);
        let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
        let mut app_started = false;
        for c in &self.containers {
            let seen = self.seen(c);
            match (c.kind, seen) {
                (Kind::Init, Seen::Terminated(code) | Seen::Restarting(code)) => {
                    failed_init += usize::from(code != 0)
                }
                (Kind::Init, _) => pending_init += 1,
                (Kind::Sidecar, Seen::Running) => running += 1,
                (Kind::Sidecar, Seen::Waiting) => {
                    pending_init += 1;
                    waiting += 1;
                }
                (Kind::Sidecar, _) => {}
                (Kind::App, seen) => {
                    app_started |= c.run.has_run();
                    match seen {
                        Seen::Running => running += 1,
                        Seen::Terminated(code) => {
                            stopped += 1;
                            succeeded += usize::from(code == 0);
                        }
                        Seen::Restarting(_) => stopped += 1,
                        Seen::Waiting => waiting += 1,
                    }
                }
            }
        }
        let phase = if failed_init > 0 && self.restart_policy == "Never" {
            "Failed"
        } else if (pending_init > 0 && !app_started) || waiting > 0 {
            "Pending"
        } else if running > 0 {
            "Running"
        } else if stopped > 0 {
            match self.restart_policy.as_str() {
                _ if terminal && stopped == succeeded => "Succeeded",
                _ if terminal => "Failed",
                "Always" => "Running",
                _ if stopped == succeeded => "Succeeded",
                "Never" => "Failed",
                _ => "Running",
            }
        } else {
            "Pending"
        };
        // A pod stopped before its containers ended by themselves ends Failed, as kubelet's
        // terminal pods do.
        if terminal && !matches!(phase, "Succeeded" | "Failed") {
            "Failed"
        } else {
            phase
        }
    }

    /// The pod status for the current stage, as a strategic merge patch body.
    pub fn status(&self, now: Timestamp) -> Value {
        let phase = self.phase();
        let terminal = matches!(self.stage, Stage::Finished | Stage::Terminating);
        let running_since = self.started.unwrap_or(self.created);
        let mut init_statuses = Vec::new();
        let mut statuses = Vec::new();
        let mut unready = Vec::new();
        let mut ready_since = running_since;
        for (i, c) in self.containers.iter().enumerate() {
            let status = self.container_status(i, now);
            if c.kind != Kind::Init {
                if status["ready"] == json!(true) {
                    ready_since = ready_since.max(c.ready_at().unwrap_or(running_since));
                } else {
                    unready.push(c.name.as_str());
                }
            }
            if c.kind == Kind::App {
                statuses.push(status);
            } else {
                init_statuses.push(status);
            }
        }
        let all_ready = unready.is_empty();
        let not_ready = match phase {
            "Succeeded" => ("PodCompleted", String::new()),
            "Failed" if terminal => ("PodFailed", String::new()),
            _ => (
                "ContainersNotReady",
                format!("containers with unready status: [{}]", unready.join(" ")),
            ),
        };
        let ready = all_ready && !terminal;
        let first_blocked = self.first_blocked_init();
        let app_started = self
            .containers
            .iter()
            .any(|c| c.kind == Kind::App && c.run.has_run());
        let incomplete: Vec<&str> = self
            .containers
            .iter()
            .enumerate()
            .filter(|(i, c)| match c.kind {
                Kind::App => false,
                _ if first_blocked.is_some_and(|b| *i >= b) => true,
                Kind::Init => c.run.terminated() != Some(0),
                Kind::Sidecar => !c.run.has_run(),
            })
            .map(|(_, c)| c.name.as_str())
            .collect();
        let initialized = self.stage != Stage::Creating
            && first_blocked.is_none()
            && (app_started || incomplete.is_empty())
            || !self.has_init();
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
                            incomplete.join(" ")
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
            "containerStatuses": statuses,
        });
        if !init_statuses.is_empty() {
            status["initContainerStatuses"] = json!(init_statuses);
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
    use k8s_openapi::api::core::v1::{PodSpec, Probe};
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

    /// A pod from its JSON spec.
    fn pod_spec(spec: Value) -> SimPod {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": spec,
        }))
        .unwrap();
        SimPod::new(&pod, "node-0", "172.16.0.1".parse().unwrap(), &registry())
    }

    fn job_pod(restart_policy: &str, command: &[&str]) -> SimPod {
        pod_spec(json!({
            "restartPolicy": restart_policy,
            "containers": [{"name": "app", "image": "busybox", "command": command}],
        }))
    }

    fn after(t: Timestamp, seconds: i64) -> Timestamp {
        t.checked_add(jiff::SignedDuration::from_secs(seconds))
            .unwrap()
    }

    #[test]
    fn recognised_commands_finish_the_pod() {
        let now = Timestamp::now();
        let mut ok = job_pod("Never", &["sh", "-c", "exit 0"]);
        ok.start(now);
        assert_eq!(ok.stage, Stage::Finished);
        let status = ok.status(now)["status"].clone();
        assert_eq!(status["phase"], "Succeeded");
        let terminated = &status["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(terminated["exitCode"], 0);
        assert_eq!(terminated["reason"], "Completed");
        let ready = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["reason"], "PodCompleted");

        let mut failing = job_pod("Never", &["/bin/sh", "-c", "sleep 2; exit 3"]);
        failing.start(now);
        assert_eq!(failing.status(now)["status"]["phase"], "Running");
        assert_eq!(failing.next_due(now), Some(after(now, 2)));
        assert!(failing.advance(after(now, 2)).0);
        let status = failing.status(after(now, 2))["status"].clone();
        assert_eq!(status["phase"], "Failed");
        let terminated = &status["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(terminated["exitCode"], 3);
        assert_eq!(terminated["reason"], "Error");

        let mut forever = job_pod("Never", &["nginx"]);
        forever.start(now);
        assert_eq!(forever.next_due(now), None);
        assert_eq!(forever.status(now)["status"]["phase"], "Running");
    }

    #[test]
    fn on_failure_restarts_with_crash_back_off() {
        let now = Timestamp::now();
        let mut p = job_pod("OnFailure", &["sh", "-c", "sleep 2; exit 1"]);
        p.start(now);
        let (changed, notes) = p.advance(after(now, 2));
        assert!(
            changed && notes.is_empty(),
            "the first restart is immediate"
        );
        let app = p.status(after(now, 2))["status"]["containerStatuses"][0].clone();
        assert_eq!(app["restartCount"], 1);
        assert_eq!(app["lastState"]["terminated"]["exitCode"], 1);
        assert!(app["state"]["running"].is_object());

        let (_, notes) = p.advance(after(now, 4));
        assert_eq!(
            messages(&notes),
            ["BackOff Back-off restarting failed container app in pod p_ns(u)"]
        );
        let status = p.status(after(now, 4))["status"].clone();
        assert_eq!(status["phase"], "Running");
        let app = &status["containerStatuses"][0];
        assert_eq!(app["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(
            app["state"]["waiting"]["message"],
            "back-off 10s restarting failed container=app pod=p_ns(u)"
        );
        assert_eq!(app["lastState"]["terminated"]["reason"], "Error");
        assert_eq!(app["ready"], false);
        assert_eq!(p.next_due(after(now, 4)), Some(after(now, 14)));
        p.advance(after(now, 14));
        let app = p.status(after(now, 14))["status"]["containerStatuses"][0].clone();
        assert_eq!(app["restartCount"], 2);
        assert_eq!(p.next_due(after(now, 14)), Some(after(now, 16)));
        p.advance(after(now, 16));
        let waiting = p.status(after(now, 16))["status"]["containerStatuses"][0]["state"]
            ["waiting"]["message"]
            .clone();
        assert_eq!(
            waiting,
            "back-off 20s restarting failed container=app pod=p_ns(u)"
        );

        let mut ok = job_pod("OnFailure", &["sleep", "1"]);
        ok.start(now);
        ok.advance(after(now, 1));
        assert_eq!(ok.status(after(now, 1))["status"]["phase"], "Succeeded");
    }

    #[test]
    fn always_restarts_even_completed_containers() {
        let now = Timestamp::now();
        let mut p = job_pod("Always", &["true"]);
        p.start(now);
        let status = p.status(now)["status"].clone();
        assert_eq!(status["phase"], "Running");
        let app = &status["containerStatuses"][0];
        assert_eq!(app["restartCount"], 1);
        assert_eq!(app["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(app["lastState"]["terminated"]["reason"], "Completed");
    }

    #[test]
    fn init_containers_run_in_order_and_sidecars_stay_up() {
        let now = Timestamp::now();
        let mut p = pod_spec(json!({
            "restartPolicy": "Never",
            "initContainers": [
                {"name": "wait", "image": "busybox", "command": ["sleep", "1"]},
                {"name": "proxy", "image": "envoy", "restartPolicy": "Always"},
                {"name": "setup", "image": "busybox", "command": ["sh", "-c", "sleep 1"]},
            ],
            "containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3"]}],
        }));
        p.start(now);
        let status = p.status(now)["status"].clone();
        assert_eq!(status["phase"], "Pending");
        assert_eq!(
            status["initContainerStatuses"][1]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        let initialized = status["conditions"][1].clone();
        assert_eq!(initialized["status"], "False");
        assert_eq!(
            initialized["message"],
            "containers with incomplete status: [wait proxy setup]"
        );
        p.advance(after(now, 1));
        let status = p.status(after(now, 1))["status"].clone();
        assert_eq!(
            status["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert!(status["initContainerStatuses"][1]["state"]["running"].is_object());
        assert!(status["initContainerStatuses"][2]["state"]["running"].is_object());
        assert_eq!(
            status["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        assert_eq!(status["phase"], "Pending");
        p.advance(after(now, 2));
        let status = p.status(after(now, 2))["status"].clone();
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["conditions"][1]["status"], "True");
        assert_eq!(
            status["containerStatuses"][0]["state"]["running"]["startedAt"],
            time(after(now, 2))
        );
        assert_eq!(p.next_due(after(now, 2)), Some(after(now, 5)));
        p.advance(after(now, 5));
        let status = p.status(after(now, 5))["status"].clone();
        assert_eq!(status["phase"], "Succeeded");
        assert_eq!(
            status["initContainerStatuses"][1]["state"]["terminated"]["exitCode"], 0,
            "the sidecar is stopped once the app is done"
        );
    }

    #[test]
    fn a_failed_init_container_fails_a_never_pod() {
        let now = Timestamp::now();
        let mut p = pod_spec(json!({
            "restartPolicy": "Never",
            "initContainers": [{"name": "check", "image": "busybox", "command": ["false"]}],
            "containers": [{"name": "app", "image": "nginx"}],
        }));
        p.start(now);
        assert_eq!(p.stage, Stage::Finished);
        let status = p.status(now)["status"].clone();
        assert_eq!(status["phase"], "Failed");
        assert_eq!(
            status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
            1
        );
        assert_eq!(
            status["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
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
        p.ip = Some("10.244.0.2".parse().unwrap());
        p.start(later);
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
        p.ip = Some("10.244.0.2".parse().unwrap());
        p.start(now);
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
        p.start(now);
        assert_eq!(condition_status(&p.status(now), "Ready"), "False");
        let later = now.checked_add(jiff::SignedDuration::from_secs(5)).unwrap();
        assert_eq!(p.next_due(now), Some(later));
        assert!(p.advance(later).0, "turning ready changes the status");
        assert_eq!(condition_status(&p.status(later), "Ready"), "True");
    }

    #[test]
    fn exit_codes_follow_the_restart_policy() {
        let now = Timestamp::now();
        let run = |policy: &str, code: i32| {
            let mut p = pod(policy, None);
            p.start(now);
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
