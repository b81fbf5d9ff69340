//! What every HTTP front shares: the header and path names, reading a capped body, reading
//! `Content-Type` and `Accept`, an SSE response, and the caller the guard put in the request.
//! No routing and no policy: the router is `listener.rs`, the checks `guard.rs` → `policy.rs`.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt;

use crate::caller::Caller;
use crate::error::Error;

// Header names are looked up on every request: as `HeaderName`s they are not parsed and
// lowercased again at each lookup, as a `&str` name is.
pub(super) static SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
pub(super) static VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub(super) static LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
/// Legacy HTTP+SSE (2024-11-05): the stream and the path its messages are posted to.
pub(super) const SSE_PATH: &str = "/sse";
pub(super) const MESSAGE_PATH: &str = "/message";

/// The caller the guard established (always present behind it).
pub(super) fn caller_of(extensions: &axum::http::Extensions) -> Result<Caller, Error> {
    extensions.get::<Caller>().cloned().ok_or(Error::Internal)
}

/// An SSE response around `body`: the media type, no caching, and no proxy buffering.
pub(super) fn sse_response(body: Body) -> Response {
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

/// Reads the body up to `limit` bytes: 413 as soon as it is known to be larger.
pub(super) async fn read_body(
    mut body: Body,
    headers: &HeaderMap,
    limit: u64,
    idle: std::time::Duration,
) -> Result<Bytes, Error> {
    let declared = header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        linger(body).await;
        return Err(Error::BodyTooLarge(limit));
    }
    let mut buf = bytes::BytesMut::new();
    // A client that stops sending its body mid-way (slow body) is cut off after `idle`.
    while let Some(frame) = tokio::time::timeout(idle, body.frame())
        .await
        .map_err(|_| Error::BodyTimeout)?
    {
        let Ok(data) = frame.map_err(|_| Error::Parse)?.into_data() else {
            continue;
        };
        if (buf.len() + data.len()) as u64 > limit {
            linger(body).await;
            return Err(Error::BodyTooLarge(limit));
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

/// Discards a little more of a refused body (at most 64 KiB, 1 s) so a client still sending
/// it reads our 413 instead of a connection reset. Nothing is kept.
async fn linger(mut body: Body) {
    const MAX: usize = 64 * 1024;
    let drain = async {
        let mut seen = 0;
        while seen < MAX {
            match body.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, Bytes::len),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
}

pub(super) fn header_str(
    headers: &HeaderMap,
    name: impl axum::http::header::AsHeaderName,
) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn media_type_is(headers: &HeaderMap, want: &str) -> bool {
    header_str(headers, header::CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(want))
}

/// The media types `Accept` lists, parameters (`;q=…`) dropped.
pub(super) fn accepted_types(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|item| item.split(';').next().unwrap_or("").trim())
}

/// True when `Accept` lists `want` (or a wildcard covering it).
pub(super) fn accepts(headers: &HeaderMap, want: &str) -> bool {
    let family = want.split('/').next().unwrap_or("");
    accepted_types(headers).any(|t| {
        t.eq_ignore_ascii_case(want)
            || t == "*/*"
            || t.strip_suffix("/*")
                .is_some_and(|f| f.eq_ignore_ascii_case(family))
    })
}
