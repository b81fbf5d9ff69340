//! The ID token's checks and the claim mapping, with a P-256 key made here.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

use super::*;

fn cfg() -> UpstreamConfig {
    UpstreamConfig {
        issuer: "https://idp.example.com".into(),
        client_id: "relay-client".into(),
        client_secret: None,
        scopes: vec!["openid".into()],
        name: "Single sign-on".into(),
        principal_claim: "email".into(),
        groups_claim: "groups".into(),
        roles: BTreeMap::from([
            (
                "eng".to_owned(),
                vec!["dev".to_owned(), "reader".to_owned()],
            ),
            ("ops".to_owned(), vec!["admin".to_owned()]),
        ]),
        default_roles: vec!["reader".into()],
    }
}

fn claims(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// A P-256 key: its signing form and its JWK.
fn key(kid: &str) -> (EncodingKey, Jwk) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = pair.public_key_raw();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
    });
    let enc = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    (enc, serde_json::from_value(jwk).unwrap())
}

fn sign(enc: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, enc).unwrap()
}

fn good(now: i64) -> Value {
    json!({
        "iss": "https://idp.example.com", "aud": "relay-client", "sub": "u1",
        "email": "ada@example.com", "iat": now, "exp": now + 300, "nonce": "n0nceXk3",
    })
}

#[test]
fn subject_maps_groups_through_roles_plus_defaults() {
    let s = subject(
        &claims(json!({"email": "ada@example.com", "groups": ["eng", "ops", "other"]})),
        &cfg(),
    )
    .unwrap();
    assert_eq!(s.name, "ada@example.com");
    assert_eq!(s.roles, ["reader", "dev", "admin"]);
    assert_eq!(s.method, "upstream");
}

#[test]
fn subject_one_group_as_string_maps() {
    let s = subject(&claims(json!({"email": "a@b.c", "groups": "ops"})), &cfg()).unwrap();
    assert_eq!(s.roles, ["reader", "admin"]);
}

#[test]
fn subject_without_groups_gets_default_roles() {
    let s = subject(&claims(json!({"email": "a@b.c"})), &cfg()).unwrap();
    assert_eq!(s.roles, ["reader"]);
}

#[test]
fn subject_groups_of_wrong_type_fail_closed() {
    for g in [json!(["eng", 3]), json!(7), json!({"eng": true})] {
        let r = subject(&claims(json!({"email": "a@b.c", "groups": g})), &cfg());
        assert_eq!(r, Err("idp_bad_groups"));
    }
}

#[test]
fn subject_principal_missing_or_invalid_is_refused() {
    for c in [
        json!({"sub": "x"}),
        json!({"email": 42}),
        json!({"email": ""}),
        json!({"email": "a b"}),
        json!({"email": "a\nb"}),
        json!({"email": "x".repeat(129)}),
    ] {
        assert_eq!(subject(&claims(c), &cfg()), Err("idp_bad_principal"));
    }
}

#[test]
fn verify_good_token_passes() {
    let now = crate::authz::store::now();
    let (enc, jwk) = key("k1");
    let t = sign(&enc, "k1", &good(now));
    assert_eq!(kid(&t).unwrap().as_deref(), Some("k1"));
    let c = verify(&t, &jwk, &cfg(), "n0nceXk3", now).unwrap();
    assert_eq!(c["email"], "ada@example.com");
}

#[test]
fn verify_each_wrong_claim_has_its_reason() {
    let now = crate::authz::store::now();
    let (enc, jwk) = key("k1");
    let cases: [(&str, Value, &str); 8] = [
        (
            "iss",
            json!("https://other.example.com"),
            "idp_wrong_issuer",
        ),
        ("aud", json!("someone-else"), "idp_wrong_audience"),
        ("aud", json!(["someone-else", "relay-client"]), ""),
        ("azp", json!("someone-else"), "idp_wrong_audience"),
        ("exp", json!(now - 600), "idp_token_expired"),
        ("iat", json!(now - 7200), "idp_token_expired"),
        ("iat", json!(now + 3600), "idp_bad_token"),
        ("nonce", json!("another"), "idp_bad_nonce"),
    ];
    for (claim, value, reason) in cases {
        let mut c = good(now);
        c[claim] = value;
        let r = verify(&sign(&enc, "k1", &c), &jwk, &cfg(), "n0nceXk3", now);
        if reason.is_empty() {
            assert!(r.is_ok(), "{claim}");
        } else {
            assert_eq!(r.err(), Some(reason), "{claim}");
        }
    }
}

#[test]
fn verify_missing_nonce_or_aud_is_refused() {
    let now = crate::authz::store::now();
    let (enc, jwk) = key("k1");
    for (claim, reason) in [("nonce", "idp_bad_nonce"), ("aud", "idp_wrong_audience")] {
        let mut c = good(now);
        c.as_object_mut().unwrap().remove(claim);
        let r = verify(&sign(&enc, "k1", &c), &jwk, &cfg(), "n0nceXk3", now);
        assert_eq!(r.err(), Some(reason), "{claim}");
    }
}

#[test]
fn verify_other_key_or_hs256_is_bad_signature() {
    let now = crate::authz::store::now();
    let (_, jwk) = key("k1");
    let (other, _) = key("k1");
    let t = sign(&other, "k1", &good(now));
    assert_eq!(
        verify(&t, &jwk, &cfg(), "n0nceXk3", now).err(),
        Some("idp_bad_signature")
    );
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good(now),
        &EncodingKey::from_secret(b"kQ8vZ2rT5wXy"),
    )
    .unwrap();
    assert_eq!(
        verify(&hs, &jwk, &cfg(), "n0nceXk3", now).err(),
        Some("idp_bad_signature")
    );
}

#[test]
fn algorithm_only_rs256_ps256_es256() {
    let (_, jwk) = key("k1");
    assert_eq!(algorithm(&jwk), Some(Algorithm::ES256));
    let mut hs: Jwk = serde_json::from_value(json!({"kty": "oct", "k": "AAAA"})).unwrap();
    assert_eq!(algorithm(&hs), None);
    hs.common.key_algorithm = Some(KeyAlgorithm::HS256);
    assert_eq!(algorithm(&hs), None);
    let mut p384 = jwk.clone();
    p384.common.key_algorithm = Some(KeyAlgorithm::ES384);
    assert_eq!(algorithm(&p384), None);
}

#[test]
fn kid_of_oversized_or_garbage_is_refused() {
    assert_eq!(kid("not.a.jwt"), Err("idp_bad_token"));
    assert_eq!(kid(&"a".repeat(MAX_TOKEN + 1)), Err("idp_bad_token"));
}
