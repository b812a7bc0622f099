//! Where plugins read the objects they check writes against (namespaces, service accounts,
//! priority classes, nodes, pods): the registry's watch caches, as upstream's plugins read
//! their informers, so a pod create costs no store reads. An object a cache does not hold
//! (yet) is read from the store, as upstream's plugins fall back to a live lookup when their
//! informer misses: a namespace or service account created a moment ago is found either way.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use store::Store;

use crate::error::ApiResult;
use crate::registry::cache::Cache;

pub struct Lookup {
    store: Arc<dyn Store>,
    /// The registry's caches by store prefix (`/pods/`); empty until [`Lookup::follow`].
    caches: OnceLock<HashMap<Bytes, Arc<Cache>>>,
}

impl Lookup {
    /// Reads from `store` until [`Lookup::follow`] hands over the caches (the chain is built
    /// before the registry whose caches it reads).
    pub fn new(store: Arc<dyn Store>) -> Lookup {
        Lookup {
            store,
            caches: OnceLock::new(),
        }
    }

    /// Serves reads under each cache's prefix from that cache from now on.
    pub fn follow(&self, caches: impl IntoIterator<Item = Arc<Cache>>) {
        let caches = caches
            .into_iter()
            .map(|cache| (Bytes::copy_from_slice(cache.prefix()), cache))
            .collect();
        let _ = self.caches.set(caches);
    }

    /// The cache holding `key`: the one named by its first path segment.
    fn cache_for(&self, key: &str) -> Option<&Arc<Cache>> {
        let end = key.get(1..)?.find('/')? + 2;
        self.caches.get()?.get(key.as_bytes().get(..end)?)
    }

    /// The object stored at `key` (`/serviceaccounts/default/default`).
    pub async fn get(&self, key: &str) -> ApiResult<Option<Bytes>> {
        if let Some(cache) = self.cache_for(key) {
            if let Some(entry) = cache.get(key.as_bytes()).await {
                return Ok(Some(entry.stored.clone()));
            }
        }
        Ok(self.store.get(key.as_bytes()).await?.map(|kv| kv.value))
    }

    /// Every object under `prefix` (`/priorityclasses/`).
    pub async fn list(&self, prefix: &str) -> ApiResult<Vec<Bytes>> {
        if let Some(cache) = self.cache_for(prefix).filter(|cache| cache.synced()) {
            let (entries, _) = cache.list(prefix.as_bytes()).await;
            return Ok(entries.iter().map(|entry| entry.stored.clone()).collect());
        }
        let page = self
            .store
            .list(prefix.as_bytes(), Default::default())
            .await?;
        Ok(page.kvs.into_iter().map(|kv| kv.value).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::tests::Fixture;

    #[tokio::test]
    async fn reads_come_from_the_cache_and_misses_from_the_store() {
        let fixture = Fixture::new().await;
        fixture.put("/priorityclasses/low", r#"{"value":1}"#).await;
        let stop = tokio_util::sync::CancellationToken::new();
        let cache = Cache::start(
            fixture.store.clone(),
            Bytes::from_static(b"/priorityclasses/"),
            Arc::new(|raw: &Bytes| Ok((Default::default(), raw.clone()))),
            16,
            stop.clone(),
        );
        let lookup = Lookup::new(fixture.store.clone());
        lookup.follow([cache.clone()]);
        cache.wait_for(1).await.unwrap();
        assert_eq!(lookup.list("/priorityclasses/").await.unwrap().len(), 1);
        // Written behind the cache's back is still found by name (through the store)...
        let store_only = "/priorityclasses/fresh";
        fixture.put(store_only, r#"{"value":2}"#).await;
        assert!(lookup.get(store_only).await.unwrap().is_some());
        // ... and keys no cache covers go to the store.
        assert!(lookup.get("/namespaces/default").await.unwrap().is_some());
        assert!(lookup.get("/namespaces/gone").await.unwrap().is_none());
        stop.cancel();
    }
}
