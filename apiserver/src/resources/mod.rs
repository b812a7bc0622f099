//! Every served resource: one file each, one line each in [`registry`].

mod configmaps;
mod namespaces;
mod pods;
mod podspec;
mod quantity;

use std::sync::Arc;

use store::Store;

use crate::registry::{Registry, Rest};

/// The registry of all built-in resources over `store`.
pub fn registry(store: Arc<dyn Store>) -> Registry {
    let mut registry = Registry::default();
    registry.add(Arc::new(Rest::new(namespaces::Namespaces, store.clone())));
    registry.add(Arc::new(Rest::new(configmaps::ConfigMaps, store.clone())));
    registry.add(Arc::new(Rest::new(pods::Pods, store.clone())));
    registry
}
