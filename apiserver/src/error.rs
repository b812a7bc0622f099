//! Every way a request can fail, and the one place each becomes a Kubernetes `Status`.
//!
//! Clients branch on `reason` and `code` (kubectl prints `message` verbatim), so the wording
//! follows upstream's exactly: `pods "x" not found`, `Operation cannot be fulfilled on ...`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// The resource an error is about, as upstream names it in messages: `pods` or
/// `deployments.apps`, and the kind for `Invalid` (`Pod`, `Deployment.apps`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    pub kind: String,
    pub name: String,
}

impl Target {
    fn qualified(&self, name: &str) -> String {
        if self.group.is_empty() {
            name.to_string()
        } else {
            format!("{name}.{}", self.group)
        }
    }

    fn group_resource(&self) -> String {
        self.qualified(&self.resource)
    }

    fn group_kind(&self) -> String {
        self.qualified(&self.kind)
    }

    /// Upstream's `NewForbidden` prefix: `pods "x"`, `pods` without a name, nothing for a
    /// non-resource path.
    fn forbidden_subject(&self) -> String {
        match (self.resource.as_str(), self.name.as_str()) {
            ("", _) => String::new(),
            (_, "") => format!("{} is ", self.group_resource()),
            (_, name) => format!("{} {name:?} is ", self.group_resource()),
        }
    }
}

/// One field-level problem of an `Invalid` error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Upstream's `FieldValueRequired`, `FieldValueInvalid`, ... (the `reason` of the cause).
    pub reason: &'static str,
    /// The field path, e.g. `spec.containers[0].image`.
    pub field: String,
    /// The full message, e.g. `Required value` or `Invalid value: "x": must be ...`.
    pub message: String,
}

impl Cause {
    pub fn required(field: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }

    /// `Required value: <detail>`, for the required fields upstream explains.
    pub fn required_because(field: impl Into<String>, detail: &str) -> Self {
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message: format!("Required value: {detail}"),
        }
    }

    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl AsRef<str>) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!(
                "Invalid value: {}: {}",
                display_value(value),
                detail.as_ref()
            ),
        }
    }

    /// An invalid value whose text is already printed as upstream prints it (Go's `%#v` of a
    /// struct or map: `map[string]string{"app":"web"}`, `[]string{"10.96.0.10"}`).
    pub fn invalid_printed(
        field: impl Into<String>,
        printed: &str,
        detail: impl AsRef<str>,
    ) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {printed}: {}", detail.as_ref()),
        }
    }

    /// A reference to something that does not exist (a volume mount naming no volume).
    pub fn not_found(field: impl Into<String>, value: &Value) -> Self {
        Cause {
            reason: "FieldValueNotFound",
            field: field.into(),
            message: format!("Not found: {}", display_value(value)),
        }
    }

    pub fn unsupported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let supported: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                display_value(value),
                supported.join(", ")
            ),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {}", detail.into()),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Cause {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {}", display_value(value)),
        }
    }

    /// The cause as upstream prints it inside an `Invalid` message: `field: message`.
    fn line(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// Values print like Go's `%#v` of the JSON value: strings quoted, numbers bare.
fn display_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{} \"{}\" not found", .0.group_resource(), .0.name)]
    NotFound(Target),
    #[error("{} \"{}\" already exists", .0.group_resource(), .0.name)]
    AlreadyExists(Target),
    /// Optimistic concurrency failure or a precondition mismatch; `detail` follows the colon.
    #[error("Operation cannot be fulfilled on {} \"{}\": {detail}", .target.group_resource(), .target.name)]
    Conflict { target: Target, detail: String },
    #[error("{} \"{}\" is invalid: {}", .target.group_kind(), .target.name, invalid_summary(.causes))]
    Invalid { target: Target, causes: Vec<Cause> },
    /// Server-side apply would change fields other managers own: `message` lists them as
    /// upstream does, one `FieldManagerConflict` cause per field.
    #[error("{message}")]
    ApplyConflict { message: String, causes: Vec<Cause> },
    #[error("{0}")]
    BadRequest(String),
    /// A well-formed request that cannot be carried out on this object (a failed JSON patch
    /// `test`, a strategic merge patch that does not fit the object).
    #[error("{0}")]
    Unprocessable(String),
    /// Upstream's generic 422 for a patch that does not apply (`NewGenericServerResponse`):
    /// it does not say why, and its details are empty.
    #[error("the server rejected our request due to an error in our request")]
    PatchRejected,
    #[error("Unauthorized")]
    Unauthorized,
    /// Upstream's `NewForbidden`: `<resource> "<name>" is forbidden: <reason>`, with the
    /// object in the details.
    #[error("{}forbidden: {reason}", .target.forbidden_subject())]
    Forbidden { target: Target, reason: String },
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A body, a patch or the object it builds exceeds a limit; the detail says which.
    #[error("Request entity too large: {0}")]
    RequestEntityTooLarge(String),
    /// A resourceVersion or continue token older than the kept history.
    #[error("{0}")]
    Expired(String),
    /// The server could not find the requested resource (unknown path).
    #[error("the server could not find the requested resource")]
    PathNotFound,
    #[error("{0}")]
    Timeout(String),
    /// Upstream's `NewTooManyRequests`: refused for now (an eviction a disruption budget does
    /// not allow), to be retried after `retry_after` seconds (0: no advice); each cause is a
    /// `(reason, message)`.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: u32,
        causes: Vec<(&'static str, String)>,
    },
    #[error("{0}")]
    ServiceUnavailable(String),
    #[error("{0}")]
    Internal(String),
    /// A server error upstream reports without a reason (an error that is not an API status,
    /// such as a configuration server-side apply cannot type); kubectl then prints
    /// `Error from server: <message>`.
    #[error("{0}")]
    Unclassified(String),
}

