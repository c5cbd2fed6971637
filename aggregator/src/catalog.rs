//! The catalogue: brands (with their jurisdiction profile), affiliates (with
//! their parent, for sub-affiliates), campaigns and short links.
//!
//! Owns the entities, the rules for creating them, and an in-memory copy
//! that serves the edge's link lookups and the ingest consistency checks
//! without a ClickHouse round trip. ClickHouse (through [`crate::store`]) is
//! the source of truth: every write is stored before it is visible here, and
//! an instance that misses a link reloads from ClickHouse (at most once per
//! [`RELOAD_INTERVAL`]), so several aggregators converge. Knows nothing of
//! HTTP.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;
use std::time::Duration;

use clickstitch_shared::geo::{JurisdictionProfile, LinkGeoRules};
use clickstitch_shared::ip::IpStorage;
use clickstitch_shared::link::attribution_pair;
use clickstitch_shared::{AffiliateId, BrandId, CampaignId, Click, GeoBlock};
use clickstitch_shared::{LinkDefinition, LinkTemplate, ShortCode};

use crate::attribution::{TrafficType, TrafficTypes};
pub use crate::entities::catalog::{
    Affiliate, Brand, Campaign, Link, LinkGroup, Name, MAX_LINK_GROUP_LEN,
};
use crate::store::{Store, StoreError};
use crate::support::clock::now;
use crate::support::throttle::ReloadThrottle;

/// Minimum time between two reloads triggered by a cache miss.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Longest affiliate chain followed (a guard against corrupt data).
const MAX_CHAIN: usize = 16;

/// A validated request to create a brand.
#[derive(Debug, Clone)]
pub struct NewBrand {
    /// Name.
    pub name: Name,
    /// Jurisdiction.
    pub jurisdiction: JurisdictionProfile,
    /// IP policy.
    pub ip_storage: IpStorage,
    /// Visitor cookie allowed.
    pub visitor_cookie: bool,
    /// Player link group.
    pub player_link_group: LinkGroup,
}

/// A validated change to a brand's privacy settings; `None` keeps the
/// current value.
#[derive(Debug, Clone, Default)]
pub struct BrandChanges {
    /// New IP policy.
    pub ip_storage: Option<IpStorage>,
    /// Visitor cookie allowed.
    pub visitor_cookie: Option<bool>,
}

/// A validated request to create an affiliate.
#[derive(Debug, Clone)]
pub struct NewAffiliate {
    /// Name.
    pub name: Name,
    /// Parent, for a sub-affiliate.
    pub parent_id: Option<AffiliateId>,
    /// Traffic types.
    pub traffic_types: BTreeSet<TrafficType>,
}

/// A validated request to create a campaign.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    /// Brand.
    pub brand_id: BrandId,
    /// Name.
    pub name: Name,
}

/// A validated request to create a link.
#[derive(Debug, Clone)]
pub struct NewLink {
    /// Brand.
    pub brand_id: BrandId,
    /// Owner.
    pub owner_id: AffiliateId,
    /// Campaign.
    pub campaign_id: CampaignId,
    /// Destination.
    pub destination: LinkTemplate,
    /// Country lists.
    pub geo: LinkGeoRules,
}

/// Why a catalogue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A referenced entity does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request contradicts existing data.
    #[error("{0}")]
    Conflict(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Default)]
struct State {
    brands: HashMap<BrandId, Brand>,
    affiliates: HashMap<AffiliateId, Affiliate>,
    campaigns: HashMap<CampaignId, Campaign>,
    links: HashMap<ShortCode, Link>,
}

impl State {
    fn ancestors(&self, owner: AffiliateId) -> Vec<AffiliateId> {
        let mut chain = Vec::new();
        let mut current = self.affiliates.get(&owner).and_then(|a| a.parent_id);
        while let Some(parent) = current {
            if chain.len() >= MAX_CHAIN || chain.contains(&parent) || parent == owner {
                break;
            }
            chain.push(parent);
            current = self.affiliates.get(&parent).and_then(|a| a.parent_id);
        }
        chain
    }

