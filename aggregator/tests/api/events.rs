use serde_json::{json, Value};

use clickstitch_shared::{ClickIdGenerator, RawClick};

use crate::helpers::{click, now_ms, spawn_app, spawn_app_with, Options, TestApp};

const DAY_MS: u64 = 86_400_000;

/// Stores clicks through the edge ingest endpoint.
async fn store_clicks(app: &TestApp, clicks: &[RawClick]) {
    let (status, body) = app.post_batch(clicks, &[]).await;
    assert_eq!(status, 200, "{body}");
}

fn registration(event_id: &str, player: &str, clicks: &[&RawClick], at_ms: u64) -> Value {
    json!({
        "event_id": event_id, "type": "registration", "occurred_at": at_ms,
        "player_id": player, "country": "DE",
        "click_ids": clicks.iter().map(|c| c.click_id.clone()).collect::<Vec<_>>(),
    })
}

#[tokio::test]
async fn a_registration_with_a_click_id_is_attributed_and_readable_at_once() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let key = app.brand_key(&f).await;
    let mut ids = ClickIdGenerator::new();
    let c = click(&f, &mut ids, 1);
    store_clicks(&app, std::slice::from_ref(&c)).await;

    let (status, replayed, body) = app
        .post_event(&key, registration("reg-1", "p-1", &[&c], now_ms() + 1000))
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(!replayed);
    let a = &body["attribution"];
    assert_eq!(a["status"], "pending_kyc", "{body}");
    assert_eq!(a["touchpoints"][0]["click_id"], c.click_id.as_str());
    assert_eq!(a["touchpoints"][0]["affiliate_id"], f.affiliate_id.as_str());
    assert_eq!(
        a["touchpoints"][0]["sub_affiliate_id"],
        f.sub_affiliate_id().as_str()
    );
    assert_eq!(a["touchpoints"][0]["credit_bps"], 10_000);
    assert!(
        a["rules_version"]
            .as_str()
            .expect("rules version")
            .starts_with("default/eu.json@1"),
        "{a}"
    );

    let (status, read) = app.get_json(&key, "/api/v1/players/p-1/attribution").await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["status"], "pending_kyc");
    assert_eq!(read["touchpoints"], a["touchpoints"]);
}

#[tokio::test]
async fn kyc_approval_makes_the_attribution_final_and_rejection_rejects_it() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let key = app.brand_key(&f).await;
    let mut ids = ClickIdGenerator::new();
    let (c1, c2) = (click(&f, &mut ids, 1), click(&f, &mut ids, 2));
    store_clicks(&app, &[c1.clone(), c2.clone()]).await;
    let at = now_ms() + 1000;
    for (n, c) in [(1, &c1), (2, &c2)] {
        let (s, _, b) = app
            .post_event(
                &key,
                registration(&format!("reg-{n}"), &format!("p-{n}"), &[c], at),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let kyc = |id: &str, player: &str, status: &str| json!({"event_id": id, "type": "kyc", "occurred_at": at + 5000, "player_id": player, "status": status});
    let (s, _, b) = app.post_event(&key, kyc("kyc-1", "p-1", "approved")).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["attribution"]["status"], "final");
    let (s, _, b) = app.post_event(&key, kyc("kyc-2", "p-2", "rejected")).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["attribution"]["status"], "rejected");
    assert_eq!(
        app.get_json(&key, "/api/v1/players/p-1/attribution")
            .await
            .1["status"],
        "final"
    );
    assert_eq!(
        app.get_json(&key, "/api/v1/players/p-2/attribution")
            .await
            .1["status"],
        "rejected"
    );
}

