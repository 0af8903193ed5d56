//! Counting and timing every HTTP request a port answers, by route,
//! method and status ([`answer`]). Labels are bounded: a path no route
//! matches is `unmatched`, a method the API does not use is `other`.
//!
//! [`answer`] also makes the port's error answers JSON envelopes
//! ([`crate::http_errors`]). It is each port's one layer around its
//! routes: the peer port's through [`tracked`], the client port's inside
//! its admission checks (`api::admit`). Every layer costs each request a
//! boxed future and a clone of the services beneath it.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::{Metrics, Port, RouteLabels};

/// `router` with each of its requests answered through [`answer`].
pub fn tracked(router: Router, metrics: Arc<Metrics>, port: Port) -> Router {
    router.layer(axum::middleware::from_fn_with_state((metrics, port), track))
}

async fn track(
    State((metrics, port)): State<(Arc<Metrics>, Port)>,
    request: Request,
    next: Next,
) -> Response {
    answer(&metrics, port, request, |request| next.run(request)).await
}

/// Answers `request` with `handle`, counted and timed as `port`'s: a
/// target or headers over the limits are refused first, and an error
/// answer comes out as the JSON envelope.
pub async fn answer<F, Answer>(
    metrics: &Metrics,
    port: Port,
    request: Request,
    handle: F,
) -> Response
where
    F: FnOnce(Request) -> Answer,
    Answer: Future<Output = Response>,
{
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method()).to_owned();
    let started = Instant::now();
    let response = match crate::http_errors::oversized(&request) {
        Some(refusal) => refusal,
        None => crate::http_errors::enveloped(handle(request).await).await,
    };
    metrics.http_request(
        RouteLabels {
            port,
            route,
            method,
        },
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The method as a label: one of the standard methods, else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;
    use crate::metrics::CLIENT_PORT;

    #[tokio::test]
    async fn requests_are_counted_under_their_route_pattern_and_strays_under_unmatched() {
        let metrics = Arc::new(Metrics::default());
        let router = tracked(
            Router::new().route("/v1/kv/{*key}", get(|| async { "v" })),
            metrics.clone(),
            CLIENT_PORT,
        );
        for path in ["/v1/kv/a", "/v1/kv/b/c", "/nowhere"] {
            let request = Request::get(path).body(Body::empty()).unwrap();
            router.clone().oneshot(request).await.unwrap();
        }
        let weird = Request::builder()
            .method(Method::from_bytes(b"BREW").unwrap())
            .uri("/v1/kv/a")
            .body(Body::empty())
            .unwrap();
        router.oneshot(weird).await.unwrap();
        let count = |route: &str, method: &str, status: u16| {
            metrics
                .http_requests
                .get(&crate::metrics::RequestLabels {
                    port: CLIENT_PORT,
                    route: route.to_owned(),
                    method: method.to_owned(),
                    status,
                })
                .map(|counter| counter.get())
        };
        assert_eq!(count("/v1/kv/{*key}", "GET", 200), Some(2));
        assert_eq!(count("unmatched", "GET", 404), Some(1));
        assert_eq!(count("/v1/kv/{*key}", "other", 405), Some(1));
    }

    #[tokio::test]
    async fn error_answers_come_out_as_the_json_envelope() {
        let router = tracked(
            Router::new().route(
                "/v1/kv/{*key}",
                get(|| async { (StatusCode::CONFLICT, "taken") }),
            ),
            Arc::new(Metrics::default()),
            CLIENT_PORT,
        );
        let request = Request::get("/v1/kv/a").body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body = axum::body::to_bytes(response.into_body(), 1 << 10)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["message"], "taken", "{body}");
    }
}
