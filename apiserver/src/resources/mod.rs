//! Every served resource: one file each, one line each in [`registry`].

mod accessreviews;
mod allocator;
mod certificatesigningrequests;
mod configmaps;
mod controllerrevisions;
mod cronjobs;
mod daemonsets;
mod deployments;
mod endpoints;
mod endpointslices;
mod events;
mod horizontalpodautoscalers;
mod jobs;
pub mod kubernetes_service;
mod leases;
mod namespaces;
mod nodes;
mod persistentvolumeclaims;
mod poddisruptionbudgets;
mod pods;
mod podspec;
mod podtemplates;
mod priorityclasses;
mod rbac;
mod replicasets;
mod replicationcontrollers;
mod secrets;
mod selfsubjectreviews;
mod serviceaccounts;
mod services;
mod statefulsets;
mod tokenreviews;
mod workload;

pub use priorityclasses::SYSTEM_CLASSES as SYSTEM_PRIORITY_CLASSES;

use std::sync::Arc;

use ipnet::IpNet;
use store::Store;

pub use self::allocator::PortRange;
pub use self::rbac::Escalation;

use crate::registry::{CreateOnly, Registry, Rest};

/// What resources take from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--service-cluster-ip-range`: where service ClusterIPs come from.
    pub service_cluster_ip_range: IpNet,
    /// `--service-node-port-range`: where NodePorts come from.
    pub service_node_port_range: PortRange,
    /// `serviceaccounts/token` and the authentication.k8s.io reviews; `None` leaves them
    /// out, as upstream serves the token subresource only with a key to sign with.
    pub authentication: Option<Authentication>,
    /// RBAC's privilege-escalation checks of role and binding writes; `None` unless RBAC
    /// is an authorization mode.
    pub escalation: Option<Arc<Escalation>>,
    /// The authorizers the authorization.k8s.io reviews ask; `None` leaves the reviews out.
    pub authorization: Option<Arc<crate::authz::Chain>>,
    /// The admission plugins every write goes through.
    pub admission: crate::admission::Enabled,
}

/// What the authentication API needs from the server's authenticators.
#[derive(Debug, Clone)]
pub struct Authentication {
    /// Signs the tokens `serviceaccounts/token` answers with.
    pub token_issuer: Arc<crate::serviceaccount::TokenIssuer>,
    /// Authenticates the tokens TokenReviews ask about.
    pub authenticator: Arc<crate::authn::Authenticator>,
}

/// An `authentication.k8s.io/v1` UserInfo as Go writes it (empty members left out).
pub fn user_info(user: &crate::authn::UserInfo) -> serde_json::Value {
    let mut info = serde_json::json!({"username": user.name});
    if !user.uid.is_empty() {
        info["uid"] = user.uid.clone().into();
    }
    if !user.groups.is_empty() {
        info["groups"] = serde_json::json!(user.groups);
    }
    if !user.extra.is_empty() {
        info["extra"] = serde_json::json!(user.extra);
    }
    info
}

/// The registry of all built-in resources over `store`.
pub fn registry(store: Arc<dyn Store>, config: &Config) -> Registry {
    let lookup = Arc::new(crate::admission::Lookup::new(store.clone()));
    let admission = crate::admission::Context {
        lookup: lookup.clone(),
        authorization: config.authorization.clone(),
    };
    let mut registry = Registry::new(Arc::new(crate::admission::Chain::new(
        &config.admission,
        &admission,
    )));
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
    let authentication = config.authentication.as_ref();
    registry.add(Arc::new(Rest::new(
        serviceaccounts::ServiceAccounts::new(authentication.map(|a| a.token_issuer.clone())),
        store.clone(),
    )));
    if let Some(authentication) = authentication {
        registry.add(Arc::new(CreateOnly::new(tokenreviews::TokenReviews::new(
            authentication.authenticator.clone(),
        ))));
        registry.add(Arc::new(CreateOnly::new(
            selfsubjectreviews::SelfSubjectReviews,
        )));
    }
    if let Some(chain) = &config.authorization {
        let reviews = accessreviews::Reviews {
            chain: chain.clone(),
        };
        registry.add(Arc::new(CreateOnly::new(
            accessreviews::SelfSubjectAccessReviews(reviews.clone()),
        )));
        registry.add(Arc::new(CreateOnly::new(
            accessreviews::SelfSubjectRulesReviews(reviews.clone()),
        )));
        registry.add(Arc::new(CreateOnly::new(
            accessreviews::SubjectAccessReviews(reviews.clone()),
        )));
        registry.add(Arc::new(CreateOnly::new(
            accessreviews::LocalSubjectAccessReviews(reviews),
        )));
    }
    registry.add(Arc::new(Rest::new(deployments::Deployments, store.clone())));
    registry.add(Arc::new(Rest::new(replicasets::ReplicaSets, store.clone())));
    registry.add(Arc::new(Rest::new(jobs::Jobs, store.clone())));
    registry.add(Arc::new(Rest::new(cronjobs::CronJobs, store.clone())));
    registry.add(Arc::new(Rest::new(
        poddisruptionbudgets::PodDisruptionBudgets,
        store.clone(),
    )));
    registry.add(Arc::new(Rest::new(daemonsets::DaemonSets, store.clone())));
    registry.add(Arc::new(Rest::new(
        replicationcontrollers::ReplicationControllers,
        store.clone(),
    )));
    registry.add(Arc::new(Rest::new(
        podtemplates::PodTemplates,
        store.clone(),
    )));
    // v2 first: discovery prefers a group's first version, as upstream prefers v2.
    registry.add(Arc::new(Rest::new(
        horizontalpodautoscalers::HorizontalPodAutoscalers,
        store.clone(),
    )));
    registry.add(Arc::new(Rest::new(
        horizontalpodautoscalers::v1::HorizontalPodAutoscalersV1,
        store.clone(),
    )));
    registry.add(Arc::new(Rest::new(
        controllerrevisions::ControllerRevisions,
        store.clone(),
    )));
    registry.add(Arc::new(Rest::new(
        statefulsets::StatefulSets,
        store.clone(),
    )));
    registry.add(Arc::new(Rest::new(
        persistentvolumeclaims::PersistentVolumeClaims,
        store.clone(),
    )));
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
    registry.add(Arc::new(Rest::new(
        certificatesigningrequests::CertificateSigningRequests,
        store.clone(),
    )));
    rbac::add(&mut registry, &store, config.escalation.as_ref());
    lookup.follow(registry.all().iter().filter_map(|r| r.stored_cache()));
    registry
}
