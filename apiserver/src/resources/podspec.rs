//! Pod spec defaulting and validation shared by every resource that embeds one: pods, and
//! the pod templates of deployments, replica sets and the other workloads. Upstream applies
//! the same `SetDefaults_PodSpec`/`SetDefaults_Container` functions and `ValidatePodSpec`
//! checks to all of them, so a template stored by a deployment reads exactly like the pod
//! its controller will create from it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, EphemeralContainer, HTTPGetAction, Lifecycle,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Toleration, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as QuantityText;
use serde_json::Value;

use crate::error::Cause;
use crate::registry::validation;
use crate::registry::NameRule;
use machinery::quantity::{self, Quantity};

/// Upstream's defaults of a pod template (its spec; template metadata has none).
pub fn default_pod_template(template: &mut PodTemplateSpec) {
    default_pod_spec(template.spec.get_or_insert_with(Default::default));
}

/// Upstream's `SetDefaults_PodSpec` and the defaults of everything nested in a pod spec
/// (containers, probes, volumes, downward API references).
pub fn default_pod_spec(spec: &mut PodSpec) {
    set_if_none(&mut spec.dns_policy, "ClusterFirst");
    set_if_none(&mut spec.restart_policy, "Always");
    spec.security_context
        .get_or_insert_with(PodSecurityContext::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    set_if_none(&mut spec.scheduler_name, "default-scheduler");
    // The v1 conversion reads the deprecated `serviceAccount` as an alias and echoes the real
    // field back into it.
    if spec
        .service_account_name
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        spec.service_account_name = spec.service_account.clone().filter(|name| !name.is_empty());
    }
    spec.service_account = spec.service_account_name.clone();
    for container in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
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
    if container
        .image_pull_policy
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        container.image_pull_policy =
            Some(pull_policy(container.image.as_deref().unwrap_or("")).into());
    }
    set_if_none(
        &mut container.termination_message_path,
        "/dev/termination-log",
    );
    set_if_none(&mut container.termination_message_policy, "File");
    container
        .resources
        .get_or_insert_with(ResourceRequirements::default);
    for port in container.ports.iter_mut().flatten() {
        set_if_none(&mut port.protocol, "TCP");
    }
    for probe in [
        &mut container.liveness_probe,
        &mut container.readiness_probe,
        &mut container.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(lifecycle) = &mut container.lifecycle {
        default_lifecycle(lifecycle);
    }
    for env in container.env.iter_mut().flatten() {
        if let Some(field_ref) = env
            .value_from
            .as_mut()
            .and_then(|from| from.field_ref.as_mut())
        {
            set_if_none(&mut field_ref.api_version, "v1");
        }
    }
}

