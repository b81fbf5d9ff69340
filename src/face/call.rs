//! One request of a legacy session, sent statelessly to a modern child: the modern `_meta`
//! added (the session's hello and log level), notifications about it passed on as they come
//! (progress, log messages), and `input_required` results unpacked: every input request goes
//! to the client at once as a server→client request on the session, and once all are
//! answered the request is sent again with a new id, the answers and the exact
//! `requestState`, for at most `MAX_ROUNDS` rounds. The final answer carries the relay's id.
//! Aborting the task (the client cancelled) drops the exchange, which cancels at the child.
//!
//! Not here: the session (`session.rs`), the translations (`era/legacy_face.rs`).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;
use tracing::warn;

use super::{lock, Exchange, Session};
use crate::era::legacy_face::{self as face, INPUT_WAIT, MAX_ROUNDS};
use crate::error::Error;
use crate::jsonrpc::{Frame, RawId};

/// Runs one request to its final answer, which goes to the relay in front.
pub(super) async fn call(s: Arc<Session>, frame: Frame) {
    let Some(id) = frame.id() else { return };
    let answer = match serde_json::from_slice::<Value>(frame.bytes()) {
        Ok(req) => rounds(&s, req, &id).await,
        Err(_) => Error::Internal.to_jsonrpc(&id),
    };
    s.send(answer).await;
}

/// The rounds of one request, until an answer that needs no input.
async fn rounds(s: &Session, mut req: Value, id: &RawId) -> Bytes {
    for round in 0..MAX_ROUNDS {
        // Each round is a new request to the child: its own JSON-RPC id.
        if round > 0 {
            req["id"] = json!(s.fresh_id("retry-"));
        }
        let body = s.hello().with_meta(&req, s.level().as_deref());
        let answer = match exchange(s, body).await {
            Ok(answer) => answer,
            Err(e) => return e.to_jsonrpc(id),
        };
        let Ok(v) = serde_json::from_slice::<Value>(&answer) else {
            return face::with_id(&answer, id);
        };
        let Some(result) = face::input_required(&v) else {
            return face::with_id(&answer, id);
        };
        let Some(responses) = ask_client(s, result).await else {
            return Error::ChildUnavailable.to_jsonrpc(id);
        };
        face::retry(&mut req, responses, result);
    }
    warn!("a request needed too many rounds of input; given up");
    Error::ChildUnavailable.to_jsonrpc(id)
}

/// Sends one request and passes on what comes before its final answer, which is returned.
async fn exchange(s: &Session, body: Bytes) -> Result<Bytes, Error> {
    let mut ex = Exchange::start(&s.shared, body).await?;
    while let Some(out) = ex.next().await {
        if out.last {
            return Ok(out.data);
        }
        s.send(out.data).await;
    }
    Err(Error::ChildExited)
}

/// Asks the client every input request of `result` at once and collects the answers, keyed
/// as the child keyed the requests; `None` when one is malformed or not answered in time.
async fn ask_client(s: &Session, result: &Value) -> Option<Value> {
    let inputs = face::input_requests(result)?;
    let mut asked = Asked { s, ids: Vec::new() };
    let mut waits = Vec::new();
    for input in inputs {
        let id = s.fresh_id("");
        let (tx, rx) = oneshot::channel();
        lock(&s.waiting).insert(id.clone(), tx);
        asked.ids.push(id.clone());
        s.send(face::input_request(&id, &input)).await;
        waits.push((input.key, rx));
    }
    let mut answers = Map::new();
    for (key, rx) in waits {
        let answer = tokio::time::timeout(INPUT_WAIT, rx).await.ok()?.ok()?;
        answers.insert(key, face::input_response(&answer)?);
    }
    Some(Value::Object(answers))
}

/// The input requests of one round: forgotten when the round ends, answered or not.
struct Asked<'a> {
    s: &'a Session,
    ids: Vec<String>,
}

impl Drop for Asked<'_> {
    fn drop(&mut self) {
        let mut waiting = lock(&self.s.waiting);
        for id in &self.ids {
            waiting.remove(id);
        }
    }
}
