//! What the relay remembers about one client request until its answer leaves: the audit
//! record it owes (written exactly once, on drop, so a request that is cancelled, times out
//! or loses its child is still recorded) and the per-caller `*/list` filter to apply. With
//! trace export on, its OpenTelemetry span too (`telemetry/otel.rs`): started with the
//! ticket, ended with the outcome when it drops; a refusal gets a span at once.
//!
//! The server a request was for (a named server's relay) comes from the relay's audit handle
//! (`Audit::server`): its record's `server`, its metrics' `server` label, its span's
//! `mcp.server.name`. The decision itself is made in `policy.rs`; the record shape and writer live in
//! `telemetry/audit.rs`; `upstream/mux.rs` carries the ticket beside the pending request.

use std::time::Instant;

use bytes::Bytes;

use crate::caller::Caller;
use crate::error::Error;
use crate::jsonrpc::Frame;
use crate::policy::rbac::ListFilter;
use crate::telemetry::audit::{self, Audit, Record};
use crate::telemetry::metrics::{self, DenialKind, Measure, Outcome, ServerLabel};
use crate::telemetry::otel::RequestSpan;

/// One request's audit record and list filter; cheap (two `None`s) when neither is on.
#[derive(Debug, Default)]
pub(crate) struct Ticket {
    record: Option<Box<Pending>>,
    filter: Option<ListFilter>,
    /// The request's metrics, counted when the ticket drops (like the record).
    measure: Option<Measure>,
    /// The request's trace span (only when trace export is on), ended when the ticket drops.
    span: Option<Box<RequestSpan>>,
    /// The request's place among its principal's concurrent requests, on fronts where one
    /// connection carries many requests (released when the answer leaves).
    slot: Option<crate::policy::rate_limit::InFlight>,
    /// Where a successful answer is kept for the next callers (the response cache).
    keep: Option<Box<dyn Keep>>,
}

/// Keeps a request's successful answer as the child gave it (before the caller's list
/// filter), its id still the client's (`relay/cache.rs`).
pub(crate) trait Keep: Send + Sync + std::fmt::Debug {
    fn keep(&self, answer: &Bytes);
}

#[derive(Debug)]
struct Pending {
    audit: Audit,
    record: Record,
    started: Instant,
}

impl Ticket {
    /// Holds `slot` until this request is answered.
    pub(crate) fn hold(&mut self, slot: Option<crate::policy::rate_limit::InFlight>) {
        self.slot = slot;
    }

    /// A request that passed the policy phases (`rule` names the rule that allowed it).
    pub(crate) fn allowed(
        audit: &Audit,
        caller: &Caller,
        session: Option<&str>,
        frame: &Frame,
        rule: Option<String>,
        filter: Option<ListFilter>,
    ) -> Ticket {
        let record = audit.is_enabled().then(|| {
            Box::new(Pending {
                audit: audit.clone(),
                record: Record {
                    decision: "allow",
                    rule,
                    ..record_of(audit, caller, session, frame)
                },
                started: Instant::now(),
            })
        });
        let measure = Measure::start(
            audit.server_label(),
            caller.transport.as_str(),
            frame.method(),
            frame.bytes().len(),
        );
        Ticket {
            record,
            filter,
            measure: Some(measure),
            span: RequestSpan::start(caller, audit.server(), session, frame).map(Box::new),
            slot: None,
            keep: None,
        }
    }

    /// Records a request the relay refused itself (denied, malformed, over a cap) at once.
    pub(crate) fn refused(
        audit: &Audit,
        caller: &Caller,
        session: Option<&str>,
        frame: Option<&Frame>,
        error: &Error,
        rule: Option<String>,
    ) {
        count_refusal(audit.server_label(), caller, frame, error);
        if let Some(f) = frame {
            RequestSpan::refused(caller, audit.server(), session, f, error);
        }
        if !audit.is_enabled() {
            return;
        }
        let base = match frame {
            Some(f) => record_of(audit, caller, session, f),
            None => record_of_caller(audit, caller, session),
        };
        let w = error.wire();
        audit.emit(Record {
            decision: match error {
                Error::Unauthorized { .. } | Error::Forbidden { .. } | Error::IpDenied => "deny",
                e if e.is_denial() => "deny",
                _ => "allow",
            },
            outcome: match error {
                Error::Unauthorized { .. } => "unauthenticated",
                e if e.is_denial() => "denied",
                _ => "refused",
            },
            rule,
            error_code: Some(w.code),
            reason: Some(w.reason),
            ..base
        });
    }

    /// Keeps the successful answer with `keep` (the response cache).
    pub(crate) fn keep_with(&mut self, keep: Box<dyn Keep>) {
        self.keep = Some(keep);
    }

