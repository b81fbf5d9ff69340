//! A child's process tree: isolating it at spawn, tying its life to the relay's, stopping it,
//! and reading how it ended.
//!
//! - Native (Unix, macOS included): the child leads its own process group
//!   (`Command::process_group(0)`); SIGTERM and SIGKILL go to the whole group (`killpg`), so
//!   grandchildren go with it. On Linux [`prepare_exec`] also arms
//!   `PR_SET_PDEATHSIG` between fork and exec, so the kernel kills the child when the relay
//!   dies, even by SIGKILL.
//! - Portable (Windows, or `--features portable`): the child is one process. There is no
//!   termination request to send, so [`signal_tree`] reports `false` and the caller kills the
//!   child it holds (`Child::start_kill`: `TerminateProcess` on Windows). Grandchildren are
//!   not tracked, and a relay that is killed hard leaves its children to notice their stdin
//!   closing (which ends an MCP stdio server).
//! - Windows only, on top of the portable path: [`Tree`] puts the child in a Job Object that
//!   kills every process in it when its handle closes, so grandchildren started after the
//!   child joined go when the tree is dropped, and everything goes when the relay dies, even
//!   killed hard (the OS closes the handle). This is the one piece of `src/os/` that Linux
//!   cannot run; it is type-checked here with the `x86_64-pc-windows-gnu` target and tested
//!   on the Windows runner (docs/platforms.md).
//!
//! The stop sequence that uses this is `upstream/stdio.rs`.

use std::process::ExitStatus;

/// What [`signal_tree`] asks of a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Ask it to end (SIGTERM).
    Term,
    /// End it (SIGKILL).
    Kill,
}

#[cfg(all(unix, not(feature = "portable")))]
mod native {
    use super::Stop;
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;

    pub(super) fn isolate(cmd: &mut tokio::process::Command) {
        cmd.process_group(0);
    }

    pub(super) fn signal_tree(pid: u32, stop: Stop) -> bool {
        let signal = match stop {
            Stop::Term => Signal::SIGTERM,
            Stop::Kill => Signal::SIGKILL,
        };
        if let Ok(pid) = i32::try_from(pid) {
            if pid > 0 {
                let _ = killpg(Pid::from_raw(pid), signal);
            }
        }
        true
    }

    pub(super) fn exit_signal(status: &std::process::ExitStatus) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        status.signal()
    }

    pub(super) fn is_executable(meta: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
}

#[cfg(not(all(unix, not(feature = "portable"))))]
mod native {
    use super::Stop;

    pub(super) fn isolate(_cmd: &mut tokio::process::Command) {}

    pub(super) fn signal_tree(_pid: u32, _stop: Stop) -> bool {
        false
    }

    pub(super) fn exit_signal(_status: &std::process::ExitStatus) -> Option<i32> {
        None
    }

    pub(super) fn is_executable(meta: &std::fs::Metadata) -> bool {
        meta.is_file()
    }
}

/// What is left of a child's tree is killed when this drops (Windows: the Job Object's
/// kill-on-close; elsewhere nothing is held, and [`signal_tree`] reaches the group).
#[derive(Debug)]
pub(crate) struct Tree {
    #[cfg(windows)]
    _job: Option<win32job::Job>,
}

impl Tree {
    /// Starts tracking the tree of a child just spawned. A child that cannot join a job
    /// (the relay's own job forbids it) is tracked as one process.
    pub(crate) fn track(child: &tokio::process::Child) -> Tree {
        #[cfg(windows)]
        {
            let job = child.raw_handle().and_then(|handle| {
                let mut limits = win32job::ExtendedLimitInfo::new();
                limits.limit_kill_on_job_close();
                let job = win32job::Job::create_with_limit_info(&limits).ok()?;
                job.assign_process(handle as isize).ok()?;
                Some(job)
            });
            Tree { _job: job }
        }
        #[cfg(not(windows))]
        {
            let _ = child;
            Tree {}
        }
    }
}

/// Makes the child the root of a tree [`signal_tree`] can reach (its own process group).
pub(crate) fn isolate(cmd: &mut tokio::process::Command) {
    native::isolate(cmd);
}

