//! The endpoints controller (upstream `pkg/controller/endpoint`): for every Service with a
//! selector, an Endpoints object of the same name listing the selected pods: ready ones in
//! `addresses`, the others in `notReadyAddresses`, with the service's ports resolved against
//! each pod (a named `targetPort` is looked up among the pod's container ports), so
//! `kubectl get ep` and `kubectl describe svc` show where traffic goes. Services without a
//! selector (such as `kubernetes`) are left to whoever writes their endpoints.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use super::ControllerContext;
use crate::controller_utils::{is_pod_ready, is_pod_terminal, ready_condition};
use crate::events::{EventType, Recorder};
use crate::informers::Change;
use crate::runtime::{self, api_message, has_cause, Queue, Result};

/// The controller's name (`--controllers`, queue metrics).
pub const NAME: &str = "endpoints-controller";

/// When the change that led to these endpoints happened, for latency measurements.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
const HEADLESS: &str = "service.kubernetes.io/headless";
/// Addresses an Endpoints object holds at most; the rest is truncated.
const MAX_CAPACITY: usize = 1000;

struct Context {
    client: Client,
    services: Store<Service>,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    triggers: TriggerTimes,
    recorder: Recorder,
}

/// Wires the controller to the shared informers and starts it.
pub fn start(ctx: &ControllerContext) {
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<Pod>();
    let endpoints = ctx.informers.get::<Endpoints>();
    let (queue, triggers) = Queue::new(NAME);
    let context = Arc::new(Context {
        client: ctx.client_for(NAME),
        services: services.store(),
        pods: pods.store(),
        endpoints: endpoints.store(),
        triggers: TriggerTimes::default(),
        recorder: ctx.events.recorder("endpoint-controller"),
    });
    tokio::spawn(watch_services(
        queue.clone(),
        services.subscribe(),
        context.clone(),
    ));
    tokio::spawn(watch_pods(
        queue.clone(),
        pods.subscribe(),
        context.services.clone(),
    ));
    tokio::spawn(watch_endpoints(queue.clone(), endpoints.subscribe()));
    let controller = runtime::Controller {
        queue,
        triggers,
        store: context.services.clone(),
        caches: vec![services.synced(), pods.synced(), endpoints.synced()],
        workers: ctx.options.concurrent_endpoint_syncs,
    };
    tokio::spawn(controller.run(context, reconcile));
}

async fn watch_services(
    queue: Queue<Service>,
    mut changes: UnboundedReceiver<Change<Service>>,
    ctx: Arc<Context>,
) {
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied { new, .. } => queue.add_object(&new),
            // The Controller only reconciles what its store holds: a deleted service's
            // endpoints are removed here.
            Change::Deleted(gone) => {
                let ctx = ctx.clone();
                tokio::spawn(async move { delete_endpoints(&ctx, &gone).await });
            }
        }
    }
}

async fn delete_endpoints(ctx: &Context, service: &Service) {
    let namespace = service.namespace().unwrap_or_default();
    let name = service.name_any();
    ctx.triggers.forget(&namespace, &name);
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &namespace);
    if service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_none()
    {
        return;
    }
    if let Err(error) = api.delete(&name, &DeleteParams::default()).await {
        if !matches!(&error, kube::Error::Api(status) if status.code == 404) {
            tracing::warn!(
                service = name,
                namespace,
                error = api_message(&error),
                "could not delete endpoints"
            );
        }
    }
}

/// Pods changes reach the services selecting the pod before and after the change; shared
/// with the EndpointSlice controller, which reacts to the same changes.
pub async fn watch_pods(
    queue: Queue<Service>,
    mut changes: UnboundedReceiver<Change<Pod>>,
    services: Store<Service>,
) {
    while let Some(change) = changes.next().await {
        let (old, new) = match change {
            Change::Applied { old, new } => (old, Some(new)),
            Change::Deleted(gone) => (Some(gone), None),
        };
        if let (Some(old), Some(new)) = (&old, &new) {
            if old.resource_version() == new.resource_version()
                || !endpoint_relevant_change(old, new)
            {
                continue;
            }
        }
        for pod in old.iter().chain(new.iter()) {
            for service in selecting_services(&services, pod) {
                queue.add_object(&service);
            }
        }
    }
}

