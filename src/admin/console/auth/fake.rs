//! A console over made-up relays for the console's in-process tests: two targets (the
//! aggregate, open, and `git`, with API keys), one session `s1`, two sessions of `alice`, a
//! server `git` that restarts; and the audit records its actions write.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request};
use axum::response::Response;
use axum::{Extension, Router};
use serde_json::{json, Value};

use crate::admin::console::{routes, Console, Deps, Operator, ServerView, SessionView, Target};
use crate::telemetry::audit::{Audit, Record, Tap};
use crate::telemetry::live::Live;

pub(crate) struct Fake;

#[async_trait::async_trait]
impl Console for Fake {
    fn servers(&self) -> Vec<ServerView> {
        Vec::new()
    }
    fn sessions(&self) -> Vec<SessionView> {
        Vec::new()
    }
    fn targets(&self) -> Vec<Target> {
        vec![
            Target {
                name: None,
                kind: "aggregate",
                path: "/mcp".into(),
                auth: "none",
            },
            Target {
                name: Some("git".into()),
                kind: "named",
                path: "/servers/git/mcp".into(),
                auth: "api_key",
            },
        ]
    }
    fn end_session(&self, id: &str) -> bool {
        id == "s1"
    }
    fn revoke(&self, principal: &str) -> usize {
        if principal == "alice" {
            2
        } else {
            0
        }
    }
    fn restart(&self, name: &str) -> Result<usize, String> {
        match name {
            "git" => Ok(1),
            _ => Err("no such server".into()),
        }
    }
    async fn deep_health(&self) -> Value {
        json!({})
    }
}

/// The audit records written, in order.
#[derive(Debug, Default)]
pub(crate) struct Taken(pub Mutex<Vec<Record>>);

impl Tap for Taken {
    fn record(&self, record: Record) {
        if let Ok(mut all) = self.0.lock() {
            all.push(record);
        }
    }
}

/// The console's routes over [`Fake`] as `op`, and its audit records.
pub(crate) fn console(op: Operator) -> (Router, Arc<Taken>) {
    let taken = Arc::new(Taken::default());
    let deps = Deps {
        console: Arc::new(Fake),
        live: Live::new(),
        operators: None,
        token: None,
        loopback: true,
        reload: None,
        audit: Audit::live_only(taken.clone()),
        public_base: "https://relay.example".into(),
        gate: Arc::default(),
    };
    (routes(deps).layer(Extension(op)), taken)
}

/// Sends `req` through `router`.
pub(crate) async fn send(router: &Router, req: Request<Body>) -> Response {
    let mut svc = router.clone();
    match tower_service::Service::call(&mut svc, req).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}

/// A form post to `path`.
pub(crate) fn post(path: &str, form: &str) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .unwrap_or_default()
}

/// A response's body as text.
pub(crate) async fn text(res: Response) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}
