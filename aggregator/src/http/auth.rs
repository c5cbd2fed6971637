//! Who is calling: bearer-token authentication, done once per request, and
//! the extractors handlers use to require a kind of caller.
//!
//! Callers are the edge worker (shared edge secret), the bootstrap operator
//! (the configured operator token), named operators, brands and affiliates
//! (API keys, see [`crate::keys`]). [`authenticate`] decides once per
//! request and keeps the [`Principal`] in the request's extensions, so the
//! rate limiter ([`super::rate_limit`]) and the extractors agree on it.
//! Tokens are compared in constant time and never logged. Knows nothing of
//! routes beyond the HTTP method (a read or a change).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::Method;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use clickstitch_shared::{AffiliateId, BrandId};

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::keys::{KeyScope, Permission, Role};

/// The owner recorded for what the bootstrap operator token does.
pub const BOOTSTRAP_OWNER: &str = "bootstrap";

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn matches(given: Option<&str>, expected: &SecretString) -> bool {
    given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(expected.expose_secret().as_bytes())))
}

/// An operator: the bootstrap token or a named credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorIdentity {
    /// What it may do.
    pub role: Role,
    /// Who holds it ([`BOOTSTRAP_OWNER`] for the bootstrap token).
    owner: String,
    /// The credential's key id; None for the bootstrap token.
    pub key_id: Option<String>,
    /// The bootstrap token when `auth.bootstrap_full_access` is off: it may
    /// only manage operator credentials.
    pub bootstrap_limited: bool,
}

impl OperatorIdentity {
    /// Who holds the credential: recorded on decisions, closes and payouts.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The credential as recorded next to the owner: `operator_token`
    /// (the bootstrap token) or `operator:<key id>`.
    pub fn credential(&self) -> String {
        match &self.key_id {
            Some(id) => format!("operator:{id}"),
            None => "operator_token".to_owned(),
        }
    }

    /// Whether this is the bootstrap token.
    pub fn is_bootstrap(&self) -> bool {
        self.key_id.is_none()
    }

    fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.bootstrap_limited {
            return Err(ApiError::Forbidden(
                "the bootstrap token only manages operator credentials here \
                 (auth.bootstrap_full_access is off)",
            ));
        }
        if self.role.grants(permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(match permission {
                Permission::Read => "this credential may not read",
                Permission::Finance => "this needs an admin or finance credential",
                Permission::Risk => "this needs an admin or risk reviewer credential",
                Permission::Admin => "this needs an admin credential",
            }))
        }
    }
}

/// Who is calling, decided once per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The edge worker.
    Edge,
    /// An operator.
    Operator(OperatorIdentity),
    /// A brand's API key.
    Brand {
        /// The key.
        key_id: String,
        /// Its brand.
        brand: BrandId,
    },
    /// An affiliate's API key.
    Affiliate {
        /// The key.
        key_id: String,
        /// Its affiliate.
        affiliate: AffiliateId,
    },
    /// No credentials, or credentials that match nothing.
    Anonymous,
}

/// The caller of a request (cached in its extensions after the first call).
pub async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Principal, ApiError> {
    if let Some(p) = parts.extensions.get::<Principal>() {
        return Ok(p.clone());
    }
    let principal = identify(bearer(parts), state).await?;
    parts.extensions.insert(principal.clone());
    Ok(principal)
}

async fn identify(token: Option<&str>, state: &AppState) -> Result<Principal, ApiError> {
    let Some(token) = token else {
        return Ok(Principal::Anonymous);
    };
    let secrets = state.secrets();
    if matches(Some(token), &secrets.edge_secret) {
        return Ok(Principal::Edge);
    }
    if matches(Some(token), &secrets.operator_token) {
        return Ok(Principal::Operator(OperatorIdentity {
            role: Role::Admin,
            owner: BOOTSTRAP_OWNER.to_owned(),
            key_id: None,
            bootstrap_limited: !secrets.bootstrap_full_access,
        }));
    }
    Ok(match state.keys().authenticate(token).await? {
        Some((key_id, KeyScope::Brand { brand_id })) => Principal::Brand {
            key_id,
            brand: brand_id,
        },
        Some((key_id, KeyScope::Affiliate { affiliate_id })) => Principal::Affiliate {
            key_id,
            affiliate: affiliate_id,
        },
        Some((key_id, KeyScope::Operator { role, owner })) => {
            Principal::Operator(OperatorIdentity {
                role,
                owner: owner.as_str().to_owned(),
                key_id: Some(key_id),
                bootstrap_limited: false,
            })
        }
        None => Principal::Anonymous,
    })
}

async fn operator(parts: &mut Parts, state: &AppState) -> Result<OperatorIdentity, ApiError> {
    match authenticate(parts, state).await? {
        Principal::Operator(op) => Ok(op),
        // Other credentials are not operator credentials at all: 401, as
        // for a wrong token (403 is for an operator whose role lacks it).
        _ => Err(ApiError::Unauthorized),
    }
}

