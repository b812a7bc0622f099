//! The Recreate strategy (upstream's `recreate.go`): no old pod may run next to a new one,
//! so the new ReplicaSet waits until every pod of the old ones is gone, terminal ones
//! aside.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::runtime::controller::Action;
use kube::ResourceExt;

use super::progress::deployment_complete;
use super::util::{all, rs_replicas};
use super::Sync;
use crate::controller_utils::{controller_of, matches, phase, selector};
use crate::runtime::Result;

impl Sync<'_> {
    /// Old ReplicaSets go to zero first; only once none of their pods runs does the new
    /// ReplicaSet get created or scaled to the full size.
    pub(super) async fn rollout_recreate(&mut self, rs_list: &[Arc<ReplicaSet>]) -> Result<Action> {
        let (mut new_rs, mut old_rss) = self.new_and_old(rs_list, false).await?;
        let mut scaled_down = false;
        for old in old_rss.iter_mut().filter(|rs| rs_replicas(rs) > 0) {
            let (scaled, written) = self.scale_replica_set(old, 0).await?;
            *old = written;
            scaled_down |= scaled;
        }
        if scaled_down || self.old_pods_running(new_rs.as_deref(), &old_rss, rs_list) {
            return self
                .sync_rollout_status(&all(&new_rs, &old_rss), new_rs.as_deref())
                .await;
        }
        if new_rs.is_none() {
            (new_rs, old_rss) = self.new_and_old(rs_list, true).await?;
        }
        let target = new_rs.clone().expect("created when missing");
        let replicas = self.replicas();
        new_rs = Some(self.scale_replica_set(&target, replicas).await?.1);
        if deployment_complete(&self.d, self.d.status.as_ref()) {
            self.cleanup(&old_rss).await?;
        }
        self.sync_rollout_status(&all(&new_rs, &old_rss), new_rs.as_deref())
            .await
    }

    /// Whether pods of the old ReplicaSets may still run (Recreate must wait for them).
    fn old_pods_running(
        &self,
        new_rs: Option<&ReplicaSet>,
        old_rss: &[Arc<ReplicaSet>],
        rs_list: &[Arc<ReplicaSet>],
    ) -> bool {
        if old_rss
            .iter()
            .map(|rs| rs.status.as_ref().map_or(0, |s| s.replicas))
            .sum::<i32>()
            > 0
        {
            return true;
        }
        let Ok(selector) = selector(&self.d.spec.clone().unwrap_or_default().selector) else {
            return false;
        };
        let namespace = self.d.namespace();
        let new_uid = new_rs.and_then(|rs| rs.uid());
        self.ctx.pods.state().iter().any(|pod| {
            pod.namespace() == namespace
                && matches(&selector, &pod.metadata)
                && controller_of(&pod.metadata).is_some_and(|r| {
                    Some(&r.uid) != new_uid.as_ref()
                        && rs_list.iter().any(|rs| rs.uid().as_ref() == Some(&r.uid))
                })
                && !matches!(phase(pod), "Failed" | "Succeeded")
        })
    }
}
