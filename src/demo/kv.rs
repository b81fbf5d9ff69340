//! The demo server's scratch key/value store: in memory, one per process, bounded in keys,
//! key length and value size, so a client can neither grow it without limit nor store
//! anything that is not plain text. The tools that use it live in `tools.rs`.

use std::collections::BTreeMap;

/// Most keys the store holds.
pub(crate) const MAX_KEYS: usize = 100;
/// Longest key, in bytes.
pub(crate) const MAX_KEY: usize = 64;
/// Largest value, in bytes.
pub(crate) const MAX_VALUE: usize = 4096;

/// Why the store refused an operation (shown to the client as a tool error).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Error {
    #[error("key must be 1 to {MAX_KEY} characters of A-Z a-z 0-9 . _ -")]
    InvalidKey,
    #[error("value is {0} bytes; the limit is {MAX_VALUE}")]
    ValueTooLarge(usize),
    #[error("the store is full ({MAX_KEYS} keys): delete a key first")]
    Full,
    #[error("no key `{0}`")]
    Missing(String),
}

/// Keys in sorted order, values as text.
#[derive(Debug, Default)]
pub(crate) struct Store {
    entries: BTreeMap<String, String>,
}

impl Store {
    /// Stores `value` under `key`; true when the key is new. Replacing a key never fails for
    /// lack of room.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<bool, Error> {
        check_key(key)?;
        if value.len() > MAX_VALUE {
            return Err(Error::ValueTooLarge(value.len()));
        }
        if let Some(old) = self.entries.get_mut(key) {
            value.clone_into(old);
            return Ok(false);
        }
        if self.entries.len() >= MAX_KEYS {
            return Err(Error::Full);
        }
        self.entries.insert(key.to_owned(), value.to_owned());
        Ok(true)
    }

    pub(crate) fn get(&self, key: &str) -> Result<&str, Error> {
        check_key(key)?;
        self.entries
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| Error::Missing(key.to_owned()))
    }

    pub(crate) fn delete(&mut self, key: &str) -> Result<(), Error> {
        check_key(key)?;
        self.entries
            .remove(key)
            .map(drop)
            .ok_or_else(|| Error::Missing(key.to_owned()))
    }

    /// Every entry, sorted by key.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

fn check_key(key: &str) -> Result<(), Error> {
    let ok = (1..=MAX_KEY).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    ok.then_some(()).ok_or(Error::InvalidKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_set_get_replace_delete_round_trip() {
        let mut s = Store::default();
        assert_eq!(s.set("a", "1"), Ok(true));
        assert_eq!(s.set("a", "2"), Ok(false));
        assert_eq!(s.get("a"), Ok("2"));
        assert_eq!(s.delete("a"), Ok(()));
        assert_eq!(s.get("a"), Err(Error::Missing("a".into())));
        assert_eq!(s.delete("a"), Err(Error::Missing("a".into())));
    }

    #[test]
    fn store_bad_keys_and_values_are_refused() {
        let mut s = Store::default();
        for key in ["", "a b", "ü", "a/b", &"k".repeat(MAX_KEY + 1)] {
            assert_eq!(s.set(key, "v"), Err(Error::InvalidKey), "{key:?}");
        }
        assert!(s.set(&"k".repeat(MAX_KEY), "v").is_ok());
        let big = "v".repeat(MAX_VALUE + 1);
        assert_eq!(s.set("b", &big), Err(Error::ValueTooLarge(MAX_VALUE + 1)));
    }

    #[test]
    fn store_full_refuses_new_keys_but_replaces_old_ones() {
        let mut s = Store::default();
        for i in 0..MAX_KEYS {
            assert_eq!(s.set(&format!("k{i}"), "v"), Ok(true));
        }
        assert_eq!(s.set("one-more", "v"), Err(Error::Full));
        assert_eq!(s.set("k0", "new"), Ok(false));
        assert_eq!(s.len(), MAX_KEYS);
    }
}
