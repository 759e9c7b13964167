//! The `commerce-gateway` binary: see [`cli`] for its subcommands.

mod cli;

use clap::Parser;

/// jemalloc: a GraphQL response is hundreds of small short-lived allocations, and glibc's
/// malloc took a fifth of the CPU of an uncached collection page (bench/README.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = commerce_gateway::telemetry::init();
    let result = cli::run(cli::Cli::parse()).await;
    telemetry.shutdown().await;
    result
}
