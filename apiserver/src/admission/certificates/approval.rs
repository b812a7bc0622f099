//! `CertificateApproval`: recording a decision through `certificatesigningrequests/approval`
//! needs the verb `approve` on the request's signer, so approving `kubernetes.io` client
//! certificates is not granted with every role that may update CSRs.

use std::sync::Arc;

use async_trait::async_trait;

use super::{allowed_for_signer, is_csr, typed};
use crate::admission::{Attributes, Operation, Plugin};
use crate::authz::Chain;
use crate::error::ApiResult;

pub struct CertificateApproval {
    authorization: Option<Arc<Chain>>,
}

impl CertificateApproval {
    pub fn new(authorization: Option<Arc<Chain>>) -> Self {
        CertificateApproval { authorization }
    }
}

#[async_trait]
impl Plugin for CertificateApproval {
    fn handles(&self, attributes: &Attributes<'_>) -> bool {
        attributes.operation == Operation::Update && is_csr(attributes, Some("approval"))
    }

    /// The stored request's signer is checked, so a write cannot dodge the check by changing
    /// it.
    async fn validate(&self, attributes: &Attributes<'_>) -> ApiResult<()> {
        let old = typed(attributes.old_object()?)?;
        let signer = &old.spec.signer_name;
        if allowed_for_signer(
            self.authorization.as_deref(),
            attributes.user,
            "approve",
            signer,
        ) {
            return Ok(());
        }
        Err(attributes.forbidden(format!(
            "user not permitted to approve requests with signerName {signer:?}"
        )))
    }
}
