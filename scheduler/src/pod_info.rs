//! A pod with everything the scheduler derives from it computed once: its resource requests,
//! host ports and compiled affinity terms. Nodes hold these for their pods, so each
//! scheduling cycle compares numbers and compiled selectors instead of re-reading specs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, PodSpec};

use crate::resources::{non_zero_requests, pod_requests, Resources};
use machinery::selector::Selector;

/// A host port a container binds: pods binding the same port and protocol on overlapping
/// addresses cannot share a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    pub fn conflicts(&self, other: &HostPort) -> bool {
        let wildcard = |ip: &str| ip == "0.0.0.0" || ip == "::";
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || wildcard(&self.ip) || wildcard(&other.ip))
    }
}

/// A compiled `PodAffinityTerm`: which pods (namespace and labels) it is about, and the
/// topology domain (`topologyKey`) they must or must not share.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    namespaces: BTreeSet<String>,
    namespace_selector: Selector,
    selector: Selector,
    pub topology_key: String,
}

impl AffinityTerm {
    /// Compiles `term` as written in the spec of `owner` (a term without namespaces is about
    /// the owner's namespace; `matchLabelKeys` take the owner's label values).
    fn new(owner: &Pod, term: &PodAffinityTerm) -> AffinityTerm {
        let namespace = owner.metadata.namespace.clone().unwrap_or_default();
        let mut namespaces: BTreeSet<String> = term.namespaces.iter().flatten().cloned().collect();
        if namespaces.is_empty() && term.namespace_selector.is_none() {
            namespaces.insert(namespace);
        }
        let mut selector = Selector::new(term.label_selector.as_ref());
        let labels = owner.metadata.labels.as_ref();
        if term.label_selector.is_some() {
            let own = |key: &String| {
                labels
                    .and_then(|l| l.get(key))
                    .map(|v| (key.clone(), v.clone()))
            };
            for (key, value) in term.match_label_keys.iter().flatten().filter_map(own) {
                selector.require(&key, &value, true);
            }
            for (key, value) in term.mismatch_label_keys.iter().flatten().filter_map(own) {
                selector.require(&key, &value, false);
            }
        }
        AffinityTerm {
            namespaces,
            namespace_selector: Selector::new(term.namespace_selector.as_ref()),
            selector,
            topology_key: term.topology_key.clone(),
        }
    }

    /// Whether `pod` is one of the pods this term is about; `namespaces` holds the labels of
    /// every namespace, for `namespaceSelector`.
    pub fn matches(
        &self,
        pod: &PodInfo,
        namespaces: &HashMap<String, BTreeMap<String, String>>,
    ) -> bool {
        let in_namespace = self.namespaces.contains(&pod.namespace)
            || self
                .namespace_selector
                .matches(namespaces.get(&pod.namespace));
        in_namespace && self.selector.matches(pod.labels())
    }
}

/// An affinity term with its preference weight.
#[derive(Debug, Clone)]
pub struct WeightedTerm {
    pub weight: i64,
    pub term: AffinityTerm,
}

/// A pod and what the scheduler derived from it.
#[derive(Debug)]
pub struct PodInfo {
    /// The pod as the informer holds it (shared, not copied).
    pub pod: Arc<Pod>,
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub priority: i32,
    /// What it needs free on a node.
    pub requests: Resources,
    /// CPU and memory assumed when scoring, defaults filling missing requests.
    pub non_zero: (i64, i64),
    pub host_ports: Vec<HostPort>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedTerm>,
    pub preferred_anti_affinity: Vec<WeightedTerm>,
}

fn host_ports(spec: &PodSpec) -> Vec<HostPort> {
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    containers
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.unwrap_or(0) > 0)
        .map(|p| HostPort {
            ip: p
                .host_ip
                .clone()
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| "0.0.0.0".into()),
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            port: p.host_port.unwrap_or(0),
        })
        .collect()
}

