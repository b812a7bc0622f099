//! SelfSubjectReview (`authentication.k8s.io/v1`): who the caller is, as the apiserver
//! authenticated them; what `kubectl auth whoami` asks. Nothing is stored.

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use serde_json::json;

use crate::error::ApiResult;
use crate::registry::answer::{Answer, Answered};
use crate::registry::{stored, ApiRequest};

pub struct SelfSubjectReviews;

#[async_trait]
impl Answer for SelfSubjectReviews {
    type Object = SelfSubjectReview;

    async fn answer(
        &self,
        _posted: SelfSubjectReview,
        request: &ApiRequest,
    ) -> ApiResult<Answered> {
        Ok(Answered::new(json!({
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": stored::now()},
            "status": {"userInfo": crate::resources::user_info(&request.user)},
        })))
    }
}
