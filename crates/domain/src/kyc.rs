//! The KYC gate: an attribution (and its commission) becomes final only
//! once the player's KYC is approved.
//!
//! Owns [`AttributionStatus`] and the pure transition on a KYC decision,
//! with the effect the commission side must apply. Does not compute or store
//! commissions, and does not order events: the caller applies KYC decisions
//! in the order the brand made them (the latest decision wins).
//!
//! | status \ event | approved                | rejected               | revoked                |
//! |----------------|-------------------------|------------------------|------------------------|
//! | `pending_kyc`  | `final`, **payable**    | `rejected`, none       | `rejected`, none       |
//! | `final`        | `final`, none           | `rejected`, **claw back** | `rejected`, **claw back** |
//! | `rejected`     | `final`, **payable**    | `rejected`, none       | `rejected`, none       |
//!
//! So `payable` happens only on entering `final` and `claw back` only on
//! leaving it: along any sequence of events the effects alternate, starting
//! with `payable`, and the commission ledger nets to the right amount
//! whatever the order of approvals and revocations. A revocation after the
//! attribution was final leaves the attribution on record (who brought the
//! player does not change) but `rejected`, and tells the commission side to
//! claw back what was paid for it. A revocation of a KYC never approved is
//! treated as a rejection (fail closed).

use serde::{Deserialize, Serialize};

/// Where an attribution stands with respect to KYC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributionStatus {
    /// Decided, waiting for KYC: no commission yet.
    PendingKyc,
    /// KYC approved: commission may be paid.
    Final,
    /// KYC rejected or revoked: no commission.
    Rejected,
}

/// A KYC decision reported by the brand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KycEvent {
    /// Identity verified.
    Approved,
    /// Verification failed.
    Rejected,
    /// An earlier approval withdrawn.
    Revoked,
}

/// What the commission side must do after a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommissionEffect {
    /// Nothing changes.
    None,
    /// The attribution just became final: its commission is payable.
    Payable,
    /// The attribution was final and no longer is: reverse what was paid.
    ClawBack,
}

/// The new status and its effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct KycTransition {
    /// The status after the event.
    pub status: AttributionStatus,
    /// What the commission side must do.
    pub effect: CommissionEffect,
}

impl AttributionStatus {
    /// The status after `event` and its commission effect (see the table in
    /// the module docs).
    pub fn on_kyc(self, event: KycEvent) -> KycTransition {
        use AttributionStatus as S;
        use CommissionEffect as E;
        let (status, effect) = match (self, event) {
            (S::Final, KycEvent::Approved) => (S::Final, E::None),
            (_, KycEvent::Approved) => (S::Final, E::Payable),
            (S::Final, KycEvent::Rejected | KycEvent::Revoked) => (S::Rejected, E::ClawBack),
            (_, KycEvent::Rejected | KycEvent::Revoked) => (S::Rejected, E::None),
        };
        KycTransition { status, effect }
    }

    /// Stable code (`attributions.status`): `pending_kyc`, `final`,
    /// `rejected`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::PendingKyc => "pending_kyc",
            Self::Final => "final",
            Self::Rejected => "rejected",
        }
    }

    /// Whether commission may be paid in this status.
    pub fn is_payable(&self) -> bool {
        *self == Self::Final
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(status: AttributionStatus, effect: CommissionEffect) -> KycTransition {
        KycTransition { status, effect }
    }

    #[test]
    fn approval_makes_a_pending_attribution_final_and_payable() {
        assert_eq!(
            AttributionStatus::PendingKyc.on_kyc(KycEvent::Approved),
            t(AttributionStatus::Final, CommissionEffect::Payable)
        );
    }

    #[test]
    fn rejected_kyc_means_no_commission() {
        for e in [KycEvent::Rejected, KycEvent::Revoked] {
            assert_eq!(
                AttributionStatus::PendingKyc.on_kyc(e),
                t(AttributionStatus::Rejected, CommissionEffect::None)
            );
        }
    }

    #[test]
    fn revocation_after_final_rejects_and_claws_back() {
        assert_eq!(
            AttributionStatus::Final.on_kyc(KycEvent::Revoked),
            t(AttributionStatus::Rejected, CommissionEffect::ClawBack)
        );
        assert_eq!(
            AttributionStatus::Final.on_kyc(KycEvent::Approved),
            t(AttributionStatus::Final, CommissionEffect::None),
            "a repeated approval pays nothing twice"
        );
    }

    #[test]
    fn a_later_approval_after_rejection_makes_it_final() {
        assert_eq!(
            AttributionStatus::Rejected.on_kyc(KycEvent::Approved),
            t(AttributionStatus::Final, CommissionEffect::Payable)
        );
    }

    fn event() -> impl Strategy<Value = KycEvent> {
        prop_oneof![
            Just(KycEvent::Approved),
            Just(KycEvent::Rejected),
            Just(KycEvent::Revoked)
        ]
    }

    proptest! {
        #[test]
        fn payable_and_claw_back_alternate_so_the_ledger_always_nets_out(events in proptest::collection::vec(event(), 0..30)) {
            let mut status = AttributionStatus::PendingKyc;
            let mut paid = 0i32;
            for e in events {
                let next = status.on_kyc(e);
                match next.effect {
                    CommissionEffect::Payable => paid += 1,
                    CommissionEffect::ClawBack => paid -= 1,
                    CommissionEffect::None => {}
                }
                prop_assert!(paid == 0 || paid == 1);
                status = next.status;
                prop_assert_eq!(paid == 1, status.is_payable());
            }
        }
    }
}
