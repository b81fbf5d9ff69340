//! The live feed the operator's console reads: the recent audit records (a ring bounded by
//! count and bytes), each new one to subscribers as it comes, and traffic windows (requests,
//! errors, latency per server, tool and principal over the last minutes; refusals by reason)
//! computed from the same records (`live/traffic.rs`).
//!
//! Owns: what is kept in memory for the console and its bounds, the audit [`Filter`]. Fed by
//! [`Audit::emit`] (`telemetry/audit.rs`) with every record, whether or not an audit file is
//! configured: each record costs one JSON value (strings capped as in the file, built before
//! the lock) and one lock, under which it gets its number, joins the ring and the windows and
//! is broadcast, so subscribers and the ring see the records in number order without gaps.
//! Does not own: the record's shape or its sanitising rules (`audit.rs`), rendering
//! (`admin/console/`).
//!
//! [`Audit::emit`]: super::audit::Audit::emit

mod traffic;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::broadcast;

use super::audit::{cap, rfc3339, Record, Tap, MAX_STRING_CHARS};
pub(crate) use traffic::TrafficView;
use traffic::{Sample, Traffic};

/// How many recent records the ring keeps at most.
pub(crate) const RECENT: usize = 1000;
/// How many bytes (estimated, [`weight`]) the ring's records may hold.
pub(crate) const RECENT_BYTES: usize = 2 * 1024 * 1024;
/// How many records a slow subscriber may fall behind before it skips ahead.
const BACKLOG: usize = 256;

/// One record as the console sees it: its place in the feed and the record.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Increases by one per record, from 1.
    pub seq: u64,
    kept: Arc<Kept>,
}

/// A record as taken in, and its JSON once a reader asked for it (built off the request
/// path, once, however many pages show it).
#[derive(Debug)]
struct Kept {
    record: Record,
    /// When it was taken in (the record's `time` when it has none: without an audit file,
    /// nothing formats it on the request path).
    at: time::OffsetDateTime,
    json: OnceLock<Value>,
}

impl Entry {
    #[cfg(test)]
    /// An entry numbered `seq` holding `record`, outside any feed.
    pub(crate) fn of(seq: u64, record: Record) -> Entry {
        Entry {
            seq,
            kept: Arc::new(Kept {
                record,
                at: time::OffsetDateTime::now_utc(),
                json: OnceLock::new(),
            }),
        }
    }

    /// The record.
    pub(crate) fn record(&self) -> &Record {
        &self.kept.record
    }

    /// The record's JSON as the audit file would hold it (strings capped, arguments
    /// redacted, `time` set).
    pub(crate) fn json(&self) -> &Value {
        self.kept.json.get_or_init(|| {
            let mut v = serde_json::to_value(&self.kept.record).unwrap_or(Value::Null);
            if self.kept.record.time.is_empty() {
                v["time"] = Value::String(rfc3339(self.kept.at));
            }
            cap_strings(&mut v);
            v
        })
    }
}

/// Which records the audit page shows: each field given and not empty must equal the
/// record's (`tool`: its `name`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub(crate) struct Filter {
    pub principal: Option<String>,
    pub server: Option<String>,
    pub tool: Option<String>,
    pub outcome: Option<String>,
}

impl Filter {
    /// Whether the record `r` passes (empty fields match everything; a string the audit
    /// file would cap is compared as capped).
    pub(crate) fn matches(&self, r: &Record) -> bool {
        let ok = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| {
                w.is_empty() || w == have || (have.len() > MAX_STRING_CHARS && w == cap(have))
            })
        };
        ok(&self.principal, &r.principal)
            && ok(&self.server, r.server.as_deref().unwrap_or(""))
            && ok(&self.tool, r.name.as_deref().unwrap_or(""))
            && ok(&self.outcome, r.outcome)
    }
}

/// What the lock guards: the last number given, the ring and the windows.
#[derive(Debug, Default)]
struct Inner {
    seq: u64,
    recent: VecDeque<(Entry, usize)>,
    bytes: usize,
    traffic: Traffic,
}

/// The console's live feed (see the module header).
#[derive(Debug)]
pub(crate) struct Live {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Entry>,
    started: Instant,
    /// `started` as Unix milliseconds.
    started_ms: u64,
}

