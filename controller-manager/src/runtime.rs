//! The glue between a controller's event handlers and its `kube::runtime::Controller`: handlers
//! trigger reconciles through a [`Queue`] (now or after a delay, like client-go's `Add` and
//! `AddAfter`), and [`run`] drives the Controller (one per resource kind, fed from the shared
//! informer store) with per-key exponential backoff on errors, like upstream's default
//! controller rate limiter, and the workqueue metrics.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::metrics;

/// A reconcile failure; the key is retried with backoff. Where upstream has a message for the
/// failure it is upstream's, as it ends up in logs, events and conditions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", api_message(.0))]
    Kube(#[from] kube::Error),
    /// A bug in the sync; the message is the panic's.
    #[error("sync panicked: {0}")]
    Panicked(String),
    #[error("invalid label selector: {0}")]
    InvalidSelector(#[from] machinery::selector::SelectorError),
    /// A deployment's `maxSurge` or `maxUnavailable` that is neither a number nor a
    /// percentage.
    #[error("invalid value for IntOrString: invalid value {0:?}")]
    InvalidIntOrString(String),
    /// Pods a PodDisruptionBudget selects have a controller neither cached nor serving
    /// `/scale` (gone, or replaced by a namesake).
    #[error("found no controllers for pod {0:?}")]
    NoControllers(String),
    /// An owner's kind that discovery does not know.
    #[error("no matches for kind {kind:?} in version {group_version:?}")]
    NoMapping { kind: String, group_version: String },
    /// The owner changed or is going away, so the orphan stays an orphan.
    #[error("can't adopt {kind} {name}: {reason}")]
    CannotAdopt {
        kind: String,
        name: String,
        reason: String,
    },
    /// The template hash of a deployment's new ReplicaSet names a foreign one; the
    /// deployment's collision count has been raised so the next sync hashes differently.
    #[error("replica set {0:?} already exists with another template")]
    HashCollision(String),
    /// A DaemonSet's revision name collided while its collision count in the cache was
    /// already stale: retried once the cache has the current count.
    #[error("found a stale collision count ({seen}, expected {current}) of DaemonSet {name:?} while processing; will retry until it is updated")]
    StaleCollisionCount {
        name: String,
        seen: i32,
        current: i32,
    },
    /// A Replace CronJob's running Job could not be deleted to make way for the next.
    #[error("could not replace job {0}")]
    ReplaceFailed(String),
    #[error("status update of replica set {0} kept conflicting")]
    StatusConflict(String),
    /// A StatefulSet pod's claim is still being deleted (left by a pod scaled away): the pod
    /// waits for it to go.
    #[error("pvc {0} is being deleted")]
    ClaimDeleting(String),
    /// A service-account token could not be signed.
    #[error("failed to generate token: {0}")]
    TokenSigning(String),
    /// Discovering or deleting a terminating namespace's content failed; the messages of its
    /// failure conditions.
    #[error("{}", .0.join(", "))]
    NamespaceContent(Vec<String>),
    /// A certificate signing request whose request does not parse.
    #[error("unable to parse csr {name:?}: {reason}")]
    UnparsableCsr { name: String, reason: String },
    /// The cluster CA could not sign an approved request.
    #[error("error auto signing csr: {0}")]
    CsrSigning(String),
    /// A node client request whose requestor may not have it approved: retried with backoff,
    /// as upstream retries it, in case a binding arrives.
    #[error("recognized csr {name:?} as [{}] but subject access review was not approved", .tried.join(" "))]
    CsrNotApproved {
        name: String,
        tried: Vec<&'static str>,
    },
}

/// The message of an API error as upstream prints it (`pods "x" is forbidden: ...`).
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// Whether the API refused with a cause of type `cause` (such as `NamespaceTerminating`).
pub fn has_cause(error: &kube::Error, cause: &str) -> bool {
    matches!(error, kube::Error::Api(status) if status.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == cause)))
}

