//! Brand events: what a brand tells us about its players (registration, KYC,
//! deposits, withdrawals, game activity, bonuses, chargebacks, responsible-
//! gaming flags), parsed from the API's JSON or a postback's query string
//! into validated [`BrandEvent`]s.
//!
//! Owns the wire format (`EventRequest`), its validation (every field, all
//! problems at once), exact decimal amounts, global player ids, and the
//! canonical payload hash that decides whether a replayed event id is the
//! same event (idempotent) or a conflict. Does no IO.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use clickstitch_shared::ip::IpStorage;
use clickstitch_shared::{BrandId, ClickId, CountryCode};

use crate::error::Problem;
pub use crate::ingest::TimePolicy;
use crate::money::{Currency, Money};

/// Longest brand event id / player id / free text accepted.
const MAX_ID: usize = 128;

/// Largest amount of one event (`amount`, `stakes`, `wins`), in minor units
/// of its currency: 10^12 (10 000 000 000.00 EUR). Sums of a player's
/// events are computed with checked arithmetic on top of this bound.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000;

/// Most click ids one registration may report (`click_id` + `click_ids`).
pub const MAX_CLICK_IDS: usize = 100;

/// Longest `reason` of a void.
const MAX_REASON: usize = 500;

/// Shortest brand `device_id` accepted (shorter ones cannot be unique).
pub const MIN_DEVICE_ID: usize = 8;

/// Longest brand `device_id` accepted.
pub const MAX_DEVICE_ID: usize = 128;

/// Namespace of global player ids (UUIDv5).
/// A brand's own id for a player.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct BrandPlayerId(String);

impl BrandPlayerId {
    /// 1..=128 printable characters.
    pub fn parse(text: &str) -> Result<Self, String> {
        parse_id(text).map(Self)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The brand's unique id of an event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// 1..=128 printable characters.
    pub fn parse(text: &str) -> Result<Self, String> {
        parse_id(text).map(Self)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn parse_id(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() || t.len() > MAX_ID {
        return Err(format!("must be 1 to {MAX_ID} characters"));
    }
    if t.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(t.to_owned())
}

pub use clickstitch_domain::player::PlayerId;

/// KYC outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KycStatus {
    /// Not decided yet.
    Pending,
    /// Identity verified.
    Approved,
    /// Verification failed.
    Rejected,
    /// A previous approval withdrawn.
    Revoked,
}

impl KycStatus {
    /// Stable text form.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Revoked => "revoked",
        }
    }
}

pub use clickstitch_domain::player::Flag;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A new player account.
    Registration {
        /// Click ids the brand saw (URL parameter and/or cookie history).
        click_ids: Vec<ClickId>,
        /// The player's country of registration.
        country: CountryCode,
        /// KYC state at registration.
        kyc: KycStatus,
        /// Operator-wide player reference (see [`PlayerId::derive`]).
        player_ref: Option<String>,
    },
    /// A KYC decision.
    Kyc {
        /// The new status.
        status: KycStatus,
    },
    /// Money in.
    Deposit {
        /// Amount.
        amount: Money,
    },
    /// Money out.
    Withdrawal {
        /// Amount.
        amount: Money,
    },
    /// Stakes and wins, per round or per player-day.
    GameActivity {
        /// Total staked.
        stakes: Money,
        /// Total won.
        wins: Money,
        /// Game name or id.
        game: String,
        /// Game provider.
        provider: String,
        /// The day, when aggregated per player-day (`YYYY-MM-DD`).
        day: Option<String>,
    },
    /// A bonus granted, at its cost to the operator.
    Bonus {
        /// Cost.
        cost: Money,
    },
    /// A deposit charged back.
    Chargeback {
        /// Amount.
        amount: Money,
        /// The deposit's event id, when known.
        deposit_event_id: Option<EventId>,
    },
    /// A responsible-gaming or account flag set or lifted.
    ResponsibleGaming {
        /// Which flag.
        flag: Flag,
        /// Set (true) or lifted (false).
        active: bool,
    },
    /// The brand takes back one of its earlier events of the same player
    /// (sent wrong, or twice under two ids): the original stays stored and
    /// no longer counts.
    Void {
        /// The event voided.
        original: EventId,
        /// Why (free text, at most 500 characters).
        reason: String,
    },
}

