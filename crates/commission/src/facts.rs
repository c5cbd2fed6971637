//! The engine's input about players: per (player, brand) facts — the
//! registration, the attribution, and the brand's events (deposits, game
//! activity, bonus costs, chargebacks, KYC decisions, responsible-gaming and
//! account flags) plus the operator's fraud confirmations, each with its
//! event id and time.
//!
//! Owns the validation of those facts ("parse, don't validate": a
//! [`PlayerFacts`] value is always consistent) and the questions asked of
//! one player's history: KYC status at a time, flags in force at a time,
//! the first deposit. Must not know about deals, revenue formulas or the
//! ledger; does no IO (the integrator maps stored events into these types).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use clickstitch_shared::{AffiliateId, BrandId, CountryCode};

use clickstitch_domain::money::{Bps, Currency, Money};

use super::time::Timestamp;

pub use clickstitch_domain::kyc::AttributionStatus;
pub use clickstitch_domain::player::{Flag, PlayerId};

/// A brand's own id of one of its events (unique per brand), exactly as the
/// brand sent it. Ledger rows name events by (brand, id): see [`EventRef`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BrandEventId(String);

impl BrandEventId {
    /// 1..=128 characters, no control characters (the ingestion's rule).
    pub fn new(text: &str) -> Result<Self, FactsError> {
        if text.is_empty() || text.len() > 128 || text.chars().any(char::is_control) {
            return Err(FactsError::BadEventId(text.chars().take(32).collect()));
        }
        Ok(Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BrandEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BrandEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrandEventId({:?})", self.0)
    }
}

/// A brand event named on a ledger row or statement line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventRef {
    /// The brand that sent it.
    pub brand: BrandId,
    /// Its id at that brand.
    pub event: BrandEventId,
}

/// Why facts were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactsError {
    /// An event id that is empty, too long or has control characters.
    #[error("bad brand event id {0:?}")]
    BadEventId(String),
    /// The same event id twice with different content (a replay must be
    /// byte-for-byte the same event).
    #[error("event {0} appears twice with different content")]
    ConflictingEvent(BrandEventId),
    /// An amount in another currency than the player's wallet.
    #[error("event {event}: amount in {got}, but the player's currency is {expected}")]
    WrongCurrency {
        /// The event.
        event: BrandEventId,
        /// The player's currency.
        expected: Currency,
        /// The event's currency.
        got: Currency,
    },
    /// A negative deposit, stake, win, bonus cost or chargeback.
    #[error("event {0}: amounts must not be negative")]
    NegativeAmount(BrandEventId),
    /// Credit shares that are empty, zero, or above 100 % in total.
    #[error("attribution credits must be non-empty and total 0.01%..=100%, got {0} bps")]
    BadCredits(i64),
    /// Two facts for the same (player, brand).
    #[error("player {player} has two fact sets for brand {brand}")]
    DuplicatePlayer {
        /// The player.
        player: PlayerId,
        /// The brand.
        brand: BrandId,
    },
}

/// A player's registration at a brand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The registration event's id.
    pub event: BrandEventId,
    /// When the player registered.
    pub at: Timestamp,
    /// The country of registration (decides CPA eligibility and amount).
    pub country: CountryCode,
    /// When the platform recorded the registration (its clock, not the
    /// brand's): decides which brand's registration of a player linked
    /// across brands came first ("CPA once per player"). None: not known
    /// (facts written by hand), then `at` stands in.
    #[serde(default)]
    pub recorded_at: Option<Timestamp>,
}

impl Registration {
    /// When the platform recorded it (`at` when that is not known).
    pub fn recorded(&self) -> Timestamp {
        self.recorded_at.unwrap_or(self.at)
    }
}

/// One credited affiliate and its share of the registration's credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Credit {
    /// The earning account: the sub-affiliate owning the link if there is
    /// one, otherwise the affiliate. Its parents earn overrides through the
    /// [`super::overrides::AffiliateTree`].
    pub affiliate: AffiliateId,
    /// Share of the credit (all shares of a registration total at most
    /// 100 %; usually exactly 100 %).
    pub share: Bps,
}

/// Who brought the player to the brand, under which attribution rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AttributionSpec")]
pub struct Attribution {
    /// The attribution rules that decided it (e.g. `default/eu.json@3#…`),
    /// recorded on every ledger row the player contributes to.
    pub rules_version: String,
    /// Status (informational, see [`AttributionStatus`]).
    pub status: AttributionStatus,
    credits: Vec<Credit>,
}

