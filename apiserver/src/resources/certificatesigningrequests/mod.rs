//! CertificateSigningRequests (`certificates.k8s.io/v1`, `kubectl get csr`): a client asks a
//! signer for a certificate. The apiserver records who asked (the requestor's name, UID,
//! groups and extra, whatever the client sent), `/approval` records the Approved or Denied
//! decision (`kubectl certificate approve|deny`), and the signer puts the certificate in
//! `status.certificate` through `/status`. The controller manager approves node client
//! requests and signs for the `kubernetes.io` signers; who may decide and issue for a signer
//! is up to the certificate admission plugins (`crate::admission::certificates`).

mod validation;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};

use self::validation::Path;
use crate::authn::UserInfo;
use crate::error::Cause;
use crate::registry::table::{age, human_duration, Cell, Column};
use crate::registry::{Description, NameRule, Strategy};

const APPROVED: &str = "Approved";
const DENIED: &str = "Denied";
const FAILED: &str = "Failed";
/// The signer v1beta1 defaulted to, refused by v1 for new requests.
const LEGACY_UNKNOWN_SIGNER: &str = "kubernetes.io/legacy-unknown";
/// The subresource that records the approval decision.
const APPROVAL: &str = "approval";

// Column descriptions are upstream's, taken from the v1beta1 API's documentation.
const SIGNER_NAME: &str = "Requested signer for the request. It is a qualified name in the form: `scope-hostname.io/name`. If empty, it will be defaulted:\n 1. If it's a kubelet client certificate, it is assigned\n    \"kubernetes.io/kube-apiserver-client-kubelet\".\n 2. If it's a kubelet serving certificate, it is assigned\n    \"kubernetes.io/kubelet-serving\".\n 3. Otherwise, it is assigned \"kubernetes.io/legacy-unknown\".\nDistribution of trust for signers happens out of band. You can select on this field using `spec.signerName`.";
const REQUESTOR: &str = "Base64-encoded PKCS#10 CSR data";
const REQUESTED_DURATION: &str = "expirationSeconds is the requested duration of validity of the issued certificate. The certificate signer may issue a certificate with a different validity duration so a client must check the delta between the notBefore and and notAfter fields in the issued certificate to determine the actual duration.\n\nThe v1.22+ in-tree implementations of the well-known Kubernetes signers will honor this field as long as the requested duration is not greater than the maximum duration they will honor per the --cluster-signing-duration CLI flag to the Kubernetes controller manager.\n\nCertificate signers may not honor this field for various reasons:\n\n  1. Old signer that is unaware of the field (such as the in-tree\n     implementations prior to v1.22)\n  2. Signer whose configured maximum is shorter than the requested duration\n  3. Signer whose configured minimum is longer than the requested duration\n\nThe minimum valid value for expirationSeconds is 600, i.e. 10 minutes.";
const CONDITION: &str = "Conditions applied to the request, such as approval or denial.";

pub struct CertificateSigningRequests;

/// The request's conditions (none without a status).
fn conditions(csr: &CertificateSigningRequest) -> &[CertificateSigningRequestCondition] {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

fn conditions_mut(
    csr: &mut CertificateSigningRequest,
) -> &mut Vec<CertificateSigningRequestCondition> {
    csr.status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new)
}

/// Upstream's `populateConditionTimestamps`: a condition without `lastUpdateTime` gets now,
/// one without `lastTransitionTime` keeps the stored one of the same type and status, or
/// gets now.
fn stamp_conditions(new: &mut CertificateSigningRequest, old: &CertificateSigningRequest) {
    let now = crate::registry::stored::now();
    let stored = conditions(old);
    for condition in conditions_mut(new).iter_mut() {
        condition
            .last_update_time
            .get_or_insert_with(|| now.clone());
        if condition.last_transition_time.is_none() {
            let previous = stored.iter().find(|c| {
                c.type_ == condition.type_
                    && c.status == condition.status
                    && c.last_transition_time.is_some()
            });
            condition.last_transition_time = previous
                .and_then(|c| c.last_transition_time.clone())
                .or_else(|| Some(now.clone()));
        }
    }
}

