//! Review: the operators' decisions on held entities (single and bulk,
//! the first decision binding) and the review queue's pages.

use std::collections::HashMap;

use uuid::Uuid;

use clickstitch_shared::BrandId;

use crate::store::fraud::{FraudReviewRow, FraudScoreRow};
use crate::store::fraud_review::{QueueKey, QueueQuery};
use crate::store::StoreError;
use crate::support::clock::secs;

use super::*;

/// Why a review decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Nothing with this id is quarantined for this brand.
    #[error("no quarantined {kind} {id:?} for this brand")]
    NotQuarantined {
        /// The kind asked for.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// A decision was already taken.
    #[error("{kind} {id:?} was already {verdict} by {reviewer}")]
    AlreadyDecided {
        /// The kind.
        kind: &'static str,
        /// The id.
        id: String,
        /// The earlier verdict.
        verdict: &'static str,
        /// Who took it.
        reviewer: String,
    },
    /// Storage failed; nothing was decided.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A decision to record, and who takes it.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    /// Approve or reject.
    pub verdict: Verdict,
    /// Who decides (a person).
    pub reviewer: &'a str,
    /// Which credential made the call.
    pub credential: &'a str,
    /// Why.
    pub note: &'a str,
    /// When (Unix ms).
    pub at_ms: u64,
}

/// What became of one entity of [`Quarantine::decide_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionOutcome {
    /// Recorded now.
    Decided(FraudReviewRow),
    /// An earlier decision binds (this one was not recorded).
    AlreadyDecided {
        /// Its verdict (None for a value this version does not know).
        verdict: Option<Verdict>,
        /// The earlier decision.
        earlier: FraudReviewRow,
    },
    /// Nothing of this kind and id was scored for the brand.
    NotFound,
    /// Scored, but its newest score is not quarantined.
    NotQuarantined,
}

/// A held entity as the review queue shows it.
#[derive(Debug, Clone)]
pub struct ReviewItem {
    /// What it is.
    pub kind: EntityKind,
    /// Its newest score.
    pub score: FraudScoreRow,
    /// The binding decision, if one was taken.
    pub decision: Option<(Verdict, FraudReviewRow)>,
}

/// One page of the review queue.
#[derive(Debug, Clone)]
pub struct ReviewPage {
    /// The held entities, newest first.
    pub items: Vec<ReviewItem>,
    /// Where the next page starts; None on the last page.
    pub next: Option<QueueKey>,
}

impl Quarantine {
    /// Records an operator's decision on a quarantined entity. The first
    /// decision is binding; the row is durable when this returns. The
    /// single-entity case of [`Quarantine::decide_many`].
    #[allow(clippy::too_many_arguments)]
    pub async fn decide(
        &self,
        brand: BrandId,
        kind: EntityKind,
        id: &str,
        verdict: Verdict,
        reviewer: &str,
        credential: &str,
        note: &str,
        now_ms: u64,
    ) -> Result<FraudReviewRow, ReviewError> {
        let decision = Decision {
            verdict,
            reviewer,
            credential,
            note,
            at_ms: now_ms,
        };
        let outcome = self
            .decide_many(&[(brand, kind, id.to_owned())], decision)
            .await?
            .pop();
        match outcome {
            Some(DecisionOutcome::Decided(row)) => Ok(row),
            Some(DecisionOutcome::AlreadyDecided { verdict, earlier }) => {
                Err(ReviewError::AlreadyDecided {
                    kind: kind.as_str(),
                    id: id.to_owned(),
                    verdict: verdict.map_or("decided", Verdict::as_str),
                    reviewer: earlier.reviewer,
                })
            }
            _ => Err(ReviewError::NotQuarantined {
                kind: kind.as_str(),
                id: id.to_owned(),
            }),
        }
    }

