//! `/health`, `/ready` and, on the admin listener, `/metrics`.
//!
//! `/health` always answers 200 with the relay's state (status, session mode, active sessions,
//! children alive, invalid child stdout lines dropped, uptime, and each supervised upstream
//! slot's state: `ready`/`starting`/`backoff`/`open` with `retry_after_seconds`; the remote URL
//! of `--upstream` without credentials or query); `/health?deep=1` also pings each server's
//! children (JSON-RPC `ping`: `ping_ms` or `ping_error`, `hub/probes.rs`). `/ready` answers
//! 200 once the wrapped command is known to be spawnable (resolved at startup, the last spawn
//! did not fail, no shared child's circuit is open) and 503 otherwise and while draining.
//!
//! Without `--admin-listen` the probes are served by the main HTTP router (behind its guard).
//! With it, a separate plain-HTTP listener serves `/metrics` (Prometheus text 0.0.4),
//! `/health` and `/ready`, behind its own guard (SECURITY.md §1, CVE-2025-49596: admin surfaces
//! need Host checks and auth too): Host first (loopback names on a loopback bind, else
//! `--allowed-host`), no cross-origin browser request (an `Origin` naming the request's own
//! Host, a console page posting its form, is same-origin), then the bearer token of
//! `--admin-token-env` when configured; a non-loopback admin bind requires one.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

pub(crate) mod console;

use crate::config::admin::AdminConfig;
use crate::relay::Relay;
use crate::telemetry::metrics;
use crate::upstream::supervisor::{Slot, State as SlotState};
use crate::upstream::ServerSpec;

/// What the probes report on: the hub of relays (`hub.rs`; one relay, or several).
pub(crate) trait Probe: Send + Sync + 'static {
    /// The `/health` document.
    fn health(&self) -> Value;
    /// Whether `/ready` says 200.
    fn ready(&self) -> bool;
    /// The gauges of `/metrics`.
    fn gauges(&self) -> metrics::Snapshot;
    /// More `/metrics` text after the relay-wide families (the hub's per-server gauges).
    fn more_metrics(&self) -> String {
        String::new()
    }
    /// The `/health?deep=1` document: the `/health` one with each server's children pinged.
    fn deep_health(&self) -> futures_util::future::BoxFuture<'_, Value> {
        Box::pin(async move { self.health() })
    }
}

/// The gauges of one relay.
pub(crate) fn relay_gauges(relay: &Relay) -> metrics::Snapshot {
    metrics::Snapshot {
        sessions_active: relay.sessions_active() as u64,
        children_running: relay.children_alive() as u64,
        spare_children: relay.spares_ready() as u64,
        dropped_lines: relay.dropped_lines(),
        uptime: relay.uptime(),
        memory: relay.policy().limits.overload().reading(),
        overload_level: relay.policy().limits.overload().level() as u64,
    }
}

/// The admin listener's router: `/metrics`, `/health`, `/ready` of `probe`, and the console
/// (`/ui`) when `console` is given, behind its guard.
pub(crate) fn router<P: Probe>(
    probe: Arc<P>,
    cfg: &AdminConfig,
    console: Option<console::Deps>,
) -> Router {
    let guard_state = Arc::new(Guard {
        cfg: cfg.clone(),
        console: console.clone(),
    });
    let mut router = Router::new()
        .route("/metrics", get(metrics_text::<P>))
        .route("/health", get(health::<P>))
        .route("/ready", get(ready::<P>))
        .with_state(probe);
    if let Some(deps) = console {
        router = router.merge(console::routes(deps));
    }
    router.layer(middleware::from_fn_with_state(guard_state, guard))
}

/// What the admin guard checks against.
struct Guard {
    cfg: AdminConfig,
    /// The console, whose pages also accept a console session (`console/auth.rs`).
    console: Option<console::Deps>,
}

/// Host, Origin, then the credential; on every route, before routing. Console paths
/// (`/ui`) are the console's to authenticate (a bearer token or its session cookie).
async fn guard(State(g): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    let authority = req.uri().authority().map(|a| a.as_str().to_owned());
    if let Err(e) = g.cfg.guard.check(req.headers(), authority.as_deref()) {
        // A page the console served posting its form back (same origin) is not cross-origin.
        let same = matches!(e, crate::error::Error::OriginDenied)
            && console::auth::same_origin(req.headers());
        if !same {
            return e.into_response();
        }
    }
    if let Some(deps) = g
        .console
        .as_ref()
        .filter(|_| console::owns(req.uri().path()))
    {
        return match console::auth::authenticate(deps, &mut req).await {
            Ok(operator) => {
                req.extensions_mut().insert(operator);
                next.run(req).await
            }
            Err(refused) => *refused,
        };
    }
    if let Some(token) = &g.cfg.token {
        let given = bearer(req.headers());
        if !given.is_some_and(|g| console::auth::same_secret(g, token)) {
            metrics::auth_failure(if given.is_some() {
                "admin_invalid_token"
            } else {
                "admin_missing_token"
            });
            return token_required();
        }
    }
    next.run(req).await
}

