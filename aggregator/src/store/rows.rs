//! Table rows, field for field as in the migrations, and their mapping from
//! and to domain types. RowBinary is positional: the field order here must
//! match the column list the `clickhouse` crate derives from these structs;
//! the store integration tests read back every field to prove it.

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use clickstitch_shared::bot::{BotReason, BotVerdict};
use clickstitch_shared::geo::{GeoBlockReason, JurisdictionProfile, LinkGeoRules};
use clickstitch_shared::ip::IpStorage;
use clickstitch_shared::{AffiliateId, BrandId, CampaignId, Click, CountryCode, GeoBlock};
use clickstitch_shared::{LinkTemplate, ShortCode};

use crate::attribution::TrafficType;
use crate::entities::catalog::{Affiliate, Brand, Campaign, Link, Name};

/// `clicks` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ClickRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub click_id: Uuid,
    pub clicked_at: u32,
    pub clicked_at_ms: u64,
    pub received_at: u32,
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub affiliate_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid::option")]
    pub sub_affiliate_id: Option<Uuid>,
    #[serde(with = "clickhouse::serde::uuid")]
    pub campaign_id: Uuid,
    pub link_code: String,
    pub sub1: String,
    pub sub2: String,
    pub sub3: String,
    pub sub4: String,
    pub sub5: String,
    pub country: [u8; 2],
    pub region: String,
    pub city: String,
    pub asn: u32,
    pub colo: String,
    pub ip: String,
    pub user_agent: String,
    pub referrer: String,
    pub accept_language: String,
    pub device_fingerprint: String,
    pub identity_hash: String,
    pub visitor_id: String,
    pub is_bot: u8,
    pub bot_reason: i8,
    pub is_duplicate: u8,
}

/// `Enum8` value of a bot verdict (`none` = 0 for humans).
pub fn bot_reason_code(verdict: BotVerdict) -> i8 {
    match verdict {
        BotVerdict::Human => 0,
        BotVerdict::Bot(BotReason::KnownBot) => 1,
        BotVerdict::Bot(BotReason::HeadRequest) => 2,
        BotVerdict::Bot(BotReason::EmptyUserAgent) => 3,
        BotVerdict::Bot(BotReason::LinkPreview) => 4,
    }
}

fn country_bytes(c: CountryCode) -> [u8; 2] {
    let b = c.as_str().as_bytes();
    [b[0], b[1]]
}

fn ms_to_secs(ms: u64) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX)
}

impl ClickRow {
    /// Maps a validated click; `received_at` is the aggregator's clock (s).
    pub fn from_click(c: Click, received_at: u32) -> Self {
        let [sub1, sub2, sub3, sub4, sub5] = c.sub_ids.as_strs().map(str::to_owned);
        let ms = c.clicked_at_ms();
        ClickRow {
            click_id: c.click_id.as_uuid(),
            clicked_at: ms_to_secs(ms),
            clicked_at_ms: ms,
            received_at,
            brand_id: c.brand_id.as_uuid(),
            affiliate_id: c.affiliate_id.as_uuid(),
            sub_affiliate_id: c.sub_affiliate_id.map(|a| a.as_uuid()),
            campaign_id: c.campaign_id.as_uuid(),
            link_code: c.link_code.to_string(),
            sub1,
            sub2,
            sub3,
            sub4,
            sub5,
            country: country_bytes(c.country),
            region: c.region,
            city: c.city,
            asn: c.asn,
            colo: c.colo,
            ip: c.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            user_agent: c.user_agent,
            referrer: c.referrer,
            accept_language: c.accept_language,
            device_fingerprint: c.device_fingerprint.to_string(),
            identity_hash: c.identity_hash.to_string(),
            visitor_id: c.visitor_id.map(|v| v.to_string()).unwrap_or_default(),
            is_bot: u8::from(c.bot.is_bot()),
            bot_reason: bot_reason_code(c.bot),
            is_duplicate: u8::from(c.is_duplicate),
        }
    }
}

