//! The policy phases in their one order: one function per scope, each a method on one policy
//! snapshot (`Relay::policy()`, loaded once per connection, request or message, so a SIGHUP
//! in the middle of one never judges it against two policies). The order and its reasons are
//! in `policy.rs`'s header; each position below says why it is there.
//!
//! Owns: the order, which transport pays what (data on [`Transport`], not branches in the
//! fronts), and the audit of the connection and request phases' refusals (here, once). Does
//! not own: the checks themselves (`ip.rs`, `origin.rs`, `cors.rs`, `authn.rs`, `rbac.rs`,
//! `rate_limit.rs`, `overload.rs`), reading a front's framing (the front describes its
//! request as an [`Incoming`]), nor the wire form of a refusal (`error.rs`).

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use axum::http::{HeaderMap, Method};
use axum::response::Response;

use super::rate_limit::InFlight;
use super::rbac::Names;
use super::RequestPolicy;
use crate::caller::{AuthFailure, Caller, ClientAddr, Principal, Transport};
use crate::error::Error;
use crate::jsonrpc::Frame;
use crate::telemetry::audit::Audit;
use crate::ticket::Ticket;
use crate::tls::client::CertIdentity;

/// Which route an HTTP request is for, as far as the phases care (the front knows its paths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// The RFC 9728 protected-resource metadata: public, it is how a client learns to
    /// authenticate.
    Metadata,
    /// `/health` and `/ready`.
    Probe,
    /// The built-in authorization server's endpoints and pages (`authz.rs`): public (they are
    /// how one logs in), but behind the network phases and the per-IP rate.
    AuthServer,
    /// A route of a front: Streamable HTTP (and the WebSocket upgrade), or legacy SSE's
    /// `POST /message` (`Sse`, whose request messages each hold their own slot).
    Front(Transport),
}

/// An HTTP request's head, as the request phases read it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// The URI's authority (HTTP/2 `:authority`), checked like `Host`.
    pub authority: Option<&'a str>,
    pub route: Route,
    /// The mount the path is under (`/servers/NAME`, `/endpoints/NAME`): which resource a
    /// token must be for. `None` for the main path.
    pub mount: Option<&'a str>,
    /// It names a session (`Mcp-Session-Id`, legacy `?sessionId=`): the work inside a session
    /// is shed per message, so its notifications and responses still pass.
    pub in_session: bool,
    /// A GET resuming a stream with `Last-Event-ID`: it hands buffered answers over, which
    /// frees memory.
    pub resumes: bool,
    /// The session it names is another replica's (its id's tag names a configured peer, and
    /// the request was not forwarded already): only the owner authenticates and counts it.
    pub elsewhere: bool,
}

/// Where a request comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// An HTTP request (a WebSocket upgrade too) from the socket `peer`: the network phases run
    /// per request, because behind a trusted proxy each request names its own client.
    Http {
        peer: Option<SocketAddr>,
        head: Head<'a>,
    },
    /// The first line of a connection [`RequestPolicy::on_connection`] admitted (TCP).
    Connection(ClientAddr),
}

/// What a front knows about one request when the request phases run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Incoming<'a> {
    pub source: Source<'a>,
    /// Where the credential is: the HTTP head, or a TCP credential line; `None` when the line
    /// the front waited for was not one (or never came).
    pub credential: Option<&'a HeaderMap>,
    pub query: Option<&'a str>,
    /// The verified mTLS identity of the connection.
    pub cert: Option<&'a CertIdentity>,
    /// The front the caller is audited on.
    pub transport: Transport,
}

/// A request the phases let through: its caller, and the place it holds among its
/// principal's concurrent requests until its answer is done.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub caller: Caller,
    pub slot: Option<InFlight>,
}

/// Why a request goes no further than the request phases.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Refused; already audited. The error's wire form is the answer.
    Refused(Error),
    /// A CORS preflight, answered without credentials.
    Preflight(Box<Response>),
    /// The RFC 9728 metadata: the front serves it without a caller.
    Metadata,
    /// A route of the authorization server, past the per-IP rate: served without a principal
    /// (the client address is for its own limits and audit).
    AuthServer(Option<ClientAddr>),
    /// A request for another replica's session, past the network phases and the per-IP rate:
    /// carried to its owner, which authenticates it and counts it against the principal.
    Forward(Option<ClientAddr>),
}

