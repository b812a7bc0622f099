//! The arithmetic every strategy shares (upstream's `deployment/util`): the annotations a
//! ReplicaSet carries about the Deployment size it was scaled for, `maxSurge` and
//! `maxUnavailable` resolved against the replicas, how far a new ReplicaSet may grow, and
//! each ReplicaSet's share of a resize. Sizes are always the ReplicaSets' `spec.replicas`,
//! never their pods, so that clients computing the same numbers from the same objects (and
//! test suites checking upstream's figures) agree with the controller.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::runtime::{Error, Result};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's `replicas` when the ReplicaSet was last scaled: a different value now
/// means the Deployment was resized.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `replicas + maxSurge` when the ReplicaSet was last scaled: the base of its proportion.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

pub fn selects_nothing_in_particular(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|l| l.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty())
}

pub fn strategy_type(d: &Deployment) -> &str {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

fn is_rolling_update(d: &Deployment) -> bool {
    strategy_type(d) == "RollingUpdate"
}

/// The Deployment's `spec.replicas` (defaulted to 1 by the API server).
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// The old ReplicaSets and the new one (when there is one), as upstream's `allRSs`.
pub fn all(new_rs: &Option<Arc<ReplicaSet>>, old_rss: &[Arc<ReplicaSet>]) -> Vec<Arc<ReplicaSet>> {
    old_rss.iter().cloned().chain(new_rs.clone()).collect()
}

/// A ReplicaSet's target size.
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The sum of target sizes (upstream's `GetReplicaCountForReplicaSets`).
pub fn total_replicas(rss: &[Arc<ReplicaSet>]) -> i32 {
    rss.iter().map(|rs| rs_replicas(rs)).sum()
}

pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

pub fn annotation_i32(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.annotations().get(key).and_then(|v| v.parse().ok())
}

/// Oldest first, then by name (upstream's `ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    created(a)
        .cmp(&created(b))
        .then_with(|| a.name_any().cmp(&b.name_any()))
}

/// Records the Deployment size a ReplicaSet is scaled for; returns whether it changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        if annotations.get(key) != Some(&value.to_string()) {
            annotations.insert(key.into(), value.to_string());
            changed = true;
        }
    }
    changed
}

/// An `IntOrString` as a number: a percentage of `total`, rounded up or down.
pub(crate) fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(text) => {
            let percent: i64 = text
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| Error::InvalidIntOrString(text.clone()))?;
            let scaled = percent as f64 * f64::from(total) / 100.0;
            Ok((if round_up {
                scaled.ceil()
            } else {
                scaled.floor()
            }) as i32)
        }
    }
}

/// `maxSurge` and `maxUnavailable` as numbers: percentages of the replicas, surge rounded
/// up and unavailability down, an absent value counting as 0; both zero would never make
/// progress, so unavailability becomes 1.
pub fn resolve_fenceposts(d: &Deployment) -> Result<(i32, i32)> {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let zero = IntOrString::Int(0);
    let surge = scaled_value(
        rolling.and_then(|r| r.max_surge.as_ref()).unwrap_or(&zero),
        replicas(d),
        true,
    )?;
    let unavailable = scaled_value(
        rolling
            .and_then(|r| r.max_unavailable.as_ref())
            .unwrap_or(&zero),
        replicas(d),
        false,
    )?;
    Ok(if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    })
}

pub fn max_surge(d: &Deployment) -> Result<i32> {
    if !is_rolling_update(d) {
        return Ok(0);
    }
    Ok(resolve_fenceposts(d)?.0)
}

/// At most the replicas themselves, and 0 for a Deployment of none.
pub fn max_unavailable(d: &Deployment) -> Result<i32> {
    if !is_rolling_update(d) || replicas(d) == 0 {
        return Ok(0);
    }
    Ok(resolve_fenceposts(d)?.1.min(replicas(d)))
}

/// The size the new ReplicaSet may have now: up to `replicas + maxSurge` counted over the
/// target sizes of `all_rss`, never more than `replicas`; Recreate goes straight to
/// `replicas`.
pub fn new_rs_new_replicas(
    d: &Deployment,
    all_rss: &[Arc<ReplicaSet>],
    new_rs: &ReplicaSet,
) -> Result<i32> {
    if !is_rolling_update(d) {
        return Ok(replicas(d));
    }
    let current = total_replicas(all_rss);
    let max_total = replicas(d) + max_surge(d)?;
    let new_current = rs_replicas(new_rs);
    if current >= max_total {
        return Ok(new_current);
    }
    Ok(new_current + (max_total - current).min(replicas(d) - new_current))
}

