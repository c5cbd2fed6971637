//! `GET /postback/v1/{brand_id}?…`: server-to-server postbacks for brands
//! and trackers that can only fire URLs.
//!
//! Conventional parameters: `event` (registration, deposit / ftd,
//! withdrawal, chargeback, bonus, kyc_approved / kyc_rejected /
//! kyc_revoked, self_exclusion), `txid` (the brand's unique event id),
//! `player_id`, `click_id`, `amount` (decimal), `currency`, `country`, `ts`
//! (Unix seconds).
//!
//! Authentication, per brand, either:
//! * `secret=<postback secret>`, or
//! * `sig=<hex HMAC-SHA256(postback secret, canonical)>` where canonical is
//!   every other parameter as `key=value`, sorted by key, joined with `&`
//!   (values percent-decoded); `ts` is then required and must be within
//!   five minutes of the server's clock.
//!
//! The same idempotency as the API applies (txid = event id).

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use secrecy::ExposeSecret;

use clickstitch_shared::BrandId;

use crate::error::Problem;
use crate::events::{EventRequest, Source};
use crate::http::error::ApiError;
use crate::http::routes::events::submit;
use crate::http::state::AppState;
use crate::keys::{same, sign};

/// Largest accepted clock difference for signed postbacks, seconds.
const MAX_SKEW_SECS: u64 = 300;

/// Takes one postback.
pub async fn postback(
    State(state): State<AppState>,
    Path(brand): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let brand = BrandId::parse(&brand).map_err(|_| ApiError::NotFound("brand"))?;
    let mut params = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if params.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(ApiError::BadRequest("a parameter is repeated".into()));
        }
    }
    let now_ms = crate::support::clock::now_ms();
    // The current secret, and the previous one while a rotation's overlap
    // lasts.
    let secrets = state.keys().accepted_postback_secrets(brand, now_ms);
    if secrets.is_empty() {
        return Err(ApiError::NotFound("postbacks"));
    }
    if !state.catalog().brands().iter().any(|b| b.id == brand) {
        return Err(ApiError::Unauthorized);
    }
    let now_secs = now_ms / 1000;
    let mut outcome = Err(ApiError::Unauthorized);
    for secret in &secrets {
        outcome = authenticate(&params, secret.expose_secret(), now_secs);
        if !matches!(outcome, Err(ApiError::Unauthorized)) {
            break;
        }
    }
    outcome?;
    let request = to_request(&params, now_secs).map_err(ApiError::Validation)?;
    let event = request
        .with_ip_storage(state.catalog().ip_storage(brand))
        .with_link_group(&state.catalog().link_group(brand))
        .into_event(
            brand,
            Source::Postback,
            &state.event_time_policy(crate::support::clock::now_ms()),
        )
        .map_err(ApiError::Validation)?;
    submit(&state, event).await
}