impl RequestPolicy {
    /// The connection scope, for a front whose client is its socket peer (TCP; HTTP runs the
    /// same phases per request, [`RequestPolicy::on_request`]). A refusal is audited here and
    /// the front closes the connection at once, before its cap, TLS and any byte read.
    pub(crate) fn on_connection(
        &self,
        audit: &Audit,
        peer: SocketAddr,
        transport: Transport,
    ) -> Result<ClientAddr, Error> {
        let client = ClientAddr::from(peer);
        let refuse = |e: Error| refused(audit, Some(client), transport, e);
        // 1. Network allow/deny: a denied network learns nothing at all.
        if !self.ip.allows(client.ip) {
            return Err(refuse(Error::IpDenied));
        }
        // 4-5. Overload, then the per-IP rate (every connection starts work).
        self.admit_client(Some(client), true).map_err(refuse)?;
        Ok(client)
    }

    /// The request scope: an HTTP request (WebSocket upgrades included) or a TCP connection's
    /// first line. Refusals are audited here, with the caller known at that point.
    pub(crate) async fn on_request(
        &self,
        audit: &Audit,
        req: Incoming<'_>,
    ) -> Result<Admitted, Stop> {
        let client = match req.source {
            Source::Connection(client) => Some(client),
            Source::Http { peer, head } => {
                let client = self.front_door(audit, peer, &head, req.transport)?;
                // Without authentication, probes need no `--identity-header` name.
                if head.route == Route::Probe && !self.auth.is_enabled() {
                    let caller = Caller::new(Principal::anonymous(), client, req.transport);
                    return Ok(Admitted { caller, slot: None });
                }
                client
            }
        };
        let refuse = |caller: &Caller, e: Error| {
            Ticket::refused(audit, caller, None, None, &e, None);
            Stop::Refused(e)
        };
        let anonymous = Caller::new(Principal::anonymous(), client, req.transport);
        // 6. Authentication: after the network phases (a refused client spends no CPU on
        // credentials), before anything keyed on the principal.
        let mount = match req.source {
            Source::Http { head, .. } => head.mount,
            Source::Connection(_) => None,
        };
        let principal = match req.credential {
            Some(headers) => self.authenticate(headers, req.query, req.cert, mount).await,
            None => Err(self.refusal_at(AuthFailure::Missing, mount)),
        };
        let caller = match principal {
            Ok(p) => Caller::new(p, client, req.transport),
            Err(e) => return Err(refuse(&anonymous, e)),
        };
        // 7. The global and principal rates: keyed on the principal (anonymous callers on
        // their IP), never on the session, so a new session dodges nothing.
        // 8. A place among the principal's concurrent requests, last: nothing after it can
        // refuse, so a refused request never holds one. (In a fleet both are one round trip
        // to the shared store.)
        let slot = self
            .limits
            .admit_request(&caller, req.counts_principal_rate(), req.holds_slot())
            .await
            .map_err(|e| refuse(&caller, e))?;
        Ok(Admitted { caller, slot })
    }

    /// The HTTP-only part of the request scope and the network phases, up to authentication.
    fn front_door(
        &self,
        audit: &Audit,
        peer: Option<SocketAddr>,
        head: &Head<'_>,
        transport: Transport,
    ) -> Result<Option<ClientAddr>, Stop> {
        // 1. The client address (forwarded headers only from trusted proxies) and network
        // allow/deny, first: a denied network learns nothing at all.
        let client = self
            .client(peer, head.headers)
            .map_err(|e| Stop::Refused(refused(audit, peer.map(ClientAddr::from), transport, e)))?;
        // 2. Host, then Origin: a rebinding attempt must learn nothing, not even whether a
        // route exists or the relay is loaded. Not audited (nobody to attribute it to).
        self.check(head.headers, head.authority)
            .map_err(Stop::Refused)?;
        // 3. Answered without a caller: preflights carry no credentials; the metadata is
        // public and static. Neither starts work nor spends a client's quota.
        if let Some(res) = self.cors.preflight(head.method, head.headers) {
            return Err(Stop::Preflight(Box::new(res)));
        }
        if head.route == Route::Metadata {
            return Err(Stop::Metadata);
        }
        // 4-5. Overload, then the per-IP rate.
        self.admit_client(client, starts_work(head))
            .map_err(|e| Stop::Refused(refused(audit, client, transport, e)))?;
        if head.route == Route::AuthServer {
            return Err(Stop::AuthServer(client));
        }
        // The owner of the session runs the rest (authentication, rates, the slot): a
        // request is judged once, where it executes.
        if head.elsewhere && matches!(head.route, Route::Front(_)) {
            return Err(Stop::Forward(client));
        }
        Ok(client)
    }

    /// Positions 4 and 5 of every front. 4. Overload shedding of new work: one cached
    /// reading, so shedding costs nothing, and a shed client keeps its per-IP quota (it did
    /// nothing wrong; the relay is full). 5. The per-IP rate, before authentication, so
    /// credential guessing is throttled per client address.
    fn admit_client(&self, client: Option<ClientAddr>, starts_work: bool) -> Result<(), Error> {
        if starts_work {
            self.limits.overload().admit()?;
        }
        match client {
            Some(c) => self.limits.check_ip(c.ip),
            None => Ok(()),
        }
    }

