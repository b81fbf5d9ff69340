//! The `mcp-relay` binary. Everything it does is [`mcp_relay::main`] (`src/command.rs`); this
//! file only picks the allocator (mimalloc: docs/BENCHMARKS.md, Run M).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    mcp_relay::main()
}
