//! The attribution decision for one registration: which clicks are the
//! player's touchpoints, which affiliates may be credited, and how the
//! credit is split; or why the registration stays unattributed.
//!
//! Owns the touchpoint rule, the window check, the unattributed reasons and
//! the shape of the result the IO layer persists. Pure: the caller passes
//! the registration, the clicks it found in the click store, the affiliates'
//! traffic types and the active [`RuleSet`]; no clock, no IO. Does not look
//! clicks up, store results or compute commissions.
//!
//! # The touchpoint rule
//!
//! 1. Each **reported** click id (duplicates ignored) is checked in order:
//!    it must exist in the click store, belong to the registering brand, be
//!    human (`is_bot = false`), and lie inside the window (see [`place`]).
//!    Each gets a [`ClickCheck`]; the ones that pass are touchpoints (a
//!    click the edge flagged `is_duplicate` still counts when reported: the
//!    brand saw it).
//! 2. The **device** of the player is the set of visitor ids (the edge's
//!    first-party cookie: one browser profile) of the reported clicks that
//!    exist, belong to the brand, are human and carry one (inside the
//!    window or not: an old cookie still identifies the browser). The
//!    header fingerprint is never used here: strangers on the same phone
//!    model and browser build share it.
//! 3. **Visitor matches** (the rules' `fingerprint_matching`) are the other
//!    found clicks of the same brand with one of those visitor ids, human
//!    and inside the window. If there are more than the rules'
//!    `max_extra_touchpoints`, none is used (the evidence is ambiguous: a
//!    shared browser, or a cookie copied between machines). Otherwise
//!    they are added, except those flagged `is_duplicate` (a repeat of the
//!    same visitor on the same link within the hour, whose original click is
//!    a match itself).
//! 4. Touchpoints are unique by click id and ordered by click time, ties by
//!    click id text (equal to [`ClickId`] order for the canonical lower-case
//!    form).
//! 5. **Eligibility**: a touchpoint whose link owner (the sub-affiliate, if
//!    any) or root affiliate has a traffic type the rules exclude (or has no
//!    declared traffic types, when the rules exclude undeclared ones) gets
//!    no credit and is listed as excluded; the model runs over the rest.
//!
//! Credit per touchpoint comes from [`Model::split`]; touchpoints of the
//! same `(affiliate_id, sub_affiliate_id)` pair are then summed into one
//! [`AffiliateCredit`] (exact: sums of integers).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use clickstitch_shared::fingerprint::VisitorId;
use clickstitch_shared::{
    AffiliateId, BrandId, CampaignId, Click, ClickId, CountryCode, ShortCode,
};
use serde::Serialize;

use super::credit::Model;
use super::rules::{Eligibility, Jurisdiction, RuleSet, Rules, RulesRef, TrafficType};
use clickstitch_domain::kyc::{AttributionStatus, KycEvent, KycTransition};
use clickstitch_domain::money::Bps;

/// A player registration as the brand reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The brand (from the authenticated API key).
    pub brand_id: BrandId,
    /// The player's country of registration; chooses the jurisdiction rules.
    pub country: CountryCode,
    /// When the player registered, Unix ms (the brand's event time).
    pub registered_at_ms: u64,
    /// Click ids the brand saw (URL parameter, cookie history), any order.
    pub reported_click_ids: Vec<ClickId>,
}

/// A click the IO layer found in the click store (by a reported id or by a
/// [`VisitorQuery`]). Its time is its click id's timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundClick {
    /// UUIDv7 click id.
    pub click_id: ClickId,
    /// Brand of the link.
    pub brand_id: BrandId,
    /// Root affiliate account.
    pub affiliate_id: AffiliateId,
    /// The link owner when it is a sub-affiliate.
    pub sub_affiliate_id: Option<AffiliateId>,
    /// Campaign.
    pub campaign_id: CampaignId,
    /// The short link.
    pub link_code: ShortCode,
    /// The browser's visitor cookie, when the click carried one.
    pub visitor_id: Option<VisitorId>,
    /// Screened as a bot: never a touchpoint.
    pub is_bot: bool,
    /// A repeat of the same visitor on the same link within the hour.
    pub is_duplicate: bool,
    /// Held by fraud scoring (quarantined and not approved, or rejected):
    /// never credited; listed among the excluded touchpoints.
    pub quarantined: bool,
}

