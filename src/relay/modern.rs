//! The modern (2026-07-28) side of the core: stateless requests on a pool of shared children.
//!
//! Whether the wrapped server is modern is learnt once (PROTOCOL.md §1): `--child-era modern`
//! says so, `legacy` says not, and `auto` (the default) probes on the first modern request
//! with `server/discover` carrying modern `_meta`. A result or a modern error (-32020..-32022)
//! means modern; anything else, or no answer within 10 s, means legacy, and modern requests
//! then get the 400 that lets dual-era clients fall back to `initialize`. A modern child gets
//! its own pool of `--children N` uninitialized processes (a dual-era process that saw
//! `initialize` is legacy for good), and each request goes to the ready one with the fewest
//! requests in flight. The relay also lists the child's tools once to learn which arguments
//! are mirrored in `Mcp-Param-*` headers.
//!
//! [`Relay::stateless`] is the one entry point for a modern request: pool, headers checked
//! against the body (`era/modern.rs`), the policy phases (`Relay::admit`), dispatch, the audit
//! of refusals and cancellation when the client goes before the answer. HTTP (statuses, JSON
//! or SSE) is the listener's; the status of an answer is `error.rs`'s.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::HeaderMap;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use super::legacy::LegacyPool;
use super::stateless::{CancelOnDrop, Pending, Stateless};
use super::{Refused, Relay};
use crate::caller::Caller;
use crate::config::{ChildEra, EraPolicy, ServeConfig, SessionMode};
use crate::era::modern::ToolHeaders;
use crate::era::state::StateKey;
use crate::era::{FIRST_MODERN, MODERN_META_KEY};
use crate::error::Error;
use crate::jsonrpc::{Frame, Kind, Message};
use crate::session::stream::Stream;
use crate::ticket::Ticket;
use crate::upstream::supervisor::{Pool, Slot, SlotSpec};
use crate::upstream::{Counters, Upstream};

const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

impl Relay {
    /// Handles one stateless 2026-07-28 message (one per POST, never a batch): the pool, its
    /// headers against its body, the policy phases, then dispatch. A refusal is recorded here
    /// and returned for the front to answer.
    pub(crate) async fn stateless(
        &self,
        caller: &Caller,
        headers: &HeaderMap,
        message: &Message,
    ) -> Result<Stateless, Refused> {
        let frames = message.frames();
        let refused = |e| Refused::record(self, caller, None, frames, e);
        let (Message::Single(_), [frame]) = (message, frames) else {
            return Err(refused(Error::InvalidRequest("batch_not_allowed")));
        };
        let served = match self.modern_served().await {
            Ok(served) => served,
            Err(Error::ModernToLegacy) => return Err(self.to_legacy(caller, frame)),
            Err(e) => return Err(refused(e)),
        };
        match served {
            Served::Native(pool) => self.stateless_one(caller, headers, frame, pool).await,
            Served::Legacy(pool) => self.translated(caller, headers, frame, pool).await,
        }
        .map_err(refused)
    }

