//! The requests an aggregate session answers from several servers: `initialize` (every
//! server's, merged by `aggregate/init.rs`, with a deadline past which slow servers are left
//! out in `open` mode and join later), the lists (one page of each server, merged by
//! `aggregate/lists.rs`, paged with `aggregate/cursor.rs`; or, to find the server of a name
//! or URI no list showed yet, every page of every server) and `logging/setLevel` (every
//! server that logs; answered `{}`).
//!
//! `failure_mode = "open"`: a server that fails or is down is left out (and `/health` says
//! why). `"closed"`: `initialize` or a list fails with the relay's `child_unavailable`
//! error (-31006); which server and why go to the log and `/health` only.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

use super::{Driver, Hello, Pending, Purpose};
use crate::aggregate::cursor;
use crate::aggregate::init::{self, ServerInit};
use crate::aggregate::lists::{read_page, ListKind, Merge, Page};
use crate::aggregate::status::State;
use crate::aggregate::wire::{self, Msg};
use crate::config::servers::FailureMode;
use crate::error::Error;

/// How long the client's `initialize` waits for the servers.
pub(crate) const INIT_DEADLINE: Duration = Duration::from_secs(10);

/// A request answered from several servers.
#[derive(Debug)]
pub(super) enum Job {
    Init {
        client: Box<str>,
        waiting: usize,
        deadline: Instant,
    },
    List(ListJob),
    Level {
        client: Box<str>,
        waiting: usize,
    },
}

impl Job {
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self {
            Job::Init { deadline, .. } => Some(*deadline),
            _ => None,
        }
    }

    /// A full listing to find the server of a name or URI.
    pub(super) fn is_internal_list(&self) -> bool {
        matches!(self, Job::List(l) if l.client.is_none())
    }
}

#[derive(Debug)]
pub(super) struct ListJob {
    kind: ListKind,
    /// The client's request; `None`: a full listing to find a server (every page).
    client: Option<Box<str>>,
    parts: Vec<Part>,
    /// A server failed (what `"closed"` answers).
    failed: Option<String>,
}

#[derive(Debug)]
struct Part {
    server: Arc<str>,
    /// The id of the page request it waits for (`None`: settled).
    asked: Option<u64>,
    pages: Vec<Page>,
}

/// Most pages a full listing asks one server for.
const MAX_PAGES: usize = 100;

impl Driver {
    fn new_job(&mut self, job: Job) -> u64 {
        let id = self.fresh_id();
        self.jobs.insert(id, job);
        id
    }

    fn closed(&self) -> bool {
        self.agg.spec.failure_mode == FailureMode::Closed
    }

    /// The client's `initialize`: sent to every server.
    pub(super) async fn initialize(&mut self, msg: &Msg) {
        let Some(client) = msg.id().map(Box::<str>::from) else {
            return;
        };
        let params = msg.params().unwrap_or("{}").to_owned();
        let version = serde_json::from_str::<serde_json::Value>(&params)
            .ok()
            .and_then(|v| v.get("protocolVersion")?.as_str().map(str::to_owned));
        self.hello = Some(Hello { params, version });
        let deadline = Instant::now() + INIT_DEADLINE;
        let waiting = self.links.len();
        let job = self.new_job(Job::Init {
            client,
            waiting,
            deadline,
        });
        for i in 0..self.links.len() {
            self.open_link(i, Some(job));
        }
        if waiting == 0 {
            self.finish_init(job).await;
        }
    }

    /// A server answered its `initialize`.
    pub(super) async fn init_answer(&mut self, key: u32, msg: &Msg, job: Option<u64>) {
        let live = job.is_some_and(|j| self.jobs.contains_key(&j));
        match msg.result().and_then(ServerInit::read) {
            Some(init) => self.link_up(key, init, !live).await,
            None => {
                let why = error_message(msg).unwrap_or_else(|| "bad initialize answer".into());
                self.link_failed(key, format!("initialize failed: {why}"))
                    .await;
            }
        }
        self.init_settled(job).await;
    }

    /// One server's `initialize` is settled (answered, failed or its link gone).
    pub(super) async fn init_settled(&mut self, job: Option<u64>) {
        let Some(j) = job else { return };
        if let Some(Job::Init { waiting, .. }) = self.jobs.get_mut(&j) {
            *waiting = waiting.saturating_sub(1);
            if *waiting == 0 {
                self.finish_init(j).await;
            }
        }
    }

    /// The client's `initialize` waited long enough: the servers still starting are left
    /// out (and join later), or, `"closed"`, it fails.
    pub(super) async fn expire_inits(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.deadline().is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for job in due {
            for link in self
                .links
                .iter()
                .filter(|l| l.state == Some(State::Starting))
            {
                let why = format!(
                    "initialize not answered within {}s",
                    INIT_DEADLINE.as_secs()
                );
                self.agg.status.set(&link.name, State::Starting, Some(why));
            }
            self.finish_init(job).await;
        }
    }

