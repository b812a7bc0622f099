//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics, so that
//! one of several replicas acts at a time and upstream components can share our Leases:
//!
//! - a candidate takes the lease once its holder has not renewed it for the holder's lease
//!   duration, measured on the candidate's own clock from when it last saw the record change
//!   (never by comparing timestamps written by another machine, so clock skew cannot steal
//!   a lease);
//! - the leader renews it every retry period, and gives up leadership when it could not renew
//!   it within the renew deadline;
//! - a leader shutting down releases the lease (empty holder, a one-second duration), so a
//!   standby takes over at once;
//! - `leader_election_master_status{name}` is 1 while leading, and a `LeaderElection` event
//!   on the Lease says who became leader.

use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use prometheus::{register_int_gauge_vec, IntGauge, IntGaugeVec};
use tokio::time::Instant;

use crate::duration::parse_duration;
use crate::events::{EventType, Recorder};

/// 1 while this process holds the lease named `name`, like upstream's metric.
static MASTER_STATUS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "leader_election_master_status",
        "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
        &["name"]
    )
    .expect("leader_election_master_status registers once")
});

/// Upstream's `--leader-elect*` flags, flattened into each component's options. The lease
/// name has no default here: each component sets its own (`kube-scheduler`,
/// `kube-controller-manager`) with `#[command(mut_arg("leader_elect_resource_name", ...))]`.
#[derive(Debug, Clone, clap::Args)]
pub struct LeaderElectionArgs {
    /// Start a leader election client and gain leadership before executing the main loop.
    /// Enable this when running replicated components for high availability.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// The duration that non-leader candidates will wait after observing a leadership renewal
    /// until attempting to acquire leadership of a led but unrenewed leader slot.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// The interval between attempts by the acting master to renew a leadership slot before
    /// it stops leading. This must be less than the lease duration.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// The duration the clients should wait between attempting acquisition and renewal of a
    /// leadership.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
    /// The type of resource object that is used for locking during leader election; only
    /// `leases`, upstream's default and only supported lock since v1.24.
    #[arg(long, default_value = "leases", value_parser = ["leases"])]
    pub leader_elect_resource_lock: String,
    /// The name of resource object that is used for locking during leader election.
    #[arg(long)]
    pub leader_elect_resource_name: String,
    /// The namespace of resource object that is used for locking during leader election.
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,
}

impl LeaderElectionArgs {
    pub fn timing(&self) -> Timing {
        Timing {
            lease_duration: self.leader_elect_lease_duration,
            renew_deadline: self.leader_elect_renew_deadline,
            retry_period: self.leader_elect_retry_period,
        }
    }

    /// The elector these flags describe, for a process known as `identity`.
    pub fn elector(&self, client: kube::Client, identity: String) -> LeaderElector {
        let api = Api::namespaced(client, &self.leader_elect_resource_namespace);
        LeaderElector::new(
            api,
            &self.leader_elect_resource_name,
            identity,
            self.timing(),
        )
    }
}

/// Timing of the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// How leading ended badly.
#[derive(Debug, thiserror::Error)]
pub enum LeaderElectionError {
    /// The lease could not be renewed within the renew deadline: another replica may lead by
    /// now, so this one must stop acting (upstream exits with this message).
    #[error("leaderelection lost")]
    Lost,
}

/// Where the Lease lives: the API server, or a fake in tests.
pub trait LeaseStore: Send + Sync {
    fn get(&self, name: &str) -> impl Future<Output = kube::Result<Option<Lease>>> + Send;
    fn create(&self, lease: &Lease) -> impl Future<Output = kube::Result<Lease>> + Send;
    /// Replaces the lease, failing with a conflict if it changed since it was read.
    fn replace(
        &self,
        name: &str,
        lease: &Lease,
    ) -> impl Future<Output = kube::Result<Lease>> + Send;
}

impl LeaseStore for Api<Lease> {
    async fn get(&self, name: &str) -> kube::Result<Option<Lease>> {
        self.get_opt(name).await
    }

    async fn create(&self, lease: &Lease) -> kube::Result<Lease> {
        Api::create(self, &PostParams::default(), lease).await
    }

