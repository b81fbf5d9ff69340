//! The four lists (`tools/list`, `prompts/list`, `resources/list`,
//! `resources/templates/list`): reading one server's page, and merging the pages of every
//! server into one.
//!
//! Items are never decoded whole: each is kept as its raw JSON text, only its `name`
//! (tools, prompts, and only with prefixes) is spliced, so unknown fields, `_meta`, and
//! number forms reach the client byte for byte. A page of the union holds, in server order,
//! one page of each server that still has one; the items a subset does not publish are left
//! out, and with `prefix = "never"` so is a name a server earlier in the list already gave
//! (the conflict is reported). The cursor is `aggregate/cursor.rs`; the fan-out is driven by
//! `aggregate/session.rs`.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

pub(super) use super::names::ListKind;
use super::names::{Naming, Subset};
use super::routes::{Claim, Routes};
use super::wire::{quote, span_of, Msg};
use crate::config::servers::Prefix;

/// One server's page: the response's bytes, the spans of its items, its `nextCursor`.
#[derive(Debug)]
pub(super) struct Page {
    bytes: Bytes,
    items: Vec<Range<usize>>,
    pub next: Option<String>,
}

#[derive(Deserialize)]
struct ListResult<'a> {
    #[serde(borrow, default)]
    tools: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    prompts: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    resources: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default, rename = "resourceTemplates")]
    templates: Option<Vec<&'a RawValue>>,
    #[serde(default, rename = "nextCursor")]
    next: Option<String>,
}

/// Reads a server's answer to a list request; `None` for an error or a result of another
/// shape.
pub(super) fn read_page(kind: ListKind, msg: &Msg) -> Option<Page> {
    let result: ListResult<'_> = serde_json::from_str(msg.result()?).ok()?;
    let items = match kind {
        ListKind::Tools => result.tools,
        ListKind::Prompts => result.prompts,
        ListKind::Resources => result.resources,
        ListKind::Templates => result.templates,
    }?;
    Some(Page {
        items: items.iter().map(|i| span_of(&msg.bytes, i.get())).collect(),
        bytes: msg.bytes.clone(),
        next: result.next.filter(|c| !c.is_empty()),
    })
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    uri: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "uriTemplate")]
    template: Option<&'a RawValue>,
}

/// How items are merged.
pub(super) struct Merge<'a> {
    pub kind: ListKind,
    pub naming: &'a Naming,
    pub subset: Option<&'a Subset>,
}