#[tokio::test]
async fn a_replayed_event_returns_the_first_answer_and_a_changed_payload_is_a_conflict() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let key = app.brand_key(&f).await;
    let deposit = json!({"event_id": "dep-1", "type": "deposit", "occurred_at": "2026-11-20T10:00:00Z",
        "player_id": "p-1", "amount": "50.00", "currency": "EUR"});
    let (s1, r1, first) = app.post_event(&key, deposit.clone()).await;
    assert_eq!((s1, r1), (201, false), "{first}");
    // Same content, other key order: still the same event.
    let reordered: Value = serde_json::from_str(
        r#"{"currency":"EUR","amount":"50.00","player_id":"p-1","occurred_at":"2026-11-20T10:00:00Z","type":"deposit","event_id":"dep-1"}"#,
    ).expect("json");
    let (s2, r2, second) = app.post_event(&key, reordered).await;
    assert_eq!((s2, r2), (200, true));
    assert_eq!(second, first);
    let mut changed = deposit.clone();
    changed["amount"] = json!("5000.00");
    let (s3, _, conflict) = app.post_event(&key, changed).await;
    assert_eq!(s3, 409, "{conflict}");
    assert_eq!(conflict["error"], "conflict");
    assert_eq!(app.count("player_events FINAL"), 1);
    assert_eq!(
        app.sql("SELECT amount_minor, currency FROM player_events FINAL FORMAT TabSeparated")
            .trim(),
        "5000\tEUR"
    );
}

#[tokio::test]
async fn a_replay_is_recognised_by_a_restarted_aggregator_from_clickhouse() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let key = app.brand_key(&f).await;
    let bonus = json!({"event_id": "bonus-1", "type": "bonus", "occurred_at": 1_795_165_200_000u64, "player_id": "p-1", "amount": "10.00", "currency": "EUR"});
    let (s, _, first) = app.post_event(&key, bonus.clone()).await;
    assert_eq!(s, 201, "{first}");
    // A second instance on the same database has nothing in memory.
    let second = spawn_second_instance(&app).await;
    let (s, replayed, body) = second.post_event(&key, bonus).await;
    assert_eq!((s, replayed), (200, true), "{body}");
    assert_eq!(body, first);
}

async fn spawn_second_instance(app: &TestApp) -> crate::helpers::TestApp {
    crate::helpers::spawn_on_database(&app.database).await
}

#[tokio::test]
async fn an_event_pointing_at_another_brands_click_is_kept_unattributed_without_naming_that_brand()
{
    let app = spawn_app().await;
    let mine = app.seed().await;
    let theirs = app.seed().await;
    let key = app.brand_key(&mine).await;
    let mut ids = ClickIdGenerator::new();
    let foreign = click(&theirs, &mut ids, 1);
    store_clicks(&app, std::slice::from_ref(&foreign)).await;
    let (s, _, body) = app
        .post_event(
            &key,
            registration("reg-x", "p-x", &[&foreign], now_ms() + 1000),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["attribution"]["status"], "unattributed");
    assert!(
        body["attribution"]["reason"]
            .as_str()
            .expect("reason")
            .starts_with("click_of_another_brand"),
        "{body}"
    );
    assert!(
        !body.to_string().contains(&theirs.brand_id),
        "the answer must not name the brand that owns the click: {body}"
    );
    assert_eq!(app.count("player_events FINAL"), 1, "the event is kept");
}

#[tokio::test]
async fn a_late_registration_outside_the_window_is_unattributed() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let key = app.brand_key(&f).await;
    let mut ids = ClickIdGenerator::new();
    // DE → EU rules: a 30-day window; the registration comes 31 days after
    // the click.
    let mut c = click(&f, &mut ids, 1);
    let old = ClickIdGenerator::new().next_id(now_ms() - 31 * DAY_MS - 60_000, [1; 10]);
    c.click_id = old.to_string();
    c.clicked_at_ms = old.timestamp_ms();
    store_clicks(&app, std::slice::from_ref(&c)).await;
    let (s, _, body) = app
        .post_event(&key, registration("reg-late", "p-late", &[&c], now_ms()))
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["attribution"]["status"], "unattributed");
    assert!(
        body["attribution"]["reason"]
            .as_str()
            .expect("reason")
            .starts_with("outside_window"),
        "{body}"
    );
}

