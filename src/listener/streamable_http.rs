//! The Streamable HTTP front (2025-03-26, 2025-06-18, 2025-11-25).
//!
//! Translates HTTP to the relay core and back: POST (JSON-RPC in; JSON or SSE out), GET
//! (standalone stream, or resume with `Last-Event-ID`), DELETE (end the session). Status
//! codes follow PROTOCOL.md §2; every error goes through `error.rs`. No policy and no session
//! logic here: the guard (`guard.rs`) runs the request phases (`policy::phases`), and what a
//! message does in its session is `Relay::post`'s decision (`relay/post.rs`). 2026-07-28
//! requests are framed in `streamable_http/modern.rs`.

mod modern;

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::http::{
    accepts, caller_of, header_str, media_type_is, read_body, sse_response, LAST_EVENT_ID,
    SESSION_HEADER, VERSION_HEADER,
};
use crate::caller::Caller;
use crate::config::ResponseMode;
use crate::era;
use crate::error::{Allow, Error};
use crate::jsonrpc::Frame;
use crate::relay::stateless::CancelOnDrop;
use crate::relay::{Posted, Relay, Within};
use crate::session::stream::{parse_event_id, Out, Stream};
use crate::session::Session;

pub(super) async fn handle_post(State(relay): State<Arc<Relay>>, req: Request) -> Response {
    post_inner(relay, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn handle_get(State(relay): State<Arc<Relay>>, req: Request) -> Response {
    let result = caller_of(req.extensions()).and_then(|c| get_inner(relay, req.headers(), &c));
    result.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn handle_delete(State(relay): State<Arc<Relay>>, req: Request) -> Response {
    let headers = req.headers();
    let result = (|| {
        if is_modern_get_or_delete(headers) {
            return Err(Error::MethodNotAllowed(Allow::Mcp));
        }
        let session = session_of(&relay, headers, &caller_of(req.extensions())?)?;
        relay.close(&session);
        Ok::<_, Error>(StatusCode::OK.into_response())
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn post_inner(relay: Arc<Relay>, req: Request) -> Result<Response, Error> {
    let caller = caller_of(req.extensions())?;
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    if relay.is_draining() {
        return Err(Error::ShuttingDown);
    }
    if !media_type_is(headers, "application/json") {
        return Err(Error::UnsupportedMediaType);
    }
    if !accepts(headers, "application/json") || !accepts(headers, "text/event-stream") {
        return Err(Error::NotAcceptable);
    }
    let (max, idle) = (relay.config().max_body, relay.config().body_idle);
    let read = read_body(body, headers, max, idle).await;
    let named = header_str(headers, &SESSION_HEADER);
    let message = relay.parse(&caller, named, read)?;
    if is_modern(headers, message.frames()) {
        if let Some(res) = modern::elsewhere(&relay, &parts, &message, &caller).await {
            return Ok(res);
        }
        return Ok(modern::post(&relay, headers, &message, &caller).await);
    }
    let found = named.map(|id| (id, session_of(&relay, headers, &caller)));
    let within = match &found {
        None => Within::Unnamed,
        Some((_, Ok(session))) => Within::Session(session),
        Some((id, Err(e))) => Within::Unusable {
            id,
            error: e.clone(),
        },
    };
    let expires = caller.principal.expires_at;
    Ok(match (relay.post(&caller, within, &message).await, found) {
        (Ok(Posted::Accepted), _) => StatusCode::ACCEPTED.into_response(),
        (Ok(Posted::Opened(session, stream)), _) => {
            respond(&relay, &session, stream, true, expires).await
        }
        (Ok(Posted::Stream(stream)), Some((_, Ok(session)))) => {
            respond(&relay, &session, stream, false, expires).await
        }
        (Ok(Posted::Stream(_)), _) => Error::Internal.into_response(),
        (Err(r), _) => r.error.into_response_for(r.id.as_ref()),
    })
}

fn get_inner(relay: Arc<Relay>, headers: &HeaderMap, caller: &Caller) -> Result<Response, Error> {
    if is_modern_get_or_delete(headers) {
        return Err(Error::MethodNotAllowed(Allow::Mcp));
    }
    if !accepts(headers, "text/event-stream") {
        return Err(Error::NotAcceptable);
    }
    let session = session_of(&relay, headers, caller)?;
    if relay.is_draining() {
        return Err(Error::ShuttingDown);
    }
    session.touch();
    let resume = header_str(headers, &LAST_EVENT_ID).and_then(parse_event_id);
    if let Some((stream_id, seq)) = resume {
        // Only this session's streams can be resumed; another session's id replays nothing.
        if let Some(stream) = session.stream(stream_id) {
            let (rx, seq) = stream.attach(Some(seq));
            return Ok(sse(
                &relay,
                Some(&session),
                &stream,
                Attach::get(rx, seq, true, caller),
            ));
        }
    }
    let standalone = session.standalone();
    if standalone.is_attached() {
        return Err(Error::StreamConflict);
    }
    let (rx, after) = standalone.attach(None);
    Ok(sse(
        &relay,
        Some(&session),
        &standalone,
        Attach::get(rx, after, false, caller),
    ))
}

/// Looks up the caller's session named by the header and checks the version header.
fn session_of(relay: &Relay, headers: &HeaderMap, caller: &Caller) -> Result<Arc<Session>, Error> {
    let id = header_str(headers, &SESSION_HEADER).ok_or(Error::MissingSession)?;
    let session = relay.session(id, caller)?;
    era::check_header(header_str(headers, &VERSION_HEADER), session.version())?;
    Ok(session)
}

/// Answers a POST that carried requests: JSON when allowed and the answer comes first,
/// otherwise an SSE stream.
async fn respond(
    relay: &Relay,
    session: &Arc<Session>,
    stream: Arc<Stream>,
    new_session: bool,
    expires: Option<SystemTime>,
) -> Response {
    let (mut rx, _) = stream.attach(None);
    let cfg = relay.config();
    let mut first = None;
    if cfg.response_mode == ResponseMode::Json {
        match tokio::time::timeout(cfg.json_hold, rx.recv()).await {
            Ok(Some(out)) if out.last => {
                session.answered_whole(&stream);
                let mut res =
                    ([(header::CONTENT_TYPE, "application/json")], out.data).into_response();
                add_session_header(&mut res, session, new_session);
                return res;
            }
            Ok(out) => first = out,
            Err(_) => {}
        }
    }
    let attach = Attach {
        rx,
        after: 0,
        first,
        new_session,
        poll: true,
        prime: true,
        guard: None,
        expires,
    };
    sse(relay, Some(session), &stream, attach)
}

/// How one SSE connection starts and may end.
struct Attach {
    rx: mpsc::Receiver<Out>,
    /// The sequence number the priming event points at (what the client has seen).
    after: u64,
    /// A message already taken from `rx` (JSON mode gave up waiting).
    first: Option<Out>,
    /// The response carries `Mcp-Session-Id` (answer to `initialize`).
    new_session: bool,
    /// `--sse-close-after` may end the connection early (POST streams only: the client
    /// resumes with one GET that stays open).
    poll: bool,
    /// Start with a priming event (new streams; a resume only replays what followed).
    prime: bool,
    /// Cancels the request if the connection goes before its answer (modern requests).
    guard: Option<CancelOnDrop>,
    /// When the caller's credential expires: the connection ends then (SECURITY.md §4.7).
    expires: Option<SystemTime>,
}

impl Attach {
    /// A GET connection: no session header, never closed early; primed unless it resumes.
    fn get(rx: mpsc::Receiver<Out>, after: u64, resume: bool, caller: &Caller) -> Attach {
        Attach {
            rx,
            after,
            first: None,
            new_session: false,
            poll: false,
            prime: !resume,
            guard: None,
            expires: caller.principal.expires_at,
        }
    }
}

/// Builds an SSE response from a stream's connection; `session` is `None` for a stateless
/// (modern) request: no priming, no polling, no session header.
fn sse(relay: &Relay, session: Option<&Arc<Session>>, stream: &Stream, a: Attach) -> Response {
    let Attach {
        rx,
        after,
        first,
        new_session,
        poll,
        prime,
        guard,
        expires,
    } = a;
    let cfg = relay.config();
    let polling = session.is_some_and(|s| era::primes_streams(s.effective_version()));
    // 2025-11-25 priming event: an id to resume from, the retry hint, empty data.
    let priming = (polling && prime).then(|| {
        Bytes::from(format!(
            "id: {}-{}\nretry: {}\ndata: \n\n",
            stream.id(),
            after,
            cfg.sse_retry.as_millis()
        ))
    });
    let stop = if stream.is_standalone() {
        relay.draining().clone()
    } else {
        CancellationToken::new()
    };
    let now = tokio::time::Instant::now();
    let close_after = cfg
        .sse_close_after
        .filter(|_| polling && poll)
        .map(|d| now + d);
    let expiry = expires.map(|at| now + at.duration_since(SystemTime::now()).unwrap_or_default());
    let close_at = match (close_after, expiry) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut keep_alive = tokio::time::interval(cfg.sse_keep_alive);
    keep_alive.reset();
    let state = Conn {
        rx,
        // Event ids serve `Last-Event-ID` resumption, which the modern era removed.
        ids: session.is_some(),
        priming,
        first,
        stop,
        close_at,
        keep_alive,
        _guard: guard,
    };
    let mut res = sse_response(Body::from_stream(futures_util::stream::unfold(
        state, next_chunk,
    )));
    if let Some(session) = session {
        add_session_header(&mut res, session, new_session);
    }
    res
}

struct Conn {
    rx: mpsc::Receiver<Out>,
    ids: bool,
    priming: Option<Bytes>,
    first: Option<Out>,
    stop: CancellationToken,
    close_at: Option<tokio::time::Instant>,
    keep_alive: tokio::time::Interval,
    _guard: Option<CancelOnDrop>,
}

type Chunk = Result<Bytes, std::convert::Infallible>;

/// The next bytes of an SSE body: priming, messages, keep-alive comments; `None` ends it.
async fn next_chunk(mut c: Conn) -> Option<(Chunk, Conn)> {
    if let Some(p) = c.priming.take() {
        return Some((Ok(p), c));
    }
    if let Some(out) = c.first.take() {
        return Some((Ok(event(&out, c.ids)), c));
    }
    let close = async {
        match c.close_at {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        out = c.rx.recv() => out.map(|o| (Ok(event(&o, c.ids)), c)),
        _ = c.keep_alive.tick() => Some((Ok(Bytes::from_static(b":\n\n")), c)),
        () = close => None,
        () = c.stop.cancelled() => None,
    }
}

/// One SSE event, with its id unless `ids` is off; `data` is compact JSON on one line
/// (guaranteed by `jsonrpc`).
fn event(out: &Out, ids: bool) -> Bytes {
    use std::fmt::Write as _;
    let mut b = bytes::BytesMut::with_capacity(out.data.len() + 56);
    if ids {
        let _ = writeln!(b, "id: {}-{}", out.stream, out.seq);
    }
    b.extend_from_slice(b"data: ");
    b.extend_from_slice(&out.data);
    b.extend_from_slice(b"\n\n");
    b.freeze()
}

fn add_session_header(res: &mut Response, session: &Session, new_session: bool) {
    if !new_session {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(session.id().as_str()) {
        res.headers_mut().insert(SESSION_HEADER.clone(), v);
    }
}

/// A 2026-07-28 request: a modern `MCP-Protocol-Version`, or, outside any session, modern
/// `_meta` or `server/discover` in the body (whose version is then checked against the header).
fn is_modern(headers: &HeaderMap, frames: &[Frame]) -> bool {
    if header_str(headers, &VERSION_HEADER).is_some_and(era::is_modern) {
        return true;
    }
    header_str(headers, &SESSION_HEADER).is_none()
        && frames.iter().any(|f| {
            f.method() == Some("server/discover")
                || memchr::memmem::find(f.bytes(), era::MODERN_META_KEY.as_bytes()).is_some()
        })
}

/// GET and DELETE do not exist in the modern era: 405 (PROTOCOL.md §2.3).
fn is_modern_get_or_delete(headers: &HeaderMap) -> bool {
    header_str(headers, &SESSION_HEADER).is_none()
        && header_str(headers, &VERSION_HEADER).is_some_and(era::is_modern)
}
