use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use clickstitch_shared::{ClickIdGenerator, RawClick};

use crate::helpers::{click, geo_block, spawn_app, spawn_app_with, Options, EDGE_SECRET};

/// Reads stored clicks back as wire records, every column through its text
/// form, so the comparison covers the RowBinary mapping of every field.
fn stored_clicks(app: &crate::helpers::TestApp) -> BTreeMap<String, RawClick> {
    let tsv = app.sql(
        "SELECT toString(click_id), toString(clicked_at_ms), link_code, toString(brand_id), \
         toString(affiliate_id), ifNull(toString(sub_affiliate_id), ''), toString(campaign_id), \
         sub1, sub2, sub3, sub4, sub5, toString(country), region, city, toString(asn), colo, ip, \
         user_agent, referrer, accept_language, device_fingerprint, identity_hash, \
         toString(is_bot), toString(bot_reason), toString(is_duplicate), visitor_id, \
         toString(clicked_at = toDateTime(intDiv(clicked_at_ms, 1000))) \
         FROM clicks_unique FORMAT TabSeparated",
    );
    tsv.lines()
        .map(|line| {
            let f: Vec<String> = line.split('\t').map(unescape_tsv).collect();
            assert_eq!(f.len(), 28, "{line}");
            assert_eq!(f[27], "1", "clicked_at must be the second of clicked_at_ms");
            let raw = RawClick {
                click_id: f[0].clone(),
                clicked_at_ms: f[1].parse().expect("ms"),
                link_code: f[2].clone(),
                brand_id: f[3].clone(),
                affiliate_id: f[4].clone(),
                sub_affiliate_id: f[5].clone(),
                campaign_id: f[6].clone(),
                sub1: f[7].clone(),
                sub2: f[8].clone(),
                sub3: f[9].clone(),
                sub4: f[10].clone(),
                sub5: f[11].clone(),
                country: f[12].clone(),
                region: f[13].clone(),
                city: f[14].clone(),
                asn: f[15].parse().expect("asn"),
                colo: f[16].clone(),
                ip: f[17].clone(),
                user_agent: f[18].clone(),
                referrer: f[19].clone(),
                accept_language: f[20].clone(),
                device_fingerprint: f[21].clone(),
                identity_hash: f[22].clone(),
                is_bot: f[23] == "1",
                bot_reason: if f[24] == "none" {
                    String::new()
                } else {
                    f[24].clone()
                },
                is_duplicate: f[25] == "1",
                visitor_id: f[26].clone(),
            };
            (raw.click_id.clone(), raw)
        })
        .collect()
}

fn unescape_tsv(s: &str) -> String {
    s.replace("\\t", "\t")
        .replace("\\n", "\n")
        .replace("\\\\", "\\")
}

#[tokio::test]
async fn a_valid_batch_is_stored_with_every_field_intact() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let mut ids = ClickIdGenerator::new();
    let human = click(&f, &mut ids, 1);
    let mut bot = click(&f, &mut ids, 2);
    bot.is_bot = true;
    bot.bot_reason = "link_preview".into();
    bot.is_duplicate = false;
    bot.sub_affiliate_id = f.sub_affiliate_id();
    let mut dup = click(&f, &mut ids, 3);
    dup.is_duplicate = true;
    dup.ip = "2001:db8::7".into();
    let block = geo_block(&f, &mut ids);

    let (status, body) = app
        .post_batch(
            &[human.clone(), bot.clone(), dup.clone()],
            std::slice::from_ref(&block),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], json!({"clicks": 3, "geo_blocks": 1}));
    assert_eq!(body["rejected"], json!([]));

    let stored = stored_clicks(&app);
    assert_eq!(stored.len(), 3);
    for sent in [human, bot, dup] {
        assert_eq!(stored.get(&sent.click_id), Some(&sent));
    }
    let blocks = app.sql(
        "SELECT toString(event_id), toString(blocked_at_ms), link_code, toString(country), toString(reason) \
         FROM geo_blocked_clicks_unique FORMAT TabSeparated",
    );
    assert_eq!(
        blocks.trim(),
        format!(
            "{}\t{}\t{}\tUS\tjurisdiction_restricted",
            block.event_id, block.blocked_at_ms, f.code
        )
    );
}

