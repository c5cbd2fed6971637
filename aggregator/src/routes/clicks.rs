//! `POST /edge/v1/clicks`: the edge's click batches.
//!
//! Answers 200 once every accepted record is durable in ClickHouse, listing
//! the rejected ones; 422 when nothing in a non-empty batch was acceptable;
//! 400 when the body is not a batch; 503 (retry) when ClickHouse could not
//! store it — then nothing of the batch is acknowledged.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::auth::EdgeCaller;
use crate::error::{ApiError, Problem};
use crate::ingest::{parse_batch, RecordKind, Rejection};
use crate::startup::AppState;
use crate::store::rows::{ClickRow, GeoBlockRow};
use crate::store::writer::WriteBatch;

#[derive(Debug, Serialize)]
struct Accepted {
    clicks: usize,
    geo_blocks: usize,
}

#[derive(Debug, Serialize)]
struct IngestResponse {
    accepted: Accepted,
    rejected: Vec<Rejection>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Ingests one batch.
pub async fn ingest_clicks(
    _edge: EdgeCaller,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let policy = state.time_policy(now);
    let mut parsed = parse_batch(&body, policy)
        .map_err(|e| ApiError::BadRequest(format!("body is not a click batch: {e}")))?;

    let clicks: Vec<_> = parsed.clicks.iter().map(|(_, c)| c.clone()).collect();
    let blocks: Vec<_> = parsed.geo_blocks.iter().map(|(_, b)| b.clone()).collect();
    let (click_checks, block_checks) = state.catalog().check_records(&clicks, &blocks).await?;

    let received_at = u32::try_from(now / 1000).unwrap_or(u32::MAX);
    let mut batch = WriteBatch::default();
    for ((index, click), problem) in parsed.clicks.drain(..).zip(click_checks) {
        match problem {
            None => batch.clicks.push(ClickRow::from_click(click, received_at)),
            Some(why) => parsed.rejected.push(Rejection {
                kind: RecordKind::Click,
                index,
                id: Some(click.click_id.to_string()),
                errors: vec![Problem::new("link_code", why)],
            }),
        }
    }
    for ((index, block), problem) in parsed.geo_blocks.drain(..).zip(block_checks) {
        match problem {
            None => batch
                .geo_blocks
                .push(GeoBlockRow::from_block(block, received_at)),
            Some(why) => parsed.rejected.push(Rejection {
                kind: RecordKind::GeoBlock,
                index,
                id: Some(block.event_id.to_string()),
                errors: vec![Problem::new("link_code", why)],
            }),
        }
    }

    let accepted = Accepted {
        clicks: batch.clicks.len(),
        geo_blocks: batch.geo_blocks.len(),
    };
    state
        .writer()
        .write(batch)
        .await
        .map_err(|e| match std::sync::Arc::try_unwrap(e) {
            Ok(e) => ApiError::from(e),
            Err(shared) if shared.is_retryable() => ApiError::Unavailable,
            Err(shared) => ApiError::Internal(shared.to_string()),
        })?;

    let nothing_accepted = accepted.clicks + accepted.geo_blocks == 0;
    let status = if nothing_accepted && !parsed.rejected.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    if !parsed.rejected.is_empty() {
        tracing::warn!(
            rejected = parsed.rejected.len(),
            "click batch had invalid records"
        );
    }
    parsed
        .rejected
        .sort_by_key(|r| (r.kind == RecordKind::GeoBlock, r.index));
    Ok((
        status,
        Json(IngestResponse {
            accepted,
            rejected: parsed.rejected,
        }),
    )
        .into_response())
}
