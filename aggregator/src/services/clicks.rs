//! Click ingest: one edge batch from bytes to durable rows.
//!
//! Owns the use case behind `POST /edge/v1/clicks`: parse and bound the
//! batch ([`crate::ingest`]), check every record against the catalogue,
//! score new clicks and escalate earlier ones ([`crate::services::fraud::quarantine`]),
//! write clicks, geo blocks and fraud scores in one group-committed batch,
//! then — durable only now — feed the recent-click index, hold what scoring
//! held, and count verdicts. A replayed delivery (the edge retrying a batch
//! whose answer it did not get) is written again, idempotently, but neither
//! scored nor counted again. Knows nothing of HTTP.

use std::collections::HashMap;

use clickstitch_shared::{BrandId, Click, GeoBlock};

use crate::catalog::Catalog;
use crate::click_index::ClickIndex;
use crate::error::Problem;
use crate::ingest::{
    parse_batch, BatchError, RecordKind, Rejection, TimePolicy, MAX_LISTED_REJECTIONS,
};
use crate::metrics::{ClickVerdict, Metrics};
use crate::services::fraud::quarantine::Quarantine;
use crate::store::rows::{ClickRow, ClickSummaryRow, GeoBlockRow};
use crate::store::writer::{ClickWriter, WriteBatch};
use crate::store::StoreError;
use crate::support::clock::secs;

/// Why a batch was not ingested (nothing of it is acknowledged).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Not a batch, or a batch beyond the record bound.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// ClickHouse could not check or store it: retry.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What became of a batch.
#[derive(Debug)]
pub struct Ingested {
    /// Clicks stored.
    pub clicks: usize,
    /// Geo blocks stored.
    pub geo_blocks: usize,
    /// How many records were refused.
    pub rejected_count: usize,
    /// The first [`MAX_LISTED_REJECTIONS`] refused records, in batch order
    /// (clicks, then geo blocks), with their reasons.
    pub rejected: Vec<Rejection>,
}

impl Ingested {
    /// Whether a non-empty batch had nothing acceptable.
    pub fn nothing_accepted(&self) -> bool {
        self.clicks + self.geo_blocks == 0 && self.rejected_count > 0
    }
}

/// The click ingest service, over the aggregator's shared parts.
#[derive(Debug, Clone, Copy)]
pub struct ClickIngest<'a> {
    /// Links, brands and affiliates the records must name.
    pub catalog: &'a Catalog,
    /// Recent clicks (replay detection and stitching).
    pub recent: &'a ClickIndex,
    /// Fraud scoring and holds.
    pub quarantine: &'a Quarantine,
    /// The group-commit writer.
    pub writer: &'a ClickWriter,
    /// Verdict counters.
    pub metrics: &'a Metrics,
}

impl ClickIngest<'_> {
    /// Ingests one batch received at `now_ms`; returns once every accepted
    /// record is durable.
    pub async fn ingest(
        &self,
        body: &[u8],
        policy: TimePolicy,
        now_ms: u64,
    ) -> Result<Ingested, IngestError> {
        let mut parsed = parse_batch(body, policy)?;

        // Moved out, not cloned: the checks borrow them, then they become rows.
        let (click_indices, clicks): (Vec<usize>, Vec<Click>) = parsed.clicks.drain(..).unzip();
        let (block_indices, blocks): (Vec<usize>, Vec<GeoBlock>) =
            parsed.geo_blocks.drain(..).unzip();
        let (click_checks, block_checks) = self.catalog.check_records(&clicks, &blocks).await?;

        let received_at = secs(now_ms);
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

        // Only clicks this instance has not stored recently count in the
        // fraud windows and in `clicks_total`.
        let (to_score, replayed): (Vec<Click>, Vec<Click>) = accepted_clicks
            .into_iter()
            .partition(|c| self.recent.get(c.brand_id, c.click_id).is_none());
        // Fraud scoring, in click order; clicks stored earlier that a window
        // crossing now covers are re-flagged before this batch is acknowledged.
        let scored = self.quarantine.score_clicks(&to_score, now_ms);
        if !scored.escalations.is_empty() {
            let skip = to_score.iter().map(|c| c.click_id.to_string()).collect();
            self.quarantine
                .escalate(&scored.escalations, &skip, now_ms)
                .await?;
        }
        let verdicts = verdicts(&to_score, &scored.quarantined_ids(), &batch.geo_blocks);
        batch.clicks = to_score
            .into_iter()
            .chain(replayed)
            .map(|c| ClickRow::from_click(c, received_at))
            .collect();
        batch.fraud_scores = scored.rows;
        let fraud_rows = batch.fraud_scores.clone();
        let (stored_clicks, stored_blocks) = (batch.clicks.len(), batch.geo_blocks.len());
        let summaries: Vec<ClickSummaryRow> =
            batch.clicks.iter().map(ClickSummaryRow::from).collect();
        self.writer
            .write(batch)
            .await
            .map_err(StoreError::from_shared)?;
        // Durable now: stitching may find them in memory, and held clicks are
        // excluded from attribution.
        self.recent.observe(summaries);
        self.quarantine.hold(&fraud_rows);
        for ((brand, verdict), n) in verdicts {
            self.metrics.clicks(brand, verdict, n);
        }

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
        Ok(Ingested {
            clicks: stored_clicks,
            geo_blocks: stored_blocks,
            rejected_count,
            rejected: parsed.rejected,
        })
    }
}

/// New clicks and geo blocks counted per (brand, verdict), one metrics
/// update per pair.
fn verdicts(
    clicks: &[Click],
    quarantined: &std::collections::HashSet<String>,
    blocks: &[GeoBlockRow],
) -> HashMap<(BrandId, ClickVerdict), u64> {
    let mut out: HashMap<(BrandId, ClickVerdict), u64> = HashMap::new();
    for c in clicks {
        let verdict = if c.bot.is_bot() {
            ClickVerdict::Bot
        } else if !quarantined.is_empty() && quarantined.contains(&c.click_id.to_string()) {
            ClickVerdict::Quarantined
        } else if c.is_duplicate {
            ClickVerdict::Duplicate
        } else {
            ClickVerdict::Human
        };
        *out.entry((c.brand_id, verdict)).or_default() += 1;
    }
    for b in blocks {
        *out.entry((BrandId::from(b.brand_id), ClickVerdict::GeoBlocked))
            .or_default() += 1;
    }
    out
}
