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
    let mut settings = clickstitch_aggregator::config::Settings::default();
    settings.server.port = 0;
    settings.clickhouse.url = app.ch.server().http_url();
    settings.clickhouse.database = app.database.clone();
    settings.auth.edge_secret = Some(EDGE_SECRET.to_owned().into());
    settings.auth.operator_token = Some(crate::helpers::OPERATOR_TOKEN.to_owned().into());
    settings.attribution.rules_dir = crate::helpers::rules_dir();
    settings.fraud.policy_dir = crate::helpers::fraud_dir();
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
