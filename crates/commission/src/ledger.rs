//! The append-only commission ledger: entry types, deterministic entry ids,
//! and reconciliation (turning "what each slot should now total" into the
//! entries to append).
//!
//! Owns [`LedgerEntry`], [`Slot`] (what an entry is about), [`EntryKind`],
//! [`Reason`], [`Detail`] and the id rule. Must not compute commissions
//! (it receives desired amounts from [`super::engine`]), and never edits or
//! removes an entry: a change is always a new entry that references the
//! earlier ones.
//!
//! # Slots, revisions and ids
//!
//! Every entry belongs to one [`Slot`] — e.g. "CPA of player P at brand B
//! for affiliate A, final" or "RevShare of affiliate A for 2026-03,
//! awaiting KYC". The engine computes, from all facts, the amount each slot
//! should total (its *desired* amount). If the slot's existing entries
//! total something else, one new entry with the difference is appended. The
//! n-th entry of a slot (0-based) has revision n and id
//! `UUIDv5(LEDGER_NAMESPACE, "entry:" + JSON(slot) + ":" + n)`, so running
//! the engine twice over the same facts and ledger yields the same entries
//! (storage dedupes by id), and two writers racing on one slot produce the
//! same id for different content — storage must treat that as a conflict
//! and re-run (see [`LedgerEntry::id`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use clickstitch_shared::{AffiliateId, BrandId, CountryCode};

use clickstitch_domain::money::{Bps, Currency, Money, MoneyError};

use super::cpa::Unmet;
use super::facts::{EventRef, PlayerId};
use super::period::PeriodCalendar;
use super::revshare::MonthCommission;
use super::time::{Month, Timestamp};

/// Namespace of ledger entry ids.
pub const LEDGER_NAMESPACE: Uuid = Uuid::from_u128(0x9b4e_2d17_5c3a_4f88_b1e6_7d20_3a9c_5e41);

/// Whether an amount is final or still waits for the player's KYC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// KYC approved: follows the period (pending → approved → payable).
    Final,
    /// KYC not decided yet: always pending; becomes final (or is reversed)
    /// when the brand reports the decision.
    AwaitingKyc,
}

/// What an entry is about. All entries of one slot add up to the slot's
/// current amount.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Slot {
    /// The CPA of a player (acquired at `brand`) for one credited affiliate.
    Cpa {
        /// The earning affiliate.
        affiliate: AffiliateId,
        /// The player.
        player: PlayerId,
        /// The brand of the acquiring registration.
        brand: BrandId,
        /// Final or awaiting KYC.
        gate: Gate,
    },
    /// The clawback of that CPA (chargeback or self-exclusion inside the
    /// clawback window, confirmed fraud, KYC revoked).
    CpaClawback {
        /// The affiliate.
        affiliate: AffiliateId,
        /// The player.
        player: PlayerId,
        /// The brand.
        brand: BrandId,
    },
    /// RevShare of one month. `Final` counts KYC-approved players (including
    /// those later voided, see `RevShareClawback`); `AwaitingKyc` is the
    /// extra commission that players still waiting for KYC would add.
    RevShare {
        /// The affiliate.
        affiliate: AffiliateId,
        /// The activity month.
        month: Month,
        /// Which part.
        gate: Gate,
    },
    /// The RevShare of a month recomputed without voided players (fraud,
    /// KYC revoked), minus the `Final` RevShare: a reversal.
    RevShareClawback {
        /// The affiliate.
        affiliate: AffiliateId,
        /// The activity month.
        month: Month,
    },
    /// A sub-affiliate override: `affiliate` earns its level-`level` rate
    /// on the amount of `source` (a slot of a descendant).
    Override {
        /// The earning ancestor.
        affiliate: AffiliateId,
        /// 1 = parent of the source's affiliate, 2 = grandparent, …
        level: u8,
        /// The descendant's slot.
        source: Box<Slot>,
    },
    /// A payout run.
    Payout {
        /// The affiliate paid.
        affiliate: AffiliateId,
        /// The payout run (chosen by the operator's payout batch).
        run: Uuid,
    },
}

impl Slot {
    /// The affiliate whose balance the slot's entries move.
    pub fn affiliate(&self) -> AffiliateId {
        match self {
            Slot::Cpa { affiliate, .. }
            | Slot::CpaClawback { affiliate, .. }
            | Slot::RevShare { affiliate, .. }
            | Slot::RevShareClawback { affiliate, .. }
            | Slot::Override { affiliate, .. }
            | Slot::Payout { affiliate, .. } => *affiliate,
        }
    }