    async fn stateless_one(
        &self,
        caller: &Caller,
        headers: &HeaderMap,
        frame: &Frame,
        pool: Arc<ModernPool>,
    ) -> Result<Stateless, Error> {
        {
            let tools = pool.tools();
            crate::era::modern::validate(headers, frame, &tools).map_err(Error::Modern)?;
        }
        match frame.kind() {
            Kind::Response => Err(Error::UnexpectedResponse),
            Kind::Notification => {
                pool.upstream().await?.forward_raw(frame);
                Ok(Stateless::Accepted)
            }
            Kind::Request => {
                let ticket = match self.admit(caller, None, frame, true).await {
                    Ok(t) => t,
                    Err((e, rule)) => {
                        // A denial is an answer, as if from the server.
                        Ticket::refused(&self.audit, caller, None, Some(frame), &e, Some(rule));
                        let body = frame.id().map(|id| e.to_jsonrpc(&id)).unwrap_or_default();
                        return Ok(Stateless::Answered(body));
                    }
                };
                // A list filtered for this caller says nothing about the tools of others.
                let method = frame.method().unwrap_or_default();
                let lists_tools = method == "tools/list" && !ticket.filters();
                // A task's follow-up goes to the child that made the task.
                let slots = pool.pool.slots();
                let (followed, tasks, ticket) =
                    self.task_plan(caller, frame, &pool.key, slots, ticket)?;
                let (up, frame) = match &followed {
                    Some(f) => (f.up.clone(), &f.frame),
                    None => (pool.upstream().await?, frame),
                };
                let stream = Stream::new(1, false, self.cfg.buffer);
                let relay_id = up.forward_stateless(frame, &stream, ticket, None, tasks)?;
                Ok(Stateless::Pending(Pending::new(
                    CancelOnDrop::new(up, relay_id, stream.clone()),
                    stream,
                    lists_tools.then(|| pool.tools.clone()),
                )))
            }
        }
    }

    /// A modern request to a legacy child: the 400 that makes the client fall back, recorded
    /// with the rule that allows the method when roles allow it (`always_allowed` for
    /// `server/discover`), so its record reads as it would for a modern child.
    fn to_legacy(&self, caller: &Caller, frame: &Frame) -> Refused {
        let e = Error::ModernToLegacy;
        let rule = match frame.kind() {
            Kind::Request => self
                .policy()
                .authorize(caller, self.names(), frame, true)
                .ok()
                .and_then(|(rule, _)| rule),
            _ => None,
        };
        Ticket::refused(&self.audit, caller, None, Some(frame), &e, rule);
        Refused {
            error: e,
            id: frame.id(),
        }
    }
}

/// How modern requests are served, once the child's era is known.
#[derive(Debug, Default)]
pub(crate) struct Modern {
    state: OnceCell<Served>,
}

/// Who serves modern requests.
#[derive(Debug, Clone)]
pub(crate) enum Served {
    /// Modern children, as they are.
    Native(Arc<ModernPool>),
    /// Legacy children, through the relay (`relay/legacy.rs`).
    Legacy(Arc<LegacyPool>),
}

/// Children serving modern requests, and what the relay learnt about their tools.
#[derive(Debug)]
pub(crate) struct ModernPool {
    pool: Pool,
    tools: Arc<RwLock<ToolHeaders>>,
    /// Seals the handles of the children's tasks (`relay/tasks.rs`).
    key: Arc<StateKey>,
}

impl ModernPool {
    /// A child for one request.
    pub(crate) async fn upstream(&self) -> Result<Arc<Upstream>, Error> {
        self.pool.pick_for_request().await
    }

