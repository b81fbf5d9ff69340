//! 2026-07-28 requests served by legacy children (PROTOCOL.md §5.12, server side).
//!
//! When the wrapped server speaks only the initialize-based era, the relay stands in for the
//! modern server: it initializes the children itself (with sampling, elicitation and roots,
//! which it can carry), answers `server/discover` from their `initialize` result, and sends
//! each stateless request to an initialized child: a pool of its own in `per-session` mode,
//! the shared pool in `shared` mode, the caller's child in `per-identity` mode. Headers and
//! `_meta` are checked exactly as for a modern child (`era/modern.rs`), and the policy phases
//! are the same (`Relay::admit`). Methods the modern era removed are unknown here (-32601).
//!
//! A child that asks for input while it serves a request is handled by the mux
//! (`upstream/translate.rs`): the client gets an `input_required` result whose
//! `requestState` is sealed here (`era/state.rs`). The client's retry carries it back; this
//! file opens it, checks it belongs to this caller, server and request, finds the child by
//! its pid and resumes the parked request there. A state that fails any check is -32602 and
//! never reaches a child. `subscriptions/listen` is `relay/listen.rs`'s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;

use super::stateless::{CancelOnDrop, Pending, Stateless};
use super::Relay;
use crate::caller::Caller;
use crate::config::{ServeConfig, SessionMode};
use crate::era::modern::ToolHeaders;
use crate::era::state::{self, State, StateKey};
use crate::error::Error;
use crate::jsonrpc::{Frame, Kind};
use crate::session::stream::Stream;
use crate::ticket::Ticket;
use crate::upstream::supervisor::{Init, Pool, Slot, SlotSpec, State as SlotState};
use crate::upstream::translation::{CacheHint, Seal, Translation};
use crate::upstream::{Counters, ServerSpec, Upstream};

/// Methods the modern era removed: a modern client naming one gets -32601, as from a
/// modern server.
const REMOVED: [&str; 5] = [
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// Legacy children serving modern requests, and what the relay keeps for them.
#[derive(Debug)]
pub(crate) struct LegacyPool {
    /// The pool of its own (`per-session` mode); the other modes use the relay's children.
    own: Option<Pool>,
    /// An in-process server's instances, one per caller (the aggregate).
    per_caller: Option<PerCaller>,
    tools: Arc<RwLock<ToolHeaders>>,
    listed: OnceCell<()>,
    key: Arc<StateKey>,
}

impl LegacyPool {
    /// `Internal` when no sealing key can be drawn (no system randomness).
    pub(crate) fn start(
        cfg: &ServeConfig,
        counters: &Arc<Counters>,
    ) -> Result<Arc<LegacyPool>, Error> {
        let key = StateKey::generate().ok_or(Error::Internal)?;
        let spec = SlotSpec {
            child: cfg.child.clone(),
            limits: cfg.upstream.clone(),
            initialize: true,
            hello: None,
            caller: None,
        };
        let in_process = matches!(cfg.child, ServerSpec::InProcess(_));
        let per_caller = in_process.then(|| PerCaller {
            spec: spec.clone(),
            counters: counters.clone(),
            idle: cfg.session_idle.max(cfg.input_wait),
            max: cfg.max_sessions,
            slots: Mutex::default(),
        });
        let own = (cfg.session_mode == SessionMode::PerSession && !in_process)
            .then(|| Pool::start(cfg.children, &spec, counters));
        Ok(Arc::new(LegacyPool {
            own,
            per_caller,
            tools: Arc::default(),
            listed: OnceCell::new(),
            key: Arc::new(key),
        }))
    }

    /// Stops idle per-caller instances (the relay's sweeper calls it).
    pub(crate) fn sweep(&self) {
        if let Some(pc) = &self.per_caller {
            pc.sweep(None);
        }
    }

    /// The slots of its own (a pool, or one per caller), for health and shutdown.
    pub(crate) fn own_slots(&self) -> Vec<Arc<Slot>> {
        let mut out: Vec<Arc<Slot>> = self
            .own
            .as_ref()
            .map(|p| p.slots().to_vec())
            .unwrap_or_default();
        if let Some(pc) = &self.per_caller {
            out.extend(pc.all());
        }
        out
    }
}

/// Instances of an in-process server (the aggregate) serving modern requests: one per caller
/// (principal and roles), since it opens its servers' sessions with its caller's roles and
/// the servers' relays judge every request by them. An instance unused for the session idle
/// timeout (or the input wait, if longer) stops; at most `--max-sessions` run at once.
#[derive(Debug)]
struct PerCaller {
    spec: SlotSpec,
    counters: Arc<Counters>,
    idle: Duration,
    max: usize,
    slots: Mutex<HashMap<String, (Arc<Slot>, Instant)>>,
}

impl PerCaller {
    /// Stops the instances unused for the idle time (but `keep`'s).
    fn sweep(&self, keep: Option<&str>) {
        let now = Instant::now();
        let mut map = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|k, (slot, used)| {
            let stay = Some(k.as_str()) == keep || now.duration_since(*used) < self.idle;
            if !stay {
                slot.stop();
            }
            stay
        });
    }

    fn slot(&self, caller: &Caller) -> Result<Arc<Slot>, Error> {
        let key = format!(
            "{}\u{0}{}",
            caller.owner().unwrap_or_default(),
            caller.principal.roles.join("\u{0}")
        );
        self.sweep(Some(&key));
        let now = Instant::now();
        let mut map = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(&key) && map.len() >= self.max {
            return Err(Error::SessionCap);
        }
        let entry = map.entry(key).or_insert_with(|| {
            let spec = SlotSpec {
                caller: Some(caller.clone()),
                ..self.spec.clone()
            };
            (Slot::start(0, spec, self.counters.clone()), now)
        });
        entry.1 = now;
        Ok(entry.0.clone())
    }

    fn all(&self) -> Vec<Arc<Slot>> {
        let map = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        map.values().map(|(s, _)| s.clone()).collect()
    }
}

