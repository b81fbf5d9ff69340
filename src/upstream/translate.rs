//! A 2026-07-28 request served by a legacy child (PROTOCOL.md §5.12, server side): what the
//! mux keeps for it and how the child's own requests become rounds of input.
//!
//! While it serves a translated request, a legacy child may ask the client for input
//! (`sampling/createMessage`, `elicitation/create`, `roots/list`) the way legacy servers do:
//! with requests of its own. Each one the request claims (PROTOCOL.md §5.4) is offered to its
//! [`Translation`]: an input the client did not declare in its `_meta` is refused to the child
//! at once, as a client without the capability would; one the client already answered in the
//! request's `inputResponses` is answered from there; the others gather into a round. Child
//! requests written together arrive together, so a round closes after a short quiet spell
//! ([`GATHER_QUIET`]). Closing it ends the client's HTTP response with an `input_required`
//! result (the keys of `inputRequests` are the child's request ids, the `requestState` is the
//! relay's [`Seal`]) and parks the child's request: it stays in flight at the child, which
//! still waits for its answers, until the client's retry resumes it ([`Upstream::resume`]) or
//! the input wait runs out (the child's requests then get -31008 and its call is cancelled).
//! A round whose every input needs a capability the client did not declare ends the request
//! with -32021 instead, naming them, and the child's call is cancelled.
//!
//! Also here: the final answer's decoration (caching hints on list results, the legacy
//! resource-not-found -32002 turned into the modern -32602) and the per-request log level.
//! Sealing and opening `requestState`, and choosing the child, are the relay's
//! (`relay/legacy.rs`); the mux and the routing are `mux.rs` and `route.rs`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tracing::debug;

use super::audience::{level_of, Level};
use super::mux::{Pending, Target};
use super::Upstream;
use crate::error::Error;
use crate::jsonrpc::{Frame, RawId};
use crate::session::stream::Stream;
use crate::ticket::Ticket;

/// How long a round waits for more child requests after the last one.
const GATHER_QUIET: Duration = Duration::from_millis(15);
/// The longest a round gathers, however chatty the child.
const GATHER_MAX: Duration = Duration::from_millis(200);

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
    fn missing(self, method: &str) -> Option<&'static str> {
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
    key: String,
    id: RawId,
    method: String,
    params: Option<Box<RawValue>>,
}

