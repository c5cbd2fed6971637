//! Scenario tests: the engine end to end, one test per plan type and edge
//! case, the worked examples of `docs/commissions.md` (same numbers), and
//! the order-independence property tests.

use std::collections::BTreeMap;

use proptest::prelude::*;
use uuid::Uuid;

use clickstitch_shared::{AffiliateId, BrandId, CountryCode};

use clickstitch_domain::money::{Bps, Currency, FxTable, Money, Rate};

use super::cpa::{self, CpaOutcome, Unmet};
use super::ledger::{Detail, EntryKind, Gate, LedgerEntry, Reason, Slot};
use super::overrides::{AffiliateTree, Link, TreeError};
use super::period::{payout, PayoutDecision, PayoutRun, PeriodCalendar};
use super::plan::{Deal, DealBook};
use super::revenue::{FormulaBook, LineKind, NgrFormula};
use super::{
    balances, Attribution, AttributionStatus, BrandEventId, Credit, Engine, EntryState, EventKind,
    Flag, FxBook, KycStatus, Month, PlayerEvent, PlayerFacts, PlayerId, Registration, Timestamp,
};

// ---------- fixtures ----------

const RULES: &str = "default/eu.json@3";

fn aff(n: u128) -> AffiliateId {
    AffiliateId::from(Uuid::from_u128(0xaff0_0000 + n))
}

fn brand(n: u128) -> BrandId {
    BrandId::from(Uuid::from_u128(0xb0_0000 + n))
}

fn player(n: u128) -> PlayerId {
    PlayerId::from(Uuid::from_u128(0xc0_0000 + n))
}

fn ccy(code: &str) -> Currency {
    Currency::parse(code).expect("currency")
}

fn eur(minor: i64) -> Money {
    Money::new(minor, ccy("EUR"))
}

fn at(month: u8, day: u8) -> Timestamp {
    Timestamp::utc(2026, month, day, 12, 0).expect("date")
}

fn month(text: &str) -> Month {
    Month::parse(text).expect("month")
}

fn ev(id: &str) -> BrandEventId {
    BrandEventId::new(id).expect("event id")
}

/// A player at a brand, built event by event.
#[derive(Clone)]
struct P {
    player: PlayerId,
    brand: BrandId,
    currency: Currency,
    registration: Registration,
    attribution: Option<Attribution>,
    events: Vec<PlayerEvent>,
}

impl P {
    fn new(n: u128, b: u128, country: &str, registered: Timestamp) -> Self {
        Self {
            player: player(n),
            brand: brand(b),
            currency: ccy("EUR"),
            registration: Registration {
                event: ev(&format!("reg-{n}-{b}")),
                at: registered,
                country: CountryCode::parse(country).expect("country"),
                recorded_at: None,
            },
            attribution: None,
            events: Vec::new(),
        }
    }

    fn currency(mut self, code: &str) -> Self {
        self.currency = ccy(code);
        self
    }

    fn via(mut self, affiliate: AffiliateId) -> Self {
        self.attribution = Some(Attribution::sole(
            RULES,
            AttributionStatus::Final,
            affiliate,
        ));
        self
    }

    fn attributed(mut self, a: Attribution) -> Self {
        self.attribution = Some(a);
        self
    }

    fn push(mut self, id: &str, when: Timestamp, kind: EventKind) -> Self {
        self.events.push(PlayerEvent {
            id: ev(id),
            at: when,
            kind,
        });
        self
    }

    fn money(&self, minor: i64) -> Money {
        Money::new(minor, self.currency)
    }

    fn deposit(self, id: &str, when: Timestamp, minor: i64) -> Self {
        let amount = self.money(minor);
        self.push(id, when, EventKind::Deposit { amount })
    }

    fn game(self, id: &str, when: Timestamp, stakes: i64, wins: i64) -> Self {
        let (stakes, wins) = (self.money(stakes), self.money(wins));
        self.push(id, when, EventKind::Game { stakes, wins })
    }

    fn bonus(self, id: &str, when: Timestamp, minor: i64) -> Self {
        let amount = self.money(minor);
        self.push(id, when, EventKind::BonusCost { amount })
    }

    fn chargeback(self, id: &str, when: Timestamp, minor: i64) -> Self {
        let amount = self.money(minor);
        self.push(
            id,
            when,
            EventKind::Chargeback {
                amount,
                deposit: None,
            },
        )
    }

    fn kyc(self, id: &str, when: Timestamp, status: KycStatus) -> Self {
        self.push(id, when, EventKind::Kyc { status })
    }

    fn flag(self, id: &str, when: Timestamp, flag: Flag) -> Self {
        self.push(id, when, EventKind::Flag { flag, active: true })
    }

    fn fraud(self, id: &str, when: Timestamp) -> Self {
        self.push(id, when, EventKind::FraudConfirmed)
    }

    fn build(&self) -> PlayerFacts {
        PlayerFacts::new(
            self.player,
            self.brand,
            self.currency,
            self.registration.clone(),
            self.attribution.clone(),
            self.events.clone(),
        )
        .expect("facts")
    }
}

/// The standard qualifying CPA journey of the docs: registered 5 Jan (DE by
/// default), deposits 20.00 + 40.00, stakes 150.00 (wins 100.00), KYC
/// approved 15 Jan.
fn qualifying(n: u128, b: u128, country: &str, a: AffiliateId) -> P {
    qualifying_in(1, n, b, country, a)
}

/// The same journey in another month of 2026.
fn qualifying_in(m: u8, n: u128, b: u128, country: &str, a: AffiliateId) -> P {
    P::new(n, b, country, at(m, 5))
        .via(a)
        .deposit(&format!("dep-1-{n}"), at(m, 6), 2_000)
        .deposit(&format!("dep-2-{n}"), at(m, 10), 4_000)
        .game(&format!("game-1-{n}"), at(m, 12), 15_000, 10_000)
}

fn approved(p: P, n: u128, when: Timestamp) -> P {
    p.kyc(&format!("kyc-{n}"), when, KycStatus::Approved)
}

const CPA_DE_GB: &str = r#"{"type": "cpa", "cpa": {"amounts": {"DE": 10000, "GB": 8000},
    "min_first_deposit": 2000, "first_deposit_within_days": 30,
    "min_total_deposits": 5000, "min_wagering": 10000}}"#;

fn flat(bps: i64, carryover: bool) -> String {
    format!(
        r#"{{"type": "revshare", "revshare": {{"negative_carryover": {carryover},
            "schedule": {{"type": "flat", "rate_bps": {bps}}}}}}}"#
    )
}

/// A deal with one version from 2026-01.
fn deal_with(
    a: AffiliateId,
    currency: &str,
    hold: u32,
    min_payout: i64,
    overrides: &str,
    plan: &str,
) -> Deal {
    Deal::from_json(&format!(
        r#"{{"affiliate": "{a}", "currency": "{currency}", "versions": [{{
            "version": 1, "effective_from": "2026-01", "hold_days": {hold},
            "clawback_days": 90, "min_payout": {min_payout}, "overrides": {overrides},
            "plan": {plan}}}]}}"#
    ))
    .expect("deal")
}

