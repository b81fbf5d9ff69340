//! A local mock of a protected MCP server and its authorization server for the OAuth client
//! tests: PRM, AS metadata, registration, authorize, token and an MCP endpoint that checks
//! the bearer token; each behaviour can be switched off or made hostile ([`MockCfg`]).

use super::*;

#[derive(Default)]
pub(super) struct MockCfg {
    /// PRM `resource` (default: the server URL).
    pub(super) resource: Option<String>,
    /// AS metadata `issuer` (default: the base URL).
    pub(super) issuer: Option<String>,
    /// AS metadata `authorization_endpoint` (default: base + /authorize).
    pub(super) authorize: Option<String>,
    pub(super) no_s256: bool,
    pub(super) no_registration: bool,
    pub(super) iss_param: bool,
    /// `iss` the authorize redirect carries (when `iss_param`), default the issuer.
    pub(super) wrong_iss: bool,
    pub(super) cimd: bool,
    /// 404 for PRM / AS metadata (a 2025-03-26 server).
    pub(super) no_prm: bool,
    pub(super) no_as_meta: bool,
}

#[derive(Default)]
pub(super) struct Mock {
    pub(super) base: String,
    pub(super) cfg: MockCfg,
    pub(super) registrations: AtomicUsize,
    pub(super) authorizations: AtomicUsize,
    pub(super) code_grants: AtomicUsize,
    pub(super) refreshes: AtomicUsize,
    pub(super) issued: AtomicUsize,
    pub(super) last_authorize: Mutex<HashMap<String, String>>,
    pub(super) last_token: Mutex<HashMap<String, String>>,
    pub(super) challenges: Mutex<HashMap<String, String>>,
    /// Scope asked for by code, and the access tokens granted `write`.
    pub(super) scopes: Mutex<HashMap<String, String>>,
    pub(super) writers: Mutex<Vec<String>>,
    pub(super) mcp_refusals: AtomicUsize,
}

type M = State<Arc<Mock>>;

pub(super) async fn start(cfg: MockCfg) -> Arc<Mock> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mock = Arc::new(Mock {
        base,
        cfg,
        ..Mock::default()
    });
    let app = Router::new()
        .route("/.well-known/oauth-protected-resource/mcp", get(prm))
        .route("/.well-known/oauth-authorization-server", get(as_meta))
        .route("/register", post(register))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/mcp", post(mcp))
        .with_state(mock.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    mock
}

impl Mock {
    pub(super) fn server(&self) -> String {
        format!("{}/mcp", self.base)
    }
    pub(super) fn issuer(&self) -> String {
        self.cfg.issuer.clone().unwrap_or_else(|| self.base.clone())
    }
    pub(super) fn challenge(&self) -> String {
        format!(
            "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\", scope=\"read\"",
            self.base
        )
    }
}

async fn prm(State(m): M) -> Response {
    if m.cfg.no_prm {
        return StatusCode::NOT_FOUND.into_response();
    }
    Json(json!({
        "resource": m.cfg.resource.clone().unwrap_or_else(|| m.server()),
        "authorization_servers": [m.base],
        "scopes_supported": ["read", "write"],
    }))
    .into_response()
}