/// The only active ReplicaSet, or the newest when none is active; `None` with several.
pub fn find_active_or_latest(
    new_rs: &Option<Arc<ReplicaSet>>,
    old_rss: &[Arc<ReplicaSet>],
) -> Option<Arc<ReplicaSet>> {
    if new_rs.is_none() && old_rss.is_empty() {
        return None;
    }
    let mut old_sorted = old_rss.to_vec();
    old_sorted.sort_by(|a, b| by_creation(b, a));
    let active: Vec<Arc<ReplicaSet>> = all(new_rs, &old_sorted)
        .into_iter()
        .filter(|rs| rs_replicas(rs) > 0)
        .collect();
    match active.len() {
        0 => new_rs.clone().or_else(|| old_sorted.first().cloned()),
        1 => active.into_iter().next(),
        _ => None,
    }
}

/// The ReplicaSet runs the whole Deployment, scaled for its current size, all available.
pub fn is_saturated(d: &Deployment, rs: &ReplicaSet) -> bool {
    let replicas = replicas(d);
    rs_replicas(rs) == replicas
        && annotation_i32(rs, DESIRED_REPLICAS) == Some(replicas)
        && rs_available(rs) == replicas
}

/// The share of `to_add` (negative when shrinking) this ReplicaSet gets, `added` having
/// gone to the ones before it: its fraction, capped by what is left.
pub fn replica_set_proportion(
    rs: &ReplicaSet,
    d: &Deployment,
    to_add: i32,
    added: i32,
) -> Result<i32> {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return Ok(0);
    }
    let fraction = replica_set_fraction(rs, d)?;
    let allowed = to_add - added;
    Ok(if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    })
}

/// How many replicas the ReplicaSet gains keeping its share of the Deployment: its size
/// scaled from `max-replicas` before the resize to `replicas + maxSurge` now, rounded half
/// away from zero; all of it when scaling to zero.
fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> Result<i32> {
    if replicas(d) == 0 {
        return Ok(-rs_replicas(rs));
    }
    let max_after = replicas(d) + max_surge(d)?;
    let max_before = match annotation_i32(rs, MAX_REPLICAS).filter(|m| *m != 0) {
        Some(max) => max,
        // Without the annotation (edited away, or a ReplicaSet from before it existed) the
        // Deployment's current size stands in.
        None => match d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0) {
            0 => return Ok(0),
            actual => actual,
        },
    };
    let scaled = f64::from(rs_replicas(rs)) * f64::from(max_after) / f64::from(max_before);
    Ok(scaled.round() as i32 - rs_replicas(rs))
}

#[cfg(test)]
pub mod tests {
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus,
        RollingUpdateDeployment,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;

