//! Automatic compaction, the way kube-apiserver drives it for etcd: at every tick, compact to
//! the revision seen at the previous tick. Watchers therefore always keep at least one interval
//! of history to resume from, and history never grows without bound.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::{Error, Store};

/// Upstream's default `--etcd-compaction-interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// Starts compacting `store` every `interval` until the returned task is aborted.
pub fn spawn(store: Arc<dyn Store>, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut previous = None;
        loop {
            ticker.tick().await;
            if let Some(revision) = previous {
                match store.compact(revision).await {
                    Ok(()) => tracing::debug!(revision, "compacted storage history"),
                    // Someone (another apiserver, an operator) compacted further already.
                    Err(Error::Compacted { .. }) => {}
                    Err(error) => tracing::warn!(%error, revision, "compaction failed"),
                }
            }
            previous = match store.current_revision().await {
                Ok(revision) => Some(revision),
                Err(error) => {
                    tracing::warn!(%error, "cannot read the current revision for compaction");
                    None
                }
            };
        }
    })
}
