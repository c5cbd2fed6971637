//! Rate limits on the real server: each credential has its own bucket and
//! gets a JSON 429 with `Retry-After` once it is empty; an address that
//! keeps failing authentication gets 429 for anything without valid
//! credentials until its bucket refills.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_app_configured, EDGE_SECRET, OPERATOR_TOKEN};

#[tokio::test]
async fn a_credential_past_its_burst_gets_429_with_retry_after_and_others_go_on() {
    let mut app = spawn_app_configured(|s| {
        s.rate_limit.key_per_sec = 1;
        s.rate_limit.key_burst = 3;
        s.rate_limit.edge_per_sec = 1;
        s.rate_limit.edge_burst = 2;
    })
    .await;
    let f = app.seed().await;
    let (busy, calm) = (app.brand_key(&f).await, app.brand_key(&f).await);
    for _ in 0..3 {
        let (s, body) = app.get_json(&busy, "/api/v1/commissions").await;
        assert_eq!(s, 200, "{body}");
    }
    let r = app
        .http
        .get(format!("{}/api/v1/commissions", app.address))
        .bearer_auth(&busy)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("whole seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    let body: serde_json::Value = r.json().await.expect("a JSON body");
    assert_eq!(body["error"], "rate_limited");

    let (s, _) = app.get_json(&calm, "/api/v1/commissions").await;
    assert_eq!(s, 200, "another key has its own bucket");
    let (s, _) = app.get_json(OPERATOR_TOKEN, "/admin/v1/brands").await;
    assert_eq!(s, 200, "operators have their own bucket");

    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..3 {
            let r = app
                .post_batch_raw(json!({"clicks": []}).to_string(), Some(EDGE_SECRET))
                .await;
            out.push(r.status().as_u16());
        }
        out
    };
    assert_eq!(statuses, [200, 200, 429], "the edge secret is limited too");

    tokio::time::sleep(Duration::from_secs(retry)).await;
    let (s, _) = app.get_json(&busy, "/api/v1/commissions").await;
    assert_eq!(s, 200, "the bucket refilled");
    let text = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("http_rate_limited_total{limit=\"key\"} 1"),
        "{text}"
    );
    assert!(text.contains("http_rate_limited_total{limit=\"edge\"} 1"));
    app.stop().await;
}

#[tokio::test]
async fn an_address_that_keeps_failing_authentication_is_locked_out_but_valid_credentials_go_on() {
    let mut app = spawn_app_configured(|s| {
        s.rate_limit.failed_auth_per_sec = 1;
        s.rate_limit.failed_auth_burst = 5;
    })
    .await;
    let guesses = [
        "csk_AAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
        "wrong-operator-token",
        "",
    ];
    let mut statuses = Vec::new();
    for i in 0..6 {
        let (s, _) = app
            .get_json(guesses[i % guesses.len()], "/admin/v1/brands")
            .await;
        statuses.push(s);
    }
    assert_eq!(statuses, [401; 6]);
    let r = app
        .http
        .get(format!("{}/admin/v1/brands", app.address))
        .bearer_auth("one-more-guess")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 429, "locked out");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry >= 1);
    let (s, _) = app.get_json("", "/health").await;
    assert_eq!(s, 200, "health stays reachable");
    let (s, _) = app.get_json(OPERATOR_TOKEN, "/admin/v1/brands").await;
    assert_eq!(s, 200, "valid credentials from the address go on");
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let (s, _) = app.get_json("wrong-again", "/admin/v1/brands").await;
    assert_eq!(s, 401, "refilled: a failure is a 401 again");
    app.stop().await;
}
