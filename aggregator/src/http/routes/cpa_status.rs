//! `GET /admin/v1/commissions/players/{brand_id}/{player_id}` (operator):
//! why a brand player's CPA has (or has not) qualified — every rule with
//! met / unmet and the values seen, per credited affiliate — plus the
//! player's ledger lines and any problem holding them.
//!
//! Owns the path parsing and the JSON view. Must not compute anything
//! (that is [`crate::services::commission::cpa_status`]).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use clickstitch_shared::BrandId;

use crate::error::Problem;
use crate::events::BrandPlayerId;
use crate::http::auth::Operator;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::commission::cpa_status::cpa_status;

/// The route under `/admin/v1`.
pub fn admin_routes() -> Router<AppState> {
    Router::new().route(
        "/commissions/players/{brand_id}/{player_id}",
        get(get_cpa_status),
    )
}

/// The handler.
pub async fn get_cpa_status(
    _op: Operator,
    State(state): State<AppState>,
    Path((brand, player)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let mut problems = Vec::new();
    let brand = BrandId::parse(&brand)
        .map_err(|e| problems.push(Problem::new("brand_id", e.to_string())))
        .ok();
    let player = BrandPlayerId::parse(&player)
        .map_err(|e| problems.push(Problem::new("player_id", e)))
        .ok();
    let (Some(brand), Some(player)) = (brand, player) else {
        return Err(ApiError::Validation(problems));
    };
    let status = cpa_status(state.store(), brand, player.as_str())
        .await?
        .ok_or(ApiError::NotFound("player"))?;
    let lines: Vec<Value> = status
        .lines
        .iter()
        .map(|e| {
            json!({
                "entry_id": e.id, "kind": e.kind, "affiliate_id": e.affiliate, "slot": e.slot,
                "revision": e.revision, "amount_minor": e.amount.minor(),
                "currency": e.amount.currency(),
                "amount": crate::http::routes::commissions::decimal(e.amount),
                "reason": e.reason, "activity_month": e.activity_month, "booked_in": e.booked_in,
                "events": e.events,
            })
        })
        .collect();
    Ok(Json(json!({
        "brand_id": brand,
        "player_id": player.as_str(),
        "global_player_id": status.player_id,
        "attributed": status.attributed,
        "held_for_fraud_review": !status.held.is_empty(),
        "problems": status.problems.iter().map(|p| json!({
            "kind": p.kind.code(), "held": p.held.code(), "event_ids": p.events,
            "reason": p.message,
        })).collect::<Vec<_>>(),
        "cpa": status.checks,
        "lines": lines,
    })))
}
