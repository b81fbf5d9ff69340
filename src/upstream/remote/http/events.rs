//! A server-sent events parser (WHATWG HTML §9.2.6) whose cost is linear in its input and
//! whose memory is bounded, for what a remote server sends (`serve --upstream http(s)://`,
//! `connect`).
//!
//! Every byte is scanned for a line end once: a chunk is searched from where the previous
//! search stopped (`memchr`), never from the start of the pending line. A line, or an event
//! (its `data` lines together), longer than the cap is dropped as soon as it passes the cap:
//! the rest of the line is skipped without being buffered, the event is not dispatched, and
//! the caller learns it from [`Parser::take_dropped`] (the stream itself goes on). Reading the
//! body and what an event means to the link are in `http/stream.rs`.

use std::collections::VecDeque;
use std::time::Duration;

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Event {
    /// The event type (`message` when the server named none).
    pub(crate) event: String,
    /// The `data` lines joined by `\n`.
    pub(crate) data: String,
    /// The last event id the stream set (it persists across events, as in the spec).
    pub(crate) id: String,
    /// The reconnection time the event carried, if any.
    pub(crate) retry: Option<Duration>,
}

/// The incremental parser: push chunks, pop events.
#[derive(Debug)]
pub(crate) struct Parser {
    /// The bytes of the current line not yet ended (never more than `max`).
    line: Vec<u8>,
    /// The current line passed the cap: skip bytes until its end.
    skipping: bool,
    /// The previous chunk ended with CR: a LF first in the next one ends nothing.
    after_cr: bool,
    /// Nothing was read yet (a leading byte order mark is skipped).
    started: bool,
    /// The event being built.
    event: String,
    data: String,
    data_lines: bool,
    retry: Option<Duration>,
    last_id: String,
    /// The event being built passed the cap or was not UTF-8: it is not dispatched.
    spoiled: bool,
    max: usize,
    ready: VecDeque<Event>,
    dropped: u64,
    /// Bytes looked at by the line search, for the linearity test.
    scanned: u64,
}

impl Parser {
    /// A parser that drops any line or event over `max` bytes.
    pub(crate) fn new(max: usize) -> Parser {
        Parser {
            line: Vec::new(),
            skipping: false,
            after_cr: false,
            started: false,
            event: String::new(),
            data: String::new(),
            data_lines: false,
            retry: None,
            last_id: String::new(),
            spoiled: false,
            max,
            ready: VecDeque::new(),
            dropped: 0,
            scanned: 0,
        }
    }

    /// Feeds one chunk of the body.
    pub(crate) fn push(&mut self, mut chunk: &[u8]) {
        if !self.started && !chunk.is_empty() {
            self.started = true;
            chunk = chunk.strip_prefix("\u{feff}".as_bytes()).unwrap_or(chunk);
        }
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        while !chunk.is_empty() {
            let Some(end) = memchr::memchr2(b'\n', b'\r', chunk) else {
                self.scanned += chunk.len() as u64;
                self.extend(chunk);
                return;
            };
            self.scanned += end as u64 + 1;
            self.extend(&chunk[..end]);
            let cr = chunk[end] == b'\r';
            chunk = &chunk[end + 1..];
            if cr {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            self.end_line();
        }
    }

    /// The next complete event, if any.
    pub(crate) fn pop(&mut self) -> Option<Event> {
        self.ready.pop_front()
    }

    /// How many events were dropped (over the cap) since the last call.
    pub(crate) fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Bytes the line search looked at so far.
    #[cfg(test)]
    pub(crate) fn scanned(&self) -> u64 {
        self.scanned
    }

    /// Adds part of the current line, or starts skipping it once it passes the cap.
    fn extend(&mut self, part: &[u8]) {
        if self.skipping || part.is_empty() {
            return;
        }
        if self.line.len() + part.len() > self.max {
            self.line = Vec::new();
            self.skipping = true;
            self.spoil();
            return;
        }
        self.line.extend_from_slice(part);
    }

    /// Marks the current event as dropped (counted once per event).
    fn spoil(&mut self) {
        if !self.spoiled {
            self.spoiled = true;
            self.dropped += 1;
        }
        self.data = String::new();
    }

    fn end_line(&mut self) {
        if std::mem::take(&mut self.skipping) {
            return;
        }
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch();
        } else {
            self.field(&line);
        }
        // Keep the allocation of an ordinary line, not of a huge one.
        if line.capacity() <= 64 * 1024 {
            self.line = line;
            self.line.clear();
        }
    }

    fn field(&mut self, line: &[u8]) {
        if line[0] == b':' {
            return;
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        let Ok(value) = std::str::from_utf8(value) else {
            self.spoil();
            return;
        };
        match name {
            b"data" => {
                if self.spoiled {
                    return;
                }
                if self.data.len() + value.len() + 1 > self.max {
                    self.spoil();
                    return;
                }
                self.data.push_str(value);
                self.data.push('\n');
                self.data_lines = true;
            }
            b"event" => value.clone_into(&mut self.event),
            b"id" if !value.contains('\0') => value.clone_into(&mut self.last_id),
            b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {}
        }
    }

    /// An empty line: the event is complete.
    fn dispatch(&mut self) {
        let event = std::mem::take(&mut self.event);
        let mut data = std::mem::take(&mut self.data);
        let retry = self.retry.take();
        let had_data = std::mem::take(&mut self.data_lines);
        if std::mem::take(&mut self.spoiled) || !had_data {
            return;
        }
        data.pop();
        self.ready.push_back(Event {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            id: self.last_id.clone(),
            retry,
        });
    }
}

#[cfg(test)]
#[path = "events/tests.rs"]
mod tests;
