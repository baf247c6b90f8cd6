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
mod metrics;
mod process;
mod wait;

pub use command::{CommandOutput, run};
pub use lab::{Cleanup, Lab, LabSession};
pub use metrics::{Metrics, Sample};
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
    for_each_parallel(count, parallel, |n| async move {
        let svc = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{prefix}-{n}")},
            "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]},
        }))?;
        api.create(&kube::api::PostParams::default(), &svc).await?;
        anyhow::Ok(())
    })
    .await
}

/// Runs `step(n)` for every `n` in `0..count`, `parallel` at a time; the first error ends it.
async fn for_each_parallel<F, Fut>(count: usize, parallel: usize, step: F) -> anyhow::Result<()>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    use futures::{StreamExt, TryStreamExt};
    futures::stream::iter(0..count).map(step).buffer_unordered(parallel).try_collect().await
}

/// Gives each of the Services `<prefix>-0` … `<prefix>-<count - 1>` (as
/// [`create_load_balancer_services`] makes them, without a selector) one ready endpoint: an
/// EndpointSlice `<prefix>-<n>-e2e` labelled `kubernetes.io/service-name`, made through `api`
/// (the Services' namespace), `parallel` requests at a time. Service n's endpoint is
/// `endpoints[n % endpoints.len()]`, an (IPv4 address, Node name) pair: in the lab a Pod's address
/// is its node's own. The slices are managed by "ironlb-e2e", so kube-controller-manager's
/// EndpointSlice controller leaves them alone. Creates that a busy API server refuses are
/// retried (see [`create_retrying`]).
pub async fn create_endpoint_slices(
    api: &kube::Api<k8s_openapi::api::discovery::v1::EndpointSlice>,
    prefix: &str,
    count: usize,
    endpoints: &[(std::net::Ipv4Addr, String)],
    parallel: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(!endpoints.is_empty(), "no endpoint to give the Services");
    for_each_parallel(count, parallel, |n| async move {
        let (address, node) = &endpoints[n % endpoints.len()];
        let service = format!("{prefix}-{n}");
        let slice = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": format!("{service}-e2e"),
                "labels": {"kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": "ironlb-e2e"},
            },
            "addressType": "IPv4",
            "ports": [{"port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": [address.to_string()], "nodeName": node, "conditions": {"ready": true}}],
        }))?;
        create_retrying(api, slice).await
    })
    .await
}

/// Deletes the Services `<prefix>-0` … `<prefix>-<count - 1>` through `api`, `parallel` at a
/// time; those already gone are fine. Much faster than deleting their namespace: the namespace
/// controller deletes Services one by one at kube-controller-manager's 20 requests per second.
pub async fn delete_load_balancer_services(
    api: &kube::Api<k8s_openapi::api::core::v1::Service>,
    prefix: &str,
    count: usize,
    parallel: usize,
) -> anyhow::Result<()> {
    for_each_parallel(count, parallel, |n| async move {
        match api.delete(&format!("{prefix}-{n}"), &kube::api::DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(anyhow::Error::from(error)),
        }
    })
    .await
}

/// Creates `object` through `api`, retrying (up to 5 times, backing off) what a busy API server
/// answers with 429, 5xx or a dropped connection. A retried create that finds the object made
/// it the first time.
pub async fn create_retrying<K>(api: &kube::Api<K>, object: K) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for attempt in 1.. {
        let error = match api.create(&kube::api::PostParams::default(), &object).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 && attempt > 1 => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 429 || status.code >= 500 => kube::Error::Api(status),
            Err(error @ (kube::Error::HyperError(_) | kube::Error::Service(_))) => error,
            Err(error) => return Err(error.into()),
        };
        if attempt == 5 {
            return Err(error.into());
        }
        tokio::time::sleep(std::time::Duration::from_secs(attempt)).await;
    }
    unreachable!("the loop returns")
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