    /// Final or awaiting KYC (an override follows its source).
    pub fn gate(&self) -> Gate {
        match self {
            Slot::Cpa { gate, .. } | Slot::RevShare { gate, .. } => *gate,
            Slot::Override { source, .. } => source.gate(),
            Slot::CpaClawback { .. } | Slot::RevShareClawback { .. } | Slot::Payout { .. } => {
                Gate::Final
            }
        }
    }

    /// The player a CPA slot (or an override of one) is about.
    pub fn player(&self) -> Option<PlayerId> {
        match self {
            Slot::Cpa { player, .. } | Slot::CpaClawback { player, .. } => Some(*player),
            Slot::Override { source, .. } => source.player(),
            _ => None,
        }
    }

    /// Whether every entry of the slot is a clawback (reversal).
    pub fn is_clawback(&self) -> bool {
        match self {
            Slot::CpaClawback { .. } | Slot::RevShareClawback { .. } => true,
            Slot::Override { source, .. } => source.is_clawback(),
            _ => false,
        }
    }

    /// The id of the slot's entry with revision `revision`.
    pub fn entry_id(&self, revision: u32) -> Uuid {
        let json = serde_json::to_string(self)
            .unwrap_or_else(|e| unreachable!("a slot always serialises: {e}"));
        Uuid::new_v5(
            &LEDGER_NAMESPACE,
            format!("entry:{json}:{revision}").as_bytes(),
        )
    }
}

/// The four kinds of ledger row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// The first entry of a slot.
    Accrual,
    /// A later change of a slot's amount (late or corrected facts).
    Adjustment,
    /// A clawback, or a change that takes a slot back to zero (KYC rejected,
    /// provisional amount released into its final slot, …).
    Reversal,
    /// Money paid out to the affiliate.
    Payout,
}

/// Why an entry exists (its slot's current situation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    /// The player met every CPA rule, KYC approved.
    CpaQualified,
    /// The player met every CPA rule but KYC is not decided.
    CpaAwaitingKyc,
    /// The month's RevShare.
    RevShare,
    /// The extra RevShare from players awaiting KYC.
    RevShareAwaitingKyc,
    /// A sub-affiliate override.
    Override,
    /// KYC approved: the provisional amount moves to the final slot.
    KycApproved,
    /// KYC rejected (never approved): no commission.
    KycRejected,
    /// KYC revoked after approval: clawback.
    KycRevoked {
        /// The revocation.
        event: EventRef,
    },
    /// Fraud confirmed: clawback.
    FraudConfirmed {
        /// The confirmation.
        event: EventRef,
    },
    /// A chargeback inside the clawback window: clawback.
    Chargeback {
        /// The chargeback.
        event: EventRef,
    },
    /// A self-exclusion inside the clawback window: clawback.
    SelfExclusion {
        /// The self-exclusion.
        event: EventRef,
    },
    /// Players voided after approval (fraud, KYC revoked); see the detail.
    PlayersVoided,
    /// The player's CPA is earned by their registration at another brand
    /// (a CPA is paid once per player).
    CpaOncePerPlayer {
        /// The brand whose registration earns it.
        brand: BrandId,
    },
    /// A CPA rule is not met (any more).
    NotQualified {
        /// The first unmet rule.
        unmet: Unmet,
    },
    /// Nothing earns into this slot any more (e.g. the player's attribution
    /// or the affiliate tree changed).
    NoLongerEarned,
    /// A payout.
    Payout,
}

/// A formula version used, per brand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FormulaRef {
    /// The brand.
    pub brand: BrandId,
    /// Its NGR formula version.
    pub version: u32,
}

/// How a CPA amount was reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpaDetail {
    /// Registration country.
    pub country: CountryCode,
    /// When the last rule was met.
    pub qualified_at: Timestamp,
    /// The deal's CPA for the country.
    pub full_amount: Money,
    /// The affiliate's credit share.
    pub share: Bps,
    /// `full_amount × share`, rounded half-to-even.
    pub amount: Money,
}

/// A player named in a [`DifferenceDetail`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerNote {
    /// The player.
    pub player: PlayerId,
    /// The brand.
    pub brand: BrandId,
    /// Why the player is in or out.
    pub reason: Reason,
}

/// A slot whose amount is the difference of two RevShare computations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DifferenceDetail {
    /// Commission with the players below.
    pub with: MonthCommission,
    /// Commission without them.
    pub without: MonthCommission,
    /// The players that make the difference.
    pub players: Vec<PlayerNote>,
}

