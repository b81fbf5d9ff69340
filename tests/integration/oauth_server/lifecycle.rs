//! What outlives a request: grants and refresh tokens across a restart, signing keys across a
//! rotation (old tokens keep working until they expire), settings across a SIGHUP, and tokens
//! bound to one server's resource.

use super::flow::*;
use crate::support::hangup;

const CB: &str = "http://127.0.0.1:7/callback";

/// A client, a code, a token response.
async fn tokens(server: &AuthRelay, extra: &[(&str, &str)]) -> (String, serde_json::Value) {
    let client = server.register(&[CB]).await;
    let (verifier, challenge) = pkce();
    let code = code_for(server, &client, CB, &challenge, extra).await;
    let (status, body) = exchange(server, &client, &code, CB, &verifier).await;
    assert_eq!(status, 200, "{body}");
    (client, body)
}

async fn refresh(server: &AuthRelay, client: &str, token: &str) -> (u16, serde_json::Value) {
    token_request(
        server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client),
        ],
    )
    .await
}

async fn token_request(server: &AuthRelay, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    super::flow::token(server, form).await
}

#[tokio::test]
async fn clients_grants_and_refresh_tokens_survive_a_restart() {
    let server = AuthRelay::start("", &[]);
    let (client, body) = tokens(&server, &[]).await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    let server = server.restart();
    // The access token was signed by a key the restarted relay still publishes.
    assert_eq!(mcp_status(&server, "/mcp", &access).await, 200);
    let (status, body) = refresh(&server, &client, &refresh_token).await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(
        body["refresh_token"].as_str().unwrap(),
        refresh_token,
        "rotated"
    );
    assert_eq!(
        mcp_status(&server, "/mcp", body["access_token"].as_str().unwrap()).await,
        200
    );
}

#[tokio::test]
async fn a_rotated_key_keeps_verifying_the_tokens_it_signed() {
    let server = AuthRelay::start("key_rotation = \"2s\"", &[]);
    let (_, body) = tokens(&server, &[]).await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let jwks = |s: &AuthRelay| {
        let url = s.url("/oauth/jwks");
        async move {
            let v: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            v["keys"].as_array().unwrap().len()
        }
    };
    crate::support::poll_until("a second signing key", || jwks(&server), |n| *n >= 2).await;
    assert_eq!(mcp_status(&server, "/mcp", &access).await, 200);
}

