//! The `default/kubernetes` service through which pods reach the API server, with the
//! Endpoints and EndpointSlice that point it at this server. Upstream's API server keeps
//! them reconciled itself; here they are made right at every start, so a changed
//! `--secure-port` or `--advertise-address` takes effect on restart.

use std::net::SocketAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::Metadata;
use serde::de::DeserializeOwned;
use serde::Serialize;
use store::Store;

use super::services::Services;
use super::Config;
use crate::error::{ApiError, ApiResult};
use crate::registry::{stored, Strategy};

const NAME: &str = "kubernetes";
const NAMESPACE: &str = "default";

/// Reserves the values of stored services, then creates or corrects the service, its
/// endpoints and its endpoint slice so that `kubernetes.default.svc:443` leads to
/// `endpoint` (this server's advertised address).
pub async fn reconcile(
    store: Arc<dyn Store>,
    config: &Config,
    endpoint: SocketAddr,
) -> ApiResult<()> {
    let services = Services::new(
        store.clone(),
        config.service_cluster_ip_range,
        config.service_node_port_range,
    );
    services.reserve_stored(&*store).await?;
    let first_ip = crate::server::first_ip(&config.service_cluster_ip_range).to_string();
    reconcile_service(&*store, &services, &first_ip, endpoint.port()).await?;
    let family = if endpoint.is_ipv4() { "IPv4" } else { "IPv6" };
    let endpoints = Endpoints {
        metadata: meta([("endpointslice.kubernetes.io/skip-mirror", "true")]),
        subsets: Some(vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress {
                ip: endpoint.ip().to_string(),
                ..Default::default()
            }]),
            ports: Some(vec![EndpointPort {
                name: Some("https".into()),
                port: endpoint.port().into(),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }]),
    };
    put(
        &*store,
        "/services/endpoints/default/kubernetes",
        endpoints,
        |e| e.subsets.clone(),
    )
    .await?;
    let mut slice = EndpointSlice {
        metadata: meta([("kubernetes.io/service-name", NAME)]),
        address_type: family.into(),
        endpoints: vec![Endpoint {
            addresses: vec![endpoint.ip().to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ports: Some(vec![SlicePort {
            name: Some("https".into()),
            port: Some(endpoint.port().into()),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    };
    slice.metadata.generation = Some(1);
    put(&*store, "/endpointslices/default/kubernetes", slice, |s| {
        (s.address_type.clone(), s.endpoints.clone(), s.ports.clone())
    })
    .await
}

/// The service keeps its ClusterIP (the range's first address) across restarts; only its
/// port is brought in line.
async fn reconcile_service(
    store: &dyn Store,
    services: &Services,
    first_ip: &str,
    port: u16,
) -> ApiResult<()> {
    let mut service = Service {
        metadata: meta([("component", "apiserver"), ("provider", "kubernetes")]),
        spec: Some(ServiceSpec {
            cluster_ip: Some(first_ip.into()),
            ports: Some(vec![ServicePort {
                name: Some("https".into()),
                port: 443,
                target_port: Some(IntOrString::Int(port.into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    };
    services.prepare_create(&mut service);
    services.default_fields(&mut service);
    let key = "/services/specs/default/kubernetes";
    if store.get(key.as_bytes()).await?.is_none() {
        services.claim_cluster_ip(first_ip, &service).await?;
    }
    put(store, key, service, |s| {
        s.spec.as_ref().and_then(|spec| spec.ports.clone())
    })
    .await
}

/// Object metadata of the three objects: name, namespace and `labels`.
fn meta<const N: usize>(
    labels: [(&str, &str); N],
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(NAME.into()),
        namespace: Some(NAMESPACE.into()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

/// Creates `wanted` at `key`, or, if an object is there whose `part` differs, replaces that
/// part (keeping the stored object's identity and other fields).
async fn put<T, P>(
    store: &dyn Store,
    key: &str,
    mut wanted: T,
    part: impl Fn(&T) -> P,
) -> ApiResult<()>
where
    T: Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>
        + Serialize
        + DeserializeOwned
        + Clone,
    P: PartialEq,
{
    loop {
        let Some(current) = store.get(key.as_bytes()).await? else {
            let meta = wanted.metadata_mut();
            meta.uid = Some(stored::new_uid());
            meta.creation_timestamp = Some(stored::now());
            match store.create(key.as_bytes(), stored::encode(&wanted)?).await {
                Ok(_) | Err(store::Error::AlreadyExists { .. }) => return Ok(()),
                Err(error) => return Err(error.into()),
            }
        };
        let existing: T = stored::decode(&current.value, current.mod_revision)?;
        if part(&existing) == part(&wanted) {
            return Ok(());
        }
        let mut updated = wanted.clone();
        *updated.metadata_mut() = existing.metadata().clone();
        updated.metadata_mut().resource_version = None;
        match store
            .update(
                key.as_bytes(),
                stored::encode(&updated)?,
                current.mod_revision,
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(store::Error::Conflict { .. } | store::Error::NotFound { .. }) => continue,
            Err(error) => return Err(ApiError::from(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::embedded::{EmbeddedConfig, EmbeddedStore};

    #[tokio::test]
    async fn created_once_and_corrected_on_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap());
        let config = Config {
            service_cluster_ip_range: "10.96.0.0/12".parse().unwrap(),
            service_node_port_range: "30000-32767".parse().unwrap(),
            authentication: None,
            escalation: None,
            authorization: None,
            admission: Default::default(),
        };
        reconcile(store.clone(), &config, "192.168.1.10:6443".parse().unwrap())
            .await
            .unwrap();
        let raw = store
            .get(b"/services/specs/default/kubernetes")
            .await
            .unwrap()
            .unwrap();
        let service: Service = stored::decode(&raw.value, raw.mod_revision).unwrap();
        let value = serde_json::to_value(&service).unwrap();
        assert_eq!(value["spec"]["clusterIP"], "10.96.0.1");
        assert_eq!(
            value["spec"]["ports"][0],
            serde_json::json!({"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443})
        );
        assert_eq!(value["metadata"]["labels"]["component"], "apiserver");
        let uid = service.metadata.uid.clone();

        reconcile(store.clone(), &config, "192.168.1.11:8443".parse().unwrap())
            .await
            .unwrap();
        let raw = store
            .get(b"/services/specs/default/kubernetes")
            .await
            .unwrap()
            .unwrap();
        let service: Service = stored::decode(&raw.value, raw.mod_revision).unwrap();
        assert_eq!(service.metadata.uid, uid);
        assert_eq!(
            service.spec.unwrap().ports.unwrap()[0].target_port,
            Some(IntOrString::Int(8443))
        );
        let raw = store
            .get(b"/services/endpoints/default/kubernetes")
            .await
            .unwrap()
            .unwrap();
        let endpoints: Endpoints = stored::decode(&raw.value, raw.mod_revision).unwrap();
        assert_eq!(
            super::super::endpoints::endpoints_cell(&endpoints),
            "192.168.1.11:8443"
        );

        // Nobody else can take the first address.
        let services = Services::new(
            store.clone(),
            config.service_cluster_ip_range,
            config.service_node_port_range,
        );
        let mut other: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x", "namespace": "default", "uid": "u"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 1}]}
        }))
        .unwrap();
        services.prepare_create(&mut other);
        services.default_fields(&mut other);
        assert!(services.admit_create(&mut other).await.is_err());
    }
}