#[tokio::test]
async fn the_players_other_clicks_from_the_same_browser_share_the_credit() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let key = app.brand_key(&f).await;
    let mut ids = ClickIdGenerator::new();
    let mut earlier = click(&f, &mut ids, 1);
    let mut reported = click(&f, &mut ids, 2);
    reported.device_fingerprint = earlier.device_fingerprint.clone();
    reported.visitor_id = earlier.visitor_id.clone();
    earlier.ip = "198.51.100.1".into();
    // A stranger on the same phone build: the same header fingerprint, its
    // own browser. Never a touchpoint of this player.
    let mut stranger = click(&f, &mut ids, 3);
    stranger.device_fingerprint = earlier.device_fingerprint.clone();
    store_clicks(&app, &[earlier.clone(), reported.clone(), stranger]).await;
    let (s, _, body) = app
        .post_event(
            &key,
            registration("reg-fp", "p-fp", &[&reported], now_ms() + 1000),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let touchpoints = body["attribution"]["touchpoints"]
        .as_array()
        .expect("touchpoints");
    let credited: Vec<(&str, u64)> = touchpoints
        .iter()
        .map(|t| {
            (
                t["click_id"].as_str().expect("id"),
                t["credit_bps"].as_u64().expect("bps"),
            )
        })
        .collect();
    // Position-based with two touchpoints: 50/50.
    assert_eq!(
        credited,
        [
            (earlier.click_id.as_str(), 5_000),
            (reported.click_id.as_str(), 5_000)
        ],
        "{body}"
    );
}

