//! Reading what an HTTP upstream answers: a POST's answer (JSON, or an SSE stream resumed
//! with GET + `Last-Event-ID` when the server closes it early), and the standalone GET
//! stream, reopened while the link lives. SSE parsing is `http/events.rs` (linear, bounded):
//! an event over the cap is dropped and the stream goes on ([`Events`]). The driver is in `http.rs`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::{Response, StatusCode};
use tracing::{debug, warn};

use super::events::{Event, Parser};
use super::link::{body, is_sse, media_type, Link};
use super::{Done, Error, Pending, DEFAULT_RETRY, MAX_RESUMES, MAX_RETRY, MIN_RETRY};

/// Reads the answer to a POSTed request: JSON, an SSE stream (resumed if cut), or a refusal.
pub(super) async fn answer(
    link: Arc<Link>,
    res: Response,
    mut pending: Pending,
) -> Result<Done, Error> {
    let status = res.status();
    link.check(status)?;
    if !status.is_success() {
        link.refused(&res);
    }
    if status.is_success() && is_sse(&res) {
        return stream(&link, res, pending).await;
    }
    if media_type(&res).is_some_and(|m| m.eq_ignore_ascii_case("application/json")) {
        match body(res, link.max_message).await {
            Ok(data) => {
                if !link.deliver_all(data, &mut pending).await {
                    return Ok(Done::Task);
                }
            }
            Err(Error::TooLarge) => {
                warn!(upstream = %link.name, "upstream answer over the size cap dropped");
            }
            Err(e) => return Err(e),
        }
    }
    // 202 to a request: its answer may come on the GET stream.
    if status != StatusCode::ACCEPTED {
        link.lost(&mut pending).await;
    }
    Ok(Done::Task)
}

/// Reads a POST's SSE stream until every pending request is answered, resuming with GET +
/// `Last-Event-ID` when the server closes it early.
pub(super) async fn stream(
    link: &Link,
    res: Response,
    mut pending: Pending,
) -> Result<Done, Error> {
    let mut events = Events::new(res, link.max_message);
    let mut last_id: Option<String> = None;
    let mut retry = DEFAULT_RETRY;
    let mut idle = 0u32;
    loop {
        while let Some(ev) = events.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(Error::TooLarge) => {
                    warn!(upstream = %link.name, "upstream message over the size cap; answer dropped");
                    link.lost(&mut pending).await;
                    return Ok(Done::Task);
                }
                Err(e) => {
                    debug!(upstream = %link.name, error = %e, "upstream answer stream broke");
                    break;
                }
            };
            idle = 0;
            note(&ev, &mut last_id, &mut retry);
            if !ev.data.is_empty() && !link.deliver_all(Bytes::from(ev.data), &mut pending).await {
                return Ok(Done::Task);
            }
            if pending.ids.is_empty() {
                return Ok(Done::Task);
            }
        }
        let Some(id) = last_id.as_deref().filter(|_| idle < MAX_RESUMES) else {
            debug!(upstream = %link.name, "upstream answer stream ended early");
            link.lost(&mut pending).await;
            return Ok(Done::Task);
        };
        tokio::time::sleep(backoff(retry, idle)).await;
        idle += 1;
        debug!(upstream = %link.name, "resuming upstream answer stream");
        let res = link.get(Some(id)).await.map_err(Error::network)?;
        link.check(res.status())?;
        if !res.status().is_success() || !is_sse(&res) {
            debug!(upstream = %link.name, status = res.status().as_u16(), "upstream refused to resume a stream");
            link.lost(&mut pending).await;
            return Ok(Done::Task);
        }
        events = Events::new(res, link.max_message);
    }
}

