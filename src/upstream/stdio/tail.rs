//! The last lines a child wrote to stderr, kept for the operator's console: at most
//! [`LINES`] lines of at most [`LINE_CHARS`] characters each, oldest dropped first.
//!
//! Secrets: before a line is kept, every value of [`REDACT_MIN`] or more characters that the
//! relay passes to the child as environment (the server's `env` and `--pass-env` values; not
//! the default pass-through names such as `PATH` and `HOME`, [`PLAIN`]) is replaced with
//! [`REDACTED`], so a child that logs its token or dumps its environment does not show it on
//! the console. Values shorter than that, or transformed by the child (encoded, split), are
//! not caught; the relay's log of the child's stderr is not redacted.
//!
//! Owns: that bounded ring and its redaction. Does not own: reading the pipe or logging the lines (`stdio.rs`),
//! showing them (`admin/console/`).

use std::collections::VecDeque;
use std::sync::Mutex;

/// Lines kept.
pub(crate) const LINES: usize = 20;
/// Characters kept of each line (the rest is cut, marked with `…`).
pub(crate) const LINE_CHARS: usize = 300;

/// Environment values shorter than this are not redacted (too likely to be ordinary words).
pub(crate) const REDACT_MIN: usize = 8;
/// What a redacted value reads as.
pub(crate) const REDACTED: &str = "[redacted]";
/// Environment names whose values are not secrets (the relay's default pass-through list,
/// `config::DEFAULT_PASS_ENV`).
const PLAIN: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "TERM",
];

/// See the module header.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    lines: Mutex<VecDeque<String>>,
    /// The values replaced with [`REDACTED`], longest first.
    secrets: Vec<String>,
}

impl Tail {
    /// A tail that redacts the values of `env` (the child's environment) as the module
    /// header says.
    pub(crate) fn redacting(env: &[(String, String)]) -> Tail {
        let mut secrets: Vec<String> = env
            .iter()
            .filter(|(k, v)| !PLAIN.contains(&k.as_str()) && v.chars().count() >= REDACT_MIN)
            .map(|(_, v)| v.clone())
            .collect();
        secrets.sort_by_key(|v| std::cmp::Reverse(v.len()));
        secrets.dedup();
        Tail {
            lines: Mutex::default(),
            secrets,
        }
    }

    /// Keeps one line (bytes as the child wrote them, without the newline).
    pub(crate) fn push(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let mut text = text.trim_end_matches('\r').to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED);
            }
        }
        let kept = match text.char_indices().nth(LINE_CHARS) {
            Some((end, _)) => format!("{}…", &text[..end]),
            None => text.to_owned(),
        };
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == LINES {
            lines.pop_front();
        }
        lines.push_back(kept);
    }

    /// The kept lines, oldest first.
    pub(crate) fn lines(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_keeps_the_last_lines_capped() {
        let tail = Tail::default();
        for i in 0..(LINES + 3) {
            tail.push(format!("line {i}\r").as_bytes());
        }
        tail.push(&[b'x'; 1000]);
        let lines = tail.lines();
        assert_eq!(lines.len(), LINES);
        assert_eq!(lines[0], "line 4");
        assert_eq!(lines[LINES - 1].chars().count(), LINE_CHARS + 1);
        tail.push(&[0xff, b'a']);
        assert_eq!(tail.lines().last().unwrap(), "\u{fffd}a");
    }

    #[test]
    fn stderr_tail_redacts_the_environment_values_the_relay_passes() {
        let env = [
            ("GITHUB_TOKEN".to_owned(), "ghp_Q7vX2mLk9RtB".to_owned()),
            ("SHORT".to_owned(), "k3Jq".to_owned()),
            ("HOME".to_owned(), "/home/relay".to_owned()),
        ];
        let tail = Tail::redacting(&env);
        tail.push(b"using token ghp_Q7vX2mLk9RtB twice: ghp_Q7vX2mLk9RtB\r");
        tail.push(b"short k3Jq stays, home /home/relay stays");
        assert_eq!(
            tail.lines(),
            [
                "using token [redacted] twice: [redacted]",
                "short k3Jq stays, home /home/relay stays"
            ]
        );
        assert_eq!(PLAIN, crate::config::DEFAULT_PASS_ENV);
    }
}
