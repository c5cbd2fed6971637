//! CPA qualification and clawback for one player at one brand under one
//! affiliate's CPA terms.
//!
//! Owns the rules, all combined by AND:
//!
//! 1. the registration country is eligible (has an amount, or the deal has
//!    a default amount); the amount is the country's;
//! 2. the first deposit — the earliest deposit event, derived here, never
//!    taken from the brand — is made within `first_deposit_within_days` of
//!    registration and is at least `min_first_deposit`;
//! 3. cumulative deposits reach `min_total_deposits`;
//! 4. cumulative stakes reach `min_wagering`;
//! 5. KYC is approved;
//! 6. no self-exclusion, operator block or duplicate-account flag is in
//!    force, no fraud has been confirmed and no chargeback has happened.
//!
//! Deposits and stakes are converted into the deal currency event by event
//! with the FX table of the event's month. The qualification time is the
//! first instant at which all rules hold; rules 1–4 are monotone, 5 and 6
//! are checked at each change after rules 1–4 hold. If rules 1–4 and 6 hold
//! but KYC is not decided yet, the CPA qualifies *awaiting KYC* (pending).
//!
//! Clawback of a final CPA qualified at `t`: fraud confirmed after `t`
//! (any time), KYC revoked after `t` (any time), a chargeback or a
//! self-exclusion in `(t, t + clawback_days]`. The earliest trigger is the
//! reason.
//!
//! Must not decide which brand or affiliate gets the CPA (that is
//! [`super::engine`]: once per player) nor write ledger entries.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use clickstitch_shared::CountryCode;

use clickstitch_domain::money::{Currency, Money};

use super::facts::{BrandEventId, EventKind, EventRef, Flag, KycStatus, PlayerFacts};
use super::fx::{FxBook, FxError};
use super::ledger::{Gate, Reason};
use super::plan::CpaTerms;
use super::time::Timestamp;

/// The CPA rule that is not met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Unmet {
    /// The registration country has no CPA amount.
    CountryNotEligible {
        /// The country.
        country: CountryCode,
    },
    /// No deposit yet.
    NoFirstDeposit,
    /// The first deposit came after the window.
    FirstDepositTooLate {
        /// The first deposit.
        event: BrandEventId,
    },
    /// The first deposit is below the minimum.
    FirstDepositTooSmall {
        /// The first deposit.
        event: BrandEventId,
        /// Its amount in the deal currency.
        amount: Money,
    },
    /// Cumulative deposits below the minimum.
    DepositsBelowMinimum {
        /// Deposits so far, deal currency.
        total: Money,
    },
    /// Cumulative stakes below the minimum.
    WageringBelowMinimum {
        /// Stakes so far, deal currency.
        total: Money,
    },
    /// KYC rejected or revoked.
    KycNotApproved,
    /// A blocking flag is in force.
    Flagged {
        /// The flag.
        flag: Flag,
        /// The event that set it.
        event: BrandEventId,
    },
    /// Fraud confirmed before qualification.
    Fraud {
        /// The confirmation.
        event: BrandEventId,
    },
    /// A chargeback before qualification.
    Chargeback {
        /// The chargeback.
        event: BrandEventId,
    },
}

/// A qualified CPA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qualification {
    /// Final (KYC approved) or awaiting KYC.
    pub gate: Gate,
    /// When the last rule was met.
    pub at: Timestamp,
    /// Registration country.
    pub country: CountryCode,
    /// The deal's CPA for the country (before the credit share).
    pub full_amount: Money,
    /// Registration, first deposit, the deposit and the stake that reached
    /// the minimums, and the KYC approval.
    pub events: BTreeSet<EventRef>,
    /// FX table versions used for the thresholds.
    pub fx_versions: BTreeSet<u32>,
}

/// The outcome of the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpaOutcome {
    /// All rules met (or all but a pending KYC).
    Qualified(Qualification),
    /// A rule is not met.
    NotQualified(Unmet),
}

/// A clawback trigger of a final CPA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clawback {
    /// Why (names the event).
    pub reason: Reason,
    /// When.
    pub at: Timestamp,
}

/// The rolling state of rules 5 and 6 while walking the events.
#[derive(Default)]
struct Gates {
    approved: Option<BrandEventId>,
    kyc_decided_negative: bool,
    flags: BTreeMap<Flag, BrandEventId>,
    fraud: Option<BrandEventId>,
    chargeback: Option<BrandEventId>,
}