/// Seals the states of one request's rounds.
#[derive(Debug)]
struct Sealer {
    key: Arc<StateKey>,
    base: State,
    wait: Duration,
}

impl Seal for Sealer {
    fn seal(&self, pid: u32, relay_id: u64, round: u32) -> String {
        let wait = u64::try_from(self.wait.as_millis()).unwrap_or(u64::MAX);
        self.key.seal(&State {
            pid,
            relay_id,
            round,
            expires_ms: state::now_ms().saturating_add(wait),
            ..self.base.clone()
        })
    }
}

impl Relay {
    /// The slots that may serve `caller`'s modern requests.
    fn legacy_slots(&self, lp: &LegacyPool, caller: &Caller) -> Result<Vec<Arc<Slot>>, Error> {
        if let Some(pc) = &lp.per_caller {
            return Ok(vec![pc.slot(caller)?]);
        }
        if let Some(pool) = &lp.own {
            return Ok(pool.slots().to_vec());
        }
        if self.cfg.session_mode == SessionMode::PerIdentity {
            let backend = self.children.bind(&self.cfg, &self.counters, caller)?;
            return Ok(match backend {
                super::children::Backend::Shared(slot) => vec![slot],
                super::children::Backend::Own(_) => Vec::new(),
            });
        }
        Ok(self.children.slots())
    }

    /// An initialized child with the fewest requests waiting for input (then in flight), and
    /// its `initialize` answer.
    async fn legacy_child(slots: &[Arc<Slot>]) -> Result<(Arc<Upstream>, Arc<Init>), Error> {
        let ready = slots
            .iter()
            .filter_map(|s| match s.state() {
                SlotState::Ready(up, Some(init)) if up.is_alive() => Some((up, init)),
                _ => None,
            })
            .min_by_key(|(up, _)| (up.parked(), up.inflight()));
        match (ready, slots.first()) {
            (Some(found), _) => Ok(found),
            (None, Some(first)) => first.initialized().await,
            (None, None) => Err(Error::ChildUnavailable),
        }
    }

