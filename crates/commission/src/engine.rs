//! The engine: from all player facts, deals, NGR formulas, FX tables, the
//! affiliate tree, the period calendar and the existing ledger, the ledger
//! entries to append (and the NGR statements behind them).
//!
//! Owns the composition: which players count for which affiliate and gate,
//! "CPA once per player", the three RevShare worlds, overrides, and the
//! reconciliation order. Pure: no IO, no clock; the result depends only on
//! the inputs as sets (the order of players and events never matters).
//!
//! # Who counts
//!
//! * A (player, brand) with no attribution earns nothing (anything accrued
//!   before is reversed). The attribution's status is not read: the KYC
//!   gate comes from the KYC events (see [`super::facts::AttributionStatus`]).
//! * **CPA once per player**: every attributed registration of
//!   the player is evaluated under each credited affiliate's CPA terms (deal
//!   version in force in the registration month, [`super::cpa`]). Of the
//!   registrations that qualify, only the one the platform recorded first
//!   earns (by the time it was received, then brand id — never by a time a
//!   brand reports, so no brand can backdate its way ahead of another), and
//!   there each credited affiliate that qualifies earns its own CPA × its
//!   credit share. Other registrations earn no CPA (reason
//!   `cpa_once_per_player`).
//! * **RevShare worlds** (per affiliate, per month, deal version of the
//!   month): *final* = players whose KYC was approved (including ones later
//!   voided); *net* = final minus voided players (fraud confirmed, KYC
//!   revoked); *provisional* = net plus players awaiting KYC (not fraud).
//!   Slots: `RevShare/final` = final; `RevShareClawback` = net − final;
//!   `RevShare/awaiting_kyc` = provisional − net. KYC-rejected players are
//!   in no world.
//! * **Overrides**: each ancestor up the tree earns its level's rate on each
//!   non-zero CPA / RevShare / clawback slot of the descendant.
//!
//! # Problems never stop a run
//!
//! Whatever one player's facts or one affiliate's configuration make
//! impossible to compute (a missing NGR formula or FX table, an overflow, a
//! player the integrator could not build) becomes a [`RunProblem`], and the
//! run holds exactly the slots that depend on it — nothing is reversed or
//! guessed because of a problem, and everyone else is computed as usual:
//!
//! * a player whose facts could not be built (passed in `excluded`): their
//!   CPA slots (and overrides on them) are held, and they add nothing to
//!   RevShare until repaired;
//! * a player whose CPA cannot be evaluated: their CPA slots are held;
//! * a player whose NGR statements cannot be built: their NGR is left out
//!   of RevShare (only reported when a credited affiliate has RevShare);
//! * an affiliate whose RevShare cannot be computed: its RevShare slots
//!   (and overrides on them) are held;
//! * an override that cannot be priced: that override slot is held.
//!
//! # Order of reconciliation
//!
//! Base slots first (CPA, RevShare), then clawbacks (which reference the
//! entries of the slot they reverse), then overrides (which reference the
//! entries of their source slot).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use clickstitch_shared::{AffiliateId, BrandId};

use clickstitch_domain::money::{Money, MoneyError};

use super::cpa::{self, CpaOutcome, Unmet};
use super::facts::{check_unique, Credit, FactsError, Kyc, PlayerFacts, PlayerId};
use super::fx::{FxBook, FxError};
use super::ledger::{
    reconcile, CpaDetail, Desired, Detail, DifferenceDetail, Gate, LedgerEntry, LedgerError,
    OverrideDetail, PriorLedger, Reason, Slot,
};
use super::overrides::{override_amount, AffiliateTree};
use super::period::PeriodCalendar;
use super::plan::{Deal, DealBook, DealVersion};
use super::problem::{Classify, Held, RunProblem};
use super::revenue::{statements, FormulaBook, NgrStatement, RevenueError};
use super::revshare::{compute, MonthCommission, RevShareError};
use super::time::Month;
use super::worlds::{contributions, Contribution, Membership, World, Worlds};

