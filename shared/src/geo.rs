//! Geo rules: whether a click from a country may reach a link's brand.
//!
//! Owns the decision (allow, or block with a reason) from a link's own
//! allow/block lists and its brand's jurisdiction profile. Does not read
//! requests or headers: the caller supplies the country.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::country::CountryCode;

/// The regulatory profile of a brand: which countries it may not serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JurisdictionProfile {
    /// A label such as `UKGC`, `MGA`, `Curacao`.
    pub name: String,
    /// Countries the brand's licence does not allow it to serve.
    #[serde(default)]
    pub restricted_countries: BTreeSet<CountryCode>,
    /// Whether a click whose country is unknown (`XX`, absent) or a Tor exit
    /// (`T1`) is blocked. Regulated brands should fail closed: default `true`.
    #[serde(default = "default_true")]
    pub block_unknown_country: bool,
}

fn default_true() -> bool {
    true
}

/// A link's own country lists, on top of its brand's jurisdiction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkGeoRules {
    /// If not empty, only these countries may pass.
    #[serde(default)]
    pub allowed_countries: BTreeSet<CountryCode>,
    /// These countries never pass.
    #[serde(default)]
    pub blocked_countries: BTreeSet<CountryCode>,
}

/// Why a click was blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeoBlockReason {
    /// The brand's jurisdiction profile restricts the country.
    JurisdictionRestricted,
    /// The link blocks the country.
    LinkBlocked,
    /// The link has an allow-list without the country.
    NotInLinkAllowList,
    /// The country is unknown or a Tor exit and the jurisdiction fails closed.
    UnknownCountry,
}

impl GeoBlockReason {
    /// Stable text form, as stored in ClickHouse.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::JurisdictionRestricted => "jurisdiction_restricted",
            Self::LinkBlocked => "link_blocked",
            Self::NotInLinkAllowList => "not_in_link_allow_list",
            Self::UnknownCountry => "unknown_country",
        }
    }
}

/// The outcome of the geo check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoDecision {
    /// The click may proceed.
    Allowed,
    /// The click must be answered with HTTP 451.
    Blocked(GeoBlockReason),
}

/// Decides whether a click from `country` (None when the runtime did not say)
/// may reach a link with `rules` of a brand under `jurisdiction`.
///
/// Order: jurisdiction restrictions first (a licence condition no link can
/// override), then unknown countries, then the link's block list, then its
/// allow list.
pub fn decide(
    country: Option<CountryCode>,
    rules: &LinkGeoRules,
    jurisdiction: &JurisdictionProfile,
) -> GeoDecision {
    let country = country.unwrap_or(CountryCode::UNKNOWN);
    if jurisdiction.restricted_countries.contains(&country) {
        return GeoDecision::Blocked(GeoBlockReason::JurisdictionRestricted);
    }
    if !country.is_geographic() && jurisdiction.block_unknown_country {
        return GeoDecision::Blocked(GeoBlockReason::UnknownCountry);
    }
    if rules.blocked_countries.contains(&country) {
        return GeoDecision::Blocked(GeoBlockReason::LinkBlocked);
    }
    if !rules.allowed_countries.is_empty() && !rules.allowed_countries.contains(&country) {
        return GeoDecision::Blocked(GeoBlockReason::NotInLinkAllowList);
    }
    GeoDecision::Allowed
}

