//! Which nodes a DaemonSet's pods belong on (upstream's `NodeShouldRunDaemonPod`) and the
//! pods it makes for them: the template with the automatic DaemonSet tolerations, the
//! revision labels, and a required node affinity naming the node, so the default scheduler
//! places each pod on its node as upstream's does.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, PodTemplateSpec, Toleration,
};
use machinery::selector::NodeTerm;
use machinery::taints::tolerated;

/// The annotation holding the template generation (upstream's internal
/// `spec.templateGeneration`), which pods carry in [`TEMPLATE_GENERATION_LABEL`].
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// Upstream's `DaemonSetTemplateGenerationKey`.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// Whether the DaemonSet should run a new pod on the node, and whether a pod already there
/// may stay (upstream's `NodeShouldRunDaemonPod`): the node must be the template's
/// `nodeName` if one is set and match its required node affinity (`nodeSelector` and
/// required terms); an untolerated `NoSchedule` taint only keeps new pods off, an
/// untolerated `NoExecute` one evicts. Cordoning alone changes nothing: daemon pods tolerate
/// `node.kubernetes.io/unschedulable`.
pub fn should_run(node: &Node, ds: &DaemonSet) -> (bool, bool) {
    let spec = daemon_pod_spec(ds);
    let name = node.metadata.name.as_deref().unwrap_or("");
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return (false, false);
    }
    if !fits_required_affinity(&spec, node) {
        return (false, false);
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let untolerated = |effects: &[&str]| {
        taints
            .iter()
            .any(|t| effects.contains(&t.effect.as_str()) && !tolerated(tolerations, t))
    };
    if untolerated(&["NoSchedule", "NoExecute"]) {
        return (false, !untolerated(&["NoExecute"]));
    }
    (true, true)
}

/// Upstream's `GetRequiredNodeAffinity(pod).Match(node)`: every `nodeSelector` label, and
/// one of the required terms when there are any.
fn fits_required_affinity(spec: &PodSpec, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selected = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|s| s.node_selector_terms.as_slice());
    selected && terms.is_none_or(|terms| terms.iter().any(|t| NodeTerm::new(t).matches(node)))
}

/// The template's pod spec with the automatic DaemonSet tolerations.
fn daemon_pod_spec(ds: &DaemonSet) -> PodSpec {
    let mut spec = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    spec
}

/// Upstream's `AddOrUpdateDaemonPodTolerations`: daemon pods survive node problems (not
/// ready and unreachable `NoExecute` forever) and are placed despite pressure, cordons and,
/// for host-network pods, an unavailable network.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut automatic = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        automatic.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in automatic {
        let toleration = Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            ..Toleration::default()
        };
        // Upstream's `AddOrUpdateTolerationInPodSpec`: one with the same key, operator,
        // value and effect is replaced (its tolerationSeconds dropped), else it is added.
        let same = |t: &Toleration| {
            t.key == toleration.key
                && t.operator.as_deref().unwrap_or("Equal") == "Exists"
                && t.value.as_deref().unwrap_or("").is_empty()
                && t.effect == toleration.effect
        };
        match tolerations.iter_mut().find(|t| same(t)) {
            Some(existing) => *existing = toleration,
            None => tolerations.push(toleration),
        }
    }
}

/// The template generation from the annotation, `None` when it does not parse (upstream's
/// `GetTemplateGeneration`).
pub fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION))
        .and_then(|g| g.parse().ok())
}

/// Upstream's `CreatePodTemplate`: the template with the automatic tolerations and the
/// generation and revision labels.
pub fn pod_template(ds: &DaemonSet, hash: &str) -> PodTemplateSpec {
    let mut template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let spec = template.spec.get_or_insert_with(PodSpec::default);
    add_daemon_tolerations(spec);
    let meta = template.metadata.get_or_insert_with(Default::default);
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    if let Some(generation) = template_generation(ds) {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), generation.to_string());
    }
    if !hash.is_empty() {
        labels.insert(crate::history::POD_REVISION_LABEL.into(), hash.into());
    }
    template
}

