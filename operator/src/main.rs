//! ironlb-operator: assigns LoadBalancer Services their addresses from
//! `IPAddressPool`s and records the allocations in the pools' status.
//!
//! The allocation engine lands with the operator issue; until then the binary
//! only states what it is, so the workspace, chart and images have a real
//! artifact to build.

use clap::Parser;

/// Command-line flags of ironlb-operator.
#[derive(Debug, Parser)]
#[command(name = "ironlb-operator", version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("ironlb-operator {}: allocation is not implemented yet", env!("CARGO_PKG_VERSION"))
}
