//! The fraud review queue at scale: cursor paging over hundreds of held
//! entities, every filter, the 422s naming each bad parameter, bulk
//! decisions with per-entity outcomes, and the brand keys' scope.
//!
//! Held entities are `fraud_scores` rows as the aggregator stores them,
//! written into the test's own database on the real ClickHouse server (the
//! scorer that writes them in production is tested in `fraud.rs`); one test
//! holds a real click farm sent through the edge endpoint.

use std::cmp::Reverse;
use std::collections::HashSet;

use serde_json::{json, Value};

use clickstitch_shared::ClickIdGenerator;

use crate::helpers::{click, now_ms, problem_fields, spawn_app, TestApp, OPERATOR_TOKEN};

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;
const KINDS: [(&str, i8); 3] = [("click", 1), ("registration", 2), ("first_deposit", 3)];
const SIGNALS: [&str; 4] = [
    "ip_velocity",
    "subnet_velocity",
    "device_registrations",
    "datacenter_asn",
];
const QUEUE: &str = "/api/v1/fraud/quarantine";
const DECISIONS: &str = "/api/v1/fraud/quarantine/decisions";

/// A scored entity as stored in `fraud_scores`.
#[derive(Debug, Clone)]
struct Scored {
    brand: String,
    kind: &'static str,
    kind_code: i8,
    id: String,
    at_ms: u64,
    score: u8,
    quarantined: bool,
    affiliate: Option<String>,
    signal: &'static str,
    scored_at_ms: u64,
}

impl Scored {
    fn values(&self) -> String {
        let signals = format!(
            r#"[{{"signal":"{}","points":{},"detail":"{} of {} {} crossed the {} limit"}}]"#,
            self.signal, self.score, self.signal, self.kind, self.id, self.signal
        );
        format!(
            "('{brand}', '{kind}', '{id}', 'player-{id}', {affiliate}, 'AbC123xyz0', {at_s}, {at_ms}, \
             0, '203.0.113.7', '', {score}, {held}, 'test-1', '{signals}', '', {scored_s}, {scored_ms})",
            brand = self.brand,
            kind = self.kind,
            id = self.id,
            affiliate = self
                .affiliate
                .as_ref()
                .map_or("NULL".to_owned(), |a| format!("'{a}'")),
            at_s = self.at_ms / 1000,
            at_ms = self.at_ms,
            score = self.score,
            held = u8::from(self.quarantined),
            scored_s = self.scored_at_ms / 1000,
            scored_ms = self.scored_at_ms,
        )
    }

    /// The queue's order: newest first, then kind, brand and id.
    fn order_key(&self) -> (Reverse<u64>, i8, String, String) {
        (
            Reverse(self.at_ms),
            self.kind_code,
            self.brand.clone(),
            self.id.clone(),
        )
    }

    fn entity(&self) -> Value {
        json!({"brand_id": self.brand, "kind": self.kind, "entity_id": self.id})
    }
}

fn store_scores(app: &TestApp, rows: &[Scored]) {
    for chunk in rows.chunks(200) {
        let values: Vec<String> = chunk.iter().map(Scored::values).collect();
        app.sql(&format!(
            "INSERT INTO fraud_scores (brand_id, entity_kind, entity_id, brand_player_id, \
             affiliate_id, link_code, occurred_at, occurred_at_ms, click_at_ms, ip, \
             device_fingerprint, score, quarantined, policy_version, signals, escalated_by, \
             scored_at, scored_at_ms) VALUES {}",
            values.join(", ")
        ));
    }
}

/// Two brands' queues: what the test stored and what the queue must hold.
struct Queue {
    brands: [String; 2],
    affiliates: [String; 2],
    /// Every held entity (newest score quarantined), in the queue's order.
    held: Vec<Scored>,
    /// Scored entities whose newest score is not quarantined.
    not_held: Vec<Scored>,
}

