//! NodeResourcesFit: the pod's requests must fit into what the node has left (and the node
//! must take one more pod); among fitting nodes, the least allocated score best, counting
//! default requests for containers that ask for nothing.

use std::borrow::Cow;

use super::{Code, Plugin, Status};
use crate::cache::NodeInfo;
use crate::pod_info::PodInfo;

/// Rejects nodes without room for the pod, with one reason per short resource.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
    let mut reasons: Vec<Cow<'static, str>> = Vec::new();
    let (free, used, wanted) = (&node.allocatable, &node.requested, &pod.requests);
    if used.pods + 1 > free.pods {
        reasons.push("Too many pods".into());
    }
    if !wanted.is_zero() {
        if wanted.milli_cpu > 0 && wanted.milli_cpu > free.milli_cpu - used.milli_cpu {
            reasons.push("Insufficient cpu".into());
        }
        if wanted.memory > 0 && wanted.memory > free.memory - used.memory {
            reasons.push("Insufficient memory".into());
        }
        if wanted.ephemeral_storage > 0
            && wanted.ephemeral_storage > free.ephemeral_storage - used.ephemeral_storage
        {
            reasons.push("Insufficient ephemeral-storage".into());
        }
        for (name, amount) in wanted.scalar.iter().filter(|(_, amount)| **amount > 0) {
            let left = free.scalar.get(name).copied().unwrap_or(0)
                - used.scalar.get(name).copied().unwrap_or(0);
            if *amount > left {
                reasons.push(format!("Insufficient {name}").into());
            }
        }
    }
    if reasons.is_empty() {
        return Ok(());
    }
    Err(Status {
        plugin: Plugin::NodeResourcesFit,
        code: Code::Unschedulable,
        reasons,
    })
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * 100 / capacity
}

/// LeastAllocated over CPU and memory, equally weighted.
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let cpu = (
        node.non_zero_requested.0 + pod.non_zero.0,
        node.allocatable.milli_cpu,
    );
    let memory = (
        node.non_zero_requested.1 + pod.non_zero.1,
        node.allocatable.memory,
    );
    let counted: Vec<i64> = [cpu, memory]
        .into_iter()
        .filter(|(_, capacity)| *capacity > 0)
        .map(|(requested, capacity)| least_requested(requested, capacity))
        .collect();
    if counted.is_empty() {
        return 0;
    }
    counted.iter().sum::<i64>() / counted.len() as i64
}
