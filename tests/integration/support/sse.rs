//! A legacy HTTP+SSE connection (2024-11-05, PROTOCOL.md §3): `GET /sse`, the `endpoint` event
//! it announces, and `POST /message?sessionId=` for each message; answers arrive as `message`
//! events. The shared message handling is `conn::Conn`.

use std::collections::VecDeque;
use std::pin::Pin;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use super::conn::Conn;
use super::{patience, Relay};

type Events = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>;

/// One legacy connection: its GET stream and the endpoint it announced.
pub struct Legacy {
    pub http: reqwest::Client,
    /// The announced `POST` URL (`…/message?sessionId=…`).
    pub endpoint: String,
    events: Events,
    /// Messages read while waiting for another one.
    pub backlog: VecDeque<Value>,
    /// Headers sent with every POST (e.g. an identity header).
    extra: Vec<(String, String)>,
}

impl Legacy {
    pub async fn open(relay: &Relay) -> Legacy {
        Legacy::open_with(relay, &[]).await
    }

    /// Opens `GET /sse` with `headers` and reads the `endpoint` event.
    pub async fn open_with(relay: &Relay, headers: &[(&str, &str)]) -> Legacy {
        Legacy::open_at(relay, "", headers).await
    }

    /// Opens `GET MOUNT/sse` (a named server's `/servers/NAME`, or `""`) and reads the
    /// `endpoint` event, which must name `MOUNT/message`.
    pub async fn open_at(relay: &Relay, mount: &str, headers: &[(&str, &str)]) -> Legacy {
        let http = reqwest::Client::new();
        let mut b = http
            .get(format!("{}{mount}/sse", relay.base))
            .header("accept", "text/event-stream");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let res = b.send().await.unwrap();
        assert_eq!(res.status(), 200);
        let h = res.headers();
        assert_eq!(h["content-type"], "text/event-stream");
        assert_eq!(h["cache-control"], "no-cache");
        assert_eq!(h["x-accel-buffering"], "no");
        let mut events: Events = Box::pin(res.bytes_stream().eventsource());
        let first = tokio::time::timeout(patience(), events.next())
            .await
            .expect("endpoint event timeout")
            .expect("stream ended")
            .expect("sse error");
        assert_eq!(first.event, "endpoint");
        let id = first
            .data
            .strip_prefix(&format!("{mount}/message?sessionId="))
            .unwrap_or_else(|| panic!("endpoint data: {}", first.data));
        // 32 hex digits, after the owner tag (`node.epoch.`) when the relay is a fleet node.
        let random = match id.split('.').collect::<Vec<_>>()[..] {
            [random] => random,
            [node, epoch, random] => {
                assert!(!node.is_empty(), "{id}");
                assert!(epoch.len() == 8 && epoch.bytes().all(|b| b.is_ascii_hexdigit()));
                random
            }
            _ => panic!("session id: {id}"),
        };
        assert_eq!(random.len(), 32, "{id}");
        assert!(random.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        Legacy {
            http,
            endpoint: format!("{}{}", relay.base, first.data),
            events,
            backlog: VecDeque::new(),
            extra: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// A POST of `body` to `url` with `content_type` and the extra headers; the status.
    pub async fn post_to(&self, url: &str, content_type: &str, body: String) -> u16 {
        let mut b = self
            .http
            .post(url)
            .header("content-type", content_type)
            .body(body);
        for (k, v) in &self.extra {
            b = b.header(k, v);
        }
        b.send().await.unwrap().status().as_u16()
    }
}

impl Conn for Legacy {
    /// POSTs `body` to the endpoint; it must be accepted (202).
    async fn send_raw(&mut self, body: &str) {
        let status = self
            .post_to(&self.endpoint, "application/json", body.to_owned())
            .await;
        assert_eq!(status, 202, "POST {body}");
    }

    /// The next `message` event as JSON; `None` when the stream ended.
    async fn read(&mut self) -> Option<Value> {
        let ev = self.events.next().await?.ok()?;
        assert_eq!(ev.event, "message", "{ev:?}");
        Some(serde_json::from_str(&ev.data).unwrap())
    }

    fn backlog(&mut self) -> &mut VecDeque<Value> {
        &mut self.backlog
    }
}