/// Decides for a request whose country nobody vouches for (the edge ignored
/// the visitor's own location headers because they did not come from the
/// trusted proxy): it might come from anywhere, including a restricted
/// country, so it is blocked as [`GeoBlockReason::UnknownCountry`] whenever
/// anything restricts the link: the jurisdiction restricts a country or
/// fails closed on unknown ones, or the link has a block or an allow list.
/// Only a link that may be served everywhere lets it pass.
///
/// Stricter than `decide(None, ..)`, which lets an unknown country through
/// when the jurisdiction opted out of failing closed: that opt-out is about
/// visitors the geolocation could not place, not about requests that went
/// around it.
pub fn decide_unverified(rules: &LinkGeoRules, jurisdiction: &JurisdictionProfile) -> GeoDecision {
    let restricts_anything = jurisdiction.block_unknown_country
        || !jurisdiction.restricted_countries.is_empty()
        || !rules.blocked_countries.is_empty()
        || !rules.allowed_countries.is_empty();
    if restricts_anything {
        GeoDecision::Blocked(GeoBlockReason::UnknownCountry)
    } else {
        GeoDecision::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str) -> CountryCode {
        CountryCode::parse(code).expect("valid test country")
    }

    fn set(codes: &[&str]) -> BTreeSet<CountryCode> {
        codes.iter().map(|x| c(x)).collect()
    }

    fn ukgc() -> JurisdictionProfile {
        JurisdictionProfile {
            name: "UKGC".into(),
            restricted_countries: set(&["US", "FR"]),
            block_unknown_country: true,
        }
    }

    #[test]
    fn a_country_restricted_by_the_jurisdiction_is_blocked_even_if_the_link_allows_it() {
        let rules = LinkGeoRules {
            allowed_countries: set(&["US", "GB"]),
            ..Default::default()
        };
        assert_eq!(
            decide(Some(c("US")), &rules, &ukgc()),
            GeoDecision::Blocked(GeoBlockReason::JurisdictionRestricted)
        );
        assert_eq!(decide(Some(c("GB")), &rules, &ukgc()), GeoDecision::Allowed);
    }

    #[test]
    fn the_link_block_list_and_allow_list_apply_on_top() {
        let rules = LinkGeoRules {
            allowed_countries: set(&["DE", "AT"]),
            blocked_countries: set(&["AT"]),
        };
        assert_eq!(decide(Some(c("DE")), &rules, &ukgc()), GeoDecision::Allowed);
        assert_eq!(
            decide(Some(c("AT")), &rules, &ukgc()),
            GeoDecision::Blocked(GeoBlockReason::LinkBlocked)
        );
        assert_eq!(
            decide(Some(c("SE")), &rules, &ukgc()),
            GeoDecision::Blocked(GeoBlockReason::NotInLinkAllowList)
        );
    }

    #[test]
    fn unknown_and_tor_traffic_fails_closed_unless_the_jurisdiction_opts_out() {
        let rules = LinkGeoRules::default();
        for country in [None, Some(CountryCode::UNKNOWN), Some(CountryCode::TOR)] {
            assert_eq!(
                decide(country, &rules, &ukgc()),
                GeoDecision::Blocked(GeoBlockReason::UnknownCountry)
            );
        }
        let lenient = JurisdictionProfile {
            block_unknown_country: false,
            ..ukgc()
        };
        assert_eq!(decide(None, &rules, &lenient), GeoDecision::Allowed);
    }

    #[test]
    fn an_unverified_location_passes_only_where_nothing_is_restricted() {
        let open = JurisdictionProfile {
            name: "open".into(),
            restricted_countries: BTreeSet::new(),
            block_unknown_country: false,
        };
        let blocked = GeoDecision::Blocked(GeoBlockReason::UnknownCountry);
        assert_eq!(
            decide_unverified(&LinkGeoRules::default(), &open),
            GeoDecision::Allowed
        );
        // A jurisdiction that lets unknown countries through still keeps
        // unverified requests out once it restricts a country.
        let lenient = JurisdictionProfile {
            block_unknown_country: false,
            ..ukgc()
        };
        assert_eq!(
            decide(None, &LinkGeoRules::default(), &lenient),
            GeoDecision::Allowed
        );
        assert_eq!(
            decide_unverified(&LinkGeoRules::default(), &lenient),
            blocked
        );
        assert_eq!(
            decide_unverified(&LinkGeoRules::default(), &ukgc()),
            blocked
        );
        let fails_closed = JurisdictionProfile {
            block_unknown_country: true,
            ..open.clone()
        };
        assert_eq!(
            decide_unverified(&LinkGeoRules::default(), &fails_closed),
            blocked
        );
        for rules in [
            LinkGeoRules {
                blocked_countries: set(&["RU"]),
                ..Default::default()
            },
            LinkGeoRules {
                allowed_countries: set(&["DE"]),
                ..Default::default()
            },
        ] {
            assert_eq!(decide_unverified(&rules, &open), blocked);
        }
    }

    #[test]
    fn a_jurisdiction_profile_defaults_to_failing_closed() {
        let p: JurisdictionProfile =
            serde_json::from_str(r#"{"name":"MGA","restricted_countries":["us"]}"#)
                .expect("valid profile");
        assert!(p.block_unknown_country);
        assert!(p.restricted_countries.contains(&c("US")));
    }
}
