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

use crate::image::Registry;
use crate::options::Options;
use crate::simulator::{Settings, Simulator};

/// Why the simulator stopped.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Config(#[from] options::ConfigError),
    #[error(transparent)]
    Cidr(#[from] ipam::CidrError),
    #[error(transparent)]
    Client(#[from] machinery::client::ClientError),
    #[error("registering nodes: {0}")]
    Register(#[source] kube::Error),
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    let verbosity = options.logging.verbosity;
    machinery::lifecycle::run("node-simulator", verbosity, |shutdown| {
        run(options, shutdown)
    })
    .await
}

/// Simulates the nodes until `shutdown` resolves.
async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let nodes = node::from_groups(
        &options.node_groups()?,
        options.cluster_cidr,
        options.node_cidr_mask_size,
    )?;
    let client = options.client.client().await?;
    let settings = Settings {
        pod_startup_delay: options.pod_startup_delay,
        lease_duration_seconds: options.node_lease_duration_seconds,
        status_report_frequency: options.node_status_report_frequency,
        concurrency: options.max_concurrent_requests.max(1),
        registry: Registry::new(options.missing_images.clone()),
    };
    tokio::select! {
        result = Simulator::run(client, settings, nodes) => result.map_err(Error::Register)?,
        () = shutdown => {}
    }
    Ok(())
}
