//! RevShare inputs: each player's credited NGR as [`Contribution`]s, and
//! the three worlds of one affiliate built from them (see
//! [`super::engine`], "RevShare worlds").
//!
//! Owns the split between what depends on one player alone (a
//! contribution: the statement × the credit share, the worlds the player
//! belongs to) and the per-affiliate aggregation. A contribution is
//! computed once per run for the players that changed and kept for the
//! others (an incremental run aggregates kept and new ones alike), so the
//! aggregation must never look at anything but contributions. Pure.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use clickstitch_shared::{AffiliateId, BrandId};

use clickstitch_domain::money::{Bps, Money};

use super::facts::{Credit, PlayerFacts, PlayerId};
use super::ledger::{FormulaRef, PlayerNote, Reason};
use super::plan::Deal;
use super::revenue::NgrStatement;
use super::revshare::MonthNgr;
use super::time::Month;
use super::EngineError;

/// One player's NGR of one month at one brand, credited to one affiliate
/// whose deal has RevShare for it: the unit a RevShare is summed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution {
    /// The credited affiliate.
    pub affiliate: AffiliateId,
    /// The player.
    pub player: PlayerId,
    /// The brand.
    pub brand: BrandId,
    /// The activity month.
    pub month: Month,
    /// The statement's NGR × the credit share (player currency).
    pub credited: Money,
    /// The credit share, when the month is the player's first-deposit
    /// month (FTD tiers count it).
    pub ftd_share: Option<Bps>,
    /// KYC approved (including players voided later).
    pub in_final: bool,
    /// Final and not voided.
    pub in_net: bool,
    /// Awaiting KYC, not fraud.
    pub awaiting: bool,
    /// Why a final player is voided (fraud confirmed, KYC revoked).
    pub voided: Option<Reason>,
    /// The statement behind it.
    pub statement: Uuid,
    /// The attribution rules version.
    pub rules_version: String,
    /// The NGR formula version.
    pub formula: FormulaRef,
}

/// Which RevShare worlds one player belongs to (see the engine's docs).
#[derive(Debug, Clone)]
pub(super) struct Membership {
    pub(super) in_final: bool,
    pub(super) in_net: bool,
    pub(super) awaiting: bool,
    pub(super) voided: Option<Reason>,
}

/// The contributions of one player's statements to one credited
/// affiliate's RevShare (months whose deal version has RevShare for the
/// brand).
pub(super) fn contributions(
    deal: &Deal,
    f: &PlayerFacts,
    credit: &Credit,
    sts: &[NgrStatement],
    m: &Membership,
) -> Result<Vec<Contribution>, EngineError> {
    let Some(att) = f.attribution() else {
        return Ok(Vec::new());
    };
    let ftd_month = f.first_deposit().map(|(e, _)| e.at.month());
    let mut out = Vec::new();
    for st in sts {
        let Some(version) = deal.version_at(st.month) else {
            continue;
        };
        if version.plan().revshare().is_none() || !version.covers(f.brand()) {
            continue;
        }
        out.push(Contribution {
            affiliate: credit.affiliate,
            player: f.player(),
            brand: f.brand(),
            month: st.month,
            credited: st.ngr.apply(credit.share)?,
            ftd_share: (ftd_month == Some(st.month)).then_some(credit.share),
            in_final: m.in_final,
            in_net: m.in_net,
            awaiting: m.awaiting,
            voided: m.voided.clone(),
            statement: st.id,
            rules_version: att.rules_version.clone(),
            formula: FormulaRef {
                brand: f.brand(),
                version: st.formula_version,
            },
        });
    }
    Ok(out)
}

/// The three RevShare worlds of one affiliate.
#[derive(Default)]
pub(super) struct Worlds {
    pub(super) final_: BTreeMap<Month, MonthNgr>,
    pub(super) net: BTreeMap<Month, MonthNgr>,
    pub(super) provisional: BTreeMap<Month, MonthNgr>,
    /// Provenance per month and world.
    pub(super) provenance: BTreeMap<(Month, World), Provenance>,
    pub(super) voided: BTreeMap<Month, Vec<PlayerNote>>,
    pub(super) pending: BTreeMap<Month, Vec<PlayerNote>>,
}

impl Worlds {
    /// Adds one contribution to the worlds its player belongs to.
    pub(super) fn add(&mut self, c: &Contribution) -> Result<(), EngineError> {
        let membership = [
            (World::Final, c.in_final),
            (World::Net, c.in_net),
            (World::Provisional, c.in_net || c.awaiting),
        ];
        for (world, member) in membership {
            let map = match world {
                World::Final => &mut self.final_,
                World::Net => &mut self.net,
                World::Provisional => &mut self.provisional,
            };
            let input = map.entry(c.month).or_default();
            if !member {
                continue;
            }
            input.add(c.brand, c.credited)?;
            if let Some(share) = c.ftd_share {
                input.add_ftd(share);
            }
            let p = self.provenance.entry((c.month, world)).or_default();
            p.statements.insert(c.statement);
            p.rules.insert(c.rules_version.clone());
            p.formulas.insert(c.formula);
        }
        let note = |reason: Reason| PlayerNote {
            player: c.player,
            brand: c.brand,
            reason,
        };
        if let (true, Some(r)) = (c.in_final, &c.voided) {
            self.voided
                .entry(c.month)
                .or_default()
                .push(note(r.clone()));
        }
        if c.awaiting {
            self.pending
                .entry(c.month)
                .or_default()
                .push(note(Reason::RevShareAwaitingKyc));
        }
        Ok(())
    }
}

/// Provenance of one (month, world): what the entries name.
#[derive(Debug, Default, Clone)]
pub(super) struct Provenance {
    pub(super) statements: BTreeSet<Uuid>,
    pub(super) rules: BTreeSet<String>,
    pub(super) formulas: BTreeSet<FormulaRef>,
}

/// Which players a RevShare computation counts (see the engine's docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum World {
    /// KYC approved, including players voided later.
    Final,
    /// Final minus voided players.
    Net,
    /// Net plus players awaiting KYC.
    Provisional,
}
