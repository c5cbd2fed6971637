//! Incremental commission runs on a real ClickHouse server: after a full
//! run, a run reads and recomputes only the players whose facts changed,
//! and appends exactly what a full recompute would (a fresh full run
//! afterwards appends nothing). Configuration changes, other writers and
//! the periodic reconcile make a run full.

use std::sync::Arc;

use serde_json::json;

use clickstitch_aggregator::services::commission::incremental::{JobMemory, RunSettings};
use clickstitch_aggregator::services::commission::job::CommissionJob;
use clickstitch_aggregator::store::Store;

use crate::commissions::{at, brand, cpa, deal, flat, game, post, qualify, run, spawn, version};
use crate::helpers::{now_ms, store_config, TestApp};

fn remembering(app: &TestApp, memory: &Arc<JobMemory>, settings: RunSettings) -> CommissionJob {
    CommissionJob::new(Store::new(&store_config(app))).with_memory(Arc::clone(memory), settings)
}

/// `received_at` has second resolution: a run's window starts at the
/// second its previous run started, so what was stored in that second is
/// read again (harmless, but these tests count players). Let a second pass
/// between storing and running.
async fn next_second() {
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
}

#[tokio::test]
async fn a_run_after_a_full_one_recomputes_only_the_changed_players_and_matches_a_full_recompute() {
    let app = spawn().await;
    let hybrid = json!({"type": "hybrid", "cpa": cpa(10_000)["cpa"],
        "revshare": flat(2_500, true)["revshare"]});
    let a = brand(&app).await;
    let b = brand(&app).await;
    deal(&app, &a.sub(), version(hybrid.clone(), 0, 0)).await;
    deal(&app, &b.sub(), version(hybrid, 0, 0)).await;
    qualify(&app, &a, 1, "p-1", 6).await;
    qualify(&app, &a, 2, "p-2", 6).await;
    qualify(&app, &b, 3, "p-3", 6).await;
    next_second().await;

    let memory = Arc::new(JobMemory::default());
    let settings = RunSettings {
        margin_ms: 0,
        ..RunSettings::default()
    };
    let job = remembering(&app, &memory, settings);
    let first = job.run_once(now_ms()).await.expect("first run");
    assert_eq!(first.mode, "full", "nothing kept yet");
    assert_eq!(first.players, 3);
    next_second().await;

    // Nothing new: an incremental run that reads no player.
    let idle = job.run_once(now_ms()).await.expect("idle run");
    assert_eq!(idle.mode, "incremental");
    assert_eq!(idle.players, 0);
    assert!(idle.entries.is_empty());

    // p-2 plays again in June: only p-2 is recomputed, and A's June
    // RevShare moves by (300.00 − 0.00) × 25 % = 75.00.
    post(
        &app,
        &a,
        game("p-2-game-2", "p-2", at(6, 25), "300.00", "0.00"),
    )
    .await;
    next_second().await;
    let inc = job.run_once(now_ms()).await.expect("incremental run");
    assert_eq!(inc.mode, "incremental");
    assert_eq!(inc.players, 1, "only p-2's facts are read");
    let moved: i64 = inc.entries.iter().map(|e| e.amount.minor()).sum();
    assert_eq!(moved, 7_500, "{:?}", inc.entries);
    assert!(inc
        .entries
        .iter()
        .all(|e| e.affiliate.to_string() == a.sub()));

    // A full recompute from scratch agrees: it appends nothing.
    let full = run(&app).await;
    assert_eq!(full.mode, "full");
    assert!(full.entries.is_empty(), "{:?}", full.entries);

    // That run wrote nothing, so the ledger is still ours: incremental.
    post(
        &app,
        &b,
        game("p-3-game-2", "p-3", at(6, 26), "100.00", "0.00"),
    )
    .await;
    next_second().await;
    let inc = job.run_once(now_ms()).await.expect("incremental run");
    assert_eq!(inc.mode, "incremental");
    assert_eq!(inc.players, 1);
    assert_eq!(
        inc.entries.iter().map(|e| e.amount.minor()).sum::<i64>(),
        2_500
    );

    // Another writer appends (a fresh job after a new event): the next run
    // of ours is full, and agrees.
    next_second().await;
    post(
        &app,
        &a,
        game("p-1-game-2", "p-1", at(6, 27), "40.00", "0.00"),
    )
    .await;
    assert!(!run(&app).await.entries.is_empty());
    let after = job.run_once(now_ms()).await.expect("run");
    assert_eq!(after.mode, "full", "the ledger changed outside this job");
    assert!(after.entries.is_empty(), "{:?}", after.entries);

    // A configuration change (a new deal version) makes the next run full.
    let (s, body) = app
        .admin_post(
            "deals",
            json!({"affiliate": b.sub(), "currency": "EUR", "versions": [
                version(json!({"type": "hybrid", "cpa": cpa(10_000)["cpa"],
                    "revshare": flat(2_500, true)["revshare"]}), 0, 0),
                {"version": 2, "effective_from": "2026-07", "hold_days": 0, "clawback_days": 90,
                 "min_payout": 0, "plan": flat(3_000, true)}]}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let after = job.run_once(now_ms()).await.expect("run");
    assert_eq!(after.mode, "full", "the configuration changed");

    // The periodic reconcile.
    let eager = remembering(
        &app,
        &memory,
        RunSettings {
            full_reconcile_ms: 0,
            ..settings
        },
    );
    let after = eager.run_once(now_ms()).await.expect("run");
    assert_eq!(after.mode, "reconcile");
    assert!(after.entries.is_empty());
}

#[tokio::test]
async fn a_late_repair_and_a_new_player_go_through_incremental_runs_like_a_full_one() {
    let app = spawn().await;
    let a = brand(&app).await;
    deal(&app, &a.sub(), version(cpa(10_000), 0, 0)).await;
    qualify(&app, &a, 1, "p-1", 6).await;
    next_second().await;
    let memory = Arc::new(JobMemory::default());
    let settings = RunSettings {
        margin_ms: 0,
        ..RunSettings::default()
    };
    let job = remembering(&app, &memory, settings);
    assert_eq!(job.run_once(now_ms()).await.expect("run").mode, "full");
    next_second().await;

    // A new player qualifies and the first one's deposit is voided (the
    // CPA no longer qualifies: deposits drop below 50.00).
    qualify(&app, &a, 2, "p-2", 6).await;
    post(
        &app,
        &a,
        json!({"event_id": "void-dep", "type": "void", "occurred_at": at(6, 20),
            "player_id": "p-1", "voids_event_id": "p-1-dep-2"}),
    )
    .await;
    let inc = job.run_once(now_ms()).await.expect("run");
    assert_eq!(inc.mode, "incremental");
    assert_eq!(inc.players, 2);
    let mut amounts: Vec<i64> = inc.entries.iter().map(|e| e.amount.minor()).collect();
    amounts.sort();
    assert_eq!(amounts, [-10_000, 10_000], "{:?}", inc.entries);
    assert!(
        run(&app).await.entries.is_empty(),
        "a full recompute agrees"
    );
}
