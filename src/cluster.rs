//! This relay as one replica of a fleet (docs/fleet.md): owner-tagged ids (`cluster/id.rs`),
//! the configured peers (the only addresses a request is ever forwarded to), forwarding a
//! request for another replica's session to it (`cluster/forward.rs`), and the drain on
//! SIGTERM. The shared store of fleet-wide limits is `cluster/store.rs`.
//!
//! Owns: which node owns an id, where that node is, and carrying a request there unbuffered.
//! Does not own: the checks (`policy/`), what a session is (`session.rs`), nor the wire form
//! of a refusal (`error.rs`).

pub(crate) mod config;
pub(crate) mod forward;
pub(crate) mod id;
pub(crate) mod store;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use url::Url;

use config::{base_url, ClusterConfig};

/// The header a forwarded request carries: the forwarding node's name. A request with it is
/// never forwarded again.
pub(crate) const FORWARDED_BY: &str = "mcp-relay-forwarded-by";

/// The header every answer of a fleet node carries: the node that executed the request
/// (informational; load balancers may learn affinity from it).
pub(crate) const NODE_HEADER: &str = "mcp-relay-node";

/// One replica's view of its fleet.
#[derive(Debug)]
pub(crate) struct Cluster {
    cfg: ClusterConfig,
    forwarder: forward::Forwarder,
    draining: AtomicBool,
    /// The shared store of fleet limits, when `[cluster.store]` is set.
    store: Option<Arc<store::Store>>,
}

impl Cluster {
    /// Builds the replica's side of the fleet; nothing connects until it is used. `app`
    /// names the process after the node (`id::set_node`) when it starts serving.
    pub(crate) fn new(cfg: ClusterConfig) -> Cluster {
        let forwarder = forward::Forwarder::new(&cfg);
        let store = cfg
            .store
            .clone()
            .map(|s| Arc::new(store::Store::new(s, &cfg.node)));
        Cluster {
            cfg,
            forwarder,
            draining: AtomicBool::new(false),
            store,
        }
    }

    pub(crate) fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    /// This replica's node name.
    pub(crate) fn node(&self) -> &str {
        &self.cfg.node
    }

    /// The base URL of `node`, from the configured peers or the template; `None` for a name
    /// no configuration knows (nothing is ever connected to for it) and for this node.
    pub(crate) fn peer(&self, node: &str) -> Option<Url> {
        if node == self.cfg.node || !id::valid_node(node) {
            return None;
        }
        if let Some(u) = self.cfg.peers.get(node) {
            return Some(u.clone());
        }
        // Through the template, only the pods of this node's own StatefulSet (`NAME-ORDINAL`
        // with this node's NAME): a name read from an id picks a pod, never a host.
        let template = self.cfg.peer_url.as_deref()?;
        let same_set = config::ordinal_stem(node).is_some()
            && config::ordinal_stem(node) == config::ordinal_stem(&self.cfg.node);
        if !same_set {
            return None;
        }
        base_url(&template.replace("{node}", node)).ok()
    }

    /// The shared store of fleet limits (kept across SIGHUP with the cluster).
    pub(crate) fn store(&self) -> Option<&Arc<store::Store>> {
        self.store.as_ref()
    }

    /// Carries requests to their owners.
    pub(crate) fn forwarder(&self) -> &forward::Forwarder {
        &self.forwarder
    }

    /// What a SIGHUP keeps: the running cluster (`running`) over the one the new
    /// configuration built (`loaded`, never connected). Joining or leaving a fleet, or a new
    /// node name, needs a restart (the reload is refused); changed peers or store settings
    /// are logged and wait for a restart too.
    pub(crate) fn carry_over(
        running: Option<Arc<Cluster>>,
        loaded: Option<Arc<Cluster>>,
    ) -> Result<Option<Arc<Cluster>>, &'static str> {
        let (running, loaded) = match (running, loaded) {
            (None, None) => return Ok(None),
            (Some(r), Some(l)) => (r, l),
            _ => return Err("joining or leaving a fleet ([cluster]) needs a restart"),
        };
        if running.cfg.node != loaded.cfg.node {
            return Err("a new [cluster] node name needs a restart");
        }
        let (old, new) = (&running.cfg, &loaded.cfg);
        if old.peers != new.peers || old.peer_url != new.peer_url {
            tracing::warn!(
                signal = "SIGHUP",
                "a change of [cluster] peers needs a restart; the running peers stay"
            );
        }
        if !same_store(old.store.as_ref(), new.store.as_ref()) {
            tracing::warn!(
                signal = "SIGHUP",
                "a change of [cluster.store] needs a restart; the running store stays"
            );
        }
        Ok(Some(running))
    }

    /// Marks the replica draining (SIGTERM): `/ready` says 503 from now on.
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Whether two `[cluster.store]` settings are the same (secrets included).
fn same_store(a: Option<&config::StoreConfig>, b: Option<&config::StoreConfig>) -> bool {
    let key = |s: &config::StoreConfig| {
        let (url, prefix, secret) = (s.url.clone(), s.key_prefix.clone(), s.key_secret.clone());
        (
            url,
            prefix,
            secret,
            s.timeout,
            s.on_error,
            s.expected_nodes,
            s.lease,
            s.clock,
        )
    };
    a.map(key) == b.map(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(node: &str) -> Option<Arc<Cluster>> {
        Some(Arc::new(Cluster::new(ClusterConfig {
            node: node.into(),
            peers: Default::default(),
            peer_url: None,
            forward_connect_timeout: std::time::Duration::from_secs(1),
            forward_timeout: None,
            drain_window: std::time::Duration::ZERO,
            store: None,
        })))
    }

    #[test]
    fn a_reload_keeps_the_running_cluster_and_refuses_a_new_node_or_fleet() {
        let running = cluster("r0");
        let kept = Cluster::carry_over(running.clone(), cluster("r0")).unwrap();
        assert!(Arc::ptr_eq(
            kept.as_ref().unwrap(),
            running.as_ref().unwrap()
        ));
        assert!(Cluster::carry_over(running.clone(), cluster("r1")).is_err());
        assert!(Cluster::carry_over(running, None).is_err());
        assert!(Cluster::carry_over(None, cluster("r0")).is_err());
        assert!(Cluster::carry_over(None, None).unwrap().is_none());
    }
}
