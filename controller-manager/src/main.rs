//! kube-controller-manager: the control loops that drive the cluster towards what its objects
//! ask for (ReplicaSets, Deployments, garbage collection, namespace deletion, service
//! endpoints, node health). It is only a client of the API server: everything it knows comes
//! from shared informers and everything it does is an API request.

mod controller_utils;
mod controllers;
mod events;
mod informers;
mod leaderelection;
mod metrics;
mod options;
mod runtime;
mod server;
mod workqueue;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use base64::Engine;
use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use controllers::ControllerContext;
use events::{Broadcaster, EventType};
use informers::Informers;
use leaderelection::LeaderElector;
use options::Options;

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    init_logging(options.verbosity);
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbosity: u8) {
    let default = match verbosity {
        0..=1 => "info",
        2..=4 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},kube_client=warn,kube_runtime=warn,hyper=warn,tower=warn")));
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).init();
}

async fn run(options: Options) -> Result<(), String> {
    let selected = controllers::selected(&options.controllers)?;
    let config = match &options.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.map_err(|e| e.to_string())?
        }
        None => Config::infer().await.map_err(|e| format!("no --kubeconfig and {e}"))?,
    };
    let root_ca = match &options.root_ca_file {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| format!("--root-ca-file {}: {e}", path.display()))?),
        None => config.root_cert.as_ref().map(|certs| certs.iter().map(|der| pem("CERTIFICATE", der)).collect()),
    };
    let client = Client::try_from(config).map_err(|e| e.to_string())?;
    if options.secure_port != 0 {
        server::serve(SocketAddr::new(options.bind_address, options.secure_port)).await?;
    }
    let options = Arc::new(options);
    let events = Broadcaster::start(client.clone());
    let start = |events: Broadcaster| {
        let ctx = ControllerContext {
            client: client.clone(),
            informers: Arc::new(Informers::new(client.clone())),
            events,
            options: options.clone(),
            root_ca: root_ca.clone(),
        };
        for controller in &selected {
            tracing::info!(controller = controller.name, "starting controller");
            (controller.start)(&ctx);
        }
        ctx.informers.start();
    };
    if !options.leader_elect {
        start(events);
        return std::future::pending().await;
    }
    let identity = format!("{}_{}", hostname(), uuid::Uuid::new_v4());
    let elector = LeaderElector::new(client.clone(), &options, identity);
    elector.acquire().await;
    let lease: kube::Api<Lease> = kube::Api::namespaced(client.clone(), &options.leader_elect_resource_namespace);
    if let Ok(lease) = lease.get(&options.leader_elect_resource_name).await {
        let message = format!("{} became leader", elector.identity());
        events.recorder("kube-controller-manager").event(&lease, EventType::Normal, "LeaderElection", message);
    }
    start(events);
    elector.hold().await;
    Err("leaderelection lost".into())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}

/// A DER blob as PEM.
fn pem(label: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}
