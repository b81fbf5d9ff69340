//! The console's JSON snapshots (`GET /ui/api/VIEW`): what each page's script redraws from,
//! and what the live stream (`stream.rs`) sends every second through [`view`].
//!
//! Owns: the snapshot documents (servers, sessions, traffic, audit, health) and their query
//! filters. Does not own: the data (`Console`, `telemetry/live.rs`), rendering (`pages/`),
//! the stream's pacing and bounds (`stream.rs`).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::Deps;
use crate::telemetry::live::Filter;

/// Audit records a snapshot holds when the query does not say (`limit`).
const AUDIT_LIMIT: usize = 200;
/// Sessions a snapshot lists at most (the count says how many there are).
const SESSIONS_LIMIT: usize = 1000;

/// `GET /ui/api/VIEW`: one view's JSON. `servers`; `sessions` (query `principal`, `server`);
/// `traffic`; `audit` (query `principal`, `server`, `tool`, `outcome`, `after=SEQ`,
/// `limit`); `health` (the deep check: each server's children pinged). Unknown: 404.
pub(crate) async fn snapshot(
    State(deps): State<Deps>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if name == "health" {
        return axum::Json(deps.console.deep_health().await).into_response();
    }
    match view(&deps, &name, &query) {
        Some(doc) => axum::Json(doc).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The document of the view `name` with the page's `query`, or `None` for a name that is not
/// a view (`health` is not one either: its pings are [`snapshot`]'s, on request only).
pub(crate) fn view(deps: &Deps, name: &str, query: &HashMap<String, String>) -> Option<Value> {
    let doc = match name {
        "servers" => json!(deps.console.servers()),
        "sessions" => sessions(deps, query),
        "traffic" => json!(deps.live.traffic()),
        "audit" => audit(deps, query),
        _ => return None,
    };
    Some(doc)
}

/// The query's value for `key`, when given and not empty.
fn given<'a>(query: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    query.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

/// The audit page's filter from a query (`principal`, `server`, `tool`, `outcome`).
pub(crate) fn filter_of(query: &HashMap<String, String>) -> Filter {
    let field = |k: &str| given(query, k).map(str::to_owned);
    Filter {
        principal: field("principal"),
        server: field("server"),
        tool: field("tool"),
        outcome: field("outcome"),
    }
}

/// Open sessions (those of `principal` and on `server` when given), the oldest first.
fn sessions(deps: &Deps, query: &HashMap<String, String>) -> Value {
    let mut all = deps.console.sessions();
    if let Some(p) = given(query, "principal") {
        all.retain(|s| s.principal == p);
    }
    if let Some(server) = given(query, "server") {
        all.retain(|s| s.server == server);
    }
    all.sort_by_key(|s| std::cmp::Reverse(s.age_seconds));
    all.truncate(SESSIONS_LIMIT);
    json!(all)
}

/// `{"last_seq": N, "records": [{"seq": N, "record": {...}}, ...]}`, oldest first: the kept
/// records that pass the filter, after `after`, the last `limit` of them.
fn audit(deps: &Deps, query: &HashMap<String, String>) -> Value {
    let after = given(query, "after")
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let limit = given(query, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(AUDIT_LIMIT)
        .min(crate::telemetry::live::RECENT);
    let records: Vec<Value> = deps
        .live
        .since(&filter_of(query), after, limit)
        .into_iter()
        .map(|e| json!({ "seq": e.seq, "record": e.json() }))
        .collect();
    json!({ "last_seq": deps.live.last_seq(), "records": records })
}
