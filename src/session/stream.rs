//! Logical SSE streams with a bounded replay buffer (resumability).
//!
//! A [`Stream`] is what the spec calls a stream: the answer to one POST, or the session's
//! standalone GET stream. Messages are pushed to it whether or not an HTTP connection is
//! attached; each gets a sequence number, is kept in a bounded buffer for `Last-Event-ID`
//! replay, and is sent to the attached connection if there is one. Event ids are
//! `<stream>-<seq>`, unique across the session and naming their stream, so a resume replays
//! only that stream. A POST stream is done once every request on it has its final answer.
//! Turning messages into SSE bytes is the listener's job.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use tokio::sync::mpsc;

/// Bounds of one stream's replay buffer (SECURITY.md §2: 1,000 events or 8 MiB).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BufferLimits {
    pub events: usize,
    pub bytes: usize,
}

/// One message for a connection.
#[derive(Debug, Clone)]
pub(crate) struct Out {
    /// Its stream and sequence number: the SSE event id `<stream>-<seq>` ([`Out::event_id`]),
    /// written only where an event is (a JSON answer has none).
    pub stream: u64,
    pub seq: u64,
    pub data: Bytes,
    /// The stream is done after this message.
    pub last: bool,
}

impl Out {
    /// Its SSE event id, `<stream>-<seq>` ([`parse_event_id`] reads it back).
    #[cfg(test)]
    pub(crate) fn event_id(&self) -> String {
        format!("{}-{}", self.stream, self.seq)
    }
}

/// A stream of one session.
#[derive(Debug)]
pub(crate) struct Stream {
    id: u64,
    standalone: bool,
    limits: BufferLimits,
    inner: Mutex<Inner>,
    /// Set once, as the stream is done: the events and bytes it holds from then on (a done
    /// stream's buffer no longer changes), read without the lock by the session's pruning.
    frozen: OnceLock<(usize, usize)>,
}

#[derive(Debug, Default)]
struct Inner {
    buffer: VecDeque<(u64, Bytes)>,
    buffered: usize,
    next_seq: u64,
    /// Highest sequence number handed to a connection (standalone streams replay after it).
    delivered: u64,
    conn: Option<mpsc::Sender<Out>>,
    open: usize,
    done: bool,
}

const CONN_QUEUE: usize = 1024;

