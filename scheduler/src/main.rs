//! kube-scheduler: assigns pods to nodes as upstream's default scheduler does, as a client of
//! the apiserver only. It watches nodes and pods, decides with upstream's default filter and
//! score plugins, binds through `pods/binding`, preempts lower-priority pods when nothing
//! fits, and runs as one active replica among standbys through a leader Lease.

mod algorithm;
mod cache;
mod informers;
mod metrics;
mod options;
mod plugins;
mod pod_info;
mod preemption;
mod queue;
mod resources;
mod scheduler;

use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;
use machinery::client::ClientError;
use machinery::events::Broadcaster;
use machinery::leaderelection::{self, LeaderElectionError};
use machinery::server::{Check, ComponentServer, ServerError};

use crate::metrics::Metrics;
use crate::options::Options;
use crate::scheduler::Scheduler;

/// Why the scheduler stopped.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    LeaderElection(#[from] LeaderElectionError),
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    let verbosity = options.logging.verbosity;
    machinery::lifecycle::run("kube-scheduler", verbosity, |shutdown| {
        run(options, shutdown)
    })
    .await
}

/// Schedules until `shutdown` resolves, releasing the leader lease on the way out.
async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let mut shutdown = std::pin::pin!(shutdown);
    let client = options.client.client().await?;
    let metrics = Arc::new(Metrics::new());
    let identity = leaderelection::identity();
    let election = &options.leader_election;
    let elector = election
        .leader_elect
        .then(|| election.elector(client.clone(), identity.clone()));
    let synced = Arc::new(AtomicBool::new(false));
    if let Some(server) = ComponentServer::new(&options.serving) {
        let synced = synced.clone();
        let mut server = server
            .self_signed()
            .registry(metrics.registry())
            .readiness_check(Check::new("sched-handler-sync", move || {
                synced
                    .load(Ordering::Relaxed)
                    .then_some(())
                    .ok_or_else(|| "waiting for handlers to sync".to_string())
            }));
        if let Some(elector) = &elector {
            let health = elector.health();
            server = server.health_check(Check::new("leaderElection", move || health.check()));
        }
        server.start().await?;
    }
    let instance = format!("{}-{}", options.scheduler_name, leaderelection::hostname());
    let events = Broadcaster::start(client.clone());
    let recorder = events.instance_recorder(&options.scheduler_name, &instance);
    let scheduler = Arc::new(Scheduler::new(
        options.scheduler_name.clone(),
        client.clone(),
        recorder,
        metrics,
    ));
    let _informers = tokio::select! {
        informers = informers::start(scheduler.clone(), client.clone()) => informers,
        () = &mut shutdown => return Ok(()),
    };
    synced.store(true, Ordering::Relaxed);
    tracing::info!("caches synced");

    let Some(elector) = elector else {
        tokio::select! {
            () = scheduler.run() => {}
            () = &mut shutdown => {}
        }
        return Ok(());
    };
    let elector = elector.with_recorder(events.recorder(&options.scheduler_name));
    elector
        .run(shutdown, || {
            tracing::info!(identity, "became leader; scheduling");
            scheduler.run()
        })
        .await?;
    Ok(())
}
