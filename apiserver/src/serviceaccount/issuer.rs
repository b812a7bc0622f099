//! TokenRequest (`POST .../serviceaccounts/{name}/token`): a signed, bound, expiring token
//! for a service account, with upstream's defaults, validation, binding checks and expiry
//! rules (`--service-account-max-token-expiration`,
//! `--service-account-extend-token-expiration`).

use std::sync::Arc;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, ServiceAccount};
use machinery::serviceaccount::claims::{Account, Binding, Claims, ObjectRef};
use machinery::serviceaccount::jwt;
use machinery::serviceaccount::keys::SigningKey;
use serde_json::{json, Value};
use store::Store;

use crate::error::{ApiError, ApiResult, Cause, Target};
use crate::registry::answer::Answered;

/// What kubelet asks for a projected token; with `--service-account-extend-token-expiration`
/// such a pod-bound token is extended to [`EXTENDED_EXPIRATION_SECONDS`] and warns after
/// this long instead.
pub const WARN_ONLY_EXPIRATION_SECONDS: i64 = 60 * 60 + 7;

/// A year: how long an extended token lives.
const EXTENDED_EXPIRATION_SECONDS: i64 = 24 * 365 * 60 * 60;

/// `spec.expirationSeconds` when a request leaves it out.
const DEFAULT_EXPIRATION_SECONDS: i64 = 60 * 60;

