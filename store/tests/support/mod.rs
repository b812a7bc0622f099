//! What the store tests share: a fresh backend per test, torn down when dropped.

#![allow(dead_code)] // each test binary uses its own part of the support code

pub use store::testing as etcd_server;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use store::embedded::{EmbeddedConfig, EmbeddedStore};
use store::etcd::{EtcdConfig, EtcdStore};
use store::Store;

/// A store plus whatever must outlive it (a temp dir, an etcd process).
pub struct Backend {
    pub store: Arc<dyn Store>,
    _keep: Box<dyn Any + Send>,
}

/// How often the test backends report watch progress: short, so tests waiting for it are quick.
pub const PROGRESS: Duration = Duration::from_millis(200);

pub async fn embedded() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = EmbeddedConfig::new(dir.path());
    config.progress_interval = PROGRESS;
    let store = EmbeddedStore::open(config).expect("open embedded store");
    Backend {
        store: Arc::new(store),
        _keep: Box::new(dir),
    }
}

pub async fn etcd() -> Backend {
    let server = etcd_server::EtcdServer::start();
    let mut config = EtcdConfig::new(vec![server.endpoint()]);
    config.progress_interval = PROGRESS;
    let store = EtcdStore::connect(config).await.expect("connect to etcd");
    Backend {
        store: Arc::new(store),
        _keep: Box::new(server),
    }
}
