//! What the mux keeps for a 2026-07-28 request a legacy child serves (PROTOCOL.md §5.12,
//! server side), and the messages the relay makes for it: the client's declared capabilities,
//! the answers it gave up front (`inputResponses`), the round of input being gathered, its log
//! level, and the final answer's decoration (`resultType`, caching hints on cacheable results,
//! the legacy resource-not-found -32002 made the modern -32602); the `input_required` result
//! of a round and the -32021 answer. How rounds are gathered, parked and resumed at the child
//! is `translate.rs`; sealing `requestState` is the relay's (`relay/legacy.rs`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::audience::{level_of, Level};
use crate::jsonrpc::{Frame, RawId};

/// Seals the `requestState` of a round (the relay's key, bound to the caller and the child).
pub(crate) trait Seal: Send + Sync + std::fmt::Debug {
    /// The state for round `round` of the request the child `pid` knows as `relay_id`.
    fn seal(&self, pid: u32, relay_id: u64, round: u32) -> String;
}

/// Caching hints a translated list result gets (2026-07-28 caching).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CacheHint {
    pub ttl_ms: u64,
    /// `public` only where the answer is the same for everyone.
    pub public: bool,
}

/// Results that carry caching hints (2026-07-28 server/utilities/caching).
const CACHEABLE: [&str; 6] = [
    "server/discover",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// Client capabilities an input request needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Declared {
    pub sampling: bool,
    pub elicitation: bool,
    pub roots: bool,
}

impl Declared {
    /// From `_meta["io.modelcontextprotocol/clientCapabilities"]`.
    pub(crate) fn of(caps: Option<&Value>) -> Declared {
        let has = |k: &str| caps.and_then(|c| c.get(k)).is_some_and(|v| !v.is_null());
        Declared {
            sampling: has("sampling"),
            elicitation: has("elicitation"),
            roots: has("roots"),
        }
    }

    /// The capability `method` needs, when the client did not declare it.
    pub(super) fn missing(self, method: &str) -> Option<&'static str> {
        match method {
            "sampling/createMessage" if !self.sampling => Some("sampling"),
            "elicitation/create" if !self.elicitation => Some("elicitation"),
            "roots/list" if !self.roots => Some("roots"),
            _ => None,
        }
    }
}

/// One child request waiting for the client.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    /// The child's id as text: the key in `inputRequests` / `inputResponses`.
    pub(super) key: String,
    pub(super) id: RawId,
    pub(super) method: String,
    pub(super) params: Option<Box<RawValue>>,
}

impl Input {
    pub(super) fn of(frame: &Frame, id: RawId) -> Input {
        let key = match serde_json::from_str::<String>(id.as_str()) {
            Ok(s) => s,
            Err(_) => id.as_str().to_owned(),
        };
        Input {
            key,
            id,
            method: frame.method().unwrap_or_default().to_owned(),
            params: frame.params::<Box<RawValue>>(),
        }
    }
}

/// The round being gathered.
#[derive(Debug, Default)]
pub(super) struct Round {
    pub(super) number: u32,
    pub(super) inputs: Vec<Input>,
    /// Capabilities the child needed and the client did not declare.
    pub(super) missing: Vec<&'static str>,
    pub(super) gathering: bool,
    pub(super) last: Option<Instant>,
}

/// What the mux keeps for one translated request.
#[derive(Debug)]
pub(crate) struct Translation {
    /// Whose request it is (caps how many of theirs may wait for input on one child).
    pub(super) principal: Box<str>,
    pub(super) method: String,
    pub(super) declared: Declared,
    /// `inputResponses` the client sent with the request, by key.
    pub(super) given: Mutex<Map<String, Value>>,
    pub(super) round: Mutex<Round>,
    pub(super) seal: Arc<dyn Seal>,
    /// How long a parked request waits for the client's retry.
    pub(super) wait: Duration,
    /// The request's `_meta` log level; without one, no log notification reaches it.
    pub(super) log: Option<Level>,
    pub(super) cache: Option<CacheHint>,
}

