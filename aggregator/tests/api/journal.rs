//! Brand events through the local write-ahead journal
//! (`attribution.journal_dir`): acknowledged once fsynced, in ClickHouse
//! shortly after, kept across ClickHouse outages and restarts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use clickstitch_shared::{ClickIdGenerator, RawClick};

use crate::helpers::{
    click, now_ms, spawn_app_configured, spawn_app_own_clickhouse_configured, Fixture, TestApp,
};

fn registration(event_id: &str, player: &str, click: &RawClick, at_ms: u64) -> Value {
    json!({
        "event_id": event_id, "type": "registration", "occurred_at": at_ms,
        "player_id": player, "country": "DE", "click_ids": [click.click_id],
    })
}

fn deposit(event_id: &str, player: &str) -> Value {
    json!({
        "event_id": event_id, "type": "deposit", "occurred_at": now_ms(),
        "player_id": player, "amount": "50.00", "currency": "EUR",
    })
}

/// Seeds the catalogue, a brand key and `n` stored clicks.
async fn prepare(app: &TestApp, n: u8) -> (Fixture, String, Vec<RawClick>) {
    let f = app.seed().await;
    let key = app.issue_key(&format!("brands/{}", f.brand_id)).await;
    let mut ids = ClickIdGenerator::new();
    let clicks: Vec<RawClick> = (0..n).map(|i| click(&f, &mut ids, i + 1)).collect();
    let (status, body) = app.post_batch(&clicks, &[]).await;
    assert_eq!(status, 200, "{body}");
    (f, key, clicks)
}

/// Posts one registration per click (events `reg-0`, … of players `p-0`,
/// …); each must be acknowledged. Returns the payloads and the answers.
async fn register_all(app: &TestApp, key: &str, clicks: &[RawClick]) -> (Vec<Value>, Vec<Value>) {
    let at = now_ms() + 1000;
    let (mut payloads, mut answers) = (Vec::new(), Vec::new());
    for (i, c) in clicks.iter().enumerate() {
        let payload = registration(&format!("reg-{i}"), &format!("p-{i}"), c, at);
        let (status, replayed, body) = app.post_event(key, payload.clone()).await;
        assert_eq!((status, replayed), (201, false), "{body}");
        payloads.push(payload);
        answers.push(body);
    }
    (payloads, answers)
}

fn count_final(app: &TestApp, table: &str) -> u64 {
    app.count(&format!("{table} FINAL"))
}

/// Polls until `table` holds `expected` rows (after deduplication), or
/// fails after `within`.
async fn wait_for_rows(app: &TestApp, table: &str, expected: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let n = count_final(app, table);
        if n == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{table}: {n} rows after {within:?}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn journal_settings(dir: &Path) -> impl FnOnce(&mut clickstitch_aggregator::config::Settings) {
    let dir: PathBuf = dir.to_owned();
    move |s| s.attribution.journal_dir = Some(dir)
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("journal dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("journal-"))
        .count()
}

fn stored_response(app: &TestApp, event_id: &str) -> Value {
    let text = app.sql(&format!(
        "SELECT response FROM player_events FINAL WHERE event_id = '{event_id}' FORMAT JSONEachRow"
    ));
    let row: Value = serde_json::from_str(text.trim()).expect("one row");
    serde_json::from_str(row["response"].as_str().expect("response")).expect("json")
}

#[tokio::test]
async fn events_acknowledged_through_the_journal_are_all_in_clickhouse_shortly_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_configured(journal_settings(dir.path())).await;
    let (_, key, clicks) = prepare(&app, 20).await;

    let (payloads, answers) = register_all(&app, &key, &clicks).await;
    for i in 0..clicks.len() {
        let (status, replayed, body) = app
            .post_event(&key, deposit(&format!("dep-{i}"), &format!("p-{i}")))
            .await;
        assert_eq!((status, replayed), (201, false), "{body}");
    }

    let within = Duration::from_secs(10);
    wait_for_rows(&app, "player_events", 40, within).await;
    wait_for_rows(&app, "players", 20, within).await;
    wait_for_rows(&app, "attributions", 20, within).await;
    // A score per registration and per first deposit.
    wait_for_rows(&app, "fraud_scores", 40, within).await;
    // The rows went through the journal's JSON intact.
    assert_eq!(stored_response(&app, "reg-3"), answers[3]);
    let credited = app.sql("SELECT toString(credit_click_ids[1]) FROM attributions FINAL WHERE brand_player_id = 'p-3'");
    assert_eq!(credited.trim(), clicks[3].click_id);

    // A replay of the same event id returns the first answer; a changed
    // payload is still a conflict.
    let (status, replayed, again) = app.post_event(&key, payloads[3].clone()).await;
    assert_eq!((status, replayed), (200, true), "{again}");
    assert_eq!(again, answers[3]);
    let mut changed = payloads[3].clone();
    changed["country"] = json!("FR");
    let (status, _, conflict) = app.post_event(&key, changed).await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(count_final(&app, "player_events"), 40);
}

#[tokio::test]
async fn a_kyc_decision_right_after_a_journaled_registration_sees_its_attribution() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_configured(journal_settings(dir.path())).await;
    let (_, key, clicks) = prepare(&app, 1).await;
    register_all(&app, &key, &clicks).await;
    // Sent at once: the registration may not be in ClickHouse yet, and KYC
    // reads the attribution from there.
    let kyc = json!({"event_id": "kyc-0", "type": "kyc", "occurred_at": now_ms() + 5000,
        "player_id": "p-0", "status": "approved"});
    let (status, _, body) = app.post_event(&key, kyc).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["attribution"]["status"], "final", "{body}");
    let (status, read) = app.get_json(&key, "/api/v1/players/p-0/attribution").await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["status"], "final");
}

