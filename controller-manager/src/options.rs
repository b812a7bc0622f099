//! Command-line flags, with upstream kube-controller-manager's names and defaults so existing
//! manifests and scripts start this binary unchanged.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use machinery::client::ClientArgs;
use machinery::duration::parse_duration;
use machinery::leaderelection::LeaderElectionArgs;
use machinery::logging::LoggingArgs;
use machinery::server::ServingArgs;

/// The Kubernetes controller manager is a daemon that embeds the core control loops shipped
/// with Kubernetes.
#[derive(Parser, Debug, Clone)]
#[command(name = "kube-controller-manager", version)]
#[command(mut_arg("leader_elect_resource_name", |a| a.default_value("kube-controller-manager").required(false)))]
#[command(mut_arg("secure_port", |a| a.default_value("10257").required(false)))]
pub struct Options {
    #[command(flatten)]
    pub client: ClientArgs,

    /// A list of controllers to enable. '*' enables all on-by-default controllers, 'foo'
    /// enables the controller named 'foo', '-foo' disables the controller named 'foo'.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,

    #[command(flatten)]
    pub leader_election: LeaderElectionArgs,

    /// HTTPS (self-signed) `/healthz`, `/livez`, `/readyz` and `/metrics`.
    #[command(flatten)]
    pub serving: ServingArgs,

    /// The number of replica sets that are allowed to sync concurrently.
    #[arg(long, default_value_t = 5)]
    pub concurrent_replicaset_syncs: u16,

    /// The number of replication controllers that are allowed to sync concurrently.
    #[arg(long, default_value_t = 5)]
    pub concurrent_rc_syncs: u16,

    /// The number of deployment objects that are allowed to sync concurrently.
    #[arg(long, default_value_t = 5)]
    pub concurrent_deployment_syncs: u16,

    /// The number of endpoint syncing operations that will be done concurrently.
    #[arg(long, default_value_t = 5)]
    pub concurrent_endpoint_syncs: u16,

    /// The number of service endpoint syncing operations that will be done concurrently.
    #[arg(long, default_value_t = 5)]
    pub concurrent_service_endpoint_syncs: u16,

    /// The number of namespace objects that are allowed to sync concurrently.
    #[arg(long, default_value_t = 10)]
    pub concurrent_namespace_syncs: u16,

    /// The number of garbage collector workers that are allowed to sync concurrently.
    #[arg(long, default_value_t = 20)]
    pub concurrent_gc_syncs: u16,

    /// The number of daemonset objects that are allowed to sync concurrently. Larger number
    /// = more responsive daemonset, but more CPU (and network) load.
    #[arg(long, default_value_t = 2)]
    pub concurrent_daemonset_syncs: u16,

    /// The number of job objects that are allowed to sync concurrently.
    #[arg(long, default_value_t = 5)]
    pub concurrent_job_syncs: u16,

    /// The number of cron job objects that are allowed to sync concurrently.
    #[arg(long, default_value_t = 5)]
    pub concurrent_cron_job_syncs: u16,

    /// The number of statefulset objects that are allowed to sync concurrently.
    #[arg(long, default_value_t = 5)]
    pub concurrent_statefulset_syncs: u16,

    /// The number of ttl-after-finished-controller workers that are allowed to sync
    /// concurrently.
    #[arg(long, default_value_t = 5)]
    pub concurrent_ttl_after_finished_syncs: u16,

    /// Number of terminated pods that can exist before the terminated pod garbage collector
    /// starts deleting terminated pods. If <= 0, the terminated pod garbage collector is
    /// disabled.
    #[arg(long, default_value_t = 12500)]
    pub terminated_pod_gc_threshold: i32,

    /// The maximum number of endpoints that will be added to an EndpointSlice.
    #[arg(long, default_value_t = 100)]
    pub max_endpoints_per_slice: usize,

    /// Amount of time which we allow running Node to be unresponsive before marking it
    /// unhealthy.
    #[arg(long, value_parser = parse_duration, default_value = "40s")]
    pub node_monitor_grace_period: Duration,

    /// The period for syncing NodeStatus in NodeController.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub node_monitor_period: Duration,

    /// Amount of time which we allow starting Node to be unresponsive before marking it
    /// unhealthy.
    #[arg(long, value_parser = parse_duration, default_value = "1m")]
    pub node_startup_grace_period: Duration,

    /// If set, this root certificate authority will be included in the kube-root-ca.crt
    /// ConfigMap of every namespace; defaults to the CA of --kubeconfig.
    #[arg(long)]
    pub root_ca_file: Option<PathBuf>,

    /// Filename containing a PEM-encoded private RSA or ECDSA key used to sign service
    /// account tokens (the legacy token Secrets).
    #[arg(long)]
    pub service_account_private_key_file: Option<PathBuf>,

    /// Filename containing a PEM-encoded X509 CA certificate used to issue cluster-scoped
    /// certificates (the `kubernetes.io` signers'); without it and the key, nothing is signed.
    #[arg(long)]
    pub cluster_signing_cert_file: Option<PathBuf>,

    /// Filename containing a PEM-encoded RSA or ECDSA private key used to sign cluster-scoped
    /// certificates.
    #[arg(long)]
    pub cluster_signing_key_file: Option<PathBuf>,

    /// The max length of duration signed certificates will be given. Individual CSRs may
    /// request shorter certs by setting spec.expirationSeconds.
    #[arg(long, value_parser = parse_duration, default_value = "8760h0m0s")]
    pub cluster_signing_duration: Duration,

    /// If true, use individual service account credentials for each controller: its API
    /// requests are made as `system:serviceaccount:kube-system:<controller>`, which the
    /// bootstrap RBAC policy authorizes.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub use_service_account_credentials: bool,

    #[command(flatten)]
    pub logging: LoggingArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_like_upstream() {
        let options = Options::parse_from([
            "kcm",
            "--leader-elect=false",
            "--controllers=*,-garbage-collector-controller",
        ]);
        assert!(!options.leader_election.leader_elect);
        assert_eq!(options.controllers, ["*", "-garbage-collector-controller"]);
        let defaults = Options::parse_from(["kcm"]);
        assert!(defaults.leader_election.leader_elect);
        assert_eq!(
            defaults.leader_election.leader_elect_resource_name,
            "kube-controller-manager"
        );
        assert_eq!(
            defaults.leader_election.leader_elect_lease_duration,
            Duration::from_secs(15)
        );
        assert_eq!(defaults.serving.secure_port, 10257);
        assert_eq!(defaults.node_startup_grace_period, Duration::from_secs(60));
        assert!(!defaults.use_service_account_credentials);
        assert_eq!(
            defaults.cluster_signing_duration,
            Duration::from_secs(365 * 24 * 3600)
        );
        for flag in [
            "--use-service-account-credentials",
            "--use-service-account-credentials=true",
        ] {
            assert!(Options::parse_from(["kcm", flag]).use_service_account_credentials);
        }
        let verbose = Options::parse_from([
            "kcm",
            "--v=3",
            "--node-monitor-grace-period=1m30s",
            "--master=https://127.0.0.1:6443",
        ]);
        assert_eq!(verbose.logging.verbosity, 3);
        assert_eq!(verbose.node_monitor_grace_period, Duration::from_secs(90));
        assert_eq!(
            verbose.client.master.as_deref(),
            Some("https://127.0.0.1:6443")
        );
    }
}
