//! Upstream's CSR validation (`pkg/apis/certificates/validation`): the request must be a
//! signed PKCS#10 request, the signer a qualified name, usages known values, conditions well
//! formed, and an issued certificate `CERTIFICATE` blocks. Updates may not remove the
//! Approved, Denied or Failed conditions, and only `/approval` may add Approved or Denied.
//!
//! Checks that newer releases added are relaxed when the stored object already breaks them
//! (upstream's compatibility options), so old data stays updatable.

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use serde_json::Value;

use super::{conditions, APPROVED, DENIED, FAILED, LEGACY_UNKNOWN_SIGNER};
use crate::error::Cause;
use crate::registry::strategy::NameRule;
use crate::registry::validation::name_errors;

/// Every key usage upstream knows.
const USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// The shortest certificate lifetime a request may ask for.
const MIN_EXPIRATION_SECONDS: i32 = 600;

/// Which update path a write took: what it may change beyond what the generic registry keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Path {
    /// The main resource and `/status`, which may issue a certificate (the main resource's
    /// status is the stored one, so only `/status` can).
    Status,
    /// `/approval`, which may add the Approved or Denied condition.
    Approval,
}

/// Upstream's `certificateValidationOptions`: what this write may do, and which newer checks
/// the stored object already breaks.
#[derive(Debug, Default)]
struct Options {
    approval_conditions: bool,
    certificate: bool,
    both_approved_and_denied: bool,
    legacy_signer_name: bool,
    duplicate_condition_types: bool,
    empty_condition_type: bool,
    arbitrary_certificate: bool,
    unknown_usages: bool,
    duplicate_usages: bool,
}

impl Options {
    /// The tolerances an update of `old` gets (a create gets none).
    fn tolerating(
        new: &CertificateSigningRequest,
        old: Option<&CertificateSigningRequest>,
    ) -> Self {
        let Some(old) = old else {
            return Options::default();
        };
        let old_conditions = conditions(old);
        let types: Vec<&str> = old_conditions.iter().map(|c| c.type_.as_str()).collect();
        let old_usages = old.spec.usages.as_deref().unwrap_or_default();
        Options {
            both_approved_and_denied: types.contains(&APPROVED) && types.contains(&DENIED),
            legacy_signer_name: old.spec.signer_name == LEGACY_UNKNOWN_SIGNER,
            duplicate_condition_types: has_duplicates(&types),
            empty_condition_type: types.contains(&""),
            arbitrary_certificate: certificate(new) == certificate(old)
                || machinery::certificates::check_certificates(certificate(old)).is_err()
                    && !certificate(old).is_empty(),
            unknown_usages: old_usages.iter().any(|u| !USAGES.contains(&u.as_str())),
            duplicate_usages: has_duplicates(old_usages),
            ..Options::default()
        }
    }
}

fn has_duplicates<T: PartialEq>(items: &[T]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, item)| items[..i].contains(item))
}

fn certificate(csr: &CertificateSigningRequest) -> &[u8] {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .map_or(&[], |c| c.0.as_slice())
}

/// Checks of a new request.
pub(super) fn create(csr: &CertificateSigningRequest) -> Vec<Cause> {
    validate(csr, &Options::tolerating(csr, None))
}

/// Checks of an update of `old` through `path`.
pub(super) fn update(
    new: &CertificateSigningRequest,
    old: &CertificateSigningRequest,
    path: Path,
) -> Vec<Cause> {
    let options = Options {
        approval_conditions: path == Path::Approval,
        certificate: path == Path::Status,
        ..Options::tolerating(new, Some(old))
    };
    let mut causes = validate(new, &options);
    let count = |csr, kind| conditions(csr).iter().filter(|c| c.type_ == kind).count();
    for kind in [APPROVED, DENIED, FAILED] {
        if count(new, kind) < count(old, kind) {
            causes.push(Cause::forbidden(
                "status.conditions",
                format!("updates may not remove a condition of type {kind:?}"),
            ));
        }
    }
    if !options.approval_conditions {
        // A changed instance cannot get here: `/status` keeps the stored instances of these
        // types whenever their number is unchanged, and the main resource its whole status.
        for kind in [APPROVED, DENIED] {
            if count(new, kind) > count(old, kind) {
                causes.push(Cause::forbidden(
                    "status.conditions",
                    format!("updates may not add a condition of type {kind:?}"),
                ));
            }
        }
    }
    if certificate(new) != certificate(old) {
        if !options.certificate {
            causes.push(Cause::forbidden(
                "status.certificate",
                "updates may not set certificate content",
            ));
        } else if !certificate(old).is_empty() {
            causes.push(Cause::forbidden(
                "status.certificate",
                "updates may not modify existing certificate content",
            ));
        }
    }
    causes
}