#[tokio::test]
async fn with_clickhouse_stopped_journaled_events_are_still_acknowledged_and_arrive_once_it_is_back(
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = spawn_app_own_clickhouse_configured(journal_settings(dir.path())).await;
    let (_, key, clicks) = prepare(&app, 10).await;

    app.ch.own_mut().stop().expect("stop ClickHouse");
    let (_, answers) = register_all(&app, &key, &clicks).await;
    // The attribution is readable through the API at once (from memory).
    let (status, read) = app.get_json(&key, "/api/v1/players/p-4/attribution").await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(
        read["touchpoints"],
        answers[4]["attribution"]["touchpoints"]
    );

    app.ch.own_mut().restart().expect("restart ClickHouse");
    let within = Duration::from_secs(30);
    wait_for_rows(&app, "player_events", 10, within).await;
    wait_for_rows(&app, "players", 10, within).await;
    wait_for_rows(&app, "attributions", 10, within).await;
    wait_for_rows(&app, "fraud_scores", 10, within).await;
    assert_eq!(stored_response(&app, "reg-9"), answers[9]);
}

#[tokio::test]
async fn events_journaled_but_never_shipped_are_in_clickhouse_when_a_restarted_app_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = spawn_app_own_clickhouse_configured(journal_settings(dir.path())).await;
    let (_, key, clicks) = prepare(&app, 10).await;

    app.ch.own_mut().stop().expect("stop ClickHouse");
    let (_, answers) = register_all(&app, &key, &clicks).await;
    // Shut down while ClickHouse is down: the drain gives up, the events
    // stay in the journal.
    app.stop().await;
    app.ch.own_mut().restart().expect("restart ClickHouse");
    assert_eq!(count_final(&app, "player_events"), 0);

    let app = app.restart_with(journal_settings(dir.path())).await;
    // Replayed before the new app serves: no waiting.
    assert_eq!(count_final(&app, "player_events"), 10);
    assert_eq!(count_final(&app, "players"), 10);
    assert_eq!(count_final(&app, "attributions"), 10);
    assert_eq!(count_final(&app, "fraud_scores"), 10);
    assert_eq!(stored_response(&app, "reg-7"), answers[7]);
    // Nothing in the new app's memory: read back from ClickHouse.
    let (status, read) = app.get_json(&key, "/api/v1/players/p-7/attribution").await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(
        read["touchpoints"],
        answers[7]["attribution"]["touchpoints"]
    );
    // And the replayed segments are released once shipped.
    let deadline = Instant::now() + Duration::from_secs(10);
    while segment_count(dir.path()) > 1 {
        assert!(Instant::now() < deadline, "shipped segments are deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
