//! Telemetry: what the operator tells Prometheus and the kubelet.
//!
//! The controllers record into [`Metrics`] as they allocate, release and reconcile; `main` flips
//! [`Health`] as the process comes up (caches synced) or wedges; [`serve`] exposes both over HTTP on
//! the metrics port: `GET /metrics` (OpenMetrics text), `/healthz` (liveness) and `/readyz`
//! (readiness). Both replicas serve all three: a standby's metrics describe its warm caches, and its
//! readiness says it can take over, not that it leads (the `leader` gauge says that).

mod health;
mod metrics;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use self::health::Health;
pub use self::metrics::{Controller, Metrics};

/// The content type of `GET /metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Errors of the telemetry server.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The listen address could not be bound (in use, or not permitted).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped accepting connections.
    #[error("the telemetry server failed")]
    Serve(#[source] std::io::Error),
}

/// What the handlers share.
#[derive(Clone, Debug)]
struct Endpoints {
    metrics: Metrics,
    health: Health,
}

/// The HTTP routes, for [`serve`] or for embedding in another server.
pub fn router(metrics: Metrics, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(liveness))
        .route("/readyz", get(readiness))
        .with_state(Endpoints { metrics, health })
}

/// Binds `addr` and serves [`router`] until the returned future is dropped or the listener fails.
pub async fn serve(addr: SocketAddr, metrics: Metrics, health: Health) -> Result<(), TelemetryError> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| TelemetryError::Bind { addr, source })?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    axum::serve(listener, router(metrics, health)).await.map_err(TelemetryError::Serve)
}

async fn render_metrics(State(endpoints): State<Endpoints>) -> Response {
    match endpoints.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn liveness(State(endpoints): State<Endpoints>) -> (StatusCode, &'static str) {
    probe(endpoints.health.is_alive(), "the operator loop has stopped\n")
}

async fn readiness(State(endpoints): State<Endpoints>) -> (StatusCode, &'static str) {
    probe(endpoints.health.is_ready(), "caches not synced\n")
}

fn probe(ok: bool, failure: &'static str) -> (StatusCode, &'static str) {
    if ok { (StatusCode::OK, "ok\n") } else { (StatusCode::SERVICE_UNAVAILABLE, failure) }
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode, header};
    use tower_test::mock::Spawn;

    use super::{Health, Metrics, OPENMETRICS_CONTENT_TYPE, router};

    /// Sends one GET through the router, as a connection would, and returns status, content type and body.
    async fn get(metrics: &Metrics, health: &Health, path: &str) -> (StatusCode, Option<String>, String) {
        // `Spawn` drives any tower service; axum's router is always ready, so a bare call suffices.
        let mut service = Spawn::new(router(metrics.clone(), health.clone()));
        let request = Request::get(path).body(Body::empty()).expect("request");
        let response = service.call(request).await.expect("the router is infallible");
        let status = response.status();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).map(str::to_owned);
        let body = to_bytes(response.into_body(), usize::MAX).await.expect("body");
        (status, content_type, String::from_utf8(body.to_vec()).expect("UTF-8 body"))
    }

    #[tokio::test]
    async fn readyz_is_unavailable_until_caches_are_synced() {
        let (metrics, health) = (Metrics::new(), Health::new());
        assert_eq!(get(&metrics, &health, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        health.set_ready(true);
        assert_eq!(get(&metrics, &health, "/readyz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn readiness_does_not_depend_on_leadership() {
        let (metrics, health) = (Metrics::new(), Health::new());
        health.set_ready(true);
        metrics.set_leader(false);
        assert_eq!(get(&metrics, &health, "/readyz").await.0, StatusCode::OK, "a standby is a ready hot spare");
    }

    #[tokio::test]
    async fn healthz_fails_once_the_loop_has_stopped() {
        let (metrics, health) = (Metrics::new(), Health::new());
        assert_eq!(get(&metrics, &health, "/healthz").await.0, StatusCode::OK, "alive before caches sync");
        health.set_alive(false);
        assert_eq!(get(&metrics, &health, "/healthz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get(&metrics, &health, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics_text() {
        let (metrics, health) = (Metrics::new(), Health::new());
        metrics.record_allocation("default");
        let (status, content_type, body) = get(&metrics, &health, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some(OPENMETRICS_CONTENT_TYPE));
        assert!(body.contains("ironlb_operator_allocations_total{pool=\"default\"} 1\n"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");
    }
}
