//! Service-account identities in the apiserver, as upstream's `--service-account-*` flags
//! configure them: the key that signs TokenRequests ([`TokenIssuer`]), the keys, issuers and
//! audiences tokens are checked against ([`TokenAuthenticator`]), and the OIDC discovery
//! documents relying parties verify tokens with ([`IssuerDiscovery`]).

mod authenticator;
mod discovery;
mod issuer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use machinery::serviceaccount::keys::{self, KeyError, PublicKey, SigningKey};
use store::Store;

pub use self::authenticator::TokenAuthenticator;
pub use self::discovery::{IssuerDiscovery, CONFIG_PATH, JWKS_PATH};
pub use self::issuer::{TokenIssuer, WARN_ONLY_EXPIRATION_SECONDS};

/// kubeadm's issuer, the default of `--service-account-issuer`.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// What the `--service-account-*` and `--api-audiences` flags say.
#[derive(Debug, Clone)]
pub struct Flags {
    pub signing_key_file: Option<PathBuf>,
    pub key_files: Vec<PathBuf>,
    pub issuers: Vec<String>,
    pub api_audiences: Vec<String>,
    pub max_token_expiration: Option<Duration>,
    pub extend_token_expiration: bool,
    pub jwks_uri: Option<String>,
}

/// Why service-account tokens cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("service-account-signing-key-file: {0}")]
    SigningKey(#[source] KeyError),
    #[error("service-account-key-file: {0}")]
    PublicKeys(#[source] KeyError),
    #[error("service-account-issuer: at least one issuer is required")]
    NoIssuer,
    #[error("the service-account-max-token-expiration must be between 1 hour and 2^32 seconds")]
    MaxExpiration,
    #[error("generating {}: {source}", path.display())]
    Generate { path: PathBuf, source: rcgen::Error },
    #[error(transparent)]
    Write(#[from] crate::pki::PkiError),
}

/// Everything the apiserver does with service-account tokens, built once at start-up.
pub struct ServiceAccounts {
    pub issuer: Arc<TokenIssuer>,
    pub authenticator: Arc<TokenAuthenticator>,
    /// `None` when the issuer is not an https URL, as upstream then skips the endpoints.
    pub discovery: Option<IssuerDiscovery>,
}

impl ServiceAccounts {
    /// Loads (or, without `--service-account-signing-key-file`, generates like kubeadm in
    /// `cert_dir` as `sa.key`/`sa.pub`, reused on restart) the keys and applies upstream's
    /// defaults: the accepted keys are the signing key's when no key file is given, the API
    /// audiences are the issuers when none are given.
    pub fn load(
        flags: &Flags,
        cert_dir: &Path,
        store: Arc<dyn Store>,
        external_address: SocketAddr,
    ) -> Result<ServiceAccounts, SetupError> {
        if flags.issuers.is_empty() {
            return Err(SetupError::NoIssuer);
        }
        let max_expiration = match flags.max_token_expiration {
            None | Some(Duration::ZERO) => None,
            Some(max) if max < Duration::from_secs(3600) || max.as_secs() > 1 << 32 => {
                return Err(SetupError::MaxExpiration)
            }
            Some(max) => Some(max.as_secs() as i64),
        };
        let signing_key_file = match &flags.signing_key_file {
            Some(path) => path.clone(),
            None => generated_key(cert_dir)?,
        };
        let signing_key =
            SigningKey::from_file(&signing_key_file).map_err(SetupError::SigningKey)?;
        let mut public_keys: Vec<PublicKey> = Vec::new();
        for path in &flags.key_files {
            public_keys.extend(keys::public_keys_from_file(path).map_err(SetupError::PublicKeys)?);
        }
        if public_keys.is_empty() {
            public_keys.push(signing_key.public().clone());
        }
        let api_audiences = if flags.api_audiences.is_empty() {
            flags.issuers.clone()
        } else {
            flags.api_audiences.clone()
        };
        let discovery = IssuerDiscovery::new(
            &flags.issuers[0],
            flags.jwks_uri.as_deref(),
            external_address,
            &public_keys,
        )
        .map_err(|reason| tracing::warn!(%reason, "not serving service account issuer discovery"))
        .ok();
        let authenticator = Arc::new(TokenAuthenticator::new(
            public_keys,
            flags.issuers.clone(),
            api_audiences.clone(),
            store.clone(),
        ));
        let issuer = Arc::new(TokenIssuer {
            key: signing_key,
            issuer: flags.issuers[0].clone(),
            api_audiences,
            max_expiration_seconds: max_expiration,
            extend_expiration: flags.extend_token_expiration,
            store,
        });
        Ok(ServiceAccounts {
            issuer,
            authenticator,
            discovery,
        })
    }
}

/// `sa.key` in the cert dir, generated with `sa.pub` on the first start.
fn generated_key(cert_dir: &Path) -> Result<PathBuf, SetupError> {
    let private = cert_dir.join("sa.key");
    let public = cert_dir.join("sa.pub");
    if private.exists() {
        return Ok(private);
    }
    let (private_pem, public_pem) =
        SigningKey::generate_pem().map_err(|source| SetupError::Generate {
            path: private.clone(),
            source,
        })?;
    crate::pki::write_file(&public, public_pem.as_bytes(), 0o644)?;
    crate::pki::write_file(&private, private_pem.as_bytes(), 0o600)?;
    tracing::info!(path = %private.display(), "generated service account signing key");
    Ok(private)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Flags {
        Flags {
            signing_key_file: None,
            key_files: Vec::new(),
            issuers: vec![DEFAULT_ISSUER.into()],
            api_audiences: Vec::new(),
            max_token_expiration: None,
            extend_token_expiration: true,
            jwks_uri: None,
        }
    }

    fn store(dir: &Path) -> Arc<dyn Store> {
        let config = store::embedded::EmbeddedConfig::new(dir.join("data"));
        Arc::new(store::embedded::EmbeddedStore::open(config).unwrap())
    }

    #[tokio::test]
    async fn the_signing_key_is_generated_once_and_defaults_follow_upstream() {
        let dir = tempfile::tempdir().unwrap();
        let address: SocketAddr = "192.0.2.1:6443".parse().unwrap();
        let store = store(dir.path());
        let first = ServiceAccounts::load(&flags(), dir.path(), store.clone(), address).unwrap();
        let key = std::fs::read(dir.path().join("sa.key")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("sa.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = ServiceAccounts::load(&flags(), dir.path(), store.clone(), address).unwrap();
        assert_eq!(std::fs::read(dir.path().join("sa.key")).unwrap(), key);
        assert_eq!(
            first.issuer.key.public(),
            again.issuer.key.public(),
            "the key is reused"
        );
        assert_eq!(first.issuer.api_audiences, [DEFAULT_ISSUER]);
        let public = keys::public_keys_from_file(&dir.path().join("sa.pub")).unwrap();
        assert_eq!(public, [first.issuer.key.public().clone()]);

        let mut short = flags();
        short.max_token_expiration = Some(Duration::from_secs(600));
        assert!(matches!(
            ServiceAccounts::load(&short, dir.path(), store.clone(), address),
            Err(SetupError::MaxExpiration)
        ));
        let mut http = flags();
        http.issuers = vec!["http://insecure".into()];
        let loaded = ServiceAccounts::load(&http, dir.path(), store.clone(), address).unwrap();
        assert!(
            loaded.discovery.is_none(),
            "an http issuer has no discovery"
        );
    }
}