impl EventKind {
    /// The currency of a money event (`None` for the others).
    pub fn currency(&self) -> Option<Currency> {
        match self {
            Self::Deposit { amount } | Self::Withdrawal { amount } => Some(amount.currency()),
            Self::GameActivity { stakes, .. } => Some(stakes.currency()),
            Self::Bonus { cost } => Some(cost.currency()),
            Self::Chargeback { amount, .. } => Some(amount.currency()),
            _ => None,
        }
    }

    /// Stable text form of the type (as stored in `player_events.event_type`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Registration { .. } => "registration",
            Self::Kyc { .. } => "kyc",
            Self::Deposit { .. } => "deposit",
            Self::Withdrawal { .. } => "withdrawal",
            Self::GameActivity { .. } => "game_activity",
            Self::Bonus { .. } => "bonus",
            Self::Chargeback { .. } => "chargeback",
            Self::ResponsibleGaming { .. } => "responsible_gaming",
            Self::Void { .. } => "void",
        }
    }
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `POST /api/v1/events`.
    Api,
    /// `GET /postback/v1/...`.
    Postback,
}

/// A validated event of one brand's player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrandEvent {
    /// The brand (from the authenticated key, never from the body).
    pub brand_id: BrandId,
    /// The brand's unique event id.
    pub event_id: EventId,
    /// When it happened, Unix ms.
    pub occurred_at_ms: u64,
    /// The brand's player id.
    pub brand_player_id: BrandPlayerId,
    /// The global player id.
    pub player_id: PlayerId,
    /// What happened.
    pub kind: EventKind,
    /// API or postback.
    pub source: Source,
    /// SHA-256 of the canonical payload (idempotency).
    pub payload_sha256: String,
    /// The canonical payload.
    pub payload: String,
    /// Where the player was (optional; used by fraud scoring).
    pub device: DeviceContext,
    /// The earlier event of the same player and type this one corrects
    /// (it no longer counts; this one stands in its place).
    pub corrects: Option<EventId>,
}

impl BrandEvent {
    /// The earlier event this one takes out: the voided one, or the one it
    /// corrects.
    pub fn takes_out(&self) -> Option<&EventId> {
        match &self.kind {
            EventKind::Void { original, .. } => Some(original),
            _ => self.corrects.as_ref(),
        }
    }
}

/// The network and device a player event came from, when the brand reports
/// them (registrations and deposits benefit most).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceContext {
    /// The player's IP.
    pub ip: Option<std::net::IpAddr>,
    /// The player's header fingerprint (weak: shared by everyone on the
    /// same phone model and browser build).
    pub device_fingerprint: Option<clickstitch_shared::fingerprint::Hash128>,
    /// The key of the brand's own high-entropy device id, if sent
    /// ([`clickstitch_shared::fingerprint::brand_device_key`]).
    pub device_key: Option<clickstitch_shared::fingerprint::Hash128>,
    /// ASN of the IP.
    pub asn: Option<u32>,
}

/// An exact decimal amount such as `"50.00"`: parsed into minor units of
/// the currency; more decimals than the currency has are refused, never
/// rounded.
pub fn parse_amount(text: &str, currency: Currency) -> Result<Money, String> {
    let t = text;
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let places = currency.minor_digits() as usize;
    let ok = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && (digits.contains('.') <= !frac.is_empty());
    if !ok {
        return Err(format!(
            "must be a decimal string like \"50.00\", got {:?}",
            t.chars().take(32).collect::<String>()
        ));
    }
    if frac.len() > places {
        return Err(format!(
            "{currency} has {places} decimal places, got {}",
            frac.len()
        ));
    }
    let scale = 10i64.pow(places as u32);
    let whole: i64 = whole.parse().map_err(|_| "amount too large".to_owned())?;
    let frac_value: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<places$}")
            .parse()
            .map_err(|_| "bad decimals".to_owned())?
    };
    let minor = whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(frac_value))
        .filter(|m| *m <= MAX_AMOUNT_MINOR)
        .ok_or_else(|| {
            format!(
                "must be at most {} (10^12 minor units)",
                crate::money::Money::new(MAX_AMOUNT_MINOR, currency)
            )
        })?;
    Ok(Money::new(if neg { -minor } else { minor }, currency))
}