const MIN_EXPIRATION_SECONDS: i64 = 10 * 60;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// Signs bound tokens with `--service-account-signing-key-file` as the first
/// `--service-account-issuer`.
pub struct TokenIssuer {
    pub(super) key: SigningKey,
    pub(super) issuer: String,
    pub(super) api_audiences: Vec<String>,
    pub(super) max_expiration_seconds: Option<i64>,
    pub(super) extend_expiration: bool,
    pub(super) store: Arc<dyn Store>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// Answers a TokenRequest posted for `account` (read from the store by the registry,
    /// from the URL's namespace and name).
    pub async fn request(
        &self,
        account: &ServiceAccount,
        posted: TokenRequest,
    ) -> ApiResult<Answered> {
        let mut request = posted;
        let name = account.metadata.name.clone().unwrap_or_default();
        let namespace = account.metadata.namespace.clone().unwrap_or_default();
        let invalid = |causes| ApiError::Invalid {
            target: token_target(&name),
            causes,
        };
        let meta = &mut request.metadata;
        if let Some(body_name) = meta.name.as_deref().filter(|n| !n.is_empty() && *n != name) {
            return Err(invalid(vec![Cause::invalid(
                "metadata.name",
                &Value::from(body_name),
                "must match the service account name if specified",
            )]));
        }
        if let Some(body_ns) = meta
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty() && *n != namespace)
        {
            return Err(invalid(vec![Cause::invalid(
                "metadata.namespace",
                &Value::from(body_ns),
                "must match the service account namespace if specified",
            )]));
        }
        let spec = &mut request.spec;
        if spec.audiences.is_empty() {
            spec.audiences = self.api_audiences.clone();
        }
        let mut expiration = spec
            .expiration_seconds
            .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
        let now = jiff::Timestamp::now();
        let mut causes = Vec::new();
        if expiration < MIN_EXPIRATION_SECONDS {
            causes.push(Cause::invalid(
                "spec.expirationSeconds",
                &Value::from(expiration),
                "may not specify a duration less than 10 minutes",
            ));
        }
        if expiration > MAX_EXPIRATION_SECONDS {
            causes.push(Cause::invalid(
                "spec.expirationSeconds",
                &Value::from(expiration),
                "may not specify a duration larger than 2^32 seconds",
            ));
        }
        if !causes.is_empty() {
            return Err(ApiError::Invalid {
                target: token_target(""),
                causes,
            });
        }
        let (binding, bound_to_pod) = self.binding(&name, &namespace, spec).await?;
        let mut warnings = Vec::new();
        if let Some(max) = self.max_expiration_seconds.filter(|max| expiration > *max) {
            warnings.push(format!(
                "requested expiration of {expiration} seconds shortened to {max} seconds"
            ));
            expiration = max;
        }
        // A kubelet-style request (pod-bound, 3607 seconds, for the API server) lives a year
        // and only warns after its requested lifetime, easing the move off legacy tokens.
        let kube_audiences = spec
            .audiences
            .iter()
            .all(|a| self.api_audiences.contains(a));
        let (lifetime, warn_after) = if self.extend_expiration
            && bound_to_pod
            && expiration == WARN_ONLY_EXPIRATION_SECONDS
            && kube_audiences
        {
            (EXTENDED_EXPIRATION_SECONDS, Some(expiration))
        } else {
            (expiration, None)
        };
        let account_uid = account.metadata.uid.clone().unwrap_or_default();
        let claims = Claims::new(
            &self.issuer,
            Account {
                namespace: &namespace,
                name: &name,
                uid: &account_uid,
            },
            binding,
            &spec.audiences,
            now.as_second(),
            lifetime,
            warn_after,
        );
        let token = jwt::sign(&self.key, &claims)
            .map_err(|e| ApiError::Internal(format!("failed to generate token: {e}")))?;
        // metav1.Time keeps whole seconds.
        let created = jiff::Timestamp::from_second(now.as_second()).unwrap_or(now);
        let expires = created + jiff::SignedDuration::from_secs(expiration);
        let mut answered = Answered::new(json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": time(created),
            },
            "spec": {
                "audiences": spec.audiences,
                "expirationSeconds": expiration,
                "boundObjectRef": spec.bound_object_ref,
            },
            "status": {"token": token, "expirationTimestamp": time(expires)},
        }));
        answered.warnings = warnings;
        Ok(answered)
    }

    /// The object the token is bound to, checked to exist (and match a given UID), and
    /// whether it is a pod. A pod-bound token also names the pod's node.
    async fn binding(
        &self,
        account: &str,
        namespace: &str,
        spec: &k8s_openapi::api::authentication::v1::TokenRequestSpec,
    ) -> ApiResult<(Binding, bool)> {
        let Some(reference) = &spec.bound_object_ref else {
            return Ok((Binding::default(), false));
        };
        let kind = reference.kind.as_deref().unwrap_or("");
        let api_version = reference.api_version.as_deref().unwrap_or("");
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let name = reference.name.as_deref().unwrap_or("");
        let mut binding = Binding::default();
        let uid = match (group, kind) {
            ("", "Pod") => {
                let pod: Pod = self.get("pods", Some(namespace), name).await?;
                if pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.as_deref())
                    != Some(account)
                {
                    return Err(ApiError::BadRequest(format!(
                        "cannot bind token for serviceaccount {account:?} to pod running with different serviceaccount name."
                    )));
                }
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                binding.pod = Some(ObjectRef::new(name, &uid));
                if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
                    // A node that is gone still leaves its name in the claims, as upstream.
                    let node_uid = match self.get::<Node>("nodes", None, node).await {
                        Ok(found) => found.metadata.uid.unwrap_or_default(),
                        Err(ApiError::NotFound(_)) => String::new(),
                        Err(other) => return Err(other),
                    };
                    binding.node = Some(ObjectRef::new(node, &node_uid));
                }
                uid
            }
            ("", "Node") => {
                let node: Node = self.get("nodes", None, name).await?;
                let uid = node.metadata.uid.unwrap_or_default();
                binding.node = Some(ObjectRef::new(name, &uid));
                uid
            }
            ("", "Secret") => {
                let secret: Secret = self.get("secrets", Some(namespace), name).await?;
                let uid = secret.metadata.uid.unwrap_or_default();
                binding.secret = Some(ObjectRef::new(name, &uid));
                uid
            }
            _ => {
                let gvk = match group {
                    "" => format!("/{}, Kind={kind}", api_version),
                    _ => format!("{api_version}, Kind={kind}"),
                };
                return Err(ApiError::BadRequest(format!(
                    "cannot bind token to object of type {gvk}"
                )));
            }
        };
        if let Some(wanted) = reference
            .uid
            .as_deref()
            .filter(|u| !u.is_empty() && *u != uid)
        {
            return Err(ApiError::Conflict {
                target: Target {
                    group: group.into(),
                    resource: kind.into(),
                    kind: kind.into(),
                    name: name.into(),
                },
                detail: format!("the UID in the bound object reference ({wanted}) does not match the UID in record. The object might have been deleted and then recreated"),
            });
        }
        let is_pod = binding.pod.is_some();
        Ok((binding, is_pod))
    }

    /// An object the token is bound to, or upstream's 404 for it.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        resource: &'static str,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<T> {
        super::authenticator::lookup(&*self.store, resource, namespace, name)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(Target {
                    group: String::new(),
                    resource: resource.into(),
                    kind: String::new(),
                    name: name.into(),
                })
            })
    }
}

fn token_target(name: &str) -> Target {
    Target {
        group: "authentication.k8s.io".into(),
        resource: "token".into(),
        kind: "TokenRequest".into(),
        name: name.into(),
    }
}