    /// Records one decision on each of `entities` (brand, kind, id; any
    /// brands) that is quarantined and not decided yet (one `fraud_reviews`
    /// row each, all in one INSERT: durable together when this returns, or
    /// none on an error); says per entity, in order, what became of it. An
    /// entity listed twice is decided once (the repeat is `AlreadyDecided`).
    pub async fn decide_many(
        &self,
        entities: &[(BrandId, EntityKind, String)],
        decision: Decision<'_>,
    ) -> Result<Vec<DecisionOutcome>, StoreError> {
        let _one_at_a_time = self.decisions.lock().await;
        let keys: Vec<(Uuid, i8, String)> = entities
            .iter()
            .map(|(b, k, id)| (b.as_uuid(), k.code(), id.clone()))
            .collect();
        let scores: HashMap<(Uuid, i8, String), FraudScoreRow> = self
            .store
            .scores_of_keys(&keys)
            .await?
            .into_iter()
            .map(|r| ((r.brand_id, r.entity_kind, r.entity_id.clone()), r))
            .collect();
        let mut earlier = self.store.first_reviews_of(&keys).await?;
        let mut outcomes = Vec::with_capacity(keys.len());
        let mut rows = Vec::new();
        for key in keys {
            let outcome = match (scores.get(&key), earlier.get(&key)) {
                (None, _) => DecisionOutcome::NotFound,
                (Some(s), _) if s.quarantined != 1 => DecisionOutcome::NotQuarantined,
                (Some(_), Some(d)) => DecisionOutcome::AlreadyDecided {
                    verdict: Verdict::from_code(d.decision),
                    earlier: d.clone(),
                },
                (Some(s), None) => {
                    let row = FraudReviewRow {
                        review_id: Uuid::now_v7(),
                        brand_id: key.0,
                        entity_kind: key.1,
                        entity_id: key.2.clone(),
                        brand_player_id: s.brand_player_id.clone(),
                        decision: decision.verdict.code(),
                        reviewer: decision.reviewer.to_owned(),
                        credential: decision.credential.to_owned(),
                        note: decision.note.to_owned(),
                        decided_at: secs(decision.at_ms),
                        decided_at_ms: decision.at_ms,
                    };
                    earlier.insert(key, row.clone());
                    rows.push(row.clone());
                    DecisionOutcome::Decided(row)
                }
            };
            outcomes.push(outcome);
        }
        self.store.save_reviews(&rows).await?;
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        for r in &rows {
            self.metrics.review_decision(decision.verdict.as_str());
            let key = (r.brand_id, r.entity_kind, r.entity_id.clone());
            let (Some(kind), Some(score)) =
                (EntityKind::from_code(r.entity_kind), scores.get(&key))
            else {
                continue;
            };
            held.insert(
                (BrandId::from(r.brand_id), kind, r.entity_id.clone()),
                Held {
                    score: score.score,
                    review: Review::Decided(decision.verdict),
                },
            );
        }
        Ok(outcomes)
    }

    /// One page of the review queue (held entities with their newest score
    /// and binding decision, newest first; see [`QueueQuery`]): at most
    /// `query.limit` items, selected in ClickHouse, and the key to continue
    /// after when more follow.
    pub async fn review_page(
        &self,
        query: &QueueQuery,
        now_ms: u64,
    ) -> Result<ReviewPage, StoreError> {
        let wanted = query.limit;
        let mut rows = self
            .store
            .review_queue_page(
                &QueueQuery {
                    limit: wanted + 1,
                    ..query.clone()
                },
                now_ms,
            )
            .await?;
        let next = (rows.len() > wanted).then(|| {
            rows.truncate(wanted);
            rows.last().map(QueueKey::of)
        });
        let keys: Vec<(Uuid, i8, String)> = rows
            .iter()
            .map(|r| (r.brand_id, r.entity_kind, r.entity_id.clone()))
            .collect();
        let mut decisions = self.store.first_reviews_of(&keys).await?;
        let items = rows
            .into_iter()
            .filter_map(|score| {
                let kind = EntityKind::from_code(score.entity_kind)?;
                let decision = decisions
                    .remove(&(score.brand_id, score.entity_kind, score.entity_id.clone()))
                    .and_then(|d| Some((Verdict::from_code(d.decision)?, d)));
                Some(ReviewItem {
                    kind,
                    score,
                    decision,
                })
            })
            .collect();
        Ok(ReviewPage {
            items,
            next: next.flatten(),
        })
    }
}
