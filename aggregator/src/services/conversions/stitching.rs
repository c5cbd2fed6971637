//! Stitching: joining a registration to the clicks behind it, and keeping
//! the player's attribution current as KYC decisions arrive.
//!
//! Owns the IO around [`crate::attribution`]: looking up the reported clicks
//! (first on the brand's key range, then anywhere, so a click of another
//! brand is named as such), the player's other clicks by device
//! fingerprint, the affiliates' traffic types, and the mapping of the pure
//! [`Decision`] to an `attributions` row (with the full decision as JSON for
//! audit). The rules in force are taken once per event from the
//! [`RulesStore`] and recorded on the row. Writes nothing itself: the
//! conversion service stores the rows it returns.

use std::sync::{Arc, Mutex as StdMutex};

use clickstitch_shared::fingerprint::VisitorId;
use clickstitch_shared::{AffiliateId, BrandId, CampaignId, ClickId, ShortCode};
use serde_json::{json, Value};

use crate::attribution::{
    attribute, visitor_query, AttributionStatus, Decision, FoundClick, KycEvent, Registration,
    RulesStore,
};
use crate::catalog::Catalog;
use crate::click_index::ClickIndex;
use crate::events::{BrandEvent, BrandPlayerId, EventKind, KycStatus, PlayerId};
use crate::services::fraud::quarantine::{EntityKind, Quarantine};
use crate::store::queries::VisitorKey;
use crate::store::rows::{AttributionRow, ClickSummaryRow};
use crate::store::{Lookups, Store, StoreError};
use crate::support::bounded::BoundedMap;

/// An attribution row to store and the answer to give.
#[derive(Debug, Clone)]
pub struct Stitched {
    /// The row for `attributions`.
    pub row: AttributionRow,
    /// The latest credited click (fraud scoring compares the registration
    /// with it), if any.
    pub last_click: Option<ClickSummaryRow>,
}

impl Stitched {
    /// The attribution as the API shows it.
    pub fn to_json(&self) -> Value {
        row_json(&self.row)
    }
}

fn status_code(status: i8) -> &'static str {
    match status {
        1 => "pending_kyc",
        2 => "final",
        3 => "rejected",
        _ => "unattributed",
    }
}

fn status_value(status: AttributionStatus) -> i8 {
    match status {
        AttributionStatus::PendingKyc => 1,
        AttributionStatus::Final => 2,
        AttributionStatus::Rejected => 3,
    }
}

fn status_of(code: i8) -> Option<AttributionStatus> {
    match code {
        1 => Some(AttributionStatus::PendingKyc),
        2 => Some(AttributionStatus::Final),
        3 => Some(AttributionStatus::Rejected),
        _ => None,
    }
}

fn row_json(row: &AttributionRow) -> Value {
    let credits: Vec<Value> = (0..row.credit_click_ids.len())
        .map(|i| {
            json!({
                "click_id": row.credit_click_ids[i].to_string(),
                "affiliate_id": row.credit_affiliate_ids[i].to_string(),
                "sub_affiliate_id": row.credit_sub_affiliate_ids[i].clone(),
                "campaign_id": row.credit_campaign_ids[i].to_string(),
                "credit_bps": row.credit_bps[i],
            })
        })
        .collect();
    let mut v = json!({
        "status": status_code(row.status),
        "model": row.model,
        "rules_version": row.rules_version,
        "window_days": row.window_days,
        "touchpoints": credits,
        "decided_at_ms": row.decided_at_ms,
        "registration_event_id": row.registration_event_id,
    });
    if !row.reason.is_empty() {
        v["reason"] = Value::String(row.reason.clone());
    }
    if let Ok(decision) = serde_json::from_str::<Value>(&row.decision) {
        v["decision"] = decision;
    }
    v
}

impl TryFrom<ClickSummaryRow> for FoundClick {
    type Error = String;
    fn try_from(r: ClickSummaryRow) -> Result<Self, String> {
        Ok(FoundClick {
            click_id: ClickId::try_from(r.click_id).map_err(|e| e.to_string())?,
            brand_id: BrandId::from(r.brand_id),
            affiliate_id: AffiliateId::from(r.affiliate_id),
            sub_affiliate_id: r.sub_affiliate_id.map(AffiliateId::from),
            campaign_id: CampaignId::from(r.campaign_id),
            link_code: ShortCode::parse(&r.link_code).map_err(|e| e.to_string())?,
            visitor_id: if r.visitor_id.is_empty() {
                None
            } else {
                Some(VisitorId::parse(&r.visitor_id).map_err(|e| e.to_string())?)
            },
            is_bot: r.is_bot != 0,
            is_duplicate: r.is_duplicate != 0,
            quarantined: false,
        })
    }
}

