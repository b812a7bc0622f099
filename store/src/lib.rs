//! The storage contract of the control plane, shaped like etcd v3 because the apiserver's
//! semantics (resourceVersion, optimistic concurrency, watch resumption, 410 Gone) are etcd's.
//!
//! One async [`Store`] trait with two backends: [`embedded::EmbeddedStore`] (the default, so a
//! cluster needs no external service) and [`etcd::EtcdStore`] (a real etcd cluster). Both share
//! one behavioural test suite, so the apiserver can be written once against the trait.
//!
//! Keys are bytes relative to the store's prefix (`/registry` by default): the apiserver asks for
//! `/pods/default/web-0` and the backend keeps it under `/registry/pods/default/web-0`, like
//! upstream's etcd layout.

pub mod compactor;
pub mod embedded;
mod error;
pub mod etcd;
mod key;
#[cfg(feature = "test-support")]
pub mod testing;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub use error::{Error, Result};

/// The prefix upstream Kubernetes keeps its objects under in etcd.
pub const DEFAULT_PREFIX: &str = "/registry";

/// One stored key with the revisions that give Kubernetes its `resourceVersion` semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, relative to the store prefix.
    pub key: Bytes,
    pub value: Bytes,
    /// Revision of the write that created this key (a re-created key gets a new one).
    pub create_revision: i64,
    /// Revision of the last write to this key: the object's `resourceVersion`.
    pub mod_revision: i64,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The key was created (`kv.create_revision == kv.mod_revision`) or modified.
    Put(KeyValue),
    /// The key was deleted at `revision`; `prev` is the value it had, which the apiserver
    /// needs to send a DELETED event carrying the last state of the object.
    Delete { revision: i64, prev: KeyValue },
}

impl Event {
    /// Revision of the write that produced this event.
    pub fn revision(&self) -> i64 {
        match self {
            Event::Put(kv) => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }

    /// The key that changed.
    pub fn key(&self) -> &Bytes {
        match self {
            Event::Put(kv) => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        }
    }
}

/// What a watch stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchResponse {
    /// Changes in revision order; a batch never splits one revision and never repeats one.
    Events(Vec<Event>),
    /// Nothing under the prefix changed up to `revision`; lets a watcher advance its
    /// resourceVersion (watch bookmarks) without events of its own.
    Progress { revision: i64 },
}

/// A watch: ends only with an error (`Compacted` if the watcher fell behind compaction,
/// `Unavailable` if the backend went away) or when dropped.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse>> + Send>>;

/// How to read a range of keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// At most this many keys; 0 means no limit.
    pub limit: usize,
    /// Only keys strictly after this one: the continue token of a paginated list.
    pub start_after: Option<Bytes>,
    /// Read the state as of this revision; 0 means the latest. Paginated lists pass the
    /// revision of their first page so every page sees the same point in time.
    pub revision: i64,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    /// Keys in ascending byte order.
    pub kvs: Vec<KeyValue>,
    /// The revision the list was read at: the list's `resourceVersion`.
    pub revision: i64,
    /// How many keys under the prefix follow the last one returned (`remainingItemCount`).
    pub remaining: u64,
}

/// The storage contract. Every write is atomic and gets the next value of one global,
/// strictly increasing revision counter shared by all keys.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The prefix every key is stored under (`--etcd-prefix`): upstream's storage errors name
    /// keys with it.
    fn key_prefix(&self) -> &[u8];

    /// The latest committed revision.
    async fn current_revision(&self) -> Result<i64>;

    /// The key's current value, or `None`.
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>>;

    /// Keys under `prefix` as of one revision (see [`ListOptions`]).
    async fn list(&self, prefix: &[u8], options: ListOptions) -> Result<ListResult>;

    /// How many keys are under `prefix` now.
    async fn count(&self, prefix: &[u8]) -> Result<u64>;

    /// Creates `key`; fails with `AlreadyExists` if present. Returns the write's revision.
    async fn create(&self, key: &[u8], value: Bytes) -> Result<i64>;

    /// Replaces `key` only if its mod revision is still `expected_mod_revision` (compare and
    /// swap); fails with `Conflict` otherwise, `NotFound` if absent. Returns the write's revision.
    async fn update(&self, key: &[u8], value: Bytes, expected_mod_revision: i64) -> Result<i64>;

    /// Deletes `key`, if given only while its mod revision is `expected_mod_revision`.
    /// Returns the delete's revision and the value that was deleted.
    async fn delete(
        &self,
        key: &[u8],
        expected_mod_revision: Option<i64>,
    ) -> Result<(i64, KeyValue)>;

    /// Every change under `prefix` with a revision above `from_revision` (0: from now on), in
    /// revision order, with no gaps and no duplicates. Fails with `Compacted` when that
    /// history is gone.
    async fn watch(&self, prefix: &[u8], from_revision: i64) -> Result<WatchStream>;

    /// Forgets the history before `revision`: lists and watches below it fail with
    /// `Compacted` from then on. The state as of `revision` stays readable.
    /// Fails with `Compacted` if history is already compacted at or past `revision`, and
    /// with `FutureRevision` beyond the current revision.
    async fn compact(&self, revision: i64) -> Result<()>;
}
