//! The person-facing part: authorize → login → consent → code, through real HTML forms, and
//! the attacks on it: open redirects, missing or `plain` PKCE, CSRF on consent, brute force,
//! markup in a client's name.

use serde_json::json;

use super::flow::*;

const CB: &str = "http://127.0.0.1:7/callback";

#[tokio::test]
async fn a_person_logs_in_consents_and_the_client_reaches_the_relay_with_its_token() {
    let server = AuthRelay::start("", &[]);
    let client = server.register(&[CB]).await;
    let (verifier, challenge) = pkce();
    let mut b = Browser::default();
    let login = b
        .get(&authorize_url(&server, &client, CB, &challenge, &[]))
        .await;
    assert_eq!(login.status, 200);
    assert!(login.body.contains("Test Client"), "{}", login.body);
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(b.cookies.contains_key("mcpr_browser"));
    let after = log_in(&mut b, &server, &login, USER, PASSWORD).await;
    assert_eq!(after.status, 303, "{}", after.body);
    let set = after.headers["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    let done = approve(&mut b, &server, &after).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location.as_deref().unwrap().starts_with(CB));
    assert_eq!(done.param("state").as_deref(), Some("st-81f2"));
    assert_eq!(done.param("iss").as_deref(), Some(server.issuer.as_str()));
    let code = done.param("code").unwrap();
    let (status, body) = exchange(&server, &client, &code, CB, &verifier).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(mcp_status(&server, "/mcp", access).await, 200);
    assert_eq!(mcp_status(&server, "/mcp", "not.a.token").await, 401);
    for method in ["oauth/login", "oauth/consent", "oauth/authorize"] {
        let r = server.audited(method, None).await;
        assert_eq!(r["principal"], USER);
        assert_eq!(r["name"], client.as_str());
    }
    // Nothing secret reaches the audit log.
    let log = std::fs::read_to_string(&server.audit).unwrap();
    for secret in [PASSWORD, code.as_str(), access, verifier.as_str()] {
        assert!(!log.contains(secret));
    }
}

#[tokio::test]
async fn a_remembered_consent_skips_the_page_and_a_denial_sends_access_denied() {
    let server = AuthRelay::start("", &[]);
    let client = server.register(&[CB]).await;
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    let login = b
        .get(&authorize_url(&server, &client, CB, &challenge, &[]))
        .await;
    let after = log_in(&mut b, &server, &login, USER, PASSWORD).await;
    let done = approve(&mut b, &server, &after).await;
    assert!(done.param("code").is_some());
    // Same browser, logged in, consent remembered: the code at once.
    let again = b
        .get(&authorize_url(&server, &client, CB, &challenge, &[]))
        .await;
    assert_eq!(again.status, 303, "{}", again.body);
    assert!(again.param("code").is_some(), "{:?}", again.location);
    // Another user, another browser: denies.
    let mut other = Browser::default();
    let login = other
        .get(&authorize_url(&server, &client, CB, &challenge, &[]))
        .await;
    let after = log_in(&mut other, &server, &login, "bob", PASSWORD).await;
    let consent = other
        .get(&server.url(after.location.as_deref().unwrap()))
        .await;
    let denied = other
        .post(
            &server.url("/oauth/consent"),
            &server.issuer,
            &[
                ("request", &consent.field("request").unwrap()),
                ("csrf", &consent.field("csrf").unwrap()),
                ("decision", "deny"),
            ],
        )
        .await;
    assert_eq!(denied.param("error").as_deref(), Some("access_denied"));
    assert_eq!(denied.param("state").as_deref(), Some("st-81f2"));
    server.audited("oauth/consent", Some("user_denied")).await;
}

#[tokio::test]
async fn unknown_clients_and_unregistered_redirects_get_an_error_page_never_a_redirect() {
    let server = AuthRelay::start("", &[]);
    let client = server
        .register(&["https://claude.ai/api/mcp/auth_callback"])
        .await;
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    for (id, redirect) in [
        (client.as_str(), "https://evil.example/cb"),
        (
            client.as_str(),
            "https://claude.ai.evil.example/api/mcp/auth_callback",
        ),
        (
            client.as_str(),
            "https://claude.ai@evil.example/api/mcp/auth_callback",
        ),
        (
            client.as_str(),
            "https://claude.ai/api/mcp/auth_callback/../../evil",
        ),
        (client.as_str(), "javascript:alert(1)"),
        ("no-such-client", "https://claude.ai/api/mcp/auth_callback"),
    ] {
        let page = b
            .get(&authorize_url(&server, id, redirect, &challenge, &[]))
            .await;
        assert_eq!(page.status, 400, "{id} {redirect}");
        assert!(page.location.is_none(), "{id} {redirect}: redirected");
        assert!(
            !page.body.contains("evil.example"),
            "reflected: {}",
            page.body
        );
    }
    server
        .audited("oauth/authorize", Some("redirect_uri_mismatch"))
        .await;
    server
        .audited("oauth/authorize", Some("unknown_client"))
        .await;
}

#[tokio::test]
async fn pkce_plain_or_missing_and_foreign_resources_are_refused_back_at_the_client() {
    let server = AuthRelay::start("", &[]);
    let client = server.register(&[CB]).await;
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    let cases: Vec<(Vec<(&str, &str)>, &str, &str)> = vec![
        (
            vec![("code_challenge_method", "plain")],
            "invalid_request",
            "pkce_not_s256",
        ),
        (
            vec![("resource", "https://elsewhere.example/mcp")],
            "invalid_target",
            "unknown_resource",
        ),
        (
            vec![("scope", "admin:everything")],
            "invalid_scope",
            "unknown_scope",
        ),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
            "bad_response_type",
        ),
    ];
    for (extra, error, reason) in cases {
        // Replace the defaults by building the query by hand where a default is overridden.
        let mut q = form_urlencoded::Serializer::new(String::new());
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &client),
            ("redirect_uri", CB),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", "st-81f2"),
        ];
        for (k, v) in &extra {
            params.retain(|(pk, _)| pk != k);
            params.push((k, v));
        }
        for (k, v) in &params {
            q.append_pair(k, v);
        }
        let page = b
            .get(&server.url(&format!("/oauth/authorize?{}", q.finish())))
            .await;
        assert_eq!(page.status, 303, "{extra:?}: {}", page.body);
        assert_eq!(page.param("error").as_deref(), Some(error), "{extra:?}");
        assert_eq!(page.param("state").as_deref(), Some("st-81f2"));
        server.audited("oauth/authorize", Some(reason)).await;
    }
    // No challenge at all.
    let url = server.url(&format!(
        "/oauth/authorize?response_type=code&client_id={client}&redirect_uri={}&state=s",
        form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>()
    ));
    let page = b.get(&url).await;
    assert_eq!(page.param("error").as_deref(), Some("invalid_request"));
    server
        .audited("oauth/authorize", Some("pkce_missing"))
        .await;
}

