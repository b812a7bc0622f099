//! Watches on the embedded backend.
//!
//! A watcher first replays history from its revision out of the database, then follows the
//! live events the writer publishes. If it falls too far behind the live channel (a slow
//! consumer), it goes back to replaying from the database: history on disk is the safety net,
//! so a slow watcher costs memory bounded by the channel, never a gap.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::{Published, Shared};
use crate::{Error, Result, WatchResponse, WatchStream};

/// Most history records read per replay step, to bound the memory of one catch-up.
const REPLAY_BATCH: usize = 1000;

/// Opens a watch of `prefix` (relative) for changes after `from_revision` (0: from now).
pub(super) fn start(shared: Arc<Shared>, prefix: Bytes, from_revision: i64) -> Result<WatchStream> {
    // Subscribe before looking at the revision, so nothing committed in between is missed.
    let receiver = shared.events.subscribe();
    let replaying = from_revision != 0;
    let last = if replaying {
        from_revision
    } else {
        shared.revision.load(Ordering::Acquire)
    };
    if replaying {
        let compacted = shared.snapshot()?.compacted()?;
        if from_revision + 1 < compacted {
            return Err(Error::Compacted {
                requested: from_revision + 1,
                compacted,
            });
        }
    }
    let period = shared.progress_interval;
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let watcher = Watcher {
        shared,
        prefix,
        last,
        reported: last,
        receiver,
        replaying,
        ticker,
        finished: false,
    };
    Ok(Box::pin(futures::stream::unfold(
        watcher,
        |mut watcher| async move {
            let item = watcher.next().await?;
            Some((item, watcher))
        },
    )))
}

struct Watcher {
    shared: Arc<Shared>,
    prefix: Bytes,
    /// Every change up to this revision has been handled (sent or filtered out).
    last: i64,
    /// The revision the consumer last heard about, by events or progress.
    reported: i64,
    receiver: broadcast::Receiver<Arc<Published>>,
    /// Reading history from the database rather than the live channel.
    replaying: bool,
    ticker: Interval,
    finished: bool,
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<WatchResponse>> {
        if self.finished {
            return None;
        }
        let item = self.next_response().await;
        self.finished = item.is_err();
        Some(item)
    }

    async fn next_response(&mut self) -> Result<WatchResponse> {
        loop {
            if self.replaying {
                if let Some(response) = self.replay_step().await? {
                    return Ok(response);
                }
                continue;
            }
            tokio::select! {
                received = self.receiver.recv() => match received {
                    Ok(published) => {
                        if let Some(response) = self.follow(&published) {
                            return Ok(response);
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, last = self.last, "slow watcher replays from history");
                        self.replaying = true;
                    }
                    Err(RecvError::Closed) => return Err(Error::Unavailable("embedded store closed".into())),
                },
                _ = self.ticker.tick() => {
                    if self.last > self.reported {
                        self.reported = self.last;
                        return Ok(WatchResponse::Progress { revision: self.last });
                    }
                }
            }
        }
    }

    /// Reads the next stretch of history after `last` from the database.
    async fn replay_step(&mut self) -> Result<Option<WatchResponse>> {
        let shared = self.shared.clone();
        let prefix = self.prefix.clone();
        let after = self.last;
        let (events, covered, done) = tokio::task::spawn_blocking(move || {
            shared
                .snapshot()?
                .changes_after(after, &prefix, REPLAY_BATCH)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("watch replay task failed: {e}")))??;
        self.last = covered;
        self.replaying = !done;
        Ok(self.respond(events))
    }

    /// Takes what is new and under the prefix from a published batch.
    fn follow(&mut self, published: &Published) -> Option<WatchResponse> {
        if published.revision <= self.last {
            return None;
        }
        let events = published
            .events
            .iter()
            .filter(|e| e.revision() > self.last && e.key().starts_with(&self.prefix))
            .cloned()
            .collect();
        self.last = published.revision;
        self.respond(events)
    }

    fn respond(&mut self, events: Vec<crate::Event>) -> Option<WatchResponse> {
        if events.is_empty() {
            return None;
        }
        self.reported = self.last;
        Some(WatchResponse::Events(events))
    }
}
