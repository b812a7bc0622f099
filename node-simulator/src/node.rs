//! A simulated node: the Node object a kubelet registers (capacity, labels, taints, pod
//! CIDR, addresses, node info, the four conditions) and the status it posts afterwards.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::ipam::{node_cidr, CidrError, Ipam};
use crate::options::NodeGroup;

/// The kubelet version simulated nodes report.
pub const KUBELET_VERSION: &str = "v1.33.0";

/// Annotation on a Node that stops its Lease renewals and status updates while present, so
/// the node lifecycle controller sees the node go silent (`kubectl annotate node X
/// node-simulator/stop-heartbeats=true`; remove it to resume).
pub const STOP_HEARTBEATS: &str = "node-simulator/stop-heartbeats";

/// One simulated node: what it registers with and the pod IPs it hands out.
pub struct SimNode {
    pub name: String,
    /// Set once registered, for the Lease's owner reference.
    pub uid: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub capacity: BTreeMap<String, Quantity>,
    pub internal_ip: Ipv4Addr,
    pub ipam: Ipam,
    pub machine_id: String,
    pub boot_id: String,
    /// Whether heartbeats are stopped by the annotation.
    pub silenced: bool,
    /// The conditions last seen on the Node, so reports keep their transition times.
    pub observed_conditions: Vec<NodeCondition>,
    /// Images pulled on this node, which `IfNotPresent` pods then find present.
    pub images: HashSet<String>,
}

/// The nodes of `groups`, numbered across groups so each gets its own internal IP and the
/// next `mask_size` subnet of `cluster_cidr` as its pod CIDR.
pub fn from_groups(
    groups: &[NodeGroup],
    cluster_cidr: Ipv4Net,
    mask_size: u8,
) -> Result<Vec<SimNode>, CidrError> {
    let mut nodes = Vec::new();
    for group in groups {
        for i in 0..group.count {
            let index = nodes.len();
            nodes.push(SimNode {
                name: format!("{}{i}", group.name_prefix),
                uid: None,
                labels: group.labels.clone(),
                taints: group.taints.clone(),
                capacity: group
                    .capacity
                    .iter()
                    .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                    .collect(),
                internal_ip: internal_ip(index),
                ipam: Ipam::new(node_cidr(cluster_cidr, mask_size, index)?),
                machine_id: uuid::Uuid::new_v4().simple().to_string(),
                boot_id: uuid::Uuid::new_v4().to_string(),
                silenced: false,
                observed_conditions: Vec::new(),
                images: Default::default(),
            });
        }
    }
    Ok(nodes)
}

/// Node IPs are consecutive addresses in 172.16.0.0/12, by node index.
fn internal_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 16, 0, 0)) + 1 + index as u32)
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, now: &Time) -> NodeCondition {
    NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

impl SimNode {
    /// kubelet's healthy conditions with a heartbeat of now; a condition keeps its last
    /// transition time unless its status changes (as after the node lifecycle controller
    /// marked a silent node Unknown).
    pub fn conditions(&self) -> Vec<NodeCondition> {
        let now = Time(jiff::Timestamp::now());
        let mut conditions = vec![
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                &now,
            ),
            condition(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                &now,
            ),
            condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                &now,
            ),
            condition(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
                &now,
            ),
        ];
        for condition in &mut conditions {
            let observed = self
                .observed_conditions
                .iter()
                .find(|c| c.type_ == condition.type_ && c.status == condition.status);
            if let Some(since) = observed.and_then(|c| c.last_transition_time.clone()) {
                condition.last_transition_time = Some(since);
            }
        }
        conditions
    }

    pub fn status(&self) -> NodeStatus {
        NodeStatus {
            capacity: Some(self.capacity.clone()),
            allocatable: Some(self.capacity.clone()),
            conditions: Some(self.conditions()),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: self.internal_ip.to_string(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: self.name.clone(),
                },
            ]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
            }),
            node_info: Some(NodeSystemInfo {
                machine_id: self.machine_id.clone(),
                system_uuid: self.machine_id.clone(),
                boot_id: self.boot_id.clone(),
                kernel_version: "6.1.0-simulated".into(),
                os_image: "node-simulator".into(),
                container_runtime_version: "simulated://1.0.0".into(),
                kubelet_version: KUBELET_VERSION.into(),
                kube_proxy_version: KUBELET_VERSION.into(),
                operating_system: "linux".into(),
                architecture: "amd64".into(),
                swap: None,
            }),
            ..Default::default()
        }
    }

    /// The Node object to register.
    pub fn object(&self) -> Node {
        let mut labels: BTreeMap<String, String> = [
            ("kubernetes.io/hostname", self.name.as_str()),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
            ("beta.kubernetes.io/os", "linux"),
            ("beta.kubernetes.io/arch", "amd64"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        labels.extend(self.labels.clone());
        let cidr = self.ipam.cidr().to_string();
        Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(labels),
                annotations: Some(
                    [("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string())].into(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: Some(cidr.clone()),
                pod_cidrs: Some(vec![cidr]),
                taints: (!self.taints.is_empty()).then(|| self.taints.clone()),
                ..Default::default()
            }),
            status: Some(self.status()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_node_looks_like_a_kubelets() {
        let node = SimNode {
            name: "node-0".into(),
            uid: None,
            labels: [("zone".to_string(), "a".to_string())].into(),
            taints: vec![],
            capacity: [("cpu".to_string(), Quantity("4".into()))].into(),
            internal_ip: internal_ip(0),
            ipam: Ipam::new("10.244.0.0/24".parse().unwrap()),
            machine_id: "m".into(),
            boot_id: "b".into(),
            silenced: false,
            observed_conditions: Vec::new(),
            images: Default::default(),
        };
        let object = node.object();
        let labels = object.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "node-0");
        assert_eq!(labels["zone"], "a");
        assert_eq!(
            object.spec.unwrap().pod_cidr.as_deref(),
            Some("10.244.0.0/24")
        );
        let status = object.status.unwrap();
        assert_eq!(status.node_info.unwrap().kubelet_version, "v1.33.0");
        let conditions: Vec<(String, String)> = status
            .conditions
            .unwrap()
            .into_iter()
            .map(|c| (c.type_, c.status))
            .collect();
        assert!(conditions.contains(&("Ready".to_string(), "True".to_string())));
        assert_eq!(status.addresses.unwrap()[0].address, "172.16.0.1");
    }
}