    /// Handles one modern message for a legacy child.
    pub(super) async fn translated(
        &self,
        caller: &Caller,
        headers: &HeaderMap,
        frame: &Frame,
        lp: Arc<LegacyPool>,
    ) -> Result<Stateless, Error> {
        let slots = self.legacy_slots(&lp, caller)?;
        let (up, init) = Self::legacy_child(&slots).await?;
        lp.listed.get_or_init(|| learn_tools(&up, &lp.tools)).await;
        {
            let tools = lp.tools.read().unwrap_or_else(|e| e.into_inner());
            crate::era::modern::validate(headers, frame, &tools).map_err(Error::Modern)?;
        }
        match frame.kind() {
            Kind::Response => return Err(Error::UnexpectedResponse),
            // Modern clients cancel by closing the stream; other notifications have no
            // legacy meaning without a session.
            Kind::Notification => return Ok(Stateless::Accepted),
            Kind::Request => {}
        }
        let method = frame.method().unwrap_or_default();
        let mut ticket = match self.admit(caller, None, frame, true).await {
            Ok(t) => t,
            Err((e, rule)) => {
                Ticket::refused(&self.audit, caller, None, Some(frame), &e, Some(rule));
                let body = frame.id().map(|id| e.to_jsonrpc(&id)).unwrap_or_default();
                return Ok(Stateless::Answered(body));
            }
        };
        let Some(raw_id) = frame.id() else {
            return Err(Error::Internal);
        };
        if method == "server/discover" {
            let legacy_too = self.cfg.era != crate::config::EraPolicy::ModernOnly;
            let body = discover(&init, raw_id.as_str(), self.cache_hint(&ticket), legacy_too);
            return Ok(Stateless::Answered(ticket.answer(body, None)));
        }
        if REMOVED.contains(&method) {
            let e = Error::DeniedMethod;
            let body = e.to_jsonrpc(&raw_id);
            return Ok(Stateless::Answered(ticket.answer(body, Some(-32601))));
        }
        if method == "subscriptions/listen" {
            return Ok(self.listen_legacy(caller, frame, ticket, slots, &init));
        }
        let seal = Arc::new(Sealer {
            key: lp.key.clone(),
            base: self.state_of(caller, frame),
            wait: self.cfg.input_wait,
        });
        let principal = caller.owner().unwrap_or_default();
        let hint = self.cache_hint(&ticket);
        let tr = Translation::new(frame, principal, seal, self.cfg.input_wait, hint);
        match request_state(frame) {
            Some(text) => self.resume(caller, frame, ticket, &text, tr, &lp),
            None => {
                let lists_tools = method == "tools/list" && !ticket.filters();
                let (followed, tasks, ticket) =
                    self.task_plan(caller, frame, &lp.key, &slots, ticket)?;
                let (up, frame) = match &followed {
                    Some(f) => (f.up.clone(), &f.frame),
                    None => (up, frame),
                };
                let stream = Stream::new(1, false, self.cfg.buffer);
                let relay_id = up.forward_stateless(frame, &stream, ticket, Some(tr), tasks)?;
                Ok(Stateless::Pending(Pending::new(
                    CancelOnDrop::new(up, relay_id, stream.clone()),
                    stream,
                    lists_tools.then(|| lp.tools.clone()),
                )))
            }
        }
    }

