//! The embedded backend: the default, so a cluster runs with no external service.
//!
//! Built on redb, a pure-Rust embedded database with ACID transactions, checksummed
//! copy-on-write commits (a torn write after `kill -9` is rolled back, never half-applied) and
//! MVCC snapshots, so readers never block the writer and a list sees one revision. See
//! `writer` for how writes are batched and `watch` for how watchers are fed.

mod codec;
mod tables;
mod watch;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, ReadableTableMetadata, StorageError,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use self::tables::{storage_error, Snapshot, COMPACTED, CURRENT, HISTORY, META, REVISION};
use self::writer::{Applied, Op, Request};
use crate::{Error, Event, KeyValue, ListOptions, ListResult, Result, Store, WatchStream};

/// The file inside the data dir.
const DB_FILE: &str = "store.redb";

/// How an [`EmbeddedStore`] is opened.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Directory holding the database file; created if missing.
    pub data_dir: PathBuf,
    /// Prefix every key is stored under, as with etcd.
    pub prefix: String,
    /// Upper bound of redb's page cache: the main lever on the store's memory use.
    pub cache_size: usize,
    /// How often a watcher that saw only other prefixes' changes is told the new revision.
    pub progress_interval: Duration,
    /// Committed batches kept in memory for live watchers; a watcher further behind replays
    /// from disk instead.
    pub watch_buffer: usize,
}

impl EmbeddedConfig {
    /// Defaults sized for a small cluster on a small machine.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EmbeddedConfig {
            data_dir: data_dir.into(),
            prefix: crate::DEFAULT_PREFIX.to_string(),
            cache_size: 64 << 20,
            progress_interval: Duration::from_secs(1),
            watch_buffer: 1024,
        }
    }
}

/// State shared by the store handle, the writer thread and the watchers.
struct Shared {
    db: Database,
    prefix: Vec<u8>,
    /// Latest committed revision, for `current_revision` and new watchers.
    revision: AtomicI64,
    events: broadcast::Sender<Arc<Published>>,
    progress_interval: Duration,
}

impl Shared {
    fn snapshot(&self) -> Result<Snapshot> {
        let txn = self.db.begin_read().map_err(storage_error)?;
        Ok(Snapshot::new(txn, self.prefix.len()))
    }

    fn full_key(&self, key: &[u8]) -> Result<Vec<u8>> {
        if key.is_empty() {
            return Err(Error::InvalidArgument("empty key".into()));
        }
        Ok([self.prefix.as_slice(), key].concat())
    }
}

/// The events of one committed transaction, as published to live watchers.
struct Published {
    events: Vec<Event>,
    /// The transaction's last revision.
    revision: i64,
}

/// A store in a local directory; one process at a time may open it.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    writes: mpsc::Sender<Request>,
    writer: std::thread::JoinHandle<()>,
}

