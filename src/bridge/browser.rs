//! Opening the authorization URL and receiving its answer (SECURITY.md §6). [`open`] runs a
//! non-shell launcher (`xdg-open`, `open` on macOS, `explorer.exe` on Windows, or a configured
//! program) with the already validated URL as one argv element, and prints the URL on stderr
//! either way.
//! [`Callback`] is the loopback redirect listener: 127.0.0.1 only, `Host` must name it
//! (else 403), exact `state` (a wrong one answers 400 and the flow keeps waiting), single use
//! (a replay answers 409), plain-text answers that echo nothing from the request.
//! URL validation is `url_guard.rs`; the flow is `oauth.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use reqwest::Url;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why opening or receiving failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot listen on the callback port (in use?)")]
    Bind(#[source] std::io::Error),
    #[error("no authorization answer in time")]
    Timeout,
    #[error("authorization refused by the server: {0}")]
    Denied(String),
    #[error("callback listener stopped")]
    Closed,
}

/// How the authorization URL is opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Launcher {
    /// `open` on macOS, `explorer.exe` on Windows, `xdg-open` elsewhere (found on `PATH`).
    #[default]
    System,
    /// This program, given the URL as its only argument (tests).
    #[cfg(test)]
    Program(std::path::PathBuf),
    /// Print the URL only (tests).
    #[cfg(test)]
    None,
}

/// Opens `url` (which `url_guard::browser_url` returned) and prints it on stderr. True when
/// a launcher was started. The URL is one argv element; no shell is involved.
pub(crate) fn open(url: &Url, launcher: &Launcher) -> bool {
    eprintln!("mcp-relay: to authorize, open this URL in a browser:\n{url}");
    let program = match launcher {
        Launcher::System if cfg!(target_os = "macos") => std::path::PathBuf::from("open"),
        Launcher::System if cfg!(windows) => std::path::PathBuf::from("explorer.exe"),
        Launcher::System => std::path::PathBuf::from("xdg-open"),
        #[cfg(test)]
        Launcher::Program(p) => p.clone(),
        #[cfg(test)]
        Launcher::None => return false,
    };
    let child = tokio::process::Command::new(program)
        .arg(url.as_str())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(false)
        .spawn();
    match child {
        Ok(mut child) => {
            // Reap it; a launcher that hangs is left alone after a while.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
            });
            true
        }
        Err(_) => false,
    }
}

/// What a successful redirect brought.
pub(crate) struct Answer {
    pub code: String,
    pub iss: Option<String>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("code", &"[redacted]")
            .field("iss", &self.iss)
            .finish()
    }
}

#[derive(Debug, Default)]
struct Expect {
    state: Option<String>,
    used: bool,
}

#[derive(Debug)]
struct Shared {
    port: u16,
    expect: Mutex<Expect>,
    tx: mpsc::Sender<Result<Answer, Error>>,
}

/// The loopback redirect listener; stops when dropped.
#[derive(Debug)]
pub(crate) struct Callback {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Result<Answer, Error>>,
    stop: CancellationToken,
}

impl Drop for Callback {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Callback {
    /// Listens on 127.0.0.1:`port` (0: any free port).
    pub(crate) async fn bind(port: u16) -> Result<Callback, Error> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(Error::Bind)?;
        let port = listener.local_addr().map_err(Error::Bind)?.port();
        let (tx, rx) = mpsc::channel(4);
        let shared = Arc::new(Shared {
            port,
            expect: Mutex::new(Expect::default()),
            tx,
        });
        let stop = CancellationToken::new();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
        });
        Ok(Callback { shared, rx, stop })
    }

    #[cfg(test)]
    pub(crate) fn port(&self) -> u16 {
        self.shared.port
    }

    /// `http://127.0.0.1:<port>/callback`.
    pub(crate) fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.shared.port)
    }

    /// Arms the listener for one authorization with this `state`.
    pub(crate) fn expect(&self, state: &str) {
        let mut e = lock(&self.shared.expect);
        e.state = Some(state.to_owned());
        e.used = false;
    }

    /// Handles a redirect received some other way (headless mode): the same checks as an
    /// HTTP request to the listener. `location` must be this listener's redirect URI.
    pub(crate) fn deliver(&self, location: &Url) -> StatusCode {
        let expected = Url::parse(&self.redirect_uri()).ok();
        let same = expected
            .as_ref()
            .is_some_and(|e| e.origin() == location.origin() && e.path() == location.path());
        if !same {
            return StatusCode::FORBIDDEN;
        }
        receive(&self.shared, location.query().unwrap_or_default()).0
    }

    /// Waits for the answer to the armed authorization.
    pub(crate) async fn wait(&mut self, timeout: Duration) -> Result<Answer, Error> {
        match tokio::time::timeout(timeout, self.rx.recv()).await {
            Ok(Some(r)) => r,
            Ok(None) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout),
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    RawQuery(query): RawQuery,
) -> impl IntoResponse {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let port = shared.port;
    let (status, text) =
        if host != format!("127.0.0.1:{port}") && host != format!("localhost:{port}") {
            (StatusCode::FORBIDDEN, "forbidden\n")
        } else if uri.path() != "/callback" {
            (StatusCode::NOT_FOUND, "not found\n")
        } else {
            receive(&shared, query.as_deref().unwrap_or_default())
        };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        text,
    )
}

/// The redirect's query: exact `state`, once.
fn receive(shared: &Shared, query: &str) -> (StatusCode, &'static str) {
    let mut state = None;
    let mut code = None;
    let mut iss = None;
    let mut error = None;
    for (k, v) in form_urlencoded_pairs(query) {
        match k.as_str() {
            "state" => state = Some(v),
            "code" => code = Some(v),
            "iss" => iss = Some(v),
            "error" => error = Some(v),
            _ => {}
        }
    }
    let mut e = lock(&shared.expect);
    let Some(expected) = e.state.as_deref() else {
        return (StatusCode::BAD_REQUEST, "no authorization in progress\n");
    };
    let matches = state.as_deref().is_some_and(|s| {
        use subtle::ConstantTimeEq as _;
        s.len() == expected.len() && bool::from(s.as_bytes().ct_eq(expected.as_bytes()))
    });
    if !matches {
        return (
            StatusCode::BAD_REQUEST,
            "state mismatch; waiting for the right answer\n",
        );
    }
    if e.used {
        return (
            StatusCode::CONFLICT,
            "this authorization answer was already used\n",
        );
    }
    e.used = true;
    drop(e);
    let answer = match (error, code) {
        (Some(err), _) => Err(Error::Denied(safe_code(&err))),
        (None, Some(code)) => Ok(Answer { code, iss }),
        (None, None) => Err(Error::Denied("missing code".into())),
    };
    let text = if answer.is_ok() {
        "authorization complete; you may close this window\n"
    } else {
        "authorization failed; see the terminal\n"
    };
    let _ = shared.tx.try_send(answer);
    (StatusCode::OK, text)
}

/// An OAuth error code as it may be shown: RFC 6749 charset, capped.
fn safe_code(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

fn form_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
    Url::parse(&format!("http://x/?{q}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
