//! Property test of the commission job's pure part (stored rows → facts →
//! engine) on random event streams with injected faults: an event in a
//! foreign currency, activity in a month without an NGR formula, stakes
//! that overflow the arithmetic, a player held by fraud review, and
//! registrations reporting several touchpoints (0 bps credits included).
//!
//! Properties: a run never fails as a whole, every faulty player is
//! reported (a problem, or held), and the ledger of everyone the faults do
//! not touch equals the ledger computed from the same stream without the
//! faults.

use std::collections::BTreeSet;

use proptest::prelude::*;
use uuid::Uuid;

use clickstitch_aggregator::commission::{
    AffiliateTree, Deal, DealBook, Engine, FormulaBook, FxBook, LedgerEntry, NgrFormula,
    PeriodCalendar, Slot, Timestamp,
};
use clickstitch_aggregator::services::commission::job::player_facts;
use clickstitch_aggregator::services::fraud::quarantine::{CommissionHold, CommissionHolds};
use clickstitch_aggregator::store::ledger::FactEventRow;
use clickstitch_aggregator::store::rows::AttributionRow;

const BRAND: Uuid = Uuid::from_u128(0xb1);
const A1: Uuid = Uuid::from_u128(0xa1);
const A2: Uuid = Uuid::from_u128(0xa2);
/// The only affiliate faulty players are credited to (with a 0 bps share
/// to `A1` sometimes, which earns nothing).
const B: Uuid = Uuid::from_u128(0xbb);

#[derive(Debug, Clone, Copy)]
enum Fault {
    ForeignCurrency,
    MonthWithoutFormula,
    Overflow,
    HeldForReview,
}

#[derive(Debug, Clone)]
struct Player {
    kyc_approved: bool,
    /// (day of January, amount in cents)
    deposits: Vec<(u8, i64)>,
    /// (day of February, stakes, wins)
    games: Vec<(u8, i64, i64)>,
    /// Touchpoints as (affiliate index 0 = A1, 1 = A2, bps).
    credits: Vec<(u8, u32)>,
}

fn player() -> impl Strategy<Value = Player> {
    (
        any::<bool>(),
        prop::collection::vec((1u8..28, 500i64..200_000), 0..4),
        prop::collection::vec((1u8..28, 0i64..500_000, 0i64..500_000), 0..4),
        prop_oneof![
            Just(vec![(0u8, 10_000)]),
            Just(vec![(1u8, 10_000)]),
            Just(vec![(0u8, 10_000), (1u8, 0)]),
            Just(vec![(0u8, 5_000), (1u8, 5_000)]),
            Just(vec![(1u8, 6_000), (0u8, 4_000)]),
        ],
    )
        .prop_map(|(kyc_approved, deposits, games, credits)| Player {
            kyc_approved,
            deposits,
            games,
            credits,
        })
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::ForeignCurrency),
        Just(Fault::MonthWithoutFormula),
        Just(Fault::Overflow),
        Just(Fault::HeldForReview),
    ]
}

fn ms(month: u8, day: u8) -> u64 {
    Timestamp::utc(2026, month, day, 12, 0)
        .expect("date")
        .unix_ms()
}

fn row(player: usize, id: &str, event_type: i8, at: u64) -> FactEventRow {
    FactEventRow {
        brand_id: BRAND,
        event_id: id.to_owned(),
        event_type,
        occurred_at_ms: at,
        received_at: u32::try_from(at / 1000).unwrap_or(u32::MAX),
        brand_player_id: format!("p-{player}"),
        country: *b"DE",
        kyc_status: String::new(),
        amount_minor: 0,
        currency: *b"EUR",
        stakes_minor: 0,
        wins_minor: 0,
        rg_flag: String::new(),
        rg_active: 0,
        reference_event_id: String::new(),
    }
}

