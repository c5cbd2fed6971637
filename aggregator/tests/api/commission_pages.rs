//! `GET /api/v1/commissions` page by page: five affiliates with booked
//! commission (five brands, each with its own sub-affiliate qualifying one
//! June player; the first one a July player too), walked two at a time in
//! the ledger's order of affiliate ids, filtered, with lines cut short, by
//! each kind of caller.

use serde_json::{json, Value};

use crate::commissions::{
    affiliate_ids, balance, block, brand, close, commissions_at, cpa, deal, lines, qualify, run,
    spawn, version, Brand,
};
use crate::helpers::{problem_fields, TestApp, OPERATOR_TOKEN};

/// The CPA of brand `i`'s sub-affiliate: 100.00 + i × 10.00.
fn cpa_of(i: usize) -> i64 {
    10_000 + 1_000 * i as i64
}

/// Five brands whose sub-affiliates each earned a June CPA (`p-i`); the
/// first one's a July CPA too (`p-0-july`). No month closed, no hold.
async fn five_affiliates(app: &TestApp) -> Vec<Brand> {
    let mut brands = Vec::new();
    for i in 0..5u8 {
        let b = brand(app).await;
        deal(app, &b.sub(), version(cpa(cpa_of(i.into())), 0, 0)).await;
        qualify(app, &b, i + 1, &format!("p-{i}"), 6).await;
        brands.push(b);
    }
    qualify(app, &brands[0], 9, "p-0-july", 7).await;
    let report = run(app).await;
    assert_eq!(report.entries.len(), 6, "{:?}", report.entries);
    brands
}

/// The affiliates with ledger rows, in the order pages list them:
/// ClickHouse's order of UUIDs (second half first, then the first half;
/// the ledger's primary key order), checked against ClickHouse itself.
fn ledger_order(app: &TestApp, brands: &[Brand]) -> Vec<String> {
    let stored: Vec<String> = app
        .sql(
            "SELECT toString(affiliate_id) FROM commission_ledger \
             GROUP BY affiliate_id ORDER BY affiliate_id FORMAT TabSeparated",
        )
        .lines()
        .map(str::to_owned)
        .collect();
    let mut subs: Vec<String> = brands.iter().map(Brand::sub).collect();
    subs.sort_by_key(|id| {
        let b = uuid::Uuid::parse_str(id).expect("uuid").into_bytes();
        let half =
            |r: std::ops::Range<usize>| u64::from_be_bytes(b[r].try_into().expect("eight bytes"));
        (half(8..16), half(0..8))
    });
    assert_eq!(stored, subs, "ClickHouse orders UUIDs second half first");
    subs
}

/// Every page of `query`, following `next_cursor` until it is null.
async fn walk(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let mut pages: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/api/v1/commissions?{query}"),
            Some(c) => format!("/api/v1/commissions?{query}&cursor={c}"),
        };
        let page = commissions_at(app, token, &path).await;
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        pages.push(page);
        if cursor.is_none() {
            return pages;
        }
        assert!(pages.len() < 10, "paging does not end: {pages:?}");
    }
}

fn page_ids(pages: &[Value]) -> Vec<Vec<String>> {
    pages.iter().map(affiliate_ids).collect()
}

fn amounts(block: &Value) -> Vec<(i64, String)> {
    lines(block)
        .iter()
        .map(|l| {
            (
                l["amount_minor"].as_i64().expect("amount"),
                l["period"].as_str().expect("period").to_owned(),
            )
        })
        .collect()
}

async fn refused(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let (s, body) = app
        .get_json(token, &format!("/api/v1/commissions?{query}"))
        .await;
    assert_eq!(s, 422, "{query}: {body}");
    problem_fields(&body)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_operator_walks_every_affiliate_exactly_once_in_ledger_order_two_at_a_time() {
    let app = spawn().await;
    let brands = five_affiliates(&app).await;
    let subs = ledger_order(&app, &brands);

    let pages = walk(&app, OPERATOR_TOKEN, "limit=2").await;
    let ids = page_ids(&pages);
    assert_eq!(
        ids,
        [
            subs[0..2].to_vec(),
            subs[2..4].to_vec(),
            subs[4..5].to_vec()
        ]
    );
    assert!(pages[0]["next_cursor"].is_string(), "{}", pages[0]);
    assert!(pages[1]["next_cursor"].is_string(), "{}", pages[1]);
    assert_eq!(pages[2]["next_cursor"], Value::Null);
    for page in &pages {
        assert_eq!(page["scope"], json!({"type": "operator"}));
        assert!(page["as_of_ms"].is_u64(), "{page}");
    }

    // Each block complete: its lines, their count, balances.
    let all: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["affiliates"].as_array().expect("affiliates"))
        .collect();
    for (i, b) in brands.iter().enumerate() {
        let mine = all
            .iter()
            .find(|a| a["affiliate_id"] == b.sub())
            .expect("listed");
        let mut expected = vec![(cpa_of(i), "2026-06".to_owned())];
        if i == 0 {
            expected.push((cpa_of(0), "2026-07".to_owned()));
        }
        assert_eq!(amounts(mine), expected, "{mine}");
        assert_eq!(mine["line_count"], expected.len(), "{mine}");
        assert_eq!(mine["lines_truncated"], false, "{mine}");
        assert_eq!(
            balance(mine, "pending"),
            expected.iter().map(|(a, _)| a).sum::<i64>()
        );
    }

    // A page exactly as long as what is left is the last one.
    let one = walk(&app, OPERATOR_TOKEN, "limit=5").await;
    assert_eq!(page_ids(&one), std::slice::from_ref(&subs));
    // The default page holds them all too.
    let default = walk(&app, OPERATOR_TOKEN, "").await;
    assert_eq!(page_ids(&default), [subs]);
}

