//! Queue delivery on the Cloudflare runtime (Miniflare under `wrangler dev`,
//! from the repository's wrangler.toml): the fetch handler sends each record
//! to the `CLICK_QUEUE` producer and the queue consumer posts them, batched,
//! to the aggregator.

use std::time::Duration;

use serde_json::json;

use clickstitch_e2e::{spawn_backend, Visit, CHROME, EDGE_SECRET};
use clickstitch_testkit::wrangler::WranglerDev;

#[tokio::test]
async fn clicks_travel_through_the_queue_and_its_consumer_into_clickhouse() {
    let stack = spawn_backend().await.expect("backend");
    let aggregator = stack.aggregator_url();
    let cf = json!({"country": "DE", "asn": 3320, "colo": "FRA", "city": "Frankfurt am Main"})
        .to_string();
    let dev = tokio::task::spawn_blocking(move || {
        WranglerDev::start(
            "local",
            &[
                ("AGGREGATOR_URL", aggregator.as_str()),
                ("CLICK_DELIVERY", "queue"),
                ("EDGE_SECRET", EDGE_SECRET),
                ("IDENTITY_SALT", "queue-test-salt"),
            ],
            &cf,
        )
    })
    .await
    .expect("join")
    .expect("wrangler dev starts");

    let code = stack.demo.code.clone();
    let mut click_ids = Vec::new();
    for ip in ["203.0.113.21", "203.0.113.22", "203.0.113.23"] {
        let visit = Visit {
            path: format!("/{code}?sub1=queue"),
            cf: None,
            user_agent: Some(CHROME),
            ip,
        };
        let r = stack.visit_at(&dev.url(), &visit).await.expect("visit");
        assert_eq!(r.status().as_u16(), 302, "{}", dev.logs());
        let location = r.headers()["location"].to_str().expect("ascii").to_owned();
        let id = location
            .strip_prefix("https://lucky.example/join?cid=")
            .map(|rest| rest[..36].to_owned())
            .unwrap_or_else(|| panic!("no click id in {location}"));
        click_ids.push(id);
    }
    let ids = click_ids
        .iter()
        .map(|id| format!("toUUID('{id}')"))
        .collect::<Vec<_>>()
        .join(",");
    let result = stack
        .wait_for_count(
            &format!("SELECT count() FROM clicks_unique WHERE click_id IN ({ids}) AND country = 'DE' AND sub1 = 'queue'"),
            3,
            Duration::from_secs(60),
        )
        .await;
    assert!(result.is_ok(), "{result:?}\nwrangler log:\n{}", dev.logs());
}
