//! ironlb-speaker: answers ARP and NDP on the node that wins each allocated address.
//!
//! This file reads flags and wires the parts together: the loop
//! ([`ironlb_speaker::controller`]) and the metrics/health endpoints
//! ([`ironlb_speaker::telemetry`]).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ironlb_daemon::duration::parse_duration;
use ironlb_speaker::controller::{self, Settings};
use ironlb_speaker::lease::LeaseSettings;
use ironlb_speaker::telemetry::{self, Health, Metrics};
use tracing::{error, info};

/// Flags of ironlb-speaker; each has an environment fallback (the chart sets the environment).
/// Durations are written as every ironlb flag and chart value writes them: `500ms`, `2s`, `1m30s`.
#[derive(Debug, Parser)]
#[command(name = "ironlb-speaker", version, about)]
struct Args {
    /// This node's name, as the Node object calls it (the downward API's spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,

    /// The speaker's namespace, where the node Leases live.
    #[arg(long, env = "POD_NAMESPACE", default_value = "ironlb-system")]
    namespace: String,

    /// This pod's name: the Lease holder and the Events' reporting instance. Default: the host name.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,

    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "IRONLB_METRICS_ADDRESS", default_value = "0.0.0.0:7473")]
    metrics_address: SocketAddr,

    /// Log filter: a level (info, debug, ...) or a tracing directive list.
    #[arg(long, env = "IRONLB_LOG_LEVEL", default_value = "info")]
    log_level: String,

    /// How long peers count this node live after its last Lease renewal: at least 1s, rounded up to
    /// whole seconds in the Lease.
    #[arg(long, env = "IRONLB_LEASE_DURATION", default_value = "2s", value_parser = parse_duration)]
    lease_duration: Duration,

    /// How often the node Lease is renewed.
    #[arg(long, env = "IRONLB_LEASE_RENEW_INTERVAL", default_value = "500ms", value_parser = parse_duration)]
    lease_renew_interval: Duration,

    /// Re-announce every owned address this often (gratuitous ARP / unsolicited NA), so switch
    /// forwarding tables never age it out. 0s: only on take-over.
    #[arg(long, env = "IRONLB_REFRESH_INTERVAL", default_value = "0s", value_parser = parse_duration)]
    refresh_interval: Duration,

    /// After deleting its Lease on SIGTERM, keep answering this long while peers take over.
    #[arg(long, env = "IRONLB_SHUTDOWN_GRACE", default_value = "2s", value_parser = parse_duration)]
    shutdown_grace: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ironlb_daemon::init_logging(&args.log_level)?;
    let identity = ironlb_daemon::identity(args.identity.clone())?;
    let lease = LeaseSettings { duration: args.lease_duration, renew_interval: args.lease_renew_interval };
    lease.validate()?;
    info!(version = env!("CARGO_PKG_VERSION"), node = %args.node_name, identity, ?lease, "starting");

    let client = kube::Client::try_default().await.context("cannot reach the API server")?;
    let (metrics, health) = (Metrics::new(), Health::new());
    let server = tokio::spawn(telemetry::serve(args.metrics_address, metrics.clone(), health.clone()));
    let settings = Settings {
        node_name: args.node_name,
        namespace: args.namespace,
        identity,
        lease,
        refresh: args.refresh_interval,
        shutdown_grace: args.shutdown_grace,
    };
    let outcome = tokio::select! {
        outcome = controller::run(client, settings, metrics, health.clone(), ironlb_daemon::shutdown_signal()) => outcome,
        served = server => Err(match served {
            Ok(Err(error)) => error,
            Ok(Ok(())) => anyhow::anyhow!("the metrics server stopped"),
            Err(error) => anyhow::anyhow!("the metrics server failed: {error}"),
        }),
    };
    health.set_alive(false);
    if let Err(error) = &outcome {
        error!(%error, "stopping");
    }
    outcome
}
