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
use ironlb_daemon::duration::{DurationOrSeconds, parse_duration_or_seconds};
use ironlb_operator::engine::{Engine, EngineSettings};
use ironlb_operator::leader::{ElectionSettings, LeaderElector};
use ironlb_operator::telemetry::{self, Health, Metrics};
use tracing::{error, info, warn};

/// Flags of ironlb-operator; each has an environment fallback. Durations are written as every
/// ironlb flag and chart value writes them: `500ms`, `15s`, `2m`.
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

    /// How long a standby waits after the leader's last renewal before taking over, e.g. 15s (whole
    /// seconds: the Lease records it so). A bare number is read as seconds, deprecated.
    #[arg(long, env = "IRONLB_LEASE_DURATION", default_value = "15s", value_parser = parse_duration_or_seconds)]
    lease_duration: DurationOrSeconds,

    /// How long the leader keeps trying to renew before it stops writing, e.g. 10s. A bare number is
    /// read as seconds, deprecated.
    #[arg(long, env = "IRONLB_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration_or_seconds)]
    renew_deadline: DurationOrSeconds,

    /// The time between renewals (and between a standby's attempts), e.g. 2s. A bare number is read
    /// as seconds, deprecated.
    #[arg(long, env = "IRONLB_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration_or_seconds)]
    retry_period: DurationOrSeconds,

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
    // Bare seconds are still read, for one release: say so where the operator of the cluster looks.
    for (flag, value) in [
        ("--lease-duration", args.lease_duration),
        ("--renew-deadline", args.renew_deadline),
        ("--retry-period", args.retry_period),
    ] {
        if let Some(deprecation) = value.deprecation(flag) {
            warn!("{deprecation}");
        }
    }

    let client = kube::Client::try_default().await.context("cannot reach the API server")?;
    let metrics = Metrics::new();
    let health = Health::new();
    tokio::spawn(telemetry::serve(args.metrics_address, metrics.clone(), health.clone()));

    let lease = ElectionSettings {
        lease_duration: args.lease_duration.duration,
        renew_deadline: args.renew_deadline.duration,
        retry_period: args.retry_period.duration,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn election_flags_default_to_client_go_s_timings_as_durations() {
        let args = Args::try_parse_from(["ironlb-operator"]).expect("defaults");
        let defaults = ElectionSettings::default();
        assert_eq!(args.lease_duration, DurationOrSeconds { duration: defaults.lease_duration, bare_seconds: None });
        assert_eq!(args.renew_deadline, DurationOrSeconds { duration: defaults.renew_deadline, bare_seconds: None });
        assert_eq!(args.retry_period, DurationOrSeconds { duration: defaults.retry_period, bare_seconds: None });
    }

    #[test]
    fn election_flags_still_read_bare_seconds_and_say_so() {
        let args =
            Args::try_parse_from(["ironlb-operator", "--lease-duration=20", "--renew-deadline=12s"]).expect("flags");
        assert_eq!(args.lease_duration.duration, Duration::from_secs(20));
        assert_eq!(
            args.lease_duration.deprecation("--lease-duration").as_deref(),
            Some("--lease-duration=20 is read as 20s; bare numbers are deprecated, write 20s")
        );
        assert_eq!(args.renew_deadline.deprecation("--renew-deadline"), None);
    }
}