    /// Whether the answer will be filtered for this caller.
    pub(crate) fn filters(&self) -> bool {
        self.filter.is_some()
    }

    /// Forgets the record: the request was refused and whoever returns that error to the
    /// client records it (one record per request, never two).
    pub(crate) fn discard(mut self) {
        self.record = None;
        self.span = None;
        if let Some(m) = &mut self.measure {
            m.disarm();
        }
    }

    /// The answer to deliver: filtered for the caller, and noted for the record. `code` is
    /// the answer's JSON-RPC error code, which the caller already knows (the frame was parsed
    /// on its way in, or the relay made the error): no answer is read again here.
    pub(crate) fn answer(&mut self, bytes: Bytes, code: Option<i64>) -> Bytes {
        if let (Some(k), None) = (self.keep.take(), code) {
            k.keep(&bytes);
        }
        let bytes = match &self.filter {
            Some(f) => f.apply(&bytes).unwrap_or(bytes),
            None => bytes,
        };
        if let Some(s) = &mut self.span {
            s.answered(code);
        }
        if self.record.is_none() && self.measure.is_none() {
            return bytes;
        }
        let outcome = match code {
            None => "ok",
            Some(-31008) => "timeout",
            Some(_) => "error",
        };
        if let Some(m) = &mut self.measure {
            m.answered(Outcome::of_audit(outcome), bytes.len());
        }
        if let Some(p) = &mut self.record {
            p.record.outcome = outcome;
            p.record.error_code = code;
            p.record.bytes_out = bytes.len() as u64;
        }
        bytes
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(s) = self.span.take() {
            s.end();
        }
        if let Some(mut p) = self.record.take() {
            if p.record.outcome.is_empty() {
                p.record.outcome = "cancelled";
            }
            p.record.latency_ms = p.started.elapsed().as_secs_f64() * 1000.0;
            p.audit.emit(p.record);
        }
    }
}

/// Counts a refusal: the request, and an authentication failure or a policy denial.
fn count_refusal(server: ServerLabel, caller: &Caller, frame: Option<&Frame>, error: &Error) {
    let outcome = match error {
        Error::Unauthorized { reason, .. } => {
            metrics::auth_failure(reason);
            Outcome::Unauthenticated
        }
        // Like the audit record: an authenticated caller without the scope is `refused`.
        Error::Forbidden { reason, .. } => {
            metrics::auth_failure(reason);
            Outcome::Refused
        }
        e if e.is_denial() => {
            metrics::policy_denial(
                server,
                match e {
                    Error::UnknownTool(_) => DenialKind::Tool,
                    Error::UnknownPrompt(_) => DenialKind::Prompt,
                    Error::UnknownResource(_) | Error::ResourceNotFound(_) => DenialKind::Resource,
                    _ => DenialKind::Method,
                },
            );
            Outcome::Denied
        }
        _ => Outcome::Refused,
    };
    metrics::refused(
        server,
        caller.transport.as_str(),
        frame.and_then(Frame::method),
        outcome,
        frame.map_or(0, |f| f.bytes().len()),
    );
}

fn record_of_caller(audit: &Audit, caller: &Caller, session: Option<&str>) -> Record {
    let p = &caller.principal;
    Record {
        principal: p.name.clone(),
        auth: p.method.as_str(),
        key_id: p.key_id.clone(),
        client: caller.peer.map(|a| a.to_string()),
        peer: caller.peer.and_then(|a| a.via).map(|a| a.to_string()),
        session: session.map(str::to_owned),
        transport: caller.transport.as_str(),
        server: audit.server().map(str::to_owned),
        ..Record::default()
    }
}

fn record_of(audit: &Audit, caller: &Caller, session: Option<&str>, frame: &Frame) -> Record {
    Record {
        method: frame.method().map(str::to_owned),
        id: frame.id().map(|id| id.as_str().to_owned()),
        name: frame.name().or(frame.uri()).map(str::to_owned),
        bytes_in: frame.bytes().len() as u64,
        args: audit
            .wants_args()
            .then(|| arguments(frame))
            .flatten()
            .and_then(|a| audit::redact_args(Some(&a), audit.allow_fields())),
        ..record_of_caller(audit, caller, session)
    }
}

/// `params.arguments` of a request, raw (only read when auditing).
fn arguments(frame: &Frame) -> Option<Box<serde_json::value::RawValue>> {
    #[derive(serde::Deserialize)]
    struct Params {
        arguments: Option<Box<serde_json::value::RawValue>>,
    }
    frame.params::<Params>()?.arguments
}
