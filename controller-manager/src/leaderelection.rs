//! Leader election over a `coordination.k8s.io/v1` Lease, like client-go's `leaderelection`:
//! only the holder runs controllers, so two instances never fight over the same objects.
//! Expiry is judged on this process's clock from when the lease record last changed, never
//! by comparing with the other holder's timestamps, so clock skew cannot steal a lease.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

use crate::metrics;
use crate::options::Options;
use crate::runtime::api_message;

/// One candidate for the lease.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
    observed: Mutex<Option<Observed>>,
}

/// The lease record last seen (holder, renew time) and when it was first seen so.
struct Observed {
    holder: Option<String>,
    renewed: Option<MicroTime>,
    at: Instant,
}

impl LeaderElector {
    pub fn new(client: Client, options: &Options, identity: String) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &options.leader_elect_resource_namespace),
            name: options.leader_elect_resource_name.clone(),
            identity,
            lease_duration: options.leader_elect_lease_duration,
            renew_deadline: options.leader_elect_renew_deadline,
            retry_period: options.leader_elect_retry_period,
            observed: Mutex::new(None),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this instance holds the lease.
    pub async fn acquire(&self) {
        tracing::info!(lease = self.name, identity = self.identity, "attempting to acquire leader lease");
        loop {
            if self.try_acquire_or_renew().await {
                tracing::info!(lease = self.name, "successfully acquired lease");
                metrics::LEADER.with_label_values(&[&self.name]).set(1);
                return;
            }
            tokio::time::sleep(jittered(self.retry_period)).await;
        }
    }

    /// Renews the lease every retry period; returns once it could not be renewed for the
    /// renew deadline, after which another instance may take over.
    pub async fn hold(&self) {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.retry_period).await;
            if self.try_acquire_or_renew().await {
                renewed = Instant::now();
            } else if renewed.elapsed() >= self.renew_deadline {
                metrics::LEADER.with_label_values(&[&self.name]).set(0);
                return;
            }
        }
    }

    async fn try_acquire_or_renew(&self) -> bool {
        let now = MicroTime(Timestamp::now());
        let lease_seconds = self.lease_duration.as_secs() as i32;
        let current = match self.api.get_opt(&self.name).await {
            Ok(current) => current,
            Err(error) => {
                tracing::warn!(lease = self.name, error = api_message(&error), "error retrieving lease");
                return false;
            }
        };
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(lease_seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return self.api.create(&PostParams::default(), &lease).await.is_ok();
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let held_by_me = holder.as_deref() == Some(self.identity.as_str());
        {
            let mut observed = self.observed.lock().expect("observed lease");
            let changed = observed.as_ref().is_none_or(|o| o.holder != holder || o.renewed != spec.renew_time);
            if changed {
                *observed = Some(Observed { holder: holder.clone(), renewed: spec.renew_time.clone(), at: Instant::now() });
            }
            let duration = spec.lease_duration_seconds.map_or(self.lease_duration, |s| Duration::from_secs(s.max(0) as u64));
            let since = observed.as_ref().map(|o| o.at).unwrap_or_else(Instant::now);
            if holder.is_some() && !held_by_me && since.elapsed() < duration {
                return false;
            }
        }
        if !held_by_me {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + i32::from(holder.is_some()));
            spec.acquire_time = Some(now.clone());
            spec.holder_identity = Some(self.identity.clone());
        }
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(lease_seconds);
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => true,
            Err(error) => {
                tracing::debug!(lease = self.name, error = api_message(&error), "lease update failed");
                false
            }
        }
    }
}

/// client-go waits up to 1.2 times the retry period between attempts, so candidates spread out.
fn jittered(period: Duration) -> Duration {
    period.mul_f64(1.0 + rand::random::<f64>() * 0.2)
}
