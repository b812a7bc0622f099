//! The root CA certificate publisher (upstream `pkg/controller/certificates/rootcacertpublisher`):
//! every namespace has a `kube-root-ca.crt` ConfigMap holding the CA bundle that verifies the
//! API server, for workloads talking to it from inside the cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use super::ControllerContext;
use crate::informers::Change;
use crate::runtime::{self, has_cause, Queue, Result};

/// The controller's name (`--controllers`, queue metrics).
pub const NAME: &str = "root-ca-certificate-publisher-controller";

const CONFIG_MAP: &str = "kube-root-ca.crt";
const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// `--root-ca-file` could not be read.
#[derive(Debug, thiserror::Error)]
#[error("--root-ca-file {}: {source}", path.display())]
pub struct RootCaError {
    path: PathBuf,
    source: std::io::Error,
}

/// The CA bundle to publish: `--root-ca-file` if given, else the CAs the client connection
/// trusts (from the kubeconfig), as PEM; `None` when neither names one.
pub fn root_ca(file: Option<&Path>, config: &kube::Config) -> Result<Option<String>, RootCaError> {
    match file {
        Some(path) => std::fs::read_to_string(path)
            .map(Some)
            .map_err(|source| RootCaError {
                path: path.to_path_buf(),
                source,
            }),
        None => Ok(config
            .root_cert
            .as_ref()
            .map(|certs| certs.iter().map(|der| pem("CERTIFICATE", der)).collect())),
    }
}

/// A DER blob as PEM (also what the CSR signer issues).
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

struct Context {
    client: Client,
    config_maps: Store<ConfigMap>,
    root_ca: String,
}

/// Wires the controller to the informers and starts it; without a CA bundle (no
/// `--root-ca-file` and none in the kubeconfig) there is nothing to publish.
pub fn start(ctx: &ControllerContext) {
    let Some(root_ca) = ctx.root_ca.clone() else {
        tracing::warn!("no root CA bundle: not publishing {CONFIG_MAP}");
        return;
    };
    let namespaces = ctx.informers.get::<Namespace>();
    let config_maps = ctx
        .informers
        .get_selected::<ConfigMap>(&format!("metadata.name={CONFIG_MAP}"));
    let (queue, triggers) = Queue::new(NAME);
    tokio::spawn(watch_namespaces(queue.clone(), namespaces.subscribe()));
    tokio::spawn(watch_config_maps(queue.clone(), config_maps.subscribe()));
    let context = Arc::new(Context {
        client: ctx.client_for(NAME),
        config_maps: config_maps.store(),
        root_ca,
    });
    let controller = runtime::Controller {
        queue,
        triggers,
        store: namespaces.store(),
        caches: vec![namespaces.synced(), config_maps.synced()],
        workers: 1,
    };
    tokio::spawn(controller.run(context, reconcile));
}

async fn watch_namespaces(
    queue: Queue<Namespace>,
    mut changes: UnboundedReceiver<Change<Namespace>>,
) {
    while let Some(change) = changes.next().await {
        if let Change::Applied { new, .. } = change {
            queue.add_object(&new);
        }
    }
}

/// A changed or deleted bundle is put back.
async fn watch_config_maps(
    queue: Queue<Namespace>,
    mut changes: UnboundedReceiver<Change<ConfigMap>>,
) {
    while let Some(change) = changes.next().await {
        let config_map = match change {
            Change::Applied { old: Some(_), new } => new,
            Change::Deleted(gone) => gone,
            Change::Applied { old: None, .. } => continue,
        };
        queue.add(ObjectRef::new(&config_map.namespace().unwrap_or_default()));
    }
}

async fn reconcile(namespace: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action> {
    let active = namespace
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_none_or(|p| p == "Active");
    if !active || namespace.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = namespace.name_any();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &name);
    let data = BTreeMap::from([("ca.crt".to_string(), ctx.root_ca.clone())]);
    let Some(current) = ctx
        .config_maps
        .get(&ObjectRef::new(CONFIG_MAP).within(&name))
    else {
        let config_map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(CONFIG_MAP.into()),
                namespace: Some(name.clone()),
                annotations: Some(BTreeMap::from([(
                    DESCRIPTION_ANNOTATION.to_string(),
                    DESCRIPTION.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..ConfigMap::default()
        };
        return match api.create(&PostParams::default(), &config_map).await {
            Ok(_) => Ok(Action::await_change()),
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
                Ok(Action::await_change())
            }
            Err(error) if has_cause(&error, "NamespaceTerminating") => Ok(Action::await_change()),
            Err(error) => Err(error.into()),
        };
    };
    let described = current
        .annotations()
        .get(DESCRIPTION_ANNOTATION)
        .is_some_and(|d| !d.is_empty());
    if current.data.as_ref() == Some(&data) && described {
        return Ok(Action::await_change());
    }
    let mut updated = (*current).clone();
    updated.data = Some(data);
    updated
        .annotations_mut()
        .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
    api.replace(CONFIG_MAP, &PostParams::default(), &updated)
        .await?;
    Ok(Action::await_change())
}