/// Two brands and `n` held entities of both, of every kind, spread over
/// 100 days (so that pages cross the store's one-day and 30-day windows),
/// four at a time at the same millisecond (so that the tie-break decides);
/// plus entities that are not held and entities scored twice.
async fn seed_queue(app: &TestApp, n: usize) -> Queue {
    let a = app.seed().await;
    let b = app.seed().await;
    let brands = [a.brand_id.clone(), b.brand_id.clone()];
    let affiliates = [a.affiliate_id.clone(), b.affiliate_id.clone()];
    let now = now_ms();
    let at = |i: usize| -> u64 {
        let group = (i / 4) as u64;
        match i {
            0..100 => now - MINUTE_MS - group * 10 * MINUTE_MS,
            100..200 => now - 2 * DAY_MS - (group - 25) * DAY_MS,
            _ => now - 40 * DAY_MS - (group - 50) * DAY_MS,
        }
    };
    let entity = |i: usize, prefix: &str| {
        let (kind, kind_code) = KINDS[i % 3];
        Scored {
            brand: brands[(i / 3) % 2].clone(),
            kind,
            kind_code,
            id: format!("{prefix}-{kind}-{i:04}"),
            at_ms: at(i),
            score: 60 + (i * 7 % 41) as u8,
            quarantined: true,
            affiliate: match (i / 2) % 3 {
                2 => None,
                k => Some(affiliates[k].clone()),
            },
            signal: SIGNALS[i % 4],
            scored_at_ms: now,
        }
    };
    let mut held: Vec<Scored> = (0..n).map(|i| entity(i, "held")).collect();
    let mut not_held: Vec<Scored> = (0..12)
        .map(|i| Scored {
            score: 20,
            quarantined: false,
            ..entity(i * 17, "clean")
        })
        .collect();
    let mut rows: Vec<Scored> = held.iter().chain(&not_held).cloned().collect();
    // Scored twice: held once escalated (the newer score counts) ...
    for i in [5, 150, 230] {
        let first = Scored {
            score: 10,
            quarantined: false,
            scored_at_ms: now - 5_000,
            ..entity(i, "escalated")
        };
        let newer = Scored {
            score: 95,
            quarantined: true,
            scored_at_ms: now,
            ..first.clone()
        };
        rows.push(first);
        rows.push(newer.clone());
        held.push(newer);
    }
    // ... and no longer held after a newer score.
    for i in [7, 120] {
        let first = Scored {
            scored_at_ms: now - 5_000,
            ..entity(i, "cleared")
        };
        let newer = Scored {
            score: 30,
            quarantined: false,
            scored_at_ms: now,
            ..first.clone()
        };
        rows.push(first);
        rows.push(newer.clone());
        not_held.push(newer);
    }
    store_scores(app, &rows);
    held.sort_by_key(Scored::order_key);
    Queue {
        brands,
        affiliates,
        held,
        not_held,
    }
}

/// GETs one page of the queue; panics unless 200.
async fn page(app: &TestApp, token: &str, query: &str) -> (Vec<Value>, Option<String>) {
    let (s, body) = app.get_json(token, &format!("{QUEUE}?{query}")).await;
    assert_eq!(s, 200, "{query}: {body}");
    let items = body["items"].as_array().expect("items").clone();
    let next = body.get("next_cursor").map(|c| {
        c.as_str()
            .unwrap_or_else(|| panic!("next_cursor is a string or absent: {body}"))
            .to_owned()
    });
    (items, next)
}

/// Every page of the queue under `query`, `limit` at a time: the items'
/// `kind/id` in the order served and the number of pages.
async fn walk(app: &TestApp, token: &str, query: &str, limit: usize) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q = if query.is_empty() {
            format!("limit={limit}")
        } else {
            format!("{query}&limit={limit}")
        };
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let (items, next) = page(app, token, &q).await;
        pages += 1;
        assert!(items.len() <= limit);
        seen.extend(items.iter().map(key_of));
        match next {
            Some(next) => {
                assert_eq!(items.len(), limit, "a page before the last one is full");
                cursor = Some(next);
            }
            None => return (seen, pages),
        }
        assert!(pages < 100, "paging does not end");
    }
}

fn key_of(item: &Value) -> String {
    format!(
        "{}/{}/{}",
        item["brand_id"].as_str().expect("brand_id"),
        item["kind"].as_str().expect("kind"),
        item["id"].as_str().expect("id")
    )
}

fn keys<'a>(rows: impl IntoIterator<Item = &'a Scored>) -> Vec<String> {
    rows.into_iter()
        .map(|r| format!("{}/{}/{}", r.brand, r.kind, r.id))
        .collect()
}

/// ISO 8601 of Unix ms (UTC), as the `from` and `to` parameters take it.
fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

async fn decide_many(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    app.post_json(token, DECISIONS, body).await
}

fn outcomes(body: &Value) -> Vec<&str> {
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["outcome"].as_str().expect("outcome"))
        .collect()
}

