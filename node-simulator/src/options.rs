//! Command-line flags and the optional YAML file describing the simulated nodes. Flags that
//! kubelet also has (`--node-labels`, `--register-with-taints`, `--max-pods`,
//! `--node-status-report-frequency`, `--node-lease-duration-seconds`) keep kubelet's names.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Taint;
use machinery::client::ClientArgs;
use machinery::duration::parse_duration;
use machinery::logging::LoggingArgs;
use regex::Regex;
use serde::Deserialize;

use crate::image::DEFAULT_MISSING_IMAGES;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "node-simulator",
    version,
    about = "Simulated kubelets: nodes and pods without containers"
)]
pub struct Options {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub logging: LoggingArgs,
    /// How many nodes to simulate (ignored with --config).
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Node names are this prefix and an index from 0 (ignored with --config).
    #[arg(long, default_value = "node-")]
    pub node_name_prefix: String,
    /// CPU capacity of each node.
    #[arg(long, default_value = "32")]
    pub cpu: String,
    /// Memory capacity of each node.
    #[arg(long, default_value = "256Gi")]
    pub memory: String,
    /// Ephemeral storage capacity of each node.
    #[arg(long, default_value = "100Gi")]
    pub ephemeral_storage: String,
    /// Pods each node can run.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// Extra capacity, `name=quantity` (e.g. `example.com/gpu=4`); repeatable.
    #[arg(long = "extended-resource", value_parser = parse_pair)]
    pub extended_resources: Vec<(String, String)>,
    /// Labels of each node, `key=value,...`.
    #[arg(long, value_delimiter = ',', value_parser = parse_pair)]
    pub node_labels: Vec<(String, String)>,
    /// Taints of each node, `key=value:Effect,...` (value optional).
    #[arg(long, value_delimiter = ',', value_parser = parse_taint)]
    pub register_with_taints: Vec<Taint>,
    /// YAML file of node groups, replacing the per-node flags above (see the README).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Pod CIDRs of the nodes are consecutive subnets of this range.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: Ipv4Net,
    /// Prefix length of each node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// Lifetime of the node Leases; they are renewed every quarter of it, like kubelet's.
    #[arg(long, default_value_t = 40)]
    pub node_lease_duration_seconds: i32,
    /// How often node status is posted when nothing changes (heartbeats go through Leases).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub node_status_report_frequency: Duration,
    /// How long a pod stays in ContainerCreating before it runs.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub pod_startup_delay: Duration,
    /// API requests (status updates, lease renewals, deletions) in flight at once.
    #[arg(long, default_value_t = 32)]
    pub max_concurrent_requests: usize,
    /// Images whose pulls fail (`ErrImagePull`, then `ImagePullBackOff`): a regular
    /// expression matched against each container's image. The default catches the usual
    /// placeholders for a missing image (`nginx:404`, `:doesnotexist`, `:nonexistent`,
    /// `does-not-exist`, `invalid`, `notexist`); `'^$'` makes every image pullable.
    #[arg(long, default_value = DEFAULT_MISSING_IMAGES)]
    pub missing_images: Regex,
    /// Give every node its own identity, as kubelet's TLS bootstrap does: each requests a
    /// client certificate for `system:node:<name>` through a CertificateSigningRequest (which
    /// the controller-manager approves and signs) and makes its node, lease and pod writes
    /// with it, so the Node authorizer and NodeRestriction apply. The --kubeconfig identity
    /// then only requests the certificates and watches pods and nodes for all of them.
    #[arg(long)]
    pub tls_bootstrap: bool,
}

/// Why `--config` gave no node groups.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
}

/// A `--node-labels`, `--extended-resource` or `--register-with-taints` value that clap
/// refuses with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("expected key=value, got {0:?}")]
    Pair(String),
    #[error("expected key=value:Effect, got {0:?}")]
    Taint(String),
    #[error("invalid taint effect {0:?}")]
    Effect(String),
}

/// A set of identical nodes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeGroup {
    pub name_prefix: String,
    pub count: usize,
    /// Capacity by resource name; cpu, memory, ephemeral-storage and pods default to the
    /// flags' values.
    #[serde(default)]
    pub capacity: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
}

/// The `--config` file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigFile {
    node_groups: Vec<NodeGroup>,
}

