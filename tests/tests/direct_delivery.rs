//! Direct delivery's loss windows end to end (wasm under workerd, the
//! aggregator, ClickHouse): clicks buffered through a long aggregator outage
//! arrive on their own once it is back, and a workerd `SIGTERM` right after a
//! burst of clicks loses at most the last aggregator round trips' worth.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use clickstitch_e2e::{spawn_stack, spawn_stack_with, Visit, CHROME};

const WAIT: Duration = Duration::from_secs(20);

fn human(path: String, ip: &str) -> Visit<'_> {
    Visit {
        path,
        cf: Some(json!({"country": "DE", "asn": 3320, "colo": "FRA"})),
        user_agent: Some(CHROME),
        ip,
    }
}

/// Longer than the 60 s after which a flush used to give up until the next
/// click.
const OUTAGE: Duration = Duration::from_secs(65);

#[tokio::test]
async fn clicks_buffered_through_an_outage_longer_than_a_minute_arrive_within_seconds_of_the_aggregators_return_without_new_traffic(
) {
    let mut stack = spawn_stack().await.expect("stack");
    let path = format!("/{}", stack.demo.code);
    // The first click teaches the isolate the link.
    let r = stack
        .visit(&human(path.clone(), "192.0.2.10"))
        .await
        .expect("visit");
    assert_eq!(r.status().as_u16(), 302);
    stack
        .wait_for_count("SELECT count() FROM clicks_unique", 1, WAIT)
        .await
        .expect("first click");

    stack.stop_aggregator().await.expect("stop the aggregator");
    for i in 11..=13 {
        let r = stack
            .visit(&human(path.clone(), &format!("192.0.2.{i}")))
            .await
            .expect("visit");
        assert_eq!(r.status().as_u16(), 302);
    }
    tokio::time::sleep(OUTAGE).await;
    stack
        .start_aggregator()
        .await
        .expect("start the aggregator again");
    let back = Instant::now();
    // No request reaches the worker from here on.
    stack
        .wait_for_count(
            "SELECT count() FROM clicks_unique",
            4,
            Duration::from_secs(15),
        )
        .await
        .expect("the buffered clicks arrive without new traffic");
    let delay = back.elapsed();
    eprintln!(
        "outage of {OUTAGE:?}: the buffered clicks were stored {} ms after the aggregator's return",
        delay.as_millis()
    );
    // The retry backoff is capped at FLUSH_RETRY_MAX_MS (2 s by default).
    assert!(delay < Duration::from_secs(5), "took {delay:?}");
    // Stored once each: no batch was both stored and replayed.
    assert_eq!(
        stack
            .sql("SELECT count(), uniqExact(click_id) FROM clicks FORMAT TabSeparated")
            .expect("counts")
            .trim(),
        "4\t4"
    );
}

/// Clicks sent before the `SIGTERM`.
const BURST: usize = 2_000;
/// Clients sending them at once.
const CLIENTS: usize = 8;
/// `FLUSH_MAX_UNSTORED` (100 by default; lower here, so that a worker
/// without the bound is caught even on a lucky run).
const MAX_UNSTORED: u64 = 25;

#[tokio::test]
async fn a_sigterm_right_after_a_burst_of_clicks_loses_at_most_the_last_round_trips_worth() {
    // The production defaults (FLUSH_MAX_CLICKS 500, FLUSH_MAX_MS 0), and
    // a tighter bound on what may be answered but not stored.
    let max_unstored = MAX_UNSTORED.to_string();
    let mut stack = spawn_stack_with(&[
        ("FLUSH_MAX_CLICKS", None),
        ("FLUSH_MAX_MS", None),
        ("FLUSH_MAX_UNSTORED", Some(&max_unstored)),
    ])
    .await
    .expect("stack");
    let path = format!("/{}?sub1=burst", stack.demo.code);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (http, url, next) = (
            stack.http.clone(),
            format!("{}{path}", stack.edge_url()),
            next.clone(),
        );
        let cf = json!({"country": "DE", "asn": 3320}).to_string();
        clients.spawn(async move {
            let mut answered = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= BURST {
                    return answered;
                }
                let r = http
                    .get(&url)
                    .header(
                        "cf-connecting-ip",
                        format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                    )
                    .header("user-agent", CHROME)
                    .header(clickstitch_testkit::workerd::CF_HEADER, &cf)
                    .send()
                    .await
                    .expect("visit");
                assert_eq!(r.status().as_u16(), 302);
                answered.push(Instant::now());
            }
        });
    }
    let mut answered = Vec::with_capacity(BURST);
    while let Some(done) = clients.join_next().await {
        answered.extend(done.expect("client"));
    }
    let last_answer = answered.iter().max().copied().expect("answers");
    stack
        .terminate_edge(Duration::from_secs(10))
        .await
        .expect("workerd exits on SIGTERM");
    let exited = last_answer.elapsed();
    let burst_ms = started.elapsed().as_millis() - exited.as_millis();

    // What the aggregator got by the time workerd exited is stored within a
    // group commit; wait until the count stops moving.
    let mut stored: u64 = 0;
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < Duration::from_secs(2) {
        let now: u64 = stack
            .sql("SELECT count() FROM clicks_unique WHERE sub1 = 'burst'")
            .expect("count")
            .trim()
            .parse()
            .expect("a number");
        if now != stored {
            stored = now;
            stable_since = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lost = BURST as u64 - stored;
    let in_last = |ms: u64| {
        answered
            .iter()
            .filter(|t| last_answer.duration_since(**t) <= Duration::from_millis(ms))
            .count()
    };
    eprintln!(
        "SIGTERM after {BURST} clicks in {burst_ms} ms from {CLIENTS} clients: {lost} lost \
         ({} answered in the last 50 ms, {} in the last 100 ms; workerd exited {} ms after the last answer)",
        in_last(50),
        in_last(100),
        exited.as_millis()
    );
    // An answer waits while more than FLUSH_MAX_UNSTORED records are not
    // stored yet (and the aggregator takes batches), and workerd finishes the requests in flight
    // before it exits: what a SIGTERM can lose is bounded by that.
    assert!(
        lost <= MAX_UNSTORED,
        "{lost} clicks lost, more than FLUSH_MAX_UNSTORED = {MAX_UNSTORED}\n{}",
        stack.edge_logs()
    );
}
