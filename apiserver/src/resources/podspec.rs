//! Pod spec defaulting and validation shared by every resource that embeds one: pods, and
//! the pod templates of deployments, replica sets and the other workloads. Upstream applies
//! the same `SetDefaults_PodSpec`/`SetDefaults_Container` functions and `ValidatePodSpec`
//! checks to all of them, so a template stored by a deployment reads exactly like the pod
//! its controller will create from it.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, EphemeralContainer, HTTPGetAction, Lifecycle, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, Volume,
};
use serde_json::Value;

use crate::error::Cause;
use crate::registry::validation;
use crate::registry::NameRule;

/// Upstream's defaults of a pod template (its spec; template metadata has none).
pub fn default_pod_template(template: &mut PodTemplateSpec) {
    default_pod_spec(template.spec.get_or_insert_with(Default::default));
}

/// Upstream's `SetDefaults_PodSpec` and the defaults of everything nested in a pod spec
/// (containers, probes, volumes, downward API references).
pub fn default_pod_spec(spec: &mut PodSpec) {
    set_if_none(&mut spec.dns_policy, "ClusterFirst");
    set_if_none(&mut spec.restart_policy, "Always");
    spec.security_context.get_or_insert_with(PodSecurityContext::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    set_if_none(&mut spec.scheduler_name, "default-scheduler");
    for container in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        default_container(container);
    }
    for container in spec.ephemeral_containers.iter_mut().flatten() {
        default_ephemeral_container(container);
    }
    for volume in spec.volumes.iter_mut().flatten() {
        default_volume(volume);
    }
}

/// `SetDefaults_Container` plus the defaults of the container's nested fields.
fn default_container(container: &mut Container) {
    if container.image_pull_policy.as_deref().unwrap_or("").is_empty() {
        container.image_pull_policy = Some(pull_policy(container.image.as_deref().unwrap_or("")).into());
    }
    set_if_none(&mut container.termination_message_path, "/dev/termination-log");
    set_if_none(&mut container.termination_message_policy, "File");
    container.resources.get_or_insert_with(ResourceRequirements::default);
    for port in container.ports.iter_mut().flatten() {
        set_if_none(&mut port.protocol, "TCP");
    }
    for probe in [&mut container.liveness_probe, &mut container.readiness_probe, &mut container.startup_probe] {
        if let Some(probe) = probe {
            default_probe(probe);
        }
    }
    if let Some(lifecycle) = &mut container.lifecycle {
        default_lifecycle(lifecycle);
    }
    for env in container.env.iter_mut().flatten() {
        if let Some(field_ref) = env.value_from.as_mut().and_then(|from| from.field_ref.as_mut()) {
            set_if_none(&mut field_ref.api_version, "v1");
        }
    }
}

/// Ephemeral containers share the container defaults.
fn default_ephemeral_container(container: &mut EphemeralContainer) {
    if container.image_pull_policy.as_deref().unwrap_or("").is_empty() {
        container.image_pull_policy = Some(pull_policy(container.image.as_deref().unwrap_or("")).into());
    }
    set_if_none(&mut container.termination_message_path, "/dev/termination-log");
    set_if_none(&mut container.termination_message_policy, "File");
    container.resources.get_or_insert_with(ResourceRequirements::default);
}

/// `Always` for `:latest` or an untagged image, `IfNotPresent` otherwise (a digest without a
/// tag pins the image, and an unparsable empty name falls back to `IfNotPresent` too).
pub fn pull_policy(image: &str) -> &'static str {
    if image.is_empty() {
        return "IfNotPresent";
    }
    let (name, digested) = match image.split_once('@') {
        Some((name, _)) => (name, true),
        None => (image, false),
    };
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    let tag = match last_segment.rsplit_once(':') {
        Some((_, tag)) => Some(tag),
        None if digested => None,
        None => Some("latest"),
    };
    if tag == Some("latest") {
        "Always"
    } else {
        "IfNotPresent"
    }
}

fn default_probe(probe: &mut Probe) {
    probe.timeout_seconds.get_or_insert(1);
    probe.period_seconds.get_or_insert(10);
    probe.success_threshold.get_or_insert(1);
    probe.failure_threshold.get_or_insert(3);
    if let Some(http) = &mut probe.http_get {
        default_http_get(http);
    }
    if let Some(grpc) = &mut probe.grpc {
        grpc.service.get_or_insert_with(String::new);
    }
}

fn default_lifecycle(lifecycle: &mut Lifecycle) {
    for handler in [&mut lifecycle.post_start, &mut lifecycle.pre_stop].into_iter().flatten() {
        if let Some(http) = &mut handler.http_get {
            default_http_get(http);
        }
    }
}

fn default_http_get(http: &mut HTTPGetAction) {
    if http.path.as_deref().unwrap_or("").is_empty() {
        http.path = Some("/".into());
    }
    set_if_none(&mut http.scheme, "HTTP");
}

