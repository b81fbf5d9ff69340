//! Who may use the console: without a credential every page (401 with the login form), API
//! call, stream and action is refused; the admin token works in the header or pasted into
//! the login form (a console session cookie, HttpOnly and SameSite=Strict, ended by logging
//! out); guessing is locked out; the authorization server's administrators log in, other
//! users do not; a loopback admin listener with no credential configured is open and gives
//! the browser a session with CSRF tokens; cross-origin posts are refused while the
//! console's own forms pass; every answer carries the security headers.

use super::operator::{admin_of, audited, csrf_of, token_relay, Browser, CSP, TOKEN, TOKEN_VAR};
use crate::support::{tempdir, Relay, FIXTURE};

#[tokio::test]
async fn without_a_credential_pages_api_streams_and_actions_are_refused() {
    let relay = token_relay(&[]);
    let mut b = Browser::new(&admin_of(&relay).await);
    for page in ["/ui", "/ui/servers", "/ui/connect", "/ui/audit"] {
        let res = b.get(page).await;
        assert_eq!(res.status(), 401, "{page}");
        assert_eq!(res.headers()["content-security-policy"], CSP, "{page}");
        let html = res.text().await.unwrap();
        assert!(html.contains("action=\"/ui/login\""), "{page}: {html}");
    }
    for path in [
        "/ui/api/servers",
        "/ui/events?view=servers",
        "/ui/connect/main.mcpb",
    ] {
        let res = b.get(path).await;
        assert_eq!(res.status(), 401, "{path}");
        assert!(res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        assert!(!res.text().await.unwrap().contains("<html"), "{path}");
    }
    let res = b.post("/ui/actions/reload", &[("confirm", "yes")]).await;
    assert_eq!(res.status(), 401);
    // A made-up cookie is no session.
    b.cookie = Some("bm90LWEtc2Vzc2lvbi1pZC1hdC1hbGwtcmVhbGx5".into());
    assert_eq!(b.get("/ui/connect").await.status(), 401);
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_the_right_one_in_the_header_works() {
    let relay = token_relay(&[]);
    let mut b = Browser::new(&admin_of(&relay).await);
    b.bearer = Some("Wq3-xT8b-Rm2k-Wd7p-Hs4n-Lc9g".into());
    assert_eq!(b.get("/ui/connect").await.status(), 401);
    b.bearer = Some(TOKEN.into());
    let res = b.get("/ui/connect").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("set-cookie").is_none(),
        "no session for a script"
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("admin-token"), "{html}");
    assert!(!html.contains(TOKEN), "the token is never rendered");
}

#[tokio::test]
async fn the_login_form_sets_a_session_cookie_that_works_until_logout() {
    let relay = token_relay(&[]);
    let mut b = Browser::new(&admin_of(&relay).await);
    let (status, html) = b.page("/ui/login").await;
    assert_eq!(status, 200);
    assert!(html.contains("name=\"token\""), "{html}");
    assert!(
        !html.contains("name=\"password\""),
        "no users without [oauth_server]"
    );
    assert!(b.cookie.is_none());

    let res = b.login_token(TOKEN).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/ui/servers");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "the admin listener is plain HTTP: {cookie}"
    );
    assert!(!cookie.contains(TOKEN));
    let id = b.cookie.clone().unwrap();
    assert!(id.len() >= 43, "256 random bits: {id}");

    let (status, html) = b.page("/ui/connect").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Signed in as"), "{html}");
    let csrf = csrf_of(&html).expect("the logout form carries the CSRF token");
    assert_eq!(b.page("/ui/login").await.0, 303, "signed in: the console");

    // Logging out needs the session's CSRF token.
    assert_eq!(
        b.post("/ui/logout", &[("csrf", "nope")]).await.status(),
        403
    );
    let res = b.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), 303);
    b.cookie = Some(id);
    assert_eq!(
        b.get("/ui/connect").await.status(),
        401,
        "the session is gone"
    );
}

#[tokio::test]
async fn guessing_the_token_is_locked_out() {
    let relay = token_relay(&[]);
    let mut b = Browser::new(&admin_of(&relay).await);
    for i in 0..5 {
        let res = b
            .login_token(&format!("Wq3-xT8b-Rm2k-Wd7p-Hs4n-Lc{i}x"))
            .await;
        assert_eq!(res.status(), 401, "guess {i}");
        assert!(b.cookie.is_none());
    }
    let res = b.login_token(TOKEN).await;
    assert_eq!(res.status(), 429, "locked out, even with the right token");
    assert!(b.cookie.is_none());
    // The header keeps working for scripts.
    b.bearer = Some(TOKEN.into());
    assert_eq!(b.get("/ui/connect").await.status(), 200);
}

#[tokio::test]
async fn every_console_answer_carries_the_security_headers() {
    let relay = token_relay(&[]);
    let mut b = Browser::new(&admin_of(&relay).await);
    let anonymous = b.get("/ui/servers").await;
    let login = b.get("/ui/login").await;
    b.bearer = Some(TOKEN.into());
    let connect = b.get("/ui/connect").await;
    for res in [anonymous, login, connect] {
        let h = res.headers();
        assert_eq!(h["content-security-policy"], CSP);
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "same-origin");
        assert_eq!(h["cache-control"], "no-store");
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    }
}