    fn definition(&self, link: &Link) -> Option<LinkDefinition> {
        let brand = self.brands.get(&link.brand_id)?;
        let (affiliate_id, sub_affiliate_id) =
            attribution_pair(link.owner_id, &self.ancestors(link.owner_id));
        Some(LinkDefinition {
            code: link.code.clone(),
            brand_id: link.brand_id,
            affiliate_id,
            sub_affiliate_id,
            campaign_id: link.campaign_id,
            destination: link.destination.clone(),
            geo: link.geo.clone(),
            jurisdiction: brand.jurisdiction.clone(),
            ip_storage: brand.ip_storage,
            visitor_cookie: brand.visitor_cookie,
            version: link.version.max(brand.version),
        })
    }
}

/// The catalogue with its in-memory copy.
#[derive(Debug)]
pub struct Catalog {
    state: RwLock<State>,
    store: Store,
    reloads: ReloadThrottle,
}

impl Catalog {
    /// Loads the catalogue from ClickHouse.
    pub async fn load(store: Store) -> Result<Self, StoreError> {
        let catalog = Self {
            state: RwLock::new(State::default()),
            store,
            reloads: ReloadThrottle::new(RELOAD_INTERVAL),
        };
        catalog.reload().await?;
        Ok(catalog)
    }

    async fn reload(&self) -> Result<(), StoreError> {
        let snapshot = self.store.load_catalogue().await?;
        let state = State {
            brands: snapshot.brands.into_iter().map(|b| (b.id, b)).collect(),
            affiliates: snapshot.affiliates.into_iter().map(|a| (a.id, a)).collect(),
            campaigns: snapshot.campaigns.into_iter().map(|c| (c.id, c)).collect(),
            links: snapshot
                .links
                .into_iter()
                .map(|l| (l.code.clone(), l))
                .collect(),
        };
        *self.write_state() = state;
        Ok(())
    }

