//! The PEM payloads of the certificates API as upstream's `pkg/apis/certificates` helpers read
//! them: a CertificateSigningRequest's `spec.request` (one `CERTIFICATE REQUEST` block, PKCS#10)
//! and the issued chain in `status.certificate` (`CERTIFICATE` blocks).
//!
//! Shared because both sides read them: the apiserver validates requests and issued chains
//! and refuses some subjects at admission, and the controller manager's signers, approver and
//! cleaner decide from the same fields.

use std::net::IpAddr;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::{FromDer, X509Error, X509Name};

/// The PEM type of a PKCS#10 request.
pub const REQUEST_BLOCK: &str = "CERTIFICATE REQUEST";
/// The PEM type of a certificate.
pub const CERTIFICATE_BLOCK: &str = "CERTIFICATE";

/// A PKCS#10 request whose signature checked out: what signers and the approver look at, and
/// what an issued certificate copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRequest {
    /// The subject's last common name, as Go's `pkix.Name` keeps it.
    pub common_name: String,
    /// Every subject organization in order: the groups a client certificate carries.
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub email_addresses: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub uris: Vec<String>,
    /// The DER `Name`, which the issued certificate repeats as its subject.
    pub subject: Vec<u8>,
    /// The DER `SubjectPublicKeyInfo`, certified as it is.
    pub public_key: Vec<u8>,
}

/// Why a `spec.request` is not a usable request, in the words upstream's validation uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("PEM block type must be CERTIFICATE REQUEST")]
    NotARequest,
    /// The DER does not decode (Go's asn1 errors are not reproduced; trailing data is).
    #[error("x509: malformed certificate request")]
    Malformed,
    #[error("asn1: syntax error: trailing data")]
    TrailingData,
    /// The signature does not verify with the request's own key (Go's message per key type).
    #[error("{0}")]
    Signature(&'static str),
}

/// Upstream's `ParseCSR` followed by `CheckSignature`: the first PEM block (text around it is
/// skipped, as Go's `pem.Decode` skips it) must be a `CERTIFICATE REQUEST` whose DER decodes
/// and whose signature verifies with its own public key.
pub fn parse_request(pem_bytes: &[u8]) -> Result<CertificateRequest, RequestError> {
    let block = pem::parse(pem_bytes).map_err(|_| RequestError::NotARequest)?;
    if block.tag() != REQUEST_BLOCK {
        return Err(RequestError::NotARequest);
    }
    let (rest, request) = X509CertificationRequest::from_der(block.contents())
        .map_err(|_| RequestError::Malformed)?;
    if !rest.is_empty() {
        return Err(RequestError::TrailingData);
    }
    request
        .verify_signature()
        .map_err(|error| RequestError::Signature(signature_failure(&request, &error)))?;
    let info = &request.certification_request_info;
    let mut parsed = CertificateRequest {
        common_name: last_common_name(&info.subject),
        organizations: info
            .subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(String::from))
            .collect(),
        dns_names: Vec::new(),
        email_addresses: Vec::new(),
        ip_addresses: Vec::new(),
        uris: Vec::new(),
        subject: info.subject.as_raw().to_vec(),
        public_key: info.subject_pki.raw.to_vec(),
    };
    let names = request
        .requested_extensions()
        .into_iter()
        .flatten()
        .filter_map(|extension| match extension {
            ParsedExtension::SubjectAlternativeName(san) => Some(&san.general_names),
            _ => None,
        })
        .flatten();
    for name in names {
        match name {
            GeneralName::DNSName(dns) => parsed.dns_names.push(dns.to_string()),
            GeneralName::RFC822Name(email) => parsed.email_addresses.push(email.to_string()),
            GeneralName::URI(uri) => parsed.uris.push(uri.to_string()),
            GeneralName::IPAddress(bytes) => {
                if let Some(ip) = ip_address(bytes) {
                    parsed.ip_addresses.push(ip);
                }
            }
            _ => {}
        }
    }
    Ok(parsed)
}

fn last_common_name(name: &X509Name) -> String {
    name.iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .last()
        .unwrap_or_default()
        .to_string()
}

fn ip_address(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// Go's `CheckSignature` error for the request's key type.
fn signature_failure(request: &X509CertificationRequest, error: &X509Error) -> &'static str {
    if *error == X509Error::SignatureUnsupportedAlgorithm {
        return "x509: cannot verify signature: algorithm unimplemented";
    }
    let key = &request
        .certification_request_info
        .subject_pki
        .algorithm
        .algorithm;
    if *key == OID_PKCS1_RSAENCRYPTION {
        "crypto/rsa: verification error"
    } else if *key == OID_KEY_TYPE_EC_PUBLIC_KEY {
        "x509: ECDSA verification failure"
    } else if *key == OID_SIG_ED25519 {
        "x509: Ed25519 verification failure"
    } else {
        "x509: cannot verify signature: algorithm unimplemented"
    }
}