/// `SetDefaults_Volume` and the defaults of the volume sources: a volume without a source
/// is an `emptyDir`, projected files get mode 0644.
fn default_volume(volume: &mut Volume) {
    const DEFAULT_MODE: i32 = 0o644;
    let has_source = serde_json::to_value(&*volume)
        .ok()
        .and_then(|v| v.as_object().map(|fields| fields.keys().any(|k| k != "name")))
        .unwrap_or(true);
    if !has_source {
        volume.empty_dir = Some(Default::default());
    }
    if let Some(source) = &mut volume.config_map {
        source.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(source) = &mut volume.secret {
        source.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(source) = &mut volume.downward_api {
        source.default_mode.get_or_insert(DEFAULT_MODE);
        default_downward_files(source.items.iter_mut().flatten());
    }
    if let Some(source) = &mut volume.projected {
        source.default_mode.get_or_insert(DEFAULT_MODE);
        for projection in source.sources.iter_mut().flatten() {
            if let Some(token) = &mut projection.service_account_token {
                token.expiration_seconds.get_or_insert(3600);
            }
            if let Some(downward) = &mut projection.downward_api {
                default_downward_files(downward.items.iter_mut().flatten());
            }
        }
    }
    if let Some(source) = &mut volume.host_path {
        source.type_.get_or_insert_with(String::new);
    }
}

fn default_downward_files<'a>(files: impl Iterator<Item = &'a mut DownwardAPIVolumeFile>) {
    for file in files {
        if let Some(field_ref) = &mut file.field_ref {
            set_if_none(&mut field_ref.api_version, "v1");
        }
    }
}

fn set_if_none(field: &mut Option<String>, value: &str) {
    if field.is_none() {
        *field = Some(value.to_string());
    }
}

/// The checks of upstream's `ValidatePodSpec` a learner meets (missing containers or
/// images, bad names, ports, policies, mounts of undeclared volumes), for the spec at
/// `path` (`spec` of a pod, `spec.template.spec` of a deployment).
pub fn validate_pod_spec(spec: &PodSpec, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut volumes = BTreeSet::new();
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        let field = format!("{path}.volumes[{i}].name");
        if volume.name.is_empty() {
            causes.push(Cause::required(field));
        } else {
            causes.extend(label_errors(&volume.name, &field));
            if !volumes.insert(volume.name.as_str()) {
                causes.push(Cause::duplicate(field, &Value::from(volume.name.as_str())));
            }
        }
    }
    let mut names = BTreeSet::new();
    for (i, container) in spec.init_containers.iter().flatten().enumerate() {
        causes.extend(validate_container(container, &format!("{path}.initContainers[{i}]"), &mut names, &volumes));
    }
    if spec.containers.is_empty() {
        causes.push(Cause::required(format!("{path}.containers")));
    }
    for (i, container) in spec.containers.iter().enumerate() {
        causes.extend(validate_container(container, &format!("{path}.containers[{i}]"), &mut names, &volumes));
    }
    causes.extend(supported(spec.restart_policy.as_deref(), &format!("{path}.restartPolicy"), &["Always", "Never", "OnFailure"]));
    causes.extend(supported(
        spec.dns_policy.as_deref(),
        &format!("{path}.dnsPolicy"),
        &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
    ));
    if let Some(seconds) = spec.termination_grace_period_seconds.filter(|s| *s < 0) {
        causes.push(Cause::invalid(
            format!("{path}.terminationGracePeriodSeconds"),
            &Value::from(seconds),
            "must be greater than or equal to 0",
        ));
    }
    if let Some(seconds) = spec.active_deadline_seconds.filter(|s| *s <= 0) {
        causes.push(Cause::invalid(format!("{path}.activeDeadlineSeconds"), &Value::from(seconds), "must be between 1 and 2147483647, inclusive"));
    }
    causes
}

