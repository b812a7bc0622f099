//! kube-scheduler: assigns pods to nodes as upstream's default scheduler does, as a client of
//! the apiserver only. It watches nodes and pods, decides with upstream's default filter and
//! score plugins, binds through `pods/binding`, preempts lower-priority pods when nothing
//! fits, and runs as one active replica among standbys through a leader Lease.

mod algorithm;
mod cache;
mod informers;
mod leader;
mod metrics;
mod options;
mod plugins;
mod pod_info;
mod preemption;
mod quantity;
mod queue;
mod recorder;
mod resources;
mod scheduler;
mod selector;
mod server;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

use crate::leader::{LeaderElector, Timing};
use crate::metrics::Metrics;
use crate::options::Options;
use crate::recorder::Recorder;
use crate::scheduler::Scheduler;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(Options::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "kube-scheduler stopped");
            ExitCode::FAILURE
        }
    }
}

async fn client(options: &Options) -> Result<kube::Client, Error> {
    let mut config = match &options.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    if let Some(master) = &options.master {
        config.cluster_url = master.parse()?;
    }
    Ok(kube::Client::try_from(config)?)
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn run(options: Options) -> Result<(), Error> {
    let client = client(&options).await?;
    let metrics = Arc::new(Metrics::new());
    if options.secure_port != 0 {
        server::serve(SocketAddr::new(options.bind_address, options.secure_port), metrics.clone()).await?;
    }
    let identity = leader::identity();
    let instance = format!("{}-{}", options.scheduler_name, identity.split('_').next().unwrap_or_default());
    let recorder = Recorder::start(client.clone(), &options.scheduler_name, &instance);
    let scheduler = Arc::new(Scheduler::new(options.scheduler_name.clone(), client.clone(), recorder, metrics.clone()));
    tokio::select! {
        _ = informers::start(scheduler.clone(), client.clone()) => {}
        _ = shutdown_signal() => return Ok(()),
    }
    tracing::info!("caches synced");

    if !options.leader_elect {
        tokio::select! {
            _ = scheduler.run() => {}
            _ = shutdown_signal() => {}
        }
        return Ok(());
    }
    let lease = options.leader_elect_resource_name.clone();
    let timing = Timing {
        lease_duration: options.leader_elect_lease_duration,
        renew_deadline: options.leader_elect_renew_deadline,
        retry_period: options.leader_elect_retry_period,
    };
    let api: Api<Lease> = Api::namespaced(client, &options.leader_elect_resource_namespace);
    let mut elector = LeaderElector::new(api, lease.clone(), identity, timing);
    let leader = metrics.leader.with_label_values(&[lease.as_str()]);
    leader.set(0);
    tokio::select! {
        _ = elector.acquire() => {}
        _ = shutdown_signal() => return Ok(()),
    }
    leader.set(1);
    tracing::info!(identity = elector.identity(), "became leader; scheduling");
    tokio::spawn(scheduler.run());
    tokio::select! {
        _ = elector.hold() => {
            leader.set(0);
            Err("leaderelection lost".into())
        }
        _ = shutdown_signal() => {
            elector.release().await;
            Ok(())
        }
    }
}
