//! `POST /edge/v1/clicks`: the edge's click batches.
//!
//! Answers 200 once every accepted record is durable in ClickHouse, listing
//! the rejected ones; 422 when nothing in a non-empty batch was acceptable;
//! 400 when the body is not a batch; 413 above the record bound; 503
//! (retry) when ClickHouse could not store it — then nothing of the batch
//! is acknowledged. The use case is [`crate::services::clicks`].

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::http::auth::EdgeCaller;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::ingest::Rejection;
use crate::support::clock::now_ms;

#[derive(Debug, Serialize)]
struct Accepted {
    clicks: usize,
    geo_blocks: usize,
}

#[derive(Debug, Serialize)]
struct IngestResponse {
    accepted: Accepted,
    /// How many records were refused (all of them).
    rejected_count: usize,
    /// The first [`crate::ingest::MAX_LISTED_REJECTIONS`] of them, with their reasons.
    rejected: Vec<Rejection>,
}

/// Ingests one batch.
pub async fn ingest_clicks(
    _edge: EdgeCaller,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let ingested = state
        .click_ingest()
        .ingest(&body, state.time_policy(now), now)
        .await?;
    let status = if ingested.nothing_accepted() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(IngestResponse {
            accepted: Accepted {
                clicks: ingested.clicks,
                geo_blocks: ingested.geo_blocks,
            },
            rejected_count: ingested.rejected_count,
            rejected: ingested.rejected,
        }),
    )
        .into_response())
}

/// The click ingest route (under `/edge/v1`).
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/clicks", axum::routing::post(ingest_clicks))
}