/// A changed or deleted Endpoints object of a service with a selector is put back.
async fn watch_endpoints(queue: Queue<Service>, mut changes: UnboundedReceiver<Change<Endpoints>>) {
    while let Some(change) = changes.next().await {
        let endpoints = match change {
            Change::Applied { old: Some(_), new } => new,
            Change::Deleted(gone) => gone,
            Change::Applied { old: None, .. } => continue,
        };
        queue.add(
            ObjectRef::new(&endpoints.name_any())
                .within(&endpoints.namespace().unwrap_or_default()),
        );
    }
}

/// Whether a pod update can change what endpoints list (upstream's `podEndpointsChanged`).
pub fn endpoint_relevant_change(old: &Pod, new: &Pod) -> bool {
    let spec = |p: &Pod| {
        p.spec
            .as_ref()
            .map(|s| (s.node_name.clone(), s.hostname.clone(), s.subdomain.clone()))
    };
    let status = |p: &Pod| {
        p.status
            .as_ref()
            .map(|s| (s.pod_ip.clone(), s.pod_ips.clone(), s.phase.clone()))
    };
    old.metadata.labels != new.metadata.labels
        || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
        || is_pod_ready(old) != is_pod_ready(new)
        || spec(old) != spec(new)
        || status(old) != status(new)
        || old.spec.as_ref().map(|s| &s.containers) != new.spec.as_ref().map(|s| &s.containers)
}

/// Services in the pod's namespace whose selector the pod's labels satisfy.
pub fn selecting_services(services: &Store<Service>, pod: &Pod) -> Vec<Arc<Service>> {
    let namespace = pod.namespace();
    let labels = pod.labels();
    services
        .state()
        .into_iter()
        .filter(|s| s.namespace() == namespace)
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|spec| spec.selector.as_ref())
                .is_some_and(|selector| {
                    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
                })
        })
        .collect()
}

/// The pods a service selects.
pub fn selected_pods(pods: &Store<Pod>, service: &Service) -> Vec<Arc<Pod>> {
    let namespace = service.namespace();
    let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.clone()) else {
        return Vec::new();
    };
    pods.state()
        .into_iter()
        .filter(|p| {
            p.namespace() == namespace && selector.iter().all(|(k, v)| p.labels().get(k) == Some(v))
        })
        .collect()
}

/// Upstream's `ShouldPodBeInEndpoints`: not terminal, has an IP, and (unless terminating
/// pods are wanted) not being deleted.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let has_ip = pod.status.as_ref().is_some_and(|s| {
        s.pod_ip.as_ref().is_some_and(|ip| !ip.is_empty())
            || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    !is_pod_terminal(pod)
        && has_ip
        && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// The pod's IP of the service's (first) IP family.
pub fn pod_ip_for_service(pod: &Pod, service: &Service) -> Option<String> {
    let spec = service.spec.as_ref();
    let want_v6 = match spec
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
    {
        Some(family) => family == "IPv6",
        None => spec
            .and_then(|s| s.cluster_ip.as_deref())
            .is_some_and(|ip| ip.contains(':')),
    };
    let status = pod.status.as_ref()?;
    let candidates = status
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.clone())
        .chain(status.pod_ip.clone());
    candidates
        .into_iter()
        .find(|ip| ip.contains(':') == want_v6)
}

/// The pod's hostname when it asked to be addressable through this (headless) service.
pub fn hostname_for_service(pod: &Pod, service: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.clone().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == Some(service.name_any().as_str())
        && pod.namespace() == service.namespace())
    .then_some(hostname)
}

