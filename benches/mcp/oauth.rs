//! `relay-oauth`: the relay as its own OAuth 2.1 authorization server (issue 18). Owns the
//! config that turns it on (`[oauth_server]` with the issuer `http://127.0.0.1:PORT`, its state
//! in the config directory, one local user whose Argon2id hash uses cheap parameters) and the
//! one access token the harness gets at each start through the real flow, over HTTP as a
//! browser and an MCP client would: registration, authorization request with PKCE S256, the
//! login form, the consent form, the code exchange. Nothing here is measured; the load client
//! only sends the token (`http.rs`). The config directory itself is `servers.rs`'s.

use std::net::SocketAddr;

use anyhow::{bail, Context as _, Result};
use argon2::password_hash::{PasswordHasher as _, SaltString};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::{Response, StatusCode};

use crate::auth::{random_b64, USER};
use crate::servers::{self, ConfigDir};

/// Where the client says it wants the code: a loopback URI nobody listens on (the harness
/// reads the code from the redirect's `Location` and never follows it).
const REDIRECT_URI: &str = "http://127.0.0.1/bench/callback";

/// The local user's password (random per start; only its hash is in the config).
pub(crate) struct Login {
    password: String,
}

/// The Argon2id PHC string of `password` with cheap parameters (8 MiB, one pass): the login
/// happens once per start and is not what is measured.
fn password_hash(password: &str) -> Result<String> {
    let params = argon2::Params::new(8 * 1024, 1, 1, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(argon
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
        .to_string())
}

/// The issuer of the relay listening on `port` (the origin of `--listen`).
fn issuer(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Writes the config of the relay on `port`: the authorization server, its state under the
/// config directory (removed with it), tokens valid for an hour, one user with the role
/// `bench`, and the raised per-principal concurrency cap (`auth::limits_section`). The
/// listener and the child are on the command line (`systems.rs`).
pub(crate) fn write_config(port: u16) -> Result<(ConfigDir, Login)> {
    let password = random_b64(24);
    let quote = |s: &str| toml::Value::from(s).to_string();
    let text = format!(
        "{}\n[oauth_server]\nissuer = {}\nstate_dir = \"state\"\naccess_token_ttl = \"1h\"\n\
         name = \"mcp-relay bench\"\n\n[[oauth_server.users]]\nname = {}\n\
         password_hash = {}\nroles = [{}]\n",
        crate::auth::limits_section(),
        quote(&issuer(port)),
        quote(USER),
        quote(&password_hash(&password)?),
        quote(USER),
    );
    Ok((servers::write_dir(port, &text)?, Login { password }))
}

/// A browser's part of the flow: no redirects followed, the relay's cookies kept and sent.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn remember(&mut self, res: &Response) {
        for v in res.headers().get_all(SET_COOKIE) {
            let Some((name, value)) = v
                .to_str()
                .ok()
                .and_then(|s| s.split(';').next())
                .and_then(|p| p.split_once('='))
            else {
                continue;
            };
            let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
            self.cookies.retain(|(n, _)| *n != name);
            if !value.is_empty() {
                self.cookies.push((name, value));
            }
        }
    }

    fn cookie_header(&self) -> String {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        pairs.join("; ")
    }

    /// GET `path` (absolute path, with its query) with the cookies.
    async fn get(&mut self, path: &str) -> Result<Response> {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .with_context(|| format!("GET {}", path.split('?').next().unwrap_or(path)))?;
        self.remember(&res);
        Ok(res)
    }

    /// POST a form to `path` as the issuer's own page would (cookies, `Origin`).
    async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Result<Response> {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .header(ORIGIN, self.base.as_str())
            .form(form)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        self.remember(&res);
        Ok(res)
    }
}

/// The `value` of the form input named `name` in `html` (maud writes `name` before `value`;
/// the values are the relay's random tokens, so no entity decoding is needed).
fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_end = at + html[at..].find('>')?;
    let rest = &html[at..tag_end];
    let v = &rest[rest.find("value=\"")? + 7..];
    Some(v[..v.find('"')?].to_owned())
}

/// A 200 HTML page's `request` and `csrf` fields.
async fn form_fields(res: Response, what: &str) -> Result<(String, String)> {
    let status = res.status();
    let html = res.text().await.unwrap_or_default();
    if status != StatusCode::OK {
        bail!("{what}: HTTP {status}: {}", page_text(&html));
    }
    match (input_value(&html, "request"), input_value(&html, "csrf")) {
        (Some(r), Some(c)) => Ok((r, c)),
        _ => bail!("{what}: no form with `request` and `csrf` on the page"),
    }
}

