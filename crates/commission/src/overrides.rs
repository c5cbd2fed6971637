//! Sub-affiliates: the affiliate tree (who is whose parent) and the
//! override amount an ancestor earns on a descendant's commission.
//!
//! Owns the tree's invariants — one parent per affiliate, no affiliate is
//! its own parent or ancestor (self-referral is impossible: such a tree
//! cannot be built) — and the override arithmetic: the ancestor `k` levels
//! up earns `rate_k` (from *its* deal version) of each of the descendant's
//! own commission slots (CPA, RevShare and their clawbacks; never of
//! another override, so overrides do not compound). The descendant's
//! amount is first converted into the ancestor's deal currency (FX table
//! of the activity month), then the rate applies, each step rounded
//! half-to-even. An override on a clawback is priced with the month of
//! what the clawback reverses, so it cancels the earlier override exactly.
//!
//! Must not pick the slots or write entries (that is [`super::engine`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use clickstitch_shared::AffiliateId;

use clickstitch_domain::money::{Bps, Currency, Money};

use super::fx::{FxBook, FxError};
use super::time::Month;

/// Why a tree was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// An affiliate named as its own parent.
    #[error("affiliate {0} cannot be its own parent (self-referral)")]
    SelfReferral(AffiliateId),
    /// An affiliate that would become its own ancestor.
    #[error("affiliate {0} would be its own ancestor (self-referral through a cycle)")]
    Cycle(AffiliateId),
    /// Two parents for one affiliate.
    #[error("affiliate {0} has two parents")]
    TwoParents(AffiliateId),
}

/// One parent link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Link {
    /// The sub-affiliate.
    pub child: AffiliateId,
    /// Its parent.
    pub parent: AffiliateId,
}

/// The sub-affiliate tree. JSON: `[{"child": "…", "parent": "…"}, …]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Link>", into = "Vec<Link>")]
pub struct AffiliateTree {
    parents: BTreeMap<AffiliateId, AffiliateId>,
}

impl TryFrom<Vec<Link>> for AffiliateTree {
    type Error = TreeError;
    fn try_from(links: Vec<Link>) -> Result<Self, TreeError> {
        Self::new(links)
    }
}

impl From<AffiliateTree> for Vec<Link> {
    fn from(t: AffiliateTree) -> Self {
        t.parents
            .into_iter()
            .map(|(child, parent)| Link { child, parent })
            .collect()
    }
}

impl AffiliateTree {
    /// Builds the tree, refusing self-referral, cycles and second parents
    /// (a repeated identical link is fine).
    pub fn new(links: impl IntoIterator<Item = Link>) -> Result<Self, TreeError> {
        let mut parents = BTreeMap::new();
        for l in links {
            if l.child == l.parent {
                return Err(TreeError::SelfReferral(l.child));
            }
            match parents.insert(l.child, l.parent) {
                Some(p) if p != l.parent => return Err(TreeError::TwoParents(l.child)),
                _ => {}
            }
        }
        let tree = Self { parents };
        for &start in tree.parents.keys() {
            let mut at = start;
            for _ in 0..=tree.parents.len() {
                match tree.parents.get(&at) {
                    Some(&p) if p == start => return Err(TreeError::Cycle(start)),
                    Some(&p) => at = p,
                    None => break,
                }
            }
        }
        Ok(tree)
    }

    /// The parent, if `affiliate` is a sub-affiliate.
    pub fn parent(&self, affiliate: AffiliateId) -> Option<AffiliateId> {
        self.parents.get(&affiliate).copied()
    }

    /// Parent, grandparent, … (never `affiliate` itself).
    pub fn ancestors(&self, affiliate: AffiliateId) -> Vec<AffiliateId> {
        let mut out = Vec::new();
        let mut at = affiliate;
        while let Some(p) = self.parent(at) {
            out.push(p);
            at = p;
        }
        out
    }
}

/// An override computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverrideAmount {
    /// The descendant's amount in the ancestor's currency.
    pub base: Money,
    /// `base × rate`.
    pub amount: Money,
    /// The FX version, if converted.
    pub fx_version: Option<u32>,
}

/// The override on `child_amount` at `rate`, in the ancestor's `currency`.
pub fn override_amount(
    child_amount: Money,
    currency: Currency,
    rate: Bps,
    month: Month,
    fx: &FxBook,
) -> Result<OverrideAmount, FxError> {
    let c = fx.convert(child_amount, currency, month)?;
    Ok(OverrideAmount {
        base: c.amount,
        amount: c.amount.apply(rate)?,
        fx_version: c.fx_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn a(n: u128) -> AffiliateId {
        AffiliateId::from(Uuid::from_u128(n))
    }

    fn link(child: u128, parent: u128) -> Link {
        Link {
            child: a(child),
            parent: a(parent),
        }
    }

    #[test]
    fn self_referral_is_refused_directly_and_through_a_cycle() {
        assert_eq!(
            AffiliateTree::new([link(1, 1)]),
            Err(TreeError::SelfReferral(a(1)))
        );
        assert!(matches!(
            AffiliateTree::new([link(1, 2), link(2, 3), link(3, 1)]),
            Err(TreeError::Cycle(_))
        ));
        assert_eq!(
            AffiliateTree::new([link(1, 2), link(1, 3)]),
            Err(TreeError::TwoParents(a(1)))
        );
        let json = r#"[{"child": "00000000-0000-0000-0000-000000000001", "parent": "00000000-0000-0000-0000-000000000001"}]"#;
        assert!(serde_json::from_str::<AffiliateTree>(json).is_err());
    }

    #[test]
    fn ancestors_are_listed_nearest_first() {
        let t = AffiliateTree::new([link(3, 2), link(2, 1), link(3, 2)]).expect("tree");
        assert_eq!(t.ancestors(a(3)), vec![a(2), a(1)]);
        assert!(t.ancestors(a(1)).is_empty());
    }
}
