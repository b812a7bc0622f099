//! WATCH: a chunked stream of `{"type":...,"object":...}` lines served from the watch cache,
//! with selectors applied per watcher (an object leaving the selection is DELETED for it),
//! bookmarks, `sendInitialEvents` and timeouts as upstream serves them.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::cache::{CacheEvent, Entry, EventType};
use super::list::Filter;
use super::request::{ApiRequest, Output};
use super::strategy::Strategy;
use super::{stored, table, Rest};
use crate::error::{ApiError, ApiResult};

/// How often a watcher that asked for bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

/// Watches without `timeoutSeconds` end after a random time in this range (upstream's
/// `--min-request-timeout` of 30 minutes, doubled at most), spreading re-watches out.
const DEFAULT_TIMEOUT: (u64, u64) = (1800, 3600);

impl<S: Strategy> Rest<S> {
    pub(super) async fn watch(&self, request: ApiRequest) -> ApiResult<Response> {
        let filter = Filter::parse(&request, self.info.description.field_selectors)?;
        let prefix = self.list_prefix(request.namespace.as_deref());
        let query = &request.query;
        query.validate_list_options(true)?;
        let requested = query.revision()?;
        let initial_events = query.send_initial_events == Some(true);
        if initial_events {
            // Without a resourceVersion the initial state is a consistent read, as upstream
            // serves it: the cache first catches up with the store.
            let fresh_enough = match requested {
                Some(rv) => rv,
                None => self.store.current_revision().await?,
            };
            if fresh_enough > 0 {
                self.cache.wait_for(fresh_enough).await?;
            }
        }
        let from = match requested {
            Some(rv) if rv > 0 && !initial_events => Some(rv),
            _ => None,
        };
        let timeout = query.timeout_seconds.unwrap_or_else(|| {
            use rand::Rng;
            rand::rng().random_range(DEFAULT_TIMEOUT.0..DEFAULT_TIMEOUT.1)
        });
        let watcher = Watcher {
            rest_kind: self.info.kind,
            api_version: self.info.api_version(),
            filter,
            prefix: prefix.clone().into_bytes(),
            output: request.output,
            bookmarks: query.allow_watch_bookmarks,
            initial_events,
            headers_sent: false,
        };
        let (sender, receiver) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);
        match self.cache.subscribe(prefix.as_bytes(), from).await {
            Ok(subscription) => {
                let rows = RowMaker {
                    rest: self.strategy.clone(),
                };
                tokio::spawn(watcher.run(subscription, sender, Duration::from_secs(timeout), rows));
            }
            Err(error @ ApiError::Expired(_)) => {
                let line = event_line(
                    "ERROR",
                    &serde_json::to_vec(&error.status()).unwrap_or_default(),
                );
                let _ = sender.try_send(Ok(line));
            }
            Err(other) => return Err(other),
        }
        let stream = tokio_stream_from(receiver);
        let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        response.headers_mut().insert(
            "cache-control",
            HeaderValue::from_static("no-cache, private"),
        );
        Ok(response)
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut receiver: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// Turns entries into table rows for `kubectl get -w`.
struct RowMaker<S: Strategy> {
    rest: Arc<S>,
}

impl<S: Strategy> RowMaker<S> {
    fn table(
        &self,
        entry: &Entry,
        include: table::IncludeObject,
        headers: bool,
    ) -> ApiResult<Vec<u8>> {
        let object: S::Object = stored::decode(&entry.stored, entry.revision)?;
        let row = (
            self.rest.cells(&object),
            include.row_object(&entry.stored, entry.revision),
        );
        table::table(
            &self.rest.columns(),
            [Ok(row)],
            Some(entry.revision),
            headers,
            None,
        )
    }
}

struct Watcher {
    rest_kind: &'static str,
    api_version: String,
    filter: Filter,
    prefix: Vec<u8>,
    output: Output,
    bookmarks: bool,
    initial_events: bool,
    headers_sent: bool,
}

type Sender = mpsc::Sender<Result<Bytes, std::convert::Infallible>>;

impl Watcher {
    async fn run<S: Strategy>(
        mut self,
        mut subscription: super::cache::Subscription,
        sender: Sender,
        timeout: Duration,
        rows: RowMaker<S>,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = subscription.revision;
        for entry in std::mem::take(&mut subscription.initial) {
            if self.in_scope(&entry)
                && self.filter.matches(&entry)
                && !self.send(&sender, EventType::Added, &entry, &rows).await
            {
                return;
            }
        }
        if self.initial_events && !self.bookmark(&sender, last, true).await {
            return;
        }
        for event in std::mem::take(&mut subscription.backlog) {
            if !self.deliver(&sender, &event, &rows).await {
                return;
            }
        }
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + BOOKMARK_INTERVAL,
            BOOKMARK_INTERVAL,
        );
        loop {
            tokio::select! {
                received = subscription.live.recv() => match received {
                    Ok(event) => {
                        last = event.revision();
                        if !self.deliver(&sender, &event, &rows).await {
                            return;
                        }
                    }
                    // Too slow, or the cache resynced: end the stream; the client re-watches.
                    Err(RecvError::Lagged(_) | RecvError::Closed) => return,
                },
                _ = ticker.tick(), if self.bookmarks => {
                    if !self.bookmark(&sender, last, false).await {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return,
                _ = sender.closed() => return,
            }
        }
    }

    fn in_scope(&self, entry: &Entry) -> bool {
        entry.key.starts_with(&self.prefix)
    }

    /// Sends what one change means for this watcher's selection; false once the client left.
    async fn deliver<S: Strategy>(
        &mut self,
        sender: &Sender,
        event: &CacheEvent,
        rows: &RowMaker<S>,
    ) -> bool {
        if !self.in_scope(&event.entry) {
            return true;
        }
        let now = self.filter.matches(&event.entry);
        let before = event
            .prev
            .as_ref()
            .is_some_and(|prev| self.filter.matches(prev));
        let kind = match (event.kind, before, now) {
            (EventType::Deleted, true, _) => EventType::Deleted,
            (EventType::Deleted, false, _) => return true,
            (_, false, true) => EventType::Added,
            (_, true, true) => EventType::Modified,
            (_, true, false) => {
                // Like upstream's cache, an object leaving the selection is deleted as the
                // watcher last saw it, at the revision of the change.
                if let Some(prev) = &event.prev {
                    let left = Entry {
                        key: prev.key.clone(),
                        stored: prev.stored.clone(),
                        revision: event.entry.revision,
                        derived: prev.derived.clone(),
                    };
                    return self.send(sender, EventType::Deleted, &left, rows).await;
                }
                EventType::Deleted
            }
            (_, false, false) => return true,
        };
        self.send(sender, kind, &event.entry, rows).await
    }

    async fn send<S: Strategy>(
        &mut self,
        sender: &Sender,
        kind: EventType,
        entry: &Entry,
        rows: &RowMaker<S>,
    ) -> bool {
        let object = match self.output {
            Output::Table(include) => {
                let headers = !std::mem::replace(&mut self.headers_sent, true);
                match rows.table(entry, include, headers) {
                    Ok(table) => table,
                    Err(error) => {
                        tracing::error!(%error, "cannot render a watch event as a table");
                        return true;
                    }
                }
            }
            Output::Metadata { api_version, .. } => {
                let mut object = Vec::with_capacity(1024);
                stored::write_partial_metadata(
                    &mut object,
                    &entry.stored,
                    entry.revision,
                    api_version,
                );
                object
            }
            Output::Json | Output::Yaml => {
                stored::with_resource_version(&entry.stored, entry.revision)
            }
        };
        sender
            .send(Ok(event_line(kind.as_str(), &object)))
            .await
            .is_ok()
    }

    async fn bookmark(&self, sender: &Sender, revision: i64, initial_events_end: bool) -> bool {
        let mut metadata =
            json!({"resourceVersion": revision.to_string(), "creationTimestamp": null});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = match self.output {
            Output::Metadata { api_version, .. } => {
                json!({"kind": "PartialObjectMetadata", "apiVersion": api_version, "metadata": metadata})
            }
            _ => {
                json!({"kind": self.rest_kind, "apiVersion": self.api_version, "metadata": metadata})
            }
        };
        sender
            .send(Ok(event_line(
                "BOOKMARK",
                &serde_json::to_vec(&object).unwrap_or_default(),
            )))
            .await
            .is_ok()
    }
}

fn event_line(kind: &str, object: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    line.into()
}
