//! Tests for `jwt.rs` and `jwt/keys.rs`, through `JwtVerifier::build` and `verify_at`.
//!
//! Keys are test-only fixtures in `tests/fixtures/jwt/`, made with openssl 3:
//! `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` (rsa, rsa2),
//! `-algorithm EC -pkeyopt ec_paramgen_curve:P-256`, `-algorithm ED25519`; public halves with
//! `openssl pkey -pubout` (PEM and `-outform DER`), `rsa_cert.pem` with `openssl req -x509`,
//! `rsa_public.jwk.json` from the modulus. JWKS and config tests are in `tests/jwks.rs`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::EncodingKey;
use serde_json::{json, Value};

use super::*;
use crate::caller::AuthMethod;

mod cache;
mod jwks;

const AUD: &str = "https://relay.example.com/mcp";
const SECRET: &str = "3224b1492b5f648b28871f1ac125682e167142d11edcd1cd12be3fc70ba3af62";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn env(name: &str) -> Option<String> {
    (name == "JWT_SECRET").then(|| SECRET.to_owned())
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(iss: &str) -> Value {
    json!({"iss": iss, "aud": AUD, "sub": "alice", "exp": now_s() + 600,
           "roles": ["reader"], "jti": "jti-1"})
}

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

/// Signs any header JSON (so tests can write `alg: none`, `jku`, odd `kid`s).
fn sign(header: Value, claims: &Value, key: &EncodingKey) -> String {
    let msg = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let alg: Algorithm = header["alg"].as_str().unwrap().parse().unwrap();
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, alg).unwrap();
    format!("{msg}.{sig}")
}

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_pem(&read("rsa_private.pem")).unwrap()
}
fn rsa2() -> EncodingKey {
    EncodingKey::from_rsa_pem(&read("rsa2_private.pem")).unwrap()
}
fn hmac() -> EncodingKey {
    EncodingKey::from_secret(SECRET.as_bytes())
}

fn config(v: Value) -> JwtConfig {
    serde_json::from_value(v).unwrap()
}

fn verifier(configs: Vec<Value>) -> JwtVerifier {
    JwtVerifier::build(configs.into_iter().map(config).collect(), AUD, &env).unwrap()
}

fn rs_issuer() -> Value {
    json!({"issuer": "https://rs", "algorithms": ["RS256"],
           "public_keys": [fixture("rsa_public.pem")]})
}
fn hs_issuer() -> Value {
    json!({"issuer": "https://hs", "algorithms": ["HS256", "HS384", "HS512"],
           "secret": "env:JWT_SECRET"})
}

async fn check(v: &JwtVerifier, token: &str) -> Result<Principal, AuthFailure> {
    v.verify_at(token, SystemTime::now()).await
}

/// A one-route HTTP server: answers every request with `response` and counts requests.
#[tokio::test]
async fn rs256_valid_token_is_accepted_with_all_principal_fields() {
    let v = verifier(vec![rs_issuer()]);
    let mut c = claims("https://rs");
    c["scope"] = json!("tools:call  tools:list");
    let exp = c["exp"].as_u64().unwrap();
    let p = check(
        &v,
        &sign(json!({"alg": "RS256", "typ": "at+jwt"}), &c, &rsa()),
    )
    .await
    .unwrap();
    assert_eq!(p.name, "alice");
    assert_eq!(p.method, AuthMethod::Jwt);
    assert_eq!(p.roles, vec!["reader"]);
    assert_eq!(p.scopes, vec!["tools:call", "tools:list"]);
    assert_eq!(p.key_id.as_deref(), Some("jti-1"));
    assert_eq!(p.expires_at, Some(UNIX_EPOCH + Duration::from_secs(exp)));
}