impl Attribution {
    /// Validates the credits: duplicates of one affiliate are merged,
    /// touchpoints with a 0 bps share (the losing clicks of a last- or
    /// first-click model) are dropped, the total must be 1..=10 000 bps and
    /// no share negative. Credits are kept sorted by affiliate.
    pub fn new(
        rules_version: impl Into<String>,
        status: AttributionStatus,
        credits: impl IntoIterator<Item = Credit>,
    ) -> Result<Self, FactsError> {
        let mut merged: BTreeMap<AffiliateId, i64> = BTreeMap::new();
        for c in credits {
            *merged.entry(c.affiliate).or_default() += c.share.get();
        }
        let total: i64 = merged.values().sum();
        if merged.values().any(|s| *s < 0) {
            return Err(FactsError::BadCredits(total));
        }
        merged.retain(|_, s| *s > 0);
        if merged.is_empty() || !(1..=10_000).contains(&total) {
            return Err(FactsError::BadCredits(total));
        }
        let credits = merged
            .into_iter()
            .map(|(affiliate, s)| {
                Bps::share(s)
                    .map(|share| Credit { affiliate, share })
                    .map_err(|_| FactsError::BadCredits(total))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rules_version: rules_version.into(),
            status,
            credits,
        })
    }

    /// A single affiliate with 100 % of the credit.
    pub fn sole(
        rules_version: impl Into<String>,
        status: AttributionStatus,
        affiliate: AffiliateId,
    ) -> Self {
        Self {
            rules_version: rules_version.into(),
            status,
            credits: vec![Credit {
                affiliate,
                share: Bps::share(10_000).unwrap_or_else(|_| unreachable!("100% is a share")),
            }],
        }
    }

    /// The credited affiliates, sorted by affiliate id.
    pub fn credits(&self) -> &[Credit] {
        &self.credits
    }
}

/// A KYC status reported by the brand (mirrors the ingestion's statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KycStatus {
    /// Not decided yet.
    Pending,
    /// Identity verified.
    Approved,
    /// Verification failed.
    Rejected,
    /// A previous approval withdrawn.
    Revoked,
}

/// What an event says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// Money in.
    Deposit {
        /// Amount (≥ 0, player's currency).
        amount: Money,
    },
    /// Stakes and wins (per round or per player-day).
    Game {
        /// Total staked (≥ 0).
        stakes: Money,
        /// Total won (≥ 0).
        wins: Money,
    },
    /// A bonus granted, at its cost to the operator (≥ 0).
    BonusCost {
        /// Cost.
        amount: Money,
    },
    /// A deposit charged back (≥ 0).
    Chargeback {
        /// Amount.
        amount: Money,
        /// The deposit's event id, when known (informational).
        deposit: Option<BrandEventId>,
    },
    /// A KYC decision.
    Kyc {
        /// The new status.
        status: KycStatus,
    },
    /// A flag set (`active: true`) or lifted (`active: false`).
    Flag {
        /// Which flag.
        flag: Flag,
        /// Set or lifted.
        active: bool,
    },
    /// The operator confirmed the player as fraudulent (from the operator's
    /// risk decisions, not from the brand): voids every commission the
    /// player produced, at any time.
    FraudConfirmed,
}

/// One dated event of a player at a brand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerEvent {
    /// The brand's event id (replays carry the same id and content).
    pub id: BrandEventId,
    /// When it happened (the brand's `occurred_at`).
    pub at: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl PlayerEvent {
    fn money(&self) -> Vec<Money> {
        match &self.kind {
            EventKind::Deposit { amount }
            | EventKind::BonusCost { amount }
            | EventKind::Chargeback { amount, .. } => vec![*amount],
            EventKind::Game { stakes, wins } => vec![*stakes, *wins],
            EventKind::Kyc { .. } | EventKind::Flag { .. } | EventKind::FraudConfirmed => vec![],
        }
    }
}

