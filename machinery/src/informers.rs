//! Process-wide shared informers, like upstream's `SharedInformerFactory`: one list+watch per
//! resource kind feeds a `kube::runtime` reflector store that every reader shares (the
//! controllers list from it; the scheduler's cache holds the very same objects), and fans
//! each change out to the subscribers' event handlers.
//!
//! kube's own `Writer::subscribe` is not used for the fan-out because it forwards only applied
//! objects: the ReplicaSet expectations, the deployment and endpoints controllers need
//! deletions and the previous state of an update, which upstream's handlers receive too. A relist
//! after a watch gap publishes the difference with the cache, so a deletion missed meanwhile is
//! still seen.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

/// One observed change of an object, as upstream's add/update/delete handlers see it.
pub enum Change<K> {
    /// Added (`old` is `None`) or updated.
    Applied { old: Option<Arc<K>>, new: Arc<K> },
    /// Deleted; the last state seen.
    Deleted(Arc<K>),
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Applied { old, new } => Change::Applied {
                old: old.clone(),
                new: new.clone(),
            },
            Change::Deleted(gone) => Change::Deleted(gone.clone()),
        }
    }
}

/// The shared cache of one kind and its subscribers.
pub struct Informer<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    subscribers: Mutex<Vec<UnboundedSender<Change<K>>>>,
    /// True once the first list is in the store. (kube's `Store::wait_until_ready` wakes only
    /// the last of several concurrent waiters, and many controllers wait on one informer.)
    synced: tokio::sync::watch::Sender<bool>,
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    /// The cache every controller lists from (ready once the first list has arrived).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// A stream of every change from now on; subscribe before [`Informers::start`] to see the
    /// initial list as additions.
    pub fn subscribe(&self) -> UnboundedReceiver<Change<K>> {
        let (tx, rx) = unbounded();
        self.subscribers.lock().expect("subscribers").push(tx);
        rx
    }

    /// Resolves once the store holds the first list (client-go's `WaitForCacheSync`).
    pub fn synced(&self) -> BoxFuture<'static, ()> {
        let mut synced = self.synced.subscribe();
        async move {
            let _ = synced.wait_for(|s| *s).await;
        }
        .boxed()
    }

    fn publish(&self, change: Change<K>) {
        self.subscribers
            .lock()
            .expect("subscribers")
            .retain(|tx| tx.unbounded_send(change.clone()).is_ok());
    }
}

type Starter = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Creates informers on first use and starts them all at once when the controllers are wired.
/// Their watches stop when the factory is dropped (the component shutting down), so they end
/// their requests cleanly instead of dying with the runtime.
pub struct Informers {
    client: Client,
    informers: Mutex<HashMap<(TypeId, String), Box<dyn Any + Send + Sync>>>,
    starters: Mutex<Vec<Starter>>,
    stop: CancellationToken,
}

impl Drop for Informers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Informers {
    pub fn new(client: Client) -> Self {
        Informers {
            client,
            informers: Mutex::default(),
            starters: Mutex::default(),
            stop: CancellationToken::new(),
        }
    }

    /// The informer of every object of kind `K`, shared by every caller.
    pub fn get<K>(&self) -> Arc<Informer<K>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.get_selected("")
    }

    /// The informer of the objects of kind `K` matching the field selector `fields`, for
    /// controllers that care about a few objects of a numerous kind.
    pub fn get_selected<K>(&self, fields: &str) -> Arc<Informer<K>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let key = (TypeId::of::<K>(), fields.to_string());
        let mut informers = self.informers.lock().expect("informers");
        if let Some(existing) = informers.get(&key) {
            return existing
                .downcast_ref::<Arc<Informer<K>>>()
                .expect("informer type")
                .clone();
        }
        let writer = Writer::<K>::default();
        let informer = Arc::new(Informer {
            store: writer.as_reader(),
            subscribers: Mutex::default(),
            synced: tokio::sync::watch::channel(false).0,
        });
        informers.insert(key, Box::new(informer.clone()));
        let api = Api::<K>::all(self.client.clone());
        let mut config = watcher::Config::default();
        if !fields.is_empty() {
            config = config.fields(fields);
        }
        self.starters.lock().expect("starters").push(Box::pin(run(
            api,
            config,
            writer,
            informer.clone(),
        )));
        informer
    }

    /// Starts every informer created so far.
    pub fn start(&self) {
        for starter in self.starters.lock().expect("starters").drain(..) {
            let stop = self.stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = starter => {}
                }
            });
        }
    }
}

/// Lists and watches forever (the watcher relists with backoff after errors), keeping the store
/// current and publishing what changed; a relist publishes the difference with the cache.
async fn run<K>(
    api: Api<K>,
    config: watcher::Config,
    mut writer: Writer<K>,
    informer: Arc<Informer<K>>,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let reader = writer.as_reader();
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(kind = K::kind(&()).as_ref(), %error, "watch failed; relisting");
                continue;
            }
        };
        match &event {
            Event::Apply(object) => {
                let key = ObjectRef::from_obj(object);
                let old = reader.get(&key);
                writer.apply_watcher_event(&event);
                if let Some(new) = reader.get(&key) {
                    informer.publish(Change::Applied { old, new });
                }
            }
            Event::Delete(object) => {
                writer.apply_watcher_event(&event);
                informer.publish(Change::Deleted(Arc::new(object.clone())));
            }
            Event::Init | Event::InitApply(_) => writer.apply_watcher_event(&event),
            Event::InitDone => {
                let mut before: HashMap<ObjectRef<K>, Arc<K>> = reader
                    .state()
                    .into_iter()
                    .map(|o| (ObjectRef::from_obj(&*o), o))
                    .collect();
                writer.apply_watcher_event(&event);
                for new in reader.state() {
                    let old = before.remove(&ObjectRef::from_obj(&*new));
                    if old
                        .as_ref()
                        .is_none_or(|old| old.resource_version() != new.resource_version())
                    {
                        informer.publish(Change::Applied { old, new });
                    }
                }
                for gone in before.into_values() {
                    informer.publish(Change::Deleted(gone));
                }
                informer.synced.send_replace(true);
            }
        }
    }
}
