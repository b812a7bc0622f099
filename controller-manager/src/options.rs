//! Command-line flags, with upstream kube-controller-manager's names and defaults so existing
//! manifests and scripts start this binary unchanged.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

/// The Kubernetes controller manager is a daemon that embeds the core control loops shipped
/// with Kubernetes.
#[derive(Parser, Debug, Clone)]
#[command(name = "kube-controller-manager", version)]
pub struct Options {
    /// Path to kubeconfig file with authorization and master location information.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// A list of controllers to enable. '*' enables all on-by-default controllers, 'foo'
    /// enables the controller named 'foo', '-foo' disables the controller named 'foo'.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,

    /// Start a leader election client and gain leadership before executing the main loop.
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,

    /// The duration that non-leader candidates will wait after observing a leadership renewal
    /// until attempting to acquire leadership of a led but unrenewed leader slot.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub leader_elect_lease_duration: Duration,

    /// The interval between attempts by the acting master to renew a leadership slot before
    /// it stops leading.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub leader_elect_renew_deadline: Duration,

    /// The duration the clients should wait between attempting acquisition and renewal of a
    /// leadership.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub leader_elect_retry_period: Duration,

    /// The name of resource object that is used for locking during leader election.
    #[arg(long, default_value = "kube-controller-manager")]
    pub leader_elect_resource_name: String,

    /// The namespace of resource object that is used for locking during leader election.
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,

    /// The port on which to serve HTTPS (/healthz, /metrics). If 0, don't serve at all.
    #[arg(long, default_value_t = 10257)]
    pub secure_port: u16,

    /// The IP address on which to listen for the --secure-port port.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,

    /// The number of replica sets that are allowed to sync concurrently.
    #[arg(long, default_value_t = 5)]
    pub concurrent_replicaset_syncs: u16,

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

    /// Number for the log level verbosity.
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,
}

/// Parses a Go duration (`300ms`, `40s`, `1m30s`, `1.5h`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let invalid = || format!("invalid duration {text:?}");
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(invalid)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn flags_parse_like_upstream() {
        let options = Options::parse_from(["kcm", "--leader-elect=false", "--controllers=*,-garbage-collector-controller"]);
        assert!(!options.leader_elect);
        assert_eq!(options.controllers, ["*", "-garbage-collector-controller"]);
        assert!(Options::parse_from(["kcm"]).leader_elect);
    }
}
