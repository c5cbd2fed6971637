//! Secrets never reach the logs, at any level: with a TRACE subscriber
//! installed (the most the aggregator can log), a postback carrying its
//! brand's secret in the query string, a brand key, the operator token and
//! the edge secret in `Authorization` headers leave no trace of themselves
//! in what is logged, while the requests themselves are logged.
//!
//! Its own test binary: the subscriber is global to the process.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::io::Write;
use std::sync::{Arc, Mutex};

use clickstitch_shared::ClickIdGenerator;
use serde_json::json;

use helpers::{click, now_ms, spawn_app_with, Options, EDGE_SECRET, OPERATOR_TOKEN};

/// The key postback secrets are derived with.
const POSTBACK_KEY: &str = "test-postback-key-0123456789abcdef";

/// Everything logged, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

#[tokio::test]
async fn no_secret_is_logged_even_at_trace_level() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let app = spawn_app_with(Options {
        postback_key: Some(POSTBACK_KEY),
        ..Options::default()
    })
    .await;
    let f = app.seed().await;
    let postback_secret = app.postback_secret(&f.brand_id).await;
    let brand_key = app.brand_key(&f).await;

    let r = app
        .http
        .get(format!(
            "{}/postback/v1/{}?event=ftd&txid=log-1&player_id=p-log&amount=5.00&currency=EUR&secret={postback_secret}",
            app.address, f.brand_id
        ))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 201);
    let (status, _, body) = app
        .post_event(
            &brand_key,
            json!({"event_id": "log-reg", "type": "registration", "occurred_at": now_ms(),
                   "player_id": "p-log-2", "country": "DE"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut ids = ClickIdGenerator::new();
    let (status, body) = app.post_batch(&[click(&f, &mut ids, 1)], &[]).await;
    assert_eq!(status, 200, "{body}");

    let text = logs.text();
    assert!(
        text.contains("/postback/v1/"),
        "requests are logged at trace level (else this test proves nothing):\n{text}"
    );
    for (what, secret) in [
        ("the postback secret", postback_secret.as_str()),
        ("a brand key", brand_key.as_str()),
        ("the operator token", OPERATOR_TOKEN),
        ("the edge secret", EDGE_SECRET),
        ("the postback key", POSTBACK_KEY),
    ] {
        assert!(!text.contains(secret), "{what} is in the logs");
    }
    assert!(
        !text.contains("secret="),
        "a query string with a secret is logged"
    );
}
