//! The cluster signing CA (upstream `pkg/controller/certificates/authority`): issues a
//! certificate for a request's subject, names and public key, with the usages and lifetime
//! of upstream's permissive signing policy, laid out as Go's `x509.CreateCertificate` lays it
//! out, so clients and verifiers meet what an upstream cluster issues.
//!
//! The DER is written here (with yasna, which rcgen writes with) rather than by rcgen's
//! certificate builder, which keeps one value per subject attribute: a request for several
//! groups (`/O=devs/O=admins`) must keep them all, since the subject is the identity the
//! certificate proves. rcgen's key pair signs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use machinery::certificates::CertificateRequest;
use machinery::serviceaccount::keys::{KeyError, SigningKey as KeyFile};
use rcgen::{KeyPair, PublicKeyData, SigningKey};
use ring::rand::SecureRandom;
use x509_parser::extensions::ParsedExtension;
use yasna::models::ObjectIdentifier;
use yasna::tags::{TAG_GENERALIZEDTIME, TAG_UTCTIME};
use yasna::{DERWriter, Tag};

/// How much earlier than now certificates become valid, as clocks in a cluster disagree a
/// little; always shorter than the shortest lifetime a request may ask for.
const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// Lifetimes below this keep their full length after the backdating (5 minutes being about
/// 1% of it).
const SHORT: Duration = Duration::from_secs(8 * 60 * 60);

/// Why `--cluster-signing-cert-file` and `--cluster-signing-key-file` cannot sign.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("error reading CA cert file {path:?}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("error reading CA key file: {0}")]
    Key(#[from] KeyError),
    #[error("error reading CA key file {path:?}: {reason}")]
    UnsupportedKey { path: PathBuf, reason: String },
    #[error("tls: private key does not match public key")]
    Mismatch,
}

/// Why a request was not signed (upstream's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The usages, as Go's `%q` prints a slice.
    #[error("unrecognized usage values: [{}]", .0.iter().map(|u| format!("{u:?}")).collect::<Vec<_>>().join(" "))]
    UnrecognizedUsages(Vec<String>),
    #[error("the signer has expired: NotAfter={0}")]
    SignerExpired(String),
    #[error("refusing to sign a certificate that expired in the past: NotAfter={0}")]
    ExpiredInPast(String),
    #[error("failed to sign certificate: {0}")]
    Signing(String),
}