    /// Reloads unless another reload happened within [`RELOAD_INTERVAL`].
    async fn reload_if_stale(&self) -> Result<bool, StoreError> {
        self.reloads.run(|| self.reload()).await
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The edge's view of an active link, reloading once on a miss.
    pub async fn resolve_link(
        &self,
        code: &ShortCode,
    ) -> Result<Option<LinkDefinition>, StoreError> {
        if let Some(def) = self.active_definition(code) {
            return Ok(Some(def));
        }
        if self.reload_if_stale().await? {
            return Ok(self.active_definition(code));
        }
        Ok(None)
    }

    fn active_definition(&self, code: &ShortCode) -> Option<LinkDefinition> {
        let state = self.read_state();
        let link = state.links.get(code).filter(|l| l.active)?;
        state.definition(link)
    }

    /// A link by code (active or not).
    pub fn link(&self, code: &ShortCode) -> Option<Link> {
        self.read_state().links.get(code).cloned()
    }

    /// How a brand's IPs are stored (`Full` for an unknown brand: its
    /// events are refused elsewhere).
    pub fn ip_storage(&self, brand: BrandId) -> IpStorage {
        self.read_state()
            .brands
            .get(&brand)
            .map_or(IpStorage::Full, |b| b.ip_storage)
    }

    /// The brand's player link group (the shared one for an unknown brand).
    pub fn link_group(&self, brand: BrandId) -> LinkGroup {
        self.read_state()
            .brands
            .get(&brand)
            .map(|b| b.player_link_group.clone())
            .unwrap_or_default()
    }

    /// All brands.
    pub fn brands(&self) -> Vec<Brand> {
        let mut v: Vec<_> = self.read_state().brands.values().cloned().collect();
        v.sort_by_key(|b| b.id);
        v
    }

    /// All affiliates.
    pub fn affiliates(&self) -> Vec<Affiliate> {
        let mut v: Vec<_> = self.read_state().affiliates.values().cloned().collect();
        v.sort_by_key(|a| a.id);
        v
    }

    /// The declared traffic types of these affiliates (unknown ids are left
    /// undeclared).
    pub fn traffic_types(&self, affiliates: impl IntoIterator<Item = AffiliateId>) -> TrafficTypes {
        let state = self.read_state();
        let mut out = TrafficTypes::new();
        for id in affiliates {
            if let Some(a) = state.affiliates.get(&id) {
                out.declare(id, a.traffic_types.iter().cloned());
            }
        }
        out
    }

    /// All campaigns.
    pub fn campaigns(&self) -> Vec<Campaign> {
        let mut v: Vec<_> = self.read_state().campaigns.values().cloned().collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// Creates a brand.
    pub async fn create_brand(&self, new: NewBrand) -> Result<Brand, CatalogError> {
        let (secs, ms) = now();
        let brand = Brand {
            id: BrandId::from(uuid::Uuid::now_v7()),
            name: new.name,
            jurisdiction: new.jurisdiction,
            ip_storage: new.ip_storage,
            visitor_cookie: new.visitor_cookie,
            player_link_group: new.player_link_group,
            created_at: secs,
            version: ms,
        };
        self.store.save_brand(&brand).await?;
        self.write_state().brands.insert(brand.id, brand.clone());
        Ok(brand)
    }

    /// Changes a brand's privacy settings: stores a new version (which also
    /// raises the version of its links' definitions, so the edge's cached
    /// copies are replaced at their next revalidation).
    pub async fn update_brand(
        &self,
        id: BrandId,
        changes: BrandChanges,
    ) -> Result<Brand, CatalogError> {
        let current = self.read_state().brands.get(&id).cloned();
        let current = match current {
            Some(b) => b,
            None => {
                // Created through another instance?
                self.reload_if_stale().await?;
                self.read_state()
                    .brands
                    .get(&id)
                    .cloned()
                    .ok_or(CatalogError::NotFound("brand"))?
            }
        };
        let (_, ms) = now();
        let brand = Brand {
            ip_storage: changes.ip_storage.unwrap_or(current.ip_storage),
            visitor_cookie: changes.visitor_cookie.unwrap_or(current.visitor_cookie),
            version: ms.max(current.version + 1),
            ..current
        };
        self.store.save_brand(&brand).await?;
        self.write_state().brands.insert(brand.id, brand.clone());
        Ok(brand)
    }

    /// Creates an affiliate; its parent must exist.
    pub async fn create_affiliate(&self, new: NewAffiliate) -> Result<Affiliate, CatalogError> {
        if let Some(parent) = new.parent_id {
            if !self.read_state().affiliates.contains_key(&parent) {
                return Err(CatalogError::NotFound("parent affiliate"));
            }
        }
        let (secs, ms) = now();
        let affiliate = Affiliate {
            id: AffiliateId::from(uuid::Uuid::now_v7()),
            name: new.name,
            parent_id: new.parent_id,
            traffic_types: new.traffic_types,
            created_at: secs,
            version: ms,
        };
        self.store.save_affiliate(&affiliate).await?;
        self.write_state()
            .affiliates
            .insert(affiliate.id, affiliate.clone());
        Ok(affiliate)
    }

    /// Creates a campaign of an existing brand.
    pub async fn create_campaign(&self, new: NewCampaign) -> Result<Campaign, CatalogError> {
        if !self.read_state().brands.contains_key(&new.brand_id) {
            return Err(CatalogError::NotFound("brand"));
        }
        let (secs, ms) = now();
        let campaign = Campaign {
            id: CampaignId::from(uuid::Uuid::now_v7()),
            brand_id: new.brand_id,
            name: new.name,
            created_at: secs,
            version: ms,
        };
        self.store.save_campaign(&campaign).await?;
        self.write_state()
            .campaigns
            .insert(campaign.id, campaign.clone());
        Ok(campaign)
    }

    /// Creates a link with a fresh random code.
    pub async fn create_link(&self, new: NewLink) -> Result<Link, CatalogError> {
        let code = {
            let state = self.read_state();
            if !state.brands.contains_key(&new.brand_id) {
                return Err(CatalogError::NotFound("brand"));
            }
            if !state.affiliates.contains_key(&new.owner_id) {
                return Err(CatalogError::NotFound("affiliate"));
            }
            match state.campaigns.get(&new.campaign_id) {
                None => return Err(CatalogError::NotFound("campaign")),
                Some(c) if c.brand_id != new.brand_id => {
                    return Err(CatalogError::Conflict(
                        "campaign belongs to another brand".into(),
                    ))
                }
                Some(_) => {}
            }
            fresh_code(|c| state.links.contains_key(c))
        };
        let (secs, ms) = now();
        let link = Link {
            code,
            brand_id: new.brand_id,
            owner_id: new.owner_id,
            campaign_id: new.campaign_id,
            destination: new.destination,
            geo: new.geo,
            active: true,
            created_at: secs,
            version: ms,
        };
        self.store.save_link(&link).await?;
        self.write_state()
            .links
            .insert(link.code.clone(), link.clone());
        Ok(link)
    }

    /// Checks that each record agrees with the link it names (brand, root
    /// affiliate, sub-affiliate, campaign). Returns, per record, `None` when
    /// consistent or the reason it is not. Reloads once if a link is unknown.
    pub async fn check_records(
        &self,
        clicks: &[Click],
        blocks: &[GeoBlock],
    ) -> Result<(Vec<Option<String>>, Vec<Option<String>>), StoreError> {
        let unknown = |state: &State| {
            clicks
                .iter()
                .map(|c| &c.link_code)
                .chain(blocks.iter().map(|b| &b.link_code))
                .any(|code| !state.links.contains_key(code))
        };
        if unknown(&self.read_state()) {
            self.reload_if_stale().await?;
        }
        let state = self.read_state();
        let check = |code: &ShortCode,
                     brand: BrandId,
                     campaign: CampaignId,
                     aff: AffiliateId,
                     sub: Option<Option<AffiliateId>>| {
            let Some(link) = state.links.get(code) else {
                return Some(format!("unknown link_code {code}"));
            };
            let Some(def) = state.definition(link) else {
                return Some("link's brand is missing".to_owned());
            };
            if def.brand_id != brand {
                return Some("brand_id does not match the link".to_owned());
            }
            if def.campaign_id != campaign {
                return Some("campaign_id does not match the link".to_owned());
            }
            // The chain may have changed since the edge cached the link; the
            // owner must still be in it.
            let chain: BTreeSet<AffiliateId> = std::iter::once(link.owner_id)
                .chain(state.ancestors(link.owner_id))
                .collect();
            if !chain.contains(&aff) || sub.flatten().is_some_and(|s| s != link.owner_id) {
                return Some("affiliate does not match the link".to_owned());
            }
            None
        };
        let click_checks = clicks
            .iter()
            .map(|c| {
                check(
                    &c.link_code,
                    c.brand_id,
                    c.campaign_id,
                    c.affiliate_id,
                    Some(c.sub_affiliate_id),
                )
            })
            .collect();
        let block_checks = blocks
            .iter()
            .map(|b| {
                check(
                    &b.link_code,
                    b.brand_id,
                    b.campaign_id,
                    b.affiliate_id,
                    None,
                )
            })
            .collect();
        Ok((click_checks, block_checks))
    }
}

/// Draws random codes until one is free (collisions are ~never: 62^10).
fn fresh_code(taken: impl Fn(&ShortCode) -> bool) -> ShortCode {
    use rand::RngCore;
    let mut rng = rand::rng();
    loop {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        if let Some(code) = ShortCode::from_random_bytes(&bytes) {
            if !taken(&code) {
                return code;
            }
        }
    }
}

/// Country set helper for DTO parsing.
pub fn country_set(codes: &[String]) -> Result<BTreeSet<clickstitch_shared::CountryCode>, String> {
    codes
        .iter()
        .map(|c| clickstitch_shared::CountryCode::parse(c).map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            Name::parse("  Lucky Casino ").map(|n| n.to_string()),
            Ok("Lucky Casino".into())
        );
        assert!(Name::parse("").is_err());
        assert!(Name::parse(&"x".repeat(201)).is_err());
        assert!(Name::parse("a\u{0}b").is_err());
    }

    #[test]
    fn fresh_codes_avoid_taken_ones() {
        let first = fresh_code(|_| false);
        let second = fresh_code(|c| *c == first);
        assert_ne!(first, second);
        assert_eq!(first.as_str().len(), ShortCode::GENERATED_LEN);
    }
}
