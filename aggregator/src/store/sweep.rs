//! The population sweep's queries: human clicks per link, network and ASN
//! with how many a registration reported, and the unconverted clicks of one
//! flagged group.
//!
//! Owns SQL only; what is flagged and held belongs to
//! [`crate::fraud::population`] and [`crate::services::fraud::sweep`]. Spliced values are
//! UUIDs, numbers and strings escaped by [`sql_string`]; queries run with
//! `query_raw`. The SQL runs on ClickHouse 18.16 and on current releases
//! (click ids are compared as text; `docs/clickhouse.md`, "Population
//! sweep", holds the tally query and `sql_compat` runs it on both).

use clickhouse::Row;
use serde::Deserialize;
use uuid::Uuid;

use super::fraud::ScopeClickRow;
use super::lookups::sql_string;
use super::{Store, StoreError};

/// Human clicks of one link from one network and ASN in a window, and how
/// many of them a registration reported. `network` is the IPv4 address with
/// its last octet zeroed (a /24) or the IPv6 address as stored.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct ClickTallyRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    pub link_code: String,
    pub network: String,
    pub asn: u32,
    pub clicks: u64,
    pub converted: u64,
}

/// Which brands a tally covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrandSet {
    /// Only these.
    Only(Vec<Uuid>),
    /// All but these.
    Except(Vec<Uuid>),
}

/// Which clicks of a link a candidate query returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClickFilter {
    /// IPs starting with this text (an IPv4 prefix such as `93.184.`, or an
    /// IPv6 one).
    IpPrefix(String),
    /// From these ASNs.
    Asns(Vec<u32>),
}

fn brand_list(ids: &[Uuid]) -> String {
    ids.iter()
        .map(|b| format!("toUUID('{b}')"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Click ids (as text) reported by a registration of `brand_filter` since
/// `from_s`.
fn reported_ids(brand_filter: &str, from_s: u64) -> String {
    format!(
        "SELECT toString(arrayJoin(click_ids)) FROM player_events \
         WHERE {brand_filter}event_type = 'registration' AND occurred_at >= toDateTime({from_s})"
    )
}

/// The tally query for clicks in `[from_ms, to_ms)` of `brands`.
pub fn tally_sql(brands: &BrandSet, from_ms: u64, to_ms: u64) -> String {
    let brand_filter = match brands {
        BrandSet::Only(ids) if ids.is_empty() => "0 AND ".to_owned(),
        BrandSet::Only(ids) => format!("brand_id IN ({}) AND ", brand_list(ids)),
        BrandSet::Except(ids) if ids.is_empty() => String::new(),
        BrandSet::Except(ids) => format!("brand_id NOT IN ({}) AND ", brand_list(ids)),
    };
    let from_s = from_ms / 1000;
    format!(
        "SELECT brand_id, link_code, net AS network, asn, count() AS clicks, \
         countIf(reported) AS converted FROM (SELECT brand_id, link_code, asn, \
         if(position(ip, ':') > 0, ip, concat(substring(ip, 1, length(ip) - position(reverse(ip), '.')), '.0')) AS net, \
         toString(click_id) IN ({}) AS reported \
         FROM clicks WHERE {brand_filter}clicked_at >= toDateTime({from_s}) AND clicked_at < toDateTime({}) \
         AND clicked_at_ms >= {from_ms} AND clicked_at_ms < {to_ms} AND is_bot = 0 AND ip != '' \
         LIMIT 1 BY click_id) GROUP BY brand_id, link_code, network, asn \
         ORDER BY brand_id, link_code, network, asn",
        reported_ids(&brand_filter, from_s),
        to_ms.div_ceil(1000)
    )
}

impl Store {
    /// Human clicks in `[from_ms, to_ms)` of `brands` per link, network
    /// and ASN, with how many a registration reported.
    pub async fn click_tallies(
        &self,
        brands: &BrandSet,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<ClickTallyRow>, StoreError> {
        let sql = tally_sql(brands, from_ms, to_ms);
        Ok(self.client().query(&sql).fetch_all().await?)
    }

    /// Human clicks of a brand's link in `[from_ms, to_ms)` that match
    /// `filter` and that no registration reported.
    pub async fn unreported_clicks(
        &self,
        brand: Uuid,
        link_code: &str,
        filter: &ClickFilter,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<ScopeClickRow>, StoreError> {
        let which = match filter {
            ClickFilter::IpPrefix(p) => format!("startsWith(ip, {})", sql_string(p)),
            ClickFilter::Asns(asns) if asns.is_empty() => "0".to_owned(),
            ClickFilter::Asns(asns) => format!(
                "asn IN ({})",
                asns.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        let brand_filter = format!("brand_id = toUUID('{brand}') AND ");
        let from_s = from_ms / 1000;
        let sql = format!(
            "SELECT click_id, clicked_at_ms, affiliate_id, ip, asn FROM clicks \
             WHERE {brand_filter}clicked_at >= toDateTime({from_s}) AND clicked_at < toDateTime({}) \
             AND clicked_at_ms >= {from_ms} AND clicked_at_ms < {to_ms} AND link_code = {} \
             AND is_bot = 0 AND {which} AND toString(click_id) NOT IN ({}) \
             LIMIT 1 BY click_id",
            to_ms.div_ceil(1000),
            sql_string(link_code),
            reported_ids(&brand_filter, from_s),
        );
        Ok(self.client().query_raw(&sql).fetch_all().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_query_in_the_clickhouse_docs_is_the_one_the_store_runs() {
        let sql = tally_sql(
            &BrandSet::Except(vec![Uuid::from_u128(
                0x0190a1b2_0000_7000_8000_000000000009,
            )]),
            1_765_000_000_000,
            1_765_259_200_000,
        );
        let docs = include_str!("../../../docs/clickhouse.md");
        assert!(
            docs.contains(&sql),
            "docs/clickhouse.md must hold the population sweep's tally query verbatim:\n{sql}"
        );
    }

    #[test]
    fn an_empty_brand_list_selects_nothing_or_everything() {
        assert!(tally_sql(&BrandSet::Only(vec![]), 0, 1).contains("WHERE 0 AND clicked_at"));
        assert!(tally_sql(&BrandSet::Except(vec![]), 0, 1).contains("WHERE clicked_at"));
    }
}
