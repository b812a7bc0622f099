//! The etcd backend: the storage contract on a real etcd v3 cluster, for operators who already
//! run one or want its replication.
//!
//! The contract is shaped like etcd, so most calls are one etcd request: revisions are etcd's
//! own, compare-and-swap is a transaction on `mod_revision`, a watch is an etcd watch from
//! `from_revision + 1`. What this module adds is resilience: every call is bounded by
//! [`EtcdConfig::request_timeout`] and fails with `Unavailable` instead of hanging, calls that
//! the balanced channel routes to a dead member are repeated (see `request`), and watches
//! re-establish themselves after a broken connection without gaps or duplicates (see `watch`).

mod request;
mod watch;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, GetResponse, KvClient,
    ResponseHeader, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchClient,
};

use self::request::{Failure, Kind, Retry};
use crate::key::prefix_end;
use crate::{Error, KeyValue, ListOptions, ListResult, Result, Store, WatchStream};

/// Largest gRPC message accepted from etcd, as etcd's own Go client allows: a list of a big
/// prefix or a watch catching up on many revisions easily exceeds tonic's 4 MiB default.
const MAX_MESSAGE_SIZE: usize = i32::MAX as usize;
/// HTTP/2 ping period on connections with requests in flight, so a member that vanished
/// without closing its sockets is noticed. etcd closes connections that ping more often than
/// every 5 s (`--grpc-keepalive-min-time`), and idle connections must not ping at all.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a ping may stay unanswered before the connection is considered dead.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest TCP connect to one member, so a blackholed member costs one attempt, not the whole
/// request timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How to reach etcd and where in its keyspace this store lives.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Client URLs of the cluster members (`http://host:2379`); requests are balanced over all
    /// of them, so the store keeps working while a minority of members is down.
    pub endpoints: Vec<String>,
    /// Prefix of every key, like kube-apiserver's `--etcd-prefix`. Two stores sharing one
    /// etcd are isolated when neither prefix is a prefix of the other (`/a` and `/b`, not
    /// `/a` and `/ab`).
    pub prefix: String,
    /// Upper bound of every call, retries included: after it a call fails with
    /// `Unavailable` rather than waiting for an unreachable etcd.
    pub request_timeout: Duration,
    /// How often a watch asks etcd for its progress, so a watcher of a quiet prefix still
    /// learns the current revision. A progress notification reaches the watcher about one
    /// period (and at least 100 ms) after etcd reported it, once confirmed (see `watch`).
    pub progress_interval: Duration,
}

impl EtcdConfig {
    /// Defaults matching kube-apiserver's layout, with timeouts short enough that a caller
    /// notices an outage within seconds.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix: crate::DEFAULT_PREFIX.to_string(),
            request_timeout: Duration::from_secs(5),
            progress_interval: Duration::from_secs(1),
        }
    }
}

/// The storage contract on etcd. Cheap to share: one connection pool serves every call and
/// watch, and it reconnects by itself when members come back.
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    keys: Arc<Keyspace>,
    request_timeout: Duration,
    progress_interval: Duration,
    /// The highest compaction revision this process has seen (its own compactions, watches
    /// cancelled by etcd), since etcd's `ErrCompacted` does not say how far history is gone.
    compacted: Arc<AtomicI64>,
}

