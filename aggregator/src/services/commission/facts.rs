//! Stored rows → the commission engine's facts: one [`PlayerFacts`] per
//! attribution row, from the brand player's stored events (the mapping of
//! `docs/commissions.md`, "For the integrator").
//!
//! Owns that mapping and what it cannot map (a [`RunProblem`] per player,
//! typed, naming the events at fault). Pure: it reads rows the store
//! already loaded; must not compute commissions (the engine does) nor read
//! ClickHouse (the job and the incremental run do).

use std::collections::BTreeMap;

use uuid::Uuid;

use clickstitch_shared::{AffiliateId, BrandId, CountryCode};

use crate::commission::facts::FactsError;
use crate::commission::problem::Classify;
use crate::commission::{
    Attribution, AttributionStatus, BrandEventId, Credit, EventKind, Flag, Held, KycStatus,
    PlayerEvent, PlayerFacts, PlayerId, ProblemKind, Registration, RunProblem, Timestamp,
};
use crate::money::{Bps, Currency, Money};
use crate::store::ledger::FactEventRow;
use crate::store::rows::AttributionRow;

/// The engine's input about players, and the players left out.
#[derive(Debug, Clone, Default)]
pub struct LoadedFacts {
    /// One fact set per (player, brand) with an attribution row.
    pub players: Vec<PlayerFacts>,
    /// Players left out for now (registration not readable yet), with the
    /// reason.
    pub skipped: Vec<String>,
    /// Players whose facts could not be built (the engine holds them).
    pub problems: Vec<RunProblem>,
    /// Players passed without attribution because a fraud review is open.
    pub held: Vec<String>,
}

/// `player_events.event_type` codes (migration 0003).
mod event_type {
    pub(super) const REGISTRATION: i8 = 1;
    pub(super) const KYC: i8 = 2;
    pub(super) const DEPOSIT: i8 = 3;
    pub(super) const GAME_ACTIVITY: i8 = 5;
    pub(super) const BONUS: i8 = 6;
    pub(super) const CHARGEBACK: i8 = 7;
    pub(super) const RESPONSIBLE_GAMING: i8 = 8;
}

fn kyc_status(text: &str) -> Option<KycStatus> {
    match text {
        "pending" => Some(KycStatus::Pending),
        "approved" => Some(KycStatus::Approved),
        "rejected" => Some(KycStatus::Rejected),
        "revoked" => Some(KycStatus::Revoked),
        _ => None,
    }
}

fn flag(text: &str) -> Option<Flag> {
    match text {
        "self_exclusion" => Some(Flag::SelfExclusion),
        "cooling_off" => Some(Flag::CoolingOff),
        "deposit_limit" => Some(Flag::DepositLimit),
        "account_closed" => Some(Flag::AccountClosed),
        "blocked" => Some(Flag::Blocked),
        "duplicate_account" => Some(Flag::DuplicateAccount),
        _ => None,
    }
}

fn currency_of(row: &FactEventRow) -> Result<Currency, FactProblem> {
    let text = std::str::from_utf8(&row.currency).unwrap_or("");
    Currency::parse(text).map_err(|e| FactProblem::bad_event(&row.event_id, e.to_string()))
}

