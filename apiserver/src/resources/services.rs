//! Services (`v1`): a stable virtual IP and ports in front of a set of pods. Beyond
//! upstream's defaults and validation, the API server itself hands out each service's
//! ClusterIP and NodePorts (see [`super::allocator`]) and gives them back when the service
//! goes or stops needing them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{
    ClientIPConfig, LoadBalancerStatus, Service, ServicePort, ServiceSpec, ServiceStatus,
    SessionAffinityConfig,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use store::Store;

use super::allocator::{AllocError, Allocator, PortRange};
use super::podspec::{port_name_errors, PORT_RANGE};
use super::workload::go_strings;
use crate::error::{ApiError, ApiResult, Cause, Target};
use crate::registry::table::{age, Cell, Column};
use crate::registry::{stored, validation, Description, NameRule, Strategy};

/// Serves services, allocating from the cluster's service IP and node port ranges.
pub struct Services {
    ips: Allocator,
    node_ports: Allocator,
    /// `IPv4` or `IPv6`: the family of `--service-cluster-ip-range`.
    family: &'static str,
}

impl Services {
    /// Services allocating from `ip_range` and `node_port_range`, with reservations kept in
    /// `store` next to the services themselves.
    pub fn new(store: Arc<dyn Store>, ip_range: IpNet, node_port_range: PortRange) -> Self {
        Services {
            ips: Allocator::ips(store.clone(), ip_range),
            node_ports: Allocator::ports(store, node_port_range),
            family: family_of_net(&ip_range),
        }
    }

    /// Makes `ip` the reservation of `service` whoever held it: the `kubernetes` service's
    /// address is fixed, and a start interrupted between reserving and storing it must not
    /// lock it out forever.
    pub async fn claim_cluster_ip(&self, ip: &str, service: &Service) -> ApiResult<()> {
        self.ips
            .claim_over(ip, &owner(service))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// Reserves the values of every stored service that lacks its reservation (a store
    /// written by another API server, or restored from a backup), so they are never handed
    /// out twice. Runs at start-up, as upstream's repair controllers do periodically.
    pub async fn reserve_stored(&self, store: &dyn Store) -> ApiResult<()> {
        let listed = store
            .list(b"/services/specs/", store::ListOptions::default())
            .await?;
        for kv in listed.kvs {
            let Ok(service) = stored::decode::<Service>(&kv.value, kv.mod_revision) else {
                continue;
            };
            let owner = owner(&service);
            let held = Held::of(&service);
            let reservations = held
                .ips
                .iter()
                .map(|ip| (&self.ips, ip))
                .chain(held.ports.iter().map(|port| (&self.node_ports, port)));
            for (allocator, value) in reservations {
                match allocator.ensure(value, &owner).await {
                    Ok(true) | Err(AllocError::Rejected(_)) => {}
                    Ok(false) => {
                        tracing::warn!(service = %owner, value, "service value reserved by another service")
                    }
                    Err(error) => {
                        return Err(internal("cannot reserve a stored service's values", error))
                    }
                }
            }
        }
        Ok(())
    }

    /// Allocates what `service` needs and `old` (the stored version, for an update) does
    /// not hold, recording each value in `taken` so a failure can give them back.
    async fn allocate(
        &self,
        service: &mut Service,
        old: Option<&Service>,
        taken: &mut Held,
    ) -> ApiResult<()> {
        let owner = owner(service);
        let name = service.metadata.name.clone().unwrap_or_default();
        let invalid = |cause: Cause| ApiError::Invalid {
            target: Target {
                group: String::new(),
                resource: "services".into(),
                kind: "Service".into(),
                name: name.clone(),
            },
            causes: vec![cause],
        };
        let old_spec = old.and_then(|o| o.spec.as_ref());
        let spec = service.spec.get_or_insert_with(ServiceSpec::default);

        if needs_cluster_ip(spec)
            && !is_headless(spec)
            && old_spec.is_none_or(|o| !needs_cluster_ip(o))
        {
            let requested = spec
                .cluster_ips
                .as_ref()
                .and_then(|ips| ips.first())
                .or(spec.cluster_ip.as_ref())
                .filter(|ip| !ip.is_empty())
                .cloned();
            let ip = match requested {
                Some(ip) => self.ips.allocate(&ip, &owner).await.map_err(|e| match e {
                    AllocError::Store(e) => e.into(),
                    e => invalid(Cause::invalid_printed(
                        "spec.clusterIPs",
                        &go_strings(spec.cluster_ips.as_deref()),
                        format!("failed to allocate IP {ip}: {e}"),
                    )),
                })?,
                None => self
                    .ips
                    .allocate_next(&owner)
                    .await
                    .map_err(|e| internal("failed to allocate a serviceIP", e))?,
            };
            taken.ips.insert(ip.clone());
            if spec.cluster_ip.as_deref().unwrap_or("").is_empty() {
                spec.cluster_ip = Some(ip.clone());
            }
            if spec.cluster_ips.as_ref().is_none_or(|ips| ips.is_empty()) {
                spec.cluster_ips = Some(vec![ip]);
            }
        }

        if needs_node_ports(spec) {
            let held_before: HashSet<i32> = old_spec
                .filter(|o| needs_node_ports(o))
                .map(node_ports_of)
                .unwrap_or_default();
            let automatic = should_allocate_node_ports(spec);
            let ports = spec.ports.get_or_insert_with(Vec::new);
            // A service port number served over two protocols shares one node port.
            let mut by_port: HashMap<i32, i32> = HashMap::new();
            for i in 0..ports.len() {
                let requested = ports[i].node_port.unwrap_or(0);
                let shared = if old.is_none() {
                    by_port.get(&ports[i].port).copied().or_else(|| {
                        ports
                            .iter()
                            .filter(|p| p.port == ports[i].port)
                            .find_map(|p| p.node_port.filter(|n| *n != 0))
                    })
                } else {
                    None
                };
                let wanted = if requested != 0 {
                    Some(requested)
                } else {
                    shared
                };
                let node_port = match wanted {
                    Some(port)
                        if held_before.contains(&port)
                            || taken.ports.contains(&port.to_string()) =>
                    {
                        port
                    }
                    Some(port) => {
                        let value = self
                            .node_ports
                            .allocate(&port.to_string(), &owner)
                            .await
                            .map_err(|e| match e {
                                AllocError::Store(e) => e.into(),
                                e => invalid(Cause::invalid(
                                    format!("spec.ports[{i}].nodePort"),
                                    &Value::from(port),
                                    e.to_string(),
                                )),
                            })?;
                        taken.ports.insert(value);
                        port
                    }
                    None if !automatic => continue,
                    None => {
                        let value = self
                            .node_ports
                            .allocate_next(&owner)
                            .await
                            .map_err(|e| internal("failed to allocate a nodePort", e))?;
                        let port = value.parse().unwrap_or(0);
                        taken.ports.insert(value);
                        port
                    }
                };
                ports[i].node_port = Some(node_port);
                by_port.insert(ports[i].port, node_port);
            }
        }

        if needs_health_check(spec) && old_spec.is_none_or(|o| !needs_health_check(o)) {
            let value = match spec.health_check_node_port.filter(|p| *p != 0) {
                Some(port) => self
                    .node_ports
                    .allocate(&port.to_string(), &owner)
                    .await
                    .map_err(|e| {
                        internal(
                            &format!("failed to allocate requested HealthCheck NodePort {port}"),
                            e,
                        )
                    })?,
                None => self
                    .node_ports
                    .allocate_next(&owner)
                    .await
                    .map_err(|e| internal("failed to allocate a HealthCheck NodePort 0", e))?,
            };
            spec.health_check_node_port = value.parse().ok();
            taken.ports.insert(value);
        }
        Ok(())
    }

    /// Gives back every value in `held` reserved by `owner`.
    async fn free(&self, held: &Held, owner: &str) {
        for ip in &held.ips {
            self.ips.release(ip, owner).await;
        }
        for port in &held.ports {
            self.node_ports.release(port, owner).await;
        }
    }

    /// `admit_create`/`admit_update`: allocate, or give back what this attempt took.
    async fn admit(&self, service: &mut Service, old: Option<&Service>) -> ApiResult<()> {
        let mut taken = Held::default();
        let result = self.allocate(service, old, &mut taken).await;
        if result.is_err() {
            self.free(&taken, &owner(service)).await;
        }
        result
    }
}

/// What a service holds from the ranges, in the canonical text of the reservation keys.
#[derive(Debug, Default, PartialEq, Eq)]
struct Held {
    ips: BTreeSet<String>,
    ports: BTreeSet<String>,
}

impl Held {
    fn of(service: &Service) -> Held {
        let Some(spec) = &service.spec else {
            return Held::default();
        };
        let mut held = Held::default();
        if needs_cluster_ip(spec) && !is_headless(spec) {
            for ip in spec.cluster_ips.iter().flatten() {
                if let Ok(ip) = ip.parse::<IpAddr>() {
                    held.ips.insert(ip.to_string());
                }
            }
        }
        if needs_node_ports(spec) {
            held.ports
                .extend(node_ports_of(spec).into_iter().map(|p| p.to_string()));
        }
        if needs_health_check(spec) {
            held.ports.extend(
                spec.health_check_node_port
                    .filter(|p| *p != 0)
                    .map(|p| p.to_string()),
            );
        }
        held
    }

