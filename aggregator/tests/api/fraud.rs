//! Fraud scoring at the aggregator's doors, quarantine, the review API and
//! /metrics (the scenario test on generated traffic is in
//! `fraud_scenarios.rs`).

use serde_json::{json, Value};

use clickstitch_shared::{ClickIdGenerator, RawClick};

use crate::helpers::{click, now_ms, spawn_app, Fixture, TestApp, OPERATOR_TOKEN};

/// `n` human clicks on the fixture's link from one IP within a second.
fn farm(f: &Fixture, ids: &mut ClickIdGenerator, n: usize, ip: &str) -> Vec<RawClick> {
    (0..n)
        .map(|i| {
            let mut c = click(f, ids, (i % 200) as u8);
            c.ip = ip.to_owned();
            c
        })
        .collect()
}

fn registration(event_id: &str, player: &str, c: &RawClick) -> Value {
    json!({
        "event_id": event_id, "type": "registration", "occurred_at": now_ms(),
        "player_id": player, "country": "DE", "click_id": c.click_id,
        "device_fingerprint": c.device_fingerprint,
    })
}

async fn queue(app: &TestApp, query: &str) -> Vec<Value> {
    let (s, body) = app
        .get_json(OPERATOR_TOKEN, &format!("/api/v1/fraud/quarantine?{query}"))
        .await;
    assert_eq!(s, 200, "{body}");
    body["items"].as_array().expect("items").clone()
}

fn score_of(app: &TestApp, click_id: &str) -> String {
    app.sql(&format!(
        "SELECT score, quarantined FROM fraud_scores FINAL WHERE entity_kind = 'click' \
         AND entity_id = '{click_id}' FORMAT TabSeparated"
    ))
    .trim()
    .to_owned()
}

#[tokio::test]
async fn a_click_farm_is_quarantined_with_its_reasons_and_credited_only_once_approved() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let key = app.brand_key(&f).await;
    let mut ids = ClickIdGenerator::new();
    let mut ordinary = click(&f, &mut ids, 201);
    ordinary.ip = "198.51.100.5".into();
    let clicks = farm(&f, &mut ids, 90, "203.0.113.77");
    let (s, body) = app.post_batch(&clicks, &[]).await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = app.post_batch(std::slice::from_ref(&ordinary), &[]).await;
    assert_eq!(s, 200, "{body}");

    // Every click of the farm is held, the early ones too (escalated when
    // the window crossed its limit); the ordinary click has no score row.
    for c in &clicks {
        assert!(
            score_of(&app, &c.click_id).ends_with("\t1"),
            "{} not held",
            c.click_id
        );
    }
    assert_eq!(score_of(&app, &ordinary.click_id), "");
    let held = queue(
        &app,
        &format!(
            "brand_id={}&kind=click&status=pending&limit=500",
            f.brand_id
        ),
    )
    .await;
    assert_eq!(held.len(), clicks.len());
    let last = held
        .iter()
        .find(|i| i["id"] == clicks[89].click_id.as_str())
        .expect("the last farm click is listed");
    let signals = last["signals"].to_string();
    assert!(
        signals.contains("ip_velocity") && signals.contains("subnet_velocity"),
        "{last}"
    );
    assert!(last["score"].as_u64().expect("score") >= 60, "{last}");

    // A registration citing a held click gets no affiliate credit.
    let (s, _, body) = app
        .post_event(&key, registration("reg-farm", "p-farm", &clicks[0]))
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["attribution"]["status"], "unattributed", "{body}");
    assert!(
        body["attribution"]["decision"]
            .to_string()
            .contains("quarantined_for_fraud"),
        "{body}"
    );

    // Approved by an operator, the click counts again.
    let (s, decision) = app
        .post_json(
            OPERATOR_TOKEN,
            &format!(
                "/api/v1/fraud/quarantine/click/{}/decision",
                clicks[1].click_id
            ),
            json!({"brand_id": f.brand_id, "decision": "approve", "reviewer": "bob@operator"}),
        )
        .await;
    assert_eq!(s, 201, "{decision}");
    let (s, _, body) = app
        .post_event(&key, registration("reg-released", "p-released", &clicks[1]))
        .await;
    assert_eq!(s, 201, "{body}");
    assert_ne!(body["attribution"]["status"], "unattributed", "{body}");
    let approved = queue(&app, &format!("brand_id={}&status=approved", f.brand_id)).await;
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["decision"]["reviewer"], "bob@operator");
}

