//! The `*/list` result filter for one caller ([`ListFilter`]) and the raw-JSON member reading
//! it and the permissions file share ([`Members`]). Owns: rewriting a response while keeping
//! every other byte. Does not own which names pass (the roles' [`NameRules`], `rbac.rs`) nor
//! which roles contribute (`Rbac::list_filter`).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{NameRules, Names};

/// A `*/list` result filter for one caller; cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub(crate) struct ListFilter {
    inner: Arc<FilterInner>,
}

#[derive(Debug)]
struct FilterInner {
    /// The array inside `result` (`tools`, `prompts`, `resources`, `resourceTemplates`).
    array: &'static str,
    /// The member of each element that is checked (`name`, `uri`, `uriTemplate`).
    field: &'static str,
    /// One entry per role that may list; an element passes if any of them lets it through.
    rules: Vec<Arc<NameRules>>,
    /// The named server whose list this is (its names are also tested qualified).
    server: Option<String>,
}

impl ListFilter {
    pub(super) fn new(
        array: &'static str,
        field: &'static str,
        rules: Vec<Arc<NameRules>>,
        server: Option<String>,
    ) -> ListFilter {
        ListFilter {
            inner: Arc::new(FilterInner {
                array,
                field,
                rules,
                server,
            }),
        }
    }

    /// Rewrites a whole JSON-RPC response, dropping the elements of `result.<array>` the
    /// caller may not use. `None` when nothing was removed, the response is an error or has
    /// no result, or it does not parse (then it is forwarded as is: the filter hides, the
    /// `decide` call on every use is what enforces). Every other member keeps its raw text;
    /// a repeated key is filtered in every occurrence; an element whose `name`/`uri` is
    /// missing, not a string, or repeated with any value that does not pass is removed.
    pub(crate) fn apply(&self, response: &[u8]) -> Option<Bytes> {
        let top = serde_json::from_slice::<Members>(response).ok()?.0;
        let out = rewrite(&top, response.len(), "result", |v| self.filter_result(v))?;
        Some(Bytes::from(out))
    }

    fn filter_result(&self, result: &RawValue) -> Option<Vec<u8>> {
        let fields = members(result.get())?;
        let size = result.get().len();
        rewrite(&fields, size, self.inner.array, |v| self.filter_array(v))
    }

    fn filter_array(&self, array: &RawValue) -> Option<Vec<u8>> {
        let elements = serde_json::from_str::<Vec<Box<RawValue>>>(array.get()).ok()?;
        let kept: Vec<&str> = elements
            .iter()
            .map(|e| e.get())
            .filter(|e| self.visible(e))
            .collect();
        (kept.len() < elements.len()).then(|| format!("[{}]", kept.join(",")).into_bytes())
    }

    fn visible(&self, element: &str) -> bool {
        let Some(fields) = members(element) else {
            return false;
        };
        let names = match &self.inner.server {
            Some(s) => Names::Server(s),
            None => Names::Plain,
        };
        let mut subjects = fields
            .iter()
            .filter(|(k, _)| k == self.inner.field)
            .map(|(_, v)| serde_json::from_str::<String>(v.get()).ok())
            .peekable();
        subjects.peek().is_some()
            && subjects
                .all(|s| s.is_some_and(|s| self.inner.rules.iter().any(|r| r.passes(&s, names))))
    }
}

/// Re-emits an object, giving every member named `target` the text `replace` returns (if
/// any); `None` when nothing was replaced.
fn rewrite(
    members: &[(String, Box<RawValue>)],
    size: usize,
    target: &str,
    replace: impl Fn(&RawValue) -> Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    let mut changed = false;
    let mut out = Vec::with_capacity(size);
    out.push(b'{');
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key).ok()?;
        out.push(b':');
        match (key == target).then(|| replace(value)).flatten() {
            Some(new) => {
                changed = true;
                out.extend_from_slice(&new);
            }
            None => out.extend_from_slice(value.get().as_bytes()),
        }
    }
    out.push(b'}');
    changed.then_some(out)
}

// === Members: an object's members in order, duplicates kept ===

/// Why not a map: duplicates must be seen (rejected in the file, filtered in responses) and
/// order must survive re-emission.
pub(super) struct Members(pub Vec<(String, Box<RawValue>)>);

pub(super) fn members(text: &str) -> Option<Vec<(String, Box<RawValue>)>> {
    serde_json::from_str::<Members>(text).ok().map(|m| m.0)
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Members, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a json object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push(entry);
                }
                Ok(Members(out))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}
