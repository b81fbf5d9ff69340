//! Shared children: a pool of supervised slots that restart their child.
//!
//! A [`Slot`] keeps one child alive for as long as the relay runs. For a legacy child it sends
//! `initialize` itself (once per process; clients' `initialize` are answered from the cached
//! [`Init`]), then replays the audience's subscriptions and log level, so sessions survive a
//! restart. When the child dies, pending requests have already failed with -31007
//! (`upstream.rs`); the slot waits a full-jitter backoff (0.5 s doubling to 30 s, reset after
//! 60 s healthy) and starts a new one. Five failures within five minutes open the circuit:
//! requests get 503 + `Retry-After` for the cool-down, then one probe start decides.
//! A [`Pool`] is N slots; sessions are pinned to the slot with the fewest sessions, stateless
//! requests go to the ready slot with the fewest requests in flight.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

mod lives;

use super::audience::{Audience, Level};
use super::{Counters, Limits, ServerSpec, Upstream};
use crate::error::Error;
use crate::jsonrpc::Frame;
use lives::{exit_words, Lives};
pub(crate) use lives::{stderr_of, Facts};

const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The longest pause between a bridge's reconnection attempts.
const BRIDGE_BACKOFF_MAX: Duration = Duration::from_secs(5);
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
const CIRCUIT_FAILURES: usize = 5;
const CIRCUIT_WINDOW: Duration = Duration::from_secs(300);
const CIRCUIT_COOLDOWN: Duration = Duration::from_secs(30);
/// How long a request waits for a (re)starting child before it gets 503.
const READY_WAIT: Duration = Duration::from_secs(30);

/// The version the relay asks a shared legacy child for.
const INIT_VERSION: &str = "2025-11-25";

/// What a legacy child answered to the relay's `initialize`.
#[derive(Debug)]
pub(crate) struct Init {
    /// The whole `result` object, as the child sent it.
    pub result: serde_json::Map<String, serde_json::Value>,
    /// `result.protocolVersion`.
    pub version: String,
}

/// Where a slot's child is in its life.
#[derive(Debug, Clone)]
pub(crate) enum State {
    Starting,
    Ready(Arc<Upstream>, Option<Arc<Init>>),
    Backoff,
    Open(Instant),
    Stopped,
}

/// How to run the children of a pool.
#[derive(Debug, Clone)]
pub(crate) struct SlotSpec {
    pub child: ServerSpec,
    pub limits: Limits,
    /// Send `initialize` to each new child (legacy era); modern children need none.
    pub initialize: bool,
    /// When set, children are initialized with these params (the first client's own
    /// `initialize`, for `connect`) instead of the relay's; the slot waits for them.
    pub hello: Option<Arc<watch::Sender<Option<String>>>>,
    /// Whom an in-process server (the aggregate) is started for; `None` for a process.
    pub caller: Option<crate::caller::Caller>,
}

impl SlotSpec {
    /// A spec whose children wait for the first client's `initialize` params.
    pub(crate) fn with_hello(mut self) -> SlotSpec {
        self.hello = Some(Arc::new(watch::channel(None).0));
        self
    }
}

/// One supervised child that is restarted when it dies.
#[derive(Debug)]
pub(crate) struct Slot {
    index: usize,
    spec: SlotSpec,
    audience: Arc<Audience>,
    counters: Arc<Counters>,
    state: watch::Sender<State>,
    stop: CancellationToken,
    /// A child of this slot was ready once.
    ever_ready: std::sync::atomic::AtomicBool,
    /// Why the last start failed (a remote link's cause, in its user's terms).
    cause: std::sync::Mutex<Option<Arc<str>>>,
    /// What the console shows of its children's lives.
    lives: std::sync::Mutex<Lives>,
    /// The operator asked for a restart: the child's exit is not a failure.
    restart_asked: std::sync::atomic::AtomicBool,
}

impl Slot {
    pub(crate) fn start(index: usize, spec: SlotSpec, counters: Arc<Counters>) -> Arc<Slot> {
        let (state, _) = watch::channel(State::Starting);
        let slot = Arc::new(Slot {
            index,
            spec,
            audience: Audience::new(true),
            counters,
            state,
            stop: CancellationToken::new(),
            ever_ready: std::sync::atomic::AtomicBool::new(false),
            cause: std::sync::Mutex::new(None),
            lives: std::sync::Mutex::default(),
            restart_asked: std::sync::atomic::AtomicBool::new(false),
        });
        tokio::spawn(run(slot.clone()));
        slot
    }

    pub(crate) fn audience(&self) -> &Arc<Audience> {
        &self.audience
    }

