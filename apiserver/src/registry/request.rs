//! A REST request reduced to what the generic registry needs: the verb, the object's
//! coordinates, the query parameters and the negotiated formats.

use std::collections::HashMap;

use axum::http::HeaderMap;
use bytes::Bytes;

use super::table::IncludeObject;
use serde_json::Value;

use crate::error::{ApiError, ApiResult, Cause, Target};

/// The Kubernetes verb of a request (what RBAC and metrics call it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// How the response body is encoded, from the `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Yaml,
    /// `meta.k8s.io/v1` Table (what `kubectl get` asks for).
    Table(IncludeObject),
    /// `application/vnd.kubernetes.protobuf`: what client-go's typed clients ask for first.
    Protobuf,
    /// Metadata only: `PartialObjectMetadata` (`list` false) or `PartialObjectMetadataList`
    /// of `api_version` (`meta.k8s.io/v1` or `v1beta1`), what metadata informers ask for,
    /// as JSON or (`protobuf`) protobuf.
    Metadata {
        list: bool,
        api_version: &'static str,
        protobuf: bool,
    },
}

impl Output {
    /// Whether the body is protobuf (errors are then protobuf `Status`es too).
    pub fn is_protobuf(self) -> bool {
        matches!(
            self,
            Output::Protobuf | Output::Metadata { protobuf: true, .. }
        )
    }
}

/// `?fieldValidation=`: what to do with unknown or duplicate fields in a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// The query parameters the registry understands.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: usize,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub allow_watch_bookmarks: bool,
    pub timeout_seconds: Option<u64>,
    pub send_initial_events: Option<bool>,
    pub dry_run: bool,
    pub field_validation: Option<FieldValidation>,
    pub include_object: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    /// `?fieldManager=`: who owns the fields a write sets.
    pub field_manager: Option<String>,
    /// `?force=`: server-side apply takes fields other managers own.
    pub force: Option<bool>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> ApiResult<Self> {
        let pairs: HashMap<String, String> = form_pairs(raw.unwrap_or(""));
        let get = |key: &str| pairs.get(key).cloned().filter(|v| !v.is_empty());
        let flag = |key: &str| pairs.get(key).is_some_and(|v| v == "true" || v == "1");
        let number = |key: &str| -> ApiResult<Option<i64>> {
            get(key)
                .map(|v| {
                    v.parse::<i64>().map_err(|_| {
                        ApiError::BadRequest(format!("invalid value for {key}: {v:?}"))
                    })
                })
                .transpose()
        };
        let dry_run = match pairs.get("dryRun").map(String::as_str) {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "Invalid dry run value {other:?}: supported values: \"All\""
                )))
            }
        };
        let field_validation = match get("fieldValidation").as_deref() {
            None => None,
            Some("Ignore") => Some(FieldValidation::Ignore),
            Some("Warn") => Some(FieldValidation::Warn),
            Some("Strict") => Some(FieldValidation::Strict),
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "fieldValidation invalid value: {other}, expected one of: \"Ignore\", \"Warn\", \"Strict\""
                )))
            }
        };
        Ok(Query {
            label_selector: get("labelSelector"),
            field_selector: get("fieldSelector"),
            limit: number("limit")?.unwrap_or(0).max(0) as usize,
            continue_token: get("continue"),
            resource_version: get("resourceVersion"),
            resource_version_match: get("resourceVersionMatch"),
            allow_watch_bookmarks: flag("allowWatchBookmarks"),
            // Zero is Go's unset value: upstream then picks its own timeout, so a client
            // sending 0 must not get a watch that ends at once (and reconnect in a loop).
            timeout_seconds: number("timeoutSeconds")?
                .filter(|t| *t > 0)
                .map(|t| t as u64),
            send_initial_events: pairs.get("sendInitialEvents").map(|v| v == "true"),
            dry_run,
            field_validation,
            include_object: get("includeObject"),
            grace_period_seconds: number("gracePeriodSeconds")?,
            propagation_policy: get("propagationPolicy"),
            field_manager: get("fieldManager"),
            force: pairs
                .get("force")
                .map(|v| matches!(v.as_str(), "true" | "1" | "t" | "T" | "TRUE" | "True")),
        })
    }
}

