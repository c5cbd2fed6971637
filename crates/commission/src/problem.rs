//! Problems of a run: a player (or an affiliate's RevShare) whose
//! commission could not be computed from the facts given, and what the run
//! held back because of it.
//!
//! Owns [`RunProblem`], its typed [`ProblemKind`] and what each problem
//! [`Held`]. A run never fails for one player's or affiliate's data: the
//! engine and the integrator turn such errors into problems, hold exactly
//! the ledger slots that depend on the bad data, and compute everyone else.
//! Must not decide what is held (that is [`super::engine`]).

use serde::{Deserialize, Serialize};

use clickstitch_shared::{AffiliateId, BrandId};

use clickstitch_domain::money::MoneyError;

use super::facts::{BrandEventId, FactsError, PlayerId};
use super::fx::FxError;
use super::revenue::RevenueError;
use super::revshare::RevShareError;

/// Why something could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// An amount in another currency than the player's wallet.
    WrongCurrency,
    /// One event id stored twice with different content.
    ConflictingEvent,
    /// A negative amount.
    NegativeAmount,
    /// An event the engine cannot read (unknown status or flag, bad id).
    BadEvent,
    /// Attribution credits that do not add up to 0.01 %..100 %.
    BadCredits,
    /// A month with activity and no NGR formula version in force.
    NoNgrFormula,
    /// A month with amounts to convert and no FX table (or rate).
    NoFxTable,
    /// A sum outside the range of the arithmetic.
    AmountOverflow,
    /// Anything else about the stored facts (e.g. a registration country
    /// that does not parse).
    BadFacts,
}

impl ProblemKind {
    /// The stable code (`snake_case`) stored and shown to operators.
    pub fn code(self) -> &'static str {
        match self {
            ProblemKind::WrongCurrency => "wrong_currency",
            ProblemKind::ConflictingEvent => "conflicting_event",
            ProblemKind::NegativeAmount => "negative_amount",
            ProblemKind::BadEvent => "bad_event",
            ProblemKind::BadCredits => "bad_credits",
            ProblemKind::NoNgrFormula => "no_ngr_formula",
            ProblemKind::NoFxTable => "no_fx_table",
            ProblemKind::AmountOverflow => "amount_overflow",
            ProblemKind::BadFacts => "bad_facts",
        }
    }

    /// Every kind (for metrics that show zero counts too).
    pub const ALL: [ProblemKind; 9] = [
        ProblemKind::WrongCurrency,
        ProblemKind::ConflictingEvent,
        ProblemKind::NegativeAmount,
        ProblemKind::BadEvent,
        ProblemKind::BadCredits,
        ProblemKind::NoNgrFormula,
        ProblemKind::NoFxTable,
        ProblemKind::AmountOverflow,
        ProblemKind::BadFacts,
    ];
}

/// What a problem held back in the run (nothing is reversed because of a
/// problem: held slots keep their earlier entries untouched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Held {
    /// The player's facts could not be built: their CPA slots are held and
    /// they add nothing to any RevShare until repaired.
    Player,
    /// The player's CPA slots (and the overrides on them) are held.
    Cpa,
    /// The player's NGR is left out of RevShare until repaired.
    RevShareContribution,
    /// The affiliate's RevShare slots (and the overrides on them) are held.
    AffiliateRevShare,
    /// One override slot of the affiliate is held.
    Override,
}

impl Held {
    /// The stable code (`snake_case`).
    pub fn code(self) -> &'static str {
        match self {
            Held::Player => "player",
            Held::Cpa => "cpa",
            Held::RevShareContribution => "revshare_contribution",
            Held::AffiliateRevShare => "affiliate_revshare",
            Held::Override => "override",
        }
    }
}