    /// Whether a connection front must read a credential line before the first message: with
    /// authentication on and no mapped client certificate.
    pub(crate) fn wants_credential_line(&self, cert: Option<&CertIdentity>) -> bool {
        self.auth.is_enabled() && !(cert.is_some() && self.auth.has_mtls())
    }

    /// The message scope: one JSON-RPC request of `caller` (inside `session`, when it has one)
    /// on a relay deciding `names`, and its ticket (audit record, list filter, slot). A
    /// refusal comes back with its rule, to be answered in place of the request (an unknown
    /// name, or -31004) and recorded by the caller, which knows how it is answered.
    pub(crate) async fn on_message(
        &self,
        audit: &Audit,
        caller: &Caller,
        names: Names<'_>,
        session: Option<&str>,
        frame: &Frame,
        modern: bool,
    ) -> Result<Ticket, (Error, String)> {
        // 1. RBAC: method, then tool/prompt/resource name; before any limit, so a denied call
        // spends no quota and buckets exist only for allowed names.
        let (rule, filter) = self.authorize(caller, names, frame, modern)?;
        let refuse = |e: Error| (e, rule.clone().unwrap_or_default());
        // Principal × tool, keyed on the server's own name for the tool (`github:create_issue`):
        // checked by the named server's relay, whether the call came straight or through the
        // aggregate (whose prefixed names are not the tool's: it does not check them), so
        // both paths share one bucket and two servers' tools of one name do not.
        let tool = match (names, frame.method(), frame.name()) {
            (Names::Delegated, ..) => None,
            (names, Some("tools/call"), Some(tool)) => Some((names, tool)),
            _ => None,
        };
        let check_tool = async || match tool {
            Some((Names::Server(server), tool)) => {
                self.limits.admit_tool(caller, Some(server), tool).await
            }
            Some((_, tool)) => self.limits.admit_tool(caller, None, tool).await,
            None => Ok(()),
        };
        if caller.transport.is_forwarded() {
            // The aggregate's front applied the other limits already (once, not per server).
            check_tool().await.map_err(refuse)?;
            return Ok(Ticket::allowed(audit, caller, session, frame, rule, filter));
        }
        // 2. Message rates: the principal's, where one connection carries many requests, then
        // principal × tool.
        if caller.transport.counts_principal_rate_per_message() {
            self.limits.admit_principal(caller).await.map_err(refuse)?;
        }
        check_tool().await.map_err(refuse)?;
        // 3. Overload: a new request is new work; notifications and responses never come
        // here, they finish work.
        self.limits.overload().admit().map_err(refuse)?;
        // 4. A place among the principal's concurrent requests, last (nothing after it
        // refuses), where the request did not take one for the whole HTTP request.
        let slot = match caller.transport.holds_slot_per_message() {
            true => self.limits.take_slot(caller).await.map_err(refuse)?,
            false => None,
        };
        let mut ticket = Ticket::allowed(audit, caller, session, frame, rule, filter);
        ticket.hold(slot);
        Ok(ticket)
    }
}

impl Incoming<'_> {
    /// Every HTTP request counts against its principal's rate (a WebSocket upgrade too); a
    /// connection's first line counts when its messages do not.
    fn counts_principal_rate(&self) -> bool {
        match self.source {
            Source::Http { .. } => true,
            Source::Connection(_) => !self.transport.counts_principal_rate_per_message(),
        }
    }

    /// Whether the request holds a slot for its whole life: a POST or DELETE whose messages do
    /// not each hold one (GET streams are long-lived and not counted).
    fn holds_slot(&self) -> bool {
        match self.source {
            Source::Http { head, .. } => {
                matches!(*head.method, Method::POST | Method::DELETE)
                    && matches!(head.route, Route::Front(t) if !t.holds_slot_per_message())
            }
            Source::Connection(_) => !self.transport.holds_slot_per_message(),
        }
    }
}

/// Whether an HTTP request starts new work that shedding refuses: a new session or stateless
/// request (POST without a session), a stream or WebSocket upgrade (GET, but not the probes,
/// nor a resumption). DELETE and requests inside a session pass (shed per message).
fn starts_work(head: &Head<'_>) -> bool {
    match *head.method {
        Method::GET => head.route != Route::Probe && !head.resumes,
        Method::POST => !head.in_session,
        _ => false,
    }
}

/// Audits a refusal of an anonymous caller at `client` and hands the error back.
fn refused(audit: &Audit, client: Option<ClientAddr>, transport: Transport, e: Error) -> Error {
    let anonymous = Caller::new(Principal::anonymous(), client, transport);
    Ticket::refused(audit, &anonymous, None, None, &e, None);
    e
}
