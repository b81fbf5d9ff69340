//! One request's OpenTelemetry span (see `telemetry/otel.rs` for the exporter): its name and
//! MCP semantic-convention attributes, its parent (`params._meta.traceparent`, else the HTTP
//! `traceparent` header captured by [`propagate`]), and its end with the request's outcome.
//! `ticket.rs` owns the lifecycle: start with the ticket, end when it drops.

use std::time::SystemTime;

use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags,
    TraceId, TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue};

use super::TRACER;
use crate::caller::{Caller, Transport};
use crate::error::Error as RelayError;
use crate::jsonrpc::Frame;

tokio::task_local! {
    static INCOMING: Incoming;
}

/// What the HTTP request carrying the messages said about tracing.
#[derive(Debug, Clone, Default)]
struct Incoming {
    parent: Option<SpanContext>,
    version: Option<Box<str>>,
}

/// Axum layer (added only when tracing is on): the `traceparent` and `MCP-Protocol-Version`
/// headers of the HTTP request, for the spans of the messages it carries.
pub(crate) async fn propagate(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let incoming = Incoming::of(req.headers());
    INCOMING.scope(incoming, next.run(req)).await
}

impl Incoming {
    fn of(headers: &axum::http::HeaderMap) -> Incoming {
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        Incoming {
            parent: header("traceparent").and_then(parse_traceparent),
            version: header("mcp-protocol-version")
                .filter(|v| v.len() <= 32)
                .map(Into::into),
        }
    }
}

/// One request's span, built and exported when the request ends.
#[derive(Debug)]
pub(crate) struct RequestSpan {
    name: String,
    start: SystemTime,
    parent: Option<SpanContext>,
    attributes: Vec<KeyValue>,
    /// The answer's JSON-RPC error code; `Some(None)` once answered without error.
    answer: Option<Option<i64>>,
}

impl RequestSpan {
    /// None unless tracing is on. `server`: the named server the request is for.
    pub(crate) fn start(
        caller: &Caller,
        server: Option<&str>,
        session: Option<&str>,
        frame: &Frame,
    ) -> Option<RequestSpan> {
        TRACER.get()?;
        let meta = Meta::of(frame);
        let incoming = INCOMING.try_with(Incoming::clone).unwrap_or_default();
        let method = frame.method().unwrap_or("unknown");
        let mut attributes = vec![KeyValue::new("mcp.method.name", method.to_owned())];
        if let Some(s) = server {
            attributes.push(KeyValue::new("mcp.server.name", s.to_owned()));
        }
        let target = match method {
            "tools/call" | "prompts/get" => frame.name(),
            _ => None,
        };
        let name = match target {
            Some(t) => format!("{method} {t}"),
            None => method.to_owned(),
        };
        match (method, frame.name(), frame.uri()) {
            ("tools/call", Some(t), _) => attributes.extend([
                KeyValue::new("gen_ai.tool.name", t.to_owned()),
                KeyValue::new("gen_ai.operation.name", "execute_tool"),
            ]),
            ("prompts/get", Some(p), _) => {
                attributes.push(KeyValue::new("gen_ai.prompt.name", p.to_owned()));
            }
            (_, _, Some(uri)) => attributes.push(KeyValue::new("mcp.resource.uri", uri.to_owned())),
            _ => {}
        }
        if let Some(id) = frame.id() {
            let id = id.as_str();
            let id = id
                .strip_prefix('"')
                .and_then(|i| i.strip_suffix('"'))
                .unwrap_or(id);
            attributes.push(KeyValue::new("jsonrpc.request.id", id.to_owned()));
        }
        if let Some(s) = session {
            attributes.push(KeyValue::new("mcp.session.id", s.to_owned()));
        }
        if let Some(v) = meta.version.or(incoming.version.map(String::from)) {
            attributes.push(KeyValue::new("mcp.protocol.version", v));
        }
        attributes.extend(network(caller));
        if !caller.principal.name.is_empty() {
            attributes.push(KeyValue::new("enduser.id", caller.principal.name.clone()));
        }
        Some(RequestSpan {
            name,
            start: SystemTime::now(),
            parent: meta.parent.or(incoming.parent),
            attributes,
            answer: None,
        })
    }

    /// Notes the answer (`code`: its JSON-RPC error code, if it is an error).
    pub(crate) fn answered(&mut self, code: Option<i64>) {
        self.answer = Some(code);
    }

