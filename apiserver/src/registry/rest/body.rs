//! Request bodies → typed objects, as upstream's decoder and `fieldValidation` do.

use serde_json::Value;

use super::Rest;
use crate::decoding;
use crate::error::{ApiError, ApiResult};
use crate::registry::request::{decode_body, ApiRequest, FieldValidation};
use crate::registry::strategy::Strategy;

impl<S: Strategy> Rest<S> {
    /// Decodes a request body into the typed object, applying `fieldValidation`.
    pub(super) fn read_body(&self, request: &ApiRequest) -> ApiResult<(S::Object, Vec<String>)> {
        if request.body.is_empty() {
            return Err(ApiError::BadRequest(
                "the body of the request is empty".into(),
            ));
        }
        let input = decode_body(&request.headers, &request.body)?;
        self.typed(
            input,
            request,
            decoding::Source::of(&request.headers, &request.body),
        )
    }

    /// Checks a document's type and fields and converts it to the typed object as Go would;
    /// `fieldValidation` looks for unknown fields, and for keys repeated in the `source` text.
    pub(super) fn typed(
        &self,
        input: Value,
        request: &ApiRequest,
        source: decoding::Source,
    ) -> ApiResult<(S::Object, Vec<String>)> {
        let Some(fields_map) = input.as_object() else {
            return Err(ApiError::BadRequest(format!(
                "the body of the request is not a JSON object: {input}"
            )));
        };
        // Like upstream's decoder, a missing apiVersion or kind defaults to the URL's.
        let expected_version = self.info.api_version();
        let api_version = fields_map
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or(&expected_version);
        if api_version != expected_version {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({expected_version})"
            )));
        }
        let kind = fields_map
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or(self.info.kind);
        if kind != self.info.kind {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                self.info.kind
            )));
        }
        let mut input = input;
        input["apiVersion"] = Value::from(expected_version.as_str());
        input["kind"] = Value::from(self.info.kind);
        let validation = request
            .query
            .field_validation
            .unwrap_or(FieldValidation::Warn);
        let check = validation != FieldValidation::Ignore;
        let (object, unknown) =
            decoding::decode::<S::Object>(input, check).map_err(|e| match e {
                decoding::DecodeError::Invalid(e) => ApiError::BadRequest(format!(
                    "the body of the request could not be decoded: {e}"
                )),
                e @ decoding::DecodeError::Encode(_) => ApiError::Internal(e.to_string()),
            })?;
        if !check {
            return Ok((object, Vec::new()));
        }
        let problems = source.problems(unknown);
        match validation {
            FieldValidation::Strict if !problems.is_empty() => {
                Err(ApiError::BadRequest(format!(
                    "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                    problems.join(", "),
                    kind = self.info.kind,
                    version = self.info.version,
                )))
            }
            _ => Ok((object, problems)),
        }
    }
}