/// The `Authorization: Bearer` credential of a request.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&[u8]> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        })
        .map(|(_, t)| t.trim().as_bytes())
}

/// 401 with the admin realm's challenge.
pub(crate) fn token_required() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"mcp-relay-admin\""),
        )],
        "admin token required\n",
    )
        .into_response()
}

/// Answers 404 for `/health` and `/ready` on the main router (layered there by `app` when
/// the admin listener serves them).
pub(crate) async fn hide_probes(req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/health" | "/ready") {
        return StatusCode::NOT_FOUND.into_response();
    }
    next.run(req).await
}

/// `GET /metrics`: the Prometheus text exposition.
pub(crate) async fn metrics_text<P: Probe>(State(probe): State<Arc<P>>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&probe.gauges()) + &probe.more_metrics(),
    )
        .into_response()
}

/// `GET /health`; `?deep=1` pings each server's children (one check at a time).
pub(crate) async fn health<P: Probe>(
    State(probe): State<Arc<P>>,
    RawQuery(query): RawQuery,
) -> Json<Value> {
    let deep = query.is_some_and(|q| q.split('&').any(|p| p == "deep=1" || p == "deep=true"));
    match deep {
        true => Json(probe.deep_health().await),
        false => Json(probe.health()),
    }
}

/// The `/health` document of one relay.
pub(crate) fn relay_health(relay: &Relay) -> Value {
    let mut slots: Vec<Value> = relay
        .slots()
        .iter()
        .map(|s| slot_json(s, relay.session_mode_name()))
        .collect();
    slots.extend(relay.modern_slots().iter().map(|s| slot_json(s, "modern")));
    let upstream = match &relay.config().child {
        ServerSpec::Command(_) => json!({ "kind": "command" }),
        ServerSpec::Remote(r) => json!({ "kind": "remote", "url": public_url(&r.url()) }),
        ServerSpec::InProcess(_) => json!({ "kind": "aggregate" }),
    };
    json!({
        "status": if relay.is_draining() { "draining" } else { "ok" },
        "ready": relay.is_ready(),
        "session_mode": relay.session_mode_name(),
        "sessions": relay.sessions_active(),
        "connections": metrics::connections_open()
            .iter()
            .map(|(front, n)| (front.to_string(), json!(n)))
            .collect::<serde_json::Map<_, _>>(),
        "children": relay.children_alive(),
        "spare_children": relay.spares_ready(),
        "child_lines_dropped": relay.dropped_lines(),
        "uptime_seconds": relay.uptime().as_secs(),
        "memory": memory_json(relay),
        "version": env!("CARGO_PKG_VERSION"),
        "upstream": upstream,
        "slots": slots,
    })
}

/// Overload shedding's reading: bytes used, the budget, the level (`off` without a budget).
fn memory_json(relay: &Relay) -> Value {
    let policy = relay.policy();
    let overload = policy.limits.overload();
    match overload.reading() {
        Some((used, budget)) => json!({
            "used_bytes": used,
            "budget_bytes": budget,
            "level": overload.level().as_str(),
        }),
        None => json!({ "level": "off" }),
    }
}

/// One supervised slot: its pool, index, state (with the circuit's retry-after), child pid.
/// Per-identity slots are not named by identity (identities are callers' names).
fn slot_json(slot: &Slot, pool: &str) -> Value {
    let mut v = json!({ "pool": pool, "slot": slot.index(), "sessions": slot.audience().len() });
    let (state, extra) = match slot.state() {
        SlotState::Starting => ("starting", None),
        SlotState::Ready(up, _) => ("ready", (up.pid() != 0).then(|| ("pid", json!(up.pid())))),
        SlotState::Backoff => ("backoff", None),
        SlotState::Open(until) => {
            let left = until.saturating_duration_since(Instant::now()).as_secs();
            ("open", Some(("retry_after_seconds", json!(left.max(1)))))
        }
        SlotState::Stopped => ("stopped", None),
    };
    v["state"] = json!(state);
    if let Some((k, x)) = extra {
        v[k] = x;
    }
    v
}

/// A URL without userinfo, query or fragment (where credentials may hide).
fn public_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.cannot_be_a_base() => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(invalid)".to_owned(),
    }
}

/// `GET /ready`: 200 when ready, 503 otherwise.
pub(crate) async fn ready<P: Probe>(State(probe): State<Arc<P>>) -> (StatusCode, Json<Value>) {
    let ready = probe.ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_lose_credentials_and_queries() {
        assert_eq!(
            public_url("wss://u:p@h.example:8443/mcp?key=abc#f"),
            "wss://h.example:8443/mcp"
        );
        assert_eq!(public_url("tcp://10.0.0.1:9000"), "tcp://10.0.0.1:9000");
        assert_eq!(public_url("::"), "(invalid)");
    }
}
