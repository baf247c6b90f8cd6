//! The ironlb test lab, seen from Rust.
//!
//! The lab itself is shell (`e2e/lab/up.sh`, `down.sh`): a person starts it with
//! `make lab-up` and pokes at it with `kubectl`, `arping` and friends. This
//! crate drives the same scripts for the end-to-end suite and runs the same
//! tools a user would (`kubectl`, `helm`), plus a kube-rs client for the precise
//! assertions a CLI's text output cannot give.

#![forbid(unsafe_code)]

mod command;
mod lab;
mod process;
mod wait;

pub use command::{CommandOutput, run};
pub use lab::{Cleanup, Lab, LabSession};
pub use process::{Daemon, cpu_seconds};
pub use wait::wait_for;

/// Creates `count` LoadBalancer Services `<prefix>-0`, `<prefix>-1`, … through
/// `api`, `parallel` requests at a time. They have no node ports: thousands
/// of them would not fit a NodePort range, and address allocation does not
/// care.
pub async fn create_load_balancer_services(
    api: &kube::Api<k8s_openapi::api::core::v1::Service>,
    prefix: &str,
    count: usize,
    parallel: usize,
) -> anyhow::Result<()> {
    use futures::{StreamExt, TryStreamExt};
    futures::stream::iter(0..count)
        .map(|n| async move {
            let svc = serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("{prefix}-{n}")},
                "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]},
            }))?;
            api.create(&kube::api::PostParams::default(), &svc).await?;
            anyhow::Ok(())
        })
        .buffer_unordered(parallel)
        .try_collect()
        .await
}

/// Runs one async step (a kube-rs call) to completion on the suite's
/// runtime. One runtime serves the whole suite: a kube-rs client keeps a
/// worker task on the runtime that made it, so a client must not outlive its
/// runtime between steps.
pub fn block_on<T>(future: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let runtime = match RUNTIME.get() {
        Some(runtime) => runtime,
        None => {
            let built = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            RUNTIME.get_or_init(|| built)
        }
    };
    runtime.block_on(future)
}