/// Checks `secret=` or `sig=` (see the module docs).
fn authenticate(
    params: &BTreeMap<String, String>,
    secret: &str,
    now_secs: u64,
) -> Result<(), ApiError> {
    if let Some(given) = params.get("secret") {
        return if same(given, secret) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        };
    }
    let sig = params.get("sig").ok_or(ApiError::Unauthorized)?;
    let ts: u64 = params
        .get("ts")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| {
            ApiError::Validation(vec![Problem::new(
                "ts",
                "signed postbacks need ts (Unix seconds)",
            )])
        })?;
    if ts.abs_diff(now_secs) > MAX_SKEW_SECS {
        return Err(ApiError::Validation(vec![Problem::new(
            "ts",
            "more than five minutes from the server's clock",
        )]));
    }
    if same(&sign(secret, &canonical(params)), &sig.to_ascii_lowercase()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// The signed string: every parameter but `sig` and `secret`, sorted.
pub fn canonical(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .filter(|(k, _)| k.as_str() != "sig" && k.as_str() != "secret")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Maps postback parameters onto the API's event request.
fn to_request(p: &BTreeMap<String, String>, now_secs: u64) -> Result<EventRequest, Vec<Problem>> {
    let get = |k: &str| p.get(k).cloned();
    // `ts` is Unix seconds; absent means now. Anything else is refused
    // (never silently "now"), and so is a value whose milliseconds overflow.
    let occurred_at_ms = match p.get("ts") {
        None => now_secs.saturating_mul(1000),
        Some(t) => t
            .parse::<u64>()
            .ok()
            .and_then(|secs| secs.checked_mul(1000))
            .ok_or_else(|| {
                vec![Problem::new(
                    "ts",
                    "must be Unix seconds (digits only, within the accepted event window)",
                )]
            })?,
    };
    let mut r = EventRequest {
        event_id: get("txid"),
        player_id: get("player_id"),
        player_ref: get("player_ref"),
        click_id: get("click_id"),
        currency: get("currency"),
        amount: get("amount").map(serde_json::Value::String),
        occurred_at: Some(serde_json::Value::from(occurred_at_ms)),
        ..EventRequest::default()
    };
    let event = p.get("event").map(String::as_str).unwrap_or("");
    match event {
        "registration" | "reg" | "signup" | "lead" => {
            r.event_type = Some("registration".into());
            r.country = Some(get("country").unwrap_or_else(|| "XX".into()));
        }
        "deposit" | "ftd" | "first_deposit" => r.event_type = Some("deposit".into()),
        "withdrawal" | "chargeback" | "bonus" => r.event_type = Some(event.into()),
        "kyc_approved" | "kyc_rejected" | "kyc_revoked" => {
            r.event_type = Some("kyc".into());
            r.status = Some(event.trim_start_matches("kyc_").into());
        }
        "self_exclusion" => {
            r.event_type = Some("responsible_gaming".into());
            r.flag = Some("self_exclusion".into());
            r.active = Some(true);
        }
        other => {
            return Err(vec![Problem::new(
                "event",
                format!("unknown postback event {other:?}; known: registration, deposit, ftd, withdrawal, chargeback, bonus, kyc_approved, kyc_rejected, kyc_revoked, self_exclusion"),
            )])
        }
    }
    Ok(r)
}

/// `GET /postback/v1/{brand_id}`.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/postback/v1/{brand_id}", axum::routing::get(postback))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_canonical_string_sorts_keys_and_leaves_out_the_signature() {
        let p = params(&[
            ("txid", "t1"),
            ("event", "deposit"),
            ("sig", "x"),
            ("amount", "5.00"),
        ]);
        assert_eq!(canonical(&p), "amount=5.00&event=deposit&txid=t1");
    }

    #[test]
    fn a_signature_must_match_and_be_recent() {
        let mut p = params(&[("txid", "t1"), ("event", "deposit"), ("ts", "1000")]);
        let sig = sign("s3cret", &canonical(&p));
        p.insert("sig".into(), sig);
        assert!(authenticate(&p, "s3cret", 1000).is_ok());
        assert!(authenticate(&p, "other", 1000).is_err());
        assert!(authenticate(&p, "s3cret", 1000 + MAX_SKEW_SECS + 1).is_err());
        p.insert("amount".into(), "9.99".into());
        assert!(
            authenticate(&p, "s3cret", 1000).is_err(),
            "a tampered parameter breaks the signature"
        );
    }

    #[test]
    fn a_ts_that_is_not_unix_seconds_or_overflows_is_refused_not_taken_as_now() {
        for ts in ["18446744073709551615", "abc", "", "1.5"] {
            let problems =
                to_request(&params(&[("event", "ftd"), ("ts", ts)]), 5).expect_err("refused");
            assert_eq!(problems[0].field, "ts", "{ts}");
        }
        let r = to_request(&params(&[("event", "ftd")]), 5).expect("absent is now");
        assert_eq!(r.occurred_at, Some(serde_json::Value::from(5_000u64)));
    }

    #[test]
    fn ftd_postbacks_become_deposits_and_kyc_postbacks_kyc_events() {
        let r = to_request(&params(&[("event", "ftd"), ("amount", "20.00")]), 5).expect("known");
        assert_eq!(r.event_type.as_deref(), Some("deposit"));
        let r = to_request(&params(&[("event", "kyc_revoked")]), 5).expect("known");
        assert_eq!(
            (r.event_type.as_deref(), r.status.as_deref()),
            (Some("kyc"), Some("revoked"))
        );
        assert!(to_request(&params(&[("event", "casino_win")]), 5).is_err());
    }
}
