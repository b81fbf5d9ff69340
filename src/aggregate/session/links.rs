//! The server links of one aggregate session: opening one (its `initialize` is the
//! client's), a link coming up, going down (its pending requests answered with the relay's
//! crash error, `-31007`; the client told its lists changed) and being reopened with backoff
//! (0.5 s doubling to 30 s: a shared child is restarted by its relay, a per-session one needs
//! a new session), and the configuration changing under the session (servers added, removed
//! or replaced: a removed server's link stays until its last answers arrived).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::{Driver, Purpose};
use crate::aggregate::init::ServerInit;
use crate::aggregate::link::{self, Conn};
use crate::aggregate::status::State;
use crate::aggregate::wire;
use crate::aggregate::Member;
use crate::error::Error;
use crate::relay::Relay;

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One server of the session.
#[derive(Debug)]
pub(super) struct Link {
    pub name: Arc<str>,
    relay: Arc<Relay>,
    /// The key of the open link (messages from older ones are stale).
    pub key: Option<u32>,
    /// The open session (none before `initialize`, or while down).
    pub conn: Option<Conn>,
    /// `None` until the client's `initialize` opened it.
    pub state: Option<State>,
    pub init: Option<ServerInit>,
    backoff: Duration,
    retry_at: Option<Instant>,
}

impl Link {
    fn new(member: &Member) -> Link {
        Link {
            name: member.name.as_str().into(),
            relay: member.relay.clone(),
            key: None,
            conn: None,
            state: None,
            init: None,
            backoff: FIRST_BACKOFF,
            retry_at: None,
        }
    }

    pub(super) fn is_up(&self) -> bool {
        self.state == Some(State::Up)
    }

    /// Whether the server is up and declared the capability `cap`.
    pub(super) fn offers(&self, cap: &str) -> bool {
        self.is_up() && self.init.as_ref().is_some_and(|i| i.offers(cap))
    }
}

impl Driver {
    /// The configured servers this session serves (a subset's only those it publishes from),
    /// without those the caller's roles do not cover there (their child is never started
    /// for this caller).
    fn wanted(&self) -> Vec<Member> {
        let members = self.members.borrow().clone();
        let subset = self.agg.subset.as_ref();
        let roles = &self.caller.principal.roles;
        members
            .iter()
            .filter(|m| subset.is_none_or(|s| s.opens(&m.name)))
            .filter(|m| {
                let policy = m.relay.policy();
                policy
                    .rbac
                    .as_ref()
                    .is_none_or(|r| r.covers(roles, &m.name))
            })
            .cloned()
            .collect()
    }

    /// Takes the configured servers as they are now (before `initialize`).
    pub(super) fn sync_members(&mut self) {
        self.members.borrow_and_update();
        self.links = self.wanted().iter().map(Link::new).collect();
    }

    /// The configuration changed: new servers are opened (the client is told its lists
    /// changed once they are up), removed or replaced ones closed after their last answers
    /// (the client is told at once).
    pub(super) async fn members_changed(&mut self) {
        self.members.borrow_and_update();
        let wanted = self.wanted();
        let mut old = std::mem::take(&mut self.links);
        let mut changed = false;
        for m in &wanted {
            let same = old
                .iter()
                .position(|l| *l.name == *m.name && Arc::ptr_eq(&l.relay, &m.relay));
            match same {
                Some(i) => self.links.push(old.remove(i)),
                // Announced when it is up (`link_up`).
                None => self.links.push(Link::new(m)),
            }
        }
        for link in old {
            changed = true;
            self.routes.forget_server(&link.name);
            if !wanted.iter().any(|m| *m.name == *link.name) {
                self.agg.status.forget(&link.name);
            }
            info!(server = %link.name, "aggregate: server left the session");
            self.retire(link);
        }
        if self.hello.is_some() {
            for i in 0..self.links.len() {
                if self.links[i].state.is_none() {
                    self.open_link(i, None);
                }
            }
        }
        if changed {
            self.lists_changed().await;
        }
    }

    /// A link no longer routed to stays until its pending answers arrived.
    fn retire(&mut self, link: Link) {
        let busy = link
            .key
            .is_some_and(|k| self.pending.values().any(|p| p.key == k));
        if busy {
            self.retired.push(link);
        }
    }

    /// Drops retired links that have nothing pending any more.
    pub(super) fn drain_retired(&mut self) {
        if self.retired.is_empty() {
            return;
        }
        let pending = &self.pending;
        self.retired
            .retain(|l| l.key.is_some_and(|k| pending.values().any(|p| p.key == k)));
    }