/// The KYC situation derived from the KYC events (latest event wins; ties
/// at the same instant are broken by event id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kyc {
    /// No decision (no KYC event, or the latest says pending).
    Pending,
    /// Approved by `event` at `at`.
    Approved {
        /// The approval.
        event: BrandEventId,
        /// Its time.
        at: Timestamp,
    },
    /// Rejected, never approved before: no commission.
    Rejected {
        /// The rejection.
        event: BrandEventId,
        /// Its time.
        at: Timestamp,
    },
    /// Approved once, then rejected or revoked: a clawback.
    Revoked {
        /// The revocation.
        event: BrandEventId,
        /// Its time.
        at: Timestamp,
    },
}

/// Everything known about one player at one brand. Always consistent:
/// events are unique by id (identical replays collapsed), in the player's
/// currency, with non-negative amounts, sorted by (time, id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PlayerFactsSpec")]
pub struct PlayerFacts {
    player: PlayerId,
    brand: BrandId,
    currency: Currency,
    registration: Registration,
    attribution: Option<Attribution>,
    events: Vec<PlayerEvent>,
}

/// The unvalidated JSON shape of [`PlayerFacts`].
#[derive(Debug, Clone, Deserialize)]
struct PlayerFactsSpec {
    player: PlayerId,
    brand: BrandId,
    currency: Currency,
    registration: Registration,
    attribution: Option<Attribution>,
    #[serde(default)]
    events: Vec<PlayerEvent>,
}

/// The unvalidated JSON shape of [`Attribution`].
#[derive(Debug, Clone, Deserialize)]
struct AttributionSpec {
    rules_version: String,
    status: AttributionStatus,
    credits: Vec<Credit>,
}

impl TryFrom<AttributionSpec> for Attribution {
    type Error = FactsError;
    fn try_from(a: AttributionSpec) -> Result<Self, FactsError> {
        Attribution::new(a.rules_version, a.status, a.credits)
    }
}

impl TryFrom<PlayerFactsSpec> for PlayerFacts {
    type Error = FactsError;
    fn try_from(s: PlayerFactsSpec) -> Result<Self, FactsError> {
        Self::new(
            s.player,
            s.brand,
            s.currency,
            s.registration,
            s.attribution,
            s.events,
        )
    }
}

impl PlayerFacts {
    /// Validates and normalises: an event id seen twice with identical
    /// content counts once (a replay); with different content it is an
    /// error. Events end up sorted by (time, id), so the input order never
    /// matters.
    pub fn new(
        player: PlayerId,
        brand: BrandId,
        currency: Currency,
        registration: Registration,
        attribution: Option<Attribution>,
        events: Vec<PlayerEvent>,
    ) -> Result<Self, FactsError> {
        let mut by_id: BTreeMap<BrandEventId, PlayerEvent> = BTreeMap::new();
        for e in events {
            for m in e.money() {
                if m.currency() != currency {
                    return Err(FactsError::WrongCurrency {
                        event: e.id.clone(),
                        expected: currency,
                        got: m.currency(),
                    });
                }
                if m.minor() < 0 {
                    return Err(FactsError::NegativeAmount(e.id.clone()));
                }
            }
            match by_id.get(&e.id) {
                Some(seen) if *seen == e => {}
                Some(_) => return Err(FactsError::ConflictingEvent(e.id)),
                None => {
                    by_id.insert(e.id.clone(), e);
                }
            }
        }
        let mut events: Vec<PlayerEvent> = by_id.into_values().collect();
        events.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        Ok(Self {
            player,
            brand,
            currency,
            registration,
            attribution,
            events,
        })
    }

    /// The player.
    pub fn player(&self) -> PlayerId {
        self.player
    }

    /// The brand.
    pub fn brand(&self) -> BrandId {
        self.brand
    }

    /// The player's wallet currency at this brand.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The registration.
    pub fn registration(&self) -> &Registration {
        &self.registration
    }

    /// The attribution, if the player was attributed.
    pub fn attribution(&self) -> Option<&Attribution> {
        self.attribution.as_ref()
    }

    /// Events, unique by id, sorted by (time, id).
    pub fn events(&self) -> &[PlayerEvent] {
        &self.events
    }

    /// A reference to one of this player's events at this brand.
    pub fn event_ref(&self, id: &BrandEventId) -> EventRef {
        EventRef {
            brand: self.brand,
            event: id.clone(),
        }
    }

