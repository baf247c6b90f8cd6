//! `ironlb migrate`: its flags, and one run from MetalLB's configuration to ironlb manifests.
//!
//! Data flow: [`run`] reads every `-f` source ([`crate::input`]) and, with `--from-cluster`,
//! the cluster ([`crate::cluster`]); [`crate::convert`] turns the result into ironlb objects and
//! a report; the report goes to stderr ([`crate::report`]) and the manifest to stdout or `-o`
//! ([`crate::manifest`]). Invalid input stops the run before anything is written, so a pipe into
//! `kubectl apply` never applies half a configuration.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cluster::{self, ClusterSource};
use crate::convert::convert;
use crate::input::Inputs;
use crate::manifest;

/// Exit status when the input cannot be read or converted (nothing is written).
pub const EXIT_INVALID: u8 = 1;
/// Exit status when nothing could be converted, or `--strict` refused a partial conversion
/// (nothing is written). Clap's usage errors use 2.
pub const EXIT_INCOMPLETE: u8 = 3;

const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  converted; whatever was left out (BGP settings, unknown fields) is listed on stderr
     and in the output's header
  1  the input cannot be read or is invalid (a bad address, two pools with one name, ...);
     nothing is written
  2  wrong flags
  3  nothing could be converted, or --strict and something was left out; nothing is written

Services need no change: ironlb reads the metallb.universe.tf/... and metallb.io/...
annotations (address-pool, loadBalancerIPs, allow-shared-ip) as its own.";

/// Flags of `ironlb migrate`; each has an environment fallback.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = EXIT_STATUS_HELP)]
pub struct MigrateArgs {
    /// MetalLB manifests to convert: the legacy ConfigMap (its `config` key), metallb.io
    /// resources, `kind: List`s of them, several documents per file. `-` reads stdin; a
    /// directory contributes its .yaml/.yml/.json files. Repeat the flag or separate with commas.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE",
        env = "IRONLB_MIGRATE_FILES",
        value_delimiter = ',',
        required_unless_present = "from_cluster"
    )]
    pub files: Vec<PathBuf>,

    /// Read the configuration from the cluster (kubeconfig or in-cluster service account):
    /// MetalLB's ConfigMap and every metallb.io resource in its namespace. Only reads.
    #[arg(long, env = "IRONLB_MIGRATE_FROM_CLUSTER")]
    pub from_cluster: bool,

    /// MetalLB's namespace, for --from-cluster.
    #[arg(long, env = "IRONLB_MIGRATE_NAMESPACE", default_value = "metallb-system")]
    pub namespace: String,

    /// Name of MetalLB's legacy ConfigMap, for --from-cluster.
    #[arg(long, env = "IRONLB_MIGRATE_CONFIGMAP", default_value = "config")]
    pub configmap: String,

    /// Kubeconfig file for --from-cluster. Unset: as kubectl ($KUBECONFIG, ~/.kube/config, or the
    /// in-cluster service account).
    #[arg(long, env = "IRONLB_MIGRATE_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context for --from-cluster. Unset: the current context.
    #[arg(long, env = "IRONLB_MIGRATE_CONTEXT")]
    pub context: Option<String>,

    /// Write the ironlb manifest to this file instead of stdout (`-` is stdout).
    #[arg(short = 'o', long, env = "IRONLB_MIGRATE_OUTPUT", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Write nothing and exit 3 when any MetalLB setting would be left out.
    #[arg(long, env = "IRONLB_MIGRATE_STRICT")]
    pub strict: bool,
}

/// How a run ended, when the input was valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The manifest was written (maybe with things left out, listed in the report).
    Written,
    /// Nothing to convert; nothing written.
    NothingConverted,
    /// `--strict` and something was left out; nothing written.
    Refused,
}

impl Outcome {
    /// The process exit status.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Self::Written => ExitCode::SUCCESS,
            Self::NothingConverted | Self::Refused => ExitCode::from(EXIT_INCOMPLETE),
        }
    }
}

/// Runs `ironlb migrate`: the report goes to stderr, the manifest to stdout or `--output`.
///
/// # Errors
///
/// The input cannot be read or converted, or the output cannot be written.
pub fn run(args: &MigrateArgs) -> anyhow::Result<Outcome> {
    let mut inputs = Inputs::default();
    let mut sources = Vec::new();
    for path in &args.files {
        inputs.add_path(path)?;
        sources.push(if path.as_os_str() == "-" { "stdin".to_owned() } else { path.display().to_string() });
    }
    if args.from_cluster {
        let source = ClusterSource {
            namespace: args.namespace.clone(),
            configmap: args.configmap.clone(),
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
        };
        sources.extend(cluster::read(&source, &mut inputs)?);
    }
    let migration = convert(&inputs)?;

    let mut stderr = std::io::stderr().lock();
    write!(stderr, "{}", migration.report.render(&migration.summary()))?;
    if migration.is_empty() {
        writeln!(stderr, "ironlb migrate: nothing to write: no layer2 pool or L2Advertisement was found")?;
        return Ok(Outcome::NothingConverted);
    }
    if args.strict && !migration.report.is_complete() {
        writeln!(
            stderr,
            "ironlb migrate: --strict: nothing written, because the settings listed above would be left out"
        )?;
        return Ok(Outcome::Refused);
    }
    let text = manifest::render(&migration, &sources)?;
    match args.output.as_deref().filter(|path| path.as_os_str() != "-") {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(stderr, "ironlb migrate: wrote {}", path.display())?;
        }
        None => std::io::stdout().lock().write_all(text.as_bytes()).context("cannot write to stdout")?,
    }
    Ok(Outcome::Written)
}
