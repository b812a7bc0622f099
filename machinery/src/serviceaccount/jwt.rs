//! Signing and verifying JWTs with service-account keys: jsonwebtoken for the JWS compact
//! form (header, base64url, algorithm checks), ring for the signatures.
//!
//! jsonwebtoken leaves cryptography to a process-wide provider. Its own choices are
//! RustCrypto (a second crypto stack next to the ring that rustls and kube already build,
//! including the `rsa` crate and its timing advisory) or aws-lc (a C build); the provider
//! here maps the four algorithms service-account keys use onto ring instead. Claims are left
//! unchecked by jsonwebtoken: the authenticators check time, issuer and audience themselves,
//! with upstream's messages.

use std::sync::Once;

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::signature;
use jsonwebtoken::Algorithm::{ES256, ES384, RS256};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey, Header, Validation};
use ring::signature::{self as ring_sig, EcdsaKeyPair, RsaKeyPair};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::keys::{PublicKey, SigningKey};

/// jsonwebtoken's errors, for the provider's signatures.
type JwtResult<T> = jsonwebtoken::errors::Result<T>;

fn rejected() -> jsonwebtoken::errors::Error {
    jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into()
}

/// The ring-backed provider; only the signer and verifier factories are used.
static RING: CryptoProvider = CryptoProvider {
    signer_factory: ring_signer,
    verifier_factory: ring_verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Installs [`RING`] once per process, before the first signature or verification.
fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Another provider installed first would be one this process chose on purpose.
        let _ = RING.install_default();
    });
}

/// A PKCS#8 private key signing with one algorithm.
enum RingSigner {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair, Algorithm),
}

impl signature::Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let rng = ring::rand::SystemRandom::new();
        match self {
            RingSigner::Rsa(pair) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(&ring_sig::RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .map_err(|_| signature::Error::new())?;
                Ok(out)
            }
            RingSigner::Ec(pair, _) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| signature::Error::new()),
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        match self {
            RingSigner::Rsa(_) => RS256,
            RingSigner::Ec(_, algorithm) => *algorithm,
        }
    }
}

fn ring_signer(algorithm: &Algorithm, key: &EncodingKey) -> JwtResult<Box<dyn JwtSigner>> {
    let pkcs8 = key.as_bytes();
    let rng = ring::rand::SystemRandom::new();
    let ec = |alg| EcdsaKeyPair::from_pkcs8(alg, pkcs8, &rng).map_err(|_| rejected());
    Ok(match algorithm {
        RS256 => Box::new(RingSigner::Rsa(
            RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| rejected())?,
        )),
        ES256 => Box::new(RingSigner::Ec(
            ec(&ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING)?,
            ES256,
        )),
        ES384 => Box::new(RingSigner::Ec(
            ec(&ring_sig::ECDSA_P384_SHA384_FIXED_SIGNING)?,
            ES384,
        )),
        _ => return Err(jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into()),
    })
}

/// A public key verifying one algorithm.
struct RingVerifier {
    algorithm: Algorithm,
    key: DecodingKeyKind,
}

impl signature::Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, message: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        let verified = match (&self.key, self.algorithm) {
            (DecodingKeyKind::RsaModulusExponent { n, e }, RS256) => {
                ring_sig::RsaPublicKeyComponents { n, e }.verify(
                    &ring_sig::RSA_PKCS1_2048_8192_SHA256,
                    message,
                    sig,
                )
            }
            (DecodingKeyKind::SecretOrDer(point), ES256) => {
                ring_sig::UnparsedPublicKey::new(&ring_sig::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
            }
            (DecodingKeyKind::SecretOrDer(point), ES384) => {
                ring_sig::UnparsedPublicKey::new(&ring_sig::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, sig)
            }
            _ => return Err(signature::Error::new()),
        };
        verified.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn ring_verifier(algorithm: &Algorithm, key: &DecodingKey) -> JwtResult<Box<dyn JwtVerifier>> {
    match algorithm {
        RS256 | ES256 | ES384 => Ok(Box::new(RingVerifier {
            algorithm: *algorithm,
            key: key.kind().clone(),
        })),
        _ => Err(jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into()),
    }
}

/// Signs claims with a service-account key, the header carrying the algorithm and upstream's
/// key ID (and no `typ`, as go-jose writes it).
pub fn sign<C: Serialize>(
    key: &SigningKey,
    claims: &C,
) -> Result<String, jsonwebtoken::errors::Error> {
    install();
    let public = key.public();
    let mut header = Header::new(public.algorithm());
    header.typ = None;
    header.kid = Some(public.key_id());
    jsonwebtoken::encode(&header, claims, &key.encoding_key())
}

/// Why a token's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not a JWS in compact form, or its header does not decode.
    #[error("token is not a valid JWT: {0}")]
    Malformed(String),
    /// The token names a key ID none of the keys has (upstream's wording).
    #[error("invalid signature, no keys found")]
    NoKeys,
    /// No key verified the signature.
    #[error("go-jose/go-jose: error in cryptographic primitive")]
    Invalid,
}