/// One stored event as an engine fact (`None` for events the engine does
/// not need: withdrawals, other registrations).
fn fact(row: &FactEventRow, registration_event: &str) -> Result<Option<PlayerEvent>, FactProblem> {
    let money =
        |minor: i64| -> Result<Money, FactProblem> { Ok(Money::new(minor, currency_of(row)?)) };
    let bad = |what: &str, value: &str| {
        FactProblem::bad_event(
            &row.event_id,
            format!("event {}: {what} {value:?}", row.event_id),
        )
    };
    let kind = match row.event_type {
        event_type::REGISTRATION if row.event_id == registration_event => {
            // A KYC status given at registration is a KYC decision at the
            // registration's time (it reuses the registration's event id).
            match kyc_status(&row.kyc_status) {
                None | Some(KycStatus::Pending) => return Ok(None),
                Some(status) => EventKind::Kyc { status },
            }
        }
        event_type::KYC => EventKind::Kyc {
            status: kyc_status(&row.kyc_status)
                .ok_or_else(|| bad("KYC status", &row.kyc_status))?,
        },
        event_type::DEPOSIT => EventKind::Deposit {
            amount: money(row.amount_minor)?,
        },
        event_type::GAME_ACTIVITY => EventKind::Game {
            stakes: money(row.stakes_minor)?,
            wins: money(row.wins_minor)?,
        },
        event_type::BONUS => EventKind::BonusCost {
            amount: money(row.amount_minor)?,
        },
        event_type::CHARGEBACK => EventKind::Chargeback {
            amount: money(row.amount_minor)?,
            deposit: if row.reference_event_id.is_empty() {
                None
            } else {
                Some(FactProblem::event(&row.reference_event_id)?)
            },
        },
        event_type::RESPONSIBLE_GAMING => EventKind::Flag {
            flag: flag(&row.rg_flag).ok_or_else(|| bad("flag", &row.rg_flag))?,
            active: row.rg_active != 0,
        },
        _ => return Ok(None),
    };
    Ok(Some(PlayerEvent {
        id: FactProblem::event(&row.event_id)?,
        at: Timestamp::from_unix_ms(row.occurred_at_ms),
        kind,
    }))
}

/// The credits of an attribution row: per touchpoint, the earning account
/// (the sub-affiliate when set, else the affiliate) and its share.
fn credits(row: &AttributionRow) -> Result<Vec<Credit>, FactProblem> {
    let n = row.credit_affiliate_ids.len();
    if row.credit_sub_affiliate_ids.len() != n || row.credit_bps.len() != n {
        return Err(FactProblem::bad_facts(
            vec![&row.registration_event_id],
            "attribution credit arrays of different lengths".into(),
        ));
    }
    (0..n)
        .map(|i| {
            let sub = row.credit_sub_affiliate_ids[i].trim();
            let affiliate = if sub.is_empty() {
                AffiliateId::from(row.credit_affiliate_ids[i])
            } else {
                AffiliateId::from(Uuid::parse_str(sub).map_err(|_| {
                    FactProblem::bad_facts(
                        vec![&row.registration_event_id],
                        format!("attribution sub-affiliate id {sub:?} does not parse"),
                    )
                })?)
            };
            let share = Bps::share(i64::from(row.credit_bps[i]))?;
            Ok(Credit { affiliate, share })
        })
        .collect()
}

fn attribution(row: &AttributionRow) -> Result<Option<Attribution>, FactProblem> {
    let status = match row.status {
        1 => AttributionStatus::PendingKyc,
        2 => AttributionStatus::Final,
        3 => AttributionStatus::Rejected,
        // 4 = unattributed: the player earns nothing.
        _ => return Ok(None),
    };
    Ok(Some(Attribution::new(
        row.rules_version.clone(),
        status,
        credits(row)?,
    )?))
}

