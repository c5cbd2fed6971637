//! Scoring clicks, registrations and first deposits as they arrive: scorer
//! facts from clicks and brand events, and the `fraud_scores` rows that
//! explain every score.

use std::collections::{HashMap, HashSet};

use clickstitch_shared::bot::BotVerdict;
use clickstitch_shared::fingerprint::{Hash128, VisitorId};
use clickstitch_shared::{AffiliateId, BrandId, Click, ClickId, CountryCode};

use crate::events::{BrandEvent, EventKind};
use crate::fraud::{
    ClickContext, ClickFacts, Escalation, FirstDepositFacts, RegistrationFacts, Score,
};
use crate::store::fraud::{kind, FraudScoreRow};
use crate::store::rows::ClickSummaryRow;
use crate::store::StoreError;
use crate::support::clock::secs;

use super::*;

/// The outcome of scoring a batch of clicks.
#[derive(Debug, Default)]
pub struct ScoredClicks {
    /// Rows for `fraud_scores` (clicks with a score above zero, and clicks
    /// of the batch re-flagged by a later click of the same batch).
    pub rows: Vec<FraudScoreRow>,
    /// Escalations to apply to clicks stored earlier, with the id of the
    /// click that caused each.
    pub escalations: Vec<(Escalation, String)>,
}

impl ScoredClicks {
    /// Whether the click at `index` of the batch is quarantined.
    pub fn quarantined_ids(&self) -> HashSet<String> {
        self.rows
            .iter()
            .filter(|r| r.quarantined == 1)
            .map(|r| r.entity_id.clone())
            .collect()
    }
}

pub(super) fn click_facts(c: &Click) -> ClickFacts {
    ClickFacts {
        brand_id: c.brand_id,
        link_code: c.link_code.clone(),
        affiliate_id: c.affiliate_id,
        ip: c.ip,
        asn: c.asn,
        country: c.country,
        bot: match c.bot {
            BotVerdict::Human => None,
            BotVerdict::Bot(reason) => Some(reason),
        },
        clicked_at_ms: c.clicked_at_ms(),
    }
}

/// The `fraud_scores` row of a scored registration or first deposit;
/// `click` is the registration's latest credited click.
pub(super) fn event_row(
    event: &BrandEvent,
    entity_kind: i8,
    score: &Score,
    click: Option<&ClickSummaryRow>,
    now_ms: u64,
) -> FraudScoreRow {
    FraudScoreRow {
        brand_id: event.brand_id.as_uuid(),
        entity_kind,
        entity_id: event.event_id.as_str().to_owned(),
        brand_player_id: event.brand_player_id.as_str().to_owned(),
        affiliate_id: click.map(|c| c.affiliate_id),
        link_code: click.map(|c| c.link_code.clone()).unwrap_or_default(),
        occurred_at: secs(event.occurred_at_ms),
        occurred_at_ms: event.occurred_at_ms,
        click_at_ms: click.map_or(0, |c| c.clicked_at_ms),
        ip: event.device.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        device_fingerprint: event
            .device
            .device_fingerprint
            .map(|f| f.to_string())
            .unwrap_or_default(),
        device_key: String::new(),
        score: score.value,
        quarantined: u8::from(score.quarantined),
        policy_version: score.policy_version.clone(),
        signals: signals_json(&score.hits),
        escalated_by: String::new(),
        scored_at: secs(now_ms),
        scored_at_ms: now_ms,
    }
}

impl Quarantine {
    /// Scores a batch of accepted clicks (in order) and re-flags clicks of
    /// the same batch that a later click's escalation covers.
    pub fn score_clicks(&self, clicks: &[Click], now_ms: u64) -> ScoredClicks {
        let facts: Vec<ClickFacts> = clicks.iter().map(click_facts).collect();
        let mut rows: HashMap<usize, FraudScoreRow> = HashMap::new();
        let mut escalations = Vec::new();
        for (i, (click, f)) in clicks.iter().zip(&facts).enumerate() {
            let score = self.scorer.score_click(f);
            self.record(EntityKind::Click, &score);
            if score.value > 0 {
                rows.insert(i, self.click_row(click, &score, now_ms));
                self.click_scores
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((f.brand_id, click.click_id.to_string()), score.value);
            }
            for e in &score.escalations {
                let by = click.click_id.to_string();
                for (j, earlier) in clicks[..i].iter().enumerate() {
                    if e.covers_click(&facts[j]) {
                        let row = rows
                            .remove(&j)
                            .unwrap_or_else(|| self.click_row(earlier, &no_score(), now_ms));
                        // Already held (on its own or by an earlier
                        // escalation): nothing to add.
                        let row = if row.quarantined == 1 {
                            row
                        } else {
                            self.escalate_row(row, e, &by, now_ms)
                        };
                        rows.insert(j, row);
                    }
                }
                escalations.push((e.clone(), by));
            }
        }
        let mut rows: Vec<(usize, FraudScoreRow)> = rows.into_iter().collect();
        rows.sort_by_key(|(i, _)| *i);
        ScoredClicks {
            rows: rows.into_iter().map(|(_, r)| r).collect(),
            escalations,
        }
    }

