//! `GET /admin/v1/commissions/problems` — what the commission job could not
//! compute, and what it held back: per problem the brand, player or
//! affiliate, the events involved, the reason, when it was first and last
//! seen, and whether the latest run still met it.
//!
//! Owns the query parsing and the JSON view. Must not compute or store
//! problems (the commission job does, through the store).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use clickstitch_shared::BrandId;

use crate::commission::{ProblemKind, Timestamp};
use crate::error::Problem;
use crate::http::auth::Operator;
use crate::http::error::ApiError;
use crate::http::extract::ApiQuery;
use crate::http::state::AppState;
use crate::store::problems::ProblemFilter;

/// Largest `limit`.
pub const MAX_PROBLEMS: u32 = 1_000;

/// Query of `GET /admin/v1/commissions/problems`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemsQuery {
    brand_id: Option<String>,
    kind: Option<String>,
    still_failing: Option<bool>,
    limit: Option<u32>,
}

/// `GET /admin/v1/commissions/problems?brand_id=&kind=&still_failing=&limit=`
/// (operator): still failing problems first, then the most recently seen;
/// `limit` 1..=1000 (default 100).
pub async fn list_problems(
    _op: Operator,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ProblemsQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut problems = Vec::new();
    let brand = match q.brand_id.as_deref() {
        None => None,
        Some(b) => BrandId::parse(b)
            .map(|b| Some(b.as_uuid()))
            .map_err(|e| problems.push(Problem::new("brand_id", e.to_string())))
            .unwrap_or(None),
    };
    if let Some(k) = q.kind.as_deref() {
        if !ProblemKind::ALL.iter().any(|x| x.code() == k) {
            let known: Vec<&str> = ProblemKind::ALL.iter().map(|x| x.code()).collect();
            problems.push(Problem::new(
                "kind",
                format!("must be one of {}", known.join(", ")),
            ));
        }
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PROBLEMS).contains(&limit) {
        problems.push(Problem::new("limit", format!("must be 1..={MAX_PROBLEMS}")));
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let rows = state
        .store()
        .load_problems(&ProblemFilter {
            brand,
            kind: q.kind,
            still_failing: q.still_failing,
            limit,
        })
        .await?;
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "kind": r.kind,
                "held": r.held,
                "brand_id": opt(&r.brand_id),
                "player_id": opt(&r.player_id),
                "affiliate_id": opt(&r.affiliate_id),
                "event_ids": r.events,
                "reason": r.message,
                "first_seen": Timestamp::from_unix_ms(r.first_seen_ms).to_string(),
                "last_seen": Timestamp::from_unix_ms(r.last_seen_ms).to_string(),
                "still_failing": r.still_failing == 1,
            })
        })
        .collect();
    Ok(Json(json!({
        "still_failing": items.iter().filter(|i| i["still_failing"] == true).count(),
        "problems": items,
    })))
}