#[tokio::test]
async fn paging_through_hundreds_of_held_entities_returns_each_once_newest_first() {
    let app = spawn_app().await;
    let q = seed_queue(&app, 264).await;
    let expected = keys(&q.held);
    assert_eq!(expected.len(), 267);

    let (served, pages) = walk(&app, OPERATOR_TOKEN, "", 100).await;
    assert_eq!(pages, 3);
    assert_eq!(
        served, expected,
        "every held entity once, in the queue's order"
    );
    let unique: HashSet<&String> = served.iter().collect();
    assert_eq!(unique.len(), served.len());
    for clean in keys(&q.not_held) {
        assert!(!served.contains(&clean), "{clean} is not held");
    }

    // Without `limit`, a page holds 100; other page sizes see the same queue.
    let (first, next) = page(&app, OPERATOR_TOKEN, "").await;
    assert_eq!(first.len(), 100);
    assert!(next.is_some());
    let (small, pages) = walk(&app, OPERATOR_TOKEN, "", 7).await;
    assert_eq!(small, expected);
    assert_eq!(pages, 267_usize.div_ceil(7));
    let (all, next) = page(&app, OPERATOR_TOKEN, "limit=500").await;
    assert_eq!(all.len(), 267);
    assert_eq!(next, None, "no next_cursor on the last page");

    // An entity scored twice is listed with its newest score.
    let escalated = all
        .iter()
        .find(|i| i["id"] == "escalated-first_deposit-0005")
        .expect("the escalated entity is held");
    assert_eq!(escalated["score"], 95);
}

#[tokio::test]
async fn every_filter_narrows_the_queue_to_what_it_names() {
    let app = spawn_app().await;
    let q = seed_queue(&app, 120).await;
    let now = now_ms();
    let expect = |f: &dyn Fn(&Scored) -> bool| keys(q.held.iter().filter(|r| f(r)));
    let [a, b] = &q.brands;
    let from = now - 3 * DAY_MS;
    let to = now - 6 * 60 * MINUTE_MS;
    let cases: Vec<(String, Vec<String>)> = vec![
        (format!("brand_id={a}"), expect(&|r| r.brand == *a)),
        (format!("brand_id={b}"), expect(&|r| r.brand == *b)),
        (
            format!("affiliate_id={}", q.affiliates[1]),
            expect(&|r| r.affiliate.as_deref() == Some(q.affiliates[1].as_str())),
        ),
        ("kind=click".into(), expect(&|r| r.kind == "click")),
        (
            "kind=first_deposit".into(),
            expect(&|r| r.kind == "first_deposit"),
        ),
        (
            "signal=device_registrations".into(),
            expect(&|r| r.signal == "device_registrations"),
        ),
        ("min_score=90".into(), expect(&|r| r.score >= 90)),
        ("max_score=70".into(), expect(&|r| r.score <= 70)),
        (
            "min_score=75&max_score=75".into(),
            expect(&|r| r.score == 75),
        ),
        (
            format!("from={}", rfc3339(from)),
            expect(&|r| r.at_ms >= from),
        ),
        (format!("to={}", rfc3339(to)), expect(&|r| r.at_ms < to)),
        (
            format!("from={}&to={}", rfc3339(from), rfc3339(to)),
            expect(&|r| r.at_ms >= from && r.at_ms < to),
        ),
        (
            format!("brand_id={b}&kind=registration&min_score=70&signal=ip_velocity"),
            expect(&|r| {
                r.brand == *b
                    && r.kind == "registration"
                    && r.score >= 70
                    && r.signal == "ip_velocity"
            }),
        ),
    ];
    for (query, expected) in &cases {
        assert!(
            !expected.is_empty() && expected.len() < q.held.len(),
            "{query} narrows"
        );
        let (items, next) = page(&app, OPERATOR_TOKEN, &format!("{query}&limit=500")).await;
        assert_eq!(
            &items.iter().map(key_of).collect::<Vec<_>>(),
            expected,
            "{query}"
        );
        assert_eq!(next, None);
        // Paged, the filter holds from page to page.
        let (paged, _) = walk(&app, OPERATOR_TOKEN, query, 9).await;
        assert_eq!(&paged, expected, "{query}, 9 at a time");
    }

    // The review state: decided entities leave `pending` for their verdict.
    let rejected: Vec<&Scored> = q.held.iter().skip(3).step_by(10).collect();
    let approved: Vec<&Scored> = q.held.iter().skip(5).step_by(25).collect();
    for (verdict, rows) in [("reject", &rejected), ("approve", &approved)] {
        let (s, body) = decide_many(
            &app,
            OPERATOR_TOKEN,
            json!({
                "decision": verdict, "reason": "reviewed in the filter test",
                "entities": rows.iter().map(|r| r.entity()).collect::<Vec<_>>(),
            }),
        )
        .await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["counts"]["decided"], rows.len(), "{body}");
    }
    let decided: HashSet<String> = keys(rejected.iter().chain(&approved).copied())
        .into_iter()
        .collect();
    for (query, expected) in [
        ("status=rejected", keys(rejected.iter().copied())),
        ("status=approved", keys(approved.iter().copied())),
        (
            "status=pending",
            keys(q.held.iter())
                .into_iter()
                .filter(|k| !decided.contains(k))
                .collect(),
        ),
    ] {
        let (served, _) = walk(&app, OPERATOR_TOKEN, query, 50).await;
        assert_eq!(served, expected, "{query}");
    }
    let (items, _) = page(&app, OPERATOR_TOKEN, "status=rejected&limit=1").await;
    assert_eq!(items[0]["status"], "rejected");
    assert_eq!(items[0]["decision"]["note"], "reviewed in the filter test");
}

