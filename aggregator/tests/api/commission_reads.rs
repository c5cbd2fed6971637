//! Operators read back what they configured (deals, NGR formulas, FX
//! tables, every version) and every commission job and payout run, on a
//! real ClickHouse server: what the admin POST endpoints stored and
//! returned is what the GET endpoints give back.

use serde_json::{json, Value};

use crate::commissions::{
    at, brand, close, cpa, deal, flat, payouts, qualify, spawn, version, Brand,
};
use crate::helpers::{problem_fields, TestApp, OPERATOR_TOKEN};

const UNKNOWN_ID: &str = "0193a000-0000-7000-8000-0000000000ff";

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    app.get_json(OPERATOR_TOKEN, path).await
}

async fn ok(app: &TestApp, path: &str) -> Value {
    let (s, body) = get(app, path).await;
    assert_eq!(s, 200, "{path}: {body}");
    body
}

/// Asserts `path` answers 422 naming exactly `field`.
async fn refused(app: &TestApp, path: &str, field: &str) {
    let (s, body) = get(app, path).await;
    assert_eq!(s, 422, "{path}: {body}");
    assert_eq!(problem_fields(&body), [field], "{path}: {body}");
}

async fn not_found(app: &TestApp, path: &str) {
    let (s, body) = get(app, path).await;
    assert_eq!(s, 404, "{path}: {body}");
    assert_eq!(body["error"], "not_found", "{path}: {body}");
}

/// Asserts `path` refuses a brand key and a request without a token.
async fn operator_only(app: &TestApp, b: &Brand, path: &str) {
    let (s, body) = app.get_json(&b.key, path).await;
    assert_eq!(s, 401, "{path} with a brand key: {body}");
    let r = app
        .http
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .expect("request sent");
    assert_eq!(r.status().as_u16(), 401, "{path} without a token");
}

fn versions(docs: &Value, key: &str) -> Vec<u64> {
    docs.as_array()
        .expect("an array")
        .iter()
        .map(|d| d[key].as_u64().expect("a version"))
        .collect()
}

fn find<'a>(items: &'a Value, key: &str, id: &str) -> &'a Value {
    items
        .as_array()
        .expect("an array")
        .iter()
        .find(|i| i[key] == id)
        .unwrap_or_else(|| panic!("no {key} {id} in {items}"))
}

