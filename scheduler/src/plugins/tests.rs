//! The plugins run together on small clusters built in memory.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, NodeSpec, NodeStatus, Pod, PodAffinityTerm, PodAntiAffinity, PodSpec,
    PreferredSchedulingTerm, ResourceRequirements, Taint, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::*;
use crate::cache::Cache;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn node(name: &str, cpu: &str, node_labels: &[(&str, &str)]) -> Node {
    let mut all = labels(node_labels);
    all.insert("kubernetes.io/hostname".into(), name.into());
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(all),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            allocatable: Some(
                [
                    ("cpu".to_string(), Quantity(cpu.into())),
                    ("memory".to_string(), Quantity("8Gi".into())),
                    ("pods".to_string(), Quantity("110".into())),
                    ("example.com/gpu".to_string(), Quantity("1".into())),
                ]
                .into(),
            ),
            ..Default::default()
        }),
    }
}

fn pod(name: &str, cpu: &str) -> Pod {
    let requests = (!cpu.is_empty()).then(|| [("cpu".to_string(), Quantity(cpu.into()))].into());
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                resources: Some(ResourceRequirements {
                    requests,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn bind(cache: &mut Cache, mut pod: Pod, node: &str) {
    pod.spec.as_mut().unwrap().node_name = Some(node.into());
    cache.update_bound_pod(Arc::new(PodInfo::new(pod)));
}

/// The reasons each node rejects `pod` with, or `None` where it fits.
fn verdicts(cache: &Cache, pod: Pod) -> BTreeMap<String, Option<Vec<String>>> {
    let info = PodInfo::new(pod);
    let state = CycleState::new(&info, cache);
    cache
        .nodes()
        .map(|n| {
            let verdict = state
                .filter_with_nominated(n, cache)
                .err()
                .map(|s| s.reasons.iter().map(|r| r.to_string()).collect());
            (n.name.to_string(), verdict)
        })
        .collect()
}

fn fits(cache: &Cache, pod: Pod) -> Vec<String> {
    verdicts(cache, pod)
        .into_iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| n)
        .collect()
}

fn cluster(nodes: Vec<Node>) -> Cache {
    let mut cache = Cache::default();
    for node in nodes {
        cache.update_node(node);
    }
    cache
}

#[test]
fn resources_fit_counts_bound_pods() {
    let mut cache = cluster(vec![node("small", "1", &[]), node("big", "4", &[])]);
    bind(&mut cache, pod("running", "600m"), "small");
    let result = verdicts(&cache, pod("new", "500m"));
    assert_eq!(result["small"], Some(vec!["Insufficient cpu".to_string()]));
    assert_eq!(result["big"], None);
    let mut gpu = pod("gpu", "");
    gpu.spec.as_mut().unwrap().containers[0].resources = Some(ResourceRequirements {
        requests: Some([("example.com/gpu".to_string(), Quantity("2".into()))].into()),
        ..Default::default()
    });
    assert_eq!(
        verdicts(&cache, gpu)["big"],
        Some(vec!["Insufficient example.com/gpu".to_string()])
    );
}

#[test]
fn taints_cordons_and_tolerations() {
    let mut tainted = node("tainted", "4", &[]);
    tainted.spec.as_mut().unwrap().taints = Some(vec![Taint {
        key: "node-role.kubernetes.io/control-plane".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    }]);
    let mut cordoned = node("cordoned", "4", &[]);
    cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
    let cache = cluster(vec![tainted, cordoned, node("plain", "4", &[])]);
    let verdicts = verdicts(&cache, pod("p", ""));
    assert_eq!(
        verdicts["tainted"],
        Some(vec![
            "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }".to_string()
        ])
    );
    assert_eq!(
        verdicts["cordoned"],
        Some(vec!["node(s) were unschedulable".to_string()])
    );
    let mut tolerant = pod("t", "");
    tolerant.spec.as_mut().unwrap().tolerations = Some(vec![Toleration {
        operator: Some("Exists".into()),
        ..Default::default()
    }]);
    assert_eq!(fits(&cache, tolerant), ["cordoned", "plain", "tainted"]);
}

#[test]
fn node_selector_and_required_affinity() {
    let cache = cluster(vec![
        node("a", "4", &[("disk", "ssd"), ("zone", "z1")]),
        node("b", "4", &[("disk", "hdd"), ("zone", "z1")]),
        node("c", "4", &[("disk", "ssd"), ("zone", "z2")]),
    ]);
    let mut selected = pod("p", "");
    selected.spec.as_mut().unwrap().node_selector = Some(labels(&[("disk", "ssd")]));
    assert_eq!(fits(&cache, selected.clone()), ["a", "c"]);
    selected.spec.as_mut().unwrap().affinity = Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: "zone".into(),
                        operator: "NotIn".into(),
                        values: Some(vec!["z1".into()]),
                    }]),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let verdicts = verdicts(&cache, selected);
    assert_eq!(verdicts["c"], None);
    assert_eq!(
        verdicts["a"],
        Some(vec![
            "node(s) didn't match Pod's node affinity/selector".to_string()
        ])
    );
}

