//! What the operator's console reads of a hub's relays (`admin/console.rs`'s [`Console`]):
//! each server with its children, each open session, what clients can connect to, and the
//! operator's actions on them.
//!
//! Owns: turning the relays' facts into the console's views, and finding the relay an action
//! is for. Does not own: the facts themselves (`relay/console.rs`, `session.rs`,
//! `upstream/supervisor.rs`), the deep health check (`hub/probes.rs`).
//!
//! Restarting a server restarts its supervised children (shared, per-identity, the stateless
//! pool): each stops and comes back at once, its sessions kept. Per-session children are not
//! restarted: each belongs to its session, which the operator ends instead.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::Hub;
use crate::admin::console::{ChildView, Console, ServerView, SessionView, Target};
use crate::config::ChildEra;
use crate::relay::Relay;
use crate::upstream::supervisor::{Slot, State};
use crate::upstream::ServerSpec;

/// Per-session children listed per server (the rest are counted in `children_more`).
const MAX_OWN_CHILDREN: usize = 50;

#[async_trait::async_trait]
impl Console for Hub {
    fn servers(&self) -> Vec<ServerView> {
        let mut out = vec![self.server_view("", &self.main, self.main_kind())];
        for m in self.servers.load().iter() {
            let mut view = self.server_view(&m.name, &m.relay, kind_of(&m.relay));
            let seen = self.status.as_ref().and_then(|s| s.get(&m.name));
            if let Some(health) = seen.filter(|h| h.state != crate::aggregate::status::State::Up) {
                let why = health.reason.map_or(String::new(), |r| format!(": {r}"));
                view.problem = Some(format!("{}{why}", health.state.as_str()));
            }
            out.push(view);
        }
        for m in self.endpoints.load().iter() {
            out.push(self.server_view(&m.name, &m.relay, "endpoint"));
        }
        out
    }

    fn sessions(&self) -> Vec<SessionView> {
        self.named_relays()
            .into_iter()
            .flat_map(|(server, relay)| {
                relay
                    .open_sessions()
                    .into_iter()
                    .map(move |s| session_view(&server, &s))
            })
            .collect()
    }

    fn targets(&self) -> Vec<Target> {
        let main_kind = match self.servers.load().is_empty() {
            true => "server",
            false => "aggregate",
        };
        let mut out = vec![target(None, main_kind, &self.main)];
        for m in self.servers.load().iter() {
            out.push(target(Some(&m.name), "named", &m.relay));
        }
        for m in self.endpoints.load().iter() {
            out.push(target(Some(&m.name), "endpoint", &m.relay));
        }
        out
    }

    fn end_session(&self, id: &str) -> bool {
        self.relays().iter().any(|r| r.end_session(id))
    }

    fn revoke(&self, principal: &str) -> usize {
        // The aggregates first: their sessions hold sessions on the named servers.
        self.relays()
            .iter()
            .map(|r| r.end_sessions_of(principal))
            .sum()
    }

    fn restart(&self, name: &str) -> Result<usize, String> {
        let relay = match name {
            "" => self.main.clone(),
            _ => self
                .server(name)
                .ok_or_else(|| format!("no server named {name}"))?,
        };
        if matches!(relay.config().child, ServerSpec::InProcess(_)) {
            return Err("the aggregate has no children of its own: restart its servers".into());
        }
        match relay.restart_children() {
            0 if relay.session_mode_name() == "per-session" => Err(
                "per-session children belong to their sessions: end the sessions instead".into(),
            ),
            0 => Err("no child is running".into()),
            n => Ok(n),
        }
    }

    async fn deep_health(&self) -> Value {
        self.deep().await
    }
}

