//! The session table: every live session with what its owner bound it to (the relay: its
//! child), a count per owning principal against the caps, and idle expiry. What a session is
//! and holds is `session.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Session, SessionId};

/// All live sessions, keyed by id, with a count per owning principal. Each session is kept
/// with `B`, what its owner bound it to (the relay: its child), which this layer never reads.
#[derive(Debug)]
pub(crate) struct SessionTable<B> {
    inner: Mutex<Table<B>>,
}

impl<B> Default for SessionTable<B> {
    fn default() -> Self {
        SessionTable {
            inner: Mutex::new(Table {
                map: HashMap::new(),
                per_owner: HashMap::new(),
            }),
        }
    }
}

#[derive(Debug)]
struct Table<B> {
    map: HashMap<SessionId, (Arc<Session>, B)>,
    per_owner: HashMap<String, usize>,
}

/// Why the sweep ended a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// Already ended (DELETE, stream end, child exit): only removed from the table.
    Ended,
    /// No open stream and no request in flight for `--session-idle-timeout`: a client that
    /// left without DELETE.
    Idle,
    /// No open stream for `--session-ttl`, even with requests in flight (a client gone
    /// mid-call that never came back for the answers).
    Ttl,
}

impl Expiry {
    /// The log and metric word.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Expiry::Ended => "ended",
            Expiry::Idle => "idle_timeout",
            Expiry::Ttl => "session_ttl",
        }
    }
}

/// Which cap refused a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The relay-wide cap.
    Global,
    /// The cap per authenticated principal.
    Principal,
}

impl<B> Table<B> {
    fn take(&mut self, id: &SessionId) -> Option<(Arc<Session>, B)> {
        let (s, bound) = self.map.remove(id)?;
        if let Some(owner) = s.identity() {
            if let Some(n) = self.per_owner.get_mut(owner) {
                *n -= 1;
                if *n == 0 {
                    self.per_owner.remove(owner);
                }
            }
        }
        Some((s, bound))
    }
}

impl<B: Clone> SessionTable<B> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table<B>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn count(&self) -> usize {
        self.lock().map.len()
    }

    /// Sessions `owner` holds now.
    pub(crate) fn count_of(&self, owner: &str) -> usize {
        self.lock().per_owner.get(owner).copied().unwrap_or(0)
    }

    /// Inserts unless the table holds `cap` sessions already, or the session's owner holds
    /// `per_owner` (anonymous sessions have only the global cap).
    pub(crate) fn insert(
        &self,
        session: Arc<Session>,
        bound: B,
        cap: usize,
        per_owner: usize,
    ) -> Result<(), Full> {
        let mut t = self.lock();
        if t.map.len() >= cap {
            return Err(Full::Global);
        }
        if let Some(owner) = session.identity() {
            let n = t.per_owner.entry(owner.to_owned()).or_default();
            if *n >= per_owner {
                return Err(Full::Principal);
            }
            *n += 1;
        }
        t.map.insert(session.id().clone(), (session, bound));
        Ok(())
    }

    /// A live session; an ended one is removed and reported as absent.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Session>> {
        let mut t = self.lock();
        let key = SessionId(id.to_owned());
        let session = t.map.get(&key)?.0.clone();
        if session.is_ended() {
            t.take(&key);
            return None;
        }
        Some(session)
    }

    /// Binds a session the table holds (a reserved one, once opened); false if it is gone.
    pub(crate) fn bind(&self, session: &SessionId, bound: B) -> bool {
        match self.lock().map.get_mut(session) {
            Some(entry) => {
                entry.1 = bound;
                true
            }
            None => false,
        }
    }

    /// What `session` is bound to, while the table holds it.
    pub(crate) fn bound(&self, session: &SessionId) -> Option<B> {
        self.lock().map.get(session).map(|(_, b)| b.clone())
    }

    pub(crate) fn remove(&self, id: &SessionId) -> Option<(Arc<Session>, B)> {
        self.lock().take(id)
    }

    /// Removes and returns, with why, the ended sessions and those without a connection for
    /// `idle` (and no request in flight) or for `ttl` (whatever is in flight).
    pub(crate) fn take_expired(
        &self,
        idle: Duration,
        ttl: Duration,
    ) -> Vec<(Arc<Session>, B, Expiry)> {
        let mut t = self.lock();
        let expired: Vec<(SessionId, Expiry)> = t
            .map
            .values()
            .filter_map(|(s, _)| s.expiry(idle, ttl).map(|why| (s.id().clone(), why)))
            .collect();
        expired
            .into_iter()
            .filter_map(|(id, why)| t.take(&id).map(|(s, b)| (s, b, why)))
            .collect()
    }

    pub(crate) fn all(&self) -> Vec<(Arc<Session>, B)> {
        self.lock().map.values().cloned().collect()
    }

    pub(crate) fn drain(&self) -> Vec<(Arc<Session>, B)> {
        let mut t = self.lock();
        t.per_owner.clear();
        t.map.drain().map(|(_, e)| e).collect()
    }
}
