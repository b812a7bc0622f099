//! Upstream's admission plugins for CertificateSigningRequests
//! (`plugin/pkg/admission/certificates`), which guard what RBAC rules on
//! `certificatesigningrequests` alone cannot: who may decide on and issue for a signer, and
//! that no request for the apiserver's client signer asks for `system:masters`.
//!
//! A signer is the resource `signers` in `certificates.k8s.io`, named by the signerName or by
//! its domain and `/*`, which is how a role grants a verb for every signer of a domain.

pub mod approval;
pub mod signing;
pub mod subject_restriction;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use serde_json::Value;

use super::Attributes;
use crate::authn::UserInfo;
use crate::authz::{Chain, Decision, ResourceAttributes};
use crate::error::{ApiError, ApiResult};

const GROUP: &str = "certificates.k8s.io";

/// Whether the request is about CertificateSigningRequests, through `subresource`.
fn is_csr(attributes: &Attributes<'_>, subresource: Option<&str>) -> bool {
    attributes.resource.group == GROUP
        && attributes.resource.resource == "certificatesigningrequests"
        && attributes.subresource == subresource
}

/// A CertificateSigningRequest the plugins read (the new or the old object).
fn typed(object: Option<&Value>) -> ApiResult<CertificateSigningRequest> {
    let object = object.ok_or_else(|| ApiError::Internal("no CertificateSigningRequest".into()))?;
    serde_json::from_value(object.clone())
        .map_err(|e| ApiError::Internal(format!("expected type CertificateSigningRequest: {e}")))
}

/// Upstream's `IsAuthorizedForSignerName`: `verb` on the signer itself, or on its domain's
/// wildcard (`example.com/*`). A registry built without authorizers lets everyone.
fn allowed_for_signer(chain: Option<&Chain>, user: &UserInfo, verb: &str, signer: &str) -> bool {
    let Some(chain) = chain else {
        return true;
    };
    let domain = signer.split('/').next().unwrap_or_default();
    [signer.to_string(), format!("{domain}/*")]
        .into_iter()
        .any(|name| {
            let attributes = crate::authz::Attributes {
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
    use serde_json::json;

    use super::subject_restriction::CertificateSubjectRestriction;
    use crate::admission::tests::user;
    use crate::admission::{
        Attributes, GroupVersionKind, GroupVersionResource, Object, Operation, Plugin,
    };

    /// A base64 PEM request for `jane` in `organization`.
    fn request(organization: &str) -> String {
        use base64::Engine;
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "jane");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, organization);
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        base64::engine::general_purpose::STANDARD.encode(pem)
    }

    async fn create(signer: &str, organization: &str) -> Result<(), String> {
        let user = user();
        let attributes = Attributes {
            operation: Operation::Create,
            kind: GroupVersionKind {
                group: super::GROUP,
                version: "v1",
                kind: "CertificateSigningRequest",
            },
            resource: GroupVersionResource {
                group: super::GROUP,
                version: "v1",
                resource: "certificatesigningrequests",
            },
            subresource: None,
            namespace: None,
            name: "",
            user: &user,
            dry_run: false,
            object: Object::json(json!({
                "metadata": {"generateName": "csr-"},
                "spec": {"request": request(organization), "signerName": signer, "usages": ["client auth"]},
            })),
            old_object: Object::absent(),
        };
        let plugin = CertificateSubjectRestriction;
        assert!(plugin.handles(&attributes));
        plugin
            .validate(&attributes)
            .await
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn client_certificates_for_system_masters_are_refused() {
        assert_eq!(
            create("kubernetes.io/kube-apiserver-client", "system:masters").await,
            Err(r#"certificatesigningrequests.certificates.k8s.io "csr-" is forbidden: use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"#.into())
        );
        assert_eq!(
            create("kubernetes.io/kube-apiserver-client", "devs").await,
            Ok(())
        );
        assert_eq!(create("example.com/signer", "system:masters").await, Ok(()));
    }
}