/// Upstream's `preserveConditionInstances`: when a `/status` write keeps the number of
/// `kind` conditions, the stored ones stay as they were (only `/approval` decides); a write
/// adding or removing one is left for validation to refuse.
fn keep_conditions(
    new: &mut CertificateSigningRequest,
    old: &CertificateSigningRequest,
    kind: &str,
) {
    let stored: Vec<&CertificateSigningRequestCondition> =
        conditions(old).iter().filter(|c| c.type_ == kind).collect();
    let written: Vec<usize> = conditions(new)
        .iter()
        .enumerate()
        .filter(|(_, c)| c.type_ == kind)
        .map(|(i, _)| i)
        .collect();
    if stored.len() != written.len() {
        return;
    }
    let new_conditions = conditions_mut(new);
    for (index, condition) in written.into_iter().zip(stored) {
        new_conditions[index] = condition.clone();
    }
}

/// Upstream's CONDITION cell: the decision (Denied before Approved, else Pending), then
/// Failed and Issued.
fn condition_cell(csr: &CertificateSigningRequest) -> String {
    let has = |kind: &str| conditions(csr).iter().any(|c| c.type_ == kind);
    let mut cell = if has(DENIED) {
        DENIED.to_string()
    } else if has(APPROVED) {
        APPROVED.to_string()
    } else {
        "Pending".to_string()
    };
    if has(FAILED) {
        cell.push_str(",Failed");
    }
    let issued = csr
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty());
    if issued {
        cell.push_str(",Issued");
    }
    cell
}

impl Strategy for CertificateSigningRequests {
    type Object = CertificateSigningRequest;

    fn describe(&self) -> Description {
        Description {
            short_names: &["csr"],
            status: true,
            update_subresources: &[APPROVAL],
            // Upstream accepts any name usable in a path.
            name_rule: NameRule::PathSegment,
            field_selectors: &["spec.signerName"],
            ..Description::default()
        }
    }

    /// Clients cannot create pre-approved or pre-issued requests.
    fn prepare_create(&self, csr: &mut CertificateSigningRequest) {
        csr.status = Some(CertificateSigningRequestStatus::default());
    }

    fn prepare_create_by(&self, csr: &mut CertificateSigningRequest, user: &UserInfo) {
        let spec = &mut csr.spec;
        spec.username = Some(user.name.clone()).filter(|n| !n.is_empty());
        spec.uid = Some(user.uid.clone()).filter(|u| !u.is_empty());
        spec.groups = Some(user.groups.clone()).filter(|g| !g.is_empty());
        spec.extra = Some(user.extra.clone()).filter(|e| !e.is_empty());
    }