impl FoundClick {
    /// The click time, Unix ms.
    pub fn clicked_at_ms(&self) -> u64 {
        self.click_id.timestamp_ms()
    }
}

impl From<&Click> for FoundClick {
    fn from(c: &Click) -> Self {
        Self {
            click_id: c.click_id,
            brand_id: c.brand_id,
            affiliate_id: c.affiliate_id,
            sub_affiliate_id: c.sub_affiliate_id,
            campaign_id: c.campaign_id,
            link_code: c.link_code.clone(),
            visitor_id: c.visitor_id,
            is_bot: c.bot.is_bot(),
            is_duplicate: c.is_duplicate,
            quarantined: false,
        }
    }
}

/// The traffic types the catalogue declares per affiliate account. An
/// account missing from the map is *undeclared* (see
/// [`Eligibility::exclude_undeclared`]); one mapped to an empty set has
/// declared none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficTypes(BTreeMap<AffiliateId, BTreeSet<TrafficType>>);

impl TrafficTypes {
    /// No declarations.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares `affiliate`'s traffic types (replacing earlier ones).
    pub fn declare(
        &mut self,
        affiliate: AffiliateId,
        types: impl IntoIterator<Item = TrafficType>,
    ) -> &mut Self {
        self.0.insert(affiliate, types.into_iter().collect());
        self
    }

    /// `affiliate`'s declared types, None if undeclared.
    pub fn of(&self, affiliate: AffiliateId) -> Option<&BTreeSet<TrafficType>> {
        self.0.get(&affiliate)
    }
}

/// How a touchpoint was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The brand reported its click id.
    Reported,
    /// Same brand, same device fingerprint as a reported click.
    FingerprintMatch,
}

/// One credited touchpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Touchpoint {
    /// Click id.
    pub click_id: ClickId,
    /// Click time, Unix ms.
    pub clicked_at_ms: u64,
    /// Root affiliate account.
    pub affiliate_id: AffiliateId,
    /// Link owner when a sub-affiliate.
    pub sub_affiliate_id: Option<AffiliateId>,
    /// Campaign.
    pub campaign_id: CampaignId,
    /// Short link.
    pub link_code: ShortCode,
    /// How it was found.
    pub origin: Origin,
    /// Its share (may be 0, e.g. the non-first touchpoints of first-click).
    pub credit: Bps,
}

/// The credit of one `(affiliate, sub-affiliate)` pair: the sum of its
/// touchpoints' credits. Only pairs with a positive credit are listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AffiliateCredit {
    /// Root affiliate account (the one the brand contracts with).
    pub affiliate_id: AffiliateId,
    /// The link owner when a sub-affiliate.
    pub sub_affiliate_id: Option<AffiliateId>,
    /// Total credit.
    pub credit: Bps,
    /// How many touchpoints were merged.
    pub touchpoints: u32,
}

/// What became of one reported click id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum ClickCheck {
    /// A touchpoint (subject to eligibility).
    Touchpoint,
    /// No such click in the click store.
    NotFound,
    /// The click belongs to another brand (which one is not said: a brand
    /// must not learn who owns a click id).
    OtherBrand,
    /// The click was screened as a bot.
    Bot,
    /// The click is older than the window.
    OutsideWindow {
        /// By how much, ms.
        by_ms: u64,
    },
    /// The click is later than the registration.
    AfterRegistration {
        /// By how much, ms.
        by_ms: u64,
    },
}

/// A reported click id and its check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportedClick {
    /// The id the brand reported.
    pub click_id: ClickId,
    /// Its fate.
    #[serde(flatten)]
    pub check: ClickCheck,
}