fn deal(a: AffiliateId, plan: &str) -> Deal {
    deal_with(a, "EUR", 30, 0, "[]", plan)
}

/// Brands 1..=8 deduct nothing (NGR = GGR − bonus − chargebacks); brand 9
/// has the documented fees (2.5 % payment, 10 % tax, 5 % admin).
fn formulas() -> FormulaBook {
    let mut list = Vec::new();
    for b in 1..=9u128 {
        let (pf, tax, admin) = if b == 9 { (250, 1_000, 500) } else { (0, 0, 0) };
        let version = if b == 9 { 3 } else { 1 };
        list.push(
            NgrFormula::from_json(&format!(
                r#"{{"brand": "{}", "versions": [{{"version": {version}, "effective_from": "2026-01",
                    "payment_fee_bps": {pf}, "tax_bps": {tax}, "admin_fee_bps": {admin}}}]}}"#,
                brand(b)
            ))
            .expect("formula"),
        );
    }
    FormulaBook::new(list).expect("book")
}

struct World {
    deals: DealBook,
    formulas: FormulaBook,
    fx: FxBook,
    tree: AffiliateTree,
    calendar: PeriodCalendar,
}

impl World {
    fn new(deals: Vec<Deal>) -> Self {
        Self {
            deals: DealBook::new(deals).expect("deals"),
            formulas: formulas(),
            fx: FxBook::empty(),
            tree: AffiliateTree::default(),
            calendar: PeriodCalendar::default(),
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine {
            deals: &self.deals,
            formulas: &self.formulas,
            fx: &self.fx,
            tree: &self.tree,
            calendar: &self.calendar,
        }
    }

    /// Runs over `players` against `ledger`, appends and returns the new
    /// entries.
    fn run(&self, players: &[P], ledger: &mut Vec<LedgerEntry>) -> Vec<LedgerEntry> {
        let facts: Vec<PlayerFacts> = players.iter().map(P::build).collect();
        let out = self.engine().run(&facts, ledger).expect("run");
        ledger.extend(out.entries.iter().cloned());
        out.entries
    }

    fn close(&mut self, m: &str, when: Timestamp) {
        self.calendar = self.calendar.close(month(m), when).expect("close");
    }
}

fn minor(entries: &[LedgerEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.amount.minor()).collect()
}

fn total_of(ledger: &[LedgerEntry], a: AffiliateId) -> i64 {
    ledger
        .iter()
        .filter(|e| e.affiliate == a && e.kind != EntryKind::Payout)
        .map(|e| e.amount.minor())
        .sum()
}

fn revshare_of(entries: &[LedgerEntry], a: AffiliateId) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for e in entries {
        if let Slot::RevShare {
            affiliate,
            month,
            gate: Gate::Final,
        } = &e.slot
        {
            if *affiliate == a {
                *out.entry(month.to_string()).or_default() += e.amount.minor();
            }
        }
    }
    out
}

// ---------- CPA ----------

/// docs/commissions.md, "CPA".
#[test]
fn cpa_qualifies_when_every_rule_is_met_and_names_its_events() {
    let a = aff(1);
    let w = World::new(vec![deal(a, CPA_DE_GB)]);
    let p = approved(qualifying(1, 1, "DE", a), 1, at(1, 15));
    let entries = w.run(&[p], &mut Vec::new());
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e.kind, EntryKind::Accrual);
    assert_eq!(
        e.slot,
        Slot::Cpa {
            affiliate: a,
            player: player(1),
            brand: brand(1),
            gate: Gate::Final
        }
    );
    assert_eq!(e.amount, eur(10_000));
    assert_eq!(e.reason, Reason::CpaQualified);
    assert_eq!(
        (e.activity_month, e.booked_in),
        (month("2026-01"), month("2026-01"))
    );
    assert_eq!(e.deal_version, Some(1));
    assert_eq!(e.rules_versions, vec![RULES.to_owned()]);
    let named: Vec<&str> = e.events.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(
        named,
        vec!["dep-1-1", "dep-2-1", "game-1-1", "kyc-1", "reg-1-1"]
    );
    let Some(Detail::Cpa(d)) = &e.detail else {
        panic!("cpa detail")
    };
    assert_eq!(d.qualified_at, at(1, 15));
}

#[test]
fn cpa_amount_differs_by_country_and_ineligible_countries_earn_nothing() {
    let a = aff(1);
    let w = World::new(vec![deal(a, CPA_DE_GB)]);
    let de = approved(qualifying(1, 1, "DE", a), 1, at(1, 15));
    let gb = approved(qualifying(2, 1, "GB", a), 2, at(1, 15));
    let fr = approved(qualifying(3, 1, "FR", a), 3, at(1, 15));
    let entries = w.run(&[de, gb, fr.clone()], &mut Vec::new());
    assert_eq!(minor(&entries), vec![10_000, 8_000]);
    let terms = w
        .deals
        .get(a)
        .and_then(|d| d.versions()[0].plan().cpa().cloned());
    let outcome = cpa::evaluate(&fr.build(), &terms.expect("terms"), ccy("EUR"), &w.fx);
    assert_eq!(
        outcome,
        Ok(CpaOutcome::NotQualified(Unmet::CountryNotEligible {
            country: CountryCode::parse("FR").expect("FR")
        }))
    );
}

#[test]
fn the_first_deposit_is_derived_from_the_deposits_not_from_the_brand() {
    let a = aff(1);
    let w = World::new(vec![deal(a, CPA_DE_GB)]);
    // Listed out of order: the earliest deposit (10.00) is the first one,
    // and it is below the 20.00 minimum, whatever comes after.
    let p = P::new(1, 1, "DE", at(1, 5))
        .via(a)
        .deposit("big", at(1, 7), 100_000)
        .deposit("small", at(1, 6), 1_000)
        .game("g", at(1, 8), 50_000, 0);
    let p = approved(p, 1, at(1, 9));
    assert!(w.run(std::slice::from_ref(&p), &mut Vec::new()).is_empty());
    let terms = w
        .deals
        .get(a)
        .and_then(|d| d.versions()[0].plan().cpa().cloned());
    assert_eq!(
        cpa::evaluate(&p.build(), &terms.expect("terms"), ccy("EUR"), &w.fx),
        Ok(CpaOutcome::NotQualified(Unmet::FirstDepositTooSmall {
            event: ev("small"),
            amount: eur(1_000)
        }))
    );
    let late = P::new(2, 1, "DE", at(1, 5))
        .via(a)
        .deposit("late", at(2, 5), 100_000);
    assert!(matches!(
        cpa::evaluate(
            &late.build(),
            &w.deals
                .get(a)
                .and_then(|d| d.versions()[0].plan().cpa().cloned())
                .expect("terms"),
            ccy("EUR"),
            &w.fx
        ),
        Ok(CpaOutcome::NotQualified(Unmet::FirstDepositTooLate { .. }))
    ));
}

