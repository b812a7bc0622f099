//! Authentication of service-account tokens, as upstream's two JWT authenticators: bound
//! tokens (issued by TokenRequest under `--service-account-issuer`) and legacy Secret tokens
//! (issuer `kubernetes/serviceaccount`, signed by the controller-manager), both verified with
//! the `--service-account-key-file` keys.
//!
//! A token is only as good as what it names: the service account (and the pod, Secret or node
//! it is bound to) must still exist with the UID in the claims, so deleting a pod revokes its
//! tokens at once. Those objects are read from the store on every request, which also sees
//! an object created a moment ago.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use machinery::serviceaccount::claims::{self, Claims, LegacyClaims, LEEWAY_SECONDS};
use machinery::serviceaccount::keys::PublicKey;
use machinery::serviceaccount::{groups, jwt, username};
use serde::de::DeserializeOwned;
use store::Store;

use crate::authn::UserInfo;
use crate::error::{ApiError, ApiResult};

/// Upstream's user extra keys for service-account users.
pub const POD_NAME_KEY: &str = "authentication.kubernetes.io/pod-name";
pub const POD_UID_KEY: &str = "authentication.kubernetes.io/pod-uid";
pub const NODE_NAME_KEY: &str = "authentication.kubernetes.io/node-name";
pub const NODE_UID_KEY: &str = "authentication.kubernetes.io/node-uid";
pub const CREDENTIAL_ID_KEY: &str = "authentication.kubernetes.io/credential-id";

/// A Secret label the legacy token cleaner sets on tokens it has invalidated.
const INVALID_SINCE_LABEL: &str = "kubernetes.io/legacy-token-invalid-since";

/// Verifies service-account tokens.
pub struct TokenAuthenticator {
    keys: Vec<PublicKey>,
    issuers: Vec<String>,
    api_audiences: Vec<String>,
    store: Arc<dyn Store>,
}

/// Who a token authenticates, and for which of the requested audiences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub user: UserInfo,
    pub audiences: Vec<String>,
}

/// What a service account's token identifies, before it becomes a user.
#[derive(Default)]
struct AccountInfo {
    namespace: String,
    name: String,
    uid: String,
    pod: Option<(String, String)>,
    node: Option<(String, String)>,
    credential_id: Option<String>,
}

impl std::fmt::Debug for TokenAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuthenticator")
            .field("issuers", &self.issuers)
            .field("api_audiences", &self.api_audiences)
            .finish_non_exhaustive()
    }
}

impl TokenAuthenticator {
    pub(super) fn new(
        keys: Vec<PublicKey>,
        issuers: Vec<String>,
        api_audiences: Vec<String>,
        store: Arc<dyn Store>,
    ) -> TokenAuthenticator {
        TokenAuthenticator {
            keys,
            issuers,
            api_audiences,
            store,
        }
    }

    /// `--api-audiences` (defaulted to the issuers): what tokens for this server are for.
    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// Authenticates `token` for `audiences` (the API audiences unless a TokenReview names
    /// others). `Ok(None)`: not a service-account token (another authenticator's, or none's);
    /// `Err`: a service-account token that is not valid, with upstream's reason.
    pub async fn authenticate(
        &self,
        token: &str,
        audiences: Option<&[String]>,
    ) -> Result<Option<Authenticated>, String> {
        let Some(issuer) = claims::unverified_issuer(token) else {
            return Ok(None);
        };
        let requested = audiences.unwrap_or(&self.api_audiences);
        let (info, token_audiences) = if self.issuers.contains(&issuer) {
            let claims: Claims = jwt::verify(token, &self.keys).map_err(|e| e.to_string())?;
            if !self.issuers.contains(&claims.iss) {
                return Err(format!("token issuer {:?} is invalid", claims.iss));
            }
            let audiences = claims.aud.clone();
            (self.bound(&claims).await?, audiences)
        } else if issuer == claims::LEGACY_ISSUER {
            let claims: LegacyClaims = jwt::verify(token, &self.keys).map_err(|e| e.to_string())?;
            (self.legacy(token, &claims).await?, Vec::new())
        } else {
            return Ok(None);
        };
        // Legacy tokens have no audience: they are for this API server alone.
        let token_audiences = if token_audiences.is_empty() {
            self.api_audiences.clone()
        } else {
            token_audiences
        };
        let granted: Vec<String> = token_audiences
            .iter()
            .filter(|a| requested.contains(a))
            .cloned()
            .collect();
        if granted.is_empty() && !self.api_audiences.is_empty() {
            return Err(format!(
                "token audiences {} is invalid for the target audiences {}",
                go_quoted(&token_audiences),
                go_quoted(requested)
            ));
        }
        Ok(Some(Authenticated {
            user: info.user(),
            audiences: granted,
        }))
    }