/// The standalone GET stream: server→client requests and notifications, reopened (resuming
/// where it stopped) while the link lives.
/// `opened` is told once the first GET has its answer (whatever it is), so the driver can hold
/// the next POST until the server can reach the client on this stream.
pub(super) async fn listen(
    link: Arc<Link>,
    opened: tokio::sync::oneshot::Sender<()>,
) -> Result<Done, Error> {
    let mut last_id: Option<String> = None;
    let mut retry = DEFAULT_RETRY;
    let mut idle = 0u32;
    let mut opened = Some(opened);
    let mut warned = false;
    loop {
        let res = link.get(last_id.as_deref()).await;
        if let Some(tx) = opened.take() {
            let _ = tx.send(());
        }
        let res = res.map_err(Error::network)?;
        let status = res.status();
        link.check(status)?;
        if status == StatusCode::METHOD_NOT_ALLOWED {
            debug!(upstream = %link.name, "upstream offers no standalone stream");
            return Ok(Done::Task);
        }
        if !status.is_success() || !is_sse(&res) {
            warn!(upstream = %link.name, status = status.as_u16(), "upstream refused the standalone stream");
            return Ok(Done::Task);
        }
        let mut events = Events::new(res, link.max_message);
        let mut any = false;
        while let Some(ev) = events.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(Error::TooLarge) => {
                    oversize(&link, &mut warned);
                    continue;
                }
                Err(e) => {
                    debug!(upstream = %link.name, error = %e, "upstream standalone stream broke");
                    break;
                }
            };
            any = true;
            note(&ev, &mut last_id, &mut retry);
            if !ev.data.is_empty()
                && !link
                    .deliver_all(Bytes::from(ev.data), &mut Pending::default())
                    .await
            {
                return Ok(Done::Task);
            }
        }
        idle = if any { 0 } else { idle.saturating_add(1) };
        tokio::time::sleep(backoff(retry, idle)).await;
    }
}

/// An event over the size cap was dropped from a stream that goes on: said once per link
/// task at warn, then at debug.
pub(super) fn oversize(link: &Link, warned: &mut bool) {
    if std::mem::replace(warned, true) {
        debug!(upstream = %link.name, "upstream event over the size cap dropped");
    } else {
        warn!(upstream = %link.name, max = link.max_message, "upstream event over the size cap dropped; the stream goes on");
    }
}

/// Remembers an event's id and `retry` hint.
pub(super) fn note(ev: &Event, last_id: &mut Option<String>, retry: &mut Duration) {
    if !ev.id.is_empty() {
        *last_id = Some(ev.id.clone());
    }
    if let Some(r) = ev.retry {
        *retry = r;
    }
}

/// The server's `retry`, doubled per reconnection that brought nothing, within bounds.
pub(super) fn backoff(retry: Duration, idle: u32) -> Duration {
    retry
        .saturating_mul(1 << idle.min(10))
        .clamp(MIN_RETRY, MAX_RETRY)
}

// === impl Events ===

type Chunks = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// An SSE body read through the linear parser (`http/events.rs`): no event or line over
/// `max_message` (plus room for its framing) is buffered.
pub(super) struct Events {
    body: Option<Chunks>,
    parser: Parser,
}

impl Events {
    pub(super) fn new(res: Response, max_message: usize) -> Events {
        // Room for the `data:`/`id:` framing around the biggest message.
        let limit = max_message.saturating_add(4096);
        Events {
            body: Some(Box::pin(res.bytes_stream())),
            parser: Parser::new(limit),
        }
    }

    /// The next event; `Err(TooLarge)` once for each event dropped over the cap (the stream
    /// goes on after it: the caller decides whether that ends its work).
    pub(super) async fn next(&mut self) -> Option<Result<Event, Error>> {
        loop {
            if self.parser.take_dropped() > 0 {
                return Some(Err(Error::TooLarge));
            }
            if let Some(ev) = self.parser.pop() {
                return Some(Ok(ev));
            }
            match self.body.as_mut()?.next().await {
                Some(Ok(chunk)) => self.parser.push(&chunk),
                Some(Err(e)) => {
                    self.body = None;
                    return Some(Err(Error::network(e)));
                }
                None => {
                    self.body = None;
                    return None;
                }
            }
        }
    }
}