/// Why a run failed (nothing is appended then).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// Inconsistent facts.
    #[error(transparent)]
    Facts(#[from] FactsError),
    /// A missing formula or arithmetic overflow in a statement.
    #[error(transparent)]
    Revenue(#[from] RevenueError),
    /// A missing FX table or rate.
    #[error(transparent)]
    Fx(#[from] FxError),
    /// RevShare arithmetic.
    #[error(transparent)]
    RevShare(#[from] RevShareError),
    /// The existing ledger is inconsistent.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Overflow or currency mismatch.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// What a run produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOutput {
    /// Entries to append, ordered by (affiliate, slot, revision).
    pub entries: Vec<LedgerEntry>,
    /// Every NGR statement of attributed players (immutable, id = content
    /// hash: store those whose id is new).
    pub statements: Vec<NgrStatement>,
    /// What could not be computed and what it held back (sorted; includes
    /// the `excluded` players passed in).
    pub problems: Vec<RunProblem>,
    /// The RevShare contributions of the players passed in, sorted: keep
    /// them for incremental runs ([`Engine::run_scoped`]).
    pub contributions: Vec<Contribution>,
}

/// The slots a run must leave as they are (see the module docs).
#[derive(Debug, Default)]
struct Holds {
    players: BTreeSet<PlayerId>,
    revshare: BTreeSet<AffiliateId>,
    slots: BTreeSet<Slot>,
}

impl Holds {
    fn covers(&self, slot: &Slot) -> bool {
        if self.slots.contains(slot) || slot.player().is_some_and(|p| self.players.contains(&p)) {
            return true;
        }
        match root(slot) {
            Slot::RevShare { affiliate, .. } | Slot::RevShareClawback { affiliate, .. } => {
                self.revshare.contains(affiliate)
            }
            _ => false,
        }
    }
}

/// The slot an override (of an override …) is ultimately about.
fn root(slot: &Slot) -> &Slot {
    match slot {
        Slot::Override { source, .. } => root(source),
        other => other,
    }
}

/// A player problem from an error met while computing them.
fn player_problem(
    f: &PlayerFacts,
    held: Held,
    e: &(impl Classify + std::fmt::Display),
) -> RunProblem {
    let (kind, event) = e.classify();
    RunProblem::player(
        f.player(),
        f.brand(),
        kind,
        held,
        event.into_iter().collect(),
        e.to_string(),
    )
}

/// The configuration a run reads.
#[derive(Debug, Clone, Copy)]
pub struct Engine<'a> {
    /// Deals by affiliate.
    pub deals: &'a DealBook,
    /// NGR formulas by brand.
    pub formulas: &'a FormulaBook,
    /// FX tables by month.
    pub fx: &'a FxBook,
    /// The sub-affiliate tree.
    pub tree: &'a AffiliateTree,
    /// Closed periods.
    pub calendar: &'a PeriodCalendar,
}

type DesiredMap = BTreeMap<Slot, Desired>;

/// One CPA evaluation: a registration under one credited affiliate's terms.
struct CpaEval<'a> {
    facts: &'a PlayerFacts,
    credit: Credit,
    deal: &'a Deal,
    version: &'a DealVersion,
    outcome: CpaOutcome,
}

impl Engine<'_> {
    /// Runs the engine over all `players` (every (player, brand) at most
    /// once) against the complete existing ledger `prior`.
    pub fn run(
        &self,
        players: &[PlayerFacts],
        prior: &[LedgerEntry],
    ) -> Result<EngineOutput, EngineError> {
        self.run_with(players, &[], prior)
    }

    /// [`Self::run`] where the integrator could not build the facts of some
    /// players: `excluded` names them (one [`RunProblem`] each, with
    /// `player` set). Their CPA slots are held and they add nothing to
    /// RevShare; they count as known players.
    ///
    /// Fails only when the inputs as a whole are inconsistent (the existing
    /// ledger, a (player, brand) twice): a bad player or affiliate becomes a
    /// problem instead, and so does a player of the ledger missing from both
    /// lists (their CPA is held, never reversed).
    pub fn run_with(
        &self,
        players: &[PlayerFacts],
        excluded: &[RunProblem],
        prior: &[LedgerEntry],
    ) -> Result<EngineOutput, EngineError> {
        self.run_scoped(players, excluded, &[], prior)
    }

    /// An incremental run: [`Self::run_with`] over the players whose facts
    /// changed (`players`, `excluded`), with the kept RevShare
    /// contributions of everyone else credited to the same affiliates
    /// (`others`, from earlier outputs' [`EngineOutput::contributions`]),
    /// against the prior entries of exactly the slots in scope: those
    /// players' CPA slots, those affiliates' RevShare slots, and the
    /// overrides on either. A slot of `prior` is taken to what this run
    /// computes (zero if nothing), so the caller must pass a scope that is
    /// closed: every player of a CPA slot in `players`/`excluded`, every
    /// affiliate credited by `players` among the affiliates whose
    /// contributions `others` carries in full. Then the entries equal those
    /// of a full run.
    pub fn run_scoped(
        &self,
        players: &[PlayerFacts],
        excluded: &[RunProblem],
        others: &[Contribution],
        prior: &[LedgerEntry],
    ) -> Result<EngineOutput, EngineError> {
        check_unique(players)?;
        let prior = PriorLedger::index(prior)?;
        let mut holds = Holds::default();
        let mut problems: Vec<RunProblem> = excluded.to_vec();
        holds
            .players
            .extend(excluded.iter().filter_map(|p| p.player));
        let known: BTreeSet<PlayerId> = players
            .iter()
            .map(PlayerFacts::player)
            .chain(holds.players.iter().copied())
            .collect();
        // A player of the ledger with no facts at all: leaving them out
        // would reverse their CPA, so it is held instead.
        for slot in prior.slots() {
            if let (Some(p), Slot::Cpa { brand, .. } | Slot::CpaClawback { brand, .. }) =
                (slot.player(), root(slot))
            {
                if !known.contains(&p) && holds.players.insert(p) {
                    problems.push(RunProblem::player(
                        p,
                        *brand,
                        super::problem::ProblemKind::BadFacts,
                        Held::Cpa,
                        Vec::new(),
                        format!(
                            "the ledger has CPA entries for player {p} but the run has no facts \
                             for them: their CPA is held"
                        ),
                    ));
                }
            }
        }
        let mut all_statements: BTreeMap<(PlayerId, BrandId), Vec<NgrStatement>> = BTreeMap::new();
        for f in players {
            if f.attribution().is_none() || holds.players.contains(&f.player()) {
                continue;
            }
            match statements(f, self.formulas) {
                Ok(s) => {
                    all_statements.insert((f.player(), f.brand()), s);
                }
                // Without statements the player adds nothing to RevShare;
                // that matters only where a credited affiliate has RevShare.
                Err(e) if self.earns_revshare(f) => {
                    problems.push(player_problem(f, Held::RevShareContribution, &e));
                }
                Err(_) => {}
            }
        }

        let mut desired = DesiredMap::new();
        self.cpa(players, &mut desired, &mut holds, &mut problems);
        let contributions = self.contributions(players, &all_statements, &mut problems);
        self.revshare(
            contributions.iter().chain(others),
            &mut desired,
            &mut holds,
            &mut problems,
        );
        desired.retain(|slot, _| !holds.covers(slot));

        // 1. Base slots.
        let is_base = |s: &Slot| matches!(s, Slot::Cpa { .. } | Slot::RevShare { .. });
        let (base, claws): (DesiredMap, DesiredMap) =
            desired.into_iter().partition(|(s, _)| is_base(s));
        let mut entries = reconcile(
            &base,
            &prior,
            |s| is_base(s) && !holds.covers(s),
            self.calendar,
        )?;

        // 2. Clawbacks, referencing the entries they reverse.
        let is_claw =
            |s: &Slot| matches!(s, Slot::CpaClawback { .. } | Slot::RevShareClawback { .. });
        let mut claws = claws;
        let new_ids = index_ids(&entries);
        for (slot, d) in claws.iter_mut() {
            if let Some(target) = reversed_slot(slot) {
                d.references.extend(ids_of(&target, &prior, &new_ids));
            }
        }
        entries.extend(reconcile(
            &claws,
            &prior,
            |s| is_claw(s) && !holds.covers(s),
            self.calendar,
        )?);

        // 3. Overrides, referencing their source's entries.
        let new_ids = index_ids(&entries);
        let mut overrides = DesiredMap::new();
        for (slot, d) in base.iter().chain(claws.iter()) {
            if d.amount.minor() != 0 {
                // A clawback is priced like what it reverses, so the
                // override reversal cancels the override exactly.
                let pricing = reversed_slot(slot)
                    .and_then(|s| base.get(&s))
                    .map_or(d.activity_month, |r| r.activity_month);
                let ids = ids_of(slot, &prior, &new_ids);
                self.overrides_of(
                    slot,
                    d,
                    pricing,
                    &ids,
                    &mut overrides,
                    &mut holds,
                    &mut problems,
                );
            }
        }
        overrides.retain(|slot, _| !holds.covers(slot));
        let is_override = |s: &Slot| matches!(s, Slot::Override { .. });
        entries.extend(reconcile(
            &overrides,
            &prior,
            |s| is_override(s) && !holds.covers(s),
            self.calendar,
        )?);

        entries.sort_by(|a, b| {
            (a.affiliate, &a.slot, a.revision).cmp(&(b.affiliate, &b.slot, b.revision))
        });
        let mut statements: Vec<NgrStatement> = all_statements.into_values().flatten().collect();
        statements.sort_by_key(|s| s.id);
        problems.sort();
        problems.dedup();
        let mut contributions = contributions;
        contributions.sort_by(|a, b| {
            (a.affiliate, a.player, a.brand, a.month, a.statement).cmp(&(
                b.affiliate,
                b.player,
                b.brand,
                b.month,
                b.statement,
            ))
        });
        Ok(EngineOutput {
            entries,
            statements,
            problems,
            contributions,
        })
    }

    /// Whether a credited affiliate of `f` has RevShare at `f`'s brand in
    /// some deal version.
    fn earns_revshare(&self, f: &PlayerFacts) -> bool {
        f.attribution().is_some_and(|att| {
            att.credits().iter().any(|c| {
                self.deals.get(c.affiliate).is_some_and(|d| {
                    d.versions()
                        .iter()
                        .any(|v| v.plan().revshare().is_some() && v.covers(f.brand()))
                })
            })
        })
    }

    /// CPA slots of every player; a player whose CPA cannot be computed is
    /// held (with a problem) and the others go on.
    fn cpa(
        &self,
        players: &[PlayerFacts],
        desired: &mut DesiredMap,
        holds: &mut Holds,
        problems: &mut Vec<RunProblem>,
    ) {
        let mut by_player: BTreeMap<PlayerId, Vec<&PlayerFacts>> = BTreeMap::new();
        for f in players {
            if !holds.players.contains(&f.player()) {
                by_player.entry(f.player()).or_default().push(f);
            }
        }
        for (player, list) in by_player {
            let mut mine = DesiredMap::new();
            match self.cpa_of(player, &list, &mut mine) {
                Ok(()) => desired.extend(mine),
                Err((brand, e)) => {
                    holds.players.insert(player);
                    if let Some(f) = list.iter().find(|f| f.brand() == brand) {
                        problems.push(player_problem(f, Held::Cpa, &e));
                    }
                }
            }
        }
    }

    /// The CPA slots of one player (all their registrations); on failure,
    /// the registration whose computation failed.
    fn cpa_of(
        &self,
        player: PlayerId,
        list: &[&PlayerFacts],
        desired: &mut DesiredMap,
    ) -> Result<(), (BrandId, EngineError)> {
        {
            // Every (registration, credited affiliate) under its own terms.
            let mut evals = Vec::new();
            for f in list.iter().copied() {
                let Some(att) = f.attribution() else { continue };
                let reg_month = f.registration().at.month();
                for credit in att.credits() {
                    let Some(deal) = self.deals.get(credit.affiliate) else {
                        continue;
                    };
                    let Some(version) = deal.version_at(reg_month) else {
                        continue;
                    };
                    let Some(terms) = version.plan().cpa() else {
                        continue;
                    };
                    if !version.covers(f.brand()) {
                        continue;
                    }
                    let outcome = cpa::evaluate(f, terms, deal.currency(), self.fx)
                        .map_err(|e| (f.brand(), e.into()))?;
                    evals.push(CpaEval {
                        facts: f,
                        credit: *credit,
                        deal,
                        version,
                        outcome,
                    });
                }
            }
            // Once per player: the registration that qualifies first (final
            // before awaiting KYC; ties by registration time, then brand).
            let chosen = evals
                .iter()
                .filter_map(|e| match &e.outcome {
                    CpaOutcome::Qualified(_) => {
                        Some((e.facts.registration().recorded(), e.facts.brand()))
                    }
                    CpaOutcome::NotQualified(_) => None,
                })
                .min()
                .map(|(_, brand)| brand);
            for e in evals {
                let brand = e.facts.brand();
                self.cpa_slots(player, e, chosen, desired)
                    .map_err(|e| (brand, e))?;
            }
        }
        Ok(())
    }

    fn cpa_slots(
        &self,
        player: PlayerId,
        e: CpaEval<'_>,
        chosen: Option<BrandId>,
        desired: &mut DesiredMap,
    ) -> Result<(), EngineError> {
        let f = e.facts;
        let a = e.credit.affiliate;
        let version = e.version;
        let currency = e.deal.currency();
        let slot = |gate| Slot::Cpa {
            affiliate: a,
            player,
            brand: f.brand(),
            gate,
        };
        let zero = |reason: Reason| {
            Desired::new(
                Money::zero(currency),
                reason,
                f.registration().at.month(),
                version.hold_days(),
            )
        };
        let rules_version = f.attribution().map(|att| att.rules_version.clone());
        match e.outcome {
            CpaOutcome::Qualified(_) if chosen != Some(f.brand()) => {
                let reason = Reason::CpaOncePerPlayer {
                    brand: chosen.unwrap_or(f.brand()),
                };
                desired.insert(slot(Gate::Final), zero(reason.clone()));
                desired.insert(slot(Gate::AwaitingKyc), zero(reason));
            }
            CpaOutcome::Qualified(q) => {
                let amount = q.full_amount.apply(e.credit.share)?;
                let mut d = Desired::new(
                    amount,
                    match q.gate {
                        Gate::Final => Reason::CpaQualified,
                        Gate::AwaitingKyc => Reason::CpaAwaitingKyc,
                    },
                    q.at.month(),
                    version.hold_days(),
                );
                d.deal_version = Some(version.version());
                d.rules_versions.extend(rules_version);
                d.fx_versions = q.fx_versions.clone();
                d.events = q.events.clone();
                d.detail = Some(Detail::Cpa(CpaDetail {
                    country: q.country,
                    qualified_at: q.at,
                    full_amount: q.full_amount,
                    share: e.credit.share,
                    amount,
                }));
                if q.gate == Gate::Final {
                    if let Some(cb) = cpa::clawback(f, &q, version.clawback_days()) {
                        let mut c = d.clone();
                        c.amount = amount.negated()?;
                        c.reason = cb.reason.clone();
                        c.activity_month = cb.at.month();
                        if let Some(ev) = event_of(&cb.reason) {
                            c.events.insert(ev);
                        }
                        desired.insert(
                            Slot::CpaClawback {
                                affiliate: a,
                                player,
                                brand: f.brand(),
                            },
                            c,
                        );
                    }
                    desired.insert(slot(Gate::Final), d);
                    desired.insert(slot(Gate::AwaitingKyc), zero(Reason::KycApproved));
                } else {
                    desired.insert(slot(Gate::AwaitingKyc), d);
                }
            }
            CpaOutcome::NotQualified(unmet) => {
                let reason = match unmet {
                    Unmet::KycNotApproved => Reason::KycRejected,
                    other => Reason::NotQualified { unmet: other },
                };
                desired.insert(slot(Gate::Final), zero(reason.clone()));
                desired.insert(slot(Gate::AwaitingKyc), zero(reason));
            }
        }
        Ok(())
    }

    /// The RevShare contributions of every player with statements; a
    /// player whose contributions cannot be computed (an overflow) adds
    /// nothing, with a problem.
    fn contributions(
        &self,
        players: &[PlayerFacts],
        all_statements: &BTreeMap<(PlayerId, BrandId), Vec<NgrStatement>>,
        problems: &mut Vec<RunProblem>,
    ) -> Vec<Contribution> {
        let mut out = Vec::new();
        for f in players {
            let Some(att) = f.attribution() else { continue };
            let Some(sts) = all_statements.get(&(f.player(), f.brand())) else {
                continue;
            };
            let kyc = f.kyc();
            let fraud = f.fraud();
            let in_final = matches!(kyc, Kyc::Approved { .. } | Kyc::Revoked { .. });
            let voided = match (fraud, &kyc) {
                (Some(e), _) => Some(Reason::FraudConfirmed {
                    event: f.event_ref(&e.id),
                }),
                (None, Kyc::Revoked { event, .. }) => Some(Reason::KycRevoked {
                    event: f.event_ref(event),
                }),
                _ => None,
            };
            let m = Membership {
                in_final,
                in_net: in_final && voided.is_none(),
                awaiting: matches!(kyc, Kyc::Pending) && fraud.is_none(),
                voided,
            };
            if !m.in_final && !m.awaiting {
                continue;
            }
            let mut mine = Vec::new();
            let result = att.credits().iter().try_for_each(|credit| {
                if let Some(deal) = self.deals.get(credit.affiliate) {
                    mine.extend(contributions(deal, f, credit, sts, &m)?);
                }
                Ok::<(), EngineError>(())
            });
            match result {
                Ok(()) => out.extend(mine),
                Err(e) => problems.push(player_problem(f, Held::RevShareContribution, &e)),
            }
        }
        out
    }

    /// RevShare slots of every affiliate with contributions; an affiliate
    /// whose RevShare cannot be computed is held (with a problem) and the
    /// others go on.
    fn revshare<'c>(
        &self,
        contributions: impl IntoIterator<Item = &'c Contribution>,
        desired: &mut DesiredMap,
        holds: &mut Holds,
        problems: &mut Vec<RunProblem>,
    ) {
        let mut worlds: BTreeMap<AffiliateId, Worlds> = BTreeMap::new();
        let mut failed: BTreeMap<AffiliateId, EngineError> = BTreeMap::new();
        for c in contributions {
            if failed.contains_key(&c.affiliate) {
                continue;
            }
            if let Err(e) = worlds.entry(c.affiliate).or_default().add(c) {
                failed.insert(c.affiliate, e);
            }
        }
        for (affiliate, w) in worlds {
            if failed.contains_key(&affiliate) {
                continue;
            }
            let mut mine = DesiredMap::new();
            match self.revshare_of(affiliate, w, &mut mine) {
                Ok(()) => desired.extend(mine),
                Err(e) => {
                    failed.insert(affiliate, e);
                }
            }
        }
        for (affiliate, e) in failed {
            holds.revshare.insert(affiliate);
            let (kind, _) = e.classify();
            problems.push(RunProblem::affiliate(
                affiliate,
                kind,
                Held::AffiliateRevShare,
                format!("RevShare of affiliate {affiliate}: {e}"),
            ));
        }
    }

    /// The RevShare slots of one affiliate from its three worlds.
    fn revshare_of(
        &self,
        affiliate: AffiliateId,
        mut w: Worlds,
        desired: &mut DesiredMap,
    ) -> Result<(), EngineError> {
        let Some(deal) = self.deals.get(affiliate) else {
            return Ok(());
        };
        // Notes were pushed in input order: sort them.
        for notes in w.voided.values_mut().chain(w.pending.values_mut()) {
            notes.sort_by_key(|n| (n.player, n.brand));
        }
        let final_ = compute(deal, &w.final_, self.fx)?;
        let net = compute(deal, &w.net, self.fx)?;
        let provisional = compute(deal, &w.provisional, self.fx)?;
        for (month, f) in &final_ {
            let (Some(n), Some(p), Some(version)) = (
                net.get(month),
                provisional.get(month),
                deal.version_at(*month),
            ) else {
                continue;
            };
            let prov = |world| {
                w.provenance
                    .get(&(*month, world))
                    .cloned()
                    .unwrap_or_default()
            };
            let hold = version.hold_days();
            let make =
                |amount: Money, reason: Reason, worlds: &[(World, &MonthCommission)], detail| {
                    let mut d = Desired::new(amount, reason, *month, hold);
                    d.deal_version = Some(version.version());
                    for (world, mc) in worlds {
                        let pv = prov(*world);
                        d.statements.extend(pv.statements);
                        d.rules_versions.extend(pv.rules);
                        d.formula_versions.extend(pv.formulas);
                        d.fx_versions.extend(mc.fx_versions());
                    }
                    d.detail = Some(detail);
                    d
                };
            desired.insert(
                Slot::RevShare {
                    affiliate,
                    month: *month,
                    gate: Gate::Final,
                },
                make(
                    f.commission(),
                    Reason::RevShare,
                    &[(World::Final, f)],
                    Detail::RevShare(f.clone()),
                ),
            );
            desired.insert(
                Slot::RevShareClawback {
                    affiliate,
                    month: *month,
                },
                make(
                    n.commission().checked_sub(&f.commission())?,
                    Reason::PlayersVoided,
                    &[(World::Final, f), (World::Net, n)],
                    Detail::Difference(DifferenceDetail {
                        with: f.clone(),
                        without: n.clone(),
                        players: w.voided.get(month).cloned().unwrap_or_default(),
                    }),
                ),
            );
            desired.insert(
                Slot::RevShare {
                    affiliate,
                    month: *month,
                    gate: Gate::AwaitingKyc,
                },
                make(
                    p.commission().checked_sub(&n.commission())?,
                    Reason::RevShareAwaitingKyc,
                    &[(World::Provisional, p), (World::Net, n)],
                    Detail::Difference(DifferenceDetail {
                        with: p.clone(),
                        without: n.clone(),
                        players: w.pending.get(month).cloned().unwrap_or_default(),
                    }),
                ),
            );
        }
        Ok(())
    }

    /// Overrides of the ancestors on `source`, priced with their deal
    /// version and the FX table of `pricing` (the activity month, or for a
    /// clawback the month of what it reverses). An override that cannot be
    /// priced is held (with a problem).
    #[allow(clippy::too_many_arguments)]
    fn overrides_of(
        &self,
        source: &Slot,
        d: &Desired,
        pricing: Month,
        source_ids: &[Uuid],
        out: &mut DesiredMap,
        holds: &mut Holds,
        problems: &mut Vec<RunProblem>,
    ) {
        let child = source.affiliate();
        for (i, ancestor) in self.tree.ancestors(child).into_iter().enumerate() {
            let level = i + 1;
            let Some(deal) = self.deals.get(ancestor) else {
                continue;
            };
            let Some(version) = deal.version_at(pricing) else {
                continue;
            };
            let Some(rate) = version.override_rate(level) else {
                continue;
            };
            let level = u8::try_from(level).unwrap_or(u8::MAX);
            let slot = Slot::Override {
                affiliate: ancestor,
                level,
                source: Box::new(source.clone()),
            };
            let o = match override_amount(d.amount, deal.currency(), rate, pricing, self.fx) {
                Ok(o) => o,
                Err(e) => {
                    let (kind, _) = e.classify();
                    problems.push(RunProblem::affiliate(
                        ancestor,
                        kind,
                        Held::Override,
                        format!("level-{level} override of affiliate {ancestor} on {child}: {e}"),
                    ));
                    holds.slots.insert(slot);
                    continue;
                }
            };
            let mut od = d.clone();
            od.amount = o.amount;
            od.reason = Reason::Override;
            od.hold_days = version.hold_days();
            od.deal_version = Some(version.version());
            od.fx_versions.extend(o.fx_version);
            od.references = source_ids.iter().copied().collect();
            od.detail = Some(Detail::Override(OverrideDetail {
                child,
                level,
                child_amount: d.amount,
                base: o.base,
                rate,
                amount: o.amount,
            }));
            out.insert(slot, od);
        }
    }
}

