//! `/health` and `/ready`.
//!
//! `/health` always answers 200 with the relay's state (status, session mode, active sessions,
//! children alive, invalid child stdout lines dropped, uptime). `/ready` answers 200 once the
//! wrapped command is known to be spawnable (resolved at startup, the last spawn did not fail,
//! no shared child's circuit is open) and 503 otherwise and while draining.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::relay::Relay;

pub async fn health(State(relay): State<Arc<Relay>>) -> Json<Value> {
    Json(json!({
        "status": if relay.is_draining() { "draining" } else { "ok" },
        "session_mode": relay.session_mode_name(),
        "sessions": relay.sessions_active(),
        "children": relay.children_alive(),
        "child_lines_dropped": relay.dropped_lines(),
        "uptime_seconds": relay.uptime().as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

pub async fn ready(State(relay): State<Arc<Relay>>) -> (StatusCode, Json<Value>) {
    let ready = relay.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready })))
}