fn attribution(player: usize, credits: &[(Uuid, u32)]) -> AttributionRow {
    AttributionRow {
        brand_id: BRAND,
        player_id: Uuid::from_u128(player as u128 + 1),
        brand_player_id: format!("p-{player}"),
        registration_event_id: format!("reg-{player}"),
        status: 2,
        reason: String::new(),
        model: "last_click".into(),
        rules_version: "default/default.json@1".into(),
        window_days: 30,
        credit_affiliate_ids: credits.iter().map(|c| c.0).collect(),
        credit_sub_affiliate_ids: credits.iter().map(|_| String::new()).collect(),
        credit_campaign_ids: credits.iter().map(|_| Uuid::from_u128(0xc1)).collect(),
        credit_click_ids: (0..credits.len())
            .map(|i| Uuid::from_u128(player as u128 * 100 + i as u128))
            .collect(),
        credit_bps: credits.iter().map(|c| c.1).collect(),
        decision: String::new(),
        decided_at: 0,
        decided_at_ms: 0,
        version: 1,
    }
}

/// The rows of one player (registration, deposits, games).
fn rows_of(n: usize, p: &Player) -> Vec<FactEventRow> {
    let mut reg = row(n, &format!("reg-{n}"), 1, ms(1, 1));
    reg.kyc_status = if p.kyc_approved {
        "approved"
    } else {
        "pending"
    }
    .into();
    let mut out = vec![reg];
    for (i, (day, amount)) in p.deposits.iter().enumerate() {
        let mut d = row(n, &format!("dep-{n}-{i}"), 3, ms(1, *day));
        d.amount_minor = *amount;
        out.push(d);
    }
    for (i, (day, stakes, wins)) in p.games.iter().enumerate() {
        let mut g = row(n, &format!("game-{n}-{i}"), 5, ms(2, *day));
        g.stakes_minor = *stakes;
        g.wins_minor = *wins;
        out.push(g);
    }
    out
}

/// What a fault adds: rows, and a fraud hold.
fn inject(n: usize, fault: Fault, rows: &mut Vec<FactEventRow>, holds: &mut CommissionHolds) {
    match fault {
        Fault::ForeignCurrency => {
            let mut b = row(n, &format!("bonus-gbp-{n}"), 6, ms(2, 3));
            b.amount_minor = 500;
            b.currency = *b"GBP";
            // Money first, so the wallet is EUR either way.
            let mut d = row(n, &format!("dep-eur-{n}"), 3, ms(1, 2));
            d.amount_minor = 2_500;
            rows.extend([d, b]);
        }
        Fault::MonthWithoutFormula => {
            let mut g = row(n, &format!("game-2025-{n}"), 5, 1_749_988_800_000);
            g.stakes_minor = 1_000;
            rows.push(g);
        }
        Fault::Overflow => {
            for i in 0..2 {
                let mut g = row(n, &format!("huge-{n}-{i}"), 5, ms(3, 1));
                g.stakes_minor = i64::MAX - 10;
                rows.push(g);
            }
        }
        Fault::HeldForReview => {
            holds.insert((BRAND, format!("p-{n}")), CommissionHold::Pending);
        }
    }
}

fn deals() -> DealBook {
    let deal = |a: Uuid| {
        Deal::from_json(&format!(
            r#"{{"affiliate": "{a}", "currency": "EUR", "versions": [{{"version": 1,
            "effective_from": "2026-01", "hold_days": 0, "clawback_days": 90, "min_payout": 0,
            "plan": {{"type": "hybrid",
              "cpa": {{"amounts": {{"DE": 10000}}, "min_first_deposit": 2000,
                "first_deposit_within_days": 30, "min_total_deposits": 5000,
                "min_wagering": 10000}},
              "revshare": {{"negative_carryover": true,
                "schedule": {{"type": "flat", "rate_bps": 2500}}}}}}}}]}}"#
        ))
        .expect("deal")
    };
    DealBook::new([deal(A1), deal(A2), deal(B)]).expect("deals")
}

fn formulas() -> FormulaBook {
    FormulaBook::new([NgrFormula::from_json(&format!(
        r#"{{"brand": "{BRAND}", "versions": [{{"version": 1, "effective_from": "2026-01",
        "payment_fee_bps": 250, "tax_bps": 1000, "admin_fee_bps": 500}}]}}"#
    ))
    .expect("formula")])
    .expect("formulas")
}