/// The container port a service port targets on this pod (upstream's `FindPort`): a named
/// target port is looked up by name and protocol; a number is used as is.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match port.target_port.as_ref() {
        None => Some(port.port),
        Some(IntOrString::Int(number)) => Some(*number),
        Some(IntOrString::String(name)) => {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find_map(|p| {
                    (p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                        .then_some(p.container_port)
                })
        }
    }
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let spec = service.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") || spec.selector.is_none() {
        return Ok(Action::await_change());
    }
    let pods = selected_pods(&ctx.pods, &service);
    let trigger_time = ctx.triggers.compute(&service, &pods);
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let mut subsets = Vec::new();
    for pod in &pods {
        if !should_pod_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let Some(ip) = pod_ip_for_service(pod, &service) else {
            continue;
        };
        let address = EndpointAddress {
            ip,
            hostname: hostname_for_service(pod, &service),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.namespace(),
                name: Some(pod.name_any()),
                uid: pod.uid(),
                ..ObjectReference::default()
            }),
        };
        let ready = publish_not_ready || is_pod_ready(pod);
        let ports = spec.ports.clone().unwrap_or_default();
        if ports.is_empty() {
            if spec.cluster_ip.as_deref() == Some("None") {
                subsets.push(subset(address, None, ready));
            }
            continue;
        }
        for port in &ports {
            let Some(number) = find_port(pod, port) else {
                continue;
            };
            let endpoint_port = EndpointPort {
                name: port.name.clone(),
                port: number,
                protocol: Some(port.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: port.app_protocol.clone(),
            };
            subsets.push(subset(address.clone(), Some(endpoint_port), ready));
        }
    }
    let subsets = repack_subsets(subsets);
    let current = ctx.endpoints.get(&ObjectRef::new(&name).within(&namespace));
    let service_labels = service.metadata.labels.clone().unwrap_or_default();
    if let Some(current) = &current {
        let mut labels = current.metadata.labels.clone().unwrap_or_default();
        labels.remove(HEADLESS);
        let capacity_ok = current.annotations().get(OVER_CAPACITY).is_none()
            && address_count(current.subsets.as_deref().unwrap_or_default()) <= MAX_CAPACITY;
        if current.subsets.clone().unwrap_or_default() == subsets
            && labels == service_labels
            && capacity_ok
        {
            return Ok(Action::await_change());
        }
    }
    let mut endpoints = current.as_deref().cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        ..Endpoints::default()
    });
    endpoints.subsets = (!subsets.is_empty()).then_some(subsets);
    let mut labels = service_labels;
    if spec
        .cluster_ip
        .as_deref()
        .is_none_or(|ip| ip.is_empty() || ip == "None")
    {
        labels.insert(HEADLESS.into(), String::new());
    }
    endpoints.metadata.labels = (!labels.is_empty()).then_some(labels);
    let annotations = endpoints
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    match trigger_time {
        Some(time) => {
            annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), format_rfc3339_nano(time))
        }
        None => annotations.remove(LAST_CHANGE_TRIGGER_TIME),
    };
    if truncate(&mut endpoints) {
        endpoints
            .annotations_mut()
            .insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        endpoints.annotations_mut().remove(OVER_CAPACITY);
    }
    if endpoints.annotations().is_empty() {
        endpoints.metadata.annotations = None;
    }
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = match &current {
        None => api.create(&PostParams::default(), &endpoints).await,
        Some(_) => api.replace(&name, &PostParams::default(), &endpoints).await,
    };
    match result {
        Ok(_) => Ok(Action::await_change()),
        Err(error) if current.is_none() && has_cause(&error, "NamespaceTerminating") => {
            Ok(Action::await_change())
        }
        Err(error) => {
            let (reason, message) = match current {
                None => (
                    "FailedToCreateEndpoint",
                    format!(
                        "Failed to create endpoint for service {namespace}/{name}: {}",
                        api_message(&error)
                    ),
                ),
                Some(_) => (
                    "FailedToUpdateEndpoint",
                    format!(
                        "Failed to update endpoint {namespace}/{name}: {}",
                        api_message(&error)
                    ),
                ),
            };
            ctx.recorder
                .event(&endpoints, EventType::Warning, reason, message);
            Err(error.into())
        }
    }
}

fn subset(address: EndpointAddress, port: Option<EndpointPort>, ready: bool) -> EndpointSubset {
    let (addresses, not_ready) = if ready {
        (Some(vec![address]), None)
    } else {
        (None, Some(vec![address]))
    };
    EndpointSubset {
        addresses,
        not_ready_addresses: not_ready,
        ports: port.map(|p| vec![p]),
    }
}

fn address_count(subsets: &[EndpointSubset]) -> usize {
    subsets
        .iter()
        .map(|s| {
            s.addresses.as_ref().map_or(0, Vec::len)
                + s.not_ready_addresses.as_ref().map_or(0, Vec::len)
        })
        .sum()
}