/// What a reconcile returns.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// True when `result` failed with HTTP `code`.
pub fn is_status<T>(result: &std::result::Result<T, kube::Error>, code: u16) -> bool {
    matches!(result, Err(kube::Error::Api(status)) if status.code == code)
}

type Key = (Option<String>, String);

/// A cloneable handle that triggers reconciles of `K` keys.
pub struct Queue<K: Resource<DynamicType = ()>> {
    name: &'static str,
    tx: UnboundedSender<ObjectRef<K>>,
    pending: Arc<Mutex<HashSet<Key>>>,
}

impl<K: Resource<DynamicType = ()>> Clone for Queue<K> {
    fn clone(&self) -> Self {
        Queue {
            name: self.name,
            tx: self.tx.clone(),
            pending: self.pending.clone(),
        }
    }
}

impl<K> Queue<K>
where
    K: Resource<DynamicType = ()> + 'static,
{
    /// A queue for the controller `name` and the stream its Controller consumes.
    pub fn new(name: &'static str) -> (Self, UnboundedReceiver<ObjectRef<K>>) {
        let (tx, rx) = unbounded();
        (
            Queue {
                name,
                tx,
                pending: Arc::default(),
            },
            rx,
        )
    }

    /// Reconciles `key` as soon as possible (once, however often it is added meanwhile).
    pub fn add(&self, key: ObjectRef<K>) {
        metrics::WORKQUEUE_ADDS
            .with_label_values(&[self.name])
            .inc();
        let mut pending = self.pending.lock().expect("pending");
        pending.insert((key.namespace.clone(), key.name.clone()));
        metrics::WORKQUEUE_DEPTH
            .with_label_values(&[self.name])
            .set(pending.len() as i64);
        drop(pending);
        let _ = self.tx.unbounded_send(key);
    }

    /// Reconciles the object `object`.
    pub fn add_object(&self, object: &K) {
        self.add(ObjectRef::from_obj(object));
    }

    /// Reconciles `key` after `delay`.
    pub fn add_after(&self, key: ObjectRef<K>, delay: Duration)
    where
        K: Send + Sync,
    {
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }

    fn done_waiting(&self, namespace: Option<String>, name: String) {
        let mut pending = self.pending.lock().expect("pending");
        pending.remove(&(namespace, name));
        metrics::WORKQUEUE_DEPTH
            .with_label_values(&[self.name])
            .set(pending.len() as i64);
    }
}

/// Exponential per-key backoff of upstream's `DefaultControllerRateLimiter`: 5 ms doubling up
/// to 1000 s, reset by a success.
pub struct Backoff<T> {
    failures: Mutex<HashMap<T, u32>>,
}

impl<T> Default for Backoff<T> {
    fn default() -> Self {
        Backoff {
            failures: Mutex::default(),
        }
    }
}

impl<T: std::hash::Hash + Eq> Backoff<T> {
    pub fn next(&self, key: T) -> Duration {
        let mut failures = self.failures.lock().expect("failures");
        let count = failures.entry(key).or_insert(0);
        let delay = Duration::from_millis(5)
            .saturating_mul(1u32 << (*count).min(20))
            .min(Duration::from_secs(1000));
        *count += 1;
        delay
    }

    pub fn forget(&self, key: &T) {
        self.failures.lock().expect("failures").remove(key);
    }
}

type Reconcile<K, Ctx> =
    dyn Fn(Arc<K>, Arc<Ctx>) -> BoxFuture<'static, Result<Action>> + Send + Sync;

struct Runner<K: Resource<DynamicType = ()>, Ctx> {
    queue: Queue<K>,
    context: Arc<Ctx>,
    reconcile: Box<Reconcile<K, Ctx>>,
    backoff: Backoff<Key>,
}

