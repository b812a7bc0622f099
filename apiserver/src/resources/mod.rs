//! Every served resource: one file each, one line each in [`registry`].

mod allocator;
mod configmaps;
mod deployments;
mod endpoints;
mod endpointslices;
mod events;
pub mod kubernetes_service;
mod leases;
mod namespaces;
mod nodes;
mod pods;
mod podspec;
mod priorityclasses;
mod rbac;
mod replicasets;
mod secrets;
mod serviceaccounts;
mod services;
mod workload;

pub use priorityclasses::SYSTEM_CLASSES as SYSTEM_PRIORITY_CLASSES;

use std::sync::Arc;

use ipnet::IpNet;
use store::Store;

pub use self::allocator::PortRange;
pub use self::rbac::Escalation;

use crate::registry::{Registry, Rest};

/// What resources take from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--service-cluster-ip-range`: where service ClusterIPs come from.
    pub service_cluster_ip_range: IpNet,
    /// `--service-node-port-range`: where NodePorts come from.
    pub service_node_port_range: PortRange,
    /// RBAC's privilege-escalation checks of role and binding writes; `None` unless RBAC
    /// is an authorization mode.
    pub escalation: Option<Arc<Escalation>>,
}

/// The registry of all built-in resources over `store`.
pub fn registry(store: Arc<dyn Store>, config: &Config) -> Registry {
    let mut registry = Registry::default();
    registry.add(Arc::new(Rest::new(namespaces::Namespaces, store.clone())));
    registry.add(Arc::new(Rest::new(configmaps::ConfigMaps, store.clone())));
    registry.add(Arc::new(Rest::new(
        pods::Pods::new(store.clone()),
        store.clone(),
    )));
    registry.add(Arc::new(Rest::new(
        priorityclasses::PriorityClasses,
        store.clone(),
    )));
    registry.add(Arc::new(Rest::new(nodes::Nodes, store.clone())));
    registry.add(Arc::new(Rest::new(events::CoreEvents, store.clone())));
    registry.add(Arc::new(Rest::new(events::Events, store.clone())));
    registry.add(Arc::new(Rest::new(secrets::Secrets, store.clone())));
    registry.add(Arc::new(Rest::new(
        serviceaccounts::ServiceAccounts,
        store.clone(),
    )));
    registry.add(Arc::new(Rest::new(deployments::Deployments, store.clone())));
    registry.add(Arc::new(Rest::new(replicasets::ReplicaSets, store.clone())));
    let services = services::Services::new(
        store.clone(),
        config.service_cluster_ip_range,
        config.service_node_port_range,
    );
    registry.add(Arc::new(Rest::new(services, store.clone())));
    registry.add(Arc::new(Rest::new(
        endpoints::EndpointsStrategy,
        store.clone(),
    )));
    registry.add(Arc::new(Rest::new(
        endpointslices::EndpointSlices,
        store.clone(),
    )));
    registry.add(Arc::new(Rest::new(leases::Leases, store.clone())));
    rbac::add(&mut registry, &store, config.escalation.as_ref());
    registry
}
