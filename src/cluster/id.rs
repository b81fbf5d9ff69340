//! Owner-tagged ids: which replica of a fleet minted a session id, a legacy SSE session id, a
//! task handle or a sealed `requestState` (docs/fleet.md).
//!
//! A replica with `[cluster] node = "r0"` writes its ids as `r0.<epoch>.<rest>`: the node name
//! (a DNS label), the process's epoch (32 random bits drawn at start, 8 hex digits), then what
//! the id was before (for a session, 128 random bits as 32 hex digits). The random part stays
//! the only capability; the tag only says where to send the request. A node name is never an
//! address: a replica resolves it through its configured peers alone (`cluster/peers.rs`).
//!
//! Without a node name ids are untagged, as on a single relay. Knows nothing of sessions.

use std::sync::{LazyLock, OnceLock};

/// The process's epoch: a restarted replica mints ids no earlier process's ids collide with.
static EPOCH: LazyLock<u32> = LazyLock::new(rand::random);

/// This process's node name, set once at start when it is part of a fleet.
static NODE: OnceLock<String> = OnceLock::new();

/// Longest node name (a DNS label).
pub(crate) const MAX_NODE: usize = 63;

/// This process's epoch.
pub(crate) fn epoch() -> u32 {
    *EPOCH
}

/// Makes this process a node of a fleet; later ids carry `node`. Returns false if another
/// name was set before (the name cannot change while the process lives).
pub(crate) fn set_node(node: &str) -> bool {
    NODE.get_or_init(|| node.to_owned()) == node
}

/// This process's node name, when it has one.
pub(crate) fn node() -> Option<&'static str> {
    NODE.get().map(String::as_str)
}

/// Whether `name` is a valid node name: a DNS label, `[a-z0-9-]`, 1 to 63 characters, not
/// starting or ending with `-`.
pub(crate) fn valid_node(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NODE
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// `rest` tagged with this process's node and epoch, or as is outside a fleet.
pub(crate) fn tag(rest: &str) -> String {
    match node() {
        Some(node) => format!("{node}.{:08x}.{rest}", epoch()),
        None => rest.to_owned(),
    }
}

/// Who owns an id, as far as its tag says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner<'a> {
    /// Untagged, or tagged with this node and epoch: look it up here. `rest` is what follows
    /// the tag.
    Here { rest: &'a str },
    /// Tagged with this node but another epoch: minted by an earlier process, gone.
    Restarted,
    /// Tagged with another node name (which may or may not be a configured peer).
    Node(&'a str),
    /// Tagged, but not well formed (a bad node name or epoch): nobody's.
    Malformed,
}

/// Reads the tag of `id`. An id with no `.` is untagged (a single relay's, or a client's
/// guess); inside a fleet an untagged id is looked up here, like any local one.
pub(crate) fn owner(id: &str) -> Owner<'_> {
    let mut parts = id.splitn(3, '.');
    let (Some(node), Some(epoch), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Owner::Here { rest: id };
    };
    if !valid_node(node) || epoch.len() != 8 || !epoch.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Owner::Malformed;
    }
    let Ok(epoch) = u32::from_str_radix(epoch, 16) else {
        return Owner::Malformed;
    };
    match self::node() {
        Some(me) if me == node && epoch == self::epoch() => Owner::Here { rest },
        Some(me) if me == node => Owner::Restarted,
        _ => Owner::Node(node),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_dns_labels() {
        assert!(valid_node("r0"));
        assert!(valid_node("mcp-relay-2"));
        for bad in [
            "",
            "R0",
            "r_0",
            "-r0",
            "r0-",
            "r0.x",
            "10.0.0.1:80",
            &"a".repeat(64),
        ] {
            assert!(!valid_node(bad), "{bad}");
        }
    }

    #[test]
    fn tags_are_read_back() {
        // Untagged ids are local whatever this process is.
        assert_eq!(owner("0123abcd"), Owner::Here { rest: "0123abcd" });
        assert_eq!(owner("r9.0000000a.ffff"), Owner::Node("r9"));
        assert_eq!(owner("R9.0000000a.ffff"), Owner::Malformed);
        assert_eq!(owner("r9.zz.ffff"), Owner::Malformed);
        assert_eq!(owner("127.0.0.1:8080.x"), Owner::Malformed);
        assert_eq!(owner("http://evil.example.com/"), Owner::Malformed);
    }
}
