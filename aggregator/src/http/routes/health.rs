//! `GET /health`: is this instance able to do its job (reach ClickHouse)?

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::http::state::AppState;

/// 200 with ClickHouse's round-trip time, or 503 naming the failure.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    match state.store().ping().await {
        Ok(rtt) => (
            StatusCode::OK,
            Json(json!({
                "status": "ok",
                "clickhouse": {"reachable": true, "latency_ms": rtt.as_secs_f64() * 1000.0},
            })),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "clickhouse": {"reachable": false, "error": e.to_string()},
            })),
        ),
    }
}

/// `GET /health`.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/health", axum::routing::get(health))
}
