//! What every sync does whatever the strategy (upstream's `sync.go`): find or create the
//! ReplicaSet of the current template and bring revisions up to date, tell a resize from a
//! rollout, scale proportionally on a resize during a rollout, honour pause, trim history
//! beyond `revisionHistoryLimit`, and scale one ReplicaSet recording the Deployment size it
//! was scaled for.

use std::cmp::Ordering;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::ResourceExt;

use super::progress::{
    calculate_status, condition, has_progress_deadline, new_condition, set_condition,
    FAILED_RS_CREATE, FOUND_NEW_RS, NEW_REPLICA_SET, PAUSED, RESUMED, TIMED_OUT,
};
use super::revision::{
    compute_hash, equal_ignore_hash, find_new_replica_set, set_new_replica_set_annotations,
};
use super::util::{
    all, annotation_i32, by_creation, find_active_or_latest, is_saturated, max_surge,
    new_rs_new_replicas, replica_set_proportion, replicas, revision, rs_replicas,
    set_replicas_annotations, strategy_type, total_replicas, DESIRED_REPLICAS, MAX_REPLICAS,
    POD_TEMPLATE_HASH, REVISION,
};
use super::Sync;
use crate::controller_utils::{controller_of, controller_ref};
use crate::events::EventType;
use crate::runtime::{api_message, has_cause, Error, Result};

/// The sizes of a resize and its direction for the events ("up" or "down").
pub struct Resize {
    pub sizes: Vec<(Arc<ReplicaSet>, i32)>,
    pub operation: &'static str,
}

/// How a resize of a rolling Deployment spreads over its active ReplicaSets (upstream's
/// proportional scaling): the replicas to add (or remove) up to `replicas + maxSurge` go
/// to each ReplicaSet by its share of the Deployment before the resize, largest first (the
/// newer of equal ones first when growing, the older when shrinking), and what rounding
/// leaves over goes to the first.
pub fn proportional_sizes(d: &Deployment, mut active: Vec<Arc<ReplicaSet>>) -> Result<Resize> {
    let allowed = if replicas(d) > 0 {
        replicas(d) + max_surge(d)?
    } else {
        0
    };
    let to_add = allowed - total_replicas(&active);
    let operation = match to_add.cmp(&0) {
        Ordering::Greater => {
            active.sort_by(|a, b| {
                rs_replicas(b)
                    .cmp(&rs_replicas(a))
                    .then_with(|| by_creation(b, a))
            });
            "up"
        }
        Ordering::Less => {
            active.sort_by(|a, b| {
                rs_replicas(b)
                    .cmp(&rs_replicas(a))
                    .then_with(|| by_creation(a, b))
            });
            "down"
        }
        Ordering::Equal => "",
    };
    let mut added = 0;
    let mut sizes = Vec::with_capacity(active.len());
    for rs in active {
        let proportion = replica_set_proportion(&rs, d, to_add, added)?;
        added += proportion;
        let size = rs_replicas(&rs) + proportion;
        sizes.push((rs, size));
    }
    if let Some((_, largest)) = sizes.first_mut() {
        *largest = (*largest + to_add - added).max(0);
    }
    Ok(Resize { sizes, operation })
}