/// The JSON body of `POST /api/v1/events` (also what a postback's query is
/// mapped to). Fields apply per `type`; unknown fields are refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct EventRequest {
    /// The brand's player link group (from the catalogue, never from the
    /// body; see [`EventRequest::with_link_group`]).
    #[serde(skip)]
    pub link_group: String,
    pub event_id: Option<String>,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// RFC 3339 time or Unix milliseconds.
    pub occurred_at: Option<serde_json::Value>,
    pub player_id: Option<String>,
    pub player_ref: Option<String>,
    pub click_id: Option<String>,
    pub click_ids: Option<Vec<String>>,
    pub country: Option<String>,
    pub kyc_status: Option<String>,
    pub status: Option<String>,
    pub amount: Option<serde_json::Value>,
    pub currency: Option<String>,
    pub stakes: Option<serde_json::Value>,
    pub wins: Option<serde_json::Value>,
    pub game: Option<String>,
    pub provider: Option<String>,
    pub day: Option<String>,
    pub deposit_event_id: Option<String>,
    pub flag: Option<String>,
    pub active: Option<bool>,
    /// The player's IP as the brand saw it (fraud signals).
    pub ip: Option<String>,
    /// The player's device fingerprint, computed like the edge's (fraud
    /// signals: 32 hex characters).
    pub device_fingerprint: Option<String>,
    /// Autonomous system number of `ip`, if the brand knows it.
    pub asn: Option<u32>,
    /// The brand's own high-entropy device id (an SDK or JavaScript device
    /// identifier; 8..=128 visible ASCII characters): multi-accounting is
    /// counted per device id when sent.
    pub device_id: Option<String>,
    /// `void`: the event id taken back.
    pub voids_event_id: Option<String>,
    /// Any event but a registration or a void: the earlier event of the
    /// same player and type it corrects.
    pub corrects_event_id: Option<String>,
    /// `void`: why (free text).
    pub reason: Option<String>,
}

/// Parses RFC 3339 (`2026-11-20T10:00:00Z`, `…+01:00`, fractional seconds)
/// or Unix milliseconds into Unix ms.
pub fn parse_time(value: &serde_json::Value) -> Result<u64, String> {
    match value {
        serde_json::Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| "must be Unix milliseconds".to_owned()),
        serde_json::Value::String(s) => {
            parse_rfc3339(s).ok_or_else(|| format!("must be RFC 3339, got {s:?}"))
        }
        _ => Err("must be an RFC 3339 string or Unix milliseconds".into()),
    }
}

fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=days_in_month(y, mo)).contains(&d)
        || h > 23
        || mi > 59
        || se > 59
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let digits = &frac[..n];
        millis = format!("{:0<3}", &digits[..n.min(3)]).parse().ok()?;
        rest = &frac[n..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let (oh, om) = (
                rest.get(1..3)?.parse::<i64>().ok()?,
                rest.get(4..6)?.parse::<i64>().ok()?,
            );
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from civil (Howard Hinnant's algorithm).
    let (y2, m2) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_secs;
    u64::try_from(secs * 1000 + millis).ok()
}

/// Days in month `mo` (1..=12) of year `y` (proleptic Gregorian).
fn days_in_month(y: i64, mo: i64) -> i64 {
    match mo {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// SHA-256 (hex) of the canonical JSON form of `value` (object keys sorted,
/// no insignificant whitespace): two requests with the same content hash
/// alike whatever their key order or spacing.
pub fn canonical(value: &serde_json::Value) -> (String, String) {
    fn sort(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let sorted: BTreeMap<_, _> = m
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), sort(v)))
                    .collect();
                serde_json::Value::Object(sorted.into_iter().collect())
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    let text = sort(value).to_string();
    let hash = hex_sha256(text.as_bytes());
    (text, hash)
}

/// Lower-case hex SHA-256.
pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Fields(Vec<Problem>);

impl Fields {
    fn take<T>(&mut self, field: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|m| self.0.push(Problem::new(field, m))).ok()
    }

    fn required<'a>(&mut self, field: &str, v: &'a Option<String>) -> Option<&'a str> {
        match v.as_deref() {
            Some(s) => Some(s),
            None => {
                self.0.push(Problem::new(field, "is required"));
                None
            }
        }
    }

    fn money(
        &mut self,
        field: &str,
        v: &Option<serde_json::Value>,
        currency: Option<Currency>,
    ) -> Option<Money> {
        let currency = currency?;
        match v {
            Some(serde_json::Value::String(s)) => self.take(field, parse_amount(s, currency)),
            Some(_) => {
                self.0.push(Problem::new(
                    field,
                    "must be a decimal string like \"50.00\" (not a JSON number)",
                ));
                None
            }
            None => {
                self.0.push(Problem::new(field, "is required"));
                None
            }
        }
    }

    fn not_negative(&mut self, field: &str, m: Option<Money>) -> Option<Money> {
        match m {
            Some(m) if m.minor() < 0 => {
                self.0.push(Problem::new(field, "must not be negative"));
                None
            }
            other => other,
        }
    }
}

