//! The single writer of the embedded backend.
//!
//! All writes go through one thread that drains every request waiting in its queue into one
//! redb transaction and commits it with one fsync (group commit). A lone writer pays one fsync
//! per write; many concurrent writers share them, which is what lets the store take well over
//! ten thousand acknowledged creates per second on an ordinary disk. Revisions are assigned
//! here, so they are strictly increasing with no gaps, and committed batches are published to
//! watchers in revision order.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use redb::{Durability, ReadableTable, Table};
use tokio::sync::{mpsc, oneshot};

use super::codec::{current_mod_revision, decode_current, encode_change, encode_current, Change};
use super::tables::{storage_error, COMPACTED, CURRENT, HISTORY, META, REVISION};
use super::{Published, Shared};
use crate::{Error, Event, KeyValue, Result};

/// Most writes committed in one transaction; bounds the latency a large burst adds.
const MAX_BATCH: usize = 1024;

/// A write, with its key already carrying the store prefix.
pub(super) enum Op {
    Create {
        key: Vec<u8>,
        value: Bytes,
    },
    Update {
        key: Vec<u8>,
        value: Bytes,
        expected: i64,
    },
    Delete {
        key: Vec<u8>,
        expected: Option<i64>,
    },
    Compact {
        revision: i64,
    },
}

/// What a successful write did.
pub(super) enum Applied {
    Written(i64),
    Deleted(i64, KeyValue),
    Compacted,
}

pub(super) struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Applied>>,
}

/// Runs until every sender is dropped (the store is dropped).
pub(super) fn run(shared: Arc<Shared>, mut requests: mpsc::Receiver<Request>) {
    while let Some(first) = requests.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        commit(&shared, batch);
    }
}