/// Why an affiliate may not be credited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum Ineligibility {
    /// The account has a traffic type the rules exclude.
    TrafficType {
        /// The account (root or sub-affiliate).
        account: AffiliateId,
        /// The excluded type (the first in name order if several).
        traffic_type: TrafficType,
    },
    /// The account has no declared traffic types and the rules exclude
    /// undeclared accounts.
    Undeclared {
        /// The account.
        account: AffiliateId,
    },
    /// The click is quarantined by fraud scoring (awaiting review) or was
    /// rejected as fraud.
    QuarantinedForFraud,
}

/// A touchpoint that received no credit because of eligibility rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExcludedTouchpoint {
    /// Click id.
    pub click_id: ClickId,
    /// Root affiliate account.
    pub affiliate_id: AffiliateId,
    /// Link owner when a sub-affiliate.
    pub sub_affiliate_id: Option<AffiliateId>,
    /// How it was found.
    pub origin: Origin,
    /// Why.
    #[serde(flatten)]
    pub why: Ineligibility,
}

/// What fingerprint matching contributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FingerprintOutcome {
    /// The rules turn it off.
    Disabled,
    /// No reported click identifies a device (none found of this brand and
    /// human).
    NoDevice,
    /// Matches were used.
    Matched {
        /// Touchpoints added.
        added: u32,
        /// Matches skipped as `is_duplicate`.
        duplicates_skipped: u32,
    },
    /// More candidates than the rules allow: none used.
    TooMany {
        /// Candidates found.
        candidates: u32,
        /// The rules' limit.
        max: u16,
    },
}

/// Why a registration is not attributed. The most advanced stage any
/// reported click reached decides the reason: a click of this brand that is
/// only out of the window says more than one that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum UnattributedReason {
    /// The brand reported no click id (nothing identifies a device either).
    NoClickReported,
    /// None of the reported click ids is in the click store.
    ClickNotFound,
    /// The reported clicks that exist belong to other brands (not named:
    /// the answer goes to the registering brand).
    ClickOfAnotherBrand,
    /// Every reported click of this brand is a bot.
    OnlyBotClicks,
    /// The nearest human click of this brand is older than the window.
    OutsideWindow {
        /// That click.
        click_id: ClickId,
        /// How much older than the window allows, ms.
        by_ms: u64,
        /// The window, days (not serialised: [`Basis::window_days`] has it).
        #[serde(skip)]
        window_days: u16,
    },
    /// The nearest human click of this brand came after the registration.
    ClickAfterRegistration {
        /// That click.
        click_id: ClickId,
        /// How much later, ms.
        by_ms: u64,
    },
    /// Touchpoints exist, but every affiliate is ineligible under the rules.
    NoEligibleAffiliate,
}

impl UnattributedReason {
    /// Stable code for storage (`attributions.reason`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoClickReported => "no_click_reported",
            Self::ClickNotFound => "click_not_found",
            Self::ClickOfAnotherBrand => "click_of_another_brand",
            Self::OnlyBotClicks => "only_bot_clicks",
            Self::OutsideWindow { .. } => "outside_window",
            Self::ClickAfterRegistration { .. } => "click_after_registration",
            Self::NoEligibleAffiliate => "no_eligible_affiliate",
        }
    }
}

impl fmt::Display for UnattributedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoClickReported => f.write_str("no click id reported"),
            Self::ClickNotFound => f.write_str("no reported click id is in the click store"),
            Self::ClickOfAnotherBrand => f.write_str("the reported click belongs to another brand"),
            Self::OnlyBotClicks => f.write_str("only bot clicks"),
            Self::OutsideWindow {
                click_id,
                by_ms,
                window_days,
            } => write!(
                f,
                "click {click_id} is {} older than the {window_days}-day window",
                Duration(*by_ms)
            ),
            Self::ClickAfterRegistration { click_id, by_ms } => write!(
                f,
                "click {click_id} is {} after the registration",
                Duration(*by_ms)
            ),
            Self::NoEligibleAffiliate => {
                f.write_str("every touchpoint's affiliate is ineligible under the rules")
            }
        }
    }
}

