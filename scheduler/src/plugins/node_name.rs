//! NodeName: a pod naming its node in `spec.nodeName` fits only there. Pods created with a
//! node name never enter the queue, so this guards the invariant rather than deciding
//! anything day to day, as upstream's does.

use super::{Code, Plugin, Status};
use crate::cache::NodeInfo;
use crate::pod_info::PodInfo;

/// Rejects every node but the one the pod names, if it names one.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
    match pod.node_name() {
        Some(name) if name != &*node.name => Err(Status::new(
            Plugin::NodeName,
            Code::UnschedulableAndUnresolvable,
            "node(s) didn't match the requested node name",
        )),
        _ => Ok(()),
    }
}
