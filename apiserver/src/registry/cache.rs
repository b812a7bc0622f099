//! The watch cache: one store watch per resource feeding an in-memory copy of every object
//! and a window of recent events, so a thousand watchers and informer lists cost one store
//! watch, as with upstream's cacher.
//!
//! Entries keep the stored bytes plus what selectors need (labels, selectable fields), so
//! serving a list or an event never re-parses an object; an object's table cells are kept too
//! once a Table has shown it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{broadcast, watch, RwLock};
use tokio_util::sync::CancellationToken;

use super::table::Cells;
use crate::error::{ApiError, ApiResult};

/// What a cache entry carries besides the stored bytes; computed once per object version.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    pub labels: BTreeMap<String, String>,
    /// Values of the resource's selectable fields (`metadata.name`, `spec.nodeName`, ...).
    pub fields: Vec<(&'static str, String)>,
}

/// Computes [`Derived`] from stored bytes, and the bytes in the served API's form (the same
/// bytes unless the resource is stored converted); supplied by the resource's strategy.
pub type Indexer = Arc<dyn Fn(&Bytes) -> ApiResult<(Derived, Bytes)> + Send + Sync>;

/// One object version.
#[derive(Debug)]
pub struct Entry {
    /// Key relative to the store prefix, e.g. `/pods/default/web`.
    pub key: Bytes,
    pub stored: Bytes,
    /// The object's resourceVersion; for a deleted object, the revision of the delete.
    pub revision: i64,
    pub derived: Derived,
    /// The version's table cells, computed by the first Table that shows it rather than
    /// when it is indexed: most objects (leases, events, endpoints) are rewritten far more
    /// often than anyone runs `kubectl get` on them.
    cells: OnceLock<Cells>,
}

impl Entry {
    pub fn new(key: Bytes, stored: Bytes, revision: i64, derived: Derived) -> Entry {
        Entry {
            key,
            stored,
            revision,
            derived,
            cells: OnceLock::new(),
        }
    }

    /// The same object version at a later revision (its deletion, or the change that took
    /// it out of a watcher's selection), with the cells already computed for it.
    pub fn at(&self, revision: i64) -> Entry {
        Entry {
            key: self.key.clone(),
            stored: self.stored.clone(),
            revision,
            derived: self.derived.clone(),
            cells: self.cells.clone(),
        }
    }