/// Entries no fault can touch: those of affiliates `A1`/`A2`, and every
/// CPA slot of a player without a fault.
fn untouched(entries: &[LedgerEntry], faulty: &BTreeSet<Uuid>) -> Vec<LedgerEntry> {
    entries
        .iter()
        .filter(|e| match &e.slot {
            Slot::Cpa { player, .. } | Slot::CpaClawback { player, .. } => {
                !faulty.contains(&player.as_uuid())
            }
            _ => e.affiliate.as_uuid() != B,
        })
        .cloned()
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn bad_events_never_stop_a_run_and_never_change_anyone_elses_ledger(
        good in prop::collection::vec(player(), 1..10),
        bad in prop::collection::vec((player(), fault()), 1..5),
    ) {
        let mut clean_rows = Vec::new();
        let mut attributions = Vec::new();
        for (n, p) in good.iter().enumerate() {
            clean_rows.extend(rows_of(n, p));
            let credits: Vec<(Uuid, u32)> =
                p.credits.iter().map(|(a, bps)| (if *a == 0 { A1 } else { A2 }, *bps)).collect();
            attributions.push(attribution(n, &credits));
        }
        let mut faulty_rows = clean_rows.clone();
        let mut holds = CommissionHolds::new();
        let mut faulty = BTreeSet::new();
        for (i, (p, f)) in bad.iter().enumerate() {
            let n = good.len() + i;
            clean_rows.extend(rows_of(n, p));
            faulty_rows.extend(rows_of(n, p));
            inject(n, *f, &mut faulty_rows, &mut holds);
            // A faulty player's only earning touchpoint is B's.
            attributions.push(attribution(n, &[(B, 10_000), (A1, 0)]));
            faulty.insert(Uuid::from_u128(n as u128 + 1));
        }
        let (deals, formulas) = (deals(), formulas());
        let (fx, tree, calendar) =
            (FxBook::empty(), AffiliateTree::new([]).expect("tree"), PeriodCalendar::default());
        let engine = Engine { deals: &deals, formulas: &formulas, fx: &fx, tree: &tree,
            calendar: &calendar };

        let clean_facts = player_facts(&attributions, &clean_rows, &CommissionHolds::new());
        let clean = engine
            .run_with(&clean_facts.players, &clean_facts.problems, &[])
            .expect("the clean run");
        prop_assert!(clean.problems.is_empty(), "{:?}", clean.problems);

        let loaded = player_facts(&attributions, &faulty_rows, &holds);
        let run = engine.run_with(&loaded.players, &loaded.problems, &[]);
        prop_assert!(run.is_ok(), "a run never fails as a whole: {:?}", run.err());
        let run = run.expect("checked");
        let reported: BTreeSet<Uuid> = run
            .problems
            .iter()
            .filter_map(|p| p.player.map(|x| x.as_uuid()))
            .chain(holds.keys().filter_map(|(_, bp)| {
                bp.strip_prefix("p-")
                    .and_then(|n| n.parse::<u128>().ok())
                    .map(|n| Uuid::from_u128(n + 1))
            }))
            .collect();
        for (i, (_, f)) in bad.iter().enumerate() {
            let id = Uuid::from_u128((good.len() + i) as u128 + 1);
            // A formula or overflow fault matters only when the player has
            // NGR to compute, which it always has (the injected rows).
            prop_assert!(reported.contains(&id), "{f:?} of player {id} is reported: {:?}", run.problems);
        }
        prop_assert_eq!(untouched(&run.entries, &faulty), untouched(&clean.entries, &faulty));
    }
}