#[test]
fn a_cpa_is_paid_once_per_player_even_with_registrations_at_several_brands() {
    let a = aff(1);
    let w = World::new(vec![deal(a, CPA_DE_GB)]);
    // Brand 1: registered 5 Jan, qualifies 15 Jan. Brand 2: registered
    // 20 Jan, qualifies 25 Jan.
    let first = approved(qualifying(1, 1, "DE", a), 1, at(1, 15));
    let second = P::new(1, 2, "DE", at(1, 20))
        .via(a)
        .deposit("b2-dep", at(1, 21), 6_000)
        .game("b2-game", at(1, 21), 15_000, 0)
        .kyc("b2-kyc", at(1, 25), KycStatus::Approved);
    let entries = w.run(&[second.clone(), first], &mut Vec::new());
    assert_eq!(entries.len(), 1);
    assert!(matches!(entries[0].slot, Slot::Cpa { brand: b, .. } if b == brand(1)));

    // If the first registration never qualifies, the second one earns it.
    let idle = P::new(1, 1, "DE", at(1, 5)).via(a);
    let entries = w.run(&[idle, second], &mut Vec::new());
    assert_eq!(entries.len(), 1);
    assert!(matches!(entries[0].slot, Slot::Cpa { brand: b, .. } if b == brand(2)));
}

#[test]
fn a_cpa_is_split_by_attribution_credit_shares() {
    let (a, b) = (aff(1), aff(2));
    let w = World::new(vec![deal(a, CPA_DE_GB), deal(b, CPA_DE_GB)]);
    let credits = [
        Credit {
            affiliate: a,
            share: Bps::share(6_000).expect("bps"),
        },
        Credit {
            affiliate: b,
            share: Bps::share(4_000).expect("bps"),
        },
    ];
    let att = Attribution::new(RULES, AttributionStatus::Final, credits).expect("attribution");
    let mut p = approved(qualifying(1, 1, "DE", a), 1, at(1, 15));
    p = p.attributed(att);
    let entries = w.run(&[p], &mut Vec::new());
    assert_eq!(minor(&entries), vec![6_000, 4_000]);
}

// ---------- KYC gate ----------

/// docs/commissions.md, "KYC gate".
#[test]
fn kyc_rejected_after_the_first_deposit_cancels_the_pending_cpa() {
    let a = aff(1);
    let w = World::new(vec![deal(a, CPA_DE_GB)]);
    let mut ledger = Vec::new();
    let p = qualifying(1, 1, "DE", a);
    let first = w.run(std::slice::from_ref(&p), &mut ledger);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].gate, Gate::AwaitingKyc);
    assert_eq!(first[0].reason, Reason::CpaAwaitingKyc);
    assert_eq!(first[0].amount, eur(10_000));
    let b = balances(&ledger, &w.calendar, at(1, 16)).expect("balances");
    assert_eq!(b[&a].pending, eur(10_000));

    let p = p.kyc("kyc-1", at(1, 20), KycStatus::Rejected);
    let second = w.run(&[p], &mut ledger);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].kind, EntryKind::Reversal);
    assert_eq!(second[0].amount, eur(-10_000));
    assert_eq!(second[0].reason, Reason::KycRejected);
    assert_eq!(second[0].references, vec![first[0].id]);
    let b = balances(&ledger, &w.calendar, at(1, 21)).expect("balances");
    assert_eq!(b[&a].earned(), Ok(eur(0)));
}

#[test]
fn kyc_approval_moves_a_pending_cpa_to_final() {
    let a = aff(1);
    let w = World::new(vec![deal(a, CPA_DE_GB)]);
    let mut ledger = Vec::new();
    let p = qualifying(1, 1, "DE", a);
    w.run(std::slice::from_ref(&p), &mut ledger);
    let second = w.run(&[approved(p, 1, at(1, 20))], &mut ledger);
    let summary: Vec<(EntryKind, Gate, i64)> = second
        .iter()
        .map(|e| (e.kind, e.gate, e.amount.minor()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (EntryKind::Accrual, Gate::Final, 10_000),
            (EntryKind::Reversal, Gate::AwaitingKyc, -10_000),
        ]
    );
    assert_eq!(second[1].reason, Reason::KycApproved);
}

#[test]
fn kyc_revoked_after_approval_claws_the_cpa_back() {
    let a = aff(1);
    let w = World::new(vec![deal(a, CPA_DE_GB)]);
    let mut ledger = Vec::new();
    let p = approved(qualifying(1, 1, "DE", a), 1, at(1, 15));
    let first = w.run(std::slice::from_ref(&p), &mut ledger);
    let p = p.kyc("kyc-2", at(6, 1), KycStatus::Revoked);
    let second = w.run(&[p], &mut ledger);
    assert_eq!(minor(&second), vec![-10_000]);
    assert_eq!(second[0].kind, EntryKind::Reversal);
    assert!(matches!(second[0].reason, Reason::KycRevoked { .. }));
    assert_eq!(second[0].references, vec![first[0].id]);
}

// ---------- responsible gaming, fraud, chargebacks ----------

#[test]
fn a_self_excluded_player_never_qualifies_for_cpa() {
    let a = aff(1);
    let w = World::new(vec![deal(a, CPA_DE_GB)]);
    let p = qualifying(1, 1, "DE", a).flag("rg-1", at(1, 8), Flag::SelfExclusion);
    let p = approved(p, 1, at(1, 15));
    assert!(w.run(std::slice::from_ref(&p), &mut Vec::new()).is_empty());
    let terms = w
        .deals
        .get(a)
        .and_then(|d| d.versions()[0].plan().cpa().cloned());
    assert_eq!(
        cpa::evaluate(&p.build(), &terms.expect("terms"), ccy("EUR"), &w.fx),
        Ok(CpaOutcome::NotQualified(Unmet::Flagged {
            flag: Flag::SelfExclusion,
            event: ev("rg-1")
        }))
    );
}

#[test]
fn a_self_exclusion_inside_the_clawback_window_reverses_the_cpa_and_outside_it_does_not() {
    let a = aff(1);
    let w = World::new(vec![deal(a, CPA_DE_GB)]);
    let p = approved(qualifying(1, 1, "DE", a), 1, at(1, 15));
    let mut ledger = Vec::new();
    let first = w.run(std::slice::from_ref(&p), &mut ledger);
    // 45 days after qualification, inside the 90-day window.
    let inside = p.clone().flag("rg-1", at(3, 1), Flag::SelfExclusion);
    let claw = w.run(&[inside], &mut ledger);
    assert_eq!(minor(&claw), vec![-10_000]);
    assert_eq!(
        claw[0].slot,
        Slot::CpaClawback {
            affiliate: a,
            player: player(1),
            brand: brand(1)
        }
    );
    assert_eq!(claw[0].kind, EntryKind::Reversal);
    assert_eq!(claw[0].references, vec![first[0].id]);
    assert!(
        matches!(&claw[0].reason, Reason::SelfExclusion { event } if event.event == ev("rg-1"))
    );
    assert_eq!(claw[0].activity_month, month("2026-03"));

    // 106 days after: outside the window, nothing happens.
    let outside = p.flag("rg-1", at(5, 1), Flag::SelfExclusion);
    assert!(w.run(&[outside], &mut first.clone()).is_empty());
}

