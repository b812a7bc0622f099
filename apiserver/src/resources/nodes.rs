//! Nodes: registered by kubelets with their status, shown by `kubectl get nodes` with
//! upstream's STATUS and ROLES summaries.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Node;
use serde_json::Value;

use super::podspec;
use crate::error::Cause;
use crate::registry::table::{age, Cell, Column};
use crate::registry::validation;
use crate::registry::{Description, Strategy};

pub struct Nodes;

impl Strategy for Nodes {
    type Object = Node;

    fn describe(&self) -> Description {
        Description {
            short_names: &["no"],
            status: true,
            storage_path: Some("minions"),
            field_selectors: &["spec.unschedulable"],
            ..Description::default()
        }
    }

    /// Kubelets register a node together with its status, so a create keeps it; allocatable
    /// defaults to capacity, and the v1 conversion keeps `podCIDR` and `podCIDRs` in step.
    fn default_fields(&self, node: &mut Node) {
        if let Some(spec) = &mut node.spec {
            if spec.pod_cidrs.as_ref().is_none_or(|cidrs| cidrs.is_empty()) {
                spec.pod_cidrs = spec
                    .pod_cidr
                    .clone()
                    .filter(|cidr| !cidr.is_empty())
                    .map(|cidr| vec![cidr]);
            }
            spec.pod_cidr = spec
                .pod_cidrs
                .as_ref()
                .and_then(|cidrs| cidrs.first().cloned());
        }
        if let Some(status) = &mut node.status {
            if status.allocatable.is_none() {
                status.allocatable.clone_from(&status.capacity);
            }
        }
    }

    fn validate(&self, node: &Node) -> Vec<Cause> {
        let mut causes = Vec::new();
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        // Upstream reports taint problems under `metadata.taints`, not `spec.taints`.
        for (i, taint) in taints.iter().enumerate() {
            let at = format!("metadata.taints[{i}]");
            for error in validation::qualified_name_errors(&taint.key) {
                causes.push(Cause::invalid(
                    format!("{at}.key"),
                    &Value::from(taint.key.as_str()),
                    error,
                ));
            }
            let value = taint.value.as_deref().unwrap_or("");
            if let Some(error) = validation::label_value_error(value) {
                causes.push(Cause::invalid(
                    format!("{at}.value"),
                    &Value::from(value),
                    error,
                ));
            }
            if taint.effect.is_empty() {
                causes.push(Cause::required(format!("{at}.effect")));
            } else {
                causes.extend(podspec::taint_effect_error(
                    &taint.effect,
                    &format!("{at}.effect"),
                ));
            }
            if !seen.insert((taint.effect.as_str(), taint.key.as_str())) {
                let shown = serde_json::to_value(taint).unwrap_or(Value::Null);
                let mut duplicate = Cause::duplicate(&at, &shown);
                duplicate
                    .message
                    .push_str(": taints must be unique by key and effect pair");
                causes.push(duplicate);
            }
        }
        causes
    }