impl Stream {
    pub(crate) fn new(id: u64, standalone: bool, limits: BufferLimits) -> Arc<Stream> {
        Arc::new(Stream {
            id,
            standalone,
            limits,
            inner: Mutex::new(Inner {
                next_seq: 1,
                ..Inner::default()
            }),
            frozen: OnceLock::new(),
        })
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn is_standalone(&self) -> bool {
        self.standalone
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One more request whose final answer will travel on this stream.
    pub(crate) fn expect_answer(&self) {
        self.lock().open += 1;
    }

    pub(crate) fn is_done(&self) -> bool {
        self.frozen.get().is_some() || self.lock().done
    }

    /// Whether it is done, and the events and bytes it holds for replay (one lock at most).
    pub(crate) fn held(&self) -> (bool, usize, usize) {
        if let Some(&(events, bytes)) = self.frozen.get() {
            return (true, events, bytes);
        }
        let inner = self.lock();
        (inner.done, inner.buffer.len(), inner.buffered)
    }

    /// Events and bytes held for replay.
    pub(crate) fn buffered(&self) -> (usize, usize) {
        let (_, events, bytes) = self.held();
        (events, bytes)
    }

    /// Marks the stream done (under its lock): no connection any more, and the buffer frozen.
    fn finish(&self, inner: &mut MutexGuard<'_, Inner>) {
        inner.done = true;
        inner.conn = None;
        let _ = self.frozen.set((inner.buffer.len(), inner.buffered));
    }

    /// True while an HTTP connection is attached.
    pub(crate) fn is_attached(&self) -> bool {
        self.lock().conn.as_ref().is_some_and(|c| !c.is_closed())
    }

    /// Adds a message; `answers` marks the final answer to one request of this stream.
    pub(crate) fn push(&self, data: Bytes, answers: bool) {
        let mut inner = self.lock();
        if inner.done {
            return;
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        if answers {
            inner.open = inner.open.saturating_sub(1);
        }
        let last = answers && inner.open == 0 && !self.standalone;
        inner.buffered += data.len();
        inner.buffer.push_back((seq, data.clone()));
        while inner.buffer.len() > self.limits.events || inner.buffered > self.limits.bytes {
            match inner.buffer.pop_front() {
                Some((_, old)) => inner.buffered -= old.len(),
                None => break,
            }
        }
        let out = Out {
            stream: self.id,
            seq,
            data,
            last,
        };
        if let Some(conn) = &inner.conn {
            // A connection that cannot keep up is detached; it can resume from the buffer.
            if conn.try_send(out).is_ok() {
                inner.delivered = seq;
            } else {
                inner.conn = None;
            }
        }
        if last {
            self.finish(&mut inner);
        }
    }

    /// Marks one request as finished without a message (cancelled by the client).
    pub(crate) fn forget_answer(&self) {
        let mut inner = self.lock();
        inner.open = inner.open.saturating_sub(1);
        if inner.open == 0 && !self.standalone {
            self.finish(&mut inner);
        }
    }

    /// Ends the stream for good (session ended): the connection closes after what it has.
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        self.finish(&mut inner);
    }

    /// Attaches a new connection, replaying buffered events after `after` (or, without it,
    /// what no connection has received yet). A previous connection is detached. Also returns
    /// the sequence number replay started after (what a priming event should point at).
    pub(crate) fn attach(&self, after: Option<u64>) -> (mpsc::Receiver<Out>, u64) {
        let mut inner = self.lock();
        let after = after.unwrap_or(inner.delivered);
        let replay: Vec<(u64, Bytes)> = inner
            .buffer
            .iter()
            .filter(|(seq, _)| *seq > after)
            .cloned()
            .collect();
        let (tx, rx) = mpsc::channel(CONN_QUEUE.max(replay.len() + 1));
        let newest = inner.next_seq - 1;
        for (seq, data) in replay {
            let last = inner.done && seq == newest && !self.standalone;
            let _ = tx.try_send(Out {
                stream: self.id,
                seq,
                data,
                last,
            });
            inner.delivered = inner.delivered.max(seq);
        }
        inner.conn = if inner.done { None } else { Some(tx) };
        (rx, after)
    }
}

/// Parses a `Last-Event-ID` of the form `<stream>-<seq>`.
pub(crate) fn parse_event_id(s: &str) -> Option<(u64, u64)> {
    let (stream, seq) = s.split_once('-')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BufferLimits = BufferLimits {
        events: 3,
        bytes: 1 << 20,
    };

    #[tokio::test]
    async fn stream_ends_after_last_answer_and_replays_after_cursor() {
        let s = Stream::new(4, false, LIMITS);
        s.expect_answer();
        let (mut rx, _) = s.attach(None);
        s.push(Bytes::from_static(b"progress"), false);
        s.push(Bytes::from_static(b"result"), true);
        let a = rx.recv().await.unwrap();
        let b = rx.recv().await.unwrap();
        assert_eq!((a.event_id().as_str(), a.last), ("4-1", false));
        assert_eq!((b.event_id().as_str(), b.last), ("4-2", true));
        assert!(rx.recv().await.is_none());
        assert!(s.is_done());
        let (mut again, _) = s.attach(Some(1));
        let r = again.recv().await.unwrap();
        assert_eq!(
            (r.event_id().as_str(), &r.data[..], r.last),
            ("4-2", &b"result"[..], true)
        );
        assert!(again.recv().await.is_none());
    }

    #[tokio::test]
    async fn buffer_is_bounded_and_standalone_replays_undelivered() {
        let s = Stream::new(0, true, LIMITS);
        for i in 0..5u8 {
            s.push(Bytes::from(vec![i]), false);
        }
        let (mut rx, after) = s.attach(None);
        assert_eq!(after, 0);
        let ids: Vec<String> = (0..3).map(|_| rx.try_recv().unwrap().event_id()).collect();
        assert_eq!(ids, ["0-3", "0-4", "0-5"]);
        drop(rx);
        assert_eq!(parse_event_id("0-5"), Some((0, 5)));
        assert_eq!(parse_event_id("x"), None);
    }
}