/// The CA that signs: its key and what issued certificates repeat of its certificate.
pub struct Authority {
    key: KeyPair,
    /// The CA certificate's DER subject: the issuer of what it signs, which verifiers compare
    /// byte for byte.
    issuer: Vec<u8>,
    /// Its subject key identifier, repeated as the authority key identifier.
    key_id: Option<Vec<u8>>,
    /// When the CA expires: nothing it signs outlives it.
    not_after: Timestamp,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Loads the CA from a PEM certificate (the first of a bundle) and its PEM private key
    /// (PKCS#1, SEC1 or PKCS#8).
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Authority, LoadError> {
        let certificate_error = |reason: String| LoadError::Certificate {
            path: cert_file.to_path_buf(),
            reason,
        };
        let text = std::fs::read(cert_file).map_err(|e| certificate_error(e.to_string()))?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(&text).map_err(|_| {
            certificate_error("data does not contain any valid RSA or ECDSA certificates".into())
        })?;
        let certificate = pem
            .parse_x509()
            .map_err(|e| certificate_error(e.to_string()))?;
        let key_file_error = |reason: String| LoadError::UnsupportedKey {
            path: key_file.to_path_buf(),
            reason,
        };
        let key = KeyPair::try_from(KeyFile::from_file(key_file)?.pkcs8_der())
            .map_err(|e| key_file_error(e.to_string()))?;
        if key.der_bytes() != certificate.public_key().subject_public_key.data.as_ref() {
            return Err(LoadError::Mismatch);
        }
        let key_id = certificate.iter_extensions().find_map(|extension| {
            match extension.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            }
        });
        let not_after = Timestamp::from_second(certificate.validity().not_after.timestamp())
            .map_err(|e| certificate_error(e.to_string()))?;
        Ok(Authority {
            issuer: certificate.subject().as_raw().to_vec(),
            key_id,
            not_after,
            key,
        })
    }

    /// A certificate for `request` with `usages`, valid from a little before `now` for `ttl`
    /// (no longer than the CA), as PEM.
    pub fn sign(
        &self,
        request: &CertificateRequest,
        usages: &[String],
        ttl: Duration,
        now: Timestamp,
    ) -> Result<String, SignError> {
        let (key_usage, extended) = key_usages(usages)?;
        let not_before = now - BACKDATE;
        let mut not_after = if ttl < SHORT {
            now + ttl
        } else {
            now + ttl - BACKDATE
        };
        if not_after >= self.not_after {
            not_after = self.not_after;
        }
        if not_before >= self.not_after {
            return Err(SignError::SignerExpired(go_time(self.not_after)));
        }
        if now >= self.not_after {
            return Err(SignError::ExpiredInPast(go_time(self.not_after)));
        }
        let mut serial = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut serial)
            .map_err(|_| SignError::Signing("no randomness for a serial number".into()))?;
        let algorithm = signature_algorithm(&self.key)?;
        let extensions = self.extensions(request, key_usage, &extended);
        let tbs = yasna::construct_der(|writer| {
            writer.write_sequence(|writer| {
                writer
                    .next()
                    .write_tagged(Tag::context(0), |writer| writer.write_u8(2));
                writer.next().write_bigint_bytes(&serial, true);
                writer.next().write_der(&algorithm);
                writer.next().write_der(&self.issuer);
                writer.next().write_sequence(|writer| {
                    write_time(writer.next(), not_before);
                    write_time(writer.next(), not_after);
                });
                writer.next().write_der(&request.subject);
                writer.next().write_der(&request.public_key);
                if !extensions.is_empty() {
                    writer.next().write_tagged(Tag::context(3), |writer| {
                        writer.write_sequence(|writer| {
                            for extension in &extensions {
                                writer.next().write_der(extension);
                            }
                        })
                    });
                }
            })
        });
        let signature = self
            .key
            .sign(&tbs)
            .map_err(|e| SignError::Signing(e.to_string()))?;
        let der = yasna::construct_der(|writer| {
            writer.write_sequence(|writer| {
                writer.next().write_der(&tbs);
                writer.next().write_der(&algorithm);
                writer
                    .next()
                    .write_bitvec_bytes(&signature, signature.len() * 8);
            })
        });
        Ok(super::super::rootcacertpublisher::pem("CERTIFICATE", &der))
    }

    /// The extensions in Go's order: key usage, extended key usage, basic constraints,
    /// authority key identifier, subject alternative names.
    fn extensions(
        &self,
        request: &CertificateRequest,
        key_usage: u16,
        extended: &[&'static [u64]],
    ) -> Vec<Vec<u8>> {
        let mut extensions = Vec::new();
        if key_usage != 0 {
            // Bit 0 (digital signature) is the first bit of the string, and trailing zero
            // bits are left out.
            let bytes = key_usage.reverse_bits().to_be_bytes();
            let length = 16 - key_usage.leading_zeros() as usize;
            let bytes = &bytes[..length.div_ceil(8)];
            extensions.push(extension(&[2, 5, 29, 15], true, |writer| {
                writer.write_bitvec_bytes(bytes, length)
            }));
        }
        if !extended.is_empty() {
            extensions.push(extension(&[2, 5, 29, 37], false, |writer| {
                writer.write_sequence(|writer| {
                    for oid in extended {
                        writer.next().write_oid(&ObjectIdentifier::from_slice(oid));
                    }
                })
            }));
        }
        // Not a CA: an empty basicConstraints.
        extensions.push(extension(&[2, 5, 29, 19], true, |writer| {
            writer.write_sequence(|_| {})
        }));
        if let Some(key_id) = &self.key_id {
            extensions.push(extension(&[2, 5, 29, 35], false, |writer| {
                writer.write_sequence(|writer| {
                    writer
                        .next()
                        .write_tagged_implicit(Tag::context(0), |writer| writer.write_bytes(key_id))
                })
            }));
        }
        let has_names = !(request.dns_names.is_empty()
            && request.email_addresses.is_empty()
            && request.ip_addresses.is_empty()
            && request.uris.is_empty());
        if has_names {
            // An empty subject leaves the names as the only identity: critical then.
            let empty_subject = request.subject.as_slice() == [0x30, 0x00];
            extensions.push(extension(&[2, 5, 29, 17], empty_subject, |writer| {
                writer.write_sequence(|writer| {
                    let mut name = |tag: u64, bytes: &[u8]| {
                        writer
                            .next()
                            .write_tagged_implicit(Tag::context(tag), |w| w.write_bytes(bytes))
                    };
                    for dns in &request.dns_names {
                        name(2, dns.as_bytes());
                    }
                    for email in &request.email_addresses {
                        name(1, email.as_bytes());
                    }
                    for ip in &request.ip_addresses {
                        match ip {
                            IpAddr::V4(v4) => name(7, &v4.octets()),
                            IpAddr::V6(v6) => name(7, &v6.octets()),
                        }
                    }
                    for uri in &request.uris {
                        name(6, uri.as_bytes());
                    }
                })
            }));
        }
        extensions
    }
}