/// Upstream's check of `status.certificate`: at least one PEM block, every block a
/// `CERTIFICATE` without headers holding one or more DER certificates (text between blocks is
/// allowed, as RFC 7468 explanatory text).
pub fn check_certificates(pem_bytes: &[u8]) -> Result<(), String> {
    let blocks = pem::parse_many(pem_bytes).map_err(|e| e.to_string())?;
    if blocks.is_empty() {
        return Err("must contain at least one CERTIFICATE PEM block".into());
    }
    for block in &blocks {
        if block.tag() != CERTIFICATE_BLOCK {
            return Err(format!(
                "only CERTIFICATE PEM blocks are allowed, found {:?}",
                block.tag()
            ));
        }
        if block.headers().iter().next().is_some() {
            return Err("no PEM block headers are permitted".into());
        }
        let mut der = block.contents();
        if der.is_empty() {
            return Err("found CERTIFICATE PEM block containing 0 certificates".into());
        }
        while !der.is_empty() {
            let (rest, _) = x509_parser::parse_x509_certificate(der)
                .map_err(|e| format!("x509: malformed certificate: {e}"))?;
            der = rest;
        }
    }
    Ok(())
}

/// When the first certificate of an issued chain expires (Unix seconds): what the CSR
/// cleaner compares with now.
pub fn not_after(pem_bytes: &[u8]) -> Result<i64, String> {
    let block = pem::parse(pem_bytes).map_err(|_| {
        "expected the certificate associated with the CSR to be PEM encoded".to_string()
    })?;
    let (_, certificate) = x509_parser::parse_x509_certificate(block.contents())
        .map_err(|e| format!("unable to parse certificate data: {e}"))?;
    Ok(certificate.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request for `subject` (`(CN, [O...])`) with `dns` SANs, signed by a new P-256 key.
    pub fn request(common_name: &str, organizations: &[&str], dns: &[&str]) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        for organization in organizations {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *organization);
        }
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn requests_parse_with_their_subject_and_names() {
        let pem = request("system:node:n1", &["system:nodes"], &["n1.example"]);
        let parsed = parse_request(format!("some text\n{pem}").as_bytes()).unwrap();
        assert_eq!(parsed.common_name, "system:node:n1");
        assert_eq!(parsed.organizations, ["system:nodes"]);
        assert_eq!(parsed.dns_names, ["n1.example"]);
        assert!(parsed.ip_addresses.is_empty() && parsed.uris.is_empty());
    }

    #[test]
    fn what_is_not_a_signed_request_is_refused_with_upstreams_words() {
        assert_eq!(
            parse_request(b"hello").unwrap_err().to_string(),
            "PEM block type must be CERTIFICATE REQUEST"
        );
        let certificate = pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3]));
        assert_eq!(
            parse_request(certificate.as_bytes()).unwrap_err(),
            RequestError::NotARequest
        );
        let garbage = pem::encode(&pem::Pem::new(REQUEST_BLOCK, vec![1, 2, 3]));
        assert_eq!(
            parse_request(garbage.as_bytes()).unwrap_err(),
            RequestError::Malformed
        );
        // A flipped bit in the signature (the DER's last byte).
        let good = pem::parse(request("jane", &[], &[])).unwrap();
        let mut der = good.contents().to_vec();
        *der.last_mut().unwrap() ^= 1;
        let tampered = pem::encode(&pem::Pem::new(REQUEST_BLOCK, der));
        assert_eq!(
            parse_request(tampered.as_bytes()).unwrap_err().to_string(),
            "x509: ECDSA verification failure"
        );
    }

    #[test]
    fn issued_chains_are_certificate_blocks() {
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(vec!["a".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        assert_eq!(check_certificates(certificate.as_bytes()), Ok(()));
        assert!(not_after(certificate.as_bytes()).unwrap() > 0);
        assert_eq!(
            check_certificates(b"no blocks").unwrap_err(),
            "must contain at least one CERTIFICATE PEM block"
        );
        let key_block = pem::encode(&pem::Pem::new("PRIVATE KEY", vec![1]));
        assert_eq!(
            check_certificates(key_block.as_bytes()).unwrap_err(),
            r#"only CERTIFICATE PEM blocks are allowed, found "PRIVATE KEY""#
        );
    }
}
