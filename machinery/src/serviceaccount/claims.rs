//! The claims of service-account tokens as upstream writes them: bound tokens (TokenRequest,
//! `kubernetes.io` private claims) and legacy Secret tokens (issuer
//! `kubernetes/serviceaccount`, flat `kubernetes.io/serviceaccount/...` claims).
//!
//! Members are declared in the order Go writes them: go-jose merges the public and private
//! claims into a map, which `encoding/json` writes sorted; the `kubernetes.io` object is a Go
//! struct, written in field order.

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize};

use super::username;

/// The issuer of legacy Secret tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

/// Clock skew tolerated on `exp`, `nbf` and `iat`: go-jose's `DefaultLeeway`.
pub const LEEWAY_SECONDS: i64 = 60;

/// An object a token names: its service account or what it is bound to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

impl ObjectRef {
    pub fn new(name: &str, uid: &str) -> ObjectRef {
        ObjectRef {
            name: name.into(),
            uid: uid.into(),
        }
    }
}

/// The `kubernetes.io` private claim of a bound token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kubernetes {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default)]
    pub serviceaccount: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    /// The node of a bound pod, or the node a token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
    /// When a token whose expiry was extended (`--service-account-extend-token-expiration`)
    /// would have expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

/// A bound token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(default, deserialize_with = "audiences")]
    pub aud: Vec<String>,
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(rename = "kubernetes.io", default)]
    pub kubernetes: Kubernetes,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub sub: String,
}

/// What a bound token is for, besides its service account.
#[derive(Debug, Clone, Default)]
pub struct Binding {
    pub pod: Option<ObjectRef>,
    pub secret: Option<ObjectRef>,
    pub node: Option<ObjectRef>,
}

/// The service account a token identifies.
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

impl Claims {
    /// A bound token's claims, as upstream's `serviceaccount.Claims`: valid from `now` for
    /// `expiration_seconds`, with a fresh JTI; `warn_after` (seconds from now) marks an
    /// extended expiry.
    pub fn new(
        issuer: &str,
        account: Account<'_>,
        binding: Binding,
        audiences: &[String],
        now: i64,
        expiration_seconds: i64,
        warn_after: Option<i64>,
    ) -> Claims {
        Claims {
            aud: audiences.to_vec(),
            exp: Some(now + expiration_seconds),
            iat: Some(now),
            iss: issuer.into(),
            jti: Some(uuid::Uuid::new_v4().to_string()),
            kubernetes: Kubernetes {
                namespace: account.namespace.into(),
                serviceaccount: ObjectRef::new(account.name, account.uid),
                pod: binding.pod,
                secret: binding.secret,
                node: binding.node,
                warnafter: warn_after.map(|seconds| now + seconds),
            },
            nbf: Some(now),
            sub: username(account.namespace, account.name),
        }
    }

    /// Upstream's time checks at `now`, with go-jose's leeway and messages.
    pub fn check_time(&self, now: i64) -> Result<(), &'static str> {
        if self.nbf.is_some_and(|nbf| now + LEEWAY_SECONDS < nbf) {
            return Err("service account token is not valid yet");
        }
        if self.exp.is_some_and(|exp| now - LEEWAY_SECONDS > exp) {
            return Err("service account token has expired");
        }
        if self.iat.is_some_and(|iat| now + LEEWAY_SECONDS < iat) {
            return Err("service account token is issued in the future");
        }
        Ok(())
    }
}

/// A legacy Secret token's claims: no audience, no expiry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyClaims {
    #[serde(default)]
    pub iss: String,
    #[serde(rename = "kubernetes.io/serviceaccount/namespace", default)]
    pub namespace: String,
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name", default)]
    pub secret_name: String,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name", default)]
    pub service_account_name: String,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid", default)]
    pub service_account_uid: String,
    #[serde(default)]
    pub sub: String,
}

impl LegacyClaims {
    /// Upstream's `LegacyClaims` for the token of `secret_name`.
    pub fn new(account: Account<'_>, secret_name: &str) -> LegacyClaims {
        LegacyClaims {
            iss: LEGACY_ISSUER.into(),
            namespace: account.namespace.into(),
            secret_name: secret_name.into(),
            service_account_name: account.name.into(),
            service_account_uid: account.uid.into(),
            sub: username(account.namespace, account.name),
        }
    }