    fn without(self, other: &Held) -> Held {
        Held {
            ips: self.ips.difference(&other.ips).cloned().collect(),
            ports: self.ports.difference(&other.ports).cloned().collect(),
        }
    }
}

/// Who a reservation belongs to: the service's namespace, name and uid, so a service
/// re-created under the same name never frees its predecessor's values or vice versa.
fn owner(service: &Service) -> String {
    let meta = &service.metadata;
    format!(
        "{}/{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or(""),
        meta.uid.as_deref().unwrap_or("")
    )
}

fn internal(what: &str, error: AllocError) -> ApiError {
    match error {
        AllocError::Store(error) => error.into(),
        error => ApiError::Internal(format!("Internal error occurred: {what}: {error}")),
    }
}

fn family_of_net(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "IPv4",
        IpNet::V6(_) => "IPv6",
    }
}

fn family_of(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn service_type(spec: &ServiceSpec) -> &str {
    spec.type_.as_deref().unwrap_or("")
}

fn needs_cluster_ip(spec: &ServiceSpec) -> bool {
    service_type(spec) != "ExternalName"
}

/// `clusterIP: None`: DNS answers with the pods' addresses, no virtual IP is allocated.
fn is_headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ips
        .as_ref()
        .and_then(|ips| ips.first())
        .or(spec.cluster_ip.as_ref())
        .is_some_and(|ip| ip == "None")
}

fn needs_node_ports(spec: &ServiceSpec) -> bool {
    matches!(service_type(spec), "NodePort" | "LoadBalancer")
}

fn should_allocate_node_ports(spec: &ServiceSpec) -> bool {
    match service_type(spec) {
        "NodePort" => true,
        "LoadBalancer" => spec.allocate_load_balancer_node_ports != Some(false),
        _ => false,
    }
}

fn externally_accessible(spec: &ServiceSpec) -> bool {
    needs_node_ports(spec)
        || (service_type(spec) == "ClusterIP"
            && spec
                .external_ips
                .as_ref()
                .is_some_and(|ips| !ips.is_empty()))
}

fn needs_health_check(spec: &ServiceSpec) -> bool {
    service_type(spec) == "LoadBalancer" && spec.external_traffic_policy.as_deref() == Some("Local")
}

fn node_ports_of(spec: &ServiceSpec) -> HashSet<i32> {
    spec.ports
        .iter()
        .flatten()
        .filter_map(|p| p.node_port)
        .filter(|p| *p != 0)
        .collect()
}

fn cluster_ips(spec: &ServiceSpec) -> &[String] {
    spec.cluster_ips.as_deref().unwrap_or_default()
}

#[async_trait]
impl Strategy for Services {
    type Object = Service;
    const RESERVES: bool = true;

    fn describe(&self) -> Description {
        Description {
            short_names: &["svc"],
            categories: &["all"],
            status: true,
            return_deleted_object: true,
            name_rule: NameRule::Dns1035Label,
            field_selectors: &["spec.clusterIP", "spec.type"],
            storage_path: Some("services/specs"),
            ..Description::default()
        }
    }

