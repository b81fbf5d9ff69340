//! Sessions: ids, the table, idle expiry, and each session's streams.
//!
//! A [`SessionId`] is 128 bits from the OS-seeded CSPRNG, written as 32 hex digits (visible
//! ASCII). A [`Session`] owns its upstream (in the default per-session mode, its own child),
//! its negotiated protocol version, its standalone GET stream and its recent POST streams
//! (kept for `Last-Event-ID` replay). Routing of messages is `relay.rs`'s job.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::RngCore;
use tokio_util::sync::CancellationToken;

use crate::relay::stream::{BufferLimits, Stream};
use crate::upstream::Upstream;

/// An `Mcp-Session-Id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    pub fn random() -> SessionId {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        SessionId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How many finished POST streams a session keeps for replay.
const KEPT_STREAMS: usize = 32;

/// One client session.
#[derive(Debug)]
pub struct Session {
    id: SessionId,
    upstream: Arc<Upstream>,
    /// The version the client asked for in `initialize` (decides priming before the answer).
    requested: String,
    version: OnceLock<String>,
    limits: BufferLimits,
    streams: Mutex<Streams>,
    created: Instant,
    last_active_ms: AtomicU64,
    ended: CancellationToken,
}

#[derive(Debug)]
struct Streams {
    next: u64,
    standalone: Arc<Stream>,
    posts: VecDeque<Arc<Stream>>,
}

impl Session {
    pub fn new(upstream: Arc<Upstream>, requested: String, limits: BufferLimits) -> Arc<Session> {
        Arc::new(Session {
            id: SessionId::random(),
            upstream,
            requested,
            version: OnceLock::new(),
            limits,
            streams: Mutex::new(Streams {
                next: 1,
                standalone: Stream::new(0, true, limits),
                posts: VecDeque::new(),
            }),
            created: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            ended: CancellationToken::new(),
        })
    }

    pub fn id(&self) -> &SessionId {
        &self.id
    }

    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    /// The negotiated version, once the child answered `initialize`.
    pub fn version(&self) -> Option<&str> {
        self.version.get().map(String::as_str)
    }

    pub fn set_version(&self, v: String) {
        let _ = self.version.set(v);
    }

    /// The version to shape streams by: negotiated, else requested.
    pub fn effective_version(&self) -> &str {
        self.version().unwrap_or(&self.requested)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new stream for one POST. Finished streams are kept for replay while the session's
    /// whole buffer stays within the replay limits (SECURITY.md §2: per session), oldest
    /// dropped first; streams still running are never dropped.
    pub fn new_stream(&self) -> Arc<Stream> {
        let mut s = self.lock();
        let stream = Stream::new(s.next, false, self.limits);
        s.next += 1;
        s.posts.retain(|p| !p.is_done() || p.buffered().0 > 0);
        let (mut events, mut bytes) = s.posts.iter().fold((0, 0), |(e, b), p| {
            let (pe, pb) = p.buffered();
            (e + pe, b + pb)
        });
        while events > self.limits.events
            || bytes > self.limits.bytes
            || s.posts.len() >= KEPT_STREAMS
        {
            let Some(pos) = s.posts.iter().position(|p| p.is_done()) else {
                break;
            };
            if let Some(old) = s.posts.remove(pos) {
                let (e, b) = old.buffered();
                events -= e;
                bytes -= b;
            }
        }
        s.posts.push_back(stream.clone());
        stream
    }

    pub fn standalone(&self) -> Arc<Stream> {
        self.lock().standalone.clone()
    }

    /// A stream of this session by id (0 is the standalone stream).
    pub fn stream(&self, id: u64) -> Option<Arc<Stream>> {
        let s = self.lock();
        if id == 0 {
            return Some(s.standalone.clone());
        }
        s.posts.iter().find(|p| p.id() == id).cloned()
    }

    pub fn touch(&self) {
        let ms = self.created.elapsed().as_millis() as u64;
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        self.created.elapsed().saturating_sub(last)
    }

    /// True while a client is connected to one of its streams.
    fn has_connection(&self) -> bool {
        let s = self.lock();
        s.standalone.is_attached() || s.posts.iter().any(|p| p.is_attached())
    }

    pub fn is_ended(&self) -> bool {
        self.ended.is_cancelled()
    }

    pub fn ended(&self) -> &CancellationToken {
        &self.ended
    }

    /// Ends the session: streams close, the upstream is told to let go of it.
    pub fn end(&self) {
        if self.ended.is_cancelled() {
            return;
        }
        self.ended.cancel();
        let s = self.lock();
        s.standalone.close();
        for p in &s.posts {
            p.close();
        }
    }
}

/// All live sessions, keyed by id.
#[derive(Debug, Default)]
pub struct SessionTable {
    map: Mutex<HashMap<SessionId, Arc<Session>>>,
}

impl SessionTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<Session>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Inserts unless the table holds `cap` sessions already.
    pub fn insert(&self, session: Arc<Session>, cap: usize) -> bool {
        let mut map = self.lock();
        if map.len() >= cap {
            return false;
        }
        map.insert(session.id().clone(), session);
        true
    }

    /// A live session; an ended one is removed and reported as absent.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let mut map = self.lock();
        let key = SessionId(id.to_owned());
        let session = map.get(&key)?.clone();
        if session.is_ended() {
            map.remove(&key);
            return None;
        }
        Some(session)
    }

    pub fn remove(&self, id: &SessionId) -> Option<Arc<Session>> {
        self.lock().remove(id)
    }

    /// Removes and returns ended sessions and those idle past `ttl` without a connection.
    pub fn take_expired(&self, ttl: Duration) -> Vec<Arc<Session>> {
        let mut map = self.lock();
        let expired: Vec<SessionId> = map
            .values()
            .filter(|s| s.is_ended() || (s.idle_for() >= ttl && !s.has_connection()))
            .map(|s| s.id().clone())
            .collect();
        expired.iter().filter_map(|id| map.remove(id)).collect()
    }

    /// Child stdout lines dropped as invalid, over the live sessions' children.
    pub fn dropped_lines(&self) -> u64 {
        self.lock()
            .values()
            .map(|s| s.upstream().dropped_lines())
            .sum()
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.lock().values().cloned().collect()
    }

    pub fn drain(&self) -> Vec<Arc<Session>> {
        self.lock().drain().map(|(_, s)| s).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c3_session_ids_are_unique_128_bit_visible_ascii() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| SessionId::random().0).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        }
    }
}
