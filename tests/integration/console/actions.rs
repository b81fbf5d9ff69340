//! The operator's actions (`POST /ui/actions/ACTION`): each needs the console session's CSRF
//! token (or the bearer token itself), asks for confirmation first, then acts and is audited
//! with the operator's identity: reload picks up a changed file, end a session (its next
//! request is 404), revoke a principal's sessions, restart a server's children (a new pid).

use serde_json::json;

use super::operator::{
    admin_of, audited, config_relay, server, token_relay, write_config, Browser, TOKEN,
};
use crate::support::{mint_jwt, poll_until, tempdir, text_of, Client, Relay, FIXTURE};

const VERSION: &str = "2025-11-25";

/// A browser logged in with the token through the form.
async fn logged_in(relay: &Relay) -> Browser {
    let mut b = Browser::new(&admin_of(relay).await);
    assert_eq!(b.login_token(TOKEN).await.status(), 303);
    b
}

#[tokio::test]
async fn a_form_without_the_sessions_csrf_token_is_refused() {
    let relay = token_relay(&[]);
    let mut b = logged_in(&relay).await;
    let csrf = b.csrf("/ui/connect").await;
    for form in [
        vec![("confirm", "yes")],
        vec![
            ("confirm", "yes"),
            ("csrf", "Zm9yZ2VkLWNzcmYtdG9rZW4tdmFsdWUtaGVyZQ"),
        ],
    ] {
        let res = b.post("/ui/actions/reload", &form).await;
        assert_eq!(res.status(), 403, "{form:?}");
    }
    // Another session's token is no good either.
    let mut other = logged_in(&relay).await;
    let theirs = other.csrf("/ui/connect").await;
    assert_ne!(theirs, csrf);
    let res = b.post("/ui/actions/reload", &[("csrf", &theirs)]).await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        b.post("/ui/actions/reload", &[("csrf", &csrf)])
            .await
            .status(),
        200
    );
    assert_eq!(
        b.post("/ui/actions/explode", &[("csrf", &csrf)])
            .await
            .status(),
        404
    );
    // A script with the bearer token and no cookie needs no CSRF token.
    let mut script = Browser::new(&b.base);
    script.bearer = Some(TOKEN.into());
    let res = script.post_from("/ui/actions/reload", &[], None).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn reload_is_confirmed_then_picks_up_the_changed_file_and_is_audited() {
    let dir = tempdir();
    let audit = dir.join("audit.jsonl");
    let head = format!("[audit]\nfile = {:?}\n\n", audit.display().to_string());
    let config = write_config(&format!("{head}{}", server("one")));
    let relay = config_relay(&config, &[]);
    let mut b = logged_in(&relay).await;
    let csrf = b.csrf("/ui/connect").await;

    let res = b.post("/ui/actions/reload", &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("name=\"confirm\" value=\"yes\""), "{html}");
    assert!(
        html.contains(&format!("name=\"csrf\" value=\"{csrf}\"")),
        "{html}"
    );
    assert!(html.contains("href=\"/ui/servers\""), "a way back: {html}");
    assert!(
        !relay.logs().contains("policy reloaded"),
        "not before confirming"
    );

    std::fs::write(&config, format!("{head}{}{}", server("one"), server("two"))).unwrap();
    let res = b
        .post("/ui/actions/reload", &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!(res.status(), 200);
    let mut two = Client::new(&format!("{}/servers/two/mcp", relay.base));
    assert_eq!(
        two.initialize(VERSION).await.status,
        200,
        "the added server"
    );

    let r = audited(&audit, |r| r["method"] == "console/reload").await;
    assert_eq!(r["principal"], "admin-token");
    assert_eq!(r["auth"], "admin");
    assert_eq!(r["outcome"], "ok");

    // A broken file is refused, said on the page, audited as an error.
    std::fs::write(&config, "[servers.three\n").unwrap();
    let res = b
        .post("/ui/actions/reload", &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("refused"));
    audited(&audit, |r| {
        r["method"] == "console/reload" && r["outcome"] == "error"
    })
    .await;
}

const JWT_VAR: &str = "CONSOLE_JWT_SECRET";
const JWT_SECRET: &str = "pL7u2Qx9Kd4Rw8Zn3Tb6Vy1Hs5Mc0EjA8fG2wQ";
const RESOURCE: &str = "http://relay.test/mcp";

/// A relay with JWT callers, shared children and an audit log; the log's path.
fn jwt_relay() -> (Relay, std::path::PathBuf) {
    let audit = tempdir().join("audit.jsonl");
    let secret = format!("env:{JWT_VAR}");
    let relay = Relay::start_env(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--admin-token-env",
            super::operator::TOKEN_VAR,
            "--resource",
            RESOURCE,
            "--jwt-secret",
            &secret,
            "--session-mode",
            "shared",
            "--audit-log",
            audit.to_str().unwrap(),
            "--",
            FIXTURE,
        ],
        &[(super::operator::TOKEN_VAR, TOKEN), (JWT_VAR, JWT_SECRET)],
    );
    (relay, audit)
}