    pub fn deployment(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        }
    }

    /// A ReplicaSet of `replicas`, `available` of them available, scaled for a Deployment
    /// of `max_replicas` with surge; names sort by age (its creation second is the sum of
    /// the name's bytes).
    pub fn rs(
        name: &str,
        replicas: i32,
        available: i32,
        max_replicas: Option<i32>,
    ) -> Arc<ReplicaSet> {
        let annotations =
            max_replicas.map(|m| BTreeMap::from([(MAX_REPLICAS.to_string(), m.to_string())]));
        let created = Time(
            k8s_openapi::jiff::Timestamp::from_second(i64::from(
                name.bytes().map(u32::from).sum::<u32>(),
            ))
            .unwrap(),
        );
        Arc::new(ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations,
                creation_timestamp: Some(created),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..ReplicaSetSpec::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas,
                available_replicas: Some(available),
                ..ReplicaSetStatus::default()
            }),
        })
    }

    fn pct(text: &str) -> IntOrString {
        IntOrString::String(text.into())
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        assert_eq!(
            resolve_fenceposts(&deployment(10, pct("25%"), pct("25%"))).unwrap(),
            (3, 2)
        );
        assert_eq!(
            resolve_fenceposts(&deployment(3, pct("25%"), pct("25%"))).unwrap(),
            (1, 0)
        );
        assert_eq!(
            resolve_fenceposts(&deployment(1, pct("1%"), pct("99%"))).unwrap(),
            (1, 0)
        );
        assert_eq!(
            resolve_fenceposts(&deployment(3, IntOrString::Int(0), IntOrString::Int(0))).unwrap(),
            (0, 1)
        );
        assert_eq!(
            resolve_fenceposts(&deployment(0, pct("25%"), pct("25%"))).unwrap(),
            (0, 1)
        );
        assert_eq!(
            max_unavailable(&deployment(2, IntOrString::Int(0), IntOrString::Int(5))).unwrap(),
            2
        );
        assert_eq!(
            max_unavailable(&deployment(0, IntOrString::Int(0), IntOrString::Int(5))).unwrap(),
            0
        );
        assert!(resolve_fenceposts(&deployment(3, pct("x%"), pct("1%"))).is_err());
    }

    #[test]
    fn absent_surge_and_unavailable_count_as_zero() {
        let mut d = deployment(10, IntOrString::Int(0), IntOrString::Int(0));
        d.spec
            .as_mut()
            .unwrap()
            .strategy
            .as_mut()
            .unwrap()
            .rolling_update = None;
        assert_eq!(resolve_fenceposts(&d).unwrap(), (0, 1));
    }

    #[test]
    fn new_replica_set_grows_by_target_sizes_within_surge() {
        let d = deployment(10, IntOrString::Int(3), IntOrString::Int(2));
        let new = rs("new", 0, 0, None);
        assert_eq!(
            new_rs_new_replicas(&d, &[rs("old", 10, 10, None), new.clone()], &new).unwrap(),
            3
        );
        let grown = rs("new", 3, 0, None);
        assert_eq!(
            new_rs_new_replicas(&d, &[rs("old", 10, 10, None), grown.clone()], &grown).unwrap(),
            3
        );
        // Old pods still running do not count: only the old ReplicaSet's target of 8 does.
        let mut shrinking = (*rs("old", 8, 8, None)).clone();
        shrinking.status.as_mut().unwrap().replicas = 10;
        assert_eq!(
            new_rs_new_replicas(&d, &[Arc::new(shrinking), grown.clone()], &grown).unwrap(),
            5
        );
        // Never beyond the Deployment's replicas.
        let nearly = rs("new", 9, 9, None);
        assert_eq!(
            new_rs_new_replicas(&d, &[rs("old", 0, 0, None), nearly.clone()], &nearly).unwrap(),
            10
        );
    }

    #[test]
    fn proportion_scales_by_max_replicas_before_the_resize() {
        // 10 replicas (max 13 with surge 3) grown to 20 (max 23): 8 * 23 / 13 = 14.15.
        let d = deployment(20, IntOrString::Int(3), IntOrString::Int(2));
        assert_eq!(
            replica_set_proportion(&rs("a", 8, 8, Some(13)), &d, 10, 0).unwrap(),
            6
        );
        assert_eq!(
            replica_set_proportion(&rs("b", 5, 0, Some(13)), &d, 10, 6).unwrap(),
            4
        );
        // Capped by what is left to hand out, and nothing for an empty ReplicaSet.
        assert_eq!(
            replica_set_proportion(&rs("a", 8, 8, Some(13)), &d, 3, 0).unwrap(),
            3
        );
        assert_eq!(
            replica_set_proportion(&rs("c", 0, 0, Some(13)), &d, 10, 0).unwrap(),
            0
        );
        // Scaling to zero takes everything.
        let zero = deployment(0, IntOrString::Int(3), IntOrString::Int(2));
        assert_eq!(
            replica_set_proportion(&rs("a", 8, 8, Some(13)), &zero, -13, 0).unwrap(),
            -8
        );
    }

    #[test]
    fn active_or_latest_and_saturation() {
        let new = Some(rs("new", 0, 0, None));
        assert_eq!(
            find_active_or_latest(&new, &[rs("old", 4, 4, None)])
                .unwrap()
                .name_any(),
            "old"
        );
        assert!(
            find_active_or_latest(&Some(rs("new", 1, 0, None)), &[rs("old", 4, 4, None)]).is_none()
        );
        assert_eq!(
            find_active_or_latest(&None, &[rs("a", 0, 0, None), rs("zz", 0, 0, None)])
                .unwrap()
                .name_any(),
            "zz"
        );
        let d = deployment(3, IntOrString::Int(1), IntOrString::Int(0));
        let mut full = (*rs("new", 3, 3, None)).clone();
        assert!(!is_saturated(&d, &full), "not scaled for this size");
        set_replicas_annotations(&mut full, 3, 4);
        assert!(is_saturated(&d, &full));
    }
}
