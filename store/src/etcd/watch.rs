//! Watches over etcd that survive broken connections.
//!
//! Each watch is one etcd watch stream driven by a task: it forwards etcd's events (one etcd
//! response, one batch), asks etcd for progress every `progress_interval`, and when the
//! connection breaks opens a new etcd watch from the last delivered revision + 1, retrying with
//! backoff for as long as the consumer keeps the stream. Events at or below the last delivered
//! one are dropped, so a resumed etcd watch can never duplicate.
//!
//! Progress needs care: etcd without the fix of etcd-io/etcd#15220 (3.4.23, as Debian ships it,
//! is affected) answers a progress request out of band with its current revision, which can
//! overtake events still queued for the watcher. A progress response is therefore only
//! forwarded once no event arrived for a while after it and a later progress response
//! confirms it: usually one interval later.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    EventType, WatchClient, WatchOptions, WatchResponse as EtcdResponse, WatchStream as EtcdStream,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::request::{self, Failure, Kind, Retry};
use super::Keyspace;
use crate::{Error, Event, Result, WatchResponse, WatchStream};

/// Responses buffered between the watch task and a slow consumer; beyond it the task waits,
/// and etcd buffers or drops the watcher to its slow path, as for any slow etcd client.
const CHANNEL_CAPACITY: usize = 64;
/// First pause before re-establishing a broken watch, doubled on each failed attempt.
const FIRST_REOPEN_DELAY: Duration = Duration::from_millis(100);
/// Longest pause between two attempts, so a watch resumes within a second or two of etcd
/// coming back.
const MAX_REOPEN_DELAY: Duration = Duration::from_secs(1);
/// How long a progress answer must go unchallenged by events before it is trusted: the time
/// etcd gets to send the events it had queued when it answered (see the module docs).
const PROGRESS_SETTLE_TIME: Duration = Duration::from_millis(100);

/// What to watch and how; everything a watch task needs from the store.
pub(super) struct Target {
    pub(super) client: WatchClient,
    pub(super) keys: Arc<Keyspace>,
    /// The watched prefix, relative to the store prefix.
    pub(super) prefix: Bytes,
    /// Changes above this revision are delivered.
    pub(super) from_revision: i64,
    /// Bounds each attempt to open the etcd watch.
    pub(super) request_timeout: Duration,
    pub(super) progress_interval: Duration,
    /// The store's highest known compaction revision, raised when etcd cancels for it.
    pub(super) compacted: Arc<AtomicI64>,
}

/// One watch: its target and how far it got.
pub(super) struct Watcher {
    target: Target,
    /// Highest revision delivered by events or progress: a resumed etcd watch starts after it.
    delivered: i64,
    /// Highest revision delivered by events: etcd events at or below it are duplicates.
    last_event: i64,
}

/// How one etcd watch stream ended.
enum Ended {
    /// The consumer is gone or got its final error: the watch is over.
    Done,
    /// The connection broke: open a new etcd watch.
    Broken(String),
}

/// What one etcd response means for the consumer.
enum Step {
    Continue,
    Deliver(WatchResponse),
    /// Deliver this error and end the watch.
    Finish(Error),
}

impl Watcher {
    pub(super) fn new(target: Target) -> Self {
        let from = target.from_revision;
        Watcher {
            target,
            delivered: from,
            last_event: from,
        }
    }

    /// Opens the etcd watch before returning, so a watch that cannot be established fails
    /// here, and runs it in a task that lives as long as the returned stream.
    pub(super) async fn start(self) -> Result<WatchStream> {
        let stream = self.open().await.map_err(Failure::into_error)?;
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(self.run(stream, sender));
        Ok(Box::pin(futures::stream::unfold(
            receiver,
            |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
        )))
    }

