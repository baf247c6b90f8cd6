//! `ironlb`: the command line. This file only parses flags and maps the outcome to an exit
//! status; the work is in the library ([`ironlb_cli::migrate`]).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ironlb_cli::migrate::{self, MigrateArgs};

/// ironlb: a load balancer for bare-metal Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "ironlb", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert a MetalLB configuration (legacy ConfigMap or metallb.io resources) into ironlb
    /// IPAddressPools and L2Advertisements, listing on stderr what cannot be converted.
    Migrate(MigrateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate(args) => match migrate::run(&args) {
            Ok(outcome) => outcome.exit_code(),
            Err(error) => {
                eprintln!("ironlb migrate: error: {error:#}");
                ExitCode::from(migrate::EXIT_INVALID)
            }
        },
    }
}
