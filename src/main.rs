//! The `mcp-relay` binary. Everything it does is [`mcp_relay::main`] (`src/command.rs`).

fn main() -> std::process::ExitCode {
    mcp_relay::main()
}