#[test]
fn host_ports_conflict() {
    let mut cache = cluster(vec![node("a", "4", &[]), node("b", "4", &[])]);
    let with_port = |name: &str| {
        let mut p = pod(name, "");
        p.spec.as_mut().unwrap().containers[0].ports = Some(vec![ContainerPort {
            container_port: 80,
            host_port: Some(80),
            ..Default::default()
        }]);
        p
    };
    bind(&mut cache, with_port("first"), "a");
    let verdicts = verdicts(&cache, with_port("second"));
    assert_eq!(
        verdicts["a"],
        Some(vec![
            "node(s) didn't have free ports for the requested pod ports".to_string()
        ])
    );
    assert_eq!(verdicts["b"], None);
}

#[test]
fn topology_spread_do_not_schedule() {
    let mut cache = cluster(vec![
        node("a1", "4", &[("zone", "a")]),
        node("b1", "4", &[("zone", "b")]),
        node("none", "4", &[]),
    ]);
    bind(&mut cache, pod("w1", ""), "a1");
    let mut spread = pod("w2", "");
    spread.spec.as_mut().unwrap().topology_spread_constraints =
        Some(vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "zone".into(),
            when_unsatisfiable: "DoNotSchedule".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                ..Default::default()
            }),
            ..Default::default()
        }]);
    let verdicts = verdicts(&cache, spread);
    assert_eq!(
        verdicts["a1"],
        Some(vec![
            "node(s) didn't match pod topology spread constraints".to_string()
        ])
    );
    assert_eq!(verdicts["b1"], None);
    assert_eq!(
        verdicts["none"],
        Some(vec![
            "node(s) didn't match pod topology spread constraints (missing required label)"
                .to_string()
        ])
    );
}

fn anti_affinity(p: &mut Pod, key: &str) {
    p.spec.as_mut().unwrap().affinity = Some(Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                label_selector: Some(LabelSelector {
                    match_labels: Some(labels(&[("app", "web")])),
                    ..Default::default()
                }),
                topology_key: key.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    });
}

#[test]
fn inter_pod_anti_affinity_both_ways() {
    let mut cache = cluster(vec![node("a", "4", &[]), node("b", "4", &[])]);
    let mut first = pod("first", "");
    anti_affinity(&mut first, "kubernetes.io/hostname");
    bind(&mut cache, first, "a");
    // The running pod's anti-affinity keeps a matching newcomer away.
    let result = verdicts(&cache, pod("plain", ""));
    assert_eq!(
        result["a"],
        Some(vec![
            "node(s) didn't satisfy existing pods anti-affinity rules".to_string()
        ])
    );
    assert_eq!(result["b"], None);
    // The newcomer's own anti-affinity does too.
    let mut cache = cluster(vec![node("a", "4", &[]), node("b", "4", &[])]);
    bind(&mut cache, pod("plain", ""), "a");
    let mut second = pod("second", "");
    anti_affinity(&mut second, "kubernetes.io/hostname");
    assert_eq!(
        verdicts(&cache, second)["a"],
        Some(vec![
            "node(s) didn't match pod anti-affinity rules".to_string()
        ])
    );
}