#[test]
fn a_chargeback_inside_the_window_and_confirmed_fraud_claw_back() {
    let a = aff(1);
    let w = World::new(vec![deal(a, CPA_DE_GB)]);
    let p = approved(qualifying(1, 1, "DE", a), 1, at(1, 15));
    let mut ledger = Vec::new();
    w.run(std::slice::from_ref(&p), &mut ledger);
    let cb = w.run(
        &[p.clone().chargeback("cb-1", at(2, 1), 2_000)],
        &mut ledger.clone(),
    );
    assert!(matches!(cb[0].reason, Reason::Chargeback { .. }));
    assert_eq!(minor(&cb), vec![-10_000]);
    let fraud = w.run(&[p.fraud("fraud-1", at(12, 1))], &mut ledger);
    assert!(matches!(fraud[0].reason, Reason::FraudConfirmed { .. }));
    assert_eq!(minor(&fraud), vec![-10_000]);
}

// ---------- replays ----------

#[test]
fn a_replayed_event_does_not_double_count_and_a_replayed_run_appends_nothing() {
    let a = aff(1);
    let w = World::new(vec![deal(a, CPA_DE_GB), deal(aff(2), &flat(2_500, true))]);
    // 30.00 deposited once, sent twice: cumulative deposits stay below 50.00.
    let p = P::new(1, 1, "DE", at(1, 5))
        .via(a)
        .deposit("dep-1", at(1, 6), 3_000)
        .deposit("dep-1", at(1, 6), 3_000)
        .game("g-1", at(1, 7), 20_000, 0);
    let p = approved(p, 1, at(1, 8));
    assert!(w.run(&[p], &mut Vec::new()).is_empty());

    // RevShare: a game event sent twice counts once (NGR 100.00 → 25.00).
    let q = P::new(2, 1, "DE", at(1, 5))
        .via(aff(2))
        .game("g-2", at(1, 7), 10_000, 0)
        .game("g-2", at(1, 7), 10_000, 0);
    let q = approved(q, 2, at(1, 8));
    let mut ledger = Vec::new();
    let first = w.run(std::slice::from_ref(&q), &mut ledger);
    assert_eq!(minor(&first), vec![2_500]);
    // The same inputs give the same entries (same ids: storage dedupes)…
    assert_eq!(w.run(std::slice::from_ref(&q), &mut Vec::new()), first);
    // …and against the ledger that already has them, nothing new.
    assert!(w.run(&[q], &mut ledger).is_empty());
}

// ---------- RevShare ----------

/// docs/commissions.md, "NGR line items" and "RevShare, flat".
#[test]
fn revshare_flat_applies_to_ngr_built_from_line_items() {
    let a = aff(1);
    let w = World::new(vec![deal(a, &flat(3_000, true))]);
    let p = P::new(1, 9, "DE", at(1, 1))
        .via(a)
        .deposit("dep-1", at(1, 2), 50_000)
        .game("game-1", at(1, 3), 200_000, 170_000)
        .bonus("bonus-1", at(1, 4), 2_000)
        .chargeback("cb-1", at(1, 5), 1_000);
    let p = approved(p, 1, at(1, 2));
    let facts = vec![p.build()];
    let out = w.engine().run(&facts, &[]).expect("run");
    assert_eq!(out.statements.len(), 1);
    let st = &out.statements[0];
    let lines: Vec<(LineKind, i64)> = st
        .lines
        .iter()
        .map(|l| (l.kind, l.amount.minor()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (LineKind::Stakes, 200_000),
            (LineKind::Wins, -170_000),
            (LineKind::BonusCost, -2_000),
            (LineKind::Chargebacks, -1_000),
            (LineKind::PaymentFee, -1_250),
            (LineKind::TaxLevy, -3_000),
            (LineKind::AdminFee, -1_138),
        ]
    );
    assert_eq!(st.ngr, eur(21_612));
    assert_eq!(out.entries.len(), 1);
    let e = &out.entries[0];
    // 216.12 × 30 % = 64.836 → 64.84
    assert_eq!(e.amount, eur(6_484));
    assert_eq!(e.statements, vec![st.id]);
    assert_eq!(e.formula_versions.len(), 1);
    assert_eq!(e.formula_versions[0].version, 3);
}

/// docs/commissions.md, "Tiered vs ladder".
#[test]
fn ladder_and_tiered_pay_differently_on_the_same_base() {
    let table = r#"[{"from": 0, "rate_bps": 2000}, {"from": 500000, "rate_bps": 3000}, {"from": 1000000, "rate_bps": 4000}]"#;
    let tiered = format!(
        r#"{{"type": "revshare", "revshare": {{"negative_carryover": true,
            "schedule": {{"type": "tiered", "basis": "ngr", "tiers": {table}}}}}}}"#
    );
    let ladder = format!(
        r#"{{"type": "revshare", "revshare": {{"negative_carryover": true,
            "schedule": {{"type": "ladder", "bands": {table}}}}}}}"#
    );
    let (t, l) = (aff(1), aff(2));
    let w = World::new(vec![deal(t, &tiered), deal(l, &ladder)]);
    // NGR 12 000.00 each (stakes 20 000.00, wins 8 000.00).
    let pt = approved(
        P::new(1, 1, "DE", at(1, 1))
            .via(t)
            .game("g1", at(1, 2), 2_000_000, 800_000),
        1,
        at(1, 2),
    );
    let pl = approved(
        P::new(2, 1, "DE", at(1, 1))
            .via(l)
            .game("g2", at(1, 2), 2_000_000, 800_000),
        2,
        at(1, 2),
    );
    let entries = w.run(&[pt, pl], &mut Vec::new());
    assert_eq!(total_of(&entries, t), 480_000);
    assert_eq!(total_of(&entries, l), 330_000);
    let ladder_entry = entries.iter().find(|e| e.affiliate == l).expect("ladder");
    let Some(Detail::RevShare(mc)) = &ladder_entry.detail else {
        panic!("revshare detail")
    };
    let bands: Vec<(i64, i64)> = mc
        .schedule
        .lines
        .iter()
        .map(|b| (b.portion.minor(), b.amount.minor()))
        .collect();
    assert_eq!(
        bands,
        vec![(500_000, 100_000), (500_000, 150_000), (200_000, 80_000)]
    );
}

#[test]
fn a_tier_boundary_hit_exactly_pays_the_higher_tier_for_the_whole_base() {
    let plan = r#"{"type": "revshare", "revshare": {"negative_carryover": true,
        "schedule": {"type": "tiered", "basis": "ngr",
                     "tiers": [{"from": 0, "rate_bps": 2500}, {"from": 1000000, "rate_bps": 3500}]}}}"#;
    let a = aff(1);
    let w = World::new(vec![deal(a, plan)]);
    // NGR exactly 10 000.00 → tier 2: 3 500.00. One cent less → 2 500.00.
    let exact = approved(
        P::new(1, 1, "DE", at(1, 1))
            .via(a)
            .game("g", at(1, 2), 1_000_000, 0),
        1,
        at(1, 2),
    );
    assert_eq!(minor(&w.run(&[exact], &mut Vec::new())), vec![350_000]);
    let below = approved(
        P::new(1, 1, "DE", at(1, 1))
            .via(a)
            .game("g", at(1, 2), 999_999, 0),
        1,
        at(1, 2),
    );
    // 9 999.99 × 25 % = 2 499.9975 → 2 500.00
    assert_eq!(minor(&w.run(&[below], &mut Vec::new())), vec![250_000]);
}