impl Live {
    pub(crate) fn new() -> Arc<Live> {
        let (tx, _) = broadcast::channel(BACKLOG);
        let started_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Arc::new(Live {
            inner: Mutex::new(Inner::default()),
            tx,
            started: Instant::now(),
            started_ms,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes in one record: kept, counted, broadcast. Its JSON is built only when a reader
    /// asks for it ([`Entry::json`]); records pushed out of the ring are freed after the lock.
    fn take(&self, record: Record) {
        let size = weight(&record);
        let kept = Arc::new(Kept {
            record,
            at: time::OffsetDateTime::now_utc(),
            json: OnceLock::new(),
        });
        let now = self.started.elapsed().as_secs();
        let mut gone = Vec::new();
        // One critical section: numbered, kept and broadcast in number order (sending on a
        // broadcast channel does not block).
        let mut inner = self.lock();
        inner.seq += 1;
        let entry = Entry {
            seq: inner.seq,
            kept,
        };
        inner.traffic.add(now, &Sample::of(entry.record()));
        while inner.recent.len() >= RECENT
            || (inner.bytes + size > RECENT_BYTES && !inner.recent.is_empty())
        {
            if let Some((old, b)) = inner.recent.pop_front() {
                inner.bytes -= b;
                gone.push(old);
            }
        }
        inner.bytes += size;
        inner.recent.push_back((entry.clone(), size));
        let _ = self.tx.send(entry);
        drop(inner);
        drop(gone);
    }

    /// The last `limit` kept records that pass `filter`, oldest first.
    pub(crate) fn recent(&self, filter: &Filter, limit: usize) -> Vec<Entry> {
        self.since(filter, 0, limit)
    }

    /// The last `limit` kept records after `after` (a [`Entry::seq`]) that pass `filter`,
    /// oldest first.
    pub(crate) fn since(&self, filter: &Filter, after: u64, limit: usize) -> Vec<Entry> {
        let inner = self.lock();
        let mut out: Vec<Entry> = inner
            .recent
            .iter()
            .rev()
            .map(|(e, _)| e)
            .take_while(|e| e.seq > after)
            .filter(|e| filter.matches(e.record()))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    /// The number of the last record taken in (0 before the first); the ring and the
    /// subscribers already have it.
    pub(crate) fn last_seq(&self) -> u64 {
        self.lock().seq
    }

    /// The traffic windows now.
    pub(crate) fn traffic(&self) -> TrafficView {
        let now = self.started.elapsed().as_secs();
        self.lock().traffic.view(now, self.started_ms)
    }

    /// Each record from now on (a receiver that falls [`BACKLOG`] behind skips ahead).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Entry> {
        self.tx.subscribe()
    }
}

impl Tap for Live {
    fn record(&self, record: Record) {
        self.take(record);
    }
}

/// Caps every string of `v` as the audit file does (only the long ones are rebuilt).
fn cap_strings(v: &mut Value) {
    match v {
        // A string of fewer bytes than the cap has fewer characters.
        Value::String(s) if s.len() > MAX_STRING_CHARS => *s = cap(s),
        Value::Array(items) => items.iter_mut().for_each(cap_strings),
        Value::Object(map) => map.values_mut().for_each(cap_strings),
        _ => {}
    }
}

/// About how many bytes `r` holds in memory (its JSON, once built, about twice that).
fn weight(r: &Record) -> usize {
    const BASE: usize = 512;
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let args = r.args.as_ref().map_or(0, value_weight);
    2 * (BASE
        + r.principal.len()
        + text(&r.key_id)
        + text(&r.client)
        + text(&r.peer)
        + text(&r.session)
        + text(&r.server)
        + text(&r.method)
        + text(&r.id)
        + text(&r.name)
        + text(&r.rule)
        + args)
}

/// About how many bytes `v` holds in memory.
fn value_weight(v: &Value) -> usize {
    const NODE: usize = 32;
    match v {
        Value::String(s) => NODE + s.len(),
        Value::Array(items) => NODE + items.iter().map(value_weight).sum::<usize>(),
        Value::Object(map) => {
            NODE + map
                .iter()
                .map(|(k, v)| NODE + k.len() + value_weight(v))
                .sum::<usize>()
        }
        _ => NODE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(principal: &str, outcome: &'static str) -> Record {
        Record {
            principal: principal.into(),
            outcome,
            method: Some("tools/call".into()),
            name: Some("echo".into()),
            ..Record::default()
        }
    }

    #[test]
    fn live_ring_is_bounded_by_count_and_bytes() {
        let live = Live::new();
        for _ in 0..(RECENT + 5) {
            live.take(record("ann", "ok"));
        }
        let all = live.recent(&Filter::default(), usize::MAX);
        assert_eq!(all.len(), RECENT);
        assert_eq!(all.last().unwrap().seq, (RECENT + 5) as u64);
        assert_eq!(all[0].seq, 6);
        // Long strings are capped, and big records push out old ones by bytes.
        let big = Record {
            rule: Some("x".repeat(10_000)),
            args: Some(serde_json::json!({ "a": "y".repeat(10_000) })),
            ..record("bob", "ok")
        };
        live.take(big);
        let last = live.recent(&Filter::default(), 1).remove(0);
        assert_eq!(last.json()["rule"].as_str().unwrap().chars().count(), 256);
        let inner = live.lock();
        assert!(inner.bytes <= RECENT_BYTES);
        assert_eq!(
            inner.bytes,
            inner.recent.iter().map(|(_, b)| b).sum::<usize>()
        );
    }

    #[test]
    fn live_filter_and_since_pick_the_records_asked_for() {
        let live = Live::new();
        live.take(record("ann", "ok"));
        live.take(record("bob", "denied"));
        live.take(record("ann", "denied"));
        let f = Filter {
            outcome: Some("denied".into()),
            ..Filter::default()
        };
        let seqs = |v: Vec<Entry>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(live.recent(&f, 10)), vec![2, 3]);
        assert_eq!(seqs(live.recent(&f, 1)), vec![3]);
        assert_eq!(seqs(live.since(&Filter::default(), 1, 10)), vec![2, 3]);
        let ann = Filter {
            principal: Some("ann".into()),
            tool: Some("echo".into()),
            ..Filter::default()
        };
        assert_eq!(seqs(live.recent(&ann, 10)), vec![1, 3]);
        let blank = Filter {
            server: Some(String::new()),
            ..Filter::default()
        };
        assert_eq!(live.recent(&blank, 10).len(), 3);
        assert_eq!(live.traffic().principals.len(), 2);
        assert_eq!(live.last_seq(), 3);
    }

    #[test]
    fn live_records_from_many_threads_reach_a_subscriber_in_order_without_gaps() {
        let live = Live::new();
        let mut rx = live.subscribe();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let live = live.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        live.take(record("ann", "ok"));
                    }
                })
            })
            .collect();
        let mut got = Vec::new();
        while got.len() < 200 {
            match rx.try_recv() {
                Ok(e) => got.push(e.seq),
                Err(broadcast::error::TryRecvError::Empty) => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(got, (1..=200).collect::<Vec<u64>>());
        let ring: Vec<u64> = live
            .recent(&Filter::default(), 300)
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(ring, got);
        assert_eq!(live.last_seq(), 200);
    }
}
