//! The EndpointSlice controller (upstream `pkg/controller/endpointslice`): for every Service
//! with a selector, EndpointSlices (at most `--max-endpoints-per-slice` endpoints each,
//! grouped by resolved ports) listing its pods with the `ready`, `serving` and `terminating`
//! conditions that kube-proxy reads. Slices are labelled with the service name and this
//! controller as manager, owned by the service, and reused in place when pods come and go.
//!
//! Slices get generated names, so a cache that has not yet seen the controller's own writes
//! would make it create duplicates: like upstream's slice tracker, it remembers the
//! generation of each slice it wrote and waits for the cache to catch up before syncing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use super::endpoints::{
    find_port, hostname_for_service, pod_ip_for_service, selected_pods, should_pod_be_in_endpoints,
    watch_pods, TriggerTimes, LAST_CHANGE_TRIGGER_TIME,
};
use super::ControllerContext;
use crate::controller_utils::{controller_ref, is_pod_ready};
use crate::informers::Change;
use crate::runtime::{self, has_cause, Error, Queue, Result};

/// The controller's name (`--controllers`, queue metrics).
pub const NAME: &str = "endpointslice-controller";

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
const HEADLESS: &str = "service.kubernetes.io/headless";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

struct Context {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    triggers: TriggerTimes,
    written: SliceTracker,
    max_per_slice: usize,
}

/// Wires the controller to the shared informers and starts it.
pub fn start(ctx: &ControllerContext) {
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<Pod>();
    let nodes = ctx.informers.get::<Node>();
    let slices = ctx.informers.get::<EndpointSlice>();
    let (queue, triggers) = Queue::new(NAME);
    let context = Arc::new(Context {
        client: ctx.client_for(NAME),
        pods: pods.store(),
        nodes: nodes.store(),
        slices: slices.store(),
        triggers: TriggerTimes::default(),
        written: SliceTracker::default(),
        max_per_slice: ctx.options.max_endpoints_per_slice.clamp(1, 1000),
    });
    tokio::spawn(watch_services(
        queue.clone(),
        services.subscribe(),
        context.clone(),
    ));
    tokio::spawn(watch_pods(
        queue.clone(),
        pods.subscribe(),
        services.store(),
    ));
    tokio::spawn(watch_slices(queue.clone(), slices.subscribe()));
    let controller = runtime::Controller {
        queue,
        triggers,
        store: services.store(),
        caches: vec![
            services.synced(),
            pods.synced(),
            nodes.synced(),
            slices.synced(),
        ],
        workers: ctx.options.concurrent_service_endpoint_syncs,
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
            // Owner references let the garbage collector delete the slices.
            Change::Deleted(gone) => {
                let key = (gone.namespace().unwrap_or_default(), gone.name_any());
                ctx.triggers.forget(&key.0, &key.1);
                ctx.written.forget(&key);
            }
        }
    }
}

/// Slices changed or deleted by someone else are put right.
async fn watch_slices(
    queue: Queue<Service>,
    mut changes: UnboundedReceiver<Change<EndpointSlice>>,
) {
    while let Some(change) = changes.next().await {
        let slice = match change {
            Change::Applied { new, .. } => new,
            Change::Deleted(gone) => gone,
        };
        if slice.labels().get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY) {
            continue;
        }
        if let Some(service) = slice.labels().get(SERVICE_NAME_LABEL) {
            queue.add(ObjectRef::new(service).within(&slice.namespace().unwrap_or_default()));
        }
    }
}

/// The generations of the slices this controller wrote per service (`None`: deleted), so a
/// sync never acts on a cache older than its own writes.
#[derive(Default)]
struct SliceTracker {
    services: Mutex<HashMap<ServiceKey, HashMap<String, Option<i64>>>>,
}

/// A service's namespace and name.
type ServiceKey = (String, String);

