//! NodePorts: a pod's host ports must be free on the node.

use super::{Code, Plugin, Status};
use crate::cache::NodeInfo;
use crate::pod_info::PodInfo;

/// Rejects nodes where a wanted host port is taken.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
    let conflict = pod
        .host_ports
        .iter()
        .any(|wanted| node.used_ports.iter().any(|used| used.conflicts(wanted)));
    if conflict {
        return Err(Status::new(
            Plugin::NodePorts,
            Code::Unschedulable,
            "node(s) didn't have free ports for the requested pod ports",
        ));
    }
    Ok(())
}
