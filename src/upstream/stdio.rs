//! A supervised stdio child process.
//!
//! Owns spawning (argv directly, no shell, own process group, cleared environment plus the
//! configured one), one task per pipe (a bounded writer with a write timeout, a capped stdout
//! line reader, a stderr drain that logs line by line and keeps the last lines, secrets
//! redacted, in a [`Tail`]) and the supervisor that stops the child in order: close stdin →
//! wait → SIGTERM to the group → wait → SIGKILL to the group, always followed by `wait()`.
//! When the leader exits, what is left of its group is killed, so no grandchild outlives it.
//! Where there are no process groups (`os/process.rs`, portable: Windows) the sequence is
//! close stdin → wait → kill the child. Routing of the lines is `upstream.rs`'s
//! job, not this file's.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub(crate) mod tail;

use super::lines::{Line, LineReader};
use crate::os::process::{signal_tree, Stop};
pub(crate) use tail::Tail;

/// How to run one child; built from config, never from request data.
#[derive(Debug, Clone)]
pub(crate) struct ChildSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The whole environment of the child (the relay's own is cleared).
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// stdout line cap; longer lines are dropped and drained.
    pub max_line: usize,
    /// Each wait of the stop sequence (after closing stdin, after SIGTERM).
    pub stop_timeout: Duration,
}

/// What the child said or did, in order; `Exited` is always last.
#[derive(Debug)]
pub(crate) enum ChildEvent {
    Line(Bytes),
    Exited(ExitInfo),
}

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("spawn failed")]
    Spawn(#[source] std::io::Error),
    #[error("child stdin closed")]
    Closed,
    #[error("child stdin queue full")]
    QueueFull,
}

/// Control of a running child. Dropping every clone stops it (gracefully, in background).
#[derive(Debug, Clone)]
pub(crate) struct ChildHandle {
    pid: u32,
    stdin: mpsc::Sender<Bytes>,
    stop: CancellationToken,
    exit: watch::Receiver<Option<ExitInfo>>,
    /// Set for a remote link (`upstream/remote.rs`): why it last failed.
    cause: Option<Cause>,
    /// Its last stderr lines (a process; a link has none).
    tail: Option<Arc<Tail>>,
    _drop: Arc<StopOnDrop>,
}

/// Why a remote link last failed, in its user's terms (`upstream/remote/cause.rs` words it),
/// shared by the link's task and its [`ChildHandle`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Cause(Arc<std::sync::Mutex<Option<Arc<str>>>>);

impl Cause {
    pub(crate) fn set(&self, text: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(text.into());
    }

    pub(crate) fn get(&self) -> Option<Arc<str>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Debug)]
struct StopOnDrop(CancellationToken);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

const STDIN_QUEUE: usize = 256;
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const STDERR_LINE: usize = 8 * 1024;
const STDERR_LINES_PER_SEC: u32 = 200;