/// The claims of a token signed by one of `keys`: those with the token's key ID if it names
/// one (upstream picks keys by `kid`), else all of them, each tried in turn.
pub fn verify<C: DeserializeOwned>(token: &str, keys: &[PublicKey]) -> Result<C, SignatureError> {
    install();
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let candidates: Vec<&PublicKey> = match &header.kid {
        Some(kid) => keys.iter().filter(|k| k.key_id() == *kid).collect(),
        None => keys.iter().collect(),
    };
    if candidates.is_empty() {
        return Err(SignatureError::NoKeys);
    }
    for key in candidates {
        let mut validation = Validation::new(key.algorithm());
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        match jsonwebtoken::decode::<C>(token, &key.decoding_key(), &validation) {
            Ok(data) => return Ok(data.claims),
            Err(error) => match error.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature
                | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => continue,
                _ => return Err(SignatureError::Malformed(error.to_string())),
            },
        }
    }
    Err(SignatureError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use serde_json::{json, Value};

    fn parts(token: &str) -> (Value, Value) {
        let decode = |part: &str| -> Value {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap();
            serde_json::from_slice(&bytes).unwrap()
        };
        let mut split = token.split('.');
        (decode(split.next().unwrap()), decode(split.next().unwrap()))
    }

    #[test]
    fn tokens_verify_with_their_key_only() {
        let rsa = SigningKey::from_pem(include_bytes!("testdata/rsa.key")).unwrap();
        let ec = SigningKey::from_pem(include_bytes!("testdata/ec.key")).unwrap();
        for key in [&rsa, &ec] {
            let token = sign(key, &json!({"sub": "me"})).unwrap();
            let (header, claims) = parts(&token);
            assert_eq!(
                header,
                json!({"alg": format!("{:?}", key.public().algorithm()), "kid": key.public().key_id()})
            );
            assert_eq!(claims, json!({"sub": "me"}));
            let keys = [rsa.public().clone(), ec.public().clone()];
            let verified: Value = verify(&token, &keys).unwrap();
            assert_eq!(verified["sub"], "me");
            // Another key with the same kid cannot verify it.
            let other = match key.public() {
                PublicKey::Rsa { .. } => ec.public().clone(),
                PublicKey::Ec { .. } => rsa.public().clone(),
            };
            assert_eq!(
                verify::<Value>(&token, &[other]).unwrap_err(),
                SignatureError::NoKeys
            );
        }
    }

    #[test]
    fn forged_and_malformed_tokens_are_refused() {
        let rsa = SigningKey::from_pem(include_bytes!("testdata/rsa.key")).unwrap();
        let keys = [rsa.public().clone()];
        let token = sign(&rsa, &json!({"sub": "me"})).unwrap();
        let (header, _) = token.split_once('.').unwrap();
        let (_, signature) = token.rsplit_once('.').unwrap();
        let forged_claims =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"admin"}"#);
        let forged = format!("{header}.{forged_claims}.{signature}");
        assert_eq!(
            verify::<Value>(&forged, &keys).unwrap_err(),
            SignatureError::Invalid
        );
        // `alg: none` is never accepted.
        let none = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        assert!(verify::<Value>(&format!("{none}.{forged_claims}."), &keys).is_err());
        assert!(matches!(
            verify::<Value>("not-a-jwt", &keys).unwrap_err(),
            SignatureError::Malformed(_)
        ));
    }
}
