//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes only pods tolerating the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::Taint;

use super::taint_toleration::tolerates;
use super::{Code, Plugin, Status};
use crate::cache::NodeInfo;
use crate::pod_info::PodInfo;

/// Rejects cordoned nodes unless the pod tolerates the unschedulable taint.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
    let cordoned = node
        .node
        .as_ref()
        .and_then(|n| n.spec.as_ref())
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    if !cordoned {
        return Ok(());
    }
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    if tolerates(pod.spec().tolerations.as_deref().unwrap_or(&[]), &taint) {
        return Ok(());
    }
    Err(Status::new(
        Plugin::NodeUnschedulable,
        Code::UnschedulableAndUnresolvable,
        "node(s) were unschedulable",
    ))
}
