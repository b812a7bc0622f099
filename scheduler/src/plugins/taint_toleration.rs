//! TaintToleration: a node's `NoSchedule` and `NoExecute` taints keep off pods that do not
//! tolerate them; `PreferNoSchedule` taints only lower the node's score.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::Toleration;

use super::{normalize, Code, Plugin, Status};
use crate::cache::NodeInfo;
use crate::pod_info::PodInfo;

/// Upstream's `ToleratesTaint` over a list, shared with the controllers.
pub use machinery::taints::tolerated as tolerates;

/// Rejects nodes with a `NoSchedule` or `NoExecute` taint the pod does not tolerate.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
    let tolerations = pod.spec().tolerations.as_deref().unwrap_or(&[]);
    let untolerated = node
        .taints()
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerates(tolerations, t));
    match untolerated {
        None => Ok(()),
        Some(taint) => {
            let reason = format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or("")
            );
            Err(Status {
                plugin: Plugin::TaintToleration,
                code: Code::UnschedulableAndUnresolvable,
                reasons: vec![Cow::Owned(reason)],
            })
        }
    }
}

/// Scores nodes by how few `PreferNoSchedule` taints the pod does not tolerate.
pub fn score(pod: &PodInfo, nodes: &[&NodeInfo]) -> Vec<i64> {
    let tolerations: Vec<Toleration> = pod
        .spec()
        .tolerations
        .iter()
        .flatten()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .cloned()
        .collect();
    let mut scores: Vec<i64> = nodes
        .iter()
        .map(|node| {
            let untolerated = node
                .taints()
                .iter()
                .filter(|t| t.effect == "PreferNoSchedule" && !tolerates(&tolerations, t));
            untolerated.count() as i64
        })
        .collect();
    normalize(&mut scores, true);
    scores
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Taint;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            ..Default::default()
        }
    }

    fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> Toleration {
        let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration {
            key: text(key),
            operator: text(operator),
            value: text(value),
            effect: text(effect),
            ..Default::default()
        }
    }

    #[test]
    fn toleration_matching() {
        let gpu = taint("gpu", "true", "NoSchedule");
        assert!(tolerates(
            &[toleration("gpu", "Equal", "true", "NoSchedule")],
            &gpu
        ));
        assert!(
            tolerates(&[toleration("gpu", "", "true", "")], &gpu),
            "default operator is Equal, empty effect matches all"
        );
        assert!(tolerates(&[toleration("gpu", "Exists", "", "")], &gpu));
        assert!(
            tolerates(&[toleration("", "Exists", "", "")], &gpu),
            "empty key with Exists tolerates everything"
        );
        assert!(!tolerates(&[toleration("gpu", "Equal", "false", "")], &gpu));
        assert!(!tolerates(
            &[toleration("gpu", "Exists", "", "NoExecute")],
            &gpu
        ));
        assert!(!tolerates(&[], &gpu));
    }
}
