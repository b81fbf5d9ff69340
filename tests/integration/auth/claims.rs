//! A3, what a token must claim: our audience (alone or in an array), a live `exp` and `nbf`,
//! our issuer; and JWT without `--resource` on an ephemeral port is a usage error.

use super::*;

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
