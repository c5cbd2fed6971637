//! Commissions end to end on a real ClickHouse server: brand events through
//! `POST /api/v1/events`, the commission job driven with `run_once`,
//! configuration, period closes and payouts through the admin API, balances
//! and lines through `GET /api/v1/commissions`.
//!
//! Scenarios are dated June–September 2026, so that their months can be
//! closed; the test apps accept clicks that old (a raised
//! `ingest.max_click_age_hours`), and clicks go through the edge ingest
//! endpoint like any other.

use serde_json::{json, Value};

use clickstitch_aggregator::commission::ledger::Detail;
use clickstitch_aggregator::commission::{EntryKind, Gate, LedgerEntry, Reason, Slot, Timestamp};
use clickstitch_aggregator::services::commission::job::{CommissionJob, RunReport};
use clickstitch_aggregator::store::Store;
use clickstitch_shared::{ClickIdGenerator, RawClick};

use crate::helpers::{click, spawn_app_configured, store_config, Fixture, TestApp, OPERATOR_TOKEN};

pub(crate) const HOUR_MS: u64 = 3_600_000;

/// 2026-`month`-`day` 12:00 UTC, Unix ms.
pub(crate) fn at(month: u8, day: u8) -> u64 {
    Timestamp::utc(2026, month, day, 12, 0)
        .expect("date")
        .unix_ms()
}

pub(crate) async fn spawn() -> TestApp {
    spawn_app_configured(|s| s.ingest.max_click_age_hours = 24 * 365 * 30).await
}

pub(crate) fn job(app: &TestApp) -> CommissionJob {
    CommissionJob::new(Store::new(&store_config(app)))
}

pub(crate) async fn run(app: &TestApp) -> RunReport {
    job(app)
        .run_once(crate::helpers::now_ms())
        .await
        .expect("commission run")
}

/// A seeded brand (parent affiliate, sub-affiliate owning the link), its
/// API key and an NGR formula without fees.
pub(crate) struct Brand {
    pub(crate) f: Fixture,
    pub(crate) key: String,
}

impl Brand {
    pub(crate) fn id(&self) -> &str {
        &self.f.brand_id
    }

    /// The earning account of the brand's link (its owner).
    pub(crate) fn sub(&self) -> String {
        self.f.sub_affiliate_id()
    }

    pub(crate) fn parent(&self) -> &str {
        &self.f.affiliate_id
    }
}

pub(crate) async fn brand(app: &TestApp) -> Brand {
    brand_with_fees(app, 0, 0, 0).await
}

