//! Commission holds: the players the commission job must hold (pending
//! review) or treat as confirmed fraud.

use std::collections::HashMap;

use uuid::Uuid;

use crate::store::fraud::{first_decisions, kind};
use crate::store::{Store, StoreError};

use super::*;

/// A player's fraud standing for the commission job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommissionHold {
    /// The registration or first deposit awaits review: nothing is earned
    /// until an operator decides (earlier accruals are reversed meanwhile).
    Pending,
    /// Confirmed fraud: every commission of the player is clawed back.
    Rejected {
        /// The review (the clawback's source event is `fraud-review:<id>`).
        review_id: Uuid,
        /// When it was decided.
        decided_at_ms: u64,
    },
}

/// Players held for commission purposes, by `(brand, brand player id)`.
pub type CommissionHolds = HashMap<(Uuid, String), CommissionHold>;

impl Quarantine {
    /// Players whose registration or first deposit is held, for the
    /// commission job (read from ClickHouse, so every instance agrees).
    pub async fn commission_holds(store: &Store) -> Result<CommissionHolds, StoreError> {
        let scores = store.quarantined_scores().await?;
        let reviews = first_decisions(store.reviews().await?);
        let mut out = CommissionHolds::new();
        for r in scores
            .into_iter()
            .filter(|r| r.entity_kind == kind::REGISTRATION || r.entity_kind == kind::FIRST_DEPOSIT)
        {
            let hold = match reviews.get(&(r.brand_id, r.entity_kind, r.entity_id.clone())) {
                None => CommissionHold::Pending,
                Some(d) if d.decision == Verdict::Rejected.code() => CommissionHold::Rejected {
                    review_id: d.review_id,
                    decided_at_ms: d.decided_at_ms,
                },
                Some(_) => continue,
            };
            let key = (r.brand_id, r.brand_player_id.clone());
            // A rejection outranks a pending item of the same player.
            match (out.get(&key), &hold) {
                (Some(CommissionHold::Rejected { .. }), _) => {}
                _ => {
                    out.insert(key, hold);
                }
            }
        }
        Ok(out)
    }
}
