//! The gate every request passes before its handler: who is calling
//! ([`super::auth::authenticate`], kept for the handler's extractors) and
//! whether their rate limit admits it ([`super::rate_limit`]). A request
//! without valid credentials from a locked-out address, or over its
//! credential's bucket, gets a JSON 429 with `Retry-After`; a 401 is
//! charged to the client address afterwards.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::{authenticate, Principal};
use super::error::ApiError;
use super::rate_limit::{Bucket, RateLimits};
use super::state::AppState;

fn bucket_of(principal: &Principal, path: &str) -> Option<Bucket> {
    match principal {
        Principal::Edge => Some(Bucket::Edge),
        Principal::Operator(op) => Some(Bucket::Operator(op.key_id.clone())),
        Principal::Brand { key_id, .. } | Principal::Affiliate { key_id, .. } => {
            Some(Bucket::Key(key_id.clone()))
        }
        Principal::Anonymous => path
            .strip_prefix("/postback/v1/")
            .filter(|brand| brand.len() <= 64 && !brand.contains('/'))
            .map(|brand| Bucket::Postback(brand.to_owned())),
    }
}

/// The JSON 429 answer, with `Retry-After` in whole seconds (at least 1).
fn too_many(wait: Duration, what: &'static str) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut response = ApiError::TooManyRequests {
        what,
        retry_after_secs: secs,
    }
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// The middleware: see the module docs.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limits: Arc<RateLimits> = state.rate_limits();
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let principal = match authenticate(&mut parts, &state).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // A locked-out address gets nothing without valid credentials; valid
    // credentials go on (an attacker sharing a NAT address cannot lock
    // honest clients out), charged to their own buckets.
    if principal == Principal::Anonymous {
        if let Some(wait) = limits.locked_for(ip) {
            state.metrics().rate_limited("failed_auth");
            return too_many(wait, "failed authentications from this address");
        }
    }
    if let Some(bucket) = bucket_of(&principal, parts.uri.path()) {
        if let Some(wait) = limits.charge(&bucket) {
            state.metrics().rate_limited(match bucket {
                Bucket::Edge => "edge",
                Bucket::Operator(_) => "operator",
                Bucket::Key(_) => "key",
                Bucket::Postback(_) => "postback",
            });
            return too_many(wait, "requests for this credential");
        }
    }
    let response = next.run(Request::from_parts(parts, body)).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        limits.failed(ip);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postbacks_are_charged_to_the_brand_in_the_path() {
        assert_eq!(
            bucket_of(&Principal::Anonymous, "/postback/v1/abc"),
            Some(Bucket::Postback("abc".into()))
        );
        assert_eq!(bucket_of(&Principal::Anonymous, "/admin/v1/brands"), None);
    }
}
