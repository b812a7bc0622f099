//! The health and metrics endpoints: `/healthz`, `/livez`, `/readyz` and `/metrics`, over
//! plain HTTP (upstream serves them over HTTPS on the same port).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;

/// Binds `address` and serves in the background; fails only if the address cannot be bound.
pub async fn serve(address: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { ([(CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render()) }
            }),
        );
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(%address, "serving /healthz and /metrics");
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "health and metrics server stopped");
        }
    });
    Ok(())
}