impl Hub {
    /// `aggregate` with named servers, else the single server's kind.
    fn main_kind(&self) -> &'static str {
        kind_of(&self.main)
    }

    /// Every relay with the name the console shows for it (`""`: the main path).
    fn named_relays(&self) -> Vec<(String, Arc<Relay>)> {
        let mut all = vec![(String::new(), self.main.clone())];
        all.extend(
            self.servers
                .load()
                .iter()
                .chain(self.endpoints.load().iter())
                .map(|m| (m.name.clone(), m.relay.clone())),
        );
        all
    }

    fn server_view(&self, name: &str, relay: &Relay, kind: &'static str) -> ServerView {
        let cfg = relay.config();
        let era = match cfg.child_era {
            ChildEra::Auto => "auto",
            ChildEra::Legacy => "2025",
            ChildEra::Modern => "modern",
        };
        let mut children: Vec<ChildView> = relay
            .slots()
            .iter()
            .map(|s| child_view(s, relay.session_mode_name()))
            .collect();
        children.extend(relay.modern_slots().iter().map(|s| child_view(s, "modern")));
        let mut children_more = 0;
        if kind != "aggregate" && kind != "endpoint" {
            let (own, total) = relay.own_children(MAX_OWN_CHILDREN);
            children_more = total - own.len();
            // Keyed by pid: a row stays with its child as sessions come and go.
            children.extend(own.into_iter().map(|c| ChildView {
                pool: "per-session".into(),
                slot: c.pid as usize,
                state: if c.alive { "ready" } else { "stopped" },
                pid: Some(c.pid),
                uptime_seconds: None,
                restarts: 0,
                last_exit: None,
                stderr: c.stderr,
                retry_after_seconds: None,
            }));
        }
        let circuit = relay
            .slots()
            .iter()
            .any(|s| matches!(s.state(), State::Open(_)));
        ServerView {
            name: name.to_owned(),
            kind,
            era: (kind != "aggregate" && kind != "endpoint").then(|| era.to_owned()),
            session_mode: relay.session_mode_name(),
            ready: relay.is_ready(),
            problem: (circuit).then(|| "circuit open: the child keeps failing".to_owned()),
            sessions: relay.sessions_active(),
            in_flight: relay.requests_in_flight(),
            children,
            children_more,
        }
    }
}

/// `command` | `remote` | `aggregate`.
fn kind_of(relay: &Relay) -> &'static str {
    match relay.config().child {
        ServerSpec::Command(_) => "command",
        ServerSpec::Remote(_) => "remote",
        ServerSpec::InProcess(_) => "aggregate",
    }
}

fn child_view(slot: &Slot, pool: &str) -> ChildView {
    let facts = slot.facts();
    let (state, pid, retry) = match slot.state() {
        State::Starting => ("starting", None, None),
        State::Ready(up, _) => ("ready", (up.pid() != 0).then(|| up.pid()), None),
        State::Backoff => ("backoff", None, None),
        State::Open(until) => {
            let left = until.saturating_duration_since(Instant::now()).as_secs();
            ("open", None, Some(left.max(1)))
        }
        State::Stopped => ("stopped", None, None),
    };
    ChildView {
        pool: pool.to_owned(),
        slot: slot.index(),
        state,
        pid,
        uptime_seconds: facts
            .uptime
            .filter(|_| state == "ready")
            .map(|u| u.as_secs()),
        restarts: facts.restarts,
        last_exit: facts.last_exit,
        stderr: facts.stderr,
        retry_after_seconds: retry,
    }
}

fn session_view(server: &str, s: &crate::session::Session) -> SessionView {
    let f = s.facts();
    SessionView {
        id: s.id().as_str().to_owned(),
        server: server.to_owned(),
        principal: f.principal.to_owned(),
        transport: f.transport.to_owned(),
        client_name: f.client_name.to_owned(),
        client_version: f.client_version.to_owned(),
        protocol_version: f.protocol_version.to_owned(),
        age_seconds: f.age.as_secs(),
        calls: f.calls,
        in_flight: f.in_flight,
        idle_seconds: f.idle.as_secs(),
    }
}

/// Where a client connects to `relay`, and how it authenticates there.
fn target(name: Option<&str>, kind: &'static str, relay: &Relay) -> Target {
    let cfg = relay.config();
    let policy = relay.policy();
    let auth = &policy.auth;
    let external_issuer = || {
        let meta = auth.metadata(None);
        let servers = meta.get("authorization_servers").and_then(Value::as_array);
        servers.is_some_and(|s| !s.is_empty())
    };
    let how = if auth.issued().is_some() || (auth.jwt().is_some() && external_issuer()) {
        "oauth"
    } else if auth.jwt().is_some() {
        "jwt"
    } else if auth.is_enabled() {
        "api_key"
    } else {
        "none"
    };
    Target {
        name: name.map(str::to_owned),
        kind,
        path: format!("{}{}", cfg.mount, cfg.path),
        auth: how,
    }
}
