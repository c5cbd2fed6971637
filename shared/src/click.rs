//! Click records: the validated [`Click`] and [`GeoBlock`], and their wire
//! form ([`RawClick`], [`RawGeoBlock`], [`ClickBatch`]) sent from the edge to
//! the aggregator as JSON.
//!
//! Owns the wire contract and its validation (every field, all errors at
//! once). Does not know about time windows (the aggregator checks clock skew)
//! or about storage.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::bot::{BotReason, BotVerdict};
use crate::country::CountryCode;
use crate::fingerprint::{Hash128, VisitorId};
use crate::geo::GeoBlockReason;
use crate::ids::{AffiliateId, BrandId, CampaignId, ClickId, ShortCode};
use crate::subid::SubIds;

/// Longest `User-Agent` kept (bytes); the edge cuts longer ones.
pub const MAX_USER_AGENT: usize = 512;
/// Longest `Referer` kept (bytes).
pub const MAX_REFERRER: usize = 1024;
/// Longest `Accept-Language` kept (bytes).
pub const MAX_ACCEPT_LANGUAGE: usize = 128;
/// Longest region / city name kept (bytes).
pub const MAX_PLACE: usize = 128;
/// Longest Cloudflare colo code kept (bytes).
pub const MAX_COLO: usize = 8;

/// Cuts `text` to at most `max` bytes on a character boundary.
pub fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// One click (human or bot) as validated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    /// UUIDv7; its timestamp is the click time. For bots an internal record
    /// id that was never sent to the brand.
    pub click_id: ClickId,
    /// The short link.
    pub link_code: ShortCode,
    /// Brand.
    pub brand_id: BrandId,
    /// Root affiliate account (see [`crate::link::attribution_pair`]).
    pub affiliate_id: AffiliateId,
    /// The sub-affiliate owning the link, if any.
    pub sub_affiliate_id: Option<AffiliateId>,
    /// Campaign.
    pub campaign_id: CampaignId,
    /// sub1..sub5.
    pub sub_ids: SubIds,
    /// `cf.country` (or `XX`).
    pub country: CountryCode,
    /// `cf.region`.
    pub region: String,
    /// `cf.city`.
    pub city: String,
    /// `cf.asn` (0 when unknown).
    pub asn: u32,
    /// `cf.colo`: the Cloudflare data centre.
    pub colo: String,
    /// Client IP, already truncated if the brand asks for it.
    pub ip: Option<IpAddr>,
    /// `User-Agent`, cut to [`MAX_USER_AGENT`].
    pub user_agent: String,
    /// `Referer`, cut to [`MAX_REFERRER`].
    pub referrer: String,
    /// `Accept-Language`, cut to [`MAX_ACCEPT_LANGUAGE`].
    pub accept_language: String,
    /// See [`crate::fingerprint::device_fingerprint`].
    pub device_fingerprint: Hash128,
    /// See [`crate::fingerprint::identity_hash`].
    pub identity_hash: Hash128,
    /// The browser's first-party visitor cookie, when the brand allows it
    /// and the browser keeps cookies (see [`VisitorId`]).
    pub visitor_id: Option<VisitorId>,
    /// Bot screening verdict.
    pub bot: BotVerdict,
    /// A repeat of the same identity on the same link within an hour.
    pub is_duplicate: bool,
}

impl Click {
    /// The click time in Unix milliseconds (from the click id).
    pub fn clicked_at_ms(&self) -> u64 {
        self.click_id.timestamp_ms()
    }
}

/// A request refused by the geo rules (answered 451): counted, never
/// redirected, no IP or user agent kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoBlock {
    /// Internal UUIDv7 record id; its timestamp is the request time.
    pub event_id: ClickId,
    /// The short link.
    pub link_code: ShortCode,
    /// Brand.
    pub brand_id: BrandId,
    /// Root affiliate account.
    pub affiliate_id: AffiliateId,
    /// Campaign.
    pub campaign_id: CampaignId,
    /// The country that was refused.
    pub country: CountryCode,
    /// Which rule refused it.
    pub reason: GeoBlockReason,
}

