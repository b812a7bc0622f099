//! The CSR approving controller (upstream `csrapproving`): a pending request for a node client
//! certificate (`kubernetes.io/kube-apiserver-client-kubelet`, `system:node:<name>` in
//! `system:nodes`) is approved when its requestor may create
//! `certificatesigningrequests/selfnodeclient` (renewing its own identity) or
//! `certificatesigningrequests/nodeclient` (any node's, as kubelet's bootstrap credentials
//! may), which a SubjectAccessReview through the API answers, as upstream asks it. Anything
//! else waits for a person to decide.

use std::sync::Arc;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};
use machinery::certificates::CertificateRequest;

use super::signers::{kubelet_client, KUBE_APISERVER_CLIENT_KUBELET};
use super::{has_condition, is_issued, parse, queue_changes, APPROVED, DENIED};
use crate::controllers::ControllerContext;
use crate::runtime::{self, Error, Queue, Result};

/// The controller's name (`--controllers`, queue metrics).
pub const NAME: &str = "certificatesigningrequest-approving-controller";

/// A kind of request the approver recognizes, the permission its requestor needs, and what
/// the approval says.
struct Recognizer {
    recognizes: fn(&CertificateSigningRequest, &CertificateRequest) -> bool,
    subresource: &'static str,
    message: &'static str,
}

const RECOGNIZERS: &[Recognizer] = &[
    Recognizer {
        recognizes: is_self_node_client,
        subresource: "selfnodeclient",
        message: "Auto approving self kubelet client certificate after SubjectAccessReview.",
    },
    Recognizer {
        recognizes: is_node_client,
        subresource: "nodeclient",
        message: "Auto approving kubelet client certificate after SubjectAccessReview.",
    },
];

fn is_node_client(csr: &CertificateSigningRequest, request: &CertificateRequest) -> bool {
    csr.spec.signer_name == KUBE_APISERVER_CLIENT_KUBELET
        && kubelet_client(request, csr.spec.usages.as_deref().unwrap_or_default()).is_ok()
}

/// A node renewing its own certificate: the requestor is the node the request names.
fn is_self_node_client(csr: &CertificateSigningRequest, request: &CertificateRequest) -> bool {
    csr.spec.username.as_deref() == Some(request.common_name.as_str())
        && is_node_client(csr, request)
}

/// Wires the controller to the shared informers and starts it.
pub fn start(ctx: &ControllerContext) {
    let requests = ctx.informers.get::<CertificateSigningRequest>();
    let (queue, triggers) = Queue::new(NAME);
    tokio::spawn(queue_changes(queue.clone(), requests.subscribe()));
    let controller = runtime::Controller {
        queue,
        triggers,
        store: requests.store(),
        caches: vec![requests.synced()],
        workers: 5,
    };
    tokio::spawn(controller.run(Arc::new(ctx.client_for(NAME)), reconcile));
}

async fn reconcile(csr: Arc<CertificateSigningRequest>, client: Arc<Client>) -> Result<Action> {
    if is_issued(&csr) || has_condition(&csr, APPROVED) || has_condition(&csr, DENIED) {
        return Ok(Action::await_change());
    }
    let request = parse(&csr)?;
    let mut tried = Vec::new();
    for recognizer in RECOGNIZERS {
        if !(recognizer.recognizes)(&csr, &request) {
            continue;
        }
        tried.push(recognizer.subresource);
        if !allowed(&client, &csr, recognizer.subresource).await? {
            continue;
        }
        let mut approved = (*csr).clone();
        approved
            .status
            .get_or_insert_with(Default::default)
            .conditions
            .get_or_insert_with(Vec::new)
            .push(CertificateSigningRequestCondition {
                type_: APPROVED.into(),
                status: "True".into(),
                reason: Some("AutoApproved".into()),
                message: Some(recognizer.message.into()),
                ..Default::default()
            });
        let api: Api<CertificateSigningRequest> = Api::all((*client).clone());
        api.replace_subresource(
            "approval",
            &csr.name_any(),
            &PostParams::default(),
            &approved,
        )
        .await?;
        tracing::info!(csr = %csr.name_any(), requestor = csr.spec.username.as_deref().unwrap_or(""), "approved a node client certificate request");
        return Ok(Action::await_change());
    }
    if tried.is_empty() {
        return Ok(Action::await_change());
    }
    Err(Error::CsrNotApproved {
        name: csr.name_any(),
        tried,
    })
}

/// Whether the requestor may create `certificatesigningrequests/<subresource>`.
async fn allowed(
    client: &Client,
    csr: &CertificateSigningRequest,
    subresource: &str,
) -> Result<bool> {
    let spec = &csr.spec;
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: spec.username.clone(),
            uid: spec.uid.clone(),
            groups: spec.groups.clone(),
            extra: spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                verb: Some("create".into()),
                subresource: Some(subresource.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answered = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answered.status.is_some_and(|s| s.allowed))
}