fn carryover_player(a: AffiliateId, b: u128) -> P {
    let p = P::new(1, b, "DE", at(1, 1))
        .via(a)
        .game("jan", at(1, 10), 10_000, 40_000) // −300.00
        .game("feb", at(2, 10), 50_000, 0) // +500.00
        .game("mar", at(3, 10), 10_000, 0); // +100.00
    approved(p, 1, at(1, 2))
}

/// docs/commissions.md, "Negative carryover vs NNCO".
#[test]
fn negative_carryover_offsets_later_months_and_nnco_forgets_losses() {
    let (c, n) = (aff(1), aff(2));
    let w = World::new(vec![
        deal(c, &flat(2_500, true)),
        deal(n, &flat(2_500, false)),
    ]);
    let with = w.run(&[carryover_player(c, 1)], &mut Vec::new());
    assert_eq!(
        revshare_of(&with, c),
        BTreeMap::from([("2026-02".to_owned(), 5_000), ("2026-03".to_owned(), 2_500)])
    );
    let feb = with
        .iter()
        .find(|e| e.activity_month == month("2026-02"))
        .expect("feb");
    let Some(Detail::RevShare(mc)) = &feb.detail else {
        panic!("detail")
    };
    let b = &mc.brands[0];
    assert_eq!(
        (
            b.ngr.minor(),
            b.carry_in.minor(),
            b.base.minor(),
            b.carry_out.minor()
        ),
        (50_000, -30_000, 20_000, 0)
    );

    let without = w.run(&[carryover_player(n, 1)], &mut Vec::new());
    assert_eq!(
        revshare_of(&without, n),
        BTreeMap::from([
            ("2026-02".to_owned(), 12_500),
            ("2026-03".to_owned(), 2_500)
        ])
    );
}

#[test]
fn negative_carryover_is_scoped_per_brand() {
    let a = aff(1);
    let w = World::new(vec![deal(a, &flat(2_500, true))]);
    let other = approved(
        P::new(2, 2, "DE", at(1, 1))
            .via(a)
            .game("b2-jan", at(1, 10), 40_000, 0),
        2,
        at(1, 2),
    );
    let entries = w.run(&[carryover_player(a, 1), other], &mut Vec::new());
    // January: brand 1 −300.00 carries, brand 2 +400.00 is not offset.
    assert_eq!(
        revshare_of(&entries, a),
        BTreeMap::from([
            ("2026-01".to_owned(), 10_000),
            ("2026-02".to_owned(), 5_000),
            ("2026-03".to_owned(), 2_500)
        ])
    );
}

#[test]
fn ftd_tiers_count_the_months_first_depositors() {
    let plan = r#"{"type": "revshare", "revshare": {"negative_carryover": false,
        "schedule": {"type": "tiered", "basis": "ftd",
                     "tiers": [{"from": 0, "rate_bps": 2000}, {"from": 2, "rate_bps": 3000}]}}}"#;
    let a = aff(1);
    let w = World::new(vec![deal(a, plan)]);
    let p = |n: u128| {
        approved(
            P::new(n, 1, "DE", at(1, 1))
                .via(a)
                .deposit(&format!("d{n}"), at(1, 3), 1_000)
                .game(&format!("g{n}"), at(1, 3), 10_000, 0),
            n,
            at(1, 2),
        )
    };
    // One FTD: 200.00 × 20 %; two FTDs (tier boundary hit exactly): × 30 %.
    assert_eq!(minor(&w.run(&[p(1)], &mut Vec::new())), vec![2_000]);
    assert_eq!(minor(&w.run(&[p(1), p(2)], &mut Vec::new())), vec![6_000]);
}

#[test]
fn players_awaiting_kyc_accrue_pending_revshare_and_fraud_claws_revshare_back() {
    let a = aff(1);
    let w = World::new(vec![deal(a, &flat(2_500, true))]);
    let mut ledger = Vec::new();
    let p1 = approved(
        P::new(1, 1, "DE", at(1, 1))
            .via(a)
            .game("g1", at(1, 3), 40_000, 0),
        1,
        at(1, 2),
    );
    let p2 = P::new(2, 1, "DE", at(1, 1))
        .via(a)
        .game("g2", at(1, 3), 20_000, 0);
    let first = w.run(&[p1.clone(), p2.clone()], &mut ledger);
    let summary: Vec<(Gate, i64)> = first.iter().map(|e| (e.gate, e.amount.minor())).collect();
    assert_eq!(
        summary,
        vec![(Gate::Final, 10_000), (Gate::AwaitingKyc, 5_000)]
    );

    let p1 = p1.fraud("fraud-1", at(2, 20));
    let second = w.run(&[p1, p2], &mut ledger);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].kind, EntryKind::Reversal);
    assert_eq!(second[0].amount, eur(-10_000));
    assert_eq!(second[0].reason, Reason::PlayersVoided);
    assert!(second[0].references.contains(&first[0].id));
    let Some(Detail::Difference(d)) = &second[0].detail else {
        panic!("difference")
    };
    assert_eq!(d.players.len(), 1);
    assert!(matches!(d.players[0].reason, Reason::FraudConfirmed { .. }));
}

// ---------- Hybrid ----------

/// docs/commissions.md, "Hybrid".
#[test]
fn hybrid_pays_the_cpa_and_the_revshare() {
    let a = aff(1);
    let plan = r#"{"type": "hybrid",
        "cpa": {"amounts": {"DE": 5000}, "min_first_deposit": 2000, "first_deposit_within_days": 30,
                "min_total_deposits": 2000, "min_wagering": 10000},
        "revshare": {"negative_carryover": true, "schedule": {"type": "flat", "rate_bps": 2000}}}"#;
    let w = World::new(vec![deal(a, plan)]);
    let p = P::new(1, 1, "DE", at(1, 5))
        .via(a)
        .deposit("dep-1", at(1, 6), 10_000)
        .kyc("kyc-1", at(1, 6), KycStatus::Approved)
        .game("game-1", at(1, 20), 50_000, 30_000);
    let entries = w.run(&[p], &mut Vec::new());
    let summary: Vec<(&str, i64)> = entries
        .iter()
        .map(|e| match e.slot {
            Slot::Cpa { .. } => ("cpa", e.amount.minor()),
            _ => ("revshare", e.amount.minor()),
        })
        .collect();
    assert_eq!(summary, vec![("cpa", 5_000), ("revshare", 4_000)]);
    assert_eq!(total_of(&entries, a), 9_000);
}

// ---------- sub-affiliates ----------

