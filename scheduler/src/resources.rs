//! Resource accounting: what a pod asks for (as upstream's `PodRequests` counts it: regular
//! containers summed, init containers taken at their peak, sidecars running alongside, pod
//! overhead on top) and what a node can give.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use machinery::quantity::Quantity as Amount;

/// CPU assumed for a container without a CPU request when spreading load (upstream's
/// `DefaultMilliCPURequest`), so best-effort pods do not all pile onto one node.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory assumed for a container without a memory request (`DefaultMemoryRequest`).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of every resource the scheduler tracks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// How many pods fit; only meaningful for a node's allocatable.
    pub pods: i64,
    /// Extended resources, huge pages and attachable volumes, by name.
    pub scalar: BTreeMap<String, i64>,
}

/// Whether a resource name is one of the countable extras (`example.com/gpu`, `hugepages-2Mi`)
/// rather than cpu, memory, ephemeral-storage or pods.
fn is_scalar(name: &str) -> bool {
    name.contains('/') || name.starts_with("hugepages-") || name.starts_with("attachable-volumes-")
}

impl Resources {
    /// Reads a resource list (node allocatable, container requests).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
        let mut resources = Resources::default();
        for (name, quantity) in list {
            // Unparsable quantities count as zero: the apiserver never admits them.
            let amount = Amount::try_from(quantity).unwrap_or_default();
            match name.as_str() {
                "cpu" => resources.milli_cpu = amount.milli_value(),
                "memory" => resources.memory = amount.value(),
                "ephemeral-storage" => resources.ephemeral_storage = amount.value(),
                "pods" => resources.pods = amount.value(),
                other if is_scalar(other) => {
                    resources.scalar.insert(other.to_string(), amount.value());
                }
                _ => {}
            }
        }
        resources
    }

    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.pods += other.pods;
        for (name, amount) in &other.scalar {
            *self.scalar.entry(name.clone()).or_default() += amount;
        }
    }

    pub fn subtract(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.pods -= other.pods;
        for (name, amount) in &other.scalar {
            *self.scalar.entry(name.clone()).or_default() -= amount;
        }
    }

    /// Raises every amount to at least `other`'s (an init container's peak).
    fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (name, amount) in &other.scalar {
            let entry = self.scalar.entry(name.clone()).or_default();
            *entry = (*entry).max(*amount);
        }
    }

    /// Whether nothing at all is requested, which upstream's fit check short-cuts.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }
}

/// How missing container requests are counted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// As nothing: what the fit check and balanced allocation use.
    Zero,
    /// As the default CPU and memory requests: what least-allocated scoring uses.
    Defaulted,
}

fn container_requests(container: &Container, missing: Missing) -> Resources {
    let requests = container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref());
    let mut resources = requests.map(Resources::from_list).unwrap_or_default();
    if missing == Missing::Defaulted {
        if requests.is_none_or(|r| !r.contains_key("cpu")) {
            resources.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if requests.is_none_or(|r| !r.contains_key("memory")) {
            resources.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    resources
}

fn pod_requests_counting(spec: &PodSpec, missing: Missing) -> Resources {
    let mut total = Resources::default();
    for container in &spec.containers {
        total.add(&container_requests(container, missing));
    }
    // Sidecars (init containers that keep running) occupy their share from their start on;
    // a regular init container runs alone next to the sidecars started before it.
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for container in spec.init_containers.iter().flatten() {
        let requests = container_requests(container, missing);
        if container.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&requests);
            init_peak.max_with(&sidecars);
        } else {
            let mut running = requests;
            running.add(&sidecars);
            init_peak.max_with(&running);
        }
    }
    total.add(&sidecars);
    total.max_with(&init_peak);
    if let Some(overhead) = &spec.overhead {
        total.add(&Resources::from_list(overhead));
    }
    total
}

/// What the pod needs free on a node to fit there.
pub fn pod_requests(spec: &PodSpec) -> Resources {
    pod_requests_counting(spec, Missing::Zero)
}

/// CPU (millicores) and memory (bytes) the pod is assumed to use when scoring, with defaults
/// for containers that request nothing.
pub fn non_zero_requests(spec: &PodSpec) -> (i64, i64) {
    let requests = pod_requests_counting(spec, Missing::Defaulted);
    (requests.milli_cpu, requests.memory)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    fn container(cpu: &str, memory: &str) -> Container {
        let mut requests = BTreeMap::new();
        if !cpu.is_empty() {
            requests.insert("cpu".to_string(), Quantity(cpu.into()));
        }
        if !memory.is_empty() {
            requests.insert("memory".to_string(), Quantity(memory.into()));
        }
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(requests),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn containers_add_up_and_init_containers_count_at_their_peak() {
        let spec = PodSpec {
            containers: vec![container("100m", "100Mi"), container("200m", "")],
            init_containers: Some(vec![container("500m", "50Mi"), container("100m", "1Gi")]),
            overhead: Some([("cpu".to_string(), Quantity("10m".into()))].into()),
            ..Default::default()
        };
        let requests = pod_requests(&spec);
        assert_eq!(
            requests.milli_cpu, 510,
            "init peak 500m beats the 300m sum, plus overhead"
        );
        assert_eq!(requests.memory, 1 << 30);
    }

    #[test]
    fn sidecars_run_alongside_later_init_containers_and_the_app() {
        let mut sidecar = container("100m", "");
        sidecar.restart_policy = Some("Always".into());
        let spec = PodSpec {
            containers: vec![container("200m", "")],
            init_containers: Some(vec![sidecar, container("250m", "")]),
            ..Default::default()
        };
        assert_eq!(
            pod_requests(&spec).milli_cpu,
            350,
            "250m init next to the 100m sidecar"
        );
    }

    #[test]
    fn missing_requests_get_defaults_for_scoring_only() {
        let spec = PodSpec {
            containers: vec![container("", ""), container("0", "")],
            ..Default::default()
        };
        assert!(pod_requests(&spec).is_zero());
        assert_eq!(
            non_zero_requests(&spec),
            (DEFAULT_MILLI_CPU_REQUEST, 2 * DEFAULT_MEMORY_REQUEST)
        );
    }

    #[test]
    fn extended_resources_are_scalar() {
        let list = [
            ("cpu".to_string(), Quantity("4".into())),
            ("example.com/gpu".to_string(), Quantity("2".into())),
            ("pods".to_string(), Quantity("110".into())),
        ]
        .into();
        let resources = Resources::from_list(&list);
        assert_eq!((resources.milli_cpu, resources.pods), (4000, 110));
        assert_eq!(resources.scalar["example.com/gpu"], 2);
    }
}
