//! node-simulator: many kubelets in one process, without containers (like kwok). It
//! registers Nodes, keeps them alive with Lease heartbeats and status updates, and walks
//! every pod bound to them through kubelet's phases, so the rest of the control plane can be
//! exercised at scale on one machine.

mod identity;
mod image;
mod ipam;
mod lifecycle;
mod node;
mod options;
mod pod;
mod program;
mod simulator;

use std::collections::HashMap;
use std::future::Future;

use futures::{StreamExt, TryStreamExt};
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
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
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
    let config = options.client.config().await?;
    let client =
        kube::Client::try_from(config.clone()).map_err(machinery::client::ClientError::from)?;
    let node_clients = if options.tls_bootstrap {
        node_identities(&client, &config, &nodes).await?
    } else {
        HashMap::new()
    };
    let settings = Settings {
        pod_startup_delay: options.pod_startup_delay,
        lease_duration_seconds: options.node_lease_duration_seconds,
        status_report_frequency: options.node_status_report_frequency,
        concurrency: options.max_concurrent_requests.max(1),
        registry: Registry::new(options.missing_images.clone()),
    };
    tokio::select! {
        result = Simulator::run(client, node_clients, settings, nodes) => result.map_err(Error::Register)?,
        () = shutdown => {}
    }
    Ok(())
}

/// Each node's own client, their certificates requested a few at a time (the signer answers
/// them in one pass of its queue).
async fn node_identities(
    client: &kube::Client,
    config: &kube::Config,
    nodes: &[node::SimNode],
) -> Result<HashMap<String, kube::Client>, identity::IdentityError> {
    futures::stream::iter(nodes.iter().map(|n| n.name.clone()))
        .map(|name| async move {
            let node_client = identity::node_client(client, config, &name).await?;
            Ok((name, node_client))
        })
        .buffer_unordered(16)
        .try_collect()
        .await
}