/// One problem of a run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RunProblem {
    /// The player concerned, if the problem is about a player.
    pub player: Option<PlayerId>,
    /// The brand concerned, if known.
    pub brand: Option<BrandId>,
    /// The affiliate concerned, if the problem is about an affiliate.
    pub affiliate: Option<AffiliateId>,
    /// Why.
    pub kind: ProblemKind,
    /// What the run held back.
    pub held: Held,
    /// The brand events involved (the ones to void or correct), if known.
    pub events: Vec<BrandEventId>,
    /// A human-readable explanation.
    pub message: String,
}

impl RunProblem {
    /// The identity of a problem across runs: what, about whom, holding
    /// what (`kind|held|player|brand|affiliate`).
    pub fn key(&self) -> String {
        let id = |x: Option<String>| x.unwrap_or_default();
        format!(
            "{}|{}|{}|{}|{}",
            self.kind.code(),
            self.held.code(),
            id(self.player.map(|x| x.to_string())),
            id(self.brand.map(|x| x.to_string())),
            id(self.affiliate.map(|x| x.to_string())),
        )
    }

    /// A problem about one player at one brand.
    pub fn player(
        player: PlayerId,
        brand: BrandId,
        kind: ProblemKind,
        held: Held,
        events: Vec<BrandEventId>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            player: Some(player),
            brand: Some(brand),
            affiliate: None,
            kind,
            held,
            events,
            message: message.into(),
        }
    }

    /// A problem about an affiliate's slots.
    pub fn affiliate(
        affiliate: AffiliateId,
        kind: ProblemKind,
        held: Held,
        message: impl Into<String>,
    ) -> Self {
        Self {
            player: None,
            brand: None,
            affiliate: Some(affiliate),
            kind,
            held,
            events: Vec::new(),
            message: message.into(),
        }
    }
}

/// The kind of an error met while computing (with the event it names).
pub trait Classify {
    /// The problem kind, and the event at fault if the error names one.
    fn classify(&self) -> (ProblemKind, Option<BrandEventId>);
}

impl Classify for MoneyError {
    fn classify(&self) -> (ProblemKind, Option<BrandEventId>) {
        match self {
            MoneyError::Overflow => (ProblemKind::AmountOverflow, None),
            MoneyError::CurrencyMismatch(..) => (ProblemKind::WrongCurrency, None),
            MoneyError::NoRate { .. } => (ProblemKind::NoFxTable, None),
            _ => (ProblemKind::BadFacts, None),
        }
    }
}

impl Classify for FactsError {
    fn classify(&self) -> (ProblemKind, Option<BrandEventId>) {
        match self {
            FactsError::WrongCurrency { event, .. } => {
                (ProblemKind::WrongCurrency, Some(event.clone()))
            }
            FactsError::ConflictingEvent(e) => (ProblemKind::ConflictingEvent, Some(e.clone())),
            FactsError::NegativeAmount(e) => (ProblemKind::NegativeAmount, Some(e.clone())),
            FactsError::BadEventId(_) => (ProblemKind::BadEvent, None),
            FactsError::BadCredits(_) => (ProblemKind::BadCredits, None),
            FactsError::DuplicatePlayer { .. } => (ProblemKind::BadFacts, None),
        }
    }
}

impl Classify for FxError {
    fn classify(&self) -> (ProblemKind, Option<BrandEventId>) {
        match self {
            FxError::Money(m) => m.classify(),
            _ => (ProblemKind::NoFxTable, None),
        }
    }
}

impl Classify for RevenueError {
    fn classify(&self) -> (ProblemKind, Option<BrandEventId>) {
        match self {
            RevenueError::NoFormula { .. } => (ProblemKind::NoNgrFormula, None),
            RevenueError::Money(m) => m.classify(),
            _ => (ProblemKind::BadFacts, None),
        }
    }
}

impl Classify for RevShareError {
    fn classify(&self) -> (ProblemKind, Option<BrandEventId>) {
        match self {
            RevShareError::Fx(e) => e.classify(),
            RevShareError::Money(m) => m.classify(),
        }
    }
}
