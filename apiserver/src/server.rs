//! Start-up: the store, the PKI, the registry and the listener, in the order that lets
//! `/readyz` turn true only once everything answers.

use std::net::SocketAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use store::embedded::{EmbeddedConfig, EmbeddedStore};
use store::etcd::{EtcdConfig, EtcdStore};
use store::Store;

use crate::authn::{Authenticator, TokenFileError};
use crate::authz::{Chain, Mode};
use crate::discovery::Discovery;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::options::Options;
use crate::pki::{self, PkiRequest, ServingFiles};
use crate::registry::stored;
use crate::routes::{router, App};
use crate::serviceaccount::ServiceAccounts;
use crate::tls::TlsError;

/// Namespaces every cluster has from its first start.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Store(#[from] store::Error),
    #[error("certificates: {0}")]
    Pki(#[from] pki::PkiError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Admission(#[from] crate::admission::FlagError),
    #[error("token auth file: {0}")]
    TokenFile(#[from] TokenFileError),
    #[error(transparent)]
    ServiceAccounts(#[from] crate::serviceaccount::SetupError),
    /// A system namespace or priority class could not be encoded for the store. (The
    /// request errors are boxed: they would make every start-up `Result` large.)
    #[error("encoding {key}: {source}")]
    Encode { key: String, source: Box<ApiError> },
    #[error("kubernetes service: {0}")]
    KubernetesService(#[source] Box<ApiError>),
    #[error(transparent)]
    BootstrapPolicy(#[from] crate::authz::bootstrap::BootstrapError),
    #[error("authorization: {0}")]
    Authorization(#[source] Box<ApiError>),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Runs the apiserver until `shutdown` resolves, then stops accepting and lets connections
/// finish what they are answering.
pub async fn run(
    options: Options,
    shutdown: machinery::lifecycle::Shutdown,
) -> Result<(), StartError> {
    let admission = options.admission()?;
    let store = open_store(&options).await?;
    store::compactor::spawn(store.clone(), options.etcd_compaction_interval);
    let serving = serving_files(&options)?;
    let tls = crate::tls::server_config(&serving)?;
    let modes = &options.authorization_mode;
    // Upstream turns anonymous requests off when nothing but AlwaysAllow would judge them.
    let anonymous = options.anonymous_auth && modes.iter().any(|m| *m != Mode::AlwaysAllow);
    let advertised = SocketAddr::new(options.advertise_address(), options.secure_port);
    let service_accounts = ServiceAccounts::load(
        &options.service_accounts(),
        &options.cert_dir,
        store.clone(),
        advertised,
    )?;
    let authenticator = Arc::new(
        Authenticator::load(options.token_auth_file.as_deref())?
            .with_anonymous(anonymous)
            .with_service_accounts(service_accounts.authenticator.clone()),
    );
    let address = SocketAddr::new(options.bind_address, options.secure_port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Listen { address, source })?;
    // Parsed once for its two users, and only when one of them runs.
    let policy = if modes.iter().any(|m| matches!(m, Mode::Rbac | Mode::Node)) {
        Some(crate::authz::bootstrap::Policy::load()?)
    } else {
        None
    };
    // The index starts after the bootstrap policy is written, so its first list holds it.
    if let Some(policy) = policy.as_ref().filter(|_| modes.contains(&Mode::Rbac)) {
        policy.reconcile(&store).await?;
    }
    let rbac = crate::authz::rbac::index::Index::start(store.clone());
    if modes.contains(&Mode::Rbac) {
        rbac.ready()
            .await
            .map_err(|e| StartError::Authorization(Box::new(e)))?;
    }
    let rbac = Arc::new(crate::authz::rbac::Authorizer::new(rbac));
    let node = match policy.as_ref().filter(|_| modes.contains(&Mode::Node)) {
        Some(policy) => Some(node_authorizer(&store, policy.node_rules()?).await?),
        None => None,
    };
    // Not kept for the server's lifetime: the store and the index hold what it said.
    drop(policy);
    let authorizer = Arc::new(Chain::new(modes, rbac.clone(), node));
    let resources = crate::resources::Config {
        service_cluster_ip_range: options.service_cluster_ip_range,
        service_node_port_range: options.service_node_port_range,
        authentication: Some(crate::resources::Authentication {
            token_issuer: service_accounts.issuer.clone(),
            authenticator: authenticator.clone(),
        }),
        // Upstream checks RBAC writes for escalation only when RBAC authorizes requests.
        escalation: modes
            .contains(&Mode::Rbac)
            .then(|| Arc::new(crate::resources::Escalation::new(authorizer.clone(), rbac))),
        authorization: Some(authorizer.clone()),
        admission,
    };
    let registry = crate::resources::registry(store.clone(), &resources);
    let discovery = Discovery::new(&registry, &advertised.to_string());
    bootstrap(&store, &resources, advertised).await?;
    let openapi = crate::openapi::OpenApi::new(&registry);
    let app = Arc::new(App {
        registry,
        discovery,
        openapi,
        store,
        metrics: Metrics::new(),
        issuer_discovery: service_accounts.discovery,
    });
    tracing::info!(%address, "serving");
    let filters = Arc::new(crate::filters::Filters::new(&crate::filters::Limits {
        max_requests_inflight: options.max_requests_inflight,
        max_mutating_requests_inflight: options.max_mutating_requests_inflight,
        request_timeout: options.request_timeout,
    }));
    let limits = crate::listener::ConnectionLimits {
        read_header_timeout: options.read_header_timeout,
        idle_timeout: options.idle_connection_timeout,
        max_connections: crate::listener::ConnectionLimits::connection_cap(options.max_connections),
    };
    crate::listener::serve(
        listener,
        tls,
        router(app, authenticator, authorizer, filters),
        limits,
        shutdown,
    )
    .await;
    Ok(())
}

/// The Node authorizer, once its graph holds the pods the store has.
async fn node_authorizer(
    store: &Arc<dyn Store>,
    rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule>,
) -> Result<Arc<crate::authz::node::Authorizer>, StartError> {
    let graph = crate::authz::node::graph::Graph::start(store.clone());
    graph
        .ready()
        .await
        .map_err(|e| StartError::Authorization(Box::new(e)))?;
    Ok(Arc::new(crate::authz::node::Authorizer::new(graph, rules)))
}

async fn open_store(options: &Options) -> Result<Arc<dyn Store>, StartError> {
    if options.etcd_servers.is_empty() {
        let mut config = EmbeddedConfig::new(&options.data_dir);
        config.prefix = options.etcd_prefix.clone();
        Ok(Arc::new(EmbeddedStore::open(config)?))
    } else {
        let mut config = EtcdConfig::new(options.etcd_servers.clone());
        config.prefix = options.etcd_prefix.clone();
        Ok(Arc::new(EtcdStore::connect(config).await?))
    }
}

fn serving_files(options: &Options) -> Result<ServingFiles, StartError> {
    let first_service_ip = first_ip(&options.service_cluster_ip_range);
    let generated = pki::ensure(&PkiRequest {
        cert_dir: &options.cert_dir,
        advertise_address: options.advertise_address(),
        secure_port: options.secure_port,
        first_service_ip,
    })?;
    Ok(ServingFiles {
        cert: options.tls_cert_file.clone().unwrap_or(generated.cert),
        key: options
            .tls_private_key_file
            .clone()
            .unwrap_or(generated.key),
        client_ca: options
            .client_ca_file
            .clone()
            .unwrap_or(generated.client_ca),
    })
}

/// The first usable address of the service range: the `kubernetes` service's ClusterIP.
pub fn first_ip(range: &ipnet::IpNet) -> std::net::IpAddr {
    range.hosts().next().unwrap_or(range.network())
}

/// Creates the system namespaces if they are missing, and the `default/kubernetes` service
/// leading to `advertised`.
async fn bootstrap(
    store: &Arc<dyn Store>,
    resources: &crate::resources::Config,
    advertised: SocketAddr,
) -> Result<(), StartError> {
    for (name, value, description) in crate::resources::SYSTEM_PRIORITY_CLASSES {
        let key = format!("/priorityclasses/{name}");
        if store.get(key.as_bytes()).await?.is_some() {
            continue;
        }
        let mut class = k8s_openapi::api::scheduling::v1::PriorityClass {
            value: *value,
            description: Some(description.to_string()),
            preemption_policy: Some("PreemptLowerPriority".into()),
            ..Default::default()
        };
        class.metadata.name = Some(name.to_string());
        class.metadata.uid = Some(stored::new_uid());
        class.metadata.creation_timestamp = Some(stored::now());
        let raw = stored::encode(&class).map_err(|source| StartError::Encode {
            key: key.clone(),
            source: Box::new(source),
        })?;
        match store.create(key.as_bytes(), raw).await {
            Ok(_) | Err(store::Error::AlreadyExists { .. }) => {}
            Err(other) => return Err(other.into()),
        }
    }
    for name in SYSTEM_NAMESPACES {
        let key = format!("/namespaces/{name}");
        if store.get(key.as_bytes()).await?.is_some() {
            continue;
        }
        let mut namespace = Namespace::default();
        namespace.metadata.name = Some(name.to_string());
        namespace.metadata.uid = Some(stored::new_uid());
        namespace.metadata.creation_timestamp = Some(stored::now());
        namespace.metadata.labels =
            Some([("kubernetes.io/metadata.name".to_string(), name.to_string())].into());
        namespace.spec = Some(k8s_openapi::api::core::v1::NamespaceSpec {
            finalizers: Some(vec!["kubernetes".into()]),
        });
        namespace.status = Some(k8s_openapi::api::core::v1::NamespaceStatus {
            phase: Some("Active".into()),
            ..Default::default()
        });
        let raw = stored::encode(&namespace).map_err(|source| StartError::Encode {
            key: key.clone(),
            source: Box::new(source),
        })?;
        match store.create(key.as_bytes(), raw).await {
            Ok(_) | Err(store::Error::AlreadyExists { .. }) => {}
            Err(other) => return Err(other.into()),
        }
    }
    crate::resources::kubernetes_service::reconcile(store.clone(), resources, advertised)
        .await
        .map_err(|error| StartError::KubernetesService(Box::new(error)))
}
