//! The HTTP floor: a bare Streamable HTTP responder with no child, run as a separate process
//! (the bench binary re-executed with `MCP_BENCH_FLOOR_HTTP=ADDR`). It uses the relay's own
//! stack (tokio + axum/hyper), parses each body as JSON and answers `initialize`, notifications
//! (202), `tools/call` `echo` (`application/json`) and `DELETE`: what any MCP-over-HTTP server
//! must at least do.

use anyhow::{Context as _, Result};
use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The env var that turns the bench binary into the floor server listening on its value.
pub(crate) const ROLE_ENV: &str = "MCP_BENCH_FLOOR_HTTP";

#[derive(Deserialize)]
struct Req<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    method: &'a str,
    #[serde(borrow)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow)]
    arguments: Option<Args<'a>>,
    #[serde(rename = "protocolVersion")]
    protocol_version: Option<&'a str>,
}

#[derive(Deserialize)]
struct Args<'a> {
    text: Option<std::borrow::Cow<'a, str>>,
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn handle(body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Req<'_>>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Some(id) = req.id else {
        return StatusCode::ACCEPTED.into_response();
    };
    let id = id.get();
    match req.method {
        "initialize" => {
            let v = req
                .params
                .as_ref()
                .and_then(|p| p.protocol_version)
                .unwrap_or("2025-06-18");
            let v = serde_json::Value::from(v);
            let mut r = json(format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"protocolVersion":{v},"capabilities":{{"tools":{{}}}},"serverInfo":{{"name":"floor-http","version":"1"}}}}}}"#
            ));
            r.headers_mut()
                .insert("mcp-session-id", header::HeaderValue::from_static("floor"));
            r
        }
        "tools/call" => {
            let text = req
                .params
                .and_then(|p| p.arguments)
                .and_then(|a| a.text)
                .unwrap_or_default();
            let text = serde_json::Value::from(text.as_ref());
            json(format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":{text}}}]}}}}"#
            ))
        }
        _ => json(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#)),
    }
}

/// Serves until killed.
pub(crate) fn serve(listen: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .context("bind")?;
        let app = Router::new().route("/mcp", post(handle).delete(|| async { StatusCode::OK }));
        axum::serve(listener, app).await.context("serve")
    })
}
