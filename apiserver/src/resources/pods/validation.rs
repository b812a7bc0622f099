//! Upstream's pod spec validation (`ValidatePodSpec` and the container, port, resource,
//! volume and toleration checks under it) for the fields learners actually write. Paths and
//! messages are upstream's so kubectl prints the explanation a learner finds in the docs.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, PodSpec, Probe, ResourceRequirements, Toleration, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as QuantityText;
use serde_json::Value;

use crate::error::Cause;
use crate::registry::validation::{self, name_errors};
use crate::registry::NameRule;
use crate::resources::quantity::{Quantity, FORMAT_ERROR};

const INT32_RANGE: &str = "must be between 1 and 2147483647, inclusive";
const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

/// `Required value: <detail>`, for the required fields upstream explains.
pub(crate) fn required_because(field: impl Into<String>, detail: &str) -> Cause {
    Cause { reason: "FieldValueRequired", field: field.into(), message: format!("Required value: {detail}") }
}

/// `Not found: "<value>"`: a reference to something the spec does not declare.
fn not_found(field: impl Into<String>, value: &str) -> Cause {
    Cause { reason: "FieldValueNotFound", field: field.into(), message: format!("Not found: {:?}", value) }
}

/// A closed set of values: `Required value` when empty, `Unsupported value` when unknown.
fn one_of(field: String, value: Option<&str>, supported: &[&str]) -> Option<Cause> {
    match value.unwrap_or("") {
        "" => Some(Cause::required(field)),
        v if supported.contains(&v) => None,
        v => Some(Cause::unsupported(field, &Value::from(v), supported)),
    }
}