#[tokio::test]
async fn cross_origin_posts_are_refused_and_the_consoles_own_forms_pass() {
    // A wildcard admin bind: no origin passes for being loopback, only the same-origin rule.
    let relay = Relay::start_env(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "0.0.0.0:0",
            "--admin-token-env",
            TOKEN_VAR,
            "--allowed-host",
            "127.0.0.1",
            "--",
            FIXTURE,
        ],
        &[(TOKEN_VAR, TOKEN)],
    );
    let admin = admin_of(&relay).await;
    let port = admin.rsplit(':').next().unwrap().to_owned();
    let mut b = Browser::new(&admin);
    for evil in [
        "http://evil.example".to_owned(),
        format!("http://evil.example:{port}"),
        "null".to_owned(),
        format!("http://localhost:{port}"),
        format!("https://127.0.0.1:{}", port.parse::<u16>().unwrap() + 1),
    ] {
        let res = b
            .post_from("/ui/login", &[("token", TOKEN)], Some(&evil))
            .await;
        assert_eq!(res.status(), 403, "{evil}");
        assert!(b.cookie.is_none(), "{evil}");
    }
    let res = b.login_token(TOKEN).await;
    assert_eq!(res.status(), 303, "same origin");
    let csrf = b.csrf("/ui/connect").await;
    let evil = b
        .post_from(
            "/ui/actions/reload",
            &[("csrf", &csrf)],
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(evil.status(), 403);
    let own = b.post("/ui/actions/reload", &[("csrf", &csrf)]).await;
    assert_eq!(own.status(), 200, "the confirmation page");
}

#[tokio::test]
async fn a_loopback_console_without_credentials_is_open_with_a_csrf_session() {
    let relay = Relay::start(&["--admin-listen", "127.0.0.1:0"], &[]);
    let mut b = Browser::new(&admin_of(&relay).await);
    let res = b.get("/ui/connect").await;
    assert_eq!(res.status(), 200);
    assert!(b.cookie.is_some(), "the browser gets a console session");
    let html = res.text().await.unwrap();
    assert!(html.contains("loopback"), "{html}");
    let csrf = csrf_of(&html).expect("forms carry a CSRF token");
    // Reading keeps the session; posting needs its token.
    assert!(b
        .get("/ui/connect")
        .await
        .headers()
        .get("set-cookie")
        .is_none());
    assert_eq!(b.post("/ui/actions/reload", &[]).await.status(), 403);
    let res = b.post("/ui/actions/reload", &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("name=\"confirm\""));
    // A script without the cookie reads, but cannot act.
    let mut script = Browser::new(&b.base);
    assert_eq!(script.get("/ui/connect").await.status(), 200);
    script.cookie = None;
    let res = script
        .post_from("/ui/actions/reload", &[("confirm", "yes")], None)
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(b.page("/ui/login").await.0, 303, "nothing to log in to");
}

/// An Argon2id PHC string for `password` (cheap parameters).
fn phc(password: &str) -> String {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let params = argon2::Params::new(8 * 1024, 1, 1, None).unwrap();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    a.hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn an_authorization_server_admin_logs_in_and_other_users_do_not() {
    const PASSWORD: &str = "Jr8-qW3e-Nv5t-Kx2m";
    let dir = tempdir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let audit = dir.join("audit.jsonl");
    let hash = phc(PASSWORD);
    let toml = format!(
        "[audit]\nfile = {audit:?}\n\n[oauth_server]\nissuer = \"http://127.0.0.1:{port}\"\nstate_dir = {state:?}\n\n[[oauth_server.users]]\nname = \"alice\"\npassword_hash = \"{hash}\"\nroles = [\"admin\"]\n\n[[oauth_server.users]]\nname = \"bob\"\npassword_hash = \"{hash}\"\nroles = [\"viewer\"]\n",
        audit = audit.display().to_string(),
        state = dir.join("state").display().to_string(),
    );
    let config = dir.join("relay.toml");
    std::fs::write(&config, toml).unwrap();
    let listen = format!("127.0.0.1:{port}");
    let relay = Relay::start_raw(&[
        "serve",
        "--listen",
        &listen,
        "--config",
        config.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
        "--",
        FIXTURE,
    ]);
    let mut b = Browser::new(&admin_of(&relay).await);
    // Administrators exist: the loopback listener is no longer open.
    assert_eq!(b.get("/ui/connect").await.status(), 401);
    let (_, html) = b.page("/ui/login").await;
    assert!(html.contains("name=\"password\""), "{html}");

    let bob = b
        .post("/ui/login", &[("username", "bob"), ("password", PASSWORD)])
        .await;
    assert_eq!(bob.status(), 401, "bob is no administrator");
    let wrong = b
        .post(
            "/ui/login",
            &[("username", "alice"), ("password", "Jr8-qW3e-Nv5t-Kx2n")],
        )
        .await;
    assert_eq!(wrong.status(), 401);
    assert!(b.cookie.is_none());
    let alice = b
        .post(
            "/ui/login",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(alice.status(), 303);
    let (status, html) = b.page("/ui/connect").await;
    assert_eq!(status, 200);
    assert!(html.contains("user:alice"), "{html}");
    // The connect page names the relay by the issuer.
    assert!(html.contains(&format!("http://127.0.0.1:{port}")), "{html}");

    let ok = audited(&audit, |r| {
        r["method"] == "console/login" && r["outcome"] == "ok"
    })
    .await;
    assert_eq!(ok["principal"], "user:alice");
    assert_eq!(ok["auth"], "admin");
    let refused = audited(&audit, |r| {
        r["method"] == "console/login" && r["outcome"] != "ok"
    })
    .await;
    assert_eq!(refused["reason"], "bad_credentials");
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains(PASSWORD), "no password in the audit log");
}