    /// Upstream's `ValidateNodeUpdate`: a pod CIDR or provider ID, once set, stays.
    fn validate_update(&self, new: &Node, old: &Node) -> Vec<Cause> {
        let mut causes = self.validate(new);
        let (new_spec, old_spec) = (
            new.spec.clone().unwrap_or_default(),
            old.spec.clone().unwrap_or_default(),
        );
        if old_spec.pod_cidrs.as_ref().is_some_and(|c| !c.is_empty())
            && new_spec.pod_cidrs != old_spec.pod_cidrs
        {
            causes.push(Cause::forbidden(
                "spec.podCIDRs",
                "node updates may not change podCIDR except from \"\" to valid",
            ));
        }
        let old_provider = old_spec.provider_id.as_deref().unwrap_or("");
        if !old_provider.is_empty() && new_spec.provider_id.as_deref().unwrap_or("") != old_provider
        {
            causes.push(Cause::forbidden(
                "spec.providerID",
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
        causes
    }

    fn fields(&self, node: &Node) -> Vec<(&'static str, String)> {
        let unschedulable = node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        vec![("spec.unschedulable", unschedulable.to_string())]
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Status", "string", "The status of the node"),
            Column::new("Roles", "string", "The roles of the node"),
            Column::age(),
            Column::new("Version", "string", "Kubelet Version reported by the node."),
            Column::new("Internal-IP", "string", ADDRESSES).wide(),
            Column::new("External-IP", "string", ADDRESSES).wide(),
            Column::new("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).").wide(),
            Column::new("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).").wide(),
            Column::new("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).").wide(),
        ]
    }

    fn cells(&self, node: &Node) -> Vec<Cell> {
        let info = node.status.as_ref().and_then(|s| s.node_info.as_ref());
        let or_unknown = |value: Option<&String>| {
            Cell::from(
                value
                    .filter(|v| !v.is_empty())
                    .map_or("<unknown>", |v| v.as_str()),
            )
        };
        vec![
            Cell::from(node.metadata.name.clone().unwrap_or_default()),
            Cell::from(status(node)),
            Cell::from(roles(node)),
            age(&node.metadata),
            Cell::from(info.map(|i| i.kubelet_version.clone()).unwrap_or_default()),
            Cell::from(address(node, "InternalIP")),
            Cell::from(address(node, "ExternalIP")),
            or_unknown(info.map(|i| &i.os_image)),
            or_unknown(info.map(|i| &i.kernel_version)),
            or_unknown(info.map(|i| &i.container_runtime_version)),
        ]
    }
}

const ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";

/// `Ready` or `NotReady` from the Ready condition (`Unknown` without one), plus
/// `SchedulingDisabled` for a cordoned node.
fn status(node: &Node) -> String {
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let mut parts = vec![match conditions.iter().find(|c| c.type_ == "Ready") {
        Some(ready) if ready.status == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        parts.push("SchedulingDisabled");
    }
    parts.join(",")
}

/// The sorted roles from `node-role.kubernetes.io/<role>` labels and the older
/// `kubernetes.io/role` label, or `<none>`.
fn roles(node: &Node) -> String {
    let mut roles = BTreeSet::new();
    for (key, value) in node.metadata.labels.iter().flatten() {
        if let Some(role) = key
            .strip_prefix("node-role.kubernetes.io/")
            .filter(|r| !r.is_empty())
        {
            roles.insert(role);
        } else if key == "kubernetes.io/role" && !value.is_empty() {
            roles.insert(value.as_str());
        }
    }
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

/// The first address of `kind`, or `<none>`.
fn address(node: &Node, kind: &str) -> String {
    let addresses = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default();
    addresses
        .iter()
        .find(|a| a.type_ == kind)
        .map_or_else(|| "<none>".into(), |a| a.address.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::table::rendered;

    fn node(value: Value) -> Node {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn status_reads_the_ready_condition() {
        let ready = json!({"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]});
        assert_eq!(status(&node(json!({"status": ready}))), "Ready");
        assert_eq!(
            status(&node(
                json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})
            )),
            "NotReady"
        );
        assert_eq!(status(&node(json!({}))), "Unknown");
        assert_eq!(
            status(&node(
                json!({"spec": {"unschedulable": true}, "status": ready})
            )),
            "Ready,SchedulingDisabled"
        );
    }

    #[test]
    fn roles_come_from_labels() {
        let labels = json!({"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "", "kubernetes.io/role": "master"});
        assert_eq!(
            roles(&node(json!({"metadata": {"labels": labels}}))),
            "control-plane,etcd,master"
        );
        assert_eq!(
            roles(&node(json!({"metadata": {"labels": {"app": "x"}}}))),
            "<none>"
        );
    }

    #[test]
    fn cells_fill_the_wide_columns() {
        let node = node(json!({
            "metadata": {"name": "worker-1"},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}, {"type": "Hostname", "address": "worker-1"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "",
                             "containerRuntimeVersion": "containerd://1.7.0", "architecture": "", "bootID": "",
                             "kubeProxyVersion": "", "machineID": "", "operatingSystem": "", "systemUUID": ""}
            }
        }));
        let cells = rendered(&Nodes.cells(&node), jiff::Timestamp::now());
        assert_eq!(cells.len(), Nodes.columns().len());
        assert_eq!(cells[4], "v1.33.0");
        assert_eq!(cells[5], "10.0.0.5");
        assert_eq!(cells[6], "<none>");
        assert_eq!(cells[8], "<unknown>");
    }

    #[test]
    fn taints_are_validated_and_cidrs_stay() {
        let tainted = node(json!({"spec": {"taints": [
            {"key": "dedicated", "effect": "NoSchedule"},
            {"key": "dedicated", "value": "other", "effect": "NoSchedule"},
            {"key": "x", "effect": "Sometimes"}
        ]}}));
        let lines: Vec<String> = Nodes
            .validate(&tainted)
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("metadata.taints[1]: Duplicate value: "),
            "{lines:?}"
        );
        assert!(lines[0].ends_with(": taints must be unique by key and effect pair"));
        assert_eq!(lines[1], "metadata.taints[2].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"");

        let mut old = node(json!({"spec": {"podCIDR": "10.244.1.0/24"}}));
        Nodes.default_fields(&mut old);
        let mut new = node(json!({"spec": {"podCIDR": "10.244.2.0/24"}}));
        Nodes.default_fields(&mut new);
        let causes = Nodes.validate_update(&new, &old);
        assert_eq!(
            causes[0].message,
            "Forbidden: node updates may not change podCIDR except from \"\" to valid"
        );
    }
}