/// Milliseconds as `1d 2h 3m 4.005s`.
struct Duration(u64);

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        let (d, h, m, s, milli) = (
            ms / 86_400_000,
            ms / 3_600_000 % 24,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000,
        );
        if d > 0 {
            write!(f, "{d}d ")?;
        }
        if d > 0 || h > 0 {
            write!(f, "{h}h ")?;
        }
        if d > 0 || h > 0 || m > 0 {
            write!(f, "{m}m ")?;
        }
        write!(f, "{s}.{milli:03}s")
    }
}

/// The facts every decision records, attributed or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Basis {
    /// Brand.
    pub brand_id: BrandId,
    /// Player country.
    pub country: CountryCode,
    /// Registration time, Unix ms.
    pub registered_at_ms: u64,
    /// The jurisdiction of the rules used (None: a default file).
    pub jurisdiction: Option<Jurisdiction>,
    /// The rules file, version and digest.
    pub rules: RulesRef,
    /// The window, days.
    pub window_days: u16,
    /// Each reported click id (deduplicated, in reported order) and its check.
    pub reported: Vec<ReportedClick>,
    /// Touchpoints refused by eligibility rules.
    pub excluded: Vec<ExcludedTouchpoint>,
    /// What fingerprint matching did.
    pub fingerprint: FingerprintOutcome,
}

/// A registration credited to one or more affiliates. Credits sum to
/// exactly 10 000 bps; fields are read-only so that stays true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attribution {
    #[serde(flatten)]
    basis: Basis,
    model: Model,
    touchpoints: Vec<Touchpoint>,
    credits: Vec<AffiliateCredit>,
    status: AttributionStatus,
}

impl Attribution {
    /// The facts behind the decision.
    pub fn basis(&self) -> &Basis {
        &self.basis
    }

    /// The rules used.
    pub fn rules(&self) -> &RulesRef {
        &self.basis.rules
    }

    /// The model used.
    pub fn model(&self) -> Model {
        self.model
    }

    /// Eligible touchpoints in time order, each with its credit.
    pub fn touchpoints(&self) -> &[Touchpoint] {
        &self.touchpoints
    }

    /// Credit per `(affiliate, sub-affiliate)`, in order of first touchpoint.
    pub fn credits(&self) -> &[AffiliateCredit] {
        &self.credits
    }

    /// KYC status ([`AttributionStatus::PendingKyc`] when decided).
    pub fn status(&self) -> AttributionStatus {
        self.status
    }

    /// Applies a KYC decision (see [`AttributionStatus::on_kyc`]) and returns
    /// what the commission side must do.
    pub fn apply_kyc(&mut self, event: KycEvent) -> KycTransition {
        let t = self.status.on_kyc(event);
        self.status = t.status;
        t
    }
}

/// A registration kept without credit, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unattributed {
    /// The facts behind the decision.
    #[serde(flatten)]
    pub basis: Basis,
    /// Why.
    #[serde(flatten)]
    pub reason: UnattributedReason,
}

/// The outcome for one registration. Never silent: every registration ends
/// in one of the two, and both record the rules used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Decision {
    /// Credited.
    Attributed(Attribution),
    /// Not credited, with the reason.
    Unattributed(Unattributed),
}

impl Decision {
    /// The facts behind the decision.
    pub fn basis(&self) -> &Basis {
        match self {
            Self::Attributed(a) => &a.basis,
            Self::Unattributed(u) => &u.basis,
        }
    }

    /// The rules used.
    pub fn rules(&self) -> &RulesRef {
        &self.basis().rules
    }

    /// `pending_kyc`, `final`, `rejected` or `unattributed` (the
    /// `attributions.status` values).
    pub fn status_code(&self) -> &'static str {
        match self {
            Self::Attributed(a) => a.status.code(),
            Self::Unattributed(_) => "unattributed",
        }
    }
}

