//! TokenReview (`authentication.k8s.io/v1`): asks the apiserver who a bearer token belongs
//! to, as webhooks and other servers do to trust the cluster's tokens. Nothing is stored.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::TokenReview;
use serde_json::{json, Value};

use crate::authn::Authenticator;
use crate::error::{ApiError, ApiResult};
use crate::registry::answer::{Answer, Answered};
use crate::registry::ApiRequest;

pub struct TokenReviews {
    authenticator: Arc<Authenticator>,
}

impl TokenReviews {
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        TokenReviews { authenticator }
    }
}

#[async_trait]
impl Answer for TokenReviews {
    type Object = TokenReview;

    async fn answer(&self, review: TokenReview, _request: &ApiRequest) -> ApiResult<Answered> {
        let token = review.spec.token.clone().unwrap_or_default();
        if token.is_empty() {
            return Err(ApiError::BadRequest(
                "token is required for TokenReview in authentication".into(),
            ));
        }
        let audiences = review.spec.audiences.clone().filter(|a| !a.is_empty());
        let mut status = json!({"user": {}});
        match self
            .authenticator
            .authenticate_token(&token, audiences.as_deref())
            .await
        {
            Ok(identity) => {
                status = json!({
                    "authenticated": true,
                    "user": crate::resources::user_info(&identity.user),
                    "audiences": identity.audiences,
                });
            }
            Err(error) => status["error"] = Value::from(error),
        }
        let mut spec = json!({"token": token});
        if let Some(audiences) = &review.spec.audiences {
            spec["audiences"] = json!(audiences);
        }
        Ok(Answered::new(json!({
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": spec,
            "status": status,
        })))
    }
}
