//! A4, where credentials may come from and what token headers may not do: no credentials in
//! the query string, no path or SQL text in `kid`, `jku`/`x5u` never fetched, and random kids
//! cause at most one JWKS refresh.

use super::*;

#[tokio::test]
async fn a4_credentials_in_the_query_string_are_401_even_when_valid() {
    let (key, block) = api_key(&["--id", "ci", "--principal", "ci-bot", "--roles", "user"]);
    let setup = Setup::new("", &block);
    let record = tempdir().join("stdin.log");
    let relay = setup.serve(&[], Some(&record));
    let token = setup.mint("alice", "user", &[]);
    // Both credentials are valid where they belong.
    works(&relay, &[("x-api-key", key.clone())], "key ok").await;
    works(&relay, &[auth(&token)], "jwt ok").await;
    let init = init_request(json!(0), VERSION);
    for (what, query, headers) in [
        ("api_key", format!("api_key={key}"), vec![]),
        ("access_token", format!("access_token={token}"), vec![]),
        ("Access_Token", format!("x=1&Access_Token={token}"), vec![]),
        (
            "access_token beside a valid header",
            format!("access_token={token}"),
            vec![auth(&token)],
        ),
        (
            "api_key beside a valid header",
            format!("api_key={key}"),
            vec![("x-api-key", key.clone())],
        ),
    ] {
        let url = format!("{}?{query}", relay.url);
        expect_401(post_json(&url, &headers, init.clone()).await, true, what).await;
    }
    // The legacy message route too.
    let url = format!("{}/message?sessionId=x&api_key={key}", relay.base);
    expect_401(
        post_json(&url, &[], call("echo", "q")).await,
        true,
        "/message?api_key",
    )
    .await;
    // Refused requests reached no child, and no key text is in the logs.
    // Not a race guard: a window in which nothing may arrive, then the check.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        lines_of(&record)
            .iter()
            .filter(|l| l.contains("\"method\":\"initialize\""))
            .count(),
        2
    );
    let logs = relay.logs();
    assert!(!logs.contains(&key), "api key in the relay log");
    assert!(!logs.contains(&token), "token in the relay log");
}

#[tokio::test]
async fn a4_kid_with_path_or_sql_text_is_401() {
    let (public, rs) = rs256_setup();
    let relay = rs.serve(&[], None);
    let hostname = std::fs::read("/etc/hostname").unwrap_or_default();
    let pem = std::fs::read(&public).unwrap();
    let public_path = public.to_str().unwrap();
    let cases: Vec<(&str, &[u8])> = vec![
        ("/dev/null", b"".as_slice()),
        ("../../../../../../../../dev/null", b"".as_slice()),
        ("/etc/hostname", hostname.as_slice()),
        (public_path, pem.as_slice()),
        ("../rsa_public.pem", pem.as_slice()),
        ("x' UNION SELECT 'attacker' -- ", b"attacker".as_slice()),
        ("1; DROP TABLE keys; --", b"attacker".as_slice()),
        ("\" OR \"\"=\"", b"attacker".as_slice()),
    ];
    for iss in [ISSUER, "rs-issuer"] {
        for (kid, key) in &cases {
            let mut c = claims("mallory");
            c["iss"] = json!(iss);
            let token = sign(
                json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
                &c,
                &EncodingKey::from_secret(key),
                Algorithm::HS256,
            );
            let res = post_init(&relay.url, &[auth(&token)]).await;
            expect_401(res, true, &format!("{iss} kid {kid:?}")).await;
        }
    }
    // RS256 by another key with a kid naming a file: still refused.
    let other =
        EncodingKey::from_rsa_pem(&std::fs::read(fixtures().join("rsa2_private.pem")).unwrap())
            .unwrap();
    let mut c = claims("mallory");
    c["iss"] = json!("rs-issuer");
    let token = sign(
        json!({"alg": "RS256", "kid": fixtures().join("rsa2_public.pem")}),
        &c,
        &other,
        Algorithm::RS256,
    );
    expect_401(
        post_init(&relay.url, &[auth(&token)]).await,
        true,
        "rs256 kid path",
    )
    .await;
    // The relay is still there and still accepts good tokens.
    let good = rs.mint("alice", "user", &[]);
    works(&relay, &[auth(&good)], "after kid probes").await;
}

