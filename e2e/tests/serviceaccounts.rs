//! Service-account identities end to end: `kubectl create token`, the tokens' claims and
//! signatures (checked against the issuer's published JWKS), authentication with them by
//! kubectl, the Python client and kube-rs, TokenReview, SelfSubjectReview (`kubectl auth
//! whoami`), bound tokens dying with their pod, and legacy token Secrets filled in by the
//! controller-manager.

use std::process::Command;

use base64::Engine;
use e2e::fixtures::{eventually, json};
use e2e::{on_both_backends, Cluster};
use machinery::serviceaccount::claims::{Account, Binding, Claims};
use machinery::serviceaccount::jwt;
use machinery::serviceaccount::keys::SigningKey;
use serde_json::Value;

on_both_backends!(
    tokens_identify_service_accounts,
    bound_tokens_die_with_their_pod,
    bad_tokens_are_refused,
    token_reviews_tell_good_from_bad,
    issuer_discovery_verifies_tokens,
    clients_authenticate_with_tokens,
    legacy_token_secrets_are_filled_in,
);

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The header and claims of a compact JWT, unverified.
fn decode(token: &str) -> (Value, Value) {
    let part = |i: usize| -> Value {
        let text = token.split('.').nth(i).expect("three parts");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON")
    };
    (part(0), part(1))
}

/// `kubectl create token` with `args`, the token it prints.
fn create_token(cluster: &Cluster, args: &[&str]) -> String {
    cluster
        .ok(&[&["create", "token"], args].concat())
        .trim()
        .to_string()
}

/// The `default` service account, waiting for the controller-manager to create it.
async fn default_account_uid(cluster: &Cluster) -> String {
    eventually(60, "the default service account", || {
        let out = cluster.kubectl(&["get", "sa", "default", "-o", "jsonpath={.metadata.uid}"]);
        let uid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !uid.is_empty()).then_some(uid)
    })
    .await
}

/// `kubectl auth whoami -o json` as the holder of `token`.
fn whoami(cluster: &Cluster, token: &str) -> Result<Value, String> {
    let out = cluster.kubectl_as_token(token, &["auth", "whoami", "-o", "json"]);
    match out.status.success() {
        true => Ok(json(&String::from_utf8_lossy(&out.stdout))),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// Lets the `default` account read the `default` namespace, as a learner binds it before
/// using its token (under RBAC an account may do nothing by itself).
fn let_default_account_read(cluster: &Cluster) {
    cluster.ok(&[
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
        "-n",
        "default",
    ]);
}

async fn tokens_identify_service_accounts(cluster: &mut Cluster) {
    let _controllers = cluster.start_controller_manager(&[]);
    let uid = default_account_uid(cluster).await;
    let_default_account_read(cluster);
    let token = create_token(cluster, &["default"]);
    let (header, claims) = decode(&token);
    assert_eq!(header["alg"], "ES256", "{header}");
    assert!(header["kid"].is_string(), "{header}");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], serde_json::json!([ISSUER]));
    assert_eq!(claims["sub"], "system:serviceaccount:default:default");
    assert_eq!(claims["kubernetes.io"]["namespace"], "default");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "default");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["uid"], uid);
    assert!(claims["jti"].is_string());
    let lifetime = |c: &Value| c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
    assert_eq!(lifetime(&claims), 3600, "the default hour");
    assert_eq!(claims["nbf"], claims["iat"]);

    let user = whoami(cluster, &token).expect("whoami with the token");
    let info = &user["status"]["userInfo"];
    assert_eq!(info["username"], "system:serviceaccount:default:default");
    assert_eq!(info["uid"], uid);
    assert_eq!(
        info["groups"],
        serde_json::json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    let credential = info["extra"]["authentication.kubernetes.io/credential-id"][0]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        credential,
        format!("JTI={}", claims["jti"].as_str().unwrap())
    );
    let pods = cluster.kubectl_as_token(&token, &["get", "pods"]);
    assert!(
        pods.status.success(),
        "{}",
        String::from_utf8_lossy(&pods.stderr)
    );
    // The admin's own identity, for comparison.
    let admin = json(&cluster.ok(&["auth", "whoami", "-o", "json"]));
    assert_eq!(admin["status"]["userInfo"]["username"], "kubernetes-admin");

    let short = create_token(cluster, &["default", "--duration=10m"]);
    assert_eq!(lifetime(&decode(&short).1), 600);
    let too_short = cluster.fails(&["create", "token", "default", "--duration=5m"]);
    assert!(
        too_short.contains("spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes"),
        "{too_short}"
    );
    let missing = cluster.fails(&["create", "token", "nobody"]);
    assert!(
        missing.contains(r#"serviceaccounts "nobody" not found"#),
        "{missing}"
    );
    let discovery = cluster.ok(&["api-resources", "--api-group=authentication.k8s.io"]);
    assert!(
        discovery.contains("tokenreviews") && discovery.contains("selfsubjectreviews"),
        "{discovery}"
    );
}