/// Checks a pod spec found at `path` (`spec`, or `spec.template.spec` in a workload).
pub fn pod_spec(spec: &PodSpec, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let volumes = self::volumes(spec.volumes.as_deref().unwrap_or_default(), &format!("{path}.volumes"), &mut causes);
    causes.extend(containers(&spec.containers, &volumes, &format!("{path}.containers")));
    causes.extend(init_containers(
        spec.init_containers.as_deref().unwrap_or_default(),
        &spec.containers,
        &volumes,
        &format!("{path}.initContainers"),
    ));
    if spec.host_network == Some(true) {
        for (i, container) in spec.containers.iter().enumerate() {
            for (j, port) in container.ports.iter().flatten().enumerate() {
                if port.host_port.unwrap_or(0) != port.container_port {
                    causes.push(Cause::invalid(
                        format!("{path}.containers[{i}].ports[{j}].hostPort"),
                        &Value::from(port.host_port.unwrap_or(0)),
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    causes.extend(one_of(format!("{path}.restartPolicy"), spec.restart_policy.as_deref(), &["Always", "OnFailure", "Never"]));
    let dns_policy = spec.dns_policy.as_deref();
    causes.extend(one_of(
        format!("{path}.dnsPolicy"),
        dns_policy,
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    ));
    if dns_policy == Some("None") && spec.dns_config.is_none() {
        causes.push(required_because(format!("{path}.dnsConfig"), "must provide `dnsConfig` when `dnsPolicy` is None"));
    }
    causes.extend(validation::labels(spec.node_selector.as_ref(), &format!("{path}.nodeSelector")));
    for (i, gate) in spec.readiness_gates.iter().flatten().enumerate() {
        let field = format!("{path}.readinessGates[{i}].conditionType");
        for error in validation::qualified_name_errors(&gate.condition_type) {
            causes.push(Cause::invalid(&field, &Value::from(gate.condition_type.as_str()), error));
        }
    }
    let mut gates = BTreeSet::new();
    for (i, gate) in spec.scheduling_gates.iter().flatten().enumerate() {
        let field = format!("{path}.schedulingGates[{i}]");
        for error in validation::qualified_name_errors(&gate.name) {
            causes.push(Cause::invalid(&field, &Value::from(gate.name.as_str()), error));
        }
        if !gates.insert(gate.name.as_str()) {
            causes.push(Cause::duplicate(&field, &Value::from(gate.name.as_str())));
        }
    }
    for (field, value) in [("serviceAccountName", &spec.service_account_name), ("nodeName", &spec.node_name)] {
        if let Some(name) = value.as_deref().filter(|n| !n.is_empty()) {
            for error in name_errors(name, NameRule::Subdomain) {
                causes.push(Cause::invalid(format!("{path}.{field}"), &Value::from(name), error));
            }
        }
    }
    if let Some(seconds) = spec.active_deadline_seconds {
        if !(1..=i64::from(i32::MAX)).contains(&seconds) {
            causes.push(Cause::invalid(format!("{path}.activeDeadlineSeconds"), &Value::from(seconds), INT32_RANGE));
        }
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(name) = value.as_deref().filter(|n| !n.is_empty()) {
            for error in name_errors(name, NameRule::Label) {
                causes.push(Cause::invalid(format!("{path}.{field}"), &Value::from(name), error));
            }
        }
    }
    causes.extend(tolerations(spec.tolerations.as_deref().unwrap_or_default(), &format!("{path}.tolerations")));
    if let Some(name) = spec.priority_class_name.as_deref().filter(|n| !n.is_empty()) {
        for error in name_errors(name, NameRule::Subdomain) {
            causes.push(Cause::invalid(format!("{path}.priorityClassName"), &Value::from(name), error));
        }
    }
    if let Some(policy) = &spec.preemption_policy {
        causes.extend(one_of(format!("{path}.preemptionPolicy"), Some(policy), &["PreemptLowerPriority", "Never"]));
    }
    causes
}

/// Volume names and the required field of each common source; returns the declared names.
fn volumes<'a>(volumes: &'a [Volume], path: &str, causes: &mut Vec<Cause>) -> BTreeSet<&'a str> {
    let mut names = BTreeSet::new();
    for (i, volume) in volumes.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if volume.name.is_empty() {
            causes.push(Cause::required(format!("{at}.name")));
        } else {
            for error in name_errors(&volume.name, NameRule::Label) {
                causes.push(Cause::invalid(format!("{at}.name"), &Value::from(volume.name.as_str()), error));
            }
            if !names.insert(volume.name.as_str()) {
                causes.push(Cause::duplicate(format!("{at}.name"), &Value::from(volume.name.as_str())));
            }
        }
        let sources: Vec<String> = match serde_json::to_value(volume) {
            Ok(Value::Object(fields)) => fields.into_iter().map(|(k, _)| k).filter(|k| k != "name").collect(),
            _ => Vec::new(),
        };
        if let Some(extra) = sources.get(1) {
            causes.push(Cause::forbidden(format!("{at}.{extra}"), "may not specify more than 1 volume type"));
        }
        if volume.config_map.as_ref().is_some_and(|c| c.name.is_empty()) {
            causes.push(Cause::required(format!("{at}.configMap.name")));
        }
        if volume.secret.as_ref().is_some_and(|s| s.secret_name.as_deref().unwrap_or("").is_empty()) {
            causes.push(Cause::required(format!("{at}.secret.secretName")));
        }
        if volume.persistent_volume_claim.as_ref().is_some_and(|c| c.claim_name.is_empty()) {
            causes.push(Cause::required(format!("{at}.persistentVolumeClaim.claimName")));
        }
        if volume.host_path.as_ref().is_some_and(|h| h.path.is_empty()) {
            causes.push(Cause::required(format!("{at}.hostPath.path")));
        }
    }
    names
}

/// Regular containers: at least one, unique names, probes allowed, no restart policy.
fn containers(containers: &[Container], volumes: &BTreeSet<&str>, path: &str) -> Vec<Cause> {
    if containers.is_empty() {
        return vec![Cause::required(path)];
    }
    let mut causes = Vec::new();
    let mut names = BTreeSet::new();
    for (i, container) in containers.iter().enumerate() {
        let at = format!("{path}[{i}]");
        causes.extend(container_common(container, volumes, &at));
        if !names.insert(container.name.as_str()) {
            causes.push(Cause::duplicate(format!("{at}.name"), &Value::from(container.name.as_str())));
        }
        causes.extend(probes(container, &at));
        if container.restart_policy.is_some() {
            causes.push(Cause::forbidden(format!("{at}.restartPolicy"), "may not be set for non-init containers"));
        }
    }
    causes.extend(host_port_conflicts(containers, path));
    causes
}

/// Init containers: names unique across all containers; only sidecars (restartPolicy
/// Always) may have probes and lifecycle hooks.
fn init_containers(inits: &[Container], regular: &[Container], volumes: &BTreeSet<&str>, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut names: BTreeSet<&str> = regular.iter().map(|c| c.name.as_str()).collect();
    for (i, container) in inits.iter().enumerate() {
        let at = format!("{path}[{i}]");
        causes.extend(container_common(container, volumes, &at));
        let sidecar = container.restart_policy.as_deref() == Some("Always");
        if let Some(policy) = container.restart_policy.as_deref().filter(|p| *p != "Always") {
            causes.push(Cause::unsupported(format!("{at}.restartPolicy"), &Value::from(policy), &["Always"]));
        }
        if names.contains(container.name.as_str()) {
            causes.push(Cause::duplicate(format!("{at}.name"), &Value::from(container.name.as_str())));
        } else if !container.name.is_empty() {
            names.insert(container.name.as_str());
        }
        causes.extend(host_port_conflicts(std::slice::from_ref(container), path));
        if sidecar {
            causes.extend(probes(container, &at));
        } else {
            let forbidden = [
                ("lifecycle", container.lifecycle.is_some()),
                ("livenessProbe", container.liveness_probe.is_some()),
                ("readinessProbe", container.readiness_probe.is_some()),
                ("startupProbe", container.startup_probe.is_some()),
            ];
            for (field, set) in forbidden {
                if set {
                    causes.push(Cause::forbidden(format!("{at}.{field}"), "may not be set for init containers without restartPolicy=Always"));
                }
            }
        }
    }
    causes
}

/// Upstream's `validateContainerCommon`: what every kind of container must satisfy.
fn container_common(container: &Container, volumes: &BTreeSet<&str>, at: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if container.name.is_empty() {
        causes.push(Cause::required(format!("{at}.name")));
    } else {
        for error in name_errors(&container.name, NameRule::Label) {
            causes.push(Cause::invalid(format!("{at}.name"), &Value::from(container.name.as_str()), error));
        }
    }
    if container.image.as_deref().unwrap_or("").is_empty() {
        causes.push(Cause::required(format!("{at}.image")));
    }
    match container.termination_message_policy.as_deref().unwrap_or("") {
        "File" | "FallbackToLogsOnError" => {}
        "" => causes.push(required_because(format!("{at}.terminationMessagePolicy"), "must be 'File' or 'FallbackToLogsOnError'")),
        other => causes.push(Cause::unsupported(
            format!("{at}.terminationMessagePolicy"),
            &Value::from(other),
            &["File", "FallbackToLogsOnError"],
        )),
    }
    causes.extend(ports(container, at));
    for (i, var) in container.env.iter().flatten().enumerate() {
        let field = format!("{at}.env[{i}]");
        if var.name.is_empty() {
            causes.push(Cause::required(format!("{field}.name")));
        } else if !var.name.chars().all(|c| c.is_ascii_graphic() || c == ' ') || var.name.contains('=') {
            causes.push(Cause::invalid(
                format!("{field}.name"),
                &Value::from(var.name.as_str()),
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
        if var.value_from.is_some() && !var.value.as_deref().unwrap_or("").is_empty() {
            causes.push(Cause::invalid(
                format!("{field}.valueFrom"),
                &Value::from(""),
                "may not be specified when `value` is not empty",
            ));
        }
    }
    causes.extend(volume_mounts(container.volume_mounts.as_deref().unwrap_or_default(), volumes, &format!("{at}.volumeMounts")));
    causes.extend(one_of(format!("{at}.imagePullPolicy"), container.image_pull_policy.as_deref(), &["Always", "IfNotPresent", "Never"]));
    if let Some(resources) = &container.resources {
        causes.extend(resource_requirements(resources, &format!("{at}.resources")));
    }
    causes
}

/// Upstream's `validateContainerPorts`: names, numbers and protocols.
fn ports(container: &Container, at: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut names = BTreeSet::new();
    for (i, port) in container.ports.iter().flatten().enumerate() {
        let field = format!("{at}.ports[{i}]");
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let errors = port_name_errors(name);
            if !errors.is_empty() {
                for error in errors {
                    causes.push(Cause::invalid(format!("{field}.name"), &Value::from(name), error));
                }
            } else if !names.insert(name) {
                causes.push(Cause::duplicate(format!("{field}.name"), &Value::from(name)));
            }
        }
        if port.container_port == 0 {
            causes.push(Cause::required(format!("{field}.containerPort")));
        } else if !(1..=65535).contains(&port.container_port) {
            causes.push(Cause::invalid(format!("{field}.containerPort"), &Value::from(port.container_port), PORT_RANGE));
        }
        if let Some(host_port) = port.host_port.filter(|p| *p != 0) {
            if !(1..=65535).contains(&host_port) {
                causes.push(Cause::invalid(format!("{field}.hostPort"), &Value::from(host_port), PORT_RANGE));
            }
        }
        causes.extend(one_of(format!("{field}.protocol"), port.protocol.as_deref(), &["SCTP", "TCP", "UDP"]));
    }
    causes
}

/// Upstream's `IsValidPortName`: an IANA service name.
fn port_name_errors(name: &str) -> Vec<&'static str> {
    let mut errors = Vec::new();
    if name.len() > 15 {
        errors.push("must be no more than 15 characters");
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        errors.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        errors.push("must contain at least one letter (a-z)");
    }
    if name.contains("--") {
        errors.push("must not contain consecutive hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        errors.push("must not begin or end with a hyphen");
    }
    errors
}

/// Host ports may be claimed once per protocol and host IP across the given containers.
fn host_port_conflicts(containers: &[Container], path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, container) in containers.iter().enumerate() {
        for (j, port) in container.ports.iter().flatten().enumerate() {
            let Some(host_port) = port.host_port.filter(|p| *p != 0) else { continue };
            let key = format!(
                "{}/{}/{host_port}",
                port.protocol.as_deref().unwrap_or(""),
                port.host_ip.as_deref().unwrap_or("")
            );
            if !seen.insert(key.clone()) {
                causes.push(Cause::duplicate(format!("{path}[{i}].ports[{j}].hostPort"), &Value::from(key)));
            }
        }
    }
    causes
}

fn volume_mounts(mounts: &[VolumeMount], volumes: &BTreeSet<&str>, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut mount_paths = BTreeSet::new();
    for (i, mount) in mounts.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if mount.name.is_empty() {
            causes.push(Cause::required(format!("{at}.name")));
        }
        if !volumes.contains(mount.name.as_str()) {
            causes.push(not_found(format!("{at}.name"), &mount.name));
        }
        if mount.mount_path.is_empty() {
            causes.push(Cause::required(format!("{at}.mountPath")));
        }
        if !mount_paths.insert(mount.mount_path.as_str()) {
            causes.push(Cause::invalid(format!("{at}.mountPath"), &Value::from(mount.mount_path.as_str()), "must be unique"));
        }
    }
    causes
}

/// Probes need exactly one handler; liveness and startup probes must succeed once.
fn probes(container: &Container, at: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let probes: [(&str, &Option<Probe>); 3] = [
        ("livenessProbe", &container.liveness_probe),
        ("readinessProbe", &container.readiness_probe),
        ("startupProbe", &container.startup_probe),
    ];
    for (name, probe) in probes {
        let Some(probe) = probe else { continue };
        let field = format!("{at}.{name}");
        let handlers = [
            ("exec", probe.exec.is_some()),
            ("httpGet", probe.http_get.is_some()),
            ("tcpSocket", probe.tcp_socket.is_some()),
            ("grpc", probe.grpc.is_some()),
        ];
        let mut set = handlers.iter().filter(|(_, present)| *present);
        match (set.next(), set.next()) {
            (None, _) => causes.push(required_because(field.clone(), "must specify a handler type")),
            (Some(_), Some((second, _))) => {
                causes.push(Cause::forbidden(format!("{field}.{second}"), "may not specify more than 1 handler type"));
            }
            _ => {}
        }
        if name != "readinessProbe" {
            if let Some(threshold) = probe.success_threshold.filter(|t| *t != 1) {
                causes.push(Cause::invalid(format!("{field}.successThreshold"), &Value::from(threshold), "must be 1"));
            }
        }
    }
    causes
}

/// Resource names (`cpu`, `memory`, `hugepages-2Mi`, `example.com/gpu`...), non-negative
/// amounts, and requests within limits (equal to them for resources that cannot overcommit).
fn resource_requirements(resources: &ResourceRequirements, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let empty = BTreeMap::new();
    let limits = resources.limits.as_ref().unwrap_or(&empty);
    let requests = resources.requests.as_ref().unwrap_or(&empty);
    let limits_path = format!("{path}.limits");
    let requests_path = format!("{path}.requests");
    let mut parsed_limits = BTreeMap::new();
    for (name, amount) in limits {
        let field = format!("{limits_path}[{name}]");
        causes.extend(resource_name(name, &field));
        if let Some(quantity) = quantity(amount, &field, &mut causes) {
            parsed_limits.insert(name.as_str(), quantity);
        }
    }
    for (name, amount) in requests {
        let field = format!("{requests_path}[{name}]");
        causes.extend(resource_name(name, &field));
        let Some(request) = quantity(amount, &field, &mut causes) else { continue };
        match (limits.get(name), parsed_limits.get(name.as_str())) {
            (Some(limit), Some(parsed)) => {
                if !overcommit_allowed(name) && request != *parsed {
                    causes.push(Cause::invalid(
                        &requests_path,
                        &Value::from(amount.0.as_str()),
                        format!("must be equal to {name} limit of {}", limit.0),
                    ));
                } else if request > *parsed {
                    causes.push(Cause::invalid(
                        &requests_path,
                        &Value::from(amount.0.as_str()),
                        format!("must be less than or equal to {name} limit of {}", limit.0),
                    ));
                }
            }
            (None, _) if !overcommit_allowed(name) => {
                causes.push(required_because(&limits_path, "Limit must be set for non overcommitable resources"));
            }
            _ => {}
        }
    }
    causes
}

/// Parses an amount, recording why it is unusable; `None` when it is.
fn quantity(amount: &QuantityText, field: &str, causes: &mut Vec<Cause>) -> Option<Quantity> {
    let value = Value::from(amount.0.as_str());
    match Quantity::parse(&amount.0) {
        None => {
            causes.push(Cause::invalid(field, &value, FORMAT_ERROR));
            None
        }
        Some(q) if q.is_negative() => {
            causes.push(Cause::invalid(field, &value, "must be greater than or equal to 0"));
            None
        }
        Some(q) => Some(q),
    }
}

/// Native resources are unprefixed or in a `kubernetes.io` domain.
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Only native, non-hugepage resources may request less than their limit.
fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !name.starts_with("hugepages-")
}

/// Upstream's `validateContainerResourceName`.
fn resource_name(name: &str, field: &str) -> Vec<Cause> {
    let value = Value::from(name);
    let mut causes: Vec<Cause> =
        validation::qualified_name_errors(name).into_iter().map(|e| Cause::invalid(field, &value, e)).collect();
    if !name.contains('/') {
        let standard = matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
        if !standard {
            causes.push(Cause::invalid(field, &value, "must be a standard resource for containers"));
        }
    } else if !is_native(name) && (name.starts_with("requests.") || !validation::qualified_name_errors(&format!("requests.{name}")).is_empty()) {
        causes.push(Cause::invalid(field, &value, "doesn't follow extended resource name standard"));
    }
    causes
}

/// Upstream's `ValidateTolerations`.
pub fn tolerations(tolerations: &[Toleration], path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, toleration) in tolerations.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let key = toleration.key.as_deref().unwrap_or("");
        let operator = toleration.operator.as_deref().unwrap_or("");
        let effect = toleration.effect.as_deref().unwrap_or("");
        let value = toleration.value.as_deref().unwrap_or("");
        if !key.is_empty() {
            for error in validation::qualified_name_errors(key) {
                causes.push(Cause::invalid(format!("{at}.key"), &Value::from(key), error));
            }
        }
        if key.is_empty() && operator != "Exists" {
            causes.push(Cause::invalid(
                format!("{at}.operator"),
                &Value::from(operator),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if toleration.toleration_seconds.is_some() && effect != "NoExecute" {
            causes.push(Cause::invalid(format!("{at}.effect"), &Value::from(effect), "effect must be 'NoExecute' when `tolerationSeconds` is set"));
        }
        match operator {
            "Equal" | "" => {
                if let Some(error) = validation::label_value_error(value) {
                    causes.push(Cause::invalid(format!("{at}.operator"), &Value::from(value), error));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    let shown = serde_json::to_value(toleration).unwrap_or(Value::Null);
                    causes.push(Cause::invalid(format!("{at}.operator"), &shown, "value must be empty when `operator` is 'Exists'"));
                }
            }
            other => causes.push(Cause::unsupported(format!("{at}.operator"), &Value::from(other), &["Equal", "Exists"])),
        }
        if !effect.is_empty() {
            causes.extend(taint_effect(effect, &format!("{at}.effect")));
        }
    }
    causes
}

/// Upstream's `validateTaintEffect`: an empty effect is for the caller to allow or refuse.
pub fn taint_effect(effect: &str, field: &str) -> Option<Cause> {
    one_of(field.to_string(), Some(effect), &["NoSchedule", "PreferNoSchedule", "NoExecute"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, Pod};

    fn defaulted(containers: Vec<Container>) -> PodSpec {
        let mut pod = Pod { spec: Some(PodSpec { containers, ..Default::default() }), ..Default::default() };
        super::super::defaults::pod(&mut pod);
        pod.spec.unwrap()
    }

    fn container(name: &str, image: &str) -> Container {
        Container { name: name.into(), image: Some(image.into()), ..Default::default() }
    }

    fn lines(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn a_valid_spec_has_no_causes() {
        assert_eq!(lines(&pod_spec(&defaulted(vec![container("web", "nginx")]), "spec")), Vec::<String>::new());
    }

    #[test]
    fn containers_are_required_and_named() {
        assert_eq!(lines(&pod_spec(&defaulted(vec![]), "spec")), ["spec.containers: Required value"]);
        let spec = defaulted(vec![container("Web", "nginx"), container("a", ""), container("a", "x")]);
        let found = lines(&pod_spec(&spec, "spec"));
        assert!(found[0].starts_with("spec.containers[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label"), "{found:?}");
        assert_eq!(found[1], "spec.containers[1].image: Required value");
        assert_eq!(found[2], "spec.containers[2].name: Duplicate value: \"a\"");
    }

    #[test]
    fn ports_policies_and_resources_use_upstream_wording() {
        let mut web = container("web", "nginx");
        web.ports = Some(vec![
            ContainerPort { container_port: 70000, ..Default::default() },
            ContainerPort { container_port: 0, protocol: Some("HTTP".into()), ..Default::default() },
        ]);
        web.image_pull_policy = Some("Sometimes".into());
        let quantity = |s: &str| QuantityText(s.into());
        web.resources = Some(ResourceRequirements {
            requests: Some([("cpu".to_string(), quantity("2")), ("memory".to_string(), quantity("-1"))].into()),
            limits: Some([("cpu".to_string(), quantity("1"))].into()),
            ..Default::default()
        });
        let mut spec = defaulted(vec![web]);
        spec.restart_policy = Some("Sometimes".into());
        assert_eq!(
            lines(&pod_spec(&spec, "spec")),
            [
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[1].containerPort: Required value",
                "spec.containers[0].ports[1].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
                "spec.containers[0].resources.requests[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            ]
        );
    }

    #[test]
    fn mounts_must_name_declared_volumes() {
        let mut web = container("web", "nginx");
        web.volume_mounts = Some(vec![VolumeMount { name: "data".into(), mount_path: "/data".into(), ..Default::default() }]);
        assert_eq!(lines(&pod_spec(&defaulted(vec![web]), "spec")), ["spec.containers[0].volumeMounts[0].name: Not found: \"data\""]);
    }

    #[test]
    fn tolerations_follow_upstream_rules() {
        let toleration = Toleration { operator: Some("Equal".into()), effect: Some("NoRun".into()), ..Default::default() };
        assert_eq!(
            lines(&tolerations(&[toleration], "spec.tolerations")),
            [
                "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                "spec.tolerations[0].effect: Unsupported value: \"NoRun\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
            ]
        );
    }
}