    async fn replace(&self, name: &str, lease: &Lease) -> kube::Result<Lease> {
        Api::replace(self, name, &PostParams::default(), lease).await
    }
}

/// How much longer than its lease duration a leader may go without renewing before its
/// health check fails (upstream's `NewLeaderHealthzAdaptor(20 * time.Second)`).
const TOLERATED_EXPIRY: Duration = Duration::from_secs(20);

/// The leader-election health check (`leaderElection` in `/healthz`): a leader that has not
/// renewed its lease long past its duration is stuck and should be restarted.
#[derive(Clone)]
pub struct LeaderHealth(Arc<HealthState>);

struct HealthState {
    name: String,
    lease_duration: Duration,
    /// When the lease was last renewed, while leading.
    renewed: Mutex<Option<Instant>>,
}

impl LeaderHealth {
    fn set(&self, renewed: Option<Instant>) {
        *self.0.renewed.lock().unwrap_or_else(|e| e.into_inner()) = renewed;
    }

    pub fn check(&self) -> Result<(), String> {
        let renewed = *self.0.renewed.lock().unwrap_or_else(|e| e.into_inner());
        match renewed {
            Some(at) if at.elapsed() > self.0.lease_duration + TOLERATED_EXPIRY => Err(format!(
                "failed election to renew leadership on lease {}",
                self.0.name
            )),
            _ => Ok(()),
        }
    }
}

/// One candidate for the lease.
pub struct LeaderElector<S = Api<Lease>> {
    store: S,
    name: String,
    identity: String,
    timing: Timing,
    /// The lease as last read or written (its resourceVersion guards the next write), and
    /// when, on our clock, its record was first seen as it is.
    observed: Option<(Lease, Instant)>,
    status: IntGauge,
    health: LeaderHealth,
    recorder: Option<Recorder>,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

impl<S: LeaseStore> LeaderElector<S> {
    pub fn new(store: S, name: &str, identity: String, timing: Timing) -> Self {
        let status = MASTER_STATUS.with_label_values(&[name]);
        status.set(0);
        let health = LeaderHealth(Arc::new(HealthState {
            name: name.to_string(),
            lease_duration: timing.lease_duration,
            renewed: Mutex::new(None),
        }));
        LeaderElector {
            store,
            name: name.to_string(),
            identity,
            timing,
            observed: None,
            status,
            health,
            recorder: None,
        }
    }

    /// The health check of this candidate's leadership, for the component server.
    pub fn health(&self) -> LeaderHealth {
        self.health.clone()
    }

    /// Records `LeaderElection` events on the Lease through `recorder`.
    pub fn with_recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits for the lease, runs `lead` once it is held, and keeps renewing until `shutdown`
    /// resolves (the lease is then released: `Ok`) or renewal fails (`Err(Lost)`; `lead`
    /// must stop at once, which upstream ensures by exiting).
    pub async fn run<L>(
        mut self,
        shutdown: impl Future<Output = ()>,
        lead: impl FnOnce() -> L,
    ) -> Result<(), LeaderElectionError>
    where
        L: Future<Output = ()> + Send + 'static,
    {
        let mut shutdown = std::pin::pin!(shutdown);
        tokio::select! {
            () = self.acquire() => {}
            () = &mut shutdown => return Ok(()),
        }
        let leading = tokio::spawn(lead());
        let result = tokio::select! {
            () = self.hold() => Err(LeaderElectionError::Lost),
            () = &mut shutdown => {
                self.release().await;
                Ok(())
            }
        };
        leading.abort();
        result
    }

    /// Waits until this candidate holds the lease, trying every retry period (stretched by up
    /// to 1.2 times, upstream's jitter, so candidates spread out).
    pub async fn acquire(&mut self) {
        tracing::info!(lease = %self.name, identity = %self.identity, "attempting to acquire leader lease");
        loop {
            if self.try_acquire_or_renew().await {
                tracing::info!(lease = %self.name, identity = %self.identity, "successfully acquired lease");
                self.status.set(1);
                self.health.set(Some(Instant::now()));
                self.record("became leader");
                return;
            }
            let jitter = self
                .timing
                .retry_period
                .mul_f64(rand::random::<f64>() * 1.2);
            tokio::time::sleep(self.timing.retry_period + jitter).await;
        }
    }

