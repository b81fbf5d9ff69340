//! The response cache of one server's relay (`[cache]`, `config/cache.rs`): idempotent reads
//! (`tools/list`, `prompts/list`, `resources/list`, `resources/read` of configured URIs)
//! answered from an earlier answer of the same child instead of asking it again.
//!
//! Who may share an answer is the key: the server, the method, the params that matter (a
//! list's `cursor`, a read's `uri`; a request with any other param is never cached), the
//! session's protocol version, the caller's roles, and the principal unless the server runs
//! one shared child for everyone (a per-identity or per-session child may answer each caller
//! differently). The answer is kept as the child gave it, without its id, and served through
//! the caller's own ticket: the client's id spliced in byte for byte and the caller's list
//! filter applied, so a filtered list never reaches a caller with other roles.
//!
//! Invalidation: a child's `notifications/{tools,prompts,resources}/list_changed` and
//! `notifications/resources/updated` (that URI) replace a generation that every key of
//! those answers includes; with the shared store (`cache/store.rs`) the generation is shared,
//! so a change seen by one replica's child drops the fleet's answers. In memory:
//! `cache/memory.rs`. Only sessions' requests are cached (`relay/post.rs`); stateless
//! 2026-07-28 requests and aggregates (whose members cache for them) are not.
//!
//! Bounds (`max_entries`, `max_bytes`, and one principal's share of them): `cache/memory.rs`
//! and `cache/store.rs`; an answer is kept only if its generation did not change meanwhile.
//!
//! Metrics: `mcp_relay_cache_requests_total{method,result="hit|miss"}`.

mod memory;
mod store;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ring::hmac;
use serde_json::Value;
use tracing::debug;

use crate::caller::Caller;
use crate::config::cache::{CacheConfig, Storage, METHODS};
use crate::config::{ServeConfig, SessionMode};
use crate::jsonrpc::{Frame, Kind, RawId};
use crate::session::Session;
use crate::ticket::Keep;
use crate::upstream::Changes;

/// Answers larger than this are not kept.
const MAX_ANSWER: usize = 1 << 20;

/// One relay's response cache.
#[derive(Debug)]
pub(crate) struct Cache {
    cfg: Arc<CacheConfig>,
    /// The server's name in keys (empty for the unnamed server).
    server: String,
    /// Whether the key names the principal (not one shared child for everyone).
    private: bool,
    key: hmac::Key,
    storage: Arc<Kept>,
}

/// Where the answers and generations are.
#[derive(Debug)]
enum Kept {
    Memory(memory::Memory),
    Store(store::Store),
}

/// What the cache says of one request.
#[derive(Debug)]
pub(crate) enum Probe {
    /// Not cached: ask the child as always.
    Pass,
    /// The answer, with the request's id.
    Hit(Bytes),
    /// Ask the child and keep its answer.
    Miss(Box<dyn Keep>),
}

impl Cache {
    /// The cache of a relay with `cfg`; `None` without `[cache]`, for a server it does not
    /// cover, and for an aggregate (its members cache).
    pub(crate) fn new(cfg: &ServeConfig) -> Option<Arc<Cache>> {
        let c = cfg.response_cache.clone()?;
        if matches!(cfg.child, crate::upstream::ServerSpec::InProcess(_))
            || !c.covers(cfg.server_name.as_deref())
        {
            return None;
        }
        let (storage, secret) = match &c.storage {
            Storage::Memory => (
                Kept::Memory(memory::Memory::new(c.max_entries, c.max_bytes)),
                rand::random::<[u8; 32]>().to_vec(),
            ),
            Storage::Store(s) => match cfg.cluster.as_ref().and_then(|c| c.store()) {
                Some(shared) => (
                    Kept::Store(store::Store::new(s, shared.clone(), &c)),
                    s.key_secret.clone(),
                ),
                // Validation requires [cluster.store] for `storage = "store"`.
                None => return None,
            },
        };
        Some(Arc::new(Cache {
            server: cfg.server_name.clone().unwrap_or_default(),
            private: cfg.session_mode != SessionMode::Shared,
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            storage: Arc::new(storage),
            cfg: c,
        }))
    }