/// `geo_blocked_clicks` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct GeoBlockRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    pub blocked_at: u32,
    pub blocked_at_ms: u64,
    pub received_at: u32,
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub affiliate_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub campaign_id: Uuid,
    pub link_code: String,
    pub country: [u8; 2],
    pub reason: i8,
}

impl GeoBlockRow {
    /// Maps a validated geo block.
    pub fn from_block(g: &GeoBlock, received_at: u32) -> Self {
        let ms = g.event_id.timestamp_ms();
        GeoBlockRow {
            event_id: g.event_id.as_uuid(),
            blocked_at: ms_to_secs(ms),
            blocked_at_ms: ms,
            received_at,
            brand_id: g.brand_id.as_uuid(),
            affiliate_id: g.affiliate_id.as_uuid(),
            campaign_id: g.campaign_id.as_uuid(),
            link_code: g.link_code.to_string(),
            country: country_bytes(g.country),
            reason: match g.reason {
                GeoBlockReason::JurisdictionRestricted => 1,
                GeoBlockReason::LinkBlocked => 2,
                GeoBlockReason::NotInLinkAllowList => 3,
                GeoBlockReason::UnknownCountry => 4,
            },
        }
    }
}

/// A stored row that no longer parses into its domain type.
#[derive(Debug, thiserror::Error)]
#[error("stored {table} row {key} is invalid: {message}")]
pub struct CorruptRow {
    table: &'static str,
    key: String,
    message: String,
}

#[allow(clippy::needless_pass_by_value)] // called with temporaries (errors, ids) of any type
fn corrupt(table: &'static str, key: impl ToString, message: impl ToString) -> CorruptRow {
    CorruptRow {
        table,
        key: key.to_string(),
        message: message.to_string(),
    }
}

fn countries(list: &[[u8; 2]]) -> Result<std::collections::BTreeSet<CountryCode>, String> {
    list.iter()
        .map(|b| {
            std::str::from_utf8(b)
                .map_err(|e| e.to_string())
                .and_then(|s| CountryCode::parse(s).map_err(|e| e.to_string()))
        })
        .collect()
}

fn country_list(set: &std::collections::BTreeSet<CountryCode>) -> Vec<[u8; 2]> {
    set.iter().copied().map(country_bytes).collect()
}

/// `brands` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct BrandRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    pub name: String,
    pub jurisdiction_name: String,
    pub restricted_countries: Vec<[u8; 2]>,
    pub block_unknown_country: u8,
    pub ip_storage: i8,
    pub created_at: u32,
    pub version: u64,
    pub visitor_cookie: u8,
    pub player_link_group: String,
}

impl From<&Brand> for BrandRow {
    fn from(b: &Brand) -> Self {
        BrandRow {
            brand_id: b.id.as_uuid(),
            name: b.name.to_string(),
            jurisdiction_name: b.jurisdiction.name.clone(),
            restricted_countries: country_list(&b.jurisdiction.restricted_countries),
            block_unknown_country: u8::from(b.jurisdiction.block_unknown_country),
            ip_storage: match b.ip_storage {
                IpStorage::Full => 1,
                IpStorage::Truncated => 2,
            },
            created_at: b.created_at,
            version: b.version,
            visitor_cookie: u8::from(b.visitor_cookie),
            player_link_group: b.player_link_group.as_str().to_owned(),
        }
    }
}

impl TryFrom<BrandRow> for Brand {
    type Error = CorruptRow;
    fn try_from(r: BrandRow) -> Result<Self, CorruptRow> {
        let key = r.brand_id;
        Ok(Brand {
            id: BrandId::from(r.brand_id),
            name: Name::parse(&r.name).map_err(|e| corrupt("brands", key, e))?,
            jurisdiction: JurisdictionProfile {
                name: r.jurisdiction_name,
                restricted_countries: countries(&r.restricted_countries)
                    .map_err(|e| corrupt("brands", key, e))?,
                block_unknown_country: r.block_unknown_country != 0,
            },
            ip_storage: match r.ip_storage {
                2 => IpStorage::Truncated,
                _ => IpStorage::Full,
            },
            visitor_cookie: r.visitor_cookie != 0,
            player_link_group: crate::entities::catalog::LinkGroup::parse(&r.player_link_group)
                .map_err(|e| corrupt("brands", key, e))?,
            created_at: r.created_at,
            version: r.version,
        })
    }
}