/// docs/commissions.md, "Sub-affiliate override".
#[test]
fn a_sub_affiliate_chain_pays_overrides_on_two_levels_and_refuses_self_referral() {
    let (top, mid, sub) = (aff(1), aff(2), aff(3));
    let mut w = World::new(vec![
        deal_with(top, "EUR", 30, 0, "[2000, 500]", &flat(2_500, true)),
        deal_with(mid, "EUR", 30, 0, "[1000]", &flat(2_500, true)),
        deal(sub, CPA_DE_GB),
    ]);
    w.tree = AffiliateTree::new([
        Link {
            child: sub,
            parent: mid,
        },
        Link {
            child: mid,
            parent: top,
        },
    ])
    .expect("tree");
    let p = approved(qualifying(1, 1, "DE", sub), 1, at(1, 15));
    let mut ledger = Vec::new();
    let entries = w.run(std::slice::from_ref(&p), &mut ledger);
    let by: BTreeMap<AffiliateId, i64> = [top, mid, sub]
        .into_iter()
        .map(|a| (a, total_of(&entries, a)))
        .collect();
    // sub 100.00; mid (level 1, 10 %) 10.00; top (level 2, 5 %) 5.00 — top's
    // 20 % level-1 rate does not apply: mid's override is not commission.
    assert_eq!(
        by,
        BTreeMap::from([(top, 500), (mid, 1_000), (sub, 10_000)])
    );
    let top_entry = entries.iter().find(|e| e.affiliate == top).expect("top");
    assert!(matches!(&top_entry.slot, Slot::Override { level: 2, .. }));
    let sub_entry = entries.iter().find(|e| e.affiliate == sub).expect("sub");
    assert_eq!(top_entry.references, vec![sub_entry.id]);

    // The sub-affiliate's CPA clawed back: the overrides are reversed too.
    let p = p.flag("rg-1", at(2, 1), Flag::SelfExclusion);
    let claw = w.run(&[p], &mut ledger);
    assert_eq!(minor(&claw), vec![-500, -1_000, -10_000]);
    assert!(claw.iter().all(|e| e.kind == EntryKind::Reversal));

    assert_eq!(
        AffiliateTree::new([Link {
            child: sub,
            parent: sub
        }]),
        Err(TreeError::SelfReferral(sub))
    );
    assert!(matches!(
        AffiliateTree::new([
            Link {
                child: sub,
                parent: mid
            },
            Link {
                child: mid,
                parent: sub
            }
        ]),
        Err(TreeError::Cycle(_))
    ));
}

#[test]
fn an_override_clawback_cancels_the_override_even_after_the_parents_rate_changed() {
    let (parent, child) = (aff(1), aff(2));
    // The parent's override rate is 10 % in January and 5 % from March.
    let parent_deal = Deal::from_json(&format!(
        r#"{{"affiliate": "{parent}", "currency": "EUR", "versions": [
            {{"version": 1, "effective_from": "2026-01", "hold_days": 30, "clawback_days": 90,
              "min_payout": 0, "overrides": [1000], "plan": {plan}}},
            {{"version": 2, "effective_from": "2026-03", "hold_days": 30, "clawback_days": 90,
              "min_payout": 0, "overrides": [500], "plan": {plan}}}]}}"#,
        plan = flat(2_500, true)
    ))
    .expect("deal");
    let mut w = World::new(vec![parent_deal, deal(child, CPA_DE_GB)]);
    w.tree = AffiliateTree::new([Link { child, parent }]).expect("tree");
    let mut ledger = Vec::new();
    let p = approved(qualifying(1, 1, "DE", child), 1, at(1, 15));
    w.run(std::slice::from_ref(&p), &mut ledger);
    // Self-exclusion on 5 March, inside the window, under the parent's v2.
    let claw = w.run(
        &[p.flag("rg-1", at(3, 5), Flag::SelfExclusion)],
        &mut ledger,
    );
    assert_eq!(minor(&claw), vec![-1_000, -10_000]);
    assert_eq!(total_of(&ledger, parent), 0);
    assert_eq!(total_of(&ledger, child), 0);
}

#[test]
fn a_run_that_leaves_out_a_player_with_a_cpa_holds_that_cpa_instead_of_reversing_it() {
    let a = aff(1);
    let w = World::new(vec![deal(a, CPA_DE_GB)]);
    let mut ledger = Vec::new();
    w.run(
        &[approved(qualifying(1, 1, "DE", a), 1, at(1, 15))],
        &mut ledger,
    );
    let other = vec![approved(qualifying(2, 1, "DE", a), 2, at(1, 15)).build()];
    let out = w.engine().run(&other, &ledger).expect("run");
    assert!(
        out.entries
            .iter()
            .all(|e| e.slot.player() == Some(player(2))),
        "player 1's CPA is not touched: {:?}",
        out.entries
    );
    let accrued: i64 = out.entries.iter().map(|e| e.amount.minor()).sum();
    assert_eq!(accrued, 10_000, "player 2's CPA accrues");
    assert_eq!(out.problems.len(), 1);
    assert_eq!(out.problems[0].player, Some(player(1)));
    assert_eq!(out.problems[0].held, super::Held::Cpa);
}

// ---------- FX ----------

/// docs/commissions.md, "FX".
#[test]
fn fx_conversion_is_recorded_with_its_table_version() {
    let a = aff(1);
    let mut w = World::new(vec![deal(a, &flat(2_500, true))]);
    w.fx = FxBook::new([(
        month("2026-01"),
        FxTable::new(7).with_rate(
            ccy("USD"),
            ccy("EUR"),
            Rate {
                numerator: 92,
                denominator: 100,
            },
        ),
    )]);
    let p =
        P::new(1, 1, "US", at(1, 1))
            .currency("USD")
            .via(a)
            .game("g", at(1, 3), 200_000, 100_000);
    let p = approved(p, 1, at(1, 2));
    let entries = w.run(&[p], &mut Vec::new());
    assert_eq!(minor(&entries), vec![23_000]);
    assert_eq!(entries[0].fx_versions, vec![7]);
    let Some(Detail::RevShare(mc)) = &entries[0].detail else {
        panic!("detail")
    };
    let c = &mc.brands[0].conversions[0];
    assert_eq!((c.from.minor(), c.from.currency()), (100_000, ccy("USD")));
    assert_eq!((c.to, c.fx_version), (eur(92_000), 7));

    // CPA thresholds convert too: 20.00 USD = 18.40 EUR < 20.00 EUR.
    let small = P::new(2, 1, "DE", at(1, 1))
        .currency("USD")
        .via(a)
        .deposit("d", at(1, 2), 2_000);
    let terms = deal(a, CPA_DE_GB).versions()[0]
        .plan()
        .cpa()
        .cloned()
        .expect("terms");
    assert_eq!(
        cpa::evaluate(&small.build(), &terms, ccy("EUR"), &w.fx),
        Ok(CpaOutcome::NotQualified(Unmet::FirstDepositTooSmall {
            event: ev("d"),
            amount: eur(1_840)
        }))
    );
    // Without a table for the month, the run holds rather than guesses.
    w.fx = FxBook::empty();
    let facts = vec![approved(
        P::new(1, 1, "US", at(1, 1))
            .currency("USD")
            .via(a)
            .game("g", at(1, 3), 1, 0),
        1,
        at(1, 2),
    )
    .build()];
    let out = w
        .engine()
        .run(&facts, &[])
        .expect("a missing table is a problem, not a failure");
    assert!(out.entries.is_empty(), "{:?}", out.entries);
    assert!(!out.problems.is_empty());
    assert!(
        out.problems
            .iter()
            .all(|p| p.kind == super::ProblemKind::NoFxTable),
        "{:?}",
        out.problems
    );
}

