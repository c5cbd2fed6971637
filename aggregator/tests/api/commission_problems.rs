//! The commission job on awkward real-world data, against a real ClickHouse
//! server: one player's or event's bad data never stops commissions for
//! anyone else. Each test starts from the state that used to stop the job
//! for everyone, shows that the other players are computed (and paid), that
//! the problem is listed for the operator, and that the repair clears it.
//!
//! Bad rows that the intake now refuses are written straight into
//! ClickHouse, as data stored before the intake checked them would be.

use serde_json::{json, Value};

use clickstitch_aggregator::commission::{Reason, Slot};
use clickstitch_shared::ClickIdGenerator;

use crate::commissions::{
    at, brand, close, cpa, deal, flat, game, kyc, of_slot, payouts, post, qualify, register, run,
    spawn, version, Brand, HOUR_MS,
};
use crate::helpers::{click, Fixture, TestApp, OPERATOR_TOKEN};

/// The CPA of `affiliate` in a run report (sum of its CPA entries).
fn cpa_of(
    report: &clickstitch_aggregator::services::commission::job::RunReport,
    affiliate: &str,
) -> i64 {
    of_slot(report, |s| matches!(s, Slot::Cpa { .. }))
        .iter()
        .filter(|e| e.affiliate.to_string() == affiliate)
        .map(|e| e.amount.minor())
        .sum()
}

