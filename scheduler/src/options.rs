//! Command-line flags, named as upstream's kube-scheduler names them.

use clap::Parser;
use machinery::client::ClientArgs;
use machinery::leaderelection::LeaderElectionArgs;
use machinery::logging::LoggingArgs;
use machinery::server::ServingArgs;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "kube-scheduler",
    version,
    about = "The Kubernetes scheduler, in Rust"
)]
#[command(mut_arg("leader_elect_resource_name", |a| a.default_value("kube-scheduler").required(false)))]
#[command(mut_arg("secure_port", |a| a.default_value("10259").required(false)))]
pub struct Options {
    #[command(flatten)]
    pub client: ClientArgs,
    /// `/healthz`, `/livez`, `/readyz` and `/metrics`, over HTTPS with a self-signed
    /// certificate like upstream's.
    #[command(flatten)]
    pub serving: ServingArgs,
    #[command(flatten)]
    pub leader_election: LeaderElectionArgs,
    #[command(flatten)]
    pub logging: LoggingArgs,
    /// Pods whose `spec.schedulerName` is this are scheduled (the default profile's name).
    #[arg(long, default_value = "default-scheduler")]
    pub scheduler_name: String,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn upstream_defaults() {
        let options = Options::parse_from(["kube-scheduler"]);
        let election = &options.leader_election;
        assert!(election.leader_elect);
        assert_eq!(election.leader_elect_resource_name, "kube-scheduler");
        assert_eq!(election.leader_elect_resource_namespace, "kube-system");
        assert_eq!(
            election.leader_elect_lease_duration,
            Duration::from_secs(15)
        );
        assert_eq!(
            election.leader_elect_renew_deadline,
            Duration::from_secs(10)
        );
        assert_eq!(election.leader_elect_retry_period, Duration::from_secs(2));
        assert_eq!(options.serving.secure_port, 10259);
        assert_eq!(options.logging.verbosity, 0);
    }

    #[test]
    fn leader_election_is_on_by_default_and_can_be_turned_off() {
        let options = Options::parse_from(["kube-scheduler", "--leader-elect=false"]);
        assert!(!options.leader_election.leader_elect);
        let options = Options::parse_from([
            "kube-scheduler",
            "--leader-elect",
            "--leader-elect-lease-duration=1m30s",
            "-v=4",
        ]);
        assert!(options.leader_election.leader_elect);
        assert_eq!(
            options.leader_election.leader_elect_lease_duration,
            Duration::from_secs(90)
        );
        assert_eq!(options.logging.verbosity, 4);
        assert!(Options::try_parse_from([
            "kube-scheduler",
            "--leader-elect-retry-period=5 parsecs"
        ])
        .is_err());
        assert!(Options::try_parse_from([
            "kube-scheduler",
            "--leader-elect-resource-lock=endpoints"
        ])
        .is_err());
    }
}