/// One `Extension`: its OID, `critical` when set, and the DER `value` in an OCTET STRING.
fn extension(oid: &[u64], critical: bool, value: impl FnOnce(DERWriter)) -> Vec<u8> {
    let value = yasna::construct_der(value);
    yasna::construct_der(|writer| {
        writer.write_sequence(|writer| {
            writer.next().write_oid(&ObjectIdentifier::from_slice(oid));
            if critical {
                writer.next().write_bool(true);
            }
            writer.next().write_bytes(&value);
        })
    })
}

/// The DER AlgorithmIdentifier of the CA key's signatures, as Go picks it for the key.
fn signature_algorithm(key: &KeyPair) -> Result<Vec<u8>, SignError> {
    let algorithm = key.algorithm();
    let (oid, null_parameters): (&[u64], bool) = if algorithm == &rcgen::PKCS_ECDSA_P256_SHA256 {
        (&[1, 2, 840, 10045, 4, 3, 2], false)
    } else if algorithm == &rcgen::PKCS_ECDSA_P384_SHA384 {
        (&[1, 2, 840, 10045, 4, 3, 3], false)
    } else if algorithm == &rcgen::PKCS_RSA_SHA256 {
        (&[1, 2, 840, 113549, 1, 1, 11], true)
    } else if algorithm == &rcgen::PKCS_ED25519 {
        (&[1, 3, 101, 112], false)
    } else {
        return Err(SignError::Signing(format!(
            "unsupported CA key algorithm {algorithm:?}"
        )));
    };
    Ok(yasna::construct_der(|writer| {
        writer.write_sequence(|writer| {
            writer.next().write_oid(&ObjectIdentifier::from_slice(oid));
            if null_parameters {
                writer.next().write_null();
            }
        })
    }))
}

/// Upstream's `keyUsagesFromStrings`: the key usage bits (Go's `x509.KeyUsage`, digital
/// signature being bit 0) and the extended key usages' OIDs in Go's order.
fn key_usages(usages: &[String]) -> Result<(u16, Vec<&'static [u64]>), SignError> {
    const EXTENDED: &[(&str, &[u64])] = &[
        ("any", &[2, 5, 29, 37, 0]),
        ("server auth", &[1, 3, 6, 1, 5, 5, 7, 3, 1]),
        ("client auth", &[1, 3, 6, 1, 5, 5, 7, 3, 2]),
        ("code signing", &[1, 3, 6, 1, 5, 5, 7, 3, 3]),
        ("email protection", &[1, 3, 6, 1, 5, 5, 7, 3, 4]),
        ("s/mime", &[1, 3, 6, 1, 5, 5, 7, 3, 4]),
        ("ipsec end system", &[1, 3, 6, 1, 5, 5, 7, 3, 5]),
        ("ipsec tunnel", &[1, 3, 6, 1, 5, 5, 7, 3, 6]),
        ("ipsec user", &[1, 3, 6, 1, 5, 5, 7, 3, 7]),
        ("timestamping", &[1, 3, 6, 1, 5, 5, 7, 3, 8]),
        ("ocsp signing", &[1, 3, 6, 1, 5, 5, 7, 3, 9]),
        ("microsoft sgc", &[1, 3, 6, 1, 4, 1, 311, 10, 3, 3]),
        ("netscape sgc", &[2, 16, 840, 1, 113730, 4, 1]),
    ];
    let mut bits = 0u16;
    let mut extended: Vec<&'static [u64]> = Vec::new();
    let mut unrecognized = Vec::new();
    for usage in usages {
        let bit = match usage.as_str() {
            "signing" | "digital signature" => Some(0),
            "content commitment" => Some(1),
            "key encipherment" => Some(2),
            "data encipherment" => Some(3),
            "key agreement" => Some(4),
            "cert sign" => Some(5),
            "crl sign" => Some(6),
            "encipher only" => Some(7),
            "decipher only" => Some(8),
            _ => None,
        };
        if let Some(bit) = bit {
            bits |= 1 << bit;
        } else if let Some((_, oid)) = EXTENDED.iter().find(|(name, _)| name == usage) {
            if !extended.contains(oid) {
                extended.push(oid);
            }
        } else {
            unrecognized.push(usage.clone());
        }
    }
    if !unrecognized.is_empty() {
        return Err(SignError::UnrecognizedUsages(unrecognized));
    }
    let order = |oid: &&[u64]| EXTENDED.iter().position(|(_, o)| o == oid);
    extended.sort_by_key(order);
    Ok((bits, extended))
}