    /// Renews the lease every retry period; returns when a renewal round could not succeed
    /// within the renew deadline, after which another candidate may take over.
    pub async fn hold(&mut self) {
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            let deadline = Instant::now() + self.timing.renew_deadline;
            loop {
                let renewed = tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await;
                if matches!(renewed, Ok(true)) {
                    self.health.set(Some(Instant::now()));
                    break;
                }
                if Instant::now() + self.timing.retry_period >= deadline {
                    tracing::error!(lease = %self.name, "failed to renew lease: timed out waiting for the condition");
                    self.status.set(0);
                    self.health.set(None);
                    self.record("stopped leading");
                    return;
                }
                tokio::time::sleep(self.timing.retry_period).await;
            }
        }
    }

    /// Gives the lease up, if still ours, so a standby takes over at once.
    pub async fn release(&mut self) {
        self.status.set(0);
        self.health.set(None);
        let Some((mut lease, _)) = self.observed.take() else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        *spec = LeaseSpec {
            holder_identity: Some(String::new()),
            lease_duration_seconds: Some(1),
            acquire_time: Some(now()),
            renew_time: Some(now()),
            lease_transitions: spec.lease_transitions,
            ..LeaseSpec::default()
        };
        match self.store.replace(&self.name, &lease).await {
            Ok(_) => tracing::info!(lease = %self.name, "released leader lease"),
            Err(error) => tracing::warn!(%error, lease = %self.name, "failed to release lease"),
        }
    }

    fn record(&self, what: &str) {
        let (Some(recorder), Some((lease, _))) = (&self.recorder, &self.observed) else {
            return;
        };
        recorder.event(
            lease,
            EventType::Normal,
            "LeaderElection",
            format!("{} {what}", self.identity),
        );
    }

    /// One attempt: takes or renews the lease if it is ours to take; false when another
    /// candidate holds a live lease or the API server refused.
    async fn try_acquire_or_renew(&mut self) -> bool {
        let lease_seconds = seconds(self.timing.lease_duration);
        let current = match self.store.get(&self.name).await {
            Ok(current) => current,
            Err(error) => {
                tracing::warn!(%error, lease = %self.name, "error retrieving resource lock");
                return false;
            }
        };
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(lease_seconds),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.store.create(&lease).await {
                Ok(created) => {
                    self.observed = Some((created, Instant::now()));
                    true
                }
                Err(error) => {
                    tracing::warn!(%error, lease = %self.name, "error initially creating leader election record");
                    false
                }
            };
        };
        let old = lease.spec.clone().unwrap_or_default();
        let seen_at = match &self.observed {
            Some((seen, at)) if seen.spec.as_ref() == Some(&old) => *at,
            _ => Instant::now(),
        };
        self.observed = Some((lease.clone(), seen_at));
        let holder = old.holder_identity.as_deref().unwrap_or_default();
        let leading = holder == self.identity;
        let their_duration =
            Duration::from_secs(old.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        if !holder.is_empty() && !leading && seen_at.elapsed() < their_duration {
            tracing::debug!(lease = %self.name, holder, "lock is held and has not yet expired");
            return false;
        }
        let (acquire_time, transitions) = if leading {
            (old.acquire_time.clone(), old.lease_transitions.unwrap_or(0))
        } else {
            (Some(now()), old.lease_transitions.unwrap_or(0) + 1)
        };
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(lease_seconds),
            acquire_time,
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        });
        match self.store.replace(&self.name, &lease).await {
            Ok(updated) => {
                self.observed = Some((updated, Instant::now()));
                true
            }
            Err(error) => {
                tracing::debug!(%error, lease = %self.name, "failed to update lock");
                false
            }
        }
    }
}

/// Upstream's identity: the hostname and a fresh UUID, unique per process.
pub fn identity() -> String {
    format!("{}_{}", hostname(), uuid::Uuid::new_v4())
}

