//! Why a player's CPA has (or has not) qualified: for each registration of
//! one brand player and each credited affiliate with CPA terms, every rule
//! with met / unmet and the values seen, the outcome the engine reaches,
//! and the player's ledger lines — so that a player who never qualifies
//! is explained, not just absent from the ledger.
//!
//! Owns the composition of that read (stored rows → facts → the engine's
//! [`crate::commission::cpa::explain`] and [`crate::commission::cpa::evaluate`]).
//! Writes nothing and must not compute commissions itself.

use serde::Serialize;

use clickstitch_shared::{AffiliateId, BrandId};

use crate::commission::cpa::{self, CpaOutcome, RuleCheck};
use crate::commission::{DealBook, LedgerEntry, RunProblem};
use crate::services::commission::job::facts_from;
use crate::store::ledger::{LedgerScope, LedgerStoreError};
use crate::store::{Store, StoreError};

/// One credited affiliate's CPA terms checked against the player.
#[derive(Debug, Clone, Serialize)]
pub struct CpaCheck {
    /// The earning affiliate.
    pub affiliate_id: AffiliateId,
    /// Its credit share of the registration (basis points).
    pub share_bps: i64,
    /// The deal version in force in the registration month.
    pub deal_version: u32,
    /// `qualified`, `awaiting_kyc`, `not_qualified`, or `not_computable`
    /// (an FX table is missing).
    pub outcome: &'static str,
    /// When the last rule was met (qualified and awaiting KYC), RFC 3339.
    pub qualified_at: Option<String>,
    /// Every rule.
    pub rules: Vec<RuleCheck>,
}

/// The CPA situation of one brand player.
#[derive(Debug, Clone, Serialize)]
pub struct CpaStatus {
    /// The global player id.
    pub player_id: Option<String>,
    /// Attribution status per stored row (`pending_kyc`, `final`, …).
    pub attributed: bool,
    /// Players whose facts cannot be built are explained here instead.
    pub problems: Vec<RunProblem>,
    /// Why the player earns nothing now, if held by fraud review.
    pub held: Vec<String>,
    /// One check per credited affiliate with CPA terms.
    pub checks: Vec<CpaCheck>,
    /// The player's ledger lines (CPA, clawbacks, overrides on them).
    pub lines: Vec<LedgerEntry>,
}

/// Why reading a player's CPA status failed.
#[derive(Debug, thiserror::Error)]
pub enum CpaStatusError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored configuration or ledger rows are corrupt.
    #[error(transparent)]
    Ledger(#[from] LedgerStoreError),
}

/// The CPA status of `brand_player_id` at `brand` (`None`: no such player).
pub async fn cpa_status(
    store: &Store,
    brand: BrandId,
    brand_player_id: &str,
) -> Result<Option<CpaStatus>, CpaStatusError> {
    let attributions = store
        .load_player_attributions(brand, brand_player_id)
        .await?;
    if attributions.is_empty() {
        return Ok(None);
    }
    let events = store
        .load_player_fact_events(brand, brand_player_id)
        .await?;
    let loaded = facts_from(store, &attributions, events).await?;
    let deals = DealBook::new(store.load_deals().await?)
        .map_err(|e| LedgerStoreError::from(StoreError::Rejected(e.to_string())))?;
    let fx = store.load_fx_book().await?;
    let player = attributions[0].player_id;
    let mut checks = Vec::new();
    for f in &loaded.players {
        let Some(att) = f.attribution() else { continue };
        for credit in att.credits() {
            let Some(deal) = deals.get(credit.affiliate) else {
                continue;
            };
            let Some(version) = deal.version_at(f.registration().at.month()) else {
                continue;
            };
            let Some(terms) = version.plan().cpa() else {
                continue;
            };
            let (outcome, qualified_at) = match cpa::evaluate(f, terms, deal.currency(), &fx) {
                Ok(CpaOutcome::Qualified(q)) => (
                    match q.gate {
                        crate::commission::Gate::Final => "qualified",
                        crate::commission::Gate::AwaitingKyc => "awaiting_kyc",
                    },
                    Some(q.at.to_string()),
                ),
                Ok(CpaOutcome::NotQualified(_)) => ("not_qualified", None),
                Err(_) => ("not_computable", None),
            };
            checks.push(CpaCheck {
                affiliate_id: credit.affiliate,
                share_bps: credit.share.get(),
                deal_version: version.version(),
                outcome,
                qualified_at,
                rules: cpa::explain(f, terms, deal.currency(), &fx),
            });
        }
    }
    let lines = store.load_ledger(LedgerScope::Player(player)).await?;
    Ok(Some(CpaStatus {
        player_id: Some(player.to_string()),
        attributed: loaded.players.iter().any(|f| f.attribution().is_some()),
        problems: loaded.problems,
        held: loaded.held,
        checks,
        lines,
    }))
}
