//! One etcd request: bounded in time, retried while that is safe, its failure classified.
//!
//! etcd-client balances requests over every endpoint with tower's power-of-two-choices and
//! never evicts an endpoint: a dead member stays "ready" (tonic's lazy reconnect reports its
//! connect error as the result of the next call), so a share of the calls keeps landing on it.
//! Those calls fail fast with a connect error, before anything reached etcd, which makes them
//! safe to repeat even for writes; repeating them a few times lets the balancer pick a live
//! member. A failure after the request may have reached etcd is repeated only for reads.

use std::error::Error as _;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Code, ConnectError, Status};

use crate::Error;

/// First pause before repeating a request, doubled on each further attempt.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(20);
/// Longest pause between two attempts, so a request finds a live member soon after a failover.
const MAX_RETRY_DELAY: Duration = Duration::from_millis(250);
/// What etcd answers when the member has no leader (with `require_leader`, before doing
/// anything), so the request had no effect.
const NO_LEADER: &str = "etcdserver: no leader";

/// Which failed attempts of a request may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// Reads and watch creation: repeating them changes nothing.
    Idempotent,
    /// Writes: repeated only when etcd certainly did not see the failed attempt, since a
    /// repeated write could fail its own precondition (`AlreadyExists`, `Conflict`).
    IfNotSent,
}

/// What went wrong with an etcd request, in the terms the store needs to react.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// No member was reached (connect error) or the member refused before acting (no leader).
    NotSent,
    /// The connection broke or timed out mid-request: a write may or may not have happened.
    Transient,
    /// etcd's `ErrCompacted`: the requested revision is older than the kept history.
    Compacted,
    /// etcd's `ErrFutureRev`: the requested revision does not exist yet.
    FutureRevision,
    /// etcd refused the request itself (too large, malformed).
    Rejected,
    /// Anything etcd should never answer to this backend (auth, unimplemented...).
    Unexpected,
}

/// A failed etcd request.
#[derive(Debug)]
pub(super) struct Failure {
    kind: Kind,
    message: String,
}

impl Failure {
    /// Why the request failed.
    pub(super) fn kind(&self) -> Kind {
        self.kind
    }

    /// The contract's error for failures that need no revision context; `Compacted` and
    /// `FutureRevision` are only meaningful with one, so callers expecting them map them first.
    pub(super) fn into_error(self) -> Error {
        match self.kind {
            Kind::Rejected => Error::InvalidArgument(self.message),
            _ => Error::Unavailable(self.message),
        }
    }

    fn timed_out(what: &str, after: Duration) -> Self {
        Failure {
            kind: Kind::Transient,
            message: format!("etcd {what} request timed out after {after:?}"),
        }
    }

    fn may_retry(&self, retry: Retry) -> bool {
        match self.kind {
            Kind::NotSent => true,
            Kind::Transient => retry == Retry::Idempotent,
            Kind::Compacted | Kind::FutureRevision | Kind::Rejected | Kind::Unexpected => false,
        }
    }

    fn from_status(status: &Status) -> Self {
        let message = status.message();
        let kind = if message.contains("required revision has been compacted") {
            Kind::Compacted
        } else if message.contains("required revision is a future revision") {
            Kind::FutureRevision
        } else {
            match status.code() {
                Code::Unavailable if never_sent(status) => Kind::NotSent,
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::Unknown
                | Code::Aborted
                | Code::ResourceExhausted => Kind::Transient,
                Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
                    Kind::Rejected
                }
                _ => Kind::Unexpected,
            }
        };
        Failure {
            kind,
            message: format!("etcd answered {:?}: {message}", status.code()),
        }
    }
}

impl From<etcd_client::Error> for Failure {
    fn from(error: etcd_client::Error) -> Self {
        let kind = match &error {
            etcd_client::Error::GRpcStatus(status) => return Failure::from_status(status),
            etcd_client::Error::TransportError(_)
            | etcd_client::Error::IoError(_)
            | etcd_client::Error::WatchError(_) => Kind::Transient,
            etcd_client::Error::InvalidArgs(_) | etcd_client::Error::InvalidUri(_) => {
                Kind::Rejected
            }
            _ => Kind::Unexpected,
        };
        Failure {
            kind,
            message: format!("etcd client: {error}"),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Whether the request certainly had no effect: tonic could not connect to the member it
/// picked, or the member refused for lack of a leader.
fn never_sent(status: &Status) -> bool {
    if status.message() == NO_LEADER {
        return true;
    }
    let mut source = status.source();
    while let Some(error) = source {
        if error.is::<ConnectError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// Runs `request` on a clone of `client` until it succeeds, fails for good, or `timeout` has
/// passed since the first attempt: no call hangs on an unreachable etcd.
pub(super) async fn bounded<C, T, F, Fut>(
    client: &C,
    timeout: Duration,
    what: &str,
    retry: Retry,
    mut request: F,
) -> Result<T, Failure>
where
    C: Clone,
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        let failure = match tokio::time::timeout_at(deadline, request(client.clone())).await {
            Ok(Ok(response)) => return Ok(response),
            Ok(Err(error)) => Failure::from(error),
            Err(_) => return Err(Failure::timed_out(what, timeout)),
        };
        if !failure.may_retry(retry) || Instant::now() + delay >= deadline {
            return Err(failure);
        }
        tracing::debug!(%failure, what, "repeating etcd request");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY_DELAY);
    }
}
