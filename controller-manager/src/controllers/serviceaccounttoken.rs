//! The service account token controller (upstream `pkg/controller/serviceaccount`'s tokens
//! controller): a Secret of type `kubernetes.io/service-account-token` that names a service
//! account (annotation `kubernetes.io/service-account.name`, optionally `.uid`) is filled in
//! with a non-expiring legacy token signed by `--service-account-private-key-file`, the CA
//! bundle (`ca.crt`) and its namespace; the Secret goes when its service account does.
//!
//! Like upstream since 1.24, no Secret is created for a service account: only Secrets users
//! create are filled in.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::ByteString;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use machinery::serviceaccount::claims::{Account, LegacyClaims};
use machinery::serviceaccount::jwt;
use machinery::serviceaccount::keys::SigningKey;

use super::ControllerContext;
use crate::informers::Change;
use crate::runtime::{self, Queue, Result};

/// The controller's name (`--controllers`, queue metrics).
pub const NAME: &str = "serviceaccount-token-controller";

const TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
const NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
const UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

struct Context {
    client: Client,
    accounts: Store<ServiceAccount>,
    key: Arc<SigningKey>,
    root_ca: Option<String>,
}

/// Wires the controller to the informers and starts it; without
/// `--service-account-private-key-file` there is nothing to sign with, as upstream.
pub fn start(ctx: &ControllerContext) {
    let Some(key) = ctx.service_account_key.clone() else {
        tracing::warn!("--service-account-private-key-file not set: not filling in service account token Secrets");
        return;
    };
    let secrets = ctx
        .informers
        .get_selected::<Secret>(&format!("type={TOKEN_TYPE}"));
    let accounts = ctx.informers.get::<ServiceAccount>();
    let (queue, triggers) = Queue::new(NAME);
    tokio::spawn(watch_secrets(queue.clone(), secrets.subscribe()));
    tokio::spawn(watch_accounts(
        queue.clone(),
        ctx.client.clone(),
        secrets.store(),
        accounts.subscribe(),
    ));
    let context = Arc::new(Context {
        client: ctx.client.clone(),
        accounts: accounts.store(),
        key,
        root_ca: ctx.root_ca.clone(),
    });
    let controller = runtime::Controller {
        queue,
        triggers,
        store: secrets.store(),
        caches: vec![secrets.synced(), accounts.synced()],
        workers: 1,
    };
    tokio::spawn(controller.run(context, reconcile));
}

async fn watch_secrets(queue: Queue<Secret>, mut changes: UnboundedReceiver<Change<Secret>>) {
    while let Some(change) = changes.next().await {
        if let Change::Applied { new, .. } = change {
            queue.add_object(&new);
        }
    }
}

/// A service account that appears completes its Secrets; one that goes takes them along.
async fn watch_accounts(
    queue: Queue<Secret>,
    client: Client,
    secrets: Store<Secret>,
    mut changes: UnboundedReceiver<Change<ServiceAccount>>,
) {
    while let Some(change) = changes.next().await {
        let (account, deleted) = match change {
            Change::Applied { new, .. } => (new, false),
            Change::Deleted(gone) => (gone, true),
        };
        let namespace = account.namespace().unwrap_or_default();
        for secret in secrets.state() {
            if secret.namespace().as_deref() != Some(namespace.as_str())
                || !names(&secret, &account)
            {
                continue;
            }
            if !deleted {
                queue.add_object(&secret);
            } else if let Err(error) = delete(&client, &secret).await {
                tracing::info!(secret = secret.name_any(), %error, "deleting the token of a deleted service account failed");
                queue.add_object(&secret);
            }
        }
    }
}

/// Whether `secret` is a token of `account`: by name, and by UID when the Secret records one.
fn names(secret: &Secret, account: &ServiceAccount) -> bool {
    let annotations = secret.annotations();
    annotations.get(NAME_ANNOTATION) == Some(&account.name_any())
        && annotations
            .get(UID_ANNOTATION)
            .is_none_or(|uid| uid.is_empty() || Some(uid) == account.metadata.uid.as_ref())
}

