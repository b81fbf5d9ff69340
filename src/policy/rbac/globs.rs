//! The globs of a permissions file and how a name is tested against them: bare, or qualified
//! by the server it belongs to (`github:create_issue`, `fs:file:///etc/hosts`) on a named
//! server's relay. Owns glob syntax and validation, each glob's [`Form`] and the first-match
//! search. Does not own what a match means (allow, deny, rule ids: `rbac.rs`).

use globset::{Candidate, GlobBuilder, GlobMatcher};
use serde_json::value::RawValue;

use super::{invalid, Error};

/// Which form of a name a glob is tested against when the name has a qualified form (on a
/// named server's relay); without one (a single-server relay) every glob tests the bare name,
/// as it always did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// The bare name only: methods, server names, tool and prompt globs without `:`.
    Bare,
    /// `server:name` only: a tool or prompt glob with `:` in an `allow` list.
    Qualified,
    /// Either form: a tool or prompt glob with `:` in a `deny` list (a deny never matches
    /// less on a named server than on a single-server relay), and every resource glob (URIs
    /// contain `:` themselves, so a resource glob cannot say which form it means).
    Either,
}

/// A name as one relay sees it: bare, and `server:name` on a named server's relay.
#[derive(Debug, Clone, Copy)]
pub(super) struct Subject<'a> {
    pub bare: &'a str,
    pub qualified: Option<&'a str>,
}

#[derive(Debug)]
struct Glob {
    matcher: GlobMatcher,
    form: Form,
}

/// A list of globs, in file order (rule ids give the index).
#[derive(Debug, Default)]
pub(super) struct Globs(Vec<Glob>);

impl Globs {
    /// Parses `raw`, an array of non-empty globs, giving each the form `form` picks from its text.
    pub(super) fn parse(
        role: &str,
        key: &str,
        raw: &RawValue,
        form: impl Fn(&str) -> Form,
    ) -> Result<Globs, Error> {
        let patterns = serde_json::from_str::<Vec<String>>(raw.get())
            .map_err(|_| invalid(role, key, "an array of strings"))?;
        let mut globs = Vec::with_capacity(patterns.len());
        for (i, pattern) in patterns.iter().enumerate() {
            let key = format!("{key}[{i}]");
            if pattern.is_empty() {
                return Err(invalid(role, &key, "a non-empty glob"));
            }
            let glob = GlobBuilder::new(pattern)
                .literal_separator(false)
                .case_insensitive(false)
                .backslash_escape(true)
                .build()
                .map_err(|source| Error::Glob {
                    role: role.to_owned(),
                    key,
                    source,
                })?;
            globs.push(Glob {
                matcher: glob.compile_matcher(),
                form: form(pattern),
            });
        }
        Ok(Globs(globs))
    }

    /// The index of the first glob matching the bare `subject`.
    pub(super) fn find(&self, subject: &str) -> Option<usize> {
        self.find_in(Subject {
            bare: subject,
            qualified: None,
        })
    }

    /// The index of the first glob matching `subject` in the form(s) the glob asks for.
    pub(super) fn find_in(&self, subject: Subject<'_>) -> Option<usize> {
        let bare = Candidate::from_bytes(subject.bare.as_bytes());
        let qualified = subject
            .qualified
            .map(|q| Candidate::from_bytes(q.as_bytes()));
        self.0.iter().position(|g| match (g.form, &qualified) {
            (Form::Bare, _) | (_, None) => g.matcher.is_match_candidate(&bare),
            (Form::Qualified, Some(q)) => g.matcher.is_match_candidate(q),
            (Form::Either, Some(q)) => {
                g.matcher.is_match_candidate(&bare) || g.matcher.is_match_candidate(q)
            }
        })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some glob tests the qualified form of a name.
    pub(super) fn qualifies(&self) -> bool {
        self.0.iter().any(|g| g.form != Form::Bare)
    }
}

/// Tool and prompt globs of an `allow` list: qualified when they contain `:`.
pub(super) fn allow_form(pattern: &str) -> Form {
    match pattern.contains(':') {
        true => Form::Qualified,
        false => Form::Bare,
    }
}

/// Tool and prompt globs of a `deny` list: with `:`, they test both forms.
pub(super) fn deny_form(pattern: &str) -> Form {
    match pattern.contains(':') {
        true => Form::Either,
        false => Form::Bare,
    }
}