    /// The slot's place in its pool.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    pub(crate) fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// The running child, waiting while it (re)starts; 503 while the circuit is open.
    pub(crate) async fn upstream(&self) -> Result<Arc<Upstream>, Error> {
        let mut rx = self.state.subscribe();
        let wait = async {
            loop {
                let state = rx.borrow_and_update().clone();
                match state {
                    State::Ready(up, _) if up.is_alive() => return Ok(up),
                    State::Open(until) => return Err(circuit_open(until)),
                    // A bridge whose server refused its very first connection answers the
                    // host at once (it keeps reconnecting for what comes later).
                    State::Backoff if self.spec.hello.is_some() && !self.was_ready() => {
                        return Err(self.unavailable())
                    }
                    State::Stopped => return Err(Error::ShuttingDown),
                    _ => {}
                }
                if rx.changed().await.is_err() {
                    return Err(Error::ShuttingDown);
                }
            }
        };
        tokio::time::timeout(READY_WAIT, wait)
            .await
            .unwrap_or_else(|_| Err(self.unavailable()))
    }

    /// The refusal while no child is ready: for a bridge (`connect`, whose client is its
    /// user's own host), the link's cause in words; for a relay's clients, nothing more.
    fn unavailable(&self) -> Error {
        let cause = self.cause.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match cause {
            Some(c) if self.spec.hello.is_some() => Error::LinkDown(c),
            _ => Error::ChildUnavailable,
        }
    }

    /// The slot runs a remote link (`--upstream`, `connect`) instead of a process.
    pub(crate) fn is_link(&self) -> bool {
        matches!(self.spec.child, ServerSpec::Remote(_))
    }

    /// The remote server's address for logs, when the slot runs a link instead of a process.
    fn link_name(&self) -> Option<String> {
        match &self.spec.child {
            ServerSpec::Remote(r) => Some(r.url()),
            ServerSpec::Command(_) | ServerSpec::InProcess(_) => None,
        }
    }