impl Input {
    fn of(frame: &Frame, id: RawId) -> Input {
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
struct Round {
    number: u32,
    inputs: Vec<Input>,
    /// Capabilities the child needed and the client did not declare.
    missing: Vec<&'static str>,
    gathering: bool,
    last: Option<Instant>,
}

/// What the mux keeps for one translated request.
#[derive(Debug)]
pub(crate) struct Translation {
    method: String,
    declared: Declared,
    /// `inputResponses` the client sent with the request, by key.
    given: Mutex<Map<String, Value>>,
    round: Mutex<Round>,
    seal: Arc<dyn Seal>,
    /// How long a parked request waits for the client's retry.
    wait: Duration,
    /// The request's `_meta` log level; without one, no log notification reaches it.
    log: Option<Level>,
    cache: Option<CacheHint>,
}

impl Translation {
    pub(crate) fn new(
        frame: &Frame,
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

    fn round(&self) -> std::sync::MutexGuard<'_, Round> {
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
    ) -> Bytes {
        let id = (id_span, raw_id.as_str());
        if frame.is_error() {
            return modern_error(frame.splice(&mut [id]), raw_id);
        }
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
        match result_insert(frame, &fields) {
            Some((at, text)) => frame.splice(&mut [id, (at..at, text.as_str())]),
            None => frame.splice(&mut [id]),
        }
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

/// What to do with one child request of a translated request.
enum Verdict {
    /// Refused: the client did not declare the capability.
    Undeclared(&'static str),
    /// Answered from the request's `inputResponses`.
    Given(Value),
    /// Asked in the next `input_required` result.
    Ask,
}

impl Upstream {
    /// Offers a child request to the translated request `relay_id` (the round starts
    /// gathering with the first one).
    pub(super) fn offer_input(
        self: &Arc<Self>,
        relay_id: u64,
        tr: &Arc<Translation>,
        frame: &Frame,
        id: RawId,
    ) {
        self.take_input(relay_id, tr, Input::of(frame, id));
    }

    fn take_input(self: &Arc<Self>, relay_id: u64, tr: &Arc<Translation>, input: Input) {
        let verdict = match tr.declared.missing(&input.method) {
            Some(cap) => Verdict::Undeclared(cap),
            None => {
                let mut given = tr.given.lock().unwrap_or_else(|e| e.into_inner());
                match given.remove(&input.key) {
                    Some(v @ Value::Object(_)) => Verdict::Given(v),
                    _ => Verdict::Ask,
                }
            }
        };
        let start = {
            let mut round = tr.round();
            match verdict {
                Verdict::Undeclared(cap) => {
                    self.answer_child(
                        &input.id,
                        Err((
                            -32601,
                            format!("the client did not declare the {cap} capability"),
                        )),
                    );
                    if !round.missing.contains(&cap) {
                        round.missing.push(cap);
                    }
                }
                Verdict::Given(v) => {
                    drop(round);
                    self.answer_child(&input.id, Ok(&v));
                    return;
                }
                Verdict::Ask => round.inputs.push(input),
            }
            round.last = Some(Instant::now());
            !std::mem::replace(&mut round.gathering, true)
        };
        if start {
            let (up, tr) = (self.clone(), tr.clone());
            tokio::spawn(async move {
                let begun = Instant::now();
                loop {
                    tokio::time::sleep(GATHER_QUIET).await;
                    let quiet = tr.round().last.is_none_or(|t| t.elapsed() >= GATHER_QUIET);
                    if quiet || begun.elapsed() >= GATHER_MAX {
                        break;
                    }
                }
                up.end_round(relay_id, &tr);
            });
        }
    }

    /// Answers one child request (a result, or an error code and message).
    fn answer_child(&self, id: &RawId, answer: Result<&Value, (i64, String)>) {
        let line = match answer {
            Ok(result) => format!(
                r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#,
                id.as_str(),
                result
            )
            .into(),
            Err((code, message)) => {
                crate::jsonrpc::error_response(Some(id.as_str()), code, &message, &Value::Null)
            }
        };
        let _ = self.child.send(line);
    }

    /// Closes the gathered round: the client's request ends with `input_required` (or
    /// -32021) and the child's request is parked for the retry.
    fn end_round(self: &Arc<Self>, relay_id: u64, tr: &Arc<Translation>) {
        let (inputs, missing, number) = {
            let mut round = tr.round();
            round.gathering = false;
            round.number += 1;
            (
                std::mem::take(&mut round.inputs),
                std::mem::take(&mut round.missing),
                round.number,
            )
        };
        if inputs.is_empty() && missing.is_empty() {
            return;
        }
        let mut mux = self.lock();
        let Some(p) = mux.pending.get_mut(&relay_id).filter(|p| p.is_client()) else {
            drop(mux);
            // Answered or gone meanwhile: nobody will answer these.
            for i in &inputs {
                self.answer_child(&i.id, Err(no_answer()));
            }
            return;
        };
        if inputs.is_empty() {
            let p = mux.take(relay_id);
            drop(mux);
            if let Some(p) = p {
                finish_with(p, |raw| missing_capability(raw, &missing));
            }
            self.cancel_child(relay_id, "the client lacks a required capability");
            return;
        }
        let parked = Target::Parked {
            round: number,
            inputs: inputs.clone(),
        };
        let to = std::mem::replace(&mut p.to, parked);
        let now = Instant::now();
        p.deadline = now + tr.wait;
        p.hard_deadline = p.deadline;
        drop(mux);
        let state = tr.seal.seal(self.pid(), relay_id, number);
        if let Target::Client {
            raw_id,
            stream,
            mut ticket,
            ..
        } = to
        {
            let bytes = input_required(&raw_id, &inputs, &state);
            stream.push(ticket.answer(bytes, None), true);
        }
    }

    /// Resumes a parked request with the client's retry: its answer and its further rounds
    /// go to `stream`; the inputs the retry answers go to the child, the others are asked
    /// again. `NotParked` when no request of that round waits (answered, expired, replayed).
    pub(crate) fn resume(
        self: &Arc<Self>,
        relay_id: u64,
        round: u32,
        frame: &Frame,
        stream: &Arc<Stream>,
        ticket: Ticket,
        tr: &Arc<Translation>,
    ) -> Result<(), Ticket> {
        let Some(raw_id) = frame.id() else {
            return Err(ticket);
        };
        let inputs = {
            let mut mux = self.lock();
            let parked = mux
                .pending
                .get_mut(&relay_id)
                .filter(|p| matches!(&p.to, Target::Parked { round: r, .. } if *r == round));
            let Some(p) = parked else {
                return Err(ticket);
            };
            let to = Target::Client {
                raw_id,
                session: None,
                stream: stream.clone(),
                ticket,
            };
            let Target::Parked { inputs, .. } = std::mem::replace(&mut p.to, to) else {
                return Ok(());
            };
            let method = frame.method().unwrap_or_default();
            let (timeout, deadline, hard) = self.limits.deadlines(method, false, Instant::now());
            (p.timeout, p.deadline, p.hard_deadline) = (timeout, deadline, hard);
            p.translation = Some(tr.clone());
            stream.expect_answer();
            inputs
        };
        tr.round().number = round;
        for input in inputs {
            self.take_input(relay_id, tr, input);
        }
        Ok(())
    }

    /// A parked request the client never came back for: its inputs get -31008 and the
    /// child's call is cancelled.
    pub(super) fn expire_parked(&self, relay_id: u64, inputs: &[Input]) {
        for i in inputs {
            self.answer_child(&i.id, Err(no_answer()));
        }
        self.cancel_child(relay_id, "the client did not retry in time");
    }

    fn cancel_child(&self, relay_id: u64, reason: &str) {
        let reason = Value::from(reason);
        self.notify(
            "notifications/cancelled",
            &format!(r#"{{"requestId":{relay_id},"reason":{reason}}}"#),
        );
    }
}

/// What a child's request gets when the client never answers it.
fn no_answer() -> (i64, String) {
    (
        Error::Timeout.wire().code,
        "request timeout: the client did not answer".to_owned(),
    )
}

/// Finishes a pending client request with an answer the relay makes for its raw id.
fn finish_with(p: Pending, make: impl FnOnce(&RawId) -> Bytes) {
    if let Target::Client {
        raw_id,
        stream,
        mut ticket,
        ..
    } = p.to
    {
        let bytes = make(&raw_id);
        let code = crate::jsonrpc::error_code(&bytes);
        stream.push(ticket.answer(bytes, code), true);
    }
    debug!("translated request ended by the relay");
}

/// The -32021 answer naming the capabilities the child needed.
fn missing_capability(raw_id: &RawId, missing: &[&str]) -> Bytes {
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
fn input_required(raw_id: &RawId, inputs: &[Input], state: &str) -> Bytes {
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
