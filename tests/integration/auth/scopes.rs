//! Scopes and the roles claim (B6): a missing required scope is 403 `insufficient_scope`; a
//! missing roles claim denies, a malformed one is 401.

use super::*;

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
    // Not a race guard: a window in which nothing may reach the child, then the check.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!std::fs::read_to_string(&record)
        .unwrap_or_default()
        .contains("no-roles"));
}