#[tokio::test]
async fn bad_parameters_are_refused_with_a_422_naming_the_field() {
    let app = spawn_app().await;
    let f = app.seed().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=%25%25%25", "cursor"),
        // base64url of `{"a":1}`: not a cursor of this endpoint.
        ("cursor=eyJhIjoxfQ", "cursor"),
        ("brand_id=brand-1", "brand_id"),
        ("affiliate_id=42", "affiliate_id"),
        ("kind=deposit", "kind"),
        ("signal=bad_vibes", "signal"),
        ("min_score=101", "min_score"),
        ("max_score=-1", "max_score"),
        ("min_score=80&max_score=60", "min_score"),
        ("from=yesterday", "from"),
        ("to=2026-02-30T00:00:00Z", "to"),
        ("from=2026-11-20T10:00:00Z&to=2026-11-20T10:00:00Z", "to"),
        ("status=escalated", "status"),
    ] {
        let (s, body) = app
            .get_json(OPERATOR_TOKEN, &format!("{QUEUE}?{query}"))
            .await;
        assert_eq!(s, 422, "{query}: {body}");
        assert_eq!(problem_fields(&body), [field], "{query}: {body}");
    }
    let (s, _) = app
        .get_json(
            OPERATOR_TOKEN,
            &format!("{QUEUE}?limit=500&min_score=0&max_score=100"),
        )
        .await;
    assert_eq!(s, 200);

    let entity = json!({"brand_id": f.brand_id, "kind": "click", "entity_id": "c-1"});
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"brand_id": f.brand_id, "kind": "click", "entity_id": format!("c-{i}")}))
        .collect();
    let most: Vec<Value> = too_many[..1000].to_vec();
    for (body, fields) in [
        (
            json!({"decision": "reject", "reason": "farm", "entities": too_many}),
            vec!["entities"],
        ),
        (
            json!({"decision": "reject", "reason": "farm", "entities": []}),
            vec!["entities"],
        ),
        (
            json!({"decision": "reject", "reason": "  ", "entities": [entity]}),
            vec!["reason"],
        ),
        (
            json!({"decision": "reject", "entities": [entity]}),
            vec!["reason"],
        ),
        (
            json!({"decision": "reject", "reason": "x".repeat(2001), "entities": [entity]}),
            vec!["reason"],
        ),
        (
            json!({"decision": "maybe", "reason": "farm", "entities": [entity]}),
            vec!["decision"],
        ),
        (
            json!({"decision": "approve", "reason": "ok", "entities": [
                {"kind": "click", "entity_id": "no-brand"},
                {"brand_id": f.brand_id, "kind": "visit", "entity_id": "v-1"},
                {"brand_id": f.brand_id, "kind": "click", "entity_id": ""},
                entity, entity,
            ]}),
            vec![
                "entities[0].brand_id",
                "entities[1].kind",
                "entities[2].entity_id",
                "entities[4]",
            ],
        ),
    ] {
        let (s, answer) = decide_many(&app, OPERATOR_TOKEN, body).await;
        assert_eq!(s, 422, "{answer}");
        assert_eq!(problem_fields(&answer), fields, "{answer}");
    }
    // 1000 entities are allowed (none of them is held).
    let (s, body) = decide_many(
        &app,
        OPERATOR_TOKEN,
        json!({"decision": "reject", "reason": "x".repeat(2000), "entities": most}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["counts"]["not_found"], 1000, "{body}");
    assert_eq!(app.count("fraud_reviews"), 0);
}