impl Gates {
    fn apply(&mut self, e: &super::facts::PlayerEvent) {
        match &e.kind {
            EventKind::Kyc { status } => match status {
                KycStatus::Approved => {
                    self.approved = Some(e.id.clone());
                    self.kyc_decided_negative = false;
                }
                KycStatus::Pending => {
                    self.approved = None;
                    self.kyc_decided_negative = false;
                }
                KycStatus::Rejected | KycStatus::Revoked => {
                    self.approved = None;
                    self.kyc_decided_negative = true;
                }
            },
            EventKind::Flag { flag, active } if flag.blocks_cpa() => {
                if *active {
                    self.flags.insert(*flag, e.id.clone());
                } else {
                    self.flags.remove(flag);
                }
            }
            EventKind::FraudConfirmed => {
                self.fraud.get_or_insert_with(|| e.id.clone());
            }
            EventKind::Chargeback { .. } => {
                self.chargeback.get_or_insert_with(|| e.id.clone());
            }
            _ => {}
        }
    }

    /// Rule 6.
    fn blocked(&self) -> Option<Unmet> {
        if let Some(event) = &self.fraud {
            return Some(Unmet::Fraud {
                event: event.clone(),
            });
        }
        if let Some(event) = &self.chargeback {
            return Some(Unmet::Chargeback {
                event: event.clone(),
            });
        }
        self.flags
            .iter()
            .next()
            .map(|(flag, event)| Unmet::Flagged {
                flag: *flag,
                event: event.clone(),
            })
    }
}

/// Runs the rules for `facts` under `terms`, in the deal `currency`.
pub fn evaluate(
    facts: &PlayerFacts,
    terms: &CpaTerms,
    currency: Currency,
    fx: &FxBook,
) -> Result<CpaOutcome, FxError> {
    use CpaOutcome::NotQualified;
    let reg = facts.registration();
    let Some(full_amount) = terms.amount_for(reg.country) else {
        return Ok(NotQualified(Unmet::CountryNotEligible {
            country: reg.country,
        }));
    };
    let mut fx_versions = BTreeSet::new();
    let mut convert = |amount: Money, at: Timestamp| -> Result<Money, FxError> {
        let c = fx.convert(amount, currency, at.month())?;
        fx_versions.extend(c.fx_version);
        Ok(c.amount)
    };

    // Rule 2: the first deposit.
    let Some((first, first_amount)) = facts.first_deposit() else {
        return Ok(NotQualified(Unmet::NoFirstDeposit));
    };
    if first.at > reg.at.plus_days(terms.first_deposit_within_days()) {
        return Ok(NotQualified(Unmet::FirstDepositTooLate {
            event: first.id.clone(),
        }));
    }
    let first_converted = convert(first_amount, first.at)?;
    if first_converted.minor() < terms.min_first_deposit().minor() {
        return Ok(NotQualified(Unmet::FirstDepositTooSmall {
            event: first.id.clone(),
            amount: first_converted,
        }));
    }

    // Rule 3: cumulative deposits.
    let mut total = Money::zero(currency);
    let mut deposits_met = None;
    for (e, amount) in facts.deposits() {
        total = total.checked_add(&convert(amount, e.at)?)?;
        if total.minor() >= terms.min_total_deposits().minor() {
            deposits_met = Some(e);
            break;
        }
    }
    let Some(deposits_met) = deposits_met else {
        return Ok(NotQualified(Unmet::DepositsBelowMinimum { total }));
    };

    // Rule 4: cumulative stakes (a zero minimum is met at registration).
    let mut staked = Money::zero(currency);
    let mut wagering_met = None;
    if terms.min_wagering().minor() > 0 {
        for e in facts.events() {
            if let EventKind::Game { stakes, .. } = &e.kind {
                staked = staked.checked_add(&convert(*stakes, e.at)?)?;
                if staked.minor() >= terms.min_wagering().minor() {
                    wagering_met = Some(e);
                    break;
                }
            }
        }
        if wagering_met.is_none() {
            return Ok(NotQualified(Unmet::WageringBelowMinimum { total: staked }));
        }
    }

    let mut events = BTreeSet::from([
        facts.event_ref(&reg.event),
        facts.event_ref(&first.id),
        facts.event_ref(&deposits_met.id),
    ]);
    let mut met_at = first.at.max(deposits_met.at);
    if let Some(w) = wagering_met {
        events.insert(facts.event_ref(&w.id));
        met_at = met_at.max(w.at);
    }

    // Rules 5 and 6: the first instant ≥ met_at at which they hold.
    let mut gates = Gates::default();
    let all = facts.events();
    let mut i = 0;
    while i < all.len() && all[i].at <= met_at {
        gates.apply(&all[i]);
        i += 1;
    }
    let mut now = met_at;
    let mut provisional_at = None;
    loop {
        if gates.blocked().is_none() {
            if let Some(approval) = &gates.approved {
                events.insert(facts.event_ref(approval));
                return Ok(CpaOutcome::Qualified(Qualification {
                    gate: Gate::Final,
                    at: now,
                    country: reg.country,
                    full_amount,
                    events,
                    fx_versions,
                }));
            }
            provisional_at.get_or_insert(now);
        }
        let Some(next) = all.get(i) else { break };
        now = next.at;
        while i < all.len() && all[i].at == now {
            gates.apply(&all[i]);
            i += 1;
        }
    }
    // End of history without a final qualification.
    if let Some(unmet) = gates.blocked() {
        return Ok(NotQualified(unmet));
    }
    if gates.kyc_decided_negative {
        return Ok(NotQualified(Unmet::KycNotApproved));
    }
    let at = provisional_at.unwrap_or(now);
    Ok(CpaOutcome::Qualified(Qualification {
        gate: Gate::AwaitingKyc,
        at,
        country: reg.country,
        full_amount,
        events,
        fx_versions,
    }))
}

