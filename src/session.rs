//! Sessions: ids, the table, idle expiry, and each session's streams.
//!
//! Expiry: a session with a client connected to one of its streams (a GET stream, a POST
//! awaiting its answer, a WebSocket, TCP or legacy SSE connection) never expires. Without one
//! it ends after `--session-idle-timeout` with no request in flight, or `--session-ttl`
//! whatever is in flight; the idle clock counts from its last request, its last answer, or
//! the last time a stream was seen open.
//!
//! A [`SessionId`] is 128 bits from the OS-seeded CSPRNG, written as 32 hex digits (visible
//! ASCII). A [`Session`] holds the identity that opened it, the client capabilities it
//! declared, its negotiated protocol version, its in-flight count, its standalone GET stream
//! and its recent POST streams (kept for `Last-Event-ID` replay). A legacy SSE connection's
//! session is reserved when the connection opens, before its `initialize` (which fills in the
//! capabilities), and carries the [`Inbox`] its POSTs reach the connection by. The
//! [`SessionTable`] keeps beside each session what the relay bound it to (its child:
//! `relay/children.rs`), opaque here, so this layer knows nothing of upstreams. What a
//! message does in its session is `relay/post.rs`'s job; routing a child's messages back is
//! `upstream/route.rs`'s.

pub(crate) mod stream;
mod table;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::RngCore;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::caller::Caller;
use crate::jsonrpc::Frame;
use stream::{BufferLimits, Stream};
pub(crate) use table::{Expiry, Full, SessionTable};

/// An `Mcp-Session-Id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SessionId(String);

impl SessionId {
    pub(crate) fn random() -> SessionId {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        SessionId(crate::cluster::id::tag(&hex))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// How many finished POST streams a session keeps for replay.
const KEPT_STREAMS: usize = 32;

/// A message for a connection that carries a session, handed over by a front that receives
/// it apart from the connection (legacy SSE: a POST for its GET stream), with the caller that
/// sent it; `done` is told once the connection handled it.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub caller: Caller,
    pub bytes: Bytes,
    pub done: oneshot::Sender<()>,
}

/// The way to a connection's driver.
pub(crate) type Inbox = mpsc::Sender<Inbound>;

/// Client capabilities that decide whether a shared child's request may reach the session.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ClientCaps {
    pub sampling: bool,
    pub elicitation: bool,
    pub roots: bool,
}

/// What an `initialize` request says about its client.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hello {
    /// `params.protocolVersion` (empty when absent).
    pub version: String,
    pub caps: ClientCaps,
    /// `params.clientInfo.name` and `.version` (capped as audit strings; empty when absent),
    /// for the operator's console.
    pub client_name: String,
    pub client_version: String,
}

impl Hello {
    pub(crate) fn of(init: &Frame) -> Hello {
        #[derive(serde::Deserialize)]
        struct Params {
            #[serde(rename = "protocolVersion")]
            protocol_version: Option<String>,
            capabilities: Option<serde_json::Map<String, serde_json::Value>>,
            /// Read loosely: a strange `clientInfo` must not lose the rest.
            #[serde(rename = "clientInfo")]
            client_info: Option<serde_json::Value>,
        }
        let p = init.params::<Params>();
        let info = |k: &str| {
            let info = p.as_ref().and_then(|p| p.client_info.as_ref());
            let text = info.and_then(|i| i.get(k)).and_then(|v| v.as_str());
            text.map(crate::telemetry::audit::cap).unwrap_or_default()
        };
        let (client_name, client_version) = (info("name"), info("version"));
        let caps = p.as_ref().and_then(|p| p.capabilities.as_ref());
        let has = |k: &str| caps.is_some_and(|c| c.get(k).is_some_and(|v| !v.is_null()));
        let caps = ClientCaps {
            sampling: has("sampling"),
            elicitation: has("elicitation"),
            roots: has("roots"),
        };
        Hello {
            version: p.and_then(|p| p.protocol_version).unwrap_or_default(),
            caps,
            client_name,
            client_version,
        }
    }
}

/// What the operator's console shows of a session ([`Session::facts`]).
#[derive(Debug, Clone)]
pub(crate) struct Facts<'a> {
    /// Who opened it (`""`: anonymous).
    pub principal: &'a str,
    /// The front it was opened on (`""` until known).
    pub transport: &'static str,
    pub client_name: &'a str,
    pub client_version: &'a str,
    pub protocol_version: &'a str,
    pub age: Duration,
    /// Since its last request, answer or open stream.
    pub idle: Duration,
    pub calls: u64,
    pub in_flight: usize,
}

