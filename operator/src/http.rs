//! The operator's own HTTP endpoints: `/metrics` (Prometheus text),
//! `/healthz` (the process runs) and `/readyz` (it can reach the API server
//! and either leads or stands by).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// What the endpoints read.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// The reconcile metrics.
    pub metrics: Arc<Metrics>,
    /// Set once the operator has talked to the API server.
    pub ready: Arc<AtomicBool>,
}

/// The router for the endpoints.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_get))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_get))
        .with_state(state)
}

async fn metrics_get(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn ready_get(State(state): State<HttpState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    fn state(ready: bool) -> HttpState {
        HttpState {
            metrics: Arc::new(Metrics::default()),
            ready: Arc::new(AtomicBool::new(ready)),
        }
    }

    async fn get(state: HttpState, path: &str) -> (StatusCode, String) {
        let response = router(state)
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readiness_waits_for_the_api_server_and_health_does_not() {
        assert_eq!(
            get(state(false), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(get(state(true), "/readyz").await.0, StatusCode::OK);
        assert_eq!(get(state(false), "/healthz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_are_served_as_prometheus_text() {
        let (status, body) = get(state(true), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("# TYPE raftcfg_operator_reconciles counter"),
            "{body}"
        );
    }
}
