//! The legacy HTTP+SSE (2024-11-05) side of an HTTP upstream, used when the server refused
//! the Streamable HTTP `initialize` (PROTOCOL.md §3, client fallback).
//!
//! GET the configured URL (or, failing that, the URL with its last path segment replaced by
//! `sse`), wait for the `endpoint` event and resolve its data against the stream's URL (same
//! origin only: the endpoint receives every message, credentials included). Every message is
//! then POSTed there in order, and everything the server says arrives as `message` events on
//! the GET stream, whose end is the end of the session and of the link. The Streamable HTTP
//! side and the shared plumbing are in `http.rs`.

use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use tracing::debug;

use super::link::{is_sse, Link};
use super::stream::Events;
use super::{Done, Error, Pending, CONNECT_TIMEOUT, SEND_TIMEOUT};
use crate::jsonrpc::{Frame, Kind};

/// Opens the legacy stream: its POST endpoint and the events after `endpoint`.
pub(super) async fn open(link: &Link) -> Result<(Url, Events), Error> {
    let mut last = Error::NoEndpoint;
    for url in candidates(&link.url) {
        match tokio::time::timeout(CONNECT_TIMEOUT, try_open(link, &url)).await {
            Ok(Ok(opened)) => return Ok(opened),
            Ok(Err(e)) => {
                debug!(upstream = %link.name, error = %e, "legacy sse stream not opened");
                last = e;
            }
            Err(_) => last = Error::Timeout,
        }
    }
    Err(last)
}

/// The configured URL, then the same with its last path segment replaced by `sse`.
pub(super) fn candidates(url: &Url) -> Vec<Url> {
    let mut out = vec![url.clone()];
    let mut sibling = url.clone();
    if let Ok(mut segments) = sibling.path_segments_mut() {
        segments.pop().push("sse");
    }
    if sibling != *url {
        out.push(sibling);
    }
    out
}

async fn try_open(link: &Link, url: &Url) -> Result<(Url, Events), Error> {
    let res = link
        .send_renewing(|| {
            link.authorized(Method::GET, url)
                .header(ACCEPT, super::EVENT_STREAM)
        })
        .await
        .map_err(Error::network)?;
    if !res.status().is_success() {
        return Err(Error::Status(res.status()));
    }
    if !is_sse(&res) {
        return Err(Error::NotSse);
    }
    let mut events = Events::new(res, link.max_message);
    let data = loop {
        match events.next().await {
            Some(Ok(ev)) if ev.event == "endpoint" => break ev.data,
            // Nothing was sent yet, so nothing else can be meant for this link.
            Some(Ok(_)) => {}
            Some(Err(Error::TooLarge)) => {}
            Some(Err(e)) => return Err(e),
            None => return Err(Error::NoEndpoint),
        }
    };
    Ok((endpoint(url, &data)?, events))
}

/// The POST URL named by an `endpoint` event, resolved against the stream's URL.
pub(super) fn endpoint(stream_url: &Url, data: &str) -> Result<Url, Error> {
    let url = stream_url
        .join(data.trim())
        .map_err(|_| Error::BadEndpoint)?;
    if url.origin() != stream_url.origin() {
        return Err(Error::BadEndpoint);
    }
    Ok(url)
}

/// Reads the stream: each `message` event is one message (or batch) for the relay. The
/// server closing it ends the link; a broken stream fails it.
pub(super) async fn read(link: Arc<Link>, mut events: Events) -> Result<Done, Error> {
    let mut warned = false;
    while let Some(ev) = events.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(Error::TooLarge) => {
                super::stream::oversize(&link, &mut warned);
                continue;
            }
            Err(e) => return Err(e),
        };
        if ev.event != "message" || ev.data.is_empty() {
            continue;
        }
        if !link
            .deliver_all(Bytes::from(ev.data), &mut Pending::default())
            .await
        {
            break;
        }
    }
    Ok(Done::Closed)
}

/// POSTs one message to the endpoint and waits for it to be accepted (the answer comes on
/// the stream). 404: the server forgot the connection, the session is gone.
pub(super) async fn post(
    link: &Link,
    endpoint: &Url,
    msg: Bytes,
    frame: Option<&Frame>,
) -> Result<(), Error> {
    let send = link.send_renewing(|| {
        link.authorized(Method::POST, endpoint)
            .header(CONTENT_TYPE, "application/json")
            .body(msg.clone())
    });
    let res = tokio::time::timeout(SEND_TIMEOUT, send)
        .await
        .map_err(|_| Error::Timeout)?
        .map_err(Error::network)?;
    let status = res.status();
    if status == StatusCode::NOT_FOUND {
        return Err(Error::SessionGone);
    }
    if !status.is_success() {
        link.refused(&res);
        if let Some(f) = frame.filter(|f| f.kind() == Kind::Request) {
            let mut pending = Pending {
                ids: f.id().into_iter().collect(),
                init: false,
            };
            link.lost(&mut pending).await;
        }
    }
    Ok(())
}