#[tokio::test]
async fn a_replayed_batch_adds_no_duplicate() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let mut ids = ClickIdGenerator::new();
    let batch: Vec<RawClick> = (0..50).map(|n| click(&f, &mut ids, n)).collect();
    for _ in 0..3 {
        let (status, body) = app.post_batch(&batch, &[]).await;
        assert_eq!(status, 200, "{body}");
    }
    // Query results are exact straight away through the FINAL views...
    assert_eq!(app.count("clicks_unique"), 50);
    assert_eq!(
        app.sql("SELECT uniqExact(click_id) FROM clicks").trim(),
        "50"
    );
    // ...and the engine collapses the stored copies once parts merge.
    app.sql("OPTIMIZE TABLE clicks FINAL");
    assert_eq!(app.count("clicks"), 50);
}

#[tokio::test]
async fn a_replayed_batch_is_neither_counted_nor_scored_again() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let mut ids = ClickIdGenerator::new();
    // 15 clicks from one address: under the per-IP limit of 20 once, over
    // it if a replay counted them again.
    let batch: Vec<RawClick> = (0..15)
        .map(|n| {
            let mut c = click(&f, &mut ids, n);
            c.ip = "203.0.113.77".into();
            c
        })
        .collect();
    for _ in 0..3 {
        let (status, body) = app.post_batch(&batch, &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["accepted"]["clicks"], 15,
            "a replay is acknowledged: {body}"
        );
    }
    let metrics = reqwest::get(format!("{}/metrics", app.address))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let line = format!(
        "clicks_total{{brand_id=\"{}\",verdict=\"human\"}} ",
        f.brand_id
    );
    let counted: Vec<&str> = metrics.lines().filter(|l| l.starts_with(&line)).collect();
    assert_eq!(counted, [format!("{line}15").as_str()], "{metrics}");
    assert_eq!(
        app.sql(
            "SELECT count() FROM fraud_scores FINAL WHERE position(signals, 'ip_velocity') > 0"
        )
        .trim(),
        "0",
        "a replay must not push the address over its velocity limit"
    );
    assert_eq!(app.count("clicks_unique"), 15);
}

#[tokio::test]
async fn malformed_clicks_get_422_with_reasons_and_nothing_is_stored() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let mut ids = ClickIdGenerator::new();
    let mut bad_country = click(&f, &mut ids, 1);
    bad_country.country = "Germany".into();
    let mut bad_id = click(&f, &mut ids, 2);
    bad_id.click_id = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f".into(); // a v4 UUID
    let mut other_brand = click(&f, &mut ids, 3);
    other_brand.brand_id = "0190a1b2-0000-7000-8000-000000000099".into();

    let (status, body) = app
        .post_batch(&[bad_country, bad_id, other_brand], &[])
        .await;
    assert_eq!(status, 422, "{body}");
    let reasons: Vec<(u64, String)> = body["rejected"]
        .as_array()
        .expect("rejections")
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().expect("index"),
                r["errors"][0]["field"].as_str().expect("field").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (0, "country".to_owned()),
            (1, "click_id".to_owned()),
            (2, "link_code".to_owned())
        ]
    );
    assert_eq!(app.count("clicks"), 0);
}

#[tokio::test]
async fn in_a_mixed_batch_good_clicks_are_kept_and_bad_ones_listed() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let mut ids = ClickIdGenerator::new();
    let good = click(&f, &mut ids, 1);
    let mut bad = click(&f, &mut ids, 2);
    bad.sub1 = "<script>".into();
    let (status, body) = app.post_batch(&[good.clone(), bad.clone()], &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"]["clicks"], 1);
    assert_eq!(body["rejected"][0]["index"], 1);
    assert_eq!(body["rejected"][0]["id"], bad.click_id.as_str());
    let stored = stored_clicks(&app);
    assert_eq!(stored.keys().collect::<Vec<_>>(), [&good.click_id]);
}

#[tokio::test]
async fn a_body_that_is_not_a_batch_gets_400_and_a_missing_secret_401() {
    let app = spawn_app().await;
    let r = app
        .post_batch_raw("{not json".into(), Some(EDGE_SECRET))
        .await;
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "bad_request");

    let r = app
        .post_batch_raw(json!({"clicks": []}).to_string(), None)
        .await;
    assert_eq!(r.status().as_u16(), 401);
    let r = app
        .post_batch_raw(
            json!({"clicks": []}).to_string(),
            Some("wrong-secret-0123456789"),
        )
        .await;
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "unauthorized");
}

