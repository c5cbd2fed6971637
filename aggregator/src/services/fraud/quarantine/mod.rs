//! Quarantine: fraud scoring where clicks and conversions arrive, the
//! entities held for review, and the operators' decisions.
//!
//! Owns the IO around the pure [`crate::fraud`] engine: turning clicks and
//! brand events into scorer facts, the `fraud_scores` rows that explain
//! every score, escalations (re-flagging earlier entities a window signal
//! now covers), the in-memory book of held entities (loaded from ClickHouse
//! at startup, consulted by stitching so that a held click is never
//! credited), the review decisions, the commission holds read by the
//! commission job, and the window baselines rebuilt from ClickHouse.
//! Must not decide attribution or commission amounts: it only says what is
//! held and what was confirmed as fraud.
//!
//! The [`Quarantine`] service's work is split by concern: `scoring`
//! (new clicks and conversions), `escalation` (earlier entities a window
//! crossing now covers), `baselines` (the held book and the windows
//! rebuilt from ClickHouse), `review` (decisions and the queue) and
//! `holds` (what the commission job holds); this module keeps the held
//! book and the shared types.

mod baselines;
mod escalation;
mod holds;
mod review;
mod scoring;

pub use holds::{CommissionHold, CommissionHolds};
pub use review::{Decision, DecisionOutcome, ReviewError, ReviewItem, ReviewPage};
pub use scoring::ScoredClicks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};

use serde::Serialize;

use clickstitch_shared::fingerprint::Hash128;
use clickstitch_shared::BrandId;

use crate::fraud::{Score, Scorer, SignalHit};
use crate::metrics::{Metrics, ScoredKind};
use crate::store::fraud::{kind, FraudScoreRow};
use crate::store::Store;
use crate::support::bounded::BoundedMap;
use crate::support::presence::PresenceFilter;

/// What was scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A click (id: the click id).
    Click,
    /// A registration (id: the brand's event id).
    Registration,
    /// A first deposit (id: the brand's event id).
    FirstDeposit,
}

impl EntityKind {
    /// The stored `Enum8` value.
    pub fn code(self) -> i8 {
        match self {
            Self::Click => kind::CLICK,
            Self::Registration => kind::REGISTRATION,
            Self::FirstDeposit => kind::FIRST_DEPOSIT,
        }
    }

    /// From the stored value.
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            kind::CLICK => Some(Self::Click),
            kind::REGISTRATION => Some(Self::Registration),
            kind::FIRST_DEPOSIT => Some(Self::FirstDeposit),
            _ => None,
        }
    }

    /// The name used in the API and in ClickHouse.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Click => "click",
            Self::Registration => "registration",
            Self::FirstDeposit => "first_deposit",
        }
    }

    /// From the API's name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "click" => Some(Self::Click),
            "registration" => Some(Self::Registration),
            "first_deposit" => Some(Self::FirstDeposit),
            _ => None,
        }
    }

    fn metric(self) -> ScoredKind {
        match self {
            Self::Click => ScoredKind::Click,
            Self::Registration => ScoredKind::Registration,
            Self::FirstDeposit => ScoredKind::FirstDeposit,
        }
    }
}

/// An operator's verdict on a held entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Released: attribution and commission proceed.
    Approved,
    /// Confirmed fraud: excluded for good, commission clawed back.
    Rejected,
}

impl Verdict {
    fn code(self) -> i8 {
        match self {
            Self::Approved => 1,
            Self::Rejected => 2,
        }
    }

    fn from_code(code: i8) -> Option<Self> {
        match code {
            1 => Some(Self::Approved),
            2 => Some(Self::Rejected),
            _ => None,
        }
    }

    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }
}

/// Where a held entity stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Review {
    Pending,
    Decided(Verdict),
}

#[derive(Debug, Clone, Copy)]
struct Held {
    score: u8,
    review: Review,
}

type Key = (BrandId, EntityKind, String);

