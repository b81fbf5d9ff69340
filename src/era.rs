//! Protocol versions and eras (PROTOCOL.md §1).
//!
//! Legacy versions negotiate with `initialize`; the modern era (2026-07-28) sends its version
//! on every request. A modern request to a legacy child is refused with a 400 that is
//! deliberately not a modern error, so dual-era clients fall back to `initialize`. Also the
//! legacy `MCP-Protocol-Version` header check; the modern header rules are in `era/modern.rs`.

pub(crate) mod legacy_face;
pub(crate) mod modern;
pub(crate) mod state;

use crate::error::Error;

/// Legacy versions the relay speaks on its front, oldest first.
pub(crate) const LEGACY_VERSIONS: [&str; 4] =
    ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// Log levels (RFC 5424 severities as MCP names them), least severe first.
pub(crate) const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// First version of the modern (stateless) era.
pub(crate) const FIRST_MODERN: &str = "2026-07-28";

/// Metadata key a modern request carries its version in.
pub(crate) const MODERN_META_KEY: &str = "io.modelcontextprotocol/protocolVersion";

/// Metadata key a modern request declares its client capabilities in.
pub(crate) const CAPS_META_KEY: &str = "io.modelcontextprotocol/clientCapabilities";

pub(crate) fn is_legacy(v: &str) -> bool {
    LEGACY_VERSIONS.contains(&v)
}

/// Dates compare as strings.
pub(crate) fn is_modern(v: &str) -> bool {
    v.len() == 10 && v >= FIRST_MODERN
}

/// JSON-RPC batches: only 2025-03-26 sessions (2025-03-26 basic/index#batching).
pub(crate) fn batches_allowed(v: &str) -> bool {
    v == "2025-03-26"
}

/// 2025-11-25 SSE polling: priming event and `retry`.
pub(crate) fn primes_streams(v: &str) -> bool {
    v >= "2025-11-25"
}

/// Checks `MCP-Protocol-Version` on a request inside a legacy session. Absent passes (the
/// session's negotiated version applies); otherwise it must equal the negotiated version,
/// or before negotiation finished, be a legacy version.
pub(crate) fn check_header(header: Option<&str>, negotiated: Option<&str>) -> Result<(), Error> {
    match (header, negotiated) {
        (None, _) => Ok(()),
        (Some(h), Some(n)) if h == n => Ok(()),
        (Some(h), None) if is_legacy(h) => Ok(()),
        _ => Err(Error::BadProtocolVersion),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rules() {
        assert!(check_header(None, Some("2025-06-18")).is_ok());
        assert!(check_header(Some("2025-06-18"), Some("2025-06-18")).is_ok());
        assert!(check_header(Some("2025-03-26"), Some("2025-06-18")).is_err());
        assert!(check_header(Some("banana"), None).is_err());
        assert!(check_header(Some("2025-11-25"), None).is_ok());
        assert!(is_modern("2026-07-28") && !is_modern("2025-11-25"));
        assert!(batches_allowed("2025-03-26") && !batches_allowed("2025-06-18"));
    }
}
