//! Objects answered rather than stored: what a POST to a review (TokenReview,
//! SelfSubjectReview, SubjectAccessReview...) or to an answering action subresource
//! (`serviceaccounts/token`) returns is the posted object completed, never kept.
//!
//! A review is an [`Answer`] implementation served by [`CreateOnly`], which gives it the
//! registry's discovery, OpenAPI, body decoding and response negotiation; the answering
//! actions of stored resources are [`super::strategy::Effect::Answer`] and
//! [`super::Strategy::answer`]. Both end in [`Answered`].

use std::any::TypeId;

use async_trait::async_trait;
use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::NamespaceResourceScope;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::encode::{body_response, error_response, with_warnings, yaml};
use super::request::{decode_body, not_acceptable, ApiRequest, Output, Verb};
use super::strategy::Description;
use super::{Resource, ResourceInfo};
use crate::error::{ApiError, ApiResult};

/// An answer: the object returned (apiVersion and kind included, written as upstream's Go
/// types write it) with 201, and the warnings the request earned.
#[derive(Debug, Clone)]
pub struct Answered {
    pub object: Value,
    pub warnings: Vec<String>,
}

impl Answered {
    pub fn new(object: Value) -> Answered {
        Answered {
            object,
            warnings: Vec::new(),
        }
    }

    /// The response in the negotiated `output`: JSON, YAML or protobuf. Like upstream, an
    /// answered object has no Table and no metadata-only form (406).
    pub(super) fn respond(self, output: Output) -> ApiResult<Response> {
        let internal = |e: &dyn std::fmt::Display| ApiError::Internal(e.to_string());
        let json = || serde_json::to_vec(&self.object).map_err(|e| internal(&e));
        let body = match output {
            Output::Json => json()?,
            Output::Yaml => yaml(&json()?)?,
            Output::Protobuf => {
                let field = |name| self.object.get(name).and_then(Value::as_str).unwrap_or("");
                crate::protobuf::encode_object(field("apiVersion"), field("kind"), &json()?)
                    .map_err(|e| internal(&e))?
            }
            Output::Table(_) | Output::Metadata { .. } => return Err(not_acceptable()),
        };
        Ok(with_warnings(
            body_response(StatusCode::CREATED, body, output),
            &self.warnings,
        ))
    }
}

/// A posted object of type `T`. As for a create, a missing apiVersion or kind is `T`'s and a
/// different one is refused. A posted `status` is dropped: it is what the answer fills in
/// (clients send it empty, `expirationTimestamp: null` included).
pub fn posted<T: k8s_openapi::Resource + DeserializeOwned>(mut body: Value) -> ApiResult<T> {
    let Some(fields) = body.as_object_mut() else {
        return Err(ApiError::BadRequest(format!(
            "the body of the request is not a JSON object: {body}"
        )));
    };
    let field = |name| fields.get(name).and_then(Value::as_str);
    if let Some(api_version) = field("apiVersion").filter(|v| *v != T::API_VERSION) {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            T::API_VERSION
        )));
    }
    if let Some(kind) = field("kind").filter(|k| *k != T::KIND) {
        return Err(ApiError::BadRequest(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            T::KIND
        )));
    }
    fields.remove("status");
    fields.insert("apiVersion".into(), T::API_VERSION.into());
    fields.insert("kind".into(), T::KIND.into());
    serde_json::from_value(body).map_err(|e| {
        ApiError::BadRequest(format!("the body of the request could not be decoded: {e}"))
    })
}

/// What a create-only resource does with what is posted to it.
#[async_trait]
pub trait Answer: Send + Sync + 'static {
    /// The posted and answered kind.
    type Object: k8s_openapi::Resource + DeserializeOwned + schemars::JsonSchema + Send;

    /// Discovery's short names and categories; [`CreateOnly`] marks it create-only.
    fn describe(&self) -> Description {
        Description::default()
    }

    /// The answer to `posted`, for `request` (its user, namespace, query).
    async fn answer(&self, posted: Self::Object, request: &ApiRequest) -> ApiResult<Answered>;
}

/// Serves an [`Answer`] as a resource: POST to the collection only (other verbs are 405),
/// discovered with the `create` verb alone.
pub struct CreateOnly<A: Answer> {
    answer: A,
    info: ResourceInfo,
}

impl<A: Answer> CreateOnly<A> {
    pub fn new(answer: A) -> Self {
        use k8s_openapi::Resource as _;
        let mut description = answer.describe();
        description.create_only = true;
        let info = ResourceInfo {
            group: A::Object::GROUP,
            version: A::Object::VERSION,
            kind: A::Object::KIND,
            list_kind: "",
            plural: A::Object::URL_PATH_SEGMENT,
            singular: A::Object::KIND.to_ascii_lowercase(),
            namespaced: TypeId::of::<<A::Object as k8s_openapi::Resource>::Scope>()
                == TypeId::of::<NamespaceResourceScope>(),
            description,
        };
        CreateOnly { answer, info }
    }

    async fn create(&self, request: &ApiRequest) -> ApiResult<Answered> {
        if request.verb != Verb::Create || request.name.is_some() {
            return Err(ApiError::MethodNotAllowed);
        }
        if request.body.is_empty() {
            return Err(ApiError::BadRequest(
                "the body of the request is empty".into(),
            ));
        }
        let posted = posted(decode_body(&request.headers, &request.body)?)?;
        self.answer.answer(posted, request).await
    }
}

#[async_trait]
impl<A: Answer> Resource for CreateOnly<A> {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> String {
        generator.subschema_for::<A::Object>();
        <A::Object as schemars::JsonSchema>::schema_name().into_owned()
    }

    async fn handle(&self, request: ApiRequest) -> ApiResult<Response> {
        let output = request.output;
        Ok(self
            .create(&request)
            .await
            .and_then(|answered| answered.respond(output))
            .unwrap_or_else(|error| error_response(error, output)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::TokenReview;
    use serde_json::json;

    #[test]
    fn posted_objects_default_and_check_their_kind() {
        let review: TokenReview = posted(json!({"spec": {"token": "t"}})).unwrap();
        assert_eq!(review.spec.token.as_deref(), Some("t"));
        let wrong = posted::<TokenReview>(json!({"kind": "Pod"})).unwrap_err();
        assert_eq!(
            wrong.to_string(),
            "the kind in the data (Pod) does not match the expected kind (TokenReview)"
        );
        assert!(posted::<TokenReview>(json!({"apiVersion": "v1"})).is_err());
    }
}
