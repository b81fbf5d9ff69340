//! Test driver for the built-in authorization server: a relay with `[oauth_server]` on a free
//! loopback port (the issuer must name it before it starts), a client registered over HTTP,
//! and a browser stand-in that keeps cookies and fills the HTML forms (no JavaScript needed:
//! the pages are plain forms).

use std::collections::HashMap;
use std::path::PathBuf;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::{tempdir, Relay};

/// A password a test user logs in with (random-looking, as the relay expects of secrets).
pub const PASSWORD: &str = "Xq7-vR2m-Lp9w-Tz4k";
pub const USER: &str = "alice";

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An Argon2id PHC string for `password` (cheap parameters: tests hash many).
pub fn phc(password: &str) -> String {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let params = argon2::Params::new(8 * 1024, 1, 1, None).unwrap();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    a.hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string()
}

/// A relay with the authorization server on, around `mcp-relay demo-server`.
pub struct AuthRelay {
    pub relay: Relay,
    pub issuer: String,
    pub dir: PathBuf,
    pub audit: PathBuf,
    port: u16,
    extra: String,
    args: Vec<String>,
}

impl AuthRelay {
    /// `extra` is appended to the config file (more `[oauth_server]` keys go first in it,
    /// before any other table); `args` are more `serve` flags.
    pub fn start(extra: &str, args: &[&str]) -> AuthRelay {
        let dir = tempdir();
        AuthRelay::start_in(dir, free_port(), extra, args)
    }

