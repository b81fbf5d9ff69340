//! The cache of verified tokens (`jwt/cache.rs`): a hit gives what a full verification gives,
//! at any time, and a verifier built anew (a reload) starts with none.

use super::*;

/// The outcome of `token` at `at` from a verifier that has it cached, and from one that
/// verifies it in full.
async fn both_at(cached: &JwtVerifier, fresh: Value, token: &str, at: SystemTime) -> [Outcome; 2] {
    let full = verifier(vec![fresh]).verify_at(token, at).await;
    [cached.verify_at(token, at).await, full]
}

type Outcome = Result<Principal, AuthFailure>;

fn is_cached(v: &JwtVerifier, token: &str) -> bool {
    v.verified.get(&token_cache::digest(token)).is_some()
}

#[tokio::test]
async fn a_cached_token_gives_the_same_principal() {
    for (issuer, header, key) in [
        (hs_issuer(), json!({"alg": "HS256"}), hmac()),
        (rs_issuer(), json!({"alg": "RS256", "kid": "k1"}), rsa()),
    ] {
        let v = verifier(vec![issuer.clone()]);
        let iss = issuer["issuer"].as_str().unwrap();
        let t = sign(header, &claims(iss), &key);
        let first = check(&v, &t).await.unwrap();
        assert!(is_cached(&v, &t));
        assert_eq!(first.name, "alice");
        assert_eq!(check(&v, &t).await, Ok(first.clone()));
        // Clones share the cache; a verifier built anew (a reload) starts empty.
        assert!(is_cached(&v.clone(), &t));
        let rebuilt = verifier(vec![issuer]);
        assert!(!is_cached(&rebuilt, &t));
        assert_eq!(check(&rebuilt, &t).await, Ok(first));
    }
}

#[tokio::test]
async fn an_expired_or_not_yet_valid_token_is_refused_though_cached() {
    let v = verifier(vec![hs_issuer()]);
    let now = SystemTime::now();
    let mut c = claims("https://hs");
    c["nbf"] = json!(now_s() + 20);
    let t = sign(json!({"alg": "HS256"}), &c, &hmac());
    assert!(v.verify_at(&t, now).await.is_ok());
    assert!(is_cached(&v, &t));
    let secs = Duration::from_secs;
    // exp is now + 600 and nbf now + 20, each with 30 s of leeway.
    for (at, want) in [
        (now + secs(560), Ok(())),
        (now + secs(640), Err(AuthFailure::Expired)),
        (now + secs(3600), Err(AuthFailure::Expired)),
        (now - secs(60), Err(AuthFailure::Invalid("not_yet_valid"))),
        (now, Ok(())),
    ] {
        let [cached, full] = both_at(&v, hs_issuer(), &t, at).await;
        assert_eq!(cached.clone().map(|_| ()), want);
        assert_eq!(cached, full);
    }
}

#[tokio::test]
async fn another_audience_is_refused_though_cached() {
    let v = verifier(vec![rs_issuer()]);
    let t = sign(json!({"alg": "RS256"}), &claims("https://rs"), &rsa());
    assert!(check(&v, &t).await.is_ok());
    assert!(is_cached(&v, &t));
    // A reload that names another audience: the cached token is refused.
    let mut other = rs_issuer();
    other["audience"] = json!(["https://custom/mcp"]);
    let reloaded = verifier(vec![other]);
    assert_eq!(
        check(&reloaded, &t).await,
        Err(AuthFailure::Invalid("bad_audience"))
    );
    // A token for another audience is refused every time and never cached.
    let mut c = claims("https://rs");
    c["aud"] = json!("https://other.example.com/mcp");
    let wrong = sign(json!({"alg": "RS256"}), &c, &rsa());
    for _ in 0..2 {
        assert_eq!(
            check(&v, &wrong).await,
            Err(AuthFailure::Invalid("bad_audience"))
        );
    }
    assert!(!is_cached(&v, &wrong));
}