impl PodInfo {
    pub fn new(pod: impl Into<Arc<Pod>>) -> PodInfo {
        let pod = pod.into();
        let spec = pod.spec.clone().unwrap_or_default();
        let affinity = spec.affinity.as_ref();
        let pod_affinity = affinity.and_then(|a| a.pod_affinity.as_ref());
        let anti_affinity = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(&pod, t))
                .collect()
        };
        let preferred = |terms: Option<
            &Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>,
        >|
         -> Vec<WeightedTerm> {
            terms
                .into_iter()
                .flatten()
                .map(|t| WeightedTerm {
                    weight: i64::from(t.weight),
                    term: AffinityTerm::new(&pod, &t.pod_affinity_term),
                })
                .collect()
        };
        PodInfo {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            priority: spec.priority.unwrap_or(0),
            requests: pod_requests(&spec),
            non_zero: non_zero_requests(&spec),
            host_ports: host_ports(&spec),
            required_affinity: required(pod_affinity.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity: required(anti_affinity.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: preferred(pod_affinity.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity: preferred(anti_affinity.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            pod,
        }
    }

    pub fn spec(&self) -> &PodSpec {
        static EMPTY: std::sync::OnceLock<PodSpec> = std::sync::OnceLock::new();
        self.pod
            .spec
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(PodSpec::default))
    }

    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.pod.metadata.labels.as_ref()
    }

    /// The node the pod is bound to, if any.
    pub fn node_name(&self) -> Option<&str> {
        self.spec().node_name.as_deref().filter(|n| !n.is_empty())
    }

    pub fn nominated_node_name(&self) -> Option<&str> {
        self.pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty())
    }

    pub fn is_terminating(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }

    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    /// `namespace/name`, how messages and events name a pod.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// When the pod started running, for choosing among preemption victims.
    pub fn start_time(&self) -> Option<jiff::Timestamp> {
        self.pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Affinity, Container, ContainerPort, PodAntiAffinity};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn pod(namespace: &str, labels: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some(namespace.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            ..Default::default()
        }
    }

    #[test]
    fn terms_default_to_the_owners_namespace_and_honour_match_label_keys() {
        let mut owner = pod("a", &[("app", "web"), ("version", "1")]);
        let term = PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            match_label_keys: Some(vec!["version".into()]),
            topology_key: "zone".into(),
            ..Default::default()
        };
        owner.spec.as_mut().unwrap().affinity = Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![term]),
                ..Default::default()
            }),
            ..Default::default()
        });
        let info = PodInfo::new(owner);
        let term = &info.required_anti_affinity[0];
        let none = HashMap::new();
        assert!(term.matches(
            &PodInfo::new(pod("a", &[("app", "web"), ("version", "1")])),
            &none
        ));
        assert!(!term.matches(
            &PodInfo::new(pod("a", &[("app", "web"), ("version", "2")])),
            &none
        ));
        assert!(!term.matches(
            &PodInfo::new(pod("b", &[("app", "web"), ("version", "1")])),
            &none
        ));
    }

    #[test]
    fn host_ports_conflict_on_overlapping_addresses() {
        let mut p = pod("a", &[]);
        p.spec.as_mut().unwrap().containers = vec![Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                container_port: 80,
                host_port: Some(8080),
                ..Default::default()
            }]),
            ..Default::default()
        }];
        let ports = PodInfo::new(p).host_ports;
        assert_eq!(
            ports,
            vec![HostPort {
                ip: "0.0.0.0".into(),
                protocol: "TCP".into(),
                port: 8080
            }]
        );
        let specific = HostPort {
            ip: "10.0.0.1".into(),
            protocol: "TCP".into(),
            port: 8080,
        };
        assert!(ports[0].conflicts(&specific));
        assert!(!specific.conflicts(&HostPort {
            ip: "10.0.0.2".into(),
            ..specific.clone()
        }));
        assert!(!specific.conflicts(&HostPort {
            protocol: "UDP".into(),
            ..specific.clone()
        }));
    }
}