/// A validity time: UTCTime through 2049, GeneralizedTime after, as RFC 5280 wants.
fn write_time(writer: DERWriter, at: Timestamp) {
    let utc = at.to_zoned(jiff::tz::TimeZone::UTC);
    let (tag, text) = if (1950..2050).contains(&utc.year()) {
        (TAG_UTCTIME, utc.strftime("%y%m%d%H%M%SZ").to_string())
    } else {
        (
            TAG_GENERALIZEDTIME,
            utc.strftime("%Y%m%d%H%M%SZ").to_string(),
        )
    };
    writer.write_tagged_implicit(tag, |writer| writer.write_bytes(text.as_bytes()));
}

/// A time as Go's `%v` prints it (`2036-12-05 18:29:05 +0000 UTC`).
fn go_time(at: Timestamp) -> String {
    at.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer;

    /// A CA written to `dir` as ca.crt and ca.key, as the apiserver's PKI writes it.
    fn write_ca(dir: &Path) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kubernetes");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let certificate = params.self_signed(&key).unwrap();
        let (cert, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        std::fs::write(&cert, certificate.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert, key_path)
    }

    fn request(subject: &[(rcgen::DnType, &str)], dns: &[&str]) -> CertificateRequest {
        let key = KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in subject {
            params.distinguished_name.push(kind.clone(), *value);
        }
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        machinery::certificates::parse_request(pem.as_bytes()).unwrap()
    }

    #[test]
    fn issued_certificates_chain_to_the_ca_with_the_policys_usages_and_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_ca(dir.path());
        let authority = Authority::load(&cert, &key).unwrap();
        let request = request(
            &[(rcgen::DnType::CommonName, "system:node:n1")],
            &["n1.example"],
        );
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let usages = ["digital signature".to_string(), "server auth".to_string()];
        let pem = authority
            .sign(&request, &usages, Duration::from_secs(3600), now)
            .unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, issued) =
            x509_parser::certificate::X509Certificate::from_der(&block.contents).unwrap();
        let ca_text = std::fs::read(&cert).unwrap();
        let (_, ca_block) = x509_parser::pem::parse_x509_pem(&ca_text).unwrap();
        let ca = ca_block.parse_x509().unwrap();
        issued.verify_signature(Some(ca.public_key())).unwrap();
        assert_eq!(issued.issuer().as_raw(), ca.subject().as_raw());
        assert_eq!(
            issued
                .subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "system:node:n1"
        );
        // A short lifetime is not shortened by the backdating.
        assert_eq!(
            issued.validity().not_before.timestamp(),
            1_800_000_000 - 300
        );
        assert_eq!(
            issued.validity().not_after.timestamp(),
            1_800_000_000 + 3600
        );
        let usage = issued.key_usage().unwrap().unwrap();
        assert!(
            usage.critical && usage.value.digital_signature() && !usage.value.key_encipherment()
        );
        let extended = issued.extended_key_usage().unwrap().unwrap().value;
        assert!(extended.server_auth && !extended.client_auth);
        assert!(!issued.basic_constraints().unwrap().unwrap().value.ca);
        let names = issued.subject_alternative_name().unwrap().unwrap();
        assert_eq!(names.value.general_names.len(), 1);
        assert!(issued
            .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
            .unwrap()
            .is_some());
    }

    #[test]
    fn every_group_of_the_subject_is_kept_and_long_lifetimes_are_backdated() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_ca(dir.path());
        let authority = Authority::load(&cert, &key).unwrap();
        let request = request(
            &[
                (rcgen::DnType::CommonName, "jane"),
                (rcgen::DnType::OrganizationName, "devs"),
            ],
            &[],
        );
        let now = Timestamp::now();
        let pem = authority
            .sign(
                &request,
                &["client auth".to_string()],
                Duration::from_secs(24 * 3600),
                now,
            )
            .unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let issued = block.parse_x509().unwrap();
        assert_eq!(issued.subject().as_raw(), request.subject.as_slice());
        assert_eq!(
            issued.validity().not_after.timestamp(),
            now.as_second() + 24 * 3600 - 300
        );
        assert!(issued.key_usage().unwrap().is_none());
    }

    #[test]
    fn usages_map_to_gos_bits_and_unknown_ones_are_refused() {
        let (bits, extended) = key_usages(&[
            "client auth".into(),
            "key encipherment".into(),
            "digital signature".into(),
            "any".into(),
        ])
        .unwrap();
        assert_eq!(bits, 0b101);
        assert_eq!(
            extended,
            [&[2, 5, 29, 37, 0][..], &[1, 3, 6, 1, 5, 5, 7, 3, 2][..]]
        );
        assert_eq!(
            key_usages(&["flying".into()]).unwrap_err().to_string(),
            r#"unrecognized usage values: ["flying"]"#
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = write_ca(dir.path());
        let other = dir.path().join("other.key");
        std::fs::write(&other, KeyPair::generate().unwrap().serialize_pem()).unwrap();
        assert!(matches!(
            Authority::load(&cert, &other),
            Err(LoadError::Mismatch)
        ));
    }
}
