//! What admission reserved for a write (a Service's ClusterIPs and NodePorts), held by a guard
//! until the write settles.
//!
//! A write can end anywhere between admission and the store: an error, a dry run, or the
//! client going away, which drops the request's future at an `.await` so no code after it
//! runs. The guard makes the last case safe too: dropped unsettled, it gives the values back
//! on a spawned task.

use std::sync::Arc;

use crate::registry::strategy::Strategy;

pub(super) struct Reservation<S: Strategy> {
    strategy: Arc<S>,
    /// The object admitted and the one it replaces; `None` for strategies that reserve
    /// nothing, so other resources never clone their objects for this.
    objects: Option<(S::Object, Option<S::Object>)>,
}

impl<S: Strategy> Reservation<S> {
    /// Admits a create (`old` is `None`) or an update of `old`, reserving what `object`
    /// needs; the strategy may change `object` (an allocated ClusterIP).
    pub(super) async fn admit(
        strategy: &Arc<S>,
        object: &mut S::Object,
        old: Option<&S::Object>,
    ) -> crate::error::ApiResult<Self> {
        match old {
            Some(old) => strategy.admit_update(object, old).await?,
            None => strategy.admit_create(object).await?,
        }
        Ok(Reservation {
            strategy: strategy.clone(),
            objects: S::RESERVES.then(|| (object.clone(), old.cloned())),
        })
    }

    /// Settles the write: `stored` gives back what the replaced object held and the new one
    /// does not; otherwise (failed, dry run, unchanged) what the admitted object took.
    pub(super) async fn settle(mut self, stored: bool) {
        let Some((admitted, old)) = self.objects.take() else {
            return;
        };
        match (stored, old) {
            (true, Some(old)) => self.strategy.release(&old, Some(&admitted)).await,
            (true, None) => {}
            (false, old) => self.strategy.release(&admitted, old.as_ref()).await,
        }
    }
}

impl<S: Strategy> Drop for Reservation<S> {
    fn drop(&mut self) {
        let Some((admitted, old)) = self.objects.take() else {
            return;
        };
        let strategy = self.strategy.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { strategy.release(&admitted, old.as_ref()).await });
        }
    }
}