    /// Upstream's `SetDefaults_Service`, then the IP family fields its allocator fills in.
    fn default_fields(&self, service: &mut Service) {
        let spec = service.spec.get_or_insert_with(ServiceSpec::default);
        let affinity = spec
            .session_affinity
            .get_or_insert_with(|| "None".into())
            .clone();
        if affinity == "None" {
            spec.session_affinity_config = None;
        } else if affinity == "ClientIP" {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            if timeout.is_none() {
                spec.session_affinity_config = Some(SessionAffinityConfig {
                    client_ip: Some(ClientIPConfig {
                        timeout_seconds: Some(10800),
                    }),
                });
            }
        }
        spec.type_.get_or_insert_with(|| "ClusterIP".into());
        for port in spec.ports.iter_mut().flatten() {
            port.protocol.get_or_insert_with(|| "TCP".into());
            let unset = match &port.target_port {
                None => true,
                Some(IntOrString::Int(0)) => true,
                Some(IntOrString::String(s)) => s.is_empty(),
                Some(IntOrString::Int(_)) => false,
            };
            if unset {
                port.target_port = Some(IntOrString::Int(port.port));
            }
        }
        if externally_accessible(spec)
            && spec
                .external_traffic_policy
                .as_deref()
                .unwrap_or("")
                .is_empty()
        {
            spec.external_traffic_policy = Some("Cluster".into());
        }
        if spec.internal_traffic_policy.is_none()
            && matches!(
                service_type(spec),
                "ClusterIP" | "NodePort" | "LoadBalancer"
            )
        {
            spec.internal_traffic_policy = Some("Cluster".into());
        }
        if service_type(spec) == "LoadBalancer" {
            spec.allocate_load_balancer_node_ports.get_or_insert(true);
            let ingress = service
                .status
                .as_mut()
                .and_then(|s| s.load_balancer.as_mut())
                .and_then(|lb| lb.ingress.as_mut());
            for ingress in ingress.into_iter().flatten() {
                if ingress.ip.as_deref().is_some_and(|ip| !ip.is_empty())
                    && ingress.ip_mode.is_none()
                {
                    ingress.ip_mode = Some("VIP".into());
                }
            }
        }
        self.default_ip_families(spec);
    }

    fn prepare_create(&self, service: &mut Service) {
        service.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus::default()),
            conditions: None,
        });
        if let Some(spec) = &mut service.spec {
            if spec.cluster_ip.as_deref().is_some_and(|ip| !ip.is_empty())
                && spec.cluster_ips.as_ref().is_none_or(|ips| ips.is_empty())
            {
                spec.cluster_ips = spec.cluster_ip.clone().map(|ip| vec![ip]);
            }
        }
    }

    /// Keeps what was allocated when the client left it out (`kubectl replace` of a file
    /// without `clusterIP`), keeps `clusterIP` and `clusterIPs` in step, and drops what a
    /// type change made meaningless, as upstream's service REST does.
    fn prepare_update(&self, new: &mut Service, old: &Service) {
        let Some(old_spec) = &old.spec else { return };
        let spec = new.spec.get_or_insert_with(ServiceSpec::default);
        patch_allocated_values(spec, old_spec);
        normalize_cluster_ips(spec, old_spec);
        drop_type_dependent_fields(spec, old_spec);
        if needs_cluster_ip(spec) && spec.ip_family_policy.is_none() {
            spec.ip_family_policy = old_spec.ip_family_policy.clone();
        }
        if service_type(old_spec) == "LoadBalancer" && service_type(spec) != "LoadBalancer" {
            if let Some(status) = &mut new.status {
                status.load_balancer = Some(LoadBalancerStatus::default());
            }
        }
    }

    fn validate(&self, service: &Service) -> Vec<Cause> {
        let default_spec = ServiceSpec::default();
        let spec = service.spec.as_ref().unwrap_or(&default_spec);
        let mut causes = validate_spec(spec);
        causes.extend(self.validate_families(spec));
        causes
    }

    fn validate_update(&self, new: &Service, old: &Service) -> Vec<Cause> {
        let mut causes = Vec::new();
        if let (Some(spec), Some(old_spec)) = (&new.spec, &old.spec) {
            causes.extend(validate_cluster_ips_update(spec, old_spec));
            causes.extend(validate_families_update(spec, old_spec));
            if service_type(spec) == "LoadBalancer"
                && service_type(old_spec) == "LoadBalancer"
                && spec.load_balancer_class != old_spec.load_balancer_class
            {
                causes.push(Cause::invalid(
                    "spec.loadBalancerClass",
                    &spec
                        .load_balancer_class
                        .as_deref()
                        .map_or(Value::Null, Value::from),
                    "may not change once set",
                ));
            }
            if needs_health_check(spec)
                && needs_health_check(old_spec)
                && spec.health_check_node_port != old_spec.health_check_node_port
            {
                causes.push(Cause::forbidden(
                    "spec.healthCheckNodePort",
                    "field is immutable",
                ));
            }
        }
        causes.extend(self.validate(new));
        causes
    }

    async fn admit_create(&self, service: &mut Service) -> ApiResult<()> {
        self.admit(service, None).await
    }

    async fn admit_update(&self, new: &mut Service, old: &Service) -> ApiResult<()> {
        self.admit(new, Some(old)).await
    }

    async fn release(&self, gone: &Service, kept: Option<&Service>) {
        let held = Held::of(gone);
        let held = match kept {
            Some(kept) => held.without(&Held::of(kept)),
            None => held,
        };
        self.free(&held, &owner(gone)).await;
    }

    fn fields(&self, service: &Service) -> Vec<(&'static str, String)> {
        let spec = service.spec.as_ref();
        vec![
            (
                "spec.clusterIP",
                spec.and_then(|s| s.cluster_ip.clone()).unwrap_or_default(),
            ),
            (
                "spec.type",
                spec.and_then(|s| s.type_.clone()).unwrap_or_default(),
            ),
        ]
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Type", "string", TYPE),
            Column::new("Cluster-IP", "string", CLUSTER_IP),
            Column::new("External-IP", "string", EXTERNAL_IPS),
            Column::new("Port(s)", "string", PORTS),
            Column::age(),
            Column::new("Selector", "string", SELECTOR).wide(),
        ]
    }

    fn cells(&self, service: &Service) -> Vec<Cell> {
        let default_spec = ServiceSpec::default();
        let spec = service.spec.as_ref().unwrap_or(&default_spec);
        let ports = port_cell(spec.ports.as_deref().unwrap_or_default());
        vec![
            Cell::from(service.metadata.name.clone().unwrap_or_default()),
            Cell::from(service_type(spec)),
            Cell::from(
                cluster_ips(spec)
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "<none>".into()),
            ),
            Cell::from(external_ip_cell(service)),
            Cell::from(if ports.is_empty() {
                "<none>".to_string()
            } else {
                ports
            }),
            age(&service.metadata),
            Cell::from(labels_cell(spec.selector.as_ref())),
        ]
    }
}

