//! The console's pages, rendered on the server (maud: escaped by construction), and its
//! static assets (one stylesheet, one script, shipped inside the binary).
//!
//! Owns: the servers, sessions, traffic and audit pages (one file each under `pages/`), the
//! filters they share with the live stream, the value formats they share with the script, the
//! assets. Does not own: the page frame (`layout.rs`), the live stream the script reads
//! (`stream.rs`) or the documents behind it (`events.rs`), the connect page (`connect.rs`),
//! authentication (`auth.rs`), what the action buttons do (`actions.rs`).
//!
//! Every page works without its script (the filters are GET forms, the actions POST forms);
//! the script only keeps the page current (`assets/console/console.js`).

mod audit;
mod servers;
mod sessions;
mod traffic;

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use serde_json::Value;

use super::layout::{self, Tab};
use super::{events, Deps, Operator};

/// The stylesheet, shipped inside the binary.
const CSS: &str = include_str!("../../../assets/console/console.css");
/// The pages' script, shipped inside the binary.
const JS: &str = include_str!("../../../assets/console/console.js");

/// The query of a page or of its stream: its filters (`principal`, `server`, `tool`,
/// `outcome`) and, for the audit feed, `after` (the last record already shown).
pub(crate) type Filters = HashMap<String, String>;

/// `GET /ui`: the servers page.
pub(crate) async fn index() -> Redirect {
    Redirect::to("/ui/servers")
}

/// `GET /ui/servers`.
pub(crate) async fn servers(State(deps): State<Deps>, op: Option<Extension<Operator>>) -> Response {
    let op = operator(op);
    let body = servers::render(&deps.console.servers(), &op);
    page("Servers", Tab::Servers, &op, "servers", body)
}

/// `GET /ui/sessions?principal=&server=`.
pub(crate) async fn sessions(
    State(deps): State<Deps>,
    op: Option<Extension<Operator>>,
    Query(q): Query<Filters>,
) -> Response {
    let op = operator(op);
    let body = sessions::render(&deps.console.sessions(), &q, &op);
    page("Sessions", Tab::Sessions, &op, "sessions", body)
}

/// `GET /ui/traffic`.
pub(crate) async fn traffic(State(deps): State<Deps>, op: Option<Extension<Operator>>) -> Response {
    let op = operator(op);
    let view = events::view(&deps, "traffic", &Filters::new()).unwrap_or(Value::Null);
    page(
        "Traffic",
        Tab::Traffic,
        &op,
        "traffic",
        traffic::render(&view),
    )
}

/// `GET /ui/audit?principal=&server=&tool=&outcome=`.
pub(crate) async fn audit(
    State(deps): State<Deps>,
    op: Option<Extension<Operator>>,
    Query(q): Query<Filters>,
) -> Response {
    let op = operator(op);
    // Read before the records: a record that comes in between is shown and not sent again.
    let last = deps.live.last_seq();
    let shown = deps.live.recent(&events::filter_of(&q), audit::MAX_ROWS);
    let body = audit::render(&shown, last, &q);
    page("Audit", Tab::Audit, &op, "audit", body)
}

/// `GET /ui/static/FILE`: the stylesheet and the script. Revalidated on each use (`no-cache`
/// with an `ETag`), so a new binary's assets are picked up at once.
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// The operator the guard put in the request (always there behind it; nobody otherwise).
fn operator(op: Option<Extension<Operator>>) -> Operator {
    op.map(|Extension(o)| o).unwrap_or(Operator {
        name: String::new(),
        csrf: None,
    })
}

/// A page in the shared frame, its script subscribed to `view`.
fn page(title: &str, tab: Tab, op: &Operator, view: &str, body: maud::Markup) -> Response {
    let markup = layout::page(title, tab, Some(op), Some(view), body);
    layout::respond(StatusCode::OK, markup)
}

/// A filter's value as given (`""` when absent).
fn filter<'a>(q: &'a Filters, key: &str) -> &'a str {
    q.get(key).map(|s| s.trim()).unwrap_or("")
}

/// A number of seconds as the pages show it (`42s`, `3m 5s`, `2h 10m`, `4d 3h`); the script's
/// `dur` format is the same.
fn dur(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A server's name as the pages show it (the main path's server is `main`); the script's
/// `server` format is the same.
fn server_label(name: &str) -> &str {
    if name.is_empty() {
        "main"
    } else {
        name
    }
}

/// A principal as the pages show it (an anonymous caller's is `""`: `anonymous`); the
/// script's `principal` format is the same.
fn principal_label(name: &str) -> &str {
    if name.is_empty() {
        "anonymous"
    } else {
        name
    }
}

/// An optional value, or `—`; the script shows `null` the same way.
fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "—".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_script_shows_them() {
        assert_eq!(dur(0), "0s");
        assert_eq!(dur(59), "59s");
        assert_eq!(dur(185), "3m 5s");
        assert_eq!(dur(7_800), "2h 10m");
        assert_eq!(dur(356_400), "4d 3h");
    }
}
