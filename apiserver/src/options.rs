//! Command-line flags, named as upstream's kube-apiserver names them so that scripts and
//! muscle memory carry over.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "kube-apiserver",
    version,
    about = "The Kubernetes API server, in Rust"
)]
pub struct Options {
    /// Port serving HTTPS with authentication.
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: IpAddr,
    /// Address advertised to clients (kubeconfigs, the `kubernetes` service endpoints);
    /// defaults to --bind-address, or 127.0.0.1 when that is unspecified.
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,
    /// Directory of the generated PKI and kubeconfigs; ignored for files given explicitly.
    #[arg(long, default_value = "/var/run/kubernetes")]
    pub cert_dir: PathBuf,
    /// Directory of the embedded store, used unless --etcd-servers is given.
    #[arg(long, default_value = "/var/lib/kube-apiserver")]
    pub data_dir: PathBuf,
    /// etcd endpoints (comma-separated URLs): store objects in etcd instead.
    #[arg(long, value_delimiter = ',')]
    pub etcd_servers: Vec<String>,
    /// Key prefix of every object in the store.
    #[arg(long, default_value = store::DEFAULT_PREFIX)]
    pub etcd_prefix: String,
    /// Interval of storage compaction (Go duration syntax, e.g. 5m0s).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub etcd_compaction_interval: Duration,
    /// CIDR from which service ClusterIPs are allocated.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: IpNet,
    /// Port range reserved for NodePort services.
    #[arg(long, default_value = "30000-32767")]
    pub service_node_port_range: String,
    /// CA bundle that client certificates must chain to (default: the generated CA).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Serving certificate (default: generated in --cert-dir).
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Static bearer tokens, CSV: token,user,uid,"group1,group2".
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
}

impl Options {
    pub fn advertise_address(&self) -> IpAddr {
        self.advertise_address
            .unwrap_or(if self.bind_address.is_unspecified() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                self.bind_address
            })
    }
}

/// Parses Go's duration syntax (`300ms`, `1m30s`, `5m0s`, `2h`), which upstream flags use.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest == "0" {
        return Ok(total);
    }
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        let unit = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit);
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
    fn go_durations_parse() {
        assert_eq!(parse_duration("5m0s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5 minutes").is_err());
    }
}