/// One client session.
#[derive(Debug)]
pub(crate) struct Session {
    id: SessionId,
    /// Who opened it (`--identity-header`); only the same identity may use it.
    identity: Option<String>,
    /// What the client said in `initialize`: the version it asked for (decides priming before
    /// the answer) and its capabilities. Unset while the session is reserved.
    hello: OnceLock<Hello>,
    /// The roles of the caller that opened it, kept where they cannot be decided again per
    /// request (the aggregate: its servers' sessions were opened with them).
    roles: OnceLock<Vec<String>>,
    /// Where messages for the connection carrying this session go, when they arrive apart
    /// from it (legacy SSE: each POST).
    inbox: Option<Inbox>,
    inflight: AtomicUsize,
    /// Requests admitted in it so far (the console's count).
    calls: AtomicU64,
    /// The front it was opened on (`Transport::as_str`), once known.
    transport: OnceLock<&'static str>,
    version: OnceLock<String>,
    limits: BufferLimits,
    /// Whether a client may resume its streams (Streamable HTTP, `Last-Event-ID`); a session
    /// on a connection front keeps no finished stream.
    replays: bool,
    streams: Mutex<Streams>,
    created: Instant,
    last_active_ms: AtomicU64,
    /// When its requests started being refused for capacity (rate limit, cap, overload)
    /// without one admitted since: ms after `created`, plus one; 0 while not throttled.
    throttled_since_ms: AtomicU64,
    ended: CancellationToken,
}

#[derive(Debug)]
struct Streams {
    next: u64,
    standalone: Arc<Stream>,
    posts: VecDeque<Arc<Stream>>,
}

impl Session {
    /// A session whose client sent `initialize`; `replays` when it may resume streams.
    pub(crate) fn new(
        hello: Hello,
        identity: Option<String>,
        limits: BufferLimits,
        replays: bool,
    ) -> Arc<Session> {
        let mut session = Session::build(identity, limits, None);
        session.replays = replays;
        let _ = session.hello.set(hello);
        Arc::new(session)
    }

    /// A session reserved for a connection that has not sent `initialize` yet (legacy SSE:
    /// the id is the connection's from its first event on); `inbox` reaches the connection.
    pub(crate) fn reserved(
        identity: Option<String>,
        limits: BufferLimits,
        inbox: Inbox,
    ) -> Arc<Session> {
        let session = Session::build(identity, limits, Some(inbox));
        let _ = session
            .transport
            .set(crate::caller::Transport::Sse.as_str());
        Arc::new(session)
    }

    /// Fills a reserved session with its client's `initialize`; false if it had one.
    pub(crate) fn greet(&self, hello: Hello) -> bool {
        self.hello.set(hello).is_ok()
    }

    #[cfg(test)]
    /// Whether `initialize` filled this session (a reserved one waits for it).
    pub(crate) fn is_greeted(&self) -> bool {
        self.hello.get().is_some()
    }

    /// Keeps the opener's roles (see the field).
    pub(crate) fn keep_roles(&self, roles: &[String]) {
        let _ = self.roles.set(roles.to_vec());
    }

    /// The opener's roles, when kept.
    pub(crate) fn roles(&self) -> Option<&[String]> {
        self.roles.get().map(Vec::as_slice)
    }

    /// Where a message for this session's connection goes (reserved sessions only).
    pub(crate) fn inbox(&self) -> Option<&Inbox> {
        self.inbox.as_ref()
    }

    fn build(identity: Option<String>, limits: BufferLimits, inbox: Option<Inbox>) -> Session {
        Session {
            id: SessionId::random(),
            identity,
            hello: OnceLock::new(),
            roles: OnceLock::new(),
            inbox,
            inflight: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
            transport: OnceLock::new(),
            version: OnceLock::new(),
            limits,
            replays: false,
            streams: Mutex::new(Streams {
                next: 1,
                standalone: Stream::new(0, true, limits),
                posts: VecDeque::new(),
            }),
            created: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            throttled_since_ms: AtomicU64::new(0),
            ended: CancellationToken::new(),
        }
    }

    pub(crate) fn id(&self) -> &SessionId {
        &self.id
    }

    pub(crate) fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// The version the client asked for.
    pub(crate) fn requested(&self) -> &str {
        self.hello.get().map_or("", |h| h.version.as_str())
    }

    fn caps(&self) -> ClientCaps {
        self.hello.get().map(|h| h.caps).unwrap_or_default()
    }

