//! The click path end to end: a player's click on the edge worker (wasm under
//! workerd) lands, batched, in ClickHouse through the aggregator.

use std::time::Duration;

use serde_json::json;

use clickstitch_e2e::{spawn_stack, Visit, CHROME};

const WAIT: Duration = Duration::from_secs(20);

fn human<'a>(path: String, country: &str, ip: &'a str) -> Visit<'a> {
    Visit {
        path,
        cf: Some(
            json!({"country": country, "asn": 3320, "colo": "FRA", "city": "Frankfurt am Main", "region": "Hessen"}),
        ),
        user_agent: Some(CHROME),
        ip,
    }
}

#[tokio::test]
async fn a_human_click_is_redirected_with_its_click_id_and_lands_in_clickhouse() {
    let stack = spawn_stack().await.expect("stack");
    let d = stack.demo.clone();
    let r = stack
        .visit(&human(
            format!("/{}?sub1=facebook&sub2=<b>x</b>", d.code),
            "DE",
            "203.0.113.5",
        ))
        .await
        .expect("visit");
    assert_eq!(r.status().as_u16(), 302);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let location = r.headers()["location"].to_str().expect("ascii").to_owned();
    let prefix = "https://lucky.example/join?cid=";
    assert!(location.starts_with(prefix), "{location}");
    let click_id = &location[prefix.len()..prefix.len() + 36];
    assert_eq!(&click_id[14..15], "7", "a UUIDv7: {click_id}");
    assert_eq!(
        &location[prefix.len() + 36..],
        format!(
            "&aff={}&sub={}&s1=facebook&geo=DE",
            d.affiliate_id, d.sub_affiliate_id
        )
    );

    stack
        .wait_for_count(
            &format!("SELECT count() FROM clicks_unique WHERE click_id = toUUID('{click_id}')"),
            1,
            WAIT,
        )
        .await
        .expect("the click is stored");
    let row = stack
        .sql(&format!(
            "SELECT toString(brand_id), toString(affiliate_id), toString(sub_affiliate_id), link_code, sub1, sub2, \
             toString(country), city, asn, colo, ip, is_bot, toString(bot_reason), is_duplicate, \
             length(device_fingerprint), length(identity_hash), clicked_at_ms > 0 \
             FROM clicks_unique WHERE click_id = toUUID('{click_id}') FORMAT TabSeparated"
        ))
        .expect("row");
    assert_eq!(
        row.trim(),
        format!(
            "{}\t{}\t{}\t{}\tfacebook\tbxb\tDE\tFrankfurt am Main\t3320\tFRA\t203.0.113.5\t0\tnone\t0\t32\t32\t1",
            d.brand_id, d.affiliate_id, d.sub_affiliate_id, d.code
        )
    );
}

#[tokio::test]
async fn a_repeat_click_by_the_same_visitor_within_the_hour_is_marked_duplicate() {
    let stack = spawn_stack().await.expect("stack");
    let path = format!("/{}", stack.demo.code);
    for _ in 0..2 {
        let r = stack
            .visit(&human(path.clone(), "DE", "198.51.100.9"))
            .await
            .expect("visit");
        assert_eq!(r.status().as_u16(), 302);
    }
    stack
        .wait_for_count("SELECT count() FROM clicks_unique", 2, WAIT)
        .await
        .expect("both stored");
    let flags = stack
        .sql("SELECT groupArray(is_duplicate) FROM (SELECT is_duplicate FROM clicks_unique ORDER BY clicked_at_ms, toString(click_id))")
        .expect("flags");
    assert_eq!(flags.trim(), "[0,1]");
}

#[tokio::test]
async fn a_restricted_country_gets_451_and_no_click_is_stored() {
    let stack = spawn_stack().await.expect("stack");
    let r = stack
        .visit(&human(format!("/{}", stack.demo.code), "US", "203.0.113.6"))
        .await
        .expect("visit");
    assert_eq!(r.status().as_u16(), 451);
    assert!(r.headers().get("location").is_none());
    // The drop is counted (it reaches ClickHouse as a geo block)...
    stack
        .wait_for_count(
            "SELECT count() FROM geo_blocked_clicks_unique WHERE country = 'US'",
            1,
            WAIT,
        )
        .await
        .expect("the drop is counted");
    // ...and, by then, had a click been recorded it would be there too.
    assert_eq!(
        stack
            .sql("SELECT count() FROM clicks")
            .expect("count")
            .trim(),
        "0"
    );
}

#[tokio::test]
async fn an_unknown_country_is_blocked_because_the_jurisdiction_fails_closed() {
    let stack = spawn_stack().await.expect("stack");
    let mut visit = human(format!("/{}", stack.demo.code), "DE", "203.0.113.8");
    visit.cf = None;
    let r = stack.visit(&visit).await.expect("visit");
    assert_eq!(r.status().as_u16(), 451);
}

#[tokio::test]
async fn a_bot_is_redirected_without_a_click_id_and_stored_as_a_bot() {
    let stack = spawn_stack().await.expect("stack");
    let mut visit = human(format!("/{}", stack.demo.code), "DE", "66.249.66.1");
    visit.user_agent =
        Some("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
    let r = stack.visit(&visit).await.expect("visit");
    assert_eq!(r.status().as_u16(), 302);
    let location = r.headers()["location"].to_str().expect("ascii").to_owned();
    assert!(
        location.starts_with("https://lucky.example/join?cid=&aff="),
        "{location}"
    );
    stack
        .wait_for_count(
            "SELECT count() FROM clicks_unique WHERE is_bot = 1 AND bot_reason = 'known_bot'",
            1,
            WAIT,
        )
        .await
        .expect("stored as a bot");
    assert_eq!(
        stack
            .sql("SELECT count() FROM clicks_unique WHERE is_bot = 0")
            .expect("count")
            .trim(),
        "0"
    );
}

#[tokio::test]
async fn an_unknown_code_is_404() {
    let stack = spawn_stack().await.expect("stack");
    for path in ["/zzzzzzzzzz", "/abc", "/", "/a/b/c"] {
        let r = stack
            .visit(&human(path.to_owned(), "DE", "203.0.113.9"))
            .await
            .expect("visit");
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
}

#[tokio::test]
async fn with_the_aggregator_down_redirects_are_served_and_the_clicks_arrive_once_it_is_back() {
    let mut stack = spawn_stack().await.expect("stack");
    let path = format!("/{}", stack.demo.code);
    // The first click teaches the isolate the link.
    let r = stack
        .visit(&human(path.clone(), "DE", "192.0.2.1"))
        .await
        .expect("visit");
    assert_eq!(r.status().as_u16(), 302);
    stack
        .wait_for_count("SELECT count() FROM clicks_unique", 1, WAIT)
        .await
        .expect("first click");

    stack.stop_aggregator().await.expect("stop the aggregator");
    for i in 2..=4 {
        let r = stack
            .visit(&human(path.clone(), "DE", &format!("192.0.2.{i}")))
            .await
            .expect("visit");
        assert_eq!(
            r.status().as_u16(),
            302,
            "redirects must not depend on the aggregator"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stack
            .sql("SELECT count() FROM clicks")
            .expect("count")
            .trim(),
        "1"
    );

    stack
        .start_aggregator()
        .await
        .expect("start the aggregator again");
    stack
        .wait_for_count(
            "SELECT count() FROM clicks_unique",
            4,
            Duration::from_secs(40),
        )
        .await
        .expect("the buffered clicks arrive");
}