pub(crate) async fn brand_with_fees(
    app: &TestApp,
    payment_fee: i64,
    tax: i64,
    admin_fee: i64,
) -> Brand {
    let f = app.seed().await;
    let key = app.issue_key(&format!("brands/{}", f.brand_id)).await;
    let (s, body) = app
        .admin_post(
            "ngr-formulas",
            json!({"brand": f.brand_id, "versions": [{"version": 1, "effective_from": "2026-01",
                "payment_fee_bps": payment_fee, "tax_bps": tax, "admin_fee_bps": admin_fee}]}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    Brand { f, key }
}

/// The CPA plan of the docs: `amount` for DE, first deposit ≥ 20.00 within
/// 30 days, deposits ≥ 50.00, wagering ≥ 100.00.
pub(crate) fn cpa(amount: i64) -> Value {
    json!({"type": "cpa", "cpa": {"amounts": {"DE": amount}, "min_first_deposit": 2000,
        "first_deposit_within_days": 30, "min_total_deposits": 5000, "min_wagering": 10000}})
}

pub(crate) fn flat(rate_bps: i64, negative_carryover: bool) -> Value {
    json!({"type": "revshare", "revshare": {"negative_carryover": negative_carryover,
        "schedule": {"type": "flat", "rate_bps": rate_bps}}})
}

pub(crate) fn version(plan: Value, hold_days: u32, min_payout: i64) -> Value {
    let mut version = json!({"version": 1, "effective_from": "2026-01", "hold_days": hold_days,
        "clawback_days": 90, "min_payout": min_payout});
    version["plan"] = plan;
    version
}

pub(crate) async fn deal(app: &TestApp, affiliate: &str, version: Value) {
    let (s, body) = app
        .admin_post(
            "deals",
            json!({"affiliate": affiliate, "currency": "EUR", "versions": [version]}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
}

pub(crate) async fn post(app: &TestApp, b: &Brand, event: Value) {
    let (s, _, body) = app.post_event(&b.key, event).await;
    assert_eq!(s, 201, "{body}");
}

/// A human click on the brand's link at `at_ms`, stored through the edge
/// ingest endpoint (`n` picks the device).
pub(crate) async fn click_at(app: &TestApp, f: &Fixture, n: u8, at_ms: u64) -> RawClick {
    let mut c = click(f, &mut ClickIdGenerator::new(), n);
    let id = ClickIdGenerator::new().next_id(at_ms, [n; 10]);
    c.click_id = id.to_string();
    c.clicked_at_ms = id.timestamp_ms();
    let (s, body) = app.post_batch(std::slice::from_ref(&c), &[]).await;
    assert_eq!(s, 200, "{body}");
    c
}

pub(crate) fn registration(player: &str, click: &RawClick, at_ms: u64) -> Value {
    json!({"event_id": format!("{player}-reg"), "type": "registration", "occurred_at": at_ms,
        "player_id": player, "country": "DE", "click_id": click.click_id})
}

/// Registers `player` (device `n`) at `at_ms`, an hour after a click on the
/// brand's link; the attribution waits for KYC.
pub(crate) async fn register(app: &TestApp, b: &Brand, n: u8, player: &str, at_ms: u64) {
    let c = click_at(app, &b.f, n, at_ms - HOUR_MS).await;
    let (s, _, body) = app
        .post_event(&b.key, registration(player, &c, at_ms))
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["attribution"]["status"], "pending_kyc", "{body}");
}

pub(crate) fn deposit(id: &str, player: &str, at_ms: u64, amount: &str) -> Value {
    json!({"event_id": id, "type": "deposit", "occurred_at": at_ms, "player_id": player,
        "amount": amount, "currency": "EUR"})
}

pub(crate) fn game(id: &str, player: &str, at_ms: u64, stakes: &str, wins: &str) -> Value {
    json!({"event_id": id, "type": "game_activity", "occurred_at": at_ms, "player_id": player,
        "stakes": stakes, "wins": wins, "currency": "EUR", "game": "starburst", "provider": "netent"})
}

pub(crate) fn kyc(id: &str, player: &str, at_ms: u64, status: &str) -> Value {
    json!({"event_id": id, "type": "kyc", "occurred_at": at_ms, "player_id": player,
        "status": status})
}

pub(crate) fn self_exclusion(id: &str, player: &str, at_ms: u64) -> Value {
    json!({"event_id": id, "type": "responsible_gaming", "occurred_at": at_ms,
        "player_id": player, "flag": "self_exclusion", "active": true})
}

/// The qualifying CPA journey of the docs in `month`: registered on the
/// 5th, deposits 20.00 (6th) and 40.00 (10th), stakes 150.00 (12th), KYC
/// approved on the 15th.
pub(crate) async fn qualify(app: &TestApp, b: &Brand, n: u8, player: &str, month: u8) {
    register(app, b, n, player, at(month, 5)).await;
    pay_in_and_play(app, b, player, month).await;
    post(
        app,
        b,
        kyc(&format!("{player}-kyc"), player, at(month, 15), "approved"),
    )
    .await;
}

pub(crate) async fn pay_in_and_play(app: &TestApp, b: &Brand, player: &str, month: u8) {
    for event in [
        deposit(&format!("{player}-dep-1"), player, at(month, 6), "20.00"),
        deposit(&format!("{player}-dep-2"), player, at(month, 10), "40.00"),
        game(
            &format!("{player}-game-1"),
            player,
            at(month, 12),
            "150.00",
            "100.00",
        ),
    ] {
        post(app, b, event).await;
    }
}

pub(crate) async fn commissions(app: &TestApp, token: &str) -> Value {
    commissions_at(app, token, "/api/v1/commissions").await
}

pub(crate) async fn commissions_at(app: &TestApp, token: &str, path: &str) -> Value {
    let (s, body) = app.get_json(token, path).await;
    assert_eq!(s, 200, "{body}");
    body
}

/// The block of `affiliate` in a commissions response.
pub(crate) fn block<'a>(body: &'a Value, affiliate: &str) -> &'a Value {
    body["affiliates"]
        .as_array()
        .expect("affiliates")
        .iter()
        .find(|a| a["affiliate_id"] == affiliate)
        .unwrap_or_else(|| panic!("no block for {affiliate} in {body}"))
}

pub(crate) fn affiliate_ids(body: &Value) -> Vec<String> {
    body["affiliates"]
        .as_array()
        .expect("affiliates")
        .iter()
        .map(|a| a["affiliate_id"].as_str().expect("id").to_owned())
        .collect()
}

/// `balances[0].<state>_minor` (every test deal is in EUR).
pub(crate) fn balance(block: &Value, state: &str) -> i64 {
    assert_eq!(block["balances"][0]["currency"], "EUR", "{block}");
    block["balances"][0][format!("{state}_minor")]
        .as_i64()
        .unwrap_or_else(|| panic!("no {state} in {block}"))
}

pub(crate) fn lines(block: &Value) -> &Vec<Value> {
    block["lines"].as_array().expect("lines")
}

pub(crate) async fn close(app: &TestApp, month: &str, body: Value) -> (u16, Value) {
    app.admin_post(&format!("periods/{month}/close"), body)
        .await
}

pub(crate) async fn payouts(app: &TestApp, body: Value) -> Value {
    let (s, report) = app.admin_post("payouts/run", body).await;
    assert_eq!(s, 200, "{report}");
    report
}

pub(crate) fn of_slot(report: &RunReport, pick: impl Fn(&Slot) -> bool) -> Vec<&LedgerEntry> {
    report.entries.iter().filter(|e| pick(&e.slot)).collect()
}

pub(crate) fn event_ids(e: &LedgerEntry) -> Vec<&str> {
    e.events.iter().map(|r| r.event.as_str()).collect()
}

#[tokio::test]
async fn a_cpa_qualifies_on_the_first_deposit_with_kyc_approved_and_is_paid_once() {
    let app = spawn().await;
    let b = brand(&app).await;
    deal(&app, &b.sub(), version(cpa(10_000), 0, 0)).await;
    qualify(&app, &b, 1, "p-1", 6).await;

    let report = run(&app).await;
    assert_eq!(report.entries.len(), 1, "{:?}", report.entries);
    let accrual = &report.entries[0];
    assert!(matches!(
        accrual.slot,
        Slot::Cpa {
            gate: Gate::Final,
            ..
        }
    ));
    assert_eq!(accrual.kind, EntryKind::Accrual);
    assert_eq!(accrual.amount.minor(), 10_000);
    assert_eq!(accrual.affiliate.to_string(), b.sub());
    assert_eq!(accrual.deal_version, Some(1));
    assert!(
        accrual.rules_versions[0].starts_with("default/eu.json@1"),
        "{:?}",
        accrual.rules_versions
    );
    let mut named = event_ids(accrual);
    named.sort_unstable();
    assert_eq!(
        named,
        ["p-1-dep-1", "p-1-dep-2", "p-1-game-1", "p-1-kyc", "p-1-reg"]
    );

    // The row's flat columns (for BI) say the same as the entry.
    let player = accrual.slot.player().expect("a CPA names its player");
    assert_eq!(
        app.sql(
            "SELECT kind, slot_type, toString(affiliate_id), revision, amount_minor, currency, \
             slot_total_minor, gate, toString(activity_month), toString(booked_in), hold_days, \
             deal_version, toString(player_id), length(brand_ids), toString(brand_ids[1]), \
             length(rules_versions), length(event_ids), length(event_brand_ids), reason, \
             length(entry_sha256) FROM commission_ledger_unique FORMAT TabSeparated"
        )
        .trim(),
        format!(
            "accrual\tcpa\t{}\t0\t10000\tEUR\t10000\tfinal\t2026-06-01\t2026-06-01\t0\t1\t{player}\t1\t{}\t1\t5\t5\tcpa_qualified\t64",
            b.sub(),
            b.id()
        )
    );

    // The affiliate's view: pending until June closes.
    let body = commissions(&app, OPERATOR_TOKEN).await;
    let mine = block(&body, &b.sub());
    assert_eq!(balance(mine, "pending"), 10_000);
    let line = &lines(mine)[0];
    assert_eq!(line["entry_id"], accrual.id.to_string());
    assert_eq!(line["kind"], "accrual");
    assert_eq!(line["amount_minor"], 10_000);
    assert_eq!(line["currency"], "EUR");
    assert_eq!(line["amount"], "100.00");
    assert_eq!(line["state"], "pending");
    assert_eq!(line["period"], "2026-06");
    assert_eq!(line["plan_version"], 1);
    assert_eq!(line["reason"]["code"], "cpa_qualified");
    assert_eq!(line["source_events"].as_array().map(Vec::len), Some(5));

    // Closed, no hold: payable; paid once.
    let (s, closed) = close(&app, "2026-06", json!({})).await;
    assert_eq!(s, 201, "{closed}");
    assert_eq!(
        balance(
            block(&commissions(&app, OPERATOR_TOKEN).await, &b.sub()),
            "payable"
        ),
        10_000
    );
    let run_id = "0193a000-0000-7000-8000-000000000001";
    let paid = payouts(&app, json!({"run_id": run_id})).await;
    assert_eq!(paid["paid"].as_array().map(Vec::len), Some(1), "{paid}");
    assert_eq!(paid["paid"][0]["affiliate_id"], b.sub());
    assert_eq!(paid["paid"][0]["amount_minor"], 10_000);
    assert_eq!(paid["paid"][0]["covers"], json!([accrual.id]));
    let payout_id = paid["paid"][0]["entry_id"].clone();

    let body = commissions(&app, OPERATOR_TOKEN).await;
    let mine = block(&body, &b.sub());
    assert_eq!(balance(mine, "payable"), 0);
    assert_eq!(balance(mine, "paid"), 10_000);
    let cpa_line = lines(mine)
        .iter()
        .find(|l| l["kind"] == "accrual")
        .expect("accrual");
    assert_eq!(cpa_line["paid_by"], json!([payout_id]));

    // The same payout run again is a replay; a new run has nothing to pay;
    // the job has nothing to add.
    let replay = payouts(&app, json!({"run_id": run_id})).await;
    assert_eq!(replay["replayed"], true);
    assert_eq!(replay["paid"][0]["entry_id"], payout_id);
    let again = payouts(&app, json!({})).await;
    assert_eq!(again["paid"], json!([]), "{again}");
    assert_eq!(again["rolled_over"][0]["payable"]["minor"], 0);
    assert!(run(&app).await.entries.is_empty());
    assert_eq!(
        app.sql(
            "SELECT kind, count() FROM commission_ledger_unique GROUP BY kind ORDER BY kind \
             FORMAT TabSeparated"
        )
        .trim(),
        "accrual\t1\npayout\t1"
    );
}

#[tokio::test]
async fn two_consecutive_runs_append_nothing_the_second_time() {
    let app = spawn().await;
    let b = brand(&app).await;
    let hybrid = json!({"type": "hybrid", "cpa": cpa(10_000)["cpa"], "revshare": flat(2_500, true)["revshare"]});
    deal(&app, &b.sub(), version(hybrid, 0, 0)).await;
    qualify(&app, &b, 1, "p-1", 6).await;
    register(&app, &b, 2, "p-2", at(6, 7)).await;
    post(
        &app,
        &b,
        game("p-2-game-1", "p-2", at(7, 2), "80.00", "20.00"),
    )
    .await;

    let first = run(&app).await;
    assert!(!first.entries.is_empty());
    assert!(first.statements_appended > 0);
    let ledger = app.count("commission_ledger");
    let statements = app.count("ngr_statements");

    let second = run(&app).await;
    assert!(second.entries.is_empty(), "{:?}", second.entries);
    assert_eq!(second.statements_appended, 0);
    assert_eq!(second.prior_entries, first.entries.len());
    assert_eq!(app.count("commission_ledger"), ledger);
    assert_eq!(app.count("ngr_statements"), statements);
    assert_eq!(
        app.sql("SELECT entries_appended FROM commission_runs ORDER BY started_at_ms FORMAT TabSeparated")
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>(),
        [first.entries.len().to_string(), "0".to_owned()]
    );
}

#[tokio::test]
async fn a_tiered_revshare_pays_the_higher_tier_on_the_whole_base_when_the_boundary_is_hit_exactly()
{
    let app = spawn().await;
    let b = brand(&app).await;
    let tiered = json!({"type": "revshare", "revshare": {"negative_carryover": false,
        "schedule": {"type": "tiered", "basis": "ngr", "tiers": [
            {"from": 0, "rate_bps": 2500}, {"from": 1_000_000, "rate_bps": 3500}]}}});
    deal(&app, &b.sub(), version(tiered, 0, 0)).await;
    register(&app, &b, 1, "p-1", at(6, 5)).await;
    post(&app, &b, kyc("p-1-kyc", "p-1", at(6, 5), "approved")).await;
    // June: NGR exactly 10 000.00 (the boundary); July: 9 999.99.
    post(
        &app,
        &b,
        game("p-1-g-6", "p-1", at(6, 20), "10000.00", "0.00"),
    )
    .await;
    post(
        &app,
        &b,
        game("p-1-g-7", "p-1", at(7, 20), "9999.99", "0.00"),
    )
    .await;

    let report = run(&app).await;
    let month = |m: &str| {
        of_slot(&report, |s| {
            matches!(s, Slot::RevShare { month, gate: Gate::Final, .. } if month.to_string() == m)
        })
        .into_iter().next()
        .unwrap_or_else(|| panic!("no RevShare for {m}: {:?}", report.entries))
    };
    let tier = |e: &LedgerEntry| match &e.detail {
        Some(Detail::RevShare(m)) => m.schedule.tier,
        other => panic!("{other:?}"),
    };
    let june = month("2026-06");
    assert_eq!(june.amount.minor(), 350_000, "10 000.00 × 35 %");
    assert_eq!(tier(june), Some(2));
    let july = month("2026-07");
    assert_eq!(july.amount.minor(), 250_000, "9 999.99 × 25 % = 2 499.9975");
    assert_eq!(tier(july), Some(1));
    assert_eq!(report.entries.len(), 2, "{:?}", report.entries);

    let body = commissions(&app, OPERATOR_TOKEN).await;
    let mine = block(&body, &b.sub());
    assert_eq!(balance(mine, "pending"), 600_000);
    assert_eq!(lines(mine)[0]["amount"], "3500.00");
    assert_eq!(
        lines(mine)[0]["statements"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn negative_carryover_offsets_later_months_and_nnco_forgets_losses() {
    let app = spawn().await;
    let carry = brand(&app).await;
    let nnco = brand(&app).await;
    deal(&app, &carry.sub(), version(flat(2_500, true), 0, 0)).await;
    deal(&app, &nnco.sub(), version(flat(2_500, false), 0, 0)).await;
    for b in [&carry, &nnco] {
        register(&app, b, 1, "p-1", at(6, 2)).await;
        post(&app, b, kyc("p-1-kyc", "p-1", at(6, 3), "approved")).await;
        // NGR: June −300.00, July +500.00, August +100.00.
        post(
            &app,
            b,
            game("p-1-g-6", "p-1", at(6, 10), "100.00", "400.00"),
        )
        .await;
        post(&app, b, game("p-1-g-7", "p-1", at(7, 10), "500.00", "0.00")).await;
        post(&app, b, game("p-1-g-8", "p-1", at(8, 10), "100.00", "0.00")).await;
    }
    let report = run(&app).await;
    let revshare = |b: &Brand| -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = report
            .entries
            .iter()
            .filter(|e| e.affiliate.to_string() == b.sub())
            .filter_map(|e| match &e.slot {
                Slot::RevShare {
                    month,
                    gate: Gate::Final,
                    ..
                } => Some((month.to_string(), e.amount.minor())),
                _ => None,
            })
            .collect();
        v.sort();
        v
    };
    // June earns nothing either way (no entry for a zero slot).
    assert_eq!(
        revshare(&carry),
        [("2026-07".to_owned(), 5_000), ("2026-08".to_owned(), 2_500)],
        "carryover: (500.00 − 300.00) × 25 %, then 100.00 × 25 %"
    );
    assert_eq!(
        revshare(&nnco),
        [
            ("2026-07".to_owned(), 12_500),
            ("2026-08".to_owned(), 2_500)
        ],
        "NNCO: the June loss is forgotten"
    );
    let july = report
        .entries
        .iter()
        .find(|e| {
            e.affiliate.to_string() == carry.sub()
                && matches!(&e.slot, Slot::RevShare { month, .. } if month.to_string() == "2026-07")
        })
        .expect("July");
    match &july.detail {
        Some(Detail::RevShare(m)) => {
            assert_eq!(m.brands[0].carry_in.minor(), -30_000);
            assert_eq!(m.brands[0].base.minor(), 20_000);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_clawback_after_payout_is_a_reversal_that_leaves_a_negative_balance_netted_later() {
    let app = spawn().await;
    let b = brand(&app).await;
    deal(&app, &b.sub(), version(cpa(10_000), 0, 0)).await;
    qualify(&app, &b, 1, "p-1", 6).await;
    let accrual = run(&app).await.entries[0].clone();
    let (s, body) = close(&app, "2026-06", json!({})).await;
    assert_eq!(s, 201, "{body}");
    let paid = payouts(&app, json!({})).await;
    assert_eq!(paid["paid"][0]["amount_minor"], 10_000, "{paid}");

    // A chargeback inside the 90-day clawback window, after the payout.
    post(
        &app,
        &b,
        json!({"event_id": "p-1-cb", "type": "chargeback", "occurred_at": at(7, 10),
            "player_id": "p-1", "amount": "20.00", "currency": "EUR", "deposit_event_id": "p-1-dep-1"}),
    )
    .await;
    let report = run(&app).await;
    let claw = of_slot(&report, |s| matches!(s, Slot::CpaClawback { .. }))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no clawback: {:?}", report.entries));
    assert_eq!(claw.kind, EntryKind::Reversal);
    assert_eq!(claw.amount.minor(), -10_000);
    assert!(claw.references.contains(&accrual.id), "{claw:?}");
    assert!(
        matches!(&claw.reason, Reason::Chargeback { event } if event.event.as_str() == "p-1-cb")
    );
    assert_eq!(claw.booked_in.to_string(), "2026-07");
    let body = commissions(&app, OPERATOR_TOKEN).await;
    let line = lines(block(&body, &b.sub()))
        .iter()
        .find(|l| l["slot_type"] == "cpa_clawback")
        .cloned()
        .expect("clawback line");
    assert_eq!(line["reverses"], json!([accrual.id]));
    assert_eq!(line["amount"], "-100.00");
    let mine = block(&body, &b.sub());
    assert_eq!(
        (
            balance(mine, "pending"),
            balance(mine, "payable"),
            balance(mine, "paid")
        ),
        (-10_000, 0, 10_000)
    );

    // July closes: the affiliate owes 100.00; nothing is paid.
    let (s, body) = close(&app, "2026-07", json!({})).await;
    assert_eq!(s, 201, "{body}");
    let owed = payouts(&app, json!({})).await;
    assert_eq!(owed["paid"], json!([]));
    assert_eq!(owed["rolled_over"][0]["payable"]["minor"], -10_000);
    let mine = commissions(&app, OPERATOR_TOKEN).await;
    assert_eq!(balance(block(&mine, &b.sub()), "payable"), -10_000);

    // A new CPA in August is netted against the debt.
    qualify(&app, &b, 2, "p-2", 8).await;
    let (s, body) = close(&app, "2026-08", json!({})).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["run"]["entries_appended"], 1, "{body}");
    let body = commissions(&app, OPERATOR_TOKEN).await;
    let mine = block(&body, &b.sub());
    assert_eq!(
        (
            balance(mine, "pending"),
            balance(mine, "payable"),
            balance(mine, "paid")
        ),
        (0, 0, 10_000)
    );
    assert_eq!(payouts(&app, json!({})).await["paid"], json!([]));
}

#[tokio::test]
async fn kyc_rejected_after_the_first_deposit_earns_no_commission() {
    let app = spawn().await;
    let b = brand(&app).await;
    deal(&app, &b.sub(), version(cpa(10_000), 0, 0)).await;
    register(&app, &b, 1, "p-1", at(6, 5)).await;
    pay_in_and_play(&app, &b, "p-1", 6).await;

    let first = run(&app).await;
    assert_eq!(first.entries.len(), 1, "{:?}", first.entries);
    let awaiting = &first.entries[0];
    assert!(matches!(
        awaiting.slot,
        Slot::Cpa {
            gate: Gate::AwaitingKyc,
            ..
        }
    ));
    assert_eq!(awaiting.amount.minor(), 10_000);
    assert_eq!(awaiting.reason, Reason::CpaAwaitingKyc);

    post(&app, &b, kyc("p-1-kyc", "p-1", at(6, 20), "rejected")).await;
    let second = run(&app).await;
    assert_eq!(second.entries.len(), 1, "{:?}", second.entries);
    let reversal = &second.entries[0];
    assert_eq!(reversal.kind, EntryKind::Reversal);
    assert_eq!(reversal.amount.minor(), -10_000);
    assert_eq!(reversal.reason, Reason::KycRejected);
    assert_eq!(reversal.references, vec![awaiting.id]);

    let body = commissions(&app, OPERATOR_TOKEN).await;
    let mine = block(&body, &b.sub());
    assert_eq!(balance(mine, "pending"), 0);
    assert_eq!(lines(mine).len(), 2);
    assert!(lines(mine).iter().all(|l| l["gate"] == "awaiting_kyc"));
}

#[tokio::test]
async fn a_replayed_event_is_counted_once() {
    let app = spawn().await;
    let b = brand(&app).await;
    let hybrid = json!({"type": "hybrid",
        "cpa": {"amounts": {"DE": 10000}, "min_first_deposit": 2000, "first_deposit_within_days": 30,
            "min_total_deposits": 5000, "min_wagering": 0},
        "revshare": flat(2_500, true)["revshare"]});
    deal(&app, &b.sub(), version(hybrid, 0, 0)).await;
    register(&app, &b, 1, "p-1", at(6, 5)).await;
    post(&app, &b, kyc("p-1-kyc", "p-1", at(6, 5), "approved")).await;
    let dep = deposit("p-1-dep", "p-1", at(6, 6), "30.00");
    let play = game("p-1-game", "p-1", at(6, 7), "200.00", "100.00");
    for event in [&dep, &play] {
        post(&app, &b, event.clone()).await;
        let (s, replayed, body) = app.post_event(&b.key, event.clone()).await;
        assert_eq!((s, replayed), (200, true), "{body}");
    }
    // A replay that reached storage twice (at-least-once writes) collapses
    // too.
    app.sql("INSERT INTO player_events SELECT * FROM player_events WHERE event_id = 'p-1-game'");
    assert_eq!(app.count("player_events FINAL"), 4);

    let report = run(&app).await;
    // 30.00 deposited once is below the 50.00 minimum: no CPA; NGR 100.00
    // counted once: 25.00.
    assert!(
        of_slot(&report, |s| matches!(s, Slot::Cpa { .. }))
            .iter()
            .all(|e| e.amount.minor() == 0),
        "{:?}",
        report.entries
    );
    let revshare: Vec<i64> = of_slot(&report, |s| matches!(s, Slot::RevShare { .. }))
        .iter()
        .map(|e| e.amount.minor())
        .collect();
    assert_eq!(revshare, [2_500]);
    assert!(run(&app).await.entries.is_empty());
}

#[tokio::test]
async fn an_event_pointing_at_another_brands_click_is_unattributed_and_earns_nothing() {
    let app = spawn().await;
    let mine = brand(&app).await;
    let theirs = brand(&app).await;
    deal(&app, &mine.sub(), version(cpa(10_000), 0, 0)).await;
    deal(&app, &theirs.sub(), version(cpa(10_000), 0, 0)).await;
    let foreign = click_at(&app, &theirs.f, 1, at(6, 5) - HOUR_MS).await;
    let (s, _, body) = app
        .post_event(&mine.key, registration("p-1", &foreign, at(6, 5)))
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["attribution"]["status"], "unattributed", "{body}");
    pay_in_and_play(&app, &mine, "p-1", 6).await;
    post(&app, &mine, kyc("p-1-kyc", "p-1", at(6, 15), "approved")).await;

    let report = run(&app).await;
    assert_eq!(report.players, 1, "the player's facts are read");
    assert!(report.entries.is_empty(), "{:?}", report.entries);
    assert_eq!(
        commissions(&app, OPERATOR_TOKEN).await["affiliates"],
        json!([])
    );
}

#[tokio::test]
async fn a_late_registration_outside_the_window_is_unattributed_and_earns_nothing() {
    let app = spawn().await;
    let b = brand(&app).await;
    deal(&app, &b.sub(), version(cpa(10_000), 0, 0)).await;
    // DE → the EU rules' 30-day window; the registration comes 34 days on.
    let c = click_at(&app, &b.f, 1, at(6, 1)).await;
    let (s, _, body) = app
        .post_event(&b.key, registration("p-1", &c, at(7, 5)))
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["attribution"]["status"], "unattributed", "{body}");
    assert!(
        body["attribution"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("outside_window")),
        "{body}"
    );
    pay_in_and_play(&app, &b, "p-1", 7).await;
    post(&app, &b, kyc("p-1-kyc", "p-1", at(7, 15), "approved")).await;
    assert!(run(&app).await.entries.is_empty());
}

#[tokio::test]
async fn a_self_excluded_player_never_qualifies_and_a_later_self_exclusion_claws_the_cpa_back() {
    let app = spawn().await;
    let b = brand(&app).await;
    deal(&app, &b.sub(), version(cpa(10_000), 0, 0)).await;
    // p-1 self-excludes on 8 June, before meeting every rule.
    register(&app, &b, 1, "p-1", at(6, 5)).await;
    post(&app, &b, self_exclusion("p-1-rg", "p-1", at(6, 8))).await;
    pay_in_and_play(&app, &b, "p-1", 6).await;
    post(&app, &b, kyc("p-1-kyc", "p-1", at(6, 15), "approved")).await;
    // p-2 qualifies on 15 June and self-excludes on 1 July (16 days later).
    qualify(&app, &b, 2, "p-2", 6).await;
    post(&app, &b, self_exclusion("p-2-rg", "p-2", at(7, 1))).await;

    let report = run(&app).await;
    let about = |player: &str| -> Vec<(EntryKind, i64)> {
        report
            .entries
            .iter()
            .filter(|e| {
                e.events
                    .iter()
                    .any(|r| r.event.as_str() == format!("{player}-reg"))
            })
            .map(|e| (e.kind, e.amount.minor()))
            .collect()
    };
    assert!(about("p-1").is_empty(), "{:?}", report.entries);
    assert_eq!(
        about("p-2"),
        [(EntryKind::Accrual, 10_000), (EntryKind::Reversal, -10_000)]
    );
    let claw = of_slot(&report, |s| matches!(s, Slot::CpaClawback { .. }))
        .into_iter()
        .next()
        .expect("clawback");
    assert!(
        matches!(&claw.reason, Reason::SelfExclusion { event } if event.event.as_str() == "p-2-rg")
    );
    assert_eq!(claw.booked_in.to_string(), "2026-07");
}

#[tokio::test]
async fn a_sub_affiliates_commission_pays_an_override_to_its_parent() {
    let app = spawn().await;
    let b = brand(&app).await;
    deal(&app, &b.sub(), version(cpa(10_000), 0, 0)).await;
    let mut parent = version(cpa(10_000), 0, 0);
    parent["overrides"] = json!([1000]);
    deal(&app, b.parent(), parent).await;
    qualify(&app, &b, 1, "p-1", 6).await;

    let report = run(&app).await;
    assert_eq!(report.entries.len(), 2, "{:?}", report.entries);
    let cpa = of_slot(&report, |s| matches!(s, Slot::Cpa { .. }))
        .into_iter()
        .next()
        .expect("cpa");
    assert_eq!(cpa.affiliate.to_string(), b.sub());
    assert_eq!(cpa.amount.minor(), 10_000);
    let over = of_slot(&report, |s| matches!(s, Slot::Override { level: 1, .. }))
        .into_iter()
        .next()
        .expect("override");
    assert_eq!(over.affiliate.to_string(), b.parent());
    assert_eq!(over.amount.minor(), 1_000, "100.00 × 10 %");
    assert_eq!(over.references, vec![cpa.id]);

    // Each sees its own line.
    let parent_key = app.issue_key(&format!("affiliates/{}", b.parent())).await;
    let sub_key = app.issue_key(&format!("affiliates/{}", b.sub())).await;
    let body = commissions(&app, &parent_key).await;
    assert_eq!(affiliate_ids(&body), [b.parent()]);
    let line = &lines(block(&body, b.parent()))[0];
    assert_eq!(line["slot_type"], "override");
    assert_eq!(line["amount"], "10.00");
    assert_eq!(line["detail"]["rate"], 1000);
    let body = commissions(&app, &sub_key).await;
    assert_eq!(affiliate_ids(&body), [b.sub()]);
    assert_eq!(lines(block(&body, &b.sub()))[0]["slot_type"], "cpa");
}

#[tokio::test]
async fn a_hybrid_deal_pays_the_cpa_and_the_revshare_on_ngr_built_from_line_items() {
    let app = spawn().await;
    // Payment fee 2.5 %, tax 10 %, admin fee 5 %.
    let b = brand_with_fees(&app, 250, 1_000, 500).await;
    let hybrid = json!({"type": "hybrid",
        "cpa": {"amounts": {"DE": 5000}, "min_first_deposit": 2000, "first_deposit_within_days": 30,
            "min_total_deposits": 2000, "min_wagering": 10000},
        "revshare": flat(2_000, true)["revshare"]});
    deal(&app, &b.sub(), version(hybrid, 0, 0)).await;
    register(&app, &b, 1, "p-1", at(6, 5)).await;
    post(&app, &b, deposit("p-1-dep", "p-1", at(6, 6), "100.00")).await;
    post(&app, &b, kyc("p-1-kyc", "p-1", at(6, 6), "approved")).await;
    post(
        &app,
        &b,
        game("p-1-game", "p-1", at(6, 20), "500.00", "300.00"),
    )
    .await;

    let report = run(&app).await;
    let cpa = of_slot(&report, |s| matches!(s, Slot::Cpa { .. }))
        .into_iter()
        .next()
        .expect("cpa");
    assert_eq!(cpa.amount.minor(), 5_000);
    let rs = of_slot(&report, |s| matches!(s, Slot::RevShare { .. }))
        .into_iter()
        .next()
        .expect("revshare");
    // GGR 200.00; payment fee 2.50; tax 20.00; net 177.50; admin fee 8.875
    // → 8.88; NGR 168.62; × 20 % = 33.724 → 33.72.
    assert_eq!(rs.amount.minor(), 3_372);
    assert_eq!(rs.formula_versions.len(), 1);
    assert_eq!(
        app.sql(
            "SELECT toString(month), formula_version, currency, deposits_minor, ggr_minor, \
             stakes_minor, wins_minor, payment_fee_minor, payment_fee_bps, tax_levy_minor, \
             tax_bps, net_before_admin_fee_minor, admin_fee_minor, admin_fee_bps, ngr_minor, \
             length(event_ids) FROM ngr_statements FORMAT TabSeparated"
        )
        .trim(),
        "2026-06-01\t1\tEUR\t10000\t20000\t50000\t-30000\t-250\t250\t-2000\t1000\t17750\t-888\t500\t16862\t2"
    );

    let sub_key = app.issue_key(&format!("affiliates/{}", b.sub())).await;
    let body = commissions(&app, &sub_key).await;
    assert_eq!(balance(block(&body, &b.sub()), "pending"), 8_372);

    // How the NGR was reached, for the affiliate whose line names it.
    let path = format!("/api/v1/commissions/statements/{}", rs.statements[0]);
    let statement = commissions_at(&app, &sub_key, &path).await;
    assert_eq!(statement["ngr"]["minor"], 16_862);
    assert_eq!(statement["ngr_decimal"], "168.62");
    let sum: i64 = statement["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["amount"]["minor"].as_i64().expect("minor"))
        .sum();
    assert_eq!(sum, 16_862, "the lines add up to the NGR");
    assert_eq!(app.get_json(&b.key, &path).await.0, 200, "the brand's own");
    let parent_key = app.issue_key(&format!("affiliates/{}", b.parent())).await;
    assert_eq!(
        app.get_json(&parent_key, &path).await.0,
        404,
        "no line of the parent names it"
    );
}

#[tokio::test]
async fn a_player_in_another_currency_is_converted_with_the_fx_table_of_the_month() {
    let app = spawn().await;
    let b = brand(&app).await;
    deal(&app, &b.sub(), version(flat(2_500, true), 0, 0)).await;
    register(&app, &b, 1, "p-1", at(6, 5)).await;
    post(&app, &b, kyc("p-1-kyc", "p-1", at(6, 5), "approved")).await;
    post(
        &app,
        &b,
        json!({"event_id": "p-1-game", "type": "game_activity", "occurred_at": at(6, 20),
            "player_id": "p-1", "stakes": "1000.00", "wins": "0.00", "currency": "USD"}),
    )
    .await;

    // No table for June: the run does not guess. The affiliate's RevShare
    // is held and listed as a problem; nothing is stored for it.
    let report = run(&app).await;
    assert!(report.entries.is_empty(), "{:?}", report.entries);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].kind.code(), "no_fx_table");
    assert_eq!(report.problems[0].held.code(), "affiliate_revshare");
    assert!(report.problems[0]
        .message
        .contains("no FX table for 2026-06"));
    assert_eq!(app.count("commission_ledger"), 0);
    let (s, listed) = app
        .get_json(OPERATOR_TOKEN, "/admin/v1/commissions/problems")
        .await;
    assert_eq!(s, 200, "{listed}");
    assert_eq!(listed["still_failing"], 1, "{listed}");
    assert_eq!(listed["problems"][0]["kind"], "no_fx_table");
    assert_eq!(listed["problems"][0]["affiliate_id"], b.sub());

    let (s, body) = app
        .admin_post(
            "fx-tables",
            json!({"month": "2026-06", "version": 7, "rates": [
                {"from": "USD", "to": "EUR", "numerator": 92, "denominator": 100}]}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let report = run(&app).await;
    let rs = of_slot(&report, |s| matches!(s, Slot::RevShare { .. }));
    assert_eq!(rs.len(), 1, "{:?}", report.entries);
    // 1 000.00 USD × 0.92 = 920.00 EUR; × 25 % = 230.00 EUR.
    assert_eq!(rs[0].amount.minor(), 23_000);
    assert_eq!(rs[0].amount.currency().as_str(), "EUR");
    assert_eq!(rs[0].fx_versions, vec![7]);
    assert!(report.problems.is_empty());
    let (_, listed) = app
        .get_json(OPERATOR_TOKEN, "/admin/v1/commissions/problems")
        .await;
    assert_eq!(listed["still_failing"], 0, "repaired: {listed}");
    assert_eq!(listed["problems"][0]["still_failing"], false, "{listed}");
}

#[tokio::test]
async fn the_commissions_endpoint_shows_each_caller_only_what_it_may_see() {
    let app = spawn().await;
    let a = brand(&app).await;
    let b = brand(&app).await;
    let hybrid = json!({"type": "hybrid", "cpa": cpa(10_000)["cpa"],
        "revshare": flat(2_500, true)["revshare"]});
    deal(&app, &a.sub(), version(hybrid, 0, 0)).await;
    deal(&app, &b.sub(), version(cpa(10_000), 0, 0)).await;
    for x in [&a, &b] {
        qualify(&app, x, 1, "p-1", 6).await;
    }
    // A's sub-affiliate also promotes brand B: its June RevShare then mixes
    // the NGR of both brands.
    let (s, link) = app
        .admin_post(
            "links",
            json!({"brand_id": b.id(), "affiliate_id": a.sub(), "campaign_id": b.f.campaign_id,
                "destination_template": "https://b.example/join?cid={click_id}"}),
        )
        .await;
    assert_eq!(s, 201, "{link}");
    let via_a = Fixture {
        brand_id: b.id().to_owned(),
        affiliate_id: a.parent().to_owned(),
        campaign_id: b.f.campaign_id.clone(),
        code: link["code"].as_str().expect("code").to_owned(),
    };
    let mut c = click(&via_a, &mut ClickIdGenerator::new(), 2);
    let id = ClickIdGenerator::new().next_id(at(6, 5) - HOUR_MS, [2; 10]);
    c.click_id = id.to_string();
    c.clicked_at_ms = id.timestamp_ms();
    c.sub_affiliate_id = a.sub();
    let (s, body) = app.post_batch(std::slice::from_ref(&c), &[]).await;
    assert_eq!(s, 200, "{body}");
    post(&app, &b, registration("p-2", &c, at(6, 5))).await;
    post(&app, &b, kyc("p-2-kyc", "p-2", at(6, 6), "approved")).await;
    post(
        &app,
        &b,
        game("p-2-game", "p-2", at(6, 7), "100.00", "0.00"),
    )
    .await;
    let report = run(&app).await;
    let mixed = of_slot(&report, |s| matches!(s, Slot::RevShare { .. }));
    assert_eq!(mixed.len(), 1, "{:?}", report.entries);
    assert_eq!(mixed[0].affiliate.to_string(), a.sub());

    // No key, or a wrong one: 401.
    let r = app
        .http
        .get(format!("{}/api/v1/commissions", app.address))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        app.get_json("not-a-key", "/api/v1/commissions").await.0,
        401
    );

    // The operator sees everything.
    let mut all = affiliate_ids(&commissions(&app, OPERATOR_TOKEN).await);
    all.sort();
    let mut both = vec![a.sub(), b.sub()];
    both.sort();
    assert_eq!(all, both);

    // An affiliate key sees its own lines only, whatever it asks for.
    let a_key = app.issue_key(&format!("affiliates/{}", a.sub())).await;
    let body = commissions(&app, &a_key).await;
    assert_eq!(body["scope"]["type"], "affiliate");
    assert_eq!(affiliate_ids(&body), [a.sub()]);
    let other = format!("/api/v1/commissions?affiliate_id={}", b.sub());
    assert_eq!(
        commissions_at(&app, &a_key, &other).await["affiliates"],
        json!([])
    );

    let mine = commissions(&app, &a_key).await;
    let kinds: Vec<&Value> = lines(block(&mine, &a.sub()))
        .iter()
        .map(|l| &l["slot_type"])
        .collect();
    assert_eq!(kinds, [&json!("cpa"), &json!("rev_share")]);

    // A brand key sees the lines about its brand alone: never the other
    // brand's, and not the RevShare line that mixes both.
    for (key, own, brand_id) in [(&a.key, a.sub(), a.id()), (&b.key, b.sub(), b.id())] {
        let body = commissions(&app, key).await;
        assert_eq!(body["scope"]["type"], "brand");
        assert_eq!(affiliate_ids(&body), std::slice::from_ref(&own));
        for l in lines(block(&body, &own)) {
            assert_eq!(l["brand_ids"], json!([brand_id]), "{l}");
            assert_eq!(l["slot_type"], "cpa", "{l}");
        }
    }
    assert_eq!(
        commissions_at(&app, &a.key, &other).await["affiliates"],
        json!([])
    );
    // And the operator can narrow down.
    assert_eq!(
        affiliate_ids(&commissions_at(&app, OPERATOR_TOKEN, &other).await),
        [b.sub()]
    );
}

#[tokio::test]
async fn commissions_are_held_after_the_close_and_small_balances_roll_over() {
    let app = spawn().await;
    let b = brand(&app).await;
    // CPA 60.00, hold 30 days, minimum payout 100.00.
    deal(&app, &b.sub(), version(cpa(6_000), 30, 10_000)).await;
    qualify(&app, &b, 1, "p-1", 6).await;
    let (s, body) = close(
        &app,
        "2026-06",
        json!({"closed_at": "2026-07-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(
        body["run"]["entries_appended"], 1,
        "the close runs the job first"
    );
    // Payable since 31 July, but 60.00 < 100.00: rolls over.
    let small = payouts(&app, json!({})).await;
    assert_eq!(small["paid"], json!([]), "{small}");
    assert_eq!(small["rolled_over"][0]["payable"]["minor"], 6_000);
    assert_eq!(small["rolled_over"][0]["min_payout"]["minor"], 10_000);

    qualify(&app, &b, 2, "p-2", 7).await;
    let (s, body) = close(&app, "2026-07", json!({"closed_at": 1_785_542_400_000u64})).await;
    assert_eq!(s, 201, "{body}");
    let paid = payouts(&app, json!({})).await;
    assert_eq!(paid["paid"][0]["amount_minor"], 12_000, "{paid}");
    assert_eq!(paid["paid"][0]["covers"].as_array().map(Vec::len), Some(2));

    // August closes now: held for 30 days.
    qualify(&app, &b, 3, "p-3", 8).await;
    let (s, body) = close(&app, "2026-08", json!({})).await;
    assert_eq!(s, 201, "{body}");
    let body = commissions(&app, OPERATOR_TOKEN).await;
    let mine = block(&body, &b.sub());
    assert_eq!(
        (
            balance(mine, "pending"),
            balance(mine, "approved"),
            balance(mine, "payable"),
            balance(mine, "paid")
        ),
        (0, 6_000, 0, 12_000)
    );
    let held = commissions_at(&app, OPERATOR_TOKEN, "/api/v1/commissions?state=approved").await;
    let held = lines(block(&held, &b.sub()));
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["period"], "2026-08");
    assert!(held[0]["payable_from"].is_string(), "{}", held[0]);
    assert!(payouts(&app, json!({})).await["paid"] == json!([]));
}

#[tokio::test]
async fn bad_configuration_and_closes_are_refused_with_reasons_and_nothing_is_stored() {
    let app = spawn().await;
    let b = brand(&app).await;
    let count = |table: &str| app.count(table);

    // Deals: checked by the engine's parser, then against the catalogue.
    let mut bad = version(flat(10_001, true), 0, 0);
    bad["surprise"] = json!(1);
    let (s, body) = app
        .admin_post(
            "deals",
            json!({"affiliate": b.sub(), "currency": "EUR", "versions": [bad]}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body["details"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("surprise")),
        "{body}"
    );
    let (s, body) = app
        .admin_post(
            "deals",
            json!({"affiliate": b.sub(), "currency": "EUR", "versions": [version(flat(10_001, true), 0, 0)]}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body["details"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("10001")),
        "{body}"
    );
    let (s, body) = app
        .admin_post(
            "deals",
            json!({"affiliate": "0190a1b2-0000-7000-8000-0000000000ff", "currency": "EUR",
                "versions": [version(cpa(100), 0, 0)]}),
        )
        .await;
    assert_eq!(
        (s, body["details"][0]["field"].clone()),
        (422, json!("affiliate"))
    );
    assert_eq!(count("commission_deals"), 0);

    // Stored versions never change; the currency neither; the same deal
    // again is fine.
    deal(&app, &b.sub(), version(cpa(10_000), 0, 0)).await;
    let same =
        json!({"affiliate": b.sub(), "currency": "EUR", "versions": [version(cpa(10_000), 0, 0)]});
    assert_eq!(app.admin_post("deals", same.clone()).await.0, 200);
    let mut changed = same.clone();
    changed["versions"][0]["plan"] = cpa(20_000);
    let (s, body) = app.admin_post("deals", changed).await;
    assert_eq!(
        (s, body["details"][0]["field"].clone()),
        (422, json!("versions[0]")),
        "{body}"
    );
    let mut usd = same.clone();
    usd["currency"] = json!("USD");
    assert_eq!(app.admin_post("deals", usd).await.0, 422);
    let mut added = same.clone();
    let mut v2 = version(cpa(20_000), 0, 0);
    v2["version"] = json!(2);
    v2["effective_from"] = json!("2026-09");
    added["versions"] = json!([version(cpa(10_000), 0, 0), v2]);
    assert_eq!(app.admin_post("deals", added).await.0, 201);
    assert_eq!(count("commission_deals FINAL"), 2);

    // Formulas and FX tables.
    let (s, body) = app
        .admin_post(
            "ngr-formulas",
            json!({"brand": b.id(), "versions": [{"version": 1, "effective_from": "2026-01",
                "payment_fee_bps": -1, "tax_bps": 0, "admin_fee_bps": 0}]}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    let (s, body) = app
        .admin_post(
            "fx-tables",
            json!({"month": "2026-06", "version": 1, "rates": [
                {"from": "USD", "to": "EUR", "numerator": 0, "denominator": 100}]}),
        )
        .await;
    assert_eq!(
        (s, body["details"][0]["field"].clone()),
        (422, json!("rates[0].numerator"))
    );
    let table = json!({"month": "2026-06", "version": 7, "rates": [
        {"from": "USD", "to": "EUR", "numerator": 92, "denominator": 100}]});
    assert_eq!(app.admin_post("fx-tables", table.clone()).await.0, 201);
    assert_eq!(app.admin_post("fx-tables", table).await.0, 200);
    let older = json!({"month": "2026-06", "version": 6, "rates": [
        {"from": "USD", "to": "EUR", "numerator": 93, "denominator": 100}]});
    assert_eq!(app.admin_post("fx-tables", older).await.0, 422);
    assert_eq!(count("commission_fx_rates"), 1);

    // Periods: a real month, closed after it ends, in order, once.
    assert_eq!(close(&app, "2026-13", json!({})).await.0, 422);
    let (s, body) = close(&app, "2099-01", json!({})).await;
    assert_eq!(s, 422, "a month that has not ended: {body}");
    let (s, body) = close(
        &app,
        "2026-06",
        json!({"closed_at": "2026-06-30T00:00:00Z"}),
    )
    .await;
    assert_eq!(s, 422, "before the month's end: {body}");
    let (s, body) = close(
        &app,
        "2026-06",
        json!({"closed_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(s, 422, "in the future: {body}");
    assert_eq!(count("commission_period_closes"), 0);
    assert_eq!(close(&app, "2026-06", json!({})).await.0, 201);
    let (s, body) = close(&app, "2026-08", json!({})).await;
    assert_eq!(s, 409, "July first: {body}");
    assert_eq!(close(&app, "2026-06", json!({})).await.0, 409);
    assert_eq!(count("commission_period_closes"), 1);
    let (s, periods) = app.get_json(OPERATOR_TOKEN, "/admin/v1/periods").await;
    assert_eq!(s, 200);
    assert_eq!(periods["closed"][0]["month"], "2026-06");
}

#[tokio::test]
async fn the_background_job_books_commissions_when_enabled() {
    let app = spawn_app_configured(|s| {
        s.ingest.max_click_age_hours = 24 * 365 * 30;
        s.commissions.job_enabled = true;
        s.commissions.job_interval_secs = 1;
    })
    .await;
    let b = brand(&app).await;
    deal(&app, &b.sub(), version(cpa(10_000), 0, 0)).await;
    qualify(&app, &b, 1, "p-1", 6).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let body = commissions(&app, OPERATOR_TOKEN).await;
        if !body["affiliates"].as_array().is_some_and(Vec::is_empty) {
            assert_eq!(balance(block(&body, &b.sub()), "pending"), 10_000);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the job never ran");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A registration of `player` on device `device`, an hour after a click of
/// that device on the brand's link.
async fn register_on_device(app: &TestApp, b: &Brand, n: u8, player: &str, at_ms: u64) -> Value {
    let c = click_at(app, &b.f, n, at_ms - HOUR_MS).await;
    let mut event = registration(player, &c, at_ms);
    event["device_fingerprint"] = json!(c.device_fingerprint);
    event["ip"] = json!(format!("198.51.100.{}", player.len() * 7 % 250));
    let (s, _, body) = app.post_event(&b.key, event).await;
    assert_eq!(s, 201, "{body}");
    body
}

#[tokio::test]
async fn a_player_confirmed_as_fraud_after_accrual_has_the_cpa_clawed_back() {
    let app = spawn().await;
    let b = brand(&app).await;
    deal(&app, &b.sub(), version(cpa(10_000), 0, 0)).await;
    // p-1 qualifies on device 9 and earns the CPA.
    let first = register_on_device(&app, &b, 9, "p-1", at(6, 5)).await;
    assert_eq!(first["fraud"]["quarantined"], false, "{first}");
    pay_in_and_play(&app, &b, "p-1", 6).await;
    post(&app, &b, kyc("p-1-kyc", "p-1", at(6, 15), "approved")).await;
    let report = run(&app).await;
    assert_eq!(report.entries.len(), 1, "{:?}", report.entries);
    assert_eq!(report.entries[0].kind, EntryKind::Accrual);

    // More accounts on the same device the same week: a bonus-abuse ring.
    // The registration that crosses the limit quarantines the earlier ones.
    let mut last = Value::Null;
    for (i, player) in ["p-2", "p-3", "p-4", "p-5", "p-6"].iter().enumerate() {
        last = register_on_device(&app, &b, 9, player, at(6, 5) + (i as u64 + 1) * HOUR_MS).await;
    }
    assert_eq!(last["fraud"]["quarantined"], true, "{last}");
    let (s, queue) = app
        .get_json(
            OPERATOR_TOKEN,
            &format!(
                "/api/v1/fraud/quarantine?brand_id={}&kind=registration&status=pending",
                b.id()
            ),
        )
        .await;
    assert_eq!(s, 200, "{queue}");
    let items = queue["items"].as_array().expect("items");
    let p1 = items
        .iter()
        .find(|i| i["id"] == "p-1-reg")
        .unwrap_or_else(|| panic!("p-1's registration is not held: {queue}"));
    assert_eq!(p1["status"], "pending");
    assert!(p1["escalated_by"].is_string(), "{p1}");
    assert!(
        p1["signals"].to_string().contains("device_registrations"),
        "{p1}"
    );

    // The brand's own key sees its own holds only (affiliates see none:
    // `fraud_review.rs`).
    let (s, own) = app.get_json(&b.key, "/api/v1/fraud/quarantine").await;
    assert_eq!(s, 200, "{own}");
    let own = own["items"].as_array().expect("items");
    assert!(own.iter().any(|i| i["id"] == "p-1-reg"), "{own:?}");
    assert!(own.iter().all(|i| i["brand_id"] == b.id()), "{own:?}");

    // The operator rejects p-1: confirmed fraud, recorded with who and when.
    let decide = |verdict: &str| json!({"brand_id": b.id(), "decision": verdict, "reviewer": "alice@operator", "note": "same device as 5 others"});
    let (s, decision) = app
        .post_json(
            OPERATOR_TOKEN,
            "/api/v1/fraud/quarantine/registration/p-1-reg/decision",
            decide("reject"),
        )
        .await;
    assert_eq!(s, 201, "{decision}");
    assert_eq!(decision["decision"], "rejected");
    assert_eq!(decision["reviewer"], "alice@operator");
    assert!(decision["decided_at_ms"].as_u64().expect("time") > 0);
    let (s, again) = app
        .post_json(
            OPERATOR_TOKEN,
            "/api/v1/fraud/quarantine/registration/p-1-reg/decision",
            decide("approve"),
        )
        .await;
    assert_eq!(s, 409, "{again}");
    let (s, missing) = app
        .post_json(
            OPERATOR_TOKEN,
            "/api/v1/fraud/quarantine/registration/no-such-reg/decision",
            decide("approve"),
        )
        .await;
    assert_eq!(s, 404, "{missing}");

    // The next run claws the CPA back: a reversal naming the accrual and
    // the review as its cause.
    let accrual_id = report.entries[0].id;
    let report = run(&app).await;
    let reversal = report
        .entries
        .iter()
        .find(|e| e.kind == EntryKind::Reversal)
        .unwrap_or_else(|| panic!("no reversal in {:?}", report.entries));
    assert_eq!(reversal.amount.minor(), -10_000);
    assert!(reversal.references.contains(&accrual_id), "{reversal:?}");
    assert!(
        matches!(reversal.reason, Reason::FraudConfirmed { .. }),
        "{:?}",
        reversal.reason
    );
    let body = commissions(&app, OPERATOR_TOKEN).await;
    let mine = block(&body, &b.sub());
    assert_eq!(balance(mine, "pending"), 0, "{mine}");
}
