use crate::helpers::{spawn_app, spawn_app_with, Options};

#[tokio::test]
async fn health_reports_a_reachable_clickhouse() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(format!("{}/health", app.address))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["clickhouse"]["reachable"], true);
}

#[tokio::test]
async fn health_reports_503_when_clickhouse_is_down() {
    let mut app = spawn_app_with(Options {
        own_clickhouse: true,
        ..Options::default()
    })
    .await;
    app.ch.own_mut().stop().expect("stop ClickHouse");
    let r = app
        .http
        .get(format!("{}/health", app.address))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 503);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["clickhouse"]["reachable"], false);
}
