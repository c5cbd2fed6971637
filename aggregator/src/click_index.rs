//! The recent-click index: clicks this instance stored, kept in memory so
//! that stitching a registration rarely has to ask ClickHouse.
//!
//! Owns two structures fed by click ingest (after the clicks are durable):
//! a bounded map of recent clicks by `(brand, click id)`, and a
//! [`RepeatFilter`] over `(brand, visitor id)` of human clicks that proves
//! "this browser has no other click on this brand" — the common case, which
//! then needs no visitor query. The filter is warmed at startup
//! from ClickHouse for the longest attribution window, so it covers every
//! human click since `covered_from_ms`.
//!
//! The "certainly none" answers are only sound when this instance sees every
//! click (`authoritative`, the `attribution.single_instance` setting). With
//! several instances behind a load balancer the filter is not trusted and
//! every visitor lookup goes to ClickHouse; the recent-click map stays
//! useful either way (a hit is a hit). Does no IO itself.

use std::sync::Mutex;

use clickstitch_shared::{BrandId, ClickId};

use crate::attribution::FoundClick;
use crate::store::rows::ClickSummaryRow;
use crate::support::bounded::BoundedMap;
use crate::support::presence::RepeatFilter;

/// Recent clicks and the device-repeat filter.
#[derive(Debug)]
pub struct ClickIndex {
    recent: Mutex<BoundedMap<(BrandId, ClickId), ClickSummaryRow>>,
    devices: RepeatFilter,
    /// Every human click at or after this time was recorded in `devices`;
    /// `u64::MAX` when the filter is not authoritative.
    covered_from_ms: u64,
}

impl ClickIndex {
    /// An index keeping `recent_capacity` clicks and a device filter sized
    /// for `device_capacity` distinct devices. `covered_from_ms` is `Some`
    /// when this instance sees every click from that time on (single
    /// instance, warmed from ClickHouse back to that time).
    pub fn new(
        recent_capacity: usize,
        device_capacity: usize,
        covered_from_ms: Option<u64>,
    ) -> Self {
        Self {
            recent: Mutex::new(BoundedMap::new(recent_capacity)),
            devices: RepeatFilter::with_capacity(device_capacity),
            covered_from_ms: covered_from_ms.unwrap_or(u64::MAX),
        }
    }

    /// Memory held by the device filter, bytes.
    pub fn filter_bytes(&self) -> usize {
        self.devices.bytes()
    }

    /// Records `count` stored human clicks of one visitor id (warm-up).
    pub fn count_device(&self, brand: BrandId, visitor_id: &str, count: u64) {
        self.devices.add(&(brand, visitor_id), count);
    }

