//! `GET /metrics`: the Prometheus scrape endpoint. Serves the
//! process's [`Metrics`](crate::metrics::Metrics) in the OpenMetrics text
//! format; recording happens elsewhere.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::state::AppState;
use crate::metrics::CONTENT_TYPE;

/// 200 with the OpenMetrics text of every recorded family, or 500 if it
/// could not be encoded (never a truncated exposition).
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics().try_render() {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering the metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `GET /metrics`.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/metrics", axum::routing::get(metrics))
}