#[tokio::test]
async fn a_bulk_decision_reports_each_entity_and_a_second_one_finds_them_already_decided() {
    let app = spawn_app().await;
    let q = seed_queue(&app, 30).await;
    let [a, b] = &q.brands;
    let held_a = q.held.iter().find(|r| r.brand == *a).expect("a hold of A");
    let held_b = q.held.iter().find(|r| r.brand == *b).expect("a hold of B");
    let held_a2 = q
        .held
        .iter()
        .rfind(|r| r.brand == *a && r.kind != held_a.kind)
        .expect("another hold of A");
    let clean = &q.not_held[0];
    let entities = json!([
        held_a.entity(),
        held_b.entity(),
        clean.entity(),
        {"brand_id": a, "kind": "registration", "entity_id": "never-scored"},
        // The queue's items can be sent back as they are listed (`id`).
        {"brand_id": held_a2.brand, "kind": held_a2.kind, "id": held_a2.id},
    ]);
    let reason = "Farm confirmed: one device, 40 players";
    let (s, first) = decide_many(
        &app,
        OPERATOR_TOKEN,
        json!({"decision": "reject", "reason": reason, "reviewer": "eve@operator", "entities": entities}),
    )
    .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(
        outcomes(&first),
        ["decided", "decided", "not_held", "not_found", "decided"],
        "{first}"
    );
    assert_eq!(
        first["counts"],
        json!({"decided": 3, "already_decided": 0, "not_held": 1, "not_found": 1, "forbidden": 0})
    );
    assert_eq!(first["results"][1]["brand_id"], held_b.brand.as_str());
    assert_eq!(first["results"][1]["entity_id"], held_b.id.as_str());
    assert_eq!(
        first["results"][0]["player_id"],
        format!("player-{}", held_a.id)
    );
    // Three rows, written by one INSERT: one part, never merged.
    assert_eq!(app.count("fraud_reviews"), 3);
    let parts = app.sql(&format!(
        "SELECT count(), max(level), sum(rows) FROM system.parts \
         WHERE database = '{}' AND table = 'fraud_reviews' AND active FORMAT TabSeparated",
        app.database
    ));
    assert_eq!(parts.trim(), "1\t0\t3");
    let stored = app.sql(
        "SELECT DISTINCT reviewer, credential, note, decision FROM fraud_reviews FORMAT TabSeparated",
    );
    assert_eq!(
        stored.trim(),
        format!("eve@operator\toperator_token\t{reason}\trejected")
    );

    // A second decision on the same entities changes nothing.
    let (s, second) = decide_many(
        &app,
        OPERATOR_TOKEN,
        json!({"decision": "approve", "reason": "second thoughts", "entities": entities}),
    )
    .await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(
        outcomes(&second),
        [
            "already_decided",
            "already_decided",
            "not_held",
            "not_found",
            "already_decided"
        ],
        "{second}"
    );
    let earlier = &second["results"][0]["decision"];
    assert_eq!(earlier["verdict"], "rejected", "{second}");
    assert_eq!(earlier["reviewer"], "eve@operator");
    assert_eq!(earlier["note"], reason);
    assert_eq!(earlier["review_id"], first["results"][0]["review_id"]);
    assert_eq!(app.count("fraud_reviews"), 3);
    // The single-entity endpoint agrees.
    let (s, body) = app
        .post_json(
            OPERATOR_TOKEN,
            &format!("{QUEUE}/{}/{}/decision", held_b.kind, held_b.id),
            json!({"brand_id": b, "decision": "approve", "reviewer": "bob@operator"}),
        )
        .await;
    assert_eq!(s, 409, "{body}");

    // The queue shows the verdict, with the reason, on every decided hold.
    let (rejected, _) = page(&app, OPERATOR_TOKEN, "status=rejected").await;
    assert_eq!(rejected.len(), 3);
    for item in &rejected {
        assert_eq!(item["decision"]["note"], reason, "{item}");
        assert_eq!(item["decision"]["reviewer"], "eve@operator", "{item}");
    }
}