#[test]
fn inter_pod_affinity_lets_the_first_of_a_group_in() {
    let mut cache = cluster(vec![
        node("a", "4", &[("zone", "z1")]),
        node("b", "4", &[("zone", "z2")]),
    ]);
    let mut follower = pod("follower", "");
    follower.spec.as_mut().unwrap().affinity = Some(Affinity {
        pod_affinity: Some(k8s_openapi::api::core::v1::PodAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                label_selector: Some(LabelSelector {
                    match_labels: Some(labels(&[("app", "web")])),
                    ..Default::default()
                }),
                topology_key: "zone".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(
        fits(&cache, follower.clone()),
        ["a", "b"],
        "nothing to follow yet, and it matches itself"
    );
    bind(&mut cache, pod("leader", ""), "b");
    let verdicts = verdicts(&cache, follower);
    assert_eq!(
        verdicts["a"],
        Some(vec!["node(s) didn't match pod affinity rules".to_string()])
    );
    assert_eq!(verdicts["b"], None);
}

fn scores(cache: &Cache, pod: Pod) -> BTreeMap<String, i64> {
    let info = PodInfo::new(pod);
    let state = CycleState::new(&info, cache);
    let nodes: Vec<&NodeInfo> = cache.nodes().collect();
    let scores = state.score(cache, &nodes);
    nodes
        .iter()
        .zip(scores)
        .map(|(n, s)| (n.name.to_string(), s))
        .collect()
}

#[test]
fn least_allocated_nodes_score_higher() {
    let mut cache = cluster(vec![node("busy", "4", &[]), node("idle", "4", &[])]);
    bind(&mut cache, pod("running", "3"), "busy");
    let scores = scores(&cache, pod("new", "100m"));
    assert!(scores["idle"] > scores["busy"], "{scores:?}");
}

#[test]
fn preferred_node_affinity_and_prefer_no_schedule_taints_score() {
    let mut avoided = node("avoided", "4", &[]);
    avoided.spec.as_mut().unwrap().taints = Some(vec![Taint {
        key: "spot".into(),
        effect: "PreferNoSchedule".into(),
        ..Default::default()
    }]);
    let cache = cluster(vec![
        avoided,
        node("preferred", "4", &[("disk", "ssd")]),
        node("plain", "4", &[]),
    ]);
    let mut p = pod("p", "");
    p.spec.as_mut().unwrap().affinity = Some(Affinity {
        node_affinity: Some(NodeAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                PreferredSchedulingTerm {
                    weight: 50,
                    preference: NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "disk".into(),
                            operator: "In".into(),
                            values: Some(vec!["ssd".into()]),
                        }]),
                        ..Default::default()
                    },
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    });
    let scores = scores(&cache, p);
    assert!(
        scores["preferred"] > scores["plain"] && scores["plain"] > scores["avoided"],
        "{scores:?}"
    );
}

#[test]
fn replica_set_pods_spread_by_default() {
    let mut cache = cluster(vec![node("a", "4", &[]), node("b", "4", &[])]);
    cache.set_replica_set(
        "default",
        "web",
        Some(machinery::selector::Selector::from_labels(&labels(&[(
            "app", "web",
        )]))),
    );
    bind(&mut cache, pod("w1", ""), "a");
    bind(&mut cache, pod("w2", ""), "a");
    let scores = scores(&cache, pod("w3", ""));
    assert!(scores["b"] > scores["a"], "{scores:?}");
}
