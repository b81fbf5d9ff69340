//! Reading what an HTTP upstream answers: a POST's answer (JSON, or an SSE stream resumed
//! with GET + `Last-Event-ID` when the server closes it early), and the standalone GET
//! stream, reopened while the link lives. SSE parsing is `eventsource-stream`'s, with a cap
//! on what one event may buffer ([`Events`]). The driver is in `http.rs`.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use reqwest::{Response, StatusCode};
use tracing::{debug, warn};

use super::link::{body, is_sse, media_type, Link};
use super::{BodyError, Done, Error, Pending, DEFAULT_RETRY, MAX_RESUMES, MAX_RETRY, MIN_RETRY};

/// Reads the answer to a POSTed request: JSON, an SSE stream (resumed if cut), or a refusal.
pub(super) async fn answer(
    link: Arc<Link>,
    res: Response,
    mut pending: Pending,
) -> Result<Done, Error> {
    let status = res.status();
    link.check(status)?;
    if !status.is_success() {
        warn!(upstream = %link.name, status = status.as_u16(), "upstream refused a request");
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
                Err(Error::TooLarge) => return Err(Error::TooLarge),
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

type EventItems = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<BodyError>>> + Send>>;

/// An SSE body parsed by `eventsource-stream`, with a cap on the bytes buffered towards one
/// event (a server cannot make the relay buffer without bound).
pub(super) struct Events {
    inner: EventItems,
    buffered: Arc<AtomicUsize>,
}

impl Events {
    pub(super) fn new(res: Response, max_message: usize) -> Events {
        let buffered = Arc::new(AtomicUsize::new(0));
        let count = buffered.clone();
        // Room for the `data:`/`id:` framing around the biggest message.
        let limit = max_message.saturating_add(4096);
        let chunks = res.bytes_stream().map(move |chunk| {
            let chunk = chunk.map_err(|e| BodyError::Network(e.without_url()))?;
            let total = count.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len();
            if total > limit {
                return Err(BodyError::TooLarge);
            }
            Ok(chunk)
        });
        Events {
            inner: Box::pin(chunks.eventsource()),
            buffered,
        }
    }

    pub(super) async fn next(&mut self) -> Option<Result<Event, Error>> {
        let item = self.inner.next().await?;
        self.buffered.store(0, Ordering::Relaxed);
        Some(item.map_err(|e| match e {
            EventStreamError::Transport(BodyError::TooLarge) => Error::TooLarge,
            EventStreamError::Transport(BodyError::Network(e)) => Error::network(e),
            EventStreamError::Utf8(_) | EventStreamError::Parser(_) => Error::Sse,
        }))
    }
}