impl Sync<'_> {
    /// Records `revision` on the Deployment along with its status, as upstream does; an API
    /// server whose status updates drop metadata changes gets the annotation through the
    /// Deployment itself.
    async fn set_revision(&mut self, revision: &str) -> Result<bool> {
        if self.d.annotations().get(REVISION).map(String::as_str) == Some(revision) {
            return Ok(false);
        }
        self.d
            .annotations_mut()
            .insert(REVISION.into(), revision.into());
        let wanted = self.d.clone();
        self.write_status().await?;
        if self.d.annotations().get(REVISION).map(String::as_str) != Some(revision) {
            let status = self.d.status.clone();
            let mut annotated = self.d.clone();
            annotated.metadata.annotations = wanted.metadata.annotations;
            self.d = self
                .deployments
                .replace(&annotated.name_any(), &PostParams::default(), &annotated)
                .await?;
            self.d.status = status;
        }
        Ok(true)
    }

    /// The ReplicaSet running the current template (created if asked and missing) and all
    /// the others, with revisions brought up to date.
    pub(super) async fn new_and_old(
        &mut self,
        rs_list: &[Arc<ReplicaSet>],
        create: bool,
    ) -> Result<(Option<Arc<ReplicaSet>>, Vec<Arc<ReplicaSet>>)> {
        let template = self.template();
        let existing = find_new_replica_set(&template, rs_list);
        let old: Vec<Arc<ReplicaSet>> = rs_list
            .iter()
            .filter(|rs| existing.as_ref().is_none_or(|n| n.uid() != rs.uid()))
            .cloned()
            .collect();
        let new_revision = (old.iter().map(|rs| revision(rs)).max().unwrap_or(0) + 1).to_string();
        if let Some(existing) = existing {
            let mut rs = (*existing).clone();
            let annotations_changed =
                set_new_replica_set_annotations(&self.d, &mut rs, &new_revision, true);
            let spec = rs.spec.get_or_insert_with(Default::default);
            if annotations_changed || spec.min_ready_seconds != self.min_ready_seconds() {
                spec.min_ready_seconds = self.min_ready_seconds();
                let updated = self
                    .replica_sets
                    .replace(&rs.name_any(), &PostParams::default(), &rs)
                    .await?;
                return Ok((Some(Arc::new(updated)), old));
            }
            let rs_revision = rs.annotations().get(REVISION).cloned().unwrap_or_default();
            self.set_revision(&rs_revision).await?;
            if has_progress_deadline(&self.d)
                && condition(self.d.status.as_ref(), "Progressing").is_none()
            {
                let message = format!("Found new replica set {:?}", rs.name_any());
                set_condition(
                    self.status(),
                    new_condition("Progressing", "True", FOUND_NEW_RS, message),
                );
                self.write_status().await?;
            }
            return Ok((Some(existing), old));
        }
        if !create {
            return Ok((None, old));
        }
        let created = self
            .create_new_replica_set(&template, &old, &new_revision)
            .await?;
        Ok((Some(created), old))
    }

    async fn create_new_replica_set(
        &mut self,
        template: &PodTemplateSpec,
        old: &[Arc<ReplicaSet>],
        new_revision: &str,
    ) -> Result<Arc<ReplicaSet>> {
        let hash = compute_hash(
            template,
            self.d.status.as_ref().and_then(|s| s.collision_count),
        );
        let mut new_template = template.clone();
        new_template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut rs_selector = self
            .d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        rs_selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let name = format!("{}-{}", self.d.name_any(), hash);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.namespace(),
                owner_references: Some(vec![controller_ref(&self.d)]),
                labels: new_template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: self.min_ready_seconds(),
                selector: rs_selector,
                template: Some(new_template),
            }),
            status: None,
        };
        let replicas = new_rs_new_replicas(&self.d, &all(&None, old), &rs)?;
        rs.spec.as_mut().expect("spec").replicas = Some(replicas);
        set_new_replica_set_annotations(&self.d, &mut rs, new_revision, false);
        let (created, already_existed) = match self
            .replica_sets
            .create(&PostParams::default(), &rs)
            .await
        {
            Ok(created) => (created, false),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let existing = self.replica_sets.get(&name).await?;
                let ours = controller_of(&existing.metadata)
                    .is_some_and(|r| Some(&r.uid) == self.d.uid().as_ref());
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, template));
                if !(ours && same) {
                    // A hash collision with a foreign ReplicaSet: hash again with a new count.
                    let status = self.status();
                    status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                    self.write_status().await?;
                    return Err(Error::HashCollision(name));
                }
                (existing, true)
            }
            Err(error) if has_cause(&error, "NamespaceTerminating") => return Err(error.into()),
            Err(error) => {
                let message = format!(
                    "Failed to create new replica set {name:?}: {}",
                    api_message(&error)
                );
                if has_progress_deadline(&self.d) {
                    set_condition(
                        self.status(),
                        new_condition("Progressing", "False", FAILED_RS_CREATE, message.clone()),
                    );
                    let _ = self.write_status().await;
                }
                self.ctx
                    .recorder
                    .event(&self.d, EventType::Warning, FAILED_RS_CREATE, message);
                return Err(error.into());
            }
        };
        if !already_existed && replicas > 0 {
            let message = format!("Scaled up replica set {name} from 0 to {replicas}");
            self.ctx
                .recorder
                .event(&self.d, EventType::Normal, "ScalingReplicaSet", message);
        }
        self.set_revision(new_revision).await?;
        if !already_existed && has_progress_deadline(&self.d) {
            let message = format!("Created new replica set {name:?}");
            set_condition(
                self.status(),
                new_condition("Progressing", "True", NEW_REPLICA_SET, message),
            );
            self.write_status().await?;
        }
        Ok(Arc::new(created))
    }

    /// Paused and resumed show in the Progressing condition (unless the rollout timed out).
    pub(super) async fn check_paused_conditions(&mut self) -> Result<()> {
        if !has_progress_deadline(&self.d) {
            return Ok(());
        }
        let current =
            condition(self.d.status.as_ref(), "Progressing").and_then(|c| c.reason.clone());
        if current.as_deref() == Some(TIMED_OUT) {
            return Ok(());
        }
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let paused_shown = current.as_deref() == Some(PAUSED);
        let update = if paused && !paused_shown {
            new_condition(
                "Progressing",
                "Unknown",
                PAUSED,
                "Deployment is paused".into(),
            )
        } else if !paused && paused_shown {
            new_condition(
                "Progressing",
                "Unknown",
                RESUMED,
                "Deployment is resumed".into(),
            )
        } else {
            return Ok(());
        };
        set_condition(self.status(), update);
        self.write_status().await
    }

    /// Whether the Deployment was resized since its ReplicaSets were last scaled.
    pub(super) async fn is_scaling_event(&mut self, rs_list: &[Arc<ReplicaSet>]) -> Result<bool> {
        let (new_rs, old_rss) = self.new_and_old(rs_list, false).await?;
        let replicas = self.replicas();
        Ok(all(&new_rs, &old_rss)
            .iter()
            .filter(|rs| rs_replicas(rs) > 0)
            .filter_map(|rs| annotation_i32(rs, DESIRED_REPLICAS))
            .any(|desired| desired != replicas))
    }

    /// A resize or a paused Deployment: scale without rolling out.
    pub(super) async fn scale_and_sync(&mut self, rs_list: &[Arc<ReplicaSet>]) -> Result<()> {
        let (new_rs, old_rss) = self.new_and_old(rs_list, false).await?;
        let (new_rs, old_rss) = self.scale(new_rs, old_rss).await?;
        if self.d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            self.cleanup(&old_rss).await?;
        }
        self.sync_status(&all(&new_rs, &old_rss), new_rs.as_deref())
            .await
    }

    /// A resize: the only active ReplicaSet (or the newest) takes it all; a saturated new
    /// ReplicaSet retires the old ones; otherwise a rolling Deployment spreads it over the
    /// active ReplicaSets by [`proportional_sizes`].
    async fn scale(
        &mut self,
        new_rs: Option<Arc<ReplicaSet>>,
        mut old_rss: Vec<Arc<ReplicaSet>>,
    ) -> Result<(Option<Arc<ReplicaSet>>, Vec<Arc<ReplicaSet>>)> {
        let replicas = self.replicas();
        if let Some(target) = find_active_or_latest(&new_rs, &old_rss) {
            self.scale_replica_set(&target, replicas).await?;
            return Ok((new_rs, old_rss));
        }
        if new_rs.as_ref().is_some_and(|rs| is_saturated(&self.d, rs)) {
            for old in old_rss.iter_mut().filter(|rs| rs_replicas(rs) > 0) {
                *old = self.scale_replica_set(old, 0).await?.1;
            }
            return Ok((new_rs, old_rss));
        }
        if strategy_type(&self.d) != "RollingUpdate" {
            return Ok((new_rs, old_rss));
        }
        let active = all(&new_rs, &old_rss)
            .into_iter()
            .filter(|rs| rs_replicas(rs) > 0)
            .collect();
        let resize = proportional_sizes(&self.d, active)?;
        for (rs, size) in resize.sizes {
            self.scale_replica_set_as(&rs, size, resize.operation)
                .await?;
        }
        Ok((new_rs, old_rss))
    }

    /// Scales a ReplicaSet to `size` unless it has it already (upstream's
    /// `scaleReplicaSetAndRecordEvent`); returns whether it changed, and the ReplicaSet as
    /// written.
    pub(super) async fn scale_replica_set(
        &mut self,
        rs: &Arc<ReplicaSet>,
        size: i32,
    ) -> Result<(bool, Arc<ReplicaSet>)> {
        if rs_replicas(rs) == size {
            return Ok((false, rs.clone()));
        }
        let operation = if rs_replicas(rs) < size { "up" } else { "down" };
        self.scale_replica_set_as(rs, size, operation).await
    }

    /// Sets a ReplicaSet's size and the Deployment size it was scaled for, even when only
    /// the latter changed (upstream's `scaleReplicaSet`); returns whether the size changed,
    /// and the ReplicaSet as written.
    async fn scale_replica_set_as(
        &mut self,
        rs: &Arc<ReplicaSet>,
        size: i32,
        operation: &str,
    ) -> Result<(bool, Arc<ReplicaSet>)> {
        let replicas = self.replicas();
        let max = replicas + max_surge(&self.d)?;
        let old_size = rs_replicas(rs);
        let resize = old_size != size;
        let annotate = annotation_i32(rs, DESIRED_REPLICAS) != Some(replicas)
            || annotation_i32(rs, MAX_REPLICAS) != Some(max);
        if !resize && !annotate {
            return Ok((false, rs.clone()));
        }
        let mut updated = (**rs).clone();
        updated.spec.get_or_insert_with(Default::default).replicas = Some(size);
        set_replicas_annotations(&mut updated, replicas, max);
        let written = Arc::new(
            self.replica_sets
                .replace(&rs.name_any(), &PostParams::default(), &updated)
                .await?,
        );
        if resize {
            let message = format!(
                "Scaled {operation} replica set {} from {old_size} to {size}",
                rs.name_any()
            );
            self.ctx
                .recorder
                .event(&self.d, EventType::Normal, "ScalingReplicaSet", message);
        }
        Ok((resize, written))
    }

    /// Deletes the oldest scaled-down ReplicaSets beyond `revisionHistoryLimit`.
    pub(super) async fn cleanup(&self, old_rss: &[Arc<ReplicaSet>]) -> Result<()> {
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return Ok(());
        };
        let mut cleanable: Vec<&Arc<ReplicaSet>> = old_rss
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let excess = cleanable.len() as i64 - i64::from(limit);
        if excess <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| {
            revision(a)
                .cmp(&revision(b))
                .then_with(|| by_creation(a, b))
        });
        for rs in cleanable.into_iter().take(excess as usize) {
            let status = rs.status.clone().unwrap_or_default();
            if status.replicas != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation > status.observed_generation
            {
                continue;
            }
            match self
                .replica_sets
                .delete(&rs.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    pub(super) async fn sync_status(
        &mut self,
        all_rss: &[Arc<ReplicaSet>],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<()> {
        let status = calculate_status(&self.d, all_rss, new_rs)?;
        if self.d.status.as_ref() != Some(&status) {
            self.d.status = Some(status);
            self.write_status().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    use super::super::util::tests::{deployment, rs};
    use super::*;

    fn split(d: &Deployment, active: Vec<Arc<ReplicaSet>>) -> (Vec<(String, i32)>, &'static str) {
        let resize = proportional_sizes(d, active).unwrap();
        (
            resize
                .sizes
                .into_iter()
                .map(|(rs, size)| (rs.name_any(), size))
                .collect(),
            resize.operation,
        )
    }

    fn named(pairs: &[(&str, i32)]) -> Vec<(String, i32)> {
        pairs
            .iter()
            .map(|(name, size)| (name.to_string(), *size))
            .collect()
    }

    #[test]
    fn leftover_goes_to_the_largest() {
        // 3 + 3 + 3 of a Deployment of 9 (max 9, no surge) grown to 10: each share rounds
        // to 3, so the one left over goes to the first, the newest of equals when growing.
        let d = deployment(10, IntOrString::Int(0), IntOrString::Int(1));
        let active = vec![
            rs("a", 3, 3, Some(9)),
            rs("b", 3, 3, Some(9)),
            rs("c", 3, 3, Some(9)),
        ];
        assert_eq!(
            split(&d, active),
            (named(&[("c", 4), ("b", 3), ("a", 3)]), "up")
        );
    }

    #[test]
    fn shrinking_takes_from_the_largest_and_older_first() {
        // 6 + 6 of 12 (max 12) shrunk to 5: 6 * 5 / 12 = 2.5 rounds to 3 for each, and the
        // last replica to remove comes from the older one.
        let d = deployment(5, IntOrString::Int(0), IntOrString::Int(1));
        let active = vec![rs("b", 6, 6, Some(12)), rs("a", 6, 6, Some(12))];
        assert_eq!(split(&d, active), (named(&[("a", 2), ("b", 3)]), "down"));
    }

    #[test]
    fn scaling_to_zero_empties_every_replica_set() {
        let d = deployment(0, IntOrString::Int(3), IntOrString::Int(2));
        let active = vec![rs("a", 8, 8, Some(13)), rs("b", 5, 0, Some(13))];
        assert_eq!(split(&d, active), (named(&[("a", 0), ("b", 0)]), "down"));
    }
}
