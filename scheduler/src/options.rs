//! Command-line flags, named as upstream's kube-scheduler names them.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(name = "kube-scheduler", version, about = "The Kubernetes scheduler, in Rust")]
pub struct Options {
    /// Kubeconfig with the apiserver's address and credentials (default: in-cluster config
    /// or $KUBECONFIG).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The apiserver's address, overriding the kubeconfig's.
    #[arg(long)]
    pub master: Option<String>,
    /// Address serving /healthz and /metrics.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// Port serving /healthz and /metrics (plain HTTP); 0 disables serving.
    #[arg(long, default_value_t = 10259)]
    pub secure_port: u16,
    /// Elect a leader through a Lease before scheduling, so that only one of several
    /// replicas acts at a time.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// How long followers wait after the leader's last renewal before taking over.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader keeps retrying a failing renewal before giving up leadership.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// How often candidates try to acquire, and the leader renews, the lease.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
    /// The lock object type; only `leases` is supported, as upstream's default.
    #[arg(long, default_value = "leases", value_parser = ["leases"])]
    pub leader_elect_resource_lock: String,
    #[arg(long, default_value = "kube-scheduler")]
    pub leader_elect_resource_name: String,
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,
    /// Pods whose `spec.schedulerName` is this are scheduled (the default profile's name).
    #[arg(long, default_value = "default-scheduler")]
    pub scheduler_name: String,
}

/// Parses Go's duration syntax (`500ms`, `15s`, `1m30s`), which upstream's flags use.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut rest = text.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, tail) = rest.split_at(split);
        let number: f64 = number.parse().map_err(|_| format!("invalid duration {text:?}"))?;
        let unit_end = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let seconds = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("invalid duration {text:?}: unknown unit {unit:?}")),
        };
        total += Duration::from_secs_f64(number * seconds);
        rest = tail;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn leader_election_is_on_by_default_and_can_be_turned_off() {
        let options = Options::parse_from(["kube-scheduler"]);
        assert!(options.leader_elect);
        let options = Options::parse_from(["kube-scheduler", "--leader-elect=false"]);
        assert!(!options.leader_elect);
    }
}
