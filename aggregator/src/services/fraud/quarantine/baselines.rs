//! Window baselines: loading the held book at startup and rebuilding the
//! scorer's sliding windows from ClickHouse (at startup, and on every
//! fraud job run when several instances share the traffic).

use std::collections::HashMap;

use uuid::Uuid;

use clickstitch_shared::fingerprint::Hash128;
use clickstitch_shared::{AffiliateId, BrandId, ShortCode};

use crate::fraud::{
    aligned_cutoff, AffiliateBaselineRow, ClickBaselineRow, FirstDepositBaselineRow,
    RegistrationBaselineRow,
};
use crate::store::fraud::{first_decisions, kind};
use crate::store::StoreError;

use super::*;

impl Quarantine {
    /// Loads the held entities and their decisions, the depositors (when
    /// authoritative) and the window baselines from ClickHouse.
    pub async fn load(&self, now_ms: u64) -> Result<(), StoreError> {
        let scores = self.store.quarantined_scores().await?;
        let reviews = first_decisions(self.store.reviews().await?);
        {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            held.clear();
            for r in scores {
                let (Some(kind), brand) = (
                    EntityKind::from_code(r.entity_kind),
                    BrandId::from(r.brand_id),
                ) else {
                    continue;
                };
                let review = reviews
                    .get(&(r.brand_id, r.entity_kind, r.entity_id.clone()))
                    .and_then(|d| Verdict::from_code(d.decision))
                    .map_or(Review::Pending, Review::Decided);
                held.insert(
                    (brand, kind, r.entity_id),
                    Held {
                        score: r.score,
                        review,
                    },
                );
            }
        }
        if self.authoritative {
            self.store
                .each_depositor(|brand, player| {
                    self.depositors
                        .insert(&(BrandId::from(brand), player.as_str()));
                })
                .await?;
        }
        self.absorb_baselines(now_ms, true).await
    }

    /// Rebuilds the window baselines from what ClickHouse holds before a
    /// bucket-aligned cutoff: at `startup` (nothing counted in memory yet)
    /// everything stored up to now; later (periodically with several
    /// instances, so that each sees the others' traffic) everything older
    /// than the lag a row needs to become readable, so that no event this
    /// instance counted is counted twice or lost.
    pub async fn absorb_baselines(&self, now_ms: u64, startup: bool) -> Result<(), StoreError> {
        /// Time from scoring to the row being readable (group commit).
        const LAG_MS: u64 = 120_000;
        let plan = self.scorer.baseline_plan();
        let cutoff_at = |bucket_ms: u64| {
            if startup {
                // The next bucket boundary: every stored row is before it.
                aligned_cutoff(now_ms + bucket_ms, 0, bucket_ms)
            } else {
                aligned_cutoff(now_ms, LAG_MS, bucket_ms)
            }
        };
        let cutoff = cutoff_at(plan.click_bucket_ms);
        let clicks = self
            .store
            .click_counts_between(cutoff.saturating_sub(plan.click_lookback_ms), cutoff)
            .await?;
        self.scorer.absorb_click_baseline(
            cutoff,
            clicks.into_iter().filter_map(|r| {
                Some(ClickBaselineRow {
                    brand_id: BrandId::from(r.brand_id),
                    link_code: ShortCode::parse(&r.link_code).ok()?,
                    ip: r.ip.parse().ok()?,
                    bucket_start_ms: r.minute_ms,
                    clicks: u32::try_from(r.clicks).unwrap_or(u32::MAX),
                })
            }),
        );
        let regs = self
            .store
            .scored_between(
                None,
                kind::REGISTRATION,
                now_ms.saturating_sub(
                    plan.registration_lookback_ms
                        .max(plan.affiliate_lookback_ms),
                ),
                now_ms,
            )
            .await?;
        let reg_from = now_ms.saturating_sub(plan.registration_lookback_ms);
        self.scorer.absorb_registration_baseline(
            regs.iter()
                .filter(|r| r.occurred_at_ms >= reg_from)
                .map(|r| RegistrationBaselineRow {
                    brand_id: BrandId::from(r.brand_id),
                    brand_player_id: r.brand_player_id.clone(),
                    registered_at_ms: r.occurred_at_ms,
                    ip: r.ip.parse().ok(),
                    device_key: Hash128::parse(&r.device_key).ok(),
                }),
        );
        let aff_cutoff = cutoff_at(plan.affiliate_bucket_ms);
        let mut per_affiliate: HashMap<(Uuid, Uuid, u64), (u32, u32)> = HashMap::new();
        for r in &regs {
            let (Some(affiliate), true) = (r.affiliate_id, r.click_at_ms > 0) else {
                continue;
            };
            if r.occurred_at_ms >= aff_cutoff {
                continue;
            }
            let policy = self.scorer.policies().for_brand(BrandId::from(r.brand_id));
            let long_ms = u64::from(policy.click_flooding.long_ctit_hours) * 3_600_000;
            let bucket = r.occurred_at_ms / plan.affiliate_bucket_ms * plan.affiliate_bucket_ms;
            let e = per_affiliate
                .entry((r.brand_id, affiliate, bucket))
                .or_default();
            e.0 += 1;
            if r.occurred_at_ms.saturating_sub(r.click_at_ms) > long_ms {
                e.1 += 1;
            }
        }
        self.scorer.absorb_affiliate_baseline(
            aff_cutoff,
            per_affiliate
                .into_iter()
                .map(
                    |((brand, affiliate, bucket), (n, long))| AffiliateBaselineRow {
                        brand_id: BrandId::from(brand),
                        affiliate_id: AffiliateId::from(affiliate),
                        bucket_start_ms: bucket,
                        registrations: n,
                        long_ctit: long,
                    },
                ),
        );
        let deposits = self
            .store
            .scored_between(
                None,
                kind::FIRST_DEPOSIT,
                now_ms.saturating_sub(plan.deposit_lookback_ms),
                now_ms,
            )
            .await?;
        self.scorer
            .absorb_first_deposit_baseline(deposits.iter().map(|r| FirstDepositBaselineRow {
                brand_id: BrandId::from(r.brand_id),
                brand_player_id: r.brand_player_id.clone(),
                deposited_at_ms: r.occurred_at_ms,
                device_key: Hash128::parse(&r.device_key).ok(),
            }));
        Ok(())
    }
}