/// Spawns the child and its pipe tasks. The returned [`ChildOutput`] is read by the caller's
/// own task (no channel hop per line): its lines, then its exit.
pub(crate) fn spawn(spec: &ChildSpec) -> Result<(ChildHandle, ChildOutput), Error> {
    // Checked here so a missing or non-executable program is a clear spawn error (503).
    ensure_executable(&spec.program).map_err(Error::Spawn)?;
    let mut child = command(spec).spawn().map_err(Error::Spawn)?;
    let pid = child.id().unwrap_or(0);
    let tree = crate::os::process::Tree::track(&child);
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(Error::Spawn(std::io::Error::other("missing pipe")));
    };
    info!(pid, program = %spec.program.display(), "child spawned");

    let stop = CancellationToken::new();
    let close_stdin = CancellationToken::new();
    let kill = KillNow {
        pid,
        token: CancellationToken::new(),
    };
    let (stdin_tx, stdin_rx) = mpsc::channel(STDIN_QUEUE);
    let (exit_tx, exit_rx) = watch::channel(None);

    tokio::spawn(write_stdin(
        stdin,
        stdin_rx,
        close_stdin.clone(),
        kill.clone(),
    ));
    let tail = Arc::new(Tail::redacting(&spec.env));
    tokio::spawn(read_stderr(stderr, pid, tail.clone()));
    tokio::spawn(supervise(
        child,
        tree,
        spec.stop_timeout,
        Signals {
            stop: stop.clone(),
            close_stdin,
            kill: kill.clone(),
        },
        exit_tx,
    ));
    let output = ChildOutput {
        lines: Source::Pipe(LineReader::new(
            stdout,
            16 * 1024,
            spec.max_line,
            4 * spec.max_line as u64,
        )),
        exit: exit_rx.clone(),
        stop: stop.clone(),
        kill,
        done: false,
    };
    let handle = ChildHandle {
        pid,
        stdin: stdin_tx,
        cause: None,
        tail: Some(tail),
        exit: exit_rx,
        _drop: Arc::new(StopOnDrop(stop.clone())),
        stop,
    };
    Ok((handle, output))
}

/// Where a child's messages come from: its stdout pipe, or a remote connection's task.
#[derive(Debug)]
enum Source {
    Pipe(LineReader<ChildStdout>),
    Channel(mpsc::Receiver<Bytes>),
}

/// The far ends of a channel-backed child (a remote server): what the relay sends, where to
/// put what the server says, the relay's stop request, and where to report the end.
#[derive(Debug)]
pub(crate) struct LinkEnds {
    pub outgoing: mpsc::Receiver<Bytes>,
    pub incoming: mpsc::Sender<Bytes>,
    pub stop: CancellationToken,
    pub exit: watch::Sender<Option<ExitInfo>>,
    /// Where the link says why it failed.
    pub cause: Cause,
}

/// A child whose messages travel over channels instead of pipes; the caller's task drives
/// [`LinkEnds`]. Its pid is 0 and no signal is ever sent for it.
pub(crate) fn link() -> (ChildHandle, ChildOutput, LinkEnds) {
    let stop = CancellationToken::new();
    let (out_tx, out_rx) = mpsc::channel(STDIN_QUEUE);
    let (in_tx, in_rx) = mpsc::channel(STDIN_QUEUE);
    let (exit_tx, exit_rx) = watch::channel(None);
    let output = ChildOutput {
        lines: Source::Channel(in_rx),
        exit: exit_rx.clone(),
        stop: stop.clone(),
        kill: KillNow {
            pid: 0,
            token: CancellationToken::new(),
        },
        done: false,
    };
    let cause = Cause::default();
    let handle = ChildHandle {
        pid: 0,
        stdin: out_tx,
        exit: exit_rx,
        cause: Some(cause.clone()),
        tail: None,
        _drop: Arc::new(StopOnDrop(stop.clone())),
        stop: stop.clone(),
    };
    let ends = LinkEnds {
        outgoing: out_rx,
        incoming: in_tx,
        stop,
        exit: exit_tx,
        cause,
    };
    (handle, output, ends)
}

impl ChildHandle {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Queues one line (without newline) for the child's stdin; fails at once when full.
    pub(crate) fn send(&self, line: Bytes) -> Result<(), Error> {
        self.stdin.try_send(line).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::QueueFull,
            mpsc::error::TrySendError::Closed(_) => Error::Closed,
        })
    }

    /// Starts the stop sequence (idempotent).
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// A remote link rather than a process.
    pub(crate) fn is_link(&self) -> bool {
        self.cause.is_some()
    }

    /// Why the remote link last failed, if it said.
    pub(crate) fn link_cause(&self) -> Option<Arc<str>> {
        self.cause.as_ref().and_then(Cause::get)
    }

    pub(crate) fn exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Its last stderr lines, kept after it exits (a process; `None` for a link).
    pub(crate) fn stderr_tail(&self) -> Option<&Arc<Tail>> {
        self.tail.as_ref()
    }

    /// Waits until the child has been reaped, without holding the handle (so the future
    /// does not keep the child running).
    pub(crate) fn reaped(
        &self,
    ) -> impl std::future::Future<Output = Option<ExitInfo>> + Send + 'static {
        let mut rx = self.exit.clone();
        async move { rx.wait_for(Option::is_some).await.ok().and_then(|v| *v) }
    }

    /// Waits until the child has been reaped.
    pub(crate) async fn wait(&self) -> Option<ExitInfo> {
        self.reaped().await
    }
}

