//! ServiceAccounts: the identities pods run as; `kubectl get sa` counts their secrets, and
//! `kubectl create token` posts a TokenRequest to their `token` subresource.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::registry::answer::{posted, Answered};
use crate::registry::strategy::{Action, Effect};
use crate::registry::table::{age, Cell, Column};
use crate::registry::{ApiRequest, Description, Strategy};
use crate::serviceaccount::TokenIssuer;

/// The `token` subresource: TokenRequests answered with a signed token.
const TOKEN: &[Action] = &[Action {
    name: "token",
    group: "authentication.k8s.io",
    version: "v1",
    kind: "TokenRequest",
    effect: Effect::Answer,
}];

pub struct ServiceAccounts {
    /// Signs TokenRequests; without it `token` is not served.
    tokens: Option<Arc<TokenIssuer>>,
}

impl ServiceAccounts {
    pub fn new(tokens: Option<Arc<TokenIssuer>>) -> Self {
        ServiceAccounts { tokens }
    }
}

#[async_trait]
impl Strategy for ServiceAccounts {
    type Object = ServiceAccount;

    fn describe(&self) -> Description {
        Description {
            short_names: &["sa"],
            actions: if self.tokens.is_some() { TOKEN } else { &[] },
            // Upstream's storage answers a DELETE with the deleted object.
            return_deleted_object: true,
            ..Description::default()
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret"),
            Column::age(),
        ]
    }

    fn cells(&self, account: &ServiceAccount) -> Vec<Cell> {
        vec![
            Cell::from(account.metadata.name.clone().unwrap_or_default()),
            Cell::from(account.secrets.as_ref().map_or(0, |s| s.len())),
            age(&account.metadata),
        ]
    }

    async fn answer(
        &self,
        _action: &str,
        account: &ServiceAccount,
        body: Value,
        _request: &ApiRequest,
    ) -> ApiResult<Answered> {
        let tokens = self.tokens.as_ref().ok_or(ApiError::PathNotFound)?;
        let request: TokenRequest = posted(body)?;
        tokens.request(account, request).await
    }
}
