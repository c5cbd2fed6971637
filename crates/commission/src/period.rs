//! Monthly periods: which months are closed and when, where a new entry is
//! booked, and payout runs with the minimum payout and its rollover.
//!
//! Owns the period rules:
//!
//! * **Periods** are UTC calendar months. The operator closes them in order
//!   (no gaps), each at a recorded instant no earlier than the month's end.
//!   A closed period never receives another entry.
//! * **Booking**: an entry is booked in its activity month if that month is
//!   still open, otherwise in the first open month (late facts about a
//!   closed month land in the current period, never rewrite a closed one).
//! * **Hold**: an entry booked in a period closed at `c` becomes payable at
//!   `c + hold_days` (the hold of the deal version that priced it).
//! * **Payout with minimum and rollover**: a payout run pays the affiliate's
//!   payable balance (payable entries minus earlier payouts) if it is at
//!   least the deal's minimum payout; otherwise nothing is paid and the
//!   whole balance rolls over to the next run (nothing is lost or split). A
//!   negative payable balance (a clawback after payout) is never paid; it
//!   is netted against later commission.
//!
//! Must not compute commissions nor read a clock (`now` is passed in).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use clickstitch_shared::AffiliateId;

use clickstitch_domain::money::{Money, MoneyError};

use super::balances::{state_of, EntryState};
use super::ledger::{Detail, EntryKind, Gate, LedgerEntry, PayoutDetail, Reason, Slot};
use super::time::{Month, Timestamp};

/// Why a calendar or payout was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// Periods must close in order without gaps.
    #[error("{month} cannot close before {expected}")]
    OutOfOrder {
        /// The month being closed.
        month: Month,
        /// The month that must close first.
        expected: Month,
    },
    /// A close before the month ended, or before the previous close.
    #[error("{month} cannot close at {at}: before its end or before the previous close")]
    TooEarly {
        /// The month.
        month: Month,
        /// The refused instant.
        at: Timestamp,
    },
    /// Entries of the affiliate in another currency than the minimum payout.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// The closed periods and when each closed. JSON: `{"2026-01":
/// 1769904000000, …}` (month → close instant in Unix ms).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<Month, Timestamp>",
    into = "BTreeMap<Month, Timestamp>"
)]
pub struct PeriodCalendar {
    closes: BTreeMap<Month, Timestamp>,
}

impl TryFrom<BTreeMap<Month, Timestamp>> for PeriodCalendar {
    type Error = PeriodError;
    fn try_from(map: BTreeMap<Month, Timestamp>) -> Result<Self, PeriodError> {
        Self::new(map)
    }
}

impl From<PeriodCalendar> for BTreeMap<Month, Timestamp> {
    fn from(c: PeriodCalendar) -> Self {
        c.closes
    }
}

impl PeriodCalendar {
    /// Validates the closes: consecutive months, each closed at or after its
    /// end and not before the previous close.
    pub fn new(closes: impl IntoIterator<Item = (Month, Timestamp)>) -> Result<Self, PeriodError> {
        let sorted: BTreeMap<Month, Timestamp> = closes.into_iter().collect();
        sorted
            .into_iter()
            .try_fold(Self::default(), |cal, (m, at)| cal.close(m, at))
    }

    /// The calendar with `month` closed at `at`.
    pub fn close(&self, month: Month, at: Timestamp) -> Result<Self, PeriodError> {
        if let Some((last, last_at)) = self.closes.last_key_value() {
            if month != last.next() {
                return Err(PeriodError::OutOfOrder {
                    month,
                    expected: last.next(),
                });
            }
            if at < *last_at {
                return Err(PeriodError::TooEarly { month, at });
            }
        }
        if at < month.end() {
            return Err(PeriodError::TooEarly { month, at });
        }
        let mut closes = self.closes.clone();
        closes.insert(month, at);
        Ok(Self { closes })
    }

    /// When `month` closed, if it did.
    pub fn closed_at(&self, month: Month) -> Option<Timestamp> {
        self.closes.get(&month).copied()
    }

    /// The latest closed month.
    pub fn last_closed(&self) -> Option<Month> {
        self.closes.keys().next_back().copied()
    }

