//! Trusted-proxy mode end to end (wasm under workerd, the aggregator,
//! ClickHouse): with `TRUST_CLIENT_HEADERS = "proxy"` the visitor's own
//! `CF-IPCountry`, `CF-Connecting-IP` and `cf` facts are believed only when
//! the request carries the proxy's secret in `X-Clickstitch-Proxy-Auth`.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use clickstitch_e2e::{spawn_stack_with, Stack, CHROME};
use clickstitch_testkit::workerd::CF_HEADER;

const WAIT: Duration = Duration::from_secs(20);
const PROXY_SECRET: &str = "e2e-proxy-secret-0123456789abcdef0123";

async fn proxy_mode_stack() -> Stack {
    spawn_stack_with(&[
        ("TRUST_CLIENT_HEADERS", Some("proxy")),
        ("PROXY_AUTH_SECRET", Some(PROXY_SECRET)),
    ])
    .await
    .expect("stack")
}

/// A GET of `/{code}` claiming `country` (in both the `CF-IPCountry` header
/// and the `cf` object) and `ip`, with `proxy_auth` as the proxy's secret.
async fn click(
    stack: &Stack,
    code: &str,
    country: &str,
    ip: &str,
    proxy_auth: Option<&str>,
) -> anyhow::Result<(u16, Option<String>)> {
    let mut req = stack
        .http
        .get(format!("{}/{code}?sub1=proxy", stack.edge_url()))
        .header("cf-connecting-ip", ip)
        .header("cf-ipcountry", country)
        .header(
            CF_HEADER,
            json!({"country": country, "asn": 3320}).to_string(),
        )
        .header("user-agent", CHROME);
    if let Some(secret) = proxy_auth {
        req = req.header("x-clickstitch-proxy-auth", secret);
    }
    let r = req.send().await?;
    let click_id = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.split_once("cid=").map(|(_, rest)| rest[..36].to_owned()));
    Ok((r.status().as_u16(), click_id))
}

/// A link of a brand that restricts no country and lets unknown countries
/// through, so every request is redirected.
async fn unrestricted_link(stack: &Stack) -> anyhow::Result<String> {
    let brand = stack
        .admin_post(
            "brands",
            json!({"name": "Open Casino",
                   "jurisdiction": {"name": "open", "restricted_countries": [], "block_unknown_country": false}}),
        )
        .await?;
    let campaign = stack
        .admin_post(
            "campaigns",
            json!({"brand_id": brand["brand_id"], "name": "Open"}),
        )
        .await?;
    let link = stack
        .admin_post(
            "links",
            json!({"brand_id": brand["brand_id"], "affiliate_id": stack.demo.affiliate_id,
                   "campaign_id": campaign["campaign_id"],
                   "destination_template": "https://open.example/?cid={click_id}"}),
        )
        .await?;
    link["code"]
        .as_str()
        .map(str::to_owned)
        .context("a link code")
}

#[tokio::test]
async fn in_proxy_mode_a_forged_country_without_the_secret_does_not_bypass_the_geo_block() {
    let stack = proxy_mode_stack().await;
    let code = stack.demo.code.clone();
    // The brand's jurisdiction restricts US and FR and fails closed. A
    // visitor claiming Germany, past the proxy, has no country the worker
    // believes: 451.
    for forged in [None, Some("wrong-secret"), Some(&PROXY_SECRET[1..])] {
        let (status, click_id) = click(&stack, &code, "DE", "203.0.113.40", forged)
            .await
            .expect("visit");
        assert_eq!((status, click_id), (451, None), "{forged:?}");
    }
    stack
        .wait_for_count(
            "SELECT count() FROM geo_blocked_clicks_unique WHERE country = 'XX' AND reason = 'unknown_country'",
            3,
            WAIT,
        )
        .await
        .expect("the blocks are recorded without the claimed country");

    // Through the proxy the country is honoured, both ways.
    let (status, click_id) = click(&stack, &code, "DE", "203.0.113.41", Some(PROXY_SECRET))
        .await
        .expect("visit");
    assert_eq!(status, 302);
    let click_id = click_id.expect("a click id");
    let (status, _) = click(&stack, &code, "US", "203.0.113.42", Some(PROXY_SECRET))
        .await
        .expect("visit");
    assert_eq!(status, 451);
    stack
        .wait_for_count(
            &format!("SELECT count() FROM clicks_unique WHERE click_id = toUUID('{click_id}') AND country = 'DE' AND ip = '203.0.113.41'"),
            1,
            WAIT,
        )
        .await
        .expect("the proxied click is stored with its country and ip");
    stack
        .wait_for_count(
            "SELECT count() FROM geo_blocked_clicks_unique WHERE country = 'US' AND reason = 'jurisdiction_restricted'",
            1,
            WAIT,
        )
        .await
        .expect("the proxied US visitor is blocked as such");
}

#[tokio::test]
async fn in_proxy_mode_a_forged_client_ip_without_the_secret_is_not_stored() {
    let stack = proxy_mode_stack().await;
    let code = unrestricted_link(&stack).await.expect("link");

    let (status, forged) = click(&stack, &code, "DE", "198.51.100.66", None)
        .await
        .expect("visit");
    assert_eq!(status, 302, "nothing restricts this link");
    let forged = forged.expect("a click id");
    let (status, proxied) = click(&stack, &code, "DE", "198.51.100.67", Some(PROXY_SECRET))
        .await
        .expect("visit");
    assert_eq!(status, 302);
    let proxied = proxied.expect("a click id");

    stack
        .wait_for_count("SELECT count() FROM clicks_unique", 2, WAIT)
        .await
        .expect("both stored");
    let row = |id: &str| {
        stack
            .sql(&format!(
                "SELECT ip, toString(country), asn FROM clicks_unique WHERE click_id = toUUID('{id}') FORMAT TabSeparated"
            ))
            .expect("row")
            .trim_end_matches('\n')
            .to_owned()
    };
    assert_eq!(
        row(&forged),
        "\tXX\t0",
        "the forged ip, country and asn are ignored"
    );
    assert_eq!(row(&proxied), "198.51.100.67\tDE\t3320");
}