    /// Upstream's checks that the claims it needs are there and agree with the subject.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.sub.is_empty() {
            return Err("sub claim is missing");
        }
        if self.namespace.is_empty() {
            return Err("namespace claim is missing");
        }
        if self.secret_name.is_empty() {
            return Err("secretName claim is missing");
        }
        if self.service_account_name.is_empty() {
            return Err("serviceAccountName claim is missing");
        }
        if self.service_account_uid.is_empty() {
            return Err("serviceAccountUID claim is missing");
        }
        match super::split_username(&self.sub) {
            Some((namespace, name))
                if namespace == self.namespace && name == self.service_account_name =>
            {
                Ok(())
            }
            _ => Err("sub claim is invalid"),
        }
    }
}

/// `aud` as a string or a list, as RFC 7519 allows.
fn audiences<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(one)) => vec![one],
        Some(OneOrMany::Many(many)) => many,
    })
}

/// The issuer a compact JWT claims, read before its signature is checked: it only picks the
/// authenticator that verifies the token, as upstream's `hasCorrectIssuer` does. `None` for
/// anything that is not a three-part JWT with a JSON payload.
pub fn unverified_issuer(token: &str) -> Option<String> {
    if token.trim_start().starts_with('{') {
        return None;
    }
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    #[derive(Deserialize)]
    struct Issuer {
        iss: String,
    }
    serde_json::from_slice::<Issuer>(&payload)
        .ok()
        .map(|i| i.iss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACCOUNT: Account<'static> = Account {
        namespace: "default",
        name: "builder",
        uid: "sa-uid",
    };

    #[test]
    fn bound_claims_are_written_like_upstream() {
        let binding = Binding {
            pod: Some(ObjectRef::new("web", "pod-uid")),
            node: Some(ObjectRef::new("node-1", "")),
            ..Binding::default()
        };
        let audiences = ["https://kubernetes.default.svc.cluster.local".to_string()];
        let claims = Claims::new(
            "https://issuer",
            ACCOUNT,
            binding,
            &audiences,
            1000,
            3600,
            None,
        );
        let text = serde_json::to_string(&claims).unwrap();
        let jti = claims.jti.clone().unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"aud":["https://kubernetes.default.svc.cluster.local"],"exp":4600,"iat":1000,"iss":"https://issuer","jti":"{jti}","kubernetes.io":{{"namespace":"default","serviceaccount":{{"name":"builder","uid":"sa-uid"}},"pod":{{"name":"web","uid":"pod-uid"}},"node":{{"name":"node-1"}}}},"nbf":1000,"sub":"system:serviceaccount:default:builder"}}"#
            )
        );
        let extended = Claims::new(
            "i",
            ACCOUNT,
            Binding::default(),
            &[],
            1000,
            31_536_000,
            Some(3607),
        );
        assert_eq!(extended.kubernetes.warnafter, Some(4607));
    }

    #[test]
    fn time_is_checked_with_leeway() {
        let claims = Claims::new("i", ACCOUNT, Binding::default(), &[], 1000, 600, None);
        assert!(claims.check_time(1000).is_ok());
        assert!(claims.check_time(1600 + 60).is_ok());
        assert_eq!(
            claims.check_time(1661),
            Err("service account token has expired")
        );
        assert_eq!(
            claims.check_time(939),
            Err("service account token is not valid yet")
        );
        let parsed: Claims = serde_json::from_value(json!({"aud": "one", "iss": "x"})).unwrap();
        assert_eq!(parsed.aud, ["one"]);
        assert!(
            parsed.check_time(0).is_ok(),
            "absent times are not checked, as go-jose"
        );
    }

    #[test]
    fn legacy_claims_are_flat_and_checked() {
        let claims = LegacyClaims::new(ACCOUNT, "builder-token");
        assert_eq!(
            serde_json::to_value(&claims).unwrap(),
            json!({
                "iss": "kubernetes/serviceaccount",
                "kubernetes.io/serviceaccount/namespace": "default",
                "kubernetes.io/serviceaccount/secret.name": "builder-token",
                "kubernetes.io/serviceaccount/service-account.name": "builder",
                "kubernetes.io/serviceaccount/service-account.uid": "sa-uid",
                "sub": "system:serviceaccount:default:builder",
            })
        );
        assert!(claims.check().is_ok());
        let mut forged = claims.clone();
        forged.sub = "system:serviceaccount:kube-system:builder".into();
        assert_eq!(forged.check(), Err("sub claim is invalid"));
        forged.secret_name.clear();
        assert_eq!(forged.check(), Err("secretName claim is missing"));
    }

    #[test]
    fn the_issuer_is_peeked_from_compact_jwts_only() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"iss":"me"}"#);
        assert_eq!(
            unverified_issuer(&format!("h.{payload}.s")).as_deref(),
            Some("me")
        );
        assert_eq!(unverified_issuer(&format!("h.{payload}.s.x")), None);
        assert_eq!(unverified_issuer("static-token"), None);
    }
}
