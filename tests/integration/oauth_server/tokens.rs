//! The token endpoint end to end, with codes from the real pages: the exchange and its access
//! token's claims, refresh rotation, and the attacks: PKCE mismatch, code replay (family
//! revoked), a code redeemed by another client or with another redirect URI, refresh reuse
//! (the newer token dies too), revocation of a family, a token for another resource.

use base64::Engine as _;
use serde_json::Value;

use super::flow::*;

const CB: &str = "http://127.0.0.1:7/callback";

/// A code for a fresh client: (client_id, code, verifier).
async fn code(server: &AuthRelay) -> (String, String, String) {
    let client = server.register(&[CB]).await;
    let (verifier, challenge) = pkce();
    let code = code_for(server, &client, CB, &challenge, &[]).await;
    (client, code, verifier)
}

async fn refresh(server: &AuthRelay, client: &str, token: &str) -> (u16, Value) {
    self::token(
        server,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client),
            ("refresh_token", token),
        ],
    )
    .await
}

/// The payload and header of a JWT, unverified (the relay verifies; the test reads).
fn claims(jwt: &str) -> (Value, Value) {
    let part = |i: usize| {
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(i).unwrap())
            .unwrap();
        serde_json::from_slice::<Value>(&b).unwrap()
    };
    (part(0), part(1))
}

#[tokio::test]
async fn a_code_exchange_mints_a_scoped_token_and_refresh_rotates() {
    let server = AuthRelay::start("", &[]);
    let (client, code, verifier) = code(&server).await;
    let (status, body) = exchange(&server, &client, &code, CB, &verifier).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    let access = body["access_token"].as_str().unwrap();
    let r1 = body["refresh_token"].as_str().unwrap().to_owned();
    assert!(r1.starts_with("mcprt_"), "{r1}");
    let (header, c) = claims(access);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(c["iss"], server.issuer.as_str());
    assert_eq!(c["sub"], USER);
    assert_eq!(c["aud"], server.url("/mcp"));
    assert_eq!(c["client_id"], client.as_str());
    assert_eq!(c["roles"], serde_json::json!(["admin"]));
    assert!(c["exp"].as_i64().unwrap() > c["iat"].as_i64().unwrap());
    assert!(c["jti"].as_str().unwrap().len() >= 16);
    let grant = server.audited("oauth/token", None).await;
    assert_eq!(grant["principal"], USER);

    let (status, body) = refresh(&server, &client, &r1).await;
    assert_eq!(status, 200, "{body}");
    let r2 = body["refresh_token"].as_str().unwrap();
    assert_ne!(r2, r1);
    let access2 = body["access_token"].as_str().unwrap();
    assert_ne!(access2, access);
    assert_eq!(mcp_status(&server, "/mcp", access2).await, 200);
    server.audited("oauth/refresh", None).await;
    // A narrower scope than granted is refused up front, and the token still works.
    let (status, body) = self::token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client),
            ("refresh_token", r2),
            ("scope", "admin:everything"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (status, _) = refresh(&server, &client, r2).await;
    assert_eq!(status, 200);
    let log = std::fs::read_to_string(&server.audit).unwrap();
    for secret in [r1.as_str(), r2, access, code.as_str()] {
        assert!(!log.contains(secret));
    }
}

#[tokio::test]
async fn refresh_reuse_revokes_the_family_so_the_newer_token_stops_working() {
    let server = AuthRelay::start("", &[]);
    let (client, code, verifier) = code(&server).await;
    let (_, body) = exchange(&server, &client, &code, CB, &verifier).await;
    let r1 = body["refresh_token"].as_str().unwrap().to_owned();
    let (_, body) = refresh(&server, &client, &r1).await;
    let r2 = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = refresh(&server, &client, &r1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let r = server.audited("oauth/refresh", Some("refresh_reuse")).await;
    assert_eq!(r["decision"], "deny");
    let (status, body) = refresh(&server, &client, &r2).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_granted() {
    let server = AuthRelay::start("", &[]);
    let (client, code, verifier) = code(&server).await;
    let (status, body) = exchange(&server, &client, &code, CB, &verifier).await;
    assert_eq!(status, 200);
    let r1 = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = exchange(&server, &client, &code, CB, &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    server.audited("oauth/token", Some("code_replay")).await;
    let (status, _) = refresh(&server, &client, &r1).await;
    assert_eq!(status, 400, "the family of a replayed code is revoked");
}

#[tokio::test]
async fn pkce_mismatch_another_client_or_another_redirect_uri_is_invalid_grant() {
    let server = AuthRelay::start("", &[]);
    let (client, code, _) = code(&server).await;
    let (wrong, _) = pkce();
    let (status, body) = exchange(&server, &client, &code, CB, &wrong).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    server.audited("oauth/token", Some("pkce_mismatch")).await;

    let (client, code, verifier) = self::code(&server).await;
    let other = server.register(&[CB]).await;
    let (status, body) = exchange(&server, &other, &code, CB, &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    server.audited("oauth/token", Some("client_mismatch")).await;
    assert_ne!(other, client);

    let (client, code, verifier) = self::code(&server).await;
    // Another port of the same loopback callback: registered, but not what the code was for.
    let moved = "http://127.0.0.1:8/callback";
    let (status, body) = exchange(&server, &client, &code, moved, &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    server
        .audited("oauth/token", Some("redirect_uri_mismatch"))
        .await;
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family() {
    let server = AuthRelay::start("", &[]);
    let (client, code, verifier) = code(&server).await;
    let (_, body) = exchange(&server, &client, &code, CB, &verifier).await;
    let r1 = body["refresh_token"].as_str().unwrap().to_owned();
    let (_, body) = refresh(&server, &client, &r1).await;
    let r2 = body["refresh_token"].as_str().unwrap().to_owned();
    // Another client cannot revoke it: 200, nothing done.
    let other = server.register(&[CB]).await;
    let at = &server;
    let revoke = |client: String, token: String| async move {
        reqwest::Client::new()
            .post(at.url("/oauth/revoke"))
            .form(&[("client_id", client), ("token", token)])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(revoke(other, r2.clone()).await, 200);
    server
        .audited("oauth/revoke", Some("client_mismatch"))
        .await;
    let (status, body) = refresh(&server, &client, &r2).await;
    assert_eq!(status, 200, "{body}");
    let r3 = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(revoke(client.clone(), r3.clone()).await, 200);
    let r = server.audited("oauth/revoke", None).await;
    assert_eq!(r["principal"], USER);
    let (status, _) = refresh(&server, &client, &r3).await;
    assert_eq!(status, 400);
}