async fn write_stdin(
    mut stdin: ChildStdin,
    mut rx: mpsc::Receiver<Bytes>,
    close: CancellationToken,
    kill: KillNow,
) {
    let pid = kill.pid;
    // Lines queued meanwhile go out in the same write: one syscall per burst, not per line.
    let mut buf = bytes::BytesMut::new();
    loop {
        let line = tokio::select! {
            line = rx.recv() => line,
            () = close.cancelled() => None,
        };
        let Some(line) = line else { break };
        buf.clear();
        buf.extend_from_slice(&line);
        buf.extend_from_slice(b"\n");
        while buf.len() < 1024 * 1024 {
            let Ok(more) = rx.try_recv() else { break };
            buf.extend_from_slice(&more);
            buf.extend_from_slice(b"\n");
        }
        let write = async {
            stdin.write_all(&buf).await?;
            stdin.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(pid, error = %e, "child stdin closed");
                break;
            }
            Err(_) => {
                warn!(pid, "child stdin write timed out; killing child");
                kill.now();
                break;
            }
        }
        if buf.capacity() > 4 * 1024 * 1024 {
            buf = bytes::BytesMut::new();
        }
    }
    // Dropping `stdin` closes the pipe: the first step of the stop sequence.
}

/// The child's stdout, read in the caller's task: lines, then exactly one `Exited`.
#[derive(Debug)]
pub(crate) struct ChildOutput {
    lines: Source,
    exit: watch::Receiver<Option<ExitInfo>>,
    stop: CancellationToken,
    kill: KillNow,
    done: bool,
}

impl ChildOutput {
    /// The next event; `None` after `Exited` was returned.
    pub(crate) async fn next(&mut self) -> Option<ChildEvent> {
        if self.done {
            return None;
        }
        let lines = match &mut self.lines {
            Source::Pipe(lines) => lines,
            Source::Channel(rx) => {
                if let Some(line) = rx.recv().await {
                    return Some(ChildEvent::Line(line));
                }
                return self.finish().await;
            }
        };
        loop {
            match lines.next().await {
                Ok(Some(Line::Text(line))) => return Some(ChildEvent::Line(line)),
                Ok(Some(Line::TooLong(len))) => {
                    warn!(
                        pid = self.kill.pid,
                        len, "child stdout line over the cap dropped"
                    );
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(pid = self.kill.pid, error = %e, "child stdout unusable; killing child");
                    self.kill.now();
                    break;
                }
            }
        }
        self.finish().await
    }

    /// Without output the child is useless: make sure it is on its way out, then report how
    /// it ended.
    async fn finish(&mut self) -> Option<ChildEvent> {
        self.done = true;
        self.stop.cancel();
        let info = self
            .exit
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|v| *v)
            .unwrap_or(ExitInfo {
                code: None,
                signal: None,
            });
        Some(ChildEvent::Exited(info))
    }
}

