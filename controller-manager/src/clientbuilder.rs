//! `--use-service-account-credentials`: each controller's API writes go out as its own
//! service account (`system:serviceaccount:kube-system:<name>`), so under RBAC the bootstrap
//! `system:controller:*` roles are all it needs and the audit trail names the controller
//! (upstream `k8s.io/controller-manager/pkg/clientbuilder`, the dynamic builder).
//!
//! The manager itself, with its own credentials, creates the service account if missing and
//! asks for its tokens with TokenRequest, refreshing them before they expire. The token lives
//! only in memory: a tower layer sets the `Authorization` header of every request from a
//! shared value that the refresher replaces. (kube's `token_file` would also pick up new
//! tokens, but only by re-reading a file every minute: the token would have to sit on disk,
//! in a file we would have to create, protect and clean up, and a refresh would reach the
//! client up to a minute late.)

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use http::header::{HeaderValue, AUTHORIZATION};
use http::Request;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::config::AuthInfo;
use kube::{Api, Client, Config};
use tower::util::MapRequestLayer;

/// Where the controllers' service accounts live.
const NAMESPACE: &str = "kube-system";

/// The lifetime asked for, upstream's: an hour.
const TOKEN_LIFETIME_SECONDS: i64 = 3600;

/// The share of a token's lifetime after which it is replaced, upstream's 80%: the old token
/// stays valid for the remaining fifth, time enough for a few failed attempts.
const REFRESH_AT: f64 = 0.8;

/// How long after a failed refresh to try again (the current token is still valid).
const REFRESH_RETRY: Duration = Duration::from_secs(10);

/// The first wait after a failed attempt, doubled up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a controller's client could not be made (each is retried: see [`ClientBuilder`]).
#[derive(Debug, thiserror::Error)]
pub enum ClientBuilderError {
    #[error("getting or creating service account {NAMESPACE}/{name}: {source}")]
    ServiceAccount {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("requesting a token for service account {NAMESPACE}/{name}: {source}")]
    Token {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the TokenRequest for service account {NAMESPACE}/{name} came back without a usable token"
    )]
    InvalidToken { name: String },
    #[error("building the client for service account {NAMESPACE}/{name}: {source}")]
    Client {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Makes clients that authenticate as a controller's service account.
pub struct ClientBuilder {
    /// The manager's own client: creates the service accounts and requests their tokens.
    root: Client,
    /// The manager's server and CA without any of its credentials (no client certificate, no
    /// token): the service account's token is the only thing identifying the controller.
    anonymous: Config,
}

/// A token and when to replace it.
struct Issued {
    header: HeaderValue,
    refresh_in: Duration,
}

impl ClientBuilder {
    pub fn new(root: Client, config: &Config) -> Self {
        let mut anonymous = config.clone();
        anonymous.auth_info = AuthInfo::default();
        Self { root, anonymous }
    }

    /// A client acting as `system:serviceaccount:kube-system:<name>`. Failures are logged and
    /// retried with backoff until they succeed: an API server still starting, or an RBAC
    /// policy not yet in place, must not take the manager down.
    pub async fn client_for(&self, name: &str) -> Client {
        let mut backoff = INITIAL_BACKOFF;
        loop {
            match self.try_client_for(name).await {
                Ok(client) => return client,
                Err(error) => {
                    tracing::error!(%error, "controller client not ready; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn try_client_for(&self, name: &str) -> Result<Client, ClientBuilderError> {
        self.ensure_service_account(name).await?;
        let issued = request_token(&self.root, name).await?;
        let token = Arc::new(RwLock::new(issued.header));
        let client = {
            let token = token.clone();
            let authorize =
                MapRequestLayer::new(move |mut request: Request<kube::client::Body>| {
                    let header = token.read().unwrap_or_else(|e| e.into_inner()).clone();
                    request.headers_mut().insert(AUTHORIZATION, header);
                    request
                });
            kube::client::ClientBuilder::try_from(self.anonymous.clone())
                .map_err(|source| ClientBuilderError::Client {
                    name: name.to_string(),
                    source,
                })?
                .with_layer(&authorize)
                .build()
        };
        tokio::spawn(refresh(
            self.root.clone(),
            name.to_string(),
            Arc::downgrade(&token),
            issued.refresh_in,
        ));
        Ok(client)
    }

    async fn ensure_service_account(&self, name: &str) -> Result<(), ClientBuilderError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.root.clone(), NAMESPACE);
        let failed = |source| ClientBuilderError::ServiceAccount {
            name: name.to_string(),
            source,
        };
        if api.get_opt(name).await.map_err(failed)?.is_some() {
            return Ok(());
        }
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(NAMESPACE.to_string()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match api.create(&PostParams::default(), &account).await {
            Ok(_) => Ok(()),
            // Another manager instance (or an earlier run) made it in between.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(source) => Err(failed(source)),
        }
    }
}

/// Replaces the token before it expires, for as long as the client using it exists.
async fn refresh(
    root: Client,
    name: String,
    token: Weak<RwLock<HeaderValue>>,
    mut refresh_in: Duration,
) {
    loop {
        tokio::time::sleep(refresh_in).await;
        let Some(token) = token.upgrade() else {
            return;
        };
        match request_token(&root, &name).await {
            Ok(issued) => {
                *token.write().unwrap_or_else(|e| e.into_inner()) = issued.header;
                refresh_in = issued.refresh_in;
                tracing::debug!(service_account = %name, "refreshed controller token");
            }
            Err(error) => {
                tracing::error!(%error, "refreshing controller token; retrying");
                refresh_in = REFRESH_RETRY;
            }
        }
    }
}

async fn request_token(root: &Client, name: &str) -> Result<Issued, ClientBuilderError> {
    let api: Api<ServiceAccount> = Api::namespaced(root.clone(), NAMESPACE);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(TOKEN_LIFETIME_SECONDS),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let issued = api
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .map_err(|source| ClientBuilderError::Token {
            name: name.to_string(),
            source,
        })?;
    let invalid = || ClientBuilderError::InvalidToken {
        name: name.to_string(),
    };
    let status = issued.status.ok_or_else(invalid)?;
    let mut header =
        HeaderValue::from_str(&format!("Bearer {}", status.token)).map_err(|_| invalid())?;
    header.set_sensitive(true);
    Ok(Issued {
        header,
        refresh_in: refresh_in(status.expiration_timestamp.0, Timestamp::now()),
    })
}

/// When to replace a token expiring at `expires`: after [`REFRESH_AT`] of the lifetime the
/// server actually granted (it may shorten or extend the one asked for), but never sooner
/// than [`INITIAL_BACKOFF`] so a token issued already expired cannot spin the refresher.
fn refresh_in(expires: Timestamp, now: Timestamp) -> Duration {
    let lifetime = expires.duration_since(now).as_secs_f64().max(0.0);
    Duration::from_secs_f64(lifetime * REFRESH_AT).max(INITIAL_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_at_four_fifths_of_the_granted_lifetime() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let hour = Timestamp::from_second(1_000_000 + 3600).unwrap();
        assert_eq!(refresh_in(hour, now), Duration::from_secs(2880));
        let past = Timestamp::from_second(999_000).unwrap();
        assert_eq!(refresh_in(past, now), INITIAL_BACKOFF);
    }
}
