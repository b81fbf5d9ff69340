//! Bearer tokens already verified, remembered by the SHA-256 of the token: the bounded map the
//! verifiers of the relay's own tokens (`issued.rs`) and of external issuers (`jwt.rs`) keep so
//! a client's later requests cost a hash, not a signature check.
//!
//! This file owns only the storage and its bounds (at most [`CAPACITY`] entries; when full,
//! entries past their end go, then all). What is kept with a token, and what must still be
//! checked on every hit (its key still published, `exp`/`nbf` against the clock, the audience
//! of the request), belongs to each verifier. Only verified tokens are stored, never refusals.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

/// Entries kept at most.
pub(crate) const CAPACITY: usize = 4096;

/// The key of a token: its SHA-256.
pub(crate) type Digest = [u8; 32];

/// The SHA-256 of `token`.
pub(crate) fn digest(token: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    d.as_ref().try_into().unwrap_or_default()
}

/// Verified tokens and what their verifier keeps with each.
pub(crate) struct TokenCache<V> {
    entries: Mutex<HashMap<Digest, Entry<V>>>,
}

struct Entry<V> {
    value: V,
    /// Past this the token is refused by its verifier, so the entry may be pruned.
    until: SystemTime,
}

impl<V> Default for TokenCache<V> {
    fn default() -> Self {
        TokenCache {
            entries: Mutex::default(),
        }
    }
}

impl<V: Clone> TokenCache<V> {
    /// What was kept for this token, and the end given when it was stored (the verifier
    /// decides what a hit past its end means).
    pub(crate) fn get(&self, digest: &Digest) -> Option<(V, SystemTime)> {
        self.lock().get(digest).map(|e| (e.value.clone(), e.until))
    }

    /// Remembers `value` for a token until `until`. When full, entries past their end (as of
    /// `now`) go first, then all of them.
    pub(crate) fn insert(&self, digest: Digest, value: V, until: SystemTime, now: SystemTime) {
        let mut entries = self.lock();
        if entries.len() >= CAPACITY && !entries.contains_key(&digest) {
            entries.retain(|_, e| e.until > now);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(digest, Entry { value, until });
    }

    /// How many tokens are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Digest, Entry<V>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_full_cache_drops_ended_entries_first_then_all() {
        let cache = TokenCache::<u32>::default();
        let now = SystemTime::now();
        let later = now + Duration::from_secs(60);
        cache.insert(digest("ended"), 1, now, now);
        for i in 1..CAPACITY {
            cache.insert(digest(&format!("t{i}")), 2, later, now);
        }
        assert_eq!(cache.len(), CAPACITY);
        // Full: the ended entry goes, the others stay.
        cache.insert(digest("next"), 3, later, now);
        assert_eq!(cache.len(), CAPACITY);
        assert!(cache.get(&digest("ended")).is_none());
        assert_eq!(cache.get(&digest("next")), Some((3, later)));
        // Full of live entries: all go.
        cache.insert(digest("last"), 4, later, now);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&digest("last")), Some((4, later)));
    }
}