    fn was_ready(&self) -> bool {
        self.ever_ready.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Refuses at once while the circuit is open (new sessions get 503, not a stream).
    pub(crate) fn check(&self) -> Result<(), Error> {
        match self.state() {
            State::Open(until) => Err(circuit_open(until)),
            State::Stopped => Err(Error::ShuttingDown),
            _ => Ok(()),
        }
    }

    /// The running child and its cached `initialize` answer.
    pub(crate) async fn initialized(&self) -> Result<(Arc<Upstream>, Arc<Init>), Error> {
        let up = self.upstream().await?;
        match self.state() {
            State::Ready(_, Some(init)) => Ok((up, init)),
            _ => Err(Error::ChildUnavailable),
        }
    }

    /// The running child, if there is one now.
    pub(crate) fn current(&self) -> Option<Arc<Upstream>> {
        match self.state() {
            State::Ready(up, _) => Some(up),
            _ => None,
        }
    }

    /// Gives the slot the client's `initialize` params (first call wins), when it waits for
    /// them.
    pub(crate) fn set_hello(&self, params: &str) {
        if let Some(h) = &self.spec.hello {
            h.send_if_modified(|v| {
                if v.is_some() {
                    return false;
                }
                *v = Some(params.to_owned());
                true
            });
        }
    }

    /// What the console shows of the slot's children.
    pub(crate) fn facts(&self) -> Facts {
        let lives = self.lives();
        Facts {
            uptime: lives.started.map(|t| t.elapsed()),
            restarts: lives.starts.saturating_sub(1),
            last_exit: lives.last_exit.clone(),
            stderr: lives.stderr(),
        }
    }

    fn lives(&self) -> std::sync::MutexGuard<'_, Lives> {
        self.lives.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the running child so that the slot starts a new one at once (the operator's
    /// restart; not counted as a failure). False when no child is running. The slot reads
    /// `Starting` from here on (unless it moved on meanwhile), so new requests wait for the
    /// new child instead of going to the one that is stopping.
    pub(crate) fn restart(&self) -> bool {
        let Some(up) = self.current().filter(|u| u.is_alive()) else {
            return false;
        };
        self.restart_asked
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.state.send_if_modified(|s| match s {
            State::Ready(now, _) if Arc::ptr_eq(now, &up) => {
                *s = State::Starting;
                true
            }
            _ => false,
        });
        up.stop();
        true
    }

    /// Stops the child for good.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits until the slot stopped and its child is reaped.
    pub(crate) async fn wait(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| matches!(s, State::Stopped)).await;
    }

    /// Starts one child and brings it to ready (initialize, replayed subscriptions).
    async fn launch(&self) -> Result<(Arc<Upstream>, Option<Arc<Init>>), String> {
        // Waiting for the client's hello comes first: nothing is started before it.
        let params = match &self.spec.hello {
            Some(h) => {
                let mut rx = h.subscribe();
                let hello = tokio::select! {
                    v = rx.wait_for(Option::is_some) => v.map(|v| v.clone()).ok().flatten(),
                    () = self.stop.cancelled() => None,
                };
                Some(hello.ok_or_else(|| "stopped before the client's initialize".to_owned())?)
            }
            None => None,
        };
        let up = Upstream::spawn(
            &self.spec.child,
            self.spec.caller.as_ref(),
            self.spec.limits.clone(),
            self.audience.clone(),
            self.counters.clone(),
        )
        .map_err(|e| format!("spawn failed: {e}"))?;
        if !self.spec.initialize {
            return Ok((up, None));
        }
        let init = initialize(&up, params.as_deref()).await.map_err(|e| {
            up.stop();
            // A link knows better than "initialize failed" why it did.
            up.link_cause().map_or(e, |c| c.to_string())
        })?;
        up.notify("notifications/initialized", "{}");
        let (uris, level) = self.audience.replay();
        for uri in uris {
            let params = serde_json::json!({ "uri": uri }).to_string();
            let _ = up.call("resources/subscribe", &params);
        }
        if let Some(level) = level {
            set_level(&up, level);
        }
        Ok((up, Some(Arc::new(init))))
    }
}

/// Tells the child the union log level; the answer is not needed.
pub(crate) fn set_level(up: &Upstream, level: Level) {
    let params = serde_json::json!({ "level": level.as_str() }).to_string();
    let _ = up.call("logging/setLevel", &params);
}

/// The relay's own `initialize`: every client capability a session may have, so the child
/// may ask; requests a session did not declare are refused per session (`upstream.rs`).
/// `hello` replaces it with a client's own params (`connect`: the server sees the host).
async fn initialize(up: &Upstream, hello: Option<&str>) -> Result<Init, String> {
    let params = match hello {
        Some(p) => p.to_owned(),
        None => serde_json::json!({
            "protocolVersion": INIT_VERSION,
            "capabilities": { "roots": { "listChanged": true }, "sampling": {}, "elicitation": {} },
            "clientInfo": { "name": "mcp-relay", "version": env!("CARGO_PKG_VERSION") }
        })
        .to_string(),
    };
    let answer = up
        .call("initialize", &params)
        .map_err(|e| format!("initialize not sent: {e}"))?;
    let frame: Frame = answer
        .await
        .map_err(|_| "initialize dropped".to_owned())?
        .map_err(|e| format!("initialize failed: {e}"))?;
    let result = frame
        .result()
        .and_then(|r| serde_json::from_str::<serde_json::Map<_, _>>(r).ok())
        .ok_or_else(|| "initialize answered with an error".to_owned())?;
    let version = result
        .get("protocolVersion")
        .and_then(|v| v.as_str())
        .ok_or_else(|| "initialize result without protocolVersion".to_owned())?
        .to_owned();
    Ok(Init { result, version })
}

fn circuit_open(until: Instant) -> Error {
    let left = until.saturating_duration_since(Instant::now());
    Error::CircuitOpen(left.as_secs().max(1))
}

/// One life of the slot's child (or link): starts it and serves with it until it ends.
/// `Some(true)`: it ran and ended; `Some(false)`: it did not start; `None`: the slot was
/// stopped meanwhile.
async fn life(slot: &Slot) -> Option<bool> {
    match slot.launch().await {
        Ok((up, init)) => {
            match slot.link_name() {
                Some(name) => info!(slot = slot.index, upstream = %name, "remote link ready"),
                None => info!(slot = slot.index, pid = up.pid(), "shared child ready"),
            }
            *slot.cause.lock().unwrap_or_else(|e| e.into_inner()) = None;
            slot.ever_ready
                .store(true, std::sync::atomic::Ordering::Relaxed);
            slot.lives().started(up.child.stderr_tail().cloned());
            slot.state.send_replace(State::Ready(up.clone(), init));
            tokio::select! {
                exit = up.child.wait() => {
                    let mut lives = slot.lives();
                    lives.started = None;
                    lives.last_exit = Some(exit.map_or_else(|| "exited".to_owned(), exit_words));
                }
                () = slot.stop.cancelled() => {
                    slot.state.send_replace(State::Stopped);
                    up.fail_pending(None, &Error::ShuttingDown);
                    up.stop();
                    up.wait().await;
                    return None;
                }
            }
            Some(true)
        }
        Err(e) => {
            match slot.link_name() {
                Some(name) => {
                    warn!(slot = slot.index, upstream = %name, cause = %e, "cannot connect to the remote server")
                }
                None => warn!(slot = slot.index, error = %e, "shared child failed to start"),
            }
            {
                let mut lives = slot.lives();
                lives.starts += 1;
                lives.last_exit = Some(match slot.is_link() {
                    true => "link failed".to_owned(),
                    false => e.clone(),
                });
            }
            *slot.cause.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.into());
            Some(false)
        }
    }
}

