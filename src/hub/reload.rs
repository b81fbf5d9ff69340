//! SIGHUP across the hub's relays: the new policy on every relay; named servers kept (the
//! same [`fingerprint`]: sessions and children stay), added, restarted (a changed one) or
//! retired (drained, then stopped); endpoints rebuilt where their selection changed; the
//! aggregates told the new list of servers.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::{members_of, mount_endpoint, mount_server, Hub};
use crate::config::ServeConfig;
use crate::relay::Relay;

impl Hub {
    /// SIGHUP: the new policy everywhere; named servers added, kept, restarted or drained;
    /// endpoints rebuilt where their selection changed. Turning a single-server relay into a
    /// multi-server one (or back), or changing `[aggregate]`, needs a restart.
    pub(crate) fn reload(&self, cfg: ServeConfig) {
        let was_multi = !self.servers.load().is_empty();
        let is_multi = !cfg.servers.is_empty();
        if was_multi != is_multi {
            warn!(signal = "SIGHUP", "adding [servers] to a single-server relay (or removing them all) needs a restart; only the policy was reloaded");
        }
        if was_multi && cfg.aggregate != self.main.config().aggregate {
            warn!(signal = "SIGHUP", "a change of [aggregate] needs a restart");
        }
        if was_multi && is_multi {
            self.reload_servers(&cfg);
            self.reload_endpoints(&cfg);
        }
        for relay in self.relays() {
            relay.reload_policy(cfg.policy.clone());
        }
    }

    /// Keeps unchanged servers, mounts added and changed ones, retires the rest.
    fn reload_servers(&self, cfg: &ServeConfig) {
        let old = self.servers.load_full();
        let mut kept = Vec::new();
        for s in &cfg.servers {
            let same = old
                .iter()
                .find(|m| m.name == s.name && m.fingerprint == fingerprint(&s.cfg));
            match same {
                Some(m) => kept.push(m.clone()),
                None => {
                    let changed = old.iter().any(|m| m.name == s.name);
                    info!(server = %s.name, "{}", if changed { "server changed: restarting it" } else { "server added" });
                    kept.push(mount_server(s, cfg, &self.audit));
                }
            }
        }
        for m in old.iter() {
            if !kept.iter().any(|k| Arc::ptr_eq(&k.relay, &m.relay)) {
                if !kept.iter().any(|k| k.name == m.name) {
                    info!(server = %m.name, "server removed: draining it");
                }
                retire(m.relay.clone());
            }
        }
        self.members.send_replace(members_of(&kept));
        self.servers.store(Arc::new(kept));
    }

    /// Rebuilds the endpoints whose selection changed; drains removed ones.
    fn reload_endpoints(&self, cfg: &ServeConfig) {
        let old = self.endpoints.load_full();
        let mut kept = Vec::new();
        for e in &cfg.endpoints {
            let print = format!("{e:?}");
            match old
                .iter()
                .find(|m| m.name == e.name && m.fingerprint == print)
            {
                Some(m) => kept.push(m.clone()),
                None => kept.push(mount_endpoint(cfg, e, &self.members, &self.audit)),
            }
        }
        for m in old.iter() {
            if !kept.iter().any(|k| Arc::ptr_eq(&k.relay, &m.relay)) {
                retire(m.relay.clone());
            }
        }
        self.endpoints.store(Arc::new(kept));
    }
}

/// What a server is, for reload: its child or upstream and everything that shapes its
/// sessions and children. Equal prints: the same server, kept with its sessions.
pub(super) fn fingerprint(cfg: &ServeConfig) -> String {
    format!(
        "{:?}|{:?}|{:?}|{}|{:?}|{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}",
        cfg.child,
        cfg.session_mode,
        cfg.child_era,
        cfg.children,
        cfg.upstream,
        cfg.max_sessions,
        cfg.max_sessions_per_principal,
        cfg.session_ttl,
        cfg.session_idle,
        cfg.buffer,
        cfg.tcp_listen,
        cfg.response_mode,
    )
}

/// Drains a relay a reload removed or replaced: new work is refused now, the requests in
/// flight get the shutdown grace to be answered, then its sessions end and its children stop.
fn retire(relay: Arc<Relay>) {
    tokio::spawn(async move {
        relay.start_drain();
        let grace = relay.config().shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        while relay.requests_in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        relay.fail_in_flight();
        relay.stop_all().await;
    });
}