async fn bound_tokens_die_with_their_pod(cluster: &mut Cluster) {
    cluster.ok(&["create", "serviceaccount", "builder"]);
    cluster.ok(&[
        "run",
        "web",
        "--image=nginx",
        "--overrides",
        r#"{"spec":{"serviceAccountName":"builder"}}"#,
    ]);
    let pod_uid = cluster.ok(&["get", "pod", "web", "-o", "jsonpath={.metadata.uid}"]);
    let token = create_token(
        cluster,
        &[
            "builder",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "web",
        ],
    );
    let (_, claims) = decode(&token);
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], "web");
    assert_eq!(claims["kubernetes.io"]["pod"]["uid"], pod_uid.trim());
    let user = whoami(cluster, &token).expect("the bound token works");
    let extra = &user["status"]["userInfo"]["extra"];
    assert_eq!(extra["authentication.kubernetes.io/pod-name"][0], "web");
    assert_eq!(
        extra["authentication.kubernetes.io/pod-uid"][0],
        pod_uid.trim()
    );

    // A pod running as another account cannot be bound to.
    cluster.ok(&["create", "serviceaccount", "other"]);
    let other = cluster.fails(&[
        "create",
        "token",
        "other",
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        "web",
    ]);
    assert!(other.contains("cannot bind token for serviceaccount \"other\" to pod running with different serviceaccount name."), "{other}");
    let missing = cluster.fails(&[
        "create",
        "token",
        "builder",
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        "nope",
    ]);
    assert!(missing.contains(r#"pods "nope" not found"#), "{missing}");

    cluster.ok(&["delete", "pod", "web", "--grace-period=0", "--force"]);
    let refused = whoami(cluster, &token).expect_err("the pod is gone");
    assert!(refused.contains("Unauthorized"), "{refused}");
}

async fn bad_tokens_are_refused(cluster: &mut Cluster) {
    cluster.ok(&["create", "serviceaccount", "builder"]);
    let uid = cluster.ok(&["get", "sa", "builder", "-o", "jsonpath={.metadata.uid}"]);
    let account = Account {
        namespace: "default",
        name: "builder",
        uid: uid.trim(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let audiences = [ISSUER.to_string()];
    let claims = |issued| {
        Claims::new(
            ISSUER,
            account,
            Binding::default(),
            &audiences,
            issued,
            600,
            None,
        )
    };
    let key = SigningKey::from_file(&cluster.dir().join("pki/sa.key")).expect("the cluster's key");
    let good = jwt::sign(&key, &claims(now)).unwrap();
    assert!(
        whoami(cluster, &good).is_ok(),
        "a token signed with the cluster's key works"
    );

    let expired = jwt::sign(&key, &claims(now - 7200)).unwrap();
    let (private, _) = SigningKey::generate_pem().unwrap();
    let stranger = SigningKey::from_pem(private.as_bytes()).unwrap();
    let forged = jwt::sign(&stranger, &claims(now)).unwrap();
    let elsewhere = create_token(cluster, &["builder", "--audience", "vault"]);
    assert_eq!(decode(&elsewhere).1["aud"], serde_json::json!(["vault"]));
    for (what, token) in [
        ("expired", expired),
        ("forged", forged),
        ("for vault", elsewhere),
    ] {
        let out = cluster.kubectl_as_token(&token, &["get", "pods"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("Unauthorized"),
            "{what} token: {stderr}"
        );
    }
    cluster.ok(&["delete", "serviceaccount", "builder"]);
    assert!(whoami(cluster, &good).is_err(), "the account is gone");
}

/// Posts a TokenReview of `token` (for `audiences`, if any) and returns its status.
fn review(cluster: &Cluster, token: &str, audiences: &[&str]) -> Value {
    let mut spec = serde_json::json!({"token": token});
    if !audiences.is_empty() {
        spec["audiences"] = serde_json::json!(audiences);
    }
    let review = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": spec,
    });
    // Without CRDs, kubectl's client-side validation of a kind that has no PATCH (so no
    // server-side field validation to defer to) fails on listing CRDs: skip it.
    let out = cluster.ok_stdin(
        &["create", "--validate=false", "-f", "-", "-o", "json"],
        &review.to_string(),
    );
    json(&out)["status"].clone()
}

async fn token_reviews_tell_good_from_bad(cluster: &mut Cluster) {
    cluster.ok(&["create", "serviceaccount", "reviewer"]);
    let token = create_token(cluster, &["reviewer"]);
    let good = review(cluster, &token, &[]);
    assert_eq!(good["authenticated"], true, "{good}");
    assert_eq!(
        good["user"]["username"],
        "system:serviceaccount:default:reviewer"
    );
    assert_eq!(good["audiences"], serde_json::json!([ISSUER]));

    let bad = review(cluster, "not-a-token", &[]);
    assert_eq!(bad["authenticated"], Value::Null, "{bad}");
    assert_eq!(bad["error"], "invalid bearer token");
    let wrong_audience = review(cluster, &token, &["vault"]);
    assert_eq!(
        wrong_audience["error"],
        format!(r#"token audiences ["{ISSUER}"] is invalid for the target audiences ["vault"]"#)
    );
    let vault = create_token(cluster, &["reviewer", "--audience", "vault"]);
    let for_vault = review(cluster, &vault, &["vault"]);
    assert_eq!(for_vault["authenticated"], true, "{for_vault}");
    assert_eq!(for_vault["audiences"], serde_json::json!(["vault"]));
    let get = cluster.fails(&["get", "tokenreviews"]);
    assert!(
        get.contains("MethodNotAllowed") || get.contains("not allow"),
        "{get}"
    );
}

async fn issuer_discovery_verifies_tokens(cluster: &mut Cluster) {
    cluster.ok(&["create", "serviceaccount", "signer"]);
    let token = create_token(cluster, &["signer"]);
    let config = json(&cluster.ok(&["get", "--raw", "/.well-known/openid-configuration"]));
    assert_eq!(config["issuer"], ISSUER);
    assert_eq!(
        config["jwks_uri"],
        format!("https://127.0.0.1:{}/openid/v1/jwks", cluster.port)
    );
    assert_eq!(
        config["response_types_supported"],
        serde_json::json!(["id_token"])
    );
    assert_eq!(
        config["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        config["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    let jwks = json(&cluster.ok(&["get", "--raw", "/openid/v1/jwks"]));
    let (header, _) = decode(&token);
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("no key {} in {jwks}", header["kid"]));
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["use"].as_str()
        ),
        (Some("EC"), Some("P-256"), Some("sig"))
    );
    // Verify the signature with nothing but the published key.
    let b64 = |s: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.as_str().unwrap())
            .unwrap()
    };
    let mut point = vec![4u8];
    point.extend(b64(&key["x"]));
    point.extend(b64(&key["y"]));
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let signature = b64(&Value::from(signature));
    let public =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &point);
    public
        .verify(signed.as_bytes(), &signature)
        .expect("the JWKS key verifies the token");
    let tampered = signed.replacen('.', ".e", 1);
    assert!(public.verify(tampered.as_bytes(), &signature).is_err());
}

