//! The ambiguity rule (SECURITY.md §3): one pass over the whole document before the
//! envelope is read. Rejects duplicate keys at any depth, keys in the envelope, `params`
//! or `params._meta` that fold (case, NUL and control characters) onto a key the relay
//! reads, and nesting deeper than [`MAX_DEPTH`]. Syntax errors become [`Error::Parse`].

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::Error;

/// Deepest nesting accepted (SECURITY.md §2).
pub(crate) const MAX_DEPTH: usize = 64;

/// Keys the relay reads somewhere in an envelope; look-alikes of these are refused.
const READ_KEYS: &[&str] = &[
    "jsonrpc",
    "id",
    "method",
    "params",
    "name",
    "uri",
    "_meta",
    "progressToken",
    "io.modelcontextprotocol/subscriptionId",
    "requestId",
];

/// Where in the message a map sits: the rule on look-alike keys applies to the first three.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Envelope,
    Params,
    Meta,
    Other,
}

/// Checks `bytes`; `batch` says a top-level array holds envelopes.
pub(super) fn check(bytes: &[u8], batch: bool) -> Result<(), Error> {
    let scope = if batch { Scope::Other } else { Scope::Envelope };
    run(
        bytes,
        Walk {
            depth: 0,
            scope,
            batch_top: batch,
            element: false,
            shallow: false,
        },
    )
}

/// Checks one message, walking only the maps the relay reads (envelope, `params`, `_meta`);
/// other values are skipped by the parser, which still validates their syntax.
pub(super) fn check_shallow(bytes: &[u8]) -> Result<(), Error> {
    run(
        bytes,
        Walk {
            depth: 0,
            scope: Scope::Envelope,
            batch_top: false,
            element: false,
            shallow: true,
        },
    )
}

fn run(bytes: &[u8], seed: Walk) -> Result<(), Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = seed.deserialize(&mut de).and_then(|()| de.end());
    result.map_err(|e| {
        if e.is_data() {
            Error::Invalid(reason(&e.to_string()))
        } else {
            Error::Parse
        }
    })
}

fn reason(message: &str) -> &'static str {
    if message.starts_with("duplicate_key") {
        "duplicate_key"
    } else if message.starts_with("ambiguous_key") {
        "ambiguous_key"
    } else if message.starts_with("too_deep") {
        "too_deep"
    } else if message.starts_with("nested_batch") {
        "nested_batch"
    } else {
        "not_envelope"
    }
}

struct Walk {
    depth: usize,
    scope: Scope,
    /// The top-level array of a batch: its elements are envelopes.
    batch_top: bool,
    /// An element of a batch: an array here is a nested batch.
    element: bool,
    /// Skip values outside the scopes the relay reads.
    shallow: bool,
}

impl Walk {
    fn child(&self, scope: Scope) -> Walk {
        Walk {
            depth: self.depth + 1,
            scope,
            batch_top: false,
            element: self.batch_top,
            shallow: self.shallow,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(serde::de::Error::custom("too_deep"));
        }
        if self.element {
            // Elements of a batch must be objects: a nested array is not an envelope.
            return Err(serde::de::Error::custom("nested_batch"));
        }
        let scope = if self.batch_top {
            Scope::Envelope
        } else {
            Scope::Other
        };
        while let Some(()) = seq.next_element_seed(self.child(scope))? {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(serde::de::Error::custom("too_deep"));
        }
        let mut seen = Seen::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if self.scope != Scope::Other && is_lookalike(&key) {
                return Err(serde::de::Error::custom("ambiguous_key"));
            }
            let scope = match (self.scope, key.as_ref()) {
                (Scope::Envelope, "params") => Scope::Params,
                (Scope::Params, "_meta") => Scope::Meta,
                _ => Scope::Other,
            };
            if !seen.insert(key) {
                return Err(serde::de::Error::custom("duplicate_key"));
            }
            if self.shallow && scope == Scope::Other {
                map.next_value::<serde::de::IgnoredAny>()?;
            } else {
                map.next_value_seed(self.child(scope))?;
            }
        }
        Ok(())
    }
}

/// Keys seen in one object: a short list scanned linearly (most objects are small), switching
/// to a hash set past [`Seen::LINEAR`] keys so a huge object stays linear time.
#[derive(Default)]
struct Seen<'de> {
    few: Vec<Cow<'de, str>>,
    many: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Seen<'de> {
    const LINEAR: usize = 16;

    /// False when `key` was seen before.
    fn insert(&mut self, key: Cow<'de, str>) -> bool {
        if let Some(set) = &mut self.many {
            return set.insert(key);
        }
        if self.few.contains(&key) {
            return false;
        }
        self.few.push(key);
        if self.few.len() > Self::LINEAR {
            self.many = Some(self.few.drain(..).collect());
        }
        true
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

/// True when `key` is not itself a read key but folds onto one.
fn is_lookalike(key: &str) -> bool {
    if READ_KEYS.contains(&key) {
        return false;
    }
    // Cheap exit: every read key is short, and folding only ever removes characters or
    // changes case, so a key without those characters' room cannot fold onto one.
    if key.len() < 2 || key.chars().filter(|c| !c.is_control()).count() > 13 {
        return false;
    }
    READ_KEYS.iter().any(|k| folds_to(key, k))
}

/// True when `key`, with control characters dropped and lowercased, equals `target`
/// (compared char by char: no allocation on the hot path). Read keys fold to themselves
/// lowercased, so `target` is lowercased the same way.
fn folds_to(key: &str, target: &str) -> bool {
    let mut want = target.chars().flat_map(char::to_lowercase);
    for c in key
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(char::to_lowercase)
    {
        if want.next() != Some(c) {
            return false;
        }
    }
    want.next().is_none()
}
