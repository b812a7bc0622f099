//! The component server on `--bind-address`:`--secure-port`, as upstream's component-base
//! serves it: `/healthz`, `/livez` and `/readyz` (named checks, `?verbose` lists them, a
//! failing one answers 500 with upstream's `[-]name failed: reason withheld`), and `/metrics`
//! in the Prometheus text format. Like upstream without `--tls-cert-file`, it can serve HTTPS
//! with a self-signed certificate generated at start-up.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::Query;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use prometheus::{Encoder, Registry, TextEncoder};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Upstream's serving flags, flattened into each component's options. The port has no
/// default here: each component sets its own (10259, 10257) with
/// `#[command(mut_arg("secure_port", ...))]`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServingArgs {
    /// The IP address on which to listen for the --secure-port port.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// The port on which to serve /healthz, /livez, /readyz and /metrics. If 0, don't serve
    /// at all.
    #[arg(long)]
    pub secure_port: u16,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("self-signed certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// A named health check: `Err` carries the reason, which is logged, not served.
#[derive(Clone)]
pub struct Check {
    name: &'static str,
    probe: Arc<dyn Fn() -> Result<(), String> + Send + Sync>,
}

impl Check {
    pub fn new(
        name: &'static str,
        probe: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) -> Check {
        Check {
            name,
            probe: Arc::new(probe),
        }
    }
}

/// The server to start, built up with its checks and metrics.
pub struct ComponentServer {
    address: SocketAddr,
    tls: bool,
    live: Vec<Check>,
    ready: Vec<Check>,
    registries: Vec<Registry>,
}

impl ComponentServer {
    /// A plain-HTTP server on the flags' address, serving the default Prometheus registry;
    /// `None` when `--secure-port=0` turns it off.
    pub fn new(args: &ServingArgs) -> Option<ComponentServer> {
        (args.secure_port != 0).then(|| ComponentServer {
            address: SocketAddr::new(args.bind_address, args.secure_port),
            tls: false,
            live: Vec::new(),
            ready: Vec::new(),
            registries: vec![prometheus::default_registry().clone()],
        })
    }

    /// Serves HTTPS with a self-signed certificate.
    pub fn self_signed(mut self) -> Self {
        self.tls = true;
        self
    }

    /// A check of `/healthz`, `/livez` and `/readyz` (the leader-election watchdog).
    pub fn health_check(mut self, check: Check) -> Self {
        self.live.push(check.clone());
        self.ready.push(check);
        self
    }

    /// A check of `/readyz` only (caches synced).
    pub fn readiness_check(mut self, check: Check) -> Self {
        self.ready.push(check);
        self
    }

    /// Also serves the metrics of `registry` on `/metrics`.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registries.push(registry);
        self
    }

    fn router(self) -> Router {
        let live = Arc::new(self.live);
        let ready = Arc::new(self.ready);
        let registries = Arc::new(self.registries);
        let endpoint = |name: &'static str, checks: Arc<Vec<Check>>| {
            get(move |Query(query): Query<HashMap<String, String>>| {
                let checks = checks.clone();
                async move { run_checks(name, &checks, query.contains_key("verbose")) }
            })
        };
        Router::new()
            .route("/healthz", endpoint("healthz", live.clone()))
            .route("/livez", endpoint("livez", live))
            .route("/readyz", endpoint("readyz", ready))
            .route(
                "/metrics",
                get(move || {
                    let registries = registries.clone();
                    async move {
                        (
                            [(CONTENT_TYPE, "text/plain; version=0.0.4")],
                            render(&registries),
                        )
                    }
                }),
            )
    }

    /// Binds the address and serves in the background; fails only if it cannot start.
    pub async fn start(self) -> Result<(), ServerError> {
        let address = self.address;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| ServerError::Listen { address, source })?;
        let tls = self.tls;
        let app = self.router();
        if !tls {
            tracing::info!(%address, "serving /healthz, /livez, /readyz and /metrics");
            tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, app).await {
                    tracing::error!(%error, "component server stopped");
                }
            });
            return Ok(());
        }
        let acceptor = TlsAcceptor::from(Arc::new(self_signed_config()?));
        tracing::info!(%address, "serving securely /healthz, /livez, /readyz and /metrics");
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                        .await;
                });
            }
        });
        Ok(())
    }
}

/// Upstream's answer: `ok`, or with `?verbose` (or on failure) one line per check.
fn run_checks(endpoint: &str, checks: &[Check], verbose: bool) -> (StatusCode, String) {
    let mut lines = vec!["[+]ping ok".to_string()];
    let mut failed = false;
    for check in checks {
        match (check.probe)() {
            Ok(()) => lines.push(format!("[+]{} ok", check.name)),
            Err(reason) => {
                tracing::warn!(check = check.name, %reason, "{endpoint} check failed");
                lines.push(format!("[-]{} failed: reason withheld", check.name));
                failed = true;
            }
        }
    }
    if failed {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}\n{endpoint} check failed\n", lines.join("\n")),
        );
    }
    if verbose {
        return (
            StatusCode::OK,
            format!("{}\n{endpoint} check passed\n", lines.join("\n")),
        );
    }
    (StatusCode::OK, "ok".into())
}

/// Every metric of the registries, in the Prometheus text format.
fn render(registries: &[Registry]) -> Vec<u8> {
    let families: Vec<_> = registries.iter().flat_map(Registry::gather).collect();
    let mut out = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&families, &mut out) {
        tracing::warn!(%error, "could not encode metrics");
    }
    out
}

fn self_signed_config() -> Result<rustls::ServerConfig, ServerError> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    let cert = CertificateDer::from(generated.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_answer_like_upstream() {
        let ok = Check::new("leaderElection", || Ok(()));
        let failing = Check::new("sched-handler-sync", || Err("not synced".into()));
        assert_eq!(
            run_checks("healthz", std::slice::from_ref(&ok), false),
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(
            run_checks("healthz", std::slice::from_ref(&ok), true),
            (
                StatusCode::OK,
                "[+]ping ok\n[+]leaderElection ok\nhealthz check passed\n".into()
            )
        );
        assert_eq!(
            run_checks("readyz", &[ok, failing], false),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "[+]ping ok\n[+]leaderElection ok\n[-]sched-handler-sync failed: reason withheld\nreadyz check failed\n".into()
            )
        );
    }

    #[tokio::test]
    async fn serves_checks_and_metrics_over_http() {
        use std::io::{Read, Write};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let registry = Registry::new();
        let counter =
            prometheus::IntCounter::new("machinery_test_total", "A test counter").unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        counter.inc();
        let args = ServingArgs {
            bind_address: "127.0.0.1".parse().unwrap(),
            secure_port: port,
        };
        let server = ComponentServer::new(&args).unwrap();
        server
            .registry(registry)
            .readiness_check(Check::new("never", || Err("no".into())))
            .start()
            .await
            .unwrap();
        let get = |path: &'static str| {
            tokio::task::spawn_blocking(move || {
                let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
                let mut response = String::new();
                stream.read_to_string(&mut response).unwrap();
                response
            })
        };
        assert!(get("/healthz").await.unwrap().ends_with("\r\n\r\nok"));
        assert!(get("/readyz").await.unwrap().starts_with("HTTP/1.0 500"));
        assert!(get("/metrics")
            .await
            .unwrap()
            .contains("machinery_test_total 1"));
        let off = ServingArgs {
            secure_port: 0,
            ..args
        };
        assert!(ComponentServer::new(&off).is_none());
    }
}
