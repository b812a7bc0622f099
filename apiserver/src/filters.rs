//! Request filters that run after authentication, as upstream's handler chain does:
//! the in-flight limits (`--max-requests-inflight`, `--max-mutating-requests-inflight`)
//! and the timeout of requests that are not long-running (`--request-timeout`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::authn::UserInfo;
use crate::error::ApiError;

/// Subresources that stream for as long as the client wants, like watches: neither limited
/// nor timed out.
const LONG_RUNNING_SUBRESOURCES: &[&str] = &["exec", "attach", "log", "portforward", "proxy"];

/// The group whose members are never throttled: upstream answers a super-admin always.
const PRIVILEGED_GROUP: &str = "system:masters";

/// Upstream's Retry-After for a throttled request, in seconds.
const RETRY_AFTER: &str = "1";

/// The flags the filters enforce; `0` turns a limit off, as upstream's flags do.
#[derive(Debug)]
pub struct Limits {
    /// `--max-requests-inflight`: non-mutating requests served at once.
    pub max_requests_inflight: usize,
    /// `--max-mutating-requests-inflight`.
    pub max_mutating_requests_inflight: usize,
    /// `--request-timeout`.
    pub request_timeout: Duration,
}

/// The limits every request passes through.
pub struct Filters {
    read_only: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
    request_timeout: Duration,
}

impl Filters {
    pub fn new(limits: &Limits) -> Self {
        let semaphore = |limit: usize| (limit > 0).then(|| Arc::new(Semaphore::new(limit)));
        Filters {
            read_only: semaphore(limits.max_requests_inflight),
            mutating: semaphore(limits.max_mutating_requests_inflight),
            request_timeout: limits.request_timeout,
        }
    }

    /// How long `request` may take: `--request-timeout`, or less if the client's `?timeout=`
    /// asks for less.
    fn timeout_for(&self, request: &Request) -> Duration {
        let asked = request
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("timeout=")))
            .and_then(|text| machinery::duration::parse_duration(text).ok())
            .filter(|d| !d.is_zero());
        asked.map_or(self.request_timeout, |asked| {
            asked.min(self.request_timeout)
        })
    }
}

/// Middleware: long-running requests pass; others take an in-flight slot (or get 429 unless
/// the caller is in `system:masters`) and are answered 504 after their timeout.
pub async fn limit(State(filters): State<Arc<Filters>>, request: Request, next: Next) -> Response {
    if is_long_running(&request) {
        return next.run(request).await;
    }
    let mutating = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let slots = if mutating {
        &filters.mutating
    } else {
        &filters.read_only
    };
    let _slot = match slots.as_ref().map(|s| s.clone().try_acquire_owned()) {
        None => None,
        Some(Ok(slot)) => Some(slot),
        Some(Err(_)) if is_privileged(&request) => None,
        Some(Err(_)) => return too_many_requests(),
    };
    let timeout = filters.timeout_for(&request);
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(
            "Timeout: request did not complete within requested timeout - context deadline exceeded".into(),
        )
        .into_response(),
    }
}

/// Watches (`?watch=true` or a `/watch/` path) and streaming subresources (the last
/// segment, or `proxy` followed by the path to proxy).
fn is_long_running(request: &Request) -> bool {
    let watch = crate::registry::request::asks_to_watch(request.uri().query());
    let segments: Vec<&str> = request.uri().path().split('/').collect();
    // `/api/v1/watch/...` or `/apis/{group}/v1/watch/...`.
    let after_version = match segments.get(1) {
        Some(&"api") => 3,
        Some(&"apis") => 4,
        _ => return false,
    };
    let watch_path = segments.get(after_version) == Some(&"watch");
    let streaming = segments
        .last()
        .is_some_and(|s| LONG_RUNNING_SUBRESOURCES.contains(s))
        || segments
            .iter()
            .skip(after_version + 2)
            .any(|s| *s == "proxy");
    watch || watch_path || streaming
}

fn is_privileged(request: &Request) -> bool {
    request
        .extensions()
        .get::<UserInfo>()
        .is_some_and(|u| u.groups.iter().any(|g| g == PRIVILEGED_GROUP))
}

/// Upstream's answer to a throttled request: plain text, not a Status, with Retry-After.
fn too_many_requests() -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests, please try again later.\n",
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert("retry-after", HeaderValue::from_static(RETRY_AFTER));
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str) -> Request {
        Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn watches_and_streams_are_long_running() {
        assert!(is_long_running(&request("/api/v1/pods?watch=true")));
        assert!(is_long_running(&request("/api/v1/watch/pods")));
        assert!(is_long_running(&request("/apis/apps/v1/watch/deployments")));
        assert!(is_long_running(&request("/api/v1/namespaces/a/pods/p/log")));
        assert!(!is_long_running(&request("/api/v1/pods?watchers=true")));
        assert!(!is_long_running(&request("/api/v1/namespaces/watch/pods")));
    }

    #[test]
    fn clients_may_ask_for_a_shorter_timeout() {
        let filters = Filters::new(&Limits {
            max_requests_inflight: 1,
            max_mutating_requests_inflight: 1,
            request_timeout: Duration::from_secs(60),
        });
        assert_eq!(
            filters.timeout_for(&request("/api?timeout=32s")),
            Duration::from_secs(32)
        );
        assert_eq!(
            filters.timeout_for(&request("/api?timeout=10m")),
            Duration::from_secs(60)
        );
        assert_eq!(
            filters.timeout_for(&request("/api")),
            Duration::from_secs(60)
        );
    }
}