#[tokio::test]
async fn a_user_added_by_sighup_can_log_in_and_a_removed_one_cannot_refresh() {
    let server = AuthRelay::start("", &[]);
    let (client, body) = tokens(&server, &[]).await;
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    // alice leaves the configuration; carol arrives.
    let path = server.dir.join("relay.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let alice = text
        .find("[[oauth_server.users]]\nname = \"alice\"")
        .unwrap();
    let bob = text.find("[[oauth_server.users]]\nname = \"bob\"").unwrap();
    let carol = format!(
        "[[oauth_server.users]]\nname = \"carol\"\npassword_hash = \"{}\"\nroles = [\"viewer\"]\n\n",
        phc(PASSWORD)
    );
    let updated = format!("{}{carol}{}", &text[..alice], &text[bob..]);
    std::fs::write(&path, updated).unwrap();
    hangup(&server.relay);
    crate::support::eventually("policy reloaded", || {
        server.relay.logs().contains("policy reloaded")
    })
    .await;
    let (status, body) = refresh(&server, &client, &refresh_token).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    let login = b
        .get(&authorize_url(&server, &client, CB, &challenge, &[]))
        .await;
    let after = log_in(&mut b, &server, &login, "carol", PASSWORD).await;
    assert_eq!(after.status, 303, "{}", after.body);
}

#[tokio::test]
async fn a_token_for_one_server_is_refused_by_another_and_the_aggregate() {
    let extra = "\n[servers.alpha]\ncommand = [\"RELAY\", \"demo-server\"]\n\n[servers.beta]\ncommand = [\"RELAY\", \"demo-server\"]\n"
        .replace("RELAY", crate::support::RELAY);
    let server = AuthRelay::start(&format!("\n{extra}"), &[]);
    let alpha = server.url("/servers/alpha/mcp");
    let (_, body) = tokens(&server, &[("resource", &alpha)]).await;
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(mcp_status(&server, "/servers/alpha/mcp", access).await, 200);
    assert_eq!(mcp_status(&server, "/servers/beta/mcp", access).await, 401);
    assert_eq!(mcp_status(&server, "/mcp", access).await, 401);
    // Each server names its own resource in its metadata and its challenge.
    let prm: serde_json::Value =
        reqwest::get(server.url("/.well-known/oauth-protected-resource/servers/beta/mcp"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(prm["resource"], server.url("/servers/beta/mcp"));
    assert_eq!(prm["authorization_servers"][0], server.issuer.as_str());
    let res = reqwest::Client::new()
        .post(server.url("/servers/beta/mcp"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("/.well-known/oauth-protected-resource/servers/beta/mcp"),
        "{challenge}"
    );
}

#[tokio::test]
async fn an_allow_list_applies_to_clients_already_known() {
    let server = AuthRelay::start("", &[]);
    let client = server.register(&[CB]).await;
    let path = server.dir.join("relay.toml");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "[oauth_server]\n",
        "[oauth_server]\nregistration = \"allow-list\"\nredirect_uris = [\"https://claude.ai/api/mcp/auth_callback\"]\n",
        1,
    );
    std::fs::write(&path, text).unwrap();
    hangup(&server.relay);
    crate::support::eventually("policy reloaded", || {
        server.relay.logs().contains("policy reloaded")
    })
    .await;
    let (_, challenge) = pkce();
    let page = Browser::default()
        .get(&authorize_url(&server, &client, CB, &challenge, &[]))
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.location.is_none());
    server
        .audited("oauth/authorize", Some("redirect_uri_not_allowed"))
        .await;
}

/// Code exchange, refresh rotation, refresh reuse and code replay on one backend: what the
/// single-winner updates of the state must give on SQLite and PostgreSQL alike.
async fn grant_lifecycle(server: &AuthRelay) {
    let client = server.register(&[CB]).await;
    let (verifier, challenge) = pkce();
    let code = code_for(server, &client, CB, &challenge, &[]).await;
    let (status, first) = exchange(server, &client, &code, CB, &verifier).await;
    assert_eq!(status, 200, "{first}");
    let (replayed, body) = exchange(server, &client, &code, CB, &verifier).await;
    assert_eq!(
        (replayed, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // The replay revoked what the code granted.
    let old = first["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(server, &client, old).await.0, 400);
    // A second grant: rotation, then reuse of the first token kills the second.
    let code = code_for(server, &client, CB, &challenge, &[]).await;
    let (_, grant) = exchange(server, &client, &code, CB, &verifier).await;
    let r1 = grant["refresh_token"].as_str().unwrap().to_owned();
    let (status, next) = refresh(server, &client, &r1).await;
    assert_eq!(status, 200, "{next}");
    let r2 = next["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh(server, &client, &r1).await.0, 400, "reuse");
    assert_eq!(refresh(server, &client, &r2).await.0, 400, "family revoked");
    server.audited("oauth/refresh", Some("refresh_reuse")).await;
    server.audited("oauth/token", Some("code_replay")).await;
}

#[tokio::test]
async fn sqlite_grant_lifecycle() {
    grant_lifecycle(&AuthRelay::start("", &[])).await;
}

#[tokio::test]
async fn postgres_grant_lifecycle() {
    let Some(pg) = crate::support::postgres::Postgres::start("grant_lifecycle") else {
        return;
    };
    let server = AuthRelay::start(&format!("database_url = {:?}", pg.url), &[]);
    grant_lifecycle(&server).await;
}

#[tokio::test]
async fn a_user_the_operator_disables_can_neither_refresh_nor_log_in() {
    let server = AuthRelay::start("", &[]);
    let (client, body) = tokens(&server, &[]).await;
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    let config = server.dir.join("relay.toml");
    let out = std::process::Command::new(crate::support::RELAY)
        .args([
            "oauth",
            "--config",
            config.to_str().unwrap(),
            "users",
            "disable",
            USER,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = refresh(&server, &client, &refresh_token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    let login = b
        .get(&authorize_url(&server, &client, CB, &challenge, &[]))
        .await;
    let after = log_in(&mut b, &server, &login, USER, PASSWORD).await;
    assert_eq!(after.status, 401, "{}", after.body);
}