#[tokio::test]
async fn clicks_of_the_same_browser_stored_before_a_restart_still_share_the_credit() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let key = app.brand_key(&f).await;
    let mut ids = ClickIdGenerator::new();
    let earlier = click(&f, &mut ids, 1);
    let mut reported = click(&f, &mut ids, 2);
    reported.device_fingerprint = earlier.device_fingerprint.clone();
    reported.visitor_id = earlier.visitor_id.clone();
    store_clicks(&app, &[earlier.clone(), reported.clone()]).await;
    // A new process knows these clicks only from ClickHouse (its in-memory
    // device filter is warmed from there at startup).
    let restarted = spawn_second_instance(&app).await;
    let (s, _, body) = restarted
        .post_event(
            &key,
            registration(
                "reg-fp-restart",
                "p-fp-restart",
                &[&reported],
                now_ms() + 1000,
            ),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let credited: Vec<&str> = body["attribution"]["touchpoints"]
        .as_array()
        .expect("touchpoints")
        .iter()
        .map(|t| t["click_id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        credited,
        [earlier.click_id.as_str(), reported.click_id.as_str()],
        "{body}"
    );
}

#[tokio::test]
async fn one_player_ref_maps_two_brands_players_to_one_global_player() {
    let app = spawn_app().await;
    let (a, b) = (app.seed().await, app.seed().await);
    let (ka, kb) = (app.brand_key(&a).await, app.brand_key(&b).await);
    let at = now_ms();
    for (key, player) in [(&ka, "alice-at-a"), (&kb, "alice-at-b")] {
        let mut e = registration(&format!("reg-{player}"), player, &[], at);
        e["player_ref"] = json!("operator-customer-77");
        let (s, _, body) = app.post_event(key, e).await;
        assert_eq!(s, 201, "{body}");
        assert_eq!(body["attribution"]["status"], "unattributed");
    }
    assert_eq!(
        app.sql("SELECT uniqExact(player_id), count() FROM players FINAL FORMAT TabSeparated")
            .trim(),
        "1\t2"
    );
    // Each brand still sees its player under its own id, and only its own.
    assert_eq!(
        app.get_json(&ka, "/api/v1/players/alice-at-a/attribution")
            .await
            .0,
        200
    );
    assert_eq!(
        app.get_json(&ka, "/api/v1/players/alice-at-b/attribution")
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn only_a_brand_key_may_report_events_and_bad_events_get_every_reason() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let brand = app.brand_key(&f).await;
    let affiliate = app
        .issue_key(&format!("affiliates/{}", f.affiliate_id))
        .await;
    let event = json!({"event_id": "w-1", "type": "withdrawal", "occurred_at": 1, "player_id": "p", "amount": "1.00", "currency": "EUR"});
    assert_eq!(app.post_event(&affiliate, event.clone()).await.0, 403);
    assert_eq!(
        app.post_event(crate::helpers::OPERATOR_TOKEN, event.clone())
            .await
            .0,
        403
    );
    assert_eq!(app.post_event("csk_nope", event.clone()).await.0, 401);

    let (s, _, body) = app
        .post_event(&brand, json!({"event_id": "d-1", "type": "deposit", "player_id": "p", "amount": 50.5, "currency": "EURO"}))
        .await;
    assert_eq!(s, 422, "{body}");
    let fields = crate::helpers::problem_fields(&body);
    assert_eq!(fields, ["occurred_at", "currency"]);
    let (s, _, body) = app
        .post_event(
            &brand,
            json!({"event_id": "x", "type": "jackpot", "occurred_at": 1, "player_id": "p"}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(app.count("player_events"), 0, "nothing invalid is stored");
}

#[tokio::test]
async fn a_key_revoked_on_one_instance_stops_working_on_another_within_seconds() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let other = crate::helpers::spawn_on_database(&app.database).await;
    let (s, issued) = app
        .admin_post(&format!("brands/{}/api-keys", f.brand_id), json!({}))
        .await;
    assert_eq!(s, 201);
    let token = issued["token"].as_str().expect("token").to_owned();
    let event = |n: u32| {
        json!({"event_id": format!("rg-x-{n}"), "type": "responsible_gaming",
               "occurred_at": now_ms(), "player_id": "p", "flag": "self_exclusion", "active": true})
    };
    assert_eq!(
        other.post_event(&token, event(0)).await.0,
        201,
        "known on the other instance"
    );
    assert_eq!(
        app.revoke_key(issued["key_id"].as_str().expect("id")).await,
        204
    );
    let revoked = std::time::Instant::now();
    let mut n = 1;
    loop {
        let status = other.post_event(&token, event(n)).await.0;
        if status == 401 {
            break;
        }
        assert_eq!(status, 201);
        assert!(
            revoked.elapsed() < std::time::Duration::from_secs(8),
            "the other instance still accepts the revoked key after {:?}",
            revoked.elapsed()
        );
        n += 1;
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_revoked_key_stops_working() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let (s, issued) = app
        .admin_post(&format!("brands/{}/api-keys", f.brand_id), json!({}))
        .await;
    assert_eq!(s, 201);
    let token = issued["token"].as_str().expect("token").to_owned();
    let event = json!({"event_id": "rg-1", "type": "responsible_gaming", "occurred_at": now_ms(),
        "player_id": "p", "flag": "self_exclusion", "active": true});
    assert_eq!(app.post_event(&token, event.clone()).await.0, 201);
    assert_eq!(
        app.revoke_key(issued["key_id"].as_str().expect("id")).await,
        204
    );
    assert_eq!(app.post_event(&token, event).await.0, 401);
    // Only the hash of the token is stored.
    assert!(!app
        .sql("SELECT token_sha256 FROM api_keys FINAL")
        .contains(&token));
}

#[tokio::test]
async fn a_rotated_postback_secret_keeps_the_previous_one_for_the_overlap_only() {
    let app = spawn_app_with(Options {
        postback_key: Some("postback-master-key-0123456789abcdef"),
        ..Options::default()
    })
    .await;
    let f = app.seed().await;
    let first = app.postback_secret(&f.brand_id).await;
    let rotate = |overlap: Value| {
        let app = &app;
        let brand = f.brand_id.clone();
        async move {
            app.http
                .post(format!(
                    "{}/admin/v1/brands/{brand}/postback-secret/rotate",
                    app.address
                ))
                .bearer_auth(crate::helpers::OPERATOR_TOKEN)
                .json(&overlap)
                .send()
                .await
                .expect("sent")
        }
    };
    let mut n = 0;
    let mut status_with = |secret: String| {
        n += 1;
        let url = format!(
            "{}/postback/v1/{}?event=ftd&txid=rot-{n}&player_id=p-rot&amount=1.00&currency=EUR&secret={secret}",
            app.address, f.brand_id
        );
        let http = app.http.clone();
        async move { http.get(url).send().await.expect("sent").status().as_u16() }
    };

    let r = rotate(json!({"overlap_hours": 721})).await;
    assert_eq!(r.status().as_u16(), 422);
    let r = rotate(json!({"overlap_hours": 1})).await;
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["generation"], 1, "{body}");
    let second = body["postback_secret"].as_str().expect("secret").to_owned();
    assert_ne!(first, second);
    assert_eq!(
        status_with(second.clone()).await,
        201,
        "the new secret works"
    );
    assert_eq!(
        status_with(first.clone()).await,
        201,
        "the old one during the overlap"
    );

    let r = rotate(json!({"overlap_hours": 0})).await;
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.expect("json");
    let third = body["postback_secret"].as_str().expect("secret").to_owned();
    assert_eq!(status_with(third.clone()).await, 201);
    assert_eq!(
        status_with(second).await,
        401,
        "no overlap: the previous one is refused"
    );
    assert_eq!(
        status_with(first).await,
        401,
        "older generations are refused"
    );

    // Another instance (started now: it reads the rotations) agrees.
    let other = crate::helpers::spawn_on_database_configured(&app.database, |s| {
        s.auth.postback_key = Some("postback-master-key-0123456789abcdef".to_owned().into());
    })
    .await;
    assert_eq!(other.postback_secret(&f.brand_id).await, third);
}

#[tokio::test]
async fn postbacks_authenticate_by_secret_or_signature_and_share_the_idempotency() {
    let app = spawn_app_with(Options {
        postback_key: Some("postback-master-key-0123456789abcdef"),
        ..Options::default()
    })
    .await;
    let f = app.seed().await;
    let secret = app.postback_secret(&f.brand_id).await;
    let url = |q: &str| format!("{}/postback/v1/{}?{q}", app.address, f.brand_id);

    let r = app
        .http
        .get(url(&format!(
            "event=ftd&txid=pb-1&player_id=p-9&amount=25.00&currency=EUR&secret={secret}"
        )))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 201);
    let r = app
        .http
        .get(url(
            "event=ftd&txid=pb-2&player_id=p-9&amount=25.00&currency=EUR&secret=wrong",
        ))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 401);

    let ts = now_ms() / 1000;
    let canonical =
        format!("amount=30.00&currency=EUR&event=deposit&player_id=p-9&ts={ts}&txid=pb-3");
    let sig = clickstitch_aggregator::keys::sign(&secret, &canonical);
    let r = app
        .http
        .get(url(&format!("{canonical}&sig={sig}")))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 201);
    let r = app
        .http
        .get(url(&format!("{canonical}&sig={sig}")))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        r.status().as_u16(),
        200,
        "a replayed postback is idempotent"
    );
    // A `ts` that is not Unix seconds, or whose milliseconds overflow, is a
    // 422 naming it (the server used to panic on the overflow).
    for ts in ["18446744073709551615", "abc", "-5"] {
        let r = app
            .http
            .get(url(&format!(
                "event=ftd&txid=pb-ts&player_id=p-9&amount=1.00&currency=EUR&ts={ts}&secret={secret}"
            )))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status().as_u16(), 422, "ts={ts}");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["details"][0]["field"], "ts", "{body}");
    }
    let tampered = canonical.replace("30.00", "3000.00");
    let r = app
        .http
        .get(url(&format!("{tampered}&sig={sig}")))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 401);

    assert_eq!(
        app.sql("SELECT event_id, amount_minor, toString(source) FROM player_events FINAL ORDER BY event_id FORMAT TabSeparated").trim(),
        "pb-1\t2500\tpostback\npb-3\t3000\tpostback"
    );
}