impl Classify for EngineError {
    fn classify(
        &self,
    ) -> (
        super::problem::ProblemKind,
        Option<super::facts::BrandEventId>,
    ) {
        match self {
            EngineError::Facts(e) => e.classify(),
            EngineError::Revenue(e) => e.classify(),
            EngineError::Fx(e) => e.classify(),
            EngineError::RevShare(e) => e.classify(),
            EngineError::Money(e) => e.classify(),
            EngineError::Ledger(_) => (super::problem::ProblemKind::BadFacts, None),
        }
    }
}

/// The slot a clawback slot reverses.
fn reversed_slot(slot: &Slot) -> Option<Slot> {
    match slot {
        Slot::CpaClawback {
            affiliate,
            player,
            brand,
        } => Some(Slot::Cpa {
            affiliate: *affiliate,
            player: *player,
            brand: *brand,
            gate: Gate::Final,
        }),
        Slot::RevShareClawback { affiliate, month } => Some(Slot::RevShare {
            affiliate: *affiliate,
            month: *month,
            gate: Gate::Final,
        }),
        _ => None,
    }
}

/// Ids of this run's new entries by slot.
fn index_ids(entries: &[LedgerEntry]) -> BTreeMap<&Slot, Vec<Uuid>> {
    let mut map: BTreeMap<&Slot, Vec<Uuid>> = BTreeMap::new();
    for e in entries {
        map.entry(&e.slot).or_default().push(e.id);
    }
    map
}

/// Ids of a slot's entries: existing ones and those appended by this run.
fn ids_of(slot: &Slot, prior: &PriorLedger<'_>, new: &BTreeMap<&Slot, Vec<Uuid>>) -> Vec<Uuid> {
    prior
        .slot(slot)
        .iter()
        .map(|e| e.id)
        .chain(new.get(slot).into_iter().flatten().copied())
        .collect()
}

fn event_of(reason: &Reason) -> Option<super::facts::EventRef> {
    match reason {
        Reason::KycRevoked { event }
        | Reason::FraudConfirmed { event }
        | Reason::Chargeback { event }
        | Reason::SelfExclusion { event } => Some(event.clone()),
        _ => None,
    }
}
