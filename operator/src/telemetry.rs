//! Telemetry: what the operator tells Prometheus and the kubelet.
//!
//! The controllers record into [`Metrics`] as they allocate, release and reconcile; `main` flips
//! [`Health`] as the process comes up (caches synced) or wedges; [`serve`] exposes both over HTTP on
//! the metrics port: `GET /metrics` (OpenMetrics text), `/healthz` (liveness) and `/readyz`
//! (readiness). Both replicas serve all three: a standby's metrics describe its warm caches, and its
//! readiness says it can take over, not that it leads (the `leader` gauge says that).

mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
pub use ironlb_daemon::{Health, OPENMETRICS_CONTENT_TYPE};

pub use self::metrics::{Controller, Metrics};

/// The HTTP routes, for [`serve`] or for embedding in another server.
pub fn router(metrics: Metrics, health: Health) -> Router {
    ironlb_daemon::router(Arc::new(move || metrics.render()), health)
}

/// Binds `addr` and serves [`router`] until the returned future is dropped or the listener fails.
pub async fn serve(addr: SocketAddr, metrics: Metrics, health: Health) -> anyhow::Result<()> {
    ironlb_daemon::serve(addr, Arc::new(move || metrics.render()), health).await
}

#[cfg(test)]
mod tests {
    use super::{Health, Metrics};

    #[test]
    fn readiness_does_not_depend_on_leadership() {
        let (metrics, health) = (Metrics::new(), Health::new());
        health.set_ready(true);
        metrics.set_leader(false);
        assert!(health.is_ready(), "a standby is a ready hot spare");
    }

    #[test]
    fn allocations_are_counted_in_the_served_text() {
        let metrics = Metrics::new();
        metrics.record_allocation("default");
        let text = metrics.render().expect("renders");
        assert!(text.contains("ironlb_operator_allocations_total{pool=\"default\"} 1\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
