//! JWKS (fetch, cache, single-flight refresh, header URLs never fetched) and config
//! validation tests for `jwt.rs`. JWKS tests run a tiny HTTP server counting requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::EncodingKey;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

async fn http_server(response: String) -> (String, Arc<AtomicUsize>) {
    http_server_of(Arc::new(Mutex::new(response))).await
}

/// [`http_server`] answering with whatever `response` holds when a request arrives.
async fn http_server_of(response: Arc<Mutex<String>>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (counter, response) = (counter.clone(), response.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let body = response.lock().unwrap().clone();
                let _ = sock.write_all(body.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}"), hits)
}

fn http_ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn jwks_body() -> String {
    let mut jwk: Value = serde_json::from_slice(&read("rsa_public.jwk.json")).unwrap();
    jwk["kid"] = json!("rsa1");
    jwk["alg"] = json!("RS256");
    jwk["use"] = json!("sig");
    // An `oct` key in a JWKS must never be usable.
    let oct = json!({"kty": "oct", "kid": "oct1", "k": b64(SECRET.as_bytes())});
    json!({"keys": [jwk, oct]}).to_string()
}

fn jwks_issuer(url: &str) -> Value {
    json!({"issuer": "https://jwks", "algorithms": ["RS256"], "jwks_url": format!("{url}/jwks"),
           "jwks_refresh": "1h"})
}

#[tokio::test]
async fn jwks_key_by_kid_is_accepted_and_fetched_once() {
    let (url, hits) = http_server(http_ok(&jwks_body())).await;
    let v = verifier(vec![jwks_issuer(&url)]);
    for _ in 0..3 {
        let t = sign(
            json!({"alg": "RS256", "kid": "rsa1"}),
            &claims("https://jwks"),
            &rsa(),
        );
        assert_eq!(check(&v, &t).await.unwrap().key_id.as_deref(), Some("rsa1"));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // The JWKS `oct` key is dropped and HS256 is not pinned: HMAC with it fails.
    let k = EncodingKey::from_secret(SECRET.as_bytes());
    let t = sign(
        json!({"alg": "HS256", "kid": "oct1"}),
        &claims("https://jwks"),
        &k,
    );
    assert_eq!(
        check(&v, &t).await,
        Err(AuthFailure::Invalid("alg_not_allowed"))
    );
}

#[tokio::test]
async fn a_withdrawn_jwks_key_refuses_a_token_though_cached() {
    let body = Arc::new(Mutex::new(http_ok(&jwks_body())));
    let (url, hits) = http_server_of(body.clone()).await;
    let mut issuer = jwks_issuer(&url);
    issuer["jwks_refresh"] = json!("0s");
    let v = verifier(vec![issuer]);
    let signed = |kid: &str| {
        sign(
            json!({"alg": "RS256", "kid": kid}),
            &claims("https://jwks"),
            &rsa(),
        )
    };
    let t = signed("rsa1");
    let first = check(&v, &t).await.unwrap();
    assert_eq!(check(&v, &t).await, Ok(first));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // The issuer rotates: the same key now published as `rsa9` only. A token naming the new
    // kid fetches the JWKS again; from then on `rsa1` is no longer published.
    let mut rotated: Value = serde_json::from_str(&jwks_body()).unwrap();
    rotated["keys"][0]["kid"] = json!("rsa9");
    *body.lock().unwrap() = http_ok(&rotated.to_string());
    assert!(check(&v, &signed("rsa9")).await.is_ok());
    assert!(hits.load(Ordering::SeqCst) >= 2);
    assert_eq!(
        check(&v, &t).await,
        Err(AuthFailure::Invalid("unknown_key"))
    );
}

#[tokio::test]
async fn a4_kid_with_path_or_sql_text_is_unknown_key() {
    let (url, hits) = http_server(http_ok(&jwks_body())).await;
    let v = verifier(vec![jwks_issuer(&url)]);
    for kid in [
        "../../../../etc/passwd",
        "' OR '1'='1' --",
        "rsa1\u{0}",
        "/dev/zero",
        "rsa1 ",
    ] {
        let t = sign(
            json!({"alg": "RS256", "kid": kid}),
            &claims("https://jwks"),
            &rsa2(),
        );
        assert_eq!(
            check(&v, &t).await,
            Err(AuthFailure::Invalid("unknown_key")),
            "{kid:?}"
        );
    }
    assert!(hits.load(Ordering::SeqCst) <= 1);
}

#[tokio::test]
async fn a4_thousand_random_kids_fetch_jwks_at_most_once() {
    let (url, hits) = http_server(http_ok(&jwks_body())).await;
    let v = verifier(vec![jwks_issuer(&url)]);
    let tokens: Vec<String> = (0..1000)
        .map(|_| {
            let kid = b64(&rand::random::<[u8; 12]>());
            sign(
                json!({"alg": "RS256", "kid": kid}),
                &claims("https://jwks"),
                &rsa(),
            )
        })
        .collect();
    let results = futures_util::future::join_all(tokens.iter().map(|t| check(&v, t))).await;
    assert!(results
        .iter()
        .all(|r| *r == Err(AuthFailure::Invalid("unknown_key"))));
    assert!(
        hits.load(Ordering::SeqCst) <= 1,
        "fetches: {}",
        hits.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn a4_jku_x5u_and_embedded_jwk_are_never_used() {
    // A plain non-blocking listener: `accept` is one syscall, so a queued connection shows.
    let watched = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    watched.set_nonblocking(true).unwrap();
    let spy = format!("http://{}/keys", watched.local_addr().unwrap());
    let (url, _) = http_server(http_ok(&jwks_body())).await;
    let v = verifier(vec![jwks_issuer(&url), rs_issuer()]);
    let attacker: Value = json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"});
    for iss in ["https://jwks", "https://rs"] {
        let header = json!({"alg": "RS256", "kid": "attacker", "jku": spy, "x5u": spy,
                            "jwk": attacker});
        let t = sign(header, &claims(iss), &rsa2());
        assert!(matches!(check(&v, &t).await, Err(AuthFailure::Invalid(_))));
    }
    assert!(
        watched
            .accept()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "a header URL was fetched"
    );
    // Control: the detector does see a connection.
    let _probe = std::net::TcpStream::connect(watched.local_addr().unwrap()).unwrap();
    assert!(watched.accept().is_ok());
}

#[tokio::test]
async fn jwks_failures_are_jwks_unavailable() {
    let big = "x".repeat(1024 * 1024 + 1);
    let responses = [
        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            .to_owned(),
        "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/jwks\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            .to_owned(),
        http_ok(&big),
        http_ok("{\"keys\": 5}"),
    ];
    for response in responses {
        let (url, hits) = http_server(response).await;
        let v = verifier(vec![jwks_issuer(&url)]);
        let t = sign(
            json!({"alg": "RS256", "kid": "rsa1"}),
            &claims("https://jwks"),
            &rsa(),
        );
        for _ in 0..2 {
            assert_eq!(
                check(&v, &t).await,
                Err(AuthFailure::Invalid("jwks_unavailable"))
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
}

/// Long by design: one table row per refused config.
#[test]
fn build_refuses_unsafe_configs() {
    let secret_file = fixture("rsa_private.pem");
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"issuer": "i", "algorithms": ["HS256", "RS256"], "secret": "env:JWT_SECRET"}),
            "cannot be mixed",
        ),
        (
            json!({"issuer": "i", "algorithms": ["HS256"]}),
            "need `secret`",
        ),
        (
            json!({"issuer": "i", "algorithms": ["HS256"], "secret": "env:JWT_SECRET",
                "public_keys": [fixture("rsa_public.pem")]}),
            "need `secret`",
        ),
        (
            json!({"issuer": "i", "algorithms": ["RS256"], "secret": "env:JWT_SECRET"}),
            "need `public_keys`",
        ),
        (
            json!({"issuer": "i", "algorithms": ["RS256"]}),
            "need `public_keys`",
        ),
        (
            json!({"issuer": "i", "algorithms": ["none"], "secret": "env:JWT_SECRET"}),
            "forbidden algorithm",
        ),
        (
            json!({"issuer": "i", "algorithms": []}),
            "must not be empty",
        ),
        (
            json!({"issuer": "", "algorithms": ["HS256"]}),
            "must not be empty",
        ),
        (
            json!({"issuer": "i", "algorithms": ["HS256"], "secret": "literal"}),
            "not a literal",
        ),
        (
            json!({"issuer": "i", "algorithms": ["HS256"], "secret": "env:NOPE"}),
            "not set",
        ),
        (
            json!({"issuer": "i", "algorithms": ["HS512"], "secret": "env:JWT_SECRET_SHORT"}),
            "not set",
        ),
        (
            json!({"issuer": "i", "algorithms": ["RS256"], "public_keys": [secret_file]}),
            "private key",
        ),
        (
            json!({"issuer": "i", "algorithms": ["RS256"], "public_keys": ["/nonexistent.pem"]}),
            "cannot read",
        ),
        (
            json!({"issuer": "i", "algorithms": ["RS256"], "jwks_url": "http://idp.example.com/jwks"}),
            "https",
        ),
        (
            json!({"issuer": "i", "algorithms": ["RS256"], "jwks_url": "file:///etc/passwd"}),
            "scheme",
        ),
        (
            json!({"issuer": "i", "algorithms": ["RS256"], "jwks_url": "https://idp/jwks",
                "leeway": "61s"}),
            "at most 60s",
        ),
        (
            json!({"issuer": "i", "algorithms": ["RS256"], "jwks_url": "https://idp/jwks",
                "leeway": "soon"}),
            "leeway",
        ),
    ];
    for (c, want) in cases {
        let err = JwtVerifier::build(vec![config(c.clone())], AUD, &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{c}: {err}");
    }
    let short = |n: &str| (n == "S").then(|| "x".repeat(40));
    let c = config(json!({"issuer": "i", "algorithms": ["HS512"], "secret": "env:S"}));
    let err = JwtVerifier::build(vec![c], AUD, &short).unwrap_err();
    assert!(matches!(err, Error::ShortSecret { min: 64, .. }), "{err}");
    let twice = vec![config(rs_issuer()), config(rs_issuer())];
    assert!(matches!(
        JwtVerifier::build(twice, AUD, &env),
        Err(Error::DuplicateIssuer(_))
    ));
    let unknown: Result<JwtConfig, _> =
        serde_json::from_value(json!({"issuer": "i", "algorithms": ["RS256"], "jku": "x"}));
    assert!(unknown.is_err());
}

#[test]
fn build_accepts_loopback_http_and_https_jwks_urls() {
    for url in [
        "https://idp.example.com/jwks",
        "http://127.0.0.1:8080/jwks",
        "http://localhost/j",
        "http://[::1]:9/jwks",
    ] {
        let c = config(json!({"issuer": "i", "algorithms": ["ES256"], "jwks_url": url}));
        assert!(JwtVerifier::build(vec![c], AUD, &env).is_ok(), "{url}");
    }
}
