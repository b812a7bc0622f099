//! The RollingUpdate strategy (upstream's `rolling.go`): the new ReplicaSet grows while the
//! target sizes of all ReplicaSets stay within `replicas + maxSurge`, and old ones shrink
//! while the available replicas stay at `replicas - maxUnavailable` or more, unhealthy
//! (unavailable) replicas going first. Growing and shrinking never happen in one sync, so
//! each step is decided on fresh counts. The decisions are pure functions of the
//! ReplicaSets, applied by the methods here.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::runtime::controller::Action;

use super::progress::deployment_complete;
use super::util::{
    all, by_creation, max_unavailable, new_rs_new_replicas, replicas, rs_available, rs_replicas,
    total_replicas,
};
use super::Sync;
use crate::runtime::Result;

/// The size the new ReplicaSet should have now (upstream's `reconcileNewReplicaSet`).
pub fn new_replica_set_size(
    d: &Deployment,
    old_rss: &[Arc<ReplicaSet>],
    new_rs: &Arc<ReplicaSet>,
) -> Result<i32> {
    let current = rs_replicas(new_rs);
    if current >= replicas(d) {
        return Ok(replicas(d));
    }
    new_rs_new_replicas(d, &all(&Some(new_rs.clone()), old_rss), new_rs)
}

/// How many old replicas may go at most: all target sizes, less the minimum available,
/// less the new ReplicaSet's replicas that are not available yet.
pub fn max_scaled_down(
    d: &Deployment,
    old_rss: &[Arc<ReplicaSet>],
    new_rs: &ReplicaSet,
) -> Result<i32> {
    let all_count = total_replicas(old_rss) + rs_replicas(new_rs);
    let min_available = replicas(d) - max_unavailable(d)?;
    let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
    Ok(all_count - min_available - new_unavailable)
}

/// New sizes for `old_rss` (oldest first) losing their unavailable replicas, at most
/// `budget` in all (upstream's `cleanupUnhealthyReplicas`).
pub fn without_unhealthy(old_rss: &[Arc<ReplicaSet>], budget: i32) -> Vec<i32> {
    let mut removed = 0;
    old_rss
        .iter()
        .map(|rs| {
            let (size, available) = (rs_replicas(rs), rs_available(rs));
            if removed >= budget || size == 0 || size == available {
                return size;
            }
            let down = (budget - removed).min(size - available);
            removed += down;
            size - down
        })
        .collect()
}

/// New sizes for `old_rss` (oldest first, as just cleaned up) shrinking the oldest first by
/// as many replicas as are available beyond the minimum (upstream's
/// `scaleDownOldReplicaSetsForRollingUpdate`).
pub fn scaled_down(
    d: &Deployment,
    old_rss: &[Arc<ReplicaSet>],
    new_rs: &ReplicaSet,
) -> Result<Vec<i32>> {
    let min_available = replicas(d) - max_unavailable(d)?;
    let available: i32 =
        old_rss.iter().map(|rs| rs_available(rs)).sum::<i32>() + rs_available(new_rs);
    let wanted = (available - min_available).max(0);
    let mut removed = 0;
    Ok(old_rss
        .iter()
        .map(|rs| {
            let size = rs_replicas(rs);
            let down = size.min(wanted - removed);
            removed += down;
            size - down
        })
        .collect())
}