    async fn run(mut self, mut stream: EtcdStream, sender: mpsc::Sender<Result<WatchResponse>>) {
        loop {
            match self.pump(stream, &sender).await {
                Ended::Done => return,
                Ended::Broken(reason) => {
                    tracing::warn!(%reason, resume_after = self.delivered, "etcd watch broke; re-establishing it")
                }
            }
            stream = match self.reopen(&sender).await {
                Some(stream) => stream,
                None => return,
            };
            tracing::info!(resume_after = self.delivered, "etcd watch re-established");
        }
    }

    /// Opens an etcd watch for the changes after the last delivered revision.
    async fn open(&self) -> Result<EtcdStream, Failure> {
        let keys = &self.target.keys;
        let start = keys.start(&self.target.prefix, None);
        let options = WatchOptions::new()
            .with_range(keys.end(&self.target.prefix))
            .with_start_revision(self.delivered.saturating_add(1))
            .with_prev_key();
        let timeout = self.target.request_timeout;
        request::bounded(
            &self.target.client,
            timeout,
            "watch",
            Retry::Idempotent,
            move |mut client| {
                let (start, options) = (start.clone(), options.clone());
                async move { client.watch(start, Some(options)).await }
            },
        )
        .await
    }

    /// Retries `open` with backoff until it works; `None` when the consumer left meanwhile or
    /// etcd refuses the watch for good (the consumer then got the error).
    async fn reopen(&self, sender: &mpsc::Sender<Result<WatchResponse>>) -> Option<EtcdStream> {
        let mut delay = FIRST_REOPEN_DELAY;
        loop {
            tokio::select! {
                _ = sender.closed() => return None,
                _ = tokio::time::sleep(delay) => {}
            }
            match self.open().await {
                Ok(stream) => return Some(stream),
                Err(failure) if matches!(failure.kind(), Kind::NotSent | Kind::Transient) => {
                    tracing::debug!(%failure, "etcd watch not re-established yet");
                    delay = (delay * 2).min(MAX_REOPEN_DELAY);
                }
                Err(failure) => {
                    let _ = sender.send(Err(failure.into_error())).await;
                    return None;
                }
            }
        }
    }

    /// Forwards one etcd watch stream until it breaks or the watch is over.
    async fn pump(
        &mut self,
        stream: EtcdStream,
        sender: &mpsc::Sender<Result<WatchResponse>>,
    ) -> Ended {
        let (mut requests, mut responses) = stream.split();
        let interval = self.target.progress_interval;
        let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut progress = ProgressFilter::default();
        loop {
            tokio::select! {
                _ = sender.closed() => return Ended::Done,
                _ = ticks.tick() => {
                    if let Err(error) = requests.request_progress().await {
                        return Ended::Broken(format!("cannot request progress: {error}"));
                    }
                }
                response = responses.next() => {
                    let step = match response {
                        Some(Ok(response)) => self.handle(&response, &mut progress),
                        Some(Err(error)) => return Ended::Broken(error.to_string()),
                        None => return Ended::Broken("etcd closed the watch stream".into()),
                    };
                    match step {
                        Step::Continue => {}
                        Step::Deliver(item) => {
                            if sender.send(Ok(item)).await.is_err() {
                                return Ended::Done;
                            }
                        }
                        Step::Finish(error) => {
                            let _ = sender.send(Err(error)).await;
                            return Ended::Done;
                        }
                    }
                }
            }
        }
    }

    fn handle(&mut self, response: &EtcdResponse, progress: &mut ProgressFilter) -> Step {
        if response.canceled() {
            return Step::Finish(self.cancellation(response));
        }
        if response.created() {
            return Step::Continue;
        }
        if response.events().is_empty() {
            return self.progress(response, progress);
        }
        progress.saw_events();
        self.events(response)
    }

    /// Why etcd cancelled the watch: compaction overtook it, or a refusal no retry can fix.
    fn cancellation(&self, response: &EtcdResponse) -> Error {
        let compact_revision = response.compact_revision();
        if compact_revision > 0 {
            let known = self
                .target
                .compacted
                .fetch_max(compact_revision, Ordering::Relaxed);
            return Error::Compacted {
                requested: self.delivered,
                compacted: known.max(compact_revision),
            };
        }
        Error::Unavailable(format!(
            "etcd cancelled the watch: {}",
            response.cancel_reason()
        ))
    }