#[tokio::test]
async fn a_consent_form_from_another_browser_or_origin_is_refused() {
    let server = AuthRelay::start("", &[]);
    let client = server.register(&[CB]).await;
    let (_, challenge) = pkce();
    // The attacker opens a request of their own and reads its form values.
    let mut attacker = Browser::default();
    let theirs = attacker
        .get(&authorize_url(&server, &client, CB, &challenge, &[]))
        .await;
    let (request, csrf) = (
        theirs.field("request").unwrap(),
        theirs.field("csrf").unwrap(),
    );
    // The victim is logged in (a session cookie) from a request of their own.
    let mut victim = Browser::default();
    let own = victim
        .get(&authorize_url(&server, &client, CB, &challenge, &[]))
        .await;
    let after = log_in(&mut victim, &server, &own, USER, PASSWORD).await;
    assert_eq!(after.status, 303);
    // A forged post of the attacker's request from the victim's browser.
    let forged = victim
        .post(
            &server.url("/oauth/consent"),
            &server.issuer,
            &[
                ("request", &request),
                ("csrf", &csrf),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(forged.location.is_none());
    server
        .audited("oauth/consent", Some("csrf_cookie_mismatch"))
        .await;
    // The victim's own form posted from another origin.
    let consent = victim
        .get(&server.url(after.location.as_deref().unwrap()))
        .await;
    let cross = victim
        .post(
            &server.url("/oauth/consent"),
            "https://evil.example",
            &[
                ("request", &consent.field("request").unwrap()),
                ("csrf", &consent.field("csrf").unwrap()),
                ("decision", "approve"),
            ],
        )
        .await;
    // The relay's Origin guard (or, behind `--cors-origin '*'`, the form check) refuses it.
    assert_eq!(cross.status, 403);
    assert!(cross.location.is_none());
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_user_out_even_with_the_right_one() {
    let server = AuthRelay::start("login_attempts = 3", &[]);
    let client = server.register(&[CB]).await;
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    let login = b
        .get(&authorize_url(&server, &client, CB, &challenge, &[]))
        .await;
    // An unknown user gets the same answer as a wrong password.
    let unknown = log_in(&mut b, &server, &login, "mallory", PASSWORD).await;
    assert_eq!(unknown.status, 401);
    assert!(unknown.body.contains("do not match"));
    let wrong = log_in(&mut b, &server, &login, USER, "Wq3-not-it-9Zx").await;
    assert_eq!(wrong.status, 401);
    // The third failure from this address locks it, whatever names it tried.
    let third = log_in(&mut b, &server, &login, USER, "Wq3-not-it-9Zx").await;
    assert_eq!(third.status, 429);
    let right = log_in(&mut b, &server, &login, USER, PASSWORD).await;
    assert_eq!(right.status, 429, "{}", right.body);
    server.audited("oauth/login", Some("bad_credentials")).await;
    server.audited("oauth/login", Some("locked_out")).await;
}

#[tokio::test]
async fn markup_in_a_client_name_is_shown_escaped() {
    let server = AuthRelay::start("", &[]);
    let res = reqwest::Client::new()
        .post(server.url("/oauth/register"))
        .json(&json!({"redirect_uris": [CB], "client_name": "<script>alert(1)</script>", "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let client = res.json::<serde_json::Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, challenge) = pkce();
    let mut b = Browser::default();
    let login = b
        .get(&authorize_url(&server, &client, CB, &challenge, &[]))
        .await;
    assert!(!login.body.contains("<script>alert"), "{}", login.body);
    assert!(login.body.contains("&lt;script&gt;"));
    let after = log_in(&mut b, &server, &login, USER, PASSWORD).await;
    let consent = b.get(&server.url(after.location.as_deref().unwrap())).await;
    assert!(!consent.body.contains("<script>alert"));
    assert!(consent.body.contains("&lt;script&gt;"));
}