impl SliceTracker {
    fn stale(&self, key: &ServiceKey, slices: &Store<EndpointSlice>) -> bool {
        let services = self.services.lock().expect("tracker");
        let Some(written) = services.get(key) else {
            return false;
        };
        written.iter().any(|(name, generation)| {
            let cached = slices.get(&ObjectRef::new(name).within(&key.0));
            match generation {
                Some(generation) => {
                    cached.is_none_or(|s| s.metadata.generation.unwrap_or(0) < *generation)
                }
                None => cached.is_some(),
            }
        })
    }

    fn record(&self, key: &ServiceKey, name: String, generation: Option<i64>) {
        self.services
            .lock()
            .expect("tracker")
            .entry(key.clone())
            .or_default()
            .insert(name, generation);
    }

    /// Forgets writes the cache has caught up with.
    fn settle(&self, key: &ServiceKey, slices: &Store<EndpointSlice>) {
        if let Some(written) = self.services.lock().expect("tracker").get_mut(key) {
            written.retain(|name, generation| {
                let cached = slices.get(&ObjectRef::new(name).within(&key.0));
                match generation {
                    Some(generation) => {
                        cached.is_none_or(|s| s.metadata.generation.unwrap_or(0) < *generation)
                    }
                    None => cached.is_some(),
                }
            });
        }
    }

