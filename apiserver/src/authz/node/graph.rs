//! Which objects each node may read: the pods bound to it, and the secrets, config maps,
//! claims and service accounts those pods use, kept current from a watch on pods.
//!
//! Upstream keeps a general graph (node ← pod ← secret, node ← pod ← pvc ← pv ← secret...)
//! and walks it. Every path this server can have is one pod long (no persistent volumes or
//! volume attachments are served yet), so the graph here is flat: each object a bound pod
//! names maps to the nodes that reach it, with a count of the pods doing so, and a lookup is
//! one hash probe.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::error::ApiResult;
use crate::registry::cache::{Cache, CacheEvent, Derived, Indexer};

/// The kinds of object a node reaches through its pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    Pod,
    Secret,
    ConfigMap,
    PersistentVolumeClaim,
    ServiceAccount,
    ResourceClaim,
}

/// One object, in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vertex {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

/// What the graph keeps of a pod: its node and what it uses. This is what the graph's pod
/// cache stores instead of the pod, so the cache holds a few hundred bytes per pod.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Uses {
    pub node: String,
    pub vertices: Vec<Vertex>,
}

/// Events the graph's pod cache keeps; it serves no watchers, only the graph's follower.
const CACHE_EVENTS: usize = 1024;

#[derive(Debug, Default)]
struct Edges {
    /// For each object a bound pod uses, the nodes of those pods and how many pods each.
    reach: HashMap<Vertex, HashMap<String, u32>>,
}

impl Edges {
    fn add(&mut self, uses: &Uses) {
        for vertex in &uses.vertices {
            *self
                .reach
                .entry(vertex.clone())
                .or_default()
                .entry(uses.node.clone())
                .or_default() += 1;
        }
    }

    fn remove(&mut self, uses: &Uses) {
        for vertex in &uses.vertices {
            let Some(nodes) = self.reach.get_mut(vertex) else {
                continue;
            };
            if let Some(count) = nodes.get_mut(&uses.node) {
                *count -= 1;
                if *count == 0 {
                    nodes.remove(&uses.node);
                }
            }
            if nodes.is_empty() {
                self.reach.remove(vertex);
            }
        }
    }
}

/// The live graph.
pub struct Graph {
    cache: Arc<Cache>,
    edges: RwLock<Edges>,
    /// The revision of the cache the follower last built the graph from.
    built: tokio::sync::watch::Sender<i64>,
    _stop: DropGuard,
}

impl Graph {
    /// Starts watching pods in `store`; [`Graph::ready`] resolves once the graph reflects
    /// what the store held when it started.
    pub fn start(store: Arc<dyn store::Store>) -> Arc<Graph> {
        let stop = CancellationToken::new();
        let indexer: Indexer = Arc::new(|raw: &Bytes| {
            // Most pod writes are of pods not bound yet (every create), which reach nothing:
            // those are told apart by skimming for the node name, without building the pod.
            let uses = match serde_json::from_slice::<Bound>(raw) {
                Ok(Bound {
                    spec:
                        Some(Spec {
                            node_name: Some(node),
                        }),
                }) if !node.is_empty() => serde_json::from_slice::<Value>(raw)
                    .map(|pod| uses_of(&pod))
                    .unwrap_or_default(),
                _ => Uses::default(),
            };
            let compact = serde_json::to_vec(&uses).unwrap_or_default();
            Ok((Derived::default(), Bytes::from(compact)))
        });
        let cache = Cache::start(
            store,
            Bytes::from_static(b"/pods/"),
            indexer,
            CACHE_EVENTS,
            stop.clone(),
        );
        let graph = Arc::new(Graph {
            cache,
            edges: RwLock::new(Edges::default()),
            built: tokio::sync::watch::channel(0).0,
            _stop: stop.clone().drop_guard(),
        });
        let weak = Arc::downgrade(&graph);
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = follow(weak) => {}
            }
        });
        graph
    }

    /// Waits until the pods the store held at start are in the graph.
    pub async fn ready(&self) -> ApiResult<()> {
        self.cache.wait_for(1).await?;
        let mut built = self.built.subscribe();
        // The follower rebuilds from the cache once the cache has listed the store.
        let _ = built.wait_for(|revision| *revision >= 1).await;
        Ok(())
    }

    /// Whether a pod bound to `node` uses `vertex` (or is it).
    pub fn reaches(&self, node: &str, vertex: &Vertex) -> bool {
        self.edges
            .read()
            .expect("node graph")
            .reach
            .get(vertex)
            .is_some_and(|nodes| nodes.contains_key(node))
    }

    fn apply(&self, event: &CacheEvent) {
        let mut edges = self.edges.write().expect("node graph");
        if let Some(prev) = &event.prev {
            edges.remove(&read(&prev.stored));
        }
        if event.kind != crate::registry::cache::EventType::Deleted {
            edges.add(&read(&event.entry.stored));
        }
    }
}