async fn read_stderr(stderr: ChildStderr, pid: u32, tail: Arc<Tail>) {
    let mut lines = LineReader::new(stderr, 2 * 1024, STDERR_LINE, u64::MAX);
    let mut window = Instant::now();
    let (mut logged, mut suppressed) = (0u32, 0u64);
    while let Ok(Some(line)) = lines.next().await {
        if window.elapsed() >= Duration::from_secs(1) {
            if suppressed > 0 {
                warn!(target: "mcp_relay::child_stderr", pid, suppressed, "child stderr lines suppressed");
            }
            window = Instant::now();
            (logged, suppressed) = (0, 0);
        }
        if logged >= STDERR_LINES_PER_SEC {
            suppressed += 1;
            continue;
        }
        logged += 1;
        match line {
            Line::Text(t) => {
                info!(target: "mcp_relay::child_stderr", pid, "{}", String::from_utf8_lossy(&t));
                tail.push(&t);
            }
            Line::TooLong(len) => {
                info!(target: "mcp_relay::child_stderr", pid, len, "long stderr line dropped");
            }
        }
    }
}

/// What the supervisor reacts to: the relay's stop request, the stdin task's end, a request
/// to kill at once.
struct Signals {
    stop: CancellationToken,
    close_stdin: CancellationToken,
    kill: KillNow,
}

/// Kills the child's tree at once: a signal to its group where there are groups; elsewhere a
/// request to the supervisor, which holds the child.
#[derive(Debug, Clone)]
struct KillNow {
    pid: u32,
    token: CancellationToken,
}

impl KillNow {
    fn now(&self) {
        if !signal_tree(self.pid, Stop::Kill) {
            self.token.cancel();
        }
    }
}

async fn supervise(
    mut child: Child,
    tree: crate::os::process::Tree,
    timeout: Duration,
    signals: Signals,
    exit: watch::Sender<Option<ExitInfo>>,
) {
    let pid = signals.kill.pid;
    let group = GroupKill(pid, tree);
    let status = tokio::select! {
        status = child.wait() => status,
        () = signals.kill.token.cancelled() => {
            let _ = child.start_kill();
            child.wait().await
        }
        () = signals.stop.cancelled() => {
            signals.close_stdin.cancel();
            stop_in_order(&mut child, pid, timeout).await
        }
    };
    // The leader is gone: nothing of its group may outlive it.
    drop(group);
    let info = match status {
        Ok(s) => ExitInfo {
            code: s.code(),
            signal: crate::os::process::exit_signal(&s),
        },
        Err(_) => ExitInfo {
            code: None,
            signal: None,
        },
    };
    info!(pid, code = ?info.code, signal = ?info.signal, "child exited");
    let _ = exit.send(Some(info));
}

async fn stop_in_order(
    child: &mut Child,
    pid: u32,
    timeout: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    if let Ok(status) = tokio::time::timeout(timeout, child.wait()).await {
        return status;
    }
    debug!(pid, "child ignored stdin close; SIGTERM");
    if !signal_tree(pid, Stop::Term) {
        // No termination request on this platform: the child is killed.
        warn!(pid, "child ignored stdin close; killing it");
        let _ = child.start_kill();
        return child.wait().await;
    }
    if let Ok(status) = tokio::time::timeout(timeout, child.wait()).await {
        return status;
    }
    warn!(pid, "child ignored SIGTERM; SIGKILL");
    signal_tree(pid, Stop::Kill);
    child.wait().await
}

/// The command for `spec`: its own process group, its life tied to the relay's.
fn command(spec: &ChildSpec) -> Command {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    crate::os::process::isolate(&mut cmd);
    crate::os::process::prepare_exec(&mut cmd);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    cmd
}

fn ensure_executable(program: &std::path::Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(program)?;
    if crate::os::process::is_executable(&meta) {
        Ok(())
    } else {
        Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
    }
}

/// Kills the child's whole group when dropped: after the leader exits, and also when the
/// runtime drops the supervisor mid-way (relay exiting), so no grandchild is orphaned. (On
/// Windows the tree's Job Object does it as it drops.)
struct GroupKill(u32, #[allow(dead_code)] crate::os::process::Tree);

impl Drop for GroupKill {
    fn drop(&mut self) {
        signal_tree(self.0, Stop::Kill);
    }
}
