//! What the operator's console reads of one relay and does to it: its open sessions, the
//! children of its sessions (per-session mode), ending sessions (as a DELETE does), restarting
//! its supervised children, pinging them (`/health?deep=1`).
//!
//! Owns: those accessors over the relay's private table and children. Does not own: the
//! views and the hub-wide walk (`hub/console.rs`), the slots' restart itself
//! (`upstream/supervisor.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::children::Backend;
use super::Relay;
use crate::session::Session;
use crate::upstream::supervisor;
use crate::upstream::{ServerSpec, Upstream};

/// A session's own child (per-session mode): its pid and last stderr lines.
#[derive(Debug, Clone)]
pub(crate) struct OwnChild {
    pub pid: u32,
    pub alive: bool,
    pub stderr: Vec<String>,
}

impl Relay {
    /// Every session in the table (reserved ones too).
    pub(crate) fn open_sessions(&self) -> Vec<Arc<Session>> {
        let mut all: Vec<Arc<Session>> = self.sessions.all().into_iter().map(|(s, _)| s).collect();
        all.retain(|s| !s.is_ended());
        all
    }

    /// The children sessions hold of their own (per-session mode), processes only.
    pub(crate) fn own_children(&self) -> Vec<OwnChild> {
        self.sessions
            .all()
            .into_iter()
            .filter_map(|(_, b)| match b {
                Some(Backend::Own(up)) if up.pid() != 0 => Some(OwnChild {
                    pid: up.pid(),
                    alive: up.is_alive(),
                    stderr: supervisor::stderr_of(&up),
                }),
                _ => None,
            })
            .collect()
    }

    /// Ends the session `id` as a DELETE would; false when the relay holds no such session.
    pub(crate) fn end_session(&self, id: &str) -> bool {
        match self.sessions.get(id) {
            Some(session) => {
                self.close(&session);
                true
            }
            None => false,
        }
    }

    /// Ends every session opened by `principal`; how many.
    pub(crate) fn end_sessions_of(&self, principal: &str) -> usize {
        let theirs: Vec<Arc<Session>> = self
            .open_sessions()
            .into_iter()
            .filter(|s| s.identity() == Some(principal))
            .collect();
        theirs.iter().for_each(|s| self.close(s));
        theirs.len()
    }

    /// Restarts the running supervised children (shared, per-identity, stateless pool); how
    /// many. Per-session children are not restarted: each belongs to its session.
    pub(crate) fn restart_children(&self) -> usize {
        let slots = self.slots().into_iter().chain(self.modern_slots());
        slots.filter(|s| s.restart()).count()
    }

    /// Pings the relay's children (each running slot's, or else one session's own child)
    /// with JSON-RPC `ping`: `{"ping_ms": worst}` or `{"ping_error": why}`, `None` for an
    /// in-process server (the aggregate: its servers are pinged themselves).
    pub(crate) async fn ping(&self, timeout: Duration) -> Option<Value> {
        if matches!(self.config().child, ServerSpec::InProcess(_)) {
            return None;
        }
        let mut children: Vec<Arc<Upstream>> = self
            .slots()
            .iter()
            .chain(self.modern_slots().iter())
            .filter_map(|s| s.current())
            .collect();
        if children.is_empty() {
            children.extend(self.sessions.all().into_iter().find_map(|(_, b)| match b {
                Some(Backend::Own(up)) => Some(up),
                _ => None,
            }));
        }
        if children.is_empty() {
            let why = match self.session_mode_name() {
                "per-session" => "no child running (per-session children start with sessions)",
                _ => "no child running",
            };
            return Some(json!({ "ping_error": why }));
        }
        let pings = children.iter().map(|up| ping_one(up, timeout));
        let results = futures_util::future::join_all(pings).await;
        let worst = results.iter().try_fold(0f64, |worst, r| match r {
            Ok(ms) => Ok(worst.max(*ms)),
            Err(e) => Err(*e),
        });
        Some(match worst {
            Ok(ms) => json!({ "ping_ms": ms, "pinged": results.len() }),
            Err(why) => json!({ "ping_error": why, "pinged": results.len() }),
        })
    }
}

/// One `ping`'s round trip in milliseconds, or why it failed.
async fn ping_one(up: &Upstream, timeout: Duration) -> Result<f64, &'static str> {
    let started = Instant::now();
    let answer = up.call("ping", "{}").map_err(|_| "child not running")?;
    match tokio::time::timeout(timeout, answer).await {
        Err(_) => Err("timeout"),
        Ok(Err(_)) => Err("child gone"),
        Ok(Ok(Err(_))) => Err("child exited"),
        Ok(Ok(Ok(frame))) if frame.is_error() => Err("ping answered with an error"),
        Ok(Ok(Ok(_))) => {
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            Ok((ms * 1000.0).round() / 1000.0)
        }
    }
}