    /// A retry: the state must open for this caller and request, and its request must wait
    /// at a live child; then it resumes there.
    fn resume(
        &self,
        caller: &Caller,
        frame: &Frame,
        ticket: Ticket,
        text: &str,
        tr: Arc<Translation>,
        lp: &LegacyPool,
    ) -> Result<Stateless, Error> {
        let refuse = |ticket: Ticket, reason: &'static str| {
            ticket.discard();
            Err(Error::RequestState(reason))
        };
        let opened = match lp.key.open(text, &self.state_of(caller, frame)) {
            Ok(s) => s,
            Err(r) => return refuse(ticket, r.reason()),
        };
        let up = self.legacy_slots(lp, caller).ok().and_then(|slots| {
            slots
                .iter()
                .filter_map(|s| s.current())
                .find(|u| u.pid() == opened.pid && u.is_alive())
        });
        let Some(up) = up else {
            return refuse(ticket, "request_state_expired");
        };
        let stream = Stream::new(1, false, self.cfg.buffer);
        match up.resume(opened.relay_id, opened.round, frame, &stream, ticket, &tr) {
            Ok(()) => Ok(Stateless::Pending(Pending::new(
                CancelOnDrop::new(up, opened.relay_id, stream.clone()),
                stream,
                None,
            ))),
            Err(ticket) => refuse(ticket, "request_state_expired"),
        }
    }

    /// What a state of this request is bound to (pid, relay id and round are the mux's).
    fn state_of(&self, caller: &Caller, frame: &Frame) -> State {
        State {
            principal: caller.owner().unwrap_or_default().to_owned(),
            server: self.cfg.server_name.clone().unwrap_or_default(),
            pid: 0,
            relay_id: 0,
            round: 0,
            method: frame.method().unwrap_or_default().to_owned(),
            name: frame
                .name()
                .or_else(|| frame.uri())
                .unwrap_or_default()
                .to_owned(),
            expires_ms: 0,
        }
    }

    /// The caching hints of this relay's translated answers (`public` only as configured,
    /// never for an answer filtered for the caller, never per identity).
    fn cache_hint(&self, ticket: &Ticket) -> Option<CacheHint> {
        let ttl_ms = u64::try_from(self.cfg.cache_ttl.as_millis()).unwrap_or(u64::MAX);
        Some(CacheHint {
            ttl_ms,
            // Each identity's child may answer differently: never public there.
            public: self.cfg.cache_public
                && !ticket.filters()
                && self.cfg.session_mode != SessionMode::PerIdentity,
        })
    }
}

/// `params.requestState` of a retry.
fn request_state(frame: &Frame) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "requestState")]
        request_state: Option<String>,
    }
    frame.params::<Params>()?.request_state
}

/// The `DiscoverResult` made from a legacy child's `initialize` answer.
fn discover(init: &Init, raw_id: &str, hint: Option<CacheHint>, legacy_too: bool) -> Bytes {
    let mut result = Map::new();
    result.insert("resultType".into(), json!("complete"));
    // Legacy sessions are served on the same path (unless modern-only): a dual-era client
    // may prefer its own version.
    let mut versions: Vec<&str> = Vec::new();
    if legacy_too {
        versions.extend(crate::era::LEGACY_VERSIONS);
    }
    versions.extend(crate::era::modern::SUPPORTED);
    result.insert("supportedVersions".into(), json!(versions));
    let caps = init.result.get("capabilities").cloned();
    result.insert("capabilities".into(), caps.unwrap_or_else(|| json!({})));
    if let Some(info) = init.result.get("serverInfo") {
        result.insert("serverInfo".into(), info.clone());
        result.insert(
            "_meta".into(),
            json!({ "io.modelcontextprotocol/serverInfo": info }),
        );
    }
    if let Some(i) = init.result.get("instructions") {
        result.insert("instructions".into(), i.clone());
    }
    if let Some(h) = hint {
        result.insert("ttlMs".into(), json!(h.ttl_ms));
        let scope = if h.public { "public" } else { "private" };
        result.insert("cacheScope".into(), json!(scope));
    }
    format!(
        r#"{{"jsonrpc":"2.0","id":{raw_id},"result":{}}}"#,
        Value::Object(result)
    )
    .into()
}

/// Learns the `Mcp-Param-*` mapping from the child's first `tools/list` page.
async fn learn_tools(up: &Upstream, tools: &RwLock<ToolHeaders>) {
    let Ok(answer) = up.call("tools/list", "{}") else {
        return;
    };
    let Ok(Ok(Ok(frame))) = tokio::time::timeout(Duration::from_secs(10), answer).await else {
        return;
    };
    if let Some(result) = frame.result() {
        tools
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .learn(result);
    }
}
