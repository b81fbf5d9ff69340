//! The company identity provider leg (`/oauth/upstream/start`, `/oauth/upstream/callback`)
//! against a stand-in OpenID provider run here: discovery, a JWKS with a P-256 key made by the
//! test, `/authorize` that sends the browser straight back with a code, and `/token` that
//! checks PKCE and the client's secret and answers an ID token whose claims each test sets.
//! The relay side is driven as a browser would (`flow.rs`): authorize, the login page's
//! "Sign in with" link, the provider, the callback, consent, then the token endpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::flow::{self, free_port, AuthRelay, Browser, Page};
use crate::support::tempdir;

const CLIENT_ID: &str = "relay-at-idp";
const CLIENT_SECRET: &str = "Zq4mW8tY2pLk9xVb7nRc3sHd";
const KID: &str = "idp-k1";

/// Changes the ID token's claims (after the stand-in filled in good ones).
type Tamper = Box<dyn Fn(&mut Value) + Send + Sync>;

/// What `/authorize` remembered for a code.
struct Grant {
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

struct Provider {
    issuer: String,
    key: EncodingKey,
    /// Signs with this one instead when set (a bad signature).
    forger: Option<EncodingKey>,
    jwk: Value,
    grants: Mutex<HashMap<String, Grant>>,
    tamper: Mutex<Option<Tamper>>,
    /// The claims the relay is given, for the test to check.
    groups: Value,
}

/// A P-256 key: its signing form and its public JWK.
fn key() -> (EncodingKey, Value) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = pair.public_key_raw();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": KID, "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
    });
    let enc = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    (enc, jwk)
}