/// What a controller's `start` hands over to be run, in named fields: as seven positional
/// arguments, a bare worker count (`1`, `8`) said nothing at the call site.
pub struct Controller<K: Resource<DynamicType = ()> + 'static> {
    /// Where the event handlers trigger reconciles.
    pub queue: Queue<K>,
    /// The receiving end of `queue`, from [`Queue::new`].
    pub triggers: UnboundedReceiver<ObjectRef<K>>,
    /// The shared informer's store of `K`, where each triggered key is looked up.
    pub store: Store<K>,
    /// The informers the controller reads (`store`'s included): no reconcile runs until all
    /// are synced, so no sync acts on a partial view of the cluster.
    pub caches: Vec<BoxFuture<'static, ()>>,
    /// Reconciles at once (never two for one key): upstream's `--concurrent-*-syncs`.
    pub workers: u16,
}

impl<K> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Runs `reconcile` with `context` for every triggered key until the process ends.
    pub async fn run<Ctx, F, Fut>(self, context: Arc<Ctx>, reconcile: F)
    where
        Ctx: Send + Sync + 'static,
        F: Fn(Arc<K>, Arc<Ctx>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action>> + Send + 'static,
    {
        let Controller {
            queue,
            triggers,
            store,
            caches,
            workers,
        } = self;
        let name = queue.name;
        futures::future::join_all(caches).await;
        let runner = Arc::new(Runner {
            queue: queue.clone(),
            context,
            reconcile: Box::new(move |object, context| reconcile(object, context).boxed()),
            backoff: Backoff::default(),
        });
        controller::Controller::for_stream(
            futures::stream::pending::<Result<K, watcher::Error>>(),
            store,
        )
        .reconcile_on(triggers)
        .with_config(controller::Config::default().concurrency(workers))
        .run(reconcile_one, error_policy, runner)
        .for_each(|result| {
            if let Err(controller::Error::ObjectNotFound(key)) = result {
                queue.done_waiting(key.namespace.clone(), key.name.clone());
            }
            futures::future::ready(())
        })
        .await;
        tracing::error!(controller = name, "controller stopped");
    }
}

fn reconcile_one<K, Ctx>(
    object: Arc<K>,
    runner: Arc<Runner<K, Ctx>>,
) -> BoxFuture<'static, Result<Action>>
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
    Ctx: Send + Sync + 'static,
{
    async move {
        let key = (object.namespace(), object.name_any());
        runner.queue.done_waiting(key.0.clone(), key.1.clone());
        let name = runner.queue.name;
        let started = Instant::now();
        // A bug in one sync must not stop the controller: it fails and is retried.
        let sync = std::panic::AssertUnwindSafe((runner.reconcile)(object, runner.context.clone()));
        let result = sync.catch_unwind().await.unwrap_or_else(|panic| {
            let message = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            tracing::error!(controller = name, key = ?key, panic = message.as_deref().unwrap_or("?"), "sync panicked");
            Err(Error::Panicked(message.unwrap_or_default()))
        });
        metrics::WORKQUEUE_WORK_DURATION.with_label_values(&[name]).observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(_) => {
                runner.backoff.forget(&key);
                metrics::RECONCILES.with_label_values(&[name, "success"]).inc();
            }
            Err(error) => {
                metrics::RECONCILES.with_label_values(&[name, "error"]).inc();
                let namespace = key.0.as_deref().unwrap_or("");
                if matches!(error, Error::Kube(kube::Error::Api(ref status)) if status.code == 409) {
                    // A write based on a cache that had not caught up yet: routine.
                    tracing::debug!(controller = name, namespace, name = key.1, %error, "sync conflicted; retrying");
                } else {
                    tracing::info!(controller = name, namespace, name = key.1, %error, "sync failed; retrying");
                }
            }
        }
        result
    }
    .boxed()
}

fn error_policy<K, Ctx>(object: Arc<K>, _error: &Error, runner: Arc<Runner<K, Ctx>>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    metrics::WORKQUEUE_RETRIES
        .with_label_values(&[runner.queue.name])
        .inc();
    Action::requeue(runner.backoff.next((object.namespace(), object.name_any())))
}