    /// Deposits in time order.
    pub fn deposits(&self) -> impl Iterator<Item = (&PlayerEvent, Money)> + '_ {
        self.events.iter().filter_map(|e| match &e.kind {
            EventKind::Deposit { amount } => Some((e, *amount)),
            _ => None,
        })
    }

    /// The first deposit: the earliest deposit event by time (ties: lowest
    /// id). Derived from the deposits, never taken from the brand.
    pub fn first_deposit(&self) -> Option<(&PlayerEvent, Money)> {
        self.deposits().next()
    }

    /// KYC status at the end of the history.
    pub fn kyc(&self) -> Kyc {
        self.kyc_until(None)
    }

    /// KYC status considering only events at or before `t` (all if `None`).
    pub fn kyc_until(&self, t: Option<Timestamp>) -> Kyc {
        let mut state = Kyc::Pending;
        let mut ever_approved = false;
        for e in &self.events {
            if t.is_some_and(|t| e.at > t) {
                break;
            }
            if let EventKind::Kyc { status } = e.kind {
                let (event, at) = (e.id.clone(), e.at);
                state = match status {
                    KycStatus::Pending => Kyc::Pending,
                    KycStatus::Approved => {
                        ever_approved = true;
                        Kyc::Approved { event, at }
                    }
                    KycStatus::Rejected | KycStatus::Revoked if ever_approved => {
                        Kyc::Revoked { event, at }
                    }
                    KycStatus::Rejected | KycStatus::Revoked => Kyc::Rejected { event, at },
                };
            }
        }
        state
    }

    /// The flags in force at `t` (set and not lifted by then), each with the
    /// event that set it.
    pub fn flags_at(&self, t: Timestamp) -> BTreeMap<Flag, &PlayerEvent> {
        let mut active = BTreeMap::new();
        for e in self.events.iter().take_while(|e| e.at <= t) {
            if let EventKind::Flag { flag, active: on } = e.kind {
                if on {
                    active.insert(flag, e);
                } else {
                    active.remove(&flag);
                }
            }
        }
        active
    }

    /// The first fraud confirmation, if any.
    pub fn fraud(&self) -> Option<&PlayerEvent> {
        self.events
            .iter()
            .find(|e| matches!(e.kind, EventKind::FraudConfirmed))
    }
}

