//! `GET /ui/events?view=VIEW`: the live stream a page's script redraws from (SSE). For
//! `servers`, `sessions` and `traffic`, a `snapshot` event with the view's JSON at once and
//! then every second; for `audit`, `audit` events carrying the new records (`[{seq, record}]`,
//! the event's id the last `seq`) that pass the page's filters (`principal`, `server`, `tool`,
//! `outcome`), starting after `after=SEQ` or the `Last-Event-ID` a reconnecting browser sends.
//!
//! Owns: the stream's pacing and its bounds: at most [`MAX_STREAMS`] at once (503 beyond), a
//! reader that falls behind the audit feed skips ahead, each stream ends after [`MAX_AGE`]
//! (the browser reconnects). Does not own: the documents it sends (`events.rs`'s views), the
//! records (`telemetry/live.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::{json, Value};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, MissedTickBehavior};

use super::events::{filter_of, view};
use super::pages::Filters;
use super::Deps;
use crate::telemetry::live::{Entry, Filter};

/// At most this many streams at once, over every view and operator.
pub(crate) const MAX_STREAMS: usize = 32;
/// A stream ends after this long; the browser's `EventSource` opens a new one.
const MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// How often a snapshot is sent.
const PERIOD: Duration = Duration::from_secs(1);
/// At most this many records per `audit` event (more wait for the next event).
const BATCH: usize = 64;
/// At most this many kept records are sent when a stream starts.
const BACKLOG: usize = 200;

/// The views a stream can follow.
const VIEWS: [&str; 4] = ["servers", "sessions", "traffic", "audit"];

/// Streams open now.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// A place among the [`MAX_STREAMS`], given back when the stream is dropped.
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        OPEN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_STREAMS).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `GET /ui/events?view=VIEW`.
pub(crate) async fn events(
    State(deps): State<Deps>,
    headers: HeaderMap,
    Query(q): Query<Filters>,
) -> Response {
    let name = q.get("view").cloned().unwrap_or_default();
    if !VIEWS.contains(&name.as_str()) {
        return (StatusCode::NOT_FOUND, "unknown view\n").into_response();
    }
    let audit = name == "audit";
    let Some(slot) = Slot::take() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
            "too many console streams\n",
        )
            .into_response();
    };
    let deadline = Instant::now() + MAX_AGE;
    let events = if audit {
        let after = last_event_id(&headers).or_else(|| q.get("after")?.parse().ok());
        audit_events(&deps, filter_of(&q), after).boxed()
    } else {
        snapshots(deps, name, q).boxed()
    };
    let body = events
        .take_until(tokio::time::sleep_until(deadline))
        // The slot is held for as long as the body is alive.
        .map(move |e| {
            let _ = &slot;
            Ok::<_, std::convert::Infallible>(e)
        });
    Sse::new(body)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The `Last-Event-ID` of a reconnecting browser: the last record it has.
fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers.get("last-event-id")?.to_str().ok()?.parse().ok()
}

/// A `snapshot` event with the view `name` now, then every [`PERIOD`].
fn snapshots(deps: Deps, name: String, q: Filters) -> impl Stream<Item = Event> + Send {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    stream::unfold(
        (deps, name, q, tick),
        |(deps, name, q, mut tick)| async move {
            tick.tick().await;
            let doc = view(&deps, &name, &q)?;
            let event = Event::default().event("snapshot").json_data(doc).ok()?;
            Some((event, (deps, name, q, tick)))
        },
    )
}

/// The feed of new records for the audit view.
struct Feed {
    rx: broadcast::Receiver<Entry>,
    filter: Filter,
    /// The last record sent (or skipped as already shown).
    after: u64,
    /// Records kept before the stream started, still to send (oldest first).
    backlog: Vec<Entry>,
}

/// `audit` events: the kept records after `after` (at most [`BACKLOG`]), then each new one.
fn audit_events(
    deps: &Deps,
    filter: Filter,
    after: Option<u64>,
) -> impl Stream<Item = Event> + Send {
    // Subscribed before the kept records are read, so none falls between the two.
    let rx = deps.live.subscribe();
    let after = resume_point(after, deps.live.last_seq());
    let backlog = deps.live.since(&filter, after, BACKLOG);
    let feed = Feed {
        rx,
        filter,
        after,
        backlog,
    };
    stream::unfold(feed, |mut feed| async move {
        let batch = feed.next_batch().await?;
        let last = batch.last().map_or(feed.after, |e| e.seq);
        let records: Vec<Value> = batch
            .iter()
            .map(|e| json!({ "seq": e.seq, "record": e.json() }))
            .collect();
        let event = Event::default()
            .event("audit")
            .id(last.to_string())
            .json_data(records)
            .ok()?;
        Some((event, feed))
    })
}

/// Where the audit feed resumes: after `after` when given, else after the last record
/// (`last`). Numbers start at 1 in each process, so an `after` beyond `last` comes from
/// before a restart: the feed then resumes from the start of this process's records.
fn resume_point(after: Option<u64>, last: u64) -> u64 {
    match after {
        Some(after) if after > last => 0,
        Some(after) => after,
        None => last,
    }
}

impl Feed {
    /// The next records to send (at least one), or `None` when the feed is closed.
    async fn next_batch(&mut self) -> Option<Vec<Entry>> {
        if !self.backlog.is_empty() {
            let n = self.backlog.len().min(BATCH);
            let batch: Vec<Entry> = self.backlog.drain(..n).collect();
            self.after = batch.last().map_or(self.after, |e| e.seq);
            return Some(batch);
        }
        let mut batch = Vec::new();
        while batch.is_empty() {
            let first = self.rx.recv().await;
            self.push(first, &mut batch)?;
            while batch.len() < BATCH {
                match self.rx.try_recv() {
                    Ok(e) => self.push(Ok(e), &mut batch)?,
                    Err(_) => break,
                }
            }
        }
        Some(batch)
    }

    /// Adds a received record to `batch` when it is new and passes the filters; `None` when
    /// the feed is closed. A lagging reader skips what it missed.
    fn push(&mut self, got: Result<Entry, RecvError>, batch: &mut Vec<Entry>) -> Option<()> {
        match got {
            Ok(e) if e.seq > self.after => {
                self.after = e.seq;
                if self.filter.matches(e.record()) {
                    batch.push(e);
                }
                Some(())
            }
            Ok(_) | Err(RecvError::Lagged(_)) => Some(()),
            Err(RecvError::Closed) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_stop_at_the_cap_and_come_back_when_dropped() {
        let before = OPEN.load(Ordering::Acquire);
        let held: Vec<Slot> = std::iter::from_fn(Slot::take)
            .take(MAX_STREAMS + 1)
            .collect();
        assert_eq!(held.len(), MAX_STREAMS - before);
        assert!(Slot::take().is_none());
        drop(held);
        assert!(Slot::take().is_some());
    }

    #[test]
    fn a_resume_point_from_before_a_restart_starts_over() {
        assert_eq!(resume_point(Some(52_000), 7), 0);
        assert_eq!(resume_point(Some(5), 7), 5);
        assert_eq!(resume_point(Some(7), 7), 7);
        assert_eq!(resume_point(None, 7), 7);
    }
}
