//! Bearer-token authentication for the two kinds of caller: the edge worker
//! (shared edge secret) and operators (operator token). Tokens are compared
//! in constant time and never logged.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::keys::KeyScope;
use crate::startup::AppState;

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

/// Proof that the request came from the edge worker.
#[derive(Debug, Clone, Copy)]
pub struct EdgeCaller;

impl FromRequestParts<AppState> for EdgeCaller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if matches(bearer(parts), &state.secrets().edge_secret) {
            Ok(EdgeCaller)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// Proof that the request came from an operator.
#[derive(Debug, Clone, Copy)]
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if matches(bearer(parts), &state.secrets().operator_token) {
            Ok(Operator)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// A brand authenticated by one of its API keys.
#[derive(Debug, Clone, Copy)]
pub struct BrandCaller(pub clickstitch_shared::BrandId);

impl FromRequestParts<AppState> for BrandCaller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match ApiCaller::from_request_parts(parts, state).await? {
            ApiCaller::Brand(b) => Ok(BrandCaller(b)),
            _ => Err(ApiError::Forbidden("this endpoint takes a brand API key")),
        }
    }
}

/// Whoever calls the read API: the operator (everything), a brand (its own
/// data) or an affiliate (its own data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiCaller {
    /// The operator token.
    Operator,
    /// A brand key.
    Brand(clickstitch_shared::BrandId),
    /// An affiliate key.
    Affiliate(clickstitch_shared::AffiliateId),
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
        if matches(Some(token), &state.secrets().operator_token) {
            return Ok(ApiCaller::Operator);
        }
        match state.keys().authenticate(token).await? {
            Some(KeyScope::Brand { brand_id }) => Ok(ApiCaller::Brand(brand_id)),
            Some(KeyScope::Affiliate { affiliate_id }) => Ok(ApiCaller::Affiliate(affiliate_id)),
            None => Err(ApiError::Unauthorized),
        }
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
}