    /// Ends and exports the span: ok, a JSON-RPC error, or cancelled (never answered).
    pub(crate) fn end(self) {
        let (code, kind) = match self.answer {
            Some(None) => (None, None),
            Some(Some(code)) => (Some(code), Some(code.to_string())),
            None => (None, Some("cancelled".to_owned())),
        };
        self.finish(code, kind);
    }

    /// A request the relay refused itself (denied, malformed, over a cap): a span at once.
    pub(crate) fn refused(
        caller: &Caller,
        server: Option<&str>,
        session: Option<&str>,
        frame: &Frame,
        error: &RelayError,
    ) {
        if let Some(span) = RequestSpan::start(caller, server, session, frame) {
            let w = error.wire();
            span.finish(Some(w.code), Some(w.reason.to_owned()));
        }
    }

    fn finish(mut self, code: Option<i64>, error_type: Option<String>) {
        let Some(tracer) = TRACER.get() else { return };
        let status = match &error_type {
            Some(t) => {
                self.attributes.push(KeyValue::new("error.type", t.clone()));
                Status::error(t.clone())
            }
            None => Status::Ok,
        };
        if let Some(c) = code {
            self.attributes
                .push(KeyValue::new("rpc.jsonrpc.error_code", c));
        }
        let cx = match self.parent {
            Some(p) => Context::new().with_remote_span_context(p),
            None => Context::new(),
        };
        let end = SystemTime::now();
        let builder = SpanBuilder::from_name(self.name)
            .with_kind(SpanKind::Server)
            .with_start_time(self.start)
            .with_attributes(self.attributes);
        let mut span = tracer.build_with_context(builder, &cx);
        span.set_status(status);
        span.end_with_timestamp(end);
    }
}

/// `network.*` and `client.*` attributes of the caller's front.
fn network(caller: &Caller) -> Vec<KeyValue> {
    let (transport, protocol) = match caller.transport {
        Transport::StreamableHttp | Transport::Sse => ("tcp", Some("http")),
        Transport::Websocket => ("tcp", Some("websocket")),
        Transport::Tcp => ("tcp", None),
        Transport::Stdio => ("pipe", None),
        Transport::Aggregate => ("inproc", None),
    };
    let mut out = vec![KeyValue::new("network.transport", transport)];
    if let Some(p) = protocol {
        out.push(KeyValue::new("network.protocol.name", p));
    }
    if let Some(peer) = caller.peer {
        out.push(KeyValue::new("client.address", peer.ip.to_string()));
        if let Some(port) = peer.port {
            out.push(KeyValue::new("client.port", i64::from(port)));
        }
        if let Some(via) = peer.via {
            out.push(KeyValue::new("network.peer.address", via.ip().to_string()));
            out.push(KeyValue::new("network.peer.port", i64::from(via.port())));
        }
    }
    out
}

/// What the message itself says: `params._meta.traceparent`, and the version an
/// `initialize` asks for.
#[derive(Debug, Default)]
struct Meta {
    parent: Option<SpanContext>,
    version: Option<String>,
}

impl Meta {
    fn of(frame: &Frame) -> Meta {
        #[derive(serde::Deserialize)]
        struct Params<'a> {
            #[serde(rename = "_meta", borrow)]
            meta: Option<MetaField<'a>>,
            #[serde(rename = "protocolVersion")]
            version: Option<&'a str>,
        }
        #[derive(serde::Deserialize)]
        struct MetaField<'a> {
            traceparent: Option<&'a str>,
        }
        let Some(params) = frame.params::<Params<'_>>() else {
            return Meta::default();
        };
        Meta {
            parent: params
                .meta
                .and_then(|m| m.traceparent)
                .and_then(parse_traceparent),
            version: params
                .version
                .filter(|v| frame.method() == Some("initialize") && v.len() <= 32)
                .map(str::to_owned),
        }
    }
}

/// A W3C `traceparent` (`00-<trace id>-<span id>-<flags>`), as a remote parent.
fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    if !hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok()?;
    let span = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let cx = SpanContext::new(
        trace,
        span,
        TraceFlags::new(flags & 1),
        true,
        TraceState::default(),
    );
    cx.is_valid().then_some(cx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_valid_and_invalid_forms() {
        let ok = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let cx = parse_traceparent(ok).unwrap();
        assert_eq!(
            cx.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(cx.span_id().to_string(), "b7ad6b7169203331");
        assert!(cx.is_sampled() && cx.is_remote());
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }
}
