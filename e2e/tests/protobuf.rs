//! Protobuf responses as client-go asks for them (`Accept: application/vnd.kubernetes.protobuf,
//! application/json`): objects, lists, watch streams, metadata-only lists and error Statuses,
//! each decoded here with the independent prost types of the k8s-pb crate.

use e2e::{on_both_backends, Cluster};
use k8s_pb::api::apps::v1 as pb_apps;
use k8s_pb::api::core::v1 as pb_core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use kube::client::Body;
use prost::Message;

on_both_backends!(client_go_gets_protobuf);

const CLIENT_GO: &str = "application/vnd.kubernetes.protobuf, application/json";
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// GETs `path` with `accept`; the status code, content type and body.
async fn get(cluster: &Cluster, path: &str, accept: &str) -> (u16, String, Vec<u8>) {
    let request = http::Request::builder()
        .uri(path)
        .header("accept", accept)
        .body(Body::empty())
        .unwrap();
    let response = cluster.client().await.send(request).await.unwrap();
    let code = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.into_body().collect_bytes().await.unwrap();
    (code, content_type, body.to_vec())
}

/// The envelope of a protobuf body: its apiVersion, kind and the object's message.
fn unwrap(body: &[u8]) -> (String, String, Vec<u8>) {
    let unknown = body
        .strip_prefix(b"k8s\0")
        .unwrap_or_else(|| panic!("no protobuf magic: {:?}", String::from_utf8_lossy(body)));
    let unknown = Unknown::decode(unknown).unwrap();
    let type_meta = unknown.type_meta.unwrap();
    (
        type_meta.api_version.unwrap(),
        type_meta.kind.unwrap(),
        unknown.raw.unwrap(),
    )
}

async fn client_go_gets_protobuf(cluster: &mut Cluster) {
    // kubectl's typed create sends protobuf and now reads a protobuf answer back.
    cluster.ok(&["create", "deployment", "web", "--image", "nginx"]);
    cluster.ok(&["create", "configmap", "first", "--from-literal", "a=1"]);
    let json = cluster.ok(&["get", "deployment", "web", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();

    let (code, content_type, body) = get(
        cluster,
        "/apis/apps/v1/namespaces/default/deployments/web",
        CLIENT_GO,
    )
    .await;
    assert_eq!((code, content_type.as_str()), (200, PROTOBUF));
    let (api_version, kind, raw) = unwrap(&body);
    assert_eq!(
        (api_version.as_str(), kind.as_str()),
        ("apps/v1", "Deployment")
    );
    let deployment = pb_apps::Deployment::decode(raw.as_slice()).unwrap();
    let metadata = deployment.metadata.unwrap();
    assert_eq!(metadata.name.as_deref(), Some("web"));
    assert_eq!(
        metadata.resource_version.as_deref(),
        json["metadata"]["resourceVersion"].as_str()
    );
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    let container = &spec.template.unwrap().spec.unwrap().containers[0];
    assert_eq!(container.image.as_deref(), Some("nginx"));

    // A list, at a revision a watch then starts from.
    let path = "/api/v1/namespaces/default/configmaps";
    let (code, content_type, body) = get(cluster, path, CLIENT_GO).await;
    assert_eq!((code, content_type.as_str()), (200, PROTOBUF));
    let (api_version, kind, raw) = unwrap(&body);
    assert_eq!(
        (api_version.as_str(), kind.as_str()),
        ("v1", "ConfigMapList")
    );
    let list = pb_core::ConfigMapList::decode(raw.as_slice()).unwrap();
    let names: Vec<_> = list
        .items
        .iter()
        .filter_map(|c| c.metadata.as_ref()?.name.clone())
        .collect();
    assert!(names.contains(&"first".to_string()), "{names:?}");
    assert_eq!(
        list.items
            .iter()
            .find(|c| c.metadata.as_ref().unwrap().name.as_deref() == Some("first"))
            .unwrap()
            .data
            .get("a")
            .map(String::as_str),
        Some("1")
    );
    let revision = list.metadata.unwrap().resource_version.unwrap();

    cluster.ok(&["create", "configmap", "second", "--from-literal", "b=2"]);
    let (code, content_type, body) = get(
        cluster,
        &format!("{path}?watch=1&resourceVersion={revision}&timeoutSeconds=2"),
        CLIENT_GO,
    )
    .await;
    assert_eq!(
        (code, content_type.as_str()),
        (200, "application/vnd.kubernetes.protobuf;stream=watch")
    );
    let mut frames = body.as_slice();
    let mut events = Vec::new();
    while frames.len() >= 4 {
        let length = u32::from_be_bytes(frames[..4].try_into().unwrap()) as usize;
        let event = pb_meta::WatchEvent::decode(&frames[4..4 + length]).unwrap();
        frames = &frames[4 + length..];
        let (_, kind, raw) = unwrap(&event.object.unwrap().raw.unwrap());
        assert_eq!(kind, "ConfigMap");
        let configmap = pb_core::ConfigMap::decode(raw.as_slice()).unwrap();
        events.push((
            event.r#type.unwrap(),
            configmap.metadata.unwrap().name.unwrap(),
        ));
    }
    assert!(frames.is_empty(), "a partial frame is left: {frames:?}");
    assert_eq!(events, [("ADDED".to_string(), "second".to_string())]);

    // Metadata only, as client-go's metadata informers ask.
    let (code, content_type, body) = get(
        cluster,
        path,
        "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
    )
    .await;
    assert_eq!((code, content_type.as_str()), (200, PROTOBUF));
    let (api_version, kind, raw) = unwrap(&body);
    assert_eq!(
        (api_version.as_str(), kind.as_str()),
        ("meta.k8s.io/v1", "PartialObjectMetadataList")
    );
    let list = pb_meta::PartialObjectMetadataList::decode(raw.as_slice()).unwrap();
    let mut names: Vec<_> = list
        .items
        .iter()
        .filter_map(|item| item.metadata.as_ref()?.name.clone())
        .filter(|name| name != "kube-root-ca.crt")
        .collect();
    names.sort();
    assert_eq!(names, ["first", "second"]);

    // Errors come in the negotiated encoding too.
    let (code, content_type, body) = get(cluster, &format!("{path}/nope"), CLIENT_GO).await;
    assert_eq!((code, content_type.as_str()), (404, PROTOBUF));
    let (api_version, kind, raw) = unwrap(&body);
    assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "Status"));
    let status = pb_meta::Status::decode(raw.as_slice()).unwrap();
    assert_eq!(status.reason.as_deref(), Some("NotFound"));
    assert_eq!(status.code, Some(404));
    assert_eq!(
        status.message.as_deref(),
        Some("configmaps \"nope\" not found")
    );

    // JSON stays the answer for clients that ask for it (or for nothing).
    let (code, content_type, body) = get(cluster, path, "application/json").await;
    assert_eq!((code, content_type.as_str()), (200, "application/json"));
    assert!(body.starts_with(b"{\"kind\":\"ConfigMapList\""));
}
