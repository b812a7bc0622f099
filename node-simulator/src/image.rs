//! Simulated image pulls: which images "exist", kubelet's pull policy and back-off, and the
//! wording kubelet (v1.33, containerd) uses for them. Nothing is downloaded: an image is
//! missing when its reference matches `--missing-images` or its pod asks for failures with
//! an annotation, so a rollout to a mistyped tag stalls in `ErrImagePull` and
//! `ImagePullBackOff` as it does on a real cluster, while every other image pulls.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use regex::Regex;

/// Annotation on a Pod making every image pull of its containers fail
/// (`node-simulator/image-pull=fail`), whatever the image.
pub const IMAGE_PULL: &str = "node-simulator/image-pull";

/// The default `--missing-images`: the tags and names learners and test suites use for an
/// image that does not exist (`nginx:404`, `nginx:doesnotexist`, `busybox:nonexistent`,
/// `does-not-exist/app`, `invalid-image`, `...:notexist`). Only the part before a digest is
/// matched, and `404` only as a whole word, so digests and ports such as `:4040` never match.
pub const DEFAULT_MISSING_IMAGES: &str =
    r"(?i)^[^@]*(\b404\b|non-?exist|not-?exist|doesnt-?exist|invalid)";

/// kubelet's image pull back-off: 10 s, doubling per failed pull, at most 300 s.
const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Decides which images can be pulled.
#[derive(Debug, Clone)]
pub struct Registry {
    missing: Regex,
}

impl Registry {
    pub fn new(missing: Regex) -> Registry {
        Registry { missing }
    }

    /// Whether pulling `image` for a pod with `annotations` fails.
    pub fn is_missing(&self, image: &str, annotations: &BTreeMap<String, String>) -> bool {
        annotations.get(IMAGE_PULL).is_some_and(|v| v == "fail") || self.missing.is_match(image)
    }
}

/// `imagePullPolicy`, defaulted as the API server does when a client left it out: `Always`
/// for `:latest` or untagged images, `IfNotPresent` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn of(policy: Option<&str>, image: &str) -> PullPolicy {
        match policy {
            Some("Always") => PullPolicy::Always,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            Some("Never") => PullPolicy::Never,
            _ if tag(image).is_none_or(|t| t == "latest") && !image.contains('@') => {
                PullPolicy::Always
            }
            _ => PullPolicy::IfNotPresent,
        }
    }
}

/// The tag of an image reference, if it has one (a registry port is not a tag).
fn tag(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split_once(':').map(|(_, tag)| tag)
}

/// The fully qualified reference containerd resolves: `nginx` is
/// `docker.io/library/nginx:latest`, `me/app:1` is `docker.io/me/app:1`.
pub fn qualified(image: &str) -> String {
    let first = image.split('/').next().unwrap_or(image);
    let has_registry =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut name = match (has_registry, image.contains('/')) {
        (true, _) => image.to_string(),
        (false, true) => format!("docker.io/{image}"),
        (false, false) => format!("docker.io/library/{image}"),
    };
    if tag(image).is_none() && !image.contains('@') {
        name.push_str(":latest");
    }
    name
}

/// containerd's error for a reference it cannot resolve, as kubelet receives it over CRI.
pub fn pull_error(image: &str) -> String {
    let reference = qualified(image);
    format!(
        "rpc error: code = NotFound desc = failed to pull and unpack image \"{reference}\": failed to resolve reference \"{reference}\": {reference}: not found"
    )
}

/// The back-off after `failures` failed pulls.
pub fn backoff(failures: u32) -> Duration {
    BACKOFF_INITIAL
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(BACKOFF_MAX)
}

/// A plausible, stable size for an image (kubelet reports the unpacked size it pulled).
pub fn size(image: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    image.hash(&mut hasher);
    2_000_000 + hasher.finish() % 150_000_000
}

/// Go's `time.Duration` string for durations under an hour, truncated to milliseconds as
/// kubelet prints pull times: `830ms`, `1.2s`, `1m5.25s`.
pub fn go_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let seconds = |ms: u128| {
        let text = format!("{}.{:03}", ms / 1000, ms % 1000);
        format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
    };
    match millis / 60_000 {
        0 => seconds(millis),
        minutes => format!("{minutes}m{}", seconds(millis % 60_000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pattern_catches_placeholders_only() {
        let registry = Registry::new(Regex::new(DEFAULT_MISSING_IMAGES).unwrap());
        let none = BTreeMap::new();
        for image in [
            "nginx:404",
            "nginx:doesnotexist",
            "busybox:nonexistent",
            "does-not-exist/app",
            "invalid-image:1",
            "nginx:notexist",
            "nginx:NonExistent-tag",
        ] {
            assert!(
                registry.is_missing(image, &none),
                "{image} should be missing"
            );
        }
        for image in [
            "nginx",
            "nginx:1.27",
            "localhost:4040/app:1",
            "registry.k8s.io/pause:3.10",
            "nginx@sha256:404f00",
        ] {
            assert!(!registry.is_missing(image, &none), "{image} should pull");
        }
        let fail = BTreeMap::from([(IMAGE_PULL.to_string(), "fail".to_string())]);
        assert!(registry.is_missing("nginx:1.27", &fail));
    }

    #[test]
    fn references_are_qualified_like_containerd() {
        assert_eq!(qualified("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            qualified("nginx:doesnotexist"),
            "docker.io/library/nginx:doesnotexist"
        );
        assert_eq!(qualified("me/app:1"), "docker.io/me/app:1");
        assert_eq!(qualified("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(
            qualified("registry.k8s.io/pause:3.10"),
            "registry.k8s.io/pause:3.10"
        );
    }

    #[test]
    fn policy_defaults_like_the_api_server() {
        assert_eq!(PullPolicy::of(None, "nginx"), PullPolicy::Always);
        assert_eq!(PullPolicy::of(None, "nginx:latest"), PullPolicy::Always);
        assert_eq!(PullPolicy::of(None, "nginx:1.27"), PullPolicy::IfNotPresent);
        assert_eq!(
            PullPolicy::of(None, "localhost:5000/app"),
            PullPolicy::Always
        );
        assert_eq!(PullPolicy::of(Some("Never"), "nginx"), PullPolicy::Never);
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_to_five_minutes() {
        let seconds: Vec<u64> = (1..=7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(seconds, [10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_millis(830)), "830ms");
        assert_eq!(go_duration(Duration::from_millis(1200)), "1.2s");
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_millis(65_250)), "1m5.25s");
    }
}