#[tokio::test]
async fn a4_jku_and_x5u_headers_are_401_and_never_fetched() {
    let watch = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    watch.set_nonblocking(true).unwrap();
    let at = watch.local_addr().unwrap();
    let (_, rs) = rs256_setup();
    let relay = rs.serve(&[], None);
    let attacker =
        EncodingKey::from_rsa_pem(&std::fs::read(fixtures().join("rsa2_private.pem")).unwrap())
            .unwrap();
    let jku = format!("http://{at}/jwks.json");
    let x5u = format!("http://{at}/cert.pem");
    let mut c = claims("mallory");
    c["iss"] = json!("rs-issuer");
    let headers = [
        json!({"alg": "RS256", "typ": "at+jwt", "jku": jku}),
        json!({"alg": "RS256", "typ": "at+jwt", "jku": jku, "kid": "attacker"}),
        json!({"alg": "RS256", "typ": "at+jwt", "x5u": x5u}),
        json!({"alg": "RS256", "typ": "at+jwt", "x5u": x5u, "jku": jku, "kid": "k"}),
    ];
    for header in headers {
        let token = sign(header.clone(), &c, &attacker, Algorithm::RS256);
        expect_401(
            post_init(&relay.url, &[auth(&token)]).await,
            true,
            &header.to_string(),
        )
        .await;
    }
    // The HMAC issuer ignores them as well.
    for header in [
        json!({"alg": "HS256", "jku": jku}),
        json!({"alg": "HS256", "x5u": x5u}),
    ] {
        let token = sign(
            header.clone(),
            &claims("mallory"),
            &EncodingKey::from_secret(b"attacker-chosen-secret-of-32-bytes!!"),
            Algorithm::HS256,
        );
        expect_401(
            post_init(&relay.url, &[auth(&token)]).await,
            true,
            &header.to_string(),
        )
        .await;
    }
    // Not a race guard: a window in which the relay must not connect, then the check.
    tokio::time::sleep(Duration::from_millis(500)).await;
    match watch.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the relay connected to the jku/x5u listener: {other:?}"),
    }
}

/// A loopback JWKS endpoint serving `body`; counts the requests it answered.
async fn jwks_server(body: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                loop {
                    use tokio::io::AsyncReadExt;
                    let Ok(n) = sock.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        got.drain(..end + 4);
                        counter.fetch_add(1, Ordering::SeqCst);
                        let res = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if sock.write_all(res.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, hits)
}

#[tokio::test]
async fn a4_many_random_kids_cause_at_most_one_jwks_refresh() {
    use std::sync::atomic::Ordering;
    let mut jwk: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("rsa_public.jwk.json")).unwrap(),
    )
    .unwrap();
    jwk["kid"] = json!("k1");
    jwk["alg"] = json!("RS256");
    jwk["use"] = json!("sig");
    let (url, hits) = jwks_server(json!({"keys": [jwk]}).to_string()).await;
    let tables = format!(
        "[[auth.jwt]]\nissuer = \"jwks-issuer\"\nalgorithms = [\"RS256\"]\njwks_url = \"{url}\"\n\
         jwks_refresh = \"30s\"\n"
    );
    let setup = Setup::new("", &tables);
    let relay = setup.serve(&[], None);
    let key =
        EncodingKey::from_rsa_pem(&std::fs::read(fixtures().join("rsa_private.pem")).unwrap())
            .unwrap();
    let mut c = claims("svc");
    c["iss"] = json!("jwks-issuer");
    // The known kid works (and loads the set).
    let good = sign(
        json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"}),
        &c,
        &key,
        Algorithm::RS256,
    );
    works(&relay, &[auth(&good)], "jwks").await;
    let before = hits.load(Ordering::SeqCst);
    assert!(before >= 1, "the JWKS was never fetched");
    // 300 unknown kids, signed by the right key even: all refused, at most one refresh.
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let kid = format!("random-{i}-{}", rand_hex());
        let token = sign(
            json!({"alg": "RS256", "kid": kid}),
            &c,
            &key,
            Algorithm::RS256,
        );
        let http = http.clone();
        let url = relay.url.clone();
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .header("content-type", "application/json")
                .header("accept", ACCEPT_BOTH)
                .header("authorization", format!("Bearer {token}"))
                .body(init_request(json!(0), VERSION).to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    let refreshes = hits.load(Ordering::SeqCst) - before;
    assert!(
        refreshes <= 1,
        "{refreshes} JWKS refreshes for unknown kids"
    );
    // The known kid still works after the flood.
    works(&relay, &[auth(&good)], "jwks after").await;
}

fn rand_hex() -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{n:08x}")
}
