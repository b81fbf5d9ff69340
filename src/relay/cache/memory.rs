//! The response cache in this process's memory (`storage = "memory"`): answers by key with
//! their expiry, and the generations that notifications replace. Bounded by `max_entries`;
//! past it, expired answers are dropped first and a new one is not kept if none were.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

#[derive(Debug)]
pub(super) struct Memory {
    inner: Mutex<Inner>,
    max: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// Generation by generation key (absent: `0`).
    generations: HashMap<String, u64>,
    /// Answer and expiry by `<entry>:<generation>`.
    answers: HashMap<String, (Bytes, Instant)>,
}

impl Memory {
    pub(super) fn new(max: usize) -> Memory {
        Memory {
            inner: Mutex::default(),
            max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The generation of `generation` now, and the live answer of `entry` in it.
    pub(super) fn lookup(&self, entry: &str, generation: &str) -> (String, Option<Bytes>) {
        let inner = self.lock();
        let gen = inner.generations.get(generation).copied().unwrap_or(0);
        let now = Instant::now();
        let answer = inner
            .answers
            .get(&format!("{entry}:{gen}"))
            .filter(|(_, until)| *until > now)
            .map(|(a, _)| a.clone());
        (gen.to_string(), answer)
    }

    /// Keeps `answer` under `key` (`<entry>:<generation>`) for `ttl`.
    pub(super) fn fill(&self, key: String, answer: Vec<u8>, ttl: Duration) {
        let mut inner = self.lock();
        let now = Instant::now();
        if inner.answers.len() >= self.max {
            inner.answers.retain(|_, (_, until)| *until > now);
        }
        if inner.answers.len() < self.max {
            inner.answers.insert(key, (Bytes::from(answer), now + ttl));
        }
    }

    /// Replaces a generation: the answers kept in the old one are never read again.
    pub(super) fn bump(&self, generation: &str) {
        let mut inner = self.lock();
        if inner.generations.len() >= self.max && !inner.generations.contains_key(generation) {
            // Too many generations (many updated URIs): forget everything, which is safe.
            *inner = Inner::default();
        }
        let next: u64 = rand::random::<u64>() | 1;
        inner.generations.insert(generation.to_owned(), next);
        // Answers of no live generation are garbage now; drop the expired ones with them.
        let now = Instant::now();
        inner.answers.retain(|_, (_, until)| *until > now);
    }
}
