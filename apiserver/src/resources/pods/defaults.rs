//! Upstream's scheme defaults for pods (`SetDefaults_Pod`, `SetDefaults_PodSpec`, and those of
//! containers, ports, probes and volumes), applied on every write so a stored pod reads exactly
//! as a real cluster returns it.

use k8s_openapi::api::core::v1::{
    Container, EnvVar, HTTPGetAction, ObjectFieldSelector, Pod, PodSecurityContext, PodSpec, Probe,
    ResourceRequirements, Volume,
};

/// `SetDefaults_PodSpec`: what every pod spec gets, including the templates of workloads.
pub fn pod_spec(spec: &mut PodSpec) {
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.security_context.get_or_insert_with(PodSecurityContext::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.scheduler_name.get_or_insert_with(|| "default-scheduler".into());
    // The v1 conversion treats the deprecated `serviceAccount` as an alias and echoes the
    // real field back into it.
    if spec.service_account_name.as_deref().unwrap_or("").is_empty() {
        spec.service_account_name = spec.service_account.clone().filter(|name| !name.is_empty());
    }
    spec.service_account = spec.service_account_name.clone();
    for container in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        self::container(container);
    }
    for ephemeral in spec.ephemeral_containers.iter_mut().flatten() {
        ephemeral.image_pull_policy.get_or_insert_with(|| image_pull_policy(ephemeral.image.as_deref().unwrap_or("")).into());
        ephemeral.termination_message_path.get_or_insert_with(|| "/dev/termination-log".into());
        ephemeral.termination_message_policy.get_or_insert_with(|| "File".into());
        ephemeral.resources.get_or_insert_with(ResourceRequirements::default);
        env(ephemeral.env.iter_mut().flatten());
    }
    for volume in spec.volumes.iter_mut().flatten() {
        self::volume(volume);
    }
}

/// `SetDefaults_Pod` on top of the spec defaults: requests default to limits, service links
/// are on, and with host networking host ports mirror container ports.
pub fn pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    pod_spec(spec);
    spec.enable_service_links.get_or_insert(true);
    let host_network = spec.host_network == Some(true);
    for container in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        let resources = container.resources.get_or_insert_with(ResourceRequirements::default);
        if let Some(limits) = &resources.limits {
            let requests = resources.requests.get_or_insert_with(Default::default);
            for (name, limit) in limits {
                requests.entry(name.clone()).or_insert_with(|| limit.clone());
            }
        }
        if host_network {
            for port in container.ports.iter_mut().flatten() {
                if port.host_port.unwrap_or(0) == 0 {
                    port.host_port = Some(port.container_port);
                }
            }
        }
    }
}

fn container(container: &mut Container) {
    let image = container.image.as_deref().unwrap_or("");
    container.image_pull_policy.get_or_insert_with(|| image_pull_policy(image).into());
    container.termination_message_path.get_or_insert_with(|| "/dev/termination-log".into());
    container.termination_message_policy.get_or_insert_with(|| "File".into());
    container.resources.get_or_insert_with(ResourceRequirements::default);
    for port in container.ports.iter_mut().flatten() {
        port.protocol.get_or_insert_with(|| "TCP".into());
    }
    for probe in [&mut container.liveness_probe, &mut container.readiness_probe, &mut container.startup_probe] {
        if let Some(probe) = probe {
            self::probe(probe);
        }
    }
    if let Some(lifecycle) = &mut container.lifecycle {
        for handler in [&mut lifecycle.post_start, &mut lifecycle.pre_stop].into_iter().flatten() {
            if let Some(get) = &mut handler.http_get {
                http_get(get);
            }
        }
    }
    env(container.env.iter_mut().flatten());
}

/// `Always` for `:latest` or an untagged image, otherwise `IfNotPresent`, as upstream decides
/// from the parsed image reference (a digest without a tag counts as pinned).
pub fn image_pull_policy(image: &str) -> &'static str {
    // An unparsable reference has no tag at all, which upstream treats as pinned.
    if image.is_empty() || image.contains(char::is_whitespace) {
        return "IfNotPresent";
    }
    let (reference, digest) = match image.split_once('@') {
        Some((reference, digest)) => (reference, Some(digest)),
        None => (image, None),
    };
    let last_segment = reference.rsplit('/').next().unwrap_or(reference);
    let (name, tag) = match last_segment.split_once(':') {
        Some((name, tag)) => (name, Some(tag)),
        None => (last_segment, None),
    };
    if name.contains(|c: char| c.is_ascii_uppercase()) {
        return "IfNotPresent";
    }
    match (tag, digest) {
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

fn probe(probe: &mut Probe) {
    probe.timeout_seconds.get_or_insert(1);
    probe.period_seconds.get_or_insert(10);
    probe.success_threshold.get_or_insert(1);
    probe.failure_threshold.get_or_insert(3);
    if let Some(get) = &mut probe.http_get {
        http_get(get);
    }
}

fn http_get(get: &mut HTTPGetAction) {
    get.path.get_or_insert_with(|| "/".into());
    get.scheme.get_or_insert_with(|| "HTTP".into());
}

fn env<'a>(vars: impl Iterator<Item = &'a mut EnvVar>) {
    for var in vars {
        if let Some(field_ref) = var.value_from.as_mut().and_then(|from| from.field_ref.as_mut()) {
            field_selector(field_ref);
        }
    }
}