/// The restart loop of one slot.
async fn run(slot: Arc<Slot>) {
    let mut failures: VecDeque<Instant> = VecDeque::new();
    let mut attempt: u32 = 0;
    let mut probing = false;
    loop {
        if slot.stop.is_cancelled() {
            break;
        }
        slot.state.send_replace(State::Starting);
        let started = Instant::now();
        let Some(launched) = life(&slot).await else {
            break;
        };
        // A child that started closes a probe of the open circuit.
        probing &= !launched;
        if slot.stop.is_cancelled() {
            break;
        }
        // The operator's restart: a new child at once, nothing counted against the circuit.
        if slot
            .restart_asked
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            continue;
        }
        crate::telemetry::metrics::child_restarted(match launched {
            true => crate::telemetry::metrics::RestartReason::Exited,
            false => crate::telemetry::metrics::RestartReason::StartFailed,
        });
        let now = Instant::now();
        if now.duration_since(started) >= HEALTHY_AFTER {
            attempt = 0;
            failures.clear();
        }
        failures.push_back(now);
        while failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > CIRCUIT_WINDOW)
        {
            failures.pop_front();
        }
        attempt = attempt.saturating_add(1);
        // A bridge (`connect`) keeps trying: reconnecting is its job, and its host would
        // rather wait than be refused; its pauses stay short.
        let bridge = slot.spec.hello.is_some();
        let pause = if !bridge && (probing || failures.len() >= CIRCUIT_FAILURES) {
            match slot.link_name() {
                Some(name) => {
                    warn!(slot = slot.index, upstream = %name, cooldown = ?CIRCUIT_COOLDOWN, "circuit open: remote link keeps failing")
                }
                None => {
                    warn!(slot = slot.index, cooldown = ?CIRCUIT_COOLDOWN, "circuit open: child keeps failing")
                }
            }
            slot.state.send_replace(State::Open(now + CIRCUIT_COOLDOWN));
            failures.clear();
            probing = true;
            CIRCUIT_COOLDOWN
        } else {
            slot.state.send_replace(State::Backoff);
            match bridge {
                true => backoff(attempt).min(BRIDGE_BACKOFF_MAX),
                false => backoff(attempt),
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = slot.stop.cancelled() => break,
        }
    }
    slot.state.send_replace(State::Stopped);
}

/// Full jitter: uniform in [0, min(base · 2^(attempt-1), max)].
fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let cap = exp.min(BACKOFF_MAX);
    let ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=ms))
}

/// N slots serving one configured server.
#[derive(Debug)]
pub(crate) struct Pool {
    slots: Vec<Arc<Slot>>,
}

impl Pool {
    pub(crate) fn start(n: usize, spec: &SlotSpec, counters: &Arc<Counters>) -> Pool {
        Pool {
            slots: (0..n.max(1))
                .map(|i| Slot::start(i, spec.clone(), counters.clone()))
                .collect(),
        }
    }

    /// The slot a new session is pinned to: the one with the fewest sessions.
    pub(crate) fn pick_for_session(&self) -> Option<&Arc<Slot>> {
        self.slots.iter().min_by_key(|s| s.audience.len())
    }

    /// A child for one stateless request: the ready one with the fewest requests in flight.
    pub(crate) async fn pick_for_request(&self) -> Result<Arc<Upstream>, Error> {
        let ready = self
            .slots
            .iter()
            .filter_map(|s| s.current())
            .filter(|u| u.is_alive())
            .min_by_key(|u| u.inflight());
        match (ready, self.slots.first()) {
            (Some(up), _) => Ok(up),
            (None, Some(first)) => first.upstream().await,
            (None, None) => Err(Error::ChildUnavailable),
        }
    }

    pub(crate) fn slots(&self) -> &[Arc<Slot>] {
        &self.slots
    }

    pub(crate) fn stop(&self) {
        for s in &self.slots {
            s.stop();
        }
    }

    pub(crate) async fn wait(&self) {
        futures_util::future::join_all(self.slots.iter().map(|s| s.wait())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_and_capped() {
        for attempt in 1..40 {
            let d = backoff(attempt);
            let cap = BACKOFF_BASE
                .saturating_mul(1u32 << (attempt - 1).min(16))
                .min(BACKOFF_MAX);
            assert!(d <= cap, "attempt {attempt}: {d:?} > {cap:?}");
        }
        let spread: std::collections::HashSet<Duration> = (0..50).map(|_| backoff(5)).collect();
        assert!(spread.len() > 10, "no jitter");
    }
}