impl EtcdStore {
    /// Connects to etcd and checks that it answers, so a wrong endpoint fails at startup with
    /// `Unavailable` (after `request_timeout`) instead of at the first request.
    pub async fn connect(config: EtcdConfig) -> Result<EtcdStore> {
        check_config(&config)?;
        let options = ConnectOptions::new()
            .with_connect_timeout(config.request_timeout.min(MAX_CONNECT_TIMEOUT))
            .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT)
            .with_keep_alive_while_idle(false)
            .with_require_leader(true);
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(|error| Failure::from(error).into_error())?;
        let store = EtcdStore {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_MESSAGE_SIZE),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_MESSAGE_SIZE),
            keys: Arc::new(Keyspace {
                prefix: config.prefix.clone().into_bytes(),
            }),
            request_timeout: config.request_timeout,
            progress_interval: config.progress_interval,
            compacted: Arc::new(AtomicI64::new(0)),
        };
        let revision = store.current_revision().await?;
        tracing::info!(endpoints = ?config.endpoints, prefix = %config.prefix, revision, "connected to etcd");
        Ok(store)
    }

    /// A read: repeated on any transient failure until the request timeout.
    async fn read(
        &self,
        what: &str,
        key: Vec<u8>,
        options: GetOptions,
    ) -> Result<GetResponse, Failure> {
        request::bounded(
            &self.kv,
            self.request_timeout,
            what,
            Retry::Idempotent,
            move |mut kv| {
                let (key, options) = (key.clone(), options.clone());
                async move { kv.get(key, Some(options)).await }
            },
        )
        .await
    }

    /// A transaction with writes: repeated only when etcd never saw the failed attempt.
    async fn write(&self, what: &str, txn: Txn) -> Result<TxnResponse> {
        request::bounded(
            &self.kv,
            self.request_timeout,
            what,
            Retry::IfNotSent,
            move |mut kv| {
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            },
        )
        .await
        .map_err(Failure::into_error)
    }

    /// The contract's error for a request at `requested` that etcd refused as compacted or
    /// future; `oldest_at_least` is what the refusal proves about the compaction revision.
    async fn revision_error(
        &self,
        failure: Failure,
        requested: i64,
        oldest_at_least: i64,
    ) -> Error {
        match failure.kind() {
            Kind::Compacted => Error::Compacted {
                requested,
                compacted: self.saw_compaction(oldest_at_least),
            },
            Kind::FutureRevision => match self.current_revision().await {
                Ok(current) => Error::FutureRevision { requested, current },
                Err(error) => error,
            },
            _ => failure.into_error(),
        }
    }

    /// Records that history is compacted at least up to `revision`; returns the best known
    /// compaction revision.
    fn saw_compaction(&self, revision: i64) -> i64 {
        self.compacted
            .fetch_max(revision, Ordering::Relaxed)
            .max(revision)
    }

    /// Fails with `Compacted` when a watch from `from_revision` could not get its first
    /// events: etcd would only say so asynchronously, a read at `from_revision + 1` says it now.
    async fn check_history(&self, from_revision: i64) -> Result<()> {
        let first_needed = from_revision.saturating_add(1);
        let options = GetOptions::new()
            .with_count_only()
            .with_revision(first_needed);
        match self
            .read("watch history check", self.keys.start(b"", None), options)
            .await
        {
            Ok(_) => Ok(()),
            // A watch may start in the future: etcd delivers the events once they happen.
            Err(failure) if failure.kind() == Kind::FutureRevision => Ok(()),
            Err(failure) => Err(self
                .revision_error(failure, from_revision, first_needed.saturating_add(1))
                .await),
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    fn key_prefix(&self) -> &[u8] {
        &self.keys.prefix
    }

    async fn current_revision(&self) -> Result<i64> {
        let options = GetOptions::new().with_count_only();
        let response = self
            .read("current revision", self.keys.start(b"", None), options)
            .await;
        header_revision(response.map_err(Failure::into_error)?.header())
    }

    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        let response = self
            .read("get", self.keys.key(key)?, GetOptions::new())
            .await;
        let response = response.map_err(Failure::into_error)?;
        response
            .kvs()
            .first()
            .map(|kv| self.keys.key_value(kv))
            .transpose()
    }

    async fn list(&self, prefix: &[u8], options: ListOptions) -> Result<ListResult> {
        if options.revision < 0 {
            return Err(Error::InvalidArgument(format!(
                "negative list revision {}",
                options.revision
            )));
        }
        let get = GetOptions::new()
            .with_range(self.keys.end(prefix))
            .with_limit(i64::try_from(options.limit).unwrap_or(i64::MAX))
            .with_revision(options.revision);
        let start = self.keys.start(prefix, options.start_after.as_deref());
        let response = match self.read("list", start, get).await {
            Ok(response) => response,
            Err(failure) => {
                return Err(self
                    .revision_error(
                        failure,
                        options.revision,
                        options.revision.saturating_add(1),
                    )
                    .await)
            }
        };
        let revision = match options.revision {
            0 => header_revision(response.header())?,
            requested => requested,
        };
        let kvs = response
            .kvs()
            .iter()
            .map(|kv| self.keys.key_value(kv))
            .collect::<Result<Vec<_>>>()?;
        // etcd counts every key of the requested range, not only the returned page.
        let remaining = u64::try_from(response.count())
            .unwrap_or(0)
            .saturating_sub(kvs.len() as u64);
        Ok(ListResult {
            kvs,
            revision,
            remaining,
        })
    }

    async fn count(&self, prefix: &[u8]) -> Result<u64> {
        let options = GetOptions::new()
            .with_range(self.keys.end(prefix))
            .with_count_only();
        let response = self
            .read("count", self.keys.start(prefix, None), options)
            .await;
        let count = response.map_err(Failure::into_error)?.count();
        u64::try_from(count).map_err(|_| Error::Corrupt(format!("etcd counted {count} keys")))
    }

    async fn create(&self, key: &[u8], value: Bytes) -> Result<i64> {
        let full = self.keys.key(key)?;
        let txn = Txn::new()
            .when([Compare::create_revision(full.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(full, value.to_vec(), None)]);
        let response = self.write("create", txn).await?;
        if !response.succeeded() {
            return Err(Error::AlreadyExists {
                key: Bytes::copy_from_slice(key),
            });
        }
        header_revision(response.header())
    }

    async fn update(&self, key: &[u8], value: Bytes, expected_mod_revision: i64) -> Result<i64> {
        let full = self.keys.key(key)?;
        let txn = Txn::new()
            .when([
                exists(&full),
                Compare::mod_revision(full.clone(), CompareOp::Equal, expected_mod_revision),
            ])
            .and_then([TxnOp::put(full.clone(), value.to_vec(), None)])
            .or_else([TxnOp::get(full, None)]);
        let response = self.write("update", txn).await?;
        if !response.succeeded() {
            return Err(precondition_failed(
                key,
                Some(expected_mod_revision),
                &response,
            ));
        }
        header_revision(response.header())
    }

    async fn delete(
        &self,
        key: &[u8],
        expected_mod_revision: Option<i64>,
    ) -> Result<(i64, KeyValue)> {
        let full = self.keys.key(key)?;
        let mut compares = vec![exists(&full)];
        if let Some(expected) = expected_mod_revision {
            compares.push(Compare::mod_revision(
                full.clone(),
                CompareOp::Equal,
                expected,
            ));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(
                full.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(full, None)]);
        let response = self.write("delete", txn).await?;
        if !response.succeeded() {
            return Err(precondition_failed(key, expected_mod_revision, &response));
        }
        let revision = header_revision(response.header())?;
        let prev = deleted_value(&response).ok_or_else(|| {
            Error::Corrupt(format!(
                "etcd deleted {} without returning its value",
                String::from_utf8_lossy(key)
            ))
        })?;
        Ok((revision, self.keys.key_value(&prev)?))
    }

    async fn watch(&self, prefix: &[u8], from_revision: i64) -> Result<WatchStream> {
        let from_revision = match from_revision {
            0 => self.current_revision().await?,
            negative if negative < 0 => {
                return Err(Error::InvalidArgument(format!(
                    "negative watch revision {negative}"
                )))
            }
            from => {
                self.check_history(from).await?;
                from
            }
        };
        let watcher = watch::Watcher::new(watch::Target {
            client: self.watch.clone(),
            keys: self.keys.clone(),
            prefix: Bytes::copy_from_slice(prefix),
            from_revision,
            request_timeout: self.request_timeout,
            progress_interval: self.progress_interval,
            compacted: self.compacted.clone(),
        });
        watcher.start().await
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        let compaction = request::bounded(
            &self.kv,
            self.request_timeout,
            "compact",
            Retry::IfNotSent,
            |mut kv| async move { kv.compact(revision, None).await },
        )
        .await;
        match compaction {
            Ok(_) => {
                self.saw_compaction(revision);
                Ok(())
            }
            // etcd refuses to compact at or below its compaction revision.
            Err(failure) => Err(self.revision_error(failure, revision, revision).await),
        }
    }
}

/// Maps the contract's relative keys to etcd keys under the store prefix, and back.
#[derive(Debug)]
struct Keyspace {
    prefix: Vec<u8>,
}

impl Keyspace {
    /// The etcd key of a relative key. Empty keys are refused, as by the embedded backend:
    /// they would name the prefix itself.
    fn key(&self, key: &[u8]) -> Result<Vec<u8>> {
        if key.is_empty() {
            return Err(Error::InvalidArgument("empty key".into()));
        }
        Ok([self.prefix.as_slice(), key].concat())
    }

    /// First etcd key of a range over the relative `prefix`, past `start_after` (relative to
    /// `prefix`, the continue token of a paginated list) if given.
    fn start(&self, prefix: &[u8], start_after: Option<&[u8]>) -> Vec<u8> {
        let mut start = [self.prefix.as_slice(), prefix].concat();
        if let Some(after) = start_after {
            start.extend_from_slice(after);
            start.push(0);
        }
        if start.is_empty() {
            // etcd rejects an empty key; "\0" is the smallest one it accepts.
            start.push(0);
        }
        start
    }

    /// End (exclusive) of the etcd range over the relative `prefix`; "\0" means "every key
    /// from the start on" to etcd, for the prefix that has no end (empty or all 0xff).
    fn end(&self, prefix: &[u8]) -> Vec<u8> {
        prefix_end(&[self.prefix.as_slice(), prefix].concat()).unwrap_or_else(|| vec![0])
    }

    /// The contract's view of an etcd key-value: key relative to the prefix.
    fn key_value(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        let key = kv
            .key()
            .strip_prefix(self.prefix.as_slice())
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "etcd returned key {} outside the prefix {}",
                    String::from_utf8_lossy(kv.key()),
                    String::from_utf8_lossy(&self.prefix)
                ))
            })?;
        Ok(KeyValue {
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        })
    }
}

