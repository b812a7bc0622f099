//! The one error type of the storage contract.
//!
//! Callers (the apiserver) turn each variant into a specific HTTP status, so the variants name
//! outcomes a caller must handle differently rather than where the failure came from.

use bytes::Bytes;

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key does not exist (update or delete of a missing key).
    #[error("key {} not found", String::from_utf8_lossy(.key))]
    NotFound { key: Bytes },
    /// `create` found the key already present.
    #[error("key {} already exists", String::from_utf8_lossy(.key))]
    AlreadyExists { key: Bytes },
    /// A compare-and-swap precondition failed: the key's mod revision is not the expected one.
    #[error("key {} was modified: expected mod revision {expected}, found {actual}", String::from_utf8_lossy(.key))]
    Conflict {
        key: Bytes,
        expected: i64,
        actual: i64,
    },
    /// The requested revision is older than the kept history (HTTP 410 upstream).
    /// `compacted` is the compaction revision as far as this process knows it (etcd does not
    /// report it on every call), so it is a lower bound of the oldest readable revision.
    #[error("required revision {requested} has been compacted (compacted revision {compacted})")]
    Compacted { requested: i64, compacted: i64 },
    /// The requested revision has not happened yet.
    #[error("required revision {requested} is a future revision (current revision {current})")]
    FutureRevision { requested: i64, current: i64 },
    /// The backend cannot be reached or is shutting down; retrying later may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Stored data cannot be read back as written; never retried, never ignored.
    #[error("storage corrupt: {0}")]
    Corrupt(String),
    /// The caller asked for something the contract does not allow (empty key, bad prefix...).
    #[error("invalid storage request: {0}")]
    InvalidArgument(String),
}

/// Result of every storage call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
