//! What the main HTTP listener serves, and `GET /` saying so.
//!
//! [`Endpoints`] is the one account of the paths on the listener (the MCP path, `/ws`, the
//! legacy `/sse` and `/message` when not taken, the probes unless `--admin-listen` moved
//! them, and `/` itself unless another route has it): `app` logs it at startup, and `GET /`
//! answers it, as JSON when the client's `Accept` names `application/json`, as a short text
//! page otherwise. `/` sits behind the same guard as every route (Host, Origin, IP rules,
//! authentication), names only paths and the version, never the wrapped command. A `--path`
//! or `--ws-path` of `/` wins over the page.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::ServeConfig;
use crate::error::{Allow, Error};

/// The path of the page.
pub(crate) const INDEX_PATH: &str = "/";
const PROBES: [&str; 2] = ["/health", "/ready"];

/// The paths served on the main HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoints {
    /// Streamable HTTP (`--path`).
    pub mcp: String,
    /// The WebSocket upgrade (`--ws-path`).
    pub websocket: String,
    /// Legacy SSE: the stream, when its path is free.
    pub sse: Option<&'static str>,
    /// Legacy SSE: where messages are posted, when its path is free.
    pub sse_message: Option<&'static str>,
    /// `/health` and `/ready` here (false when the admin listener serves them).
    pub probes: bool,
    /// `GET /` (false when `/` is the MCP or WebSocket path).
    pub index: bool,
    /// Named servers (`/servers/NAME/mcp`) and tool subsets (`/endpoints/NAME/mcp`); the
    /// main path is then their aggregate.
    pub servers: Vec<String>,
    pub subsets: Vec<String>,
}

impl Endpoints {
    pub(crate) fn of(cfg: &ServeConfig) -> Endpoints {
        let [sse, sse_message] = super::sse::served(cfg);
        Endpoints {
            mcp: cfg.path.clone(),
            websocket: cfg.ws_path.clone(),
            sse,
            sse_message,
            probes: cfg.admin.is_none(),
            index: cfg.path != INDEX_PATH && cfg.ws_path != INDEX_PATH,
            servers: cfg.servers.iter().map(|s| s.name.clone()).collect(),
            subsets: cfg.endpoints.iter().map(|e| e.name.clone()).collect(),
        }
    }

    /// The JSON form of the page.
    fn json(&self) -> serde_json::Value {
        let mut endpoints = json!({ "streamable_http": self.mcp, "websocket": self.websocket });
        if let Some(p) = self.sse {
            endpoints["sse"] = json!(p);
        }
        if let Some(p) = self.sse_message {
            endpoints["sse_message"] = json!(p);
        }
        if self.probes {
            endpoints["health"] = json!(PROBES[0]);
            endpoints["ready"] = json!(PROBES[1]);
        }
        for (key, mount, names) in self.mounts() {
            if !names.is_empty() {
                let paths = names
                    .iter()
                    .map(|n| (n.clone(), json!(format!("{mount}/{n}/mcp"))));
                endpoints[key] = paths.collect::<serde_json::Map<_, _>>().into();
            }
        }
        json!({
            "name": "mcp-relay",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A Model Context Protocol (MCP) server on the network: connect an MCP client to the streamable_http path.",
            "endpoints": endpoints,
        })
    }

    /// The text form of the page.
    fn text(&self) -> String {
        let mut t = format!(
            "mcp-relay {}: a Model Context Protocol (MCP) server on the network.\n\n\
             Connect an MCP client to this host at:\n  {:<17}{} (POST, GET, DELETE)\n  {:<17}{} (subprotocol mcp)\n",
            env!("CARGO_PKG_VERSION"),
            "Streamable HTTP",
            self.mcp,
            "WebSocket",
            self.websocket,
        );
        if let Some(p) = self.sse {
            let message = self
                .sse_message
                .map(|m| format!(", POST {m}"))
                .unwrap_or_default();
            t.push_str(&format!("  {:<17}GET {p}{message}\n", "legacy SSE"));
        }
        for (key, mount, names) in self.mounts() {
            if !names.is_empty() {
                t.push_str(&format!(
                    "{}:\n",
                    if key == "servers" {
                        "Servers (aggregated on the paths above)"
                    } else {
                        "Tool subsets"
                    }
                ));
                for n in names {
                    t.push_str(&format!("  {n:<17}{mount}/{n}/mcp\n"));
                }
            }
        }
        if self.probes {
            t.push_str(&format!("Probes: {}, {}\n", PROBES[0], PROBES[1]));
        }
        t
    }

    /// The named servers and subsets with their mounts.
    fn mounts(&self) -> [(&'static str, &'static str, &[String]); 2] {
        use crate::config::servers::{ENDPOINTS_MOUNT, SERVERS_MOUNT};
        [
            ("servers", SERVERS_MOUNT, &self.servers),
            ("subsets", ENDPOINTS_MOUNT, &self.subsets),
        ]
    }
}

/// `GET /`: the endpoints, as JSON or text by `Accept`.
pub(super) fn page(endpoints: &Endpoints, headers: &HeaderMap) -> Response {
    let mut res = if wants_json(headers) {
        axum::Json(endpoints.json()).into_response()
    } else {
        endpoints.text().into_response()
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Any other method on `/`: 405 through the one error map, allowing what `/` serves.
pub(super) async fn not_allowed() -> Response {
    Error::MethodNotAllowed(Allow::GetHead).into_response()
}

/// Whether `Accept` names `application/json` itself (`*/*` gets the text page).
fn wants_json(headers: &HeaderMap) -> bool {
    super::http::accepted_types(headers).any(|t| t.eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Endpoints {
        Endpoints {
            mcp: "/mcp".into(),
            websocket: "/ws".into(),
            sse: Some("/sse"),
            sse_message: Some("/message"),
            probes: true,
            index: true,
            servers: Vec::new(),
            subsets: Vec::new(),
        }
    }

    #[test]
    fn page_is_json_only_when_accept_names_json() {
        for (accept, json) in [
            ("application/json", true),
            ("text/html, application/json;q=0.9", true),
            ("*/*", false),
            ("text/html,*/*;q=0.8", false),
            ("", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            assert_eq!(wants_json(&h), json, "{accept}");
        }
    }

    #[test]
    fn page_names_every_endpoint_and_nothing_else() {
        let e = endpoints();
        let j = e.json();
        assert_eq!(j["endpoints"]["streamable_http"], "/mcp");
        assert_eq!(j["endpoints"]["sse_message"], "/message");
        assert_eq!(j["endpoints"]["ready"], "/ready");
        let text = e.text();
        for p in ["/mcp", "/ws", "GET /sse, POST /message", "/health"] {
            assert!(text.contains(p), "{p} in {text}");
        }
        let without = Endpoints {
            probes: false,
            sse: None,
            sse_message: None,
            ..e
        };
        assert!(without.json()["endpoints"].get("health").is_none());
        assert!(!without.text().contains("/sse"));
    }

    #[test]
    fn page_names_each_server_and_subset() {
        let e = Endpoints {
            servers: vec!["github".into(), "fs".into()],
            subsets: vec!["support".into()],
            ..endpoints()
        };
        let j = e.json();
        assert_eq!(j["endpoints"]["servers"]["github"], "/servers/github/mcp");
        assert_eq!(
            j["endpoints"]["subsets"]["support"],
            "/endpoints/support/mcp"
        );
        let text = e.text();
        for p in ["/servers/fs/mcp", "/endpoints/support/mcp"] {
            assert!(text.contains(p), "{p} in {text}");
        }
        assert!(endpoints().json()["endpoints"].get("servers").is_none());
    }
}
