//! The service account controller (upstream `pkg/controller/serviceaccount`): every active
//! namespace has a `default` ServiceAccount, recreated if deleted, so pods that name no
//! service account can be admitted.

use std::sync::Arc;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use super::ControllerContext;
use crate::informers::Change;
use crate::runtime::{self, has_cause, Queue, Result};

/// The controller's name (`--controllers`, queue metrics).
pub const NAME: &str = "serviceaccount-controller";

const DEFAULT: &str = "default";

struct Context {
    client: Client,
    service_accounts: Store<ServiceAccount>,
}

/// Wires the controller to the shared informers and starts it.
pub fn start(ctx: &ControllerContext) {
    let namespaces = ctx.informers.get::<Namespace>();
    let service_accounts = ctx.informers.get::<ServiceAccount>();
    let (queue, triggers) = Queue::new(NAME);
    tokio::spawn(watch_namespaces(queue.clone(), namespaces.subscribe()));
    tokio::spawn(watch_service_accounts(
        queue.clone(),
        service_accounts.subscribe(),
    ));
    let context = Arc::new(Context {
        client: ctx.client_for(NAME),
        service_accounts: service_accounts.store(),
    });
    let controller = runtime::Controller {
        queue,
        triggers,
        store: namespaces.store(),
        caches: vec![namespaces.synced(), service_accounts.synced()],
        workers: 1,
    };
    tokio::spawn(controller.run(context, reconcile));
}

async fn watch_namespaces(
    queue: Queue<Namespace>,
    mut changes: UnboundedReceiver<Change<Namespace>>,
) {
    while let Some(change) = changes.next().await {
        if let Change::Applied { new, .. } = change {
            queue.add_object(&new);
        }
    }
}

/// A deleted `default` account is recreated.
async fn watch_service_accounts(
    queue: Queue<Namespace>,
    mut changes: UnboundedReceiver<Change<ServiceAccount>>,
) {
    while let Some(change) = changes.next().await {
        if let Change::Deleted(gone) = change {
            if gone.name_any() == DEFAULT {
                queue.add(ObjectRef::new(&gone.namespace().unwrap_or_default()));
            }
        }
    }
}

async fn reconcile(namespace: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action> {
    let active = namespace
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_none_or(|p| p == "Active");
    let name = namespace.name_any();
    if !active || namespace.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if ctx
        .service_accounts
        .get(&ObjectRef::new(DEFAULT).within(&name))
        .is_some()
    {
        return Ok(Action::await_change());
    }
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT.into()),
            namespace: Some(name.clone()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    match api.create(&PostParams::default(), &account).await {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => {
            Ok(Action::await_change())
        }
        Err(error) if has_cause(&error, "NamespaceTerminating") => Ok(Action::await_change()),
        Err(error) => Err(error.into()),
    }
}