/// `affiliates` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct AffiliateRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub affiliate_id: Uuid,
    pub name: String,
    #[serde(with = "clickhouse::serde::uuid::option")]
    pub parent_affiliate_id: Option<Uuid>,
    pub traffic_types: Vec<String>,
    pub created_at: u32,
    pub version: u64,
}

impl From<&Affiliate> for AffiliateRow {
    fn from(a: &Affiliate) -> Self {
        AffiliateRow {
            affiliate_id: a.id.as_uuid(),
            name: a.name.to_string(),
            parent_affiliate_id: a.parent_id.map(|p| p.as_uuid()),
            traffic_types: a
                .traffic_types
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            created_at: a.created_at,
            version: a.version,
        }
    }
}

impl TryFrom<AffiliateRow> for Affiliate {
    type Error = CorruptRow;
    fn try_from(r: AffiliateRow) -> Result<Self, CorruptRow> {
        Ok(Affiliate {
            id: AffiliateId::from(r.affiliate_id),
            name: Name::parse(&r.name).map_err(|e| corrupt("affiliates", r.affiliate_id, e))?,
            parent_id: r.parent_affiliate_id.map(AffiliateId::from),
            traffic_types: r
                .traffic_types
                .iter()
                .map(|t| TrafficType::parse(t))
                .collect::<Result<_, _>>()
                .map_err(|e| corrupt("affiliates", r.affiliate_id, e))?,
            created_at: r.created_at,
            version: r.version,
        })
    }
}

/// `campaigns` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct CampaignRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub campaign_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    pub name: String,
    pub created_at: u32,
    pub version: u64,
}

impl From<&Campaign> for CampaignRow {
    fn from(c: &Campaign) -> Self {
        CampaignRow {
            campaign_id: c.id.as_uuid(),
            brand_id: c.brand_id.as_uuid(),
            name: c.name.to_string(),
            created_at: c.created_at,
            version: c.version,
        }
    }
}

impl TryFrom<CampaignRow> for Campaign {
    type Error = CorruptRow;
    fn try_from(r: CampaignRow) -> Result<Self, CorruptRow> {
        Ok(Campaign {
            id: CampaignId::from(r.campaign_id),
            brand_id: BrandId::from(r.brand_id),
            name: Name::parse(&r.name).map_err(|e| corrupt("campaigns", r.campaign_id, e))?,
            created_at: r.created_at,
            version: r.version,
        })
    }
}

/// `links` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct LinkRow {
    pub link_code: String,
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub owner_affiliate_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub campaign_id: Uuid,
    pub destination_template: String,
    pub allowed_countries: Vec<[u8; 2]>,
    pub blocked_countries: Vec<[u8; 2]>,
    pub is_active: u8,
    pub created_at: u32,
    pub version: u64,
}

impl From<&Link> for LinkRow {
    fn from(l: &Link) -> Self {
        LinkRow {
            link_code: l.code.to_string(),
            brand_id: l.brand_id.as_uuid(),
            owner_affiliate_id: l.owner_id.as_uuid(),
            campaign_id: l.campaign_id.as_uuid(),
            destination_template: l.destination.to_string(),
            allowed_countries: country_list(&l.geo.allowed_countries),
            blocked_countries: country_list(&l.geo.blocked_countries),
            is_active: u8::from(l.active),
            created_at: l.created_at,
            version: l.version,
        }
    }
}