fn validate_container(container: &Container, path: &str, names: &mut BTreeSet<String>, volumes: &BTreeSet<&str>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name_field = format!("{path}.name");
    if container.name.is_empty() {
        causes.push(Cause::required(name_field));
    } else {
        causes.extend(label_errors(&container.name, &name_field));
        if !names.insert(container.name.clone()) {
            causes.push(Cause::duplicate(name_field, &Value::from(container.name.as_str())));
        }
    }
    if container.image.as_deref().unwrap_or("").trim().is_empty() {
        causes.push(Cause::required(format!("{path}.image")));
    }
    causes.extend(supported(container.image_pull_policy.as_deref(), &format!("{path}.imagePullPolicy"), &["Always", "IfNotPresent", "Never"]));
    causes.extend(supported(
        container.termination_message_policy.as_deref(),
        &format!("{path}.terminationMessagePolicy"),
        &["FallbackToLogsOnError", "File"],
    ));
    let mut port_names = BTreeSet::new();
    for (i, port) in container.ports.iter().flatten().enumerate() {
        let port_path = format!("{path}.ports[{i}]");
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            causes.extend(port_name_errors(name).into_iter().map(|e| Cause::invalid(format!("{port_path}.name"), &Value::from(name), e)));
            if !port_names.insert(name) {
                causes.push(Cause::duplicate(format!("{port_path}.name"), &Value::from(name)));
            }
        }
        if port.container_port == 0 {
            causes.push(Cause::required(format!("{port_path}.containerPort")));
        } else if !(1..=65535).contains(&port.container_port) {
            causes.push(Cause::invalid(format!("{port_path}.containerPort"), &Value::from(port.container_port), PORT_RANGE));
        }
        if let Some(host_port) = port.host_port.filter(|p| *p != 0 && !(1..=65535).contains(p)) {
            causes.push(Cause::invalid(format!("{port_path}.hostPort"), &Value::from(host_port), PORT_RANGE));
        }
        causes.extend(supported(port.protocol.as_deref(), &format!("{port_path}.protocol"), &["SCTP", "TCP", "UDP"]));
    }
    for (i, mount) in container.volume_mounts.iter().flatten().enumerate() {
        let mount_path = format!("{path}.volumeMounts[{i}]");
        if mount.name.is_empty() {
            causes.push(Cause::required(format!("{mount_path}.name")));
        } else if !volumes.contains(mount.name.as_str()) {
            causes.push(Cause::not_found(format!("{mount_path}.name"), &Value::from(mount.name.as_str())));
        }
        if mount.mount_path.is_empty() {
            causes.push(Cause::required(format!("{mount_path}.mountPath")));
        }
    }
    causes
}

/// Upstream's `InclusiveRangeError(1, 65535)`.
pub const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

fn label_errors(name: &str, field: &str) -> Vec<Cause> {
    validation::name_errors(name, NameRule::Label).into_iter().map(|e| Cause::invalid(field, &Value::from(name), e)).collect()
}

/// Upstream's `IsValidPortName` (an IANA service name).
pub fn port_name_errors(name: &str) -> Vec<&'static str> {
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

/// `Required` when unset, `NotSupported` when not one of `values` (sorted, as upstream
/// lists them).
fn supported(value: Option<&str>, field: &str, values: &[&str]) -> Option<Cause> {
    match value {
        None | Some("") => Some(Cause::required(field)),
        Some(v) if !values.contains(&v) => Some(Cause::unsupported(field, &Value::from(v), values)),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(pull_policy("nginx"), "Always");
        assert_eq!(pull_policy("nginx:latest"), "Always");
        assert_eq!(pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(pull_policy("localhost:5000/nginx:1.0"), "IfNotPresent");
        assert_eq!(pull_policy("nginx@sha256:abc"), "IfNotPresent");
        assert_eq!(pull_policy("nginx:latest@sha256:abc"), "Always");
    }

    #[test]
    fn defaults_fill_a_template() {
        let mut spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}],
                            "readinessProbe": {"httpGet": {"port": 80}}}],
            "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "cfg"}}]
        }))
        .unwrap();
        default_pod_spec(&mut spec);
        let value = serde_json::to_value(&spec).unwrap();
        assert_eq!(value["dnsPolicy"], "ClusterFirst");
        assert_eq!(value["restartPolicy"], "Always");
        assert_eq!(value["schedulerName"], "default-scheduler");
        assert_eq!(value["terminationGracePeriodSeconds"], 30);
        assert_eq!(value["securityContext"], serde_json::json!({}));
        let container = &value["containers"][0];
        assert_eq!(container["imagePullPolicy"], "Always");
        assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(container["terminationMessagePolicy"], "File");
        assert_eq!(container["resources"], serde_json::json!({}));
        assert_eq!(container["ports"][0]["protocol"], "TCP");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/");
        assert_eq!(container["readinessProbe"]["periodSeconds"], 10);
        assert_eq!(value["volumes"][0]["emptyDir"], serde_json::json!({}));
        assert_eq!(value["volumes"][1]["configMap"]["defaultMode"], 420);
    }

    #[test]
    fn validation_reports_upstream_messages() {
        let mut spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [
                {"name": "web", "image": "nginx", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "web", "ports": [{"containerPort": 70000}]}
            ]
        }))
        .unwrap();
        default_pod_spec(&mut spec);
        let lines: Vec<String> =
            validate_pod_spec(&spec, "spec.template.spec").iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        assert_eq!(
            lines,
            [
                "spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
                "spec.template.spec.containers[1].name: Duplicate value: \"web\"",
                "spec.template.spec.containers[1].image: Required value",
                "spec.template.spec.containers[1].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ]
        );
        let empty = validate_pod_spec(&PodSpec::default(), "spec");
        assert_eq!(empty[0].field, "spec.containers");
    }
}