    /// Upstream's bound-token validator: time, then the service account and what the token
    /// is bound to, each by name and UID, none deleted for longer than the leeway.
    async fn bound(&self, claims: &Claims) -> Result<AccountInfo, String> {
        let now = jiff::Timestamp::now().as_second();
        claims.check_time(now)?;
        let k8s = &claims.kubernetes;
        let namespace = &k8s.namespace;
        let account = &k8s.serviceaccount;
        let gone = |meta: &ObjectMeta| {
            meta.deletion_timestamp
                .as_ref()
                .is_some_and(|t| t.0.as_second() < now - LEEWAY_SECONDS)
        };
        let found: ServiceAccount = self
            .get("serviceaccounts", Some(namespace), &account.name)
            .await?
            .ok_or_else(|| not_found("serviceaccounts", &account.name))?;
        let found_uid = found.metadata.uid.clone().unwrap_or_default();
        if found_uid != account.uid {
            return Err(format!(
                "service account UID ({found_uid}) does not match claim ({})",
                account.uid
            ));
        }
        if gone(&found.metadata) {
            return Err(format!(
                "service account {namespace}/{} has been deleted",
                account.name
            ));
        }
        const INVALIDATED: &str = "service account token has been invalidated";
        if let Some(secret) = &k8s.secret {
            let found: Secret = self
                .get("secrets", Some(namespace), &secret.name)
                .await?
                .ok_or(INVALIDATED)?;
            let uid = found.metadata.uid.clone().unwrap_or_default();
            if uid != secret.uid {
                return Err(format!(
                    "secret UID ({uid}) does not match service account secret ref claim ({})",
                    secret.uid
                ));
            }
            if gone(&found.metadata) {
                return Err(INVALIDATED.into());
            }
        }
        let mut info = AccountInfo {
            namespace: namespace.clone(),
            name: account.name.clone(),
            uid: account.uid.clone(),
            credential_id: claims.jti.as_ref().map(|jti| format!("JTI={jti}")),
            ..AccountInfo::default()
        };
        if let Some(pod) = &k8s.pod {
            let found: Pod = self
                .get("pods", Some(namespace), &pod.name)
                .await?
                .ok_or(INVALIDATED)?;
            let uid = found.metadata.uid.clone().unwrap_or_default();
            if uid != pod.uid {
                return Err(format!(
                    "pod UID ({uid}) does not match service account pod ref claim ({})",
                    pod.uid
                ));
            }
            if gone(&found.metadata) {
                return Err(INVALIDATED.into());
            }
            info.pod = Some((pod.name.clone(), pod.uid.clone()));
        }
        if let Some(node) = &k8s.node {
            // A pod-bound token only reports its pod's node; a node-bound one needs the node.
            if k8s.pod.is_none() {
                let found: Node = self
                    .get("nodes", None, &node.name)
                    .await?
                    .ok_or(INVALIDATED)?;
                let uid = found.metadata.uid.clone().unwrap_or_default();
                if uid != node.uid {
                    return Err(format!(
                        "node UID ({uid}) does not match service account node ref claim ({})",
                        node.uid
                    ));
                }
                if gone(&found.metadata) {
                    return Err(INVALIDATED.into());
                }
            }
            info.node = Some((node.name.clone(), node.uid.clone()));
        }
        Ok(info)
    }

