//! The aggregate's `initialize` answer, merged from its servers' answers.
//!
//! - `protocolVersion`: the client's when every server that answered accepted it; otherwise
//!   the oldest version any server answered (versions are dates, so the oldest is the one
//!   every server can be spoken to in, as far as MCP's compatibility goes); the client's when
//!   no server answered.
//! - `capabilities`: `tools`, `prompts` and `resources` always, each with
//!   `listChanged: true` (the aggregate's lists change whenever a server comes, goes or
//!   changes, whatever each server declares), `resources.subscribe` when any server offers
//!   it; `logging` and `completions` when any server offers them. Other capabilities
//!   (`experimental`, tasks) are not merged: the aggregate routes no method of theirs.
//! - `serverInfo`: `{"name": "mcp-relay", "version": <relay version>}`.
//! - `instructions`: one paragraph per server that answered, in server order: how its
//!   names appear, then its own instructions.

use serde_json::{json, Map, Value};

use super::names::Naming;
use crate::config::servers::Prefix;

/// What a server answered to `initialize`, as far as the merge needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct ServerInit {
    pub version: String,
    pub capabilities: Map<String, Value>,
    pub instructions: Option<String>,
}

impl ServerInit {
    /// Reads a server's `InitializeResult` (raw JSON); `None` when it is not one.
    pub(super) fn read(result: &str) -> Option<ServerInit> {
        let v: Value = serde_json::from_str(result).ok()?;
        Some(ServerInit {
            version: v.get("protocolVersion")?.as_str()?.to_owned(),
            capabilities: v
                .get("capabilities")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            instructions: v
                .get("instructions")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// Whether the server declared the capability `name` (`tools`, `logging`...).
    pub(super) fn offers(&self, name: &str) -> bool {
        self.capabilities.get(name).is_some_and(|c| !c.is_null())
    }

    fn subscribes(&self) -> bool {
        self.capabilities
            .get("resources")
            .and_then(|r| r.get("subscribe"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// The merged `InitializeResult` (JSON text) for a client that asked `requested`, from the
/// servers that answered (name, answer; in server order).
pub(super) fn merge(
    requested: Option<&str>,
    servers: &[(&str, &ServerInit)],
    naming: &Naming,
) -> String {
    let version = version(requested, servers.iter().map(|(_, s)| s.version.as_str()));
    let any = |cap: &str| servers.iter().any(|(_, s)| s.offers(cap));
    let mut caps = Map::new();
    caps.insert("tools".into(), json!({ "listChanged": true }));
    caps.insert("prompts".into(), json!({ "listChanged": true }));
    let subscribe = servers.iter().any(|(_, s)| s.subscribes());
    caps.insert(
        "resources".into(),
        json!({ "listChanged": true, "subscribe": subscribe }),
    );
    for cap in ["logging", "completions"] {
        if any(cap) {
            caps.insert(cap.into(), json!({}));
        }
    }
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": caps,
        "serverInfo": { "name": "mcp-relay", "version": env!("CARGO_PKG_VERSION") },
    });
    let paragraphs: Vec<String> = servers
        .iter()
        .map(|(name, s)| paragraph(name, s, naming))
        .collect();
    if !paragraphs.is_empty() {
        result["instructions"] = paragraphs.join("\n\n").into();
    }
    result.to_string()
}

/// The newest legacy version, answered when neither the client nor a server named one.
const LATEST: &str = crate::era::LEGACY_VERSIONS[crate::era::LEGACY_VERSIONS.len() - 1];

fn version<'a>(
    requested: Option<&'a str>,
    answered: impl Iterator<Item = &'a str> + Clone,
) -> &'a str {
    let all_agree = requested.is_some_and(|r| answered.clone().all(|v| v == r));
    match (all_agree, requested, answered.min()) {
        (true, Some(r), _) | (false, Some(r), None) => r,
        (_, _, Some(oldest)) => oldest,
        (_, None, None) => LATEST,
    }
}

fn paragraph(name: &str, s: &ServerInit, naming: &Naming) -> String {
    let head = match naming.prefix {
        Prefix::Always => format!(
            "Tools and prompts of {name} are prefixed `{name}{}`.",
            naming.separator
        ),
        Prefix::Never => format!("Server {name}."),
    };
    match s
        .instructions
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
    {
        Some(own) => format!("{head} {own}"),
        None => head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(version: &str, caps: Value, instructions: Option<&str>) -> ServerInit {
        let mut r = json!({ "protocolVersion": version, "capabilities": caps, "serverInfo": {"name":"x","version":"1"} });
        if let Some(i) = instructions {
            r["instructions"] = i.into();
        }
        ServerInit::read(&r.to_string()).unwrap()
    }

    #[test]
    fn merged_answer_unites_capabilities_and_names_each_server() {
        let a = init(
            "2025-11-25",
            json!({"tools":{"listChanged":true},"logging":{}}),
            Some("Use echo."),
        );
        let b = init(
            "2025-11-25",
            json!({"resources":{"subscribe":true},"prompts":{}}),
            None,
        );
        let naming = Naming {
            separator: "__".into(),
            prefix: Prefix::Always,
        };
        let v: Value =
            serde_json::from_str(&merge(Some("2025-11-25"), &[("a", &a), ("b", &b)], &naming))
                .unwrap();
        assert_eq!(v["protocolVersion"], "2025-11-25");
        assert_eq!(v["serverInfo"]["name"], "mcp-relay");
        assert_eq!(v["capabilities"]["tools"]["listChanged"], true);
        assert_eq!(v["capabilities"]["resources"]["subscribe"], true);
        assert_eq!(v["capabilities"]["logging"], json!({}));
        assert!(v["capabilities"].get("completions").is_none());
        assert_eq!(
            v["instructions"],
            "Tools and prompts of a are prefixed `a__`. Use echo.\n\nTools and prompts of b are prefixed `b__`."
        );
    }

    #[test]
    fn version_is_the_clients_only_when_every_server_agrees() {
        let v = |req: Option<&'static str>, ans: &[&'static str]| version(req, ans.iter().copied());
        assert_eq!(
            v(Some("2025-11-25"), &["2025-11-25", "2025-11-25"]),
            "2025-11-25"
        );
        assert_eq!(
            v(Some("2025-11-25"), &["2025-11-25", "2025-06-18"]),
            "2025-06-18"
        );
        assert_eq!(v(Some("2025-11-25"), &[]), "2025-11-25");
        assert_eq!(v(None, &["2025-03-26"]), "2025-03-26");
        assert!(ServerInit::read(r#"{"capabilities":{}}"#).is_none());
    }
}
