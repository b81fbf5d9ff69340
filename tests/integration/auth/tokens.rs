//! A2–A4, B6 and API keys: what a credential must be (algorithms, audience, time, issuer,
//! kid, query strings, roles claim, scope).

use super::*;
// === A2: algorithm confusion ===

fn rs256_setup() -> (PathBuf, Setup) {
    let public = fixtures().join("rsa_public.pem");
    let tables = format!(
        "[[auth.jwt]]\nissuer = \"rs-issuer\"\nalgorithms = [\"RS256\"]\npublic_keys = [\"{}\"]\n",
        public.display()
    );
    (public, Setup::new("", &tables))
}

#[tokio::test]
async fn a2_alg_none_is_401_invalid_token() {
    let setup = Setup::new("", "");
    let relay = setup.serve(&[], None);
    let body = b64(&claims("mallory"));
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(&json!({"alg": alg, "typ": "JWT"}));
        for token in [format!("{header}.{body}."), format!("{header}.{body}")] {
            let res = post_init(&relay.url, &[auth(&token)]).await;
            expect_401(res, true, &format!("alg {alg}")).await;
        }
    }
    // The same claims, properly signed, pass (the claims were not the problem).
    let good = setup.hs256(hs_header(), &claims("mallory"));
    assert_eq!(post_init(&relay.url, &[auth(&good)]).await.status(), 200);
}

#[tokio::test]
async fn a2_hs256_signed_with_our_rsa_public_key_is_401_and_rs256_is_200() {
    let (public, setup) = rs256_setup();
    let relay = setup.serve(&[], None);
    let mut rs_claims = claims("svc");
    rs_claims["iss"] = json!("rs-issuer");
    let pem = std::fs::read(&public).unwrap();
    let der = std::fs::read(fixtures().join("rsa_public.der")).unwrap();
    let jwk = std::fs::read(fixtures().join("rsa_public.jwk.json")).unwrap();
    let pem_trimmed = String::from_utf8(pem.clone()).unwrap().trim().to_owned();
    for (what, key) in [
        ("pem", pem.clone()),
        ("pem without newline", pem_trimmed.into_bytes()),
        ("der", der),
        ("jwk", jwk),
    ] {
        for header in [
            json!({"alg": "HS256", "typ": "JWT"}),
            json!({"alg": "HS256", "typ": "JWT", "kid": "rsa"}),
        ] {
            let token = sign(
                header,
                &rs_claims,
                &EncodingKey::from_secret(&key),
                Algorithm::HS256,
            );
            let res = post_init(&relay.url, &[auth(&token)]).await;
            expect_401(res, true, &format!("HS256 with the public key ({what})")).await;
        }
    }
    // A genuine RS256 token from `token jwt --key-file` is accepted.
    let out = Command::new(RELAY)
        .args(["token", "jwt", "--key-file"])
        .arg(fixtures().join("rsa_private.pem"))
        .args([
            "--alg",
            "RS256",
            "--issuer",
            "rs-issuer",
            "--user",
            "svc",
            "--roles",
            "user",
            "--expires-in",
            "1h",
            "--audience",
            RESOURCE,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    works(&relay, &[auth(&token)], "rs256").await;
    // Signed by another RSA key: refused.
    let other =
        EncodingKey::from_rsa_pem(&std::fs::read(fixtures().join("rsa2_private.pem")).unwrap())
            .unwrap();
    let forged = sign(
        json!({"alg": "RS256", "typ": "at+jwt"}),
        &rs_claims,
        &other,
        Algorithm::RS256,
    );
    expect_401(
        post_init(&relay.url, &[auth(&forged)]).await,
        true,
        "RS256 by another key",
    )
    .await;
}

// === A3: audience, expiry, nbf, issuer ===

#[tokio::test]
async fn a3_wrong_or_missing_audience_is_401_and_an_array_holding_ours_is_200() {
    let setup = Setup::new("", "");
    let relay = setup.serve(&[], None);
    let mut cases = Vec::new();
    let mut c = claims("alice");
    c["aud"] = json!("https://evil.example/api");
    cases.push(("other audience", setup.hs256(hs_header(), &c)));
    c.as_object_mut().unwrap().remove("aud");
    cases.push(("missing aud", setup.hs256(hs_header(), &c)));
    for aud in [
        json!([]),
        json!(null),
        json!(42),
        json!(["http://relay.test/mcp/"]),
    ] {
        c["aud"] = aud;
        cases.push(("odd aud", setup.hs256(hs_header(), &c)));
    }
    cases.push((
        "token for another relay instance",
        setup.mint("alice", "user", &["--audience", "http://other.test/mcp"]),
    ));
    cases.push((
        "audience of a relay on another port",
        setup.mint(
            "alice",
            "user",
            &["--audience", "http://127.0.0.1:8080/mcp"],
        ),
    ));
    for (what, token) in &cases {
        expect_401(post_init(&relay.url, &[auth(token)]).await, true, what).await;
    }
    c["aud"] = json!(["http://other.test/mcp", RESOURCE]);
    let array = setup.hs256(hs_header(), &c);
    works(&relay, &[auth(&array)], "aud array").await;
}

#[tokio::test]
async fn a3_expired_future_nbf_and_wrong_issuer_are_401() {
    let setup = Setup::new("", "");
    let relay = setup.serve(&[], None);
    // Minted for two seconds: accepted now, refused once expired.
    let minted = Instant::now();
    let short = setup.mint("alice", "user", &["--expires-in", "2s"]);
    assert_eq!(post_init(&relay.url, &[auth(&short)]).await.status(), 200);
    let refused = until_refused(&relay.url, &[auth(&short)], "expired token").await;
    assert!(
        refused.duration_since(minted) >= Duration::from_millis(900),
        "refused too early"
    );
    // The shortest lifetime, as the CLI mints it: refused after at most a second.
    let one = setup.mint("alice", "user", &["--expires-in", "1s"]);
    until_refused(&relay.url, &[auth(&one)], "1s token").await;

    let t = now();
    let mut c = claims("alice");
    c["exp"] = json!(t - 120);
    c["iat"] = json!(t - 3600);
    c["nbf"] = json!(t - 3600);
    let expired = setup.hs256(hs_header(), &c);
    let mut c = claims("alice");
    c["nbf"] = json!(t + 600);
    let future = setup.hs256(hs_header(), &c);
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove("exp");
    let no_exp = setup.hs256(hs_header(), &c);
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove("iss");
    let no_iss = setup.hs256(hs_header(), &c);
    let mut c = claims("alice");
    c["iss"] = json!("mcp-relay ");
    let near_iss = setup.hs256(hs_header(), &c);
    let issuer = setup.mint("alice", "user", &["--issuer", "https://evil.example"]);
    for (what, token) in [
        ("expired two minutes ago", expired),
        ("nbf ten minutes ahead", future),
        ("no exp", no_exp),
        ("no iss", no_iss),
        ("issuer with a trailing space", near_iss),
        ("wrong issuer", issuer),
    ] {
        expect_401(post_init(&relay.url, &[auth(&token)]).await, true, what).await;
    }
}

// === A4: where credentials may come from, and what headers may not do ===

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
    tokio::time::sleep(Duration::from_millis(500)).await;
    match watch.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the relay connected to the jku/x5u listener: {other:?}"),
    }
}