// ---------- periods, payouts, clawback after payout ----------

fn run_payout(
    w: &World,
    ledger: &mut Vec<LedgerEntry>,
    a: AffiliateId,
    min: i64,
    n: u128,
    when: Timestamp,
) -> PayoutDecision {
    let d = payout(
        ledger,
        &w.calendar,
        a,
        eur(min),
        PayoutRun {
            id: Uuid::from_u128(n),
            at: when,
        },
    )
    .expect("payout");
    if let PayoutDecision::Pay(e) = &d {
        ledger.push(e.as_ref().clone());
    }
    d
}

/// docs/commissions.md, "Hold and minimum payout rollover".
#[test]
fn commissions_are_held_after_close_and_small_balances_roll_over() {
    let a = aff(1);
    let plan = r#"{"type": "cpa", "cpa": {"amounts": {"DE": 6000}, "min_first_deposit": 0,
        "first_deposit_within_days": 30, "min_total_deposits": 0, "min_wagering": 0}}"#;
    let mut w = World::new(vec![deal_with(a, "EUR", 30, 10_000, "[]", plan)]);
    let mut ledger = Vec::new();
    let jan = approved(
        P::new(1, 1, "DE", at(1, 5))
            .via(a)
            .deposit("d1", at(1, 6), 1_000),
        1,
        at(1, 7),
    );
    w.run(std::slice::from_ref(&jan), &mut ledger);
    let state = |w: &World, ledger: &[LedgerEntry], when| {
        let b = balances(ledger, &w.calendar, when).expect("balances")[&a];
        (
            b.pending.minor(),
            b.approved.minor(),
            b.payable.minor(),
            b.paid.minor(),
        )
    };
    assert_eq!(state(&w, &ledger, at(1, 20)), (6_000, 0, 0, 0));
    w.close("2026-01", month("2026-01").end());
    assert_eq!(state(&w, &ledger, at(2, 10)), (0, 6_000, 0, 0));
    // Closed 1 Feb 00:00, hold 30 days: payable from 3 Mar 00:00.
    assert_eq!(
        super::state_of(
            &ledger[0],
            &w.calendar,
            Timestamp::utc(2026, 3, 2, 23, 59).expect("t")
        ),
        EntryState::Approved
    );
    assert_eq!(state(&w, &ledger, at(3, 5)), (0, 0, 6_000, 0));
    // 60.00 < 100.00 minimum: nothing paid, it rolls over.
    assert_eq!(
        run_payout(&w, &mut ledger, a, 10_000, 1, at(3, 5)),
        PayoutDecision::RollOver {
            payable: eur(6_000),
            min_payout: eur(10_000)
        }
    );

    let feb = approved(
        P::new(2, 1, "DE", at(2, 5))
            .via(a)
            .deposit("d2", at(2, 6), 1_000),
        2,
        at(2, 10),
    );
    let feb_entries = w.run(&[jan, feb], &mut ledger);
    assert_eq!(feb_entries[0].booked_in, month("2026-02"));
    w.close("2026-02", month("2026-02").end());
    // February closed 1 Mar 00:00: payable from 31 Mar 00:00.
    assert_eq!(state(&w, &ledger, at(3, 15)), (0, 6_000, 6_000, 0));
    let PayoutDecision::Pay(paid) = run_payout(&w, &mut ledger, a, 10_000, 2, at(4, 1)) else {
        panic!("should pay")
    };
    assert_eq!(paid.amount, eur(12_000));
    assert_eq!(paid.references.len(), 2);
    assert_eq!(state(&w, &ledger, at(4, 1)), (0, 0, 0, 12_000));
    // Replaying the same payout run gives the same entry id.
    assert_eq!(
        paid.id,
        Slot::Payout {
            affiliate: a,
            run: Uuid::from_u128(2)
        }
        .entry_id(0)
    );
}

/// docs/commissions.md, "Clawback after payout".
#[test]
fn a_clawback_after_payout_leaves_a_negative_balance_netted_against_later_commission() {
    let a = aff(1);
    let mut w = World::new(vec![deal_with(a, "EUR", 30, 5_000, "[]", CPA_DE_GB)]);
    let mut ledger = Vec::new();
    let p1 = approved(qualifying(1, 1, "DE", a), 1, at(1, 15));
    w.run(std::slice::from_ref(&p1), &mut ledger);
    w.close("2026-01", month("2026-01").end());
    w.close("2026-02", month("2026-02").end());
    let PayoutDecision::Pay(paid) = run_payout(&w, &mut ledger, a, 5_000, 1, at(3, 5)) else {
        panic!("should pay")
    };
    assert_eq!(paid.amount, eur(10_000));

    // Fraud confirmed on 10 March: a reversal booked in March.
    let p1 = p1.fraud("fraud-1", at(3, 10));
    let claw = w.run(std::slice::from_ref(&p1), &mut ledger);
    assert_eq!(minor(&claw), vec![-10_000]);
    assert_eq!(claw[0].booked_in, month("2026-03"));
    let b = balances(&ledger, &w.calendar, at(3, 20)).expect("balances")[&a];
    assert_eq!(
        (b.pending, b.payable, b.paid),
        (eur(-10_000), eur(0), eur(10_000))
    );

    w.close("2026-03", month("2026-03").end());
    let b = balances(&ledger, &w.calendar, at(5, 2)).expect("balances")[&a];
    assert_eq!((b.payable, b.paid), (eur(-10_000), eur(10_000)));
    assert!(matches!(
        run_payout(&w, &mut ledger, a, 5_000, 2, at(5, 2)),
        PayoutDecision::RollOver { .. }
    ));

    // A new 100.00 CPA in April only brings the balance back to zero.
    let p2 = approved(qualifying_in(4, 2, 1, "DE", a), 2, at(4, 15));
    w.run(&[p1, p2], &mut ledger);
    w.close("2026-04", month("2026-04").end());
    let b = balances(&ledger, &w.calendar, at(6, 1)).expect("balances")[&a];
    assert_eq!((b.payable, b.paid), (eur(0), eur(10_000)));
}

#[test]
fn a_late_event_for_a_closed_month_is_an_adjustment_booked_in_the_open_period() {
    let a = aff(1);
    let mut w = World::new(vec![deal(a, &flat(2_500, true))]);
    let mut ledger = Vec::new();
    let p = approved(
        P::new(1, 1, "DE", at(1, 1))
            .via(a)
            .game("g1", at(1, 3), 10_000, 0),
        1,
        at(1, 2),
    );
    let first = w.run(std::slice::from_ref(&p), &mut ledger);
    w.close("2026-01", month("2026-01").end());
    let late = w.run(&[p.game("g2", at(1, 28), 10_000, 0)], &mut ledger);
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].kind, EntryKind::Adjustment);
    assert_eq!(late[0].amount, eur(2_500));
    assert_eq!(late[0].slot_total, eur(5_000));
    assert_eq!(
        (late[0].activity_month, late[0].booked_in),
        (month("2026-01"), month("2026-02"))
    );
    assert_eq!(late[0].references, vec![first[0].id]);
}