/// Upstream's `validateCertificateSigningRequest`, less the metadata checks every resource
/// gets.
fn validate(csr: &CertificateSigningRequest, options: &Options) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &csr.spec;
    if let Err(error) = machinery::certificates::parse_request(&spec.request.0) {
        causes.push(Cause::invalid_printed(
            "spec.request",
            &go_bytes(&spec.request.0),
            error.to_string(),
        ));
    }
    causes.extend(usages(spec.usages.as_deref().unwrap_or_default(), options));
    if !options.legacy_signer_name && spec.signer_name == LEGACY_UNKNOWN_SIGNER {
        causes.push(Cause::invalid(
            "spec.signerName",
            &Value::from(spec.signer_name.as_str()),
            "the legacy signerName is not allowed via this API version",
        ));
    } else {
        causes.extend(signer_name(&spec.signer_name));
    }
    if let Some(seconds) = spec
        .expiration_seconds
        .filter(|s| *s < MIN_EXPIRATION_SECONDS)
    {
        causes.push(Cause::invalid(
            "spec.expirationSeconds",
            &Value::from(seconds),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    causes.extend(condition_causes(conditions(csr), options));
    if !options.arbitrary_certificate && !certificate(csr).is_empty() {
        if let Err(error) = machinery::certificates::check_certificates(certificate(csr)) {
            causes.push(Cause::invalid(
                "status.certificate",
                &Value::from("<certificate data>"),
                error,
            ));
        }
    }
    causes
}

fn usages(usages: &[String], options: &Options) -> Vec<Cause> {
    let mut causes = Vec::new();
    if usages.is_empty() {
        causes.push(Cause::required("spec.usages"));
    }
    let mut supported = USAGES.to_vec();
    supported.sort_unstable();
    for (i, usage) in usages.iter().enumerate() {
        let field = format!("spec.usages[{i}]");
        if !options.unknown_usages && !USAGES.contains(&usage.as_str()) {
            causes.push(Cause::unsupported(
                field.clone(),
                &Value::from(usage.as_str()),
                &supported,
            ));
        }
        if !options.duplicate_usages && usages[..i].contains(usage) {
            causes.push(Cause::duplicate(field, &Value::from(usage.as_str())));
        }
    }
    causes
}

/// Upstream's `ValidateSignerName`: `<domain>/<path>`, the domain DNS-1123 labels with at
/// least one dot, the path DNS-1123 subdomains separated by dots, 571 characters at most
/// (a domain, a namespace and a resource name).
pub(super) fn signer_name(name: &str) -> Vec<Cause> {
    const FIELD: &str = "spec.signerName";
    const MAX_DOMAIN: usize = 253;
    const MAX_NAME: usize = MAX_DOMAIN + 253 + 63 + 1 + 1;
    if name.is_empty() {
        return vec![Cause::required(FIELD)];
    }
    let segments: Vec<&str> = name.split('/').collect();
    let [domain, path] = segments[..] else {
        return vec![Cause::invalid(
            FIELD,
            &Value::from(name),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        )];
    };
    let mut causes = Vec::new();
    if domain.len() > MAX_DOMAIN {
        causes.push(too_long(FIELD, MAX_DOMAIN));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    causes.extend(first_bad_label(FIELD, domain, &labels, NameRule::Label));
    if labels.len() < 2 {
        causes.push(Cause::invalid(
            FIELD,
            &Value::from(domain),
            "should be a domain with at least two segments separated by dots",
        ));
    }
    let path_labels: Vec<&str> = path.split('.').collect();
    causes.extend(first_bad_label(
        FIELD,
        path,
        &path_labels,
        NameRule::Subdomain,
    ));
    if name.len() > MAX_NAME {
        causes.push(too_long(FIELD, MAX_NAME));
    }
    causes
}

/// The errors of the first label of `segment` that breaks `rule`: later ones would repeat
/// them, so upstream stops there.
fn first_bad_label(field: &str, segment: &str, labels: &[&str], rule: NameRule) -> Vec<Cause> {
    labels
        .iter()
        .map(|label| (label, name_errors(label, rule)))
        .find(|(_, errors)| !errors.is_empty())
        .map(|(label, errors)| {
            errors
                .iter()
                .map(|error| {
                    Cause::invalid(
                        field,
                        &Value::from(segment),
                        format!("validating label {label:?}: {error}"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn too_long(field: &str, max: usize) -> Cause {
    Cause {
        reason: "FieldValueTooLong",
        field: field.into(),
        message: format!("Too long: may not be more than {max} bytes"),
    }
}

fn condition_causes(
    conditions: &[CertificateSigningRequestCondition],
    options: &Options,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let (mut approved, mut denied) = (false, false);
    for (i, condition) in conditions.iter().enumerate() {
        let field = |name: &str| format!("status.conditions[{i}].{name}");
        let kind = condition.type_.as_str();
        if !options.empty_condition_type && kind.is_empty() {
            causes.push(Cause::required(field("type")));
        }
        let allowed: &[&str] = if [APPROVED, DENIED, FAILED].contains(&kind) {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        match condition.status.as_str() {
            "" => causes.push(Cause::required(field("status"))),
            status if !allowed.contains(&status) => causes.push(Cause::unsupported(
                field("status"),
                &Value::from(status),
                allowed,
            )),
            _ => {}
        }
        if !options.both_approved_and_denied {
            let conflicting = match kind {
                APPROVED => {
                    approved = true;
                    denied
                }
                DENIED => {
                    denied = true;
                    approved
                }
                _ => false,
            };
            if conflicting {
                causes.push(Cause::invalid(
                    field("type"),
                    &Value::from(kind),
                    "Approved and Denied conditions are mutually exclusive",
                ));
            }
        }
        if !options.duplicate_condition_types
            && conditions[..i].iter().any(|c| c.type_ == condition.type_)
        {
            causes.push(Cause::duplicate(field("type"), &Value::from(kind)));
        }
    }
    causes
}

/// A byte slice as Go's `%#v` prints it, which is how upstream's field errors show an
/// invalid `spec.request`: `[]byte{0x2d, 0x2d}`.
fn go_bytes(bytes: &[u8]) -> String {
    let listed: Vec<String> = bytes.iter().map(|b| format!("{b:#x}")).collect();
    format!("[]byte{{{}}}", listed.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn csr(spec: Value, status: Value) -> CertificateSigningRequest {
        serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": spec, "status": status}))
            .unwrap()
    }

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    fn request_base64() -> String {
        use base64::Engine;
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "jane");
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        base64::engine::general_purpose::STANDARD.encode(pem)
    }

    #[test]
    fn a_good_request_passes() {
        let good = csr(
            json!({"request": request_base64(), "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"], "expirationSeconds": 600}),
            json!({}),
        );
        assert_eq!(messages(&create(&good)), Vec::<String>::new());
    }

    #[test]
    fn bad_fields_get_upstreams_messages() {
        let bad = csr(
            json!({"request": "aGk=", "signerName": "example/x", "usages": ["client auth", "client auth", "flying"], "expirationSeconds": 599}),
            json!({"conditions": [{"type": "Approved", "status": "True"}, {"type": "Denied", "status": "False"}]}),
        );
        assert_eq!(
            messages(&create(&bad)),
            [
                "spec.request: Invalid value: []byte{0x68, 0x69}: PEM block type must be CERTIFICATE REQUEST".to_string(),
                "spec.usages[1]: Duplicate value: \"client auth\"".into(),
                "spec.usages[2]: Unsupported value: \"flying\": supported values: \"any\", \"cert sign\", \"client auth\", \"code signing\", \"content commitment\", \"crl sign\", \"data encipherment\", \"decipher only\", \"digital signature\", \"email protection\", \"encipher only\", \"ipsec end system\", \"ipsec tunnel\", \"ipsec user\", \"key agreement\", \"key encipherment\", \"microsoft sgc\", \"netscape sgc\", \"ocsp signing\", \"s/mime\", \"server auth\", \"signing\", \"timestamping\"".into(),
                "spec.signerName: Invalid value: \"example\": should be a domain with at least two segments separated by dots".into(),
                "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 seconds (10 minutes)".into(),
                "status.conditions[1].status: Unsupported value: \"False\": supported values: \"True\"".into(),
                "status.conditions[1].type: Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive".into(),
            ]
        );
    }

    #[test]
    fn signer_names_are_qualified() {
        assert!(signer_name("example.com/my-signer").is_empty());
        assert_eq!(
            messages(&signer_name("")),
            ["spec.signerName: Required value"]
        );
        assert_eq!(
            messages(&signer_name("example.com")),
            ["spec.signerName: Invalid value: \"example.com\": must be a fully qualified domain and path of the form 'example.com/signer-name'"]
        );
        assert!(messages(&signer_name("Example.com/x"))[0].starts_with(
            "spec.signerName: Invalid value: \"Example.com\": validating label \"Example\": a lowercase RFC 1123 label"
        ));
        assert_eq!(
            messages(&create(&csr(
                json!({"request": request_base64(), "signerName": LEGACY_UNKNOWN_SIGNER, "usages": ["any"]}),
                json!({})
            ))),
            ["spec.signerName: Invalid value: \"kubernetes.io/legacy-unknown\": the legacy signerName is not allowed via this API version"]
        );
    }

    #[test]
    fn only_approval_adds_approval_and_only_status_issues() {
        let spec =
            json!({"request": request_base64(), "signerName": "example.com/s", "usages": ["any"]});
        let pending = csr(spec.clone(), json!({}));
        let approved = csr(
            spec.clone(),
            json!({"conditions": [{"type": "Approved", "status": "True"}]}),
        );
        assert!(update(&approved, &pending, Path::Approval).is_empty());
        assert_eq!(
            messages(&update(&approved, &pending, Path::Status)),
            ["status.conditions: Forbidden: updates may not add a condition of type \"Approved\""]
        );
        assert_eq!(
            messages(&update(&pending, &approved, Path::Approval)),
            ["status.conditions: Forbidden: updates may not remove a condition of type \"Approved\""]
        );
        let issued = csr(
            spec,
            json!({"certificate": "bm90IGEgY2VydA==", "conditions": [{"type": "Approved", "status": "True"}]}),
        );
        assert_eq!(
            messages(&update(&issued, &approved, Path::Status)),
            ["status.certificate: Invalid value: \"<certificate data>\": must contain at least one CERTIFICATE PEM block"]
        );
    }
}
