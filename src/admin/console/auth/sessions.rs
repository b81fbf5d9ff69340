//! The console's server-side state: its sessions (a random id in a cookie naming an entry
//! here, with the operator's name and the session's CSRF token) and the login throttle.
//!
//! Owns: [`Gate`], [`Sessions`] (bounded: at most [`MAX_SESSIONS`], 12 h lifetime, 1 h idle;
//! ids are kept only as SHA-256 digests) and [`Throttle`] (failed logins per client address).
//! Does not own: cookies and forms (`auth.rs`), checking passwords (`Operators`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Sessions kept at most; the least recently used one goes first when a new one needs room.
pub(crate) const MAX_SESSIONS: usize = 256;
/// How long a console session lives at most.
pub(crate) const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How long a console session lives without a request.
pub(crate) const IDLE: Duration = Duration::from_secs(3600);
/// Failed logins from one address before it is locked out for [`LOCKOUT`].
pub(crate) const ATTEMPTS: u32 = 5;
/// The lockout window (failures older than this are forgotten).
pub(crate) const LOCKOUT: Duration = Duration::from_secs(300);
/// Addresses the throttle remembers at most.
const MAX_ADDRESSES: usize = 4096;

/// The console's sessions and login throttle, shared by its routes.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    pub sessions: Sessions,
    pub throttle: Throttle,
}

/// One console session.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    csrf: String,
    created: Instant,
    used: Instant,
}

/// The console's sessions, keyed by the digest of their id.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<[u8; 32], Entry>>,
}

// === impl Sessions ===

impl Sessions {
    /// Starts a session for `name`: its id (256 random bits, base64url) and CSRF token.
    pub(crate) fn start(&self, name: &str) -> (String, String) {
        let id = random(32);
        let csrf = random(32);
        let now = Instant::now();
        let mut map = lock(&self.map);
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, e| live(e, now));
        }
        if map.len() >= MAX_SESSIONS {
            let oldest = map.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| *k);
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        map.insert(
            digest(&id),
            Entry {
                name: name.to_owned(),
                csrf: csrf.clone(),
                created: now,
                used: now,
            },
        );
        (id, csrf)
    }

    /// The operator's name and CSRF token of the live session `id` (its idle clock restarts).
    pub(crate) fn get(&self, id: &str) -> Option<(String, String)> {
        let now = Instant::now();
        let key = digest(id);
        let mut map = lock(&self.map);
        let entry = map.get_mut(&key)?;
        if !live(entry, now) {
            map.remove(&key);
            return None;
        }
        entry.used = now;
        Some((entry.name.clone(), entry.csrf.clone()))
    }

    /// Ends the session `id`.
    pub(crate) fn end(&self, id: &str) {
        lock(&self.map).remove(&digest(id));
    }

    /// How many sessions are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

fn live(e: &Entry, now: Instant) -> bool {
    now.duration_since(e.created) < LIFETIME && now.duration_since(e.used) < IDLE
}

/// Failed console logins of one address in the current window.
#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    since: Instant,
    locked_until: Option<Instant>,
}

/// Login throttling per client address: [`ATTEMPTS`] failures within [`LOCKOUT`] lock the
/// address out for [`LOCKOUT`]. An attempt counts as a failure before the credential is
/// checked (parallel guesses cannot all pass first); a success gives it back.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    map: Mutex<HashMap<IpAddr, Count>>,
}

// === impl Throttle ===

impl Throttle {
    /// Starts an attempt from `addr` (unknown: one shared key); false when locked out.
    pub(crate) fn attempt(&self, addr: Option<IpAddr>) -> bool {
        let key = addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let now = Instant::now();
        let mut map = lock(&self.map);
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&key) {
            map.retain(|_, c| {
                now.duration_since(c.since) < LOCKOUT || c.locked_until.is_some_and(|t| t > now)
            });
            if map.len() >= MAX_ADDRESSES {
                return false;
            }
        }
        let c = map.entry(key).or_insert(Count {
            failures: 0,
            since: now,
            locked_until: None,
        });
        if c.locked_until.is_some_and(|t| t > now) {
            return false;
        }
        if now.duration_since(c.since) >= LOCKOUT {
            *c = Count {
                failures: 0,
                since: now,
                locked_until: None,
            };
        }
        c.failures += 1;
        if c.failures >= ATTEMPTS {
            c.locked_until = Some(now + LOCKOUT);
        }
        true
    }

    /// A successful attempt from `addr`: its count is cleared (unless it is locked out).
    pub(crate) fn succeeded(&self, addr: Option<IpAddr>) {
        let key = addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut map = lock(&self.map);
        if map.get(&key).is_some_and(|c| c.locked_until.is_none()) {
            map.remove(&key);
        }
    }
}

/// `bytes` random bytes from the thread's CSPRNG, base64url.
fn random(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

fn digest(id: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_found_by_id_and_ended() {
        let s = Sessions::default();
        let (id, csrf) = s.start("admin-token");
        assert_eq!(id.len(), 43);
        assert_eq!(s.get(&id), Some(("admin-token".to_owned(), csrf)));
        assert_eq!(s.get("nope"), None);
        s.end(&id);
        assert_eq!(s.get(&id), None);
    }

    #[test]
    fn sessions_are_bounded_and_the_least_recently_used_goes_first() {
        let s = Sessions::default();
        let (first, _) = s.start("a");
        let (second, _) = s.start("b");
        assert!(s.get(&first).is_some()); // `second` is now the least recently used.
        for _ in 0..MAX_SESSIONS {
            s.start("c");
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.get(&second).is_none());
    }

    #[test]
    fn an_address_is_locked_out_after_the_failures_and_a_success_clears_the_count() {
        let t = Throttle::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(t.attempt(Some(a)));
        t.succeeded(Some(a));
        for _ in 0..ATTEMPTS {
            assert!(t.attempt(Some(a)));
        }
        assert!(!t.attempt(Some(a)));
        t.succeeded(Some(a));
        assert!(!t.attempt(Some(a)), "a lockout stays after a success");
        assert!(t.attempt(Some(b)));
    }
}
