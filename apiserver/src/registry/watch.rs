//! WATCH: a chunked stream of `{"type":...,"object":...}` lines served from the watch cache,
//! with selectors applied per watcher (an object leaving the selection is DELETED for it),
//! bookmarks, `sendInitialEvents` and timeouts as upstream serves them.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::cache::{CacheEvent, Entry, EventType};
use super::encode::{error_event, watch_content_type, Encoder, Outcome};
use super::list::Filter;
use super::request::{ApiRequest, Output};
use super::strategy::Strategy;
use super::Rest;
use crate::error::{ApiError, ApiResult};

/// How often a watcher that asked for bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

/// Watches without `timeoutSeconds` end after a random time in this range (upstream's
/// `--min-request-timeout` of 30 minutes, doubled at most), spreading re-watches out.
const DEFAULT_TIMEOUT: (u64, u64) = (1800, 3600);

impl<S: Strategy> Rest<S> {
    pub(super) async fn watch(&self, request: ApiRequest) -> ApiResult<Outcome> {
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
            encoder: self.encoder.clone(),
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
                tokio::spawn(watcher.run(subscription, sender, Duration::from_secs(timeout)));
            }
            Err(error @ ApiError::Expired(_)) => {
                let _ = sender.try_send(Ok(error_event(&error, request.output)));
            }
            Err(other) => return Err(other),
        }
        let stream = tokio_stream_from(receiver);
        let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
        response
            .headers_mut()
            .insert("content-type", watch_content_type(request.output));
        response.headers_mut().insert(
            "cache-control",
            HeaderValue::from_static("no-cache, private"),
        );
        Ok(Outcome::Stream(response))
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut receiver: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

struct Watcher {
    encoder: Arc<Encoder>,
    filter: Filter,
    prefix: Vec<u8>,
    output: Output,
    bookmarks: bool,
    initial_events: bool,
    headers_sent: bool,
}

type Sender = mpsc::Sender<Result<Bytes, std::convert::Infallible>>;

impl Watcher {
    async fn run(
        mut self,
        mut subscription: super::cache::Subscription,
        sender: Sender,
        timeout: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = subscription.revision;
        for entry in std::mem::take(&mut subscription.initial) {
            if self.in_scope(&entry)
                && self.filter.matches(&entry)
                && !self.send(&sender, EventType::Added, &entry).await
            {
                return;
            }
        }
        if self.initial_events && !self.bookmark(&sender, last, true).await {
            return;
        }
        for event in std::mem::take(&mut subscription.backlog) {
            if !self.deliver(&sender, &event).await {
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
                        if !self.deliver(&sender, &event).await {
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
    async fn deliver(&mut self, sender: &Sender, event: &CacheEvent) -> bool {
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
                    let left = prev.at(event.entry.revision);
                    return self.send(sender, EventType::Deleted, &left).await;
                }
                EventType::Deleted
            }
            (_, false, false) => return true,
        };
        self.send(sender, kind, &event.entry).await
    }

    async fn send(&mut self, sender: &Sender, kind: EventType, entry: &Entry) -> bool {
        let headers = !std::mem::replace(&mut self.headers_sent, true);
        let frame = match self
            .encoder
            .event(kind.as_str(), entry, self.output, headers)
        {
            Ok(frame) => frame,
            Err(error) => {
                tracing::error!(%error, "cannot encode a watch event");
                return true;
            }
        };
        sender.send(Ok(frame)).await.is_ok()
    }

    async fn bookmark(&self, sender: &Sender, revision: i64, initial_events_end: bool) -> bool {
        let frame = self
            .encoder
            .bookmark(revision, initial_events_end, self.output);
        sender.send(Ok(frame)).await.is_ok()
    }
}
