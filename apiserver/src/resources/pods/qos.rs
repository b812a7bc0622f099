//! A pod's quality-of-service class, computed once at creation like upstream's
//! `ComputePodQOS`: it decides eviction order and is immutable afterwards.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};

use machinery::quantity::Quantity;

/// The resources QoS looks at; extended resources and storage do not count.
const COMPUTE: [&str; 2] = ["cpu", "memory"];

/// `Guaranteed` when every container limits cpu and memory and requests equal limits,
/// `BestEffort` when nothing is requested or limited, otherwise `Burstable`. A missing request
/// counts as its limit, the value defaulting gives it.
pub fn class(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    for container in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let container_limits = compute_amounts(container, Kind::Limits);
        if !COMPUTE
            .iter()
            .all(|name| container_limits.iter().any(|(n, _)| n == name))
        {
            guaranteed = false;
        }
        for (name, amount) in compute_amounts(container, Kind::Requests) {
            add(&mut requests, name, amount);
        }
        for (name, amount) in container_limits {
            add(&mut limits, name, amount);
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed && requests == limits {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Requests,
    Limits,
}

/// The positive cpu and memory amounts a container requests or limits.
fn compute_amounts(container: &Container, kind: Kind) -> Vec<(&'static str, Quantity)> {
    let resources = container.resources.as_ref();
    let limits = resources.and_then(|r| r.limits.as_ref());
    let requests = resources.and_then(|r| r.requests.as_ref());
    COMPUTE
        .iter()
        .filter_map(|&name| {
            let value = match kind {
                Kind::Limits => limits.and_then(|l| l.get(name)),
                Kind::Requests => requests
                    .and_then(|r| r.get(name))
                    .or_else(|| limits.and_then(|l| l.get(name))),
            }?;
            Quantity::parse(&value.0)
                .filter(|q| q.is_positive())
                .map(|q| (name, q))
        })
        .collect()
}

fn add<'a>(totals: &mut BTreeMap<&'a str, Quantity>, name: &'a str, amount: Quantity) {
    let total = totals.entry(name).or_insert(Quantity::ZERO);
    *total = total.checked_add(amount).unwrap_or(*total);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let list = |pairs: &[(&str, &str)]| {
            (!pairs.is_empty()).then(|| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), Q(v.to_string())))
                    .collect()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: list(requests),
                limits: list(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn spec(containers: Vec<Container>) -> PodSpec {
        PodSpec {
            containers,
            ..Default::default()
        }
    }

    #[test]
    fn classes_follow_requests_and_limits() {
        assert_eq!(class(&spec(vec![container(&[], &[])])), "BestEffort");
        assert_eq!(
            class(&spec(vec![container(&[("cpu", "0")], &[])])),
            "BestEffort",
            "zero requests do not count"
        );
        assert_eq!(
            class(&spec(vec![container(&[("cpu", "100m")], &[])])),
            "Burstable"
        );
        let full = [("cpu", "500m"), ("memory", "128Mi")];
        assert_eq!(class(&spec(vec![container(&full, &full)])), "Guaranteed");
        assert_eq!(
            class(&spec(vec![container(&[], &full)])),
            "Guaranteed",
            "requests default to limits"
        );
        assert_eq!(
            class(&spec(vec![container(
                &[("cpu", "0.5"), ("memory", "128Mi")],
                &full
            )])),
            "Guaranteed"
        );
        assert_eq!(
            class(&spec(vec![container(
                &[("cpu", "250m"), ("memory", "128Mi")],
                &full
            )])),
            "Burstable"
        );
        assert_eq!(
            class(&spec(vec![container(&[], &[("cpu", "1")])])),
            "Burstable",
            "memory limit missing"
        );
        assert_eq!(
            class(&spec(vec![container(&full, &full), container(&[], &[])])),
            "Burstable"
        );
        assert_eq!(
            class(&spec(vec![container(
                &[("nvidia.com/gpu", "1")],
                &[("nvidia.com/gpu", "1")]
            )])),
            "BestEffort"
        );
    }
}
