//! The scheduling queue, as upstream's: pods waiting for a first or new attempt sit in the
//! *active* queue, highest priority first then oldest; pods that just failed wait out a
//! backoff (1 s doubling per attempt up to 10 s) in the *backoff* queue; pods no node can take
//! park in the *unschedulable* pool until a cluster event that could help one of the plugins
//! that rejected them moves them back. There is no polling, except upstream's safety net of
//! retrying pods left unschedulable for five minutes. As in v1.33 (`SchedulerPopFromBackoffQ`),
//! an idle scheduler does not sit out the backoff of pods that were unschedulable; pods
//! backing off after an error always wait.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::plugins::{ClusterEvent, Plugin};
use crate::pod_info::PodInfo;

/// Upstream's `podInitialBackoffDuration` and `podMaxBackoffDuration`.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Upstream's `podMaxInUnschedulablePodsDuration`.
const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

/// A pod popped for a scheduling attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub pod: Arc<PodInfo>,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// When the pod first entered the queue, for the end-to-end latency metric.
    pub queued_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable(Instant),
    /// Being scheduled right now.
    InFlight,
}

struct Entry {
    pod: Arc<PodInfo>,
    place: Place,
    attempts: u32,
    queued_at: Instant,
    last_attempt: Option<Instant>,
    rejected_by: BTreeSet<Plugin>,
    /// Bumped whenever the entry moves, so stale heap items are recognised and skipped.
    generation: u64,
}

impl Entry {
    fn backoff_until(&self) -> Option<Instant> {
        let last = self.last_attempt?;
        let mut backoff = INITIAL_BACKOFF;
        for _ in 1..self.attempts {
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        Some(last + backoff)
    }
}

/// An item of the active heap: higher priority first, then earlier arrival.
#[derive(PartialEq, Eq)]
struct ActiveItem {
    priority: i32,
    arrival: u64,
    uid: String,
    generation: u64,
}

impl Ord for ActiveItem {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.arrival.cmp(&self.arrival))
    }
}

impl PartialOrd for ActiveItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Default)]
struct Inner {
    pods: HashMap<String, Entry>,
    /// The uids of the pods in the unschedulable pool, so events only look at those.
    unschedulable: HashSet<String>,
    active: BinaryHeap<ActiveItem>,
    /// Pods backing off after being unschedulable, and after errors.
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    error_backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    arrivals: u64,
    generations: u64,
    /// Cluster events since the last pop: a pod failing in that attempt may have missed one
    /// that helps it, so it backs off instead of parking.
    events_during_attempt: Vec<ClusterEvent>,
}

/// Sizes of the three queues, for `scheduler_pending_pods`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sizes {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
}

impl Inner {
    fn push_active(&mut self, uid: &str) {
        self.generations += 1;
        self.arrivals += 1;
        let (generation, arrival) = (self.generations, self.arrivals);
        self.unschedulable.remove(uid);
        let Some(entry) = self.pods.get_mut(uid) else {
            return;
        };
        entry.place = Place::Active;
        entry.generation = generation;
        self.active.push(ActiveItem {
            priority: entry.pod.priority,
            arrival,
            uid: uid.to_string(),
            generation,
        });
    }

    fn push_backoff(&mut self, uid: &str, after_error: bool) {
        self.generations += 1;
        let generation = self.generations;
        self.unschedulable.remove(uid);
        let Some(entry) = self.pods.get_mut(uid) else {
            return;
        };
        let until = entry.backoff_until().unwrap_or_else(Instant::now);
        entry.place = Place::Backoff;
        entry.generation = generation;
        let heap = if after_error {
            &mut self.error_backoff
        } else {
            &mut self.backoff
        };
        heap.push(Reverse((until, generation, uid.to_string())));
    }

    fn is_current(&self, uid: &str, generation: u64, place: Place) -> bool {
        self.pods
            .get(uid)
            .is_some_and(|e| e.generation == generation && e.place == place)
    }

