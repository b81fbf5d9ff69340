//! A browser stand-in for the console: keeps the console session's cookie, sends `Origin`
//! on posts as a browser does, reads the CSRF token out of a page; plus the relays the
//! console tests run (a token-protected admin listener, a loopback-open one, one with
//! `[oauth_server]` administrators).

use std::path::PathBuf;

use crate::support::{eventually, patience, tempdir, Relay, FIXTURE};

/// The admin token of the tests' relays (random-looking, as the relay expects of secrets).
pub const TOKEN: &str = "Vq3-xT8b-Rm2k-Wd7p-Hs4n-Lc9f";
pub const TOKEN_VAR: &str = "CONSOLE_ADMIN_TOKEN";

/// The exact Content-Security-Policy of every console answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// One browser on the console.
pub struct Browser {
    pub base: String,
    http: reqwest::Client,
    pub cookie: Option<String>,
    /// Sent as `Authorization: Bearer` when set (a script, not a browser).
    pub bearer: Option<String>,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(patience())
                .build()
                .unwrap(),
            cookie: None,
            bearer: None,
        }
    }

    fn with_credentials(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("mcp-relay-console={c}"));
        }
        if let Some(t) = &self.bearer {
            req = req.bearer_auth(t);
        }
        req
    }

    /// `GET path`; keeps a cookie the answer sets.
    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let req = self.http.get(format!("{}{path}", self.base));
        let res = self.with_credentials(req).send().await.unwrap();
        self.keep_cookie(&res);
        res
    }

    /// `GET path`: status and body.
    pub async fn page(&mut self, path: &str) -> (u16, String) {
        let res = self.get(path).await;
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// A form post with this console's own origin (as the browser sends it).
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let origin = self.base.clone();
        self.post_from(path, form, Some(&origin)).await
    }

    /// A form post with `origin` (`None`: no `Origin` header, as a script sends it).
    pub async fn post_from(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let res = self.with_credentials(req).send().await.unwrap();
        self.keep_cookie(&res);
        res
    }

    fn keep_cookie(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            if let Some(rest) = v.strip_prefix("mcp-relay-console=") {
                let value = rest.split(';').next().unwrap();
                self.cookie = (!value.is_empty()).then(|| value.to_owned());
            }
        }
    }

    /// Logs in with the admin token through the form; the answer.
    pub async fn login_token(&mut self, token: &str) -> reqwest::Response {
        self.post("/ui/login", &[("token", token)]).await
    }

    /// The CSRF token of the forms on `path`.
    pub async fn csrf(&mut self, path: &str) -> String {
        let (status, html) = self.page(path).await;
        assert_eq!(status, 200, "{html}");
        csrf_of(&html).unwrap_or_else(|| panic!("no csrf field in {html}"))
    }
}

/// The value of the first `name="csrf"` hidden field of a page.
pub fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\"")?;
    let rest = &html[at..];
    let v = rest.split("value=\"").nth(1)?.split('"').next()?;
    Some(v.to_owned())
}

/// Undoes maud's escaping of text (`&amp;`, `&lt;`, `&gt;`, `&quot;`, `&#39;`).
pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The admin listener's base URL, reachable from the test (a wildcard bind is asked on
/// 127.0.0.1).
pub async fn admin_of(relay: &Relay) -> String {
    relay.admin_base().await.replace("0.0.0.0", "127.0.0.1")
}

/// A relay around the fixture with a loopback admin listener that needs [`TOKEN`], plus
/// `extra` serve flags.
pub fn token_relay(extra: &[&str]) -> Relay {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-env",
        TOKEN_VAR,
    ];
    args.extend_from_slice(extra);
    args.extend(["--", FIXTURE]);
    Relay::start_env(&args, &[(TOKEN_VAR, TOKEN)])
}

/// A relay whose configuration is the file `config` (kept for the test to change), with a
/// loopback admin listener that needs [`TOKEN`].
pub fn config_relay(config: &std::path::Path, extra: &[&str]) -> Relay {
    let config = config.to_str().unwrap();
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config,
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-env",
        TOKEN_VAR,
    ];
    args.extend_from_slice(extra);
    Relay::start_env(&args, &[(TOKEN_VAR, TOKEN)])
}

/// A `[servers.NAME]` table running the fixture.
pub fn server(name: &str) -> String {
    format!("[servers.{name}]\ncommand = [{FIXTURE:?}, \"echo\"]\n")
}

/// Writes `toml` to a fresh `relay.toml`; its path.
pub fn write_config(toml: &str) -> PathBuf {
    let path = tempdir().join("relay.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// The JSON audit records in `file` that `pred` selects, waiting until one is there.
pub async fn audited(
    file: &std::path::Path,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut found = None;
    eventually("the audit record", || {
        found = std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|r| pred(r));
        found.is_some()
    })
    .await;
    found.unwrap()
}
