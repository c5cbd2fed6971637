//! The catalogue's entities: brands, affiliates, campaigns and links, and
//! the validated names and link groups they carry. Plain data: the
//! [`crate::catalog`] service caches and changes them, the store persists
//! them; neither depends on the other through these types.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Serialize, Serializer};

use clickstitch_shared::geo::{JurisdictionProfile, LinkGeoRules};
use clickstitch_shared::ip::IpStorage;
use clickstitch_shared::{AffiliateId, BrandId, CampaignId, LinkTemplate, ShortCode};

use crate::attribution::TrafficType;

/// A display name: 1..=200 characters, no control characters, trimmed.
#[derive(Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// Parses a name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() || t.chars().count() > 200 {
            return Err("must be 1 to 200 characters".into());
        }
        if t.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(t.to_owned()))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({:?})", self.0)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A brand: one site of the operator, under one licence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Brand {
    /// Id.
    #[serde(rename = "brand_id")]
    pub id: BrandId,
    /// Display name.
    pub name: Name,
    /// The licence's restrictions.
    pub jurisdiction: JurisdictionProfile,
    /// IP storage policy.
    pub ip_storage: IpStorage,
    /// Whether the edge may keep its first-party visitor cookie (`cs_vid`)
    /// for this brand's players (consent; default true).
    pub visitor_cookie: bool,
    /// Which brands' registrations a `player_ref` links this brand's
    /// players with: the brands of the same group ([`LinkGroup`]).
    pub player_link_group: LinkGroup,
    /// Unix seconds.
    pub created_at: u32,
    /// Version (Unix ms of the last change).
    pub version: u64,
}

/// An affiliate account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Affiliate {
    /// Id.
    #[serde(rename = "affiliate_id")]
    pub id: AffiliateId,
    /// Display name.
    pub name: Name,
    /// The parent account when this is a sub-affiliate.
    #[serde(rename = "parent_affiliate_id")]
    pub parent_id: Option<AffiliateId>,
    /// The kinds of traffic the affiliate sends (attribution rules may
    /// exclude some per jurisdiction).
    pub traffic_types: BTreeSet<TrafficType>,
    /// Unix seconds.
    pub created_at: u32,
    /// Version.
    pub version: u64,
}

/// A campaign of one brand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Campaign {
    /// Id.
    #[serde(rename = "campaign_id")]
    pub id: CampaignId,
    /// Brand.
    pub brand_id: BrandId,
    /// Display name.
    pub name: Name,
    /// Unix seconds.
    pub created_at: u32,
    /// Version.
    pub version: u64,
}

/// A short link. Brand, owner and campaign never change after creation, so
/// a click always agrees with the link it came through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// Public code.
    pub code: ShortCode,
    /// Brand.
    pub brand_id: BrandId,
    /// The affiliate who owns the link.
    #[serde(rename = "owner_affiliate_id")]
    pub owner_id: AffiliateId,
    /// Campaign (of the same brand).
    pub campaign_id: CampaignId,
    /// Destination template.
    #[serde(rename = "destination_template")]
    pub destination: LinkTemplate,
    /// Country lists.
    #[serde(flatten)]
    pub geo: LinkGeoRules,
    /// Inactive links answer 404 at the edge.
    pub active: bool,
    /// Unix seconds.
    pub created_at: u32,
    /// Version.
    pub version: u64,
}

/// The group of brands among which a registration's `player_ref` links
/// players (docs/security.md, "Cross-brand players"): 0..=64 characters
/// of `[A-Za-z0-9_-]`. The empty group (the default) is the operator's
/// shared one; a brand whose players must never be linked to other brands'
/// gets a group of its own. Set when the brand is created, never changed
/// (it is part of every player id derived for the brand).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct LinkGroup(String);

/// Longest player link group.
pub const MAX_LINK_GROUP_LEN: usize = 64;

impl LinkGroup {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() > MAX_LINK_GROUP_LEN
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "must be at most {MAX_LINK_GROUP_LEN} characters of A-Z, a-z, 0-9, _ and -"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The group's name ('' for the operator's shared group).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
