//! The first-party visitor cookie `cs_vid` end to end (wasm under workerd,
//! the aggregator, ClickHouse): a human click gets a random visitor id in a
//! cookie and in its click record, a returning browser keeps its id, and
//! nothing is set for bots, geo-blocked visitors, or brands that turned the
//! cookie off.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use clickstitch_e2e::{spawn_stack, Stack, CHROME, OPERATOR_TOKEN};
use clickstitch_testkit::workerd::CF_HEADER;

const WAIT: Duration = Duration::from_secs(20);
const ATTRIBUTES: &str = "; Max-Age=34560000; Path=/; HttpOnly; Secure; SameSite=Lax";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// What the edge answered.
struct Answer {
    status: u16,
    click_id: Option<String>,
    set_cookies: Vec<String>,
}

/// A GET of `/{code}` from `ip` in `country`, with an optional `Cookie`.
async fn click(
    stack: &Stack,
    code: &str,
    country: &str,
    ip: &str,
    user_agent: &str,
    cookie: Option<&str>,
) -> anyhow::Result<Answer> {
    let mut req = stack
        .http
        .get(format!("{}/{code}", stack.edge_url()))
        .header("cf-connecting-ip", ip)
        .header("user-agent", user_agent)
        .header("accept-language", "de-DE,de;q=0.9")
        .header(
            CF_HEADER,
            json!({"country": country, "asn": 3320}).to_string(),
        );
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    let r = req.send().await?;
    let location = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or("");
    let click_id = location
        .split_once("cid=")
        .map(|(_, rest)| rest.split('&').next().unwrap_or("").to_owned())
        .filter(|id| !id.is_empty());
    let set_cookies = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().map(str::to_owned))
        .collect::<Result<_, _>>()?;
    Ok(Answer {
        status: r.status().as_u16(),
        click_id,
        set_cookies,
    })
}

/// The visitor id of the one `Set-Cookie`, checking the exact attributes.
fn cookie_id(answer: &Answer) -> String {
    assert_eq!(answer.set_cookies.len(), 1, "{:?}", answer.set_cookies);
    let value = &answer.set_cookies[0];
    let id = value
        .strip_prefix("cs_vid=")
        .and_then(|rest| rest.strip_suffix(ATTRIBUTES))
        .unwrap_or_else(|| panic!("unexpected Set-Cookie {value:?}"));
    assert!(
        id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "32 lower-case hex: {id:?}"
    );
    id.to_owned()
}

/// The stored `visitor_id` of a click (waits for it to arrive).
async fn stored_visitor_id(stack: &Stack, click_id: &str) -> String {
    // `clicks` itself: the `clicks_unique` view's columns were fixed when it
    // was created, before `visitor_id` existed.
    let filter = format!("FROM clicks FINAL WHERE click_id = toUUID('{click_id}')");
    stack
        .wait_for_count(&format!("SELECT count() {filter}"), 1, WAIT)
        .await
        .expect("the click is stored");
    stack
        .sql(&format!("SELECT visitor_id {filter}"))
        .expect("select")
        .trim()
        .to_owned()
}

async fn admin(stack: &Stack, path: &str, body: Value) -> anyhow::Result<Value> {
    let r = stack
        .http
        .post(format!("{}/admin/v1/{path}", stack.aggregator_url()))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let body: Value = r.json().await?;
    if status != 201 {
        bail!("POST {path} answered {status}: {body}");
    }
    Ok(body)
}

/// A link of a new brand created with `visitor_cookie: false`, owned by the
/// demo's root affiliate.
async fn link_without_cookie(stack: &Stack) -> anyhow::Result<String> {
    let brand = admin(
        stack,
        "brands",
        json!({"name": "Quiet Casino", "jurisdiction": {"name": "MGA", "restricted_countries": ["US"]},
               "visitor_cookie": false}),
    )
    .await?;
    assert_eq!(brand["visitor_cookie"], false);
    let campaign = admin(
        stack,
        "campaigns",
        json!({"brand_id": brand["brand_id"], "name": "Quiet"}),
    )
    .await?;
    let link = admin(
        stack,
        "links",
        json!({"brand_id": brand["brand_id"], "affiliate_id": stack.demo.affiliate_id,
               "campaign_id": campaign["campaign_id"],
               "destination_template": "https://quiet.example/?cid={click_id}"}),
    )
    .await?;
    link["code"]
        .as_str()
        .map(str::to_owned)
        .context("a link code")
}

