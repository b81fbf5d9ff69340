//! What the aggregate knows of its servers, for `/health`: per server, whether its last
//! internal session is up, down (and why) or starting, and the names two servers both gave
//! (`prefix = "never"`).
//!
//! One [`Status`] per aggregate (main path or tool subset), shared by all its sessions: each
//! writes what it saw last, so the entry of a server is the most recent observation of any
//! session. A server no session opened yet has no entry. The hub reads
//! [`Status::snapshot`] into its `/health` answer; nothing here serves HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::{json, Value};

/// The state of one server as an aggregate session last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Its session answered `initialize`.
    Up,
    /// Its `initialize` is still unanswered.
    Starting,
    /// Its session failed or ended; the session retries with backoff.
    Down,
}

impl State {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Starting => "starting",
            State::Down => "down",
        }
    }
}

/// One server's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Health {
    pub state: State,
    /// Why it is down (a short sentence, never a child's output).
    pub reason: Option<String>,
    pub since: SystemTime,
}

/// The servers of one aggregate, as its sessions saw them.
#[derive(Debug, Default)]
pub(crate) struct Status {
    servers: Mutex<BTreeMap<String, Health>>,
    conflicts: Mutex<BTreeSet<String>>,
}

/// Names kept in the conflict list at most (a misconfiguration shows in the first ones).
const MAX_CONFLICTS: usize = 100;

impl Status {
    pub(crate) fn set(&self, server: &str, state: State, reason: Option<String>) {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        let entry = servers.get(server);
        if entry.is_some_and(|h| h.state == state && h.reason == reason) {
            return;
        }
        let health = Health {
            state,
            reason,
            since: SystemTime::now(),
        };
        servers.insert(server.to_owned(), health);
    }

    /// A server's entry, if a session opened it.
    pub(crate) fn get(&self, server: &str) -> Option<Health> {
        let servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        servers.get(server).cloned()
    }

    /// The server left the configuration.
    pub(crate) fn forget(&self, server: &str) {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        servers.remove(server);
    }

    /// A name two servers gave (`"tools: echo (a, b)"`); whether it is news.
    pub(crate) fn conflict(&self, what: String) -> bool {
        let mut c = self.conflicts.lock().unwrap_or_else(|e| e.into_inner());
        c.len() < MAX_CONFLICTS && c.insert(what)
    }

    /// `{"servers": {"NAME": {"state": "up"|"starting"|"down", "reason"?, "since"}},
    /// "conflicts": [...]}`, `since` in seconds since the Unix epoch.
    pub(crate) fn snapshot(&self) -> Value {
        let servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = serde_json::Map::new();
        for (name, h) in servers.iter() {
            let since = h
                .since
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut entry = json!({ "state": h.state.as_str(), "since": since });
            if let Some(r) = &h.reason {
                entry["reason"] = r.as_str().into();
            }
            out.insert(name.clone(), entry);
        }
        drop(servers);
        let conflicts: Vec<String> = {
            let c = self.conflicts.lock().unwrap_or_else(|e| e.into_inner());
            c.iter().cloned().collect()
        };
        json!({ "servers": out, "conflicts": conflicts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_shows_the_last_observation_and_conflicts() {
        let s = Status::default();
        s.set("a", State::Starting, None);
        s.set("a", State::Up, None);
        s.set("b", State::Down, Some("initialize timed out".into()));
        s.conflict("tools: echo (a, b)".into());
        let v = s.snapshot();
        assert_eq!(v["servers"]["a"]["state"], "up");
        assert_eq!(v["servers"]["b"]["reason"], "initialize timed out");
        assert_eq!(v["conflicts"][0], "tools: echo (a, b)");
        s.forget("b");
        assert!(s.get("b").is_none());
        assert_eq!(s.get("a").map(|h| h.state), Some(State::Up));
    }
}