/// One field's problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The JSON field name.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// The wire form of a click. Plain types only; see [`Click`] for meanings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawClick {
    pub click_id: String,
    pub clicked_at_ms: u64,
    pub link_code: String,
    pub brand_id: String,
    pub affiliate_id: String,
    #[serde(default)]
    pub sub_affiliate_id: String,
    pub campaign_id: String,
    #[serde(default)]
    pub sub1: String,
    #[serde(default)]
    pub sub2: String,
    #[serde(default)]
    pub sub3: String,
    #[serde(default)]
    pub sub4: String,
    #[serde(default)]
    pub sub5: String,
    pub country: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub asn: u32,
    #[serde(default)]
    pub colo: String,
    #[serde(default)]
    pub ip: String,
    #[serde(default)]
    pub user_agent: String,
    #[serde(default)]
    pub referrer: String,
    #[serde(default)]
    pub accept_language: String,
    pub device_fingerprint: String,
    pub identity_hash: String,
    /// Empty when the edge set no visitor cookie.
    #[serde(default)]
    pub visitor_id: String,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub bot_reason: String,
    #[serde(default)]
    pub is_duplicate: bool,
}

/// The wire form of a geo block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RawGeoBlock {
    pub event_id: String,
    pub blocked_at_ms: u64,
    pub link_code: String,
    pub brand_id: String,
    pub affiliate_id: String,
    pub campaign_id: String,
    pub country: String,
    pub reason: String,
}

/// The body of `POST /edge/v1/clicks` as the edge writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClickBatch {
    /// Human and bot clicks.
    #[serde(default)]
    pub clicks: Vec<RawClick>,
    /// Requests refused by geo rules.
    #[serde(default)]
    pub geo_blocks: Vec<RawGeoBlock>,
}

impl ClickBatch {
    /// Number of records in the batch.
    pub fn len(&self) -> usize {
        self.clicks.len() + self.geo_blocks.len()
    }

    /// Whether the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Collects field errors while parsing.
struct Checker(Vec<FieldError>);

impl Checker {
    fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &'static str,
        r: Result<T, E>,
    ) -> Option<T> {
        r.map_err(|e| {
            self.0.push(FieldError {
                field,
                message: e.to_string(),
            })
        })
        .ok()
    }

    fn text(&mut self, field: &'static str, value: String, max: usize) -> Option<String> {
        if value.len() > max {
            self.fail(field, format!("longer than {max} bytes"));
            None
        } else if value.chars().any(char::is_control) {
            self.fail(field, "contains control characters".into());
            None
        } else {
            Some(value)
        }
    }

    fn fail(&mut self, field: &'static str, message: String) {
        self.0.push(FieldError { field, message });
    }
}

impl TryFrom<RawClick> for Click {
    type Error = Vec<FieldError>;

