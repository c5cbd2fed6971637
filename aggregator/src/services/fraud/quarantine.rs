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

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex as StdMutex};

use serde::Serialize;
use uuid::Uuid;

use clickstitch_shared::bot::BotVerdict;
use clickstitch_shared::fingerprint::{device_fingerprint, DeviceSignals, Hash128, VisitorId};
use clickstitch_shared::{AffiliateId, BrandId, Click, ClickId, CountryCode, ShortCode};

use crate::events::{BrandEvent, EventKind};
use crate::fraud::{
    aligned_cutoff, AffiliateBaselineRow, ClickBaselineRow, ClickContext, ClickFacts, Escalation,
    EscalationScope, FirstDepositBaselineRow, FirstDepositFacts, RegistrationBaselineRow,
    RegistrationFacts, Score, Scorer, SignalHit,
};
use crate::metrics::{Metrics, ScoredKind};
use crate::store::fraud::{first_decisions, kind, FraudReviewRow, FraudScoreRow};
use crate::store::fraud_review::{QueueKey, QueueQuery};
use crate::store::rows::ClickSummaryRow;
use crate::store::{Store, StoreError};
use crate::support::bounded::BoundedMap;
use crate::support::clock::secs;
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

/// The outcome of scoring a batch of clicks.
#[derive(Debug, Default)]
pub struct ScoredClicks {
    /// Rows for `fraud_scores` (clicks with a score above zero, and clicks
    /// of the batch re-flagged by a later click of the same batch).
    pub rows: Vec<FraudScoreRow>,
    /// Escalations to apply to clicks stored earlier, with the id of the
    /// click that caused each.
    pub escalations: Vec<(Escalation, String)>,
}

impl ScoredClicks {
    /// Whether the click at `index` of the batch is quarantined.
    pub fn quarantined_ids(&self) -> HashSet<String> {
        self.rows
            .iter()
            .filter(|r| r.quarantined == 1)
            .map(|r| r.entity_id.clone())
            .collect()
    }
}

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