impl TryFrom<LinkRow> for Link {
    type Error = CorruptRow;
    fn try_from(r: LinkRow) -> Result<Self, CorruptRow> {
        let key = r.link_code.clone();
        let bad = |e: String| corrupt("links", &key, e);
        Ok(Link {
            code: ShortCode::parse(&r.link_code).map_err(|e| bad(e.to_string()))?,
            brand_id: BrandId::from(r.brand_id),
            owner_id: AffiliateId::from(r.owner_affiliate_id),
            campaign_id: CampaignId::from(r.campaign_id),
            destination: LinkTemplate::parse(&r.destination_template)
                .map_err(|e| bad(e.to_string()))?,
            geo: LinkGeoRules {
                allowed_countries: countries(&r.allowed_countries).map_err(bad)?,
                blocked_countries: countries(&r.blocked_countries)
                    .map_err(|e| corrupt("links", &r.link_code, e))?,
            },
            active: r.is_active != 0,
            created_at: r.created_at,
            version: r.version,
        })
    }
}

/// `api_keys` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ApiKeyRow {
    pub key_id: String,
    pub token_sha256: String,
    pub scope: i8,
    #[serde(with = "clickhouse::serde::uuid")]
    pub subject_id: Uuid,
    pub created_at: u32,
    pub revoked: u8,
    pub version: u64,
    /// An operator credential's role (empty for other scopes).
    pub role: String,
    /// An operator credential's owner (empty for other scopes).
    pub owner: String,
}

impl From<&crate::entities::credentials::ApiKey> for ApiKeyRow {
    fn from(k: &crate::entities::credentials::ApiKey) -> Self {
        use crate::entities::credentials::KeyScope;
        let (scope, subject_id, role, owner) = match &k.scope {
            KeyScope::Brand { brand_id } => (1, brand_id.as_uuid(), "", ""),
            KeyScope::Affiliate { affiliate_id } => (2, affiliate_id.as_uuid(), "", ""),
            KeyScope::Operator { role, owner } => (3, Uuid::nil(), role.as_str(), owner.as_str()),
        };
        ApiKeyRow {
            key_id: k.key_id.clone(),
            token_sha256: k.token_sha256.clone(),
            scope,
            subject_id,
            created_at: k.created_at,
            revoked: u8::from(k.revoked),
            version: k.version,
            role: role.to_owned(),
            owner: owner.to_owned(),
        }
    }
}

impl TryFrom<ApiKeyRow> for crate::entities::credentials::ApiKey {
    type Error = CorruptRow;
    fn try_from(r: ApiKeyRow) -> Result<Self, CorruptRow> {
        use crate::entities::credentials::KeyScope;
        let scope = match r.scope {
            1 => KeyScope::Brand {
                brand_id: BrandId::from(r.subject_id),
            },
            2 => KeyScope::Affiliate {
                affiliate_id: AffiliateId::from(r.subject_id),
            },
            3 => KeyScope::Operator {
                role: crate::entities::credentials::Role::parse(&r.role)
                    .ok_or_else(|| corrupt("api_keys", &r.key_id, "unknown role"))?,
                owner: crate::entities::credentials::Owner::parse(&r.owner)
                    .ok_or_else(|| corrupt("api_keys", &r.key_id, "invalid owner"))?,
            },
            other => {
                return Err(corrupt(
                    "api_keys",
                    &r.key_id,
                    format!("unknown scope {other}"),
                ))
            }
        };
        Ok(crate::entities::credentials::ApiKey {
            key_id: r.key_id,
            token_sha256: r.token_sha256,
            scope,
            created_at: r.created_at,
            revoked: r.revoked != 0,
            version: r.version,
        })
    }
}

