//! Upstream's three CSR admission plugins, which guard what the RBAC rules on
//! `certificatesigningrequests` alone cannot:
//!
//! - CertificateApproval: `/approval` needs the verb `approve` on the signer,
//! - CertificateSigning: issuing through `/status` needs the verb `sign` on the signer,
//! - CertificateSubjectRestriction: no `kubernetes.io/kube-apiserver-client` request may ask
//!   for the `system:masters` group, which would be an unrestricted admin.
//!
//! A signer is the resource `signers` in `certificates.k8s.io`, named by the signerName or by
//! its domain and `/*`, which is how a role grants approving for a whole domain.

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;

use super::{conditions, GROUP, KUBE_APISERVER_CLIENT_SIGNER, RESOURCE};
use crate::authn::UserInfo;
use crate::authz::{Attributes, Chain, Decision, ResourceAttributes, PRIVILEGED_GROUP};
use crate::error::{ApiError, ApiResult, Target};

/// What a write through `subresource` (`None` for the resource itself) must be allowed;
/// `old` is `None` on create. `name` names the object in a refusal.
pub(super) fn check(
    chain: &Chain,
    user: &UserInfo,
    subresource: Option<&str>,
    new: &CertificateSigningRequest,
    old: Option<&CertificateSigningRequest>,
    name: &str,
) -> ApiResult<()> {
    let forbidden = |reason: String| ApiError::Forbidden {
        target: Target {
            group: GROUP.into(),
            resource: RESOURCE.into(),
            kind: RESOURCE.into(),
            name: name.into(),
        },
        reason,
    };
    match (subresource, old) {
        (None, None) => restrict_subject(new).map_err(forbidden),
        // The old object's signer: a write cannot dodge the check by changing it.
        (Some("approval"), Some(old)) => {
            let signer = &old.spec.signer_name;
            if allowed_for_signer(chain, user, "approve", signer) {
                Ok(())
            } else {
                Err(forbidden(format!(
                    "user not permitted to approve requests with signerName {signer:?}"
                )))
            }
        }
        (Some("status"), Some(old)) => {
            let certificate = |csr: &CertificateSigningRequest| {
                csr.status.as_ref().and_then(|s| s.certificate.clone())
            };
            let signer = &old.spec.signer_name;
            if certificate(new) == certificate(old) && conditions(new) == conditions(old)
                || allowed_for_signer(chain, user, "sign", signer)
            {
                Ok(())
            } else {
                Err(forbidden(format!(
                    "user not permitted to sign requests with signerName {signer:?}"
                )))
            }
        }
        _ => Ok(()),
    }
}

/// CertificateSubjectRestriction. A request that does not parse is left to validation, which
/// refuses it with the reason.
fn restrict_subject(csr: &CertificateSigningRequest) -> Result<(), String> {
    if csr.spec.signer_name != KUBE_APISERVER_CLIENT_SIGNER {
        return Ok(());
    }
    match machinery::certificates::parse_request(&csr.spec.request.0) {
        Ok(request) if request.organizations.iter().any(|o| o == PRIVILEGED_GROUP) => Err(format!(
            "use of {KUBE_APISERVER_CLIENT_SIGNER} signer with {PRIVILEGED_GROUP} group is not allowed"
        )),
        _ => Ok(()),
    }
}

/// Upstream's `IsAuthorizedForSignerName`: `verb` on the signer itself, or on its domain's
/// wildcard (`example.com/*`).
fn allowed_for_signer(chain: &Chain, user: &UserInfo, verb: &str, signer: &str) -> bool {
    let domain = signer.split('/').next().unwrap_or_default();
    [signer.to_string(), format!("{domain}/*")]
        .into_iter()
        .any(|name| {
            let attributes = Attributes {
                user: user.clone(),
                verb: verb.into(),
                resource: Some(ResourceAttributes {
                    group: GROUP.into(),
                    version: "*".into(),
                    resource: "signers".into(),
                    name,
                    ..ResourceAttributes::default()
                }),
                path: String::new(),
            };
            chain.decide(&attributes) == Decision::Allow
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn csr(signer: &str, organization: &str) -> CertificateSigningRequest {
        use base64::Engine;
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mallory");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, organization);
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        let request = base64::engine::general_purpose::STANDARD.encode(pem);
        serde_json::from_value(json!({
            "metadata": {"name": "x"},
            "spec": {"request": request, "signerName": signer, "usages": ["client auth"]},
        }))
        .unwrap()
    }

    #[test]
    fn kube_apiserver_client_requests_may_not_ask_for_system_masters() {
        assert_eq!(
            restrict_subject(&csr(KUBE_APISERVER_CLIENT_SIGNER, "system:masters")),
            Err("use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed".into())
        );
        assert_eq!(
            restrict_subject(&csr(KUBE_APISERVER_CLIENT_SIGNER, "devs")),
            Ok(())
        );
        assert_eq!(
            restrict_subject(&csr("example.com/signer", "system:masters")),
            Ok(())
        );
    }
}