/// How an override was reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverrideDetail {
    /// The descendant whose commission it is.
    pub child: AffiliateId,
    /// Levels between them (1 = parent).
    pub level: u8,
    /// The source slot's amount (descendant's currency).
    pub child_amount: Money,
    /// Converted into the ancestor's currency.
    pub base: Money,
    /// The ancestor's rate for the level.
    pub rate: Bps,
    /// `base × rate`, rounded half-to-even.
    pub amount: Money,
}

/// A payout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutDetail {
    /// The payout run.
    pub run: Uuid,
    /// When it was decided.
    pub at: Timestamp,
    /// The minimum payout that applied.
    pub min_payout: Money,
}

/// The explanation of an entry's slot amount (as of the entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Detail {
    /// A CPA (or the CPA a clawback reverses).
    Cpa(CpaDetail),
    /// A month's RevShare computation.
    RevShare(MonthCommission),
    /// RevShare with vs. without some players.
    Difference(DifferenceDetail),
    /// An override.
    Override(OverrideDetail),
    /// A payout.
    Payout(PayoutDetail),
}

/// One row of the ledger. Never updated, never deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// `slot.entry_id(revision)`: deterministic. Storage must keep the first
    /// row for an id and report a conflict if a later one differs.
    pub id: Uuid,
    /// Accrual, adjustment, reversal or payout.
    pub kind: EntryKind,
    /// The affiliate whose balance moves.
    pub affiliate: AffiliateId,
    /// What the entry is about.
    pub slot: Slot,
    /// Position within the slot (0 = first).
    pub revision: u32,
    /// Signed amount in the affiliate's deal currency (payouts: the amount
    /// paid, positive).
    pub amount: Money,
    /// The slot's total after this entry.
    pub slot_total: Money,
    /// Final or awaiting KYC.
    pub gate: Gate,
    /// The month the activity belongs to.
    pub activity_month: Month,
    /// The period the entry is booked in: the activity month, or the first
    /// open period if that month is already closed.
    pub booked_in: Month,
    /// Days after `booked_in` closes before the entry is payable.
    pub hold_days: u32,
    /// The deal version that priced it.
    pub deal_version: Option<u32>,
    /// Attribution rules versions of the players behind it.
    pub rules_versions: Vec<String>,
    /// NGR formula versions behind it.
    pub formula_versions: Vec<FormulaRef>,
    /// FX table versions used.
    pub fx_versions: Vec<u32>,
    /// Brand events behind it (CPA, clawbacks).
    pub events: Vec<EventRef>,
    /// NGR statements behind it (RevShare).
    pub statements: Vec<Uuid>,
    /// Earlier entries it changes or derives from (same slot, the clawed
    /// back slot, the override's source slot, the entries a payout covers).
    pub references: Vec<Uuid>,
    /// Why.
    pub reason: Reason,
    /// How the slot amount was reached.
    pub detail: Option<Detail>,
}

/// Why an existing ledger was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// An entry's id is not the one its slot and revision give.
    #[error("entry {0} does not have the id its slot and revision define")]
    WrongId(Uuid),
    /// Two different entries share an id.
    #[error("two different entries with id {0}")]
    Conflict(Uuid),
    /// A slot's revisions are not 0, 1, 2, … without gaps.
    #[error("slot of entry {0} has a revision gap (missing entries?)")]
    Gap(Uuid),
    /// Amounts of one slot or affiliate in different currencies.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// What a slot should total now, and the explanation that goes on the entry
/// that gets it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The amount.
    pub amount: Money,
    /// Why.
    pub reason: Reason,
    /// The activity month.
    pub activity_month: Month,
    /// Hold days of the deal version.
    pub hold_days: u32,
    /// The deal version.
    pub deal_version: Option<u32>,
    /// Attribution rules versions.
    pub rules_versions: BTreeSet<String>,
    /// Formula versions.
    pub formula_versions: BTreeSet<FormulaRef>,
    /// FX versions.
    pub fx_versions: BTreeSet<u32>,
    /// Events.
    pub events: BTreeSet<EventRef>,
    /// Statements.
    pub statements: BTreeSet<Uuid>,
    /// References beyond the slot's own earlier entries.
    pub references: BTreeSet<Uuid>,
    /// Detail.
    pub detail: Option<Detail>,
}

