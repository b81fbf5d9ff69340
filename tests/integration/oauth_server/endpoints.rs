//! The authorization server's machine-facing endpoints through a real `mcp-relay serve` with
//! `[oauth_server]`: RFC 8414 metadata, RFC 7591 registration (open, allow-list, off, bad
//! URIs, the rate limit), client ID metadata documents at private addresses refused and
//! audited, RFC 7009 revocation answers, and the token endpoint's refusals that need no code.
//! The whole code flow (login and consent pages) is in the flow tests.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::flow::AuthRelay;
use crate::support::eventually;

/// A relay with the authorization server on (`flow.rs`), and an HTTP client.
struct Server {
    relay: AuthRelay,
    base: String,
    http: reqwest::Client,
}

/// Starts a relay with `extra` keys in `[oauth_server]`.
fn start(extra: &str) -> Server {
    let relay = AuthRelay::start(extra, &[]);
    Server {
        base: relay.issuer.clone(),
        relay,
        http: reqwest::Client::new(),
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn register(&self, body: Value) -> (StatusCode, Value) {
        let res = self
            .http
            .post(self.url("/oauth/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Registers a client with `method` and one https redirect URI; (client_id, secret).
    async fn client(&self, method: &str) -> (String, Option<String>) {
        let (status, body) = self
            .register(json!({
                "redirect_uris": ["https://app.example.com/cb"],
                "token_endpoint_auth_method": method,
                "grant_types": ["authorization_code", "refresh_token"],
            }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let secret = body["client_secret"].as_str().map(str::to_owned);
        (body["client_id"].as_str().unwrap().to_owned(), secret)
    }

    /// POSTs a form to `path`; the response.
    async fn form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Waits for an audit record of `method` whose fields include `want`; returns it.
    async fn audited(&self, method: &str, want: Value) -> Value {
        let mut found = None;
        eventually(&format!("audit {method} {want}"), || {
            found = std::fs::read_to_string(&self.relay.audit)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|r| {
                    r["method"] == method
                        && want.as_object().unwrap().iter().all(|(k, v)| &r[k] == v)
                });
            found.is_some()
        })
        .await;
        found.unwrap()
    }
}

/// The `error` of an OAuth error answer, after checking it is not cached.
async fn error_of(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn metadata_names_every_endpoint_and_s256_only() {
    let s = start("");
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m: Value = reqwest::get(s.url(path))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(m["issuer"], s.base);
        assert_eq!(m["token_endpoint"], s.url("/oauth/token"));
        assert_eq!(m["registration_endpoint"], s.url("/oauth/register"));
        assert_eq!(m["revocation_endpoint"], s.url("/oauth/revoke"));
        assert_eq!(m["authorization_endpoint"], s.url("/oauth/authorize"));
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            m["grant_types_supported"],
            json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(m["client_id_metadata_document_supported"], true);
    }
}

#[tokio::test]
async fn register_open_answers_201_with_a_secret_only_for_confidential_clients() {
    let s = start("");
    let (status, public) = s
        .register(json!({
            "redirect_uris": ["https://claude.ai/api/mcp/auth_callback", "http://127.0.0.1:33418/cb"],
            "client_name": "Claude",
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(public["token_endpoint_auth_method"], "none");
    assert_eq!(public["client_name"], "Claude");
    assert_eq!(public["redirect_uris"][1], "http://127.0.0.1:33418/cb");
    assert!(public.get("client_secret").is_none());
    let id = public["client_id"].as_str().unwrap();
    assert!(id.len() >= 20, "{id}");
    s.audited("oauth/register", json!({"name": id, "decision": "allow"}))
        .await;

    let (status, conf) = s
        .register(json!({
            "redirect_uris": ["cursor.app://anysphere/oauth/callback"],
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(conf["client_secret"].as_str().unwrap().len() >= 40);
    assert_ne!(conf["client_id"], public["client_id"]);
    let log = std::fs::read_to_string(&s.relay.audit).unwrap();
    assert!(!log.contains(conf["client_secret"].as_str().unwrap()));
}

#[tokio::test]
async fn register_refuses_bad_redirect_uris_and_metadata() {
    let s = start("");
    for uri in [
        "http://app.example.com/cb",
        "https://app.example.com/cb#frag",
        "https://claude.ai@evil.example/cb",
        "javascript:alert(1)",
        "/relative",
        "myapp:/cb",
    ] {
        let (status, body) = s.register(json!({ "redirect_uris": [uri] })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body["error"], "invalid_redirect_uri", "{uri}");
    }
    let (status, body) = s
        .register(json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit"]}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_client_metadata"))
    );
    let res = s
        .http
        .post(s.url("/oauth/register"))
        .header("content-type", "application/json")
        .body(vec![b' '; 70 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    s.audited(
        "oauth/register",
        json!({"reason": "redirect_uri_fragment", "decision": "deny"}),
    )
    .await;
}

#[tokio::test]
async fn register_allow_list_refuses_a_uri_matching_no_pattern() {
    let s = start(
        "registration = \"allow-list\"\nredirect_uris = [\"https://claude.ai/api/mcp/auth_callback\", \"http://127.0.0.1:*/callback\"]",
    );
    let (status, _) = s
        .register(json!({"redirect_uris": ["https://claude.ai/api/mcp/auth_callback"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = s
        .register(json!({"redirect_uris": ["http://127.0.0.1:6274/callback"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for uri in [
        "https://claude.ai.evil.com/api/mcp/auth_callback",
        "https://claude.ai/api/mcp/auth_callback/../x",
        "http://127.0.0.1:6274/callback/evil",
    ] {
        let (status, body) = s
            .register(json!({"redirect_uris": ["https://claude.ai/api/mcp/auth_callback", uri]}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body["error"], "invalid_redirect_uri");
    }
    s.audited(
        "oauth/register",
        json!({"reason": "redirect_uri_not_allowed"}),
    )
    .await;
}

#[tokio::test]
async fn register_off_is_404_and_absent_from_metadata() {
    let s = start("registration = \"off\"");
    let (status, _) = s
        .register(json!({"redirect_uris": ["https://claude.ai/api/mcp/auth_callback"]}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let m: Value = reqwest::get(s.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(m.get("registration_endpoint").is_none(), "{m}");
    s.audited("oauth/register", json!({"reason": "registration_off"}))
        .await;
}

#[tokio::test]
async fn register_rate_limit_per_address() {
    let s = start("registrations_per_hour = 2");
    let body = json!({"redirect_uris": ["https://app.example.com/cb"]});
    assert_eq!(s.register(body.clone()).await.0, StatusCode::CREATED);
    assert_eq!(s.register(body.clone()).await.0, StatusCode::CREATED);
    assert_eq!(s.register(body).await.0, StatusCode::TOO_MANY_REQUESTS);
    s.audited("oauth/register", json!({"reason": "rate_limited"}))
        .await;
}

#[tokio::test]
async fn f2_client_metadata_document_at_a_private_address_is_refused_and_audited() {
    let s = start("");
    for id in [
        "https://127.0.0.1:1/client.json",
        "https://localhost:1/client.json",
        "https://[::ffff:a9fe:a9fe]/client.json",
    ] {
        let res = s
            .form(
                "/oauth/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", id),
                    ("code", "Hq3kZ8wLx2Pv9Rt4Nm7Bc5Df"),
                    ("redirect_uri", "https://app.example.com/cb"),
                    ("code_verifier", &"Kx7".repeat(15)),
                ],
            )
            .await;
        assert_eq!(
            error_of(res).await,
            (StatusCode::UNAUTHORIZED, "invalid_client".into()),
            "{id}"
        );
        s.audited(
            "oauth/token",
            json!({"name": id, "reason": "client_document_blocked", "decision": "deny"}),
        )
        .await;
    }
}

#[tokio::test]
async fn client_metadata_documents_off_refuses_an_https_client_id() {
    let s = start("client_metadata_documents = false");
    let id = "https://app.example.com/client.json";
    let res = s
        .form("/oauth/revoke", &[("client_id", id), ("token", "Zr5vQ2")])
        .await;
    assert_eq!(error_of(res).await.1, "invalid_client");
    s.audited(
        "oauth/revoke",
        json!({"name": id, "reason": "client_documents_off"}),
    )
    .await;
}

#[tokio::test]
async fn revoke_answers_200_for_unknown_tokens_and_401_for_bad_clients() {
    let s = start("");
    let (public, _) = s.client("none").await;
    let res = s
        .form(
            "/oauth/revoke",
            &[("client_id", &public), ("token", "mcprt_Lw4Qz8")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    s.audited(
        "oauth/revoke",
        json!({"name": public, "reason": "unknown_token"}),
    )
    .await;
    let res = s.form("/oauth/revoke", &[("client_id", &public)]).await;
    assert_eq!(
        error_of(res).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );

    let (basic, secret) = s.client("client_secret_basic").await;
    let ok = s
        .http
        .post(s.url("/oauth/revoke"))
        .basic_auth(&basic, secret.as_deref())
        .form(&[
            ("token", "mcprt_Lw4Qz8"),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let bad = s
        .http
        .post(s.url("/oauth/revoke"))
        .basic_auth(&basic, Some("Wn3xR8kT5"))
        .form(&[("token", "mcprt_Lw4Qz8")])
        .send()
        .await
        .unwrap();
    assert!(bad.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    assert_eq!(
        error_of(bad).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    s.audited(
        "oauth/revoke",
        json!({"name": basic, "reason": "bad_client_secret"}),
    )
    .await;
}

#[tokio::test]
async fn token_refuses_bad_requests_before_any_code() {
    let s = start("");
    let (public, _) = s.client("none").await;
    let verifier = "Kx7".repeat(15);
    let exchange = |client: &str, code: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("client_id", client.to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", "https://app.example.com/cb".to_owned()),
            ("code_verifier", verifier.clone()),
        ]
    };
    let send =
        |form: Vec<(&'static str, String)>| s.http.post(s.url("/oauth/token")).form(&form).send();
    // Unsupported grant types.
    for grant in ["password", "client_credentials", "implicit"] {
        let res = send(vec![
            ("grant_type", grant.into()),
            ("client_id", public.clone()),
        ])
        .await
        .unwrap();
        assert_eq!(
            error_of(res).await,
            (StatusCode::BAD_REQUEST, "unsupported_grant_type".into())
        );
    }
    // Not a form.
    let res = s
        .http
        .post(s.url("/oauth/token"))
        .json(&json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(res).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    // Unknown client, no client.
    let res = send(exchange("Nx4Tq8Vz2Lk6Rw3P", "Hq3kZ8wLx2Pv9Rt4"))
        .await
        .unwrap();
    assert_eq!(
        error_of(res).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    let mut no_client = exchange(&public, "Hq3kZ8wLx2Pv9Rt4");
    no_client.remove(1);
    let res = send(no_client).await.unwrap();
    assert_eq!(
        error_of(res).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    // A public client sending a secret, a post client without one.
    let mut with_secret = exchange(&public, "Hq3kZ8wLx2Pv9Rt4");
    with_secret.push(("client_secret", "Jm5Wq9Xz3Bv7".into()));
    let res = send(with_secret).await.unwrap();
    assert_eq!(
        error_of(res).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    let (post, secret) = s.client("client_secret_post").await;
    let res = send(exchange(&post, "Hq3kZ8wLx2Pv9Rt4")).await.unwrap();
    assert_eq!(
        error_of(res).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    s.audited(
        "oauth/token",
        json!({"name": post, "reason": "auth_method_mismatch"}),
    )
    .await;
    // A confidential client, right secret: the unknown code is what is refused.
    let mut right = exchange(&post, "Hq3kZ8wLx2Pv9Rt4");
    right.push(("client_secret", secret.unwrap()));
    let res = send(right).await.unwrap();
    assert_eq!(
        error_of(res).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    s.audited(
        "oauth/token",
        json!({"name": post, "reason": "unknown_code"}),
    )
    .await;
    // Basic with a wrong secret: a challenge.
    let (basic, _) = s.client("client_secret_basic").await;
    let res = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth(&basic, Some("Wn3xR8kT5"))
        .form(
            &exchange(&basic, "Hq3kZ8wLx2Pv9Rt4")
                .into_iter()
                .filter(|(k, _)| *k != "client_id")
                .collect::<Vec<_>>(),
        )
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("www-authenticate"));
    assert_eq!(
        error_of(res).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    // PKCE: no verifier, a malformed one.
    let mut no_verifier = exchange(&public, "Hq3kZ8wLx2Pv9Rt4");
    no_verifier.pop();
    let res = send(no_verifier).await.unwrap();
    assert_eq!(
        error_of(res).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    s.audited(
        "oauth/token",
        json!({"name": public, "reason": "pkce_missing"}),
    )
    .await;
    let mut short = exchange(&public, "Hq3kZ8wLx2Pv9Rt4");
    short[4].1 = "Kx7".into();
    let res = send(short).await.unwrap();
    assert_eq!(
        error_of(res).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    // A repeated parameter.
    let mut twice = exchange(&public, "Hq3kZ8wLx2Pv9Rt4");
    twice.push(("code", "Zt6Yp1Qs8Rn4".into()));
    let res = send(twice).await.unwrap();
    assert_eq!(
        error_of(res).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    // An unknown refresh token.
    let res = send(vec![
        ("grant_type", "refresh_token".into()),
        ("client_id", public.clone()),
        ("refresh_token", "mcprt_Pq7Wz3Xk9".into()),
    ])
    .await
    .unwrap();
    assert_eq!(
        error_of(res).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    s.audited(
        "oauth/refresh",
        json!({"name": public, "reason": "unknown_refresh_token"}),
    )
    .await;
}
