//! What both ironlb binaries do alike as long-running processes, in one place:
//!
//! - [`init_logging`]: a `tracing` subscriber from a level or directive list;
//! - [`identity`]: the pod name (`POD_NAME`) or, out of cluster, the host name;
//! - [`shutdown_signal`]: SIGTERM (Kubernetes stopping the Pod) or Ctrl-C;
//! - [`Health`] and [`serve`]: `GET /metrics` (OpenMetrics text, rendered by the binary's own
//!   metrics), `/healthz` (liveness) and `/readyz` (readiness) on the metrics port;
//! - [`WatchBackoff`]: how fast a failed watch is retried;
//! - [`guarded`]: watches that skip and report an object they cannot read instead of failing;
//! - [`duration`]: the one syntax of every duration flag (`500ms`, `15s`, `2m`), as a clap value
//!   parser.

#![forbid(unsafe_code)]

mod backoff;
pub mod duration;
pub mod guard;
mod health;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use self::backoff::WatchBackoff;
pub use self::guard::{Guarded, Unreadable, guarded};
pub use self::health::Health;

/// The content type of `GET /metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Installs the `tracing` subscriber: `filter` is a level (`info`, `debug`, …) or a directive
/// list (`info,ironlb_speaker=debug`). Colours only on a terminal.
pub fn init_logging(filter: &str) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(filter).context("invalid --log-level")?)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    Ok(())
}

/// `explicit` (the pod name the downward API gives) or the host name.
pub fn identity(explicit: Option<String>) -> anyhow::Result<String> {
    match explicit.filter(|identity| !identity.is_empty()) {
        Some(identity) => Ok(identity),
        None => Ok(std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("no --identity and no host name")?
            .trim()
            .to_owned()),
    }
}

/// Resolves on SIGTERM (Kubernetes stopping the Pod) or Ctrl-C.
pub async fn shutdown_signal() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Renders a binary's metrics as OpenMetrics text.
pub type Render = Arc<dyn Fn() -> Result<String, fmt::Error> + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
struct Endpoints {
    render: Render,
    health: Health,
}

/// The HTTP routes, for [`serve`] or for embedding in another server.
pub fn router(render: Render, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(liveness))
        .route("/readyz", get(readiness))
        .with_state(Endpoints { render, health })
}

/// Binds `addr` and serves [`router`] until the listener fails.
pub async fn serve(addr: SocketAddr, render: Render, health: Health) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    axum::serve(listener, router(render, health)).await.context("the metrics server failed")
}

async fn render_metrics(State(endpoints): State<Endpoints>) -> Response {
    match (endpoints.render)() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn liveness(State(endpoints): State<Endpoints>) -> (StatusCode, &'static str) {
    probe(endpoints.health.is_alive(), "the main loop has stopped\n")
}

async fn readiness(State(endpoints): State<Endpoints>) -> (StatusCode, &'static str) {
    probe(endpoints.health.is_ready(), "not ready\n")
}

fn probe(ok: bool, failure: &'static str) -> (StatusCode, &'static str) {
    if ok { (StatusCode::OK, "ok\n") } else { (StatusCode::SERVICE_UNAVAILABLE, failure) }
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode, header};
    use tower_test::mock::Spawn;

    use super::*;

    /// Sends one GET through the router, as a connection would.
    async fn get(render: Render, health: &Health, path: &str) -> (StatusCode, Option<String>, String) {
        let mut service = Spawn::new(router(render, health.clone()));
        let request = Request::get(path).body(Body::empty()).expect("request");
        let response = service.call(request).await.expect("the router is infallible");
        let status = response.status();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).map(str::to_owned);
        let body = to_bytes(response.into_body(), usize::MAX).await.expect("body");
        (status, content_type, String::from_utf8(body.to_vec()).expect("UTF-8 body"))
    }

    fn text(body: &'static str) -> Render {
        Arc::new(move || Ok(body.to_owned()))
    }

    #[tokio::test]
    async fn readyz_is_unavailable_until_ready_and_healthz_until_dead() {
        let health = Health::new();
        assert_eq!(get(text(""), &health, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get(text(""), &health, "/healthz").await.0, StatusCode::OK, "alive before ready");
        health.set_ready(true);
        assert_eq!(get(text(""), &health, "/readyz").await.0, StatusCode::OK);
        health.set_alive(false);
        assert_eq!(get(text(""), &health, "/healthz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get(text(""), &health, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics_text() {
        let (status, content_type, body) = get(text("a_total 1\n# EOF\n"), &Health::new(), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some(OPENMETRICS_CONTENT_TYPE));
        assert_eq!(body, "a_total 1\n# EOF\n");
        let failing: Render = Arc::new(|| Err(fmt::Error));
        assert_eq!(get(failing, &Health::new(), "/metrics").await.0, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn an_explicit_identity_wins_over_the_host_name() {
        assert_eq!(identity(Some("pod-1".to_owned())).expect("identity"), "pod-1");
        assert!(!identity(None).expect("host name").is_empty());
    }
}
