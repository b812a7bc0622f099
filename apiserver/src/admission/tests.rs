//! The chain's own rules, and what the plugins' tests share.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};
use store::Store;

use super::*;

/// A store in a temporary directory for plugins that look things up.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let config = store::embedded::EmbeddedConfig::new(dir.path());
        let store: Arc<dyn Store> = Arc::new(store::embedded::EmbeddedStore::open(config).unwrap());
        let fixture = Fixture { store, _dir: dir };
        fixture.put("/namespaces/default", "{}").await;
        fixture
    }

    /// Lookups reading this store (no caches).
    pub fn lookup(&self) -> Arc<Lookup> {
        Arc::new(Lookup::new(self.store.clone()))
    }

    /// Stores `json` at `key` (relative to the store prefix, like registry keys).
    pub async fn put(&self, key: &str, json: &str) {
        self.store
            .create(key.as_bytes(), bytes::Bytes::from(json.to_string()))
            .await
            .unwrap();
    }
}

/// Someone making the request.
pub fn user() -> UserInfo {
    UserInfo {
        name: "jane".into(),
        uid: String::new(),
        groups: vec!["system:authenticated".into()],
        extra: Default::default(),
    }
}

fn kind_of(resource: &'static str) -> &'static str {
    match resource {
        "pods" => "Pod",
        "namespaces" => "Namespace",
        "nodes" => "Node",
        _ => "ConfigMap",
    }
}

/// Attributes of a core `resource` request without objects.
pub fn attributes<'a>(
    operation: Operation,
    resource: &'static str,
    namespace: Option<&'a str>,
    name: &'a str,
    user: &'a UserInfo,
) -> Attributes<'a> {
    Attributes {
        operation,
        kind: GroupVersionKind {
            group: "",
            version: "v1",
            kind: kind_of(resource),
        },
        resource: GroupVersionResource {
            group: "",
            version: "v1",
            resource,
        },
        subresource: None,
        namespace,
        name,
        user,
        dry_run: false,
        object: Object::absent(),
        old_object: Object::absent(),
    }
}

/// Attributes of a write of `pod` in `default` (replacing `old` on update), named as the pod.
pub fn pod_attributes<'a>(
    operation: Operation,
    pod: &'a Value,
    old: Option<&Value>,
    user: &'a UserInfo,
) -> Attributes<'a> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let mut attributes = attributes(operation, "pods", Some("default"), name, user);
    attributes.object = Object::json(pod.clone());
    if let Some(old) = old {
        attributes.old_object = Object::json(old.clone());
    }
    attributes
}

/// A plugin recording what it was asked, mutating by setting a label, refusing on demand.
struct Recorder {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
    handles: bool,
    refuse: bool,
}

#[async_trait]
impl Plugin for Recorder {
    fn handles(&self, _attributes: &Attributes<'_>) -> bool {
        self.handles
    }

    async fn admit(&self, attributes: &mut Attributes<'_>) -> ApiResult<()> {
        let dry = if attributes.dry_run { " (dry run)" } else { "" };
        self.log
            .lock()
            .unwrap()
            .push(format!("admit {}{dry}", self.name));
        if let Some(object) = attributes.object_mut()? {
            object["metadata"]["labels"][self.name] = json!("yes");
        }
        if self.refuse {
            return Err(attributes.forbidden(format!("{} says no", self.name)));
        }
        Ok(())
    }

    async fn validate(&self, attributes: &Attributes<'_>) -> ApiResult<()> {
        let labels = attributes
            .object()?
            .map(|o| o["metadata"]["labels"].clone());
        self.log.lock().unwrap().push(format!(
            "validate {} {}",
            self.name,
            labels.unwrap_or_default()
        ));
        Ok(())
    }
}

fn chain(log: &Arc<Mutex<Vec<String>>>, plugins: &[(&'static str, bool, bool)]) -> Chain {
    Chain::of(
        plugins
            .iter()
            .map(|&(name, handles, refuse)| {
                let plugin: Arc<dyn Plugin> = Arc::new(Recorder {
                    name,
                    log: log.clone(),
                    handles,
                    refuse,
                });
                (name, plugin)
            })
            .collect(),
    )
}

#[tokio::test]
async fn plugins_run_in_order_and_see_each_others_changes() {
    let log = Arc::default();
    let chain = chain(
        &log,
        &[
            ("first", true, false),
            ("skipped", false, false),
            ("second", true, false),
        ],
    );
    let user = user();
    let pod = json!({"metadata": {"name": "web"}});
    let mut attributes = pod_attributes(Operation::Create, &pod, None, &user);
    attributes.dry_run = true;
    chain.admit(&mut attributes).await.unwrap();
    chain.validate(&attributes).await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "admit first (dry run)",
            "admit second (dry run)",
            r#"validate first {"first":"yes","second":"yes"}"#,
            r#"validate second {"first":"yes","second":"yes"}"#,
        ]
    );
    let changed = attributes.into_changed().unwrap();
    assert_eq!(changed["metadata"]["labels"]["second"], "yes");
}

#[tokio::test]
async fn the_first_refusal_ends_the_phase() {
    let log = Arc::default();
    let chain = chain(&log, &[("first", true, true), ("second", true, false)]);
    let user = user();
    let pod = json!({"metadata": {"generateName": "web-"}});
    let mut attributes = pod_attributes(Operation::Create, &pod, None, &user);
    let error = chain.admit(&mut attributes).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"pods "web-" is forbidden: first says no"#
    );
    assert_eq!(error.code(), 403);
    assert_eq!(*log.lock().unwrap(), ["admit first"]);
}

#[tokio::test]
async fn objects_are_converted_only_for_plugins_that_handle_the_request() {
    let conversions = AtomicUsize::new(0);
    let to_json = || {
        conversions.fetch_add(1, Ordering::Relaxed);
        Ok(json!({"metadata": {"name": "web"}}))
    };
    let user = user();
    let new = || {
        let mut attributes = attributes(Operation::Update, "pods", Some("default"), "web", &user);
        attributes.object = Object::typed(&to_json);
        attributes
    };

    let log = Arc::default();
    let uninterested = chain(&log, &[("skipped", false, false)]);
    let mut attributes = new();
    uninterested.admit(&mut attributes).await.unwrap();
    uninterested.validate(&attributes).await.unwrap();
    assert_eq!(attributes.into_changed(), None);
    assert_eq!(conversions.load(Ordering::Relaxed), 0);

    let interested = chain(&log, &[("first", true, false), ("second", true, false)]);
    let mut attributes = new();
    interested.admit(&mut attributes).await.unwrap();
    assert!(attributes.into_changed().is_some());
    assert_eq!(
        conversions.load(Ordering::Relaxed),
        1,
        "converted once, shared"
    );
}

#[tokio::test]
async fn the_default_chain_is_upstreams_default_plugins() {
    let fixture = Fixture::new().await;
    let chain = Chain::new(
        &Enabled::default(),
        &Context {
            lookup: fixture.lookup(),
            authorization: None,
        },
    );
    assert_eq!(
        format!("{chain:?}"),
        r#"Chain(["NamespaceLifecycle", "ServiceAccount", "Priority", "DefaultTolerationSeconds", "CertificateApproval", "CertificateSigning", "CertificateSubjectRestriction"])"#
    );
}