    /// Which tool arguments are mirrored in which `Mcp-Param-*` headers.
    pub(crate) fn tools(&self) -> std::sync::RwLockReadGuard<'_, ToolHeaders> {
        self.tools.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Modern {
    /// Who serves modern requests; `ModernToLegacy` (the 400 that makes clients fall back)
    /// when the era policy serves legacy clients only, or a modern child in `per-identity`
    /// mode (one pool would mix identities).
    pub(crate) async fn served(
        &self,
        cfg: &ServeConfig,
        counters: &Arc<Counters>,
    ) -> Result<Served, Error> {
        if cfg.era == EraPolicy::LegacyOnly {
            return Err(Error::ModernToLegacy);
        }
        self.found(cfg, counters).await
    }

    /// Who serves modern requests, whatever the era policy (the legacy face of a
    /// modern-only child needs its pool even when modern clients are refused).
    pub(crate) async fn found(
        &self,
        cfg: &ServeConfig,
        counters: &Arc<Counters>,
    ) -> Result<Served, Error> {
        let per_identity = cfg.session_mode == SessionMode::PerIdentity;
        if per_identity && cfg.child_era == ChildEra::Modern {
            return Err(Error::ModernToLegacy);
        }
        let found = self
            .state
            .get_or_try_init(|| async {
                let native = match cfg.child_era {
                    ChildEra::Legacy => None,
                    _ if per_identity => None,
                    _ => detect(cfg, counters).await?,
                };
                Ok::<_, Error>(match native {
                    Some(pool) => Served::Native(pool),
                    None => Served::Legacy(LegacyPool::start(cfg, counters)?),
                })
            })
            .await?;
        Ok(found.clone())
    }

    /// Stops what modern requests started and no longer use (per-caller instances).
    pub(crate) fn sweep(&self) {
        if let Some(Served::Legacy(p)) = self.state.get() {
            p.sweep();
        }
    }

    /// The children of its own modern requests have, once started (shutdown and health).
    pub(crate) fn slots(&self) -> Vec<Arc<Slot>> {
        match self.state.get() {
            Some(Served::Native(p)) => p.pool.slots().to_vec(),
            Some(Served::Legacy(p)) => p.own_slots(),
            None => Vec::new(),
        }
    }
}

/// Starts the pool and probes its first child; a legacy answer stops it again.
async fn detect(
    cfg: &ServeConfig,
    counters: &Arc<Counters>,
) -> Result<Option<Arc<ModernPool>>, Error> {
    let spec = SlotSpec {
        child: cfg.child.clone(),
        limits: cfg.upstream.clone(),
        initialize: false,
        hello: None,
        caller: None,
    };
    let pool = Pool::start(cfg.children, &spec, counters);
    let up = match pool.pick_for_request().await {
        Ok(up) => up,
        Err(e) => {
            pool.stop();
            return Err(e);
        }
    };
    let modern = cfg.child_era == ChildEra::Modern || probe(&up).await;
    if !modern {
        info!("the child is legacy: the relay serves modern requests through initialized children");
        pool.stop();
        pool.wait().await;
        return Ok(None);
    }
    info!(
        children = cfg.children,
        "the child is modern: serving 2026-07-28 requests"
    );
    let mut tools = ToolHeaders::default();
    if let Some(result) = list_tools(&up).await {
        tools.learn(&result);
    }
    let Some(key) = StateKey::generate() else {
        pool.stop();
        return Err(Error::Internal);
    };
    Ok(Some(Arc::new(ModernPool {
        pool,
        tools: Arc::new(RwLock::new(tools)),
        key: Arc::new(key),
    })))
}

/// The `_meta` the relay sends on its own modern requests.
fn meta() -> serde_json::Value {
    serde_json::json!({
        MODERN_META_KEY: FIRST_MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {
            "name": "mcp-relay", "version": env!("CARGO_PKG_VERSION")
        }
    })
}

/// `server/discover`: a result or a modern error means modern (PROTOCOL.md §1).
async fn probe(up: &Upstream) -> bool {
    let params = serde_json::json!({ "_meta": meta() }).to_string();
    let Ok(answer) = up.call("server/discover", &params) else {
        return false;
    };
    match tokio::time::timeout(PROBE_TIMEOUT, answer).await {
        Ok(Ok(Ok(frame))) => frame.result().is_some() || is_modern_error(&frame),
        Ok(_) => false,
        Err(_) => {
            warn!("server/discover probe timed out: treating the child as legacy");
            false
        }
    }
}

fn is_modern_error(frame: &Frame) -> bool {
    crate::jsonrpc::error_code(frame.bytes()).is_some_and(|c| (-32022..=-32020).contains(&c))
}

/// The child's `tools/list` result (first page), for the `Mcp-Param-*` mapping.
async fn list_tools(up: &Upstream) -> Option<String> {
    let params = serde_json::json!({ "_meta": meta() }).to_string();
    let answer = up.call("tools/list", &params).ok()?;
    let frame = tokio::time::timeout(PROBE_TIMEOUT, answer)
        .await
        .ok()?
        .ok()?
        .ok()?;
    frame.result().map(str::to_owned)
}