/// Proof that the request came from the edge worker.
#[derive(Debug, Clone, Copy)]
pub struct EdgeCaller;

impl FromRequestParts<AppState> for EdgeCaller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authenticate(parts, state).await? {
            Principal::Edge => Ok(EdgeCaller),
            _ => Err(ApiError::Unauthorized),
        }
    }
}

/// An operator allowed to do this request: any role reads (`GET`,
/// `HEAD`); any other method needs the admin role (see [`Finance`] and
/// [`RiskReviewer`] for the changes other roles may make).
#[derive(Debug, Clone)]
pub struct Operator(pub OperatorIdentity);

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let op = operator(parts, state).await?;
        let permission = if matches!(parts.method, Method::GET | Method::HEAD) {
            Permission::Read
        } else {
            Permission::Admin
        };
        op.require(permission)?;
        Ok(Operator(op))
    }
}

/// An operator that may change money configuration and run commissions,
/// closes and payouts (admin or finance).
#[derive(Debug, Clone)]
pub struct Finance(pub OperatorIdentity);

impl FromRequestParts<AppState> for Finance {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let op = operator(parts, state).await?;
        op.require(Permission::Finance)?;
        Ok(Finance(op))
    }
}

/// An operator that may decide fraud reviews and run sweeps (admin or risk
/// reviewer).
#[derive(Debug, Clone)]
pub struct RiskReviewer(pub OperatorIdentity);

impl FromRequestParts<AppState> for RiskReviewer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let op = operator(parts, state).await?;
        op.require(Permission::Risk)?;
        Ok(RiskReviewer(op))
    }
}

/// An operator that manages operator credentials: an admin, or the
/// bootstrap token whatever `auth.bootstrap_full_access` says (it creates
/// the first admin).
#[derive(Debug, Clone)]
pub struct CredentialAdmin(pub OperatorIdentity);

impl FromRequestParts<AppState> for CredentialAdmin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let mut op = operator(parts, state).await?;
        op.bootstrap_limited = false;
        op.require(Permission::Admin)?;
        Ok(CredentialAdmin(op))
    }
}

/// A brand authenticated by one of its API keys.
#[derive(Debug, Clone, Copy)]
pub struct BrandCaller(pub BrandId);

impl FromRequestParts<AppState> for BrandCaller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match ApiCaller::from_request_parts(parts, state).await? {
            ApiCaller::Brand(b) => Ok(BrandCaller(b)),
            _ => Err(ApiError::Forbidden("this endpoint takes a brand API key")),
        }
    }
}

/// Whoever calls the read API: an operator (everything), a brand (its own
/// data) or an affiliate (its own data). An operator changing something
/// through this API needs the permission the handler checks
/// ([`require_operator`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiCaller {
    /// An operator (any role).
    Operator,
    /// A brand key.
    Brand(BrandId),
    /// An affiliate key.
    Affiliate(AffiliateId),
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authenticate(parts, state).await? {
            Principal::Operator(op) => {
                if op.bootstrap_limited {
                    op.require(Permission::Read)?;
                }
                Ok(ApiCaller::Operator)
            }
            Principal::Brand { brand, .. } => Ok(ApiCaller::Brand(brand)),
            Principal::Affiliate { affiliate, .. } => Ok(ApiCaller::Affiliate(affiliate)),
            Principal::Edge | Principal::Anonymous => Err(ApiError::Unauthorized),
        }
    }
}

/// The operator behind an [`ApiCaller::Operator`] request, checked for
/// `permission`.
pub fn require_operator(
    principal: Option<&Principal>,
    permission: Permission,
) -> Result<OperatorIdentity, ApiError> {
    match principal {
        Some(Principal::Operator(op)) => {
            op.require(permission)?;
            Ok(op.clone())
        }
        _ => Err(ApiError::Unauthorized),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_match_exactly() {
        let secret = SecretString::from("0123456789abcdef");
        assert!(matches(Some("0123456789abcdef"), &secret));
        assert!(!matches(Some("0123456789abcdeF"), &secret));
        assert!(!matches(Some("0123456789abcde"), &secret));
        assert!(!matches(None, &secret));
    }

    fn op(role: Role, limited: bool) -> OperatorIdentity {
        OperatorIdentity {
            role,
            owner: "ana".into(),
            key_id: Some("k".into()),
            bootstrap_limited: limited,
        }
    }

    #[test]
    fn a_read_only_operator_may_read_but_not_decide_or_pay() {
        let o = op(Role::ReadOnly, false);
        assert!(o.require(Permission::Read).is_ok());
        assert!(o.require(Permission::Risk).is_err());
        assert!(o.require(Permission::Finance).is_err());
        assert!(o.require(Permission::Admin).is_err());
    }

    #[test]
    fn a_limited_bootstrap_token_may_do_nothing_but_manage_credentials() {
        assert!(op(Role::Admin, true).require(Permission::Read).is_err());
        assert_eq!(op(Role::Admin, false).credential(), "operator:k");
    }
}