async fn discovery(State(p): State<Arc<Provider>>) -> Json<Value> {
    Json(json!({
        "issuer": p.issuer,
        "authorization_endpoint": format!("{}/authorize", p.issuer),
        "token_endpoint": format!("{}/token", p.issuer),
        "jwks_uri": format!("{}/jwks", p.issuer),
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
}

async fn jwks(State(p): State<Arc<Provider>>) -> Json<Value> {
    Json(json!({ "keys": [p.jwk] }))
}

/// Checks what the relay asked for, remembers it under a new code, sends the browser back.
async fn authorize(
    State(p): State<Arc<Provider>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let ok = q.get("response_type").map(String::as_str) == Some("code")
        && q.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && q.get("code_challenge_method").map(String::as_str) == Some("S256")
        && q.get("scope")
            .is_some_and(|s| s.split(' ').any(|s| s == "openid"));
    if !ok {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let code = format!("c{}", p.grants.lock().unwrap().len() + 1);
    let grant = Grant {
        nonce: q["nonce"].clone(),
        challenge: q["code_challenge"].clone(),
        redirect_uri: q["redirect_uri"].clone(),
    };
    let mut back = url::Url::parse(&grant.redirect_uri).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q["state"]);
    p.grants.lock().unwrap().insert(code, grant);
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

/// Redeems a code (PKCE and client secret checked): an ID token.
async fn token(
    State(p): State<Arc<Provider>>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&basic)
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Some(grant) = p.grants.lock().unwrap().remove(&f["code"]) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        f["code_verifier"].as_bytes(),
    ));
    if challenge != grant.challenge || f["redirect_uri"] != grant.redirect_uri {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let now = now();
    let mut claims = json!({
        "iss": p.issuer, "aud": CLIENT_ID, "azp": CLIENT_ID, "sub": "00u1x9",
        "email": "ada@example.com", "groups": p.groups, "iat": now, "exp": now + 300,
        "nonce": grant.nonce,
    });
    if let Some(t) = p.tamper.lock().unwrap().as_ref() {
        t(&mut claims);
    }
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(KID.into());
    let key = p.forger.as_ref().unwrap_or(&p.key);
    let id_token = jsonwebtoken::encode(&h, &claims, key).unwrap();
    Json(json!({"access_token": "opaque", "token_type": "Bearer", "id_token": id_token}))
        .into_response()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The stand-in provider on a free loopback port: its issuer.
async fn provider(tamper: Option<Tamper>, forged: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let (key, jwk) = self::key();
    let p = Arc::new(Provider {
        issuer: issuer.clone(),
        key,
        forger: forged.then(|| self::key().0),
        jwk,
        grants: Mutex::default(),
        tamper: Mutex::new(tamper),
        groups: json!(["eng", "visitors"]),
    });
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(p);
    tokio::spawn(async move { axum::serve(listener, app).await });
    issuer
}

/// A relay whose authorization server logs people in at `idp` (beside the local users).
fn serve(idp: &str) -> AuthRelay {
    let dir = tempdir();
    let secret = dir.join("idp-client-secret");
    std::fs::write(&secret, CLIENT_SECRET).unwrap();
    let extra = format!(
        r#"
[oauth_server.upstream]
issuer = "{idp}"
client_id = "{CLIENT_ID}"
client_secret = "file:{}"
name = "Example SSO"
principal_claim = "email"
default_roles = ["reader"]
roles = {{ eng = ["dev"], ops = ["admin"] }}
"#,
        secret.display()
    );
    AuthRelay::start_in(dir, free_port(), &extra, &[])
}

const REDIRECT: &str = "http://127.0.0.1:9/cb";

/// Authorize as a new client; the login page's "Sign in with" link. The PKCE verifier and the
/// client id with it.
async fn login_link(server: &AuthRelay, b: &mut Browser) -> (String, String, String) {
    let client_id = server.register(&[REDIRECT]).await;
    let (verifier, challenge) = flow::pkce();
    let login = b
        .get(&flow::authorize_url(
            server,
            &client_id,
            REDIRECT,
            &challenge,
            &[],
        ))
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(
        login.body.contains("Sign in with Example SSO"),
        "{}",
        login.body
    );
    let at = login.body.find("/oauth/upstream/start?request=").unwrap();
    let end = at + login.body[at..].find('"').unwrap();
    (login.body[at..end].to_owned(), verifier, client_id)
}

/// The browser's way from the link through the provider to the callback: the callback's
/// page, and its URL.
async fn via_provider(server: &AuthRelay, b: &mut Browser, link: &str) -> (Page, String) {
    let to_idp = b.get(&server.url(link)).await;
    assert_eq!(to_idp.status, 303, "{}", to_idp.body);
    let back = b.get(to_idp.location.as_deref().unwrap()).await;
    assert_eq!(back.status, 302);
    let callback = back.location.unwrap();
    assert!(callback.starts_with(&server.url("/oauth/upstream/callback?")));
    (b.get(&callback).await, callback)
}

async fn refused_with(tamper: Option<Tamper>, forged: bool, reason: &str) {
    let idp = provider(tamper, forged).await;
    let server = serve(&idp);
    let mut b = Browser::default();
    let (link, _, _) = login_link(&server, &mut b).await;
    let (page, _) = via_provider(&server, &mut b, &link).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(!b.cookies.contains_key("mcpr_session"));
    assert!(!page.body.contains("ada@example.com"), "{}", page.body);
    let record = server.audited("oauth/login", Some(reason)).await;
    assert_eq!(record["decision"], "deny", "{record}");
    assert!(
        !server
            .audit_records()
            .iter()
            .any(|r| r["method"] == "oauth/login" && r["decision"] == "allow"),
        "{:?}",
        server.audit_records()
    );
}

/// The claims of a JWT (signature not checked: the relay already did).
fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn idp_good_login_reaches_consent_and_the_token_carries_mapped_roles() {
    let idp = provider(None, false).await;
    let server = serve(&idp);
    let mut b = Browser::default();
    let (link, verifier, client_id) = login_link(&server, &mut b).await;
    let (after, callback) = via_provider(&server, &mut b, &link).await;
    assert_eq!(after.status, 303, "{}", after.body);
    assert!(after
        .location
        .as_deref()
        .unwrap()
        .starts_with("/oauth/consent?request="));
    assert!(b.cookies.contains_key("mcpr_session"));
    let record = server.audited("oauth/login", None).await;
    assert_eq!(record["principal"], "ada@example.com");
    assert_eq!(record["name"], client_id.as_str());
    // The leg is single use: the same callback again is refused.
    let again = b.get(&callback).await;
    assert_eq!(again.status, 400);
    server.audited("oauth/login", Some("idp_bad_state")).await;
    let done = flow::approve(&mut b, &server, &after).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let code = done.param("code").unwrap();
    let (status, tokens) = flow::exchange(&server, &client_id, &code, REDIRECT, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let claims = payload(access);
    assert_eq!(claims["sub"], "ada@example.com");
    let mut roles: Vec<&str> = claims["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    roles.sort_unstable();
    // eng → dev, plus the default; "visitors" maps to nothing.
    assert_eq!(roles, ["dev", "reader"]);
    assert_eq!(flow::mcp_status(&server, "/mcp", access).await, 200);
}

#[tokio::test]
async fn idp_callback_in_another_browser_is_refused() {
    let idp = provider(None, false).await;
    let server = serve(&idp);
    let mut b = Browser::default();
    let (link, _, _) = login_link(&server, &mut b).await;
    let to_idp = b.get(&server.url(&link)).await;
    let back = b.get(to_idp.location.as_deref().unwrap()).await;
    // The victim's browser (no cookie of the request) is sent the attacker's callback.
    let page = Browser::default()
        .get(back.location.as_deref().unwrap())
        .await;
    assert_eq!(page.status, 400);
    server.audited("oauth/login", Some("idp_bad_state")).await;
}

#[tokio::test]
async fn idp_start_for_an_unknown_request_or_another_browser_is_refused() {
    let idp = provider(None, false).await;
    let server = serve(&idp);
    let page = Browser::default()
        .get(&server.url("/oauth/upstream/start?request=nope"))
        .await;
    assert_eq!(page.status, 400);
    assert!(page.location.is_none());
    server.audited("oauth/login", Some("unknown_request")).await;
    let (link, _, _) = login_link(&server, &mut Browser::default()).await;
    let page = Browser::default().get(&server.url(&link)).await;
    assert_eq!(page.status, 400);
    assert!(page.location.is_none());
    server
        .audited("oauth/login", Some("csrf_cookie_mismatch"))
        .await;
}

#[tokio::test]
async fn idp_wrong_issuer_is_refused() {
    let t: Tamper = Box::new(|c| c["iss"] = json!("http://127.0.0.1:1"));
    refused_with(Some(t), false, "idp_wrong_issuer").await;
}

#[tokio::test]
async fn idp_wrong_audience_is_refused() {
    let t: Tamper = Box::new(|c| c["aud"] = json!("another-app"));
    refused_with(Some(t), false, "idp_wrong_audience").await;
}

#[tokio::test]
async fn idp_wrong_nonce_is_refused() {
    let t: Tamper = Box::new(|c| c["nonce"] = json!("Hq7Rk2Wm9Pz4"));
    refused_with(Some(t), false, "idp_bad_nonce").await;
}

#[tokio::test]
async fn idp_expired_id_token_is_refused() {
    let t: Tamper = Box::new(|c| {
        c["iat"] = json!(now() - 900);
        c["exp"] = json!(now() - 600);
    });
    refused_with(Some(t), false, "idp_token_expired").await;
}

#[tokio::test]
async fn idp_bad_signature_is_refused() {
    refused_with(None, true, "idp_bad_signature").await;
}

#[tokio::test]
async fn idp_principal_of_wrong_form_is_refused() {
    let t: Tamper = Box::new(|c| c["email"] = json!("ada <script>"));
    refused_with(Some(t), false, "idp_bad_principal").await;
}