/// A short readable excerpt of an HTML or JSON answer for an error message.
fn page_text(body: &str) -> String {
    let body = body.rsplit("</style>").next().unwrap_or(body);
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = out.split_whitespace().collect();
    words.join(" ").chars().take(300).collect()
}

/// The `Location` of a 303 answer.
fn see_other(res: &Response, what: &str) -> Result<String> {
    if res.status() != StatusCode::SEE_OTHER {
        bail!(
            "{what}: HTTP {} where a redirect was expected",
            res.status()
        );
    }
    res.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .with_context(|| format!("{what}: a redirect without Location"))
}

/// The code of the redirect to the client, its `state` checked.
fn code_from(location: &str, state: &str) -> Result<String> {
    let url = url::Url::parse(location).context("the redirect to the client")?;
    let get = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    if let Some(e) = get("error") {
        bail!("the relay redirected with error={e}");
    }
    if get("state").as_deref() != Some(state) {
        bail!("the redirect to the client carries another state");
    }
    get("code").context("the redirect to the client has no code")
}

/// Registers a public client with the loopback redirect URI; its `client_id`.
async fn register(b: &Browser) -> Result<String> {
    let body = serde_json::json!({
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "client_name": "mcp-relay bench",
    });
    let res = b
        .http
        .post(format!("{}/oauth/register", b.base))
        .json(&body)
        .send()
        .await
        .context("POST /oauth/register")?;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    if status == StatusCode::NOT_FOUND || status == StatusCode::NOT_IMPLEMENTED {
        bail!(
            "unsupported: the relay under test has no client registration (POST /oauth/register: \
             HTTP {status}); a relay with the built-in authorization server is needed"
        );
    }
    if status != StatusCode::CREATED {
        bail!("POST /oauth/register: HTTP {status}: {}", page_text(&text));
    }
    let v: serde_json::Value = serde_json::from_str(&text).context("registration answer")?;
    v["client_id"]
        .as_str()
        .map(str::to_owned)
        .context("registration answer without client_id")
}

/// Logs in (and consents, unless the relay remembers it) for the pending authorization
/// request on the page `login`; the code the relay redirects to the client with.
async fn log_in(b: &mut Browser, login: Response, password: &str, state: &str) -> Result<String> {
    let (request, csrf) = form_fields(login, "GET /oauth/authorize (the login page)").await?;
    let form = [
        ("request", request.as_str()),
        ("csrf", csrf.as_str()),
        ("username", USER),
        ("password", password),
    ];
    let res = b.post_form("/oauth/login", &form).await?;
    let next = see_other(&res, "POST /oauth/login")?;
    if next.starts_with(REDIRECT_URI) {
        return code_from(&next, state);
    }
    let page = b.get(&next).await?;
    let (request, csrf) = form_fields(page, "GET /oauth/consent").await?;
    let form = [
        ("request", request.as_str()),
        ("csrf", csrf.as_str()),
        ("decision", "approve"),
    ];
    let res = b.post_form("/oauth/consent", &form).await?;
    code_from(&see_other(&res, "POST /oauth/consent")?, state)
}

/// The whole flow against the relay at `addr`: an access token for its resource `/mcp`.
pub(crate) async fn token(addr: SocketAddr, login: &Login) -> Result<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut b = Browser {
        http,
        base: issuer(addr.port()),
        cookies: Vec::new(),
    };
    let resource = format!("{}/mcp", b.base);
    let client_id = register(&b).await?;
    let verifier = random_b64(32);
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(digest.as_ref());
    let state = random_b64(16);
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", &state)
        .append_pair("resource", &resource)
        .finish();
    let page = b.get(&format!("/oauth/authorize?{query}")).await?;
    let code = log_in(&mut b, page, &login.password, &state).await?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", client_id.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
        ("resource", resource.as_str()),
    ];
    let res = b
        .http
        .post(format!("{}/oauth/token", b.base))
        .form(&form)
        .send()
        .await
        .context("POST /oauth/token")?;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    if status == StatusCode::NOT_IMPLEMENTED {
        bail!("unsupported: the relay under test has no token endpoint yet (POST /oauth/token: HTTP 501)");
    }
    if status != StatusCode::OK {
        bail!("POST /oauth/token: HTTP {status}: {}", page_text(&text));
    }
    let v: serde_json::Value = serde_json::from_str(&text).context("token answer")?;
    v["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("token answer without access_token")
}
