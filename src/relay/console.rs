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

    /// The children sessions hold of their own (per-session mode), processes only: at most
    /// `max`, lowest pid first (a stable order), and how many there are in all.
    pub(crate) fn own_children(&self, max: usize) -> (Vec<OwnChild>, usize) {
        let mut ups: Vec<_> = self
            .sessions
            .all()
            .into_iter()
            .filter_map(|(_, b)| match b {
                Some(Backend::Own(up)) if up.pid() != 0 => Some(up),
                _ => None,
            })
            .collect();
        let total = ups.len();
        ups.sort_by_key(|up| up.pid());
        ups.truncate(max);
        let kept = ups
            .into_iter()
            .map(|up| OwnChild {
                pid: up.pid(),
                alive: up.is_alive(),
                stderr: supervisor::stderr_of(&up),
            })
            .collect();
        (kept, total)
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

    /// Pings the relay's children (each slot's, or else one session's own child)
    /// with JSON-RPC `ping`: `{"ping_ms": worst}` or `{"ping_error": why}`, `None` for an
    /// in-process server (the aggregate: its servers are pinged themselves).
    pub(crate) async fn ping(&self, timeout: Duration) -> Option<Value> {
        if matches!(self.config().child, ServerSpec::InProcess(_)) {
            return None;
        }
        let slots: Vec<Arc<supervisor::Slot>> = self
            .slots()
            .into_iter()
            .chain(self.modern_slots())
            .collect();
        let own = self.sessions.all().into_iter().find_map(|(_, b)| match b {
            Some(Backend::Own(up)) => Some(up),
            _ => None,
        });
        let results = match (slots.is_empty(), own) {
            (false, _) => {
                let pings = slots.iter().map(|s| ping_slot(s, timeout));
                futures_util::future::join_all(pings).await
            }
            (true, Some(up)) => vec![ping_one(&up, timeout).await],
            (true, None) => {
                let why = match self.session_mode_name() {
                    "per-session" => "no child running (per-session children start with sessions)",
                    _ => "no child running",
                };
                return Some(json!({ "ping_error": why }));
            }
        };
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

/// A slot's child's `ping`, waiting (within `timeout`) for one that is starting.
async fn ping_slot(slot: &supervisor::Slot, timeout: Duration) -> Result<f64, &'static str> {
    match tokio::time::timeout(timeout, slot.upstream()).await {
        Ok(Ok(up)) => ping_one(&up, timeout).await,
        Ok(Err(_)) => Err("child unavailable"),
        Err(_) => Err("child not ready"),
    }
}

/// One `ping`'s round trip in milliseconds, or why it failed. A ping that times out is
/// cancelled, so it does not stay pending on a hung child.
async fn ping_one(up: &Upstream, timeout: Duration) -> Result<f64, &'static str> {
    let started = Instant::now();
    let (id, answer) = up.call_id("ping", "{}").map_err(|_| "child not running")?;
    match tokio::time::timeout(timeout, answer).await {
        Err(_) => {
            up.cancel(id, "the relay stopped waiting for its ping");
            Err("timeout")
        }
        Ok(Err(_)) => Err("child gone"),
        Ok(Ok(Err(_))) => Err("child exited"),
        Ok(Ok(Ok(frame))) if frame.is_error() => Err("ping answered with an error"),
        Ok(Ok(Ok(_))) => {
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            Ok((ms * 1000.0).round() / 1000.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::{AuthMethod, Caller, Principal, Transport};
    use crate::jsonrpc::Message;
    use crate::relay::{Posted, Within};
    use crate::telemetry::audit::Audit;
    use crate::upstream::supervisor::State;

    const PATIENCE: Duration = Duration::from_secs(20);

    /// The fixture binary next to this test binary's directory (`cargo build --bin
    /// mcp-relay-fixture`), as `aggregate/tests.rs` finds it.
    fn fixture() -> Option<std::path::PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let path = exe.parent()?.parent()?.join("mcp-relay-fixture");
        if !path.exists() {
            eprintln!("SKIPPED: {} is missing", path.display());
            return None;
        }
        Some(path)
    }

    fn relay(mode: &str, fixture: &std::path::Path) -> Arc<Relay> {
        let argv: Vec<std::ffi::OsString> = vec![
            "mcp-relay".into(),
            "serve".into(),
            "--session-mode".into(),
            mode.into(),
            "--".into(),
            fixture.into(),
        ];
        let cfg = crate::config::load(argv, &crate::secret::process_env).unwrap();
        Relay::new(Arc::new(cfg), Audit::disabled())
    }

    async fn open(relay: &Relay, who: &str) -> Arc<Session> {
        let caller = Caller::new(
            Principal {
                name: who.into(),
                method: AuthMethod::ApiKey,
                ..Principal::anonymous()
            },
            None::<std::net::SocketAddr>,
            Transport::StreamableHttp,
        );
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},
            "clientInfo":{"name":"unit","version":"1"}}}"#;
        let message = Message::parse(bytes::Bytes::from(init)).unwrap();
        match relay.post(&caller, Within::Unopened, &message).await {
            Ok(Posted::Opened(session, _)) => session,
            _ => panic!("initialize refused"),
        }
    }

    async fn eventually(mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !f() {
            assert!(Instant::now() < deadline, "timed out");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn console_restart_brings_a_new_shared_child_and_ping_answers() {
        let Some(fixture) = fixture() else { return };
        let relay = relay("shared", &fixture);
        let ping = relay.ping(PATIENCE).await.unwrap();
        assert!(ping["ping_ms"].as_f64().is_some(), "{ping}");
        let slot = relay.slots()[0].clone();
        let pid = slot.current().unwrap().pid();
        assert_eq!(relay.restart_children(), 1);
        // From the restart on, new requests wait for the new child.
        assert!(matches!(slot.state(), State::Starting));
        eventually(|| {
            slot.current()
                .is_some_and(|u| u.pid() != pid && u.is_alive())
        })
        .await;
        let facts = slot.facts();
        assert_eq!(facts.restarts, 1);
        assert!(facts.last_exit.is_some());
        relay.stop_all().await;
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_timed_out_ping_does_not_stay_pending() {
        let Some(fixture) = fixture() else { return };
        let relay = relay("shared", &fixture);
        let up = relay.slots()[0].upstream().await.unwrap();
        let signal = |sig: &str| {
            let ok = std::process::Command::new("kill")
                .args([sig, &up.pid().to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "kill {sig}");
        };
        // A hung child (stopped) cannot answer: the ping times out and is not left pending.
        signal("-STOP");
        let timed_out = ping_one(&up, Duration::from_millis(200)).await;
        let pending = up.inflight();
        signal("-CONT");
        assert_eq!(timed_out, Err("timeout"));
        assert_eq!(pending, 0);
        assert!(ping_one(&up, PATIENCE).await.is_ok());
        relay.stop_all().await;
    }

    #[tokio::test]
    async fn console_ends_one_session_or_every_session_of_a_principal() {
        let Some(fixture) = fixture() else { return };
        let relay = relay("per-session", &fixture);
        let a1 = open(&relay, "ann").await;
        let _a2 = open(&relay, "ann").await;
        let b = open(&relay, "bob").await;
        assert_eq!(relay.open_sessions().len(), 3);
        eventually(|| relay.own_children(50).1 == 3).await;
        let (two, total) = relay.own_children(2);
        assert_eq!((two.len(), total), (2, 3));
        assert!(two[0].pid < two[1].pid);
        assert!(relay.end_session(a1.id().as_str()));
        assert!(a1.is_ended());
        assert!(!relay.end_session(a1.id().as_str()));
        assert_eq!(relay.end_sessions_of("ann"), 1);
        assert_eq!(relay.end_sessions_of("ann"), 0);
        let left = relay.open_sessions();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id(), b.id());
        // Per-session children are not restarted (they belong to their sessions).
        assert_eq!(relay.restart_children(), 0);
        relay.stop_all().await;
    }
}