async fn problems(app: &TestApp, query: &str) -> Value {
    let (s, body) = app
        .get_json(
            OPERATOR_TOKEN,
            &format!("/admin/v1/commissions/problems{query}"),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    body
}

/// Writes a `player_events` row the way an older intake stored it.
#[allow(clippy::too_many_arguments)]
fn legacy_event(
    app: &TestApp,
    b: &Brand,
    event_id: &str,
    player: &str,
    event_type: &str,
    at_ms: u64,
    amount_minor: i64,
    stakes_minor: i64,
    currency: &str,
) {
    app.sql(&format!(
        "INSERT INTO player_events (brand_id, event_id, event_type, occurred_at, occurred_at_ms, \
         brand_player_id, amount_minor, currency, stakes_minor, wins_minor, payload_sha256) \
         VALUES (toUUID('{}'), '{event_id}', '{event_type}', toDateTime({}), {at_ms}, '{player}', \
         {amount_minor}, '{currency}', {stakes_minor}, 0, 'stored-before-the-intake-checked')",
        b.id(),
        at_ms / 1000,
    ));
}

/// Two players of one brand and affiliate who both qualify for the 100.00
/// CPA in June (`p-bad` and `p-good`), with hold 0 and no minimum payout.
async fn two_players(app: &TestApp, plan: Value) -> Brand {
    let b = brand(app).await;
    deal(app, &b.sub(), version(plan, 0, 0)).await;
    qualify(app, &b, 1, "p-bad", 6).await;
    qualify(app, &b, 2, "p-good", 6).await;
    b
}

#[tokio::test]
async fn a_registration_reporting_several_clicks_pays_the_last_click_and_the_job_runs() {
    let app = spawn().await;
    let b = brand(&app).await;
    let (s, rival) = app
        .admin_post("affiliates", json!({"name": "Rival Media"}))
        .await;
    assert_eq!(s, 201, "{rival}");
    let rival = rival["affiliate_id"].as_str().expect("id").to_owned();
    let (s, link) = app
        .admin_post(
            "links",
            json!({"brand_id": b.id(), "affiliate_id": rival, "campaign_id": b.f.campaign_id,
                "destination_template": "https://b.example/join?cid={click_id}"}),
        )
        .await;
    assert_eq!(s, 201, "{link}");
    // GB players fall under the global last-click rules.
    let gb = json!({"type": "cpa", "cpa": {"amounts": {"GB": 10_000}, "min_first_deposit": 2000,
        "first_deposit_within_days": 30, "min_total_deposits": 5000, "min_wagering": 10000}});
    for a in [b.sub(), rival.clone()] {
        deal(&app, &a, version(gb.clone(), 0, 0)).await;
    }
    // The rival's click three hours before, ours one hour before: the
    // registration reports both (cookie history), in any order.
    let via_rival = Fixture {
        brand_id: b.id().to_owned(),
        affiliate_id: rival.clone(),
        campaign_id: b.f.campaign_id.clone(),
        code: link["code"].as_str().expect("code").to_owned(),
    };
    let mut first = click(&via_rival, &mut ClickIdGenerator::new(), 3);
    let id = ClickIdGenerator::new().next_id(at(6, 5) - 3 * HOUR_MS, [3; 10]);
    first.click_id = id.to_string();
    first.clicked_at_ms = id.timestamp_ms();
    let (s, body) = app.post_batch(std::slice::from_ref(&first), &[]).await;
    assert_eq!(s, 200, "{body}");
    let last = crate::commissions::click_at(&app, &b.f, 1, at(6, 5) - HOUR_MS).await;
    let (s, _, body) = app
        .post_event(
            &b.key,
            json!({"event_id": "p-1-reg", "type": "registration", "occurred_at": at(6, 5),
                "player_id": "p-1", "country": "GB",
                "click_ids": [last.click_id, first.click_id]}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    crate::commissions::pay_in_and_play(&app, &b, "p-1", 6).await;
    post(&app, &b, kyc("p-1-kyc", "p-1", at(6, 15), "approved")).await;

    let report = run(&app).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(cpa_of(&report, &b.sub()), 10_000, "the last click earns");
    assert_eq!(
        cpa_of(&report, &rival),
        0,
        "the losing touchpoint earns nothing"
    );
    let shares = app.sql("SELECT arraySort(credit_bps) FROM attributions FINAL");
    assert_eq!(shares.trim(), "[0,10000]", "the stored attribution agrees");
}

#[tokio::test]
async fn a_player_held_after_their_cpa_accrued_is_reversed_as_no_longer_earned_and_others_go_on() {
    let app = spawn().await;
    let b = brand(&app).await;
    deal(&app, &b.sub(), version(cpa(10_000), 0, 0)).await;
    qualify(&app, &b, 1, "p-bad", 6).await;
    assert_eq!(cpa_of(&run(&app).await, &b.sub()), 10_000);
    // An escalation later holds the player's registration (same device as
    // a fraud ring) while another player qualifies.
    app.sql(&format!(
        "INSERT INTO fraud_scores (brand_id, entity_kind, entity_id, brand_player_id, \
         occurred_at, occurred_at_ms, score, quarantined, policy_version, signals, escalated_by, \
         scored_at, scored_at_ms) VALUES (toUUID('{}'), 'registration', 'p-bad-reg', 'p-bad', \
         toDateTime({}), {}, 90, 1, 'test@1', '[]', 'ring-reg', now(), {})",
        b.id(),
        at(6, 5) / 1000,
        at(6, 5),
        crate::helpers::now_ms(),
    ));
    qualify(&app, &b, 2, "p-good", 6).await;

    let report = run(&app).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.held_players.len(), 1, "{:?}", report.held_players);
    let cpa = of_slot(&report, |s| matches!(s, Slot::Cpa { .. }));
    let reversed: Vec<_> = cpa.iter().filter(|e| e.amount.minor() < 0).collect();
    assert_eq!(reversed.len(), 1, "{cpa:?}");
    assert_eq!(reversed[0].reason, Reason::NoLongerEarned);
    assert_eq!(reversed[0].amount.minor(), -10_000);
    assert!(
        cpa.iter().any(|e| e.amount.minor() == 10_000),
        "the other player accrues: {cpa:?}"
    );

    // The reviewer approves: the CPA comes back.
    let (s, body) = app
        .post_json(
            OPERATOR_TOKEN,
            "/api/v1/fraud/quarantine/registration/p-bad-reg/decision",
            json!({"brand_id": b.id(), "decision": "approve", "reviewer": "risk@operator"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let report = run(&app).await;
    assert_eq!(cpa_of(&report, &b.sub()), 10_000, "{:?}", report.entries);
    assert!(report.held_players.is_empty());
}

#[tokio::test]
async fn an_event_in_another_currency_is_refused_and_a_stored_one_holds_only_its_player_until_voided(
) {
    let app = spawn().await;
    let b = two_players(
        &app,
        json!({"type": "hybrid", "cpa": cpa(10_000)["cpa"],
        "revshare": flat(2_500, true)["revshare"]}),
    )
    .await;
    // Refused at the door, naming the field; made-up codes too.
    for currency in ["GBP", "ZZZ", "XYZ"] {
        let (s, _, body) = app
            .post_event(
                &b.key,
                json!({"event_id": format!("bonus-{currency}"), "type": "bonus",
                    "occurred_at": at(6, 20), "player_id": "p-bad", "amount": "5.00",
                    "currency": currency}),
            )
            .await;
        assert_eq!(s, 422, "{body}");
        assert_eq!(body["details"][0]["field"], "currency", "{body}");
    }
    // Stored before the intake checked it: the job still runs.
    legacy_event(
        &app,
        &b,
        "bonus-gbp",
        "p-bad",
        "bonus",
        at(6, 20),
        500,
        0,
        "GBP",
    );
    let report = run(&app).await;
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let p = &report.problems[0];
    assert_eq!(p.kind.code(), "wrong_currency");
    assert_eq!(p.held.code(), "player");
    assert_eq!(p.events[0].as_str(), "bonus-gbp");
    assert_eq!(
        cpa_of(&report, &b.sub()),
        10_000,
        "p-good's CPA accrues; p-bad's is held, not reversed"
    );
    let listed = problems(&app, "?still_failing=true").await;
    assert_eq!(listed["problems"][0]["event_ids"], json!(["bonus-gbp"]));
    assert_eq!(listed["problems"][0]["brand_id"], b.id());
    assert!(listed["problems"][0]["first_seen"].is_string());

    // Everyone else is paid while the problem stands: p-good's CPA 100.00
    // and RevShare (150.00 − 100.00) × 25 % = 12.50.
    assert_eq!(close(&app, "2026-06", json!({})).await.0, 201);
    let paid = payouts(&app, json!({})).await;
    assert_eq!(paid["paid"][0]["amount_minor"], 11_250, "{paid}");

    // The brand voids its event: the original stays stored, the player is
    // computed again and the problem clears.
    let (s, _, body) = app
        .post_event(
            &b.key,
            json!({"event_id": "void-1", "type": "void", "occurred_at": at(6, 21),
                "player_id": "p-bad", "voids_event_id": "bonus-gbp",
                "reason": "sent in the wrong currency"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let report = run(&app).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(cpa_of(&report, &b.sub()), 10_000, "p-bad's CPA now accrues");
    assert_eq!(
        app.count("player_events FINAL WHERE event_id = 'bonus-gbp'"),
        1,
        "the original stays stored"
    );
    assert_eq!(
        problems(&app, "?still_failing=true").await["problems"],
        json!([])
    );
}

#[tokio::test]
async fn a_correction_replaces_the_original_and_bad_repairs_are_refused() {
    let app = spawn().await;
    let b = brand(&app).await;
    deal(&app, &b.sub(), version(flat(2_500, true), 0, 0)).await;
    register(&app, &b, 1, "p-1", at(6, 5)).await;
    post(&app, &b, kyc("p-1-kyc", "p-1", at(6, 5), "approved")).await;
    post(&app, &b, game("g-1", "p-1", at(6, 20), "1000.00", "0.00")).await;
    let first = run(&app).await;
    let rs = of_slot(&first, |s| matches!(s, Slot::RevShare { .. }));
    assert_eq!(rs[0].amount.minor(), 25_000, "1 000.00 × 25 %");

    // The brand sent 1 000.00 but meant 100.00.
    let fix = json!({"event_id": "g-1-fix", "type": "game_activity", "occurred_at": at(6, 20),
        "player_id": "p-1", "stakes": "100.00", "wins": "0.00", "currency": "EUR",
        "corrects_event_id": "g-1"});
    post(&app, &b, fix.clone()).await;
    let report = run(&app).await;
    let rs = of_slot(&report, |s| matches!(s, Slot::RevShare { .. }));
    assert_eq!(rs.len(), 1, "{:?}", report.entries);
    assert_eq!(rs[0].amount.minor(), -22_500, "adjusted to 100.00 × 25 %");
    assert_eq!(rs[0].slot_total.minor(), 2_500);
    assert!(rs[0].references.contains(&first.entries[0].id));
    // A replay of the correction is idempotent.
    let (s, replayed, _) = app.post_event(&b.key, fix).await;
    assert_eq!((s, replayed), (200, true));

    let refused = |event: Value, field: &'static str| {
        let app = &app;
        let key = b.key.clone();
        async move {
            let (s, _, body) = app.post_event(&key, event).await;
            assert_eq!(s, 422, "{body}");
            assert_eq!(body["details"][0]["field"], field, "{body}");
        }
    };
    // Already corrected: correct the correction instead.
    refused(
        json!({"event_id": "v-2", "type": "void", "occurred_at": at(6, 21), "player_id": "p-1",
            "voids_event_id": "g-1"}),
        "voids_event_id",
    )
    .await;
    // Unknown, another player's, a registration, another type.
    refused(
        json!({"event_id": "v-3", "type": "void", "occurred_at": at(6, 21), "player_id": "p-1",
            "voids_event_id": "nope"}),
        "voids_event_id",
    )
    .await;
    refused(
        json!({"event_id": "v-4", "type": "void", "occurred_at": at(6, 21), "player_id": "p-2",
            "voids_event_id": "g-1-fix"}),
        "voids_event_id",
    )
    .await;
    refused(
        json!({"event_id": "v-5", "type": "void", "occurred_at": at(6, 21), "player_id": "p-1",
            "voids_event_id": "p-1-reg"}),
        "voids_event_id",
    )
    .await;
    refused(
        json!({"event_id": "b-1", "type": "bonus", "occurred_at": at(6, 21), "player_id": "p-1",
            "amount": "1.00", "currency": "EUR", "corrects_event_id": "g-1-fix"}),
        "corrects_event_id",
    )
    .await;
    assert_eq!(app.count("event_voids FINAL"), 1);
}

#[tokio::test]
async fn a_deposit_dated_in_a_month_without_a_formula_is_refused_and_a_stored_one_holds_only_its_player(
) {
    let app = spawn().await;
    let b = two_players(
        &app,
        json!({"type": "hybrid", "cpa": cpa(10_000)["cpa"],
        "revshare": flat(2_500, true)["revshare"]}),
    )
    .await;
    let (s, _, body) = app
        .post_event(
            &b.key,
            json!({"event_id": "old-dep", "type": "deposit", "occurred_at": "2020-01-15T12:00:00Z",
                "player_id": "p-bad", "amount": "50.00", "currency": "EUR"}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["details"][0]["field"], "occurred_at", "{body}");
    // Inside the backdating window, but before the brand's formula starts
    // (2026-01): refused too, naming the reason.
    let (s, _, body) = app
        .post_event(
            &b.key,
            json!({"event_id": "dec-dep", "type": "deposit", "occurred_at": "2025-12-15T12:00:00Z",
                "player_id": "p-bad", "amount": "50.00", "currency": "EUR"}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["details"][0]["field"], "occurred_at", "{body}");
    assert!(
        body["details"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("NGR formula")),
        "{body}"
    );

    legacy_event(
        &app,
        &b,
        "old-game",
        "p-bad",
        "game_activity",
        1_579_089_600_000,
        0,
        5_000,
        "EUR",
    );
    let report = run(&app).await;
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].kind.code(), "no_ngr_formula");
    assert_eq!(report.problems[0].held.code(), "revshare_contribution");
    // Both CPAs accrue (the formula only matters to RevShare); the RevShare
    // counts p-good's June NGR: (150.00 − 100.00) × 25 % = 12.50.
    assert_eq!(cpa_of(&report, &b.sub()), 20_000);
    let rs = of_slot(&report, |s| matches!(s, Slot::RevShare { .. }));
    let june: i64 = rs.iter().map(|e| e.amount.minor()).sum();
    assert_eq!(june, 1_250, "{rs:?}");

    // Repair: void the stray event.
    let (s, _, body) = app
        .post_event(
            &b.key,
            json!({"event_id": "void-old", "type": "void", "occurred_at": at(6, 21),
                "player_id": "p-bad", "voids_event_id": "old-game"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let report = run(&app).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let rs = of_slot(&report, |s| matches!(s, Slot::RevShare { .. }));
    let added: i64 = rs.iter().map(|e| e.amount.minor()).sum();
    assert_eq!(added, 1_250, "p-bad's June NGR now counts too");
}

#[tokio::test]
async fn stakes_that_overflow_the_arithmetic_hold_only_their_player() {
    let app = spawn().await;
    let b = two_players(
        &app,
        json!({"type": "hybrid", "cpa": cpa(10_000)["cpa"],
        "revshare": flat(2_500, true)["revshare"]}),
    )
    .await;
    let (s, _, body) = app
        .post_event(
            &b.key,
            json!({"event_id": "huge", "type": "game_activity", "occurred_at": at(6, 20),
                "player_id": "p-bad", "stakes": "92233720368547758.07", "wins": "0.00",
                "currency": "EUR"}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["details"][0]["field"], "stakes", "{body}");
    for id in ["huge-1", "huge-2"] {
        legacy_event(
            &app,
            &b,
            id,
            "p-bad",
            "game_activity",
            at(6, 20),
            0,
            i64::MAX - 10,
            "EUR",
        );
    }
    let report = run(&app).await;
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].kind.code(), "amount_overflow");
    assert_eq!(report.problems[0].held.code(), "revshare_contribution");
    // Both CPAs accrue (p-bad's wagering rule is met either way); only
    // p-bad's NGR, which cannot be computed, is left out of the RevShare.
    assert_eq!(cpa_of(&report, &b.sub()), 20_000);
    let rs = of_slot(&report, |s| matches!(s, Slot::RevShare { .. }));
    let june: i64 = rs.iter().map(|e| e.amount.minor()).sum();
    assert_eq!(june, 1_250, "p-good's NGR only: {rs:?}");
    let listed = problems(&app, "?kind=amount_overflow").await;
    assert!(listed["problems"][0]["player_id"].is_string(), "{listed}");
    let (s, body) = app
        .get_json(
            OPERATOR_TOKEN,
            "/admin/v1/commissions/problems?kind=nonsense",
        )
        .await;
    assert_eq!(s, 422, "{body}");
}

#[tokio::test]
async fn months_close_in_order_and_nothing_is_stranded_in_pending() {
    let app = spawn().await;
    let b = brand(&app).await;
    deal(&app, &b.sub(), version(cpa(10_000), 0, 0)).await;
    qualify(&app, &b, 1, "p-1", 6).await;
    qualify(&app, &b, 2, "p-2", 7).await;
    run(&app).await;
    // July first would leave June's CPA pending forever.
    let (s, body) = close(&app, "2026-07", json!({})).await;
    assert_eq!(s, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("close 2026-06 first")),
        "{body}"
    );
    assert_eq!(app.count("commission_period_closes"), 0);
    assert_eq!(close(&app, "2026-06", json!({})).await.0, 201);
    assert_eq!(close(&app, "2026-08", json!({})).await.0, 409);
    assert_eq!(close(&app, "2026-07", json!({})).await.0, 201);
    let paid = payouts(&app, json!({})).await;
    assert_eq!(paid["paid"][0]["amount_minor"], 20_000, "{paid}");
}

#[tokio::test]
async fn a_player_who_never_qualifies_is_explained_rule_by_rule() {
    let app = spawn().await;
    let b = brand(&app).await;
    deal(&app, &b.sub(), version(cpa(10_000), 0, 0)).await;
    register(&app, &b, 1, "p-1", at(6, 5)).await;
    post(
        &app,
        &b,
        crate::commissions::deposit("p-1-dep", "p-1", at(6, 6), "10.00"),
    )
    .await;
    post(
        &app,
        &b,
        game("p-1-game", "p-1", at(6, 7), "150.00", "100.00"),
    )
    .await;
    run(&app).await;

    let path = format!("/admin/v1/commissions/players/{}/p-1", b.id());
    let (s, body) = app.get_json(OPERATOR_TOKEN, &path).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["attributed"], true, "{body}");
    let check = &body["cpa"][0];
    assert_eq!(check["affiliate_id"], b.sub(), "{body}");
    assert_eq!(check["outcome"], "not_qualified", "{body}");
    let met = |rule: &str| {
        let r = check["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .find(|r| r["rule"] == rule)
            .unwrap_or_else(|| panic!("no rule {rule} in {check}"));
        (
            r["met"].as_bool().expect("met"),
            r["seen"].as_str().expect("seen").to_owned(),
        )
    };
    assert!(met("country").0);
    assert!(met("first_deposit_within_days").0);
    let (ok, seen) = met("min_first_deposit");
    assert!(!ok && seen.contains("10.00"), "{seen}");
    let (ok, seen) = met("min_total_deposits");
    assert!(!ok && seen.contains("10.00"), "{seen}");
    assert!(met("min_wagering").0);
    assert!(!met("kyc").0);
    assert!(met("no_blocking_flag").0);
    assert_eq!(body["lines"], json!([]), "no line: nothing accrued");

    let (s, _) = app
        .get_json(
            OPERATOR_TOKEN,
            &format!("/admin/v1/commissions/players/{}/nobody", b.id()),
        )
        .await;
    assert_eq!(s, 404);
    let (s, body) = app
        .get_json(
            OPERATOR_TOKEN,
            "/admin/v1/commissions/players/not-a-uuid/p-1",
        )
        .await;
    assert_eq!(s, 422, "{body}");
    let (s, _) = app.get_json(&b.key, &path).await;
    assert!(s == 401 || s == 403, "a brand key is not the operator: {s}");
}