#[tokio::test]
async fn postbacks_are_refused_when_no_postback_key_is_configured() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let r = app
        .http
        .get(format!(
            "{}/postback/v1/{}?event=ftd&txid=1&player_id=p&amount=1.00&currency=EUR&secret=x",
            app.address, f.brand_id
        ))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn a_brand_that_truncates_ips_never_stores_a_players_full_address() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let key = app.brand_key(&f).await;
    let r = app
        .http
        .patch(format!("{}/admin/v1/brands/{}", app.address, f.brand_id))
        .bearer_auth(crate::helpers::OPERATOR_TOKEN)
        .json(&json!({"ip_storage": "truncated"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200);

    let mut reg = registration("reg-ip", "p-ip", &[], now_ms());
    reg["ip"] = json!("203.0.113.77");
    let (s, _, body) = app.post_event(&key, reg).await;
    assert_eq!(s, 201, "{body}");
    let deposit = json!({
        "event_id": "dep-ip", "type": "deposit", "occurred_at": now_ms(),
        "player_id": "p-ip", "amount": "10.00", "currency": "EUR",
        "ip": "2001:db8:1234:5678::9",
    });
    let (s, _, body) = app.post_event(&key, deposit).await;
    assert_eq!(s, 201, "{body}");

    let payloads = app.sql("SELECT payload FROM player_events FINAL FORMAT TabSeparated");
    let scores = app.sql("SELECT ip FROM fraud_scores FINAL FORMAT TabSeparated");
    for stored in [&payloads, &scores] {
        assert!(
            !stored.contains("203.0.113.77") && !stored.contains("5678"),
            "a full address is stored: {stored}"
        );
    }
    assert!(payloads.contains("203.0.113.0"), "{payloads}");
    assert!(scores.contains("203.0.113.0"), "{scores}");
    assert!(scores.contains("2001:db8:1234::"), "{scores}");
}

#[tokio::test]
async fn a_chargeback_must_name_a_stored_deposit_of_its_own_player() {
    use crate::commissions::{at, brand, deposit, post, register, spawn};
    let app = spawn().await;
    let b = brand(&app).await;
    register(&app, &b, 1, "p-1", at(6, 5)).await;
    register(&app, &b, 2, "p-2", at(6, 5)).await;
    post(&app, &b, deposit("p-1-dep", "p-1", at(6, 6), "50.00")).await;
    post(&app, &b, deposit("p-2-dep", "p-2", at(6, 6), "50.00")).await;
    let chargeback = |id: &str, deposit: &str| {
        json!({"event_id": id, "type": "chargeback", "occurred_at": at(6, 9), "player_id": "p-1",
            "amount": "50.00", "currency": "EUR", "deposit_event_id": deposit})
    };
    for (id, named) in [
        ("cb-unknown", "no-such-deposit"),
        ("cb-foreign", "p-2-dep"),
        ("cb-not-a-deposit", "p-1-reg"),
    ] {
        let (s, _, body) = app.post_event(&b.key, chargeback(id, named)).await;
        assert_eq!(s, 422, "{id}: {body}");
        assert_eq!(
            crate::helpers::problem_fields(&body),
            ["deposit_event_id"],
            "{id}: {body}"
        );
    }
    let (s, _, body) = app.post_event(&b.key, chargeback("cb-ok", "p-1-dep")).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(
        app.sql("SELECT event_id FROM player_events WHERE event_type = 'chargeback' FORMAT TSV")
            .trim(),
        "cb-ok",
        "nothing of the refused chargebacks is stored"
    );
}