#[tokio::test]
async fn asymmetric_algorithms_valid_tokens_are_accepted() {
    let cases = [
        ("RS256", "rsa_cert.pem", rsa()),
        (
            "ES256",
            "ec_public.pem",
            EncodingKey::from_ec_pem(&read("ec_private.pem")).unwrap(),
        ),
        (
            "EdDSA",
            "ed25519_public.pem",
            EncodingKey::from_ed_pem(&read("ed25519_private.pem")).unwrap(),
        ),
    ];
    for (alg, public, key) in cases {
        let v = verifier(vec![json!({"issuer": "https://a", "algorithms": [alg],
                                     "public_keys": [fixture(public)]})]);
        let t = sign(
            json!({"alg": alg, "typ": "JWT", "kid": "k9"}),
            &claims("https://a"),
            &key,
        );
        let p = check(&v, &t)
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e:?}"));
        assert_eq!(p.key_id.as_deref(), Some("k9"), "{alg}");
    }
}

#[tokio::test]
async fn hmac_algorithms_valid_tokens_are_accepted() {
    let v = verifier(vec![hs_issuer()]);
    for alg in ["HS256", "HS384", "HS512"] {
        let t = sign(json!({"alg": alg}), &claims("https://hs"), &hmac());
        assert!(check(&v, &t).await.is_ok(), "{alg}");
    }
    let wrong = EncodingKey::from_secret(&[7u8; 64]);
    let t = sign(json!({"alg": "HS256"}), &claims("https://hs"), &wrong);
    assert_eq!(
        check(&v, &t).await,
        Err(AuthFailure::Invalid("bad_signature"))
    );
}

#[tokio::test]
async fn a2_alg_none_in_any_spelling_is_refused() {
    let v = verifier(vec![rs_issuer(), hs_issuer()]);
    for iss in ["https://rs", "https://hs"] {
        for alg in ["none", "None", "NONE", ""] {
            let body = b64(claims(iss).to_string().as_bytes());
            let head = b64(json!({"alg": alg}).to_string().as_bytes());
            for t in [format!("{head}.{body}."), format!("{head}.{body}.c2ln")] {
                assert_eq!(
                    check(&v, &t).await,
                    Err(AuthFailure::Invalid("alg_not_allowed"))
                );
            }
        }
    }
}

#[tokio::test]
async fn a2_hs256_signed_with_our_public_key_is_refused() {
    let v = verifier(vec![
        rs_issuer(),
        json!({"issuer": "https://ec", "algorithms": ["ES256"], "public_keys": [fixture("ec_public.pem")]}),
    ]);
    let secrets = [
        ("https://rs", read("rsa_public.pem")),
        ("https://rs", read("rsa_public.der")),
        ("https://rs", read("rsa_public.jwk.json")),
        ("https://rs", read("rsa_cert.pem")),
        ("https://ec", read("ec_public.pem")),
    ];
    for (iss, secret) in secrets {
        for alg in ["HS256", "HS384", "HS512"] {
            let t = sign(
                json!({"alg": alg}),
                &claims(iss),
                &EncodingKey::from_secret(&secret),
            );
            assert_eq!(
                check(&v, &t).await,
                Err(AuthFailure::Invalid("alg_not_allowed"))
            );
        }
    }
}

#[tokio::test]
async fn alg_outside_the_pinned_list_is_refused() {
    let v = verifier(vec![rs_issuer()]);
    for alg in ["RS384", "PS256"] {
        let t = sign(json!({"alg": alg}), &claims("https://rs"), &rsa());
        assert_eq!(
            check(&v, &t).await,
            Err(AuthFailure::Invalid("alg_not_allowed"))
        );
    }
    let t = sign(json!({"alg": "RS256"}), &claims("https://rs"), &rsa2());
    assert_eq!(
        check(&v, &t).await,
        Err(AuthFailure::Invalid("bad_signature"))
    );
}

#[tokio::test]
async fn a3_audience_must_contain_ours() {
    let v = verifier(vec![rs_issuer()]);
    let cases: [(Option<Value>, Result<(), AuthFailure>); 6] = [
        (None, Err(AuthFailure::Invalid("missing_claim"))),
        (
            Some(json!("https://other.example.com/mcp")),
            Err(AuthFailure::Invalid("bad_audience")),
        ),
        (
            Some(json!("https://relay.example.com/mcp/")),
            Err(AuthFailure::Invalid("bad_audience")),
        ),
        (
            Some(json!(["https://other", 7])),
            Err(AuthFailure::Invalid("bad_audience")),
        ),
        (
            Some(json!({"aud": AUD})),
            Err(AuthFailure::Invalid("bad_audience")),
        ),
        (Some(json!(["https://other", AUD])), Ok(())),
    ];
    for (aud, want) in cases {
        let mut c = claims("https://rs");
        match aud.clone() {
            Some(a) => c["aud"] = a,
            None => {
                c.as_object_mut().unwrap().remove("aud");
            }
        }
        let got = check(&v, &sign(json!({"alg": "RS256"}), &c, &rsa()))
            .await
            .map(|_| ());
        assert_eq!(got, want, "aud {aud:?}");
    }
}

