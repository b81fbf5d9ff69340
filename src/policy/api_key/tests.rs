//! Tests for the API key table: hashing, constant-time lookup, expiry and config errors.

use std::time::Duration;

use super::*;

fn entry(id: &str, principal: &str, key: &str, expires: Option<&str>) -> ApiKeyConfig {
    ApiKeyConfig {
        id: id.to_owned(),
        principal: principal.to_owned(),
        roles: vec!["reader".to_owned()],
        sha256: ApiKeys::hash(key),
        expires: expires.map(str::to_owned),
    }
}

#[test]
fn generate_key_has_prefix_and_32_random_bytes() {
    let a = ApiKeys::generate();
    let b = ApiKeys::generate();
    assert_ne!(a, b);
    let body = a.strip_prefix("mcpr_").unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), 32);
    assert!(!a.contains('='));
}

#[test]
fn hash_known_vector_is_lowercase_sha256_hex() {
    assert_eq!(
        ApiKeys::hash("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn verify_known_key_returns_principal_with_key_id() {
    let keys = ApiKeys::new(vec![entry("k1", "alice", "mcpr_one", None)]).unwrap();
    let p = keys.verify("mcpr_one", SystemTime::now()).unwrap();
    assert_eq!(p.name, "alice");
    assert_eq!(p.method, AuthMethod::ApiKey);
    assert_eq!(p.roles, vec!["reader".to_owned()]);
    assert_eq!(p.key_id.as_deref(), Some("k1"));
    assert_eq!(p.expires_at, None);
}

#[test]
fn verify_unknown_key_is_invalid() {
    let keys = ApiKeys::new(vec![entry("k1", "alice", "mcpr_one", None)]).unwrap();
    assert_eq!(
        keys.verify("mcpr_two", SystemTime::now()),
        Err(AuthFailure::Invalid("unknown_api_key"))
    );
    assert_eq!(
        ApiKeys::default().verify("", SystemTime::now()),
        Err(AuthFailure::Invalid("unknown_api_key"))
    );
}

#[test]
fn verify_rotation_two_keys_one_principal_both_accepted() {
    let keys = ApiKeys::new(vec![
        entry("old", "alice", "mcpr_old", None),
        entry("new", "alice", "mcpr_new", None),
    ])
    .unwrap();
    let now = SystemTime::now();
    assert_eq!(
        keys.verify("mcpr_old", now).unwrap().key_id.as_deref(),
        Some("old")
    );
    assert_eq!(
        keys.verify("mcpr_new", now).unwrap().key_id.as_deref(),
        Some("new")
    );
}

#[test]
fn verify_expired_key_is_expired() {
    let keys = ApiKeys::new(vec![entry(
        "k1",
        "alice",
        "mcpr_one",
        Some("2030-01-01T00:00:00Z"),
    )])
    .unwrap();
    let at = parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
    let p = keys
        .verify("mcpr_one", at - Duration::from_secs(1))
        .unwrap();
    assert_eq!(p.expires_at, Some(at));
    assert_eq!(keys.verify("mcpr_one", at), Err(AuthFailure::Expired));
}

#[test]
fn new_invalid_entries_are_refused() {
    let mut bad_hex = entry("k1", "a", "x", None);
    bad_hex.sha256 = "zz".repeat(32);
    let mut short = entry("k1", "a", "x", None);
    short.sha256.pop();
    let cases: Vec<(Vec<ApiKeyConfig>, Error)> = vec![
        (vec![bad_hex], Error::BadHash { id: "k1".into() }),
        (vec![short], Error::BadHash { id: "k1".into() }),
        (
            vec![entry("k1", "a", "x", None), entry("k1", "b", "y", None)],
            Error::DuplicateId("k1".into()),
        ),
        (
            vec![entry("k1", "a", "x", None), entry("k2", "b", "x", None)],
            Error::DuplicateHash {
                id: "k2".into(),
                other: "k1".into(),
            },
        ),
        (vec![entry("", "a", "x", None)], Error::EmptyId),
        (
            vec![entry("k1", "", "x", None)],
            Error::EmptyPrincipal("k1".into()),
        ),
    ];
    for (entries, want) in cases {
        assert_eq!(ApiKeys::new(entries).unwrap_err(), want);
    }
    let err = ApiKeys::new(vec![entry("k1", "a", "x", Some("tomorrow"))]).unwrap_err();
    assert!(matches!(err, Error::BadExpiry { .. }), "{err:?}");
}

#[test]
fn config_unknown_field_is_refused() {
    let ok: Result<ApiKeyConfig, _> = serde_json::from_str(
        r#"{"id":"k","principal":"p","sha256":"00","expires":"2030-01-01T00:00:00Z"}"#,
    );
    assert!(ok.is_ok());
    let bad: Result<ApiKeyConfig, _> =
        serde_json::from_str(r#"{"id":"k","principal":"p","sha256":"00","key":"mcpr_x"}"#);
    assert!(bad.is_err());
}

#[test]
fn is_empty_reflects_entries() {
    assert!(ApiKeys::new(Vec::new()).unwrap().is_empty());
    assert!(!ApiKeys::new(vec![entry("k", "a", "x", None)])
        .unwrap()
        .is_empty());
}