#[tokio::test]
async fn with_clickhouse_stopped_the_endpoint_answers_503_and_acknowledges_nothing() {
    let mut app = spawn_app_with(Options {
        own_clickhouse: true,
        ..Options::default()
    })
    .await;
    let f = app.seed().await;
    let mut ids = ClickIdGenerator::new();
    let batch: Vec<RawClick> = (0..10).map(|n| click(&f, &mut ids, n)).collect();

    app.ch.own_mut().stop().expect("stop ClickHouse");
    let (status, body) = app.post_batch(&batch, &[]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "storage_unavailable");

    app.ch.own_mut().restart().expect("restart ClickHouse");
    assert_eq!(
        app.count("clicks"),
        0,
        "a 503 must not have stored anything"
    );
    // The edge retries the same batch; now it lands, once.
    let (status, body) = app.post_batch(&batch, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.count("clicks_unique"), 10);
}

#[tokio::test]
async fn many_concurrent_requests_are_coalesced_and_all_acknowledged_rows_are_stored() {
    let app = std::sync::Arc::new(
        spawn_app_with(Options {
            max_batch_delay_ms: 200,
            ..Options::default()
        })
        .await,
    );
    let f = app.seed().await;
    let mut tasks = Vec::new();
    for t in 0..20u8 {
        let app = app.clone();
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = ClickIdGenerator::new();
            let batch: Vec<RawClick> = (0..25)
                .map(|n| click(&f, &mut ids, t.wrapping_mul(25).wrapping_add(n)))
                .collect();
            app.post_batch(&batch, &[]).await.0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join"), 200);
    }
    assert_eq!(app.count("clicks_unique"), 500);
    // 20 requests in one 200 ms window: far fewer INSERTs than requests.
    app.sql("SYSTEM FLUSH LOGS");
    let parts: u64 = app
        .sql(&format!(
            "SELECT count() FROM system.parts WHERE database = '{}' AND table = 'clicks'",
            app.database
        ))
        .trim()
        .parse()
        .expect("count");
    assert!(
        parts < 20,
        "expected coalesced inserts, got {parts} parts for 20 requests"
    );
}

#[tokio::test]
async fn shutdown_flushes_what_was_accepted_without_waiting_for_the_batch_window() {
    let mut app = spawn_app_with(Options {
        max_batch_delay_ms: 30_000,
        ..Options::default()
    })
    .await;
    let f = app.seed().await;
    let mut ids = ClickIdGenerator::new();
    let batch: Vec<RawClick> = (0..5).map(|n| click(&f, &mut ids, n)).collect();
    let body = json!({"clicks": batch, "geo_blocks": []}).to_string();
    let http = app.http.clone();
    let url = format!("{}/edge/v1/clicks", app.address);
    let pending = tokio::spawn(async move {
        http.post(url)
            .bearer_auth(EDGE_SECRET)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown waited for the batch window"
    );
    let response = pending
        .await
        .expect("join")
        .expect("answered before shutdown completed");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(app.count("clicks_unique"), 5);
}

#[tokio::test]
async fn a_batch_of_too_many_records_is_a_413_and_a_batch_of_garbage_gets_a_bounded_answer() {
    let app = spawn_app().await;
    let batch = |n: usize| format!("{{\"clicks\": [{}]}}", vec!["{}"; n].join(","));
    // Ten million empty records used to cost minutes and gigabytes.
    let r = app
        .post_batch_raw(batch(10_000_000), Some(EDGE_SECRET))
        .await;
    assert_eq!(r.status().as_u16(), 413);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "too_many_records", "{body}");

    // 500 invalid records: all refused and counted, the first 100 listed.
    let r = app.post_batch_raw(batch(500), Some(EDGE_SECRET)).await;
    assert_eq!(r.status().as_u16(), 422);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["rejected_count"], 500, "{body}");
    assert_eq!(body["rejected"].as_array().map(Vec::len), Some(100));
    assert_eq!(app.count("clicks"), 0);
}