/// Applies every pod change to the graph; rebuilds it from the cache when the follower fell
/// behind or the cache resynced (which it also does once at start, after its first list).
async fn follow(graph: Weak<Graph>) {
    loop {
        let Some(strong) = graph.upgrade() else {
            return;
        };
        let Ok(subscription) = strong.cache.subscribe(b"", None).await else {
            return;
        };
        let mut edges = Edges::default();
        for entry in &subscription.initial {
            edges.add(&read(&entry.stored));
        }
        *strong.edges.write().expect("node graph") = edges;
        strong.built.send_replace(subscription.revision);
        drop(strong);
        let mut live = subscription.live;
        // Until the follower falls behind, or the cache resyncs and replaces its channel:
        // then it starts over.
        while let Ok(event) = live.recv().await {
            match graph.upgrade() {
                Some(strong) => strong.apply(&event),
                None => return,
            }
        }
    }
}

/// The one field of a pod that says whether it reaches anything: `spec.nodeName`.
#[derive(Deserialize)]
struct Bound<'a> {
    #[serde(default, borrow)]
    spec: Option<Spec<'a>>,
}

#[derive(Deserialize)]
struct Spec<'a> {
    #[serde(default, borrow, rename = "nodeName")]
    node_name: Option<std::borrow::Cow<'a, str>>,
}

fn read(compact: &[u8]) -> Uses {
    serde_json::from_slice(compact).unwrap_or_default()
}