    /// Upstream's legacy validator: the claims, then the Secret (which must still hold this
    /// very token) and the service account.
    async fn legacy(&self, token: &str, claims: &LegacyClaims) -> Result<AccountInfo, String> {
        claims.check()?;
        let namespace = &claims.namespace;
        const INVALIDATED: &str = "Token has been invalidated";
        let secret: Secret = self
            .get("secrets", Some(namespace), &claims.secret_name)
            .await?
            .ok_or(INVALIDATED)?;
        if secret.metadata.deletion_timestamp.is_some() {
            return Err(INVALIDATED.into());
        }
        let stored = secret.data.as_ref().and_then(|d| d.get("token"));
        let matches = stored.is_some_and(|s| constant_time_eq(&s.0, token.as_bytes()));
        if !matches {
            return Err("Token does not match server's copy".into());
        }
        let name = &claims.service_account_name;
        let account: ServiceAccount = self
            .get("serviceaccounts", Some(namespace), name)
            .await?
            .ok_or_else(|| not_found("serviceaccounts", name))?;
        if account.metadata.deletion_timestamp.is_some() {
            return Err(format!(
                "ServiceAccount {namespace}/{name} has been deleted"
            ));
        }
        let uid = account.metadata.uid.clone().unwrap_or_default();
        if uid != claims.service_account_uid {
            return Err(format!(
                "ServiceAccount UID ({uid}) does not match claim ({})",
                claims.service_account_uid
            ));
        }
        let labels = secret.metadata.labels.as_ref();
        if labels.is_some_and(|l| l.get(INVALID_SINCE_LABEL).is_some_and(|v| !v.is_empty())) {
            return Err(format!(
                "the token in secret {namespace}/{secret} for service account {namespace}/{name} has been marked invalid. Use tokens from the TokenRequest API or manually created secret-based tokens, or remove the '{INVALID_SINCE_LABEL}' label from the secret to temporarily allow use of this token",
                secret = claims.secret_name
            ));
        }
        Ok(AccountInfo {
            namespace: namespace.clone(),
            name: name.clone(),
            uid: claims.service_account_uid.clone(),
            ..AccountInfo::default()
        })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<T>, String> {
        lookup(&*self.store, resource, namespace, name)
            .await
            .map_err(|e| e.to_string())
    }
}

impl AccountInfo {
    /// Upstream's `ServiceAccountInfo.UserInfo`, plus `system:authenticated`.
    fn user(self) -> UserInfo {
        let mut extra = BTreeMap::new();
        if let Some((name, uid)) = self.pod {
            extra.insert(POD_NAME_KEY.to_string(), vec![name]);
            extra.insert(POD_UID_KEY.to_string(), vec![uid]);
        }
        if let Some(id) = self.credential_id {
            extra.insert(CREDENTIAL_ID_KEY.to_string(), vec![id]);
        }
        if let Some((name, uid)) = self.node {
            extra.insert(NODE_NAME_KEY.to_string(), vec![name]);
            if !uid.is_empty() {
                extra.insert(NODE_UID_KEY.to_string(), vec![uid]);
            }
        }
        let mut user_groups = groups(&self.namespace).to_vec();
        user_groups.push("system:authenticated".into());
        UserInfo {
            name: username(&self.namespace, &self.name),
            uid: self.uid,
            groups: user_groups,
            extra,
        }
    }
}

/// An object from the store by resource, namespace and name (`None` if there is none).
/// Nodes live under upstream's `minions` key.
pub(super) async fn lookup<T: DeserializeOwned>(
    store: &dyn Store,
    resource: &str,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Option<T>> {
    let segment = if resource == "nodes" {
        "minions"
    } else {
        resource
    };
    let key = match namespace {
        Some(namespace) => format!("/{segment}/{namespace}/{name}"),
        None => format!("/{segment}/{name}"),
    };
    let Some(kv) = store.get(key.as_bytes()).await? else {
        return Ok(None);
    };
    crate::decoding::from_stored(&kv.value)
        .map(Some)
        .map_err(|e| ApiError::Internal(format!("stored {resource} does not decode: {e}")))
}

/// Whether two byte strings are equal, in time that depends on their lengths only, as
/// upstream compares a presented token with the Secret's copy.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn not_found(resource: &str, name: &str) -> String {
    format!("{resource} {name:?} not found")
}

/// A string list as Go's `%q` prints it: `["a" "b"]`.
fn go_quoted(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use machinery::serviceaccount::claims::{Account, Binding, ObjectRef};
    use machinery::serviceaccount::keys::SigningKey;

    const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        key: SigningKey,
        authenticator: TokenAuthenticator,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let config = store::embedded::EmbeddedConfig::new(dir.path());
        let store: Arc<dyn Store> = Arc::new(store::embedded::EmbeddedStore::open(config).unwrap());
        let (private, _) = SigningKey::generate_pem().unwrap();
        let key = SigningKey::from_pem(private.as_bytes()).unwrap();
        let authenticator = TokenAuthenticator::new(
            vec![key.public().clone()],
            vec![ISSUER.into()],
            vec![ISSUER.into()],
            store.clone(),
        );
        put(
            &store,
            "/serviceaccounts/default/builder",
            r#"{"metadata":{"name":"builder","namespace":"default","uid":"sa-uid"}}"#,
        )
        .await;
        put(&store, "/pods/default/web", r#"{"metadata":{"name":"web","namespace":"default","uid":"pod-uid"},"spec":{"containers":[]}}"#).await;
        Fixture {
            _dir: dir,
            store,
            key,
            authenticator,
        }
    }

    async fn put(store: &Arc<dyn Store>, key: &str, value: &str) {
        store
            .create(key.as_bytes(), bytes::Bytes::from(value.to_string()))
            .await
            .unwrap();
    }

    fn token(f: &Fixture, binding: Binding, audiences: &[&str], issued: i64) -> String {
        let audiences: Vec<String> = audiences.iter().map(|a| a.to_string()).collect();
        let account = Account {
            namespace: "default",
            name: "builder",
            uid: "sa-uid",
        };
        let claims = Claims::new(ISSUER, account, binding, &audiences, issued, 600, None);
        jwt::sign(&f.key, &claims).unwrap()
    }

    #[tokio::test]
    async fn bound_tokens_authenticate_while_what_they_name_exists() {
        let f = fixture().await;
        let now = jiff::Timestamp::now().as_second();
        let pod = Binding {
            pod: Some(ObjectRef::new("web", "pod-uid")),
            node: Some(ObjectRef::new("node-1", "node-uid")),
            ..Binding::default()
        };
        let good = token(&f, pod, &[ISSUER], now);
        let who = f
            .authenticator
            .authenticate(&good, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(who.user.name, "system:serviceaccount:default:builder");
        assert_eq!(who.user.uid, "sa-uid");
        assert_eq!(
            who.user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:default",
                "system:authenticated"
            ]
        );
        assert_eq!(who.user.extra[POD_NAME_KEY], ["web"]);
        assert_eq!(who.user.extra[NODE_UID_KEY], ["node-uid"]);
        assert!(who.user.extra[CREDENTIAL_ID_KEY][0].starts_with("JTI="));
        assert_eq!(who.audiences, [ISSUER]);

        let expired = token(&f, Binding::default(), &[ISSUER], now - 3600);
        assert_eq!(
            f.authenticator
                .authenticate(&expired, None)
                .await
                .unwrap_err(),
            "service account token has expired"
        );
        let elsewhere = token(&f, Binding::default(), &["vault"], now);
        assert_eq!(
            f.authenticator
                .authenticate(&elsewhere, None)
                .await
                .unwrap_err(),
            format!(
                r#"token audiences ["vault"] is invalid for the target audiences ["{ISSUER}"]"#
            )
        );
        let wanted = ["vault".to_string()];
        assert!(f
            .authenticator
            .authenticate(&elsewhere, Some(&wanted))
            .await
            .is_ok());

        f.store.delete(b"/pods/default/web", None).await.unwrap();
        assert_eq!(
            f.authenticator.authenticate(&good, None).await.unwrap_err(),
            "service account token has been invalidated"
        );
        assert_eq!(
            f.authenticator.authenticate("static-token", None).await,
            Ok(None)
        );
    }

    #[tokio::test]
    async fn legacy_tokens_must_match_their_secret() {
        let f = fixture().await;
        let account = Account {
            namespace: "default",
            name: "builder",
            uid: "sa-uid",
        };
        let token = jwt::sign(&f.key, &LegacyClaims::new(account, "builder-token")).unwrap();
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD.encode(&token);
        put(
            &f.store,
            "/secrets/default/builder-token",
            &format!(r#"{{"metadata":{{"name":"builder-token","namespace":"default","uid":"s"}},"data":{{"token":"{data}"}}}}"#),
        )
        .await;
        let who = f
            .authenticator
            .authenticate(&token, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(who.user.name, "system:serviceaccount:default:builder");
        assert!(who.user.extra.is_empty());
        let other = jwt::sign(&f.key, &LegacyClaims::new(account, "other")).unwrap();
        assert_eq!(
            f.authenticator
                .authenticate(&other, None)
                .await
                .unwrap_err(),
            "Token has been invalidated"
        );
    }
}
