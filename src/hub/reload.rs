//! SIGHUP across the hub's relays: the new policy on every relay; named servers kept (the
//! same [`fingerprint`]: sessions and children stay), added, restarted (a changed one) or
//! retired (drained, then stopped); endpoints rebuilt where their selection changed; the
//! aggregates told the new list of servers.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::{lock, members_of, mount_endpoint, mount_server, Hub};
use std::sync::atomic::Ordering;

use crate::config::servers::EndpointSpec;
use crate::config::ServeConfig;
use crate::relay::Relay;
use crate::upstream::ServerSpec;

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
        if let (Some(new), Some(old)) = (cfg.policy.auth.issued(), self.main.policy().auth.issued())
        {
            new.adopt(old);
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
                self.retire(m.relay.clone());
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
            let print = endpoint_print(e);
            match old
                .iter()
                .find(|m| m.name == e.name && m.fingerprint == print)
            {
                Some(m) => kept.push(m.clone()),
                None => {
                    // `[aggregate]` changes need a restart: a rebuilt endpoint keeps the one in force.
                    let mut cfg = cfg.clone();
                    cfg.aggregate = self.main.config().aggregate.clone();
                    kept.push(mount_endpoint(&cfg, e, &self.members, &self.audit));
                }
            }
        }
        for m in old.iter() {
            if !kept.iter().any(|k| Arc::ptr_eq(&k.relay, &m.relay)) {
                self.retire(m.relay.clone());
            }
        }
        self.endpoints.store(Arc::new(kept));
    }

    /// Drains a relay a reload removed or replaced: new work is refused now, the requests
    /// in flight get the shutdown grace to be answered, then its sessions end and its
    /// children stop. Until then it is among the relays a shutdown stops.
    fn retire(&self, relay: Arc<Relay>) {
        let retiring = self.retiring.clone();
        lock(&retiring).push(relay.clone());
        tokio::spawn(async move {
            relay.start_drain();
            let grace = relay.config().shutdown_grace;
            let deadline = tokio::time::Instant::now() + grace;
            while relay.requests_in_flight() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            relay.fail_in_flight();
            relay.stop_all().await;
            lock(&retiring).retain(|r| !Arc::ptr_eq(r, &relay));
        });
    }
}

/// What a server is, for reload: its child or upstream (with the values of its environment
/// and upstream headers, which `Debug` leaves out) and everything that shapes its sessions
/// and children, hashed (the text holds secrets). Equal: the same server, kept with its
/// sessions. A remote server with a credential source (a bearer from the environment, OAuth
/// client credentials) never equals its reload: it restarts, so a rotated credential is used.
pub(super) fn fingerprint(cfg: &ServeConfig) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    static FRESH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = DefaultHasher::new();
    format!(
        "{:?}|{:?}|{:?}|{}|{}|{:?}|{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}",
        cfg.child,
        cfg.session_mode,
        cfg.child_era,
        cfg.children,
        cfg.spare_children,
        cfg.upstream,
        cfg.max_sessions,
        cfg.max_sessions_per_principal,
        cfg.session_ttl,
        cfg.session_idle,
        cfg.buffer,
        cfg.tcp_listen,
        cfg.response_mode,
    )
    .hash(&mut h);
    match &cfg.child {
        ServerSpec::Command(c) => c.env.hash(&mut h),
        ServerSpec::Remote(r) => {
            let access = r.access();
            access.headers.hash(&mut h);
            if access.credentials.is_some() {
                FRESH.fetch_add(1, Ordering::Relaxed).hash(&mut h);
            }
        }
        ServerSpec::InProcess(_) => {}
    }
    h.finish()
}

/// What an endpoint publishes, for reload: equal, the endpoint is kept with its sessions.
pub(super) fn endpoint_print(endpoint: &EndpointSpec) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    format!("{endpoint:?}").hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    fn load(extra: &[&str], env: &[(&str, &str)]) -> crate::config::ServeConfig {
        let mut argv = vec!["mcp-relay", "serve", "--upstream", "http://127.0.0.1:9/mcp"];
        argv.extend_from_slice(extra);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let argv = argv.into_iter().map(std::ffi::OsString::from).collect();
        crate::config::load(argv, &lookup).unwrap()
    }

    #[test]
    fn a_rotated_upstream_credential_is_a_changed_server() {
        let header = |v: &str| {
            load(
                &["--upstream-header", "X-Key: env:UPSTREAM_KEY"],
                &[("UPSTREAM_KEY", v)],
            )
        };
        assert_eq!(
            fingerprint(&header("q8Xr2vLmT4sW9pZc")),
            fingerprint(&header("q8Xr2vLmT4sW9pZc"))
        );
        assert_ne!(
            fingerprint(&header("q8Xr2vLmT4sW9pZc")),
            fingerprint(&header("Zt4pW9ncR7kQ2xVb"))
        );
        let bearer = |v: &str| {
            load(
                &["--upstream-bearer-env", "UPSTREAM_TOKEN"],
                &[("UPSTREAM_TOKEN", v)],
            )
        };
        let (a, b) = ("mT3kQ9vXr7LpW2cZ", "hB6sN1yUe4JqD8fK");
        assert_eq!(fingerprint(&bearer(a)), fingerprint(&bearer(a)));
        assert_ne!(fingerprint(&bearer(a)), fingerprint(&bearer(b)));
    }
}