impl EventRequest {
    /// The request with its `ip` stored as the brand stores IPs: with
    /// `Truncated`, a parsable address becomes its /24 (IPv6: /48) before
    /// anything keeps it — the payload, its hash, the fraud scores. An
    /// unparsable `ip` is left for [`EventRequest::into_event`] to refuse.
    pub fn with_ip_storage(mut self, storage: IpStorage) -> Self {
        if let Some(ip) = self
            .ip
            .as_deref()
            .and_then(|t| t.trim().parse::<std::net::IpAddr>().ok())
        {
            self.ip = Some(storage.apply(ip).to_string());
        }
        self
    }

    /// Sets the brand's player link group, which decides the global player
    /// id a `player_ref` maps to.
    pub fn with_link_group(mut self, group: &crate::entities::catalog::LinkGroup) -> Self {
        self.link_group = group.as_str().to_owned();
        self
    }

    /// Validates the request for `brand` (taken from the caller's key);
    /// `occurred_at` must fall inside `times` (see [`TimePolicy`]).
    pub fn into_event(
        self,
        brand: BrandId,
        source: Source,
        times: &TimePolicy,
    ) -> Result<BrandEvent, Vec<Problem>> {
        let raw = serde_json::to_value(&self).unwrap_or(serde_json::Value::Null);
        let (payload, payload_sha256) = canonical(&raw);
        let mut f = Fields(Vec::new());
        let event_id = f
            .required("event_id", &self.event_id)
            .and_then(|s| f.take("event_id", EventId::parse(s)));
        let player = f
            .required("player_id", &self.player_id)
            .and_then(|s| f.take("player_id", BrandPlayerId::parse(s)));
        let occurred_at_ms = match &self.occurred_at {
            Some(v) => f.take(
                "occurred_at",
                parse_time(v).and_then(|ms| match times.check(ms) {
                    None => Ok(ms),
                    Some(why) => Err(why),
                }),
            ),
            None => {
                f.0.push(Problem::new("occurred_at", "is required"));
                None
            }
        };
        let currency = self
            .currency
            .as_deref()
            .and_then(|c| f.take("currency", Currency::parse(c).map_err(|e| e.to_string())));
        let needs_currency = matches!(
            self.event_type.as_deref(),
            Some("deposit" | "withdrawal" | "game_activity" | "bonus" | "chargeback")
        );
        if needs_currency && self.currency.is_none() {
            f.0.push(Problem::new("currency", "is required"));
        }
        let player_ref = match self.player_ref.as_deref() {
            None => Some(None),
            Some(r) => f.take("player_ref", parse_id(r)).map(Some),
        };
        let ip = match self.ip.as_deref() {
            None => Some(None),
            Some(t) => f
                .take(
                    "ip",
                    t.parse::<std::net::IpAddr>().map_err(|_| {
                        format!(
                            "must be an IPv4 or IPv6 address, got {:?}",
                            t.chars().take(64).collect::<String>()
                        )
                    }),
                )
                .map(Some),
        };
        let device_fingerprint = match self.device_fingerprint.as_deref() {
            None => Some(None),
            Some(t) => f
                .take(
                    "device_fingerprint",
                    clickstitch_shared::fingerprint::Hash128::parse(t)
                        .map_err(|_| "must be 32 lower-case hex characters".to_owned()),
                )
                .map(Some),
        };
        let device_key = match self.device_id.as_deref() {
            None => Some(None),
            Some(t)
                if (MIN_DEVICE_ID..=MAX_DEVICE_ID).contains(&t.len())
                    && t.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Some(Some(clickstitch_shared::fingerprint::brand_device_key(t)))
            }
            Some(_) => {
                f.0.push(Problem::new(
                    "device_id",
                    format!(
                        "must be {MIN_DEVICE_ID} to {MAX_DEVICE_ID} visible ASCII characters (no spaces)"
                    ),
                ));
                None
            }
        };
        let kind = match self.event_type.as_deref() {
            None => {
                f.0.push(Problem::new("type", "is required"));
                None
            }
            Some("registration") => {
                let mut ids = Vec::new();
                let reported =
                    self.click_id.iter().count() + self.click_ids.iter().flatten().count();
                if reported > MAX_CLICK_IDS {
                    f.0.push(Problem::new(
                        "click_ids",
                        format!(
                            "at most {MAX_CLICK_IDS} click ids per registration, got {reported}"
                        ),
                    ));
                }
                for (i, raw) in self
                    .click_id
                    .iter()
                    .chain(self.click_ids.iter().flatten())
                    .take(MAX_CLICK_IDS + 1)
                    .enumerate()
                {
                    if let Some(id) = f.take(
                        &format!("click_ids[{i}]"),
                        ClickId::parse(raw).map_err(|e| e.to_string()),
                    ) {
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                }
                let country = f.required("country", &self.country).and_then(|c| {
                    f.take("country", CountryCode::parse(c).map_err(|e| e.to_string()))
                });
                let kyc = match self.kyc_status.as_deref() {
                    None | Some("pending") => Some(KycStatus::Pending),
                    Some("approved") => Some(KycStatus::Approved),
                    Some("rejected") => Some(KycStatus::Rejected),
                    Some(other) => {
                        f.0.push(Problem::new(
                            "kyc_status",
                            format!("must be pending, approved or rejected, got {other:?}"),
                        ));
                        None
                    }
                };
                match (country, kyc, player_ref.clone()) {
                    (Some(country), Some(kyc), Some(player_ref)) => Some(EventKind::Registration {
                        click_ids: ids,
                        country,
                        kyc,
                        player_ref,
                    }),
                    _ => None,
                }
            }
            Some("kyc") => match self.status.as_deref() {
                Some("approved") => Some(EventKind::Kyc {
                    status: KycStatus::Approved,
                }),
                Some("rejected") => Some(EventKind::Kyc {
                    status: KycStatus::Rejected,
                }),
                Some("revoked") => Some(EventKind::Kyc {
                    status: KycStatus::Revoked,
                }),
                other => {
                    f.0.push(Problem::new(
                        "status",
                        format!("must be approved, rejected or revoked, got {other:?}"),
                    ));
                    None
                }
            },
            Some("deposit") => {
                let m = f.money("amount", &self.amount, currency);
                f.not_negative("amount", m)
                    .map(|amount| EventKind::Deposit { amount })
            }
            Some("withdrawal") => {
                let m = f.money("amount", &self.amount, currency);
                f.not_negative("amount", m)
                    .map(|amount| EventKind::Withdrawal { amount })
            }
            Some("bonus") => {
                let m = f.money("amount", &self.amount, currency);
                f.not_negative("amount", m)
                    .map(|cost| EventKind::Bonus { cost })
            }
            Some("chargeback") => {
                let m = f.money("amount", &self.amount, currency);
                let deposit = match self.deposit_event_id.as_deref() {
                    None => Some(None),
                    Some(d) => f.take("deposit_event_id", EventId::parse(d)).map(Some),
                };
                match (f.not_negative("amount", m), deposit) {
                    (Some(amount), Some(deposit_event_id)) => Some(EventKind::Chargeback {
                        amount,
                        deposit_event_id,
                    }),
                    _ => None,
                }
            }
            Some("game_activity") => {
                let stakes = f.money("stakes", &self.stakes, currency);
                let stakes = f.not_negative("stakes", stakes);
                let wins = f.money("wins", &self.wins, currency);
                let wins = f.not_negative("wins", wins);
                let game = self
                    .game
                    .as_deref()
                    .map(|g| f.take("game", parse_id(g)))
                    .unwrap_or(Some(String::new()));
                let provider = self
                    .provider
                    .as_deref()
                    .map(|p| f.take("provider", parse_id(p)))
                    .unwrap_or(Some(String::new()));
                let day = match self.day.as_deref() {
                    None => Some(None),
                    Some(d) => f.take(
                        "day",
                        parse_rfc3339(&format!("{d}T00:00:00Z"))
                            .map(|_| Some(d.to_owned()))
                            .ok_or_else(|| "must be YYYY-MM-DD".to_owned()),
                    ),
                };
                match (stakes, wins, game, provider, day) {
                    (Some(stakes), Some(wins), Some(game), Some(provider), Some(day)) => {
                        Some(EventKind::GameActivity {
                            stakes,
                            wins,
                            game,
                            provider,
                            day,
                        })
                    }
                    _ => None,
                }
            }
            Some("responsible_gaming") => {
                let flag = match self.flag.as_deref() {
                    Some("self_exclusion") => Some(Flag::SelfExclusion),
                    Some("cooling_off") => Some(Flag::CoolingOff),
                    Some("deposit_limit") => Some(Flag::DepositLimit),
                    Some("account_closed") => Some(Flag::AccountClosed),
                    Some("blocked") => Some(Flag::Blocked),
                    Some("duplicate_account") => Some(Flag::DuplicateAccount),
                    other => {
                        f.0.push(Problem::new(
                            "flag",
                            format!("must be self_exclusion, cooling_off, deposit_limit, account_closed, blocked or duplicate_account, got {other:?}"),
                        ));
                        None
                    }
                };
                if self.active.is_none() {
                    f.0.push(Problem::new(
                        "active",
                        "is required: true when the flag is set, false when it is lifted",
                    ));
                }
                flag.zip(self.active)
                    .map(|(flag, active)| EventKind::ResponsibleGaming { flag, active })
            }
            Some("void") => {
                let original = f
                    .required("voids_event_id", &self.voids_event_id)
                    .and_then(|s| f.take("voids_event_id", EventId::parse(s)));
                let reason = match self.reason.as_deref() {
                    None => Some(String::new()),
                    Some(r)
                        if r.chars().count() <= MAX_REASON && !r.chars().any(char::is_control) =>
                    {
                        Some(r.to_owned())
                    }
                    Some(_) => {
                        f.0.push(Problem::new(
                            "reason",
                            format!("at most {MAX_REASON} characters, no control characters"),
                        ));
                        None
                    }
                };
                original
                    .zip(reason)
                    .map(|(original, reason)| EventKind::Void { original, reason })
            }
            Some(other) => {
                f.0.push(Problem::new(
                    "type",
                    format!("unknown event type {other:?}; known: registration, kyc, deposit, withdrawal, game_activity, bonus, chargeback, responsible_gaming, void"),
                ));
                None
            }
        };
        let corrects = match (
            self.corrects_event_id.as_deref(),
            self.event_type.as_deref(),
        ) {
            (None, _) => None,
            (Some(_), Some("registration" | "void")) => {
                f.0.push(Problem::new(
                    "corrects_event_id",
                    "registrations and voids cannot be corrected this way; void the event instead",
                ));
                None
            }
            (Some(c), _) => f.take("corrects_event_id", EventId::parse(c)),
        };
        if self.event_type.as_deref() != Some("void") {
            for (field, set) in [
                ("voids_event_id", self.voids_event_id.is_some()),
                ("reason", self.reason.is_some()),
            ] {
                if set {
                    f.0.push(Problem::new(field, "only for type void"));
                }
            }
        }
        let self_reference = [&self.voids_event_id, &self.corrects_event_id]
            .into_iter()
            .flatten()
            .any(|o| Some(o.trim()) == self.event_id.as_deref().map(str::trim));
        if self_reference {
            f.0.push(Problem::new(
                "event_id",
                "an event cannot void or correct itself",
            ));
        }
        match (
            event_id,
            player,
            occurred_at_ms,
            kind,
            ip,
            device_fingerprint,
            device_key,
        ) {
            (
                Some(event_id),
                Some(brand_player_id),
                Some(occurred_at_ms),
                Some(kind),
                Some(ip),
                Some(device_fingerprint),
                Some(device_key),
            ) if f.0.is_empty() => {
                let player_ref = match &kind {
                    EventKind::Registration { player_ref, .. } => player_ref.clone(),
                    _ => self.player_ref.clone(),
                };
                let player_id = PlayerId::derive_in(
                    brand,
                    brand_player_id.as_str(),
                    player_ref.as_deref(),
                    &self.link_group,
                );
                Ok(BrandEvent {
                    brand_id: brand,
                    event_id,
                    occurred_at_ms,
                    brand_player_id,
                    player_id,
                    kind,
                    source,
                    payload_sha256,
                    payload,
                    device: DeviceContext {
                        ip,
                        device_fingerprint,
                        device_key,
                        asn: self.asn,
                    },
                    corrects,
                })
            }
            _ => Err(f.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    /// Any instant is inside this window.
    fn any_time() -> TimePolicy {
        TimePolicy {
            now_ms: 1_795_168_800_000,
            max_age_ms: u64::MAX,
            max_future_ms: u64::MAX,
        }
    }

    /// 2026-11-20T10:00:00Z, 400 days back, 5 minutes ahead.
    fn window() -> TimePolicy {
        TimePolicy {
            now_ms: 1_795_168_800_000,
            max_age_ms: 400 * 86_400_000,
            max_future_ms: 300_000,
        }
    }

    fn deposit(occurred_at: serde_json::Value, amount: &str, currency: &str) -> EventRequest {
        let mut body = json!({
            "event_id": "d-1", "type": "deposit",
            "player_id": "p-1", "amount": amount, "currency": currency
        });
        body["occurred_at"] = occurred_at;
        request(body)
    }

    fn fields_of(r: Result<BrandEvent, Vec<Problem>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.field)
            .collect()
    }

    #[test]
    fn impossible_calendar_dates_and_offsets_are_refused_not_rolled_over() {
        for bad in [
            "2026-02-30T10:00:00Z",
            "2026-02-29T10:00:00Z",
            "2026-04-31T10:00:00Z",
            "2026-11-20T10:00:00+99:99",
            "2026-11-20T10:00:60Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(parse_time(&json!(bad)).is_err(), "{bad}");
        }
        assert!(parse_time(&json!("2028-02-29T10:00:00Z")).is_ok());
        let day = request(json!({
            "event_id": "g-1", "type": "game_activity", "occurred_at": "2026-11-20T10:00:00Z",
            "player_id": "p-1", "stakes": "1.00", "wins": "0.00", "currency": "EUR",
            "day": "2026-02-31"
        }));
        assert_eq!(
            fields_of(day.into_event(brand(), Source::Api, &window())),
            ["day"]
        );
    }

    #[test]
    fn occurred_at_must_fall_between_the_backdating_limit_and_five_minutes_ahead() {
        let at = |v: serde_json::Value| {
            fields_of(deposit(v, "5.00", "EUR").into_event(brand(), Source::Api, &window()))
        };
        assert!(at(json!("2026-11-20T10:04:00Z")).is_empty());
        assert!(
            at(json!("2025-10-17T10:00:00Z")).is_empty(),
            "399 days back"
        );
        assert_eq!(at(json!("2026-11-20T10:06:00Z")), ["occurred_at"]);
        assert_eq!(at(json!("2020-01-15T12:00:00Z")), ["occurred_at"]);
        assert_eq!(at(json!("9999-12-31T23:59:59Z")), ["occurred_at"]);
        assert_eq!(at(json!(18_446_744_073_709_551_615u64)), ["occurred_at"]);
        assert_eq!(at(json!(-5)), ["occurred_at"]);
    }

    #[test]
    fn made_up_currencies_huge_amounts_and_padded_amounts_are_refused() {
        let t = "2026-11-20T10:00:00Z";
        let fields = |amount: &str, currency: &str| {
            fields_of(deposit(json!(t), amount, currency).into_event(
                brand(),
                Source::Api,
                &window(),
            ))
        };
        assert_eq!(fields("5.00", "ZZZ"), ["currency"]);
        assert_eq!(fields("5.00", "XYZ"), ["currency"]);
        assert_eq!(fields("5.00", "XXX"), ["currency"]);
        assert_eq!(fields(" 5.00", "EUR"), ["amount"]);
        assert_eq!(fields("10000000000.01", "EUR"), ["amount"]);
        assert!(fields("10000000000.00", "EUR").is_empty());
        assert!(fields("5", "jpy").is_empty());
    }

    #[test]
    fn a_responsible_gaming_flag_must_say_whether_it_is_set_or_lifted() {
        let r = request(json!({
            "event_id": "rg-1", "type": "responsible_gaming", "occurred_at": "2026-11-20T10:00:00Z",
            "player_id": "p-1", "flag": "self_exclusion"
        }));
        assert_eq!(
            fields_of(r.into_event(brand(), Source::Api, &window())),
            ["active"]
        );
    }

    #[test]
    fn a_registration_may_report_at_most_a_hundred_click_ids() {
        let ids: Vec<String> = (0..101)
            .map(|i| format!("01977256-b1bb-7000-8000-{i:012}"))
            .collect();
        let r = request(json!({
            "event_id": "reg-1", "type": "registration", "occurred_at": "2026-11-20T10:00:00Z",
            "player_id": "p-1", "country": "DE", "click_ids": ids
        }));
        assert_eq!(
            fields_of(r.into_event(brand(), Source::Api, &window())),
            ["click_ids"]
        );
    }
    use serde_json::json;

    fn brand() -> BrandId {
        BrandId::from(Uuid::from_u128(1))
    }

    fn eur() -> Currency {
        Currency::parse("EUR").expect("EUR")
    }

    fn request(v: serde_json::Value) -> EventRequest {
        serde_json::from_value(v).expect("shape")
    }

    #[test]
    fn decimal_amounts_are_exact_and_refuse_extra_places() {
        assert_eq!(parse_amount("50.00", eur()), Ok(Money::new(5000, eur())));
        assert_eq!(parse_amount("50.5", eur()), Ok(Money::new(5050, eur())));
        assert_eq!(parse_amount("7", eur()), Ok(Money::new(700, eur())));
        assert!(parse_amount("0.001", eur()).is_err());
        assert!(parse_amount("1e3", eur()).is_err());
        assert!(parse_amount("12.", eur()).is_err());
        assert!(parse_amount("", eur()).is_err());
        let jpy = Currency::parse("JPY").expect("JPY");
        assert!(parse_amount("10.5", jpy).is_err());
    }

    #[test]
    fn times_parse_from_rfc3339_and_milliseconds() {
        assert_eq!(parse_time(&json!("1970-01-01T00:00:01Z")), Ok(1000));
        assert_eq!(
            parse_time(&json!("2026-11-20T10:00:00.250+01:00")),
            Ok(1_795_165_200_250)
        );
        assert_eq!(
            parse_time(&json!(1_795_165_200_250u64)),
            Ok(1_795_165_200_250)
        );
        assert!(parse_time(&json!("yesterday")).is_err());
    }

    #[test]
    fn a_registration_with_click_ids_parses_into_a_typed_event() {
        let e = request(json!({
            "event_id": "reg-1", "type": "registration", "occurred_at": "2026-11-20T10:00:00Z",
            "player_id": "p-1", "click_id": "01977256-b1bb-7000-8000-000000000000",
            "click_ids": ["01977256-b1bb-7000-8000-000000000000", "01977256-b1bc-7000-8000-000000000000"],
            "country": "de"
        }))
        .into_event(brand(), Source::Api, &any_time())
        .expect("valid");
        match e.kind {
            EventKind::Registration {
                click_ids,
                country,
                kyc,
                ..
            } => {
                assert_eq!(click_ids.len(), 2, "duplicates are merged");
                assert_eq!(country.as_str(), "DE");
                assert_eq!(kyc, KycStatus::Pending);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let problems = request(json!({"type": "deposit", "amount": 50.0, "currency": "EURO"}))
            .into_event(brand(), Source::Api, &any_time())
            .expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["event_id", "player_id", "occurred_at", "currency"]);
        let problems = request(json!({"event_id": "d", "player_id": "p", "occurred_at": 1, "type": "deposit", "amount": 50.0, "currency": "EUR"}))
            .into_event(brand(), Source::Api, &any_time())
            .expect_err("float amount");
        assert_eq!(problems[0].field, "amount");
    }

    #[test]
    fn the_payload_hash_ignores_key_order_and_whitespace() {
        let a = canonical(&json!({"b": 1, "a": {"y": 2, "x": [1, 2]}}));
        let b = canonical(
            &serde_json::from_str("{ \"a\": {\"x\": [1,2], \"y\": 2}, \"b\": 1 }").expect("json"),
        );
        assert_eq!(a, b);
        assert_ne!(
            a.1,
            canonical(&json!({"b": 2, "a": {"y": 2, "x": [1, 2]}})).1
        );
    }
}