/// Sends `stop` to the tree rooted at `pid` (pid 0: nothing). `false` when this platform
/// cannot: the caller then kills the child it holds.
pub(crate) fn signal_tree(pid: u32, stop: Stop) -> bool {
    native::signal_tree(pid, stop)
}

/// The signal that ended a process, where signals exist.
pub(crate) fn exit_signal(status: &ExitStatus) -> Option<i32> {
    native::exit_signal(status)
}

/// Whether a file may be run (Unix: a regular file with an execute bit; elsewhere: a regular
/// file, as `PATHEXT` already chose it).
pub(crate) fn is_executable(meta: &std::fs::Metadata) -> bool {
    native::is_executable(meta)
}

/// What runs in the child between fork and exec (native Unix; elsewhere nothing):
/// - Linux: the child asks the kernel to SIGKILL it when the relay dies (even by SIGKILL, when
///   no cleanup of ours can run), and refuses to exec when the relay is already gone (then
///   nothing would kill it later: the spawn fails). The kernel sends the signal when the
///   *thread* that forked exits: children are spawned from the runtime's worker threads,
///   which live as long as the relay.
/// - Every Unix: the open-files limit the relay raised for itself (`os/limits.rs`) is put
///   back to what the relay was started with, so a server sees the limit it would have seen
///   started by hand (some close or poll every possible descriptor).
///
/// One or two system calls more than a plain spawn; the program is exec'd once, directly.
#[cfg(all(unix, not(feature = "portable")))]
#[allow(unsafe_code)]
pub(crate) fn prepare_exec(cmd: &mut tokio::process::Command) {
    #[cfg(target_os = "linux")]
    let relay = nix::unistd::getpid();
    let files = crate::os::limits::inherited_open_files();
    let hook = move || -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            if nix::unistd::getppid() != relay {
                return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
        }
        if let Some((soft, hard)) = files {
            // Lowering the soft limit below the hard one cannot fail; if it did, the child
            // would only keep the relay's larger limit.
            let _ = nix::sys::resource::setrlimit(
                nix::sys::resource::Resource::RLIMIT_NOFILE,
                soft,
                hard,
            );
        }
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec, where only async-signal-safe
    // calls are allowed: it makes system calls only (prctl, getppid, setrlimit), allocates
    // nothing (the error is a raw OS error) and touches no lock.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Nothing to run between fork and exec on the portable path (see the native version): the
/// Job Object (Windows) is what ends a child with the relay.
#[cfg(not(all(unix, not(feature = "portable"))))]
pub(crate) fn prepare_exec(_cmd: &mut tokio::process::Command) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stopped_tree_ends() {
        let exe = std::env::current_exe().unwrap();
        // The test binary itself, running the ignored test below: a child that exists on every
        // OS. Its stdin is kept open, so it cannot end by itself.
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args([
            "--exact",
            "os::process::tests::child_reads_stdin_to_eof",
            "--ignored",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
        isolate(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let pid = child.id().unwrap();
        let sent = signal_tree(pid, Stop::Kill);
        assert_eq!(sent, !crate::os::PORTABLE);
        if !sent {
            child.start_kill().unwrap();
        }
        let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(!status.success());
        if crate::os::PORTABLE {
            assert_eq!(exit_signal(&status), None);
        } else {
            assert_eq!(exit_signal(&status), Some(9));
        }
    }

    /// The Job Object: dropping the tree kills the child (Windows only).
    #[cfg(windows)]
    #[tokio::test]
    async fn a_dropped_tree_kills_its_processes() {
        let exe = std::env::current_exe().unwrap();
        let mut child = tokio::process::Command::new(&exe)
            .args([
                "--exact",
                "os::process::tests::child_reads_stdin_to_eof",
                "--ignored",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let tree = Tree::track(&child);
        assert!(tree._job.is_some());
        drop(tree);
        let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(!status.success());
    }

    #[test]
    #[ignore = "the child of a_stopped_tree_ends"]
    fn child_reads_stdin_to_eof() {
        use std::io::Read as _;
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    }

    #[test]
    fn a_directory_is_not_executable() {
        let meta = std::fs::metadata(std::env::temp_dir()).unwrap();
        assert!(!is_executable(&meta));
        let exe = std::fs::metadata(std::env::current_exe().unwrap()).unwrap();
        assert!(is_executable(&exe));
    }
}