/// Upstream's `RepackSubsets`: one subset per distinct set of addresses, listing every port
/// they all offer; an address that is not ready on one port is not ready on all.
fn repack_subsets(subsets: Vec<EndpointSubset>) -> Vec<EndpointSubset> {
    type AddressKey = (String, Option<String>);
    let mut addresses: BTreeMap<AddressKey, EndpointAddress> = BTreeMap::new();
    let mut ports: Vec<(Option<EndpointPort>, BTreeMap<AddressKey, bool>)> = Vec::new();
    for subset in subsets {
        let port = subset.ports.and_then(|p| p.into_iter().next());
        let index = match ports.iter().position(|(p, _)| *p == port) {
            Some(index) => index,
            None => {
                ports.push((port, BTreeMap::new()));
                ports.len() - 1
            }
        };
        let listed = subset
            .addresses
            .into_iter()
            .flatten()
            .map(|a| (a, true))
            .chain(
                subset
                    .not_ready_addresses
                    .into_iter()
                    .flatten()
                    .map(|a| (a, false)),
            );
        for (address, ready) in listed {
            let key = (
                address.ip.clone(),
                address.target_ref.as_ref().and_then(|r| r.uid.clone()),
            );
            addresses.entry(key.clone()).or_insert(address);
            let state = ports[index].1.entry(key).or_insert(ready);
            *state = *state && ready;
        }
    }
    let mut groups: Vec<(BTreeMap<AddressKey, bool>, Vec<EndpointPort>)> = Vec::new();
    for (port, members) in ports {
        match groups.iter_mut().find(|(m, _)| *m == members) {
            Some((_, group_ports)) => group_ports.extend(port),
            None => groups.push((members, port.into_iter().collect())),
        }
    }
    let mut repacked: Vec<EndpointSubset> = groups
        .into_iter()
        .map(|(members, mut group_ports)| {
            group_ports.sort_by(|a, b| {
                (&a.name, a.port, &a.protocol).cmp(&(&b.name, b.port, &b.protocol))
            });
            let pick = |ready: bool| {
                let list: Vec<EndpointAddress> = members
                    .iter()
                    .filter(|(_, r)| **r == ready)
                    .map(|(k, _)| addresses[k].clone())
                    .collect();
                (!list.is_empty()).then_some(list)
            };
            EndpointSubset {
                addresses: pick(true),
                not_ready_addresses: pick(false),
                ports: (!group_ports.is_empty()).then_some(group_ports),
            }
        })
        .collect();
    repacked.sort_by_key(|s| {
        let first = |list: &Option<Vec<EndpointAddress>>| {
            list.as_ref().and_then(|l| l.first()).map(|a| a.ip.clone())
        };
        (
            first(&s.addresses).or_else(|| first(&s.not_ready_addresses)),
            s.ports
                .as_ref()
                .map(|p| p.iter().map(|p| p.port).collect::<Vec<_>>()),
        )
    });
    repacked
}

/// Keeps at most 1000 addresses, ready ones first, in proportion to each subset's size
/// (upstream's `truncateEndpoints`); returns whether anything was cut.
fn truncate(endpoints: &mut Endpoints) -> bool {
    let Some(subsets) = endpoints.subsets.as_mut() else {
        return false;
    };
    let ready: usize = subsets
        .iter()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
        .sum();
    let not_ready: usize = subsets
        .iter()
        .map(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len))
        .sum();
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = ready > MAX_CAPACITY;
    let (mut room, total) = if truncate_ready {
        (MAX_CAPACITY, ready)
    } else {
        (MAX_CAPACITY - ready, not_ready)
    };
    for subset in subsets.iter_mut() {
        let list = if truncate_ready {
            &mut subset.addresses
        } else {
            &mut subset.not_ready_addresses
        };
        let len = list.as_ref().map_or(0, Vec::len);
        let share = ((len as f64 / total as f64) * MAX_CAPACITY as f64).ceil() as usize;
        let keep = share.min(room).min(len);
        if let Some(list) = list.as_mut() {
            list.truncate(keep);
        }
        room -= keep;
        if truncate_ready {
            subset.not_ready_addresses = None;
        }
    }
    true
}

fn format_rfc3339_nano(time: Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%S%.fZ").to_string()
}

/// Upstream's `TriggerTimeTracker`: the earliest pod or service change not yet reflected
/// in the service's endpoints, remembered per service between syncs.
#[derive(Default)]
pub struct TriggerTimes {
    services: Mutex<HashMap<(String, String), Observed>>,
}

/// The trigger times a service's last sync saw: its creation and its pods' readiness changes.
#[derive(Default)]
struct Observed {
    service: Option<Timestamp>,
    pods: HashMap<String, Timestamp>,
}