impl Query {
    /// Upstream's `ValidateListOptions`, for a list (`watch` false) or a watch: the
    /// combinations of `resourceVersion`, `resourceVersionMatch`, `continue` and
    /// `sendInitialEvents` that mean something. Refused like upstream, as an invalid
    /// `ListOptions.meta.k8s.io` (422) naming every problem.
    pub fn validate_list_options(&self, watch: bool) -> ApiResult<()> {
        const FIELD: &str = "resourceVersionMatch";
        let mut causes = Vec::new();
        let matching = self.resource_version_match.as_deref();
        if watch {
            if self.send_initial_events.is_some() {
                if matching != Some("NotOlderThan") {
                    causes.push(Cause::forbidden(
                        FIELD,
                        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                    ));
                }
                if !self.allow_watch_bookmarks {
                    causes.push(Cause::forbidden(
                        "allowWatchBookmarks",
                        "sendInitialEvents requires setting allowWatchBookmarks to true",
                    ));
                }
            }
            if let Some(value) = matching {
                if self.send_initial_events.is_none() {
                    causes.push(Cause::forbidden(FIELD, "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"));
                }
                if value != "NotOlderThan" {
                    causes.push(Cause::unsupported(
                        FIELD,
                        &Value::from(value),
                        &["NotOlderThan"],
                    ));
                }
                if self.continue_token.is_some() {
                    causes.push(Cause::forbidden(
                        FIELD,
                        "resourceVersionMatch is forbidden when continue is provided",
                    ));
                }
            }
        } else {
            if let Some(value) = matching {
                if self.resource_version.is_none() {
                    causes.push(Cause::forbidden(
                        FIELD,
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    ));
                }
                if self.continue_token.is_some() {
                    causes.push(Cause::forbidden(
                        FIELD,
                        "resourceVersionMatch is forbidden when continue is provided",
                    ));
                }
                if value != "Exact" && value != "NotOlderThan" {
                    causes.push(Cause::unsupported(
                        FIELD,
                        &Value::from(value),
                        &["Exact", "NotOlderThan", ""],
                    ));
                }
                if value == "Exact" && self.resource_version.as_deref() == Some("0") {
                    causes.push(Cause::forbidden(
                        FIELD,
                        "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                    ));
                }
            }
            if self.send_initial_events.is_some() {
                causes.push(Cause::forbidden(
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for list",
                ));
            }
        }
        if causes.is_empty() {
            return Ok(());
        }
        let target = Target {
            group: "meta.k8s.io".into(),
            resource: String::new(),
            kind: "ListOptions".into(),
            name: String::new(),
        };
        Err(ApiError::Invalid { target, causes })
    }

    /// `?resourceVersion=` as a revision: absent or `0` is 0 ("any"), as upstream parses it;
    /// anything but an unsigned integer is a 400 in upstream's words.
    pub fn revision(&self) -> ApiResult<Option<i64>> {
        let Some(text) = self.resource_version.as_deref() else {
            return Ok(None);
        };
        match text.parse::<u64>() {
            Ok(revision) => i64::try_from(revision)
                .map(Some)
                .map_err(|_| invalid_resource_version(text, "value out of range")),
            Err(_)
                if text.starts_with(|c: char| c.is_ascii_digit())
                    && text.chars().all(|c| c.is_ascii_digit()) =>
            {
                Err(invalid_resource_version(text, "value out of range"))
            }
            Err(_) => Err(invalid_resource_version(text, "invalid syntax")),
        }
    }
}

/// Upstream's 400 for a resourceVersion that is not a number (the storage layer's
/// `strconv.ParseUint` error, quoted).
fn invalid_resource_version(text: &str, reason: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "invalid resource version: resourceVersion: Invalid value: {text:?}: strconv.ParseUint: parsing {text:?}: {reason}"
    ))
}