/// Ephemeral containers share the container defaults.
fn default_ephemeral_container(container: &mut EphemeralContainer) {
    if container
        .image_pull_policy
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        container.image_pull_policy =
            Some(pull_policy(container.image.as_deref().unwrap_or("")).into());
    }
    set_if_none(
        &mut container.termination_message_path,
        "/dev/termination-log",
    );
    set_if_none(&mut container.termination_message_policy, "File");
    container
        .resources
        .get_or_insert_with(ResourceRequirements::default);
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
    for handler in [&mut lifecycle.post_start, &mut lifecycle.pre_stop]
        .into_iter()
        .flatten()
    {
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
        .and_then(|v| {
            v.as_object()
                .map(|fields| fields.keys().any(|k| k != "name"))
        })
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
        causes.extend(validate_container(
            container,
            &format!("{path}.initContainers[{i}]"),
            &mut names,
            &volumes,
        ));
    }
    if spec.containers.is_empty() {
        causes.push(Cause::required(format!("{path}.containers")));
    }
    for (i, container) in spec.containers.iter().enumerate() {
        causes.extend(validate_container(
            container,
            &format!("{path}.containers[{i}]"),
            &mut names,
            &volumes,
        ));
    }
    causes.extend(supported(
        spec.restart_policy.as_deref(),
        &format!("{path}.restartPolicy"),
        &["Always", "OnFailure", "Never"],
    ));
    causes.extend(supported(
        spec.dns_policy.as_deref(),
        &format!("{path}.dnsPolicy"),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    ));
    if let Some(seconds) = spec.termination_grace_period_seconds.filter(|s| *s < 0) {
        causes.push(Cause::invalid(
            format!("{path}.terminationGracePeriodSeconds"),
            &Value::from(seconds),
            "must be greater than or equal to 0",
        ));
    }
    if let Some(seconds) = spec.active_deadline_seconds.filter(|s| *s <= 0) {
        causes.push(Cause::invalid(
            format!("{path}.activeDeadlineSeconds"),
            &Value::from(seconds),
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    causes.extend(validate_pod_spec_details(spec, path));
    causes
}

fn validate_container(
    container: &Container,
    path: &str,
    names: &mut BTreeSet<String>,
    volumes: &BTreeSet<&str>,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name_field = format!("{path}.name");
    if container.name.is_empty() {
        causes.push(Cause::required(name_field));
    } else {
        causes.extend(label_errors(&container.name, &name_field));
        if !names.insert(container.name.clone()) {
            causes.push(Cause::duplicate(
                name_field,
                &Value::from(container.name.as_str()),
            ));
        }
    }
    if container.image.as_deref().unwrap_or("").trim().is_empty() {
        causes.push(Cause::required(format!("{path}.image")));
    }
    causes.extend(supported(
        container.image_pull_policy.as_deref(),
        &format!("{path}.imagePullPolicy"),
        &["Always", "IfNotPresent", "Never"],
    ));
    causes.extend(supported(
        container.termination_message_policy.as_deref(),
        &format!("{path}.terminationMessagePolicy"),
        &["File", "FallbackToLogsOnError"],
    ));
    let mut port_names = BTreeSet::new();
    for (i, port) in container.ports.iter().flatten().enumerate() {
        let port_path = format!("{path}.ports[{i}]");
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            causes.extend(
                port_name_errors(name)
                    .into_iter()
                    .map(|e| Cause::invalid(format!("{port_path}.name"), &Value::from(name), e)),
            );
            if !port_names.insert(name) {
                causes.push(Cause::duplicate(
                    format!("{port_path}.name"),
                    &Value::from(name),
                ));
            }
        }
        if port.container_port == 0 {
            causes.push(Cause::required(format!("{port_path}.containerPort")));
        } else if !(1..=65535).contains(&port.container_port) {
            causes.push(Cause::invalid(
                format!("{port_path}.containerPort"),
                &Value::from(port.container_port),
                PORT_RANGE,
            ));
        }
        if let Some(host_port) = port
            .host_port
            .filter(|p| *p != 0 && !(1..=65535).contains(p))
        {
            causes.push(Cause::invalid(
                format!("{port_path}.hostPort"),
                &Value::from(host_port),
                PORT_RANGE,
            ));
        }
        causes.extend(supported(
            port.protocol.as_deref(),
            &format!("{port_path}.protocol"),
            &["SCTP", "TCP", "UDP"],
        ));
    }
    for (i, mount) in container.volume_mounts.iter().flatten().enumerate() {
        let mount_path = format!("{path}.volumeMounts[{i}]");
        if mount.name.is_empty() {
            causes.push(Cause::required(format!("{mount_path}.name")));
        } else if !volumes.contains(mount.name.as_str()) {
            causes.push(Cause::not_found(
                format!("{mount_path}.name"),
                &Value::from(mount.name.as_str()),
            ));
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
    validation::name_errors(name, NameRule::Label)
        .into_iter()
        .map(|e| Cause::invalid(field, &Value::from(name), e))
        .collect()
}

/// Upstream's `IsValidPortName` (an IANA service name).
pub fn port_name_errors(name: &str) -> Vec<&'static str> {
    let mut errors = Vec::new();
    if name.len() > 15 {
        errors.push("must be no more than 15 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
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

/// `Required` when unset, `NotSupported` when not one of `values` (in the order upstream
/// lists them).
fn supported(value: Option<&str>, field: &str, values: &[&str]) -> Option<Cause> {
    match value {
        None | Some("") => Some(Cause::required(field)),
        Some(v) if !values.contains(&v) => Some(Cause::unsupported(field, &Value::from(v), values)),
        Some(_) => None,
    }
}

/// `Required value: <detail>`, for the required fields upstream explains.
fn required_because(field: impl Into<String>, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired",
        field: field.into(),
        message: format!("Required value: {detail}"),
    }
}

/// The rest of upstream's `ValidatePodSpec`: container kinds' own rules, probes, env names,
/// resources, host ports, volume sources, scheduling fields and tolerations.
fn validate_pod_spec_details(spec: &PodSpec, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        causes.extend(volume_source_errors(
            volume,
            &format!("{path}.volumes[{i}]"),
        ));
    }
    for (i, container) in spec.containers.iter().enumerate() {
        let at = format!("{path}.containers[{i}]");
        causes.extend(container_details(container, &at));
        causes.extend(probe_errors(container, &at));
        if container.restart_policy.is_some() {
            causes.push(Cause::forbidden(
                format!("{at}.restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    causes.extend(host_port_conflicts(
        &spec.containers,
        &format!("{path}.containers"),
    ));
    for (i, container) in spec.init_containers.iter().flatten().enumerate() {
        let at = format!("{path}.initContainers[{i}]");
        causes.extend(container_details(container, &at));
        match container.restart_policy.as_deref() {
            Some("Always") => causes.extend(probe_errors(container, &at)),
            policy => {
                if let Some(policy) = policy {
                    causes.push(Cause::unsupported(
                        format!("{at}.restartPolicy"),
                        &Value::from(policy),
                        &["Always"],
                    ));
                }
                let set = [
                    ("lifecycle", container.lifecycle.is_some()),
                    ("livenessProbe", container.liveness_probe.is_some()),
                    ("readinessProbe", container.readiness_probe.is_some()),
                    ("startupProbe", container.startup_probe.is_some()),
                ];
                for (field, _) in set.iter().filter(|(_, present)| *present) {
                    causes.push(Cause::forbidden(
                        format!("{at}.{field}"),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
        causes.extend(host_port_conflicts(
            std::slice::from_ref(container),
            &format!("{path}.initContainers"),
        ));
    }
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
    if spec.dns_policy.as_deref() == Some("None") && spec.dns_config.is_none() {
        causes.push(required_because(
            format!("{path}.dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ));
    }
    causes.extend(validation::labels(
        spec.node_selector.as_ref(),
        &format!("{path}.nodeSelector"),
    ));
    for (i, gate) in spec.readiness_gates.iter().flatten().enumerate() {
        let field = format!("{path}.readinessGates[{i}].conditionType");
        let value = Value::from(gate.condition_type.as_str());
        causes.extend(
            validation::qualified_name_errors(&gate.condition_type)
                .into_iter()
                .map(|e| Cause::invalid(&field, &value, e)),
        );
    }
    let mut gates = BTreeSet::new();
    for (i, gate) in spec.scheduling_gates.iter().flatten().enumerate() {
        let field = format!("{path}.schedulingGates[{i}]");
        let value = Value::from(gate.name.as_str());
        causes.extend(
            validation::qualified_name_errors(&gate.name)
                .into_iter()
                .map(|e| Cause::invalid(&field, &value, e)),
        );
        if !gates.insert(gate.name.as_str()) {
            causes.push(Cause::duplicate(&field, &value));
        }
    }
    let names = [
        (
            "serviceAccountName",
            &spec.service_account_name,
            NameRule::Subdomain,
        ),
        ("nodeName", &spec.node_name, NameRule::Subdomain),
        ("hostname", &spec.hostname, NameRule::Label),
        ("subdomain", &spec.subdomain, NameRule::Label),
        (
            "priorityClassName",
            &spec.priority_class_name,
            NameRule::Subdomain,
        ),
    ];
    for (field, value, rule) in names {
        if let Some(name) = value.as_deref().filter(|n| !n.is_empty()) {
            let shown = Value::from(name);
            causes.extend(
                validation::name_errors(name, rule)
                    .into_iter()
                    .map(|e| Cause::invalid(format!("{path}.{field}"), &shown, e)),
            );
        }
    }
    causes.extend(validate_tolerations(
        spec.tolerations.as_deref().unwrap_or_default(),
        &format!("{path}.tolerations"),
    ));
    if let Some(policy) = spec.preemption_policy.as_deref() {
        causes.extend(supported(
            Some(policy),
            &format!("{path}.preemptionPolicy"),
            &["PreemptLowerPriority", "Never"],
        ));
    }
    causes
}

/// One volume type per volume, and the field each common type cannot do without.
fn volume_source_errors(volume: &Volume, at: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let sources: Vec<String> = match serde_json::to_value(volume) {
        Ok(Value::Object(fields)) => fields
            .into_iter()
            .map(|(key, _)| key)
            .filter(|key| key != "name")
            .collect(),
        _ => Vec::new(),
    };
    if let Some(extra) = sources.get(1) {
        causes.push(Cause::forbidden(
            format!("{at}.{extra}"),
            "may not specify more than 1 volume type",
        ));
    }
    let missing = [
        (
            "configMap.name",
            volume
                .config_map
                .as_ref()
                .is_some_and(|s| s.name.is_empty()),
        ),
        (
            "secret.secretName",
            volume
                .secret
                .as_ref()
                .is_some_and(|s| s.secret_name.as_deref().unwrap_or("").is_empty()),
        ),
        (
            "persistentVolumeClaim.claimName",
            volume
                .persistent_volume_claim
                .as_ref()
                .is_some_and(|s| s.claim_name.is_empty()),
        ),
        (
            "hostPath.path",
            volume.host_path.as_ref().is_some_and(|s| s.path.is_empty()),
        ),
    ];
    for (field, _) in missing.iter().filter(|(_, absent)| *absent) {
        causes.push(Cause::required(format!("{at}.{field}")));
    }
    causes
}

/// Environment variable names, unique mount paths and resource requirements of a container.
fn container_details(container: &Container, at: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, var) in container.env.iter().flatten().enumerate() {
        let field = format!("{at}.env[{i}]");
        if var.name.is_empty() {
            causes.push(Cause::required(format!("{field}.name")));
        } else if !var.name.chars().all(|c| c.is_ascii_graphic() || c == ' ')
            || var.name.contains('=')
        {
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
    let mut mount_paths = BTreeSet::new();
    for (i, mount) in container.volume_mounts.iter().flatten().enumerate() {
        if !mount.mount_path.is_empty() && !mount_paths.insert(mount.mount_path.as_str()) {
            causes.push(Cause::invalid(
                format!("{at}.volumeMounts[{i}].mountPath"),
                &Value::from(mount.mount_path.as_str()),
                "must be unique",
            ));
        }
    }
    if let Some(resources) = &container.resources {
        causes.extend(resource_requirement_errors(
            resources,
            &format!("{at}.resources"),
        ));
    }
    causes
}

/// Probes need exactly one handler; liveness and startup probes must succeed once.
fn probe_errors(container: &Container, at: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let probes = [
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
        let mut present = handlers
            .iter()
            .filter(|(_, set)| *set)
            .map(|(handler, _)| handler);
        match (present.next(), present.next()) {
            (None, _) => causes.push(required_because(
                field.clone(),
                "must specify a handler type",
            )),
            (Some(_), Some(second)) => {
                causes.push(Cause::forbidden(
                    format!("{field}.{second}"),
                    "may not specify more than 1 handler type",
                ));
            }
            _ => {}
        }
        if name != "readinessProbe" {
            if let Some(threshold) = probe.success_threshold.filter(|t| *t != 1) {
                causes.push(Cause::invalid(
                    format!("{field}.successThreshold"),
                    &Value::from(threshold),
                    "must be 1",
                ));
            }
        }
    }
    causes
}

/// A host port may be claimed once per protocol and host IP among the given containers.
fn host_port_conflicts(containers: &[Container], path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut claimed = BTreeSet::new();
    for (i, container) in containers.iter().enumerate() {
        for (j, port) in container.ports.iter().flatten().enumerate() {
            let Some(host_port) = port.host_port.filter(|p| *p != 0) else {
                continue;
            };
            let claim = format!(
                "{}/{}/{host_port}",
                port.protocol.as_deref().unwrap_or(""),
                port.host_ip.as_deref().unwrap_or("")
            );
            if !claimed.insert(claim.clone()) {
                causes.push(Cause::duplicate(
                    format!("{path}[{i}].ports[{j}].hostPort"),
                    &Value::from(claim),
                ));
            }
        }
    }
    causes
}

/// Upstream's `ValidateResourceRequirements`: resource names, non-negative amounts, and
/// requests within limits (equal to them for resources that cannot be overcommitted).
fn resource_requirement_errors(resources: &ResourceRequirements, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let empty = BTreeMap::new();
    let limits = resources.limits.as_ref().unwrap_or(&empty);
    let requests = resources.requests.as_ref().unwrap_or(&empty);
    let (limits_path, requests_path) = (format!("{path}.limits"), format!("{path}.requests"));
    let mut parsed_limits = BTreeMap::new();
    for (name, amount) in limits {
        let field = format!("{limits_path}[{name}]");
        causes.extend(resource_name_errors(name, &field));
        if let Some(limit) = parse_amount(amount, &field, &mut causes) {
            parsed_limits.insert(name.as_str(), limit);
        }
    }
    for (name, amount) in requests {
        let field = format!("{requests_path}[{name}]");
        causes.extend(resource_name_errors(name, &field));
        let Some(request) = parse_amount(amount, &field, &mut causes) else {
            continue;
        };
        let shown = Value::from(amount.0.as_str());
        match (limits.get(name), parsed_limits.get(name.as_str())) {
            (Some(limit), Some(parsed)) if !overcommit_allowed(name) && request != *parsed => {
                causes.push(Cause::invalid(
                    &requests_path,
                    &shown,
                    format!("must be equal to {name} limit of {}", limit.0),
                ))
            }
            (Some(limit), Some(parsed)) if request > *parsed => causes.push(Cause::invalid(
                &requests_path,
                &shown,
                format!("must be less than or equal to {name} limit of {}", limit.0),
            )),
            (None, _) if !overcommit_allowed(name) => {
                causes.push(required_because(
                    &limits_path,
                    "Limit must be set for non overcommitable resources",
                ));
            }
            _ => {}
        }
    }
    causes
}

/// Parses an amount, recording why it is unusable (`None`) when it is.
fn parse_amount(amount: &QuantityText, field: &str, causes: &mut Vec<Cause>) -> Option<Quantity> {
    let shown = Value::from(amount.0.as_str());
    match Quantity::parse(&amount.0) {
        None => {
            causes.push(Cause::invalid(field, &shown, quantity::FORMAT_ERROR));
            None
        }
        Some(q) if q.is_negative() => {
            causes.push(Cause::invalid(
                field,
                &shown,
                "must be greater than or equal to 0",
            ));
            None
        }
        Some(q) => Some(q),
    }
}

/// Native resources are unprefixed or in a `kubernetes.io` domain.
fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Only native resources other than hugepages may request less than their limit.
fn overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !name.starts_with("hugepages-")
}

/// Upstream's `validateContainerResourceName`.
fn resource_name_errors(name: &str, field: &str) -> Vec<Cause> {
    let shown = Value::from(name);
    let mut causes: Vec<Cause> = validation::qualified_name_errors(name)
        .into_iter()
        .map(|e| Cause::invalid(field, &shown, e))
        .collect();
    if !name.contains('/') {
        if !matches!(name, "cpu" | "memory" | "ephemeral-storage")
            && !name.starts_with("hugepages-")
        {
            causes.push(Cause::invalid(
                field,
                &shown,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native_resource(name)
        && (name.starts_with("requests.")
            || !validation::qualified_name_errors(&format!("requests.{name}")).is_empty())
    {
        causes.push(Cause::invalid(
            field,
            &shown,
            "doesn't follow extended resource name standard",
        ));
    }
    causes
}

/// Upstream's `ValidateTolerations`.
pub fn validate_tolerations(tolerations: &[Toleration], path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, toleration) in tolerations.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let key = toleration.key.as_deref().unwrap_or("");
        let operator = toleration.operator.as_deref().unwrap_or("");
        let effect = toleration.effect.as_deref().unwrap_or("");
        let value = toleration.value.as_deref().unwrap_or("");
        causes.extend(
            validation::qualified_name_errors(key)
                .into_iter()
                .filter(|_| !key.is_empty())
                .map(|e| Cause::invalid(format!("{at}.key"), &Value::from(key), e)),
        );
        if key.is_empty() && operator != "Exists" {
            causes.push(Cause::invalid(
                format!("{at}.operator"),
                &Value::from(operator),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if toleration.toleration_seconds.is_some() && effect != "NoExecute" {
            causes.push(Cause::invalid(
                format!("{at}.effect"),
                &Value::from(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match operator {
            "Equal" | "" => {
                if let Some(error) = validation::label_value_error(value) {
                    causes.push(Cause::invalid(
                        format!("{at}.operator"),
                        &Value::from(value),
                        error,
                    ));
                }
            }
            "Exists" if !value.is_empty() => {
                let shown = serde_json::to_value(toleration).unwrap_or(Value::Null);
                causes.push(Cause::invalid(
                    format!("{at}.operator"),
                    &shown,
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
            "Exists" => {}
            other => causes.push(Cause::unsupported(
                format!("{at}.operator"),
                &Value::from(other),
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            causes.extend(taint_effect_error(effect, &format!("{at}.effect")));
        }
    }
    causes
}

/// Upstream's `validateTaintEffect` for a set effect (callers decide whether empty is allowed).
pub fn taint_effect_error(effect: &str, field: &str) -> Option<Cause> {
    supported(
        Some(effect),
        field,
        &["NoSchedule", "PreferNoSchedule", "NoExecute"],
    )
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
        let lines: Vec<String> = validate_pod_spec(&spec, "spec.template.spec")
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
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

    fn lines(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    fn defaulted(value: serde_json::Value) -> PodSpec {
        let mut spec: PodSpec = serde_json::from_value(value).unwrap();
        default_pod_spec(&mut spec);
        spec
    }

    #[test]
    fn resources_policies_and_probes_use_upstream_wording() {
        let spec = defaulted(serde_json::json!({
            "restartPolicy": "Sometimes",
            "containers": [{
                "name": "web", "image": "nginx", "imagePullPolicy": "Sometimes",
                "resources": {"requests": {"cpu": "2", "memory": "-1"}, "limits": {"cpu": "1", "gpu": "1"}},
                "livenessProbe": {"periodSeconds": 5}
            }]
        }));
        assert_eq!(
            lines(&validate_pod_spec(&spec, "spec")),
            [
                "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
                "spec.containers[0].resources.requests[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
                "spec.containers[0].livenessProbe: Required value: must specify a handler type",
            ]
        );
    }

    #[test]
    fn init_containers_and_host_ports_follow_upstream_rules() {
        let spec = defaulted(serde_json::json!({
            "initContainers": [
                {"name": "setup", "image": "busybox", "restartPolicy": "OnFailure",
                 "readinessProbe": {"exec": {"command": ["true"]}}}
            ],
            "containers": [
                {"name": "a", "image": "nginx", "ports": [{"containerPort": 80, "hostPort": 8080}]},
                {"name": "b", "image": "nginx", "ports": [{"containerPort": 81, "hostPort": 8080}]}
            ]
        }));
        assert_eq!(
            lines(&validate_pod_spec(&spec, "spec")),
            [
                "spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//8080\"",
                "spec.initContainers[0].restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
                "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
            ]
        );
    }

    #[test]
    fn tolerations_follow_upstream_rules() {
        let toleration = Toleration {
            operator: Some("Equal".into()),
            effect: Some("NoRun".into()),
            ..Default::default()
        };
        assert_eq!(
            lines(&validate_tolerations(&[toleration], "spec.tolerations")),
            [
                "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                "spec.tolerations[0].effect: Unsupported value: \"NoRun\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
            ]
        );
    }

    #[test]
    fn deprecated_service_account_is_an_alias() {
        let spec = defaulted(serde_json::json!({"containers": [], "serviceAccount": "builder"}));
        assert_eq!(spec.service_account_name.as_deref(), Some("builder"));
        let spec = defaulted(
            serde_json::json!({"containers": [], "serviceAccountName": "web", "serviceAccount": "old"}),
        );
        assert_eq!(spec.service_account.as_deref(), Some("web"));
    }
}
