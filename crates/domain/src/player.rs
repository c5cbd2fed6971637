//! The global player id (one per person across the brands of a player link
//! group) and the responsible-gaming and account flags brands report.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use clickstitch_shared::BrandId;

/// UUIDv5 namespace of global player ids.
const PLAYER_NAMESPACE: Uuid = Uuid::from_u128(0x6c1e_5a3b_9d2f_4e07_8a41_c0ff_ee15_7a7e);

/// The global player id: one UUID per person across the operator's brands.
///
/// Derived deterministically (UUIDv5), so no lookup or coordination is
/// needed: from the operator-wide `player_ref` when the brand sends one
/// (e.g. the operator's customer account shared by its brands, or a keyed
/// hash of the verified e-mail) within the brand's player link group,
/// otherwise from the brand and its player id. Brands never see it; they
/// keep addressing their players by their own ids.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlayerId(Uuid);

impl PlayerId {
    /// The id of player `brand_player` of `brand`, in the operator's shared
    /// link group.
    pub fn derive(brand: BrandId, brand_player: &str, player_ref: Option<&str>) -> Self {
        Self::derive_in(brand, brand_player, player_ref, "")
    }

    /// The id of player `brand_player` of `brand` in link group `group`:
    /// one `player_ref` is one player only among brands of the same group.
    pub fn derive_in(
        brand: BrandId,
        brand_player: &str,
        player_ref: Option<&str>,
        group: &str,
    ) -> Self {
        let name = match (player_ref, group) {
            (Some(r), "") => format!("ref:{r}"),
            (Some(r), g) => format!("ref:{g}:{r}"),
            (None, _) => format!("brand:{brand}:{brand_player}"),
        };
        Self(Uuid::new_v5(&PLAYER_NAMESPACE, name.as_bytes()))
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for PlayerId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl fmt::Display for PlayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

impl fmt::Debug for PlayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlayerId({})", self.0)
    }
}

/// Responsible-gaming and account flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// Self-exclusion: blocks CPA qualification; set inside the clawback
    /// window after a CPA qualified, it claws the CPA back.
    SelfExclusion,
    /// Time-out / cooling-off (no commission effect).
    CoolingOff,
    /// Deposit limit (no commission effect).
    DepositLimit,
    /// Account closed by the player (no commission effect).
    AccountClosed,
    /// Blocked by the operator: blocks CPA qualification.
    Blocked,
    /// Duplicate of another player's account: blocks CPA qualification.
    DuplicateAccount,
}

impl Flag {
    /// Stable text form.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::SelfExclusion => "self_exclusion",
            Self::CoolingOff => "cooling_off",
            Self::DepositLimit => "deposit_limit",
            Self::AccountClosed => "account_closed",
            Self::Blocked => "blocked",
            Self::DuplicateAccount => "duplicate_account",
        }
    }

    /// Whether the flag, in force, prevents CPA qualification.
    pub fn blocks_cpa(self) -> bool {
        matches!(
            self,
            Flag::SelfExclusion | Flag::Blocked | Flag::DuplicateAccount
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brand(n: u128) -> BrandId {
        BrandId::from(Uuid::from_u128(n))
    }

    #[test]
    fn global_player_ids_unify_brands_only_through_a_player_ref_of_one_group() {
        assert_ne!(
            PlayerId::derive(brand(1), "p-1", None),
            PlayerId::derive(brand(2), "p-1", None)
        );
        assert_eq!(
            PlayerId::derive(brand(1), "p-1", Some("cust-9")),
            PlayerId::derive(brand(2), "x", Some("cust-9"))
        );
        assert_ne!(
            PlayerId::derive_in(brand(1), "p-1", Some("cust-9"), "white-label-7"),
            PlayerId::derive(brand(2), "p-1", Some("cust-9")),
        );
    }

    #[test]
    fn flags_have_stable_names() {
        let json = serde_json::to_string(&Flag::SelfExclusion).expect("json");
        assert_eq!(json, format!("\"{}\"", Flag::SelfExclusion.as_str()));
        assert!(Flag::Blocked.blocks_cpa() && !Flag::CoolingOff.blocks_cpa());
    }
}