/// Whether a raw query string asks for a watch (`watch=true` or `watch=1`), which routing and
/// the long-running request filters both need before the query is parsed.
pub fn asks_to_watch(raw: Option<&str>) -> bool {
    raw.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

/// Decodes `application/x-www-form-urlencoded` pairs (the query string).
fn form_pairs(raw: &str) -> HashMap<String, String> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Decodes `%XX` escapes; `+` is a space only in query strings (`plus_is_space`), not paths.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) if plus_is_space => out.push(b' '),
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Picks the response format from `Accept`, honouring order; 406 if nothing fits.
/// Protobuf is offered like upstream offers it for built-in kinds: plain objects, lists and
/// watch streams (`stream=watch`), and metadata only in `meta.k8s.io/v1`; Tables are JSON.
pub fn negotiate(headers: &HeaderMap, include_object: Option<&str>) -> ApiResult<Output> {
    let Some(entries) = accept_entries(headers) else {
        return Ok(Output::Json);
    };
    for (media, params) in entries {
        let protobuf = match media.as_str() {
            "application/json" | "application/*" | "*/*" => false,
            "application/vnd.kubernetes.protobuf" => true,
            "application/yaml" if !params.contains_key("as") => return Ok(Output::Yaml),
            _ => continue,
        };
        match params.get("as") {
            None if protobuf => return Ok(Output::Protobuf),
            None => return Ok(Output::Json),
            Some(&"Table") if !protobuf && params.get("g") == Some(&"meta.k8s.io") => {
                return Ok(Output::Table(IncludeObject::parse(include_object)))
            }
            Some(&kind @ ("PartialObjectMetadata" | "PartialObjectMetadataList"))
                if params.get("g") == Some(&"meta.k8s.io") =>
            {
                let api_version = match params.get("v") {
                    Some(&"v1") => "meta.k8s.io/v1",
                    Some(&"v1beta1") if !protobuf => "meta.k8s.io/v1beta1",
                    _ => continue,
                };
                return Ok(Output::Metadata {
                    list: kind == "PartialObjectMetadataList",
                    api_version,
                    protobuf,
                });
            }
            Some(_) => continue,
        }
    }
    Err(not_acceptable())
}

/// The entries of `Accept` in order, each as its lowercased media type and parameters;
/// `None` when the header is absent or empty (anything goes).
fn accept_entries(
    headers: &HeaderMap,
) -> Option<impl Iterator<Item = (String, HashMap<&str, &str>)>> {
    let accept = headers.get("accept").and_then(|v| v.to_str().ok())?;
    if accept.trim().is_empty() {
        return None;
    }
    Some(accept.split(',').map(|entry| {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        (media, parts.filter_map(|p| p.split_once('=')).collect())
    }))
}

/// Whether `Accept` allows a document as it is, without a Table or metadata-only
/// transformation: what discovery documents can be answered in (plain or aggregated).
pub fn accepts_untransformed(headers: &HeaderMap) -> bool {
    let Some(mut entries) = accept_entries(headers) else {
        return true;
    };
    entries.any(|(media, params)| {
        let plain = matches!(
            media.as_str(),
            "application/json"
                | "application/yaml"
                | "application/vnd.kubernetes.protobuf"
                | "application/*"
                | "*/*"
        );
        match params.get("as") {
            None => plain,
            Some(&"APIGroupDiscoveryList") => params.get("g") == Some(&"apidiscovery.k8s.io"),
            Some(_) => false,
        }
    })
}

/// Upstream's 406 for a metadata-only request whose shape (one object or a list) does not fit
/// the answer; `type_name` is Go's name for the answer, e.g. `*v1.PodList`.
pub fn metadata_shape_mismatch(asked_list: bool, type_name: &str) -> ApiError {
    ApiError::NotAcceptable(if asked_list {
        format!("you requested PartialObjectMetadataList, but the requested object is not a list ({type_name})")
    } else {
        format!(
            "you requested PartialObjectMetadata, but the requested object is a list ({type_name})"
        )
    })
}

