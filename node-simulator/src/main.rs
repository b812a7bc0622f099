//! node-simulator: many kubelets in one process, without containers (like kwok). It
//! registers Nodes, keeps them alive with Lease heartbeats and status updates, and walks
//! every pod bound to them through kubelet's phases, so the rest of the control plane can be
//! exercised at scale on one machine.

mod image;
mod ipam;
mod node;
mod options;
mod pod;
mod simulator;

use std::future::Future;
use std::process::ExitCode;

use clap::Parser;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::image::Registry;
use crate::ipam::{node_cidr, Ipam};
use crate::node::{internal_ip, SimNode};
use crate::options::Options;
use crate::simulator::{Settings, Simulator};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    let verbosity = options.logging.verbosity;
    machinery::lifecycle::run("node-simulator", verbosity, |shutdown| {
        run(options, shutdown)
    })
    .await
}

/// The nodes the flags or --config describe, numbered across groups for their pod CIDRs
/// and IPs.
fn nodes(options: &Options) -> Result<Vec<SimNode>, Error> {
    let mut nodes = Vec::new();
    for group in options.node_groups()? {
        for i in 0..group.count {
            let index = nodes.len();
            nodes.push(SimNode {
                name: format!("{}{i}", group.name_prefix),
                uid: None,
                labels: group.labels.clone(),
                taints: group.taints.clone(),
                capacity: group
                    .capacity
                    .iter()
                    .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                    .collect(),
                internal_ip: internal_ip(index),
                ipam: Ipam::new(node_cidr(
                    options.cluster_cidr,
                    options.node_cidr_mask_size,
                    index,
                )?),
                machine_id: uuid::Uuid::new_v4().simple().to_string(),
                boot_id: uuid::Uuid::new_v4().to_string(),
                silenced: false,
                observed_conditions: Vec::new(),
                images: Default::default(),
            });
        }
    }
    Ok(nodes)
}

/// Simulates the nodes until `shutdown` resolves.
async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let nodes = nodes(&options)?;
    let client = options.client.client().await?;
    let settings = Settings {
        pod_startup_delay: options.pod_startup_delay,
        lease_duration_seconds: options.node_lease_duration_seconds,
        status_report_frequency: options.node_status_report_frequency,
        concurrency: options.max_concurrent_requests.max(1),
        registry: Registry::new(options.missing_images.clone()),
    };
    tokio::select! {
        result = Simulator::run(client, settings, nodes) => result?,
        () = shutdown => {}
    }
    Ok(())
}