#[tokio::test]
async fn a3_empty_audience_config_defaults_to_the_relay_resource() {
    let mut issuer = rs_issuer();
    issuer["audience"] = json!(["https://custom/mcp"]);
    let v = verifier(vec![issuer]);
    let t = sign(json!({"alg": "RS256"}), &claims("https://rs"), &rsa());
    assert_eq!(
        check(&v, &t).await,
        Err(AuthFailure::Invalid("bad_audience"))
    );
    let t = sign(json!({"alg": "RS256"}), &claims("https://rs"), &rsa());
    assert!(check(&verifier(vec![rs_issuer()]), &t).await.is_ok());
}

#[tokio::test]
async fn time_claims_are_checked_with_leeway() {
    let v = verifier(vec![rs_issuer()]);
    let now = now_s();
    let cases: [(&str, Value, Result<(), AuthFailure>); 6] = [
        ("exp", json!(now - 31), Err(AuthFailure::Expired)),
        ("exp", json!(now - 10), Ok(())),
        (
            "exp",
            json!("soon"),
            Err(AuthFailure::Invalid("malformed_token")),
        ),
        (
            "nbf",
            json!(now + 120),
            Err(AuthFailure::Invalid("not_yet_valid")),
        ),
        ("nbf", json!(now + 10), Ok(())),
        (
            "exp",
            Value::Null,
            Err(AuthFailure::Invalid("malformed_token")),
        ),
    ];
    for (name, value, want) in cases {
        let mut c = claims("https://rs");
        c[name] = value.clone();
        let got = check(&v, &sign(json!({"alg": "RS256"}), &c, &rsa()))
            .await
            .map(|_| ());
        assert_eq!(got, want, "{name}={value}");
    }
    let mut c = claims("https://rs");
    c.as_object_mut().unwrap().remove("exp");
    let t = sign(json!({"alg": "RS256"}), &c, &rsa());
    assert_eq!(
        check(&v, &t).await,
        Err(AuthFailure::Invalid("missing_claim"))
    );

    let mut no_nbf = rs_issuer();
    no_nbf["check_nbf"] = json!(false);
    let mut c = claims("https://rs");
    c["nbf"] = json!(now + 3600);
    let t = sign(json!({"alg": "RS256"}), &c, &rsa());
    assert!(check(&verifier(vec![no_nbf]), &t).await.is_ok());
}

#[tokio::test]
async fn issuer_selects_config_and_must_match_exactly() {
    let v = verifier(vec![rs_issuer()]);
    let cases = [
        (json!("https://rs/"), "unknown_issuer"),
        (json!("https://RS"), "unknown_issuer"),
        (json!(["https://rs"]), "bad_issuer"),
        (Value::Null, "bad_issuer"),
    ];
    for (iss, word) in cases {
        let mut c = claims("https://rs");
        c["iss"] = iss;
        let t = sign(json!({"alg": "RS256"}), &c, &rsa());
        assert_eq!(check(&v, &t).await, Err(AuthFailure::Invalid(word)));
    }
    let mut c = claims("https://rs");
    c.as_object_mut().unwrap().remove("iss");
    let t = sign(json!({"alg": "RS256"}), &c, &rsa());
    assert_eq!(
        check(&v, &t).await,
        Err(AuthFailure::Invalid("missing_claim"))
    );
}

