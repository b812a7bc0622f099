//! Service-account issuer discovery: `/.well-known/openid-configuration` and
//! `/openid/v1/jwks`, the OIDC documents that let relying parties outside the cluster verify
//! service-account tokens, as upstream serves them (rendered once, cacheable for an hour).

use std::net::SocketAddr;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use machinery::serviceaccount::keys::PublicKey;
use serde_json::json;

/// The discovery document's path.
pub const CONFIG_PATH: &str = "/.well-known/openid-configuration";
/// The key set's path.
pub const JWKS_PATH: &str = "/openid/v1/jwks";

/// How long clients may cache the documents, as upstream's static key getter allows.
const MAX_AGE_SECONDS: u32 = 3600;

/// The two documents, rendered at start-up.
#[derive(Debug, Clone)]
pub struct IssuerDiscovery {
    config: Vec<u8>,
    jwks: Vec<u8>,
}

impl IssuerDiscovery {
    /// The documents for `issuer` (which must be an https URL without query or fragment, as
    /// OIDC requires), pointing to `jwks_uri` or else to the JWKS path on the external
    /// address.
    pub fn new(
        issuer: &str,
        jwks_uri: Option<&str>,
        external_address: SocketAddr,
        keys: &[PublicKey],
    ) -> Result<IssuerDiscovery, String> {
        let https = |url: &str| {
            url.strip_prefix("https://")
                .is_some_and(|rest| !rest.is_empty())
        };
        if !https(issuer) {
            return Err(format!("issuer URL must use https scheme, got: {issuer}"));
        }
        if issuer.contains('?') {
            return Err(format!("issuer URL may not include a query, got: {issuer}"));
        }
        if issuer.contains('#') {
            return Err(format!(
                "issuer URL may not include a fragment, got: {issuer}"
            ));
        }
        let jwks_uri = match jwks_uri {
            Some(uri) if !https(uri) => {
                return Err(format!("jwksURI requires https scheme, parsed as: {uri}"))
            }
            Some(uri) => uri.to_string(),
            None => format!("https://{external_address}{JWKS_PATH}"),
        };
        let mut algorithms: Vec<String> = keys
            .iter()
            .map(|k| format!("{:?}", k.algorithm()))
            .collect();
        algorithms.sort();
        algorithms.dedup();
        /// Upstream's subset of the OIDC provider metadata, in its order.
        #[derive(serde::Serialize)]
        struct Metadata<'a> {
            issuer: &'a str,
            jwks_uri: String,
            response_types_supported: [&'static str; 1],
            subject_types_supported: [&'static str; 1],
            id_token_signing_alg_values_supported: Vec<String>,
        }
        let config = Metadata {
            issuer,
            jwks_uri,
            // Kubernetes only issues ID tokens, and the same subject to everyone.
            response_types_supported: ["id_token"],
            subject_types_supported: ["public"],
            id_token_signing_alg_values_supported: algorithms,
        };
        let jwks = json!({"keys": keys.iter().map(PublicKey::jwk).collect::<Vec<_>>()});
        Ok(IssuerDiscovery {
            config: serde_json::to_vec(&config).unwrap_or_default(),
            jwks: serde_json::to_vec(&jwks).unwrap_or_default(),
        })
    }

    /// `/.well-known/openid-configuration`.
    pub fn config(&self) -> Response {
        respond(&self.config, "application/json")
    }

    /// `/openid/v1/jwks`.
    pub fn jwks(&self) -> Response {
        respond(&self.jwks, "application/jwk-set+json")
    }
}

fn respond(body: &[u8], content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, body.to_vec()).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={MAX_AGE_SECONDS}")) {
        headers.insert("cache-control", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use machinery::serviceaccount::keys::SigningKey;
    use serde_json::Value;

    #[test]
    fn documents_name_the_issuer_and_its_keys() {
        let (private, _) = SigningKey::generate_pem().unwrap();
        let key = SigningKey::from_pem(private.as_bytes()).unwrap();
        let address: SocketAddr = "192.0.2.1:6443".parse().unwrap();
        let discovery = IssuerDiscovery::new(
            "https://kubernetes.default.svc.cluster.local",
            None,
            address,
            &[key.public().clone()],
        )
        .unwrap();
        let config: Value = serde_json::from_slice(&discovery.config).unwrap();
        assert_eq!(config["jwks_uri"], "https://192.0.2.1:6443/openid/v1/jwks");
        assert_eq!(
            config["id_token_signing_alg_values_supported"],
            json!(["ES256"])
        );
        let text = String::from_utf8(discovery.config.clone()).unwrap();
        assert!(text
            .starts_with(r#"{"issuer":"https://kubernetes.default.svc.cluster.local","jwks_uri""#));
        let jwks: Value = serde_json::from_slice(&discovery.jwks).unwrap();
        assert_eq!(jwks["keys"][0]["kid"], key.public().key_id());
        assert!(IssuerDiscovery::new("https://x?y", None, address, &[]).is_err());
        assert!(IssuerDiscovery::new("https://x", Some("http://y"), address, &[]).is_err());
    }
}
