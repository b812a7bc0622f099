//! The redb tables behind the embedded backend and the reads that run on one snapshot of them.
//!
//! `current` holds the latest value of every live key (fast gets and latest lists); `history`
//! holds one [`Change`](super::codec::Change) per revision until compaction (watch resumption
//! and lists at older revisions); `meta` holds the revision counters so a reopen resumes them.

use std::collections::BTreeMap;

use bytes::Bytes;
use redb::{ReadTransaction, TableDefinition};

use super::codec::{decode_change, decode_current};
use crate::key::prefix_end;
use crate::{Error, Event, KeyValue, ListOptions, ListResult, Result};

pub(super) const CURRENT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("current");
pub(super) const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
pub(super) const META: TableDefinition<&str, i64> = TableDefinition::new("meta");

/// `meta` key of the latest committed revision.
pub(super) const REVISION: &str = "revision";
/// `meta` key of the revision history was compacted to.
pub(super) const COMPACTED: &str = "compacted";

/// Maps redb failures onto the contract: damaged files are `Corrupt` (never retried), the rest
/// (I/O, a closed database) are `Unavailable`.
pub(super) fn storage_error(error: impl Into<redb::Error>) -> Error {
    match error.into() {
        error @ (redb::Error::Corrupted(_)
        | redb::Error::UpgradeRequired(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TypeDefinitionChanged { .. }
        | redb::Error::TableDoesNotExist(_)) => Error::Corrupt(error.to_string()),
        error => Error::Unavailable(error.to_string()),
    }
}

/// A read-only view of the whole store at one revision.
pub(super) struct Snapshot {
    txn: ReadTransaction,
    /// Length of the store prefix, stripped from every key handed out.
    prefix_len: usize,
}

impl Snapshot {
    pub(super) fn new(txn: ReadTransaction, prefix_len: usize) -> Self {
        Snapshot { txn, prefix_len }
    }

    fn meta(&self, key: &str) -> Result<i64> {
        let table = self.txn.open_table(META).map_err(storage_error)?;
        let value = table.get(key).map_err(storage_error)?;
        value
            .map(|v| v.value())
            .ok_or_else(|| Error::Corrupt(format!("meta entry {key:?} is missing")))
    }

    /// The revision this snapshot shows.
    pub(super) fn revision(&self) -> Result<i64> {
        self.meta(REVISION)
    }

    pub(super) fn compacted(&self) -> Result<i64> {
        self.meta(COMPACTED)
    }

    pub(super) fn get(&self, full_key: &[u8]) -> Result<Option<KeyValue>> {
        let table = self.txn.open_table(CURRENT).map_err(storage_error)?;
        let Some(raw) = table.get(full_key).map_err(storage_error)? else {
            return Ok(None);
        };
        decode_current(self.relative(full_key), raw.value()).map(Some)
    }

    pub(super) fn count(&self, full_prefix: &[u8]) -> Result<u64> {
        let table = self.txn.open_table(CURRENT).map_err(storage_error)?;
        let mut count = 0;
        for entry in range(&table, full_prefix, None)? {
            entry.map_err(storage_error)?;
            count += 1;
        }
        Ok(count)
    }

    /// A page of keys under `full_prefix` at `options.revision`. An older revision is rebuilt
    /// from the current state by undoing, per key, the first change made after it.
    pub(super) fn list(&self, full_prefix: &[u8], options: &ListOptions) -> Result<ListResult> {
        let latest = self.revision()?;
        let revision = if options.revision == 0 {
            latest
        } else {
            options.revision
        };
        if revision > latest {
            return Err(Error::FutureRevision {
                requested: revision,
                current: latest,
            });
        }
        let compacted = self.compacted()?;
        if revision < compacted {
            return Err(Error::Compacted {
                requested: revision,
                compacted,
            });
        }
        let start = options.start_after.as_ref().map(|after| {
            let mut start = full_prefix.to_vec();
            start.extend_from_slice(after);
            start.push(0);
            start
        });
        let undone = self.undo_since(revision, latest, full_prefix, start.as_deref())?;
        let table = self.txn.open_table(CURRENT).map_err(storage_error)?;
        let mut page = Page::new(options.limit);
        let mut undone = undone.into_iter().peekable();
        for entry in range(&table, full_prefix, start.as_deref())? {
            let (key, raw) = entry.map_err(storage_error)?;
            let key = key.value();
            while let Some((_, older)) = undone.next_if(|(k, _)| k.as_slice() < key) {
                page.push_older(older);
            }
            match undone.next_if(|(k, _)| k.as_slice() == key) {
                Some((_, older)) => page.push_older(older),
                None => page.push(|| decode_current(self.relative(key), raw.value()))?,
            }
        }
        for (_, older) in undone {
            page.push_older(older);
        }
        Ok(page.finish(revision))
    }

    /// For every key under the prefix (from `start` on) changed after `revision`, its state at
    /// `revision`: the previous value recorded by its first later change (`None`: absent then).
    fn undo_since(
        &self,
        revision: i64,
        latest: i64,
        full_prefix: &[u8],
        start: Option<&[u8]>,
    ) -> Result<BTreeMap<Vec<u8>, Option<KeyValue>>> {
        let mut undone = BTreeMap::new();
        if revision == latest {
            return Ok(undone);
        }
        let relative_prefix = &full_prefix[self.prefix_len..];
        let relative_start = start.map(|s| &s[self.prefix_len..]);
        let history = self.txn.open_table(HISTORY).map_err(storage_error)?;
        for entry in history
            .range(revision as u64 + 1..=latest as u64)
            .map_err(storage_error)?
        {
            let (rev, raw) = entry.map_err(storage_error)?;
            let change = decode_change(rev.value() as i64, raw.value(), self.prefix_len)?;
            let key = change.key.as_ref();
            if !key.starts_with(relative_prefix) || relative_start.is_some_and(|s| key < s) {
                continue;
            }
            let mut full = full_prefix[..self.prefix_len].to_vec();
            full.extend_from_slice(key);
            undone.entry(full).or_insert(change.prev);
        }
        Ok(undone)
    }

    /// Up to `max` changes after `after` (as events under `relative_prefix`) and the revision
    /// they cover up to: the snapshot's revision once nothing more is left.
    pub(super) fn changes_after(
        &self,
        after: i64,
        relative_prefix: &[u8],
        max: usize,
    ) -> Result<(Vec<Event>, i64, bool)> {
        let latest = self.revision()?;
        let compacted = self.compacted()?;
        if after + 1 < compacted {
            return Err(Error::Compacted {
                requested: after + 1,
                compacted,
            });
        }
        let history = self.txn.open_table(HISTORY).map_err(storage_error)?;
        let mut events = Vec::new();
        let mut covered = latest;
        let range = history
            .range(after as u64 + 1..=latest.max(after) as u64)
            .map_err(storage_error)?;
        for (read, entry) in range.enumerate() {
            let (rev, raw) = entry.map_err(storage_error)?;
            let rev = rev.value() as i64;
            if read == max {
                covered = rev - 1;
                return Ok((events, covered, false));
            }
            let change = decode_change(rev, raw.value(), self.prefix_len)?;
            if change.key.starts_with(relative_prefix) {
                events.push(change.into_event(rev)?);
            }
        }
        Ok((events, covered.max(after), true))
    }

    fn relative(&self, full_key: &[u8]) -> Bytes {
        Bytes::copy_from_slice(&full_key[self.prefix_len.min(full_key.len())..])
    }
}

/// The `current` entries under `full_prefix`, from `start` (inclusive) when given.
fn range<'a>(
    table: &'a redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    full_prefix: &'a [u8],
    start: Option<&'a [u8]>,
) -> Result<redb::Range<'a, &'static [u8], &'static [u8]>> {
    let start = start.unwrap_or(full_prefix);
    let result = match prefix_end(full_prefix) {
        Some(end) => table.range::<&[u8]>(start..end.as_slice()),
        None => table.range::<&[u8]>(start..),
    };
    result.map_err(storage_error)
}

/// Collects a list page: the first `limit` keys, then only counts the rest.
struct Page {
    limit: usize,
    kvs: Vec<KeyValue>,
    remaining: u64,
}

impl Page {
    fn new(limit: usize) -> Self {
        Page {
            limit,
            kvs: Vec::new(),
            remaining: 0,
        }
    }

    fn has_room(&self) -> bool {
        self.limit == 0 || self.kvs.len() < self.limit
    }

    /// Adds one key present at the list's revision, decoding it only if it makes the page.
    fn push(&mut self, decode: impl FnOnce() -> Result<KeyValue>) -> Result<()> {
        if self.has_room() {
            self.kvs.push(decode()?);
        } else {
            self.remaining += 1;
        }
        Ok(())
    }

    /// Adds a key's state from history: present at the list's revision only if `Some`.
    fn push_older(&mut self, older: Option<KeyValue>) {
        match older {
            Some(kv) if self.has_room() => self.kvs.push(kv),
            Some(_) => self.remaining += 1,
            None => {}
        }
    }

    fn finish(self, revision: i64) -> ListResult {
        ListResult {
            kvs: self.kvs,
            revision,
            remaining: self.remaining,
        }
    }
}
