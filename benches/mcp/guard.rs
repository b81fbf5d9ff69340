//! Process hygiene for the harness: every process it starts is registered here and stopped
//! with its whole tree (process group plus every descendant found in /proc, since the relay
//! puts each child in its own group). `Proc` stops its tree on drop (also on panic unwind);
//! `install_signal_handler` kills every registered tree on Ctrl-C / SIGTERM.

use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::procs;

/// Root pids of every process tree the harness has started and not yet stopped.
static ROOTS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn roots() -> std::sync::MutexGuard<'static, Vec<u32>> {
    ROOTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers a process tree started elsewhere (direct stdio children) for the Ctrl-C path.
pub(crate) fn track(pid: u32) {
    roots().push(pid);
}

/// Forgets a tree registered with `track` once it has been reaped.
pub(crate) fn untrack(pid: u32) {
    roots().retain(|p| *p != pid);
}

/// A started process (spawned with `process_group(0)`), stopped with its tree on drop.
pub(crate) struct Proc {
    child: Child,
    pid: u32,
}

impl Proc {
    /// Takes ownership of a child spawned in its own process group.
    pub(crate) fn new(child: Child) -> Self {
        let pid = child.id();
        roots().push(pid);
        Self { child, pid }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// `Some(status)` if the process has already exited.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM to the group, up to `grace` for the root to exit, then SIGKILL to whatever
    /// is left of the tree (collected before the SIGTERM).
    fn stop(&mut self, grace: Duration) {
        let tree = procs::tree_pids(self.pid);
        let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Children of a gracefully stopped relay are already gone; give them a moment.
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline && tree.iter().any(|p| procs::alive(*p)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        kill_pids(self.pid, &tree);
        let _ = self.child.kill();
        let _ = self.child.wait();
        roots().retain(|p| *p != self.pid);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

fn kill_pids(root: u32, tree: &[u32]) {
    let _ = killpg(Pid::from_raw(root as i32), Signal::SIGKILL);
    for p in tree {
        if procs::alive(*p) {
            let _ = killpg(Pid::from_raw(*p as i32), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(*p as i32), Signal::SIGKILL);
        }
    }
}

/// SIGKILLs every registered tree at once (the Ctrl-C path).
pub(crate) fn kill_all_now() {
    let list = roots().clone();
    for root in list {
        let tree = procs::tree_pids(root);
        kill_pids(root, &tree);
    }
}

/// On SIGINT or SIGTERM: kill every started tree and exit 130.
pub(crate) fn install_signal_handler(rt: &tokio::runtime::Runtime) {
    rt.spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("bench: interrupted, stopping every started process");
        kill_all_now();
        std::process::exit(130);
    });
}
