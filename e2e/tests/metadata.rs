//! Metadata-only responses (`PartialObjectMetadata[List]`), which the garbage collector,
//! client-go metadata informers and kube-rs `metadata_watcher` ask for: kube-rs lists and
//! watches pods through them, and the shapes are upstream's.

use std::time::Duration;

use e2e::{on_both_backends, Cluster};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::Value;

on_both_backends!(
    kube_rs_metadata_watcher_sees_pods,
    metadata_shapes_are_upstreams
);

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: NAME\n  labels: {app: meta}\nspec:\n  containers:\n  - {name: app, image: nginx}\n";

async fn kube_rs_metadata_watcher_sees_pods(cluster: &mut Cluster) {
    cluster.create_default_service_account("default");
    cluster.ok_stdin(&["apply", "-f", "-"], &POD.replace("NAME", "first"));
    let pods: Api<Pod> = Api::namespaced(cluster.client().await, "default");
    let listed = pods
        .list_metadata(&ListParams::default().labels("app=meta"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].metadata.name.as_deref(), Some("first"));
    assert!(listed.metadata.resource_version.is_some());

    // kube 5's metadata watcher: an `Api` of `PartialObjectMeta` watched with `watcher`
    // (what `metadata_watcher` became) lists and watches with metadata-only requests.
    let metadata: Api<PartialObjectMeta<Pod>> = Api::namespaced(cluster.client().await, "default");
    let config = watcher::Config::default().labels("app=meta");
    let mut names = watcher(metadata, config).applied_objects().boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), names.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("first"));
    cluster.ok_stdin(&["apply", "-f", "-"], &POD.replace("NAME", "second"));
    let second = tokio::time::timeout(Duration::from_secs(10), names.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.metadata.name.as_deref(), Some("second"));
    assert!(second.metadata.uid.is_some() && second.metadata.resource_version.is_some());
}

/// GET answers one PartialObjectMetadata; a list-shaped request on one object (or the
/// reverse) is upstream's 406.
async fn metadata_shapes_are_upstreams(cluster: &mut Cluster) {
    cluster.ok(&[
        "create",
        "configmap",
        "shape",
        "--from-literal",
        "secret-ish=value",
    ]);
    let get = |path: &str, accept: &str| {
        http::Request::get(path)
            .header("accept", accept)
            .body(Vec::new())
            .unwrap()
    };
    let one = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
    let list = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
    let client = cluster.client().await;
    let body: Value = serde_json::from_str(
        &client
            .request_text(get("/api/v1/namespaces/default/configmaps/shape", one))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["kind"], "PartialObjectMetadata");
    assert_eq!(body["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(body["metadata"]["name"], "shape");
    assert!(body.get("data").is_none(), "metadata only: {body}");
    let items: Value = serde_json::from_str(
        &client
            .request_text(get("/api/v1/namespaces/default/configmaps", list))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(items["kind"], "PartialObjectMetadataList");
    assert!(items["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["kind"] == "PartialObjectMetadata" && i.get("data").is_none()));
    for (path, accept, message) in [
        ("/api/v1/namespaces/default/configmaps/shape", list, "you requested PartialObjectMetadataList, but the requested object is not a list (*v1.ConfigMap)"),
        ("/api/v1/namespaces/default/configmaps", one, "you requested PartialObjectMetadata, but the requested object is a list (*v1.ConfigMapList)"),
    ] {
        match client.request_text(get(path, accept)).await {
            Err(kube::Error::Api(status)) => assert_eq!((status.code, status.message.as_str()), (406, message)),
            other => panic!("expected 406, got {other:?}"),
        }
    }
}