    /// Looks `frame` up for `caller` in `session`: the answer, or how to keep the child's.
    pub(crate) async fn probe(&self, caller: &Caller, session: &Session, frame: &Frame) -> Probe {
        let (Kind::Request, Some(method), Some(id)) = (frame.kind(), frame.method(), frame.id())
        else {
            return Probe::Pass;
        };
        let (Some(ttl), Some(param)) = (self.cfg.ttl_of(method), param_of(frame, method)) else {
            return Probe::Pass;
        };
        if method == "resources/read" && !self.cfg.resources.is_match(&param) {
            return Probe::Pass;
        }
        let generation = self.generation_key(method, &param);
        let mut roles = caller.principal.roles.clone();
        roles.sort();
        let owner = if self.private { caller.owner() } else { None };
        let parts = [
            method,
            session.effective_version(),
            owner.unwrap_or_default(),
            &roles.join("\u{1f}"),
            &param,
        ];
        let entry = self.hash("e", &parts);
        let found = match &*self.storage {
            Kept::Memory(m) => Ok::<_, store::Error>(m.lookup(&entry, &generation)),
            // Boxed: the store's future (Sentinel included) stays out of every front's.
            Kept::Store(s) => Box::pin(s.lookup(&entry, &generation)).await,
        };
        let (gen, kept) = match found {
            Ok(found) => found,
            Err(e) => {
                debug!(error = %e, "response cache unreachable: asking the child");
                return Probe::Pass;
            }
        };
        if let Some(answer) = kept.as_deref().and_then(|k| with_id(k, &id)) {
            count(method, true);
            return Probe::Hit(answer);
        }
        count(method, false);
        Probe::Miss(Box::new(Fill {
            storage: self.storage.clone(),
            slot: Slot {
                key: format!("{entry}:{gen}"),
                generation,
                gen,
            },
            holder: self.hash("p", &[&holder_of(caller)]),
            ttl,
        }))
    }

    /// The generation key of `method`'s answers (a read's: of its URI).
    fn generation_key(&self, method: &str, param: &str) -> String {
        match method {
            "resources/read" => self.hash("g", &["read", param]),
            _ => self.hash("g", &[method]),
        }
    }

    /// `kind` and a keyed hash of the server and `parts` (names never stored in clear).
    fn hash(&self, kind: &str, parts: &[&str]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(self.server.as_bytes());
        for p in parts {
            ctx.update(b"\0");
            ctx.update(p.as_bytes());
        }
        let tag = ctx.sign();
        let hex: String = tag.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{kind}:{hex}")
    }

    /// Drops the answers a child notification makes stale.
    fn invalidate(&self, generation: String) {
        match &*self.storage {
            Kept::Memory(m) => m.bump(&generation),
            Kept::Store(s) => s.bump(generation),
        }
    }
}

impl Changes for Cache {
    fn changed(&self, notification: &Frame) {
        let method = match notification.method() {
            Some("notifications/tools/list_changed") => "tools/list",
            Some("notifications/prompts/list_changed") => "prompts/list",
            Some("notifications/resources/list_changed") => "resources/list",
            Some("notifications/resources/updated") => "resources/read",
            _ => return,
        };
        let uri = notification
            .params::<Value>()
            .and_then(|p| match &p["uri"] {
                Value::String(u) => Some(u.clone()),
                _ => None,
            });
        match (method, uri) {
            ("resources/read", Some(uri)) => self.invalidate(self.generation_key(method, &uri)),
            ("resources/read", None) => {}
            (m, _) => self.invalidate(self.generation_key(m, "")),
        }
    }
}

/// The param that tells answers apart (`cursor` of a list, `uri` of a read; empty for a
/// first page); `None` when the request has another param (not cached: it may matter).
fn param_of(frame: &Frame, method: &str) -> Option<String> {
    let allowed = if method == "resources/read" {
        "uri"
    } else {
        "cursor"
    };
    let params = match frame.params::<Value>() {
        None => return (allowed == "cursor").then(String::new),
        Some(Value::Object(p)) => p,
        Some(_) => return None,
    };
    if params.keys().any(|k| k != allowed && k != "_meta") {
        return None;
    }
    match params.get(allowed) {
        Some(Value::String(s)) => Some(s.clone()),
        None if allowed == "cursor" => Some(String::new()),
        _ => None,
    }
}

