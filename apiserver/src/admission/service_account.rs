//! `ServiceAccount`: a new pod runs as an existing service account (`default` unless it
//! names one), gets the account's image pull secrets if it has none, and, unless the pod or
//! the account opts out, mounts a projected volume with a token for the account, the cluster's
//! CA bundle and its namespace at `/var/run/secrets/kubernetes.io/serviceaccount`, where
//! client libraries look for in-cluster credentials. An account annotated
//! `kubernetes.io/enforce-mountable-secrets: "true"` limits the pod to the secrets it lists.
//! Mirror pods (a kubelet's static pods) are left alone but may reference neither accounts nor
//! secrets.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ServiceAccount as Account;
use serde_json::{json, Map, Value};

use super::{Attributes, Lookup, Operation, Plugin};
use crate::error::{ApiError, ApiResult};

/// The account pods run as unless they name one.
const DEFAULT_ACCOUNT: &str = "default";
/// Where the token volume is mounted in every container.
const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The token volume's name, before its random suffix.
const VOLUME_PREFIX: &str = "kube-api-access-";
/// The kubelet's token lifetime: with `--service-account-extend-token-expiration`, tokens
/// asked for exactly this long live a year and only warn after it.
const TOKEN_SECONDS: i64 = 3607;
/// The annotation limiting an account's pods to the secrets it lists.
const ENFORCE_MOUNTABLE_SECRETS: &str = "kubernetes.io/enforce-mountable-secrets";
/// The annotation marking a kubelet's mirror of a static pod.
pub(super) const MIRROR_POD: &str = "kubernetes.io/config.mirror";
/// Lookups of the `default` account, which the controller-manager creates shortly after its
/// namespace: a pod created right after a namespace waits for it, as upstream's does.
const DEFAULT_ACCOUNT_ATTEMPTS: usize = 10;

pub struct ServiceAccount {
    lookup: Arc<Lookup>,
}

impl ServiceAccount {
    pub fn new(lookup: Arc<Lookup>) -> Self {
        ServiceAccount { lookup }
    }

    /// The account `name` in `namespace`; a missing one reads as upstream's lookup error.
    async fn account(&self, attributes: &Attributes<'_>, name: &str) -> ApiResult<Account> {
        let namespace = attributes.namespace.unwrap_or_default();
        let attempts = match name {
            DEFAULT_ACCOUNT => DEFAULT_ACCOUNT_ATTEMPTS,
            _ => 1,
        };
        // One interval for every retry, between 100 and 200 ms, as upstream picks it.
        let interval = Duration::from_millis(100 + rand::random_range(0..100));
        let key = format!("/serviceaccounts/{namespace}/{name}");
        let lookup_error = |error: &dyn std::fmt::Display| {
            attributes.forbidden(format!(
                "error looking up service account {namespace}/{name}: {error}"
            ))
        };
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(interval).await;
            }
            match self.lookup.get(&key).await {
                Ok(Some(raw)) => {
                    return serde_json::from_slice(&raw)
                        .map_err(|e| ApiError::Internal(e.to_string()));
                }
                Ok(None) => {}
                Err(error) => return Err(lookup_error(&error)),
            }
        }
        Err(lookup_error(&format!("serviceaccount {name:?} not found")))
    }
}

#[async_trait]
impl Plugin for ServiceAccount {
    fn handles(&self, attributes: &Attributes<'_>) -> bool {
        attributes.resource.is_core("pods")
            && attributes.subresource.is_none()
            && attributes.operation == Operation::Create
    }

    async fn admit(&self, attributes: &mut Attributes<'_>) -> ApiResult<()> {
        let Some(pod) = attributes.object()? else {
            return Ok(());
        };
        if is_mirror(pod) {
            return check_mirror(attributes, pod);
        }
        let name = account_name(pod).unwrap_or(DEFAULT_ACCOUNT).to_string();
        let account = self.account(attributes, &name).await?;
        let Some(spec) = attributes
            .object_mut()?
            .and_then(|pod| pod.get_mut("spec"))
            .and_then(Value::as_object_mut)
        else {
            return Ok(());
        };
        // The v1 form echoes the name into the deprecated `serviceAccount`.
        spec.insert("serviceAccountName".into(), name.clone().into());
        spec.insert("serviceAccount".into(), name.into());
        if automounts(spec, &account) {
            mount_token(spec);
        }
        let pull_secrets = account.image_pull_secrets.as_deref().unwrap_or_default();
        if is_empty_list(spec.get("imagePullSecrets")) && !pull_secrets.is_empty() {
            let names: Vec<Value> = pull_secrets
                .iter()
                .map(|secret| json!({"name": secret.name}))
                .collect();
            spec.insert("imagePullSecrets".into(), names.into());
        }
        let pod = attributes.object()?.unwrap_or(&Value::Null);
        check_secrets(attributes, pod, &account)
    }