impl Translation {
    pub(crate) fn new(
        frame: &Frame,
        principal: &str,
        seal: Arc<dyn Seal>,
        wait: Duration,
        cache: Option<CacheHint>,
    ) -> Arc<Translation> {
        #[derive(serde::Deserialize)]
        struct Params {
            #[serde(rename = "inputResponses")]
            input_responses: Option<Value>,
            #[serde(rename = "_meta")]
            meta: Option<Map<String, Value>>,
        }
        let p = frame.params::<Params>();
        let meta = p.as_ref().and_then(|p| p.meta.as_ref());
        let given = match p.as_ref().and_then(|p| p.input_responses.clone()) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let log = meta
            .and_then(|m| m.get("io.modelcontextprotocol/logLevel"))
            .and_then(Value::as_str)
            .and_then(Level::parse);
        Arc::new(Translation {
            principal: principal.into(),
            method: frame.method().unwrap_or_default().to_owned(),
            declared: Declared::of(meta.and_then(|m| m.get(crate::era::CAPS_META_KEY))),
            given: Mutex::new(given),
            round: Mutex::new(Round::default()),
            seal,
            wait,
            log,
            cache,
        })
    }

    pub(super) fn round(&self) -> std::sync::MutexGuard<'_, Round> {
        self.round.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a log notification of the child reaches this request's stream.
    pub(super) fn admits_log(&self, frame: &Frame) -> bool {
        match (self.log, level_of(frame)) {
            (Some(min), Some(level)) => level >= min,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// The final answer as a modern client must see it, with the client's id (at `id_span`)
    /// back: `resultType` and, on cacheable results, caching hints (`public` only when the
    /// answer was not filtered for the caller); the legacy resource-not-found (-32002) becomes
    /// the modern -32602.
    pub(super) fn decorate(
        &self,
        frame: &Frame,
        id_span: std::ops::Range<usize>,
        raw_id: &RawId,
        filtered: bool,
        more: &mut [(std::ops::Range<usize>, String)],
    ) -> Bytes {
        let id = (id_span, raw_id.as_str());
        if frame.is_error() {
            return modern_error(frame.splice(&mut [id]), raw_id);
        }
        let mut edits = vec![id];
        edits.extend(more.iter().map(|(r, t)| (r.clone(), t.as_str())));
        // Every 2026-07-28 result says what it is.
        let mut fields = String::from(r#""resultType":"complete""#);
        if let Some(hint) = self
            .cache
            .filter(|_| CACHEABLE.contains(&self.method.as_str()))
        {
            let scope = if hint.public && !filtered {
                "public"
            } else {
                "private"
            };
            fields.push_str(&format!(
                r#","ttlMs":{},"cacheScope":"{scope}""#,
                hint.ttl_ms
            ));
        }
        let insert = result_insert(frame, &fields);
        if let Some((at, text)) = &insert {
            edits.push((*at..*at, text.as_str()));
        }
        frame.splice(&mut edits)
    }
}

/// Where and what to insert so the result object starts with `fields` (`"a":1,"b":2`),
/// unless it says its type already.
fn result_insert(frame: &Frame, fields: &str) -> Option<(usize, String)> {
    let result = frame.result()?;
    if result.contains("\"resultType\"") || !result.starts_with('{') {
        return None;
    }
    let bytes = frame.bytes();
    let at = (result.as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)? + 1;
    if at > bytes.len() || bytes.get(at - 1) != Some(&b'{') {
        return None;
    }
    let empty = result[1..].trim_start().starts_with('}');
    Some((
        at,
        if empty {
            fields.to_owned()
        } else {
            format!("{fields},")
        },
    ))
}

/// The legacy resource-not-found code the 2026-07-28 era no longer allows, made -32602
/// (the client's id is put back exactly as it sent it).
fn modern_error(bytes: Bytes, raw_id: &RawId) -> Bytes {
    if crate::jsonrpc::error_code(&bytes) != Some(-32002) {
        return bytes;
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
        return bytes;
    };
    if let Some(e) = v.get_mut("error").and_then(Value::as_object_mut) {
        e.insert("code".into(), Value::from(-32602));
    }
    let Ok(out) = serde_json::to_vec(&v) else {
        return bytes;
    };
    match Frame::parse_upstream(Bytes::from(out)) {
        Ok(f) => match f.id_span() {
            Some(span) => f.splice(&mut [(span, raw_id.as_str())]),
            None => f.bytes().clone(),
        },
        Err(_) => bytes,
    }
}

/// The -32021 answer naming the capabilities the child needed.
pub(super) fn missing_capability(raw_id: &RawId, missing: &[&str]) -> Bytes {
    let caps: Map<String, Value> = missing
        .iter()
        .map(|c| ((*c).to_owned(), Value::Object(Map::new())))
        .collect();
    let data = serde_json::json!({ "requiredCapabilities": caps });
    crate::jsonrpc::error_response(
        Some(raw_id.as_str()),
        -32021,
        "Missing required client capability",
        &data,
    )
}

/// The `InputRequiredResult` of one round.
pub(super) fn input_required(raw_id: &RawId, inputs: &[Input], state: &str) -> Bytes {
    let mut requests = String::from("{");
    for (n, i) in inputs.iter().enumerate() {
        if n > 0 {
            requests.push(',');
        }
        let key = Value::from(i.key.as_str());
        let method = Value::from(i.method.as_str());
        match &i.params {
            Some(p) => requests.push_str(&format!(
                r#"{key}:{{"method":{method},"params":{}}}"#,
                p.get()
            )),
            None => requests.push_str(&format!(r#"{key}:{{"method":{method}}}"#)),
        }
    }
    requests.push('}');
    let state = Value::from(state);
    format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{"resultType":"input_required","inputRequests":{requests},"requestState":{state}}}}}"#,
        raw_id.as_str()
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_capabilities_gate_inputs() {
        let d = Declared::of(Some(&serde_json::json!({"sampling": {}})));
        assert_eq!(d.missing("sampling/createMessage"), None);
        assert_eq!(d.missing("elicitation/create"), Some("elicitation"));
        assert_eq!(d.missing("roots/list"), Some("roots"));
        assert_eq!(
            Declared::of(None).missing("sampling/createMessage"),
            Some("sampling")
        );
    }

    #[test]
    fn input_required_keys_are_child_ids() {
        let f = Frame::parse_upstream(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":"user_name","method":"elicitation/create","params":{"message":"Name?"}}"#,
        ))
        .unwrap();
        let n = Frame::parse_upstream(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":7,"method":"roots/list"}"#,
        ))
        .unwrap();
        let inputs = [
            Input::of(&f, f.id().unwrap()),
            Input::of(&n, n.id().unwrap()),
        ];
        let out = input_required(&RawId::from_u64(3), &inputs, "st");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], 3);
        assert_eq!(v["result"]["resultType"], "input_required");
        assert_eq!(
            v["result"]["inputRequests"]["user_name"]["params"]["message"],
            "Name?"
        );
        assert_eq!(v["result"]["inputRequests"]["7"]["method"], "roots/list");
        assert_eq!(v["result"]["requestState"], "st");
    }

    #[test]
    fn hints_are_spliced_into_the_result() {
        let splice = |line: &'static [u8]| {
            let f = Frame::parse_upstream(Bytes::from_static(line)).unwrap();
            let (at, text) = result_insert(&f, r#""resultType":"complete""#).unwrap();
            let span = f.id_span().unwrap();
            f.splice(&mut [(span, "\"a\""), (at..at, text.as_str())])
        };
        assert_eq!(
            &splice(br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#)[..],
            br#"{"jsonrpc":"2.0","id":"a","result":{"resultType":"complete","tools":[]}}"#
        );
        assert_eq!(
            &splice(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#)[..],
            br#"{"jsonrpc":"2.0","id":"a","result":{"resultType":"complete"}}"#
        );
    }

    #[test]
    fn legacy_not_found_becomes_invalid_params() {
        let b = Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"nf","data":{"uri":"x://y"}}}"#,
        );
        let v: Value = serde_json::from_slice(&modern_error(b, &RawId::from_u64(1))).unwrap();
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(v["error"]["data"]["uri"], "x://y");
    }
}