impl Options {
    fn default_capacity(&self) -> BTreeMap<String, String> {
        let mut capacity: BTreeMap<String, String> = [
            ("cpu".to_string(), self.cpu.clone()),
            ("memory".to_string(), self.memory.clone()),
            (
                "ephemeral-storage".to_string(),
                self.ephemeral_storage.clone(),
            ),
            ("pods".to_string(), self.max_pods.to_string()),
        ]
        .into();
        capacity.extend(self.extended_resources.iter().cloned());
        capacity
    }

    /// The node groups to simulate: from --config, or one group from the flags.
    pub fn node_groups(&self) -> Result<Vec<NodeGroup>, ConfigError> {
        let defaults = self.default_capacity();
        let Some(path) = &self.config else {
            return Ok(vec![NodeGroup {
                name_prefix: self.node_name_prefix.clone(),
                count: self.nodes,
                capacity: defaults,
                labels: self.node_labels.iter().cloned().collect(),
                taints: self.register_with_taints.clone(),
            }]);
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let file: ConfigFile =
            serde_yaml_ng::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.clone(),
                source,
            })?;
        Ok(file
            .node_groups
            .into_iter()
            .map(|mut group| {
                for (name, quantity) in &defaults {
                    group
                        .capacity
                        .entry(name.clone())
                        .or_insert_with(|| quantity.clone());
                }
                group
            })
            .collect())
    }
}

fn parse_pair(text: &str) -> Result<(String, String), FlagError> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| FlagError::Pair(text.to_string()))?;
    Ok((key.to_string(), value.to_string()))
}

/// kubelet's taint syntax: `key=value:Effect` or `key:Effect`.
fn parse_taint(text: &str) -> Result<Taint, FlagError> {
    let (key_value, effect) = text
        .rsplit_once(':')
        .ok_or_else(|| FlagError::Taint(text.to_string()))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(FlagError::Effect(effect.to_string()));
    }
    let (key, value) = match key_value.split_once('=') {
        Some((key, value)) => (key, Some(value.to_string())),
        None => (key_value, None),
    };
    Ok(Taint {
        key: key.to_string(),
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_style_flags() {
        let options = Options::parse_from([
            "node-simulator",
            "--nodes=3",
            "--node-labels=zone=a,disk=ssd",
            "--register-with-taints=dedicated=infra:NoSchedule,spot:PreferNoSchedule",
            "--extended-resource=example.com/gpu=2",
            "--node-status-report-frequency=1m30s",
        ]);
        let groups = options.node_groups().unwrap();
        assert_eq!(groups[0].count, 3);
        assert_eq!(groups[0].labels["disk"], "ssd");
        assert_eq!(groups[0].taints[0].value.as_deref(), Some("infra"));
        assert_eq!(groups[0].taints[1].key, "spot");
        assert_eq!(groups[0].capacity["example.com/gpu"], "2");
        assert_eq!(groups[0].capacity["pods"], "110");
        assert_eq!(
            options.node_status_report_frequency,
            Duration::from_secs(90)
        );
    }

    #[test]
    fn yaml_groups_fill_in_default_capacity() {
        let dir = std::env::temp_dir().join(format!("node-simulator-test-{}", std::process::id()));
        std::fs::write(
            &dir,
            "nodeGroups:\n- namePrefix: gpu-\n  count: 2\n  capacity: {cpu: \"8\", example.com/gpu: \"4\"}\n  labels: {zone: a}\n  taints:\n  - {key: gpu, value: \"true\", effect: NoSchedule}\n",
        )
        .unwrap();
        let options = Options::parse_from(["node-simulator", "--config", dir.to_str().unwrap()]);
        let groups = options.node_groups().unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(groups[0].name_prefix, "gpu-");
        assert_eq!(groups[0].capacity["cpu"], "8");
        assert_eq!(groups[0].capacity["memory"], "256Gi");
        assert_eq!(groups[0].taints[0].effect, "NoSchedule");
    }

    #[test]
    fn bad_taints_are_rejected() {
        assert_eq!(
            parse_taint("key=value"),
            Err(FlagError::Taint("key=value".into()))
        );
        assert_eq!(
            parse_taint("key=value:Sometimes"),
            Err(FlagError::Effect("Sometimes".into()))
        );
    }
}
