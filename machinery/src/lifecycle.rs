//! The end of a component's life: SIGTERM (what the kubelet and systemd send) or SIGINT.
//! Binaries pass this future down to whatever must clean up on the way out (the leader
//! lease above all, so a standby takes over at once instead of after the lease expires).

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

/// The future that resolves when the component is told to stop.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A component's `main` after its flags are parsed: logging at `verbosity` (unless
/// `RUST_LOG` says otherwise), `body` run with the [`shutdown_signal`] it must stop on, and
/// its outcome as the exit code.
pub async fn run<F, Fut, E>(component: &str, verbosity: u8, body: F) -> ExitCode
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    crate::logging::init(verbosity);
    exit_code(component, body(Box::pin(shutdown_signal())).await)
}

/// The exit code of a component whose run ended with `result`; an error is logged first.
pub fn exit_code<E: Display>(component: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "{component} stopped");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("received SIGTERM, shutting down"),
                _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT, shutting down"),
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot watch for SIGTERM; only SIGINT stops this process cleanly");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