/// Where a click lies relative to a registration's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// `registered_at − window ≤ clicked_at ≤ registered_at` (both ends
    /// inclusive).
    Inside,
    /// Older than the window by this many ms.
    TooOld(u64),
    /// After the registration by this many ms.
    AfterRegistration(u64),
}

/// Places a click time relative to a registration and a window in ms. The
/// window is inclusive at both ends: a click exactly `window` ms before the
/// registration is inside, and so is a click at the registration's
/// millisecond.
pub fn place(registered_at_ms: u64, clicked_at_ms: u64, window_ms: u64) -> Placement {
    if clicked_at_ms > registered_at_ms {
        return Placement::AfterRegistration(clicked_at_ms - registered_at_ms);
    }
    let age = registered_at_ms - clicked_at_ms;
    if age > window_ms {
        Placement::TooOld(age - window_ms)
    } else {
        Placement::Inside
    }
}

/// What the IO layer should fetch to find the fingerprint matches: clicks of
/// `brand_id` with `visitor_id` in `visitors` and click time in
/// `from_ms..=to_ms` (table `clicks_by_fingerprint`, then the full rows from
/// `clicks`), newest first, at most `limit` rows. Fetching no more than
/// `limit` never changes the decision: it can only hide candidates when
/// there are already too many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorQuery {
    /// Brand.
    pub brand_id: BrandId,
    /// Visitor ids of the reported clicks.
    pub visitors: Vec<VisitorId>,
    /// Window start, Unix ms, inclusive.
    pub from_ms: u64,
    /// Registration time, Unix ms, inclusive.
    pub to_ms: u64,
    /// Row limit.
    pub limit: usize,
}

/// The fingerprint query for a registration, given the clicks found for its
/// reported ids; None when fingerprint matching is off or no reported click
/// identifies a device.
pub fn visitor_query(
    registration: &Registration,
    reported_found: &[FoundClick],
    rule_set: &RuleSet,
) -> Option<VisitorQuery> {
    let rules = rule_set.lookup(registration.brand_id, registration.country);
    if !rules.fingerprint().enabled() {
        return None;
    }
    let reported: BTreeSet<ClickId> = registration.reported_click_ids.iter().copied().collect();
    let visitors = devices(registration, reported_found, &reported);
    if visitors.is_empty() {
        return None;
    }
    Some(VisitorQuery {
        brand_id: registration.brand_id,
        visitors: visitors.into_iter().collect(),
        from_ms: registration
            .registered_at_ms
            .saturating_sub(rules.window().as_ms()),
        to_ms: registration.registered_at_ms,
        limit: usize::from(rules.fingerprint().max_extra_touchpoints()) + reported.len() + 1,
    })
}

/// Fingerprints of the reported clicks that exist, are of the brand and human.
fn devices(
    registration: &Registration,
    found: &[FoundClick],
    reported: &BTreeSet<ClickId>,
) -> BTreeSet<VisitorId> {
    found
        .iter()
        .filter(|c| {
            reported.contains(&c.click_id) && c.brand_id == registration.brand_id && !c.is_bot
        })
        .filter_map(|c| c.visitor_id)
        .collect()
}

/// Decides the attribution of `registration` under the rules `rule_set`
/// gives for its brand and country.
///
/// `found` holds every click the IO layer found: those with the reported ids
/// (whatever their brand) and the results of the [`visitor_query`]; it
/// may contain extra or repeated clicks, every condition is checked here.
/// `traffic` needs the traffic types of the affiliate and sub-affiliate
/// accounts of those clicks.
pub fn attribute(
    registration: &Registration,
    found: &[FoundClick],
    traffic: &TrafficTypes,
    rule_set: &RuleSet,
) -> Decision {
    let rules = rule_set.lookup(registration.brand_id, registration.country);
    attribute_with(registration, found, traffic, rules)
}

