//! `CertificateSubjectRestriction`: no request to `kubernetes.io/kube-apiserver-client` may
//! ask for the `system:masters` group, whose members every authorizer allows everything: an
//! approver glancing at the request must not be able to mint an unrestricted admin.

use async_trait::async_trait;

use super::{is_csr, typed};
use crate::admission::{Attributes, Operation, Plugin};
use crate::authz::PRIVILEGED_GROUP;
use crate::error::ApiResult;

const SIGNER: &str = "kubernetes.io/kube-apiserver-client";

pub struct CertificateSubjectRestriction;

#[async_trait]
impl Plugin for CertificateSubjectRestriction {
    fn handles(&self, attributes: &Attributes<'_>) -> bool {
        attributes.operation == Operation::Create && is_csr(attributes, None)
    }

    async fn validate(&self, attributes: &Attributes<'_>) -> ApiResult<()> {
        let csr = typed(attributes.object()?)?;
        if csr.spec.signer_name != SIGNER {
            return Ok(());
        }
        let request = machinery::certificates::parse_request(&csr.spec.request.0)
            .map_err(|e| attributes.forbidden(format!("failed to parse CSR: {e}")))?;
        if request.organizations.iter().any(|o| o == PRIVILEGED_GROUP) {
            return Err(attributes.forbidden(format!(
                "use of {SIGNER} signer with {PRIVILEGED_GROUP} group is not allowed"
            )));
        }
        Ok(())
    }
}
