//! Balances per affiliate, derived from the ledger alone (plus the period
//! calendar and the evaluation time `now`, both passed in).
//!
//! Owns the state of an entry at `now`:
//!
//! * **pending** — awaiting the player's KYC (gate `awaiting_kyc`), or
//!   booked in a period that is not closed at `now`;
//! * **approved** — its period closed at `c ≤ now`, still in hold
//!   (`now < c + hold_days`);
//! * **payable** — hold elapsed (`now ≥ c + hold_days`);
//! * **paid** — payout entries.
//!
//! A [`Balance`] sums the affiliate's entries per state, with `payable` net
//! of `paid` (so `payable` is what the next payout run would pay, and is
//! negative when a clawback hit money already paid out). The identity
//! `pending + approved + payable + paid = Σ non-payout entries` always
//! holds. Must not write anything: balances are a view.

use std::collections::BTreeMap;

use serde::Serialize;

use clickstitch_shared::AffiliateId;

use clickstitch_domain::money::{Money, MoneyError};

use super::ledger::{EntryKind, Gate, LedgerEntry};
use super::period::PeriodCalendar;
use super::time::Timestamp;

/// The state of one entry at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Awaiting KYC, or its period is open.
    Pending,
    /// Period closed, in hold.
    Approved,
    /// Hold elapsed.
    Payable,
    /// A payout.
    Paid,
}

/// The state of `entry` at `now`.
pub fn state_of(entry: &LedgerEntry, calendar: &PeriodCalendar, now: Timestamp) -> EntryState {
    if entry.kind == EntryKind::Payout {
        return EntryState::Paid;
    }
    if entry.gate == Gate::AwaitingKyc {
        return EntryState::Pending;
    }
    match calendar.closed_at(entry.booked_in) {
        Some(closed) if closed <= now => {
            if now < closed.plus_days(entry.hold_days) {
                EntryState::Approved
            } else {
                EntryState::Payable
            }
        }
        _ => EntryState::Pending,
    }
}

/// One affiliate's balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Balance {
    /// Awaiting KYC or in an open period.
    pub pending: Money,
    /// Closed, in hold.
    pub approved: Money,
    /// Hold elapsed, minus everything paid so far.
    pub payable: Money,
    /// Paid out.
    pub paid: Money,
}

impl Balance {
    fn zero(currency: clickstitch_domain::money::Currency) -> Self {
        let z = Money::zero(currency);
        Self {
            pending: z,
            approved: z,
            payable: z,
            paid: z,
        }
    }

    /// Everything earned (net of reversals): pending + approved + payable +
    /// paid.
    pub fn earned(&self) -> Result<Money, MoneyError> {
        self.pending
            .checked_add(&self.approved)?
            .checked_add(&self.payable)?
            .checked_add(&self.paid)
    }
}

/// Balances of every affiliate in the ledger at `now`.
pub fn balances(
    ledger: &[LedgerEntry],
    calendar: &PeriodCalendar,
    now: Timestamp,
) -> Result<BTreeMap<AffiliateId, Balance>, MoneyError> {
    let mut out: BTreeMap<AffiliateId, Balance> = BTreeMap::new();
    for e in ledger {
        let b = out
            .entry(e.affiliate)
            .or_insert_with(|| Balance::zero(e.amount.currency()));
        match state_of(e, calendar, now) {
            EntryState::Pending => b.pending = b.pending.checked_add(&e.amount)?,
            EntryState::Approved => b.approved = b.approved.checked_add(&e.amount)?,
            EntryState::Payable => b.payable = b.payable.checked_add(&e.amount)?,
            EntryState::Paid => {
                b.paid = b.paid.checked_add(&e.amount)?;
                b.payable = b.payable.checked_sub(&e.amount)?;
            }
        }
    }
    Ok(out)
}