impl Services {
    /// The IP family fields upstream's allocator initialises before validating: a policy
    /// (SingleStack, or RequireDualStack for a selectorless headless service), families
    /// inferred from requested IPs, else the cluster's family.
    fn default_ip_families(&self, spec: &mut ServiceSpec) {
        if !needs_cluster_ip(spec) {
            return;
        }
        let headless_selectorless =
            is_headless(spec) && spec.selector.as_ref().is_none_or(|s| s.is_empty());
        if spec.ip_family_policy.is_none() {
            spec.ip_family_policy = Some(
                if headless_selectorless {
                    "RequireDualStack"
                } else {
                    "SingleStack"
                }
                .into(),
            );
        }
        let requested: Vec<IpAddr> = cluster_ips(spec)
            .iter()
            .take_while(|ip| *ip != "None")
            .filter_map(|ip| ip.parse().ok())
            .collect();
        if requested.iter().any(|ip| family_of(ip) != self.family) {
            return;
        }
        let families = spec.ip_families.get_or_insert_with(Vec::new);
        for ip in requested.iter().skip(families.len()) {
            families.push(family_of(ip).into());
        }
        if families.is_empty() {
            families.push(self.family.into());
        }
        if headless_selectorless
            && families.len() < 2
            && spec.ip_family_policy.as_deref() != Some("SingleStack")
        {
            let other = if families[0] == "IPv4" {
                "IPv6"
            } else {
                "IPv4"
            };
            families.push(other.into());
        }
    }

    /// Families and policies this single-stack cluster cannot serve.
    fn validate_families(&self, spec: &ServiceSpec) -> Vec<Cause> {
        let mut causes = Vec::new();
        if !needs_cluster_ip(spec) {
            return causes;
        }
        let ips = cluster_ips(spec);
        for (i, ip) in ips.iter().enumerate() {
            if let Ok(ip) = ip.parse::<IpAddr>() {
                if family_of(&ip) != self.family {
                    causes.push(Cause::invalid_printed(
                        format!("spec.clusterIPs[{i}]"),
                        &go_strings(Some(ips)),
                        format!("{} is not configured on this cluster", family_of(&ip)),
                    ));
                }
            }
        }
        if !causes.is_empty()
            || (is_headless(spec) && spec.selector.as_ref().is_none_or(|s| s.is_empty()))
        {
            return causes;
        }
        if spec.ip_family_policy.as_deref() == Some("RequireDualStack") {
            causes.push(Cause::invalid(
                "spec.ipFamilyPolicy",
                &Value::from("RequireDualStack"),
                "this cluster is not configured for dual-stack services",
            ));
        }
        for (i, family) in spec.ip_families.iter().flatten().enumerate() {
            if family != self.family && ["IPv4", "IPv6"].contains(&family.as_str()) {
                causes.push(Cause::invalid(
                    format!("spec.ipFamilies[{i}]"),
                    &Value::from(family.as_str()),
                    "not configured on this cluster",
                ));
            }
        }
        causes
    }
}

/// Upstream's `patchAllocatedValues`: an update that leaves out the ClusterIP or a
/// NodePort keeps the allocated one.
fn patch_allocated_values(spec: &mut ServiceSpec, old: &ServiceSpec) {
    if needs_cluster_ip(old) && needs_cluster_ip(spec) {
        if spec.cluster_ip.as_deref().unwrap_or("").is_empty() {
            spec.cluster_ip = old.cluster_ip.clone();
        }
        if cluster_ips(spec).is_empty() && !cluster_ips(old).is_empty() {
            spec.cluster_ips = old.cluster_ips.clone();
        }
    }
    if needs_node_ports(old) && needs_node_ports(spec) {
        let in_both: HashSet<i32> = node_ports_of(old)
            .intersection(&node_ports_of(spec))
            .copied()
            .collect();
        let by_name: HashMap<&str, i32> = old
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.as_deref().unwrap_or(""), p.node_port.unwrap_or(0)))
            .collect();
        for port in spec.ports.iter_mut().flatten() {
            if port.node_port.unwrap_or(0) == 0 {
                let previous = by_name
                    .get(port.name.as_deref().unwrap_or(""))
                    .copied()
                    .unwrap_or(0);
                if previous != 0 && !in_both.contains(&previous) {
                    port.node_port = Some(previous);
                }
            }
        }
    }
    if needs_health_check(old)
        && needs_health_check(spec)
        && spec.health_check_node_port.unwrap_or(0) == 0
    {
        spec.health_check_node_port = old.health_check_node_port;
    }
}

/// Upstream's `normalizeClusterIPs` for updates: an old client that only knows `clusterIP`
/// keeps `clusterIPs` in step with it.
fn normalize_cluster_ips(spec: &mut ServiceSpec, old: &ServiceSpec) {
    if !cluster_ips(old).is_empty()
        && cluster_ips(spec).is_empty()
        && old.cluster_ip == spec.cluster_ip
    {
        spec.cluster_ips = old.cluster_ips.clone();
    }
    let (old_ip, new_ip) = (
        old.cluster_ip.as_deref().unwrap_or(""),
        spec.cluster_ip.as_deref().unwrap_or(""),
    );
    if old_ip != new_ip && cluster_ips(old) == cluster_ips(spec) {
        spec.cluster_ips = if !old_ip.is_empty() && new_ip.is_empty() {
            None
        } else {
            Some(vec![new_ip.to_string()])
        };
    }
}