    /// The version's table cells, made by `compute` from the stored bytes and revision on
    /// first use. Cells depend only on the object (time-relative ones are rendered when
    /// written), so they stay right for as long as this version exists.
    pub fn cells(&self, compute: impl FnOnce(&[u8], i64) -> ApiResult<Cells>) -> ApiResult<&Cells> {
        if let Some(cells) = self.cells.get() {
            return Ok(cells);
        }
        // Two requests may both compute them; they compute the same cells.
        let cells = compute(&self.stored, self.revision)?;
        Ok(self.cells.get_or_init(|| cells))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A change, with the previous version so watchers with selectors can tell an object
/// entering or leaving their selection.
#[derive(Debug)]
pub struct CacheEvent {
    pub kind: EventType,
    pub entry: Arc<Entry>,
    pub prev: Option<Arc<Entry>>,
}

impl CacheEvent {
    pub fn revision(&self) -> i64 {
        self.entry.revision
    }
}

struct State {
    objects: BTreeMap<Bytes, Arc<Entry>>,
    events: VecDeque<Arc<CacheEvent>>,
    /// Everything up to this revision has been applied.
    revision: i64,
    /// Events after this revision are all in `events`.
    oldest: i64,
    /// Where live events go, made by the first watcher: a channel holds `capacity` slots
    /// from the start (about 160 KB at 4,096), which resources nobody watches (most of
    /// them, on an idle server) need not pay for.
    live: OnceLock<broadcast::Sender<Arc<CacheEvent>>>,
}

/// The cache of one resource.
pub struct Cache {
    prefix: Bytes,
    indexer: Indexer,
    capacity: usize,
    state: RwLock<State>,
    /// The applied revision, for requests waiting for the cache to catch up.
    revision: watch::Sender<i64>,
}

/// A consistent view handed to a new watcher: the backlog after its revision and a
/// subscription to everything after that.
pub struct Subscription {
    pub backlog: Vec<Arc<CacheEvent>>,
    /// Objects present at `revision`, when the caller asked for initial state.
    pub initial: Vec<Arc<Entry>>,
    pub revision: i64,
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
}

/// How long a request waits for the cache to reach a revision it asked for.
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

impl Cache {
    /// Creates the cache and starts feeding it from `store` until `stop` is cancelled (the
    /// owning resource holds its drop guard, so a registry dropped in a test or at shutdown
    /// leaves no watch behind).
    pub fn start(
        store: Arc<dyn store::Store>,
        prefix: Bytes,
        indexer: Indexer,
        capacity: usize,
        stop: CancellationToken,
    ) -> Arc<Cache> {
        let cache = Arc::new(Cache {
            prefix,
            indexer,
            capacity,
            state: RwLock::new(State {
                objects: BTreeMap::new(),
                events: VecDeque::new(),
                revision: 0,
                oldest: 0,
                live: OnceLock::new(),
            }),
            revision: watch::channel(0).0,
        });
        let feeder = cache.clone();
        tokio::spawn(async move {
            let feed = async {
                loop {
                    if let Err(error) = feeder.sync(&*store).await {
                        tracing::warn!(prefix = %String::from_utf8_lossy(&feeder.prefix), %error, "watch cache resyncing");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            };
            tokio::select! {
                () = stop.cancelled() => {}
                () = feed => {}
            }
        });
        cache
    }

    /// Lists everything, then follows the store watch until it fails.
    async fn sync(&self, store: &dyn store::Store) -> ApiResult<()> {
        let mut objects = BTreeMap::new();
        let mut options = store::ListOptions {
            limit: 10_000,
            ..Default::default()
        };
        loop {
            let page = store.list(&self.prefix, options.clone()).await?;
            options.revision = page.revision;
            for kv in &page.kvs {
                match (self.indexer)(&kv.value) {
                    Ok((derived, stored)) => {
                        let entry = Entry::new(kv.key.clone(), stored, kv.mod_revision, derived);
                        objects.insert(kv.key.clone(), Arc::new(entry));
                    }
                    Err(error) => {
                        tracing::error!(key = %String::from_utf8_lossy(&kv.key), %error, "skipping undecodable object")
                    }
                }
            }
            match page.kvs.last() {
                Some(last) if page.remaining > 0 => {
                    options.start_after = Some(last.key.slice(self.prefix.len()..))
                }
                _ => break,
            }
        }
        let revision = options.revision;
        let mut watch = store.watch(&self.prefix, revision).await?;
        {
            let mut state = self.state.write().await;
            // Watchers of the previous generation see their stream end and re-watch.
            *state = State {
                objects,
                events: VecDeque::new(),
                revision,
                oldest: revision,
                live: OnceLock::new(),
            };
        }
        self.revision.send_replace(revision);
        while let Some(response) = watch.next().await {
            match response? {
                store::WatchResponse::Events(events) => self.apply(events).await,
                store::WatchResponse::Progress { revision } => {
                    let mut state = self.state.write().await;
                    if revision > state.revision {
                        state.revision = revision;
                        drop(state);
                        self.revision.send_replace(revision);
                    }
                }
            }
        }
        Err(ApiError::ServiceUnavailable("storage watch ended".into()))
    }

    async fn apply(&self, events: Vec<store::Event>) {
        let mut state = self.state.write().await;
        for event in events {
            let revision = event.revision();
            let change = match event {
                store::Event::Put(kv) => match (self.indexer)(&kv.value) {
                    Ok((derived, stored)) => {
                        let entry = Arc::new(Entry::new(kv.key.clone(), stored, revision, derived));
                        let prev = state.objects.insert(kv.key, entry.clone());
                        let kind = if prev.is_some() {
                            EventType::Modified
                        } else {
                            EventType::Added
                        };
                        Some(CacheEvent { kind, entry, prev })
                    }
                    Err(error) => {
                        tracing::error!(key = %String::from_utf8_lossy(&kv.key), %error, "skipping undecodable object");
                        None
                    }
                },
                store::Event::Delete { prev, .. } => {
                    state.objects.remove(&prev.key).map(|old| CacheEvent {
                        kind: EventType::Deleted,
                        entry: Arc::new(old.at(revision)),
                        prev: Some(old),
                    })
                }
            };
            state.revision = revision;
            if let Some(change) = change {
                let change = Arc::new(change);
                state.events.push_back(change.clone());
                if state.events.len() > self.capacity {
                    if let Some(dropped) = state.events.pop_front() {
                        state.oldest = dropped.revision();
                    }
                }
                if let Some(live) = state.live.get() {
                    let _ = live.send(change);
                }
            }
        }
        let revision = state.revision;
        drop(state);
        self.revision.send_replace(revision);
    }

    /// Waits until the cache has applied `revision` (or fails like upstream after a while).
    pub async fn wait_for(&self, revision: i64) -> ApiResult<()> {
        let mut applied = self.revision.subscribe();
        let reached =
            tokio::time::timeout(FRESHNESS_WAIT, applied.wait_for(|r| *r >= revision)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ApiError::Timeout(format!(
                "Too large resource version: {revision}, current: {}",
                *self.revision.borrow()
            ))),
        }
    }

    /// The resource's store prefix (`/pods/`), which every key it caches starts with.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Whether the cache has loaded the store's objects once (until then it holds nothing).
    pub fn synced(&self) -> bool {
        *self.revision.borrow() > 0
    }

    /// The object at `key` as the cache has it now.
    pub async fn get(&self, key: &[u8]) -> Option<Arc<Entry>> {
        self.state.read().await.objects.get(key).cloned()
    }

    /// The objects under `prefix` (the resource prefix, or a namespace within it) now, with
    /// the revision they reflect.
    pub async fn list(&self, prefix: &[u8]) -> (Vec<Arc<Entry>>, i64) {
        let state = self.state.read().await;
        let entries = state
            .objects
            .range::<[u8], _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, entry)| entry.clone())
            .collect();
        (entries, state.revision)
    }

    /// The cached entry of each `(key, revision)` if the cache holds exactly that version, so
    /// a read from the store at a fixed revision (a paginated list) reuses what the cache
    /// has already derived and drawn instead of decoding the object again.
    pub async fn versions<'k>(
        &self,
        wanted: impl IntoIterator<Item = (&'k [u8], i64)>,
    ) -> Vec<Option<Arc<Entry>>> {
        let state = self.state.read().await;
        wanted
            .into_iter()
            .map(|(key, revision)| {
                state
                    .objects
                    .get(key)
                    .filter(|entry| entry.revision == revision)
                    .cloned()
            })
            .collect()
    }

    /// Starts a watch after `from` (`None`: from the current state, with `initial` set to
    /// every object under `prefix`). Fails with 410 when `from` left the event window.
    pub async fn subscribe(&self, prefix: &[u8], from: Option<i64>) -> ApiResult<Subscription> {
        if let Some(from) = from {
            self.wait_for(from).await?;
        }
        let state = self.state.read().await;
        // Made under the read lock, which excludes the writer: no event falls between the
        // backlog taken below and this subscription.
        let live = state
            .live
            .get_or_init(|| broadcast::channel(self.capacity.max(16)).0)
            .subscribe();
        match from {
            Some(from) => {
                if from < state.oldest {
                    return Err(ApiError::Expired(format!(
                        "too old resource version: {from} ({})",
                        state.oldest + 1
                    )));
                }
                let start = state.events.partition_point(|e| e.revision() <= from);
                let backlog = state.events.range(start..).cloned().collect();
                Ok(Subscription {
                    backlog,
                    initial: Vec::new(),
                    revision: state.revision,
                    live,
                })
            }
            None => {
                let initial = state
                    .objects
                    .range::<[u8], _>((
                        std::ops::Bound::Included(prefix),
                        std::ops::Bound::Unbounded,
                    ))
                    .take_while(|(key, _)| key.starts_with(prefix))
                    .map(|(_, entry)| entry.clone())
                    .collect();
                Ok(Subscription {
                    backlog: Vec::new(),
                    initial,
                    revision: state.revision,
                    live,
                })
            }
        }
    }
}