async fn as_meta(State(m): M) -> Response {
    if m.cfg.no_as_meta {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut doc = json!({
        "issuer": m.issuer(),
        "authorization_endpoint": m.cfg.authorize.clone().unwrap_or_else(|| format!("{}/authorize", m.base)),
        "token_endpoint": format!("{}/token", m.base),
        "response_types_supported": ["code"],
        "client_id_metadata_document_supported": m.cfg.cimd,
        "authorization_response_iss_parameter_supported": m.cfg.iss_param,
    });
    if !m.cfg.no_s256 {
        doc["code_challenge_methods_supported"] = json!(["S256"]);
    }
    if !m.cfg.no_registration {
        doc["registration_endpoint"] = json!(format!("{}/register", m.base));
    }
    Json(doc).into_response()
}

async fn register(State(m): M, Json(body): Json<serde_json::Value>) -> Response {
    m.registrations.fetch_add(1, Ordering::SeqCst);
    assert_eq!(body["application_type"], "native");
    assert_eq!(body["token_endpoint_auth_method"], "none");
    let uri = body["redirect_uris"][0].as_str().unwrap_or_default();
    assert!(
        uri.starts_with("http://127.0.0.1:") && uri.ends_with("/callback"),
        "{uri}"
    );
    (
        StatusCode::CREATED,
        Json(json!({"client_id": "dcr-client"})),
    )
        .into_response()
}

async fn authorize(State(m): M, Query(q): Query<HashMap<String, String>>) -> Response {
    m.authorizations.fetch_add(1, Ordering::SeqCst);
    let code = format!("code-{}", m.authorizations.load(Ordering::SeqCst));
    if let Some(c) = q.get("code_challenge") {
        m.challenges.lock().unwrap().insert(code.clone(), c.clone());
    }
    let scope = q.get("scope").cloned().unwrap_or_default();
    m.scopes.lock().unwrap().insert(code.clone(), scope);
    let mut loc = format!(
        "{}?code={code}&state={}",
        q.get("redirect_uri").cloned().unwrap_or_default(),
        q.get("state").cloned().unwrap_or_default()
    );
    if m.cfg.iss_param {
        let iss = if m.cfg.wrong_iss {
            "https://evil.example".to_owned()
        } else {
            m.issuer()
        };
        loc.push_str(&format!(
            "&iss={}",
            iss.replace(':', "%3A").replace('/', "%2F")
        ));
    }
    *m.last_authorize.lock().unwrap() = q;
    (StatusCode::FOUND, [("location", loc)]).into_response()
}

async fn token(State(m): M, Form(f): Form<HashMap<String, String>>) -> Response {
    let n = m.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let ok = match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            m.code_grants.fetch_add(1, Ordering::SeqCst);
            let challenge = f
                .get("code")
                .and_then(|c| m.challenges.lock().unwrap().get(c).cloned());
            let verifier = f.get("code_verifier").map(|v| pkce::s256(v));
            challenge.is_some() && challenge == verifier
        }
        Some("refresh_token") => {
            m.refreshes.fetch_add(1, Ordering::SeqCst);
            // Slow enough for a concurrent bridge to be waiting on the lock.
            tokio::time::sleep(Duration::from_millis(200)).await;
            f.get("refresh_token").is_some_and(|r| r.starts_with("rt-"))
        }
        _ => false,
    };
    let write = f
        .get("code")
        .and_then(|c| m.scopes.lock().unwrap().get(c).cloned())
        .is_some_and(|s| s.split(' ').any(|s| s == "write"));
    if write && ok {
        m.writers.lock().unwrap().push(format!("at-{n}"));
    }
    *m.last_token.lock().unwrap() = f;
    if !ok {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    Json(json!({
        "access_token": format!("at-{n}"),
        "token_type": "Bearer",
        "refresh_token": format!("rt-{n}"),
        "expires_in": 3600,
    }))
    .into_response()
}

/// The MCP server: 401 without a token of ours, 403 `insufficient_scope` for `tools/call`
/// without `write`, else an answer echoing the id.
async fn mcp(State(m): M, headers: axum::http::HeaderMap, body: String) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let msg: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if !token.starts_with("at-") {
        m.mcp_refusals.fetch_add(1, Ordering::SeqCst);
        let ch = m.challenge();
        return (StatusCode::UNAUTHORIZED, [("www-authenticate", ch)]).into_response();
    }
    if msg["method"] == "tools/call" && !m.writers.lock().unwrap().contains(&token) {
        m.mcp_refusals.fetch_add(1, Ordering::SeqCst);
        let ch = "Bearer error=\"insufficient_scope\", scope=\"read write\"".to_owned();
        return (StatusCode::FORBIDDEN, [("www-authenticate", ch)]).into_response();
    }
    let result = json!({"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "m", "version": "1"}});
    Json(json!({"jsonrpc": "2.0", "id": msg["id"], "result": result})).into_response()
}