    fn progress(&mut self, response: &EtcdResponse, progress: &mut ProgressFilter) -> Step {
        let Some(header) = response.header() else {
            return Step::Finish(Error::Corrupt(
                "etcd progress response without a header".into(),
            ));
        };
        match progress.confirm(header.revision(), Instant::now()) {
            Some(revision) if revision > self.delivered => {
                self.delivered = revision;
                Step::Deliver(WatchResponse::Progress { revision })
            }
            _ => Step::Continue,
        }
    }

    fn events(&mut self, response: &EtcdResponse) -> Step {
        let mut batch = Vec::with_capacity(response.events().len());
        for event in response.events() {
            match self.event(event) {
                Ok(event) if event.revision() > self.last_event => batch.push(event),
                Ok(_) => {}
                Err(error) => return Step::Finish(error),
            }
        }
        let Some(last) = batch.last().map(Event::revision) else {
            return Step::Continue;
        };
        if batch[0].revision() <= self.delivered {
            tracing::warn!(
                revision = batch[0].revision(),
                progress = self.delivered,
                "etcd sent an event older than a progress notification"
            );
        }
        self.last_event = last;
        self.delivered = self.delivered.max(last);
        Step::Deliver(WatchResponse::Events(batch))
    }

    fn event(&self, event: &etcd_client::Event) -> Result<Event> {
        let keys = &self.target.keys;
        let kv = event
            .kv()
            .ok_or_else(|| Error::Corrupt("etcd watch event without a key".into()))?;
        match event.event_type() {
            EventType::Put => Ok(Event::Put(keys.key_value(kv)?)),
            EventType::Delete => {
                let prev = event.prev_kv().ok_or_else(|| {
                    Error::Corrupt(format!(
                        "etcd sent the deletion of {} without its previous value",
                        String::from_utf8_lossy(kv.key())
                    ))
                })?;
                Ok(Event::Delete {
                    revision: kv.mod_revision(),
                    prev: keys.key_value(prev)?,
                })
            }
        }
    }
}

/// Holds back each etcd progress response until it is shown not to be premature.
///
/// A progress revision is trusted once a later progress response arrives at least
/// [`PROGRESS_SETTLE_TIME`] after it with no events in between: the events etcd had queued
/// when it answered have then reached the watcher (see the module docs).
#[derive(Default)]
struct ProgressFilter {
    /// The revision awaiting confirmation and when it arrived.
    candidate: Option<(i64, Instant)>,
}

impl ProgressFilter {
    fn saw_events(&mut self) {
        self.candidate = None;
    }

    /// Takes a progress revision received at `now`; returns an earlier one it confirms.
    fn confirm(&mut self, revision: i64, now: Instant) -> Option<i64> {
        match self.candidate {
            Some((pending, since)) if now.duration_since(since) >= PROGRESS_SETTLE_TIME => {
                self.candidate = Some((revision, now));
                Some(pending)
            }
            Some(_) => None,
            None => {
                self.candidate = Some((revision, now));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::{ProgressFilter, PROGRESS_SETTLE_TIME};

    #[test]
    fn progress_is_released_by_a_later_answer_once_settled() {
        let start = Instant::now();
        let settled = start + PROGRESS_SETTLE_TIME;
        let mut filter = ProgressFilter::default();
        assert_eq!(filter.confirm(10, start), None);
        assert_eq!(filter.confirm(11, start), None, "too soon to trust 10");
        assert_eq!(filter.confirm(12, settled), Some(10));
        filter.saw_events();
        assert_eq!(
            filter.confirm(15, settled),
            None,
            "events in between void the pending progress"
        );
        assert_eq!(filter.confirm(16, settled + PROGRESS_SETTLE_TIME), Some(15));
    }
}
