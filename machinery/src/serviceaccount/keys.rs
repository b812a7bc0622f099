//! Service-account keys: the private key that signs tokens (`--service-account-signing-key-file`,
//! the controller-manager's `--service-account-private-key-file`) and the public keys that
//! verify them (`--service-account-key-file`), read from the PEM files upstream reads: PKCS#1,
//! SEC1 and PKCS#8 private keys, PKIX and PKCS#1 public keys, certificates.
//!
//! RSA keys sign RS256 and EC keys ES256 (P-256) or ES384 (P-384), as upstream picks the
//! algorithm from the key; ring does the arithmetic. Key IDs are upstream's: the unpadded
//! base64url SHA-256 of the public key's PKIX (SubjectPublicKeyInfo) encoding, so a key has
//! the same `kid` here as in a Go apiserver.

use std::path::{Path, PathBuf};

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use ring::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING,
};
use serde::Serialize;
use x509_parser::prelude::FromDer;

use super::der;

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

/// The elliptic curves whose keys sign tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    fn oid(self) -> &'static [u8] {
        match self {
            Curve::P256 => der::P256,
            Curve::P384 => der::P384,
        }
    }

    /// Bytes of one coordinate.
    fn size(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    fn from_oid(oid: &[u8]) -> Option<Curve> {
        [Curve::P256, Curve::P384]
            .into_iter()
            .find(|c| c.oid() == oid)
    }
}

/// A public key that verifies tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Big-endian modulus and exponent, without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point (`04 || x || y`).
    Ec { curve: Curve, point: Vec<u8> },
}

impl PublicKey {
    fn rsa(n: &[u8], e: &[u8]) -> PublicKey {
        let trim = |b: &[u8]| b.iter().copied().skip_while(|x| *x == 0).collect();
        PublicKey::Rsa {
            n: trim(n),
            e: trim(e),
        }
    }

    /// The JWS algorithm this key signs with, as upstream chooses it.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Rsa { .. } => Algorithm::RS256,
            PublicKey::Ec {
                curve: Curve::P256, ..
            } => Algorithm::ES256,
            PublicKey::Ec {
                curve: Curve::P384, ..
            } => Algorithm::ES384,
        }
    }

    /// The PKIX (SubjectPublicKeyInfo) DER encoding, as Go's `x509.MarshalPKIXPublicKey`.
    pub fn spki_der(&self) -> Vec<u8> {
        match self {
            PublicKey::Rsa { n, e } => {
                der::subject_public_key_info(None, &der::rsa_public_key(n, e))
            }
            PublicKey::Ec { curve, point } => {
                der::subject_public_key_info(Some(curve.oid()), point)
            }
        }
    }

    /// Upstream's key ID: the unpadded base64url SHA-256 of [`PublicKey::spki_der`].
    pub fn key_id(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.spki_der());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
    }

    /// The key as a JWK.
    pub fn jwk(&self) -> Jwk {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let mut jwk = Jwk {
            key_use: "sig",
            kty: "RSA",
            kid: self.key_id(),
            crv: None,
            alg: format!("{:?}", self.algorithm()),
            x: None,
            y: None,
            n: None,
            e: None,
        };
        match self {
            PublicKey::Rsa { n, e } => {
                jwk.n = Some(b64(n));
                jwk.e = Some(b64(e));
            }
            PublicKey::Ec { curve, point } => {
                let (x, y) = point[1..].split_at(curve.size());
                jwk.kty = "EC";
                jwk.crv = Some(match curve {
                    Curve::P256 => "P-256",
                    Curve::P384 => "P-384",
                });
                jwk.x = Some(b64(x));
                jwk.y = Some(b64(y));
            }
        }
        jwk
    }

    /// The key in the form the JWT verifier (`super::jwt`) reads.
    pub(super) fn decoding_key(&self) -> DecodingKey {
        match self {
            PublicKey::Rsa { n, e } => DecodingKey::from_rsa_raw_components(n, e),
            PublicKey::Ec { point, .. } => DecodingKey::from_ec_der(point),
        }
    }

    /// A PKIX SubjectPublicKeyInfo (DER) as a key.
    fn from_spki(spki: &x509_parser::x509::SubjectPublicKeyInfo) -> Result<PublicKey, String> {
        use x509_parser::public_key::PublicKey as Parsed;
        match spki.parsed() {
            Ok(Parsed::RSA(rsa)) => Ok(PublicKey::rsa(rsa.modulus, rsa.exponent)),
            Ok(Parsed::EC(point)) => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .and_then(|oid| Curve::from_oid(oid.as_bytes()))
                    .ok_or("unsupported elliptic curve: P-256 and P-384 keys are supported")?;
                let point = point.data().to_vec();
                if point.len() != 1 + 2 * curve.size() || point[0] != 4 {
                    return Err("the EC public key is not an uncompressed point".into());
                }
                Ok(PublicKey::Ec { curve, point })
            }
            Ok(_) => Err("unsupported public key type: RSA and EC keys are supported".into()),
            Err(e) => Err(format!("invalid public key: {e}")),
        }
    }
}

