//! The last lines a child wrote to stderr, kept for the operator's console: at most
//! [`LINES`] lines of at most [`LINE_CHARS`] characters each, oldest dropped first.
//!
//! Owns: that bounded ring. Does not own: reading the pipe or logging the lines (`stdio.rs`),
//! showing them (`admin/console/`).

use std::collections::VecDeque;
use std::sync::Mutex;

/// Lines kept.
pub(crate) const LINES: usize = 20;
/// Characters kept of each line (the rest is cut, marked with `…`).
pub(crate) const LINE_CHARS: usize = 300;

/// See the module header.
#[derive(Debug, Default)]
pub(crate) struct Tail(Mutex<VecDeque<String>>);

impl Tail {
    /// Keeps one line (bytes as the child wrote them, without the newline).
    pub(crate) fn push(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let kept = match text.char_indices().nth(LINE_CHARS) {
            Some((end, _)) => format!("{}…", &text[..end]),
            None => text.to_owned(),
        };
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == LINES {
            lines.pop_front();
        }
        lines.push_back(kept);
    }

    /// The kept lines, oldest first.
    pub(crate) fn lines(&self) -> Vec<String> {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
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
}