    async fn validate(&self, attributes: &Attributes<'_>) -> ApiResult<()> {
        let Some(pod) = attributes.object()? else {
            return Ok(());
        };
        if is_mirror(pod) {
            return check_mirror(attributes, pod);
        }
        let Some(name) = account_name(pod) else {
            return Err(attributes.forbidden(format!(
                "no service account specified for pod {}/{}",
                attributes.namespace.unwrap_or_default(),
                pod["metadata"]["name"].as_str().unwrap_or_default()
            )));
        };
        let account = self.account(attributes, name).await?;
        check_secrets(attributes, pod, &account)
    }
}

fn is_mirror(pod: &Value) -> bool {
    pod["metadata"]["annotations"].get(MIRROR_POD).is_some()
}

fn account_name(pod: &Value) -> Option<&str> {
    pod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|name| !name.is_empty())
}

fn is_empty_list(value: Option<&Value>) -> bool {
    value
        .and_then(Value::as_array)
        .is_none_or(|list| list.is_empty())
}

/// Whether the token is mounted: the pod's `automountServiceAccountToken` wins, then the
/// account's; both unset mean yes.
fn automounts(spec: &Map<String, Value>, account: &Account) -> bool {
    spec.get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or(account.automount_service_account_token)
        .unwrap_or(true)
}

/// Mounts the token volume in every init container and container that has nothing mounted at
/// [`MOUNT_PATH`], adding the volume unless a `kube-api-access-` one is there already.
fn mount_token(spec: &mut Map<String, Value>) {
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|volume| volume["name"].as_str())
        .find(|name| name.starts_with(VOLUME_PREFIX))
        .map(String::from);
    let volume = existing
        .clone()
        .unwrap_or_else(|| format!("{VOLUME_PREFIX}{}", crate::registry::stored::name_suffix()));
    let mount = json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH});
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        let containers = spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten();
        for container in containers {
            let mounts = &container["volumeMounts"];
            let taken = mounts
                .as_array()
                .is_some_and(|all| all.iter().any(|m| m["mountPath"] == MOUNT_PATH));
            if taken {
                continue;
            }
            if !mounts.is_array() {
                container["volumeMounts"] = json!([]);
            }
            if let Some(mounts) = container["volumeMounts"].as_array_mut() {
                mounts.push(mount.clone());
                mounted = true;
            }
        }
    }
    if !mounted || existing.is_some() {
        return;
    }
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    if !volumes.is_array() {
        *volumes = json!([]);
    }
    if let Some(volumes) = volumes.as_array_mut() {
        volumes.push(token_volume(&volume));
    }
}

/// Upstream's projected token volume, with its default mode written out.
fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{
                    "path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                }]}},
            ],
        },
    })
}

/// With the account's annotation, refuses the first secret the pod uses that the account does
/// not list: volumes, environment variables (one by one and `envFrom`) and image pull secrets.
fn check_secrets(attributes: &Attributes<'_>, pod: &Value, account: &Account) -> ApiResult<()> {
    let enforced = account
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ENFORCE_MOUNTABLE_SECRETS))
        .is_some_and(|value| parse_go_bool(value));
    if !enforced {
        return Ok(());
    }
    let account_name = account.metadata.name.as_deref().unwrap_or_default();
    let mountable: Vec<&str> = account
        .secrets
        .iter()
        .flatten()
        .filter_map(|secret| secret.name.as_deref())
        .collect();
    let refused = |what: String| {
        attributes.forbidden(format!(
            "{what} is not allowed because service account {account_name} does not reference that secret"
        ))
    };
    let spec = &pod["spec"];
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        if let Some(secret) = volume.get("secret") {
            let name = secret["secretName"].as_str().unwrap_or_default();
            if !mountable.contains(&name) {
                return Err(refused(format!("volume with secret.secretName=\"{name}\"")));
            }
        }
    }
    for (list, what) in [
        ("initContainers", "init container"),
        ("containers", "container"),
    ] {
        for container in spec[list].as_array().into_iter().flatten() {
            let container_name = container["name"].as_str().unwrap_or_default();
            for env in container["env"].as_array().into_iter().flatten() {
                if let Some(reference) = env.pointer("/valueFrom/secretKeyRef") {
                    let name = reference["name"].as_str().unwrap_or_default();
                    if !mountable.contains(&name) {
                        let variable = env["name"].as_str().unwrap_or_default();
                        return Err(refused(format!(
                            "{what} {container_name} with envVar {variable} referencing secret.secretName=\"{name}\""
                        )));
                    }
                }
            }
            for source in container["envFrom"].as_array().into_iter().flatten() {
                if let Some(reference) = source.get("secretRef") {
                    let name = reference["name"].as_str().unwrap_or_default();
                    if !mountable.contains(&name) {
                        return Err(refused(format!(
                            "{what} {container_name} with envFrom referencing secret.secretName=\"{name}\""
                        )));
                    }
                }
            }
        }
    }
    let pullable: Vec<&str> = account
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|secret| secret.name.as_str())
        .collect();
    for (i, secret) in spec["imagePullSecrets"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = secret["name"].as_str().unwrap_or_default();
        if !pullable.contains(&name) {
            return Err(attributes.forbidden(format!(
                "imagePullSecrets[{i}].name=\"{name}\" is not allowed because service account {account_name} does not reference that imagePullSecret"
            )));
        }
    }
    Ok(())
}

