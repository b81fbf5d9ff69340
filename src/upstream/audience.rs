//! Who hears what a child says when no request claims it (PROTOCOL.md §5.4, §5.9).
//!
//! Every child has an [`Audience`]: the sessions it serves. A per-session child has one member
//! and everything unclaimed goes to it, untouched. A shared child has many, and the relay keeps
//! the process-global state per member: the log level each session asked for (the child gets
//! the most verbose of them) and the resources each session subscribed to (the child gets one
//! subscribe per URI, from the first subscriber, and one unsubscribe after the last). Unclaimed
//! notifications then fan out by kind: `*/list_changed` to everyone, `resources/updated` to
//! the URI's subscribers, `message` to sessions whose level admits it, anything else to nobody
//! (an unknown notification could carry one user's data to another). Routing of claimed
//! messages is `upstream.rs`'s job; the restart loop (`supervisor.rs`) replays the union.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use serde::Deserialize;

use crate::jsonrpc::Frame;
use crate::session::stream::Stream;
use crate::session::{Session, SessionId};

use crate::era::LOG_LEVELS as LEVELS;

/// A log level, ordered by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Level(u8);

impl Level {
    pub(crate) fn parse(name: &str) -> Option<Level> {
        LEVELS
            .iter()
            .position(|l| *l == name)
            .and_then(|i| u8::try_from(i).ok())
            .map(Level)
    }

    pub(crate) fn as_str(self) -> &'static str {
        LEVELS.get(usize::from(self.0)).copied().unwrap_or("debug")
    }
}

/// Something the child must be told after the audience changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Unsubscribe(String),
    SetLevel(Level),
}

/// The sessions a child serves.
#[derive(Debug)]
pub(crate) struct Audience {
    shared: bool,
    inner: Mutex<Members>,
}

#[derive(Debug, Default)]
struct Members {
    sessions: HashMap<SessionId, Member>,
    /// URI → number of sessions (and listen streams) subscribed to it.
    subs: HashMap<String, usize>,
    /// Modern listen streams served by this legacy child (`relay/listen.rs`), by key.
    listens: HashMap<u64, Listener>,
}

/// A 2026-07-28 `subscriptions/listen` stream that a legacy child's notifications reach.
#[derive(Debug)]
pub(crate) struct Listener {
    pub stream: Weak<Stream>,
    /// The listen request's raw id: the `subscriptionId` its notifications carry.
    pub id: String,
    pub tools: bool,
    pub prompts: bool,
    pub resources: bool,
    pub uris: BTreeSet<String>,
}

impl Listener {
    fn wants(&self, method: &str, uri: Option<&String>) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools,
            "notifications/prompts/list_changed" => self.prompts,
            "notifications/resources/list_changed" => self.resources,
            "notifications/resources/updated" => uri.is_some_and(|u| self.uris.contains(u)),
            _ => false,
        }
    }
}

#[derive(Debug)]
struct Member {
    session: Weak<Session>,
    level: Option<Level>,
    subs: BTreeSet<String>,
}

impl Audience {
    pub(crate) fn new(shared: bool) -> Arc<Audience> {
        Arc::new(Audience {
            shared,
            inner: Mutex::new(Members::default()),
        })
    }