impl EmbeddedStore {
    /// Opens (or initialises) the store in `config.data_dir`. Fails with a message naming the
    /// path when the directory is unreadable, in use, or holds something that is not a store.
    pub fn open(config: EmbeddedConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            Error::Unavailable(format!(
                "cannot create data dir {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let path = config.data_dir.join(DB_FILE);
        let db = redb::Builder::new()
            .set_cache_size(config.cache_size)
            .create(&path)
            .map_err(|e| open_error(&path, e))?;
        let revision = initialise(&db).map_err(|e| match e {
            Error::Corrupt(message) => Error::Corrupt(format!("{}: {message}", path.display())),
            other => other,
        })?;
        let (events, _) = broadcast::channel(config.watch_buffer.max(1));
        let shared = Arc::new(Shared {
            db,
            prefix: config.prefix.into_bytes(),
            revision: AtomicI64::new(revision),
            events,
            progress_interval: config.progress_interval,
        });
        let (writes, requests) = mpsc::channel(4096);
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::run(writer_shared, requests))
            .map_err(|e| Error::Unavailable(format!("cannot start the store writer: {e}")))?;
        tracing::info!(path = %path.display(), revision, "opened embedded store");
        Ok(EmbeddedStore {
            shared,
            writes,
            writer,
        })
    }

    /// Finishes pending writes and stops the writer, so the directory can be reopened in this
    /// process. The database file closes once the last watch of this store is dropped too.
    pub async fn close(self) {
        let EmbeddedStore {
            shared,
            writes,
            writer,
        } = self;
        drop(writes);
        drop(shared);
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    }

    async fn write(&self, op: Op) -> Result<Applied> {
        let (reply, answer) = oneshot::channel();
        let closed = || Error::Unavailable("embedded store writer stopped".into());
        self.writes
            .send(Request { op, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(Snapshot) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || read(shared.snapshot()?))
            .await
            .map_err(|e| Error::Unavailable(format!("store read task failed: {e}")))?
    }
}

/// Creates the tables of a new store, or checks that an existing one has its counters.
fn initialise(db: &Database) -> Result<i64> {
    let txn = db.begin_write().map_err(storage_error)?;
    let revision = {
        let current = txn.open_table(CURRENT).map_err(storage_error)?;
        let history = txn.open_table(HISTORY).map_err(storage_error)?;
        let mut meta = txn.open_table(META).map_err(storage_error)?;
        let revision = meta
            .get(REVISION)
            .map_err(storage_error)?
            .map(|v| v.value());
        match revision {
            Some(revision) => revision,
            None if current.is_empty().map_err(storage_error)?
                && history.is_empty().map_err(storage_error)? =>
            {
                // Like etcd, an empty store is at revision 1 and the first write gets 2.
                meta.insert(REVISION, 1).map_err(storage_error)?;
                meta.insert(COMPACTED, 0).map_err(storage_error)?;
                1
            }
            None => {
                return Err(Error::Corrupt(
                    "data present but the revision counter is missing".into(),
                ))
            }
        }
    };
    txn.commit().map_err(storage_error)?;
    Ok(revision)
}

fn open_error(path: &Path, error: DatabaseError) -> Error {
    match error {
        DatabaseError::DatabaseAlreadyOpen => {
            Error::Unavailable(format!("{} is in use by another process", path.display()))
        }
        DatabaseError::Storage(StorageError::Io(e))
            if e.kind() != std::io::ErrorKind::InvalidData =>
        {
            Error::Unavailable(format!("cannot open {}: {e}", path.display()))
        }
        other => Error::Corrupt(format!(
            "{} is not a readable store: {other}",
            path.display()
        )),
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    fn key_prefix(&self) -> &[u8] {
        &self.shared.prefix
    }

    async fn current_revision(&self) -> Result<i64> {
        Ok(self.shared.revision.load(Ordering::Acquire))
    }

    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        // A point read takes microseconds: not worth a trip to the blocking pool.
        self.shared.snapshot()?.get(&self.shared.full_key(key)?)
    }

    async fn list(&self, prefix: &[u8], options: ListOptions) -> Result<ListResult> {
        let full_prefix = [self.shared.prefix.as_slice(), prefix].concat();
        self.read(move |snapshot| snapshot.list(&full_prefix, &options))
            .await
    }

    async fn count(&self, prefix: &[u8]) -> Result<u64> {
        let full_prefix = [self.shared.prefix.as_slice(), prefix].concat();
        self.read(move |snapshot| snapshot.count(&full_prefix))
            .await
    }

    async fn create(&self, key: &[u8], value: Bytes) -> Result<i64> {
        match self
            .write(Op::Create {
                key: self.shared.full_key(key)?,
                value,
            })
            .await?
        {
            Applied::Written(revision) => Ok(revision),
            _ => unreachable!("a create answers with its revision"),
        }
    }

    async fn update(&self, key: &[u8], value: Bytes, expected_mod_revision: i64) -> Result<i64> {
        let op = Op::Update {
            key: self.shared.full_key(key)?,
            value,
            expected: expected_mod_revision,
        };
        match self.write(op).await? {
            Applied::Written(revision) => Ok(revision),
            _ => unreachable!("an update answers with its revision"),
        }
    }

    async fn delete(
        &self,
        key: &[u8],
        expected_mod_revision: Option<i64>,
    ) -> Result<(i64, KeyValue)> {
        let op = Op::Delete {
            key: self.shared.full_key(key)?,
            expected: expected_mod_revision,
        };
        match self.write(op).await? {
            Applied::Deleted(revision, prev) => Ok((revision, prev)),
            _ => unreachable!("a delete answers with the deleted value"),
        }
    }

    async fn watch(&self, prefix: &[u8], from_revision: i64) -> Result<WatchStream> {
        watch::start(
            self.shared.clone(),
            Bytes::copy_from_slice(prefix),
            from_revision,
        )
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.write(Op::Compact { revision }).await.map(|_| ())
    }
}