/// `player_events` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PlayerEventRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    pub event_id: String,
    pub event_type: i8,
    pub occurred_at: u32,
    pub occurred_at_ms: u64,
    pub received_at: u32,
    pub source: i8,
    #[serde(with = "clickhouse::serde::uuid")]
    pub player_id: Uuid,
    pub brand_player_id: String,
    pub country: [u8; 2],
    #[serde(with = "clickhouse::serde::uuid_vec")]
    pub click_ids: Vec<Uuid>,
    pub kyc_status: String,
    pub amount_minor: i64,
    pub currency: [u8; 3],
    pub stakes_minor: i64,
    pub wins_minor: i64,
    pub game: String,
    pub provider: String,
    /// Days since 1970-01-01 (ClickHouse `Date`).
    pub activity_day: u16,
    pub rg_flag: String,
    pub rg_active: u8,
    pub reference_event_id: String,
    pub payload_sha256: String,
    pub payload: String,
    pub response: String,
}

impl PlayerEventRow {
    /// Maps a validated event and the response given for it.
    pub fn from_event(e: &crate::events::BrandEvent, received_at: u32, response: String) -> Self {
        use crate::events::{EventKind, Source};
        let mut row = PlayerEventRow {
            brand_id: e.brand_id.as_uuid(),
            event_id: e.event_id.as_str().to_owned(),
            event_type: match e.kind {
                EventKind::Registration { .. } => 1,
                EventKind::Kyc { .. } => 2,
                EventKind::Deposit { .. } => 3,
                EventKind::Withdrawal { .. } => 4,
                EventKind::GameActivity { .. } => 5,
                EventKind::Bonus { .. } => 6,
                EventKind::Chargeback { .. } => 7,
                EventKind::ResponsibleGaming { .. } => 8,
                EventKind::Void { .. } => 9,
            },
            occurred_at: ms_to_secs(e.occurred_at_ms),
            occurred_at_ms: e.occurred_at_ms,
            received_at,
            source: match e.source {
                Source::Api => 1,
                Source::Postback => 2,
            },
            player_id: e.player_id.as_uuid(),
            brand_player_id: e.brand_player_id.as_str().to_owned(),
            country: *b"XX",
            click_ids: Vec::new(),
            kyc_status: String::new(),
            amount_minor: 0,
            currency: *b"XXX",
            stakes_minor: 0,
            wins_minor: 0,
            game: String::new(),
            provider: String::new(),
            activity_day: 0,
            rg_flag: String::new(),
            rg_active: 0,
            reference_event_id: String::new(),
            payload_sha256: e.payload_sha256.clone(),
            payload: e.payload.clone(),
            response,
        };
        let currency = |m: &crate::money::Money| {
            let c = m.currency();
            let b = c.as_str().as_bytes();
            [b[0], b[1], b[2]]
        };
        match &e.kind {
            EventKind::Registration {
                click_ids,
                country,
                kyc,
                ..
            } => {
                row.click_ids = click_ids.iter().map(|c| c.as_uuid()).collect();
                row.country = country_bytes(*country);
                row.kyc_status = kyc.as_str().to_owned();
            }
            EventKind::Kyc { status } => row.kyc_status = status.as_str().to_owned(),
            EventKind::Deposit { amount } | EventKind::Withdrawal { amount } => {
                row.amount_minor = amount.minor();
                row.currency = currency(amount);
            }
            EventKind::Bonus { cost } => {
                row.amount_minor = cost.minor();
                row.currency = currency(cost);
            }
            EventKind::Chargeback {
                amount,
                deposit_event_id,
            } => {
                row.amount_minor = amount.minor();
                row.currency = currency(amount);
                row.reference_event_id = deposit_event_id
                    .as_ref()
                    .map(|d| d.as_str().to_owned())
                    .unwrap_or_default();
            }
            EventKind::GameActivity {
                stakes,
                wins,
                game,
                provider,
                day,
            } => {
                row.stakes_minor = stakes.minor();
                row.wins_minor = wins.minor();
                row.currency = currency(stakes);
                row.game = game.clone();
                row.provider = provider.clone();
                row.activity_day = day
                    .as_deref()
                    .and_then(|d| {
                        crate::events::parse_time(&serde_json::Value::String(format!(
                            "{d}T00:00:00Z"
                        )))
                        .ok()
                    })
                    .map(|ms| u16::try_from(ms / 86_400_000).unwrap_or(0))
                    .unwrap_or(0);
            }
            EventKind::ResponsibleGaming { flag, active } => {
                row.rg_flag = flag.as_str().to_owned();
                row.rg_active = u8::from(*active);
            }
            EventKind::Void { original, .. } => {
                row.reference_event_id = original.as_str().to_owned();
            }
        }
        row
    }
}