impl Desired {
    /// A desired amount with empty provenance.
    pub fn new(amount: Money, reason: Reason, activity_month: Month, hold_days: u32) -> Self {
        Self {
            amount,
            reason,
            activity_month,
            hold_days,
            deal_version: None,
            rules_versions: BTreeSet::new(),
            formula_versions: BTreeSet::new(),
            fx_versions: BTreeSet::new(),
            events: BTreeSet::new(),
            statements: BTreeSet::new(),
            references: BTreeSet::new(),
            detail: None,
        }
    }
}

/// An existing ledger, checked and indexed by slot.
#[derive(Debug, Clone, Default)]
pub struct PriorLedger<'a> {
    by_slot: BTreeMap<&'a Slot, Vec<&'a LedgerEntry>>,
}

impl<'a> PriorLedger<'a> {
    /// Checks ids, revision sequences and currencies; identical duplicates
    /// (a replayed write) count once.
    pub fn index(entries: &'a [LedgerEntry]) -> Result<Self, LedgerError> {
        let mut by_id: BTreeMap<Uuid, &'a LedgerEntry> = BTreeMap::new();
        for e in entries {
            if e.id != e.slot.entry_id(e.revision) {
                return Err(LedgerError::WrongId(e.id));
            }
            match by_id.get(&e.id) {
                Some(seen) if *seen == e => {}
                Some(_) => return Err(LedgerError::Conflict(e.id)),
                None => {
                    by_id.insert(e.id, e);
                }
            }
        }
        let mut by_slot: BTreeMap<&'a Slot, Vec<&'a LedgerEntry>> = BTreeMap::new();
        for e in by_id.into_values() {
            by_slot.entry(&e.slot).or_default().push(e);
        }
        for list in by_slot.values_mut() {
            list.sort_by_key(|e| e.revision);
            for (i, e) in list.iter().enumerate() {
                if e.revision as usize != i {
                    return Err(LedgerError::Gap(e.id));
                }
                if e.amount.currency() != list[0].amount.currency() {
                    return Err(MoneyError::CurrencyMismatch(
                        list[0].amount.currency(),
                        e.amount.currency(),
                    )
                    .into());
                }
            }
        }
        Ok(Self { by_slot })
    }

    /// The slot's entries, by revision.
    pub fn slot(&self, slot: &Slot) -> &[&'a LedgerEntry] {
        self.by_slot.get(slot).map(Vec::as_slice).unwrap_or(&[])
    }

    /// All slots with entries.
    pub fn slots(&self) -> impl Iterator<Item = &'a Slot> + '_ {
        self.by_slot.keys().copied()
    }
}