/// [`attribute`] with the rules already looked up (they must be
/// `rule_set.lookup(brand, country)` for the result to be truthful).
pub fn attribute_with(
    registration: &Registration,
    found: &[FoundClick],
    traffic: &TrafficTypes,
    rules: &Rules,
) -> Decision {
    let window_ms = rules.window().as_ms();
    let reg_ms = registration.registered_at_ms;
    let mut by_id: BTreeMap<ClickId, &FoundClick> = BTreeMap::new();
    for c in found {
        by_id.entry(c.click_id).or_insert(c);
    }

    // 1. The reported click ids.
    let mut seen = BTreeSet::new();
    let mut reported = Vec::new();
    let mut candidates: Vec<(&FoundClick, Origin)> = Vec::new();
    for id in &registration.reported_click_ids {
        if !seen.insert(*id) {
            continue;
        }
        let check = match by_id.get(id) {
            None => ClickCheck::NotFound,
            Some(c) if c.brand_id != registration.brand_id => ClickCheck::OtherBrand,
            Some(c) if c.is_bot => ClickCheck::Bot,
            Some(c) => match place(reg_ms, c.clicked_at_ms(), window_ms) {
                Placement::Inside => {
                    candidates.push((c, Origin::Reported));
                    ClickCheck::Touchpoint
                }
                Placement::TooOld(by_ms) => ClickCheck::OutsideWindow { by_ms },
                Placement::AfterRegistration(by_ms) => ClickCheck::AfterRegistration { by_ms },
            },
        };
        reported.push(ReportedClick {
            click_id: *id,
            check,
        });
    }

    // 2–3. The device and its other clicks.
    let fingerprint = if !rules.fingerprint().enabled() {
        FingerprintOutcome::Disabled
    } else {
        let device = devices(registration, found, &seen);
        if device.is_empty() {
            FingerprintOutcome::NoDevice
        } else {
            let matches: Vec<&FoundClick> = by_id
                .values()
                .copied()
                .filter(|c| {
                    !seen.contains(&c.click_id)
                        && c.brand_id == registration.brand_id
                        && !c.is_bot
                        && c.visitor_id.is_some_and(|v| device.contains(&v))
                        && place(reg_ms, c.clicked_at_ms(), window_ms) == Placement::Inside
                })
                .collect();
            let count = u32::try_from(matches.len()).unwrap_or(u32::MAX);
            let max = rules.fingerprint().max_extra_touchpoints();
            if count > u32::from(max) {
                FingerprintOutcome::TooMany {
                    candidates: count,
                    max,
                }
            } else {
                let mut duplicates_skipped = 0;
                let mut added = 0;
                for c in matches {
                    if c.is_duplicate {
                        duplicates_skipped += 1;
                    } else {
                        added += 1;
                        candidates.push((c, Origin::FingerprintMatch));
                    }
                }
                FingerprintOutcome::Matched {
                    added,
                    duplicates_skipped,
                }
            }
        }
    };

    // 4. Order: click time, then click id text.
    candidates.sort_by(|(a, _), (b, _)| {
        (a.clicked_at_ms(), a.click_id.to_string())
            .cmp(&(b.clicked_at_ms(), b.click_id.to_string()))
    });

    // 5. Eligibility.
    let mut eligible = Vec::new();
    let mut excluded = Vec::new();
    for (c, origin) in candidates {
        match ineligibility(c, rules.eligibility(), traffic) {
            None => eligible.push((c, origin)),
            Some(why) => excluded.push(ExcludedTouchpoint {
                click_id: c.click_id,
                affiliate_id: c.affiliate_id,
                sub_affiliate_id: c.sub_affiliate_id,
                origin,
                why,
            }),
        }
    }

    let basis = Basis {
        brand_id: registration.brand_id,
        country: registration.country,
        registered_at_ms: reg_ms,
        jurisdiction: rules.jurisdiction().cloned(),
        rules: rules.source().clone(),
        window_days: rules.window().days(),
        reported,
        excluded,
        fingerprint,
    };

    if eligible.is_empty() {
        let reason = unattributed_reason(&basis);
        return Decision::Unattributed(Unattributed { basis, reason });
    }

    let model = rules.model();
    let times: Vec<u64> = eligible.iter().map(|(c, _)| c.clicked_at_ms()).collect();
    let shares = model.split(&times);
    let touchpoints: Vec<Touchpoint> = eligible
        .iter()
        .zip(shares)
        .map(|((c, origin), credit)| Touchpoint {
            click_id: c.click_id,
            clicked_at_ms: c.clicked_at_ms(),
            affiliate_id: c.affiliate_id,
            sub_affiliate_id: c.sub_affiliate_id,
            campaign_id: c.campaign_id,
            link_code: c.link_code.clone(),
            origin: *origin,
            credit,
        })
        .collect();
    let credits = merge(&touchpoints);
    Decision::Attributed(Attribution {
        basis,
        model,
        touchpoints,
        credits,
        status: AttributionStatus::PendingKyc,
    })
}

