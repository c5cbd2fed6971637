//! Escalation: re-flagging entities stored earlier that a window signal
//! crossing now covers, with rows that name the event that crossed it.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use uuid::Uuid;

use clickstitch_shared::fingerprint::{device_fingerprint, DeviceSignals, Hash128};
use clickstitch_shared::{AffiliateId, BrandId, CountryCode};

use crate::fraud::{
    ClickContext, Escalation, EscalationScope, FirstDepositFacts, RegistrationFacts, SignalHit,
};
use crate::store::fraud::{kind, FraudScoreRow};
use crate::store::StoreError;
use crate::support::clock::secs;

use super::*;

pub(super) fn registration_facts_of(r: &FraudScoreRow) -> RegistrationFacts {
    let device = Hash128::parse(&r.device_fingerprint).ok();
    RegistrationFacts {
        brand_id: BrandId::from(r.brand_id),
        brand_player_id: r.brand_player_id.clone(),
        affiliate_id: r.affiliate_id.map(AffiliateId::from),
        registered_at_ms: r.occurred_at_ms,
        country: CountryCode::UNKNOWN,
        ip: r.ip.parse().ok(),
        asn: None,
        device_fingerprint: device,
        device_key: Hash128::parse(&r.device_key).ok(),
        // Escalation scopes only need the click time (long CTIT). The
        // click's device is not stored with the registration, and the
        // registration's own is missing when the brand reports none: a
        // placeholder stands in, so such registrations are covered too.
        click: (r.click_at_ms > 0).then(|| ClickContext {
            clicked_at_ms: r.click_at_ms,
            device_fingerprint: device
                .unwrap_or_else(|| device_fingerprint(&DeviceSignals::default())),
            country: CountryCode::UNKNOWN,
            click_score: 0,
        }),
    }
}

impl Quarantine {
    /// The row re-flagged by an escalation: at least the threshold,
    /// quarantined, the escalation's signal added to the explanation.
    pub(super) fn escalate_row(
        &self,
        mut row: FraudScoreRow,
        e: &Escalation,
        by: &str,
        now_ms: u64,
    ) -> FraudScoreRow {
        let brand = BrandId::from(row.brand_id);
        let threshold = self.threshold(brand);
        let mut hits: Vec<SignalHit> = serde_json::from_str(&row.signals).unwrap_or_default();
        let points = threshold.saturating_sub(row.score);
        hits.push(SignalHit {
            signal: e.signal,
            points,
            detail: format!(
                "escalated: the {} window crossed its limit with {by}",
                e.signal.code()
            ),
        });
        row.score = row.score.max(threshold);
        row.quarantined = 1;
        row.signals = signals_json(&hits);
        if row.policy_version.is_empty() {
            row.policy_version = self.scorer.policies().for_brand(brand).version.clone();
        }
        row.escalated_by = by.to_owned();
        // Newer than the original score of this entity (ReplacingMergeTree
        // keeps the newest `scored_at_ms`).
        row.scored_at = secs(now_ms);
        row.scored_at_ms = now_ms.max(row.scored_at_ms + 1);
        row
    }