// === API keys ===

#[tokio::test]
async fn api_key_in_bearer_or_x_api_key_works_and_unknown_or_expired_is_401() {
    let (key, block) = api_key(&["--id", "ci", "--principal", "ci-bot", "--roles", "user"]);
    let (old, old_block) = api_key(&[
        "--id",
        "old",
        "--principal",
        "ci-bot",
        "--roles",
        "user",
        "--expires",
        "2020-01-01T00:00:00Z",
    ]);
    let (later, later_block) = api_key(&[
        "--id",
        "later",
        "--principal",
        "ci-bot",
        "--expires",
        "2999-01-01T00:00:00Z",
    ]);
    let (unknown, _) = api_key(&["--id", "nobody"]);
    let setup = Setup::new("", &format!("{block}\n{old_block}\n{later_block}"));
    let relay = setup.serve(&[], None);
    works(&relay, &[auth(&key)], "key as bearer").await;
    works(&relay, &[("x-api-key", key.clone())], "key as x-api-key").await;
    works(
        &relay,
        &[("X-Api-Key", later.clone())],
        "key with future expiry",
    )
    .await;
    let mut tampered = key.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for (what, headers) in [
        ("unknown key (bearer)", vec![auth(&unknown)]),
        (
            "unknown key (x-api-key)",
            vec![("x-api-key", unknown.clone())],
        ),
        ("tampered key", vec![("x-api-key", tampered)]),
        (
            "key without prefix",
            vec![("x-api-key", key[5..].to_owned())],
        ),
        ("expired key (bearer)", vec![auth(&old)]),
        ("expired key (x-api-key)", vec![("x-api-key", old.clone())]),
        (
            "basic scheme",
            vec![("authorization", format!("Basic {key}"))],
        ),
    ] {
        expect_401(post_init(&relay.url, &headers).await, true, what).await;
    }
}