async fn clients_authenticate_with_tokens(cluster: &mut Cluster) {
    let _controllers = cluster.start_controller_manager(&[]);
    default_account_uid(cluster).await;
    let_default_account_read(cluster);
    let token = create_token(cluster, &["default"]);
    let server = format!("https://127.0.0.1:{}", cluster.port);

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/sa_token.py");
    let output = Command::new("python3")
        .arg(script)
        .env("SERVER", &server)
        .env("TOKEN", &token)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "python client failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let client = cluster.client_as_token(&token).await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), "default");
    pods.list(&Default::default())
        .await
        .expect("list pods with the token");
    let review: k8s_openapi::api::authentication::v1::SelfSubjectReview = client
        .request(
            http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
                .header("content-type", "application/json")
                .body(
                    br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#
                        .to_vec(),
                )
                .unwrap(),
        )
        .await
        .expect("a SelfSubjectReview");
    let user = review.status.and_then(|s| s.user_info).expect("user info");
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:default:default")
    );
}

async fn legacy_token_secrets_are_filled_in(cluster: &mut Cluster) {
    let _controllers = cluster.start_controller_manager(&[]);
    let uid = default_account_uid(cluster).await;
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "default-token",
            "annotations": {"kubernetes.io/service-account.name": "default"},
        },
        "type": "kubernetes.io/service-account-token",
    });
    cluster.ok_stdin(&["create", "-f", "-"], &secret.to_string());
    let filled = eventually(60, "the token Secret to be filled in", || {
        let secret = json(&cluster.ok(&["get", "secret", "default-token", "-o", "json"]));
        secret["data"]["token"].is_string().then_some(secret)
    })
    .await;
    let field = |name: &str| {
        let encoded = filled["data"][name].as_str().unwrap_or_default();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(field("namespace"), "default");
    assert!(field("ca.crt").starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        filled["metadata"]["annotations"]["kubernetes.io/service-account.uid"],
        uid
    );
    let token = field("token");
    let (_, claims) = decode(&token);
    assert_eq!(claims["iss"], "kubernetes/serviceaccount");
    assert_eq!(
        claims["kubernetes.io/serviceaccount/secret.name"],
        "default-token"
    );
    assert!(claims.get("exp").is_none(), "legacy tokens do not expire");
    let user = whoami(cluster, &token).expect("the legacy token works");
    assert_eq!(
        user["status"]["userInfo"]["username"],
        "system:serviceaccount:default:default"
    );

    cluster.ok(&["delete", "secret", "default-token"]);
    assert!(whoami(cluster, &token).is_err(), "the Secret is gone");
}
