//! The HTTP surface: health, version, metrics, discovery, and the REST paths of every
//! resource, parsed here once and handed to the registry.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use crate::authn::{authenticate, Authenticator, UserInfo};
use crate::discovery::Discovery;
use crate::error::{ApiError, ApiResult};
use crate::filters::Filters;
use crate::limits::MAX_REQUEST_BODY_BYTES;
use crate::metrics::Metrics;
use crate::registry::request::{
    accepts_untransformed, negotiate, not_acceptable, percent_decode, Query,
};
use crate::registry::{ApiRequest, Registry, Verb};

/// The version this server speaks.
pub const GIT_VERSION: &str = "v1.33.5";

/// Everything handlers share.
pub struct App {
    pub registry: Registry,
    pub discovery: Discovery,
    pub openapi: crate::openapi::OpenApi,
    pub store: Arc<dyn store::Store>,
    pub metrics: Metrics,
    /// The service-account issuer's OIDC documents, when the issuer is an https URL.
    pub issuer_discovery: Option<crate::serviceaccount::IssuerDiscovery>,
}

/// The whole HTTP surface: authentication first, then impersonation (authorized for the
/// authenticated caller), then the in-flight limits and timeouts, then authorization of
/// whoever the request now runs as, then the handlers. Upstream limits before it authorizes
/// too, so a caller without permissions is told to retry (429) while the server is full.
pub fn router(
    app: Arc<App>,
    authenticator: Arc<Authenticator>,
    authorizer: Arc<crate::authz::Chain>,
    filters: Arc<Filters>,
) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/healthz/{check}", get(health))
        .route("/livez", get(health))
        .route("/livez/{check}", get(health))
        .route("/readyz", get(health))
        .route("/readyz/{check}", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route(
            crate::serviceaccount::CONFIG_PATH,
            get(openid_configuration),
        )
        .route(crate::serviceaccount::JWKS_PATH, get(openid_jwks))
        .fallback(api)
        .layer(axum::middleware::from_fn_with_state(
            authorizer.clone(),
            crate::authz::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            filters,
            crate::filters::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            authorizer,
            crate::authn::impersonation::impersonate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            authenticator,
            authenticate,
        ))
        .with_state(app)
}

/// `/healthz`, `/livez`, `/readyz` and their per-check paths: `ping` always, `etcd` (the
/// store) answering within a second.
async fn health(State(app): State<Arc<App>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let endpoint = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("healthz")
        .to_string();
    let only = path.split('/').nth(2).map(String::from);
    let verbose = request.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    });
    let store_ok = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        app.store.current_revision(),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let checks = [("ping", true), ("log", true), ("etcd", store_ok)];
    let selected: Vec<_> = checks
        .iter()
        .filter(|(name, _)| only.as_deref().is_none_or(|o| o == *name))
        .collect();
    if selected.is_empty() {
        return ApiError::PathNotFound.into_response();
    }
    let healthy = selected.iter().all(|(_, ok)| *ok);
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let body = if verbose || !healthy {
        let mut text: String = selected
            .iter()
            .map(|(name, ok)| {
                if *ok {
                    format!("[+]{name} ok\n")
                } else {
                    format!("[-]{name} failed: reason withheld\n")
                }
            })
            .collect();
        text.push_str(&if healthy {
            format!("{endpoint} check passed\n")
        } else {
            format!("{endpoint} check failed\n")
        });
        text
    } else {
        "ok".to_string()
    };
    let mut response = (code, body).into_response();
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn version() -> Response {
    let body = json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": option_env!("GIT_COMMIT").unwrap_or("0000000000000000000000000000000000000000"),
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    });
    axum::Json(body).into_response()
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut response = (StatusCode::OK, app.metrics.render()).into_response();
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// The service-account issuer's OIDC discovery document (404 without one, as upstream
/// installs no route then).
async fn openid_configuration(State(app): State<Arc<App>>) -> Response {
    app.issuer_discovery
        .as_ref()
        .map_or_else(not_found, |d| d.config())
}

/// The keys that verify service-account tokens, as a JWK set.
async fn openid_jwks(State(app): State<Arc<App>>) -> Response {
    app.issuer_discovery
        .as_ref()
        .map_or_else(not_found, |d| d.jwks())
}

/// Where a REST path points.
#[derive(Clone)]
struct Target {
    group: String,
    version: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    subresource: Option<String>,
}

