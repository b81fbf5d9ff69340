//! Login throttling: after `login_attempts` failures within the lockout window a user name is
//! locked for `lockout`, and so is the client address that failed that often (whatever names
//! it tried), so neither a guessed password for one user nor a spray over many users gets far.
//! A success clears the user's count. Registrations are limited per address per hour
//! (`governor`). Kept in memory, per relay process.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Failures of one key in the current window.
#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    since: Instant,
    locked_until: Option<Instant>,
}

/// Entries kept at most (oldest dropped first); an attacker rotating names cannot grow it.
const MAX_ENTRIES: usize = 100_000;

/// Per-user and per-address login failures, and the registration rate.
pub(crate) struct Lockout {
    attempts: u32,
    window: Duration,
    users: Mutex<HashMap<String, Count>>,
    addrs: Mutex<HashMap<IpAddr, Count>>,
    registrations: DefaultKeyedRateLimiter<IpAddr>,
    per_hour: u32,
}

impl Lockout {
    pub(crate) fn new(attempts: u32, window: Duration, registrations_per_hour: u32) -> Lockout {
        let per_hour = NonZeroU32::new(registrations_per_hour).unwrap_or(NonZeroU32::MIN);
        Lockout {
            attempts,
            window,
            users: Mutex::default(),
            addrs: Mutex::default(),
            registrations: RateLimiter::keyed(Quota::per_hour(per_hour)),
            per_hour: registrations_per_hour,
        }
    }

    /// Whether the user or the address is locked out now.
    pub(crate) fn locked(&self, user: &str, addr: Option<IpAddr>) -> bool {
        let now = Instant::now();
        let is = |c: Option<&Count>| c.and_then(|c| c.locked_until).is_some_and(|t| t > now);
        is(lock(&self.users).get(user)) || addr.is_some_and(|a| is(lock(&self.addrs).get(&a)))
    }

    /// Starts a login attempt: false when the user or the address is locked out; else the
    /// attempt is counted as a failure now, before the password is checked, so a burst of
    /// parallel guesses cannot all pass the check before any is counted.
    pub(crate) fn attempt(&self, user: &str, addr: Option<IpAddr>) -> bool {
        let now = Instant::now();
        let mut users = lock(&self.users);
        let mut addrs = lock(&self.addrs);
        let is = |c: Option<&Count>| c.and_then(|c| c.locked_until).is_some_and(|t| t > now);
        if is(users.get(user)) || addr.is_some_and(|a| is(addrs.get(&a))) {
            return false;
        }
        bump(&mut users, user.to_owned(), self, now);
        if let Some(a) = addr {
            bump(&mut addrs, a, self, now);
        }
        true
    }

    /// Counts a failed login; true when this failure locked the user or the address.
    #[cfg(test)]
    pub(crate) fn failed(&self, user: &str, addr: Option<IpAddr>) -> bool {
        let now = Instant::now();
        let mut locked = bump(&mut lock(&self.users), user.to_owned(), self, now);
        if let Some(a) = addr {
            locked |= bump(&mut lock(&self.addrs), a, self, now);
        }
        locked
    }

    /// A successful attempt: the user's failures are cleared, and the address's count gives
    /// back the attempt (a lockout it already triggered stays).
    pub(crate) fn succeeded(&self, user: &str, addr: Option<IpAddr>) {
        lock(&self.users).remove(user);
        if let Some(a) = addr {
            if let Some(c) = lock(&self.addrs).get_mut(&a) {
                c.failures = c.failures.saturating_sub(1);
            }
        }
    }

    /// Whether these are the settings this lockout was made with.
    pub(crate) fn is(&self, attempts: u32, window: Duration, registrations_per_hour: u32) -> bool {
        (self.attempts, self.window, self.per_hour) == (attempts, window, registrations_per_hour)
    }

    /// Whether `addr` may register one more client now.
    pub(crate) fn may_register(&self, addr: Option<IpAddr>) -> bool {
        match addr {
            Some(a) => self.registrations.check_key(&a).is_ok(),
            None => true,
        }
    }
}

fn bump<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, Count>,
    key: K,
    l: &Lockout,
    now: Instant,
) -> bool {
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        let stale: Vec<K> = map
            .iter()
            .filter(|(_, c)| {
                now.duration_since(c.since) > l.window && c.locked_until.is_none_or(|t| t <= now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        stale.iter().for_each(|k| {
            map.remove(k);
        });
        if map.len() >= MAX_ENTRIES {
            return false;
        }
    }
    let c = map.entry(key).or_insert(Count {
        failures: 0,
        since: now,
        locked_until: None,
    });
    if now.duration_since(c.since) > l.window {
        *c = Count {
            failures: 0,
            since: now,
            locked_until: None,
        };
    }
    c.failures += 1;
    if c.failures >= l.attempts {
        c.locked_until = Some(now + l.window);
        return true;
    }
    false
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_locked_after_the_configured_failures_and_a_success_clears_the_count() {
        let l = Lockout::new(3, Duration::from_secs(60), 10);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(l.attempt("alice", Some(ip)));
        l.succeeded("alice", Some(ip));
        assert!(!l.failed("alice", None));
        assert!(!l.failed("alice", None));
        assert!(l.failed("alice", None));
        assert!(l.locked("alice", None));
        assert!(!l.locked("bob", None));
    }

    #[test]
    fn an_address_spraying_many_names_is_locked_too() {
        let l = Lockout::new(3, Duration::from_secs(60), 10);
        let ip: IpAddr = "192.0.2.8".parse().unwrap();
        for name in ["a", "b", "c"] {
            l.failed(name, Some(ip));
        }
        assert!(l.locked("zed", Some(ip)));
        assert!(!l.locked("zed", Some("192.0.2.9".parse().unwrap())));
    }

    #[test]
    fn attempts_are_counted_before_the_password_is_checked() {
        let l = Lockout::new(3, Duration::from_secs(60), 10);
        let ip: IpAddr = "192.0.2.12".parse().unwrap();
        // Three attempts in flight at once: the fourth is refused before any has finished.
        assert!((0..3).all(|_| l.attempt("alice", Some(ip))));
        assert!(!l.attempt("alice", Some(ip)));
        assert!(!l.attempt("bob", Some(ip)));
    }

    #[test]
    fn registrations_are_limited_per_address() {
        let l = Lockout::new(3, Duration::from_secs(60), 2);
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        assert!(l.may_register(Some(ip)));
        assert!(l.may_register(Some(ip)));
        assert!(!l.may_register(Some(ip)));
        assert!(l.may_register(Some("192.0.2.11".parse().unwrap())));
    }
}