fn found(rows: Vec<ClickSummaryRow>) -> Vec<FoundClick> {
    rows.into_iter()
        .filter_map(|r| {
            FoundClick::try_from(r)
                .map_err(|e| tracing::error!(error = %e, "skipping an unreadable click row"))
                .ok()
        })
        .collect()
}

/// Attributions this instance stored, newest version per player, for
/// reading them back without a ClickHouse round trip.
const CACHE_CAPACITY: usize = 200_000;

/// The stitcher.
#[derive(Debug)]
pub struct Stitcher {
    store: Store,
    lookups: Lookups,
    rules: Arc<RulesStore>,
    clicks: Arc<ClickIndex>,
    quarantine: Arc<Quarantine>,
    cache: StdMutex<BoundedMap<(BrandId, String), AttributionRow>>,
}

impl Stitcher {
    /// A stitcher reading clicks from `clicks` (recent ones) and `store`
    /// under `rules`.
    pub fn new(
        store: Store,
        lookups: Lookups,
        rules: Arc<RulesStore>,
        clicks: Arc<ClickIndex>,
        quarantine: Arc<Quarantine>,
    ) -> Self {
        Self {
            store,
            lookups,
            rules,
            clicks,
            quarantine,
            cache: StdMutex::new(BoundedMap::new(CACHE_CAPACITY)),
        }
    }

    /// Remembers a stored attribution (write-through: call after it is
    /// durable). A newer version of the same player replaces an older one.
    pub fn remember(&self, row: AttributionRow) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let key = (BrandId::from(row.brand_id), row.brand_player_id.clone());
        cache.insert_if(key, row, |old, new| old.version <= new.version);
    }

    fn cached(&self, brand: BrandId, player: &str) -> Option<AttributionRow> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(&(brand, player.to_owned())).cloned()
    }

    /// A brand player's attribution as the API shows it: from this
    /// instance's cache, else from ClickHouse.
    pub async fn read_player(
        &self,
        brand: BrandId,
        player: &BrandPlayerId,
    ) -> Result<Option<Value>, StoreError> {
        if let Some(row) = self.cached(brand, player.as_str()) {
            return Ok(Some(row_json(&row)));
        }
        let player_id = self
            .player_id(brand, player)
            .await?
            .unwrap_or_else(|| PlayerId::derive(brand, player.as_str(), None));
        self.read(brand, player_id).await
    }

    /// The rules store (for the reload job).
    pub fn rules(&self) -> &Arc<RulesStore> {
        &self.rules
    }

    /// Decides the attribution of a registration event.
    pub async fn stitch(
        &self,
        catalog: &Catalog,
        event: &BrandEvent,
        now_ms: u64,
    ) -> Result<Stitched, StoreError> {
        let EventKind::Registration {
            click_ids,
            country,
            kyc,
            ..
        } = &event.kind
        else {
            return Err(StoreError::Rejected("stitch takes registrations".into()));
        };
        let registration = Registration {
            brand_id: event.brand_id,
            country: *country,
            registered_at_ms: event.occurred_at_ms,
            reported_click_ids: click_ids.clone(),
        };
        let rules = self.rules.current();

        // Reported clicks: recent ones from memory, the others on the
        // brand's key range (coalesced with other registrations); the rare
        // rest anywhere, to name another brand.
        let mut rows = Vec::with_capacity(click_ids.len());
        let mut unknown = Vec::new();
        for id in click_ids {
            match self.clicks.get(event.brand_id, *id) {
                Some(row) => rows.push(row),
                None => unknown.push(*id),
            }
        }
        let lookups = unknown
            .iter()
            .map(|id| self.lookups.clicks.get((event.brand_id, *id)));
        for found in futures_util::future::join_all(lookups).await {
            rows.extend(found?);
        }
        let mut summaries = rows;
        let mut clicks = found(summaries.clone());
        let missing: Vec<ClickId> = click_ids
            .iter()
            .filter(|id| !clicks.iter().any(|c| c.click_id == **id))
            .copied()
            .collect();
        if !missing.is_empty() {
            let rows = self.store.find_clicks_anywhere(&missing).await?;
            clicks.extend(found(rows.clone()));
            summaries.extend(rows);
        }
        let query = visitor_query(&registration, &clicks, &rules).filter(|q| {
            !self
                .clicks
                .certainly_no_other_clicks(q.brand_id, &q.visitors, q.from_ms, &clicks)
        });
        if let Some(q) = query {
            let key = VisitorKey {
                brand_id: q.brand_id,
                visitors: q.visitors,
                from_ms: q.from_ms,
                to_ms: q.to_ms,
                limit: q.limit,
            };
            let rows = self.lookups.visitors.get(key).await?.unwrap_or_default();
            clicks.extend(found(rows.clone()));
            summaries.extend(rows);
        }
        // Clicks held by fraud review are never credited.
        for c in &mut clicks {
            c.quarantined =
                self.quarantine
                    .is_held(c.brand_id, EntityKind::Click, &c.click_id.to_string());
        }
        let accounts = clicks
            .iter()
            .flat_map(|c| std::iter::once(c.affiliate_id).chain(c.sub_affiliate_id));
        let traffic = catalog.traffic_types(accounts);
        let mut decision = attribute(&registration, &clicks, &traffic, &rules);
        if let Decision::Attributed(a) = &mut decision {
            match kyc {
                KycStatus::Approved => {
                    a.apply_kyc(KycEvent::Approved);
                }
                KycStatus::Rejected | KycStatus::Revoked => {
                    a.apply_kyc(KycEvent::Rejected);
                }
                KycStatus::Pending => {}
            }
        }
        let row = to_row(event, &decision, now_ms);
        let last_click = summaries
            .into_iter()
            .filter(|c| row.credit_click_ids.contains(&c.click_id))
            .max_by_key(|c| c.clicked_at_ms);
        Ok(Stitched { row, last_click })
    }

    /// Applies a KYC decision to the player's attribution; None when the
    /// player has no attribution (yet).
    pub async fn apply_kyc(
        &self,
        event: &BrandEvent,
        status: KycStatus,
        now_ms: u64,
    ) -> Result<Option<Stitched>, StoreError> {
        let Some(mut row) = self
            .store
            .find_attribution(event.brand_id, event.player_id.as_uuid())
            .await?
        else {
            return Ok(None);
        };
        let Some(current) = status_of(row.status) else {
            // Unattributed players have nothing to gate.
            return Ok(None);
        };
        let kyc_event = match status {
            KycStatus::Approved => KycEvent::Approved,
            KycStatus::Rejected => KycEvent::Rejected,
            KycStatus::Revoked => KycEvent::Revoked,
            KycStatus::Pending => return Ok(None),
        };
        let transition = current.on_kyc(kyc_event);
        row.status = status_value(transition.status);
        row.decided_at = crate::support::clock::secs(now_ms);
        row.decided_at_ms = now_ms;
        row.version = now_ms.max(row.version + 1);
        Ok(Some(Stitched {
            row,
            last_click: None,
        }))
    }

    /// The global id of a brand's player, if the player registered.
    pub async fn player_id(
        &self,
        brand: BrandId,
        player: &BrandPlayerId,
    ) -> Result<Option<PlayerId>, StoreError> {
        Ok(self
            .store
            .find_player(brand, player.as_str())
            .await?
            .map(PlayerId::from))
    }

    /// The player's attribution as the API shows it.
    pub async fn read(
        &self,
        brand: BrandId,
        player: PlayerId,
    ) -> Result<Option<Value>, StoreError> {
        Ok(self
            .store
            .find_attribution(brand, player.as_uuid())
            .await?
            .map(|r| row_json(&r)))
    }
}