#[tokio::test]
async fn a_browser_keeps_one_random_visitor_id_in_a_first_party_cookie() {
    let stack = spawn_stack().await.expect("stack");
    let code = stack.demo.code.clone();

    // First click: a new id, in the cookie and in the click record.
    let first = click(&stack, &code, "DE", "203.0.113.40", CHROME, None)
        .await
        .expect("visit");
    assert_eq!(first.status, 302);
    let id = cookie_id(&first);
    let first_click = first.click_id.clone().expect("a click id");
    assert_eq!(stored_visitor_id(&stack, &first_click).await, id);

    // The same browser again, from another IP, among other cookies: the
    // same id, refreshed.
    let jar = format!("_ga=GA1.2.3.4; cs_vid={id}; theme=dark");
    let second = click(&stack, &code, "DE", "198.51.100.40", CHROME, Some(&jar))
        .await
        .expect("visit");
    assert_eq!(second.status, 302);
    assert_eq!(cookie_id(&second), id);
    let second_click = second.click_id.clone().expect("a click id");
    assert_ne!(second_click, first_click);
    assert_eq!(stored_visitor_id(&stack, &second_click).await, id);

    // A tampered cookie is not trusted: a new id replaces it.
    let third = click(
        &stack,
        &code,
        "DE",
        "192.0.2.40",
        CHROME,
        Some("cs_vid=ffffffffffffffffffffffffffffffff-tampered"),
    )
    .await
    .expect("visit");
    let replaced = cookie_id(&third);
    assert_ne!(replaced, id);
    let third_click = third.click_id.clone().expect("a click id");
    assert_eq!(stored_visitor_id(&stack, &third_click).await, replaced);

    // A bot is redirected without a click id and without a cookie, and its
    // record has no visitor id even when it sends one.
    let bot = click(
        &stack,
        &code,
        "DE",
        "66.249.66.40",
        GOOGLEBOT,
        Some(&format!("cs_vid={id}")),
    )
    .await
    .expect("visit");
    assert_eq!(bot.status, 302);
    assert!(bot.click_id.is_none());
    assert!(bot.set_cookies.is_empty(), "{:?}", bot.set_cookies);

    // A geo-blocked visitor gets 451 and no cookie.
    let blocked = click(&stack, &code, "US", "203.0.113.41", CHROME, None)
        .await
        .expect("visit");
    assert_eq!(blocked.status, 451);
    assert!(blocked.set_cookies.is_empty(), "{:?}", blocked.set_cookies);

    // An unknown code is 404 without a cookie.
    let unknown = click(&stack, "zzzzzzzzzz", "DE", "203.0.113.42", CHROME, None)
        .await
        .expect("visit");
    assert_eq!(unknown.status, 404);
    assert!(unknown.set_cookies.is_empty(), "{:?}", unknown.set_cookies);

    // A brand that turned the cookie off: no cookie read or set, no id.
    let quiet = link_without_cookie(&stack).await.expect("a quiet link");
    let off = click(
        &stack,
        &quiet,
        "DE",
        "203.0.113.43",
        CHROME,
        Some(&format!("cs_vid={id}")),
    )
    .await
    .expect("visit");
    assert_eq!(off.status, 302);
    assert!(off.set_cookies.is_empty(), "{:?}", off.set_cookies);
    let off_click = off.click_id.clone().expect("a click id");
    assert_eq!(stored_visitor_id(&stack, &off_click).await, "");

    stack
        .wait_for_count(
            "SELECT count() FROM clicks_unique WHERE is_bot = 1",
            1,
            WAIT,
        )
        .await
        .expect("the bot is stored");
    assert_eq!(
        stack
            .sql("SELECT visitor_id FROM clicks FINAL WHERE is_bot = 1")
            .expect("select")
            .trim(),
        ""
    );
}