async fn reconcile(secret: Arc<Secret>, ctx: Arc<Context>) -> Result<Action> {
    if secret.type_.as_deref() != Some(TOKEN_TYPE) || secret.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = secret.namespace().unwrap_or_default();
    let Some(account) = account_of(&ctx, &secret, &namespace).await? else {
        tracing::info!(
            secret = secret.name_any(),
            namespace,
            "service account does not exist, deleting token"
        );
        delete(&ctx.client, &secret).await?;
        return Ok(Action::await_change());
    };
    if !needs_update(&secret, ctx.root_ca.as_deref()) {
        return Ok(Action::await_change());
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    // Work on the live Secret; a cache behind it will bring the newer version here again.
    let mut live = match api.get(&secret.name_any()).await {
        Ok(live) => live,
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Action::await_change()),
        Err(error) => return Err(error.into()),
    };
    if live.resource_version() != secret.resource_version()
        || !needs_update(&live, ctx.root_ca.as_deref())
    {
        return Ok(Action::await_change());
    }
    let data = live.data.get_or_insert_with(BTreeMap::new);
    if let Some(ca) = &ctx.root_ca {
        data.insert("ca.crt".into(), ByteString(ca.as_bytes().to_vec()));
    }
    if data.get("namespace").is_none_or(|n| n.0.is_empty()) {
        data.insert(
            "namespace".into(),
            ByteString(namespace.as_bytes().to_vec()),
        );
    }
    if data.get("token").is_none_or(|t| t.0.is_empty()) {
        let account_uid = account.metadata.uid.clone().unwrap_or_default();
        let claims = LegacyClaims::new(
            Account {
                namespace: &namespace,
                name: &account.name_any(),
                uid: &account_uid,
            },
            &secret.name_any(),
        );
        let token = jwt::sign(&ctx.key, &claims)
            .map_err(|e| runtime::Error::TokenSigning(e.to_string()))?;
        data.insert("token".into(), ByteString(token.into_bytes()));
    }
    let annotations = live.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(NAME_ANNOTATION.into(), account.name_any());
    annotations.insert(
        UID_ANNOTATION.into(),
        account.metadata.uid.clone().unwrap_or_default(),
    );
    match api
        .replace(&secret.name_any(), &PostParams::default(), &live)
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        // Changed or gone meanwhile: the informer brings the news.
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
            Ok(Action::await_change())
        }
        Err(error) => Err(error.into()),
    }
}

/// The service account a Secret names, from the cache or, on a miss (an account created a
/// moment before its Secret), from the API server; `None` if it does not exist or has a
/// different UID than the Secret records.
async fn account_of(
    ctx: &Context,
    secret: &Secret,
    namespace: &str,
) -> Result<Option<Arc<ServiceAccount>>> {
    let Some(name) = secret.annotations().get(NAME_ANNOTATION).cloned() else {
        return Ok(None);
    };
    let account = match ctx.accounts.get(&ObjectRef::new(&name).within(namespace)) {
        Some(cached) => cached,
        None => {
            let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), namespace);
            match api.get_opt(&name).await? {
                Some(live) => Arc::new(live),
                None => return Ok(None),
            }
        }
    };
    Ok(names(secret, &account).then_some(account))
}

/// Upstream's `secretUpdateNeeded`: a missing token or namespace, or a CA bundle that is
/// not the current one.
fn needs_update(secret: &Secret, root_ca: Option<&str>) -> bool {
    let data = secret.data.as_ref();
    let value = |key: &str| data.and_then(|d| d.get(key)).map(|v| v.0.as_slice());
    let stale_ca = root_ca.is_some_and(|ca| value("ca.crt") != Some(ca.as_bytes()));
    stale_ca
        || value("namespace").is_none_or(<[u8]>::is_empty)
        || value("token").is_none_or(<[u8]>::is_empty)
}

/// Deletes the Secret it was given, not one recreated under its name since.
async fn delete(client: &Client, secret: &Secret) -> std::result::Result<(), kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &secret.namespace().unwrap_or_default());
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: secret.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&secret.name_any(), &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn secret(annotations: &[(&str, &str)], data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("builder-token".into()),
                namespace: Some("default".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            type_: Some(TOKEN_TYPE.into()),
            ..Secret::default()
        }
    }

    #[test]
    fn secrets_name_accounts_by_name_and_uid() {
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some("builder".into()),
                uid: Some("u1".into()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        assert!(names(
            &secret(&[(NAME_ANNOTATION, "builder")], &[]),
            &account
        ));
        assert!(names(
            &secret(&[(NAME_ANNOTATION, "builder"), (UID_ANNOTATION, "u1")], &[]),
            &account
        ));
        assert!(!names(
            &secret(&[(NAME_ANNOTATION, "builder"), (UID_ANNOTATION, "u0")], &[]),
            &account
        ));
        assert!(!names(
            &secret(&[(NAME_ANNOTATION, "other")], &[]),
            &account
        ));
    }

    #[test]
    fn complete_secrets_are_left_alone() {
        let full = secret(
            &[],
            &[("token", "t"), ("namespace", "default"), ("ca.crt", "CA")],
        );
        assert!(!needs_update(&full, Some("CA")));
        assert!(needs_update(&full, Some("new CA")));
        assert!(!needs_update(&full, None));
        assert!(needs_update(
            &secret(&[], &[("namespace", "default")]),
            None
        ));
    }
}
