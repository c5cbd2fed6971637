//! What the edge needs to know about a short link to serve it.
//!
//! Owns [`LinkDefinition`] and how its affiliate chain maps to the
//! `affiliate_id` / `sub_affiliate_id` pair written into clicks and
//! destinations. The aggregator builds definitions from its catalogue; the
//! edge caches them. Neither side's storage is known here.

use serde::{Deserialize, Serialize};

use crate::geo::{JurisdictionProfile, LinkGeoRules};
use crate::ids::{AffiliateId, BrandId, CampaignId, ShortCode};
use crate::ip::IpStorage;
use crate::template::LinkTemplate;

/// A short link as served by the edge. Every field is validated on
/// deserialisation, so a definition that parses is safe to serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkDefinition {
    /// The public code.
    pub code: ShortCode,
    /// The brand the link sends players to.
    pub brand_id: BrandId,
    /// The account the brand contracts with: the top of the link owner's
    /// affiliate chain (the owner itself when it has no parent).
    pub affiliate_id: AffiliateId,
    /// The link's owner when it is a sub-affiliate (has a parent), else None.
    pub sub_affiliate_id: Option<AffiliateId>,
    /// The campaign.
    pub campaign_id: CampaignId,
    /// Where the player goes.
    pub destination: LinkTemplate,
    /// The link's own country lists.
    #[serde(default)]
    pub geo: LinkGeoRules,
    /// The brand's jurisdiction profile.
    pub jurisdiction: JurisdictionProfile,
    /// How much of the player's IP the brand allows us to store.
    #[serde(default)]
    pub ip_storage: IpStorage,
    /// Whether the brand allows the edge's first-party visitor cookie
    /// (`cs_vid`, a random [`crate::fingerprint::VisitorId`]). When false the
    /// edge neither reads nor sets it and clicks carry no visitor id.
    /// Defaults to true, so definitions from aggregators that predate the
    /// setting still parse.
    #[serde(default = "visitor_cookie_default")]
    pub visitor_cookie: bool,
    /// Monotonic version of this definition (ms since epoch of last change).
    pub version: u64,
}

fn visitor_cookie_default() -> bool {
    true
}

/// Maps a link owner and its ancestors (nearest parent first) to the
/// `(affiliate_id, sub_affiliate_id)` pair: the root account and, when the
/// owner is not the root, the owner.
pub fn attribution_pair(
    owner: AffiliateId,
    ancestors: &[AffiliateId],
) -> (AffiliateId, Option<AffiliateId>) {
    match ancestors.last() {
        None => (owner, None),
        Some(root) => (*root, Some(owner)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aff(n: u128) -> AffiliateId {
        AffiliateId::from(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn a_top_level_affiliate_has_no_sub_affiliate() {
        assert_eq!(attribution_pair(aff(1), &[]), (aff(1), None));
    }

    #[test]
    fn a_sub_affiliate_link_names_the_root_account_and_the_owner() {
        assert_eq!(
            attribution_pair(aff(3), &[aff(2), aff(1)]),
            (aff(1), Some(aff(3)))
        );
    }

    #[test]
    fn a_definition_with_an_unsafe_destination_does_not_deserialise() {
        let json = r#"{"code":"abcdefg1","brand_id":"0190a1b2-0000-7000-8000-000000000001",
            "affiliate_id":"0190a1b2-0000-7000-8000-000000000002","sub_affiliate_id":null,
            "campaign_id":"0190a1b2-0000-7000-8000-000000000003",
            "destination":"http://evil.example/","jurisdiction":{"name":"MGA"},"version":1}"#;
        assert!(serde_json::from_str::<LinkDefinition>(json).is_err());
        let ok = json.replace("http://evil.example/", "https://brand.example/");
        let def: LinkDefinition = serde_json::from_str(&ok).expect("valid");
        assert_eq!(def.destination.host(), "brand.example");
        // An older aggregator's answer has no `visitor_cookie`: allowed.
        assert!(def.visitor_cookie);
    }

    #[test]
    fn the_visitor_cookie_setting_round_trips() {
        let json = r#"{"code":"abcdefg1","brand_id":"0190a1b2-0000-7000-8000-000000000001",
            "affiliate_id":"0190a1b2-0000-7000-8000-000000000002","sub_affiliate_id":null,
            "campaign_id":"0190a1b2-0000-7000-8000-000000000003",
            "destination":"https://brand.example/","jurisdiction":{"name":"MGA"},
            "visitor_cookie":false,"version":1}"#;
        let def: LinkDefinition = serde_json::from_str(json).expect("valid");
        assert!(!def.visitor_cookie);
        let again: LinkDefinition =
            serde_json::from_str(&serde_json::to_string(&def).expect("json")).expect("valid");
        assert!(!again.visitor_cookie);
        assert_eq!(format!("{again:?}"), format!("{def:?}"));
    }
}