    /// Takes the pod whose backoff ends first among those backing off after being
    /// unschedulable (not after errors).
    fn pop_backoff(&mut self) -> Option<String> {
        while let Some(Reverse((_, generation, uid))) = self.backoff.pop() {
            if self.is_current(&uid, generation, Place::Backoff) {
                return Some(uid);
            }
        }
        None
    }

    /// Moves a waiting pod back to be retried: to backoff while its backoff lasts.
    fn reactivate(&mut self, uid: &str, now: Instant) {
        let backing_off = self
            .pods
            .get(uid)
            .and_then(Entry::backoff_until)
            .is_some_and(|until| until > now);
        if backing_off {
            self.push_backoff(uid, false);
        } else {
            self.push_active(uid);
        }
    }
}

/// The queue of pods waiting to be scheduled.
#[derive(Default)]
pub struct Queue {
    inner: Mutex<Inner>,
    ready: Notify,
}

/// Whether an update to a pending pod can change the scheduling outcome: anything but its
/// status and bookkeeping metadata (the scheduler's own condition updates must not retry it).
fn relevant_change(old: &PodInfo, new: &PodInfo) -> bool {
    let strip = |pod: &PodInfo| {
        let mut pod = (*pod.pod).clone();
        pod.status = None;
        pod.metadata.resource_version = None;
        pod.metadata.generation = None;
        pod.metadata.managed_fields = None;
        pod
    };
    strip(old) != strip(new)
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a new pending pod, or updates one already queued (retrying it at once if it was
    /// waiting and its spec or labels changed).
    pub fn add_or_update(&self, pod: Arc<PodInfo>) {
        let mut inner = self.lock();
        let uid = pod.uid.clone();
        match inner.pods.get_mut(&uid) {
            None => {
                inner.pods.insert(
                    uid.clone(),
                    Entry {
                        pod,
                        place: Place::Active,
                        attempts: 0,
                        queued_at: Instant::now(),
                        last_attempt: None,
                        rejected_by: BTreeSet::new(),
                        generation: 0,
                    },
                );
                inner.push_active(&uid);
                drop(inner);
                self.ready.notify_one();
            }
            Some(entry) => {
                let changed = relevant_change(&entry.pod, &pod);
                entry.pod = pod;
                if changed && matches!(entry.place, Place::Unschedulable(_)) {
                    inner.reactivate(&uid, Instant::now());
                    drop(inner);
                    self.ready.notify_one();
                }
            }
        }
    }

    /// Forgets a pod that was deleted, bound elsewhere or gated.
    pub fn remove(&self, uid: &str) {
        let mut inner = self.lock();
        inner.pods.remove(uid);
        inner.unschedulable.remove(uid);
    }

    /// Waits for the next pod to attempt.
    pub async fn pop(&self) -> Attempt {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(attempt) = self.try_pop() {
                return attempt;
            }
            notified.await;
        }
    }

    fn try_pop(&self) -> Option<Attempt> {
        let mut inner = self.lock();
        let mut uid = None;
        while let Some(item) = inner.active.pop() {
            if inner.is_current(&item.uid, item.generation, Place::Active) {
                uid = Some(item.uid);
                break;
            }
        }
        let uid = uid.or_else(|| inner.pop_backoff())?;
        {
            let entry = inner.pods.get_mut(&uid).expect("current entries exist");
            entry.place = Place::InFlight;
            entry.attempts += 1;
            entry.last_attempt = Some(Instant::now());
            let attempt = Attempt {
                pod: entry.pod.clone(),
                attempts: entry.attempts,
                queued_at: entry.queued_at,
            };
            inner.events_during_attempt.clear();
            Some(attempt)
        }
    }

    /// The pod was assumed onto a node: it leaves the queue.
    pub fn done(&self, uid: &str) {
        let mut inner = self.lock();
        if inner
            .pods
            .get(uid)
            .is_some_and(|e| e.place == Place::InFlight)
        {
            inner.pods.remove(uid);
        }
    }

    /// The attempt found no node: park the pod until an event one of `rejected_by` cares
    /// about (any event, if empty), or back off if such an event came during the attempt.
    pub fn unschedulable(&self, attempt: &Attempt, rejected_by: BTreeSet<Plugin>) {
        let mut inner = self.lock();
        let uid = &attempt.pod.uid;
        let helps = |event: &ClusterEvent| {
            rejected_by.is_empty() || rejected_by.iter().any(|p| p.requeued_by(*event))
        };
        let missed_event = inner.events_during_attempt.iter().any(helps);
        let Some(entry) = inner.pods.get_mut(uid) else {
            return;
        };
        if entry.place != Place::InFlight {
            return;
        }
        entry.rejected_by = rejected_by;
        if missed_event {
            inner.push_backoff(uid, false);
        } else {
            entry.place = Place::Unschedulable(Instant::now());
            inner.unschedulable.insert(uid.clone());
        }
    }

    /// The attempt failed for another reason (an API error, a rejected binding): retry after
    /// backoff. Also used for pods whose assumed binding failed, which left the queue.
    pub fn retry_after_backoff(&self, attempt: &Attempt) {
        let mut inner = self.lock();
        let uid = attempt.pod.uid.clone();
        let entry = inner.pods.entry(uid.clone()).or_insert_with(|| Entry {
            pod: attempt.pod.clone(),
            place: Place::InFlight,
            attempts: attempt.attempts,
            queued_at: attempt.queued_at,
            last_attempt: Some(Instant::now()),
            rejected_by: BTreeSet::new(),
            generation: 0,
        });
        entry.last_attempt = Some(Instant::now());
        inner.push_backoff(&uid, true);
    }

    /// A cluster event happened: retry the unschedulable pods it may help. Returns how many
    /// moved.
    pub fn on_event(&self, event: ClusterEvent) -> usize {
        let mut inner = self.lock();
        if !inner.events_during_attempt.contains(&event) {
            inner.events_during_attempt.push(event);
        }
        let now = Instant::now();
        let moving: Vec<String> = inner
            .unschedulable
            .iter()
            .filter(|uid| {
                inner.pods.get(*uid).is_some_and(|e| {
                    e.rejected_by.is_empty() || e.rejected_by.iter().any(|p| p.requeued_by(event))
                })
            })
            .cloned()
            .collect();
        for uid in &moving {
            inner.reactivate(uid, now);
        }
        drop(inner);
        if !moving.is_empty() {
            self.ready.notify_one();
        }
        moving.len()
    }

    /// Moves pods whose backoff is over to the active queue, and retries pods unschedulable
    /// for too long. Called every second.
    pub fn flush(&self) {
        let mut inner = self.lock();
        let now = Instant::now();
        let mut moved = false;
        for after_error in [false, true] {
            loop {
                let heap = if after_error {
                    &mut inner.error_backoff
                } else {
                    &mut inner.backoff
                };
                let Some(Reverse((until, generation, uid))) = heap.peek().cloned() else {
                    break;
                };
                if until > now {
                    break;
                }
                heap.pop();
                if inner.is_current(&uid, generation, Place::Backoff) {
                    inner.push_active(&uid);
                    moved = true;
                }
            }
        }
        let stale: Vec<String> = inner
            .unschedulable
            .iter()
            .filter(|uid| {
                let since = inner.pods.get(*uid).map(|e| e.place);
                matches!(since, Some(Place::Unschedulable(since)) if now.duration_since(since) > MAX_UNSCHEDULABLE)
            })
            .cloned()
            .collect();
        for uid in &stale {
            inner.reactivate(uid, now);
        }
        drop(inner);
        if moved || !stale.is_empty() {
            self.ready.notify_one();
        }
    }

    pub fn sizes(&self) -> Sizes {
        let inner = self.lock();
        let mut sizes = Sizes::default();
        for entry in inner.pods.values() {
            match entry.place {
                Place::Active => sizes.active += 1,
                Place::Backoff => sizes.backoff += 1,
                Place::Unschedulable(_) => sizes.unschedulable += 1,
                Place::InFlight => {}
            }
        }
        sizes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Pod, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(uid: &str, priority: i32) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(Pod {
            metadata: ObjectMeta {
                name: Some(uid.into()),
                namespace: Some("ns".into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                priority: Some(priority),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    #[tokio::test]
    async fn higher_priority_first_then_first_come() {
        let queue = Queue::default();
        queue.add_or_update(pod("low", 0));
        queue.add_or_update(pod("high", 10));
        queue.add_or_update(pod("low2", 0));
        let order: Vec<String> = [queue.pop().await, queue.pop().await, queue.pop().await]
            .iter()
            .map(|a| a.pod.uid.clone())
            .collect();
        assert_eq!(order, ["high", "low", "low2"]);
    }

    #[tokio::test]
    async fn unschedulable_pods_wait_for_an_event_their_plugins_care_about() {
        let queue = Queue::default();
        queue.add_or_update(pod("p", 0));
        let attempt = queue.pop().await;
        queue.unschedulable(&attempt, [Plugin::TaintToleration].into());
        assert_eq!(
            queue.sizes(),
            Sizes {
                unschedulable: 1,
                ..Default::default()
            }
        );
        assert_eq!(
            queue.on_event(ClusterEvent::AssignedPodDelete),
            0,
            "a deleted pod does not remove a taint"
        );
        assert_eq!(queue.on_event(ClusterEvent::NodeTaintChange), 1);
        assert_eq!(
            queue.sizes(),
            Sizes {
                backoff: 1,
                ..Default::default()
            },
            "still within its 1 s backoff"
        );
        tokio::time::sleep(INITIAL_BACKOFF).await;
        queue.flush();
        assert_eq!(
            queue.sizes(),
            Sizes {
                active: 1,
                ..Default::default()
            }
        );
        assert_eq!(queue.pop().await.attempts, 2);
    }

    #[tokio::test]
    async fn a_failure_racing_an_event_backs_off_instead_of_parking() {
        let queue = Queue::default();
        queue.add_or_update(pod("p", 0));
        let attempt = queue.pop().await;
        queue.on_event(ClusterEvent::NodeAdd);
        queue.unschedulable(&attempt, [Plugin::NodeResourcesFit].into());
        assert_eq!(
            queue.sizes(),
            Sizes {
                backoff: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn backoff_doubles_up_to_ten_seconds() {
        let start = Instant::now();
        let entry = |attempts| Entry {
            pod: pod("p", 0),
            place: Place::Backoff,
            attempts,
            queued_at: start,
            last_attempt: Some(start),
            rejected_by: BTreeSet::new(),
            generation: 0,
        };
        let backoff = |attempts| entry(attempts).backoff_until().unwrap() - start;
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(9), Duration::from_secs(10));
    }

    #[tokio::test]
    async fn status_only_updates_do_not_retry_a_parked_pod() {
        let queue = Queue::default();
        queue.add_or_update(pod("p", 0));
        let attempt = queue.pop().await;
        queue.unschedulable(&attempt, [Plugin::NodeResourcesFit].into());
        let mut updated = (*attempt.pod.pod).clone();
        updated.status = Some(Default::default());
        queue.add_or_update(Arc::new(PodInfo::new(updated.clone())));
        assert_eq!(queue.sizes().unschedulable, 1);
        updated.metadata.labels = Some([("new".to_string(), "label".to_string())].into());
        queue.add_or_update(Arc::new(PodInfo::new(updated)));
        assert_eq!(queue.sizes().unschedulable, 0);
    }
}
