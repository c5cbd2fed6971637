//! Period closes and payout runs: each runs the job first, then records
//! what it did and who did it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use uuid::Uuid;

use clickstitch_shared::AffiliateId;

use crate::commission::{
    payout, Deal, LedgerEntry, Month, PayoutDecision, PayoutRun, Slot, Timestamp,
};
use crate::money::Money;
use crate::store::ledger::{LedgerScope, RunRow};

use super::*;

/// What a period close did.
#[derive(Debug, Clone, Serialize)]
pub struct CloseReport {
    /// The month closed.
    pub month: Month,
    /// The recorded close instant.
    pub closed_at: Timestamp,
    /// The job run made just before the close, so that every fact received
    /// until then is booked in the month.
    pub run: RunReport,
}

/// An affiliate whose payable balance was not paid.
#[derive(Debug, Clone, Serialize)]
pub struct RolledOver {
    /// The affiliate.
    pub affiliate: AffiliateId,
    /// The payable balance (may be zero or negative).
    pub payable: Money,
    /// The minimum payout it did not reach.
    pub min_payout: Money,
}

/// What a payout run did.
#[derive(Debug, Clone, Serialize)]
pub struct PayoutReport {
    /// The payout run id (the payout entries' ids derive from it).
    pub run_id: Uuid,
    /// When it was decided.
    pub at: Timestamp,
    /// True when the run id had already been used: the stored payouts are
    /// returned and nothing is paid again.
    pub replayed: bool,
    /// The payout entries appended (or found, on a replay).
    pub paid: Vec<LedgerEntry>,
    /// Affiliates below their minimum payout (or with nothing payable).
    pub rolled_over: Vec<RolledOver>,
    /// Affiliates with ledger entries but no deal version in force now.
    pub skipped: Vec<AffiliateId>,
    /// The job run made first (none on a replay).
    pub run: Option<RunReport>,
}

impl CommissionJob {
    /// Closes `month` at `closed_at_ms` (default `now_ms`; never in the
    /// future): runs the job first so that every fact received until now is
    /// booked in the month, then records the close. Later facts about the
    /// month are booked in the next open period. `actor` (who closes) is
    /// recorded with the close.
    pub async fn close_period(
        &self,
        month: Month,
        closed_at_ms: Option<u64>,
        now_ms: u64,
        actor: &str,
    ) -> Result<CloseReport, CommissionError> {
        let guard = lock_writer().await;
        let calendar = self.store.load_calendar().await?;
        if let Some(at) = calendar.closed_at(month) {
            return Err(CommissionError::Conflict(format!(
                "{month} is already closed (at {at}); a closed period never reopens"
            )));
        }
        let at = closed_at_ms.unwrap_or(now_ms);
        if at > now_ms {
            return Err(CommissionError::invalid(
                "closed_at",
                "must not be in the future",
            ));
        }
        let closed_at = Timestamp::from_unix_ms(at);
        calendar.close(month, closed_at).map_err(|e| match e {
            crate::commission::period::PeriodError::OutOfOrder { expected, .. } => {
                CommissionError::Conflict(format!(
                    "{e}: months close in order, close {expected} first"
                ))
            }
            other => CommissionError::invalid("month", other.to_string()),
        })?;
        let run = self
            .run_locked(&guard, now_ms)
            .await
            .map_err(CommissionError::Job)?;
        // Months close in order: the first close must not leave an earlier
        // month with entries open behind it (they would stay pending).
        if calendar.last_closed().is_none() {
            if let Some(first) = self.store.earliest_booked_month().await? {
                if first < month {
                    return Err(CommissionError::Conflict(format!(
                        "{first} has ledger entries and is still open: months close in order, \
                         close {first} first"
                    )));
                }
            }
        }
        self.store
            .save_period_close(month, at, now_ms, actor)
            .await?;
        Ok(CloseReport {
            month,
            closed_at,
            run,
        })
    }

    /// A payout run at `now_ms`: runs the job first, then pays each
    /// affiliate's payable balance if it reaches the minimum payout of the
    /// deal version in force now (otherwise it rolls over). Replaying a run
    /// id returns the stored payouts and pays nothing again. `actor` (who
    /// pays) is recorded with the run.
    pub async fn run_payouts(
        &self,
        run_id: Option<Uuid>,
        now_ms: u64,
        actor: &str,
    ) -> Result<PayoutReport, CommissionError> {
        let guard = lock_writer().await;
        let at = Timestamp::from_unix_ms(now_ms);
        if let Some(id) = run_id {
            let ledger = self.store.load_ledger(LedgerScope::All).await?;
            let paid: Vec<LedgerEntry> = ledger
                .into_iter()
                .filter(|e| matches!(e.slot, Slot::Payout { run, .. } if run == id))
                .collect();
            if !paid.is_empty() {
                return Ok(PayoutReport {
                    run_id: id,
                    at,
                    replayed: true,
                    paid,
                    rolled_over: Vec::new(),
                    skipped: Vec::new(),
                    run: None,
                });
            }
        }
        let run_id = run_id.unwrap_or_else(Uuid::now_v7);
        let run = self
            .run_locked(&guard, now_ms)
            .await
            .map_err(CommissionError::Job)?;
        let ledger = self.store.load_ledger(LedgerScope::All).await?;
        let calendar = self.store.load_calendar().await?;
        let deals: BTreeMap<AffiliateId, Deal> = self
            .store
            .load_deals()
            .await?
            .into_iter()
            .map(|d| (d.affiliate(), d))
            .collect();
        let affiliates: BTreeSet<AffiliateId> = ledger.iter().map(|e| e.affiliate).collect();
        let mut report = PayoutReport {
            run_id,
            at,
            replayed: false,
            paid: Vec::new(),
            rolled_over: Vec::new(),
            skipped: Vec::new(),
            run: Some(run),
        };
        for affiliate in affiliates {
            let Some(version) = deals.get(&affiliate).and_then(|d| d.version_at(at.month())) else {
                report.skipped.push(affiliate);
                continue;
            };
            let decision = payout(
                &ledger,
                &calendar,
                affiliate,
                version.min_payout(),
                PayoutRun { id: run_id, at },
            )
            .map_err(|e| CommissionError::Conflict(format!("affiliate {affiliate}: {e}")))?;
            match decision {
                PayoutDecision::Pay(entry) => report.paid.push(*entry),
                PayoutDecision::RollOver {
                    payable,
                    min_payout,
                } => report.rolled_over.push(RolledOver {
                    affiliate,
                    payable,
                    min_payout,
                }),
            }
        }
        self.store.append_ledger(&report.paid).await?;
        let row = RunRow {
            run_id,
            kind: 2,
            started_at: crate::support::clock::secs(now_ms),
            started_at_ms: now_ms,
            finished_at_ms: crate::support::clock::now_ms(),
            now_ms,
            players: 0,
            skipped_players: 0,
            prior_entries: count(ledger.len()),
            entries_appended: count(report.paid.len()),
            statements_appended: 0,
            entry_ids: report.paid.iter().map(|e| e.id).collect(),
            error: String::new(),
            actor: actor.to_owned(),
        };
        if let Err(e) = self.store.save_run(&row).await {
            tracing::warn!(error = %e, "could not record the payout run");
        }
        Ok(report)
    }
}