#[tokio::test]
async fn an_operator_reads_back_every_deal_version_and_formula_it_stored() {
    let app = spawn().await;
    let b = brand(&app).await;
    let sub = b.sub();
    let v1 = version(cpa(10_000), 0, 0);
    let (s, first) = app
        .admin_post(
            "deals",
            json!({"affiliate": sub, "currency": "EUR", "versions": [v1]}),
        )
        .await;
    assert_eq!(s, 201, "{first}");
    let mut v2 = version(cpa(12_000), 30, 5_000);
    v2["version"] = json!(2);
    v2["effective_from"] = json!("2026-07");
    let (s, second) = app
        .admin_post(
            "deals",
            json!({"affiliate": sub, "currency": "EUR", "versions": [v1, v2]}),
        )
        .await;
    assert_eq!(s, 201, "{second}");
    deal(&app, b.parent(), version(flat(2_500, true), 0, 0)).await;

    // Every affiliate's current document.
    let all = ok(&app, "/admin/v1/deals").await;
    assert_eq!(all["deals"].as_array().map(Vec::len), Some(2), "{all}");
    let mine = find(&all["deals"], "affiliate_id", &sub);
    assert_eq!(mine["latest_version"], 2, "{mine}");
    assert_eq!(mine["currency"], "EUR");
    assert_eq!(mine["deal"], second["deal"], "the document as stored");
    assert_eq!(versions(&mine["deal"]["versions"], "version"), [1, 2]);
    assert_eq!(mine["deal"]["versions"][1]["effective_from"], "2026-07");
    assert_eq!(mine["deal"]["versions"][1]["hold_days"], 30);
    assert!(mine["stored_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let parent = find(&all["deals"], "affiliate_id", b.parent());
    assert_eq!(parent["latest_version"], 1, "{parent}");

    // One affiliate's deal and its history, newest first.
    let one = ok(&app, &format!("/admin/v1/deals/{sub}")).await;
    assert_eq!(one["affiliate_id"], sub);
    assert_eq!(one["latest_version"], 2);
    assert_eq!(one["deal"], second["deal"]);
    assert_eq!(versions(&one["history"], "latest_version"), [2, 1]);
    assert_eq!(one["history"][0]["deal"], second["deal"]);
    assert_eq!(one["history"][1]["deal"], first["deal"]);
    assert!(
        one["history"][0]["stored_at_ms"].as_u64() >= one["history"][1]["stored_at_ms"].as_u64(),
        "{one}"
    );
    not_found(&app, &format!("/admin/v1/deals/{UNKNOWN_ID}")).await;
    refused(&app, "/admin/v1/deals/not-an-id", "affiliate_id").await;

    // NGR formulas: the brand's first version came with `brand()`.
    let f2 = json!({"brand": b.id(), "versions": [
        {"version": 1, "effective_from": "2026-01",
            "payment_fee_bps": 0, "tax_bps": 0, "admin_fee_bps": 0},
        {"version": 2, "effective_from": "2026-07",
            "payment_fee_bps": 150, "tax_bps": 0, "admin_fee_bps": 0}]});
    let (s, stored) = app.admin_post("ngr-formulas", f2).await;
    assert_eq!(s, 201, "{stored}");
    let all = ok(&app, "/admin/v1/ngr-formulas").await;
    assert_eq!(all["formulas"].as_array().map(Vec::len), Some(1), "{all}");
    let formula = &all["formulas"][0];
    assert_eq!(formula["brand_id"], b.id());
    assert_eq!(formula["latest_version"], 2);
    assert_eq!(formula["formula"], stored["formula"]);
    let one = ok(&app, &format!("/admin/v1/ngr-formulas/{}", b.id())).await;
    assert_eq!(one["latest_version"], 2, "{one}");
    assert_eq!(versions(&one["history"], "latest_version"), [2, 1]);
    assert_eq!(
        versions(&one["history"][1]["formula"]["versions"], "version"),
        [1]
    );
    assert_eq!(
        one["history"][0]["formula"]["versions"][1]["payment_fee_bps"],
        150
    );
    not_found(&app, &format!("/admin/v1/ngr-formulas/{UNKNOWN_ID}")).await;
    refused(&app, "/admin/v1/ngr-formulas/brand-1", "brand_id").await;

    for path in [
        "/admin/v1/deals".to_owned(),
        format!("/admin/v1/deals/{sub}"),
        "/admin/v1/ngr-formulas".to_owned(),
        format!("/admin/v1/ngr-formulas/{}", b.id()),
        "/admin/v1/fx-tables".to_owned(),
    ] {
        operator_only(&app, &b, &path).await;
    }
}

#[tokio::test]
async fn an_operator_reads_every_fx_table_version_and_which_one_converts_its_month() {
    let app = spawn().await;
    let rate =
        |from: &str, n: i64| json!({"from": from, "to": "EUR", "numerator": n, "denominator": 100});
    for (month, version, rates) in [
        ("2026-06", 1, json!([rate("USD", 92)])),
        ("2026-06", 2, json!([rate("USD", 93), rate("GBP", 117)])),
        ("2026-07", 1, json!([rate("USD", 91)])),
    ] {
        let (s, body) = app
            .admin_post(
                "fx-tables",
                json!({"month": month, "version": version, "rates": rates}),
            )
            .await;
        assert_eq!(s, 201, "{body}");
    }

    let all = ok(&app, "/admin/v1/fx-tables").await;
    let tables = &all["tables"];
    let summary: Vec<(String, u64, bool)> = tables
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                t["month"].as_str().expect("month").to_owned(),
                t["version"].as_u64().expect("version"),
                t["in_force"].as_bool().expect("in_force"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("2026-06".to_owned(), 2, true),
            ("2026-06".to_owned(), 1, false),
            ("2026-07".to_owned(), 1, true),
        ],
        "{all}"
    );
    assert_eq!(
        tables[0]["rates"],
        json!([rate("GBP", 117), rate("USD", 93)]),
        "{all}"
    );
    assert_eq!(tables[1]["rates"], json!([rate("USD", 92)]));
    assert!(tables[0]["stored_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    let july = ok(&app, "/admin/v1/fx-tables?month=2026-07").await;
    assert_eq!(july["tables"].as_array().map(Vec::len), Some(1), "{july}");
    assert_eq!(july["tables"][0]["rates"], json!([rate("USD", 91)]));
    let june = ok(&app, "/admin/v1/fx-tables?month=2026-06").await;
    assert_eq!(versions(&june["tables"], "version"), [2, 1]);
    let none = ok(&app, "/admin/v1/fx-tables?month=2025-01").await;
    assert_eq!(none["tables"], json!([]));
    refused(&app, "/admin/v1/fx-tables?month=2026-13", "month").await;
}

/// A bonus in GBP for a EUR player, stored the way an older intake stored
/// it (the intake now refuses it): the job holds that player.
fn wrong_currency_bonus(app: &TestApp, b: &Brand, event_id: &str, player: &str) {
    let at_ms = at(6, 20);
    app.sql(&format!(
        "INSERT INTO player_events (brand_id, event_id, event_type, occurred_at, occurred_at_ms, \
         brand_player_id, amount_minor, currency, stakes_minor, wins_minor, payload_sha256) \
         VALUES (toUUID('{}'), '{event_id}', 'bonus', toDateTime({}), {at_ms}, '{player}', \
         500, 'GBP', 0, 0, 'stored-before-the-intake-checked')",
        b.id(),
        at_ms / 1000,
    ));
}

fn ids(runs: &Value) -> Vec<String> {
    runs.as_array()
        .expect("runs")
        .iter()
        .map(|r| r["run_id"].as_str().expect("run id").to_owned())
        .collect()
}

fn position(ids: &[String], id: &str) -> usize {
    ids.iter()
        .position(|x| x == id)
        .unwrap_or_else(|| panic!("{id} not in {ids:?}"))
}

#[tokio::test]
async fn an_operator_reads_back_every_job_and_payout_run_with_its_problems_and_payouts() {
    let app = spawn().await;
    let b = brand(&app).await;
    deal(&app, &b.sub(), version(cpa(10_000), 0, 0)).await;
    qualify(&app, &b, 1, "p-bad", 6).await;
    qualify(&app, &b, 2, "p-good", 6).await;
    wrong_currency_bonus(&app, &b, "bonus-gbp", "p-bad");

    // A job run that met one problem and appended p-good's CPA.
    let (s, job) = app.admin_post("commissions/run", json!({})).await;
    assert_eq!(s, 200, "{job}");
    let job_id = job["run_id"].as_str().expect("run id").to_owned();
    assert_eq!(job["entries_appended"], 1, "{job}");
    assert_eq!(job["problems"].as_array().map(Vec::len), Some(1), "{job}");
    let accrual = job["entry_ids"][0].clone();

    let run = ok(&app, &format!("/admin/v1/commissions/runs/{job_id}")).await;
    assert_eq!(run["run_id"], job_id);
    assert_eq!(run["kind"], "job");
    assert_eq!(run["players"], job["players"], "{run}");
    assert_eq!(run["prior_entries"], 0);
    assert_eq!(run["entries_appended"], 1);
    assert_eq!(run["error"], Value::Null);
    assert!(run["duration_ms"].is_u64(), "{run}");
    assert!(run["started_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(run["now"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(
        run["problems"],
        json!([{
            "kind": "wrong_currency",
            "held": "player",
            "player_id": job["problems"][0]["player_id"],
            "brand_id": b.id(),
            "affiliate_id": null,
            "events": ["bonus-gbp"],
            "message": job["problems"][0]["reason"],
        }]),
        "{run}"
    );
    assert!(run["problems"][0]["player_id"].is_string(), "{run}");

    // June closed, then paid by a payout run with a chosen id, and a second
    // payout run with nothing left to pay.
    let (s, closed) = close(&app, "2026-06", json!({})).await;
    assert_eq!(s, 201, "{closed}");
    let payout_id = "0193a000-0000-7000-8000-000000000001";
    let paid = payouts(&app, json!({"run_id": payout_id})).await;
    assert_eq!(paid["paid"][0]["amount_minor"], 10_000, "{paid}");
    let payout_entry = paid["paid"][0]["entry_id"].clone();
    let nothing = payouts(&app, json!({})).await;
    assert_eq!(nothing["paid"], json!([]), "{nothing}");
    let empty_id = nothing["run_id"].as_str().expect("run id").to_owned();

    let expected_paid = json!([{
        "affiliate_id": b.sub(),
        "entry_id": payout_entry,
        "amount_minor": 10_000,
        "currency": "EUR",
        "amount": "100.00",
        "references": [accrual],
    }]);
    let list = ok(&app, "/admin/v1/payouts").await;
    assert_eq!(ids(&list["payouts"]), [empty_id.as_str(), payout_id]);
    let first = &list["payouts"][1];
    assert_eq!(first["kind"], "payout");
    assert_eq!(first["entries_appended"], 1);
    assert_eq!(first["paid"], expected_paid, "{list}");
    assert_eq!(list["payouts"][0]["paid"], json!([]));
    let one = ok(&app, &format!("/admin/v1/payouts/{payout_id}")).await;
    assert_eq!(&one, first);
    let latest = ok(&app, "/admin/v1/payouts?limit=1").await;
    assert_eq!(ids(&latest["payouts"]), [empty_id.as_str()]);
    not_found(&app, &format!("/admin/v1/payouts/{job_id}")).await;
    not_found(&app, &format!("/admin/v1/payouts/{UNKNOWN_ID}")).await;
    refused(&app, "/admin/v1/payouts/not-a-uuid", "run_id").await;
    refused(&app, "/admin/v1/payouts?limit=0", "limit").await;

    // The run log: our job run, the job runs of the close and of both
    // payout runs, and the two payout runs; newest first.
    let all = ok(&app, "/admin/v1/commissions/runs").await;
    let all_ids = ids(&all["runs"]);
    assert_eq!(all_ids.len(), 6, "{all}");
    assert!(position(&all_ids, &empty_id) < position(&all_ids, payout_id));
    assert!(position(&all_ids, payout_id) < position(&all_ids, &job_id));
    let started: Vec<&str> = all["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["started_at"].as_str().expect("started_at"))
        .collect();
    assert!(started.windows(2).all(|w| w[0] >= w[1]), "{started:?}");
    let payout_runs = ok(&app, "/admin/v1/commissions/runs?kind=payout").await;
    assert_eq!(ids(&payout_runs["runs"]), [empty_id.as_str(), payout_id]);
    let job_runs = ok(&app, "/admin/v1/commissions/runs?kind=job&limit=1000").await;
    assert_eq!(job_runs["runs"].as_array().map(Vec::len), Some(4));
    assert!(job_runs["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .all(|r| r["kind"] == "job"));
    assert_eq!(ids(&job_runs["runs"]).last(), Some(&job_id));
    let two = ok(&app, "/admin/v1/commissions/runs?limit=2").await;
    assert_eq!(ids(&two["runs"]), all_ids[..2]);

    let payout_run = ok(&app, &format!("/admin/v1/commissions/runs/{payout_id}")).await;
    assert_eq!(payout_run["kind"], "payout");
    assert_eq!(payout_run["entries_appended"], 1);
    assert_eq!(payout_run["problems"], json!([]));
    not_found(&app, &format!("/admin/v1/commissions/runs/{UNKNOWN_ID}")).await;
    refused(&app, "/admin/v1/commissions/runs/42", "run_id").await;
    for bad in ["0", "1001", "ten"] {
        refused(
            &app,
            &format!("/admin/v1/commissions/runs?limit={bad}"),
            "limit",
        )
        .await;
    }
    refused(&app, "/admin/v1/commissions/runs?kind=refund", "kind").await;

    for path in [
        "/admin/v1/commissions/runs".to_owned(),
        format!("/admin/v1/commissions/runs/{job_id}"),
        "/admin/v1/payouts".to_owned(),
        format!("/admin/v1/payouts/{payout_id}"),
    ] {
        operator_only(&app, &b, &path).await;
    }
}
