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
use clickstitch_shared::{Click, GeoBlock};
use serde::Serialize;

use crate::clock::{now_ms, secs};
use crate::error::{ApiError, Problem};
use crate::http::auth::EdgeCaller;
use crate::http::AppState;
use crate::ingest::{parse_batch, BatchError, RecordKind, Rejection, MAX_LISTED_REJECTIONS};
use crate::metrics::ClickVerdict;
use crate::store::rows::{ClickRow, ClickSummaryRow, GeoBlockRow};
use crate::store::writer::WriteBatch;
use crate::store::StoreError;

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
    /// The first [`MAX_LISTED_REJECTIONS`] of them, with their reasons.
    rejected: Vec<Rejection>,
}

/// Ingests one batch.
pub async fn ingest_clicks(
    _edge: EdgeCaller,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let policy = state.time_policy(now);
    let mut parsed = parse_batch(&body, policy).map_err(|e| match e {
        BatchError::TooManyRecords => ApiError::TooManyRecords(e.to_string()),
        BatchError::Malformed(_) => ApiError::BadRequest(e.to_string()),
    })?;

    // Moved out, not cloned: the checks borrow them, then they become rows.
    let (click_indices, clicks): (Vec<usize>, Vec<Click>) = parsed.clicks.drain(..).unzip();
    let (block_indices, blocks): (Vec<usize>, Vec<GeoBlock>) = parsed.geo_blocks.drain(..).unzip();
    let (click_checks, block_checks) = state.catalog().check_records(&clicks, &blocks).await?;

    let received_at = secs(now);
    let mut batch = WriteBatch::default();
    let mut accepted_clicks = Vec::with_capacity(clicks.len());
    for ((index, click), problem) in click_indices.into_iter().zip(clicks).zip(click_checks) {
        match problem {
            None => accepted_clicks.push(click),
            Some(why) => parsed.rejected.push(Rejection {
                kind: RecordKind::Click,
                index,
                id: Some(click.click_id.to_string()),
                errors: vec![Problem::new("link_code", why)],
            }),
        }
    }
    for ((index, block), problem) in block_indices.into_iter().zip(blocks).zip(block_checks) {
        match problem {
            None => batch
                .geo_blocks
                .push(GeoBlockRow::from_block(&block, received_at)),
            Some(why) => parsed.rejected.push(Rejection {
                kind: RecordKind::GeoBlock,
                index,
                id: Some(block.event_id.to_string()),
                errors: vec![Problem::new("link_code", why)],
            }),
        }
    }

    // A replayed delivery (the edge retrying a batch whose answer it did
    // not get) is written again — idempotent in ClickHouse — but neither
    // scored nor counted again: only clicks this instance has not stored
    // recently count in the fraud windows and in `clicks_total`.
    let (to_score, replayed): (Vec<Click>, Vec<Click>) = accepted_clicks
        .into_iter()
        .partition(|c| state.clicks().get(c.brand_id, c.click_id).is_none());
    // Fraud scoring, in click order; clicks stored earlier that a window
    // crossing now covers are re-flagged before this batch is acknowledged.
    let scored = state.quarantine().score_clicks(&to_score, now);
    if !scored.escalations.is_empty() {
        let skip = to_score.iter().map(|c| c.click_id.to_string()).collect();
        state
            .quarantine()
            .escalate(&scored.escalations, &skip, now)
            .await?;
    }
    let quarantined = scored.quarantined_ids();
    // Counted per (brand, verdict) for /metrics, one update per pair.
    let mut verdicts: std::collections::HashMap<(clickstitch_shared::BrandId, ClickVerdict), u64> =
        std::collections::HashMap::new();
    for c in &to_score {
        let verdict = if c.bot.is_bot() {
            ClickVerdict::Bot
        } else if !quarantined.is_empty() && quarantined.contains(&c.click_id.to_string()) {
            ClickVerdict::Quarantined
        } else if c.is_duplicate {
            ClickVerdict::Duplicate
        } else {
            ClickVerdict::Human
        };
        *verdicts.entry((c.brand_id, verdict)).or_default() += 1;
    }
    for b in &batch.geo_blocks {
        let brand = clickstitch_shared::BrandId::from(b.brand_id);
        *verdicts
            .entry((brand, ClickVerdict::GeoBlocked))
            .or_default() += 1;
    }
    batch.clicks = to_score
        .into_iter()
        .chain(replayed)
        .map(|c| ClickRow::from_click(c, received_at))
        .collect();
    batch.fraud_scores = scored.rows;
    let fraud_rows = batch.fraud_scores.clone();

    let accepted = Accepted {
        clicks: batch.clicks.len(),
        geo_blocks: batch.geo_blocks.len(),
    };
    let summaries: Vec<ClickSummaryRow> = batch.clicks.iter().map(ClickSummaryRow::from).collect();
    state
        .writer()
        .write(batch)
        .await
        .map_err(|e| ApiError::from(StoreError::from_shared(e)))?;
    // Durable now: stitching may find them in memory, and held clicks are
    // excluded from attribution.
    state.clicks().observe(summaries);
    state.quarantine().hold(&fraud_rows);
    for ((brand, verdict), n) in verdicts {
        state.metrics().clicks(brand, verdict, n);
    }

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
    let rejected_count = parsed.rejected.len();
    parsed.rejected.truncate(MAX_LISTED_REJECTIONS);
    Ok((
        status,
        Json(IngestResponse {
            accepted,
            rejected_count,
            rejected: parsed.rejected,
        }),
    )
        .into_response())
}

/// The click ingest route (under `/edge/v1`).
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/clicks", axum::routing::post(ingest_clicks))
}
