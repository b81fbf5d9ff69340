//! Per-session children started ahead of their sessions (`--spare-children N`): a new session
//! takes one that is already running (its program loaded, waiting on stdin for `initialize`)
//! and a task starts the next behind it, so opening a session costs an `initialize` round
//! trip, not a process start (for a server run by `npx` or `uvx`, seconds).
//!
//! A spare hears nothing until its session's `initialize`; it gets the same command,
//! environment and working directory as a child started with its session (per-session mode
//! has nothing per caller to put in them). A spare that exits before a session takes it (a
//! broken command, a server that quits when idle) is reaped by its own supervise task
//! (`stdio.rs`), dropped here and replaced after a pause that doubles while spares keep
//! failing (1 s → 60 s) until a session takes a running one, so a command that cannot stay
//! up is not restarted in a loop.
//!
//! Owns: the spares and the task that refills them. Does not own: starting or stopping one
//! child (`stdio.rs`), routing a taken child's output (`Upstream::adopt`), nor which
//! configurations may have spares (`config/validate.rs`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::stdio::{self, ChildHandle, ChildOutput, ChildSpec};

/// The first pause before replacing spares that failed; doubled while they keep failing.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause between attempts.
const LONGEST_PAUSE: Duration = Duration::from_secs(60);

/// A started child no session has taken yet.
type Spare = (ChildHandle, ChildOutput);

/// The spares of one configured server.
#[derive(Debug)]
pub(crate) struct Spares {
    ready: Mutex<VecDeque<Spare>>,
    want: usize,
    /// A session took a running spare since the refill last looked: they stay up.
    taken: AtomicBool,
    wake: Arc<Notify>,
    stop: CancellationToken,
}

impl Spares {
    /// Starts `want` spares of `spec` and the task that keeps them (needs a Tokio runtime).
    pub(crate) fn start(spec: ChildSpec, want: usize) -> Arc<Spares> {
        let spares = Arc::new(Spares {
            ready: Mutex::new(VecDeque::with_capacity(want)),
            want,
            taken: AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
            stop: CancellationToken::new(),
        });
        tokio::spawn(refill(
            Arc::downgrade(&spares),
            spec,
            spares.wake.clone(),
            spares.stop.clone(),
        ));
        spares
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Spare>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A running spare for a new session (`None`: none is ready; start one as usual). Another
    /// is started behind it.
    pub(crate) fn take(&self) -> Option<Spare> {
        let taken = {
            let mut ready = self.lock();
            loop {
                match ready.pop_front() {
                    Some((handle, _)) if handle.exited() => continue,
                    other => break other,
                }
            }
        };
        if let Some((handle, _)) = &taken {
            self.taken.store(true, Ordering::Relaxed);
            debug!(pid = handle.pid(), "a spare child taken by a new session");
        }
        self.wake.notify_one();
        taken
    }

    /// Spares ready now (exited ones not counted).
    pub(crate) fn count(&self) -> usize {
        self.lock().iter().filter(|(h, _)| !h.exited()).count()
    }

    /// Stops the refill and every spare, and waits until they are reaped (shutdown).
    pub(crate) async fn stop(&self) {
        self.stop.cancel();
        let spares: Vec<Spare> = self.lock().drain(..).collect();
        for (handle, _) in &spares {
            handle.stop();
        }
        futures_util::future::join_all(spares.iter().map(|(h, _)| h.wait())).await;
    }

    /// Drops the spares that exited; how many.
    fn prune(&self) -> usize {
        let mut ready = self.lock();
        let before = ready.len();
        ready.retain(|(handle, _)| !handle.exited());
        before - ready.len()
    }

    /// How many more to start (one that exited still counts until [`Spares::prune`] drops
    /// it, so its exit is said and waited for first).
    fn missing(&self) -> usize {
        self.want.saturating_sub(self.lock().len())
    }

    /// Queues a new spare; after [`Spares::stop`] it is stopped instead (a spawn that was
    /// under way when the stop came).
    fn keep(&self, spare: Spare) {
        let mut ready = self.lock();
        if self.stop.is_cancelled() {
            spare.0.stop();
        } else {
            ready.push_back(spare);
        }
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        // The queued handles stop their children as they drop; the task ends with this.
        self.stop.cancel();
    }
}

/// Keeps `want` spares started: at start, after each take and each exit of a spare. Spares
/// that exited unused, or a spawn that failed, make it wait before the next attempt; the
/// wait doubles each time until a session takes a running spare.
async fn refill(spares: Weak<Spares>, spec: ChildSpec, wake: Arc<Notify>, stop: CancellationToken) {
    let mut pause = FIRST_PAUSE;
    let mut failed = false;
    loop {
        let Some(owner) = spares.upgrade() else {
            return;
        };
        if owner.taken.swap(false, Ordering::Relaxed) {
            pause = FIRST_PAUSE;
        }
        let exited = owner.prune();
        drop(owner);
        if exited > 0 {
            warn!(
                exited,
                program = %spec.program.display(),
                next_in_ms = pause.as_millis() as u64,
                "spare children exited before a session took them"
            );
        }
        if exited > 0 || failed {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
        failed = false;
        let Some(owner) = spares.upgrade() else {
            return;
        };
        let missing = owner.missing();
        drop(owner);
        for _ in 0..missing {
            if stop.is_cancelled() {
                return;
            }
            match stdio::spawn(&spec) {
                Ok(spare) => {
                    let Some(owner) = spares.upgrade() else {
                        return;
                    };
                    tokio::spawn(tell_on_exit(spare.0.reaped(), wake.clone()));
                    owner.keep(spare);
                }
                Err(e) => {
                    warn!(error = %e, cause = ?std::error::Error::source(&e), "spare child spawn failed");
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = wake.notified() => {}
        }
    }
}

/// Wakes the refill when a spare's process is reaped (a taken one's too: then there is
/// nothing to do).
async fn tell_on_exit<T>(reaped: impl std::future::Future<Output = T>, wake: Arc<Notify>) {
    reaped.await;
    wake.notify_one();
}