#[tokio::test]
async fn a_brand_key_sees_and_decides_only_its_own_brands_holds() {
    let app = spawn_app().await;
    let q = seed_queue(&app, 40).await;
    let [a, b] = &q.brands;
    let key_a = app.issue_key(&format!("brands/{a}")).await;
    let own: Vec<String> = keys(q.held.iter().filter(|r| r.brand == *a));

    let (served, pages) = walk(&app, &key_a, "", 6).await;
    assert_eq!(served, own, "its own holds, all of them, paged");
    assert!(pages > 1);
    let (same, _) = walk(&app, &key_a, &format!("brand_id={a}"), 500).await;
    assert_eq!(same, own);
    let (items, next) = page(&app, &key_a, &format!("brand_id={b}")).await;
    assert!(items.is_empty(), "another brand's queue is empty to it");
    assert_eq!(next, None);

    let mine = q.held.iter().find(|r| r.brand == *a).expect("a hold of A");
    let theirs = q.held.iter().find(|r| r.brand == *b).expect("a hold of B");
    let (s, body) = decide_many(
        &app,
        &key_a,
        json!({
            "decision": "approve", "reason": "known VIP player",
            "entities": [
                {"kind": mine.kind, "entity_id": mine.id},
                theirs.entity(),
                {"brand_id": b, "kind": "click", "entity_id": "anything"},
            ],
        }),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        outcomes(&body),
        ["decided", "forbidden", "forbidden"],
        "{body}"
    );
    assert_eq!(body["credential"], "brand_key");
    assert_eq!(body["counts"]["forbidden"], 2);
    assert_eq!(app.count("fraud_reviews"), 1);
    // A request-wide brand_id of another brand does not widen the scope.
    let (s, body) = decide_many(
        &app,
        &key_a,
        json!({"decision": "reject", "reason": "farm", "brand_id": b,
               "entities": [{"kind": theirs.kind, "entity_id": theirs.id}]}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(outcomes(&body), ["forbidden"]);
    let (pending_b, _) = page(
        &app,
        OPERATOR_TOKEN,
        &format!("brand_id={b}&status=pending&limit=500"),
    )
    .await;
    assert!(pending_b.iter().any(|i| i["id"] == theirs.id.as_str()));
    let (approved, _) = page(&app, &key_a, "status=approved").await;
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["decision"]["reviewer"], "brand_key");

    // Affiliates never see the queue; no credential is no access.
    let affiliate_key = app
        .issue_key(&format!("affiliates/{}", q.affiliates[0]))
        .await;
    let (s, _) = app.get_json(&affiliate_key, QUEUE).await;
    assert_eq!(s, 403);
    let (s, _) = decide_many(
        &app,
        &affiliate_key,
        json!({"decision": "approve", "reason": "mine", "entities": [mine.entity()]}),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = app.get_json("not-a-key", QUEUE).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn every_hold_of_a_click_farm_explains_itself_with_signals_points_and_a_sentence() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let mut ids = ClickIdGenerator::new();
    let farm: Vec<_> = (0..90)
        .map(|i| {
            let mut c = click(&f, &mut ids, (i % 200) as u8);
            c.ip = "203.0.113.77".to_owned();
            c
        })
        .collect();
    let (s, body) = app.post_batch(&farm, &[]).await;
    assert_eq!(s, 200, "{body}");

    let (served, pages) = walk(&app, OPERATOR_TOKEN, "kind=click&status=pending", 40).await;
    assert_eq!(pages, 3);
    assert_eq!(served.len(), farm.len());
    let (items, _) = page(&app, OPERATOR_TOKEN, "limit=500").await;
    for item in &items {
        let signals = item["signals"].as_array().expect("signals");
        assert!(!signals.is_empty(), "{item}");
        for s in signals {
            assert!(
                s["signal"].as_str().is_some_and(|c| !c.is_empty()),
                "{item}"
            );
            assert!(s["points"].as_u64().is_some(), "{item}");
            assert!(
                s["detail"].as_str().is_some_and(|d| d.contains(' ')),
                "a sentence: {item}"
            );
        }
        assert!(item["score"].as_u64().expect("score") > 0, "{item}");
    }
    // The signal filter finds them by what fired.
    let (by_ip, _) = walk(&app, OPERATOR_TOKEN, "signal=ip_velocity", 500).await;
    assert_eq!(by_ip.len(), farm.len());
}
