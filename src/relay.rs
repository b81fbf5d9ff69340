//! The transport-agnostic relay core.
//!
//! Listeners hand it parsed frames; it opens sessions (spawning their child), applies the
//! per-message phases in order (STYLE.md §7: frame checks were done by `jsonrpc`; then era
//! rules, in-flight caps, dispatch with ids rewritten), and hands back the [`Stream`] the
//! answers will arrive on. It also expires idle sessions and drains everything at shutdown.
//! Framing (HTTP, SSE) stays in `listener/`; id multiplexing in `upstream.rs`.

pub mod stream;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::ServeConfig;
use crate::error::Error;
use crate::jsonrpc::{Frame, Kind};
use crate::session::{Session, SessionTable};
use crate::upstream::Upstream;
use stream::Stream;

/// What a POST produced.
#[derive(Debug)]
pub enum Posted {
    /// Only notifications and responses: 202.
    Accepted,
    /// Requests: their answers arrive on this stream.
    Stream(Arc<Stream>),
}

/// The relay core, shared by every listener.
#[derive(Debug)]
pub struct Relay {
    cfg: Arc<ServeConfig>,
    sessions: SessionTable,
    started: Instant,
    draining: CancellationToken,
    ready: AtomicBool,
    children: Arc<AtomicUsize>,
}

impl Relay {
    pub fn new(cfg: Arc<ServeConfig>) -> Arc<Relay> {
        Arc::new(Relay {
            cfg,
            sessions: SessionTable::default(),
            started: Instant::now(),
            draining: CancellationToken::new(),
            ready: AtomicBool::new(true),
            children: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub fn config(&self) -> &ServeConfig {
        &self.cfg
    }

    pub fn sessions_active(&self) -> usize {
        self.sessions.count()
    }

    pub fn dropped_lines(&self) -> u64 {
        self.sessions.dropped_lines()
    }

    pub fn children_alive(&self) -> usize {
        self.children.load(Ordering::Relaxed)
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// False after a spawn failed, until one succeeds again.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.is_draining()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// Cancelled when shutdown starts: standalone streams end, new work is refused.
    pub fn draining(&self) -> &CancellationToken {
        &self.draining
    }

    /// Opens a session for an `initialize` request: spawns its child and forwards the request.
    pub fn open(&self, init: &Frame) -> Result<(Arc<Session>, Arc<Stream>), Error> {
        if self.is_draining() {
            return Err(Error::ShuttingDown);
        }
        if self.sessions.count() >= self.cfg.max_sessions {
            return Err(Error::SessionCap);
        }
        let upstream = match Upstream::spawn(&self.cfg.child, self.cfg.upstream) {
            Ok(up) => up,
            Err(e) => {
                warn!(error = %e, cause = ?std::error::Error::source(&e), "child spawn failed");
                self.ready.store(false, Ordering::Relaxed);
                return Err(Error::ChildUnavailable);
            }
        };
        self.ready.store(true, Ordering::Relaxed);
        self.count_child(&upstream);
        let session = Session::new(upstream.clone(), requested_version(init), self.cfg.buffer);
        upstream.set_owner(&session);
        if !self.sessions.insert(session.clone(), self.cfg.max_sessions) {
            upstream.stop();
            return Err(Error::SessionCap);
        }
        session.touch();
        let stream = session.new_stream();
        if let Err(e) = upstream.forward_request(&session, init, &stream) {
            self.close(&session);
            return Err(e);
        }
        info!(
            session = session.id().as_str(),
            pid = upstream.pid(),
            "session opened"
        );
        Ok((session, stream))
    }

    fn count_child(&self, upstream: &Arc<Upstream>) {
        let children = self.children.clone();
        let up = upstream.clone();
        children.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            up.wait().await;
            children.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// A live session by id; unknown and ended ones are the same 404.
    pub fn session(&self, id: &str) -> Result<Arc<Session>, Error> {
        self.sessions.get(id).ok_or(Error::UnknownSession)
    }

    /// Dispatches the messages of one POST inside a session.
    pub fn submit(&self, session: &Arc<Session>, frames: &[Frame]) -> Result<Posted, Error> {
        if self.is_draining() {
            return Err(Error::ShuttingDown);
        }
        if frames.iter().any(|f| f.method() == Some("initialize")) {
            return Err(Error::InvalidRequest("second_initialize"));
        }
        session.touch();
        let up = session.upstream();
        let batch = frames.len() > 1;
        let requests = frames.iter().filter(|f| f.kind() == Kind::Request).count();
        let stream = (requests > 0).then(|| session.new_stream());
        // Held while dispatching, so a fast answer cannot end the stream early.
        if let Some(s) = &stream {
            s.expect_answer();
        }
        let mut outcome = Ok(());
        for frame in frames {
            let result = match (frame.kind(), &stream) {
                (Kind::Request, Some(s)) => up.forward_request(session, frame, s),
                (Kind::Notification, _) => {
                    up.forward_notification(session, frame);
                    Ok(())
                }
                (Kind::Response, _) => up.forward_response(session, frame),
                (Kind::Request, None) => Err(Error::Internal),
            };
            match (result, &stream, frame.id()) {
                (Ok(()), _, _) => {}
                (Err(e), Some(s), Some(id)) if batch && frame.kind() == Kind::Request => {
                    s.expect_answer();
                    s.push(e.to_jsonrpc(&id), true);
                }
                (Err(e), _, _) if !batch => outcome = Err(e),
                (Err(e), _, _) => warn!(error = %e, "batch element refused"),
            }
        }
        if let Some(s) = &stream {
            s.forget_answer();
        }
        outcome?;
        Ok(stream.map_or(Posted::Accepted, Posted::Stream))
    }

    /// Ends a session: pending requests get an error, its child is stopped.
    pub fn close(&self, session: &Arc<Session>) {
        self.sessions.remove(session.id());
        let up = session.upstream();
        up.fail_pending(Some(session), &Error::SessionEnded);
        session.end();
        up.stop();
    }

    /// Expires idle and ended sessions until shutdown.
    pub async fn sweep(self: Arc<Self>) {
        let ttl = self.cfg.session_ttl;
        let every = (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.draining.cancelled() => return,
            }
            for s in self.sessions.take_expired(ttl) {
                if !s.is_ended() {
                    info!(session = s.id().as_str(), "idle session expired");
                }
                self.close(&s);
            }
        }
    }

    /// Starts draining: new work is refused, standalone streams end.
    pub fn start_drain(&self) {
        self.draining.cancel();
    }

    /// Answers what is still pending with -31010.
    pub fn fail_in_flight(&self) {
        for s in self.sessions.all() {
            s.upstream().fail_pending(Some(&s), &Error::ShuttingDown);
        }
    }

    /// Ends every session and waits until every child is reaped.
    pub async fn stop_all(&self) {
        let sessions = self.sessions.drain();
        for s in &sessions {
            self.close(s);
        }
        let waits = sessions.iter().map(|s| {
            let up = s.upstream().clone();
            async move { up.wait().await }
        });
        futures_util::future::join_all(waits).await;
    }
}

/// `params.protocolVersion` of an `initialize` request (empty when absent).
fn requested_version(init: &Frame) -> String {
    #[derive(serde::Deserialize)]
    struct Params {
        params: Option<Inner>,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(rename = "protocolVersion")]
        protocol_version: Option<String>,
    }
    serde_json::from_slice::<Params>(init.bytes())
        .ok()
        .and_then(|p| p.params)
        .and_then(|p| p.protocol_version)
        .unwrap_or_default()
}
