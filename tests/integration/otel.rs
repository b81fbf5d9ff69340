//! OpenTelemetry trace export (`--otlp-endpoint`): a stand-in OTLP/HTTP collector in the test
//! receives one SERVER span per request with the MCP attributes, children of the client's
//! `traceparent` (HTTP header or `params._meta`), errors marked; the child's stdin gets the
//! frame unmodified; spans are flushed on SIGTERM; without the flag nothing is exported; a dead
//! collector does not slow calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message;
use serde_json::json;

use crate::support::{eventually, read_reply, tempdir, text_of, Relay, FIXTURE};

const VERSION: &str = "2025-11-25";
const TRACE_H: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_H: &str = "00f067aa0ba902b7";
const TRACE_M: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_M: &str = "b7ad6b7169203331";

/// A received span, flattened.
#[derive(Debug, Clone)]
struct Got {
    name: String,
    kind: i32,
    trace: String,
    parent: String,
    status: i32,
    attrs: HashMap<String, String>,
    service: String,
}

/// The stand-in collector: `POST /v1/traces` bodies (protobuf), and connections accepted.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Got>>>,
    connections: Arc<AtomicUsize>,
}

impl Collector {
    async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let spans = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (sink, count) = (spans.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let sink = sink.clone();
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let sink = sink.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let body = req.into_body().collect().await?.to_bytes();
                            if path == "/v1/traces" {
                                sink.lock().unwrap().extend(decode(&body));
                            }
                            Ok::<_, hyper::Error>(hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::new(),
                            )))
                        }
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(sock), svc),
                );
            }
        });
        Collector {
            url,
            spans,
            connections,
        }
    }

    fn spans(&self) -> Vec<Got> {
        self.spans.lock().unwrap().clone()
    }

    fn named(&self, name: &str) -> Got {
        let all = self.spans();
        all.iter()
            .find(|s| s.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no span {name}: {all:#?}"))
    }
}

fn decode(body: &[u8]) -> Vec<Got> {
    let req = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .map(|r| attrs(&r.attributes))
            .and_then(|a| a.get("service.name").cloned())
            .unwrap_or_default();
        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
            out.push(Got {
                name: span.name,
                kind: span.kind,
                trace: hex(&span.trace_id),
                parent: hex(&span.parent_span_id),
                status: span.status.map_or(0, |s| s.code),
                attrs: attrs(&span.attributes),
                service: service.clone(),
            });
        }
    }
    out
}

fn attrs(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Any::StringValue(s)) => s.clone(),
                Some(Any::IntValue(i)) => i.to_string(),
                Some(Any::BoolValue(b)) => b.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The relay with `--otlp-endpoint` (when given), a short batch delay, and a recording child.
fn relay(endpoint: Option<&str>, delay_ms: &str) -> (Relay, std::path::PathBuf) {
    let record = tempdir().join("stdin.log");
    let path = record.to_str().unwrap().to_owned();
    let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
    if let Some(e) = endpoint {
        args.extend(["--otlp-endpoint", e]);
    }
    args.extend(["--", FIXTURE, "--record", path.as_str()]);
    let env = [
        ("OTEL_BSP_SCHEDULE_DELAY", delay_ms),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
    ];
    (Relay::start_env(&args, &env), record)
}