/// A public key as a JWK (RFC 7517), members in the order go-jose writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwk {
    #[serde(rename = "use")]
    pub key_use: &'static str,
    pub kty: &'static str,
    pub kid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<&'static str>,
    pub alg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// The private key that signs tokens, checked by ring when loaded. Its `Debug` shows the
/// public half only.
pub struct SigningKey {
    /// PKCS#8, whatever the file held: what [`super::jwt`]'s signer loads.
    pkcs8: Vec<u8>,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads the first private key in a PEM file.
    pub fn from_file(path: &Path) -> Result<SigningKey, KeyError> {
        let text = read(path)?;
        SigningKey::from_pem(&text).map_err(|reason| KeyError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// The first private key among PEM blocks (other blocks, such as `EC PARAMETERS`, are
    /// skipped, as upstream's `keyutil` skips them).
    pub fn from_pem(text: &[u8]) -> Result<SigningKey, String> {
        let blocks = pem::parse_many(text).map_err(|e| format!("invalid PEM: {e}"))?;
        blocks
            .iter()
            .find_map(|block| SigningKey::from_block(block.tag(), block.contents()))
            .unwrap_or_else(|| Err("data does not contain a valid RSA or ECDSA private key".into()))
    }

    fn from_block(tag: &str, der: &[u8]) -> Option<Result<SigningKey, String>> {
        let key = match tag {
            "RSA PRIVATE KEY" => SigningKey::from_pkcs8(der::pkcs8(None, der)),
            "EC PRIVATE KEY" => [Curve::P256, Curve::P384]
                .into_iter()
                .find_map(|c| SigningKey::from_pkcs8(der::pkcs8(Some(c.oid()), der)).ok())
                .ok_or_else(|| {
                    "unsupported EC private key: P-256 and P-384 keys are supported".to_string()
                }),
            "PRIVATE KEY" => SigningKey::from_pkcs8(der.to_vec()),
            _ => return None,
        };
        Some(key)
    }

    fn from_pkcs8(pkcs8: Vec<u8>) -> Result<SigningKey, String> {
        if let Ok(pair) = RsaKeyPair::from_pkcs8(&pkcs8) {
            let components = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
            let public = PublicKey::rsa(&components.n, &components.e);
            return Ok(SigningKey { pkcs8, public });
        }
        let rng = ring::rand::SystemRandom::new();
        for (curve, algorithm) in [
            (Curve::P256, &ECDSA_P256_SHA256_FIXED_SIGNING),
            (Curve::P384, &ECDSA_P384_SHA384_FIXED_SIGNING),
        ] {
            if let Ok(pair) = EcdsaKeyPair::from_pkcs8(algorithm, &pkcs8, &rng) {
                let point = pair.public_key().as_ref().to_vec();
                return Ok(SigningKey {
                    pkcs8,
                    public: PublicKey::Ec { curve, point },
                });
            }
        }
        Err("unsupported private key: RSA (2048 to 8192 bits) and EC P-256 or P-384 keys are supported".into())
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The key as PKCS#8 DER, whatever the file held: the cluster signer loads its CA key
    /// through here, so it reads every form upstream's `keyutil` reads.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key in the form the JWT signer (`super::jwt`) reads.
    pub(super) fn encoding_key(&self) -> EncodingKey {
        match self.public {
            PublicKey::Rsa { .. } => EncodingKey::from_rsa_der(&self.pkcs8),
            PublicKey::Ec { .. } => EncodingKey::from_ec_der(&self.pkcs8),
        }
    }

    /// A new key and its public half as PEM (`PRIVATE KEY`, `PUBLIC KEY`): ECDSA P-256, which
    /// upstream accepts and which takes microseconds to make, where RSA 2048 takes a second
    /// or more in a debug build and tests start many apiservers.
    pub fn generate_pem() -> Result<(String, String), rcgen::Error> {
        let key = rcgen::KeyPair::generate()?;
        Ok((key.serialize_pem(), key.public_key_pem()))
    }
}

/// Every public key in a PEM file: `PUBLIC KEY`, `RSA PUBLIC KEY` and certificate blocks,
/// or, when there are none, the public halves of its private keys (upstream accepts a
/// private key file as a `--service-account-key-file`).
pub fn public_keys_from_file(path: &Path) -> Result<Vec<PublicKey>, KeyError> {
    let text = read(path)?;
    public_keys_from_pem(&text).map_err(|reason| KeyError::Invalid {
        path: path.to_path_buf(),
        reason,
    })
}

pub fn public_keys_from_pem(text: &[u8]) -> Result<Vec<PublicKey>, String> {
    let blocks = pem::parse_many(text).map_err(|e| format!("invalid PEM: {e}"))?;
    let mut keys = Vec::new();
    for block in &blocks {
        let der = block.contents();
        let key = match block.tag() {
            "PUBLIC KEY" => x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
                .map_err(|e| format!("invalid public key: {e}"))
                .and_then(|(_, spki)| PublicKey::from_spki(&spki)),
            "RSA PUBLIC KEY" => x509_parser::public_key::RSAPublicKey::from_der(der)
                .map(|(_, rsa)| PublicKey::rsa(rsa.modulus, rsa.exponent))
                .map_err(|e| format!("invalid RSA public key: {e}")),
            "CERTIFICATE" => x509_parser::parse_x509_certificate(der)
                .map_err(|e| format!("invalid certificate: {e}"))
                .and_then(|(_, cert)| PublicKey::from_spki(cert.public_key())),
            _ => continue,
        };
        keys.push(key?);
    }
    if keys.is_empty() {
        for block in &blocks {
            if let Some(key) = SigningKey::from_block(block.tag(), block.contents()) {
                keys.push(key?.public);
            }
        }
    }
    if keys.is_empty() {
        return Err("data does not contain any valid RSA or ECDSA public keys".into());
    }
    Ok(keys)
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl genrsa 2048` (PKCS#1), as kubeadm writes `sa.key`.
    pub(crate) const RSA_PKCS1: &str = include_str!("testdata/rsa.key");
    /// `openssl ecparam -name prime256v1 -genkey` (SEC1, with its parameters block).
    const EC_SEC1: &str = include_str!("testdata/ec.key");
    /// `openssl rsa -pubout` of [`RSA_PKCS1`].
    const RSA_PUBLIC: &str = include_str!("testdata/rsa.pub");

    #[test]
    fn every_private_key_format_loads() {
        let rsa = SigningKey::from_pem(RSA_PKCS1.as_bytes()).unwrap();
        assert_eq!(rsa.public().algorithm(), Algorithm::RS256);
        let ec = SigningKey::from_pem(EC_SEC1.as_bytes()).unwrap();
        assert_eq!(ec.public().algorithm(), Algorithm::ES256);
        let (private, public) = SigningKey::generate_pem().unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
        let generated = SigningKey::from_pem(private.as_bytes()).unwrap();
        assert_eq!(
            public_keys_from_pem(public.as_bytes()).unwrap(),
            [generated.public().clone()]
        );
        assert!(SigningKey::from_pem(
            b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
        )
        .is_err());
    }

    #[test]
    fn public_keys_come_from_public_or_private_files() {
        let rsa = SigningKey::from_pem(RSA_PKCS1.as_bytes()).unwrap();
        assert_eq!(
            public_keys_from_pem(RSA_PUBLIC.as_bytes()).unwrap(),
            [rsa.public().clone()]
        );
        assert_eq!(
            public_keys_from_pem(RSA_PKCS1.as_bytes()).unwrap(),
            [rsa.public().clone()]
        );
        let pkcs1 = pem::encode(&pem::Pem::new(
            "RSA PUBLIC KEY",
            match rsa.public() {
                PublicKey::Rsa { n, e } => der::rsa_public_key(n, e),
                PublicKey::Ec { .. } => unreachable!(),
            },
        ));
        assert_eq!(
            public_keys_from_pem(pkcs1.as_bytes()).unwrap(),
            [rsa.public().clone()]
        );
        assert!(public_keys_from_pem(b"").is_err());
    }

    #[test]
    fn key_ids_hash_the_pkix_encoding_like_upstream() {
        // The PKIX encoding we build is byte for byte the one `openssl rsa -pubout` wrote.
        let rsa = SigningKey::from_pem(RSA_PKCS1.as_bytes()).unwrap();
        let file = pem::parse(RSA_PUBLIC).unwrap();
        assert_eq!(rsa.public().spki_der(), file.contents());
        // `openssl rsa -pubout -outform der | openssl dgst -sha256 -binary | basenc --base64url`
        assert_eq!(
            rsa.public().key_id(),
            include_str!("testdata/rsa.kid").trim()
        );
        let jwk = rsa.public().jwk();
        assert_eq!((jwk.kty, jwk.alg.as_str()), ("RSA", "RS256"));
        assert_eq!(jwk.e.as_deref(), Some("AQAB"));
        let ec = SigningKey::from_pem(EC_SEC1.as_bytes()).unwrap();
        let jwk = ec.public().jwk();
        assert_eq!(jwk.crv, Some("P-256"));
        assert_eq!(jwk.x.as_ref().unwrap().len(), 43, "32 bytes, unpadded");
        let text = serde_json::to_string(&jwk).unwrap();
        let kid = ec.public().key_id();
        assert!(text.starts_with(&format!(
            r#"{{"use":"sig","kty":"EC","kid":"{kid}","crv":"P-256","alg":"ES256","x":"#
        )));
    }
}
