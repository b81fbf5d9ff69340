//! What `/health`, `/ready` and `/metrics` say of a hub: the main relay's document and
//! gauges, and with named servers each server's own health, the aggregate's view of them
//! (up, starting, down and why; name conflicts) and per-server gauges. The handlers are
//! `admin.rs`'s, generic over [`Probe`].
//!
//! The deep check (`/health?deep=1`, the console's button) adds a JSON-RPC `ping` of each
//! server's children: `ping_ms` (the slowest answer) or `ping_error`. One runs at a time;
//! each ping waits at most [`PING_TIMEOUT`].

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::Hub;
use crate::admin::{self, Probe};
use crate::aggregate;
use crate::config::servers::FailureMode;
use crate::relay::Relay;
use crate::telemetry::metrics;
use crate::upstream::ServerSpec;

/// How long a deep check waits for each child's answer to `ping`.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a deep check waits for the one running before it.
const DEEP_QUEUE: Duration = Duration::from_secs(5);
/// One deep check at a time, in the whole process.
static DEEP: Semaphore = Semaphore::const_new(1);

/// A per-server gauge of `/metrics`: its name, its help, how to read it off a relay.
type Gauge = (&'static str, &'static str, fn(&Relay) -> u64);

impl Probe for Hub {
    /// The main relay's document; with named servers, `servers` (each server's own document)
    /// and `endpoints` (their sessions).
    fn health(&self) -> Value {
        let mut doc = admin::relay_health(&self.main);
        if self.fleet_draining() {
            doc["status"] = json!("draining");
            doc["ready"] = json!(false);
        }
        let servers = self.servers.load();
        if servers.is_empty() {
            return doc;
        }
        let per_server: serde_json::Map<String, Value> = servers
            .iter()
            .map(|m| (m.name.clone(), admin::relay_health(&m.relay)))
            .collect();
        doc["servers"] = Value::Object(per_server);
        doc["endpoints"] = self
            .endpoints
            .load()
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    json!({ "sessions": m.relay.sessions_active() }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        if let Some(status) = &self.status {
            doc["aggregate"] = status.snapshot();
        }
        doc["ready"] = json!(self.ready());
        doc
    }

    fn deep_health(&self) -> futures_util::future::BoxFuture<'_, Value> {
        Box::pin(self.deep())
    }

    /// The main relay is ready (and, in a fleet, the replica is not draining); with
    /// `failure_mode = "closed"`, every named server too: its relay is ready and the
    /// aggregate did not last see it down.
    fn ready(&self) -> bool {
        if !self.main.is_ready() || self.fleet_draining() {
            return false;
        }
        if self.failure_mode == FailureMode::Open {
            return true;
        }
        let seen_down = |name: &str| {
            let health = self.status.as_ref().and_then(|s| s.get(name));
            health.is_some_and(|h| h.state == aggregate::status::State::Down)
        };
        let servers = self.servers.load();
        servers
            .iter()
            .all(|m| m.relay.is_ready() && !seen_down(&m.name))
    }

    /// The response cache's hits and misses; per named server: its sessions, its children
    /// and whether it is ready.
    fn more_metrics(&self) -> String {
        let cache = crate::relay::cache::metrics_text();
        let servers = self.servers.load();
        if servers.is_empty() {
            return cache;
        }
        let families: [Gauge; 4] = [
            (
                "sessions_active",
                "Sessions open on each named server (an aggregate session holds one on each).",
                |r| r.sessions_active() as u64,
            ),
            (
                "children_running",
                "Child processes of each named server.",
                |r| r.children_alive() as u64,
            ),
            (
                "spare_children",
                "Per-session children of each named server started ahead and ready.",
                |r| r.spares_ready() as u64,
            ),
            (
                "ready",
                "Whether each named server is ready (1) or not (0).",
                |r| u64::from(r.is_ready()),
            ),
        ];
        let mut out = cache;
        for (name, help, value) in families {
            out.push_str(&format!(
                "# HELP mcp_relay_server_{name} {help}\n# TYPE mcp_relay_server_{name} gauge\n"
            ));
            for m in servers.iter() {
                out.push_str(&format!(
                    "mcp_relay_server_{name}{{server=\"{}\"}} {}\n",
                    m.name,
                    value(&m.relay)
                ));
            }
        }
        out
    }

    /// Sessions summed over every relay (an aggregate session once on the aggregate and once
    /// on each server it opened); child processes of the named servers only (an aggregate's
    /// in-process instances are not processes).
    fn gauges(&self) -> metrics::Snapshot {
        let mut g = admin::relay_gauges(&self.main);
        let in_process = |r: &Relay| matches!(r.config().child, ServerSpec::InProcess(_));
        if in_process(&self.main) {
            g.children_running = 0;
        }
        for r in self.relays().iter().skip(1) {
            g.sessions_active += r.sessions_active() as u64;
            if !in_process(r) {
                g.children_running += r.children_alive() as u64;
                g.spare_children += r.spares_ready() as u64;
            }
            g.dropped_lines += r.dropped_lines();
        }
        g
    }
}

impl Hub {
    /// The `/health` document with each server's children pinged (see the module header).
    pub(crate) async fn deep(&self) -> Value {
        let mut doc = self.health();
        let Ok(Ok(_turn)) = tokio::time::timeout(DEEP_QUEUE, DEEP.acquire()).await else {
            doc["deep"] = json!("busy: another deep check is running");
            return doc;
        };
        if let Some(ping) = self.main.ping(PING_TIMEOUT).await {
            merge(&mut doc, ping);
        }
        let servers = self.servers.load();
        let pings = servers
            .iter()
            .map(|m| async move { (m.name.clone(), m.relay.ping(PING_TIMEOUT).await) });
        for (name, ping) in futures_util::future::join_all(pings).await {
            if let (Some(ping), Some(entry)) = (ping, doc["servers"].get_mut(&name)) {
                merge(entry, ping);
            }
        }
        doc["deep"] = json!(true);
        doc
    }

    /// Whether this replica of a fleet is draining (SIGTERM): `/ready` says 503, while its
    /// sessions are still served.
    fn fleet_draining(&self) -> bool {
        let cluster = self.main.config().cluster.as_deref();
        cluster.is_some_and(crate::cluster::Cluster::is_draining)
    }
}

/// Puts the fields of `more` (an object) into `doc`.
fn merge(doc: &mut Value, more: Value) {
    if let (Some(doc), Value::Object(more)) = (doc.as_object_mut(), more) {
        doc.extend(more);
    }
}
