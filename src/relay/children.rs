//! Which child a new session gets, by `--session-mode` (PROTOCOL.md §6).
//!
//! `per-session` spawns a child per session and stops it with the session (or hands it one of
//! the `--spare-children` started ahead, `upstream/spares.rs`). `shared` starts a
//! pool of `--children N` supervised slots once and pins each session to one of them.
//! `per-identity` keeps one supervised slot per identity (the `--identity-header` value until
//! authentication exists), created on first use with the identity templated into the child's
//! environment (`{identity}` in `--env` values), and stopped after the identity's last session
//! has been gone for the session TTL. A session's [`Backend`] is kept beside it in the
//! relay's session table (`session.rs` knows nothing of children). Restart and multiplexing
//! are `upstream/`'s job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::caller::Caller;
use crate::config::{ChildEra, ServeConfig, SessionMode, IDENTITY_PLACEHOLDER};
use crate::error::Error;
use crate::upstream::audience::Audience;
use crate::upstream::spares::Spares;
use crate::upstream::supervisor::{Pool, Slot, SlotSpec};
use crate::upstream::{Counters, ServerSpec, Upstream};

/// The child (or children) a session talks to.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    /// Its own child, which ends with the session (per-session mode).
    Own(Arc<Upstream>),
    /// A slot of shared children, restarted under the session (shared and per-identity).
    Shared(Arc<Slot>),
}

impl Backend {
    /// The child to send to now; a shared slot may wait for a restart.
    pub(crate) async fn upstream(&self) -> Result<Arc<Upstream>, Error> {
        match self {
            Backend::Own(up) => Ok(up.clone()),
            Backend::Shared(slot) => slot.upstream().await,
        }
    }

    /// The child running now, without waiting.
    pub(crate) fn current(&self) -> Option<Arc<Upstream>> {
        match self {
            Backend::Own(up) => Some(up.clone()),
            Backend::Shared(slot) => slot.current(),
        }
    }
}

/// The children of one configured server.
#[derive(Debug)]
pub(crate) enum Children {
    /// A child per session; the spares started ahead, when configured.
    PerSession(Option<Arc<Spares>>),
    Shared(Pool),
    PerIdentity(Mutex<HashMap<String, Idle>>),
}

/// A per-identity slot and since when it has had no session.
#[derive(Debug)]
pub(crate) struct Idle {
    slot: Arc<Slot>,
    empty_since: Option<Instant>,
}

impl Children {
    /// Starts what the mode needs up front (the shared pool).
    pub(crate) fn start(cfg: &ServeConfig, counters: &Arc<Counters>) -> Children {
        match cfg.session_mode {
            SessionMode::PerSession => Children::PerSession(spares(cfg)),
            // A modern-only child's legacy sessions go through the legacy face
            // (`relay/face.rs`): no pool of initialized children to start.
            SessionMode::Shared if cfg.child_era == ChildEra::Modern => Children::PerSession(None),
            SessionMode::Shared => {
                Children::Shared(Pool::start(cfg.children, &slot_spec(cfg, None), counters))
            }
            SessionMode::PerIdentity => Children::PerIdentity(Mutex::new(HashMap::new())),
        }
    }

    /// The backend for a new session of `caller` (per identity: its owner's child).
    pub(crate) fn bind(
        &self,
        cfg: &ServeConfig,
        counters: &Arc<Counters>,
        caller: &Caller,
    ) -> Result<Backend, Error> {
        let identity = caller.owner();
        match self {
            Children::PerSession(spares) => {
                let audience = Audience::new(false);
                let limits = cfg.upstream.clone();
                if let Some((child, events)) = spares.as_ref().and_then(|s| s.take()) {
                    let up = Upstream::adopt(child, events, limits, audience, counters.clone());
                    return Ok(Backend::Own(up));
                }
                match Upstream::spawn(&cfg.child, Some(caller), limits, audience, counters.clone())
                {
                    Ok(up) => Ok(Backend::Own(up)),
                    Err(e) => {
                        warn!(error = %e, cause = ?std::error::Error::source(&e), "child spawn failed");
                        Err(Error::ChildUnavailable)
                    }
                }
            }
            Children::Shared(pool) => {
                let slot = pool.pick_for_session().ok_or(Error::ChildUnavailable)?;
                slot.check()?;
                Ok(Backend::Shared(slot.clone()))
            }
            Children::PerIdentity(map) => {
                let identity = identity.ok_or(Error::Identity("missing_identity"))?;
                let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
                let entry = map.entry(identity.to_owned()).or_insert_with(|| {
                    info!(identity, "starting a child for a new identity");
                    Idle {
                        slot: Slot::start(0, slot_spec(cfg, Some(identity)), counters.clone()),
                        empty_since: None,
                    }
                });
                entry.empty_since = None;
                entry.slot.check()?;
                Ok(Backend::Shared(entry.slot.clone()))
            }
        }
    }

    /// Stops per-identity children whose identity has had no session for `ttl`.
    pub(crate) fn sweep(&self, ttl: Duration) {
        let Children::PerIdentity(map) = self else {
            return;
        };
        let now = Instant::now();
        let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|identity, idle| {
            if !idle.slot.audience().is_empty() {
                idle.empty_since = None;
                return true;
            }
            let since = *idle.empty_since.get_or_insert(now);
            if now.duration_since(since) < ttl {
                return true;
            }
            info!(identity, "stopping the child of an idle identity");
            idle.slot.stop();
            false
        });
    }

    /// Every supervised slot (for readiness and shutdown).
    pub(crate) fn slots(&self) -> Vec<Arc<Slot>> {
        match self {
            Children::PerSession(_) => Vec::new(),
            Children::Shared(pool) => pool.slots().to_vec(),
            Children::PerIdentity(map) => map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .map(|i| i.slot.clone())
                .collect(),
        }
    }

    /// Stops every supervised slot and spare, and waits for their children.
    pub(crate) async fn stop_all(&self) {
        let slots = self.slots();
        for s in &slots {
            s.stop();
        }
        let spares = async {
            if let Children::PerSession(Some(spares)) = self {
                spares.stop().await;
            }
        };
        tokio::join!(
            futures_util::future::join_all(slots.iter().map(|s| s.wait())),
            spares
        );
    }

    /// Spare children ready for new sessions (`--spare-children`).
    pub(crate) fn spares_ready(&self) -> usize {
        match self {
            Children::PerSession(Some(spares)) => spares.count(),
            _ => 0,
        }
    }
}

/// The spares of a per-session command server, when `--spare-children` asks for some (a
/// multi-server relay's placeholder server has no program: none).
fn spares(cfg: &ServeConfig) -> Option<Arc<Spares>> {
    match &cfg.child {
        ServerSpec::Command(spec)
            if cfg.spare_children > 0 && !spec.program.as_os_str().is_empty() =>
        {
            Some(Spares::start(spec.clone(), cfg.spare_children))
        }
        _ => None,
    }
}

/// The slot spec of the configured server, with `{identity}` filled in for per-identity mode.
fn slot_spec(cfg: &ServeConfig, identity: Option<&str>) -> SlotSpec {
    let mut child = cfg.child.clone();
    if let (Some(id), ServerSpec::Command(c)) = (identity, &mut child) {
        for (_, v) in &mut c.env {
            *v = v.replace(IDENTITY_PLACEHOLDER, id);
        }
    }
    let spec = SlotSpec {
        child,
        limits: cfg.upstream.clone(),
        initialize: true,
        hello: None,
        caller: None,
    };
    if cfg.forward_hello {
        spec.with_hello()
    } else {
        spec
    }
}