    /// Starts (or restarts) in `dir` on `port`: the state in `dir` survives.
    pub fn start_in(dir: PathBuf, port: u16, extra: &str, args: &[&str]) -> AuthRelay {
        let issuer = format!("http://127.0.0.1:{port}");
        let audit = dir.join("audit.jsonl");
        let toml = format!(
            "[audit]\nfile = \"{audit}\"\n\n[oauth_server]\nissuer = \"{issuer}\"\nstate_dir = \"{state}\"\n{extra}\n\n[[oauth_server.users]]\nname = \"{USER}\"\npassword_hash = \"{hash}\"\nroles = [\"admin\"]\n\n[[oauth_server.users]]\nname = \"bob\"\npassword_hash = \"{hash}\"\nroles = [\"viewer\"]\n",
            audit = audit.display(),
            state = dir.join("state").display(),
            hash = phc(PASSWORD),
        );
        let path = dir.join("relay.toml");
        std::fs::write(&path, toml).unwrap();
        let listen = format!("127.0.0.1:{port}");
        let mut all: Vec<String> =
            vec!["serve".into(), "--listen".into(), listen, "--config".into()];
        all.push(path.display().to_string());
        all.extend(args.iter().map(|s| s.to_string()));
        if !extra.contains("[servers.") {
            all.extend([
                "--".into(),
                crate::support::RELAY.into(),
                "demo-server".into(),
            ]);
        }
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let relay = Relay::start_raw(&refs);
        AuthRelay {
            relay,
            issuer,
            dir,
            audit,
            port,
            extra: extra.to_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Stops the relay and starts it again on the same port with the same state.
    pub fn restart(mut self) -> AuthRelay {
        self.relay.terminate();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        AuthRelay::start_in(self.dir.clone(), self.port, &self.extra, &args)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Registers a public client with these redirect URIs; its `client_id`.
    pub async fn register(&self, redirect_uris: &[&str]) -> String {
        let res = reqwest::Client::new()
            .post(self.url("/oauth/register"))
            .json(&json!({
                "redirect_uris": redirect_uris,
                "client_name": "Test Client",
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "registration");
        let body: Value = res.json().await.unwrap();
        body["client_id"].as_str().unwrap().to_owned()
    }

    /// The audit records of the authorization server (`transport: oauth`).
    pub fn audit_records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["transport"] == "oauth")
            .collect()
    }

    /// Waits until an audit record of `method` with `reason` exists.
    pub async fn audited(&self, method: &str, reason: Option<&str>) -> Value {
        let found = crate::support::poll_until(
            &format!("audit {method} {reason:?}"),
            || async {
                self.audit_records().into_iter().find(|r| {
                    r["method"] == method
                        && match reason {
                            Some(why) => r["reason"] == why,
                            None => r["decision"] == "allow",
                        }
                })
            },
            Option::is_some,
        )
        .await;
        found.unwrap()
    }
}

/// PKCE: a verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
    (verifier, challenge)
}

/// A browser stand-in: cookies kept, redirects not followed.
pub struct Browser {
    http: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

/// A page: status, location, body.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    /// The value of the hidden (or any) input `name`.
    pub fn field(&self, name: &str) -> Option<String> {
        let at = self.body.find(&format!("name=\"{name}\""))?;
        let tag_start = self.body[..at].rfind('<')?;
        let tag_end = at + self.body[at..].find('>')?;
        let tag = &self.body[tag_start..tag_end];
        let v = tag.find("value=\"")? + 7;
        let end = tag[v..].find('"')?;
        Some(
            tag[v..v + end]
                .replace("&amp;", "&")
                .replace("&quot;", "\""),
        )
    }

    /// A query parameter of the redirect location.
    pub fn param(&self, name: &str) -> Option<String> {
        let loc = self.location.as_deref()?;
        let url = reqwest::Url::parse(loc).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

impl Default for Browser {
    fn default() -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn page(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = match self.cookies.is_empty() {
            true => req,
            false => req.header("cookie", self.cookie_header()),
        };
        let res = req.send().await.unwrap();
        for v in res.headers().get_all("set-cookie") {
            let s = v.to_str().unwrap();
            let pair = s.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            match s.contains("Max-Age=0") {
                true => self.cookies.remove(k),
                false => self.cookies.insert(k.to_owned(), v.to_owned()),
            };
        }
        Page {
            status: res.status().as_u16(),
            location: res
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            headers: res.headers().clone(),
            body: res.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let req = self.http.get(url);
        self.page(req).await
    }

    /// Posts a form, with `Origin` as a browser would send it.
    pub async fn post(&mut self, url: &str, origin: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(url).header("origin", origin).form(form);
        self.page(req).await
    }
}

/// An authorization request's query for `client_id`.
pub fn authorize_url(
    server: &AuthRelay,
    client_id: &str,
    redirect: &str,
    challenge: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "st-81f2");
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    server.url(&format!("/oauth/authorize?{}", q.finish()))
}

/// Logs in on the page `login` shows; the page after.
pub async fn log_in(
    b: &mut Browser,
    server: &AuthRelay,
    login: &Page,
    user: &str,
    password: &str,
) -> Page {
    let request = login.field("request").expect("login form");
    let csrf = login.field("csrf").expect("csrf field");
    b.post(
        &server.url("/oauth/login"),
        &server.issuer,
        &[
            ("request", &request),
            ("csrf", &csrf),
            ("username", user),
            ("password", password),
        ],
    )
    .await
}

/// From the redirect to the consent page to the redirect to the client: approves.
pub async fn approve(b: &mut Browser, server: &AuthRelay, after_login: &Page) -> Page {
    let consent = b
        .get(&server.url(after_login.location.as_deref().expect("to consent")))
        .await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let request = consent.field("request").unwrap();
    let csrf = consent.field("csrf").unwrap();
    b.post(
        &server.url("/oauth/consent"),
        &server.issuer,
        &[
            ("request", &request),
            ("csrf", &csrf),
            ("decision", "approve"),
            ("remember", "yes"),
        ],
    )
    .await
}

/// The whole browser part: authorize → login → consent; the code.
pub async fn code_for(
    server: &AuthRelay,
    client_id: &str,
    redirect: &str,
    challenge: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut b = Browser::default();
    let login = b
        .get(&authorize_url(
            server, client_id, redirect, challenge, extra,
        ))
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let after = log_in(&mut b, server, &login, USER, PASSWORD).await;
    assert_eq!(after.status, 303, "{}", after.body);
    // A consent given before: the login goes straight back to the client.
    if let Some(code) = after.param("code") {
        return code;
    }
    let done = approve(&mut b, server, &after).await;
    assert_eq!(done.status, 303, "{}", done.body);
    done.param("code").expect("a code")
}

/// `POST /oauth/token` with `form`; status and JSON.
pub async fn token(server: &AuthRelay, form: &[(&str, &str)]) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(server.url("/oauth/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Exchanges a code; status and JSON.
pub async fn exchange(
    server: &AuthRelay,
    client_id: &str,
    code: &str,
    redirect: &str,
    verifier: &str,
) -> (u16, Value) {
    token(
        server,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// `tools/list` at `path` with a bearer token: the HTTP status.
pub async fn mcp_status(server: &AuthRelay, path: &str, token: &str) -> u16 {
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    reqwest::Client::new()
        .post(server.url(path))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
