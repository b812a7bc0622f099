//! The certificate controllers (upstream `pkg/controller/certificates`): the approver
//! approves node client requests their requestors may have approved, the signer issues
//! certificates for the `kubernetes.io` signers from the cluster CA, and the cleaner removes
//! requests once they are done with. All three act as the `certificate-controller` service
//! account with `--use-service-account-credentials`, which the bootstrap policy authorizes.

pub mod approver;
pub mod authority;
pub mod cleaner;
pub mod signer;
mod signers;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use kube::ResourceExt;
use machinery::certificates::CertificateRequest;

use crate::informers::Change;
use crate::runtime::{Error, Queue};

/// The service account the three controllers act as.
pub const SERVICE_ACCOUNT: &str = "certificate-controller";

const APPROVED: &str = "Approved";
const DENIED: &str = "Denied";
const FAILED: &str = "Failed";

fn conditions(csr: &CertificateSigningRequest) -> &[CertificateSigningRequestCondition] {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

fn has_condition(csr: &CertificateSigningRequest, kind: &str) -> bool {
    conditions(csr).iter().any(|c| c.type_ == kind)
}

/// Approved and not denied (upstream's `IsCertificateRequestApproved`).
fn is_approved(csr: &CertificateSigningRequest) -> bool {
    has_condition(csr, APPROVED) && !has_condition(csr, DENIED)
}

/// A Failed condition that is true (or without a status, which defaults to true).
fn has_failed(csr: &CertificateSigningRequest) -> bool {
    conditions(csr)
        .iter()
        .any(|c| c.type_ == FAILED && matches!(c.status.as_str(), "" | "True"))
}

/// Whether a certificate was issued.
fn is_issued(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

/// The request of `csr`, or the error upstream retries the request with.
fn parse(csr: &CertificateSigningRequest) -> Result<CertificateRequest, Error> {
    machinery::certificates::parse_request(&csr.spec.request.0).map_err(|error| {
        Error::UnparsableCsr {
            name: csr.name_any(),
            reason: error.to_string(),
        }
    })
}

/// Queues every added or updated request, as upstream's certificate controllers' handlers do.
async fn queue_changes(
    queue: Queue<CertificateSigningRequest>,
    mut changes: UnboundedReceiver<Change<CertificateSigningRequest>>,
) {
    while let Some(change) = changes.next().await {
        if let Change::Applied { new, .. } = change {
            queue.add_object(&new);
        }
    }
}