fn field_selector(selector: &mut ObjectFieldSelector) {
    selector.api_version.get_or_insert_with(|| "v1".into());
}

/// File modes of projected files: upstream's `0644`.
const DEFAULT_MODE: i32 = 0o644;

/// A volume without any source is an `emptyDir`; file-projecting sources get mode 0644.
fn volume(volume: &mut Volume) {
    let has_source = volume.aws_elastic_block_store.is_some()
        || volume.azure_disk.is_some()
        || volume.azure_file.is_some()
        || volume.cephfs.is_some()
        || volume.cinder.is_some()
        || volume.config_map.is_some()
        || volume.csi.is_some()
        || volume.downward_api.is_some()
        || volume.empty_dir.is_some()
        || volume.ephemeral.is_some()
        || volume.fc.is_some()
        || volume.flex_volume.is_some()
        || volume.flocker.is_some()
        || volume.gce_persistent_disk.is_some()
        || volume.git_repo.is_some()
        || volume.glusterfs.is_some()
        || volume.host_path.is_some()
        || volume.image.is_some()
        || volume.iscsi.is_some()
        || volume.nfs.is_some()
        || volume.persistent_volume_claim.is_some()
        || volume.photon_persistent_disk.is_some()
        || volume.portworx_volume.is_some()
        || volume.projected.is_some()
        || volume.quobyte.is_some()
        || volume.rbd.is_some()
        || volume.scale_io.is_some()
        || volume.secret.is_some()
        || volume.storageos.is_some()
        || volume.vsphere_volume.is_some();
    if !has_source {
        volume.empty_dir = Some(Default::default());
    }
    if let Some(config_map) = &mut volume.config_map {
        config_map.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(secret) = &mut volume.secret {
        secret.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(downward) = &mut volume.downward_api {
        downward.default_mode.get_or_insert(DEFAULT_MODE);
        for item in downward.items.iter_mut().flatten() {
            if let Some(field_ref) = &mut item.field_ref {
                field_selector(field_ref);
            }
        }
    }
    if let Some(host_path) = &mut volume.host_path {
        host_path.type_.get_or_insert_with(String::new);
    }
    if let Some(projected) = &mut volume.projected {
        projected.default_mode.get_or_insert(DEFAULT_MODE);
        for source in projected.sources.iter_mut().flatten() {
            if let Some(token) = &mut source.service_account_token {
                token.expiration_seconds.get_or_insert(3600);
            }
            for item in source.downward_api.iter_mut().flat_map(|d| d.items.iter_mut().flatten()) {
                if let Some(field_ref) = &mut item.field_ref {
                    field_selector(field_ref);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    #[test]
    fn pull_policy_follows_the_tag() {
        let cases = [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("registry.k8s.io/pause:3.10", "IfNotPresent"),
            ("localhost:5000/app", "Always"),
            ("localhost:5000/app:v1", "IfNotPresent"),
            ("busybox@sha256:abcd", "IfNotPresent"),
            ("busybox:latest@sha256:abcd", "Always"),
            ("Nginx", "IfNotPresent"),
            ("", "IfNotPresent"),
        ];
        for (image, expected) in cases {
            assert_eq!(image_pull_policy(image), expected, "{image}");
        }
    }

    #[test]
    fn a_bare_pod_gets_upstream_defaults() {
        let mut pod = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: Some("nginx:1.27".into()),
                    ports: Some(vec![ContainerPort { container_port: 80, ..Default::default() }]),
                    resources: Some(ResourceRequirements {
                        limits: Some([("cpu".to_string(), Quantity("500m".into()))].into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                volumes: Some(vec![
                    Volume { name: "scratch".into(), ..Default::default() },
                    Volume { name: "conf".into(), config_map: Some(Default::default()), ..Default::default() },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        self::pod(&mut pod);
        let spec = pod.spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.enable_service_links, Some(true));
        assert!(spec.security_context.is_some());
        let container = &spec.containers[0];
        assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(container.termination_message_path.as_deref(), Some("/dev/termination-log"));
        assert_eq!(container.termination_message_policy.as_deref(), Some("File"));
        assert_eq!(container.ports.as_ref().unwrap()[0].protocol.as_deref(), Some("TCP"));
        let requests = container.resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(requests["cpu"].0, "500m", "requests default to limits");
        let volumes = spec.volumes.unwrap();
        assert!(volumes[0].empty_dir.is_some());
        assert_eq!(volumes[1].config_map.as_ref().unwrap().default_mode, Some(420));
    }

    #[test]
    fn deprecated_service_account_is_an_alias() {
        let mut spec = PodSpec { service_account: Some("builder".into()), ..Default::default() };
        pod_spec(&mut spec);
        assert_eq!(spec.service_account_name.as_deref(), Some("builder"));
        let mut spec = PodSpec { service_account_name: Some("web".into()), service_account: Some("old".into()), ..Default::default() };
        pod_spec(&mut spec);
        assert_eq!(spec.service_account.as_deref(), Some("web"));
    }
}