#[tokio::test]
async fn otel_request_spans_carry_mcp_attributes_and_the_clients_trace() {
    let collector = Collector::start().await;
    let (relay, record) = relay(Some(&collector.url), "50");
    let mut client = relay.client();
    client.initialize(VERSION).await;
    let session = client.session.clone().unwrap();

    // traceparent as an HTTP header.
    let res = client
        .post_builder()
        .header("traceparent", format!("00-{TRACE_H}-{PARENT_H}-01"))
        .body(
            json!({"jsonrpc":"2.0","id":"h-1","method":"tools/call",
                "params":{"name":"echo","arguments":{"text":"hi"}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(text_of(&read_reply(res).await.messages()[0]), "hi");
    // traceparent in params._meta: the child must get these bytes as sent.
    let params = format!(
        r#"{{"name":"echo","arguments":{{"text":"meta"}},"_meta":{{"traceparent":"00-{TRACE_M}-{PARENT_M}-01"}}}}"#
    );
    let body = format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{params}}}"#);
    let reply = client.post_raw(body).await;
    assert_eq!(text_of(&reply.messages()[0]), "meta");
    let unknown = client.call(json!(8), "no-such-tool", json!({})).await;
    let code = unknown.messages()[0]["error"]["code"].as_i64().unwrap();

    eventually("four request spans exported", || {
        collector.spans().len() >= 4
    })
    .await;
    let init = collector.named("initialize");
    assert_eq!(init.kind, 2, "SERVER");
    assert_eq!(init.service, "mcp-relay");
    assert_eq!(init.attrs["mcp.method.name"], "initialize");
    assert_eq!(init.attrs["mcp.protocol.version"], VERSION);
    assert_eq!(init.attrs["jsonrpc.request.id"], "0");
    assert_eq!(init.attrs["network.transport"], "tcp");
    assert_eq!(init.attrs["network.protocol.name"], "http");
    assert_eq!(init.attrs["client.address"], "127.0.0.1");
    assert!(!init.attrs.contains_key("enduser.id"), "anonymous");
    assert!(init.parent.is_empty(), "no traceparent: a root span");

    let spans = collector.spans();
    let echoes: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "tools/call echo")
        .collect();
    assert_eq!(echoes.len(), 2, "{spans:#?}");
    let by_header = echoes.iter().find(|s| s.trace == TRACE_H).expect("header");
    assert_eq!(by_header.parent, PARENT_H);
    assert_eq!(by_header.kind, 2);
    assert_eq!(by_header.status, 1, "ok");
    assert_eq!(by_header.attrs["gen_ai.tool.name"], "echo");
    assert_eq!(by_header.attrs["gen_ai.operation.name"], "execute_tool");
    assert_eq!(by_header.attrs["jsonrpc.request.id"], "h-1");
    assert_eq!(by_header.attrs["mcp.session.id"], session);
    assert_eq!(by_header.attrs["mcp.protocol.version"], VERSION);
    assert!(!by_header.attrs.contains_key("error.type"));
    let by_meta = echoes.iter().find(|s| s.trace == TRACE_M).expect("_meta");
    assert_eq!(by_meta.parent, PARENT_M);
    assert_eq!(by_meta.attrs["jsonrpc.request.id"], "7");
    // No argument ever becomes an attribute.
    assert!(spans
        .iter()
        .all(|s| s.attrs.values().all(|v| !v.contains("meta") && v != "hi")));

    let err = collector.named("tools/call no-such-tool");
    assert_eq!(err.status, 2, "error status");
    assert_eq!(err.attrs["rpc.jsonrpc.error_code"], code.to_string());
    assert_eq!(err.attrs["error.type"], code.to_string());

    // Transparent: the child got the `_meta` call's params byte for byte, and nothing added.
    let seen = std::fs::read_to_string(&record).unwrap();
    assert!(seen.contains(&params), "{seen}");
    assert_eq!(seen.matches("traceparent").count(), 1, "{seen}");
}

// Multi-threaded: `terminate` blocks this thread while the collector must keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_spans_are_flushed_on_sigterm() {
    let collector = Collector::start().await;
    // A batch delay far longer than the test: only the shutdown flush can export.
    let (mut relay, _) = relay(Some(&collector.url), "600000");
    let mut client = relay.client();
    client.initialize(VERSION).await;
    client.call(json!(1), "echo", json!({"text": "x"})).await;
    assert_eq!(relay.terminate(), Some(0));
    let names: Vec<_> = collector.spans().into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"tools/call echo".to_owned()), "{names:?}");
    assert!(names.contains(&"initialize".to_owned()), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_without_the_flag_exports_nothing() {
    let collector = Collector::start().await;
    let (mut relay, _) = relay(None, "10");
    let mut client = relay.client();
    client.initialize(VERSION).await;
    client.call(json!(1), "echo", json!({"text": "x"})).await;
    assert_eq!(relay.terminate(), Some(0));
    assert_eq!(collector.connections.load(Ordering::SeqCst), 0);
    let logs = relay.final_logs();
    assert!(!logs.contains("exporting traces"), "{logs}");
}

#[tokio::test]
async fn otel_dead_collector_does_not_delay_calls() {
    // A port that was just free: connections are refused.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let (relay, _) = relay(Some(&dead), "10");
    let mut client = relay.client();
    client.initialize(VERSION).await;
    for i in 0..5 {
        let started = Instant::now();
        let reply = client.call(json!(i), "echo", json!({"text": "x"})).await;
        assert_eq!(text_of(&reply.messages()[0]), "x");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "call {i} slowed"
        );
    }
    eventually("export failure warned", || {
        relay.logs().contains("trace export failed")
    })
    .await;
    // Rate-limited: further failed batches do not repeat the warning at once.
    for i in 5..8 {
        client.call(json!(i), "echo", json!({"text": "x"})).await;
    }
    assert_eq!(relay.logs().matches("trace export failed").count(), 1);
}

