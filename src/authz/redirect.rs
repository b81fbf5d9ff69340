//! Redirect-URI matching.

/// Whether `presented` is the registered `registered`.
pub(crate) fn matches(registered: &str, presented: &str) -> bool {
    registered == presented
}
