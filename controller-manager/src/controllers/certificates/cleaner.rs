//! The CSR cleaner (upstream `csrcleaner`): requests pile up (kubelets renew their
//! certificates every few months, some clusters far more often), so once an hour the done
//! ones are deleted: issued or denied or failed an hour after the decision, pending a day
//! after creation, and any whose certificate has expired.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::DeleteParams;
use kube::{Api, Client, ResourceExt};

use super::{conditions, is_issued, APPROVED, DENIED, FAILED};
use crate::controllers::ControllerContext;

/// The controller's name (`--controllers`).
pub const NAME: &str = "certificatesigningrequest-cleaner-controller";

/// How often every request is looked at.
const POLLING_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// How long issued, denied and failed requests stay after the decision.
const DECIDED_RETENTION: Duration = Duration::from_secs(60 * 60);
/// How long a request nobody decided on stays.
const PENDING_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Starts the hourly sweep, the first once the informer has listed.
pub fn start(ctx: &ControllerContext) {
    let requests = ctx.informers.get::<CertificateSigningRequest>();
    let client = ctx.client_for(NAME);
    let store = requests.store();
    let synced = requests.synced();
    tokio::spawn(async move {
        synced.await;
        loop {
            let now = Timestamp::now();
            for csr in store.state() {
                if let Some(reason) = expired(&csr, now) {
                    delete(&client, &csr, reason).await;
                }
            }
            tokio::time::sleep(POLLING_INTERVAL).await;
        }
    });
}

async fn delete(client: &Client, csr: &CertificateSigningRequest, reason: String) {
    let name = csr.name_any();
    tracing::info!(csr = %name, "cleaning CSR as {reason}");
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    if let Err(error) = api.delete(&name, &DeleteParams::default()).await {
        tracing::error!(csr = %name, %error, "unable to delete CSR");
    }
}

/// Why `csr` is done with at `now`, if it is.
fn expired(csr: &CertificateSigningRequest, now: Timestamp) -> Option<String> {
    let older_than = |at: &Option<Time>, age: Duration| {
        at.as_ref()
            .is_some_and(|t| now.as_second() - t.0.as_second() > age.as_secs() as i64)
    };
    let decided = |kind: &str| {
        conditions(csr)
            .iter()
            .any(|c| c.type_ == kind && older_than(&c.last_update_time, DECIDED_RETENTION))
    };
    let approved = conditions(csr).iter().any(|c| c.type_ == APPROVED);
    if approved && is_issued(csr) {
        if let Some(certificate) = csr.status.as_ref().and_then(|s| s.certificate.as_ref()) {
            match machinery::certificates::not_after(&certificate.0) {
                Ok(not_after) if now.as_second() > not_after => {
                    return Some("the associated certificate is expired".into());
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(csr = %csr.name_any(), %error, "unable to read the issued certificate")
                }
            }
        }
        if decided(APPROVED) {
            return Some("it is more than 1h0m0s old and approved".into());
        }
    }
    if decided(DENIED) {
        return Some("it is more than 1h0m0s old and denied".into());
    }
    if decided(FAILED) {
        return Some("it is more than 1h0m0s old and failed".into());
    }
    if conditions(csr).is_empty() && older_than(&csr.metadata.creation_timestamp, PENDING_RETENTION)
    {
        return Some("it is more than 24h0m0s old and unhandled".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn csr(created: &str, status: serde_json::Value) -> CertificateSigningRequest {
        serde_json::from_value(json!({
            "metadata": {"name": "x", "creationTimestamp": created},
            "spec": {"request": "", "signerName": "example.com/s"},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn done_requests_go_after_their_retention() {
        let now: Timestamp = "2026-01-02T12:00:00Z".parse().unwrap();
        let pending = csr("2026-01-01T11:00:00Z", json!({}));
        assert_eq!(
            expired(&pending, now).as_deref(),
            Some("it is more than 24h0m0s old and unhandled")
        );
        let young = csr("2026-01-02T11:00:00Z", json!({}));
        assert_eq!(expired(&young, now), None);
        let denied = csr(
            "2026-01-02T10:00:00Z",
            json!({"conditions": [{"type": "Denied", "status": "True", "lastUpdateTime": "2026-01-02T10:30:00Z"}]}),
        );
        assert_eq!(
            expired(&denied, now).as_deref(),
            Some("it is more than 1h0m0s old and denied")
        );
        // Approved but not issued: the signer has yet to act.
        let approved = csr(
            "2026-01-01T10:00:00Z",
            json!({"conditions": [{"type": "Approved", "status": "True", "lastUpdateTime": "2026-01-01T10:30:00Z"}]}),
        );
        assert_eq!(expired(&approved, now), None);
    }
}