impl Merge<'_> {
    /// The items of `pages` (server, page, in server order) as one JSON array, routes
    /// recorded on the way; a name left out because an earlier server has it is added to
    /// `conflicts` (`"tools: echo (a, b)"`).
    pub(super) fn items(
        &self,
        pages: &[(&Arc<str>, &Page)],
        routes: &mut Routes,
        conflicts: &mut Vec<String>,
    ) -> String {
        let mut out = String::from("[");
        for (server, page) in pages {
            for span in &page.items {
                let Ok(text) = std::str::from_utf8(&page.bytes[span.clone()]) else {
                    continue;
                };
                if let Some(item) = self.item(server, text, routes, conflicts) {
                    if out.len() > 1 {
                        out.push(',');
                    }
                    out.push_str(&item);
                }
            }
        }
        out.push(']');
        out
    }

    /// One item as the client sees it, or `None` when it is left out.
    fn item(
        &self,
        server: &Arc<str>,
        text: &str,
        routes: &mut Routes,
        conflicts: &mut Vec<String>,
    ) -> Option<String> {
        let fields: Fields<'_> = serde_json::from_str(text).ok()?;
        let raw = match self.kind {
            ListKind::Tools | ListKind::Prompts => fields.name,
            ListKind::Resources => fields.uri,
            ListKind::Templates => fields.template,
        }?;
        let value: String = serde_json::from_str(raw.get()).ok()?;
        let item = self.kind.item();
        if self.subset.is_some_and(|s| !s.allows(item, server, &value)) {
            return None;
        }
        let prefixed = matches!(self.kind, ListKind::Tools | ListKind::Prompts)
            && self.naming.prefix == Prefix::Always;
        if prefixed {
            let name = quote(&self.naming.outer(server, &value));
            let span = span_of(text.as_bytes(), raw.get());
            let spliced = crate::jsonrpc::splice(text.as_bytes(), &mut [(span, &name)]);
            return String::from_utf8(spliced.to_vec()).ok();
        }
        if self.kind == ListKind::Templates {
            routes.add_template(&value, server);
        } else if let Claim::Taken(first) = routes.claim(item, &value, server) {
            conflicts.push(format!("{}: {value} ({first}, {server})", self.kind.key()));
            return None;
        }
        Some(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::names::Item;
    use crate::config::servers::EndpointSpec;

    fn page(kind: ListKind, result: &str) -> Page {
        let bytes = Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":1,"result":{result}}}"#));
        read_page(kind, &Msg::parse(bytes).unwrap()).unwrap()
    }

    fn naming(prefix: Prefix) -> Naming {
        Naming {
            separator: "__".into(),
            prefix,
        }
    }

    #[test]
    fn prefixed_merge_renames_and_keeps_every_other_byte() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let pa = page(
            ListKind::Tools,
            r#"{"tools":[{"name":"echo","x-extra":{"n":1.0},"inputSchema":{}}],"nextCursor":"p2"}"#,
        );
        let pb = page(
            ListKind::Tools,
            r#"{"tools":[{"inputSchema":{"type":"object"},"name":"echo"}]}"#,
        );
        assert_eq!((pa.next.as_deref(), pb.next.as_deref()), (Some("p2"), None));
        let n = naming(Prefix::Always);
        let m = Merge {
            kind: ListKind::Tools,
            naming: &n,
            subset: None,
        };
        let (mut routes, mut conflicts) = (Routes::default(), Vec::new());
        let items = m.items(&[(&a, &pa), (&b, &pb)], &mut routes, &mut conflicts);
        assert_eq!(
            items,
            r#"[{"name":"a__echo","x-extra":{"n":1.0},"inputSchema":{}},{"inputSchema":{"type":"object"},"name":"b__echo"}]"#
        );
        assert!(conflicts.is_empty());
    }

    #[test]
    fn unprefixed_merge_keeps_the_first_server_of_a_name() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let pa = page(
            ListKind::Tools,
            r#"{"tools":[{"name":"echo"},{"name":"only_a"}]}"#,
        );
        let pb = page(
            ListKind::Tools,
            r#"{"tools":[{"name":"echo"},{"name":"only_b"}]}"#,
        );
        let n = naming(Prefix::Never);
        let m = Merge {
            kind: ListKind::Tools,
            naming: &n,
            subset: None,
        };
        let (mut routes, mut conflicts) = (Routes::default(), Vec::new());
        let items = m.items(&[(&a, &pa), (&b, &pb)], &mut routes, &mut conflicts);
        assert_eq!(
            items,
            r#"[{"name":"echo"},{"name":"only_a"},{"name":"only_b"}]"#
        );
        assert_eq!(conflicts, ["tools: echo (a, b)"]);
        assert_eq!(routes.named(Item::Tool, "only_b"), Some(&b));
        assert_eq!(routes.named(Item::Tool, "echo"), Some(&a));
    }

    #[test]
    fn subset_filters_items_and_resources_are_routed_by_uri() {
        let fs: Arc<str> = "fs".into();
        let subset = Subset::new(&EndpointSpec {
            name: "e".into(),
            resources: vec!["fs:file:///public/*".into()],
            ..EndpointSpec::default()
        });
        let p = page(
            ListKind::Resources,
            r#"{"resources":[{"uri":"file:///public/a","name":"a"},{"uri":"file:///secret/b","name":"b"}]}"#,
        );
        let n = naming(Prefix::Always);
        let m = Merge {
            kind: ListKind::Resources,
            naming: &n,
            subset: Some(&subset),
        };
        let (mut routes, mut conflicts) = (Routes::default(), Vec::new());
        let items = m.items(&[(&fs, &p)], &mut routes, &mut conflicts);
        assert_eq!(items, r#"[{"uri":"file:///public/a","name":"a"}]"#);
        assert_eq!(routes.resource("file:///public/a"), Some(&fs));
        assert_eq!(routes.resource("file:///secret/b"), None);
        let t = page(
            ListKind::Templates,
            r#"{"resourceTemplates":[{"uriTemplate":"file:///public/{n}","name":"t"}]}"#,
        );
        let m = Merge {
            kind: ListKind::Templates,
            naming: &n,
            subset: Some(&subset),
        };
        assert!(m.items(&[(&fs, &t)], &mut routes, &mut conflicts).len() > 2);
        assert_eq!(routes.resource("file:///public/zz"), Some(&fs));
    }

    #[test]
    fn a_page_of_another_shape_is_no_page() {
        let bytes = Bytes::from(r#"{"jsonrpc":"2.0","id":1,"result":{"prompts":[]}}"#);
        assert!(read_page(ListKind::Tools, &Msg::parse(bytes).unwrap()).is_none());
        assert_eq!(
            ListKind::of("resources/templates/list"),
            Some(ListKind::Templates)
        );
        assert_eq!(
            ListKind::changed_by("notifications/resources/list_changed"),
            &[ListKind::Resources, ListKind::Templates]
        );
    }
}