    /// Whether the client declared what a child request of `method` needs.
    pub(crate) fn declares(&self, method: &str) -> bool {
        match method {
            "sampling/createMessage" => self.caps().sampling,
            "elicitation/create" => self.caps().elicitation,
            "roots/list" => self.caps().roots,
            _ => true,
        }
    }

    /// Takes one in-flight slot unless `limit` are taken (and counts the call).
    pub(crate) fn begin_request(&self, limit: usize) -> bool {
        let taken = self
            .inflight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        if taken {
            self.calls.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    /// Notes the front the session was opened on (the first call wins).
    pub(crate) fn opened_on(&self, transport: crate::caller::Transport) {
        let _ = self.transport.set(transport.as_str());
    }

    /// What the operator's console shows of the session.
    pub(crate) fn facts(&self) -> Facts<'_> {
        let hello = self.hello.get();
        Facts {
            principal: self.identity().unwrap_or(""),
            transport: self.transport.get().copied().unwrap_or(""),
            client_name: hello.map_or("", |h| h.client_name.as_str()),
            client_version: hello.map_or("", |h| h.client_version.as_str()),
            protocol_version: self.effective_version(),
            age: self.created.elapsed(),
            idle: self.idle_for(),
            calls: self.calls.load(Ordering::Relaxed),
            in_flight: self.in_flight(),
        }
    }

    /// Requests of this session not answered yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    /// Frees an in-flight slot. An answer is activity: a client that disconnected during a
    /// long call gets the whole idle timeout from then to resume and fetch it.
    pub(crate) fn end_request(&self) {
        let _ = self
            .inflight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        self.touch();
    }

    /// The negotiated version, once the child answered `initialize`.
    pub(crate) fn version(&self) -> Option<&str> {
        self.version.get().map(String::as_str)
    }

    pub(crate) fn set_version(&self, v: String) {
        let _ = self.version.set(v);
    }

    /// The version to shape streams by: negotiated, else requested.
    pub(crate) fn effective_version(&self) -> &str {
        self.version().unwrap_or(self.requested())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new stream for one POST (or one request of a connection). Finished streams are kept
    /// for replay while the session's whole buffer stays within the replay limits
    /// (SECURITY.md §2: per session), oldest dropped first; streams still running are never
    /// dropped. A session that cannot resume keeps only the running ones.
    pub(crate) fn new_stream(&self) -> Arc<Stream> {
        let mut s = self.lock();
        let stream = Stream::new(s.next, false, self.limits);
        s.next += 1;
        if !self.replays {
            s.posts.retain(|p| !p.is_done());
            s.posts.push_back(stream.clone());
            return stream;
        }
        let (mut events, mut bytes) = (0, 0);
        s.posts.retain(|p| {
            let (done, e, b) = p.held();
            events += e;
            bytes += b;
            !done || e > 0
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

    pub(crate) fn standalone(&self) -> Arc<Stream> {
        self.lock().standalone.clone()
    }

    /// Forgets a POST stream whose whole answer went out as one JSON body: it has no event
    /// ids, so nothing can resume it, and keeping it for replay would only hold memory.
    pub(crate) fn answered_whole(&self, stream: &Arc<Stream>) {
        self.lock().posts.retain(|p| !Arc::ptr_eq(p, stream));
    }

    /// A stream of this session by id (0 is the standalone stream).
    pub(crate) fn stream(&self, id: u64) -> Option<Arc<Stream>> {
        let s = self.lock();
        if id == 0 {
            return Some(s.standalone.clone());
        }
        s.posts.iter().find(|p| p.id() == id).cloned()
    }

    /// Counts one request's admission: refused for capacity (`throttled`) or not. A run of
    /// refusals with no admission between is what [`Session::throttled_for`] measures.
    pub(crate) fn note_admission(&self, throttled: bool) {
        let at = self.created.elapsed().as_millis() as u64 + 1;
        if !throttled {
            self.throttled_since_ms.store(0, Ordering::Relaxed);
        } else {
            let _ = self.throttled_since_ms.compare_exchange(
                0,
                at,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// How long every request of this session has been refused for capacity.
    pub(crate) fn throttled_for(&self) -> Duration {
        match self.throttled_since_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => self
                .created
                .elapsed()
                .saturating_sub(Duration::from_millis(since - 1)),
        }
    }

    pub(crate) fn touch(&self) {
        let ms = self.created.elapsed().as_millis() as u64;
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        self.created.elapsed().saturating_sub(last)
    }

    /// Why this session should end now, if it should (`SessionTable::take_expired`). While a
    /// client is connected to one of its streams it never expires, and its idle clock starts
    /// again, so a session whose stream just closed gets the whole timeout to come back.
    fn expiry(&self, idle: Duration, ttl: Duration) -> Option<Expiry> {
        if self.is_ended() {
            return Some(Expiry::Ended);
        }
        if self.has_connection() {
            self.touch();
            return None;
        }
        let quiet = self.idle_for();
        if quiet >= ttl {
            Some(Expiry::Ttl)
        } else if quiet >= idle && self.inflight.load(Ordering::Acquire) == 0 {
            Some(Expiry::Idle)
        } else {
            None
        }
    }

    /// True while a client is connected to one of its streams.
    fn has_connection(&self) -> bool {
        let s = self.lock();
        s.standalone.is_attached() || s.posts.iter().any(|p| p.is_attached())
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.ended.is_cancelled()
    }

    pub(crate) fn ended(&self) -> &CancellationToken {
        &self.ended
    }

    /// Ends the session: streams close, the upstream is told to let go of it.
    pub(crate) fn end(&self) {
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

    const LIMITS: BufferLimits = BufferLimits {
        events: 10,
        bytes: 1024,
    };

    #[test]
    fn the_table_keeps_each_sessions_binding_and_counts_reserved_sessions() {
        let table: SessionTable<Option<u8>> = SessionTable::default();
        let (inbox, _inbound) = mpsc::channel(1);
        let reserved = Session::reserved(Some("ann".into()), LIMITS, inbox);
        assert!(table.insert(reserved.clone(), None, 2, 1).is_ok());
        // A reserved session holds its owner's place and one of the table's.
        let second = Session::new(Hello::default(), Some("ann".into()), LIMITS, true);
        assert_eq!(table.insert(second, Some(1), 2, 1), Err(Full::Principal));
        let other = Session::new(Hello::default(), None, LIMITS, true);
        assert!(table.insert(other.clone(), Some(2), 2, 1).is_ok());
        let third = Session::new(Hello::default(), None, LIMITS, true);
        assert_eq!(table.insert(third, Some(3), 2, 1), Err(Full::Global));
        // `initialize` fills the reserved session in place.
        assert!(!reserved.is_greeted());
        assert!(reserved.greet(Hello::default()));
        assert!(!reserved.greet(Hello::default()));
        assert!(table.bind(reserved.id(), Some(7)));
        assert_eq!(table.bound(reserved.id()), Some(Some(7)));
        assert_eq!(table.bound(other.id()), Some(Some(2)));
        let (_, bound) = table.remove(reserved.id()).unwrap();
        assert_eq!(bound, Some(7));
        assert!(!table.bind(reserved.id(), Some(8)));
        assert_eq!(table.count_of("ann"), 0);
        assert_eq!(table.count(), 1);
    }

    #[test]
    fn hello_keeps_the_client_name_and_version_and_tolerates_odd_ones() {
        let frame = |params: &str| {
            let text =
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{params}}}"#);
            Frame::parse(Bytes::from(text)).unwrap()
        };
        let named = frame(
            r#"{"protocolVersion":"2025-11-25","clientInfo":{"name":"<b>x</b>","version":"1.2"}}"#,
        );
        let hello = Hello::of(&named);
        assert_eq!(
            (hello.client_name.as_str(), hello.client_version.as_str()),
            ("<b>x</b>", "1.2")
        );
        let odd = frame(r#"{"protocolVersion":"2025-11-25","clientInfo":{"name":5}}"#);
        let hello = Hello::of(&odd);
        assert_eq!(hello.version, "2025-11-25");
        assert_eq!(hello.client_name, "");
        let session = Session::new(Hello::of(&named), Some("ann".into()), LIMITS, true);
        session.opened_on(crate::caller::Transport::Websocket);
        assert!(session.begin_request(1));
        assert!(!session.begin_request(1));
        let facts = session.facts();
        assert_eq!(
            (facts.principal, facts.transport, facts.calls),
            ("ann", "websocket", 1)
        );
        assert_eq!(facts.client_name, "<b>x</b>");
    }

    #[test]
    fn done_streams_are_kept_for_replay_unless_answered_whole() {
        let session = Session::new(Hello::default(), None, LIMITS, true);
        let (kept, whole) = (session.new_stream(), session.new_stream());
        for s in [&kept, &whole] {
            s.expect_answer();
            s.push(Bytes::from_static(b"{}"), true);
            assert_eq!(s.held(), (true, 1, 2));
        }
        session.answered_whole(&whole);
        let next = session.new_stream();
        assert!(session.stream(kept.id()).is_some(), "resumable");
        assert!(session.stream(whole.id()).is_none(), "no event ids: gone");
        assert!(session.stream(next.id()).is_some());
    }
}