#[tokio::test]
async fn filters_narrow_the_lines_and_the_affiliates_while_balances_stay_complete() {
    let app = spawn().await;
    let brands = five_affiliates(&app).await;
    let subs = ledger_order(&app, &brands);
    let sub = |i: usize| brands[i].sub();

    // One affiliate.
    let body = commissions_at(
        &app,
        OPERATOR_TOKEN,
        &format!("/api/v1/commissions?affiliate_id={}", sub(2)),
    )
    .await;
    assert_eq!(affiliate_ids(&body), [sub(2)]);
    assert_eq!(
        amounts(block(&body, &sub(2))),
        [(cpa_of(2), "2026-06".to_owned())]
    );
    assert_eq!(body["next_cursor"], Value::Null);

    // One month: only July's line, and only the affiliate that has one;
    // its balance still counts June.
    let july = walk(&app, OPERATOR_TOKEN, "limit=2&period=2026-07").await;
    assert_eq!(page_ids(&july), [[sub(0)]]);
    let mine = block(&july[0], &sub(0));
    assert_eq!(amounts(mine), [(cpa_of(0), "2026-07".to_owned())]);
    assert_eq!(mine["line_count"], 1);
    assert_eq!(balance(mine, "pending"), 2 * cpa_of(0));
    let june = walk(&app, OPERATOR_TOKEN, "limit=2&period=2026-06").await;
    assert_eq!(page_ids(&june).concat(), subs);
    assert_eq!(
        amounts(block(&joined(&june), &sub(0))),
        [(cpa_of(0), "2026-06".to_owned())]
    );

    // One brand (operator only), alone or with a month.
    let body = commissions_at(
        &app,
        OPERATOR_TOKEN,
        &format!("/api/v1/commissions?brand_id={}", brands[1].id()),
    )
    .await;
    assert_eq!(affiliate_ids(&body), [sub(1)]);
    let body = commissions_at(
        &app,
        OPERATOR_TOKEN,
        &format!(
            "/api/v1/commissions?brand_id={}&period=2026-07",
            brands[0].id()
        ),
    )
    .await;
    assert_eq!(affiliate_ids(&body), [sub(0)]);
    assert_eq!(
        amounts(block(&body, &sub(0))),
        [(cpa_of(0), "2026-07".to_owned())]
    );
    let body = commissions_at(
        &app,
        OPERATOR_TOKEN,
        &format!(
            "/api/v1/commissions?brand_id={}&period=2026-07",
            brands[1].id()
        ),
    )
    .await;
    assert_eq!(body["affiliates"], json!([]));
    assert_eq!(body["next_cursor"], Value::Null);

    // Lines cut short: the first in order, flagged, with the full count.
    let body = commissions_at(
        &app,
        OPERATOR_TOKEN,
        &format!("/api/v1/commissions?affiliate_id={}&lines_limit=1", sub(0)),
    )
    .await;
    let mine = block(&body, &sub(0));
    assert_eq!(amounts(mine), [(cpa_of(0), "2026-06".to_owned())]);
    assert_eq!(mine["lines_truncated"], true, "{mine}");
    assert_eq!(mine["line_count"], 2, "{mine}");
    assert_eq!(balance(mine, "pending"), 2 * cpa_of(0));

    // States: June closed (no hold) is payable, July still pending.
    let (s, closed) = close(
        &app,
        "2026-06",
        json!({"closed_at": "2026-07-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(s, 201, "{closed}");
    let of_state =
        |state: &str| format!("/api/v1/commissions?affiliate_id={}&state={state}", sub(0));
    let payable = commissions_at(&app, OPERATOR_TOKEN, &of_state("payable")).await;
    let mine = block(&payable, &sub(0));
    assert_eq!(amounts(mine), [(cpa_of(0), "2026-06".to_owned())]);
    assert_eq!(
        (balance(mine, "pending"), balance(mine, "payable")),
        (cpa_of(0), cpa_of(0))
    );
    let pending = commissions_at(&app, OPERATOR_TOKEN, &of_state("pending")).await;
    assert_eq!(
        amounts(block(&pending, &sub(0))),
        [(cpa_of(0), "2026-07".to_owned())]
    );
}

/// The blocks of several pages as one answer (for [`block`]).
fn joined(pages: &[Value]) -> Value {
    let all: Vec<Value> = pages
        .iter()
        .flat_map(|p| p["affiliates"].as_array().cloned().unwrap_or_default())
        .collect();
    json!({ "affiliates": all })
}

#[tokio::test]
async fn bad_paging_parameters_are_refused_naming_the_field() {
    let app = spawn().await;
    let b = brand(&app).await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=two", "limit"),
        ("lines_limit=0", "lines_limit"),
        ("lines_limit=1001", "lines_limit"),
        ("cursor=nope", "cursor"),
        ("cursor=a1.zz", "cursor"),
        ("cursor=00000000-0000-0000-0000-000000000001", "cursor"),
        ("period=2026-13", "period"),
        ("period=June", "period"),
        ("affiliate_id=someone", "affiliate_id"),
        ("brand_id=brand", "brand_id"),
        ("state=open", "state"),
    ] {
        assert_eq!(
            refused(&app, OPERATOR_TOKEN, query).await,
            [field],
            "{query}"
        );
    }
    // Every problem at once.
    assert_eq!(
        refused(&app, OPERATOR_TOKEN, "limit=0&cursor=x&period=2026-13").await,
        ["limit", "cursor", "period"]
    );
    // The bounds themselves are fine.
    commissions_at(
        &app,
        OPERATOR_TOKEN,
        "/api/v1/commissions?limit=200&lines_limit=1000",
    )
    .await;
    commissions_at(
        &app,
        OPERATOR_TOKEN,
        "/api/v1/commissions?limit=1&lines_limit=1",
    )
    .await;
    // Filtering by brand is the operator's: a brand key already is.
    assert_eq!(
        refused(&app, &b.key, &format!("brand_id={}", b.id())).await,
        ["brand_id"]
    );
}

#[tokio::test]
async fn an_affiliate_key_sees_only_itself_and_a_brand_key_only_its_brand() {
    let app = spawn().await;
    let brands = five_affiliates(&app).await;
    let sub = |i: usize| brands[i].sub();

    let key = app.issue_key(&format!("affiliates/{}", sub(3))).await;
    let pages = walk(&app, &key, "limit=2").await;
    assert_eq!(page_ids(&pages), [[sub(3)]]);
    assert_eq!(pages[0]["scope"]["type"], "affiliate");
    assert_eq!(
        amounts(block(&pages[0], &sub(3))),
        [(cpa_of(3), "2026-06".to_owned())]
    );
    for query in [
        format!("affiliate_id={}", sub(0)),
        "period=2026-07".to_owned(),
    ] {
        let body = commissions_at(&app, &key, &format!("/api/v1/commissions?{query}")).await;
        assert_eq!(body["affiliates"], json!([]), "{query}");
        assert_eq!(body["next_cursor"], Value::Null, "{query}");
    }
    assert_eq!(
        refused(&app, &key, &format!("brand_id={}", brands[3].id())).await,
        ["brand_id"]
    );

    let pages = walk(&app, &brands[1].key, "limit=1").await;
    assert_eq!(page_ids(&pages), [[sub(1)]]);
    assert_eq!(pages[0]["scope"]["type"], "brand");
    let mine = block(&pages[0], &sub(1));
    assert_eq!(amounts(mine), [(cpa_of(1), "2026-06".to_owned())]);
    assert_eq!(balance(mine, "pending"), cpa_of(1));
    let other = format!("/api/v1/commissions?affiliate_id={}", sub(2));
    assert_eq!(
        commissions_at(&app, &brands[1].key, &other).await["affiliates"],
        json!([])
    );
    // Brand 0's key: its affiliate with both months, or July alone.
    let july = walk(&app, &brands[0].key, "period=2026-07").await;
    assert_eq!(page_ids(&july), [[sub(0)]]);
    assert_eq!(
        amounts(block(&july[0], &sub(0))),
        [(cpa_of(0), "2026-07".to_owned())]
    );
    assert_eq!(balance(block(&july[0], &sub(0)), "pending"), 2 * cpa_of(0));
}