/// The quarantine service.
#[derive(Debug)]
pub struct Quarantine {
    scorer: Scorer,
    store: Store,
    metrics: Arc<Metrics>,
    held: StdMutex<HashMap<Key, Held>>,
    /// Players with a stored deposit (warmed at startup; trusted to prove
    /// "first deposit" only when `authoritative`).
    depositors: PresenceFilter,
    authoritative: bool,
    decisions: tokio::sync::Mutex<()>,
    /// Recent registrations that scored above zero (carried into the
    /// first deposit's score).
    registration_scores: StdMutex<BoundedMap<(BrandId, String), u8>>,
    /// Device keys of recent registrations, for their first deposits when
    /// the brand sends no device id with the deposit.
    registration_devices: StdMutex<BoundedMap<(BrandId, String), Hash128>>,
    /// Recent clicks that scored above zero, by click id (carried into
    /// their registration's score: a credited click is never held, so the
    /// held book does not know its score).
    click_scores: StdMutex<BoundedMap<(BrandId, String), u8>>,
}

fn signals_json(hits: &[SignalHit]) -> String {
    serde_json::to_string(hits).unwrap_or_else(|_| "[]".into())
}

/// A score with no signal (the starting point of an escalated entity).
fn no_score() -> Score {
    Score {
        value: 0,
        quarantined: false,
        policy_version: String::new(),
        hits: Vec::new(),
        escalations: Vec::new(),
    }
}

impl Quarantine {
    /// A service scoring with `scorer`; `depositor_capacity` sizes the
    /// first-deposit filter; `authoritative` says this instance sees every
    /// event (see `attribution.single_instance`).
    pub fn new(
        scorer: Scorer,
        store: Store,
        metrics: Arc<Metrics>,
        depositor_capacity: usize,
        authoritative: bool,
    ) -> Self {
        Self {
            scorer,
            store,
            metrics,
            held: StdMutex::new(HashMap::new()),
            depositors: PresenceFilter::with_capacity(depositor_capacity),
            authoritative,
            decisions: tokio::sync::Mutex::new(()),
            registration_scores: StdMutex::new(BoundedMap::new(1_000_000)),
            registration_devices: StdMutex::new(BoundedMap::new(1_000_000)),
            click_scores: StdMutex::new(BoundedMap::new(1_000_000)),
        }
    }

    /// The scorer (window state, policies).
    pub fn scorer(&self) -> &Scorer {
        &self.scorer
    }

    fn threshold(&self, brand: BrandId) -> u8 {
        self.scorer.policies().for_brand(brand).quarantine_threshold
    }

    /// Whether an entity is held (quarantined and not approved, or
    /// rejected as fraud).
    pub fn is_held(&self, brand: BrandId, kind: EntityKind, id: &str) -> bool {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(&(brand, kind, id.to_owned()))
            .is_some_and(|h| h.review != Review::Decided(Verdict::Approved))
    }

    fn held_score(&self, brand: BrandId, kind: EntityKind, id: &str) -> Option<u8> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(&(brand, kind, id.to_owned())).map(|h| h.score)
    }

    /// A click's score: from the held book (a quarantined click, possibly
    /// approved since), else from the recent scores above zero; None for a
    /// click that scored 0 (or left the bounded map).
    fn click_score(&self, brand: BrandId, id: &str) -> Option<u8> {
        self.held_score(brand, EntityKind::Click, id).or_else(|| {
            self.click_scores
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&(brand, id.to_owned()))
                .copied()
        })
    }

    /// Records stored rows: quarantined ones become held (pending review
    /// unless already decided). Call once the rows are durable.
    pub fn hold(&self, rows: &[FraudScoreRow]) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        for r in rows.iter().filter(|r| r.quarantined == 1) {
            let Some(kind) = EntityKind::from_code(r.entity_kind) else {
                continue;
            };
            let entry = held
                .entry((BrandId::from(r.brand_id), kind, r.entity_id.clone()))
                .or_insert(Held {
                    score: r.score,
                    review: Review::Pending,
                });
            entry.score = entry.score.max(r.score);
        }
    }

    fn record(&self, kind: EntityKind, score: &Score) {
        self.metrics.fraud_score(kind.metric(), score.value);
        if score.quarantined {
            self.metrics.quarantined(kind.metric());
        }
    }
}