    fn try_from(raw: RawClick) -> Result<Self, Vec<FieldError>> {
        let mut c = Checker(Vec::new());
        let click_id = c.check("click_id", ClickId::parse(&raw.click_id));
        if let Some(id) = click_id {
            if id.timestamp_ms() != raw.clicked_at_ms {
                c.fail(
                    "clicked_at_ms",
                    format!(
                        "does not match the click id's timestamp {}",
                        id.timestamp_ms()
                    ),
                );
            }
        }
        let link_code = c.check("link_code", ShortCode::parse(&raw.link_code));
        let brand_id = c.check("brand_id", BrandId::parse(&raw.brand_id));
        let affiliate_id = c.check("affiliate_id", AffiliateId::parse(&raw.affiliate_id));
        let sub_affiliate_id = if raw.sub_affiliate_id.is_empty() {
            Some(None)
        } else {
            c.check(
                "sub_affiliate_id",
                AffiliateId::parse(&raw.sub_affiliate_id),
            )
            .map(Some)
        };
        let campaign_id = c.check("campaign_id", CampaignId::parse(&raw.campaign_id));
        let subs = [&*raw.sub1, &*raw.sub2, &*raw.sub3, &*raw.sub4, &*raw.sub5];
        if !SubIds::is_sanitized(subs) {
            c.fail("sub1..sub5", "sub-ids must be sanitised by the edge".into());
        }
        let sub_ids = SubIds::from_values(subs);
        let country = c.check("country", CountryCode::parse(&raw.country));
        let region = c.text("region", raw.region, MAX_PLACE);
        let city = c.text("city", raw.city, MAX_PLACE);
        let colo = c.text("colo", raw.colo, MAX_COLO);
        let ip = if raw.ip.is_empty() {
            Some(None)
        } else {
            c.check("ip", raw.ip.parse::<IpAddr>()).map(Some)
        };
        let user_agent = c.text("user_agent", raw.user_agent, MAX_USER_AGENT);
        let referrer = c.text("referrer", raw.referrer, MAX_REFERRER);
        let accept_language = c.text("accept_language", raw.accept_language, MAX_ACCEPT_LANGUAGE);
        let device_fingerprint = c.check(
            "device_fingerprint",
            Hash128::parse(&raw.device_fingerprint),
        );
        let identity_hash = c.check("identity_hash", Hash128::parse(&raw.identity_hash));
        let visitor_id = if raw.visitor_id.is_empty() {
            Some(None)
        } else {
            c.check("visitor_id", VisitorId::parse(&raw.visitor_id))
                .map(Some)
        };
        let bot = match (raw.is_bot, raw.bot_reason.as_str()) {
            (false, "") => Some(BotVerdict::Human),
            (true, reason) => match BotReason::parse(reason) {
                Some(r) => Some(BotVerdict::Bot(r)),
                None => {
                    c.fail("bot_reason", format!("unknown bot reason {reason:?}"));
                    None
                }
            },
            (false, _) => {
                c.fail("bot_reason", "set on a click that is not a bot".into());
                None
            }
        };
        if !c.0.is_empty() {
            return Err(c.0);
        }
        match (
            click_id,
            link_code,
            brand_id,
            affiliate_id,
            sub_affiliate_id,
            campaign_id,
            country,
            region,
            city,
            colo,
            ip,
            user_agent,
            referrer,
            accept_language,
            device_fingerprint,
            identity_hash,
            visitor_id,
            bot,
        ) {
            (
                Some(click_id),
                Some(link_code),
                Some(brand_id),
                Some(affiliate_id),
                Some(sub_affiliate_id),
                Some(campaign_id),
                Some(country),
                Some(region),
                Some(city),
                Some(colo),
                Some(ip),
                Some(user_agent),
                Some(referrer),
                Some(accept_language),
                Some(device_fingerprint),
                Some(identity_hash),
                Some(visitor_id),
                Some(bot),
            ) => Ok(Click {
                click_id,
                link_code,
                brand_id,
                affiliate_id,
                sub_affiliate_id,
                campaign_id,
                sub_ids,
                country,
                region,
                city,
                asn: raw.asn,
                colo,
                ip,
                user_agent,
                referrer,
                accept_language,
                device_fingerprint,
                identity_hash,
                visitor_id,
                bot,
                is_duplicate: raw.is_duplicate,
            }),
            _ => Err(vec![FieldError {
                field: "click",
                message: "invalid".into(),
            }]),
        }
    }
}

impl From<&Click> for RawClick {
    fn from(c: &Click) -> Self {
        let [sub1, sub2, sub3, sub4, sub5] = c.sub_ids.as_strs().map(str::to_owned);
        let (is_bot, bot_reason) = match c.bot {
            BotVerdict::Human => (false, String::new()),
            BotVerdict::Bot(r) => (true, r.as_str().to_owned()),
        };
        RawClick {
            click_id: c.click_id.to_string(),
            clicked_at_ms: c.clicked_at_ms(),
            link_code: c.link_code.to_string(),
            brand_id: c.brand_id.to_string(),
            affiliate_id: c.affiliate_id.to_string(),
            sub_affiliate_id: c
                .sub_affiliate_id
                .map(|a| a.to_string())
                .unwrap_or_default(),
            campaign_id: c.campaign_id.to_string(),
            sub1,
            sub2,
            sub3,
            sub4,
            sub5,
            country: c.country.to_string(),
            region: c.region.clone(),
            city: c.city.clone(),
            asn: c.asn,
            colo: c.colo.clone(),
            ip: c.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            user_agent: c.user_agent.clone(),
            referrer: c.referrer.clone(),
            accept_language: c.accept_language.clone(),
            device_fingerprint: c.device_fingerprint.to_string(),
            identity_hash: c.identity_hash.to_string(),
            visitor_id: c.visitor_id.map(|v| v.to_string()).unwrap_or_default(),
            is_bot,
            bot_reason,
            is_duplicate: c.is_duplicate,
        }
    }
}