    /// Answers the client's `initialize` from the servers that are up.
    async fn finish_init(&mut self, job: u64) {
        let Some(Job::Init { client, .. }) = self.jobs.remove(&job) else {
            return;
        };
        if self.closed() {
            if let Some(down) = self.links.iter().find(|l| !l.is_up()) {
                let why = self.agg.status.get(&down.name).and_then(|h| h.reason);
                let why = why.unwrap_or_else(|| "not started".into());
                warn!(server = %down.name, reason = %why, "aggregate: initialize refused (failure_mode closed)");
                self.refuse(&client, &Error::ChildUnavailable).await;
                return;
            }
        }
        let servers: Vec<(&str, &ServerInit)> = self
            .links
            .iter()
            .filter(|l| l.is_up())
            .filter_map(|l| Some((&*l.name, l.init.as_ref()?)))
            .collect();
        let version = self.hello.as_ref().and_then(|h| h.version.as_deref());
        let result = init::merge(version, &servers, &self.agg.naming);
        self.send(wire::result(&client, &result)).await;
    }

    /// A client's list request: one page of each server that has one.
    pub(super) async fn list(&mut self, kind: ListKind, msg: &Msg) {
        let Some(client) = msg.id().map(Box::<str>::from) else {
            return;
        };
        let cursor = msg.params().and_then(cursor_param);
        let wanted: Vec<(usize, Option<String>)> = match cursor {
            None => (0..self.links.len()).map(|i| (i, None)).collect(),
            Some(c) => match cursor::decode(&c).filter(|n| n.len() <= self.links.len()) {
                Some(next) => next
                    .into_iter()
                    .filter_map(|(server, c)| Some((self.link_index(&server)?, Some(c))))
                    .collect(),
                None => {
                    self.send(wire::error(&client, -32602, "Invalid cursor"))
                        .await;
                    return;
                }
            },
        };
        if self.closed() {
            if let Some(&(i, _)) = wanted.iter().find(|(i, _)| !self.links[*i].is_up()) {
                let server = &self.links[i].name;
                warn!(server = %server, "aggregate: list refused, server down (failure_mode closed)");
                self.refuse(&client, &Error::ChildUnavailable).await;
                return;
            }
        }
        self.start_list(kind, Some(client), wanted).await;
    }

    /// Lists every page of every server, to find the server of a name or URI (unless one
    /// is already doing so).
    pub(super) async fn resolve(&mut self, kind: ListKind) {
        let running = self
            .jobs
            .values()
            .any(|j| matches!(j, Job::List(l) if l.client.is_none() && l.kind == kind));
        if !running {
            let all = (0..self.links.len()).map(|i| (i, None)).collect();
            self.start_list(kind, None, all).await;
        }
    }

    async fn start_list(
        &mut self,
        kind: ListKind,
        client: Option<Box<str>>,
        wanted: Vec<(usize, Option<String>)>,
    ) {
        let job = self.fresh_id();
        let mut parts = Vec::new();
        for (i, cursor) in wanted {
            let link = &self.links[i];
            let Some(key) = link.key.filter(|_| link.offers(kind.capability())) else {
                continue;
            };
            let server = link.name.clone();
            if let Some(asked) = self.ask_page(job, key, kind, cursor.as_deref()) {
                parts.push(Part {
                    server,
                    asked: Some(asked),
                    pages: Vec::new(),
                });
            }
        }
        let list = ListJob {
            kind,
            client,
            parts,
            failed: None,
        };
        self.jobs.insert(job, Job::List(list));
        self.maybe_finish_list(job).await;
    }

