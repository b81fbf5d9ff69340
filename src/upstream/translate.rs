//! A 2026-07-28 request served by a legacy child (PROTOCOL.md §5.12, server side): how the
//! child's own requests become rounds of input.
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
//! relay's seal) and parks the child's request: it stays in flight at the child, which still
//! waits for its answers, until the client's retry resumes it ([`Upstream::resume`]) or the
//! input wait runs out (the child's requests then get -31008 and its call is cancelled). A
//! round whose every input needs a capability the client did not declare ends the request with
//! -32021 instead, naming them, and the child's call is cancelled. What the mux keeps per
//! request is `translation.rs`; the mux and the routing are `mux.rs` and `route.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tracing::debug;

use super::mux::{Pending, Target};
use super::tasks::TaskIds;
use super::translation::{input_required, missing_capability, Input, Translation};
use super::Upstream;
use crate::error::Error;
use crate::jsonrpc::{Frame, RawId};
use crate::session::stream::Stream;
use crate::ticket::Ticket;

/// The child requests that travel in `inputRequests`.
const INPUT_METHODS: [&str; 3] = ["sampling/createMessage", "elicitation/create", "roots/list"];
/// Requests of one caller that may wait for input on one child at a time (the child's own
/// cap is a quarter of `--max-inflight-per-child`).
const MAX_PARKED_PER_PRINCIPAL: usize = 16;
/// How long a round waits for more child requests after the last one.
const GATHER_QUIET: Duration = Duration::from_millis(15);
/// The longest a round gathers, however chatty the child.
const GATHER_MAX: Duration = Duration::from_millis(200);

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
    /// Forwards a stateless 2026-07-28 request: to a legacy child, with its `translation`
    /// (the child may ask for input while it serves it, `translate.rs`); with `tasks`, task
    /// ids in its answer are renamed (`tasks.rs`).
    pub(crate) fn forward_stateless(
        &self,
        frame: &Frame,
        stream: &Arc<Stream>,
        ticket: Ticket,
        translation: Option<Arc<Translation>>,
        tasks: Option<Arc<dyn TaskIds>>,
    ) -> Result<u64, Error> {
        let (Some(raw_id), Some(id_span)) = (frame.id(), frame.id_span()) else {
            return Err(Error::Internal);
        };
        let mut ticket = Some(ticket);
        let id = (raw_id, id_span);
        let result = self.dispatch(None, frame, stream, id, &mut ticket, (translation, tasks));
        if let Some(t) = ticket {
            t.discard();
        }
        result
    }

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
        if !INPUT_METHODS.contains(&input.method.as_str()) {
            // Only these travel in `inputRequests` (2026-07-28 MRTR); no client can take
            // any other request of the child (PROTOCOL.md §5.4).
            let message = "Method not found".to_owned();
            return self.answer_child(&input.id, Err((-32601, message)));
        }
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
        if let Some(Target::Parked {
            inputs: waiting, ..
        }) = mux.pending.get_mut(&relay_id).map(|p| &mut p.to)
        {
            // Parked by the round before: these are asked in the next one.
            waiting.extend(inputs);
            return;
        }
        let over = inputs.is_empty() || self.parked_over(&mux, tr);
        let Some(p) = mux.pending.get_mut(&relay_id).filter(|p| p.is_client()) else {
            drop(mux);
            // Answered or gone meanwhile: nobody will answer these.
            for i in &inputs {
                self.answer_child(&i.id, Err(no_answer()));
            }
            return;
        };
        if over {
            // The client lacks what the child needs, or too many requests of this caller
            // (or of everyone) wait for input on this child already.
            let p = mux.take(relay_id);
            drop(mux);
            for i in &inputs {
                self.answer_child(&i.id, Err(no_answer()));
            }
            if let Some(p) = p {
                match inputs.is_empty() {
                    true => finish_with(p, |raw| missing_capability(raw, &missing)),
                    false => finish_with(p, |raw| Error::InflightCap.to_jsonrpc(raw)),
                }
            }
            self.cancel_child(relay_id, "the request cannot wait for input");
            return;
        }
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

    /// Requests waiting for a client's retry on this child.
    pub(crate) fn parked(&self) -> usize {
        let mux = self.lock();
        mux.pending
            .values()
            .filter(|p| matches!(p.to, Target::Parked { .. }))
            .count()
    }

    /// Whether one more parked request of `tr`'s caller would be too many on this child.
    fn parked_over(&self, mux: &super::mux::Mux, tr: &Translation) -> bool {
        let parked = mux
            .pending
            .values()
            .filter(|p| matches!(p.to, Target::Parked { .. }));
        let (mut all, mut mine) = (0usize, 0usize);
        for p in parked {
            all += 1;
            if p.translation
                .as_ref()
                .is_some_and(|t| t.principal == tr.principal)
            {
                mine += 1;
            }
        }
        let per_child = (self.limits.inflight_per_child / 4).max(1);
        all >= per_child || mine >= MAX_PARKED_PER_PRINCIPAL
    }

    /// A child request for a parked request (it still serves it): asked in the next round,
    /// or refused when the request is no longer parked.
    pub(super) fn park_input(&self, relay_id: u64, frame: &Frame, id: RawId) {
        let input = Input::of(frame, id);
        if !INPUT_METHODS.contains(&input.method.as_str()) {
            let message = "Method not found".to_owned();
            return self.answer_child(&input.id, Err((-32601, message)));
        }
        let mut mux = self.lock();
        if let Some(Target::Parked { inputs, .. }) =
            mux.pending.get_mut(&relay_id).map(|p| &mut p.to)
        {
            inputs.push(input);
            return;
        }
        drop(mux);
        self.answer_child(&input.id, Err(no_answer()));
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
            // Progress the child reports from now on carries the retry's own token.
            if let (Some(t), Some(raw)) = (p.token, frame.progress_token()) {
                mux.tokens.insert(t, (raw.into(), relay_id));
            }
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