/// Go's `strconv.ParseBool`, which reads the annotation (anything else is false).
fn parse_go_bool(value: &str) -> bool {
    matches!(value, "1" | "t" | "T" | "TRUE" | "true" | "True")
}

/// Mirror pods may reference neither an account nor a secret, nor project a token.
fn check_mirror(attributes: &Attributes<'_>, pod: &Value) -> ApiResult<()> {
    if account_name(pod).is_some() {
        return Err(attributes.forbidden("a mirror pod may not reference service accounts"));
    }
    if references_secrets(&pod["spec"]) {
        return Err(attributes.forbidden("a mirror pod may not reference secrets"));
    }
    let projects_token = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|volume| {
            volume
                .pointer("/projected/sources")
                .and_then(Value::as_array)
        })
        .flatten()
        .any(|source| source.get("serviceAccountToken").is_some());
    if projects_token {
        return Err(
            attributes.forbidden("a mirror pod may not use ServiceAccountToken volume projections")
        );
    }
    Ok(())
}

/// Whether a pod spec names any secret, where upstream's `VisitPodSecretNames` looks: image
/// pull secrets, every container's environment, and volumes of any kind taking a secret.
fn references_secrets(spec: &Value) -> bool {
    /// Where a volume source names a secret.
    const VOLUME_SECRETS: [&str; 10] = [
        "/secret",
        "/azureFile/secretName",
        "/cephfs/secretRef",
        "/cinder/secretRef",
        "/flexVolume/secretRef",
        "/rbd/secretRef",
        "/scaleIO/secretRef",
        "/iscsi/secretRef",
        "/storageos/secretRef",
        "/csi/nodePublishSecretRef",
    ];
    let list = |value: &Value| value.as_array().cloned().unwrap_or_default();
    if !list(&spec["imagePullSecrets"]).is_empty() {
        return true;
    }
    let containers = ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(|key| list(&spec[key]));
    for container in containers {
        let env = list(&container["env"])
            .iter()
            .any(|env| env.pointer("/valueFrom/secretKeyRef").is_some());
        let env_from = list(&container["envFrom"])
            .iter()
            .any(|source| source.get("secretRef").is_some());
        if env || env_from {
            return true;
        }
    }
    list(&spec["volumes"]).iter().any(|volume| {
        VOLUME_SECRETS
            .iter()
            .any(|pointer| volume.pointer(pointer).is_some())
            || list(volume.pointer("/projected/sources").unwrap_or(&Value::Null))
                .iter()
                .any(|source| source.get("secret").is_some())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::tests::{pod_attributes, user, Fixture};

    /// A store with the namespace `default` and its accounts `default` and `builder` (given
    /// as JSON).
    async fn fixture(default: &str, builder: &str) -> Fixture {
        let fixture = Fixture::new().await;
        fixture
            .put("/serviceaccounts/default/default", default)
            .await;
        fixture
            .put("/serviceaccounts/default/builder", builder)
            .await;
        fixture
    }

    const ACCOUNT: &str = r#"{"metadata":{"name":"default","namespace":"default"}}"#;

    /// What `kubectl run web --image=nginx` posts, defaulted.
    fn run() -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}})
    }

    /// Both phases, as the registry runs them on a create; the pod as admitted.
    async fn admitted(plugin: &ServiceAccount, pod: &Value) -> ApiResult<Value> {
        let user = user();
        let mut attributes = pod_attributes(Operation::Create, pod, None, &user);
        assert!(plugin.handles(&attributes));
        plugin.admit(&mut attributes).await?;
        let admitted = attributes.into_changed().unwrap_or_else(|| pod.clone());
        let attributes = pod_attributes(Operation::Create, &admitted, None, &user);
        plugin.validate(&attributes).await?;
        Ok(admitted)
    }

    #[tokio::test]
    async fn pods_run_as_default_and_mount_its_token_like_upstream() {
        let fixture = fixture(ACCOUNT, ACCOUNT).await;
        let plugin = ServiceAccount::new(fixture.lookup());
        let mut pod = run();
        pod["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox"}]);
        let spec = admitted(&plugin, &pod).await.unwrap()["spec"].clone();
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["serviceAccount"], "default");
        let volume = spec["volumes"][0].clone();
        let name = volume["name"].as_str().unwrap();
        let suffix = name.strip_prefix("kube-api-access-").unwrap();
        assert_eq!(suffix.len(), 5, "{name}");
        assert_eq!(
            volume,
            json!({"name": name, "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ]}})
        );
        let mount = json!([{"name": name, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]);
        assert_eq!(spec["containers"][0]["volumeMounts"], mount);
        assert_eq!(spec["initContainers"][0]["volumeMounts"], mount);
        assert_eq!(spec.get("imagePullSecrets"), None);
    }

    #[tokio::test]
    async fn containers_mounting_the_path_themselves_are_left_alone() {
        let fixture = fixture(ACCOUNT, ACCOUNT).await;
        let plugin = ServiceAccount::new(fixture.lookup());
        let own =
            json!([{"name": "mine", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]);
        let mut pod = run();
        pod["spec"]["containers"][0]["volumeMounts"] = own.clone();
        pod["spec"]["volumes"] = json!([{"name": "mine", "emptyDir": {}}]);
        let spec = admitted(&plugin, &pod).await.unwrap()["spec"].clone();
        assert_eq!(spec["containers"][0]["volumeMounts"], own);
        assert_eq!(
            spec["volumes"], pod["spec"]["volumes"],
            "no token volume nobody mounts"
        );

        // A token volume the pod carries already is reused rather than added again.
        let mut pod = run();
        pod["spec"]["volumes"] = json!([{"name": "kube-api-access-abcde", "emptyDir": {}}]);
        let spec = admitted(&plugin, &pod).await.unwrap()["spec"].clone();
        assert_eq!(spec["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(
            spec["containers"][0]["volumeMounts"][0]["name"],
            "kube-api-access-abcde"
        );
    }

    #[tokio::test]
    async fn automounting_is_the_pods_choice_then_the_accounts() {
        let fixture = fixture(
            ACCOUNT,
            r#"{"metadata":{"name":"builder"},"automountServiceAccountToken":false,"imagePullSecrets":[{"name":"registry"}]}"#,
        )
        .await;
        let plugin = ServiceAccount::new(fixture.lookup());
        let mut pod = run();
        pod["spec"]["serviceAccountName"] = json!("builder");
        let spec = admitted(&plugin, &pod).await.unwrap()["spec"].clone();
        assert_eq!(spec.get("volumes"), None);
        assert_eq!(spec["containers"][0].get("volumeMounts"), None);
        assert_eq!(spec["imagePullSecrets"], json!([{"name": "registry"}]));

        pod["spec"]["automountServiceAccountToken"] = json!(true);
        let spec = admitted(&plugin, &pod).await.unwrap()["spec"].clone();
        assert_eq!(spec["volumes"].as_array().unwrap().len(), 1, "the pod wins");

        let mut pod = run();
        pod["spec"]["automountServiceAccountToken"] = json!(false);
        let spec = admitted(&plugin, &pod).await.unwrap()["spec"].clone();
        assert_eq!(spec.get("volumes"), None);
    }

    #[tokio::test]
    async fn a_missing_account_is_forbidden_in_upstreams_words() {
        let fixture = Fixture::new().await;
        let plugin = ServiceAccount::new(fixture.lookup());
        let mut pod = run();
        pod["spec"]["serviceAccountName"] = json!("nobody");
        let error = admitted(&plugin, &pod).await.unwrap_err();
        assert_eq!(error.code(), 403);
        assert_eq!(
            error.to_string(),
            r#"pods "web" is forbidden: error looking up service account default/nobody: serviceaccount "nobody" not found"#
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_default_account_is_retried_before_it_is_refused() {
        let fixture = Fixture::new().await;
        let plugin = ServiceAccount::new(fixture.lookup());
        let started = tokio::time::Instant::now();
        let error = admitted(&plugin, &run()).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"pods "web" is forbidden: error looking up service account default/default: serviceaccount "default" not found"#
        );
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "nine waits of 100 to 200 ms"
        );
    }

    #[tokio::test]
    async fn a_pod_created_right_after_its_namespace_waits_for_the_default_account() {
        let fixture = Fixture::new().await;
        let plugin = Arc::new(ServiceAccount::new(fixture.lookup()));
        let waiting = tokio::spawn({
            let plugin = plugin.clone();
            async move { admitted(&plugin, &run()).await }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        fixture
            .put("/serviceaccounts/default/default", ACCOUNT)
            .await;
        let spec = waiting.await.unwrap().unwrap()["spec"].clone();
        assert_eq!(spec["serviceAccountName"], "default");
    }

    #[tokio::test]
    async fn accounts_may_limit_pods_to_their_secrets() {
        let fixture = fixture(
            ACCOUNT,
            r#"{"metadata":{"name":"builder","annotations":{"kubernetes.io/enforce-mountable-secrets":"true"}},"secrets":[{"name":"allowed"}]}"#,
        )
        .await;
        let plugin = ServiceAccount::new(fixture.lookup());
        let refused = |change: &dyn Fn(&mut Value)| {
            let mut pod = run();
            pod["spec"]["serviceAccountName"] = json!("builder");
            change(&mut pod);
            let plugin = &plugin;
            async move {
                admitted(plugin, &pod)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        };
        assert_eq!(
            refused(&|pod| pod["spec"]["volumes"] =
                json!([{"name": "s", "secret": {"secretName": "allowed"}}]))
            .await,
            Ok(())
        );
        assert_eq!(
            refused(&|pod| pod["spec"]["volumes"] = json!([{"name": "s", "secret": {"secretName": "other"}}])).await,
            Err(r#"pods "web" is forbidden: volume with secret.secretName="other" is not allowed because service account builder does not reference that secret"#.into())
        );
        assert_eq!(
            refused(&|pod| pod["spec"]["containers"][0]["env"] = json!([{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "other", "key": "k"}}}])).await,
            Err(r#"pods "web" is forbidden: container web with envVar TOKEN referencing secret.secretName="other" is not allowed because service account builder does not reference that secret"#.into())
        );
        assert_eq!(
            refused(&|pod| pod["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox", "envFrom": [{"secretRef": {"name": "other"}}]}])).await,
            Err(r#"pods "web" is forbidden: init container init with envFrom referencing secret.secretName="other" is not allowed because service account builder does not reference that secret"#.into())
        );
        assert_eq!(
            refused(&|pod| pod["spec"]["imagePullSecrets"] = json!([{"name": "registry"}])).await,
            Err(r#"pods "web" is forbidden: imagePullSecrets[0].name="registry" is not allowed because service account builder does not reference that imagePullSecret"#.into())
        );
    }

    #[tokio::test]
    async fn mirror_pods_are_left_alone_but_reference_nothing() {
        let fixture = Fixture::new().await;
        let plugin = ServiceAccount::new(fixture.lookup());
        let mut pod = run();
        pod["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "hash"});
        assert_eq!(admitted(&plugin, &pod).await.unwrap(), pod);

        let mut named = pod.clone();
        named["spec"]["serviceAccountName"] = json!("default");
        assert_eq!(
            admitted(&plugin, &named).await.unwrap_err().to_string(),
            r#"pods "web" is forbidden: a mirror pod may not reference service accounts"#
        );
        let mut secret = pod.clone();
        secret["spec"]["volumes"] =
            json!([{"name": "s", "projected": {"sources": [{"secret": {"name": "x"}}]}}]);
        assert_eq!(
            admitted(&plugin, &secret).await.unwrap_err().to_string(),
            r#"pods "web" is forbidden: a mirror pod may not reference secrets"#
        );
        let mut token = pod.clone();
        token["spec"]["volumes"] = json!([{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]);
        assert_eq!(
            admitted(&plugin, &token).await.unwrap_err().to_string(),
            r#"pods "web" is forbidden: a mirror pod may not use ServiceAccountToken volume projections"#
        );
    }
}