impl TriggerTimes {
    /// The trigger time for this sync (the service's creation on its first sync).
    pub fn compute(&self, service: &Service, pods: &[Arc<Pod>]) -> Option<Timestamp> {
        let key = (service.namespace().unwrap_or_default(), service.name_any());
        let mut services = self.services.lock().expect("trigger times");
        let known = services.contains_key(&key);
        let last = services.remove(&key).unwrap_or_default();
        let mut earliest: Option<Timestamp> = None;
        let mut pod_times = HashMap::new();
        for pod in pods {
            let Some(time) = ready_condition(pod)
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t: &Time| t.0)
            else {
                continue;
            };
            pod_times.insert(pod.name_any(), time);
            if last
                .pods
                .get(&pod.name_any())
                .is_none_or(|last| time > *last)
            {
                earliest = Some(earliest.map_or(time, |e| e.min(time)));
            }
        }
        let created = service.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(created) = created.filter(|c| last.service.is_none_or(|last| *c > last)) {
            earliest = Some(earliest.map_or(created, |e| e.min(created)));
        }
        services.insert(
            key,
            Observed {
                service: created,
                pods: pod_times,
            },
        );
        if known {
            earliest
        } else {
            created
        }
    }

    pub fn forget(&self, namespace: &str, name: &str) {
        self.services
            .lock()
            .expect("trigger times")
            .remove(&(namespace.to_string(), name.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};

    use super::*;

    fn address(ip: &str) -> EndpointAddress {
        EndpointAddress {
            ip: ip.into(),
            target_ref: Some(ObjectReference {
                uid: Some(ip.into()),
                ..ObjectReference::default()
            }),
            ..EndpointAddress::default()
        }
    }

    fn port(name: &str, number: i32) -> EndpointPort {
        EndpointPort {
            name: Some(name.into()),
            port: number,
            protocol: Some("TCP".into()),
            app_protocol: None,
        }
    }

    #[test]
    fn repacking_groups_addresses_by_port_and_readiness() {
        let subsets = vec![
            subset(address("10.0.0.2"), Some(port("http", 80)), true),
            subset(address("10.0.0.2"), Some(port("metrics", 9090)), true),
            subset(address("10.0.0.1"), Some(port("http", 80)), true),
            subset(address("10.0.0.1"), Some(port("metrics", 9090)), true),
            subset(address("10.0.0.3"), Some(port("http", 80)), false),
            subset(address("10.0.0.3"), Some(port("metrics", 9090)), false),
        ];
        let repacked = repack_subsets(subsets);
        assert_eq!(repacked.len(), 1);
        let ips: Vec<&str> = repacked[0]
            .addresses
            .as_ref()
            .unwrap()
            .iter()
            .map(|a| a.ip.as_str())
            .collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(
            repacked[0].not_ready_addresses.as_ref().unwrap()[0].ip,
            "10.0.0.3"
        );
        assert_eq!(repacked[0].ports.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn named_target_ports_resolve_by_name_and_protocol() {
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![
                        ContainerPort {
                            name: Some("web".into()),
                            container_port: 8080,
                            protocol: Some("TCP".into()),
                            ..ContainerPort::default()
                        },
                        ContainerPort {
                            name: Some("dns".into()),
                            container_port: 5353,
                            protocol: Some("UDP".into()),
                            ..ContainerPort::default()
                        },
                    ]),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        let service_port = |target: IntOrString, protocol: &str| ServicePort {
            port: 80,
            target_port: Some(target),
            protocol: Some(protocol.into()),
            ..ServicePort::default()
        };
        assert_eq!(
            find_port(
                &pod,
                &service_port(IntOrString::String("web".into()), "TCP")
            ),
            Some(8080)
        );
        assert_eq!(
            find_port(
                &pod,
                &service_port(IntOrString::String("dns".into()), "TCP")
            ),
            None
        );
        assert_eq!(
            find_port(
                &pod,
                &service_port(IntOrString::String("dns".into()), "UDP")
            ),
            Some(5353)
        );
        assert_eq!(
            find_port(&pod, &service_port(IntOrString::Int(9000), "TCP")),
            Some(9000)
        );
    }

    #[test]
    fn truncation_keeps_a_thousand_ready_addresses() {
        let addresses: Vec<EndpointAddress> = (0..1200)
            .map(|i| address(&format!("10.0.{}.{}", i / 250, i % 250)))
            .collect();
        let mut endpoints = Endpoints {
            subsets: Some(vec![EndpointSubset {
                addresses: Some(addresses),
                not_ready_addresses: Some(vec![address("10.9.9.9")]),
                ports: None,
            }]),
            ..Endpoints::default()
        };
        assert!(truncate(&mut endpoints));
        let subset = &endpoints.subsets.unwrap()[0];
        assert_eq!(subset.addresses.as_ref().unwrap().len(), 1000);
        assert!(subset.not_ready_addresses.is_none());
    }
}