/// One player's rows split into the batch each arrives in (0, 1 or 2):
/// the registration first, then every other row in a random batch at or
/// after it.
fn batched(rows: Vec<FactEventRow>, picks: &[u8]) -> Vec<(u8, FactEventRow)> {
    let reg_batch = picks.first().copied().unwrap_or(0) % 3;
    rows.into_iter()
        .enumerate()
        .map(|(i, r)| {
            let b = if i == 0 {
                reg_batch
            } else {
                reg_batch.max(picks.get(i).copied().unwrap_or(0) % 3)
            };
            (b, r)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn incremental_runs_append_exactly_what_full_recomputes_append(
        players in prop::collection::vec((player(), prop::collection::vec(any::<u8>(), 12)), 1..10),
        held in prop::collection::vec(any::<bool>(), 10),
    ) {
        use clickstitch_aggregator::commission::incremental::{in_scope, Kept};
        use clickstitch_aggregator::commission::{Link, PlayerId};
        let (deals, formulas) = (deals(), formulas());
        // B is A1's parent: overrides ride on A1's slots.
        let tree = AffiliateTree::new([Link {
            child: clickstitch_shared::AffiliateId::from(A1),
            parent: clickstitch_shared::AffiliateId::from(B),
        }])
        .expect("tree");
        let (fx, calendar) = (FxBook::empty(), PeriodCalendar::default());
        let engine = Engine { deals: &deals, formulas: &formulas, fx: &fx, tree: &tree,
            calendar: &calendar };

        let mut rows: Vec<(u8, FactEventRow)> = Vec::new();
        let mut attributions = Vec::new();
        for (n, (p, picks)) in players.iter().enumerate() {
            rows.extend(batched(rows_of(n, p), picks));
            let credits: Vec<(Uuid, u32)> =
                p.credits.iter().map(|(a, bps)| (if *a == 0 { A1 } else { A2 }, *bps)).collect();
            attributions.push(attribution(n, &credits));
        }
        let mut full_ledger: Vec<LedgerEntry> = Vec::new();
        let mut inc_ledger: Vec<LedgerEntry> = Vec::new();
        let mut kept = Kept::default();
        for batch in 0u8..3 {
            let seen: Vec<FactEventRow> =
                rows.iter().filter(|(b, _)| *b <= batch).map(|(_, r)| r.clone()).collect();
            // A fraud hold arrives with the second batch for some players.
            let mut holds = CommissionHolds::new();
            if batch >= 1 {
                for (n, h) in held.iter().enumerate().take(players.len()) {
                    if *h && n % 3 == 0 {
                        holds.insert((BRAND, format!("p-{n}")), CommissionHold::Pending);
                    }
                }
            }
            let registered: Vec<AttributionRow> = attributions
                .iter()
                .filter(|a| seen.iter().any(|r| r.event_id == a.registration_event_id))
                .cloned()
                .collect();

            // Full recompute.
            let all = player_facts(&registered, &seen, &holds);
            let full = engine
                .run_with(&all.players, &all.problems, &full_ledger)
                .expect("full run");
            full_ledger.extend(full.entries);

            // Incremental: only the players with rows in this batch, or whose
            // hold changed.
            let changed_ids: BTreeSet<String> = rows
                .iter()
                .filter(|(b, _)| *b == batch)
                .map(|(_, r)| r.brand_player_id.clone())
                .chain(if batch == 1 { holds.keys().map(|(_, p)| p.clone()).collect() } else { vec![] })
                .collect();
            let mine: Vec<AttributionRow> = registered
                .iter()
                .filter(|a| changed_ids.contains(&a.brand_player_id))
                .cloned()
                .collect();
            let facts = player_facts(&mine, &seen, &holds);
            let changed: BTreeSet<PlayerId> =
                mine.iter().map(|a| PlayerId::from(a.player_id)).collect();
            let credited = facts
                .players
                .iter()
                .filter_map(|f| f.attribution())
                .flat_map(|a| a.credits().iter().map(|c| c.affiliate))
                .collect::<Vec<_>>();
            let scope = kept.scope(&changed, credited);
            let others = kept.others(&scope, &changed);
            let prior: Vec<LedgerEntry> = inc_ledger
                .iter()
                .filter(|e| in_scope(&e.slot, &changed, &scope))
                .cloned()
                .collect();
            let out = engine
                .run_scoped(&facts.players, &facts.problems, &others, &prior)
                .expect("incremental run");
            inc_ledger.extend(out.entries.iter().cloned());
            kept.fold(&changed, &scope, &out);

            let mut a = full_ledger.clone();
            let mut b = inc_ledger.clone();
            a.sort_by_key(|e| e.id);
            b.sort_by_key(|e| e.id);
            prop_assert_eq!(a, b, "after batch {}", batch);
        }
    }
}