/// Checks that no (player, brand) appears twice in `facts`.
pub fn check_unique(facts: &[PlayerFacts]) -> Result<(), FactsError> {
    let mut seen = BTreeSet::new();
    for f in facts {
        if !seen.insert((f.player, f.brand)) {
            return Err(FactsError::DuplicatePlayer {
                player: f.player,
                brand: f.brand,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn eur() -> Currency {
        Currency::parse("EUR").expect("EUR")
    }

    fn ev(id: &str, day: u8, kind: EventKind) -> PlayerEvent {
        PlayerEvent {
            id: BrandEventId::new(id).expect("id"),
            at: Timestamp::utc(2026, 1, day, 12, 0).expect("t"),
            kind,
        }
    }

    fn facts(events: Vec<PlayerEvent>) -> Result<PlayerFacts, FactsError> {
        PlayerFacts::new(
            PlayerId::from(Uuid::from_u128(1)),
            BrandId::from(Uuid::from_u128(2)),
            eur(),
            Registration {
                event: BrandEventId::new("reg").expect("id"),
                at: Timestamp::utc(2026, 1, 1, 0, 0).expect("t"),
                country: CountryCode::parse("DE").expect("DE"),
                recorded_at: None,
            },
            None,
            events,
        )
    }

    #[test]
    fn a_replayed_event_counts_once_and_a_conflicting_one_is_refused() {
        let d = ev(
            "d1",
            2,
            EventKind::Deposit {
                amount: Money::new(5_000, eur()),
            },
        );
        let f = facts(vec![d.clone(), d.clone()]).expect("facts");
        assert_eq!(f.deposits().count(), 1);
        let mut other = d.clone();
        other.kind = EventKind::Deposit {
            amount: Money::new(6_000, eur()),
        };
        assert_eq!(
            facts(vec![d, other]),
            Err(FactsError::ConflictingEvent(
                BrandEventId::new("d1").expect("id")
            ))
        );
    }

    #[test]
    fn the_first_deposit_is_the_earliest_whatever_the_input_order() {
        let late = ev(
            "a-late",
            9,
            EventKind::Deposit {
                amount: Money::new(100, eur()),
            },
        );
        let early = ev(
            "z-early",
            3,
            EventKind::Deposit {
                amount: Money::new(200, eur()),
            },
        );
        let f = facts(vec![late, early]).expect("facts");
        let (first, amount) = f.first_deposit().expect("deposit");
        assert_eq!(first.id.as_str(), "z-early");
        assert_eq!(amount.minor(), 200);
    }

    #[test]
    fn amounts_in_another_currency_or_negative_are_refused() {
        let usd = Currency::parse("USD").expect("USD");
        assert!(matches!(
            facts(vec![ev(
                "d",
                2,
                EventKind::Deposit {
                    amount: Money::new(1, usd)
                }
            )]),
            Err(FactsError::WrongCurrency { .. })
        ));
        assert!(matches!(
            facts(vec![ev(
                "d",
                2,
                EventKind::BonusCost {
                    amount: Money::new(-1, eur())
                }
            )]),
            Err(FactsError::NegativeAmount(_))
        ));
    }

    #[test]
    fn kyc_rejected_after_an_approval_is_a_revocation() {
        let f = facts(vec![
            ev(
                "k1",
                2,
                EventKind::Kyc {
                    status: KycStatus::Approved,
                },
            ),
            ev(
                "k2",
                5,
                EventKind::Kyc {
                    status: KycStatus::Rejected,
                },
            ),
        ])
        .expect("facts");
        assert!(matches!(f.kyc(), Kyc::Revoked { .. }));
        assert!(matches!(
            f.kyc_until(Some(Timestamp::utc(2026, 1, 3, 0, 0).expect("t"))),
            Kyc::Approved { .. }
        ));
        let g = facts(vec![ev(
            "k",
            2,
            EventKind::Kyc {
                status: KycStatus::Rejected,
            },
        )])
        .expect("facts");
        assert!(matches!(g.kyc(), Kyc::Rejected { .. }));
    }

    #[test]
    fn flags_can_be_set_and_lifted() {
        let f = facts(vec![
            ev(
                "f1",
                2,
                EventKind::Flag {
                    flag: Flag::Blocked,
                    active: true,
                },
            ),
            ev(
                "f2",
                4,
                EventKind::Flag {
                    flag: Flag::Blocked,
                    active: false,
                },
            ),
        ])
        .expect("facts");
        let t = |d| Timestamp::utc(2026, 1, d, 13, 0).expect("t");
        assert!(f.flags_at(t(3)).contains_key(&Flag::Blocked));
        assert!(f.flags_at(t(5)).is_empty());
    }

    #[test]
    fn credits_are_merged_and_must_not_exceed_the_whole() {
        let a = AffiliateId::from(Uuid::from_u128(10));
        let c = |bps| Credit {
            affiliate: a,
            share: Bps::share(bps).expect("bps"),
        };
        let att = Attribution::new("r@1", AttributionStatus::Final, [c(4_000), c(6_000)])
            .expect("attribution");
        assert_eq!(att.credits().len(), 1);
        assert_eq!(att.credits()[0].share.get(), 10_000);
        assert!(Attribution::new("r@1", AttributionStatus::Final, [c(6_000), c(6_000)]).is_err());
        assert!(Attribution::new("r@1", AttributionStatus::Final, []).is_err());
    }

    #[test]
    fn facts_parse_from_json() {
        let json = r#"{
            "player": "00000000-0000-0000-0000-000000000001",
            "brand": "00000000-0000-0000-0000-000000000002",
            "currency": "EUR",
            "registration": {"event": "reg", "at": 1767225600000, "country": "DE"},
            "attribution": {"rules_version": "default/eu.json@3", "status": "final",
                "credits": [{"affiliate": "00000000-0000-0000-0000-00000000000a", "share": 10000}]},
            "events": [
                {"id": "d1", "at": 1767312000000, "type": "deposit", "amount": {"minor": 5000, "currency": "EUR"}},
                {"id": "k1", "at": 1767312000000, "type": "kyc", "status": "approved"},
                {"id": "f1", "at": 1767312000000, "type": "flag", "flag": "self_exclusion", "active": true}
            ]
        }"#;
        let f: PlayerFacts = serde_json::from_str(json).expect("parse");
        assert_eq!(f.events().len(), 3);
        assert_eq!(f.attribution().map(|a| a.credits().len()), Some(1));
        let bad = json.replace("10000}", "10001}");
        assert!(serde_json::from_str::<PlayerFacts>(&bad).is_err());
    }
}
