//! What an incremental commission run keeps between runs: every player's
//! RevShare contributions and the problems standing, so that the next run
//! recomputes only the players whose facts changed.
//!
//! Owns the bookkeeping of [`Kept`]: which affiliates a set of changed
//! players touches (the scope of an [`super::Engine::run_scoped`] call),
//! the contributions of everyone else in that scope, and folding a run's
//! output back in. Pure: no IO and no clock; the commission job decides
//! when to run incrementally and when to reconcile in full.

use std::collections::{BTreeMap, BTreeSet};

use clickstitch_shared::AffiliateId;

use super::engine::EngineOutput;
use super::facts::PlayerId;
use super::ledger::Slot;
use super::problem::RunProblem;
use super::worlds::Contribution;

/// Whether `slot` belongs to the scope of a run over `changed` players
/// and the RevShare of `affiliates`: their CPA slots, those affiliates'
/// RevShare slots, and overrides on either. The prior entries passed to
/// [`super::Engine::run_scoped`] must be exactly those in scope.
pub fn in_scope(
    slot: &Slot,
    changed: &BTreeSet<PlayerId>,
    affiliates: &BTreeSet<AffiliateId>,
) -> bool {
    match slot {
        Slot::Override { source, .. } => in_scope(source, changed, affiliates),
        Slot::Cpa { player, .. } | Slot::CpaClawback { player, .. } => changed.contains(player),
        Slot::RevShare { affiliate, .. } | Slot::RevShareClawback { affiliate, .. } => {
            affiliates.contains(affiliate)
        }
        Slot::Payout { .. } => false,
    }
}

/// Contributions and standing problems of the last runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept {
    by_affiliate: BTreeMap<AffiliateId, BTreeMap<PlayerId, Vec<Contribution>>>,
    affiliates_of: BTreeMap<PlayerId, BTreeSet<AffiliateId>>,
    player_problems: BTreeMap<PlayerId, Vec<RunProblem>>,
    other_problems: BTreeMap<AffiliateId, Vec<RunProblem>>,
}

impl Kept {
    /// What a full run leaves: every contribution and problem of `output`.
    pub fn from_full(output: &EngineOutput) -> Self {
        let mut kept = Self::default();
        kept.fold(&BTreeSet::new(), &BTreeSet::new(), output);
        kept
    }

    /// The affiliates whose RevShare a run over `changed` players must
    /// recompute: those `credited` by their current facts and those they
    /// contributed to before.
    pub fn scope(
        &self,
        changed: &BTreeSet<PlayerId>,
        credited: impl IntoIterator<Item = AffiliateId>,
    ) -> BTreeSet<AffiliateId> {
        let mut out: BTreeSet<AffiliateId> = credited.into_iter().collect();
        for p in changed {
            if let Some(a) = self.affiliates_of.get(p) {
                out.extend(a.iter().copied());
            }
        }
        out
    }

    /// The kept contributions to `affiliates` of every player not in
    /// `changed`.
    pub fn others(
        &self,
        affiliates: &BTreeSet<AffiliateId>,
        changed: &BTreeSet<PlayerId>,
    ) -> Vec<Contribution> {
        affiliates
            .iter()
            .filter_map(|a| self.by_affiliate.get(a))
            .flat_map(|players| players.iter())
            .filter(|(p, _)| !changed.contains(p))
            .flat_map(|(_, cs)| cs.iter().cloned())
            .collect()
    }

    /// Folds in the output of a run over `changed` players whose scope was
    /// `affiliates`: their contributions and problems replace the kept
    /// ones, and so do the affiliate-level problems of the scope.
    pub fn fold(
        &mut self,
        changed: &BTreeSet<PlayerId>,
        affiliates: &BTreeSet<AffiliateId>,
        output: &EngineOutput,
    ) {
        for p in changed {
            for a in self.affiliates_of.remove(p).unwrap_or_default() {
                if let Some(players) = self.by_affiliate.get_mut(&a) {
                    players.remove(p);
                    if players.is_empty() {
                        self.by_affiliate.remove(&a);
                    }
                }
            }
            self.player_problems.remove(p);
        }
        for a in affiliates {
            self.other_problems.remove(a);
        }
        for c in &output.contributions {
            self.by_affiliate
                .entry(c.affiliate)
                .or_default()
                .entry(c.player)
                .or_default()
                .push(c.clone());
            self.affiliates_of
                .entry(c.player)
                .or_default()
                .insert(c.affiliate);
        }
        for p in &output.problems {
            match (p.player, p.affiliate) {
                (Some(player), _) => self
                    .player_problems
                    .entry(player)
                    .or_default()
                    .push(p.clone()),
                (None, Some(affiliate)) => {
                    let list = self.other_problems.entry(affiliate).or_default();
                    if !list.contains(p) {
                        list.push(p.clone());
                    }
                }
                (None, None) => {}
            }
        }
    }

    /// Every standing problem, sorted.
    pub fn problems(&self) -> Vec<RunProblem> {
        let mut out: Vec<RunProblem> = self
            .player_problems
            .values()
            .chain(self.other_problems.values())
            .flatten()
            .cloned()
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Contributions kept (for sizing).
    pub fn len(&self) -> usize {
        self.by_affiliate
            .values()
            .flat_map(BTreeMap::values)
            .map(Vec::len)
            .sum()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.by_affiliate.is_empty()
    }
}