fn click_facts(c: &Click) -> ClickFacts {
    ClickFacts {
        brand_id: c.brand_id,
        link_code: c.link_code.clone(),
        affiliate_id: c.affiliate_id,
        ip: c.ip,
        asn: c.asn,
        country: c.country,
        bot: match c.bot {
            BotVerdict::Human => None,
            BotVerdict::Bot(reason) => Some(reason),
        },
        clicked_at_ms: c.clicked_at_ms(),
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

    /// Loads the held entities and their decisions, the depositors (when
    /// authoritative) and the window baselines from ClickHouse.
    pub async fn load(&self, now_ms: u64) -> Result<(), StoreError> {
        let scores = self.store.quarantined_scores().await?;
        let reviews = first_decisions(self.store.reviews().await?);
        {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            held.clear();
            for r in scores {
                let (Some(kind), brand) = (
                    EntityKind::from_code(r.entity_kind),
                    BrandId::from(r.brand_id),
                ) else {
                    continue;
                };
                let review = reviews
                    .get(&(r.brand_id, r.entity_kind, r.entity_id.clone()))
                    .and_then(|d| Verdict::from_code(d.decision))
                    .map_or(Review::Pending, Review::Decided);
                held.insert(
                    (brand, kind, r.entity_id),
                    Held {
                        score: r.score,
                        review,
                    },
                );
            }
        }
        if self.authoritative {
            self.store
                .each_depositor(|brand, player| {
                    self.depositors
                        .insert(&(BrandId::from(brand), player.as_str()));
                })
                .await?;
        }
        self.absorb_baselines(now_ms, true).await
    }

    /// Rebuilds the window baselines from what ClickHouse holds before a
    /// bucket-aligned cutoff: at `startup` (nothing counted in memory yet)
    /// everything stored up to now; later (periodically with several
    /// instances, so that each sees the others' traffic) everything older
    /// than the lag a row needs to become readable, so that no event this
    /// instance counted is counted twice or lost.
    pub async fn absorb_baselines(&self, now_ms: u64, startup: bool) -> Result<(), StoreError> {
        /// Time from scoring to the row being readable (group commit).
        const LAG_MS: u64 = 120_000;
        let plan = self.scorer.baseline_plan();
        let cutoff_at = |bucket_ms: u64| {
            if startup {
                // The next bucket boundary: every stored row is before it.
                aligned_cutoff(now_ms + bucket_ms, 0, bucket_ms)
            } else {
                aligned_cutoff(now_ms, LAG_MS, bucket_ms)
            }
        };
        let cutoff = cutoff_at(plan.click_bucket_ms);
        let clicks = self
            .store
            .click_counts_between(cutoff.saturating_sub(plan.click_lookback_ms), cutoff)
            .await?;
        self.scorer.absorb_click_baseline(
            cutoff,
            clicks.into_iter().filter_map(|r| {
                Some(ClickBaselineRow {
                    brand_id: BrandId::from(r.brand_id),
                    link_code: ShortCode::parse(&r.link_code).ok()?,
                    ip: r.ip.parse().ok()?,
                    bucket_start_ms: r.minute_ms,
                    clicks: u32::try_from(r.clicks).unwrap_or(u32::MAX),
                })
            }),
        );
        let regs = self
            .store
            .scored_between(
                None,
                kind::REGISTRATION,
                now_ms.saturating_sub(
                    plan.registration_lookback_ms
                        .max(plan.affiliate_lookback_ms),
                ),
                now_ms,
            )
            .await?;
        let reg_from = now_ms.saturating_sub(plan.registration_lookback_ms);
        self.scorer.absorb_registration_baseline(
            regs.iter()
                .filter(|r| r.occurred_at_ms >= reg_from)
                .map(|r| RegistrationBaselineRow {
                    brand_id: BrandId::from(r.brand_id),
                    brand_player_id: r.brand_player_id.clone(),
                    registered_at_ms: r.occurred_at_ms,
                    ip: r.ip.parse().ok(),
                    device_key: Hash128::parse(&r.device_key).ok(),
                }),
        );
        let aff_cutoff = cutoff_at(plan.affiliate_bucket_ms);
        let mut per_affiliate: HashMap<(Uuid, Uuid, u64), (u32, u32)> = HashMap::new();
        for r in &regs {
            let (Some(affiliate), true) = (r.affiliate_id, r.click_at_ms > 0) else {
                continue;
            };
            if r.occurred_at_ms >= aff_cutoff {
                continue;
            }
            let policy = self.scorer.policies().for_brand(BrandId::from(r.brand_id));
            let long_ms = u64::from(policy.click_flooding.long_ctit_hours) * 3_600_000;
            let bucket = r.occurred_at_ms / plan.affiliate_bucket_ms * plan.affiliate_bucket_ms;
            let e = per_affiliate
                .entry((r.brand_id, affiliate, bucket))
                .or_default();
            e.0 += 1;
            if r.occurred_at_ms.saturating_sub(r.click_at_ms) > long_ms {
                e.1 += 1;
            }
        }
        self.scorer.absorb_affiliate_baseline(
            aff_cutoff,
            per_affiliate
                .into_iter()
                .map(
                    |((brand, affiliate, bucket), (n, long))| AffiliateBaselineRow {
                        brand_id: BrandId::from(brand),
                        affiliate_id: AffiliateId::from(affiliate),
                        bucket_start_ms: bucket,
                        registrations: n,
                        long_ctit: long,
                    },
                ),
        );
        let deposits = self
            .store
            .scored_between(
                None,
                kind::FIRST_DEPOSIT,
                now_ms.saturating_sub(plan.deposit_lookback_ms),
                now_ms,
            )
            .await?;
        self.scorer
            .absorb_first_deposit_baseline(deposits.iter().map(|r| FirstDepositBaselineRow {
                brand_id: BrandId::from(r.brand_id),
                brand_player_id: r.brand_player_id.clone(),
                deposited_at_ms: r.occurred_at_ms,
                device_key: Hash128::parse(&r.device_key).ok(),
            }));
        Ok(())
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

    /// Scores a batch of accepted clicks (in order) and re-flags clicks of
    /// the same batch that a later click's escalation covers.
    pub fn score_clicks(&self, clicks: &[Click], now_ms: u64) -> ScoredClicks {
        let facts: Vec<ClickFacts> = clicks.iter().map(click_facts).collect();
        let mut rows: HashMap<usize, FraudScoreRow> = HashMap::new();
        let mut escalations = Vec::new();
        for (i, (click, f)) in clicks.iter().zip(&facts).enumerate() {
            let score = self.scorer.score_click(f);
            self.record(EntityKind::Click, &score);
            if score.value > 0 {
                rows.insert(i, self.click_row(click, &score, now_ms));
                self.click_scores
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((f.brand_id, click.click_id.to_string()), score.value);
            }
            for e in &score.escalations {
                let by = click.click_id.to_string();
                for (j, earlier) in clicks[..i].iter().enumerate() {
                    if e.covers_click(&facts[j]) {
                        let row = rows
                            .remove(&j)
                            .unwrap_or_else(|| self.click_row(earlier, &no_score(), now_ms));
                        // Already held (on its own or by an earlier
                        // escalation): nothing to add.
                        let row = if row.quarantined == 1 {
                            row
                        } else {
                            self.escalate_row(row, e, &by, now_ms)
                        };
                        rows.insert(j, row);
                    }
                }
                escalations.push((e.clone(), by));
            }
        }
        let mut rows: Vec<(usize, FraudScoreRow)> = rows.into_iter().collect();
        rows.sort_by_key(|(i, _)| *i);
        ScoredClicks {
            rows: rows.into_iter().map(|(_, r)| r).collect(),
            escalations,
        }
    }

    fn click_row(&self, c: &Click, score: &Score, now_ms: u64) -> FraudScoreRow {
        FraudScoreRow {
            brand_id: c.brand_id.as_uuid(),
            entity_kind: kind::CLICK,
            entity_id: c.click_id.to_string(),
            brand_player_id: String::new(),
            affiliate_id: Some(c.affiliate_id.as_uuid()),
            link_code: c.link_code.to_string(),
            occurred_at: secs(c.clicked_at_ms()),
            occurred_at_ms: c.clicked_at_ms(),
            click_at_ms: c.clicked_at_ms(),
            ip: c.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            device_fingerprint: c.device_fingerprint.to_string(),
            device_key: c
                .visitor_id
                .map(|v| v.device_key().to_string())
                .unwrap_or_default(),
            score: score.value,
            quarantined: u8::from(score.quarantined),
            policy_version: score.policy_version.clone(),
            signals: signals_json(&score.hits),
            escalated_by: String::new(),
            scored_at: secs(now_ms),
            scored_at_ms: now_ms,
        }
    }

    /// The row re-flagged by an escalation: at least the threshold,
    /// quarantined, the escalation's signal added to the explanation.
    fn escalate_row(
        &self,
        mut row: FraudScoreRow,
        e: &Escalation,
        by: &str,
        now_ms: u64,
    ) -> FraudScoreRow {
        let brand = BrandId::from(row.brand_id);
        let threshold = self.threshold(brand);
        let mut hits: Vec<SignalHit> = serde_json::from_str(&row.signals).unwrap_or_default();
        let points = threshold.saturating_sub(row.score);
        hits.push(SignalHit {
            signal: e.signal,
            points,
            detail: format!(
                "escalated: the {} window crossed its limit with {by}",
                e.signal.code()
            ),
        });
        row.score = row.score.max(threshold);
        row.quarantined = 1;
        row.signals = signals_json(&hits);
        if row.policy_version.is_empty() {
            row.policy_version = self.scorer.policies().for_brand(brand).version.clone();
        }
        row.escalated_by = by.to_owned();
        // Newer than the original score of this entity (ReplacingMergeTree
        // keeps the newest `scored_at_ms`).
        row.scored_at = secs(now_ms);
        row.scored_at_ms = now_ms.max(row.scored_at_ms + 1);
        row
    }

    /// Re-flags entities stored earlier that `escalations` cover (except
    /// the ids in `skip`, handled in the caller's batch); stores the rows
    /// and holds them. Rare: only when a window crosses its limit.
    pub async fn escalate(
        &self,
        escalations: &[(Escalation, String)],
        skip: &HashSet<String>,
        now_ms: u64,
    ) -> Result<Vec<FraudScoreRow>, StoreError> {
        let mut out: HashMap<(Uuid, i8, String), FraudScoreRow> = HashMap::new();
        let mut fresh: HashSet<(Uuid, i8, String)> = HashSet::new();
        for (e, by) in escalations {
            let (brand, kind_code, candidates) = match &e.scope {
                EscalationScope::LinkIp {
                    brand_id,
                    link_code,
                    network,
                }
                | EscalationScope::LinkSubnet {
                    brand_id,
                    link_code,
                    network,
                } => {
                    let clicks = self
                        .store
                        .link_clicks_between(
                            brand_id.as_uuid(),
                            link_code.as_str(),
                            e.from_ms,
                            e.to_ms,
                        )
                        .await?;
                    let rows: Vec<FraudScoreRow> = clicks
                        .into_iter()
                        .filter(|c| c.ip.parse::<IpAddr>().is_ok_and(|ip| network.contains(ip)))
                        .map(|c| FraudScoreRow {
                            brand_id: brand_id.as_uuid(),
                            entity_kind: kind::CLICK,
                            entity_id: c.click_id.to_string(),
                            brand_player_id: String::new(),
                            affiliate_id: Some(c.affiliate_id),
                            link_code: link_code.to_string(),
                            occurred_at: secs(c.clicked_at_ms),
                            occurred_at_ms: c.clicked_at_ms,
                            click_at_ms: c.clicked_at_ms,
                            ip: c.ip,
                            device_fingerprint: String::new(),
                            device_key: String::new(),
                            score: 0,
                            quarantined: 0,
                            policy_version: String::new(),
                            signals: "[]".into(),
                            escalated_by: String::new(),
                            scored_at: 0,
                            scored_at_ms: 0,
                        })
                        .collect();
                    (*brand_id, kind::CLICK, rows)
                }
                EscalationScope::RegistrationIp { brand_id, .. }
                | EscalationScope::RegistrationDevice { brand_id, .. }
                | EscalationScope::AffiliateLongCtit { brand_id, .. } => {
                    let rows = self
                        .store
                        .scored_between(
                            Some(brand_id.as_uuid()),
                            kind::REGISTRATION,
                            e.from_ms,
                            e.to_ms,
                        )
                        .await?
                        .into_iter()
                        .filter(|r| e.covers_registration(&registration_facts_of(r)))
                        .collect();
                    (*brand_id, kind::REGISTRATION, rows)
                }
                EscalationScope::DepositDevice { brand_id, .. } => {
                    let rows = self
                        .store
                        .scored_between(
                            Some(brand_id.as_uuid()),
                            kind::FIRST_DEPOSIT,
                            e.from_ms,
                            e.to_ms,
                        )
                        .await?
                        .into_iter()
                        .filter(|r| {
                            e.covers_first_deposit(&FirstDepositFacts {
                                brand_id: *brand_id,
                                brand_player_id: r.brand_player_id.clone(),
                                deposited_at_ms: r.occurred_at_ms,
                                device_key: Hash128::parse(&r.device_key).ok(),
                                registration_score: 0,
                            })
                        })
                        .collect();
                    (*brand_id, kind::FIRST_DEPOSIT, rows)
                }
            };
            let candidates: Vec<FraudScoreRow> = candidates
                .into_iter()
                .filter(|r| !skip.contains(&r.entity_id) && r.entity_id != *by)
                .collect();
            // Start from each entity's newest stored score, if any.
            let ids: Vec<String> = candidates.iter().map(|r| r.entity_id.clone()).collect();
            let stored: HashMap<String, FraudScoreRow> = self
                .store
                .scores_of(brand.as_uuid(), kind_code, &ids)
                .await?
                .into_iter()
                .map(|r| (r.entity_id.clone(), r))
                .collect();
            for c in candidates {
                let key = (c.brand_id, c.entity_kind, c.entity_id.clone());
                let base = out
                    .remove(&key)
                    .or_else(|| stored.get(&c.entity_id).cloned())
                    .unwrap_or(c);
                if base.quarantined == 1 {
                    // Already held (on its own or by an earlier
                    // escalation): no new row.
                    out.insert(key, base);
                    continue;
                }
                fresh.insert(key.clone());
                out.insert(key, self.escalate_row(base, e, by, now_ms));
            }
        }
        // Only the rows escalated by this call are new.
        let rows: Vec<FraudScoreRow> = out
            .into_iter()
            .filter(|(k, _)| fresh.contains(k))
            .map(|(_, r)| r)
            .collect();
        self.store.save_scores(&rows).await?;
        self.hold(&rows);
        Ok(rows)
    }

    /// Scores a registration given the click it was attributed to (the
    /// latest credited one) and that click's affiliate.
    pub fn score_registration(
        &self,
        event: &BrandEvent,
        last_click: Option<&ClickSummaryRow>,
        now_ms: u64,
    ) -> (Score, FraudScoreRow) {
        let country = match &event.kind {
            EventKind::Registration { country, .. } => *country,
            _ => CountryCode::UNKNOWN,
        };
        let click = last_click.and_then(|c| {
            Some(ClickContext {
                clicked_at_ms: c.clicked_at_ms,
                device_fingerprint: Hash128::parse(&c.device_fingerprint).ok()?,
                country: CountryCode::parse(std::str::from_utf8(&c.country).ok()?).ok()?,
                click_score: ClickId::try_from(c.click_id)
                    .ok()
                    .and_then(|id| self.click_score(BrandId::from(c.brand_id), &id.to_string()))
                    .unwrap_or(0),
            })
        });
        let facts = RegistrationFacts {
            brand_id: event.brand_id,
            brand_player_id: event.brand_player_id.as_str().to_owned(),
            affiliate_id: last_click.map(|c| AffiliateId::from(c.affiliate_id)),
            registered_at_ms: event.occurred_at_ms,
            country,
            ip: event.device.ip,
            asn: event.device.asn,
            device_fingerprint: event.device.device_fingerprint,
            // The brand's device id if it sent one, else the browser's
            // visitor cookie on the attributed click. Never the header
            // fingerprint: strangers on the same build share it.
            device_key: event.device.device_key.or_else(|| {
                last_click
                    .and_then(|c| VisitorId::parse(&c.visitor_id).ok())
                    .map(|v| v.device_key())
            }),
            click,
        };
        let score = self.scorer.score_registration(&facts);
        self.record(EntityKind::Registration, &score);
        if score.value > 0 {
            self.registration_scores
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((event.brand_id, facts.brand_player_id.clone()), score.value);
        }
        if let Some(key) = facts.device_key {
            self.registration_devices
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((event.brand_id, facts.brand_player_id.clone()), key);
        }
        let mut row = event_row(event, kind::REGISTRATION, &score, last_click, now_ms);
        row.device_key = facts.device_key.map(|k| k.to_string()).unwrap_or_default();
        (score, row)
    }

    /// Scores a deposit when it is the player's first (derived here, never
    /// taken from the brand): None for later deposits.
    pub async fn score_first_deposit(
        &self,
        event: &BrandEvent,
        now_ms: u64,
    ) -> Result<Option<(Score, FraudScoreRow)>, StoreError> {
        let key = (event.brand_id, event.brand_player_id.as_str());
        let maybe_before = !self.authoritative || self.depositors.contains(&key);
        if maybe_before
            && self
                .store
                .has_other_deposit(
                    event.brand_id.as_uuid(),
                    event.brand_player_id.as_str(),
                    event.event_id.as_str(),
                )
                .await?
        {
            return Ok(None);
        }
        // Marked before the write: a failed write only costs a lookup later.
        self.depositors.insert(&key);
        let registration_score = self
            .registration_scores
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(event.brand_id, event.brand_player_id.as_str().to_owned()))
            .copied()
            .unwrap_or(0);
        let facts = FirstDepositFacts {
            brand_id: event.brand_id,
            brand_player_id: event.brand_player_id.as_str().to_owned(),
            deposited_at_ms: event.occurred_at_ms,
            device_key: event.device.device_key.or_else(|| {
                self.registration_devices
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&(event.brand_id, event.brand_player_id.as_str().to_owned()))
                    .copied()
            }),
            registration_score,
        };
        let score = self.scorer.score_first_deposit(&facts);
        self.record(EntityKind::FirstDeposit, &score);
        let mut row = event_row(event, kind::FIRST_DEPOSIT, &score, None, now_ms);
        row.device_key = facts.device_key.map(|k| k.to_string()).unwrap_or_default();
        Ok(Some((score, row)))
    }

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

fn registration_facts_of(r: &FraudScoreRow) -> RegistrationFacts {
    let device = Hash128::parse(&r.device_fingerprint).ok();
    RegistrationFacts {
        brand_id: BrandId::from(r.brand_id),
        brand_player_id: r.brand_player_id.clone(),
        affiliate_id: r.affiliate_id.map(AffiliateId::from),
        registered_at_ms: r.occurred_at_ms,
        country: CountryCode::UNKNOWN,
        ip: r.ip.parse().ok(),
        asn: None,
        device_fingerprint: device,
        device_key: Hash128::parse(&r.device_key).ok(),
        // Escalation scopes only need the click time (long CTIT). The
        // click's device is not stored with the registration, and the
        // registration's own is missing when the brand reports none: a
        // placeholder stands in, so such registrations are covered too.
        click: (r.click_at_ms > 0).then(|| ClickContext {
            clicked_at_ms: r.click_at_ms,
            device_fingerprint: device
                .unwrap_or_else(|| device_fingerprint(&DeviceSignals::default())),
            country: CountryCode::UNKNOWN,
            click_score: 0,
        }),
    }
}

/// The `fraud_scores` row of a scored registration or first deposit;
/// `click` is the registration's latest credited click.
fn event_row(
    event: &BrandEvent,
    entity_kind: i8,
    score: &Score,
    click: Option<&ClickSummaryRow>,
    now_ms: u64,
) -> FraudScoreRow {
    FraudScoreRow {
        brand_id: event.brand_id.as_uuid(),
        entity_kind,
        entity_id: event.event_id.as_str().to_owned(),
        brand_player_id: event.brand_player_id.as_str().to_owned(),
        affiliate_id: click.map(|c| c.affiliate_id),
        link_code: click.map(|c| c.link_code.clone()).unwrap_or_default(),
        occurred_at: secs(event.occurred_at_ms),
        occurred_at_ms: event.occurred_at_ms,
        click_at_ms: click.map_or(0, |c| c.clicked_at_ms),
        ip: event.device.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        device_fingerprint: event
            .device
            .device_fingerprint
            .map(|f| f.to_string())
            .unwrap_or_default(),
        device_key: String::new(),
        score: score.value,
        quarantined: u8::from(score.quarantined),
        policy_version: score.policy_version.clone(),
        signals: signals_json(&score.hits),
        escalated_by: String::new(),
        scored_at: secs(now_ms),
        scored_at_ms: now_ms,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fraud::Signal;

    use clickstitch_domain::units::HOUR_MS;

    fn stored_registration(device_fingerprint: &str) -> FraudScoreRow {
        FraudScoreRow {
            brand_id: Uuid::from_u128(1),
            entity_kind: kind::REGISTRATION,
            entity_id: "reg-1".into(),
            brand_player_id: "p-1".into(),
            affiliate_id: Some(Uuid::from_u128(2)),
            link_code: String::new(),
            occurred_at: 0,
            occurred_at_ms: 100 * HOUR_MS,
            click_at_ms: HOUR_MS,
            ip: String::new(),
            device_fingerprint: device_fingerprint.into(),
            device_key: String::new(),
            score: 0,
            quarantined: 0,
            policy_version: String::new(),
            signals: "[]".into(),
            escalated_by: String::new(),
            scored_at: 0,
            scored_at_ms: 0,
        }
    }

    #[test]
    fn a_long_ctit_escalation_covers_stored_registrations_with_and_without_a_device() {
        let e = Escalation {
            signal: Signal::ClickFlooding,
            scope: EscalationScope::AffiliateLongCtit {
                brand_id: BrandId::from(Uuid::from_u128(1)),
                affiliate_id: AffiliateId::from(Uuid::from_u128(2)),
                ctit_over_ms: 24 * HOUR_MS,
            },
            from_ms: 0,
            to_ms: 200 * HOUR_MS,
        };
        for device in ["", "0123456789abcdef0123456789abcdef"] {
            let facts = registration_facts_of(&stored_registration(device));
            assert!(e.covers_registration(&facts), "device {device:?}");
        }
        let mut short = stored_registration("");
        short.click_at_ms = 99 * HOUR_MS;
        assert!(!e.covers_registration(&registration_facts_of(&short)));
    }
}
