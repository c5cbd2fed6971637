//! Commission engine (pure): NGR statements, CPA / RevShare / Hybrid plans,
//! sub-affiliate overrides, the append-only ledger, periods, payouts and
//! balances.
//!
//! Owns the commission arithmetic and its explanation. Does no IO, reads no
//! clock, talks to no database: the integrator maps stored events into
//! [`PlayerFacts`], runs [`Engine::run`] and appends the returned
//! [`LedgerEntry`]s (and [`NgrStatement`]s) to storage. Uses
//! [`clickstitch_domain::money`] for every amount (integer minor units, half-to-even
//! rounding, versioned FX); there are no floats anywhere.
//!
//! # Pieces
//!
//! | module | owns |
//! |---|---|
//! | [`time`] | instants (Unix ms) and UTC months |
//! | [`facts`] | the input about players: registration, attribution, events |
//! | [`plan`] | deals (JSON, versioned): CPA, RevShare, Hybrid, overrides, hold, min payout |
//! | [`revenue`] | GGR / NGR statements with line items, per-brand formula versions |
//! | [`fx`] | which FX table converts which month |
//! | [`cpa`] | CPA qualification rules and clawback triggers |
//! | [`revshare`] | per-brand carryover, flat / tiered / ladder schedules |
//! | [`overrides`] | the affiliate tree (no self-referral) and override amounts |
//! | [`ledger`] | entries, slots, deterministic ids, reconciliation |
//! | [`period`] | period closes, booking, payouts with min payout rollover |
//! | [`balances`](mod@balances) | pending / approved / payable / paid from the ledger |
//! | [`problem`] | what a run could not compute and what it held back |
//! | [`worlds`] | RevShare inputs: per-player contributions, per-affiliate worlds |
//! | [`engine`] | the composition |
//! | [`incremental`] | what incremental runs keep between runs, and their scope |
//!
//! # How a run works
//!
//! The engine recomputes, from *all* facts, what every ledger slot should
//! total, compares with the existing ledger (passed in) and returns the
//! difference as new entries. Nothing is ever updated or deleted: a late
//! event, a KYC decision or a clawback becomes an adjustment or reversal
//! that references the earlier entries. Entry ids are UUIDv5 of (slot,
//! revision), so a replayed run yields the same ids and storage dedupes.
//! Worked examples with the arithmetic: `docs/commissions.md`.

#![warn(missing_docs)]

pub mod balances;
pub mod cpa;
pub mod engine;
pub mod facts;
pub mod fx;
pub mod incremental;
pub mod ledger;
pub mod overrides;
pub mod period;
pub mod plan;
pub mod problem;
pub mod revenue;
pub mod revshare;
pub mod time;
pub mod worlds;

#[cfg(test)]
mod scenarios;

pub use balances::{balances, state_of, Balance, EntryState};
pub use engine::{Engine, EngineError, EngineOutput};
pub use facts::{
    Attribution, AttributionStatus, BrandEventId, Credit, EventKind, EventRef, Flag, KycStatus,
    PlayerEvent, PlayerFacts, PlayerId, Registration,
};
pub use fx::FxBook;
pub use ledger::{Detail, EntryKind, Gate, LedgerEntry, Reason, Slot};
pub use overrides::{AffiliateTree, Link};
pub use period::{payout, PayoutDecision, PayoutRun, PeriodCalendar};
pub use plan::{Deal, DealBook};
pub use problem::{Held, ProblemKind, RunProblem};
pub use revenue::{FormulaBook, NgrFormula, NgrStatement};
pub use time::{Month, Timestamp};
pub use worlds::Contribution;