    /// Condition status defaults to `True`, as upstream's v1 defaulting sets it.
    fn default_fields(&self, csr: &mut CertificateSigningRequest) {
        if let Some(conditions) = csr.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            for condition in conditions.iter_mut().filter(|c| c.status.is_empty()) {
                condition.status = "True".into();
            }
        }
    }

    /// Requests are immutable except through their subresources.
    fn prepare_update(&self, new: &mut CertificateSigningRequest, old: &CertificateSigningRequest) {
        new.spec = old.spec.clone();
        new.status = old.status.clone();
    }

    fn prepare_status_update(
        &self,
        new: &mut CertificateSigningRequest,
        old: &CertificateSigningRequest,
    ) {
        new.spec = old.spec.clone();
        keep_conditions(new, old, APPROVED);
        keep_conditions(new, old, DENIED);
        stamp_conditions(new, old);
    }

    /// `/approval` changes the conditions only.
    fn prepare_subresource_update(
        &self,
        _subresource: &str,
        new: &mut CertificateSigningRequest,
        old: &CertificateSigningRequest,
    ) {
        stamp_conditions(new, old);
        let decided = conditions(new).to_vec();
        new.spec = old.spec.clone();
        new.status = old.status.clone();
        *conditions_mut(new) = decided;
    }

    fn validate(&self, csr: &CertificateSigningRequest) -> Vec<Cause> {
        validation::create(csr)
    }

    fn validate_update(
        &self,
        new: &CertificateSigningRequest,
        old: &CertificateSigningRequest,
    ) -> Vec<Cause> {
        validation::update(new, old, Path::Status)
    }

    fn validate_subresource_update(
        &self,
        _subresource: &str,
        new: &CertificateSigningRequest,
        old: &CertificateSigningRequest,
    ) -> Vec<Cause> {
        validation::update(new, old, Path::Approval)
    }

    fn fields(&self, csr: &CertificateSigningRequest) -> Vec<(&'static str, String)> {
        vec![("spec.signerName", csr.spec.signer_name.clone())]
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::age(),
            Column::new("SignerName", "string", SIGNER_NAME),
            Column::new("Requestor", "string", REQUESTOR),
            Column::new("RequestedDuration", "string", REQUESTED_DURATION),
            Column::new("Condition", "string", CONDITION),
        ]
    }

    fn cells(&self, csr: &CertificateSigningRequest) -> Vec<Cell> {
        let signer = match csr.spec.signer_name.as_str() {
            "" => "<none>".to_string(),
            name => name.to_string(),
        };
        let duration = csr
            .spec
            .expiration_seconds
            .map_or_else(|| "<none>".to_string(), |s| human_duration(s.into()));
        vec![
            Cell::from(csr.metadata.name.clone().unwrap_or_default()),
            age(&csr.metadata),
            Cell::from(signer),
            Cell::from(csr.spec.username.clone().unwrap_or_default()),
            Cell::from(duration),
            Cell::from(condition_cell(csr)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::table::rendered;

    fn csr(value: serde_json::Value) -> CertificateSigningRequest {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_requestor_is_the_authenticated_user() {
        let mut request = csr(json!({
            "metadata": {"name": "jane"},
            "spec": {"request": "", "signerName": "example.com/s", "username": "admin", "groups": ["system:masters"]},
            "status": {"conditions": [{"type": "Approved", "status": "True"}]},
        }));
        let strategy = CertificateSigningRequests;
        strategy.prepare_create(&mut request);
        strategy.prepare_create_by(
            &mut request,
            &UserInfo {
                name: "jane".into(),
                uid: String::new(),
                groups: vec!["devs".into(), "system:authenticated".into()],
                extra: [("scopes".to_string(), vec!["a".to_string()])].into(),
            },
        );
        let value = serde_json::to_value(&request).unwrap();
        assert_eq!(value["spec"]["username"], "jane");
        assert_eq!(
            value["spec"]["groups"],
            json!(["devs", "system:authenticated"])
        );
        assert_eq!(value["spec"]["extra"], json!({"scopes": ["a"]}));
        assert!(value["spec"].get("uid").is_none());
        assert_eq!(value["status"], json!({}));
    }

    #[test]
    fn approval_changes_conditions_only_and_stamps_them() {
        let old = csr(json!({
            "metadata": {"name": "jane"},
            "spec": {"request": "", "signerName": "example.com/s", "username": "jane"},
            "status": {},
        }));
        let mut new = csr(json!({
            "metadata": {"name": "jane"},
            "spec": {"request": "", "signerName": "example.com/other", "username": "mallory"},
            "status": {"certificate": "eA==", "conditions": [{"type": "Approved", "status": "True", "reason": "KubectlApprove"}]},
        }));
        let strategy = CertificateSigningRequests;
        strategy.prepare_subresource_update(APPROVAL, &mut new, &old);
        assert_eq!(new.spec, old.spec);
        let status = new.status.as_ref().unwrap();
        assert!(status.certificate.is_none());
        let approved = &status.conditions.as_ref().unwrap()[0];
        assert!(approved.last_update_time.is_some() && approved.last_transition_time.is_some());
        assert_eq!(condition_cell(&new), "Approved");
    }

    #[test]
    fn status_writes_keep_the_decision() {
        let approved = json!({"type": "Approved", "status": "True", "reason": "KubectlApprove"});
        let old = csr(json!({
            "metadata": {"name": "jane"},
            "spec": {"request": "", "signerName": "example.com/s"},
            "status": {"conditions": [approved]},
        }));
        let mut new = csr(json!({
            "metadata": {"name": "jane"},
            "spec": {"request": "", "signerName": "example.com/s"},
            "status": {"certificate": "eA==", "conditions": [{"type": "Approved", "status": "True", "reason": "Forged"}]},
        }));
        CertificateSigningRequests.prepare_status_update(&mut new, &old);
        assert_eq!(
            conditions(&new)[0].reason.as_deref(),
            Some("KubectlApprove")
        );
        assert_eq!(condition_cell(&new), "Approved,Issued");
    }

    #[test]
    fn rows_read_like_kubectl_get_csr() {
        let request = csr(json!({
            "metadata": {"name": "jane"},
            "spec": {"request": "", "signerName": "kubernetes.io/kube-apiserver-client", "username": "admin", "expirationSeconds": 86400},
            "status": {"conditions": [{"type": "Denied", "status": "True"}, {"type": "Failed", "status": "True"}]},
        }));
        let cells = rendered(
            &CertificateSigningRequests.cells(&request),
            jiff::Timestamp::now(),
        );
        assert_eq!(
            cells[2..],
            [
                json!("kubernetes.io/kube-apiserver-client"),
                json!("admin"),
                json!("24h"),
                json!("Denied,Failed")
            ]
        );
    }
}