async fn session_of(relay: &Relay, user: &str) -> Client {
    let token = mint_jwt(JWT_VAR, JWT_SECRET, user, "user", RESOURCE);
    let mut c = relay.client();
    c.extra
        .push(("authorization".into(), format!("Bearer {token}")));
    assert_eq!(c.initialize(VERSION).await.status, 200);
    c
}

async fn list_status(c: &Client) -> u16 {
    c.post(json!({"jsonrpc": "2.0", "id": "l", "method": "tools/list"}))
        .await
        .status
}

#[tokio::test]
async fn end_session_and_revoke_end_sessions_and_are_audited_with_the_operator() {
    let (relay, audit) = jwt_relay();
    let alice1 = session_of(&relay, "alice").await;
    let alice2 = session_of(&relay, "alice").await;
    let bob = session_of(&relay, "bob").await;
    let mut b = logged_in(&relay).await;
    let csrf = b.csrf("/ui/connect").await;

    let id = bob.session.clone().unwrap();
    let res = b
        .post(
            "/ui/actions/end-session",
            &[("csrf", &csrf), ("session", &id)],
        )
        .await;
    assert_eq!(res.status(), 200, "confirmation first");
    assert_eq!(list_status(&bob).await, 200);
    let res = b
        .post(
            "/ui/actions/end-session",
            &[("csrf", &csrf), ("session", &id), ("confirm", "yes")],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(list_status(&bob).await, 404, "the ended session is gone");
    let r = audited(&audit, |r| r["method"] == "console/end-session").await;
    assert_eq!(
        (r["principal"].as_str(), r["name"].as_str()),
        (Some("admin-token"), Some(id.as_str()))
    );

    let res = b
        .post(
            "/ui/actions/revoke",
            &[("csrf", &csrf), ("principal", "alice"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Ended 2 session"));
    assert_eq!(list_status(&alice1).await, 404);
    assert_eq!(list_status(&alice2).await, 404);
    let r = audited(&audit, |r| r["method"] == "console/revoke").await;
    assert_eq!(
        (r["name"].as_str(), r["outcome"].as_str()),
        (Some("alice"), Some("ok"))
    );
}

#[tokio::test]
async fn restart_gives_the_server_a_new_child_and_is_audited() {
    let (relay, audit) = jwt_relay();
    let c = session_of(&relay, "carol").await;
    let pid = text_of(&c.call(json!(1), "pid", json!({})).await.messages()[0]);
    let mut b = logged_in(&relay).await;
    let csrf = b.csrf("/ui/connect").await;
    let res = b
        .post(
            "/ui/actions/restart",
            &[("csrf", &csrf), ("server", ""), ("confirm", "yes")],
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    poll_until(
        "a new child",
        || async {
            let c = session_of(&relay, "carol").await;
            let r = c.call(json!(2), "pid", json!({})).await;
            r.messages().first().map(text_of).unwrap_or_default()
        },
        |now| !now.is_empty() && *now != pid,
    )
    .await;
    let r = audited(&audit, |r| r["method"] == "console/restart").await;
    assert_eq!(
        (r["principal"].as_str(), r["outcome"].as_str()),
        (Some("admin-token"), Some("ok"))
    );
}