    /// Records clicks that are now durable in ClickHouse.
    pub fn observe(&self, clicks: Vec<ClickSummaryRow>) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        for click in clicks {
            let brand = BrandId::from(click.brand_id);
            if click.is_bot == 0 && !click.visitor_id.is_empty() {
                self.devices.add(&(brand, click.visitor_id.as_str()), 1);
            }
            if let Ok(id) = ClickId::try_from(click.click_id) {
                recent.insert((brand, id), click);
            }
        }
    }

    /// A recently stored click of this brand.
    pub fn get(&self, brand: BrandId, id: ClickId) -> Option<ClickSummaryRow> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.get(&(brand, id)).cloned()
    }

    /// True when it is certain that no human click of `brand` with one of
    /// `visitors` at or after `from_ms` exists besides the `reported`
    /// ones: the window lies inside the covered period, every reported
    /// click with such a visitor id lies there too, and each visitor id
    /// was recorded at most as often as the reported clicks carry it (at
    /// most once, in practice).
    pub fn certainly_no_other_clicks(
        &self,
        brand: BrandId,
        visitors: &[clickstitch_shared::fingerprint::VisitorId],
        from_ms: u64,
        reported: &[FoundClick],
    ) -> bool {
        if from_ms < self.covered_from_ms {
            return false;
        }
        visitors.iter().all(|fp| {
            let carriers: Vec<&FoundClick> = reported
                .iter()
                .filter(|c| c.brand_id == brand && !c.is_bot && c.visitor_id == Some(*fp))
                .collect();
            let text = fp.to_string();
            carriers.len() == 1
                && carriers[0].clicked_at_ms() >= self.covered_from_ms
                && !self.devices.maybe_repeated(&(brand, text.as_str()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstitch_shared::fingerprint::VisitorId;
    use clickstitch_shared::{AffiliateId, CampaignId, ClickIdGenerator, ShortCode};

    const NOW: u64 = 1_760_000_000_000;

    fn click(brand: BrandId, id: ClickId, fp: VisitorId) -> (ClickSummaryRow, FoundClick) {
        let found = FoundClick {
            click_id: id,
            brand_id: brand,
            affiliate_id: AffiliateId::from(uuid::Uuid::from_u128(7)),
            sub_affiliate_id: None,
            campaign_id: CampaignId::from(uuid::Uuid::from_u128(8)),
            link_code: ShortCode::parse("AbCdEf1234").expect("code"),
            visitor_id: Some(fp),
            is_bot: false,
            is_duplicate: false,
            quarantined: false,
        };
        let row = ClickSummaryRow {
            click_id: id.as_uuid(),
            clicked_at_ms: id.timestamp_ms(),
            brand_id: brand.as_uuid(),
            affiliate_id: found.affiliate_id.as_uuid(),
            sub_affiliate_id: None,
            campaign_id: found.campaign_id.as_uuid(),
            link_code: "AbCdEf1234".into(),
            country: *b"DE",
            device_fingerprint: "00112233445566778899aabbccddeeff".into(),
            visitor_id: fp.to_string(),
            is_bot: 0,
            is_duplicate: 0,
        };
        (row, found)
    }

    fn ids() -> (ClickId, ClickId) {
        let mut g = ClickIdGenerator::new();
        let a = g.next_id(NOW, [1; 10]);
        let b = g.next_id(NOW + 1, [2; 10]);
        (a, b)
    }

    fn fp(n: u8) -> VisitorId {
        VisitorId::parse(&format!("{n:032x}")).expect("visitor id")
    }

    #[test]
    fn a_device_seen_once_has_certainly_no_other_clicks() {
        let brand = BrandId::from(uuid::Uuid::from_u128(1));
        let index = ClickIndex::new(100, 1000, Some(NOW - 1000));
        let (row, found) = click(brand, ids().0, fp(1));
        index.observe(vec![row]);
        assert!(index.certainly_no_other_clicks(
            brand,
            &[fp(1)],
            NOW - 1000,
            std::slice::from_ref(&found)
        ));
        assert!(index.get(brand, found.click_id).is_some());
    }

    #[test]
    fn a_device_seen_twice_must_be_looked_up() {
        let brand = BrandId::from(uuid::Uuid::from_u128(1));
        let index = ClickIndex::new(100, 1000, Some(NOW - 1000));
        let (a, b) = ids();
        let (row_a, _) = click(brand, a, fp(1));
        let (row_b, found_b) = click(brand, b, fp(1));
        index.observe(vec![row_a, row_b]);
        assert!(!index.certainly_no_other_clicks(brand, &[fp(1)], NOW - 1000, &[found_b]));
    }

    #[test]
    fn a_window_reaching_before_the_covered_period_must_be_looked_up() {
        let brand = BrandId::from(uuid::Uuid::from_u128(1));
        let index = ClickIndex::new(100, 1000, Some(NOW - 1000));
        let (row, found) = click(brand, ids().0, fp(1));
        index.observe(vec![row]);
        assert!(!index.certainly_no_other_clicks(brand, &[fp(1)], NOW - 5000, &[found]));
    }

    #[test]
    fn without_authority_nothing_is_certain() {
        let brand = BrandId::from(uuid::Uuid::from_u128(1));
        let index = ClickIndex::new(100, 1000, None);
        let (row, found) = click(brand, ids().0, fp(1));
        index.observe(vec![row]);
        assert!(!index.certainly_no_other_clicks(brand, &[fp(1)], NOW, &[found]));
    }
}