fn invalid_summary(causes: &[Cause]) -> String {
    match causes {
        [one] => one.line(),
        many => format!(
            "[{}]",
            many.iter().map(Cause::line).collect::<Vec<_>>().join(", ")
        ),
    }
}

impl ApiError {
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) | ApiError::PathNotFound => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists(_)
            | ApiError::Conflict { .. }
            | ApiError::ApplyConflict { .. } => StatusCode::CONFLICT,
            ApiError::Invalid { .. } | ApiError::Unprocessable(_) | ApiError::PatchRejected => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestEntityTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Expired(_) => StatusCode::GONE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) | ApiError::Unclassified(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) | ApiError::PathNotFound => "NotFound",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::Invalid { .. } | ApiError::Unprocessable(_) | ApiError::PatchRejected => {
                "Invalid"
            }
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::NotAcceptable(_) => "NotAcceptable",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::RequestEntityTooLarge(_) => "RequestEntityTooLarge",
            ApiError::Expired(_) => "Expired",
            ApiError::Timeout(_) => "Timeout",
            ApiError::TooManyRequests { .. } => "TooManyRequests",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::Internal(_) => "InternalError",
            ApiError::Unclassified(_) => "",
        }
    }

    /// The `meta.k8s.io/v1` `Status` object for this error.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        if let Some(fields) = status.as_object_mut().filter(|_| self.reason().is_empty()) {
            fields.remove("reason");
        }
        let details = match self {
            ApiError::PatchRejected => Some(json!({})),
            ApiError::NotFound(t)
            | ApiError::AlreadyExists(t)
            | ApiError::Conflict { target: t, .. }
            | ApiError::Forbidden { target: t, .. } => {
                Some(json!({"name": t.name, "group": t.group, "kind": t.resource}))
            }
            ApiError::ApplyConflict { causes, .. } => Some(json!({
                "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
            })),
            ApiError::Invalid { target: t, causes } => Some(json!({
                "name": t.name,
                "group": t.group,
                "kind": t.kind,
                "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
            })),
            ApiError::TooManyRequests {
                retry_after,
                causes,
                ..
            } => {
                let mut details = json!({
                    "causes": causes.iter().map(|(reason, message)| json!({"reason": reason, "message": message})).collect::<Vec<_>>(),
                });
                if *retry_after > 0 {
                    details["retryAfterSeconds"] = Value::from(*retry_after);
                }
                Some(details)
            }
            _ => None,
        };
        if let Some(mut details) = details {
            // Upstream omits empty strings.
            if let Some(map) = details.as_object_mut() {
                map.retain(|_, v| v.as_str() != Some(""));
            }
            status["details"] = details;
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.code().is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        let body = serde_json::to_vec(&self.status()).unwrap_or_default();
        let mut response = (self.code(), body).into_response();
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        self.advise_retry(response)
    }
}

impl ApiError {
    /// `response` with the `Retry-After` header upstream sets when the Status advises a
    /// delay.
    pub fn advise_retry(&self, mut response: Response) -> Response {
        if let ApiError::TooManyRequests { retry_after, .. } = self {
            if *retry_after > 0 {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from(*retry_after));
            }
        }
        response
    }
}

impl From<store::Error> for ApiError {
    fn from(error: store::Error) -> Self {
        match error {
            store::Error::Compacted {
                requested,
                compacted,
            } => ApiError::Expired(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            store::Error::FutureRevision { requested, current } => ApiError::Timeout(format!(
                "Too large resource version: {requested}, current: {current}"
            )),
            store::Error::Unavailable(message) => ApiError::ServiceUnavailable(message),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Result of a request handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Target {
        Target {
            group: String::new(),
            resource: "pods".into(),
            kind: "Pod".into(),
            name: name.into(),
        }
    }

    #[test]
    fn messages_match_upstream_wording() {
        assert_eq!(
            ApiError::NotFound(pod("x")).to_string(),
            r#"pods "x" not found"#
        );
        let deployment = Target {
            group: "apps".into(),
            resource: "deployments".into(),
            kind: "Deployment".into(),
            name: "web".into(),
        };
        assert_eq!(
            ApiError::AlreadyExists(deployment.clone()).to_string(),
            r#"deployments.apps "web" already exists"#
        );
        let invalid = ApiError::Invalid {
            target: deployment,
            causes: vec![
                Cause::required("spec.selector"),
                Cause::invalid("metadata.name", &json!("A"), "bad"),
            ],
        };
        assert_eq!(
            invalid.to_string(),
            r#"Deployment.apps "web" is invalid: [spec.selector: Required value, metadata.name: Invalid value: "A": bad]"#
        );
        let status = invalid.status();
        assert_eq!(status["code"], 422);
        assert_eq!(
            status["details"]["causes"][0]["reason"],
            "FieldValueRequired"
        );
        assert_eq!(
            ApiError::NotFound(pod("x")).status()["details"],
            json!({"name": "x", "kind": "pods"})
        );
    }
}