/// This machine's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use kube::core::Status;

    use super::*;

    /// An in-memory Lease with the API server's optimistic concurrency, which can be made to
    /// fail every request.
    #[derive(Clone)]
    struct FakeLeases {
        /// Unique per test, so tests running at once do not share a metric series.
        name: String,
        lease: Arc<Mutex<Option<Lease>>>,
        failing: Arc<Mutex<bool>>,
    }

    fn api_error(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Status::failure(reason, reason).with_code(code).boxed())
    }

    impl FakeLeases {
        fn new() -> FakeLeases {
            let name = format!("lease-{}", uuid::Uuid::new_v4());
            FakeLeases {
                name,
                lease: Arc::default(),
                failing: Arc::default(),
            }
        }

        fn check(&self) -> kube::Result<()> {
            if *self.failing.lock().unwrap() {
                return Err(api_error(503, "ServiceUnavailable"));
            }
            Ok(())
        }

        fn spec(&self) -> LeaseSpec {
            self.lease
                .lock()
                .unwrap()
                .clone()
                .and_then(|l| l.spec)
                .unwrap_or_default()
        }

        fn fail(&self, failing: bool) {
            *self.failing.lock().unwrap() = failing;
        }
    }

    fn version(lease: &Lease) -> u64 {
        lease
            .metadata
            .resource_version
            .as_deref()
            .map_or(0, |v| v.parse().unwrap())
    }

    impl LeaseStore for FakeLeases {
        async fn get(&self, _name: &str) -> kube::Result<Option<Lease>> {
            self.check()?;
            Ok(self.lease.lock().unwrap().clone())
        }

        async fn create(&self, lease: &Lease) -> kube::Result<Lease> {
            self.check()?;
            let mut stored = self.lease.lock().unwrap();
            if stored.is_some() {
                return Err(api_error(409, "AlreadyExists"));
            }
            let mut created = lease.clone();
            created.metadata.resource_version = Some("1".into());
            *stored = Some(created.clone());
            Ok(created)
        }

        async fn replace(&self, _name: &str, lease: &Lease) -> kube::Result<Lease> {
            self.check()?;
            let mut stored = self.lease.lock().unwrap();
            let current = stored.as_ref().map_or(0, version);
            if version(lease) != current {
                return Err(api_error(409, "Conflict"));
            }
            let mut updated = lease.clone();
            updated.metadata.resource_version = Some((current + 1).to_string());
            *stored = Some(updated.clone());
            Ok(updated)
        }
    }

    const TIMING: Timing = Timing {
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    };

    fn elector(leases: &FakeLeases, identity: &str) -> LeaderElector<FakeLeases> {
        LeaderElector::new(leases.clone(), &leases.name, identity.into(), TIMING)
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_candidate_creates_the_lease_and_others_wait_for_expiry() {
        let leases = FakeLeases::new();
        let mut a = elector(&leases, "a");
        let mut b = elector(&leases, "b");
        a.acquire().await;
        assert_eq!(leases.spec().holder_identity.as_deref(), Some("a"));
        assert_eq!(leases.spec().lease_transitions, Some(0));
        assert_eq!(a.status.get(), 1);
        assert!(!b.try_acquire_or_renew().await, "a live lease is not taken");
        tokio::time::advance(Duration::from_secs(14)).await;
        assert!(
            !b.try_acquire_or_renew().await,
            "not before the lease duration"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(b.try_acquire_or_renew().await, "an unrenewed lease expires");
        let spec = leases.spec();
        assert_eq!(spec.holder_identity.as_deref(), Some("b"));
        assert_eq!(spec.lease_transitions, Some(1));
        assert_eq!(spec.lease_duration_seconds, Some(15));
    }

    #[tokio::test(start_paused = true)]
    async fn renewals_keep_the_lease_and_restart_the_expiry_clock() {
        let leases = FakeLeases::new();
        let mut a = elector(&leases, "a");
        let mut b = elector(&leases, "b");
        a.acquire().await;
        let acquired = leases.spec().acquire_time;
        assert!(!b.try_acquire_or_renew().await);
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(10)).await;
            assert!(a.try_acquire_or_renew().await, "the holder renews");
            assert!(
                !b.try_acquire_or_renew().await,
                "each renewal is a new record, seen afresh"
            );
        }
        let spec = leases.spec();
        assert_eq!(
            spec.acquire_time, acquired,
            "renewals keep the acquire time"
        );
        assert_eq!(spec.lease_transitions, Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn leadership_is_lost_when_renewals_fail_for_the_renew_deadline() {
        let leases = FakeLeases::new();
        let mut a = elector(&leases, "a");
        a.acquire().await;
        leases.fail(true);
        let started = Instant::now();
        a.hold().await;
        let held = started.elapsed();
        assert!(
            held >= TIMING.retry_period + Duration::from_secs(8),
            "{held:?}"
        );
        assert!(
            held <= TIMING.retry_period + TIMING.renew_deadline,
            "{held:?}"
        );
        assert_eq!(a.status.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_takeover_ends_the_old_leaders_term() {
        let leases = FakeLeases::new();
        let mut a = elector(&leases, "a");
        a.acquire().await;
        let mut stolen = leases.lease.lock().unwrap().clone().unwrap();
        stolen.spec.as_mut().unwrap().holder_identity = Some("c".into());
        *leases.lease.lock().unwrap() = Some(stolen);
        let started = Instant::now();
        a.hold().await;
        assert!(started.elapsed() <= TIMING.retry_period + TIMING.renew_deadline);
        assert_eq!(leases.spec().holder_identity.as_deref(), Some("c"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_lease_is_taken_over_within_a_second() {
        let leases = FakeLeases::new();
        let mut a = elector(&leases, "a");
        let mut b = elector(&leases, "b");
        a.acquire().await;
        assert!(!b.try_acquire_or_renew().await);
        a.release().await;
        let spec = leases.spec();
        assert_eq!(spec.holder_identity.as_deref(), Some(""));
        assert_eq!(spec.lease_duration_seconds, Some(1));
        assert_eq!(a.status.get(), 0);
        assert!(
            b.try_acquire_or_renew().await,
            "an empty holder is free at once"
        );
        assert_eq!(leases.spec().lease_transitions, Some(1));
        a.release().await;
        assert_eq!(
            leases.spec().holder_identity.as_deref(),
            Some("b"),
            "only the holder releases"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn run_leads_until_shutdown_then_releases() {
        let leases = FakeLeases::new();
        let (led_tx, led_rx) = tokio::sync::oneshot::channel();
        let shutdown = async move {
            led_rx.await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        };
        let result = elector(&leases, "a")
            .run(shutdown, move || async move {
                led_tx.send(()).unwrap();
            })
            .await;
        assert!(result.is_ok());
        assert_eq!(
            leases.spec().holder_identity.as_deref(),
            Some(""),
            "released on shutdown"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn run_reports_a_lost_lease() {
        let leases = FakeLeases::new();
        let failing = leases.clone();
        let result = elector(&leases, "a")
            .run(
                std::future::pending(),
                move || async move { failing.fail(true) },
            )
            .await;
        assert!(matches!(result, Err(LeaderElectionError::Lost)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_that_stops_renewing_fails_its_health_check() {
        let leases = FakeLeases::new();
        let mut a = elector(&leases, "a");
        let health = a.health();
        assert_eq!(health.check(), Ok(()), "a candidate is healthy");
        a.acquire().await;
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(health.check(), Ok(()));
        tokio::time::advance(Duration::from_secs(10)).await;
        let error = health.check().unwrap_err();
        assert_eq!(
            error,
            format!(
                "failed election to renew leadership on lease {}",
                leases.name
            )
        );
        a.release().await;
        assert_eq!(
            health.check(),
            Ok(()),
            "a released lease is no longer ours to renew"
        );
    }

    #[test]
    fn identities_are_unique_per_process() {
        assert_ne!(identity(), identity());
        assert!(identity().starts_with(&format!("{}_", hostname())));
    }
}