fn ineligibility(
    click: &FoundClick,
    rules: &Eligibility,
    traffic: &TrafficTypes,
) -> Option<Ineligibility> {
    if click.quarantined {
        return Some(Ineligibility::QuarantinedForFraud);
    }
    let accounts = click
        .sub_affiliate_id
        .into_iter()
        .chain(std::iter::once(click.affiliate_id));
    for account in accounts {
        match traffic.of(account) {
            None if rules.exclude_undeclared() => {
                return Some(Ineligibility::Undeclared { account });
            }
            None => {}
            Some(types) => {
                if let Some(t) = types.intersection(rules.excluded_traffic_types()).next() {
                    return Some(Ineligibility::TrafficType {
                        account,
                        traffic_type: t.clone(),
                    });
                }
            }
        }
    }
    None
}

fn unattributed_reason(basis: &Basis) -> UnattributedReason {
    if !basis.excluded.is_empty() {
        return UnattributedReason::NoEligibleAffiliate;
    }
    // The nearest miss of the window, if any reported click got that far.
    let nearest = basis
        .reported
        .iter()
        .filter_map(|r| match r.check {
            ClickCheck::OutsideWindow { by_ms } => Some((by_ms, r.click_id, false)),
            ClickCheck::AfterRegistration { by_ms } => Some((by_ms, r.click_id, true)),
            _ => None,
        })
        .min_by_key(|(by_ms, _, _)| *by_ms);
    if let Some((by_ms, click_id, after)) = nearest {
        return if after {
            UnattributedReason::ClickAfterRegistration { click_id, by_ms }
        } else {
            UnattributedReason::OutsideWindow {
                click_id,
                by_ms,
                window_days: basis.window_days,
            }
        };
    }
    if basis.reported.iter().any(|r| r.check == ClickCheck::Bot) {
        return UnattributedReason::OnlyBotClicks;
    }
    if basis
        .reported
        .iter()
        .any(|r| r.check == ClickCheck::OtherBrand)
    {
        return UnattributedReason::ClickOfAnotherBrand;
    }
    if basis.reported.is_empty() {
        UnattributedReason::NoClickReported
    } else {
        UnattributedReason::ClickNotFound
    }
}

fn merge(touchpoints: &[Touchpoint]) -> Vec<AffiliateCredit> {
    let mut credits: Vec<AffiliateCredit> = Vec::new();
    for t in touchpoints {
        match credits
            .iter_mut()
            .find(|c| c.affiliate_id == t.affiliate_id && c.sub_affiliate_id == t.sub_affiliate_id)
        {
            Some(c) => {
                c.credit = Bps::share(c.credit.get() + t.credit.get())
                    .unwrap_or_else(|_| unreachable!("credits sum to at most 10 000"));
                c.touchpoints += 1;
            }
            None => credits.push(AffiliateCredit {
                affiliate_id: t.affiliate_id,
                sub_affiliate_id: t.sub_affiliate_id,
                credit: t.credit,
                touchpoints: 1,
            }),
        }
    }
    credits.retain(|c| c.credit.get() > 0);
    credits
}