/// Applies a batch in one transaction and answers every request in it.
fn commit(shared: &Shared, batch: Vec<Request>) {
    let (requests, replies): (Vec<Op>, Vec<_>) = batch.into_iter().map(|r| (r.op, r.reply)).unzip();
    match apply_all(shared, &requests) {
        Ok((outcomes, events, revision)) => {
            shared.revision.store(revision, Ordering::Release);
            if !events.is_empty() {
                // No receivers is fine: nobody is watching.
                let _ = shared.events.send(Arc::new(Published { events, revision }));
            }
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        Err(error) => {
            tracing::error!(%error, writes = replies.len(), "embedded store commit failed");
            for reply in replies {
                let _ = reply.send(Err(clone_error(&error)));
            }
        }
    }
}

/// The per-write outcomes, the events to publish and the new latest revision; `Err` only when
/// the whole transaction failed (nothing of the batch was written).
fn apply_all(shared: &Shared, ops: &[Op]) -> Result<(Vec<Result<Applied>>, Vec<Event>, i64)> {
    let mut txn = shared.db.begin_write().map_err(storage_error)?;
    txn.set_durability(Durability::Immediate)
        .map_err(storage_error)?;
    let mut batch = Batch {
        revision: shared.revision.load(Ordering::Acquire),
        compacted: 0,
        prefix_len: shared.prefix.len(),
        events: Vec::new(),
    };
    let outcomes = {
        let mut current = txn.open_table(CURRENT).map_err(storage_error)?;
        let mut history = txn.open_table(HISTORY).map_err(storage_error)?;
        let mut meta = txn.open_table(META).map_err(storage_error)?;
        batch.compacted = meta
            .get(COMPACTED)
            .map_err(storage_error)?
            .map_or(0, |v| v.value());
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in ops {
            outcomes.push(batch.apply(&mut current, &mut history, op)?);
        }
        meta.insert(REVISION, batch.revision)
            .map_err(storage_error)?;
        meta.insert(COMPACTED, batch.compacted)
            .map_err(storage_error)?;
        outcomes
    };
    txn.commit().map_err(storage_error)?;
    Ok((outcomes, batch.events, batch.revision))
}

/// The state of a transaction being built.
struct Batch {
    /// Latest revision, including this transaction's writes so far.
    revision: i64,
    compacted: i64,
    prefix_len: usize,
    events: Vec<Event>,
}

type CurrentTable<'t> = Table<'t, &'static [u8], &'static [u8]>;
type HistoryTable<'t> = Table<'t, u64, &'static [u8]>;

impl Batch {
    /// One write: the inner result is the write's own outcome (a failed precondition leaves
    /// the rest of the batch alone), the outer one a storage failure that aborts the batch.
    fn apply(
        &mut self,
        current: &mut CurrentTable,
        history: &mut HistoryTable,
        op: &Op,
    ) -> Result<Result<Applied>> {
        match op {
            Op::Create { key, value } => {
                if current
                    .get(key.as_slice())
                    .map_err(storage_error)?
                    .is_some()
                {
                    return Ok(Err(Error::AlreadyExists {
                        key: self.relative(key),
                    }));
                }
                self.put(current, history, key, value, None)
                    .map(|()| Ok(Applied::Written(self.revision)))
            }
            Op::Update {
                key,
                value,
                expected,
            } => {
                let prev = match self.check(current, key, Some(*expected))? {
                    Ok(prev) => prev,
                    Err(error) => return Ok(Err(error)),
                };
                self.put(current, history, key, value, Some(prev))
                    .map(|()| Ok(Applied::Written(self.revision)))
            }
            Op::Delete { key, expected } => {
                let prev = match self.check(current, key, *expected)? {
                    Ok(prev) => prev,
                    Err(error) => return Ok(Err(error)),
                };
                self.revision += 1;
                current.remove(key.as_slice()).map_err(storage_error)?;
                let change = Change {
                    key: Bytes::copy_from_slice(key),
                    new: None,
                    prev: Some(prev.clone()),
                };
                history
                    .insert(self.revision as u64, encode_change(&change).as_slice())
                    .map_err(storage_error)?;
                self.events.push(Event::Delete {
                    revision: self.revision,
                    prev: prev.clone(),
                });
                Ok(Ok(Applied::Deleted(self.revision, prev)))
            }
            Op::Compact { revision } => self.compact(history, *revision),
        }
    }

    /// The key's current value if it exists and its mod revision is `expected` (when given).
    fn check(
        &self,
        current: &CurrentTable,
        key: &[u8],
        expected: Option<i64>,
    ) -> Result<Result<KeyValue>> {
        let Some(raw) = current.get(key).map_err(storage_error)? else {
            return Ok(Err(Error::NotFound {
                key: self.relative(key),
            }));
        };
        let raw = raw.value();
        let actual = current_mod_revision(raw)
            .ok_or_else(|| Error::Corrupt("short current value".into()))?;
        if let Some(expected) = expected.filter(|e| *e != actual) {
            return Ok(Err(Error::Conflict {
                key: self.relative(key),
                expected,
                actual,
            }));
        }
        decode_current(self.relative(key), raw).map(Ok)
    }

    fn put(
        &mut self,
        current: &mut CurrentTable,
        history: &mut HistoryTable,
        key: &[u8],
        value: &Bytes,
        prev: Option<KeyValue>,
    ) -> Result<()> {
        self.revision += 1;
        let revision = self.revision;
        let create_revision = prev.as_ref().map_or(revision, |prev| prev.create_revision);
        current
            .insert(
                key,
                encode_current(create_revision, revision, value).as_slice(),
            )
            .map_err(storage_error)?;
        let change = Change {
            key: Bytes::copy_from_slice(key),
            new: Some((create_revision, value.clone())),
            prev,
        };
        history
            .insert(revision as u64, encode_change(&change).as_slice())
            .map_err(storage_error)?;
        self.events.push(Event::Put(KeyValue {
            key: self.relative(key),
            value: value.clone(),
            create_revision,
            mod_revision: revision,
        }));
        Ok(())
    }

    fn compact(&mut self, history: &mut HistoryTable, revision: i64) -> Result<Result<Applied>> {
        if revision <= self.compacted {
            return Ok(Err(Error::Compacted {
                requested: revision,
                compacted: self.compacted,
            }));
        }
        if revision > self.revision {
            return Ok(Err(Error::FutureRevision {
                requested: revision,
                current: self.revision,
            }));
        }
        history
            .retain_in(..revision as u64, |_, _| false)
            .map_err(storage_error)?;
        self.compacted = revision;
        Ok(Ok(Applied::Compacted))
    }

    fn relative(&self, full_key: &[u8]) -> Bytes {
        Bytes::copy_from_slice(&full_key[self.prefix_len..])
    }
}

/// Every request of a failed batch gets the same error; `Error` is not `Clone` because most
/// errors have one receiver, so this copies the two variants a commit can fail with.
fn clone_error(error: &Error) -> Error {
    match error {
        Error::Corrupt(message) => Error::Corrupt(message.clone()),
        other => Error::Unavailable(other.to_string()),
    }
}
