//! The HTTPS endpoint on `--secure-port`: `/healthz` for liveness probes and `/metrics` for
//! Prometheus. Like upstream without `--tls-cert-file`, it serves a self-signed certificate
//! generated at start-up.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::metrics;

/// Binds `address` and serves until the process ends.
pub async fn serve(address: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(address).await.map_err(|e| format!("listen on {address}: {e}"))?;
    let acceptor = TlsAcceptor::from(Arc::new(tls_config()?));
    let app = Router::new().route("/healthz", get(|| async { "ok" })).route("/metrics", get(|| async { metrics::render() }));
    tracing::info!(%address, "serving securely");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(app)).await;
            });
        }
    });
    Ok(())
}

fn tls_config() -> Result<rustls::ServerConfig, String> {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(|e| format!("self-signed certificate: {e}"))?;
    let cert = CertificateDer::from(generated.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
