//! Credentials as data: API keys and their scopes (brand, affiliate, named
//! operator with a [`Role`]), and postback secret rotations. The
//! [`crate::keys`] service issues, checks and caches them; the store
//! persists them.

use serde::Serialize;

use clickstitch_shared::{AffiliateId, BrandId};

/// What a named operator credential may do (docs/security.md "Roles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including issuing and revoking credentials.
    Admin,
    /// Reads; deals, NGR formulas, FX tables, commission runs, period
    /// closes and payout runs.
    Finance,
    /// Reads; fraud review decisions and population sweeps.
    RiskReviewer,
    /// Reads only.
    ReadOnly,
}

/// What a request wants to do, as far as roles are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read anything (every role).
    Read,
    /// Money configuration and runs (admin, finance).
    Finance,
    /// Fraud decisions (admin, risk reviewer).
    Risk,
    /// Everything else that changes state (admin).
    Admin,
}

impl Role {
    /// Parses `admin`, `finance`, `risk_reviewer` or `read_only`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "finance" => Some(Self::Finance),
            "risk_reviewer" => Some(Self::RiskReviewer),
            "read_only" => Some(Self::ReadOnly),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Finance => "finance",
            Self::RiskReviewer => "risk_reviewer",
            Self::ReadOnly => "read_only",
        }
    }

    /// Whether this role grants `permission`.
    pub fn grants(self, permission: Permission) -> bool {
        matches!(
            (self, permission),
            (Self::Admin, _)
                | (_, Permission::Read)
                | (Self::Finance, Permission::Finance)
                | (Self::RiskReviewer, Permission::Risk)
        )
    }
}

/// Longest owner name of an operator credential, bytes.
pub const MAX_OWNER_BYTES: usize = 128;

/// Who an operator credential belongs to: 1..=128 bytes of printable text
/// (a name or an e-mail address), recorded on what the credential decides.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Owner(String);

impl Owner {
    /// Trims and checks `s`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        (!s.is_empty() && s.len() <= MAX_OWNER_BYTES && !s.chars().any(char::is_control))
            .then(|| Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whose key it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum KeyScope {
    /// A brand's key: its own events, players and commissions.
    Brand {
        /// The brand.
        brand_id: BrandId,
    },
    /// An affiliate's key: its own commissions.
    Affiliate {
        /// The affiliate.
        affiliate_id: AffiliateId,
    },
    /// A named operator's credential: the admin API within its role.
    Operator {
        /// What it may do.
        role: Role,
        /// Who holds it.
        owner: Owner,
    },
}

/// A stored key (without its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Public id (part of the token).
    pub key_id: String,
    /// SHA-256 of the full token, hex.
    #[serde(skip)]
    pub token_sha256: String,
    /// Whose key.
    #[serde(flatten)]
    pub scope: KeyScope,
    /// Unix seconds.
    pub created_at: u32,
    /// Revoked keys authenticate nothing.
    pub revoked: bool,
    /// Version (Unix ms of the last change).
    #[serde(skip)]
    pub version: u64,
}

/// A brand's latest postback secret rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostbackRotation {
    /// The brand.
    pub brand: BrandId,
    /// The generation now in force (1 after the first rotation).
    pub generation: u32,
    /// When it was rotated (Unix ms).
    pub rotated_at_ms: u64,
    /// Until when the previous generation is still accepted (Unix ms).
    pub previous_valid_until_ms: u64,
}
