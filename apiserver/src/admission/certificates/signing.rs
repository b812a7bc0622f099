//! `CertificateSigning`: issuing through `certificatesigningrequests/status` (changing the
//! certificate or the conditions) needs the verb `sign` on the request's signer.

use std::sync::Arc;

use async_trait::async_trait;

use super::{allowed_for_signer, is_csr, typed};
use crate::admission::{Attributes, Operation, Plugin};
use crate::authz::Chain;
use crate::error::ApiResult;

pub struct CertificateSigning {
    authorization: Option<Arc<Chain>>,
}

impl CertificateSigning {
    pub fn new(authorization: Option<Arc<Chain>>) -> Self {
        CertificateSigning { authorization }
    }
}

#[async_trait]
impl Plugin for CertificateSigning {
    fn handles(&self, attributes: &Attributes<'_>) -> bool {
        attributes.operation == Operation::Update && is_csr(attributes, Some("status"))
    }

    async fn validate(&self, attributes: &Attributes<'_>) -> ApiResult<()> {
        let (new, old) = (
            typed(attributes.object()?)?,
            typed(attributes.old_object()?)?,
        );
        // Absent and empty compare equal, as upstream's semantic comparison has them.
        let status = |csr: &k8s_openapi::api::certificates::v1::CertificateSigningRequest| {
            let status = csr.status.clone().unwrap_or_default();
            (
                status.certificate.filter(|c| !c.0.is_empty()),
                status.conditions.filter(|c| !c.is_empty()),
            )
        };
        if status(&new) == status(&old) {
            return Ok(());
        }
        let signer = &old.spec.signer_name;
        if allowed_for_signer(
            self.authorization.as_deref(),
            attributes.user,
            "sign",
            signer,
        ) {
            return Ok(());
        }
        Err(attributes.forbidden(format!(
            "user not permitted to sign requests with signerName {signer:?}"
        )))
    }
}