    /// Opens the link of server `i` and sends it the client's `initialize`.
    pub(super) fn open_link(&mut self, i: usize, job: Option<u64>) {
        let Some(params) = self.hello.as_ref().map(|h| h.params.clone()) else {
            return;
        };
        self.next_key += 1;
        let key = self.next_key;
        let (relay, name) = (self.links[i].relay.clone(), self.links[i].name.clone());
        let (conn, rx, ended) = link::open(relay, self.caller.clone(), key);
        self.watch_link(key, rx);
        self.ended.push(ended);
        let id = self.fresh_id();
        let link = &mut self.links[i];
        link.key = Some(key);
        link.conn = Some(conn);
        link.state = Some(State::Starting);
        link.retry_at = None;
        self.agg.status.set(&name, State::Starting, None);
        let sent = self.send_to(key, wire::request(id, "initialize", Some(&params)));
        self.pending.insert(
            id,
            super::Pending {
                key,
                purpose: Purpose::Init { job },
            },
        );
        if sent.is_err() {
            warn!(server = %name, "aggregate: could not send initialize");
        }
    }

    /// The server of link `key` answered `initialize`.
    pub(super) async fn link_up(&mut self, key: u32, init: ServerInit, late: bool) {
        let Some(i) = self.links.iter().position(|l| l.key == Some(key)) else {
            return;
        };
        let link = &mut self.links[i];
        link.state = Some(State::Up);
        link.init = Some(init);
        link.backoff = FIRST_BACKOFF;
        let name = link.name.clone();
        self.agg.status.set(&name, State::Up, None);
        info!(server = %name, "aggregate: server up");
        if self.initialized {
            let note = wire::notification("notifications/initialized", "{}");
            let _ = self.send_to(key, note);
        }
        if late {
            self.routes.forget_server(&name);
            self.lists_changed().await;
        }
    }

    /// The session of link `key` ended on its own (its child exited, it expired).
    pub(super) async fn link_ended(&mut self, key: u32) {
        self.link_failed(
            key,
            "its session ended (the server exited or restarted)".into(),
        )
        .await;
    }

    /// Link `key` is down: its pending requests are answered, its routes forgotten, the
    /// client told (when it was up), and a reopen scheduled.
    pub(super) async fn link_failed(&mut self, key: u32, reason: String) {
        let Some(i) = self.links.iter().position(|l| l.key == Some(key)) else {
            self.retired.retain(|l| l.key != Some(key));
            self.fail_pending(key, &reason).await;
            return;
        };
        let link = &mut self.links[i];
        if link.state == Some(State::Down) {
            // Already down (its session's end follows the failure that took it down).
            return;
        }
        let was_up = link.is_up();
        link.state = Some(State::Down);
        link.conn = None;
        link.init = None;
        link.retry_at = Some(Instant::now() + link.backoff);
        link.backoff = (link.backoff * 2).min(MAX_BACKOFF);
        let name = link.name.clone();
        warn!(server = %name, reason = %reason, "aggregate: server down");
        self.agg
            .status
            .set(&name, State::Down, Some(reason.clone()));
        self.routes.forget_server(&name);
        self.fail_pending(key, &reason).await;
        if was_up {
            self.lists_changed().await;
        }
    }

    /// Answers everything still waiting on link `key`.
    async fn fail_pending(&mut self, key: u32, reason: &str) {
        let dead: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.key == key)
            .map(|(id, _)| *id)
            .collect();
        self.asks.retain(|_, (k, _)| *k != key);
        for id in dead {
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            match p.purpose {
                Purpose::Forward { client, .. } => {
                    self.by_client.remove(&client);
                    self.refuse(&client, &Error::ChildExited).await;
                }
                Purpose::Init { job } => self.init_settled(job).await,
                Purpose::Part { job } => self.part_done(job, (key, id), None, reason).await,
            }
        }
    }

    /// The next deadline: a pending `initialize`'s, or a link's reopen.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let reopen = self.links.iter().filter_map(|l| l.retry_at);
        let init = self.jobs.values().filter_map(super::jobs::Job::deadline);
        reopen.chain(init).min()
    }

    /// Deadlines that passed: `initialize` answered without the slow servers, links
    /// reopened.
    pub(super) async fn on_timer(&mut self) {
        let now = Instant::now();
        self.expire_inits(now).await;
        if self.hello.is_none() {
            return;
        }
        for i in 0..self.links.len() {
            if self.links[i].retry_at.is_some_and(|at| at <= now) {
                info!(server = %self.links[i].name, "aggregate: reopening server session");
                self.open_link(i, None);
            }
        }
    }
}