#[tokio::test]
async fn roles_claim_path_and_types() {
    let mut issuer = rs_issuer();
    issuer["roles_claim"] = json!("realm_access.roles");
    let v = verifier(vec![issuer]);
    let cases: [(Value, Result<Vec<&str>, AuthFailure>); 7] = [
        (
            json!({"realm_access": {"roles": ["a", "b"]}}),
            Ok(vec!["a", "b"]),
        ),
        (json!({"realm_access": {"roles": "a"}}), Ok(vec!["a"])),
        (
            json!({"realm_access.roles": ["dotted"]}),
            Ok(vec!["dotted"]),
        ),
        (json!({"realm_access": {}}), Ok(vec![])),
        (
            json!({"realm_access": {"roles": [1]}}),
            Err(AuthFailure::Invalid("bad_roles_claim")),
        ),
        (
            json!({"realm_access": {"roles": {"a": true}}}),
            Err(AuthFailure::Invalid("bad_roles_claim")),
        ),
        (
            json!({"realm_access": "admin"}),
            Err(AuthFailure::Invalid("bad_roles_claim")),
        ),
    ];
    for (extra, want) in cases {
        let mut c = claims("https://rs");
        c.as_object_mut().unwrap().remove("roles");
        for (k, val) in extra.as_object().unwrap() {
            c[k] = val.clone();
        }
        let got = check(&v, &sign(json!({"alg": "RS256"}), &c, &rsa()))
            .await
            .map(|p| p.roles);
        let want = want.map(|r| r.into_iter().map(str::to_owned).collect::<Vec<_>>());
        assert_eq!(got, want, "{extra}");
    }
}

#[tokio::test]
async fn principal_and_scope_claims_are_typed() {
    let v = verifier(vec![rs_issuer()]);
    let cases = [
        (
            json!({"sub": 5}),
            Err(AuthFailure::Invalid("missing_claim")),
        ),
        (
            json!({"sub": ""}),
            Err(AuthFailure::Invalid("missing_claim")),
        ),
        (
            json!({"scope": ["a"]}),
            Err(AuthFailure::Invalid("bad_scope_claim")),
        ),
        (json!({"scp": ["a", "b"]}), Ok(vec!["a", "b"])),
    ];
    for (extra, want) in cases {
        let mut c = claims("https://rs");
        for (k, val) in extra.as_object().unwrap() {
            c[k] = val.clone();
        }
        let got = check(&v, &sign(json!({"alg": "RS256"}), &c, &rsa()))
            .await
            .map(|p| p.scopes);
        let want = want.map(|r| r.into_iter().map(str::to_owned).collect::<Vec<_>>());
        assert_eq!(got, want, "{extra}");
    }
}

#[tokio::test]
async fn typ_header_accepts_access_tokens_only() {
    let v = verifier(vec![rs_issuer()]);
    for (typ, ok) in [
        (json!("at+jwt"), true),
        (json!("JWT"), true),
        (json!("id+jwt"), false),
        (json!("dpop+jwt"), false),
    ] {
        let t = sign(
            json!({"alg": "RS256", "typ": typ}),
            &claims("https://rs"),
            &rsa(),
        );
        assert_eq!(check(&v, &t).await.is_ok(), ok, "{typ}");
    }
    let t = sign(
        json!({"alg": "RS256", "crit": ["exp"], "exp": 1}),
        &claims("https://rs"),
        &rsa(),
    );
    assert_eq!(
        check(&v, &t).await,
        Err(AuthFailure::Invalid("unsupported_crit"))
    );
}

#[tokio::test]
async fn malformed_and_oversized_tokens_are_refused_before_decoding() {
    let v = verifier(vec![rs_issuer()]);
    for t in [
        "",
        "a.b",
        "a.b.c.d",
        "!!.!!.!!",
        "e30.e30.",
        "bm90anNvbg.e30.sig",
    ] {
        assert_eq!(
            check(&v, t).await,
            Err(AuthFailure::Invalid("malformed_token")),
            "{t}"
        );
    }
    let mut c = claims("https://rs");
    c["pad"] = json!("x".repeat(MAX_TOKEN_BYTES));
    let t = sign(json!({"alg": "RS256"}), &c, &rsa());
    assert!(t.len() > MAX_TOKEN_BYTES);
    assert_eq!(
        check(&v, &t).await,
        Err(AuthFailure::Invalid("token_too_large"))
    );
    let huge = "a".repeat(1 << 20);
    assert_eq!(
        check(&v, &huge).await,
        Err(AuthFailure::Invalid("token_too_large"))
    );
}
