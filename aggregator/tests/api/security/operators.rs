//! Named operator credentials: the bootstrap token creates the first admin,
//! each role does what it may and nothing more, and decisions, closes and
//! payouts record the credential's owner, not what the body says.

use serde_json::{json, Value};

use crate::helpers::{now_ms, spawn_app, spawn_app_configured, TestApp, OPERATOR_TOKEN};

/// Issues an operator credential with `token`; status and body.
async fn issue_operator(app: &TestApp, token: &str, owner: &str, role: &str) -> (u16, Value) {
    app.post_json(
        token,
        "/admin/v1/operators",
        json!({"owner": owner, "role": role}),
    )
    .await
}

async fn token_of(app: &TestApp, by: &str, owner: &str, role: &str) -> (String, String) {
    let (s, body) = issue_operator(app, by, owner, role).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["scope"], "operator");
    assert_eq!(body["role"], role);
    assert_eq!(body["owner"], owner);
    (
        body["token"].as_str().expect("token").to_owned(),
        body["key_id"].as_str().expect("key id").to_owned(),
    )
}

/// Stores a held click of `brand` directly, as the scorer would.
fn hold_click(app: &TestApp, brand: &str, id: &str) {
    let at = now_ms();
    app.sql(&format!(
        "INSERT INTO fraud_scores (brand_id, entity_kind, entity_id, brand_player_id, \
         affiliate_id, link_code, occurred_at, occurred_at_ms, click_at_ms, ip, \
         device_fingerprint, score, quarantined, policy_version, signals, escalated_by, \
         scored_at, scored_at_ms) VALUES ('{brand}', 'click', '{id}', '', NULL, 'AbC123xyz0', \
         {s}, {at}, 0, '203.0.113.7', '', 90, 1, 'test-1', '[]', '', {s}, {at})",
        s = at / 1000
    ));
}

#[tokio::test]
async fn each_role_may_do_its_own_work_and_is_refused_the_rest_with_403() {
    let mut app = spawn_app().await;
    let f = app.seed().await;
    let (admin, _) = token_of(&app, OPERATOR_TOKEN, "Ada Admin", "admin").await;
    let (finance, _) = token_of(&app, &admin, "Fin Ance", "finance").await;
    let (risk, _) = token_of(&app, &admin, "Risa Reviewer", "risk_reviewer").await;
    let (reader, _) = token_of(&app, &admin, "Rea Der", "read_only").await;

    // Everyone reads.
    for t in [&admin, &finance, &risk, &reader] {
        let (s, body) = app.get_json(t, "/admin/v1/brands").await;
        assert_eq!(s, 200, "{body}");
        let (s, _) = app.get_json(t, "/api/v1/fraud/quarantine").await;
        assert_eq!(s, 200);
    }
    // Catalogue changes and credentials: admins only.
    let brand =
        json!({"name": "Other", "jurisdiction": {"name": "MGA", "restricted_countries": []}});
    for t in [&finance, &risk, &reader] {
        let (s, body) = app.post_json(t, "/admin/v1/brands", brand.clone()).await;
        assert_eq!(
            (s, body["error"].as_str()),
            (403, Some("forbidden")),
            "{body}"
        );
        let (s, _) = issue_operator(&app, t, "Eve", "admin").await;
        assert_eq!(s, 403, "only admins issue operator credentials");
    }
    let (s, _) = app.post_json(&admin, "/admin/v1/brands", brand).await;
    assert_eq!(s, 201);
    // Fraud decisions: admin and risk reviewer.
    let decide = |id: &str| format!("/api/v1/fraud/quarantine/click/{id}/decision");
    let body = json!({"brand_id": f.brand_id, "decision": "approve", "reviewer": "x"});
    let missing = uuid::Uuid::now_v7().to_string();
    for t in [&finance, &reader] {
        let (s, _) = app.post_json(t, &decide(&missing), body.clone()).await;
        assert_eq!(s, 403);
        let (s, _) = app
            .post_json(t, "/api/v1/fraud/quarantine/decisions", json!({"decision": "approve", "reason": "r", "brand_id": f.brand_id, "entities": [{"kind": "click", "entity_id": missing}]}))
            .await;
        assert_eq!(s, 403);
        let (s, _) = app.post_json(t, "/admin/v1/fraud/sweep", json!({})).await;
        assert_eq!(s, 403);
    }
    let (s, _) = app.post_json(&risk, &decide(&missing), body).await;
    assert_eq!(s, 404, "allowed, but nothing is held");
    // Money: admin and finance.
    for t in [&risk, &reader] {
        let (s, _) = app
            .post_json(t, "/admin/v1/commissions/run", json!({}))
            .await;
        assert_eq!(s, 403);
        let (s, _) = app.post_json(t, "/admin/v1/payouts/run", json!({})).await;
        assert_eq!(s, 403);
    }
    let (s, body) = app
        .post_json(&finance, "/admin/v1/commissions/run", json!({}))
        .await;
    assert_eq!(s, 200, "{body}");
    // Brand and affiliate keys and the edge secret are not operators.
    let brand_key = app.brand_key(&f).await;
    let (s, _) = issue_operator(&app, &brand_key, "Eve", "admin").await;
    assert_eq!(s, 401, "not an operator credential at all");
    app.stop().await;
}

