//! The response cache in this process's memory (`storage = "memory"`): answers by key with
//! their expiry, and the generations that notifications replace.
//!
//! Bounded three ways: at most `max_entries` answers, at most `max_bytes` of answers (keys
//! included), and at most [`SHARE`]th of `max_bytes` kept for one principal (the caller's
//! name, or its address when anonymous), so one caller filling the cache with cursors or URI
//! variants only evicts its own answers. Past a bound the oldest answers go first (its
//! own oldest for a caller over its share); an answer larger than a share is not kept.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Slot;

/// One principal may hold at most `max_bytes / SHARE`.
pub(super) const SHARE: usize = 8;

#[derive(Debug)]
pub(super) struct Memory {
    inner: Mutex<Inner>,
    max: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// Generation by generation key (absent: `base`).
    generations: HashMap<String, u64>,
    /// The generation of every key not in `generations`: `0`, replaced when they are all
    /// forgotten (so an answer looked up before that is not kept after it).
    base: u64,
    /// Answers by `<entry>:<generation>`.
    answers: HashMap<String, Kept>,
    /// Keys by age (insertion order), oldest first.
    order: BTreeMap<u64, String>,
    /// Per principal: its bytes and its keys by age.
    holders: HashMap<String, Holder>,
    /// Bytes of every kept answer and key.
    bytes: usize,
    seq: u64,
}

#[derive(Debug)]
struct Kept {
    answer: Bytes,
    until: Instant,
    holder: String,
    seq: u64,
}

#[derive(Debug, Default)]
struct Holder {
    bytes: usize,
    order: BTreeMap<u64, String>,
}

impl Memory {
    pub(super) fn new(max: usize, max_bytes: usize) -> Memory {
        Memory {
            inner: Mutex::default(),
            max,
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The generation of `generation` now, and the live answer of `entry` in it.
    pub(super) fn lookup(&self, entry: &str, generation: &str) -> (String, Option<Bytes>) {
        let inner = self.lock();
        let gen = inner.generation(generation);
        let now = Instant::now();
        let answer = inner
            .answers
            .get(&format!("{entry}:{gen}"))
            .filter(|k| k.until > now)
            .map(|k| k.answer.clone());
        (gen.to_string(), answer)
    }

    /// Keeps `answer` in `slot` for `ttl`, held by `holder` (the principal it counts
    /// against), unless the slot's generation has changed since the lookup.
    pub(super) fn fill(&self, slot: &Slot, holder: &str, answer: Vec<u8>, ttl: Duration) {
        let key = slot.key.clone();
        let size = answer.len() + key.len();
        let share = self.max_bytes / SHARE;
        if size > share {
            return;
        }
        let mut inner = self.lock();
        if inner.generation(&slot.generation).to_string() != slot.gen {
            return;
        }
        inner.remove(&key);
        // The holder's own oldest answers make room within its share...
        while inner.holders.get(holder).map_or(0, |h| h.bytes) + size > share {
            let Some(oldest) = inner.holders.get(holder).and_then(oldest_of) else {
                break;
            };
            inner.remove(&oldest);
        }
        // ...then everyone's oldest within the budget.
        while inner.answers.len() >= self.max || inner.bytes + size > self.max_bytes {
            let Some(oldest) = inner.order.values().next().cloned() else {
                break;
            };
            inner.remove(&oldest);
        }
        inner.seq += 1;
        let seq = inner.seq;
        inner.order.insert(seq, key.clone());
        let h = inner.holders.entry(holder.to_owned()).or_default();
        h.bytes += size;
        h.order.insert(seq, key.clone());
        inner.bytes += size;
        let kept = Kept {
            answer: Bytes::from(answer),
            until: Instant::now() + ttl,
            holder: holder.to_owned(),
            seq,
        };
        inner.answers.insert(key, kept);
    }

    /// Replaces a generation: the answers kept in the old one are never read again.
    pub(super) fn bump(&self, generation: &str) {
        let mut inner = self.lock();
        if inner.generations.len() >= self.max && !inner.generations.contains_key(generation) {
            // Too many generations (many updated URIs): forget everything, which is safe.
            *inner = Inner {
                base: rand::random::<u64>() | 1,
                ..Inner::default()
            };
        }
        let next: u64 = rand::random::<u64>() | 1;
        inner.generations.insert(generation.to_owned(), next);
        // Answers of no live generation are garbage now; drop the expired ones with them.
        let now = Instant::now();
        let expired: Vec<String> = inner
            .answers
            .iter()
            .filter(|(_, k)| k.until <= now)
            .map(|(key, _)| key.clone())
            .collect();
        expired.iter().for_each(|key| inner.remove(key));
    }

    /// Bytes kept now (answers and keys), and those held by `holder`.
    #[cfg(test)]
    pub(super) fn bytes(&self, holder: &str) -> (usize, usize) {
        let inner = self.lock();
        let held = inner.holders.get(holder).map_or(0, |h| h.bytes);
        (inner.bytes, held)
    }
}

fn oldest_of(h: &Holder) -> Option<String> {
    h.order.values().next().cloned()
}

impl Inner {
    fn generation(&self, key: &str) -> u64 {
        self.generations.get(key).copied().unwrap_or(self.base)
    }

    /// Forgets the answer under `key`, if any, with its bytes.
    fn remove(&mut self, key: &str) {
        let Some(kept) = self.answers.remove(key) else {
            return;
        };
        let size = kept.answer.len() + key.len();
        self.bytes -= size;
        self.order.remove(&kept.seq);
        if let Some(h) = self.holders.get_mut(&kept.holder) {
            h.bytes -= size;
            h.order.remove(&kept.seq);
            if h.order.is_empty() {
                self.holders.remove(&kept.holder);
            }
        }
    }
}