    /// Where an entry about `activity` is booked: `activity` if open,
    /// otherwise the first open month.
    pub fn booking_month(&self, activity: Month) -> Month {
        match self.last_closed() {
            Some(last) if activity <= last => last.next(),
            _ => activity,
        }
    }
}

/// A payout run: its id (chosen by the operator's payout batch, so a
/// replayed run produces the same entry) and when it is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutRun {
    /// The run id.
    pub id: Uuid,
    /// The decision time (`now`).
    pub at: Timestamp,
}

/// The outcome of a payout run for one affiliate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayoutDecision {
    /// Pay: append this entry.
    Pay(Box<LedgerEntry>),
    /// Below the minimum (or not positive): nothing paid, the balance rolls
    /// over to the next run.
    RollOver {
        /// The payable balance that was not paid.
        payable: Money,
        /// The minimum it did not reach.
        min_payout: Money,
    },
}

/// Decides a payout for `affiliate` at `run.at`. The payable balance is
/// the sum of the affiliate's payable entries minus all earlier payouts;
/// it is paid in full if it is at least `min_payout` (and positive). The
/// payout entry references the payable entries no earlier payout
/// referenced. The currency is `min_payout`'s (the deal currency).
pub fn payout(
    ledger: &[LedgerEntry],
    calendar: &PeriodCalendar,
    affiliate: AffiliateId,
    min_payout: Money,
    run: PayoutRun,
) -> Result<PayoutDecision, PeriodError> {
    let currency = min_payout.currency();
    let mine: Vec<&LedgerEntry> = ledger.iter().filter(|e| e.affiliate == affiliate).collect();
    let covered: BTreeSet<Uuid> = mine
        .iter()
        .filter(|e| e.kind == EntryKind::Payout)
        .flat_map(|e| e.references.iter().copied())
        .collect();
    let mut payable = Money::zero(currency);
    let mut newly = Vec::new();
    for e in &mine {
        match state_of(e, calendar, run.at) {
            EntryState::Payable => {
                payable = payable.checked_add(&e.amount)?;
                if !covered.contains(&e.id) {
                    newly.push(e.id);
                }
            }
            EntryState::Paid => payable = payable.checked_sub(&e.amount)?,
            EntryState::Pending | EntryState::Approved => {}
        }
    }
    if payable.minor() <= 0 || payable.minor() < min_payout.minor() {
        return Ok(PayoutDecision::RollOver {
            payable,
            min_payout,
        });
    }
    newly.sort();
    let slot = Slot::Payout {
        affiliate,
        run: run.id,
    };
    let month = run.at.month();
    Ok(PayoutDecision::Pay(Box::new(LedgerEntry {
        id: slot.entry_id(0),
        kind: EntryKind::Payout,
        affiliate,
        slot,
        revision: 0,
        amount: payable,
        slot_total: payable,
        gate: Gate::Final,
        activity_month: month,
        booked_in: month,
        hold_days: 0,
        deal_version: None,
        rules_versions: Vec::new(),
        formula_versions: Vec::new(),
        fx_versions: Vec::new(),
        events: Vec::new(),
        statements: Vec::new(),
        references: newly,
        reason: Reason::Payout,
        detail: Some(Detail::Payout(PayoutDetail {
            run: run.id,
            at: run.at,
            min_payout,
        })),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Month {
        Month::parse(s).expect("month")
    }

    #[test]
    fn periods_close_in_order_and_not_before_they_end() {
        let jan_end = m("2026-01").end();
        let cal = PeriodCalendar::new([(m("2026-01"), jan_end)]).expect("cal");
        assert_eq!(cal.booking_month(m("2025-12")), m("2026-02"));
        assert_eq!(cal.booking_month(m("2026-01")), m("2026-02"));
        assert_eq!(cal.booking_month(m("2026-03")), m("2026-03"));
        assert!(matches!(
            cal.close(m("2026-03"), m("2026-03").end()),
            Err(PeriodError::OutOfOrder { .. })
        ));
        assert!(matches!(
            cal.close(m("2026-02"), m("2026-02").start()),
            Err(PeriodError::TooEarly { .. })
        ));
        let json = serde_json::to_string(&cal).expect("json");
        let back: PeriodCalendar = serde_json::from_str(&json).expect("back");
        assert_eq!(back, cal);
    }
}