/// What a pod bound to a node lets that node read: the pod itself, its service account, and
/// every secret, config map and claim its spec names (image pull secrets, env, envFrom,
/// volumes, projected sources, and the secret references of volume plugins). An unbound pod
/// lets no node read anything.
pub(crate) fn uses_of(pod: &Value) -> Uses {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or("").to_string();
    let spec = &pod["spec"];
    let node = text(spec.get("nodeName"));
    if node.is_empty() {
        return Uses::default();
    }
    let namespace = text(pod.pointer("/metadata/namespace"));
    let pod_name = text(pod.pointer("/metadata/name"));
    let mut vertices = Vec::new();
    let mut add = |kind: Kind, name: String| {
        if !name.is_empty() {
            let vertex = Vertex {
                kind,
                namespace: namespace.clone(),
                name,
            };
            if !vertices.contains(&vertex) {
                vertices.push(vertex);
            }
        }
    };
    add(Kind::Pod, pod_name.clone());
    add(Kind::ServiceAccount, text(spec.get("serviceAccountName")));
    for secret in spec["imagePullSecrets"].as_array().into_iter().flatten() {
        add(Kind::Secret, text(secret.get("name")));
    }
    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|field| spec[*field].as_array().into_iter().flatten());
    for container in containers {
        for env in container["env"].as_array().into_iter().flatten() {
            let from = &env["valueFrom"];
            add(Kind::Secret, text(from.pointer("/secretKeyRef/name")));
            add(Kind::ConfigMap, text(from.pointer("/configMapKeyRef/name")));
        }
        for source in container["envFrom"].as_array().into_iter().flatten() {
            add(Kind::Secret, text(source.pointer("/secretRef/name")));
            add(Kind::ConfigMap, text(source.pointer("/configMapRef/name")));
        }
    }
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        add(Kind::Secret, text(volume.pointer("/secret/secretName")));
        add(Kind::ConfigMap, text(volume.pointer("/configMap/name")));
        add(
            Kind::PersistentVolumeClaim,
            text(volume.pointer("/persistentVolumeClaim/claimName")),
        );
        if volume.get("ephemeral").is_some() {
            // A generic ephemeral volume's claim is named after the pod and the volume.
            add(
                Kind::PersistentVolumeClaim,
                format!("{pod_name}-{}", text(volume.get("name"))),
            );
        }
        for source in volume
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(Kind::Secret, text(source.pointer("/secret/name")));
            add(Kind::ConfigMap, text(source.pointer("/configMap/name")));
        }
        add(Kind::Secret, text(volume.pointer("/azureFile/secretName")));
        for plugin in [
            "cephfs",
            "flexVolume",
            "iscsi",
            "rbd",
            "scaleIO",
            "storageos",
        ] {
            add(
                Kind::Secret,
                text(volume.pointer(&format!("/{plugin}/secretRef/name"))),
            );
        }
        add(
            Kind::Secret,
            text(volume.pointer("/csi/nodePublishSecretRef/name")),
        );
    }
    for claim in pod
        .pointer("/status/resourceClaimStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add(Kind::ResourceClaim, text(claim.get("resourceClaimName")));
    }
    Uses { node, vertices }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vertex(kind: Kind, name: &str) -> Vertex {
        Vertex {
            kind,
            namespace: "shop".into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_bound_pod_uses_what_its_spec_names() {
        let pod = json!({
            "metadata": {"namespace": "shop", "name": "web"},
            "spec": {
                "nodeName": "node-1",
                "serviceAccountName": "builder",
                "imagePullSecrets": [{"name": "registry"}],
                "containers": [{
                    "env": [
                        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}},
                        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}}}
                    ],
                    "envFrom": [{"secretRef": {"name": "extra"}}]
                }],
                "initContainers": [{"envFrom": [{"configMapRef": {"name": "init"}}]}],
                "volumes": [
                    {"name": "v1", "secret": {"secretName": "tls"}},
                    {"name": "v2", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}},
                    {"name": "api", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt"}}
                    ]}},
                    {"name": "c", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi"}}}
                ]
            }
        });
        let uses = uses_of(&pod);
        assert_eq!(uses.node, "node-1");
        let expected = [
            vertex(Kind::Pod, "web"),
            vertex(Kind::ServiceAccount, "builder"),
            vertex(Kind::Secret, "registry"),
            vertex(Kind::Secret, "db"),
            vertex(Kind::ConfigMap, "settings"),
            vertex(Kind::Secret, "extra"),
            vertex(Kind::ConfigMap, "init"),
            vertex(Kind::Secret, "tls"),
            vertex(Kind::PersistentVolumeClaim, "data"),
            vertex(Kind::PersistentVolumeClaim, "web-scratch"),
            vertex(Kind::ConfigMap, "kube-root-ca.crt"),
            vertex(Kind::Secret, "csi"),
        ];
        assert_eq!(uses.vertices, expected);
        assert_eq!(
            uses_of(&json!({"metadata": {"name": "p"}, "spec": {}})),
            Uses::default(),
            "an unbound pod reaches nothing"
        );
    }

    #[test]
    fn edges_count_pods_per_node() {
        let mut edges = Edges::default();
        let on = |node: &str| Uses {
            node: node.into(),
            vertices: vec![vertex(Kind::Secret, "shared")],
        };
        edges.add(&on("a"));
        edges.add(&on("a"));
        edges.add(&on("b"));
        edges.remove(&on("a"));
        let reach = &edges.reach[&vertex(Kind::Secret, "shared")];
        assert_eq!(reach.get("a"), Some(&1));
        edges.remove(&on("a"));
        edges.remove(&on("b"));
        assert!(edges.reach.is_empty());
    }
}