    /// True for a shared child: the relay owns `initialize`, log levels and subscriptions.
    pub(crate) fn is_shared(&self) -> bool {
        self.shared
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Members> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn join(&self, session: &Arc<Session>) {
        self.lock().sessions.insert(
            session.id().clone(),
            Member {
                session: Arc::downgrade(session),
                level: None,
                subs: BTreeSet::new(),
            },
        );
    }

    /// Removes a session; returns what the child must be told so the union stays right.
    pub(crate) fn leave(&self, id: &SessionId) -> Vec<Command> {
        let mut m = self.lock();
        let Some(member) = m.sessions.remove(id) else {
            return Vec::new();
        };
        let mut commands: Vec<Command> = member
            .subs
            .into_iter()
            .filter(|uri| m.release(uri))
            .map(Command::Unsubscribe)
            .collect();
        let before = member.level.into_iter().chain(m.levels()).min();
        let after = m.levels().min();
        if let (Some(after), true) = (after, before != after) {
            commands.push(Command::SetLevel(after));
        }
        commands
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The only member of a per-session child's audience.
    pub(crate) fn sole(&self) -> Option<Arc<Session>> {
        let m = self.lock();
        match m.sessions.len() {
            1 => m.sessions.values().next().and_then(|s| s.session.upgrade()),
            _ => None,
        }
    }

    /// Records a subscription; true when it is the URI's first (forward it to the child).
    pub(crate) fn subscribe(&self, id: &SessionId, uri: &str) -> bool {
        let mut m = self.lock();
        let Some(member) = m.sessions.get_mut(id) else {
            return false;
        };
        if !member.subs.insert(uri.to_owned()) {
            return false;
        }
        let n = m.subs.entry(uri.to_owned()).or_default();
        *n += 1;
        *n == 1
    }

    /// Drops a subscription; true when it was the URI's last (forward it to the child).
    pub(crate) fn unsubscribe(&self, id: &SessionId, uri: &str) -> bool {
        let mut m = self.lock();
        let removed = m
            .sessions
            .get_mut(id)
            .is_some_and(|member| member.subs.remove(uri));
        removed && m.release(uri)
    }

    /// Sets a session's level; returns the child's new level when the union changed.
    pub(crate) fn set_level(&self, id: &SessionId, level: Level) -> Option<Level> {
        let mut m = self.lock();
        let before = m.levels().min();
        let member = m.sessions.get_mut(id)?;
        member.level = Some(level);
        let after = m.levels().min();
        (after != before).then_some(after).flatten()
    }

    /// What a restarted child must be told again: every subscribed URI and the level union.
    pub(crate) fn replay(&self) -> (Vec<String>, Option<Level>) {
        let m = self.lock();
        (m.subs.keys().cloned().collect(), m.levels().min())
    }

    /// Whether a log message of `level` may reach `session`: no level set means everything the
    /// child sends (its own default).
    pub(crate) fn admits(&self, id: &SessionId, level: Option<Level>) -> bool {
        let m = self.lock();
        match (m.sessions.get(id).and_then(|s| s.level), level) {
            (Some(min), Some(l)) => l >= min,
            _ => true,
        }
    }

    /// Adds a listen stream; returns the URIs the child must now be subscribed to.
    pub(crate) fn listen(&self, key: u64, listener: Listener) -> Vec<String> {
        let mut m = self.lock();
        let mut first = Vec::new();
        for uri in &listener.uris {
            let n = m.subs.entry(uri.clone()).or_default();
            *n += 1;
            if *n == 1 {
                first.push(uri.clone());
            }
        }
        m.listens.insert(key, listener);
        first
    }

    /// Removes a listen stream; returns the URIs nobody is subscribed to any more.
    pub(crate) fn unlisten(&self, key: u64) -> Vec<String> {
        let mut m = self.lock();
        let Some(l) = m.listens.remove(&key) else {
            return Vec::new();
        };
        l.uris.into_iter().filter(|u| m.release(u)).collect()
    }

    /// Sends a notification to the listen streams that asked for its kind, tagged with
    /// their `subscriptionId`.
    fn to_listens(&self, frame: &Frame, method: &str) {
        let uri = notification_field(frame, Field::Uri);
        let targets: Vec<(Arc<Stream>, String)> = self
            .lock()
            .listens
            .values()
            .filter(|l| l.wants(method, uri.as_ref()))
            .filter_map(|l| Some((l.stream.upgrade()?, l.id.clone())))
            .collect();
        for (stream, id) in targets {
            if let Some(tagged) = tag(frame, method, &id) {
                stream.push(tagged, false);
            }
        }
    }

    /// Fans an unclaimed notification out to the members that should see it; returns how
    /// many got it.
    pub(crate) fn fan_out(&self, frame: &Frame) -> usize {
        let method = frame.method().unwrap_or_default();
        self.to_listens(frame, method);
        let targets: Vec<Arc<Session>> = {
            let m = self.lock();
            let pick = |f: &dyn Fn(&Member) -> bool| -> Vec<Arc<Session>> {
                m.sessions
                    .values()
                    .filter(|s| f(s))
                    .filter_map(|s| s.session.upgrade())
                    .collect()
            };
            if method.starts_with("notifications/") && method.ends_with("/list_changed") {
                pick(&|_| true)
            } else if method == "notifications/resources/updated" {
                let uri = notification_field(frame, Field::Uri);
                pick(&|s| uri.as_ref().is_some_and(|u| s.subs.contains(u)))
            } else if method == "notifications/message" {
                let level = level_of(frame);
                pick(&|s| match (s.level, level) {
                    (Some(min), Some(l)) => l >= min,
                    _ => true,
                })
            } else {
                Vec::new()
            }
        };
        deliver(&targets, frame.bytes());
        targets.len()
    }
}

impl Members {
    fn levels(&self) -> impl Iterator<Item = Level> + '_ {
        self.sessions.values().filter_map(|s| s.level)
    }

    /// One subscriber fewer; true when none is left.
    fn release(&mut self, uri: &str) -> bool {
        match self.subs.get_mut(uri) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.subs.remove(uri);
                true
            }
            None => false,
        }
    }
}

/// The notification with `_meta["io.modelcontextprotocol/subscriptionId"]` set to `id`.
fn tag(frame: &Frame, method: &str, id: &str) -> Option<Bytes> {
    let mut params = frame
        .params::<serde_json::Map<String, serde_json::Value>>()
        .unwrap_or_default();
    let id: serde_json::Value = serde_json::from_str(id).ok()?;
    let meta = params
        .entry("_meta")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    meta.as_object_mut()?
        .insert("io.modelcontextprotocol/subscriptionId".into(), id);
    let line = serde_json::json!({ "jsonrpc": "2.0", "method": method, "params": params });
    serde_json::to_vec(&line).ok().map(Bytes::from)
}

fn deliver(targets: &[Arc<Session>], bytes: &Bytes) {
    for s in targets {
        s.standalone().push(bytes.clone(), false);
    }
}

#[derive(Clone, Copy)]
enum Field {
    Uri,
    Level,
}

/// `params.uri` or `params.level` of a notification (only read on the fan-out path).
fn notification_field(frame: &Frame, field: Field) -> Option<String> {
    #[derive(Deserialize)]
    struct Params {
        uri: Option<String>,
        level: Option<String>,
    }
    let p = frame.params::<Params>()?;
    match field {
        Field::Uri => p.uri,
        Field::Level => p.level,
    }
}

/// `params.level` of a `logging/setLevel` request or a `notifications/message`.
pub(crate) fn level_of(frame: &Frame) -> Option<Level> {
    notification_field(frame, Field::Level).and_then(|l| Level::parse(&l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_order_by_severity() {
        let debug = Level::parse("debug").unwrap();
        let error = Level::parse("error").unwrap();
        assert!(debug < error);
        assert_eq!(error.as_str(), "error");
        assert!(Level::parse("verbose").is_none());
    }
}