/// The entries to append so that every slot selected by `scope` totals its
/// desired amount (slots with entries but no desired amount go to zero).
/// Deterministic: output ordered by slot.
pub fn reconcile(
    desired: &BTreeMap<Slot, Desired>,
    prior: &PriorLedger<'_>,
    scope: impl Fn(&Slot) -> bool,
    calendar: &PeriodCalendar,
) -> Result<Vec<LedgerEntry>, LedgerError> {
    let mut slots: BTreeSet<&Slot> = desired.keys().collect();
    slots.extend(
        prior
            .slots()
            .filter(|s| !matches!(s, Slot::Payout { .. }) && scope(s)),
    );
    let mut out = Vec::new();
    for slot in slots {
        let earlier = prior.slot(slot);
        let currency: Option<Currency> = earlier
            .first()
            .map(|e| e.amount.currency())
            .or_else(|| desired.get(slot).map(|d| d.amount.currency()));
        let Some(currency) = currency else { continue };
        let total = Money::sum(currency, earlier.iter().map(|e| &e.amount))?;
        let fallback;
        let want = match desired.get(slot) {
            Some(d) => d,
            None => {
                let last = earlier.last().map(|e| (e.activity_month, e.hold_days));
                let Some((month, hold)) = last else { continue };
                fallback = Desired::new(Money::zero(currency), Reason::NoLongerEarned, month, hold);
                &fallback
            }
        };
        if want.amount == total {
            continue;
        }
        let delta = want.amount.checked_sub(&total)?;
        let revision = earlier.len() as u32;
        let kind = if slot.is_clawback() {
            EntryKind::Reversal
        } else if revision == 0 {
            EntryKind::Accrual
        } else if want.amount.minor() == 0 {
            EntryKind::Reversal
        } else {
            EntryKind::Adjustment
        };
        let mut references: BTreeSet<Uuid> = earlier.iter().map(|e| e.id).collect();
        references.extend(want.references.iter().copied());
        out.push(LedgerEntry {
            id: slot.entry_id(revision),
            kind,
            affiliate: slot.affiliate(),
            slot: slot.clone(),
            revision,
            amount: delta,
            slot_total: want.amount,
            gate: slot.gate(),
            activity_month: want.activity_month,
            booked_in: calendar.booking_month(want.activity_month),
            hold_days: want.hold_days,
            deal_version: want.deal_version,
            rules_versions: want.rules_versions.iter().cloned().collect(),
            formula_versions: want.formula_versions.iter().copied().collect(),
            fx_versions: want.fx_versions.iter().copied().collect(),
            events: want.events.iter().cloned().collect(),
            statements: want.statements.iter().copied().collect(),
            references: references.into_iter().collect(),
            reason: want.reason.clone(),
            detail: want.detail.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").expect("EUR")
    }

    fn slot() -> Slot {
        Slot::RevShare {
            affiliate: AffiliateId::from(Uuid::from_u128(7)),
            month: Month::parse("2026-01").expect("m"),
            gate: Gate::Final,
        }
    }

    fn want(minor: i64) -> BTreeMap<Slot, Desired> {
        BTreeMap::from([(
            slot(),
            Desired::new(
                Money::new(minor, eur()),
                Reason::RevShare,
                Month::parse("2026-01").expect("m"),
                30,
            ),
        )])
    }

    fn run(desired: &BTreeMap<Slot, Desired>, prior: &[LedgerEntry]) -> Vec<LedgerEntry> {
        let prior = PriorLedger::index(prior).expect("prior");
        reconcile(desired, &prior, |_| true, &PeriodCalendar::default()).expect("reconcile")
    }

    #[test]
    fn a_slot_is_accrued_adjusted_and_reversed_with_deterministic_ids() {
        let first = run(&want(1_000), &[]);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].kind, EntryKind::Accrual);
        assert_eq!(first[0].id, slot().entry_id(0));
        assert_eq!(run(&want(1_000), &[]), first, "same inputs, same entries");
        assert!(run(&want(1_000), &first).is_empty(), "nothing left to do");

        let second = run(&want(1_500), &first);
        assert_eq!(second[0].kind, EntryKind::Adjustment);
        assert_eq!(second[0].amount.minor(), 500);
        assert_eq!(second[0].slot_total.minor(), 1_500);
        assert_eq!(second[0].references, vec![first[0].id]);

        let all = [first, second].concat();
        let third = run(&BTreeMap::new(), &all);
        assert_eq!(third[0].kind, EntryKind::Reversal);
        assert_eq!(third[0].amount.minor(), -1_500);
        assert_eq!(third[0].reason, Reason::NoLongerEarned);
        assert_eq!(third[0].revision, 2);
    }

    #[test]
    fn a_ledger_with_a_missing_or_forged_entry_is_refused() {
        let first = run(&want(1_000), &[]);
        let second = run(&want(1_500), &first);
        assert!(matches!(
            PriorLedger::index(&second),
            Err(LedgerError::Gap(_))
        ));
        let mut forged = first[0].clone();
        forged.amount = Money::new(9_999, eur());
        assert!(matches!(
            PriorLedger::index(&[first[0].clone(), forged]),
            Err(LedgerError::Conflict(_))
        ));
        let mut renamed = first[0].clone();
        renamed.revision = 1;
        assert!(matches!(
            PriorLedger::index(&[renamed]),
            Err(LedgerError::WrongId(_))
        ));
        // A replayed (identical) write counts once.
        let twice = [first[0].clone(), first[0].clone()];
        assert!(run(&want(1_000), &twice).is_empty());
    }

    #[test]
    fn entry_ids_are_uuidv5_of_the_slot_json_and_revision_and_never_change() {
        let json = r#"{"type":"rev_share","affiliate":"00000000-0000-0000-0000-000000000007","month":"2026-01","gate":"final"}"#;
        assert_eq!(serde_json::to_string(&slot()).expect("json"), json);
        let expected = Uuid::new_v5(&LEDGER_NAMESPACE, format!("entry:{json}:0").as_bytes());
        assert_eq!(slot().entry_id(0), expected);
        assert_eq!(
            slot().entry_id(0).to_string(),
            "3f8150b0-92f0-5cfe-9d72-640b27dd045a",
            "pinned: changing the slot format would change every id"
        );
    }

    #[test]
    fn entries_round_trip_through_json() {
        let e = &run(&want(1_000), &[])[0];
        let json = serde_json::to_string(e).expect("json");
        let back: LedgerEntry = serde_json::from_str(&json).expect("back");
        assert_eq!(&back, e);
    }
}