/// Discovery and resource paths under `/api` and `/apis`.
async fn api(State(app): State<Arc<App>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().trim_end_matches('/').to_string();
    if path.starts_with("/openapi/") {
        return app
            .openapi
            .respond(&path, &parts.headers)
            .unwrap_or_else(not_found);
    }
    let segments: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|s| percent_decode(s, false))
        .collect();
    let user = parts
        .extensions
        .get::<UserInfo>()
        .cloned()
        .unwrap_or_else(UserInfo::anonymous);
    let headers = parts.headers;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    // `/api`, `/api/{version}`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`: not
    // `/api/v1/pods`, a resource.
    let discovery = match segments.first() {
        Some(&"api") => segments.len() <= 2,
        Some(&"apis") => segments.len() <= 3,
        _ => false,
    };
    if discovery && !accepts_untransformed(&headers) {
        return not_acceptable().into_response();
    }
    let (group, rest): (&str, &[&str]) = match segments.as_slice() {
        ["api"] => return app.discovery.root(true, &headers),
        ["apis"] => return app.discovery.root(false, &headers),
        ["api", rest @ ..] => ("", rest),
        ["apis", group] => {
            return app
                .discovery
                .group(group, &headers)
                .unwrap_or_else(not_found)
        }
        ["apis", group, rest @ ..] => (group, rest),
        _ => return not_found(),
    };
    let [version, rest @ ..] = rest else {
        return not_found();
    };
    if rest.is_empty() {
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        return app
            .discovery
            .resources(&gv, &headers)
            .unwrap_or_else(not_found);
    }
    let Some(target) = locate(&app.registry, group, version, rest) else {
        return not_found();
    };
    let query = parts.uri.query().map(String::from);
    let verb = match verb(&parts.method, &target, query.as_deref()) {
        Ok(verb) => verb,
        Err(error) => return error.into_response(),
    };
    let response = serve(&app, target.clone(), verb, &headers, query, body, user).await;
    let response = response.unwrap_or_else(IntoResponse::into_response);
    let labels = target.clone();
    let code = response.status().as_u16().to_string();
    let subresource = labels.subresource.as_deref().unwrap_or("");
    app.metrics
        .requests
        .with_label_values(&[
            verb.as_str().to_uppercase().as_str(),
            &labels.group,
            &labels.version,
            &labels.resource,
            subresource,
            &code,
        ])
        .inc();
    if verb != Verb::Watch {
        app.metrics
            .durations
            .with_label_values(&[
                verb.as_str().to_uppercase().as_str(),
                &labels.group,
                &labels.version,
                &labels.resource,
                subresource,
            ])
            .observe(started.elapsed().as_secs_f64());
    }
    response
}

async fn serve(
    app: &App,
    target: Target,
    verb: Verb,
    headers: &HeaderMap,
    query: Option<String>,
    body: Body,
    user: UserInfo,
) -> ApiResult<Response> {
    let resource = app
        .registry
        .find(&target.group, &target.version, &target.resource)
        .ok_or(ApiError::PathNotFound)?;
    if resource.info().namespaced != target.namespace.is_some()
        && (!resource.info().namespaced || target.name.is_some())
    {
        return Err(ApiError::PathNotFound);
    }
    let query = Query::parse(query.as_deref())?;
    let output = negotiate(headers, query.include_object.as_deref())?;
    let body = read_body(body).await?;
    let request = ApiRequest {
        verb,
        namespace: target.namespace,
        name: target.name,
        subresource: target.subresource,
        query,
        output,
        headers: headers.clone(),
        body,
        user,
    };
    resource.handle(request).await
}

/// Oversized bodies are still read (and discarded) up to this size, so the client gets its
/// 413 instead of a connection reset in the middle of sending.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// The request body, or 413 above [`MAX_REQUEST_BODY_BYTES`].
async fn read_body(body: Body) -> ApiResult<bytes::Bytes> {
    let mut body = body.into_data_stream();
    let mut data = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        let chunk = chunk
            .map_err(|e| ApiError::BadRequest(format!("cannot read the request body: {e}")))?;
        seen += chunk.len();
        if seen <= MAX_REQUEST_BODY_BYTES {
            data.extend_from_slice(&chunk);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    if seen > MAX_REQUEST_BODY_BYTES {
        return Err(crate::limits::body_too_large());
    }
    Ok(data.into())
}

/// Splits `[namespaces/{ns}/]{resource}[/{name}[/{subresource}]]`.
fn locate(registry: &Registry, group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let namespaced_path = rest.len() >= 3
        && rest[0] == "namespaces"
        && registry
            .find(group, version, rest[2])
            .is_some_and(|r| r.info().namespaced);
    let (namespace, rest) = if namespaced_path {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(name.to_string()), None),
        [resource, name, sub] => (*resource, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    Some(Target {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        resource: resource.to_string(),
        name,
        subresource,
    })
}

fn verb(method: &Method, target: &Target, query: Option<&str>) -> ApiResult<Verb> {
    let watch = crate::registry::request::asks_to_watch(query);
    Ok(match (method.as_str(), target.name.is_some()) {
        ("GET", true) => Verb::Get,
        ("GET", false) if watch => Verb::Watch,
        ("GET", false) => Verb::List,
        ("POST", _) => Verb::Create,
        ("PUT", true) => Verb::Update,
        ("PATCH", true) => Verb::Patch,
        ("DELETE", true) => Verb::Delete,
        ("DELETE", false) => Verb::DeleteCollection,
        _ => return Err(ApiError::MethodNotAllowed),
    })
}

fn not_found() -> Response {
    ApiError::PathNotFound.into_response()
}
