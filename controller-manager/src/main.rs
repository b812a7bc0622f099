//! kube-controller-manager: the control loops that drive the cluster towards what its objects
//! ask for (ReplicaSets, Deployments, garbage collection, namespace deletion, service
//! endpoints, node health). It is only a client of the API server: everything it knows comes
//! from shared informers and everything it does is an API request.

mod clientbuilder;
mod controller_utils;
mod controllers;
mod events;
mod hash;
mod history;
mod informers;
mod metrics;
mod options;
mod runtime;
mod workqueue;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use kube::{Client, Config};
use machinery::client::ClientError;
use machinery::leaderelection::{self, LeaderElectionError};
use machinery::server::{Check, ComponentServer, ServerError};

use clientbuilder::ClientBuilder;
use controllers::{rootcacertpublisher, ControllerContext, Descriptor, UnknownController};
use events::Broadcaster;
use informers::Informers;
use options::Options;

/// Why the controller manager stopped.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Controllers(#[from] UnknownController),
    #[error(transparent)]
    RootCa(#[from] rootcacertpublisher::RootCaError),
    #[error("--service-account-private-key-file: {0}")]
    ServiceAccountKey(#[from] machinery::serviceaccount::keys::KeyError),
    #[error("failed to start the certificate signing controller: {0}")]
    ClusterSigner(#[from] controllers::certificates::authority::LoadError),
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
    let _ = rustls::crypto::ring::default_provider().install_default();
    let verbosity = options.logging.verbosity;
    machinery::lifecycle::run("kube-controller-manager", verbosity, |shutdown| {
        run(options, shutdown)
    })
    .await
}

/// Runs the selected controllers (once leading, with leader election) until `shutdown`
/// resolves, releasing the leader lease on the way out.
async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let selected = controllers::selected(&options.controllers)?;
    let config = options.client.config().await?;
    let root_ca = rootcacertpublisher::root_ca(options.root_ca_file.as_deref(), &config)?;
    let service_account_key = match &options.service_account_private_key_file {
        Some(path) => Some(Arc::new(
            machinery::serviceaccount::keys::SigningKey::from_file(path)?,
        )),
        None => None,
    };
    let cluster_signer = controllers::certificates::signer::authority(&options)?.map(Arc::new);
    let client = Client::try_from(config.clone()).map_err(ClientError::from)?;
    let election = &options.leader_election;
    let elector = election
        .leader_elect
        .then(|| election.elector(client.clone(), leaderelection::identity()));
    if let Some(server) = ComponentServer::new(&options.serving) {
        let mut server = server.self_signed();
        if let Some(elector) = &elector {
            let health = elector.health();
            server = server.health_check(Check::new("leaderElection", move || health.check()));
        }
        server.start().await?;
    }
    let options = Arc::new(options);
    let events = Broadcaster::start(client.clone());
    // The context holds the informers: they watch for as long as the caller keeps it.
    let start = {
        let events = events.clone();
        move || async move {
            let clients = if options.use_service_account_credentials {
                controller_clients(&selected, &client, &config).await
            } else {
                HashMap::new()
            };
            let ctx = ControllerContext {
                client: client.clone(),
                clients,
                informers: Arc::new(Informers::new(client.clone())),
                events,
                options: options.clone(),
                root_ca,
                service_account_key,
                cluster_signer,
            };
            for controller in &selected {
                tracing::info!(controller = controller.name, "starting controller");
                (controller.start)(&ctx);
            }
            ctx.informers.start();
            ctx
        }
    };
    let Some(elector) = elector else {
        let _running = start().await;
        shutdown.await;
        return Ok(());
    };
    let elector = elector.with_recorder(events.recorder("kube-controller-manager"));
    elector
        .run(shutdown, move || async move {
            let _running = start().await;
            std::future::pending::<()>().await
        })
        .await?;
    Ok(())
}

/// `--use-service-account-credentials`: the selected controllers' own clients by controller
/// name, one per service account (controllers sharing an account share its client), made
/// once leading as upstream does, so a standby manager creates nothing.
async fn controller_clients(
    selected: &[&'static Descriptor],
    root: &Client,
    config: &Config,
) -> HashMap<&'static str, Client> {
    let builder = ClientBuilder::new(root.clone(), config);
    let accounts: BTreeSet<&'static str> =
        selected.iter().filter_map(|c| c.service_account).collect();
    let by_account: HashMap<&'static str, Client> =
        futures::future::join_all(accounts.into_iter().map(|account| {
            let builder = &builder;
            async move { (account, builder.client_for(account).await) }
        }))
        .await
        .into_iter()
        .collect();
    selected
        .iter()
        .filter_map(|c| Some((c.name, by_account.get(c.service_account?)?.clone())))
        .collect()
}
