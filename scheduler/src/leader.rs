//! Leader election on a `coordination.k8s.io` Lease, as upstream's client-go does it: a
//! candidate takes the lease once its holder has not renewed it for the lease duration (as
//! measured on the candidate's own clock, from when it last saw the record change, so clock
//! skew between machines does not matter); the leader renews it every retry period and gives
//! up leadership if renewals keep failing for the renew deadline.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

/// Timing of the election, from the `--leader-elect-*` flags.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// One candidate for the lease named `name`, identified by `identity`.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// The holder and renew time last seen, and when (on our clock) they were first seen.
    observed: Option<(Option<String>, Option<MicroTime>, Instant)>,
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

impl LeaderElector {
    pub fn new(api: Api<Lease>, name: String, identity: String, timing: Timing) -> LeaderElector {
        LeaderElector { api, name, identity, timing, observed: None }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this candidate holds the lease.
    pub async fn acquire(&mut self) {
        tracing::info!(lease = %self.name, identity = %self.identity, "attempting to acquire leader lease");
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, "successfully acquired lease");
                    return;
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, lease = %self.name, "error retrieving or updating the lease"),
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews the lease every retry period; returns once renewals have failed for the renew
    /// deadline, when leadership must be considered lost.
    pub async fn hold(&mut self) {
        let mut last_renewal = Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewal = Instant::now(),
                Ok(false) => {
                    tracing::error!(lease = %self.name, "the lease was taken over by another candidate");
                    return;
                }
                Err(error) => tracing::warn!(%error, lease = %self.name, "failed to renew the lease"),
            }
            if last_renewal.elapsed() > self.timing.renew_deadline {
                tracing::error!(lease = %self.name, "failed to renew the lease within the renew deadline");
                return;
            }
        }
    }

    /// Gives the lease up so a standby takes over at once (on a clean shutdown).
    pub async fn release(&mut self) {
        let Ok(mut lease) = self.api.get(&self.name).await else { return };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        spec.acquire_time = Some(now());
        if let Err(error) = self.api.replace(&self.name, &PostParams::default(), &lease).await {
            tracing::warn!(%error, lease = %self.name, "failed to release the lease");
        }
    }

    /// One round: takes or renews the lease if it is ours to take. `Ok(false)` when
    /// another candidate holds a live lease.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let duration_seconds = i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration_seconds),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            self.api.create(&PostParams::default(), &lease).await?;
            self.observed = Some((Some(self.identity.clone()), lease.spec.and_then(|s| s.renew_time), Instant::now()));
            return Ok(true);
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = (holder.clone(), spec.renew_time.clone());
        let seen_at = match &self.observed {
            Some((h, r, at)) if (h, r) == (&record.0, &record.1) => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((record.0.clone(), record.1.clone(), at));
                at
            }
        };
        let ours = holder.as_deref() == Some(self.identity.as_str());
        let their_duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(duration_seconds).max(0) as u64);
        if !ours && holder.is_some() && seen_at.elapsed() < their_duration {
            return Ok(false);
        }
        if !ours {
            spec.acquire_time = Some(now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(duration_seconds);
        spec.renew_time = Some(now());
        let updated = self.api.replace(&self.name, &PostParams::default(), &lease).await?;
        let renewed = updated.spec.and_then(|s| s.renew_time);
        self.observed = Some((Some(self.identity.clone()), renewed, Instant::now()));
        Ok(true)
    }
}

/// Upstream's identity: the hostname and a fresh UUID, unique per process.
pub fn identity() -> String {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{hostname}_{}", uuid::Uuid::new_v4())
}
