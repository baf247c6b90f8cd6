//! The ironlb test lab, seen from Rust.
//!
//! The lab itself is shell (`e2e/lab/up.sh`, `down.sh`): a person starts it with
//! `make lab-up` and pokes at it with `kubectl`, `arping` and friends. This
//! crate drives the same scripts for the end-to-end suite and runs the same
//! tools a user would (`kubectl`, `helm`), plus a kube-rs client for the precise
//! assertions a CLI's text output cannot give.

mod command;
mod lab;

pub use command::{CommandOutput, run};
pub use lab::{Lab, LabSession};

/// Runs one async assertion (a kube-rs call) to completion. Tests are
/// synchronous and run one at a time, so a small runtime per call is enough.
pub fn block_on<T>(future: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(future)
}