/// One CPA rule as it stands for a player: whether it is met, what it
/// requires and what was seen (amounts in the deal currency).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCheck {
    /// The rule (`country`, `first_deposit_within_days`,
    /// `min_first_deposit`, `min_total_deposits`, `min_wagering`, `kyc`,
    /// `no_blocking_flag`).
    pub rule: &'static str,
    /// Whether it holds at the end of the player's history.
    pub met: bool,
    /// What the deal requires.
    pub required: String,
    /// What the player's events show.
    pub seen: String,
    /// The events behind `seen`.
    pub events: Vec<BrandEventId>,
}

/// Every CPA rule of `terms` checked against the whole of `facts`, for the
/// operator who asks why a CPA has not qualified (yet): unlike
/// [`evaluate`], nothing stops at the first unmet rule. Amounts converted
/// event by event with the FX table of the event's month; an amount that
/// cannot be converted is reported in `seen`.
pub fn explain(
    facts: &PlayerFacts,
    terms: &CpaTerms,
    currency: Currency,
    fx: &FxBook,
) -> Vec<RuleCheck> {
    let reg = facts.registration();
    let convert = |amount: Money, at: Timestamp| {
        fx.convert(amount, currency, at.month())
            .map(|c| c.amount)
            .map_err(|e| e.to_string())
    };
    let mut out = Vec::new();
    let amount = terms.amount_for(reg.country);
    out.push(RuleCheck {
        rule: "country",
        met: amount.is_some(),
        required: "a CPA amount for the registration country".into(),
        seen: match amount {
            Some(a) => format!("{} pays {a}", reg.country.as_str()),
            None => format!("{} has no CPA amount", reg.country.as_str()),
        },
        events: vec![reg.event.clone()],
    });
    let first = facts.first_deposit();
    let within = terms.first_deposit_within_days();
    out.push(RuleCheck {
        rule: "first_deposit_within_days",
        met: first.is_some_and(|(e, _)| e.at <= reg.at.plus_days(within)),
        required: format!("first deposit within {within} days of registration"),
        seen: match first {
            Some((e, _)) => format!(
                "first deposit {} days after registration",
                (e.at.unix_ms().saturating_sub(reg.at.unix_ms())) / 86_400_000
            ),
            None => "no deposit".into(),
        },
        events: first.iter().map(|(e, _)| e.id.clone()).collect(),
    });
    let min_first = terms.min_first_deposit();
    let first_converted = first.map(|(e, a)| convert(a, e.at));
    out.push(RuleCheck {
        rule: "min_first_deposit",
        met: matches!(&first_converted, Some(Ok(a)) if a.minor() >= min_first.minor()),
        required: format!("first deposit at least {min_first}"),
        seen: match &first_converted {
            Some(Ok(a)) => format!("first deposit {a}"),
            Some(Err(e)) => format!("first deposit not convertible: {e}"),
            None => "no deposit".into(),
        },
        events: first.iter().map(|(e, _)| e.id.clone()).collect(),
    });
    let sum = |pick: &dyn Fn(&super::facts::PlayerEvent) -> Option<Money>| {
        let mut total = Money::zero(currency);
        let mut ids = Vec::new();
        for e in facts.events() {
            if let Some(m) = pick(e) {
                let c = convert(m, e.at)?;
                total = total.checked_add(&c).map_err(|e| e.to_string())?;
                ids.push(e.id.clone());
            }
        }
        Ok::<_, String>((total, ids))
    };
    for (rule, min, what, pick) in [
        (
            "min_total_deposits",
            terms.min_total_deposits(),
            "deposits",
            &(|e: &super::facts::PlayerEvent| match &e.kind {
                EventKind::Deposit { amount } => Some(*amount),
                _ => None,
            }) as &dyn Fn(&super::facts::PlayerEvent) -> Option<Money>,
        ),
        (
            "min_wagering",
            terms.min_wagering(),
            "stakes",
            &|e: &super::facts::PlayerEvent| match &e.kind {
                EventKind::Game { stakes, .. } => Some(*stakes),
                _ => None,
            },
        ),
    ] {
        let seen = sum(pick);
        out.push(RuleCheck {
            rule,
            met: matches!(&seen, Ok((t, _)) if t.minor() >= min.minor()),
            required: format!("{what} at least {min}"),
            seen: match &seen {
                Ok((t, _)) => format!("{what} {t}"),
                Err(e) => format!("{what} not computable: {e}"),
            },
            events: seen.map(|(_, ids)| ids).unwrap_or_default(),
        });
    }
    let kyc = facts.kyc();
    let (met, seen, events) = match &kyc {
        super::facts::Kyc::Approved { event, .. } => {
            (true, "approved".to_owned(), vec![event.clone()])
        }
        super::facts::Kyc::Pending => (
            false,
            "not decided yet (the CPA waits as awaiting KYC)".to_owned(),
            vec![],
        ),
        super::facts::Kyc::Rejected { event, .. } => {
            (false, "rejected".to_owned(), vec![event.clone()])
        }
        super::facts::Kyc::Revoked { event, .. } => {
            (false, "revoked".to_owned(), vec![event.clone()])
        }
    };
    out.push(RuleCheck {
        rule: "kyc",
        met,
        required: "KYC approved".into(),
        seen,
        events,
    });
    let mut gates = Gates::default();
    for e in facts.events() {
        gates.apply(e);
    }
    let blocked = gates.blocked();
    out.push(RuleCheck {
        rule: "no_blocking_flag",
        met: blocked.is_none(),
        required: "no self-exclusion, block, duplicate account, chargeback or confirmed fraud"
            .into(),
        seen: match &blocked {
            None => "none".into(),
            Some(Unmet::Flagged { flag, .. }) => format!("{flag:?} in force"),
            Some(Unmet::Chargeback { .. }) => "a chargeback".into(),
            Some(Unmet::Fraud { .. }) => "fraud confirmed".into(),
            Some(other) => format!("{other:?}"),
        },
        events: match blocked {
            Some(
                Unmet::Flagged { event, .. } | Unmet::Chargeback { event } | Unmet::Fraud { event },
            ) => {
                vec![event]
            }
            _ => Vec::new(),
        },
    });
    out
}

/// The clawback trigger of a final CPA qualified at `q.at`, if any.
pub fn clawback(facts: &PlayerFacts, q: &Qualification, clawback_days: u32) -> Option<Clawback> {
    let t = q.at;
    let window_end = t.plus_days(clawback_days);
    let approved_at_end = matches!(facts.kyc(), super::facts::Kyc::Approved { .. });
    facts.events().iter().filter(|e| e.at > t).find_map(|e| {
        let event = facts.event_ref(&e.id);
        let reason = match &e.kind {
            EventKind::FraudConfirmed => Reason::FraudConfirmed { event },
            EventKind::Kyc {
                status: KycStatus::Rejected | KycStatus::Revoked,
            } if !approved_at_end => Reason::KycRevoked { event },
            EventKind::Chargeback { .. } if e.at <= window_end => Reason::Chargeback { event },
            EventKind::Flag {
                flag: Flag::SelfExclusion,
                active: true,
            } if e.at <= window_end => Reason::SelfExclusion { event },
            _ => return None,
        };
        Some(Clawback { reason, at: e.at })
    })
}
