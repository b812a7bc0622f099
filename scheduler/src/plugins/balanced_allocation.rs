//! NodeResourcesBalancedAllocation: prefers nodes where, with the pod added, CPU and memory
//! are used in similar proportions, so neither is stranded.

use crate::cache::NodeInfo;
use crate::pod_info::PodInfo;

/// Whether the pod requests no CPU or memory at all, in which case upstream skips this
/// score (it could only reflect other pods).
pub fn skips(pod: &PodInfo) -> bool {
    pod.requests.milli_cpu == 0 && pod.requests.memory == 0
}

/// 100 for perfectly balanced CPU and memory use with the pod added, less the further apart.
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let pairs = [
        (
            node.requested.milli_cpu + pod.requests.milli_cpu,
            node.allocatable.milli_cpu,
        ),
        (
            node.requested.memory + pod.requests.memory,
            node.allocatable.memory,
        ),
    ];
    let fractions: Vec<f64> = pairs
        .into_iter()
        .filter(|(_, allocatable)| *allocatable > 0)
        .map(|(requested, allocatable)| (requested as f64 / allocatable as f64).min(1.0))
        .collect();
    let deviation = match fractions.as_slice() {
        [a, b] => ((a - b) / 2.0).abs(),
        _ => 0.0,
    };
    ((1.0 - deviation) * 100.0) as i64
}