#[tokio::test]
async fn a_decision_needs_the_operator_and_a_reviewer_and_bad_input_gets_every_reason() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let key = app.brand_key(&f).await;
    let path = "/api/v1/fraud/quarantine/click/0190b3a0-0000-7000-8000-000000000000/decision";
    let (s, _) = app
        .post_json(
            &key,
            path,
            json!({"brand_id": f.brand_id, "decision": "reject", "reviewer": "x"}),
        )
        .await;
    assert_eq!(s, 401);
    let (s, body) = app
        .post_json(
            OPERATOR_TOKEN,
            "/api/v1/fraud/quarantine/visit/x/decision",
            json!({"brand_id": "nope", "decision": "maybe", "reviewer": ""}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    let fields = crate::helpers::problem_fields(&body);
    assert_eq!(
        fields,
        ["kind", "brand_id", "decision", "reviewer"],
        "{body}"
    );
    let (s, body) = app
        .get_json(
            OPERATOR_TOKEN,
            "/api/v1/fraud/quarantine?status=lost&limit=0",
        )
        .await;
    assert_eq!(s, 422, "{body}");
}

#[tokio::test]
async fn metrics_count_clicks_by_brand_and_verdict_and_time_conversions() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let key = app.brand_key(&f).await;
    let mut ids = ClickIdGenerator::new();
    let human = click(&f, &mut ids, 1);
    let mut bot = click(&f, &mut ids, 2);
    bot.is_bot = true;
    bot.bot_reason = "known_bot".into();
    let (s, body) = app.post_batch(&[human.clone(), bot], &[]).await;
    assert_eq!(s, 200, "{body}");
    let (s, _, body) = app
        .post_event(&key, registration("reg-m", "p-m", &human))
        .await;
    assert_eq!(s, 201, "{body}");

    let r = reqwest::get(format!("{}/metrics", app.address))
        .await
        .expect("scrape");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("body");
    for line in [
        format!(
            "clicks_total{{brand_id=\"{}\",verdict=\"human\"}} 1",
            f.brand_id
        ),
        format!(
            "clicks_total{{brand_id=\"{}\",verdict=\"bot\"}} 1",
            f.brand_id
        ),
        "fraud_score_count{kind=\"click\"} 2".to_owned(),
        "fraud_score_count{kind=\"registration\"} 1".to_owned(),
        "fraud_score_avg{kind=\"click\"} 50".to_owned(),
        "conversion_latency_ms_count{event_type=\"registration\"} 1".to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&line)),
            "{line:?} missing in:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_restarted_aggregator_keeps_counting_an_ip_from_where_clickhouse_left_it() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let mut ids = ClickIdGenerator::new();
    // 15 clicks from one IP: under the limit of 20 per 10 minutes.
    let before = farm(&f, &mut ids, 15, "192.0.2.10");
    let (s, body) = app.post_batch(&before, &[]).await;
    assert_eq!(s, 200, "{body}");
    assert!(before
        .iter()
        .all(|c| score_of(&app, &c.click_id).is_empty()));
    // A fresh process (nothing in memory) rebuilds its windows from
    // ClickHouse: 10 more clicks make 25, over the limit.
    let restarted = crate::helpers::spawn_on_database(&app.database).await;
    let after = farm(&f, &mut ids, 10, "192.0.2.10");
    let (s, body) = restarted.post_batch(&after, &[]).await;
    assert_eq!(s, 200, "{body}");
    let last = score_of(&restarted, &after[9].click_id);
    assert!(!last.is_empty(), "the 25th click has no score");
    let rows = restarted.sql(&format!(
        "SELECT signals FROM fraud_scores FINAL WHERE entity_id = '{}' FORMAT TabSeparated",
        after[9].click_id
    ));
    assert!(
        rows.contains("ip_velocity") && rows.contains("25 clicks"),
        "{rows}"
    );
}

#[tokio::test]
async fn an_operator_can_run_the_population_sweep_now_and_it_holds_a_thin_farm() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let key = app.brand_key(&f).await;
    let two_hours_ago = now_ms() - 2 * 3_600_000;
    // A click of the fixture's link at `at_ms` from `ip`.
    let click_at = |n: u8, at_ms: u64, ip: String, visitor_id: String| {
        let mut ids = ClickIdGenerator::new();
        let id = ids.next_id(at_ms, [n; 10]);
        let mut c = click(&f, &mut ids, n);
        c.click_id = id.to_string();
        c.clicked_at_ms = id.timestamp_ms();
        c.ip = ip;
        c.visitor_id = visitor_id;
        c
    };
    // Ordinary traffic: 300 clicks from 300 networks, one in five registers.
    let ordinary: Vec<RawClick> = (0..300u32)
        .map(|i| {
            click_at(
                7,
                two_hours_ago + u64::from(i) * 1_000,
                format!("81.{}.{}.9", i / 50 + 10, (i % 50) * 4),
                format!("{:032x}", 0xabc0_0000_u64 + u64::from(i)),
            )
        })
        .collect();
    // A thin farm: 120 clicks over a /22, slower than any velocity limit,
    // and nobody registers.
    let farm_clicks: Vec<RawClick> = (0..120u32)
        .map(|i| {
            click_at(
                9,
                two_hours_ago + u64::from(i) * 30_000,
                format!("93.184.{}.{}", 216 + i % 4, i / 4 + 1),
                String::new(),
            )
        })
        .collect();
    for batch in [&ordinary, &farm_clicks] {
        let (s, body) = app.post_batch(batch, &[]).await;
        assert_eq!(s, 200, "{body}");
    }
    for (i, c) in ordinary.iter().enumerate().filter(|(i, _)| i % 5 == 0) {
        let (s, _, body) = app
            .post_event(
                &key,
                registration(&format!("reg-sw-{i}"), &format!("p-sw-{i}"), c),
            )
            .await;
        assert_eq!(s, 201, "{body}");
    }

    let r = app
        .http
        .post(format!("{}/admin/v1/fraud/sweep", app.address))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 401, "operator only");
    let r = app
        .http
        .post(format!("{}/admin/v1/fraud/sweep", app.address))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.expect("json");
    let findings = body["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{body}");
    assert_eq!(findings[0]["group"], "93.184.216.0/22", "{body}");
    assert_eq!(body["held_clicks"], 120, "{body}");
    assert!(
        findings[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("led to 0 registrations")),
        "{body}"
    );
    let held = queue(&app, "signal=conversion_shortfall&limit=500").await;
    assert_eq!(held.len(), 120);
    // Run again: nothing is held twice.
    let r = app
        .http
        .post(format!("{}/admin/v1/fraud/sweep", app.address))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .expect("sent");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["held_clicks"], 0, "{body}");
}