/// Upstream's 406: what its serializers could have answered in.
pub fn not_acceptable() -> ApiError {
    ApiError::NotAcceptable(
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
            .into(),
    )
}

/// Decodes a request body (JSON or YAML) into a JSON value; 415 for other types.
pub fn decode_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<serde_json::Value> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" | "" => serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("the body of the request could not be decoded as JSON: {e}"))),
        "application/yaml" => crate::yaml::to_json(body)
            .map_err(|e| ApiError::BadRequest(format!("the body of the request could not be decoded as YAML: {e}"))),
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode(body)
            .map(|(_, _, object)| object)
            .map_err(|e| ApiError::BadRequest(e.to_string())),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {other})"
        ))),
    }
}

/// The registry's view of one request.
#[derive(Debug)]
pub struct ApiRequest {
    pub verb: Verb,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub query: Query,
    pub output: Output,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Who is asking: the authenticated user, or `system:anonymous`.
    pub user: crate::authn::UserInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let query = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&limit=500&allowWatchBookmarks=true",
        ))
        .unwrap();
        assert_eq!(query.label_selector.as_deref(), Some("app=web,tier in (a)"));
        assert_eq!(query.limit, 500);
        assert!(query.allow_watch_bookmarks);
        assert!(Query::parse(Some("dryRun=Some")).is_err());
    }

    #[test]
    fn list_options_are_validated_like_upstream() {
        let exact_zero =
            Query::parse(Some("resourceVersion=0&resourceVersionMatch=Exact")).unwrap();
        let error = exact_zero.validate_list_options(false).unwrap_err();
        assert_eq!(error.code(), 422);
        assert_eq!(
            error.to_string(),
            r#"ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0""#
        );
        assert!(Query::parse(Some("resourceVersionMatch=NotOlderThan"))
            .unwrap()
            .validate_list_options(false)
            .is_err());
        assert!(Query::parse(Some("resourceVersionMatch=NotOlderThan"))
            .unwrap()
            .validate_list_options(true)
            .is_err());
        assert!(
            Query::parse(Some("resourceVersion=5&resourceVersionMatch=Exact"))
                .unwrap()
                .validate_list_options(false)
                .is_ok()
        );
        let negative = Query::parse(Some("resourceVersion=-1"))
            .unwrap()
            .revision()
            .unwrap_err();
        assert_eq!(
            negative.to_string(),
            r#"invalid resource version: resourceVersion: Invalid value: "-1": strconv.ParseUint: parsing "-1": invalid syntax"#
        );
        assert_eq!(
            Query::parse(Some("resourceVersion=12"))
                .unwrap()
                .revision()
                .unwrap(),
            Some(12)
        );
        assert_eq!(
            Query::parse(Some("timeoutSeconds=0"))
                .unwrap()
                .timeout_seconds,
            None
        );
    }

    #[test]
    fn kubectl_get_negotiates_a_table() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            negotiate(&headers, None).unwrap(),
            Output::Table(IncludeObject::Metadata)
        );
        headers.insert(
            "accept",
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io"
                .parse()
                .unwrap(),
        );
        assert!(matches!(
            negotiate(&headers, None),
            Err(ApiError::NotAcceptable(_))
        ));
    }

    #[test]
    fn client_go_negotiates_protobuf() {
        let mut headers = HeaderMap::new();
        let mut negotiated = |accept: &str| {
            headers.insert("accept", accept.parse().unwrap());
            negotiate(&headers, None).unwrap()
        };
        assert_eq!(
            negotiated("application/vnd.kubernetes.protobuf, application/json"),
            Output::Protobuf
        );
        assert_eq!(
            negotiated("application/vnd.kubernetes.protobuf;stream=watch"),
            Output::Protobuf
        );
        assert_eq!(
            negotiated("application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"),
            Output::Metadata { list: true, api_version: "meta.k8s.io/v1", protobuf: true }
        );
        assert_eq!(
            negotiated("application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1"),
            Output::Metadata { list: true, api_version: "meta.k8s.io/v1beta1", protobuf: false }
        );
    }
}