impl Sync<'_> {
    pub(super) async fn rollout_rolling(&mut self, rs_list: &[Arc<ReplicaSet>]) -> Result<Action> {
        let (new_rs, old_rss) = self.new_and_old(rs_list, true).await?;
        let new_rs = new_rs.expect("created when missing");
        let target = new_replica_set_size(&self.d, &old_rss, &new_rs)?;
        let (scaled_up, new_rs) = self.scale_replica_set(&new_rs, target).await?;
        if scaled_up {
            return self
                .sync_rollout_status(&all(&Some(new_rs.clone()), &old_rss), Some(&new_rs))
                .await;
        }
        let (scaled_down, old_rss) = self.reconcile_old_replica_sets(old_rss, &new_rs).await?;
        if !scaled_down && deployment_complete(&self.d, self.d.status.as_ref()) {
            self.cleanup(&old_rss).await?;
        }
        self.sync_rollout_status(&all(&Some(new_rs.clone()), &old_rss), Some(&new_rs))
            .await
    }

    /// Shrinks the old ReplicaSets as far as availability allows, unhealthy replicas first;
    /// returns whether any shrank, and the old ReplicaSets as written.
    async fn reconcile_old_replica_sets(
        &mut self,
        mut old_rss: Vec<Arc<ReplicaSet>>,
        new_rs: &Arc<ReplicaSet>,
    ) -> Result<(bool, Vec<Arc<ReplicaSet>>)> {
        if total_replicas(&old_rss) == 0 {
            return Ok((false, old_rss));
        }
        let budget = max_scaled_down(&self.d, &old_rss, new_rs)?;
        if budget <= 0 {
            return Ok((false, old_rss));
        }
        old_rss.sort_by(|a, b| by_creation(a, b));
        let sizes = without_unhealthy(&old_rss, budget);
        let cleaned = self.resize(&mut old_rss, sizes).await?;
        let sizes = scaled_down(&self.d, &old_rss, new_rs)?;
        let shrunk = self.resize(&mut old_rss, sizes).await?;
        Ok((cleaned || shrunk, old_rss))
    }

    /// Scales each ReplicaSet to its size in `sizes`; returns whether any changed.
    async fn resize(&mut self, rss: &mut [Arc<ReplicaSet>], sizes: Vec<i32>) -> Result<bool> {
        let mut changed = false;
        for (slot, size) in rss.iter_mut().zip(sizes) {
            let (scaled, written) = self.scale_replica_set(slot, size).await?;
            *slot = written;
            changed |= scaled;
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    use super::super::sync::proportional_sizes;
    use super::super::util::tests::{deployment, rs};
    use super::super::util::{annotation_i32, max_surge, set_replicas_annotations, MAX_REPLICAS};
    use super::*;

    fn with(rs: &Arc<ReplicaSet>, size: i32, available: i32, d: &Deployment) -> Arc<ReplicaSet> {
        let mut rs = (**rs).clone();
        rs.spec.as_mut().unwrap().replicas = Some(size);
        rs.status.as_mut().unwrap().available_replicas = Some(available);
        set_replicas_annotations(&mut rs, replicas(d), replicas(d) + max_surge(d).unwrap());
        Arc::new(rs)
    }

    /// Runs rolling-update syncs until nothing changes, as the controller does: the new
    /// ReplicaSet's pods never become available (an image that cannot be pulled), the old
    /// ReplicaSet's pods all are.
    fn settle(d: &Deployment, mut old: Arc<ReplicaSet>, mut new: Arc<ReplicaSet>) -> (i32, i32) {
        loop {
            let target = new_replica_set_size(d, std::slice::from_ref(&old), &new).unwrap();
            if target != rs_replicas(&new) {
                new = with(&new, target, 0, d);
                continue;
            }
            let olds = vec![old.clone()];
            let budget = max_scaled_down(d, &olds, &new).unwrap();
            if budget <= 0 {
                return (rs_replicas(&old), rs_replicas(&new));
            }
            let cleaned = without_unhealthy(&olds, budget)[0];
            let old_available = rs_available(&old).min(cleaned);
            let size = scaled_down(d, &[with(&old, cleaned, old_available, d)], &new).unwrap()[0];
            if size == rs_replicas(&old) {
                return (rs_replicas(&old), rs_replicas(&new));
            }
            old = with(&old, size, old_available.min(size), d);
        }
    }

    #[test]
    fn stalled_rollout_then_resize_splits_like_upstream() {
        let d = deployment(10, IntOrString::Int(3), IntOrString::Int(2));
        let old = with(&rs("old", 10, 10, None), 10, 10, &d);
        // Created at 3: 10 old + 3 reach replicas + maxSurge.
        let created =
            new_rs_new_replicas(&d, std::slice::from_ref(&old), &rs("new", 0, 0, None)).unwrap();
        assert_eq!(created, 3);
        let new = with(&rs("new", 0, 0, None), created, 0, &d);
        // Old shrinks by maxUnavailable to 8, which lets the new one grow to 5; then the 5
        // unavailable new replicas stop everything.
        let (old_size, new_size) = settle(&d, old.clone(), new.clone());
        assert_eq!((old_size, new_size), (8, 5));

        // Resized to 30 (max 33): 8 * 33 / 13 = 20.3 and 5 * 33 / 13 = 12.7, the 20 to add
        // going 12 to the larger old one and the remaining 8 to the new one.
        let d30 = deployment(30, IntOrString::Int(3), IntOrString::Int(2));
        let old = with(&old, old_size, old_size, &d);
        let new = with(&new, new_size, 0, &d);
        assert_eq!(annotation_i32(&old, MAX_REPLICAS), Some(13));
        let resize = proportional_sizes(&d30, vec![old.clone(), new.clone()]).unwrap();
        assert_eq!(resize.operation, "up");
        let split: Vec<(String, i32)> = resize
            .sizes
            .iter()
            .map(|(rs, size)| (rs.metadata.name.clone().unwrap(), *size))
            .collect();
        assert_eq!(split, [("old".to_string(), 20), ("new".to_string(), 13)]);
        // And the rollout stays stalled there: 33 replicas, 13 of them unavailable.
        assert_eq!(
            settle(&d30, with(&old, 20, 20, &d30), with(&new, 13, 0, &d30)),
            (20, 13)
        );
    }

    #[test]
    fn unhealthy_old_replicas_go_first_within_the_budget() {
        let sizes = without_unhealthy(
            &[
                rs("a", 4, 1, None),
                rs("b", 5, 3, None),
                rs("c", 2, 2, None),
            ],
            4,
        );
        assert_eq!(sizes, [1, 4, 2]);
    }

    #[test]
    fn oldest_shrinks_first_down_to_the_minimum_available() {
        let d = deployment(10, IntOrString::Int(3), IntOrString::Int(2));
        let sizes = scaled_down(
            &d,
            &[rs("a", 3, 3, None), rs("b", 7, 7, None)],
            &rs("new", 3, 0, None),
        )
        .unwrap();
        assert_eq!(sizes, [1, 7]);
        let none = scaled_down(
            &d,
            &[rs("a", 3, 3, None), rs("b", 5, 5, None)],
            &rs("new", 3, 0, None),
        )
        .unwrap();
        assert_eq!(none, [3, 5]);
    }
}
