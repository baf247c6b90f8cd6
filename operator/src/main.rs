//! ironlb-operator: assigns LoadBalancer Services their addresses from
//! `IPAddressPool`s and records the allocations in the pools' status, with
//! what the speakers announce them from and the node announcing each.
//!
//! This file only reads flags and wires the parts together: the caches and
//! allocation engine ([`ironlb_operator::engine`]), leader election
//! ([`ironlb_operator::leader`]) and the metrics/health endpoints
//! ([`ironlb_operator::telemetry`]).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ironlb_operator::engine::{Engine, EngineSettings};
use ironlb_operator::leader::{LeaderElector, LeaseSettings};
use ironlb_operator::telemetry::{self, Health, Metrics};
use tracing::{error, info, warn};

/// Flags of ironlb-operator; each has an environment fallback.
#[derive(Debug, Parser)]
#[command(name = "ironlb-operator", version, about)]
struct Args {
    /// Serve only Services with this spec.loadBalancerClass. Unset: serve Services without a class.
    #[arg(long, env = "IRONLB_LOAD_BALANCER_CLASS")]
    load_balancer_class: Option<String>,

    /// The operator's own namespace: where its leader Lease lives and where it watches the speakers'
    /// node Leases (the speakers run in the same namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "ironlb-system")]
    namespace: String,

    /// Name of this replica in the leader Lease; must differ between replicas.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,

    /// Name of the leader Lease.
    #[arg(long, env = "IRONLB_LEASE_NAME", default_value = "ironlb-operator")]
    lease_name: String,

    /// Seconds a standby waits after the leader's last renewal before taking over.
    #[arg(long, env = "IRONLB_LEASE_DURATION", default_value_t = 15)]
    lease_duration: u64,

    /// Seconds the leader keeps trying to renew before it stops writing.
    #[arg(long, env = "IRONLB_RENEW_DEADLINE", default_value_t = 10)]
    renew_deadline: u64,

    /// Seconds between renewals (and between a standby's attempts).
    #[arg(long, env = "IRONLB_RETRY_PERIOD", default_value_t = 2)]
    retry_period: u64,

    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "IRONLB_METRICS_ADDRESS", default_value = "0.0.0.0:7472")]
    metrics_address: SocketAddr,

    /// Log filter: a level (info, debug, ...) or a tracing directive list.
    #[arg(long, env = "IRONLB_LOG_LEVEL", default_value = "info")]
    log_level: String,

    /// API writes in flight at once.
    #[arg(long, env = "IRONLB_WRITE_CONCURRENCY", default_value_t = 32)]
    write_concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ironlb_daemon::init_logging(&args.log_level)?;
    let identity = ironlb_daemon::identity(args.identity.clone())?;
    info!(version = env!("CARGO_PKG_VERSION"), identity, "starting");

    let client = kube::Client::try_default().await.context("cannot reach the API server")?;
    let metrics = Metrics::new();
    let health = Health::new();
    tokio::spawn(telemetry::serve(args.metrics_address, metrics.clone(), health.clone()));

    let lease = LeaseSettings {
        lease_duration: Duration::from_secs(args.lease_duration),
        renew_deadline: Duration::from_secs(args.renew_deadline),
        retry_period: Duration::from_secs(args.retry_period),
    };
    let mut elector = LeaderElector::new(client.clone(), &args.namespace, &args.lease_name, &identity, lease)?;
    let gate = elector.leadership();

    let settings = EngineSettings {
        load_balancer_class: args.load_balancer_class.filter(|class| !class.is_empty()),
        write_concurrency: args.write_concurrency,
        namespace: args.namespace.clone(),
        ..EngineSettings::default()
    };
    let engine = Engine::new(client, settings, metrics.clone(), &identity);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // Losing the lease is not fatal: the engine stops writing at once and stands by with its
    // caches warm, and the elector campaigns again. Only shutdown ends this task.
    let elector_task = tokio::spawn(async move {
        let mut stop_rx = stop_rx;
        loop {
            let stop = async {
                let _ = (&mut stop_rx).await;
            };
            match elector.run(stop).await {
                Ok(()) => return elector,
                Err(loss) => warn!(%loss, "leadership lost: standing by and campaigning again"),
            }
        }
    });
    let outcome = tokio::select! {
        result = engine.run(health.clone(), gate) => result,
        () = ironlb_daemon::shutdown_signal() => { info!("shutting down"); Ok(()) }
    };
    health.set_alive(false);
    metrics.set_leader(false);
    // Stop renewing, then hand the Lease over so the standby takes over at once.
    let _ = stop_tx.send(());
    let mut elector = elector_task.await?;
    if let Err(error) = tokio::time::timeout(Duration::from_secs(5), elector.release()).await.unwrap_or(Ok(())) {
        error!(%error, "could not release the leader Lease");
    }
    outcome
}