/// A metav1.Time: RFC 3339 in seconds, UTC.
fn time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequestSpec};
    use machinery::serviceaccount::claims::Claims;

    const AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

    async fn issuer(dir: &std::path::Path, max: Option<i64>) -> TokenIssuer {
        let config = store::embedded::EmbeddedConfig::new(dir);
        let store: Arc<dyn Store> = Arc::new(store::embedded::EmbeddedStore::open(config).unwrap());
        let pod = r#"{"metadata":{"name":"web","namespace":"default","uid":"pod-uid"},"spec":{"serviceAccountName":"builder","nodeName":"node-1","containers":[]}}"#;
        store
            .create(b"/pods/default/web", bytes::Bytes::from(pod))
            .await
            .unwrap();
        let (private, _) = SigningKey::generate_pem().unwrap();
        TokenIssuer {
            key: SigningKey::from_pem(private.as_bytes()).unwrap(),
            issuer: AUDIENCE.into(),
            api_audiences: vec![AUDIENCE.into()],
            max_expiration_seconds: max,
            extend_expiration: true,
            store,
        }
    }

    fn account() -> ServiceAccount {
        let mut account = ServiceAccount::default();
        account.metadata.name = Some("builder".into());
        account.metadata.namespace = Some("default".into());
        account.metadata.uid = Some("sa-uid".into());
        account
    }

    fn request(seconds: Option<i64>, bound: Option<(&str, &str)>) -> TokenRequest {
        TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: seconds,
                bound_object_ref: bound.map(|(kind, name)| BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some(kind.into()),
                    name: Some(name.into()),
                    uid: None,
                }),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        }
    }

    fn claims(answered: &Answered) -> Claims {
        let token = answered.object["status"]["token"].as_str().unwrap();
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn requests_get_upstream_defaults_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = issuer(dir.path(), Some(7200)).await;
        let answered = issuer
            .request(&account(), request(None, None))
            .await
            .unwrap();
        assert_eq!(answered.object["spec"]["audiences"], json!([AUDIENCE]));
        assert_eq!(answered.object["spec"]["expirationSeconds"], 3600);
        assert_eq!(answered.object["metadata"]["name"], "builder");
        let c = claims(&answered);
        assert_eq!(c.exp.unwrap() - c.iat.unwrap(), 3600);
        assert_eq!(c.kubernetes.serviceaccount.uid, "sa-uid");

        let short = issuer.request(&account(), request(Some(599), None)).await;
        assert_eq!(
            short.unwrap_err().to_string(),
            r#"TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"#
        );
        let capped = issuer
            .request(&account(), request(Some(86400), None))
            .await
            .unwrap();
        assert_eq!(capped.object["spec"]["expirationSeconds"], 7200);
        assert_eq!(
            capped.warnings,
            ["requested expiration of 86400 seconds shortened to 7200 seconds"]
        );
        let mut renamed = request(None, None);
        renamed.metadata.name = Some("other".into());
        let error = issuer.request(&account(), renamed).await.unwrap_err();
        assert!(error
            .to_string()
            .ends_with(r#"metadata.name: Invalid value: "other": must match the service account name if specified"#));
    }

    #[tokio::test]
    async fn bound_requests_name_their_object_and_kubelets_are_extended() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = issuer(dir.path(), None).await;
        let kubelet = request(Some(WARN_ONLY_EXPIRATION_SECONDS), Some(("Pod", "web")));
        let answered = issuer.request(&account(), kubelet).await.unwrap();
        let c = claims(&answered);
        assert_eq!(c.kubernetes.pod.as_ref().unwrap().uid, "pod-uid");
        let node = c.kubernetes.node.as_ref().unwrap();
        assert_eq!(
            (node.name.as_str(), node.uid.as_str()),
            ("node-1", ""),
            "a missing node keeps its name"
        );
        assert_eq!(c.exp.unwrap() - c.iat.unwrap(), EXTENDED_EXPIRATION_SECONDS);
        assert_eq!(
            c.kubernetes.warnafter,
            Some(c.iat.unwrap() + WARN_ONLY_EXPIRATION_SECONDS)
        );
        assert_eq!(
            answered.object["spec"]["expirationSeconds"],
            WARN_ONLY_EXPIRATION_SECONDS
        );

        let missing = issuer
            .request(&account(), request(None, Some(("Secret", "nope"))))
            .await;
        assert_eq!(
            missing.unwrap_err().to_string(),
            r#"secrets "nope" not found"#
        );
        let unknown = issuer
            .request(&account(), request(None, Some(("ConfigMap", "x"))))
            .await;
        assert_eq!(
            unknown.unwrap_err().to_string(),
            "cannot bind token to object of type /v1, Kind=ConfigMap"
        );
        let mut stale = request(None, Some(("Pod", "web")));
        stale.spec.bound_object_ref.as_mut().unwrap().uid = Some("old".into());
        let conflict = issuer.request(&account(), stale).await.unwrap_err();
        assert_eq!(conflict.code(), 409);
    }
}