#[tokio::test]
async fn otel_denied_call_has_an_error_span_with_the_principal() {
    const VAR: &str = "RELAY_OTEL_SECRET";
    const SECRET: &str = "yvt8PUkvbU5oLw6rO9n7eg9fh6ozwHXpHQgF4VUXN2Y";
    const RESOURCE: &str = "http://relay.test/mcp";
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/permissions.json");
    let collector = Collector::start().await;
    let record = tempdir().join("stdin.log");
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--resource",
        RESOURCE,
        "--jwt-secret",
        &format!("env:{VAR}"),
        "--roles",
        seed,
        "--otlp-endpoint",
        &collector.url,
        "--",
        FIXTURE,
        "--record",
        record.to_str().unwrap(),
    ];
    let env = [(VAR, SECRET), ("OTEL_BSP_SCHEDULE_DELAY", "50")];
    let relay = Relay::start_env(&args, &env);
    let token = crate::support::mint_jwt(VAR, SECRET, "alice", "user", RESOURCE);
    let mut client = relay.client();
    client
        .extra
        .push(("authorization".into(), format!("Bearer {token}")));
    client.initialize(VERSION).await;
    let denied = client.call(json!(3), "delete_all", json!({})).await;
    let code = denied.messages()[0]["error"]["code"].as_i64().unwrap();

    eventually("the denied call's span", || {
        collector
            .spans()
            .iter()
            .any(|s| s.name == "tools/call delete_all")
    })
    .await;
    let span = collector.named("tools/call delete_all");
    assert_eq!(span.status, 2, "error status");
    assert_eq!(span.attrs["rpc.jsonrpc.error_code"], code.to_string());
    assert!(!span.attrs["error.type"].is_empty());
    assert_eq!(span.attrs["enduser.id"], "alice");
    assert_eq!(collector.named("initialize").attrs["enduser.id"], "alice");
    assert!(span.attrs.values().all(|v| !v.contains(&token)));
    let seen = std::fs::read_to_string(&record).unwrap_or_default();
    assert!(
        !seen.contains("delete_all"),
        "a denied call never reaches the child"
    );
}

#[tokio::test]
async fn otel_collector_that_never_answers_does_not_delay_calls() {
    // Accepts connections and reads nothing back: every export hangs until its timeout.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", hole.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            held.push(s);
        }
    });
    let (relay, _) = relay(Some(&url), "10");
    let mut client = relay.client();
    client.initialize(VERSION).await;
    for i in 0..10 {
        let started = Instant::now();
        let reply = client.call(json!(i), "echo", json!({"text": "x"})).await;
        assert_eq!(text_of(&reply.messages()[0]), "x");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "call {i} waited for the exporter"
        );
    }
    eventually("an export reached the collector", || {
        accepted.load(std::sync::atomic::Ordering::Relaxed) > 0
    })
    .await;
    holder.abort();
}