/// Upstream's `dropTypeDependentFields`: switching to a type that does not use a value the
/// client did not touch clears it (so `type: ClusterIP` on a NodePort service just works).
fn drop_type_dependent_fields(spec: &mut ServiceSpec, old: &ServiceSpec) {
    if needs_cluster_ip(old) && !needs_cluster_ip(spec) {
        if cluster_ips(old) == cluster_ips(spec) && old.cluster_ip == spec.cluster_ip {
            spec.cluster_ip = None;
            spec.cluster_ips = None;
        }
        if old.ip_families == spec.ip_families && old.ip_family_policy == spec.ip_family_policy {
            spec.ip_families = None;
            spec.ip_family_policy = None;
        }
    }
    let node_ports = |s: &ServiceSpec| {
        s.ports
            .iter()
            .flatten()
            .map(|p| p.node_port.unwrap_or(0))
            .collect::<Vec<_>>()
    };
    if needs_node_ports(old) && !needs_node_ports(spec) && node_ports(old) == node_ports(spec) {
        for port in spec.ports.iter_mut().flatten() {
            port.node_port = None;
        }
    }
    if needs_health_check(old)
        && !needs_health_check(spec)
        && old.health_check_node_port == spec.health_check_node_port
    {
        spec.health_check_node_port = None;
    }
    if service_type(old) == "LoadBalancer" && service_type(spec) != "LoadBalancer" {
        if spec.allocate_load_balancer_node_ports.is_some()
            && spec.allocate_load_balancer_node_ports == old.allocate_load_balancer_node_ports
        {
            spec.allocate_load_balancer_node_ports = None;
        }
        if spec.load_balancer_class == old.load_balancer_class {
            spec.load_balancer_class = None;
        }
    }
    if externally_accessible(old)
        && !externally_accessible(spec)
        && old.external_traffic_policy == spec.external_traffic_policy
    {
        spec.external_traffic_policy = None;
    }
}