/// Upstream's `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity becomes
/// the one term `metadata.name In [node]` (the node already matched the template's terms).
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
        ..NodeSelectorTerm::default()
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
}

/// The node a daemon pod is for: where it is bound, or the node its affinity names
/// (upstream's `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(name) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(name.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| match r.values.as_deref() {
            Some([name]) => Some(name.clone()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ds(template_spec: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "default",
                         "annotations": {TEMPLATE_GENERATION_ANNOTATION: "3"}},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}}, "spec": template_spec}}
        }))
        .unwrap()
    }

    fn node(value: serde_json::Value) -> Node {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn taints_selectors_and_affinity_decide_placement() {
        let plain = ds(json!({"containers": [{"name": "a", "image": "x"}]}));
        let n0 = node(json!({"metadata": {"name": "n0", "labels": {"disk": "ssd"}}}));
        assert_eq!(should_run(&n0, &plain), (true, true));
        let cordoned = node(
            json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true,
            "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}}),
        );
        assert_eq!(should_run(&cordoned, &plain), (true, true));
        let no_schedule = node(json!({"metadata": {"name": "n2"},
            "spec": {"taints": [{"key": "gpu", "value": "true", "effect": "NoSchedule"}]}}));
        assert_eq!(should_run(&no_schedule, &plain), (false, true));
        let no_execute = node(json!({"metadata": {"name": "n3"},
            "spec": {"taints": [{"key": "gpu", "value": "true", "effect": "NoExecute"}]}}));
        assert_eq!(should_run(&no_execute, &plain), (false, false));
        let tolerant = ds(json!({"containers": [{"name": "a", "image": "x"}],
            "tolerations": [{"key": "gpu", "operator": "Exists"}]}));
        assert_eq!(should_run(&no_execute, &tolerant), (true, true));
        let not_ready = node(json!({"metadata": {"name": "n4"},
            "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]}}));
        assert_eq!(should_run(&not_ready, &plain), (true, true));
        let picky = ds(json!({"containers": [{"name": "a", "image": "x"}],
            "nodeSelector": {"disk": "ssd"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}}));
        assert_eq!(should_run(&n0, &picky), (true, true));
        assert_eq!(should_run(&cordoned, &picky), (false, false));
        let named = ds(json!({"nodeName": "n1", "containers": [{"name": "a", "image": "x"}]}));
        assert_eq!(should_run(&n0, &named), (false, false));
    }

    #[test]
    fn pods_tolerate_node_problems_and_are_pinned_to_their_node() {
        let host = ds(
            json!({"hostNetwork": true, "containers": [{"name": "a", "image": "x"}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 300}]}),
        );
        let mut template = pod_template(&host, "abc");
        let labels = template.metadata.as_ref().unwrap().labels.clone().unwrap();
        assert_eq!(labels["controller-revision-hash"], "abc");
        assert_eq!(labels[TEMPLATE_GENERATION_LABEL], "3");
        let spec = template.spec.as_mut().unwrap();
        let keys: Vec<(String, String)> = spec
            .tolerations
            .iter()
            .flatten()
            .map(|t| (t.key.clone().unwrap(), t.effect.clone().unwrap()))
            .collect();
        assert_eq!(keys.len(), 7, "{keys:?}");
        assert_eq!(keys[0].0, "node.kubernetes.io/not-ready");
        assert_eq!(
            spec.tolerations.as_ref().unwrap()[0].toleration_seconds,
            None
        );
        assert_eq!(keys[6].0, "node.kubernetes.io/network-unavailable");
        pin_to_node(spec, "node-7");
        let pod = Pod {
            spec: Some(spec.clone()),
            ..Pod::default()
        };
        assert_eq!(target_node(&pod).as_deref(), Some("node-7"));
        assert_eq!(
            serde_json::to_value(&spec.affinity).unwrap(),
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-7"]}]}]}}})
        );
    }
}
