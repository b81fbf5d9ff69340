//! The company identity provider leg (`/oauth/upstream/start`, `/oauth/upstream/callback`)
//! against a stand-in OpenID provider run here: discovery, a JWKS with a P-256 key made by the
//! test, `/authorize` that sends the browser straight back with a code, and `/token` that
//! checks PKCE and the client's secret and answers an ID token whose claims each test sets.
//! The browser is reqwest with redirects followed by hand.

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
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

use crate::support::{poll_until, tempdir, Relay, FIXTURE};

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

/// A relay whose authorization server logs people in at `idp`; its audit log.
struct Setup {
    relay: Relay,
    issuer: String,
    state: PathBuf,
    audit: PathBuf,
}

async fn serve(idp: &str) -> Setup {
    let port = StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempdir();
    let issuer = format!("http://127.0.0.1:{port}");
    let state = dir.join("state");
    let audit = dir.join("audit.jsonl");
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        format!(
            r#"[oauth_server]
issuer = "{issuer}"
state_dir = "{}"

[oauth_server.upstream]
issuer = "{idp}"
client_id = "{CLIENT_ID}"
client_secret = "env:IDP_CLIENT_SECRET"
principal_claim = "email"
default_roles = ["reader"]
roles = {{ eng = ["dev"], ops = ["admin"] }}
"#,
            state.display()
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{port}");
    let args = [
        "serve",
        "--listen",
        &listen,
        "--config",
        config.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
        "--",
        FIXTURE,
    ];
    let relay = Relay::start_env(&args, &[("IDP_CLIENT_SECRET", CLIENT_SECRET)]);
    // The authorization server's state is open once its metadata is served.
    let metadata = format!("{issuer}/.well-known/oauth-authorization-server");
    poll_until(
        "the authorization server",
        || async { reqwest::get(&metadata).await.map(|r| r.status()).ok() },
        |s| *s == Some(StatusCode::OK),
    )
    .await;
    Setup {
        relay,
        issuer,
        state,
        audit,
    }
}

/// A pending authorization request as `/oauth/authorize` leaves it, written to the relay's
/// state: its id.
async fn pending_request(state: &Path, resource: &str) -> String {
    let url = format!("sqlite://{}", state.join("oauth.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let id = format!("r{}", now() ^ 0x5a5a_1234);
    let params = json!({
        "client_id": "app-client-1", "redirect_uri": "http://127.0.0.1:9/cb", "state": "xyz",
        "challenge": URL_SAFE_NO_PAD.encode([7u8; 32]), "resource": resource, "scope": "mcp",
    });
    sqlx::query("INSERT INTO oauth_requests (id, params, csrf, upstream, expires) VALUES ($1, $2, $3, NULL, $4)")
        .bind(&id)
        .bind(params.to_string())
        .bind("Vt5rQ2wXk8")
        .bind(now() + 600)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    id
}

/// The browser's way: start at the relay, through the provider, back to the callback. The
/// callback's answer, and the callback URL with the cookie (to replay it).
async fn browse(s: &Setup, request: &str) -> (reqwest::Response, String, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = format!("{}/oauth/upstream/start?request={request}", s.issuer);
    let res = http.get(&start).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let to_idp = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let res = http.get(&to_idp).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let back = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert!(back.starts_with(&format!("{}/oauth/upstream/callback?", s.issuer)));
    let res = http
        .get(&back)
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    (res, back, cookie)
}

/// The audit records of logins, once there are `n`.
async fn logins(audit: &Path, n: usize) -> Vec<Value> {
    poll_until(
        "login audit records",
        || async {
            std::fs::read_to_string(audit)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|r| r["method"] == "oauth/login")
                .collect::<Vec<_>>()
        },
        |v| v.len() >= n,
    )
    .await
}

async fn refused_with(tamper: Option<Tamper>, forged: bool, reason: &str) {
    let idp = provider(tamper, forged).await;
    let s = serve(&idp).await;
    let id = pending_request(&s.state, &format!("{}/mcp", s.issuer)).await;
    let (res, _, _) = browse(&s, &id).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get(header::SET_COOKIE).is_none());
    let body = res.text().await.unwrap();
    assert!(!body.contains("ada@example.com"), "{body}");
    let records = logins(&s.audit, 1).await;
    assert_eq!(records[0]["decision"], "deny", "{records:?}");
    assert_eq!(records[0]["reason"], reason, "{records:?}");
    drop(s.relay);
}

#[tokio::test]
async fn idp_good_login_is_audited_and_goes_on_to_the_login_session() {
    let idp = provider(None, false).await;
    let s = serve(&idp).await;
    let id = pending_request(&s.state, &format!("{}/mcp", s.issuer)).await;
    let (res, back, cookie) = browse(&s, &id).await;
    assert_ne!(res.status(), StatusCode::BAD_REQUEST);
    let records = logins(&s.audit, 1).await;
    assert_eq!(records[0]["decision"], "allow", "{records:?}");
    assert_eq!(records[0]["principal"], "ada@example.com");
    assert_eq!(records[0]["name"], "app-client-1");
    // The leg is single use: the same callback again is refused.
    let again = reqwest::Client::new()
        .get(&back)
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let records = logins(&s.audit, 2).await;
    assert_eq!(records[1]["reason"], "idp_bad_state");
}

#[tokio::test]
async fn idp_callback_without_the_browser_cookie_is_refused() {
    let idp = provider(None, false).await;
    let s = serve(&idp).await;
    let id = pending_request(&s.state, &format!("{}/mcp", s.issuer)).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = format!("{}/oauth/upstream/start?request={id}", s.issuer);
    let res = http.get(&start).send().await.unwrap();
    let to_idp = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let res = http.get(&to_idp).send().await.unwrap();
    let back = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let res = http.get(&back).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let records = logins(&s.audit, 1).await;
    assert_eq!(records[0]["reason"], "idp_bad_state");
}

#[tokio::test]
async fn idp_start_for_an_unknown_request_is_refused() {
    let idp = provider(None, false).await;
    let s = serve(&idp).await;
    let start = format!("{}/oauth/upstream/start?request=nope", s.issuer);
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&start)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get(header::LOCATION).is_none());
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