    pub(super) fn click_row(&self, c: &Click, score: &Score, now_ms: u64) -> FraudScoreRow {
        FraudScoreRow {
            brand_id: c.brand_id.as_uuid(),
            entity_kind: kind::CLICK,
            entity_id: c.click_id.to_string(),
            brand_player_id: String::new(),
            affiliate_id: Some(c.affiliate_id.as_uuid()),
            link_code: c.link_code.to_string(),
            occurred_at: secs(c.clicked_at_ms()),
            occurred_at_ms: c.clicked_at_ms(),
            click_at_ms: c.clicked_at_ms(),
            ip: c.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            device_fingerprint: c.device_fingerprint.to_string(),
            device_key: c
                .visitor_id
                .map(|v| v.device_key().to_string())
                .unwrap_or_default(),
            score: score.value,
            quarantined: u8::from(score.quarantined),
            policy_version: score.policy_version.clone(),
            signals: signals_json(&score.hits),
            escalated_by: String::new(),
            scored_at: secs(now_ms),
            scored_at_ms: now_ms,
        }
    }

    /// Scores a registration given the click it was attributed to (the
    /// latest credited one) and that click's affiliate.
    pub fn score_registration(
        &self,
        event: &BrandEvent,
        last_click: Option<&ClickSummaryRow>,
        now_ms: u64,
    ) -> (Score, FraudScoreRow) {
        let country = match &event.kind {
            EventKind::Registration { country, .. } => *country,
            _ => CountryCode::UNKNOWN,
        };
        let click = last_click.and_then(|c| {
            Some(ClickContext {
                clicked_at_ms: c.clicked_at_ms,
                device_fingerprint: Hash128::parse(&c.device_fingerprint).ok()?,
                country: CountryCode::parse(std::str::from_utf8(&c.country).ok()?).ok()?,
                click_score: ClickId::try_from(c.click_id)
                    .ok()
                    .and_then(|id| self.click_score(BrandId::from(c.brand_id), &id.to_string()))
                    .unwrap_or(0),
            })
        });
        let facts = RegistrationFacts {
            brand_id: event.brand_id,
            brand_player_id: event.brand_player_id.as_str().to_owned(),
            affiliate_id: last_click.map(|c| AffiliateId::from(c.affiliate_id)),
            registered_at_ms: event.occurred_at_ms,
            country,
            ip: event.device.ip,
            asn: event.device.asn,
            device_fingerprint: event.device.device_fingerprint,
            // The brand's device id if it sent one, else the browser's
            // visitor cookie on the attributed click. Never the header
            // fingerprint: strangers on the same build share it.
            device_key: event.device.device_key.or_else(|| {
                last_click
                    .and_then(|c| VisitorId::parse(&c.visitor_id).ok())
                    .map(|v| v.device_key())
            }),
            click,
        };
        let score = self.scorer.score_registration(&facts);
        self.record(EntityKind::Registration, &score);
        if score.value > 0 {
            self.registration_scores
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((event.brand_id, facts.brand_player_id.clone()), score.value);
        }
        if let Some(key) = facts.device_key {
            self.registration_devices
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((event.brand_id, facts.brand_player_id.clone()), key);
        }
        let mut row = event_row(event, kind::REGISTRATION, &score, last_click, now_ms);
        row.device_key = facts.device_key.map(|k| k.to_string()).unwrap_or_default();
        (score, row)
    }

    /// Scores a deposit when it is the player's first (derived here, never
    /// taken from the brand): None for later deposits.
    pub async fn score_first_deposit(
        &self,
        event: &BrandEvent,
        now_ms: u64,
    ) -> Result<Option<(Score, FraudScoreRow)>, StoreError> {
        let key = (event.brand_id, event.brand_player_id.as_str());
        let maybe_before = !self.authoritative || self.depositors.contains(&key);
        if maybe_before
            && self
                .store
                .has_other_deposit(
                    event.brand_id.as_uuid(),
                    event.brand_player_id.as_str(),
                    event.event_id.as_str(),
                )
                .await?
        {
            return Ok(None);
        }
        // Marked before the write: a failed write only costs a lookup later.
        self.depositors.insert(&key);
        let registration_score = self
            .registration_scores
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(event.brand_id, event.brand_player_id.as_str().to_owned()))
            .copied()
            .unwrap_or(0);
        let facts = FirstDepositFacts {
            brand_id: event.brand_id,
            brand_player_id: event.brand_player_id.as_str().to_owned(),
            deposited_at_ms: event.occurred_at_ms,
            device_key: event.device.device_key.or_else(|| {
                self.registration_devices
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&(event.brand_id, event.brand_player_id.as_str().to_owned()))
                    .copied()
            }),
            registration_score,
        };
        let score = self.scorer.score_first_deposit(&facts);
        self.record(EntityKind::FirstDeposit, &score);
        let mut row = event_row(event, kind::FIRST_DEPOSIT, &score, None, now_ms);
        row.device_key = facts.device_key.map(|k| k.to_string()).unwrap_or_default();
        Ok(Some((score, row)))
    }
}