/// Rejects configurations that could only fail later, or make a timer panic.
fn check_config(config: &EtcdConfig) -> Result<()> {
    if config.endpoints.is_empty() {
        return Err(Error::InvalidArgument(
            "no etcd endpoints configured".into(),
        ));
    }
    if config.request_timeout.is_zero() || config.progress_interval.is_zero() {
        return Err(Error::InvalidArgument(
            "etcd request timeout and progress interval must be positive".into(),
        ));
    }
    Ok(())
}

/// The revision a response was served at; etcd always sends it.
fn header_revision(header: Option<&ResponseHeader>) -> Result<i64> {
    header
        .map(ResponseHeader::revision)
        .ok_or_else(|| Error::Corrupt("etcd response without a header".into()))
}

/// Transaction guard "the key exists": etcd compares a missing key as if all its revisions
/// were 0, so without it `update(key, _, 0)` would create a missing key.
fn exists(key: &[u8]) -> Compare {
    Compare::create_revision(key.to_vec(), CompareOp::Greater, 0)
}

/// Why an update or delete transaction did not apply, from the key's state it read instead.
fn precondition_failed(key: &[u8], expected: Option<i64>, response: &TxnResponse) -> Error {
    let key = Bytes::copy_from_slice(key);
    let actual = response.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => get.kvs().first().map(etcd_client::KeyValue::mod_revision),
        _ => None,
    });
    match (actual, expected) {
        (None, _) => Error::NotFound { key },
        (Some(actual), Some(expected)) => Error::Conflict {
            key,
            expected,
            actual,
        },
        (Some(_), None) => Error::Corrupt(format!(
            "etcd refused to delete {} although it exists",
            String::from_utf8_lossy(&key)
        )),
    }
}

/// The value a successful delete transaction removed.
fn deleted_value(response: &TxnResponse) -> Option<etcd_client::KeyValue> {
    response.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Delete(delete) => delete.prev_kvs().first().cloned(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::Keyspace;

    #[test]
    fn ranges_stay_inside_the_store_prefix() {
        let keys = Keyspace {
            prefix: b"/registry".to_vec(),
        };
        assert_eq!(keys.start(b"/pods/", None), b"/registry/pods/");
        assert_eq!(
            keys.start(b"/pods/", Some(b"ns/p09")),
            b"/registry/pods/ns/p09\0"
        );
        assert_eq!(keys.end(b"/pods/"), b"/registry/pods0");
        assert_eq!(keys.end(b""), b"/registrz");
    }

    #[test]
    fn the_unbounded_range_uses_etcds_sentinels() {
        let keys = Keyspace { prefix: Vec::new() };
        assert_eq!(keys.start(b"", None), b"\0");
        assert_eq!(keys.end(b""), b"\0");
        assert_eq!(keys.end(b"\xff"), b"\0");
    }
}