fn to_row(event: &BrandEvent, decision: &Decision, now_ms: u64) -> AttributionRow {
    let basis = decision.basis();
    let mut row = AttributionRow {
        brand_id: event.brand_id.as_uuid(),
        player_id: event.player_id.as_uuid(),
        brand_player_id: event.brand_player_id.as_str().to_owned(),
        registration_event_id: event.event_id.as_str().to_owned(),
        status: 4,
        reason: String::new(),
        model: String::new(),
        rules_version: decision.rules().to_string(),
        window_days: u32::from(basis.window_days),
        credit_affiliate_ids: Vec::new(),
        credit_sub_affiliate_ids: Vec::new(),
        credit_campaign_ids: Vec::new(),
        credit_click_ids: Vec::new(),
        credit_bps: Vec::new(),
        decision: serde_json::to_string(decision).unwrap_or_default(),
        decided_at: crate::support::clock::secs(now_ms),
        decided_at_ms: now_ms,
        version: now_ms,
    };
    match decision {
        Decision::Attributed(a) => {
            row.status = status_value(a.status());
            row.model = a.model().label();
            for t in a.touchpoints() {
                row.credit_click_ids.push(t.click_id.as_uuid());
                row.credit_affiliate_ids.push(t.affiliate_id.as_uuid());
                row.credit_sub_affiliate_ids.push(
                    t.sub_affiliate_id
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                );
                row.credit_campaign_ids.push(t.campaign_id.as_uuid());
                row.credit_bps
                    .push(u32::try_from(t.credit.get()).unwrap_or(0));
            }
        }
        Decision::Unattributed(u) => {
            row.reason = format!("{}: {}", u.reason.code(), u.reason);
        }
    }
    row
}