// === Scopes ===

#[tokio::test]
async fn scope_required_scope_missing_is_403_insufficient_scope_and_present_is_200() {
    let setup = Setup::new("required_scopes = [\"mcp\"]", "");
    let relay = setup.serve(&[], None);
    for extra in [&[][..], &["--scope", "mcp:read other"][..]] {
        let token = setup.mint("alice", "user", extra);
        let res = post_init(&relay.url, &[auth(&token)]).await;
        assert_eq!(res.status(), 403, "{extra:?}");
        let www = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(www.starts_with("Bearer "), "{www}");
        assert!(www.contains("error=\"insufficient_scope\""), "{www}");
        assert!(www.contains("scope=\"mcp\""), "{www}");
        assert!(
            www.contains(&format!("resource_metadata=\"{METADATA}\"")),
            "{www}"
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], -31002, "{body}");
    }
    let token = setup.mint("alice", "user", &["--scope", "mcp"]);
    works(&relay, &[auth(&token)], "scoped").await;
    let token = setup.mint("alice", "user", &["--scope", "openid mcp profile"]);
    works(&relay, &[auth(&token)], "scoped among others").await;
    // The metadata advertises the required scope.
    let doc: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        relay.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(doc["scopes_supported"], json!(["mcp"]));
}

#[tokio::test]
async fn b6_missing_roles_claim_denies_and_a_malformed_one_is_401() {
    let setup = Setup::new("", "");
    let record = tempdir().join("stdin.log");
    let relay = setup.serve(&["--roles", &permissions()], Some(&record));
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove("roles");
    let no_roles = setup.hs256(hs_header(), &c);
    let mut a = client(&relay, &[auth(&no_roles)]);
    a.initialize(VERSION).await;
    let reply = a.call(json!(1), "echo", json!({"text": "no-roles"})).await;
    assert_eq!(reply.messages()[0]["error"]["code"], -32601, "{reply:?}");
    let list = a
        .post(json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}))
        .await;
    assert_eq!(list.messages()[0]["error"]["code"], -32601, "{list:?}");
    for roles in [
        json!(7),
        json!({"user": true}),
        json!([["user"]]),
        json!([1]),
    ] {
        let mut c = claims("alice");
        c["roles"] = roles.clone();
        let token = setup.hs256(hs_header(), &c);
        expect_401(
            post_init(&relay.url, &[auth(&token)]).await,
            true,
            &roles.to_string(),
        )
        .await;
    }
    for sub in [json!(null), json!(""), json!(42)] {
        let mut c = claims("alice");
        c["sub"] = sub.clone();
        let token = setup.hs256(hs_header(), &c);
        expect_401(
            post_init(&relay.url, &[auth(&token)]).await,
            true,
            &format!("sub {sub}"),
        )
        .await;
    }
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove("sub");
    let token = setup.hs256(hs_header(), &c);
    expect_401(post_init(&relay.url, &[auth(&token)]).await, true, "no sub").await;
    // An ID token is not an access token.
    let token = setup.hs256(
        json!({"alg": "HS256", "typ": "id_token+jwt"}),
        &claims("alice"),
    );
    expect_401(
        post_init(&relay.url, &[auth(&token)]).await,
        true,
        "id token typ",
    )
    .await;
    // Oversized token: refused before decoding.
    let mut c = claims("alice");
    c["pad"] = json!("x".repeat(9000));
    let token = setup.hs256(hs_header(), &c);
    expect_401(
        post_init(&relay.url, &[auth(&token)]).await,
        true,
        "9 KB token",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!std::fs::read_to_string(&record)
        .unwrap_or_default()
        .contains("no-roles"));
}
/// The canonical URL cannot be guessed from port 0 (or 0.0.0.0): with JWT on, the relay
/// refuses to start without `--resource` instead of binding tokens to a wrong audience.
#[test]
fn a3_jwt_without_resource_on_an_ephemeral_port_is_a_usage_error() {
    let secret = Setup::new("", "");
    let file = tempdir().join("s");
    std::fs::write(&file, &secret.secret).unwrap();
    let out = std::process::Command::new(RELAY)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--jwt-secret",
            &format!("file:{}", file.display()),
            "--",
            FIXTURE,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--resource"),
        "{out:?}"
    );
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
