//! Each simulated node's own identity, obtained as kubelet's TLS bootstrap obtains it: a new
//! key, a CertificateSigningRequest for `system:node:<name>` in `system:nodes` to the
//! `kubernetes.io/kube-apiserver-client-kubelet` signer, approved and signed by the
//! controller-manager, and a client that presents the issued certificate. With it the Node
//! authorizer and the NodeRestriction admission plugin judge the node's writes as a real
//! kubelet's.

use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

/// The signer kubelets ask for their client certificates.
const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

/// How long one watch for the issued certificate lasts before it is renewed.
const WATCH_SECONDS: u32 = 290;

/// Why a node has no identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("generating the key or request of {node}: {source}")]
    Key { node: String, source: rcgen::Error },
    #[error("certificate signing request of {node}: {source}")]
    Api { node: String, source: kube::Error },
    #[error("certificate signing request {csr} of {node} was {condition}: {message}")]
    Refused {
        node: String,
        csr: String,
        condition: String,
        message: String,
    },
    #[error("client for {node}: {source}")]
    Client { node: String, source: kube::Error },
    #[error("client credentials of {node}: {source}")]
    Credentials {
        node: String,
        source: serde_json::Error,
    },
}

/// A client authenticated as `node`, with a certificate requested by `bootstrap` (whose
/// identity must be allowed to create node client CSRs, as kubelet's bootstrap credentials
/// are); `config` is the bootstrap connection, whose server and CA the node keeps.
pub async fn node_client(
    bootstrap: &kube::Client,
    config: &kube::Config,
    node: &str,
) -> Result<kube::Client, IdentityError> {
    let key_error = |source| IdentityError::Key {
        node: node.to_string(),
        source,
    };
    let key = KeyPair::generate().map_err(key_error)?;
    let mut params = CertificateParams::new(Vec::new()).map_err(key_error)?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::OrganizationName, "system:nodes");
    subject.push(DnType::CommonName, format!("system:node:{node}"));
    params.distinguished_name = subject;
    let request = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(key_error)?;
    let certificate = request_certificate(bootstrap, node, request).await?;

    let engine = base64::engine::general_purpose::STANDARD;
    let credentials = serde_json::json!({
        "client-certificate-data": engine.encode(certificate),
        "client-key-data": engine.encode(key.serialize_pem()),
    });
    let mut config = config.clone();
    config.auth_info =
        serde_json::from_value(credentials).map_err(|source| IdentityError::Credentials {
            node: node.to_string(),
            source,
        })?;
    kube::Client::try_from(config).map_err(|source| IdentityError::Client {
        node: node.to_string(),
        source,
    })
}

/// Creates the CSR (named `csr-` and a suffix, as kubelet names its own) and waits until the
/// signer has issued the certificate; the PEM certificate chain.
async fn request_certificate(
    client: &kube::Client,
    node: &str,
    request: String,
) -> Result<Vec<u8>, IdentityError> {
    let api_error = |source| IdentityError::Api {
        node: node.to_string(),
        source,
    };
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some("csr-".into()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.into_bytes()),
            signer_name: KUBELET_CLIENT_SIGNER.into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            ..Default::default()
        },
        status: None,
    };
    let created = api
        .create(&PostParams::default(), &csr)
        .await
        .map_err(api_error)?;
    let name = created.metadata.name.clone().unwrap_or_default();
    tracing::info!(%node, csr = %name, "requested a client certificate");
    let mut current = created;
    loop {
        if let Some(certificate) = issued(node, &name, &current)? {
            tracing::info!(%node, csr = %name, "client certificate issued");
            return Ok(certificate);
        }
        let version = current
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(WATCH_SECONDS);
        let mut stream = api
            .watch(&params, &version)
            .await
            .map_err(api_error)?
            .boxed();
        let mut changed = false;
        while let Some(event) = stream.next().await {
            if let Ok(WatchEvent::Modified(csr) | WatchEvent::Added(csr)) = event {
                current = csr;
                changed = true;
                break;
            }
        }
        if !changed {
            // The watch ended (timeout, or the version expired): read the CSR afresh.
            tokio::time::sleep(Duration::from_millis(200)).await;
            current = api.get(&name).await.map_err(api_error)?;
        }
    }
}

/// The certificate of an issued CSR, nothing while it is pending, an error once it was
/// denied or failed.
fn issued(
    node: &str,
    name: &str,
    csr: &CertificateSigningRequest,
) -> Result<Option<Vec<u8>>, IdentityError> {
    let Some(status) = &csr.status else {
        return Ok(None);
    };
    if let Some(refusal) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| matches!(c.type_.as_str(), "Denied" | "Failed"))
    {
        return Err(IdentityError::Refused {
            node: node.to_string(),
            csr: name.to_string(),
            condition: refusal.type_.to_lowercase(),
            message: refusal.message.clone().unwrap_or_default(),
        });
    }
    Ok(status
        .certificate
        .as_ref()
        .filter(|c| !c.0.is_empty())
        .map(|c| c.0.clone()))
}