/// Whom a kept answer counts against (the share of the budget one principal may hold): the
/// principal, or the client's address when anonymous.
fn holder_of(caller: &Caller) -> String {
    match (caller.owner(), caller.peer) {
        (Some(name), _) => format!("p\u{1f}{name}"),
        (None, Some(addr)) => format!("a\u{1f}{}", addr.ip),
        (None, None) => String::new(),
    }
}

/// A kept answer (`<prefix length>:<answer without its id>`) with `id` spliced back.
fn with_id(kept: &[u8], id: &RawId) -> Option<Bytes> {
    let colon = kept.iter().position(|b| *b == b':')?;
    let at: usize = std::str::from_utf8(&kept[..colon]).ok()?.parse().ok()?;
    let rest = &kept[colon + 1..];
    let (before, after) = (rest.get(..at)?, rest.get(at..)?);
    let mut out = Vec::with_capacity(rest.len() + id.as_str().len());
    out.extend_from_slice(before);
    out.extend_from_slice(id.as_str().as_bytes());
    out.extend_from_slice(after);
    Some(Bytes::from(out))
}

/// An answer as it is kept: its id cut out, where it was written first.
fn without_id(answer: &Bytes) -> Option<Vec<u8>> {
    let frame = Frame::parse_upstream(answer.clone()).ok()?;
    let span = frame.id_span()?;
    if frame.is_error() || frame.result().is_none() || answer.len() > MAX_ANSWER {
        return None;
    }
    let mut out = format!("{}:", span.start).into_bytes();
    out.extend_from_slice(&answer[..span.start]);
    out.extend_from_slice(&answer[span.end..]);
    Some(out)
}

/// Where a missed request's answer is to be kept: under the generation it was looked up in,
/// and only if that is still the generation (a change meanwhile has replaced it: the answer
/// is stale, and must not come back should the generation ever read as before).
#[derive(Debug)]
struct Slot {
    /// `<entry>:<generation>`.
    key: String,
    /// The generation key, and the generation read with the lookup.
    generation: String,
    gen: String,
}

/// Keeps the child's answer to a missed request in its [`Slot`].
#[derive(Debug)]
struct Fill {
    storage: Arc<Kept>,
    slot: Slot,
    /// The keyed hash of whom it counts against ([`holder_of`]).
    holder: String,
    ttl: Duration,
}

impl Keep for Fill {
    fn keep(&self, answer: &Bytes) {
        let Some(kept) = without_id(answer) else {
            return;
        };
        match &*self.storage {
            Kept::Memory(m) => m.fill(&self.slot, &self.holder, kept, self.ttl),
            Kept::Store(s) => s.fill(&self.slot, &self.holder, kept, self.ttl),
        }
    }
}

// === metrics ===

/// Hits and misses per method of [`METHODS`].
static COUNTS: [[AtomicU64; 2]; 4] = [const { [const { AtomicU64::new(0) }; 2] }; 4];

fn count(method: &str, hit: bool) {
    if let Some(i) = METHODS.iter().position(|m| *m == method) {
        COUNTS[i][usize::from(hit)].fetch_add(1, Relaxed);
    }
}

/// The `/metrics` family of the cache (nothing until it was used).
pub(crate) fn metrics_text() -> String {
    let mut lines = String::new();
    for (method, counts) in METHODS.iter().zip(&COUNTS) {
        for (result, n) in ["miss", "hit"].iter().zip(counts) {
            let n = n.load(Relaxed);
            if n > 0 {
                lines.push_str(&format!(
                    "mcp_relay_cache_requests_total{{method=\"{method}\",result=\"{result}\"}} {n}\n"
                ));
            }
        }
    }
    if lines.is_empty() {
        return lines;
    }
    "# HELP mcp_relay_cache_requests_total Cacheable requests answered from the response cache (hit) or by the child (miss).\n\
     # TYPE mcp_relay_cache_requests_total counter\n"
        .to_owned()
        + &lines
}

#[cfg(test)]
mod tests;
