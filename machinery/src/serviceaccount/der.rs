//! The little DER the key handling writes: SubjectPublicKeyInfo for key IDs (upstream hashes
//! Go's `x509.MarshalPKIXPublicKey`), PKCS#8 wrappers for PKCS#1 and SEC1 private keys so
//! ring can load them. Reading is left to x509-parser and ring.

/// `rsaEncryption` (1.2.840.113549.1.1.1).
pub const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// `id-ecPublicKey` (1.2.840.10045.2.1).
pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// `prime256v1` (1.2.840.10045.3.1.7).
pub const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// `secp384r1` (1.3.132.0.34).
pub const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;

/// One TLV with a definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

/// A non-negative big-endian integer, minimal, with the leading zero DER needs when the
/// top bit is set.
fn unsigned(be: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(&trimmed);
    tlv(INTEGER, &content)
}

/// The AlgorithmIdentifier of an RSA or EC key (`curve` is the named curve's OID).
fn algorithm(curve: Option<&[u8]>) -> Vec<u8> {
    match curve {
        None => sequence(&[&tlv(OID, RSA_ENCRYPTION), &tlv(NULL, &[])]),
        Some(curve) => sequence(&[&tlv(OID, EC_PUBLIC_KEY), &tlv(OID, curve)]),
    }
}

/// PKCS#1 `RSAPublicKey`.
pub fn rsa_public_key(n: &[u8], e: &[u8]) -> Vec<u8> {
    sequence(&[&unsigned(n), &unsigned(e)])
}

/// A SubjectPublicKeyInfo: RSA (`curve` None, `key` a PKCS#1 RSAPublicKey) or EC (`key` the
/// uncompressed point).
pub fn subject_public_key_info(curve: Option<&[u8]>, key: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(key);
    sequence(&[&algorithm(curve), &tlv(BIT_STRING, &bits)])
}

/// A PKCS#8 PrivateKeyInfo around a PKCS#1 (`curve` None) or SEC1 private key.
pub fn pkcs8(curve: Option<&[u8]>, key: &[u8]) -> Vec<u8> {
    sequence(&[&unsigned(&[0]), &algorithm(curve), &tlv(OCTET_STRING, key)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_integers_are_der() {
        assert_eq!(tlv(OCTET_STRING, &[1, 2]), [4, 2, 1, 2]);
        let long = tlv(OCTET_STRING, &[0; 300]);
        assert_eq!(&long[..4], &[4, 0x82, 0x01, 0x2c]);
        assert_eq!(unsigned(&[0x01, 0x00, 0x01]), [2, 3, 1, 0, 1]);
        assert_eq!(unsigned(&[0x00, 0x80]), [2, 2, 0, 0x80]);
        assert_eq!(unsigned(&[0]), [2, 1, 0]);
    }
}