fn parse_geo_reason(text: &str) -> Result<GeoBlockReason, String> {
    [
        GeoBlockReason::JurisdictionRestricted,
        GeoBlockReason::LinkBlocked,
        GeoBlockReason::NotInLinkAllowList,
        GeoBlockReason::UnknownCountry,
    ]
    .into_iter()
    .find(|r| r.as_str() == text)
    .ok_or_else(|| format!("unknown geo block reason {text:?}"))
}

impl TryFrom<RawGeoBlock> for GeoBlock {
    type Error = Vec<FieldError>;

    fn try_from(raw: RawGeoBlock) -> Result<Self, Vec<FieldError>> {
        let mut c = Checker(Vec::new());
        let event_id = c.check("event_id", ClickId::parse(&raw.event_id));
        if let Some(id) = event_id {
            if id.timestamp_ms() != raw.blocked_at_ms {
                c.fail(
                    "blocked_at_ms",
                    "does not match the event id's timestamp".into(),
                );
            }
        }
        let link_code = c.check("link_code", ShortCode::parse(&raw.link_code));
        let brand_id = c.check("brand_id", BrandId::parse(&raw.brand_id));
        let affiliate_id = c.check("affiliate_id", AffiliateId::parse(&raw.affiliate_id));
        let campaign_id = c.check("campaign_id", CampaignId::parse(&raw.campaign_id));
        let country = c.check("country", CountryCode::parse(&raw.country));
        let reason = c.check("reason", parse_geo_reason(&raw.reason));
        match (
            event_id,
            link_code,
            brand_id,
            affiliate_id,
            campaign_id,
            country,
            reason,
        ) {
            (
                Some(event_id),
                Some(link_code),
                Some(brand_id),
                Some(affiliate_id),
                Some(campaign_id),
                Some(country),
                Some(reason),
            ) if c.0.is_empty() => Ok(GeoBlock {
                event_id,
                link_code,
                brand_id,
                affiliate_id,
                campaign_id,
                country,
                reason,
            }),
            _ => Err(c.0),
        }
    }
}

impl From<&GeoBlock> for RawGeoBlock {
    fn from(g: &GeoBlock) -> Self {
        RawGeoBlock {
            event_id: g.event_id.to_string(),
            blocked_at_ms: g.event_id.timestamp_ms(),
            link_code: g.link_code.to_string(),
            brand_id: g.brand_id.to_string(),
            affiliate_id: g.affiliate_id.to_string(),
            campaign_id: g.campaign_id.to_string(),
            country: g.country.to_string(),
            reason: g.reason.as_str().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ClickIdGenerator;

    fn sample() -> RawClick {
        let id = ClickIdGenerator::new().next_id(1_750_000_000_000, [1; 10]);
        RawClick {
            click_id: id.to_string(),
            clicked_at_ms: id.timestamp_ms(),
            link_code: "abcDEF123".into(),
            brand_id: "0190a1b2-0000-7000-8000-000000000001".into(),
            affiliate_id: "0190a1b2-0000-7000-8000-000000000002".into(),
            campaign_id: "0190a1b2-0000-7000-8000-000000000003".into(),
            sub1: "fb".into(),
            country: "DE".into(),
            ip: "203.0.113.9".into(),
            user_agent: "Mozilla/5.0".into(),
            device_fingerprint: "00112233445566778899aabbccddeeff".into(),
            identity_hash: "ffeeddccbbaa99887766554433221100".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_raw_click_round_trips_through_the_domain_type() {
        let raw = sample();
        let click = Click::try_from(raw.clone()).expect("valid");
        assert_eq!(RawClick::from(&click), raw);
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let raw = RawClick {
            click_id: "nope".into(),
            country: "Germany".into(),
            ip: "999.1.1.1".into(),
            bot_reason: "known_bot".into(),
            user_agent: "x".repeat(MAX_USER_AGENT + 1),
            ..sample()
        };
        let errors = Click::try_from(raw).expect_err("invalid");
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["click_id", "country", "ip", "user_agent", "bot_reason"]
        );
    }

    #[test]
    fn a_timestamp_that_disagrees_with_the_click_id_is_refused() {
        let raw = RawClick {
            clicked_at_ms: 1,
            ..sample()
        };
        let errors = Click::try_from(raw).expect_err("invalid");
        assert_eq!(errors[0].field, "clicked_at_ms");
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate_utf8("aé", 2), "a");
        assert_eq!(truncate_utf8("abc", 5), "abc");
    }
}