#[test]
fn a_withdrawn_attribution_reverses_what_was_accrued() {
    let a = aff(1);
    let w = World::new(vec![deal(a, CPA_DE_GB)]);
    let mut ledger = Vec::new();
    let p = approved(qualifying(1, 1, "DE", a), 1, at(1, 15));
    let first = w.run(std::slice::from_ref(&p), &mut ledger);
    let mut withdrawn = p;
    withdrawn.attribution = None;
    let out = w.run(&[withdrawn], &mut ledger);
    assert_eq!(minor(&out), vec![-10_000]);
    assert_eq!(out[0].kind, EntryKind::Reversal);
    assert_eq!(out[0].reason, Reason::NoLongerEarned);
    assert_eq!(out[0].references, vec![first[0].id]);
}

// ---------- properties ----------

/// A compact random player: (player, brand, affiliate, country, registration
/// day, events as (kind, day offset, amount)).
type Spec = (u8, u8, u8, bool, u8, Vec<(u8, u8, u32)>);

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u8..5,
        0u8..2,
        0u8..3,
        any::<bool>(),
        1u8..28,
        prop::collection::vec((0u8..16, 0u8..100, 1_000u32..60_000), 2..14),
    )
}

fn property_world() -> World {
    let ladder = r#"{"type": "hybrid",
        "cpa": {"amounts": {"DE": 10000}, "default_amount": 5000, "min_first_deposit": 2000,
                "first_deposit_within_days": 30, "min_total_deposits": 5000, "min_wagering": 10000},
        "revshare": {"negative_carryover": true, "schedule": {"type": "ladder",
                "bands": [{"from": 0, "rate_bps": 2500}, {"from": 50000, "rate_bps": 3500}]}}}"#;
    let tiered = r#"{"type": "revshare", "revshare": {"negative_carryover": false,
        "schedule": {"type": "tiered", "basis": "ftd",
                     "tiers": [{"from": 0, "rate_bps": 2000}, {"from": 2, "rate_bps": 3000}]}}}"#;
    let mut w = World::new(vec![
        deal_with(aff(0), "EUR", 30, 0, "[1000, 500]", ladder),
        deal_with(aff(1), "EUR", 30, 0, "[1000]", tiered),
        deal(aff(2), CPA_DE_GB),
    ]);
    w.tree = AffiliateTree::new([
        Link {
            child: aff(2),
            parent: aff(1),
        },
        Link {
            child: aff(1),
            parent: aff(0),
        },
    ])
    .expect("tree");
    w
}

/// Builds unique (player, brand) facts; each event gets an arrival batch.
fn build(specs: &[Spec]) -> Vec<(P, Vec<u8>)> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (pl, b, a, de, day, events) in specs {
        if !seen.insert((*pl, *b)) {
            continue;
        }
        let n = u128::from(*pl);
        let reg = at(1, *day);
        let mut p = P::new(n, u128::from(*b) + 1, if *de { "DE" } else { "GB" }, reg)
            .via(aff(u128::from(*a)));
        let mut batches = Vec::new();
        for (i, (kind, offset, amount)) in events.iter().enumerate() {
            let when = reg.plus_days(u32::from(*offset));
            let id = format!("e{pl}-{b}-{i}");
            let amount = i64::from(*amount);
            p = match kind {
                0..=2 => p.deposit(&id, when, amount),
                3..=5 => p.game(&id, when, amount, amount * 3 / 4),
                6 => p.game(&id, when, amount / 2, amount),
                7 => p.bonus(&id, when, amount / 10),
                8 => p.chargeback(&id, when, amount / 5),
                9..=11 => p.kyc(&id, when, KycStatus::Approved),
                12 => p.kyc(&id, when, KycStatus::Rejected),
                13 => p.kyc(&id, when, KycStatus::Revoked),
                14 => p.flag(&id, when, Flag::SelfExclusion),
                _ => p.fraud(&id, when),
            };
            batches.push((amount % 3) as u8);
        }
        out.push((p, batches));
    }
    out
}

fn slot_totals(ledger: &[LedgerEntry]) -> BTreeMap<Slot, i64> {
    let mut m = BTreeMap::new();
    for e in ledger {
        *m.entry(e.slot.clone()).or_insert(0) += e.amount.minor();
    }
    m.retain(|_, v| *v != 0);
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_entries_do_not_depend_on_the_order_of_players_or_events(
        specs in prop::collection::vec(spec(), 1..8),
        seed in any::<u64>(),
    ) {
        let w = property_world();
        let players: Vec<P> = build(&specs).into_iter().map(|(p, _)| p).collect();
        let forward: Vec<PlayerFacts> = players.iter().map(P::build).collect();
        // A deterministic shuffle of players and of each player's events.
        let mut shuffled = players.clone();
        let mut s = seed;
        let mut next = || { s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1); s >> 33 };
        for i in (1..shuffled.len()).rev() {
            let j = (next() as usize) % (i + 1);
            shuffled.swap(i, j);
        }
        for p in &mut shuffled {
            for i in (1..p.events.len()).rev() {
                let j = (next() as usize) % (i + 1);
                p.events.swap(i, j);
            }
        }
        let backward: Vec<PlayerFacts> = shuffled.iter().map(P::build).collect();
        let a = w.engine().run(&forward, &[]).expect("run");
        let b = w.engine().run(&backward, &[]).expect("run");
        prop_assert_eq!(a, b);
    }

    #[test]
    fn ledger_totals_do_not_depend_on_the_order_in_which_events_arrive(
        specs in prop::collection::vec(spec(), 1..8),
        order in Just(vec![0u8, 1, 2]).prop_shuffle(),
    ) {
        let w = property_world();
        let built = build(&specs);
        let all: Vec<P> = built.iter().map(|(p, _)| p.clone()).collect();
        let once = w.run(&all, &mut Vec::new());

        // Events arrive in three batches, in a random batch order; the
        // engine runs after each batch against the growing ledger.
        let mut ledger = Vec::new();
        for k in 1..=order.len() {
            let arrived = &order[..k];
            let partial: Vec<P> = built
                .iter()
                .map(|(p, batches)| {
                    let mut q = p.clone();
                    q.events = p
                        .events
                        .iter()
                        .zip(batches)
                        .filter(|(_, b)| arrived.contains(b))
                        .map(|(e, _)| e.clone())
                        .collect();
                    q
                })
                .collect();
            w.run(&partial, &mut ledger);
        }
        prop_assert_eq!(slot_totals(&ledger), slot_totals(&once));
        for a in 0..3 {
            prop_assert_eq!(total_of(&ledger, aff(a)), total_of(&once, aff(a)));
        }
        // Balances always add up to what was earned.
        let b = balances(&ledger, &w.calendar, at(12, 31)).expect("balances");
        for (affiliate, bal) in b {
            prop_assert_eq!(bal.earned().expect("sum").minor(), total_of(&ledger, affiliate));
        }
    }
}
