//! Command-line flags, named as upstream's kube-apiserver names them so that scripts and
//! muscle memory carry over.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;

use crate::resources::PortRange;

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
    #[arg(long, default_value = "5m", value_parser = machinery::duration::parse_duration)]
    pub etcd_compaction_interval: Duration,
    /// CIDR from which service ClusterIPs are allocated.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: IpNet,
    /// Port range reserved for NodePort services: `30000-32767`, `30000+2767` or one port.
    #[arg(long, default_value = "30000-32767")]
    pub service_node_port_range: PortRange,
    /// CA bundle that client certificates must chain to (default: the generated CA).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Serving certificate (default: generated in --cert-dir).
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Authorizers asked in order (comma-separated): `RBAC`, `Node`, `AlwaysAllow`,
    /// `AlwaysDeny`. The default is kubeadm's `Node,RBAC`, what clusters people learn on and
    /// test against run (upstream's binary alone defaults to AlwaysAllow).
    #[arg(long, value_delimiter = ',', default_value = "Node,RBAC")]
    pub authorization_mode: Vec<crate::authz::Mode>,
    /// Requests without credentials are `system:anonymous` (group `system:unauthenticated`)
    /// for the authorizers to judge. Ignored (off) when the only mode is AlwaysAllow, as
    /// upstream resets it.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub anonymous_auth: bool,
    /// Admission plugins enabled besides the default ones (comma-separated upstream names;
    /// the order does not matter, plugins run in upstream's order).
    #[arg(long, value_delimiter = ',')]
    pub enable_admission_plugins: Vec<String>,
    /// Admission plugins disabled although enabled by default (comma-separated upstream
    /// names).
    #[arg(long, value_delimiter = ',')]
    pub disable_admission_plugins: Vec<String>,
    /// Static bearer tokens, CSV: token,user,uid,"group1,group2".
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Private key (PEM: RSA, or EC P-256/P-384) signing service-account tokens (default:
    /// `sa.key` in --cert-dir, generated as ECDSA P-256 on the first start).
    #[arg(long)]
    pub service_account_signing_key_file: Option<PathBuf>,
    /// PEM file of public keys (or private keys, or certificates) that verify
    /// service-account tokens; repeatable (default: the signing key's public half).
    #[arg(long)]
    pub service_account_key_file: Vec<PathBuf>,
    /// Identifier of the service-account token issuer; repeatable: the first issues, all
    /// are accepted.
    #[arg(long, default_values_t = [crate::serviceaccount::DEFAULT_ISSUER.to_string()])]
    pub service_account_issuer: Vec<String>,
    /// Overrides the `jwks_uri` of the issuer discovery document (default: the JWKS path
    /// at the advertise address).
    #[arg(long)]
    pub service_account_jwks_uri: Option<String>,
    /// Audiences tokens must be for (comma-separated; default: the issuers).
    #[arg(long, value_delimiter = ',')]
    pub api_audiences: Vec<String>,
    /// Longest lifetime of a requested token (Go duration, 1h to 2^32s); 0: no limit.
    #[arg(long, default_value = "0s", value_parser = machinery::duration::parse_duration)]
    pub service_account_max_token_expiration: Duration,
    /// Pod-bound tokens requested for 3607 seconds (kubelet's) live a year and only warn
    /// after their requested lifetime.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub service_account_extend_token_expiration: bool,
    /// Non-mutating requests (get, list) served at once; more are answered 429 with
    /// Retry-After, except for system:masters. Watches do not count. 0: no limit.
    #[arg(long, default_value_t = 400)]
    pub max_requests_inflight: usize,
    /// Mutating requests served at once; more are answered 429. 0: no limit.
    #[arg(long, default_value_t = 200)]
    pub max_mutating_requests_inflight: usize,
    /// Time a request other than a watch may take before it is answered 504 (Go duration).
    #[arg(long, default_value = "1m0s", value_parser = machinery::duration::parse_duration)]
    pub request_timeout: Duration,
    /// Not an upstream flag: time a client has for its TLS handshake and for each request's
    /// headers (Go's ReadHeaderTimeout, which upstream fixes at 32s).
    #[arg(long, default_value = "32s", value_parser = machinery::duration::parse_duration)]
    pub read_header_timeout: Duration,
    /// Not an upstream flag: a connection with no request in progress is closed after this
    /// (upstream fixes it at 90s).
    #[arg(long, default_value = "1m30s", value_parser = machinery::duration::parse_duration)]
    pub idle_connection_timeout: Duration,
    /// Log verbosity (`-v`), like upstream's klog levels.
    #[command(flatten)]
    pub logging: machinery::logging::LoggingArgs,
    /// Not an upstream flag: connections served at once (default: the file limit, raised to
    /// its hard maximum, less a reserve). Further clients wait to be accepted.
    #[arg(long)]
    pub max_connections: Option<usize>,
}

impl Options {
    /// The `--service-account-*` and `--api-audiences` flags.
    pub fn service_accounts(&self) -> crate::serviceaccount::Flags {
        crate::serviceaccount::Flags {
            signing_key_file: self.service_account_signing_key_file.clone(),
            key_files: self.service_account_key_file.clone(),
            issuers: self.service_account_issuer.clone(),
            api_audiences: self.api_audiences.clone(),
            max_token_expiration: Some(self.service_account_max_token_expiration)
                .filter(|d| !d.is_zero()),
            extend_token_expiration: self.service_account_extend_token_expiration,
            jwks_uri: self.service_account_jwks_uri.clone(),
        }
    }

    /// The admission plugins `--enable-admission-plugins` and `--disable-admission-plugins`
    /// leave on.
    pub fn admission(&self) -> Result<crate::admission::Enabled, crate::admission::FlagError> {
        crate::admission::Enabled::from_flags(
            &self.enable_admission_plugins,
            &self.disable_admission_plugins,
        )
    }

    pub fn advertise_address(&self) -> IpAddr {
        self.advertise_address
            .unwrap_or(if self.bind_address.is_unspecified() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                self.bind_address
            })
    }
}
