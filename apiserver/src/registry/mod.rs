//! The generic REST registry: every served resource is a [`Rest`] around a [`Strategy`],
//! reached through the object-safe [`Resource`] trait so the router needs no per-type code.

pub mod answer;
pub mod cache;
mod continuation;
mod encode;
mod list;
pub mod request;
mod rest;
pub mod scale;
pub mod selector;
pub mod stored;
pub mod strategy;
pub mod table;
pub mod validation;
mod watch;

use std::sync::Arc;

use async_trait::async_trait;
use axum::response::Response;

pub use self::answer::{Answer, Answered, CreateOnly};
pub use self::request::{ApiRequest, Verb};
pub use self::rest::Rest;
pub use self::strategy::{Description, NameRule, Strategy};
use crate::error::{ApiResult, Target};

/// Names and scope of a resource, as discovery and error messages need them.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub list_kind: &'static str,
    /// Plural, as in URLs.
    pub plural: &'static str,
    pub singular: String,
    pub namespaced: bool,
    pub description: Description,
}

impl ResourceInfo {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The error target for an object of this resource.
    pub fn target(&self, name: &str) -> Target {
        Target {
            group: self.group.into(),
            resource: self.plural.into(),
            kind: self.kind.into(),
            name: name.into(),
        }
    }
}

/// A served resource: what the router dispatches to.
#[async_trait]
pub trait Resource: Send + Sync {
    fn info(&self) -> &ResourceInfo;
    /// Adds the object's schema to `generator`'s definitions and returns its name
    /// (`io.k8s.api.core.v1.Pod`), for the OpenAPI documents.
    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> String;
    async fn handle(&self, request: ApiRequest) -> ApiResult<Response>;

    /// Has the resource's writes go through `chain`; resources that admit nothing ignore it.
    fn admit_with(&self, _chain: &Arc<crate::admission::Chain>) {}

    /// The resource's watch cache when its entries are the objects as stored (no other
    /// API's layout), for readers that look objects up by store key; `None` otherwise.
    fn stored_cache(&self) -> Option<Arc<cache::Cache>> {
        None
    }
}

/// Every served resource, looked up by group, version and plural.
#[derive(Default)]
pub struct Registry {
    resources: Vec<Arc<dyn Resource>>,
    /// What every resource added is admitted by (nothing, by default).
    admission: Arc<crate::admission::Chain>,
}

impl Registry {
    /// A registry whose resources' writes go through `admission`.
    pub fn new(admission: Arc<crate::admission::Chain>) -> Self {
        Registry {
            resources: Vec::new(),
            admission,
        }
    }

    pub fn add(&mut self, resource: Arc<dyn Resource>) {
        resource.admit_with(&self.admission);
        self.resources.push(resource);
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<dyn Resource>> {
        self.resources.iter().find(|r| {
            let info = r.info();
            info.group == group && info.version == version && info.plural == plural
        })
    }

    pub fn all(&self) -> &[Arc<dyn Resource>] {
        &self.resources
    }
}