/// Maps stored attributions and events to the engine's facts, one
/// [`PlayerFacts`] per attribution row (docs/commissions.md, "For the
/// integrator"): the registration (event id, time, country) from the
/// attribution's registration event; the brand player's other events
/// (matched by brand and brand player id); the registration's KYC status,
/// unless pending, as a KYC fact; the wallet currency from the earliest
/// money event. A player whose facts are inconsistent (e.g. an event in
/// another currency) becomes a [`RunProblem`] (`held: player`): the engine
/// holds their CPA and leaves them out of RevShare — commission is never
/// guessed — and everyone else is computed. A registration whose event row
/// is not readable yet is skipped (the next run picks it up).
///
/// Fraud review (`holds`): a player whose registration or first deposit is
/// quarantined and awaits review is passed without attribution (nothing is
/// earned meanwhile; earlier accruals are reversed as `no_longer_earned`,
/// and come back if the review approves); a player rejected as fraud gets a
/// `FraudConfirmed` fact (`fraud-review:<review id>` at the decision time),
/// which claws back every commission through reversal entries.
pub fn player_facts(
    attributions: &[AttributionRow],
    events: &[FactEventRow],
    holds: &crate::services::fraud::quarantine::CommissionHolds,
) -> LoadedFacts {
    let mut by_player: BTreeMap<(Uuid, &str), Vec<&FactEventRow>> = BTreeMap::new();
    for e in events {
        by_player
            .entry((e.brand_id, e.brand_player_id.as_str()))
            .or_default()
            .push(e);
    }
    let mut out = LoadedFacts::default();
    for a in attributions {
        let brand = BrandId::from(a.brand_id);
        let player = PlayerId::from(a.player_id);
        let mine = by_player
            .get(&(a.brand_id, a.brand_player_id.as_str()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let Some(reg) = mine.iter().find(|e| {
            e.event_type == event_type::REGISTRATION && e.event_id == a.registration_event_id
        }) else {
            out.skipped.push(format!(
                "player {player} at brand {brand}: registration event {:?} not stored yet",
                a.registration_event_id
            ));
            continue;
        };
        let hold = holds.get(&(a.brand_id, a.brand_player_id.clone()));
        let held = hold == Some(&crate::services::fraud::quarantine::CommissionHold::Pending);
        if held {
            out.held.push(format!(
                "player {player} at brand {brand}: quarantined, awaiting fraud review"
            ));
        }
        let built = (|| -> Result<PlayerFacts, FactProblem> {
            let country = std::str::from_utf8(&reg.country).unwrap_or("");
            let registration = Registration {
                event: FactProblem::event(&reg.event_id)?,
                at: Timestamp::from_unix_ms(reg.occurred_at_ms),
                recorded_at: Some(Timestamp::from_unix_ms(u64::from(reg.received_at) * 1000)),
                country: CountryCode::parse(country).map_err(|_| {
                    FactProblem::bad_facts(
                        vec![&reg.event_id],
                        format!("registration country {country:?} does not parse"),
                    )
                })?,
            };
            let mut facts = Vec::new();
            for e in mine {
                if let Some(f) = fact(e, &a.registration_event_id)? {
                    facts.push(f);
                }
            }
            if let Some(crate::services::fraud::quarantine::CommissionHold::Rejected {
                review_id,
                decided_at_ms,
            }) = hold
            {
                facts.push(PlayerEvent {
                    id: FactProblem::event(&format!("fraud-review:{review_id}"))?,
                    at: Timestamp::from_unix_ms(*decided_at_ms),
                    kind: EventKind::FraudConfirmed,
                });
            }
            let currency = facts
                .iter()
                .filter_map(|f| match &f.kind {
                    EventKind::Deposit { amount }
                    | EventKind::BonusCost { amount }
                    | EventKind::Chargeback { amount, .. } => {
                        Some((f.at, &f.id, amount.currency()))
                    }
                    EventKind::Game { stakes, .. } => Some((f.at, &f.id, stakes.currency())),
                    _ => None,
                })
                .min()
                .map(|(_, _, c)| c)
                .unwrap_or(Currency::NONE);
            // A held player earns nothing until the review decides.
            let attribution = if held { None } else { attribution(a)? };
            PlayerFacts::new(player, brand, currency, registration, attribution, facts)
                .map_err(FactProblem::from)
        })();
        match built {
            Ok(f) => out.players.push(f),
            Err(p) => out.problems.push(RunProblem::player(
                player,
                brand,
                p.kind,
                Held::Player,
                p.events,
                format!(
                    "facts of player {player} (brand player {:?}) at brand {brand}: {}",
                    a.brand_player_id, p.message
                ),
            )),
        }
    }
    out
}

/// Why one player's stored events could not become facts.
#[derive(Debug)]
struct FactProblem {
    kind: ProblemKind,
    events: Vec<BrandEventId>,
    message: String,
}

impl FactProblem {
    fn bad_event(event: &str, message: String) -> Self {
        Self {
            kind: ProblemKind::BadEvent,
            events: BrandEventId::new(event).into_iter().collect(),
            message,
        }
    }

    fn bad_facts(events: Vec<&str>, message: String) -> Self {
        Self {
            kind: ProblemKind::BadFacts,
            events: events
                .into_iter()
                .filter_map(|e| BrandEventId::new(e).ok())
                .collect(),
            message,
        }
    }

    fn event(id: &str) -> Result<BrandEventId, Self> {
        BrandEventId::new(id).map_err(Self::from)
    }
}

impl From<FactsError> for FactProblem {
    fn from(e: FactsError) -> Self {
        let (kind, event) = e.classify();
        Self {
            kind,
            events: event.into_iter().collect(),
            message: e.to_string(),
        }
    }
}

impl From<crate::money::MoneyError> for FactProblem {
    fn from(e: crate::money::MoneyError) -> Self {
        Self {
            kind: ProblemKind::BadCredits,
            events: Vec::new(),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brand() -> Uuid {
        Uuid::from_u128(0xb1)
    }

    fn row(event_id: &str, event_type: i8, at: u64) -> FactEventRow {
        FactEventRow {
            brand_id: brand(),
            event_id: event_id.into(),
            event_type,
            occurred_at_ms: at,
            received_at: u32::try_from(at / 1000).unwrap_or(u32::MAX),
            brand_player_id: "p-1".into(),
            country: *b"XX",
            kyc_status: String::new(),
            amount_minor: 0,
            currency: *b"XXX",
            stakes_minor: 0,
            wins_minor: 0,
            rg_flag: String::new(),
            rg_active: 0,
            reference_event_id: String::new(),
        }
    }

    fn attribution_row(status: i8) -> AttributionRow {
        AttributionRow {
            brand_id: brand(),
            player_id: Uuid::from_u128(1),
            brand_player_id: "p-1".into(),
            registration_event_id: "reg-1".into(),
            status,
            reason: String::new(),
            model: "last_click".into(),
            rules_version: "default/eu.json@1".into(),
            window_days: 30,
            credit_affiliate_ids: vec![Uuid::from_u128(0xa1), Uuid::from_u128(0xa2)],
            credit_sub_affiliate_ids: vec![Uuid::from_u128(0x5b).to_string(), String::new()],
            credit_campaign_ids: vec![Uuid::from_u128(0xc1), Uuid::from_u128(0xc1)],
            credit_click_ids: vec![Uuid::from_u128(0xd1), Uuid::from_u128(0xd2)],
            credit_bps: vec![6_000, 4_000],
            decision: String::new(),
            decided_at: 0,
            decided_at_ms: 0,
            version: 1,
        }
    }

    fn journey() -> Vec<FactEventRow> {
        let mut reg = row("reg-1", event_type::REGISTRATION, 1_000);
        reg.country = *b"DE";
        reg.kyc_status = "approved".into();
        let mut dep = row("dep-1", event_type::DEPOSIT, 2_000);
        dep.amount_minor = 5_000;
        dep.currency = *b"EUR";
        let mut game = row("game-1", event_type::GAME_ACTIVITY, 3_000);
        game.stakes_minor = 10_000;
        game.wins_minor = 4_000;
        game.currency = *b"EUR";
        let mut wd = row("wd-1", 4, 3_500);
        wd.amount_minor = 1_000;
        wd.currency = *b"USD";
        let mut rg = row("rg-1", event_type::RESPONSIBLE_GAMING, 4_000);
        rg.rg_flag = "self_exclusion".into();
        rg.rg_active = 1;
        let mut other = row("other", event_type::DEPOSIT, 2_000);
        other.brand_player_id = "p-2".into();
        other.currency = *b"EUR";
        vec![reg, dep, game, wd, rg, other]
    }

    #[test]
    fn stored_events_become_the_players_facts_with_credits_to_the_earning_accounts() {
        let loaded = player_facts(&[attribution_row(2)], &journey(), &Default::default());
        assert!(loaded.skipped.is_empty());
        let f = &loaded.players[0];
        assert_eq!(f.registration().country.as_str(), "DE");
        assert_eq!(f.registration().at, Timestamp::from_unix_ms(1_000));
        assert_eq!(f.currency().as_str(), "EUR");
        let kinds: Vec<(&str, &EventKind)> = f
            .events()
            .iter()
            .map(|e| (e.id.as_str(), &e.kind))
            .collect();
        // The registration's KYC status is a KYC fact; the withdrawal and
        // the other player's deposit are not facts of this player.
        assert_eq!(kinds.len(), 4, "{kinds:?}");
        assert_eq!(
            kinds[0],
            (
                "reg-1",
                &EventKind::Kyc {
                    status: KycStatus::Approved
                }
            )
        );
        assert!(matches!(
            kinds[3].1,
            EventKind::Flag {
                flag: Flag::SelfExclusion,
                active: true
            }
        ));
        let credits = f.attribution().expect("attributed").credits();
        let sub = AffiliateId::from(Uuid::from_u128(0x5b));
        let top = AffiliateId::from(Uuid::from_u128(0xa2));
        let got: Vec<(AffiliateId, i64)> = credits
            .iter()
            .map(|c| (c.affiliate, c.share.get()))
            .collect();
        let mut want = vec![(sub, 6_000), (top, 4_000)];
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn unattributed_players_have_no_attribution_and_missing_registrations_are_skipped() {
        let loaded = player_facts(&[attribution_row(4)], &journey(), &Default::default());
        assert!(loaded.players[0].attribution().is_none());
        let events: Vec<FactEventRow> = journey().into_iter().skip(1).collect();
        let loaded = player_facts(&[attribution_row(2)], &events, &Default::default());
        assert!(loaded.players.is_empty());
        assert_eq!(loaded.skipped.len(), 1);
    }

    #[test]
    fn a_player_with_two_currencies_becomes_a_problem_naming_the_event_and_nobody_else_is_touched()
    {
        let mut events = journey();
        let mut usd = row("dep-2", event_type::DEPOSIT, 5_000);
        usd.currency = *b"USD";
        usd.amount_minor = 100;
        events.push(usd);
        let mut other = attribution_row(2);
        other.player_id = Uuid::from_u128(2);
        other.brand_player_id = "p-2".into();
        other.registration_event_id = "reg-2".into();
        let mut reg2 = row("reg-2", event_type::REGISTRATION, 1_000);
        reg2.brand_player_id = "p-2".into();
        reg2.country = *b"DE";
        events.push(reg2);
        let loaded = player_facts(&[attribution_row(1), other], &events, &Default::default());
        assert_eq!(loaded.players.len(), 1, "the other player is built");
        assert_eq!(
            loaded.players[0].player(),
            PlayerId::from(Uuid::from_u128(2))
        );
        assert_eq!(loaded.problems.len(), 1);
        let p = &loaded.problems[0];
        assert_eq!(p.kind, ProblemKind::WrongCurrency);
        assert_eq!(p.held, Held::Player);
        assert_eq!(p.events[0].as_str(), "dep-2");
        assert_eq!(p.player, Some(PlayerId::from(Uuid::from_u128(1))));
    }

    #[test]
    fn a_player_awaiting_fraud_review_is_passed_without_attribution() {
        let holds = crate::services::fraud::quarantine::CommissionHolds::from([(
            (brand(), "p-1".to_owned()),
            crate::services::fraud::quarantine::CommissionHold::Pending,
        )]);
        let loaded = player_facts(&[attribution_row(2)], &journey(), &holds);
        assert_eq!(loaded.players.len(), 1);
        assert!(loaded.players[0].attribution().is_none());
        assert_eq!(loaded.held.len(), 1);
    }
}