    /// Re-flags entities stored earlier that `escalations` cover (except
    /// the ids in `skip`, handled in the caller's batch); stores the rows
    /// and holds them. Rare: only when a window crosses its limit.
    pub async fn escalate(
        &self,
        escalations: &[(Escalation, String)],
        skip: &HashSet<String>,
        now_ms: u64,
    ) -> Result<Vec<FraudScoreRow>, StoreError> {
        let mut out: HashMap<(Uuid, i8, String), FraudScoreRow> = HashMap::new();
        let mut fresh: HashSet<(Uuid, i8, String)> = HashSet::new();
        for (e, by) in escalations {
            let (brand, kind_code, candidates) = match &e.scope {
                EscalationScope::LinkIp {
                    brand_id,
                    link_code,
                    network,
                }
                | EscalationScope::LinkSubnet {
                    brand_id,
                    link_code,
                    network,
                } => {
                    let clicks = self
                        .store
                        .link_clicks_between(
                            brand_id.as_uuid(),
                            link_code.as_str(),
                            e.from_ms,
                            e.to_ms,
                        )
                        .await?;
                    let rows: Vec<FraudScoreRow> = clicks
                        .into_iter()
                        .filter(|c| c.ip.parse::<IpAddr>().is_ok_and(|ip| network.contains(ip)))
                        .map(|c| FraudScoreRow {
                            brand_id: brand_id.as_uuid(),
                            entity_kind: kind::CLICK,
                            entity_id: c.click_id.to_string(),
                            brand_player_id: String::new(),
                            affiliate_id: Some(c.affiliate_id),
                            link_code: link_code.to_string(),
                            occurred_at: secs(c.clicked_at_ms),
                            occurred_at_ms: c.clicked_at_ms,
                            click_at_ms: c.clicked_at_ms,
                            ip: c.ip,
                            device_fingerprint: String::new(),
                            device_key: String::new(),
                            score: 0,
                            quarantined: 0,
                            policy_version: String::new(),
                            signals: "[]".into(),
                            escalated_by: String::new(),
                            scored_at: 0,
                            scored_at_ms: 0,
                        })
                        .collect();
                    (*brand_id, kind::CLICK, rows)
                }
                EscalationScope::RegistrationIp { brand_id, .. }
                | EscalationScope::RegistrationDevice { brand_id, .. }
                | EscalationScope::AffiliateLongCtit { brand_id, .. } => {
                    let rows = self
                        .store
                        .scored_between(
                            Some(brand_id.as_uuid()),
                            kind::REGISTRATION,
                            e.from_ms,
                            e.to_ms,
                        )
                        .await?
                        .into_iter()
                        .filter(|r| e.covers_registration(&registration_facts_of(r)))
                        .collect();
                    (*brand_id, kind::REGISTRATION, rows)
                }
                EscalationScope::DepositDevice { brand_id, .. } => {
                    let rows = self
                        .store
                        .scored_between(
                            Some(brand_id.as_uuid()),
                            kind::FIRST_DEPOSIT,
                            e.from_ms,
                            e.to_ms,
                        )
                        .await?
                        .into_iter()
                        .filter(|r| {
                            e.covers_first_deposit(&FirstDepositFacts {
                                brand_id: *brand_id,
                                brand_player_id: r.brand_player_id.clone(),
                                deposited_at_ms: r.occurred_at_ms,
                                device_key: Hash128::parse(&r.device_key).ok(),
                                registration_score: 0,
                            })
                        })
                        .collect();
                    (*brand_id, kind::FIRST_DEPOSIT, rows)
                }
            };
            let candidates: Vec<FraudScoreRow> = candidates
                .into_iter()
                .filter(|r| !skip.contains(&r.entity_id) && r.entity_id != *by)
                .collect();
            // Start from each entity's newest stored score, if any.
            let ids: Vec<String> = candidates.iter().map(|r| r.entity_id.clone()).collect();
            let stored: HashMap<String, FraudScoreRow> = self
                .store
                .scores_of(brand.as_uuid(), kind_code, &ids)
                .await?
                .into_iter()
                .map(|r| (r.entity_id.clone(), r))
                .collect();
            for c in candidates {
                let key = (c.brand_id, c.entity_kind, c.entity_id.clone());
                let base = out
                    .remove(&key)
                    .or_else(|| stored.get(&c.entity_id).cloned())
                    .unwrap_or(c);
                if base.quarantined == 1 {
                    // Already held (on its own or by an earlier
                    // escalation): no new row.
                    out.insert(key, base);
                    continue;
                }
                fresh.insert(key.clone());
                out.insert(key, self.escalate_row(base, e, by, now_ms));
            }
        }
        // Only the rows escalated by this call are new.
        let rows: Vec<FraudScoreRow> = out
            .into_iter()
            .filter(|(k, _)| fresh.contains(k))
            .map(|(_, r)| r)
            .collect();
        self.store.save_scores(&rows).await?;
        self.hold(&rows);
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fraud::Signal;

    use clickstitch_domain::units::HOUR_MS;

    fn stored_registration(device_fingerprint: &str) -> FraudScoreRow {
        FraudScoreRow {
            brand_id: Uuid::from_u128(1),
            entity_kind: kind::REGISTRATION,
            entity_id: "reg-1".into(),
            brand_player_id: "p-1".into(),
            affiliate_id: Some(Uuid::from_u128(2)),
            link_code: String::new(),
            occurred_at: 0,
            occurred_at_ms: 100 * HOUR_MS,
            click_at_ms: HOUR_MS,
            ip: String::new(),
            device_fingerprint: device_fingerprint.into(),
            device_key: String::new(),
            score: 0,
            quarantined: 0,
            policy_version: String::new(),
            signals: "[]".into(),
            escalated_by: String::new(),
            scored_at: 0,
            scored_at_ms: 0,
        }
    }

    #[test]
    fn a_long_ctit_escalation_covers_stored_registrations_with_and_without_a_device() {
        let e = Escalation {
            signal: Signal::ClickFlooding,
            scope: EscalationScope::AffiliateLongCtit {
                brand_id: BrandId::from(Uuid::from_u128(1)),
                affiliate_id: AffiliateId::from(Uuid::from_u128(2)),
                ctit_over_ms: 24 * HOUR_MS,
            },
            from_ms: 0,
            to_ms: 200 * HOUR_MS,
        };
        for device in ["", "0123456789abcdef0123456789abcdef"] {
            let facts = registration_facts_of(&stored_registration(device));
            assert!(e.covers_registration(&facts), "device {device:?}");
        }
        let mut short = stored_registration("");
        short.click_at_ms = 99 * HOUR_MS;
        assert!(!e.covers_registration(&registration_facts_of(&short)));
    }
}