    fn forget(&self, key: &ServiceKey) {
        self.services.lock().expect("tracker").remove(key);
    }
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let key = (namespace.clone(), name.clone());
    let spec = service.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") || spec.selector.is_none() {
        return Ok(Action::await_change());
    }
    if ctx.written.stale(&key, &ctx.slices) {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    ctx.written.settle(&key, &ctx.slices);
    let pods = selected_pods(&ctx.pods, &service);
    let trigger_time = ctx.triggers.compute(&service, &pods);
    let address_type = match spec
        .ip_families
        .as_ref()
        .and_then(|f| f.first())
        .map(String::as_str)
    {
        Some("IPv6") => "IPv6",
        _ => "IPv4",
    };
    // Desired endpoints, grouped by the ports they resolve to.
    let mut groups: Vec<(Vec<EndpointPort>, Vec<Endpoint>)> = Vec::new();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    for pod in &pods {
        if !should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let Some(ip) = pod_ip_for_service(pod, &service) else {
            continue;
        };
        let mut ports: Vec<EndpointPort> = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|port| {
                Some(EndpointPort {
                    name: Some(port.name.clone().unwrap_or_default()),
                    port: Some(find_port(pod, port)?),
                    protocol: Some(port.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: port.app_protocol.clone(),
                })
            })
            .collect();
        ports.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let serving = publish_not_ready || is_pod_ready(pod);
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let zone = node_name
            .as_ref()
            .and_then(|n| ctx.nodes.get(&ObjectRef::new(n)))
            .and_then(|n| n.labels().get(ZONE_LABEL).cloned());
        let endpoint = Endpoint {
            addresses: vec![ip],
            conditions: Some(EndpointConditions {
                ready: Some(serving && (!terminating || publish_not_ready)),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname: hostname_for_service(pod, &service),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.namespace(),
                name: Some(pod.name_any()),
                uid: pod.uid(),
                ..ObjectReference::default()
            }),
            node_name,
            zone,
            ..Endpoint::default()
        };
        match groups.iter_mut().find(|(p, _)| *p == ports) {
            Some((_, endpoints)) => endpoints.push(endpoint),
            None => groups.push((ports, vec![endpoint])),
        }
    }
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    labels.retain(|k, _| k != SERVICE_NAME_LABEL && k != MANAGED_BY_LABEL && k != HEADLESS);
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    if spec.cluster_ip.as_deref() == Some("None") {
        labels.insert(HEADLESS.into(), String::new());
    }
    let existing: Vec<Arc<EndpointSlice>> = ctx
        .slices
        .state()
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|s| {
            s.labels().get(SERVICE_NAME_LABEL) == Some(&name)
                && s.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        })
        .collect();
    let plan = plan_slices(&existing, groups, address_type, ctx.max_per_slice);
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &namespace);
    let trigger = trigger_time.map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.fZ").to_string());
    for Planned {
        current,
        ports,
        endpoints,
    } in plan.keep
    {
        let mut slice = match &current {
            Some(current) => (**current).clone(),
            None => EndpointSlice {
                metadata: ObjectMeta {
                    generate_name: Some(format!("{name}-")),
                    namespace: Some(namespace.clone()),
                    owner_references: Some(vec![controller_ref(&*service)]),
                    ..ObjectMeta::default()
                },
                address_type: address_type.into(),
                ..EndpointSlice::default()
            },
        };
        let unchanged = current.is_some()
            && slice.endpoints == endpoints
            && slice.ports.clone().unwrap_or_default() == ports
            && slice.metadata.labels.as_ref() == Some(&labels);
        if unchanged {
            continue;
        }
        slice.endpoints = endpoints;
        slice.ports = Some(ports);
        slice.metadata.labels = Some(labels.clone());
        let annotations = slice.metadata.annotations.get_or_insert_with(BTreeMap::new);
        match &trigger {
            Some(time) => annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), time.clone()),
            None => annotations.remove(LAST_CHANGE_TRIGGER_TIME),
        };
        let written = match &current {
            Some(_) => {
                api.replace(&slice.name_any(), &PostParams::default(), &slice)
                    .await
            }
            None => api.create(&PostParams::default(), &slice).await,
        };
        match written {
            Ok(written) => {
                ctx.written
                    .record(&key, written.name_any(), written.metadata.generation)
            }
            Err(error) if current.is_none() && has_cause(&error, "NamespaceTerminating") => {
                return Ok(Action::await_change())
            }
            Err(error) => return Err(Error::from(error)),
        }
    }
    for gone in plan.delete {
        match api.delete(&gone.name_any(), &DeleteParams::default()).await {
            Ok(_) => ctx.written.record(&key, gone.name_any(), None),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(Action::await_change())
}

/// Slices to write (existing ones reused first, in place) and slices to delete.
struct Plan {
    keep: Vec<Planned>,
    delete: Vec<Arc<EndpointSlice>>,
}

/// One slice to write: the existing one to update (or none: create one) and its content.
struct Planned {
    current: Option<Arc<EndpointSlice>>,
    ports: Vec<EndpointPort>,
    endpoints: Vec<Endpoint>,
}

/// Distributes each port group's endpoints over the slices already carrying those ports,
/// keeping endpoints where they are, filling free room, then opening new slices; a service
/// without endpoints keeps one empty placeholder slice, as upstream.
fn plan_slices(
    existing: &[Arc<EndpointSlice>],
    groups: Vec<(Vec<EndpointPort>, Vec<Endpoint>)>,
    address_type: &str,
    max: usize,
) -> Plan {
    let mut unused: Vec<Arc<EndpointSlice>> = existing
        .iter()
        .filter(|s| s.address_type == address_type)
        .cloned()
        .collect();
    let mut delete: Vec<Arc<EndpointSlice>> = existing
        .iter()
        .filter(|s| s.address_type != address_type)
        .cloned()
        .collect();
    let mut keep = Vec::new();
    let identity = |e: &Endpoint| {
        (
            e.addresses.clone(),
            e.target_ref.as_ref().and_then(|r| r.uid.clone()),
        )
    };
    for (ports, mut desired) in groups {
        desired.sort_by(|a, b| {
            a.target_ref
                .as_ref()
                .and_then(|r| r.name.clone())
                .cmp(&b.target_ref.as_ref().and_then(|r| r.name.clone()))
        });
        let (candidates, rest): (Vec<_>, Vec<_>) = unused
            .into_iter()
            .partition(|s| s.ports.clone().unwrap_or_default() == ports);
        unused = rest;
        let mut slots: Vec<(Arc<EndpointSlice>, Vec<Endpoint>)> = Vec::new();
        for slice in candidates {
            let staying: Vec<Endpoint> = slice
                .endpoints
                .iter()
                .filter_map(|old| {
                    let position = desired.iter().position(|d| identity(d) == identity(old))?;
                    Some(desired.remove(position))
                })
                .take(max)
                .collect();
            slots.push((slice, staying));
        }
        for (_, endpoints) in slots.iter_mut() {
            while endpoints.len() < max && !desired.is_empty() {
                endpoints.push(desired.remove(0));
            }
        }
        for (slice, endpoints) in slots {
            if endpoints.is_empty() {
                delete.push(slice);
            } else {
                keep.push(Planned {
                    current: Some(slice),
                    ports: ports.clone(),
                    endpoints,
                });
            }
        }
        while !desired.is_empty() {
            let chunk: Vec<Endpoint> = desired.drain(..desired.len().min(max)).collect();
            keep.push(Planned {
                current: None,
                ports: ports.clone(),
                endpoints: chunk,
            });
        }
    }
    delete.extend(unused);
    if keep.is_empty() {
        // The placeholder: reuse an existing empty slice if there is one.
        let placeholder = delete.iter().position(|s| {
            s.endpoints.is_empty()
                && s.ports.as_ref().is_none_or(|p| p.is_empty())
                && s.address_type == address_type
        });
        keep.push(Planned {
            current: placeholder.map(|i| delete.remove(i)),
            ports: Vec::new(),
            endpoints: Vec::new(),
        });
    }
    Plan { keep, delete }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str) -> Endpoint {
        Endpoint {
            addresses: vec![format!("10.0.0.{}", name.len())],
            target_ref: Some(ObjectReference {
                name: Some(name.into()),
                uid: Some(name.into()),
                ..ObjectReference::default()
            }),
            ..Endpoint::default()
        }
    }

    fn port(number: i32) -> Vec<EndpointPort> {
        vec![EndpointPort {
            name: Some(String::new()),
            port: Some(number),
            protocol: Some("TCP".into()),
            app_protocol: None,
        }]
    }

    fn slice(name: &str, ports: Vec<EndpointPort>, endpoints: Vec<Endpoint>) -> Arc<EndpointSlice> {
        Arc::new(EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            address_type: "IPv4".into(),
            ports: Some(ports),
            endpoints,
        })
    }

    #[test]
    fn endpoints_stay_in_their_slice_and_new_ones_fill_room() {
        let existing = vec![slice("s1", port(80), vec![endpoint("a"), endpoint("bb")])];
        let plan = plan_slices(
            &existing,
            vec![(
                port(80),
                vec![endpoint("ccc"), endpoint("bb"), endpoint("dddd")],
            )],
            "IPv4",
            3,
        );
        assert!(plan.delete.is_empty());
        assert_eq!(plan.keep.len(), 1);
        let names: Vec<String> = plan.keep[0]
            .endpoints
            .iter()
            .map(|e| e.target_ref.as_ref().unwrap().name.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            ["bb", "ccc", "dddd"],
            "a is gone, bb stays, the others fill the room"
        );
    }

    #[test]
    fn overflow_opens_new_slices_and_changed_ports_replace_old_ones() {
        let existing = vec![slice("old", port(8080), vec![endpoint("a")])];
        let desired: Vec<Endpoint> = ["a", "bb", "ccc"].iter().map(|n| endpoint(n)).collect();
        let plan = plan_slices(&existing, vec![(port(80), desired)], "IPv4", 2);
        assert_eq!(plan.delete.len(), 1);
        assert_eq!(
            plan.keep
                .iter()
                .map(|k| k.endpoints.len())
                .collect::<Vec<_>>(),
            [2, 1]
        );
        assert!(plan.keep.iter().all(|k| k.current.is_none()));
    }

    #[test]
    fn a_service_without_endpoints_keeps_one_placeholder() {
        let plan = plan_slices(&[], Vec::new(), "IPv4", 100);
        assert_eq!(plan.keep.len(), 1);
        assert!(plan.keep[0].endpoints.is_empty() && plan.keep[0].ports.is_empty());
        let placeholder = slice("p", Vec::new(), Vec::new());
        let plan = plan_slices(&[placeholder], Vec::new(), "IPv4", 100);
        assert!(plan.keep[0].current.is_some() && plan.delete.is_empty());
    }
}