    /// Sends one page request for `job` on link `key`; its id, or `None` when it could not.
    fn ask_page(
        &mut self,
        job: u64,
        key: u32,
        kind: ListKind,
        cursor: Option<&str>,
    ) -> Option<u64> {
        let id = self.fresh_id();
        let params = cursor.map(|c| format!(r#"{{"cursor":{}}}"#, wire::quote(c)));
        let bytes = wire::request(id, kind.method(), params.as_deref());
        if self.send_to(key, bytes).is_err() {
            return None;
        }
        self.pending.insert(
            id,
            Pending {
                key,
                purpose: Purpose::Part { job },
            },
        );
        Some(id)
    }

    /// One part of a fan-out settled: `msg` is the server's answer to request `id` on link
    /// `key` (`None`: its link went down, for `reason`). A full listing follows the server's
    /// `nextCursor`, up to [`MAX_PAGES`] pages and until it repeats a cursor it gave.
    pub(super) async fn part_done(
        &mut self,
        job: u64,
        (key, id): (u32, u64),
        msg: Option<&Msg>,
        reason: &str,
    ) {
        match self.jobs.get_mut(&job) {
            Some(Job::Level { waiting, .. }) => {
                *waiting = waiting.saturating_sub(1);
                if *waiting == 0 {
                    if let Some(Job::Level { client, .. }) = self.jobs.remove(&job) {
                        self.send(wire::result(&client, "{}")).await;
                    }
                }
                return;
            }
            Some(Job::List(_)) => {}
            _ => return,
        }
        let follow = match self.jobs.get(&job) {
            Some(Job::List(l)) => l.client.is_none(),
            _ => false,
        };
        let kind = match self.jobs.get(&job) {
            Some(Job::List(l)) => l.kind,
            _ => return,
        };
        let page = msg.and_then(|m| read_page(kind, m));
        let Some(Job::List(list)) = self.jobs.get(&job) else {
            return;
        };
        let Some(part) = list.parts.iter().find(|p| p.asked == Some(id)) else {
            return;
        };
        let next = page
            .as_ref()
            .and_then(|p| p.next.clone())
            .filter(|_| follow);
        let endless = next.as_ref().is_some_and(|c| {
            part.pages.len() + 1 >= MAX_PAGES
                || part.pages.iter().any(|p| p.next.as_ref() == Some(c))
        });
        let asked = match &next {
            Some(c) if !endless => self.ask_page(job, key, kind, Some(c)),
            _ => None,
        };
        let Some(Job::List(list)) = self.jobs.get_mut(&job) else {
            return;
        };
        let Some(part) = list.parts.iter_mut().find(|p| p.asked == Some(id)) else {
            return;
        };
        part.asked = asked;
        if endless {
            warn!(server = %part.server, method = kind.method(), "aggregate: listing stopped (too many pages or a repeated cursor)");
            list.failed
                .get_or_insert(format!("server {} gave an endless listing", part.server));
        }
        match page {
            Some(p) => part.pages.push(p),
            None => {
                let why = msg
                    .and_then(error_message)
                    .unwrap_or_else(|| reason.to_owned());
                warn!(server = %part.server, method = kind.method(), error = %why, "aggregate: list failed");
                list.failed
                    .get_or_insert(format!("server {} failed: {why}", part.server));
            }
        }
        self.maybe_finish_list(job).await;
    }

    async fn maybe_finish_list(&mut self, job: u64) {
        let done = matches!(self.jobs.get(&job), Some(Job::List(l)) if l.parts.iter().all(|p| p.asked.is_none()));
        if !done {
            return;
        }
        let Some(Job::List(list)) = self.jobs.remove(&job) else {
            return;
        };
        let failed = list.failed.is_some();
        if let (Some(client), Some(why)) = (&list.client, &list.failed) {
            if self.closed() {
                warn!(reason = %why, "aggregate: list refused (failure_mode closed)");
                self.refuse(client, &Error::ChildUnavailable).await;
                return;
            }
        }
        let pages: Vec<(&Arc<str>, &Page)> = list
            .parts
            .iter()
            .flat_map(|p| p.pages.iter().map(move |page| (&p.server, page)))
            .collect();
        let merge = Merge {
            kind: list.kind,
            naming: &self.agg.naming,
            subset: self.agg.subset.as_ref(),
        };
        let mut conflicts = Vec::new();
        let items = merge.items(&pages, &mut self.routes, &mut conflicts);
        for c in conflicts {
            if self.agg.status.conflict(c.clone()) {
                warn!(conflict = %c, "aggregate: two servers give one name; the first keeps it");
            }
        }
        let next: Vec<(String, String)> = list
            .parts
            .iter()
            .filter_map(|p| Some((p.server.to_string(), p.pages.last()?.next.clone()?)))
            .collect();
        if !failed && (list.client.is_none() || next.is_empty()) {
            self.routes.set_complete(list.kind);
        }
        let Some(client) = list.client else {
            self.retry_waiting().await;
            return;
        };
        let next = cursor::encode(next)
            .map(|c| format!(r#","nextCursor":{}"#, wire::quote(&c)))
            .unwrap_or_default();
        let result = format!(r#"{{"{}":{items}{next}}}"#, list.kind.key());
        self.send(wire::result(&client, &result)).await;
    }

    /// `logging/setLevel`: to every server that logs, answered `{}` when they all answered.
    pub(super) async fn set_level(&mut self, msg: &Msg) {
        let Some(client) = msg.id().map(Box::<str>::from) else {
            return;
        };
        let job = self.new_job(Job::Level {
            client: client.clone(),
            waiting: 0,
        });
        let mut sent = 0;
        for i in 0..self.links.len() {
            let (key, offers) = (self.links[i].key, self.links[i].offers("logging"));
            let Some(key) = key.filter(|_| offers) else {
                continue;
            };
            let id = self.fresh_id();
            if self.send_to(key, msg.with_id(&id.to_string())).is_ok() {
                self.pending.insert(
                    id,
                    Pending {
                        key,
                        purpose: Purpose::Part { job },
                    },
                );
                sent += 1;
            }
        }
        if sent == 0 {
            self.jobs.remove(&job);
            self.send(wire::result(&client, "{}")).await;
        } else if let Some(Job::Level { waiting, .. }) = self.jobs.get_mut(&job) {
            *waiting = sent;
        }
    }
}

/// `params.cursor` of a list request.
fn cursor_param(params: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct P {
        cursor: Option<String>,
    }
    serde_json::from_str::<P>(params).ok()?.cursor
}

/// `error.message` of an error answer.
fn error_message(msg: &Msg) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&msg.bytes).ok()?;
    let e = v.get("error")?;
    let text = e.get("message").and_then(|m| m.as_str()).unwrap_or("error");
    let code = e
        .get("code")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    Some(format!("{text} ({code})"))
}
