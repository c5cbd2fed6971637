use serde_json::{json, Value};

use crate::helpers::{spawn_app, EDGE_SECRET};

#[tokio::test]
async fn the_admin_api_requires_the_operator_token() {
    let app = spawn_app().await;
    let r = app
        .http
        .post(format!("{}/admin/v1/brands", app.address))
        .bearer_auth(EDGE_SECRET)
        .json(&json!({"name": "X", "jurisdiction": {"name": "MGA"}}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(app.count("brands"), 0);
}

#[tokio::test]
async fn a_link_with_an_unsafe_destination_or_unknown_references_is_refused_with_reasons() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let (status, body) = app
        .admin_post(
            "links",
            json!({
                "brand_id": f.brand_id, "affiliate_id": f.affiliate_id, "campaign_id": f.campaign_id,
                "destination_template": "http://evil.example/?u={sub1}",
                "allowed_countries": ["Germany"]
            }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let fields = crate::helpers::problem_fields(&body);
    assert_eq!(fields, ["destination_template", "allowed_countries"]);

    let (status, body) = app
        .admin_post(
            "links",
            json!({
                "brand_id": f.brand_id, "affiliate_id": f.affiliate_id,
                "campaign_id": "0190a1b2-0000-7000-8000-000000000099",
                "destination_template": "https://brand.example/"
            }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"][0]["field"], "campaign_id");
    assert_eq!(
        app.count("links FINAL"),
        1,
        "only the fixture's link exists"
    );

    let (status, body) = app
        .admin_post("brands", json!({"name": "", "jurisdiction": {}}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(app.count("brands FINAL"), 1);
}

#[tokio::test]
async fn the_edge_gets_a_link_definition_naming_the_root_affiliate_and_the_sub_affiliate() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let r = app.edge_get(&format!("links/{}", f.code)).await;
    assert_eq!(r.status().as_u16(), 200);
    let def: Value = r.json().await.expect("json");
    assert_eq!(def["code"], f.code.as_str());
    assert_eq!(def["brand_id"], f.brand_id.as_str());
    assert_eq!(def["affiliate_id"], f.affiliate_id.as_str());
    assert_eq!(def["sub_affiliate_id"], f.sub_affiliate_id().as_str());
    assert_eq!(def["jurisdiction"]["restricted_countries"], json!(["US"]));
    assert_eq!(
        def["destination"],
        "https://lucky.example/join?cid={click_id}&s1={sub1}"
    );

    let r = app.edge_get("links/zzzzzzzzzz").await;
    assert_eq!(r.status().as_u16(), 404);
    let r = app
        .http
        .get(format!("{}/edge/v1/links/{}", app.address, f.code))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn a_restarted_aggregator_loads_the_catalogue_from_clickhouse() {
    let app = spawn_app().await;
    let f = app.seed().await;
    // A second instance on the same database sees the link without any
    // write of its own (several aggregators share one ClickHouse).
    let settings = clickstitch_testkit::aggregator::test_settings(app.ch.server(), &app.database);
    let second = clickstitch_aggregator::startup::Application::build(settings)
        .await
        .expect("build");
    let port = second.port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(second.run_until_stopped(async {
        let _ = rx.await;
    }));
    let r = app
        .http
        .get(format!("http://127.0.0.1:{port}/edge/v1/links/{}", f.code))
        .bearer_auth(EDGE_SECRET)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    let _ = tx.send(());
    handle.await.expect("join").expect("stopped");
}

/// `PATCH /admin/v1/brands/{id}` with the operator token (or `token`).
async fn patch_brand(
    app: &crate::helpers::TestApp,
    brand_id: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let r = app
        .http
        .patch(format!("{}/admin/v1/brands/{brand_id}", app.address))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("sent");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn edge_definition(app: &crate::helpers::TestApp, code: &str) -> Value {
    let r = app.edge_get(&format!("links/{code}")).await;
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("json")
}

#[tokio::test]
async fn a_brand_can_turn_the_visitor_cookie_off_and_the_edge_is_told() {
    let app = spawn_app().await;
    let f = app.seed().await;
    // On by default, for the brand and in its links' definitions.
    let before = edge_definition(&app, &f.code).await;
    assert_eq!(before["visitor_cookie"], true, "{before}");

    let (status, brand) = patch_brand(
        &app,
        &f.brand_id,
        crate::helpers::OPERATOR_TOKEN,
        json!({"visitor_cookie": false}),
    )
    .await;
    assert_eq!(status, 200, "{brand}");
    assert_eq!(brand["visitor_cookie"], false);
    // Nothing else changed.
    assert_eq!(brand["ip_storage"], "full");
    assert_eq!(brand["jurisdiction"]["restricted_countries"], json!(["US"]));

    let after = edge_definition(&app, &f.code).await;
    assert_eq!(after["visitor_cookie"], false, "{after}");
    assert!(
        after["version"].as_u64() > before["version"].as_u64(),
        "the definition's version rises, so edge caches take the change: {before} {after}"
    );
    assert_eq!(
        app.sql(&format!(
            "SELECT visitor_cookie FROM brands FINAL WHERE brand_id = toUUID('{}')",
            f.brand_id
        ))
        .trim(),
        "0"
    );

    // And on again; `ip_storage` changes on its own.
    let (status, brand) = patch_brand(
        &app,
        &f.brand_id,
        crate::helpers::OPERATOR_TOKEN,
        json!({"visitor_cookie": true, "ip_storage": "truncated"}),
    )
    .await;
    assert_eq!(status, 200, "{brand}");
    let def = edge_definition(&app, &f.code).await;
    assert_eq!(def["visitor_cookie"], true, "{def}");
    assert_eq!(def["ip_storage"], "truncated", "{def}");
    assert_eq!(app.count("brands FINAL"), 1);
}

#[tokio::test]
async fn a_brand_created_without_the_visitor_cookie_keeps_it_off_across_a_restart() {
    let app = spawn_app().await;
    let (status, brand) = app
        .admin_post(
            "brands",
            json!({"name": "Quiet Casino", "jurisdiction": {"name": "UKGC"}, "visitor_cookie": false}),
        )
        .await;
    assert_eq!(status, 201, "{brand}");
    assert_eq!(brand["visitor_cookie"], false);
    let (status, listed) = app
        .get_json(crate::helpers::OPERATOR_TOKEN, "/admin/v1/brands")
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["visitor_cookie"], false, "{listed}");
    // What the catalogue loads back from ClickHouse says the same.
    let app = app.restart_with(|_| {}).await;
    let (_, listed) = app
        .get_json(crate::helpers::OPERATOR_TOKEN, "/admin/v1/brands")
        .await;
    assert_eq!(listed[0]["visitor_cookie"], false, "{listed}");
}

#[tokio::test]
async fn brand_changes_need_the_operator_token_a_known_brand_and_valid_values() {
    let app = spawn_app().await;
    let f = app.seed().await;
    let (status, _) = patch_brand(
        &app,
        &f.brand_id,
        EDGE_SECRET,
        json!({"visitor_cookie": false}),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = patch_brand(
        &app,
        "0190a1b2-0000-7000-8000-000000000099",
        crate::helpers::OPERATOR_TOKEN,
        json!({"visitor_cookie": false}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = patch_brand(
        &app,
        &f.brand_id,
        crate::helpers::OPERATOR_TOKEN,
        json!({"ip_storage": "none", "visitor_cookie": false}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(crate::helpers::problem_fields(&body), ["ip_storage"]);
    let (status, _) = patch_brand(
        &app,
        &f.brand_id,
        crate::helpers::OPERATOR_TOKEN,
        json!({"visitor_cookie": "no"}),
    )
    .await;
    assert!(status == 400 || status == 422, "{status}");
    // Nothing was stored by the refused requests.
    assert_eq!(edge_definition(&app, &f.code).await["visitor_cookie"], true);
}
