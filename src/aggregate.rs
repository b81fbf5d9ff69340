//! The aggregate of several named servers: one MCP server, inside the relay, whose tools,
//! prompts and resources are those of every named server (the main path of a multi-server
//! relay), or of a selection of them (a tool subset, `[endpoints.NAME]`).
//!
//! [`Aggregator`] is a [`Launch`]: the hub serves it as the child of a relay in per-session
//! mode, so each client session of the aggregate is one `launch`, and the relay in front does
//! what it does for any child (authentication, rate limits, id multiplexing, audit). Each
//! launch runs one task (`aggregate/session.rs`) that opens one internal session per named
//! server through that server's own relay (`listener::duplex::Duplex`; `aggregate/link.rs`),
//! as the client's caller relabelled `Transport::Aggregate` and without its credential's
//! expiry (the front checks the credential on every request; each server's relay still
//! decides roles, filters lists and writes audit records, but skips the limits the front
//! applied).
//!
//! The aggregate is a per-session server: each session needs its caller, whom every named
//! server's relay judges. A `launch` without one (a supervised slot: shared mode, or the pool
//! the relay keeps for 2026-07-28 requests) answers every request -32601 and opens nothing,
//! so the hub serves it in per-session mode with `child_era = legacy`.
//!
//! What the client sees (MCP 2025-11-25; 2026-07-28 requests are not served: the aggregate
//! answers `server/discover` with -32601, so the relay treats it as a legacy server and
//! modern clients fall back to `initialize`):
//! - `initialize` goes to every server with the client's params; the answer merges theirs
//!   (`aggregate/init.rs`). A server that fails, or does not answer within 10 s, is left
//!   out with `failure_mode = "open"` (it joins when it answers; `/health` says why), or
//!   fails the `initialize` with the relay's -31006 (`child_unavailable`) with `"closed"`.
//! - Names (`aggregate/names.rs`): tools and prompts are `SERVER__name` (separator
//!   configurable) or, with `prefix = "never"`, the servers' own: the first server to list
//!   a name keeps it (servers are listed in configuration order, page by page), the other's
//!   is left out (logged; `/health` lists the conflict); a name no list showed yet is found
//!   by reading every page first.
//!   Resources and templates keep their URIs and are routed by who listed them
//!   (`aggregate/routes.rs`). Unknown names get -32602 (`Unknown tool: NAME`), unknown
//!   resources -32002, as denied ones do.
//! - Lists follow each server's pagination; a page of the union holds one page of each
//!   server that has more, under one opaque cursor (`aggregate/lists.rs`,
//!   `aggregate/cursor.rs`). A subset publishes only what its globs select.
//! - Calls, `prompts/get`, resource reads and subscriptions, `completion/complete`: routed to
//!   one server, the bytes forwarded with the id and name spliced (progress tokens and
//!   `_meta` untouched, so progress comes back as it is). `notifications/cancelled` reaches
//!   the server the request went to. `ping` is answered here; `logging/setLevel` goes to
//!   every server that logs; other client notifications to every server. A server that is
//!   down or still starting answers -31006; an unknown method gets -32601.
//! - From servers: notifications pass as they are (`*/list_changed` of one server is a
//!   change of the aggregate); requests (sampling, elicitation, roots, ping) reach the client
//!   under a fresh id, and its answer goes back to the server that asked.
//! - A server crashing: its pending requests get -31007 (the relay's crash error), the client
//!   gets `*/list_changed`, the session reopens it with backoff and says `list_changed` again
//!   when it is back. The configuration changing (SIGHUP: the hub sends a new member list):
//!   new servers are opened (and announced with `*/list_changed` once up), removed ones
//!   closed once their answers arrived, changed ones replaced (announced at once).
//! - Roles are decided by each server's relay for the caller the session was opened with: a
//!   credential with other roles presented later in the same aggregate session does not
//!   change them (a new session does), since a `launch` learns its caller once.
//!
//! The hub reads each aggregate's [`Status`] (`Aggregator::status`) for `/health`.

mod cursor;
mod init;
mod link;
mod lists;
mod names;
mod routes;
mod session;
pub(crate) mod status;
mod wire;

use std::sync::Arc;

use tokio::sync::watch;

use crate::caller::{Caller, Principal, Transport};
use crate::config::servers::{AggregateSpec, EndpointSpec};
use crate::relay::Relay;
use crate::upstream::stdio::{self, ChildHandle, ChildOutput};
use crate::upstream::Launch;
use names::{Naming, Subset};
pub(crate) use status::Status;

/// One named server, as the aggregate reaches it: its name and its relay.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub name: String,
    pub relay: Arc<Relay>,
}

/// The aggregate of the named servers (or of a tool subset of them).
#[derive(Debug)]
pub(crate) struct Aggregator {
    shared: Arc<Shared>,
}

/// What every session of one aggregate shares.
#[derive(Debug)]
struct Shared {
    /// The named servers, in configuration order; the hub sends a new list on reload.
    members: watch::Receiver<Arc<[Member]>>,
    spec: AggregateSpec,
    naming: Naming,
    /// The tool subset's selection; `None` for the main path (everything).
    subset: Option<Subset>,
    status: Arc<Status>,
}

/// The largest message the aggregate sends the relay in front at least (a merged list may
/// be larger than any one server's page).
const MIN_MAX_LINE: usize = 16 * 1024 * 1024;
/// ... and at most.
const MAX_MAX_LINE: usize = 256 * 1024 * 1024;

impl Aggregator {
    /// The aggregate of `members` (the main path), or the tool subset `subset` of them.
    pub(crate) fn new(
        members: watch::Receiver<Arc<[Member]>>,
        spec: AggregateSpec,
        subset: Option<EndpointSpec>,
    ) -> Aggregator {
        let naming = Naming {
            separator: spec.separator.clone(),
            prefix: spec.prefix,
        };
        Aggregator {
            shared: Arc::new(Shared {
                members,
                naming,
                spec,
                subset: subset.as_ref().map(Subset::new),
                status: Arc::default(),
            }),
        }
    }

    /// What the aggregate's sessions saw of each server (`/health`).
    pub(crate) fn status(&self) -> Arc<Status> {
        self.shared.status.clone()
    }
}

impl Launch for Aggregator {
    fn launch(&self, caller: Option<&Caller>) -> (ChildHandle, ChildOutput) {
        let (handle, output, ends) = stdio::link();
        match caller {
            Some(caller) => {
                let caller = internal_caller(caller);
                tokio::spawn(session::run(self.shared.clone(), caller, ends));
            }
            // A supervised slot (shared or modern pool) serves every caller at once: the
            // servers' relays could not judge who asks, so it serves nothing.
            None => {
                tokio::spawn(session::unbound(ends));
            }
        }
        (handle, output)
    }

    fn max_line(&self) -> usize {
        let members = self.shared.members.borrow();
        let sum: usize = members
            .iter()
            .map(|m| m.relay.config().child.max_line())
            .sum();
        sum.clamp(MIN_MAX_LINE, MAX_MAX_LINE)
    }
}

/// The caller of the internal sessions: the client's, on the aggregate transport, without
/// its credential's expiry (the front re-checks the credential on every request; an internal
/// session closing at expiry would take the server away mid-session).
fn internal_caller(caller: &Caller) -> Caller {
    let mut principal = Principal::clone(&caller.principal);
    principal.expires_at = None;
    Caller {
        principal: Arc::new(principal),
        ..caller.on(Transport::Aggregate)
    }
}

#[cfg(test)]
mod tests;
