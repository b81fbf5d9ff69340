//! What the operator's console knows of a slot's children: how many were started, when the
//! running one started, how the last one ended, its last stderr lines.
//!
//! Owns: those facts and their wording. Does not own: recording them (`supervisor.rs`, as
//! children start and exit), the stderr ring (`stdio/tail.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::upstream::stdio::tail::LINES;
use crate::upstream::stdio::Tail;
use crate::upstream::Upstream;

/// The lives of a slot's children so far (the operator's console).
#[derive(Debug, Default)]
pub(super) struct Lives {
    /// Children started (or start attempts that failed).
    pub starts: u64,
    /// When the running child started.
    pub started: Option<Instant>,
    /// How the last child ended, or why the last start failed.
    pub last_exit: Option<String>,
    /// The last stderr lines of the newest child (kept after it exits).
    pub tail: Option<Arc<Tail>>,
    /// Those of the child before it (why it ended is often there).
    pub before: Option<Arc<Tail>>,
}

impl Lives {
    /// A child started, with its stderr lines in `tail`.
    pub(super) fn started(&mut self, tail: Option<Arc<Tail>>) {
        self.starts += 1;
        self.started = Some(Instant::now());
        self.before = std::mem::replace(&mut self.tail, tail).or(self.before.take());
    }

    /// The last [`LINES`] stderr lines of the last two children, oldest first.
    pub(super) fn stderr(&self) -> Vec<String> {
        let mut lines: Vec<String> = [&self.before, &self.tail]
            .into_iter()
            .flatten()
            .flat_map(|t| t.lines())
            .collect();
        let extra = lines.len().saturating_sub(LINES);
        lines.drain(..extra);
        lines
    }
}

/// What the operator's console shows of a slot ([`Slot::facts`](super::Slot::facts)).
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    pub uptime: Option<Duration>,
    /// Times a child was started again after the first.
    pub restarts: u64,
    pub last_exit: Option<String>,
    pub stderr: Vec<String>,
}

/// How a child ended, for the console: `exit status N` or `signal N (NAME)`.
pub(super) fn exit_words(info: crate::upstream::stdio::ExitInfo) -> String {
    match (info.code, info.signal) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => {
            let name = match sig {
                1 => " (SIGHUP)",
                2 => " (SIGINT)",
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            format!("signal {sig}{name}")
        }
        (None, None) => "exited".to_owned(),
    }
}

/// The last stderr lines of a child that is not a slot's (a session's own child).
pub(crate) fn stderr_of(up: &Upstream) -> Vec<String> {
    up.child
        .stderr_tail()
        .map(|t| t.lines())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::stdio::ExitInfo;

    #[test]
    fn exit_words_name_the_status_or_the_signal() {
        let words = |code, signal| exit_words(ExitInfo { code, signal });
        assert_eq!(words(Some(3), None), "exit status 3");
        assert_eq!(words(None, Some(9)), "signal 9 (SIGKILL)");
        assert_eq!(words(None, Some(31)), "signal 31");
        assert_eq!(words(None, None), "exited");
    }

    #[test]
    fn lives_keep_the_stderr_of_the_child_before() {
        let mut lives = Lives::default();
        let first = Arc::new(Tail::default());
        first.push(b"boom");
        lives.started(Some(first));
        let second = Arc::new(Tail::default());
        second.push(b"hello again");
        lives.started(Some(second.clone()));
        assert_eq!(lives.stderr(), ["boom", "hello again"]);
        for _ in 0..LINES {
            second.push(b"x");
        }
        assert_eq!(lives.stderr().len(), LINES);
        assert!(!lives.stderr().contains(&"boom".to_owned()));
        assert_eq!(lives.starts, 2);
    }
}
