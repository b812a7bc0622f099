//! The CSR signing controller (upstream `csrsigning`): an approved request for one of the
//! `kubernetes.io` signers gets a certificate from the cluster CA (`--cluster-signing-cert-file`
//! and `--cluster-signing-key-file`) in `status.certificate`, valid for what it asked
//! (`spec.expirationSeconds`) within `--cluster-signing-duration`. A request its signer does not
//! accept gets a Failed condition instead, so its requestor stops waiting.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::ByteString;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};

use super::authority::{Authority, LoadError};
use super::signers::Signer;
use super::{has_failed, is_approved, is_issued, parse, queue_changes, FAILED};
use crate::controllers::ControllerContext;
use crate::options::Options;
use crate::runtime::{self, Error, Queue, Result};

/// The controller's name (`--controllers`, queue metrics).
pub const NAME: &str = "certificatesigningrequest-signing-controller";

/// The shortest lifetime signed, whatever a request asks: twice the backdating.
const MIN_DURATION: Duration = Duration::from_secs(10 * 60);

/// The cluster CA from `--cluster-signing-cert-file` and `--cluster-signing-key-file`;
/// `None` without both, when upstream skips the signing controller.
pub fn authority(options: &Options) -> Result<Option<Authority>, LoadError> {
    match (
        &options.cluster_signing_cert_file,
        &options.cluster_signing_key_file,
    ) {
        (Some(cert), Some(key)) => Authority::load(cert, key).map(Some),
        _ => Ok(None),
    }
}

struct Context {
    client: Client,
    authority: Arc<Authority>,
    /// `--cluster-signing-duration`: the longest lifetime signed.
    max_duration: Duration,
}

/// Wires the controller to the shared informers and starts it, unless no CA was given.
pub fn start(ctx: &ControllerContext) {
    let Some(authority) = ctx.cluster_signer.clone() else {
        tracing::info!("Skipping CSR signer controller because no csr cert/key was specified");
        return;
    };
    let requests = ctx.informers.get::<CertificateSigningRequest>();
    let (queue, triggers) = Queue::new(NAME);
    tokio::spawn(queue_changes(queue.clone(), requests.subscribe()));
    let context = Arc::new(Context {
        client: ctx.client_for(NAME),
        authority,
        max_duration: ctx.options.cluster_signing_duration,
    });
    let controller = runtime::Controller {
        queue,
        triggers,
        store: requests.store(),
        caches: vec![requests.synced()],
        workers: 5,
    };
    tokio::spawn(controller.run(context, reconcile));
}

/// The lifetime to sign for: the requested one within the flag's maximum, never below the
/// sanity minimum.
fn duration(requested: Option<i32>, max: Duration) -> Duration {
    let Some(seconds) = requested else {
        return max;
    };
    let requested = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    if requested > max {
        max
    } else {
        requested.max(MIN_DURATION)
    }
}

async fn reconcile(csr: Arc<CertificateSigningRequest>, ctx: Arc<Context>) -> Result<Action> {
    if is_issued(&csr) || !is_approved(&csr) || has_failed(&csr) {
        return Ok(Action::await_change());
    }
    let Some(signer) = Signer::named(&csr.spec.signer_name) else {
        return Ok(Action::await_change());
    };
    let request = parse(&csr)?;
    let usages = csr.spec.usages.clone().unwrap_or_default();
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    let mut updated = (*csr).clone();
    let status = updated.status.get_or_insert_with(Default::default);
    match signer.check(&request, &usages) {
        Err(message) => {
            status.conditions.get_or_insert_with(Vec::new).push(
                CertificateSigningRequestCondition {
                    type_: FAILED.into(),
                    status: "True".into(),
                    reason: Some("SignerValidationFailure".into()),
                    message: Some(message),
                    last_update_time: Some(Time(jiff::Timestamp::now())),
                    last_transition_time: None,
                },
            );
            tracing::info!(csr = %csr.name_any(), signer = %csr.spec.signer_name, "request refused by its signer");
        }
        Ok(()) => {
            let ttl = duration(csr.spec.expiration_seconds, ctx.max_duration);
            let certificate = ctx
                .authority
                .sign(&request, &usages, ttl, jiff::Timestamp::now())
                .map_err(|e| Error::CsrSigning(e.to_string()))?;
            status.certificate = Some(ByteString(certificate.into_bytes()));
            tracing::info!(csr = %csr.name_any(), signer = %csr.spec.signer_name, "issued a certificate");
        }
    }
    api.replace_status(&csr.name_any(), &PostParams::default(), &updated)
        .await?;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requested_lifetime_counts_within_the_bounds() {
        let year = Duration::from_secs(8760 * 3600);
        assert_eq!(duration(None, year), year);
        assert_eq!(duration(Some(86400), year), Duration::from_secs(86400));
        assert_eq!(duration(Some(10 * 8760 * 3600), year), year);
        assert_eq!(duration(Some(60), year), MIN_DURATION);
    }
}
