//! ironlb-speaker: answers ARP and NDP on the node that wins each allocated
//! address.
//!
//! The announcer lands with the speaker issue; until then the binary only
//! states what it is, so the workspace, chart and images have a real artifact
//! to build.

use clap::Parser;

/// Command-line flags of ironlb-speaker.
#[derive(Debug, Parser)]
#[command(name = "ironlb-speaker", version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("ironlb-speaker {}: announcing is not implemented yet", env!("CARGO_PKG_VERSION"))
}
