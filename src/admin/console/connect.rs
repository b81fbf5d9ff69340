//! The connect page: ready-to-paste client configurations for each server, endpoint and the
//! aggregate (Claude Desktop with `mcp-relay connect`, the claude.ai connector URL, VS Code,
//! Cursor, a `curl` smoke test) and a Claude Desktop extension (`.mcpb`) per target.
//!
//! Owns: the configurations' text and the extension archive. Does not own: what the targets
//! are (`Console::targets`).