/// Upstream's `ValidateService` (the spec part).
fn validate_spec(spec: &ServiceSpec) -> Vec<Cause> {
    let mut causes = Vec::new();
    let kind = service_type(spec);
    let ports = spec.ports.as_deref().unwrap_or_default();
    let headless = cluster_ips(spec).len() == 1 && cluster_ips(spec)[0] == "None";
    if ports.is_empty() && !headless && kind != "ExternalName" {
        causes.push(Cause::required("spec.ports"));
    }
    match kind {
        "LoadBalancer" | "NodePort" if headless => causes.push(Cause::invalid(
            "spec.clusterIPs[0]",
            &Value::from("None"),
            format!("may not be set to 'None' for {kind} services"),
        )),
        "ExternalName" => {
            for (set, field) in [
                (!cluster_ips(spec).is_empty(), "spec.clusterIPs"),
                (
                    spec.ip_families.as_ref().is_some_and(|f| !f.is_empty()),
                    "spec.ipFamilies",
                ),
                (spec.ip_family_policy.is_some(), "spec.ipFamilyPolicy"),
            ] {
                if set {
                    causes.push(Cause::forbidden(
                        field,
                        "may not be set for ExternalName services",
                    ));
                }
            }
            let name = spec.external_name.as_deref().unwrap_or("");
            let cname = name.strip_suffix('.').unwrap_or(name);
            if cname.is_empty() {
                causes.push(Cause::required("spec.externalName"));
            } else {
                for error in validation::name_errors(cname, NameRule::Subdomain) {
                    causes.push(Cause::invalid(
                        "spec.externalName",
                        &Value::from(cname),
                        error,
                    ));
                }
            }
        }
        _ => {}
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        causes.extend(validate_port(
            port,
            ports.len() > 1,
            &mut names,
            &format!("spec.ports[{i}]"),
        ));
    }
    if spec.selector.is_some() {
        causes.extend(validation::labels(spec.selector.as_ref(), "spec.selector"));
    }
    match spec.session_affinity.as_deref() {
        None | Some("") => causes.push(Cause::required("spec.sessionAffinity")),
        Some("ClientIP") => {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            match timeout {
                Some(t) if t > 0 && t <= 86400 => {}
                Some(t) => causes.push(Cause::invalid(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    &Value::from(t),
                    "must be greater than 0 and less than 86400",
                )),
                None => causes.push(Cause::required(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                )),
            }
        }
        Some("None") => {
            if spec.session_affinity_config.is_some() {
                causes.push(Cause::forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                ));
            }
        }
        Some(other) => causes.push(Cause::unsupported(
            "spec.sessionAffinity",
            &Value::from(other),
            &["ClientIP", "None"],
        )),
    }
    causes.extend(validate_cluster_ips(spec));
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        if ip.parse::<IpAddr>().is_err() {
            causes.push(Cause::invalid(
                format!("spec.externalIPs[{i}]"),
                &Value::from(ip.as_str()),
                INVALID_IP,
            ));
        }
    }
    match kind {
        "" => causes.push(Cause::required("spec.type")),
        "ClusterIP" | "ExternalName" | "LoadBalancer" | "NodePort" => {}
        other => causes.push(Cause::unsupported(
            "spec.type",
            &Value::from(other),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    if kind == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if port.node_port.unwrap_or(0) != 0 {
                causes.push(Cause::forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = HashSet::new();
    let mut port_keys = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let protocol = port.protocol.as_deref().unwrap_or("");
        if let Some(node_port) = port.node_port.filter(|p| *p != 0) {
            if !node_ports.insert((protocol, node_port)) {
                causes.push(Cause::duplicate(
                    format!("spec.ports[{i}].nodePort"),
                    &Value::from(node_port),
                ));
            }
        }
        if !port_keys.insert((protocol, port.port)) {
            causes.push(Cause {
                reason: "FieldValueDuplicate",
                field: format!("spec.ports[{i}]"),
                message: format!(
                    "Duplicate value: core.ServicePort{{Name:\"\", Protocol:{protocol:?}, AppProtocol:(*string)(nil), Port:{}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                    port.port
                ),
            });
        }
    }
    if spec
        .load_balancer_source_ranges
        .as_ref()
        .is_some_and(|r| !r.is_empty())
    {
        if kind != "LoadBalancer" {
            causes.push(Cause::forbidden(
                "spec.LoadBalancerSourceRanges",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, range) in spec
            .load_balancer_source_ranges
            .iter()
            .flatten()
            .enumerate()
        {
            if range.trim().parse::<IpNet>().is_err() {
                causes.push(Cause::invalid(
                    format!("spec.LoadBalancerSourceRanges[{i}]"),
                    &Value::from(range.trim()),
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                ));
            }
        }
    }
    if spec.allocate_load_balancer_node_ports.is_some() && kind != "LoadBalancer" {
        causes.push(Cause::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if spec.load_balancer_class.is_some() && kind != "LoadBalancer" {
        causes.push(Cause::forbidden(
            "spec.loadBalancerClass",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    let policy = spec.external_traffic_policy.as_deref().unwrap_or("");
    if !externally_accessible(spec) {
        if !policy.is_empty() {
            causes.push(Cause::invalid(
                "spec.externalTrafficPolicy",
                &Value::from(policy),
                "may only be set for externally-accessible services",
            ));
        }
    } else if policy.is_empty() {
        causes.push(Cause::required("spec.externalTrafficPolicy"));
    } else if !["Cluster", "Local"].contains(&policy) {
        causes.push(Cause::unsupported(
            "spec.externalTrafficPolicy",
            &Value::from(policy),
            &["Cluster", "Local"],
        ));
    }
    let health = spec.health_check_node_port.unwrap_or(0);
    if !needs_health_check(spec) && health != 0 {
        causes.push(Cause::invalid(
            "spec.healthCheckNodePort",
            &Value::from(health),
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    }
    match spec.internal_traffic_policy.as_deref() {
        None if matches!(kind, "ClusterIP" | "NodePort" | "LoadBalancer") => {
            causes.push(Cause::required("spec.internalTrafficPolicy"))
        }
        Some(p) if !["Cluster", "Local"].contains(&p) => causes.push(Cause::unsupported(
            "spec.internalTrafficPolicy",
            &Value::from(p),
            &["Cluster", "Local"],
        )),
        _ => {}
    }
    if let Some(distribution) = spec
        .traffic_distribution
        .as_deref()
        .filter(|d| *d != "PreferClose")
    {
        causes.push(Cause::unsupported(
            "spec.trafficDistribution",
            &Value::from(distribution),
            &["PreferClose"],
        ));
    }
    causes
}

const INVALID_IP: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// Upstream's `validateServicePort`.
fn validate_port(
    port: &ServicePort,
    name_required: bool,
    names: &mut BTreeSet<String>,
    path: &str,
) -> Vec<Cause> {
    let name = port.name.as_deref().unwrap_or("");
    let mut causes = validation::port_name(name, name_required, path);
    if !name.is_empty() && !names.insert(name.to_string()) {
        causes.push(Cause::duplicate(format!("{path}.name"), &Value::from(name)));
    }
    if !(1..=65535).contains(&port.port) {
        causes.push(Cause::invalid(
            format!("{path}.port"),
            &Value::from(port.port),
            PORT_RANGE,
        ));
    }
    match port.protocol.as_deref().unwrap_or("") {
        "" => causes.push(Cause::required(format!("{path}.protocol"))),
        "SCTP" | "TCP" | "UDP" => {}
        other => causes.push(Cause::unsupported(
            format!("{path}.protocol"),
            &Value::from(other),
            &["SCTP", "TCP", "UDP"],
        )),
    }
    match &port.target_port {
        Some(IntOrString::Int(target)) if !(1..=65535).contains(target) => {
            causes.push(Cause::invalid(
                format!("{path}.targetPort"),
                &Value::from(*target),
                PORT_RANGE,
            ));
        }
        Some(IntOrString::String(target)) => {
            for error in port_name_errors(target) {
                causes.push(Cause::invalid(
                    format!("{path}.targetPort"),
                    &Value::from(target.as_str()),
                    error,
                ));
            }
        }
        _ => {}
    }
    causes
}

/// Upstream's `ValidateServiceClusterIPsRelatedFields` for a single-stack cluster.
fn validate_cluster_ips(spec: &ServiceSpec) -> Vec<Cause> {
    let mut causes = Vec::new();
    if !needs_cluster_ip(spec) {
        return causes;
    }
    let ips = cluster_ips(spec);
    let printed = go_strings(spec.cluster_ips.as_deref());
    match spec.cluster_ip.as_deref().unwrap_or("") {
        "" if !ips.is_empty() => causes.push(Cause::invalid_printed(
            "spec.clusterIPs",
            &printed,
            "must be empty when `clusterIP` is not specified",
        )),
        "" => {}
        _ if ips.is_empty() => causes.push(Cause::required("spec.clusterIPs")),
        ip if ips[0] != ip => causes.push(Cause::invalid_printed(
            "spec.clusterIPs",
            &printed,
            "first value must match `clusterIP`",
        )),
        _ => {}
    }
    let mut seen = BTreeSet::new();
    for (i, family) in spec.ip_families.iter().flatten().enumerate() {
        if !["IPv4", "IPv6"].contains(&family.as_str()) {
            causes.push(Cause::unsupported(
                format!("spec.ipFamilies[{i}]"),
                &Value::from(family.as_str()),
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(family.as_str()) {
            causes.push(Cause::duplicate(
                format!("spec.ipFamilies[{i}]"),
                &Value::from(family.as_str()),
            ));
        }
    }
    if let Some(policy) = spec.ip_family_policy.as_deref() {
        if !["PreferDualStack", "RequireDualStack", "SingleStack"].contains(&policy) {
            causes.push(Cause::unsupported(
                "spec.ipFamilyPolicy",
                &Value::from(policy),
                &["PreferDualStack", "RequireDualStack", "SingleStack"],
            ));
        }
    }
    let mut invalid_ips = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                invalid_ips = true;
                causes.push(Cause::invalid_printed(
                    "spec.clusterIPs",
                    &printed,
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        if ip.parse::<IpAddr>().is_err() {
            invalid_ips = true;
            causes.push(Cause::invalid(
                format!("spec.clusterIPs[{i}]"),
                &Value::from(ip.as_str()),
                INVALID_IP,
            ));
        }
    }
    if ips.len() > 2 {
        causes.push(Cause::invalid_printed(
            "spec.clusterIPs",
            &printed,
            "may only hold up to 2 values",
        ));
    }
    if invalid_ips {
        return causes;
    }
    if ips.len() > 1 {
        let families: BTreeSet<&str> = ips
            .iter()
            .filter_map(|ip| ip.parse::<IpAddr>().ok())
            .map(|ip| family_of(&ip))
            .collect();
        if families.len() != ips.len() {
            causes.push(Cause::invalid_printed(
                "spec.clusterIPs",
                &printed,
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    let headless = ips.len() == 1 && ips[0] == "None";
    if !headless {
        for (i, (ip, family)) in ips
            .iter()
            .zip(spec.ip_families.iter().flatten())
            .enumerate()
        {
            let Ok(parsed) = ip.parse::<IpAddr>() else {
                continue;
            };
            if family_of(&parsed) != family {
                causes.push(Cause::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    &Value::from(ip.as_str()),
                    format!("expected an {family} value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    causes
}

/// Upstream's `validateUpgradeDowngradeClusterIPs` for a single-stack cluster: the
/// primary ClusterIP never changes once set.
fn validate_cluster_ips_update(spec: &ServiceSpec, old: &ServiceSpec) -> Vec<Cause> {
    if !needs_cluster_ip(spec) || !needs_cluster_ip(old) || (is_headless(spec) && is_headless(old))
    {
        return Vec::new();
    }
    let (new_ips, old_ips) = (cluster_ips(spec), cluster_ips(old));
    let printed = go_strings(spec.cluster_ips.as_deref());
    let mut causes = Vec::new();
    if new_ips.len() == old_ips.len() {
        for (i, (new, old)) in new_ips.iter().zip(old_ips).enumerate() {
            if new != old {
                causes.push(Cause::invalid_printed(
                    format!("spec.clusterIPs[{i}]"),
                    &printed,
                    "may not change once set",
                ));
            }
        }
    } else if new_ips.is_empty() {
        causes.push(Cause::invalid_printed(
            "spec.clusterIPs[0]",
            &printed,
            "primary clusterIP can not be unset",
        ));
    } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
        causes.push(Cause::invalid_printed(
            "spec.clusterIPs[0]",
            &printed,
            "may not change once set",
        ));
    }
    causes
}

/// Upstream's `validateUpgradeDowngradeIPFamilies`: the primary family never changes.
fn validate_families_update(spec: &ServiceSpec, old: &ServiceSpec) -> Vec<Cause> {
    if !needs_cluster_ip(spec) || !needs_cluster_ip(old) || is_headless(spec) || is_headless(old) {
        return Vec::new();
    }
    let new_families = spec.ip_families.as_deref().unwrap_or_default();
    let old_families = old.ip_families.as_deref().unwrap_or_default();
    match (new_families.first(), old_families.first()) {
        (Some(new), Some(old)) if new != old => {
            vec![Cause::invalid_printed(
                "spec.ipFamilies[0]",
                &go_families(new_families),
                "may not change once set",
            )]
        }
        _ => Vec::new(),
    }
}

fn go_families(families: &[String]) -> String {
    format!(
        "[]core.IPFamily{{{}}}",
        families
            .iter()
            .map(|f| format!("{f:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The PORT(S) cell: `80/TCP`, or `80:30080/TCP` with a node port, comma-joined.
pub fn port_cell(ports: &[ServicePort]) -> String {
    ports
        .iter()
        .map(|port| {
            let protocol = port.protocol.as_deref().unwrap_or("");
            match port.node_port.filter(|n| *n > 0) {
                Some(node_port) => format!("{}:{node_port}/{protocol}", port.port),
                None => format!("{}/{protocol}", port.port),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The EXTERNAL-IP cell: external IPs, the load balancer's addresses (`<pending>` until it
/// has one), or the external name.
fn external_ip_cell(service: &Service) -> String {
    let Some(spec) = &service.spec else {
        return "<unknown>".into();
    };
    let external = spec.external_ips.clone().unwrap_or_default();
    match service_type(spec) {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let ingress = service
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref());
            let balancer: BTreeSet<String> = ingress
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    i.ip.clone()
                        .filter(|ip| !ip.is_empty())
                        .or_else(|| i.hostname.clone().filter(|h| !h.is_empty()))
                })
                .collect();
            let mut all: Vec<String> = balancer.into_iter().collect();
            all.extend(external);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => spec.external_name.clone().unwrap_or_default(),
        _ => "<unknown>".into(),
    }
}

/// A label map as kubectl prints it: `app=web,tier=front`, or `<none>`.
pub fn labels_cell(labels: Option<&std::collections::BTreeMap<String, String>>) -> String {
    match labels {
        Some(labels) if !labels.is_empty() => labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

const TYPE: &str = "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types";
const CLUSTER_IP: &str = "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
const EXTERNAL_IPS: &str = "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.";
const PORTS: &str = "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
const SELECTOR: &str = "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::table::rendered;
    use store::embedded::{EmbeddedConfig, EmbeddedStore};

    fn services(dir: &tempfile::TempDir) -> Services {
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap());
        Services::new(
            store,
            "10.96.0.0/12".parse().unwrap(),
            "30000-32767".parse().unwrap(),
        )
    }

    fn service(name: &str, spec: Value) -> Service {
        let mut service: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "spec": spec
        }))
        .unwrap();
        service.metadata.uid = Some(format!("uid-{name}"));
        service
    }

    /// What the REST layer does on create, up to storing.
    async fn create(services: &Services, mut service: Service) -> ApiResult<Service> {
        services.prepare_create(&mut service);
        services.default_fields(&mut service);
        let causes = services.validate(&service);
        assert!(causes.is_empty(), "{causes:?}");
        services.admit_create(&mut service).await?;
        Ok(service)
    }

    #[test]
    fn defaults_match_upstream() {
        let dir = tempfile::tempdir().unwrap();
        let services = services(&dir);
        let mut svc = service(
            "web",
            json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
        );
        services.prepare_create(&mut svc);
        services.default_fields(&mut svc);
        let value = serde_json::to_value(&svc).unwrap();
        assert_eq!(
            value["spec"],
            json!({
                "selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                "type": "ClusterIP",
                "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster",
                "ipFamilyPolicy": "SingleStack",
                "ipFamilies": ["IPv4"],
            })
        );
        assert_eq!(value["status"], json!({"loadBalancer": {}}));

        let mut node_port = service(
            "np",
            json!({"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]}),
        );
        services.default_fields(&mut node_port);
        let spec = node_port.spec.unwrap();
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
        assert_eq!(
            spec.ports.unwrap()[0].target_port,
            Some(IntOrString::String("http".into()))
        );

        let mut headless = service(
            "db",
            json!({"clusterIP": "None", "ports": [{"port": 5432}]}),
        );
        services.prepare_create(&mut headless);
        services.default_fields(&mut headless);
        let spec = headless.spec.unwrap();
        assert_eq!(spec.ip_family_policy.as_deref(), Some("RequireDualStack"));
        assert_eq!(
            spec.ip_families,
            Some(vec!["IPv4".to_string(), "IPv6".to_string()])
        );
    }

    #[tokio::test]
    async fn cluster_ips_are_allocated_once_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let services = services(&dir);
        let dns = create(
            &services,
            service(
                "dns",
                json!({"clusterIP": "10.96.0.10", "ports": [{"port": 53, "protocol": "UDP"}]}),
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            dns.spec.as_ref().unwrap().cluster_ips,
            Some(vec!["10.96.0.10".to_string()])
        );

        let error = create(
            &services,
            service(
                "other",
                json!({"clusterIP": "10.96.0.10", "ports": [{"port": 53}]}),
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"Service "other" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.10"}: failed to allocate IP 10.96.0.10: provided IP is already allocated"#
        );
        assert_eq!(error.code(), 422);

        let auto = create(&services, service("web", json!({"ports": [{"port": 80}]})))
            .await
            .unwrap();
        let ip = auto.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
        assert!(ip.starts_with("10."), "{ip}");
        assert_eq!(
            auto.spec.as_ref().unwrap().cluster_ips,
            Some(vec![ip.clone()])
        );

        let headless = create(
            &services,
            service(
                "db",
                json!({"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}),
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            headless.spec.as_ref().unwrap().cluster_ip.as_deref(),
            Some("None")
        );

        services.release(&dns, None).await;
        create(
            &services,
            service(
                "dns2",
                json!({"clusterIP": "10.96.0.10", "ports": [{"port": 53}]}),
            ),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn concurrent_creates_get_distinct_ips() {
        let dir = tempfile::tempdir().unwrap();
        let services = Arc::new(services(&dir));
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let services = services.clone();
                tokio::spawn(async move {
                    let svc = create(
                        &services,
                        service(
                            &format!("s{i}"),
                            json!({"type": "NodePort", "ports": [{"port": 80}]}),
                        ),
                    )
                    .await
                    .unwrap();
                    let spec = svc.spec.unwrap();
                    (
                        spec.cluster_ip.unwrap(),
                        spec.ports.unwrap()[0].node_port.unwrap(),
                    )
                })
            })
            .collect();
        let (mut ips, mut ports) = (HashSet::new(), HashSet::new());
        for task in tasks {
            let (ip, port) = task.await.unwrap();
            assert!(ips.insert(ip));
            assert!((30000..=32767).contains(&port));
            assert!(ports.insert(port));
        }
    }

    #[tokio::test]
    async fn node_ports_follow_the_service() {
        let dir = tempfile::tempdir().unwrap();
        let services = services(&dir);
        let svc = create(
            &services,
            service("web", json!({"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP"}]})),
        )
        .await
        .unwrap();
        let ports = svc.spec.as_ref().unwrap().ports.clone().unwrap();
        assert_eq!(ports[0].node_port, Some(30080));
        assert_eq!(
            port_cell(&ports),
            format!("80:30080/TCP,53:{}/UDP", ports[1].node_port.unwrap())
        );

        let taken = create(
            &services,
            service(
                "other",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(
            taken.to_string(),
            r#"Service "other" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"#
        );

        // `kubectl replace` without the allocated values keeps them; switching to ClusterIP
        // drops and frees the node ports.
        let mut replaced = service(
            "web",
            json!({"type": "ClusterIP", "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}),
        );
        replaced.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(30080);
        replaced.spec.as_mut().unwrap().ports.as_mut().unwrap()[1].node_port = ports[1].node_port;
        services.prepare_update(&mut replaced, &svc);
        services.default_fields(&mut replaced);
        assert!(services.validate_update(&replaced, &svc).is_empty());
        services.admit_update(&mut replaced, &svc).await.unwrap();
        assert_eq!(
            replaced.spec.as_ref().unwrap().cluster_ip,
            svc.spec.as_ref().unwrap().cluster_ip
        );
        assert!(replaced
            .spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .all(|p| p.node_port.is_none()));
        services.release(&svc, Some(&replaced)).await;
        create(
            &services,
            service(
                "other",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
            ),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn cluster_ip_is_immutable() {
        let dir = tempfile::tempdir().unwrap();
        let services = services(&dir);
        let svc = create(
            &services,
            service(
                "web",
                json!({"clusterIP": "10.96.0.20", "ports": [{"port": 80}]}),
            ),
        )
        .await
        .unwrap();
        let mut changed = svc.clone();
        changed.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.21".into());
        services.prepare_update(&mut changed, &svc);
        let lines: Vec<String> = services
            .validate_update(&changed, &svc)
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            lines,
            [
                r#"spec.clusterIPs[0]: Invalid value: []string{"10.96.0.21"}: may not change once set"#
            ]
        );
    }

    #[test]
    fn cells_read_like_kubectl() {
        let dir = tempfile::tempdir().unwrap();
        let services = services(&dir);
        let mut lb = service(
            "lb",
            json!({"type": "LoadBalancer", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"],
            "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}], "selector": {"app": "web", "tier": "a"}}),
        );
        let cells = rendered(&services.cells(&lb), jiff::Timestamp::now());
        assert_eq!(
            cells[1..5],
            [
                json!("LoadBalancer"),
                json!("10.96.0.5"),
                json!("<pending>"),
                json!("80:31000/TCP")
            ]
        );
        assert_eq!(cells[6], "app=web,tier=a");
        lb.status =
            serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}))
                .unwrap();
        assert_eq!(
            rendered(&services.cells(&lb), jiff::Timestamp::now())[3],
            "1.2.3.4"
        );
        let external = service(
            "ext",
            json!({"type": "ExternalName", "externalName": "example.com"}),
        );
        let cells = rendered(&services.cells(&external), jiff::Timestamp::now());
        assert_eq!(
            cells[2..5],
            [json!("<none>"), json!("example.com"), json!("<none>")]
        );
        assert_eq!(cells[6], "<none>");
    }
}
