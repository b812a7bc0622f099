//! `kube-apiserver`: the Kubernetes API over HTTPS, persisted to the embedded store or etcd.

mod apply;
mod authn;
mod discovery;
mod error;
mod metrics;
mod openapi;
mod options;
mod patch;
mod pki;
mod protobuf;
mod registry;
mod resources;
mod routes;
mod server;
mod tls;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let options = options::Options::parse();
    match server::run(options).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "kube-apiserver failed to start");
            eprintln!("kube-apiserver: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