#[tokio::test]
async fn decisions_closes_and_payouts_record_the_credentials_owner_not_the_body() {
    let mut app = spawn_app().await;
    let f = app.seed().await;
    let (admin, _) = token_of(&app, OPERATOR_TOKEN, "Ada Admin", "admin").await;
    let (risk, risk_id) = token_of(&app, &admin, "Risa Reviewer", "risk_reviewer").await;
    let (finance, _) = token_of(&app, &admin, "Fin Ance", "finance").await;
    let (one, two) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    hold_click(&app, &f.brand_id, &one);
    hold_click(&app, &f.brand_id, &two);

    let (s, body) = app
        .post_json(
            &risk,
            &format!("/api/v1/fraud/quarantine/click/{one}/decision"),
            json!({"brand_id": f.brand_id, "decision": "reject", "reviewer": "Somebody Else"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["reviewer"], "Risa Reviewer");
    let (s, body) = app
        .post_json(
            &risk,
            "/api/v1/fraud/quarantine/decisions",
            json!({"decision": "approve", "reason": "known player", "reviewer": "Somebody Else",
                   "brand_id": f.brand_id, "entities": [{"kind": "click", "entity_id": two}]}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let stored =
        app.sql("SELECT reviewer, credential FROM fraud_reviews ORDER BY entity_id FORMAT TSV");
    let expected = format!("operator:{risk_id}");
    let mut rows: Vec<(String, String)> = stored
        .lines()
        .map(|l| {
            let (r, c) = l.split_once('\t').expect("two columns");
            (r.to_owned(), c.to_owned())
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            ("Risa Reviewer".to_owned(), expected.clone()),
            ("Risa Reviewer".to_owned(), expected)
        ]
    );

    // A payout run and a period close record the finance owner.
    let (s, body) = app
        .post_json(&finance, "/admin/v1/payouts/run", json!({}))
        .await;
    assert_eq!(s, 200, "{body}");
    let actors =
        app.sql("SELECT kind, actor FROM commission_runs ORDER BY started_at_ms FORMAT TSV");
    assert!(actors.contains("payout\tFin Ance"), "{actors}");
    assert!(actors.contains("job\tjob"), "{actors}");
    // Last month has ended and nothing is booked before it.
    let month = last_month(now_ms());
    let (s, body) = app
        .post_json(
            &finance,
            &format!("/admin/v1/periods/{month}/close"),
            json!({}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(
        app.sql("SELECT actor FROM commission_period_closes FORMAT TSV")
            .trim(),
        "Fin Ance"
    );
    app.stop().await;
}

/// `YYYY-MM` of the month before the one of a Unix ms time (UTC).
fn last_month(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    format!("{y:04}-{m:02}")
}

#[tokio::test]
async fn a_revoked_operator_credential_is_refused_and_the_list_never_shows_tokens() {
    let mut app = spawn_app().await;
    let (admin, admin_id) = token_of(&app, OPERATOR_TOKEN, "Ada Admin", "admin").await;
    let (reader, reader_id) = token_of(&app, &admin, "Rea Der", "read_only").await;
    let (s, list) = app.get_json(&admin, "/admin/v1/operators").await;
    assert_eq!(s, 200, "{list}");
    let ids: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|k| k["key_id"].as_str().expect("key id"))
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&admin_id.as_str()) && ids.contains(&reader_id.as_str()));
    assert!(!list.to_string().contains(&reader), "tokens are shown once");
    let (s, _) = issue_operator(&app, &admin, "", "admin").await;
    assert_eq!(s, 422);
    let (s, body) = issue_operator(&app, &admin, "Eve", "root").await;
    assert_eq!(s, 422);
    assert_eq!(body["details"][0]["field"], "role");

    let r = app
        .http
        .delete(format!("{}/admin/v1/api-keys/{reader_id}", app.address))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 204);
    let (s, _) = app.get_json(&reader, "/admin/v1/brands").await;
    assert_eq!(s, 401);
    app.stop().await;
}

#[tokio::test]
async fn a_bootstrap_token_without_full_access_only_manages_operator_credentials() {
    let mut app = spawn_app_configured(|s| s.auth.bootstrap_full_access = false).await;
    let (s, _) = app.get_json(OPERATOR_TOKEN, "/admin/v1/brands").await;
    assert_eq!(s, 403);
    let (s, _) = app
        .post_json(OPERATOR_TOKEN, "/admin/v1/commissions/run", json!({}))
        .await;
    assert_eq!(s, 403);
    let (admin, _) = token_of(&app, OPERATOR_TOKEN, "Ada Admin", "admin").await;
    let (s, body) = app.get_json(&admin, "/admin/v1/brands").await;
    assert_eq!(s, 200, "{body}");
    app.stop().await;
}