/// `players` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PlayerRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub player_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    pub brand_player_id: String,
    pub player_ref_sha256: String,
    pub registered_at: u32,
    pub country: [u8; 2],
    pub version: u64,
}

impl PlayerRow {
    /// The player a registration creates; `version` is the receive time (ms).
    pub fn from_registration(e: &crate::events::BrandEvent, version: u64) -> Self {
        let (country, player_ref) = match &e.kind {
            crate::events::EventKind::Registration {
                country,
                player_ref,
                ..
            } => (*country, player_ref.as_deref()),
            _ => (CountryCode::UNKNOWN, None),
        };
        PlayerRow {
            player_id: e.player_id.as_uuid(),
            brand_id: e.brand_id.as_uuid(),
            brand_player_id: e.brand_player_id.as_str().to_owned(),
            player_ref_sha256: player_ref
                .map(|r| crate::events::hex_sha256(r.as_bytes()))
                .unwrap_or_default(),
            registered_at: ms_to_secs(e.occurred_at_ms),
            country: country_bytes(country),
            version,
        }
    }
}

/// `attributions` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct AttributionRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub player_id: Uuid,
    pub brand_player_id: String,
    pub registration_event_id: String,
    /// 1 pending_kyc, 2 final, 3 rejected, 4 unattributed.
    pub status: i8,
    pub reason: String,
    pub model: String,
    pub rules_version: String,
    pub window_days: u32,
    #[serde(with = "clickhouse::serde::uuid_vec")]
    pub credit_affiliate_ids: Vec<Uuid>,
    pub credit_sub_affiliate_ids: Vec<String>,
    #[serde(with = "clickhouse::serde::uuid_vec")]
    pub credit_campaign_ids: Vec<Uuid>,
    #[serde(with = "clickhouse::serde::uuid_vec")]
    pub credit_click_ids: Vec<Uuid>,
    pub credit_bps: Vec<u32>,
    /// The full decision as JSON (touchpoints, checks, exclusions).
    pub decision: String,
    pub decided_at: u32,
    pub decided_at_ms: u64,
    pub version: u64,
}

/// What stitching needs to know about a click.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ClickSummaryRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub click_id: Uuid,
    pub clicked_at_ms: u64,
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub affiliate_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid::option")]
    pub sub_affiliate_id: Option<Uuid>,
    #[serde(with = "clickhouse::serde::uuid")]
    pub campaign_id: Uuid,
    pub link_code: String,
    pub country: [u8; 2],
    pub device_fingerprint: String,
    /// Empty when the click carried no visitor cookie.
    pub visitor_id: String,
    pub is_bot: u8,
    pub is_duplicate: u8,
}

/// The stored outcome of an event id (idempotency).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct StoredEventRow {
    pub payload_sha256: String,
    pub response: String,
}

/// A stored event's key and idempotency data.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct EventKeyRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub brand_id: Uuid,
    pub event_id: String,
    pub payload_sha256: String,
    pub response: String,
}

impl From<&ClickRow> for ClickSummaryRow {
    fn from(r: &ClickRow) -> Self {
        Self {
            click_id: r.click_id,
            clicked_at_ms: r.clicked_at_ms,
            brand_id: r.brand_id,
            affiliate_id: r.affiliate_id,
            sub_affiliate_id: r.sub_affiliate_id,
            campaign_id: r.campaign_id,
            link_code: r.link_code.clone(),
            country: r.country,
            device_fingerprint: r.device_fingerprint.clone(),
            visitor_id: r.visitor_id.clone(),
            is_bot: r.is_bot,
            is_duplicate: r.is_duplicate,
        }
    }
}
