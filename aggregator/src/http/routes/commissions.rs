//! Commission endpoints.
//!
//! (Reading balances and lines is [`super::commission_balances`].)
//!
//! * `POST /admin/v1/deals`, `/ngr-formulas`, `/fx-tables` — the commission
//!   configuration, validated with the engine's parsers (422 with every
//!   reason; nothing stored on a problem).
//! * `POST /admin/v1/periods/{YYYY-MM}/close`, `GET /admin/v1/periods`,
//!   `POST /admin/v1/payouts/run`, `POST /admin/v1/commissions/run`.
//!
//! Owns the DTOs and their parsing. Must not write the ledger itself (every write goes
//! through [`CommissionJob`], under its single-writer lock) nor compute
//! commissions (balances and states come from [`crate::commission`]).

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use clickstitch_shared::BrandId;

use crate::commission::{Deal, Month, NgrFormula, Timestamp};
use crate::error::Problem;
use crate::http::auth::{Finance, Operator};
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::money::{Currency, Money, Rate};
use crate::services::commission::job::{CommissionError, CommissionJob, RunReport, Saved};
use crate::store::ledger::StoredFxTable;
use crate::support::clock::now_ms;

/// The commission routes under `/admin/v1` (operator token).
pub fn admin_routes() -> Router<AppState> {
    Router::new()
        .route("/deals", post(post_deal))
        .route("/ngr-formulas", post(post_ngr_formula))
        .route("/fx-tables", post(post_fx_table))
        .route("/periods", get(list_periods))
        .route("/periods/{month}/close", post(close_period))
        .route("/payouts/run", post(run_payouts))
        .route("/commissions/run", post(run_job))
        .route(
            "/commissions/problems",
            get(crate::http::routes::commission_problems::list_problems),
        )
        .route(
            "/deals",
            get(crate::http::routes::commission_config::list_deals),
        )
        .route(
            "/deals/{affiliate_id}",
            get(crate::http::routes::commission_config::get_deal),
        )
        .route(
            "/ngr-formulas",
            get(crate::http::routes::commission_config::list_ngr_formulas),
        )
        .route(
            "/ngr-formulas/{brand_id}",
            get(crate::http::routes::commission_config::get_ngr_formula),
        )
        .route(
            "/fx-tables",
            get(crate::http::routes::commission_config::list_fx_tables),
        )
        .route(
            "/commissions/runs",
            get(crate::http::routes::commission_config::list_runs),
        )
        .route(
            "/commissions/runs/{run_id}",
            get(crate::http::routes::commission_config::get_run),
        )
        .route(
            "/payouts",
            get(crate::http::routes::commission_config::list_payouts),
        )
        .route(
            "/payouts/{run_id}",
            get(crate::http::routes::commission_config::get_payout),
        )
}

fn job(state: &AppState) -> CommissionJob {
    state.commission_job()
}

/// An amount as integer minor units of a currency: `10000` / `"EUR"`, plus
/// the same as an exact decimal string `"100.00"` for display.
pub fn decimal(m: Money) -> String {
    let digits = m.currency().minor_digits();
    let sign = if m.minor() < 0 { "-" } else { "" };
    let abs = m.minor().unsigned_abs();
    if digits == 0 {
        return format!("{sign}{abs}");
    }
    let scale = 10u64.pow(digits);
    format!(
        "{sign}{}.{:0width$}",
        abs / scale,
        abs % scale,
        width = digits as usize
    )
}

fn saved_status(saved: Saved) -> StatusCode {
    match saved {
        Saved::Created => StatusCode::CREATED,
        Saved::Unchanged => StatusCode::OK,
    }
}

fn body_problem(message: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![Problem::new("body", message)])
}

// ---------------------------------------------------------------- config

/// `POST /admin/v1/deals`: stores an affiliate's deal (docs/commissions.md,
/// "Deals"). 201 when stored, 200 when identical to the stored deal.
pub async fn post_deal(
    _op: Finance,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let deal = Deal::from_json(&body.to_string()).map_err(|e| body_problem(e.to_string()))?;
    let mut problems = Vec::new();
    if !state
        .catalog()
        .affiliates()
        .iter()
        .any(|a| a.id == deal.affiliate())
    {
        problems.push(Problem::new("affiliate", "affiliate not found"));
    }
    let known: BTreeSet<BrandId> = state.catalog().brands().iter().map(|b| b.id).collect();
    let doc = serde_json::to_value(&deal).unwrap_or_default();
    for (i, v) in doc["versions"].as_array().into_iter().flatten().enumerate() {
        for (j, b) in v["brands"].as_array().into_iter().flatten().enumerate() {
            let known = b
                .as_str()
                .and_then(|s| BrandId::parse(s).ok())
                .is_some_and(|b| known.contains(&b));
            if !known {
                problems.push(Problem::new(
                    format!("versions[{i}].brands[{j}]"),
                    "brand not found",
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let saved = job(&state).save_deal(&deal, now_ms()).await?;
    Ok((
        saved_status(saved),
        Json(json!({"saved": saved, "affiliate_id": deal.affiliate(), "deal": doc})),
    ))
}

/// `POST /admin/v1/ngr-formulas`: stores a brand's NGR formula.
pub async fn post_ngr_formula(
    _op: Finance,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let formula =
        NgrFormula::from_json(&body.to_string()).map_err(|e| body_problem(e.to_string()))?;
    if !state
        .catalog()
        .brands()
        .iter()
        .any(|b| b.id == formula.brand())
    {
        return Err(ApiError::Validation(vec![Problem::new(
            "brand",
            "brand not found",
        )]));
    }
    let saved = job(&state).save_formula(&formula, now_ms()).await?;
    Ok((
        saved_status(saved),
        Json(json!({"saved": saved, "brand_id": formula.brand(), "formula": formula})),
    ))
}

/// `POST /admin/v1/fx-tables` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FxTableBody {
    month: String,
    version: u32,
    rates: Vec<FxRateBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FxRateBody {
    from: String,
    to: String,
    numerator: i64,
    denominator: i64,
}

impl FxTableBody {
    fn parse(self) -> Result<StoredFxTable, Vec<Problem>> {
        let mut problems = Vec::new();
        let month = Month::parse(&self.month)
            .map_err(|e| problems.push(Problem::new("month", e.to_string())))
            .ok();
        if self.version == 0 {
            problems.push(Problem::new("version", "must be at least 1"));
        }
        if self.rates.is_empty() {
            problems.push(Problem::new("rates", "a table needs at least one rate"));
        }
        let mut rates = BTreeMap::new();
        for (i, r) in self.rates.iter().enumerate() {
            let mut currency = |field: &str, text: &str| {
                Currency::parse(text)
                    .map_err(|e| {
                        problems.push(Problem::new(format!("rates[{i}].{field}"), e.to_string()))
                    })
                    .ok()
            };
            let (from, to) = (currency("from", &r.from), currency("to", &r.to));
            if r.numerator <= 0 {
                problems.push(Problem::new(
                    format!("rates[{i}].numerator"),
                    "must be positive",
                ));
            }
            if r.denominator <= 0 {
                problems.push(Problem::new(
                    format!("rates[{i}].denominator"),
                    "must be positive",
                ));
            }
            if let (Some(from), Some(to)) = (from, to) {
                if from == to {
                    problems.push(Problem::new(
                        format!("rates[{i}]"),
                        "from and to must differ",
                    ));
                }
                let rate = Rate {
                    numerator: r.numerator,
                    denominator: r.denominator,
                };
                if rates.insert((from, to), rate).is_some() {
                    problems.push(Problem::new(
                        format!("rates[{i}]"),
                        format!("{from} -> {to} appears twice"),
                    ));
                }
            }
        }
        match month {
            Some(month) if problems.is_empty() => Ok(StoredFxTable {
                month,
                version: self.version,
                rates,
            }),
            _ => Err(problems),
        }
    }
}

fn fx_json(t: &StoredFxTable) -> Value {
    json!({
        "month": t.month,
        "version": t.version,
        "rates": t.rates.iter().map(|((from, to), r)| json!({
            "from": from, "to": to, "numerator": r.numerator, "denominator": r.denominator,
        })).collect::<Vec<_>>(),
    })
}

/// `POST /admin/v1/fx-tables`: stores the FX table of a month.
pub async fn post_fx_table(
    _op: Finance,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<FxTableBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let table = body.parse().map_err(ApiError::Validation)?;
    let saved = job(&state).save_fx_table(&table, now_ms()).await?;
    Ok((
        saved_status(saved),
        Json(json!({"saved": saved, "table": fx_json(&table)})),
    ))
}

// ---------------------------------------------------------------- periods, runs

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    /// RFC 3339 or Unix ms; default now.
    #[serde(default)]
    closed_at: Option<Value>,
}

fn optional_body<T: serde::de::DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| body_problem(e.to_string()))
}

fn run_summary(r: &RunReport) -> Value {
    json!({
        "run_id": r.run_id,
        "players": r.players,
        "skipped_players": r.skipped_players,
        "held_players": r.held_players,
        "problems": r.problems.iter().map(|p| json!({
            "kind": p.kind.code(), "held": p.held.code(), "player_id": p.player,
            "brand_id": p.brand, "affiliate_id": p.affiliate, "event_ids": p.events,
            "reason": p.message,
        })).collect::<Vec<_>>(),
        "prior_entries": r.prior_entries,
        "entries_appended": r.entries.len(),
        "entry_ids": r.entries.iter().map(|e| e.id).collect::<Vec<_>>(),
        "statements_appended": r.statements_appended,
    })
}

/// `POST /admin/v1/periods/{YYYY-MM}/close`, optional body
/// `{"closed_at": …}`: runs the job, then closes the month.
pub async fn close_period(
    op: Finance,
    State(state): State<AppState>,
    Path(month): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: CloseBody = optional_body(&body)?;
    let mut problems = Vec::new();
    let month = Month::parse(&month)
        .map_err(|e| problems.push(Problem::new("month", e.to_string())))
        .ok();
    let closed_at = match &body.closed_at {
        None => Some(None),
        Some(v) => crate::events::parse_time(v)
            .map(Some)
            .map_err(|e| problems.push(Problem::new("closed_at", e)))
            .ok(),
    };
    let (Some(month), Some(closed_at)) = (month, closed_at) else {
        return Err(ApiError::Validation(problems));
    };
    let report = job(&state)
        .close_period(month, closed_at, now_ms(), op.0.owner())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "month": report.month,
            "closed_at": report.closed_at.to_string(),
            "closed_at_ms": report.closed_at.unix_ms(),
            "run": run_summary(&report.run),
        })),
    ))
}

/// `GET /admin/v1/periods`: the closed months.
pub async fn list_periods(
    _op: Operator,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let calendar = state.store().load_calendar().await?;
    let closes: std::collections::BTreeMap<Month, Timestamp> = calendar.into();
    Ok(Json(json!({
        "closed": closes.iter().map(|(m, at)| json!({
            "month": m, "closed_at": at.to_string(), "closed_at_ms": at.unix_ms(),
        })).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayoutBody {
    #[serde(default)]
    run_id: Option<String>,
}

/// `POST /admin/v1/payouts/run`, optional body `{"run_id": "…uuid…"}`:
/// runs the job, then pays every payable balance that reaches its minimum.
pub async fn run_payouts(
    op: Finance,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: PayoutBody = optional_body(&body)?;
    let run_id = match body.run_id.as_deref() {
        None => None,
        Some(s) => Some(Uuid::parse_str(s).map_err(|e| {
            ApiError::Validation(vec![Problem::new("run_id", format!("must be a UUID: {e}"))])
        })?),
    };
    let report = job(&state)
        .run_payouts(run_id, now_ms(), op.0.owner())
        .await?;
    let money =
        |m: Money| json!({"minor": m.minor(), "currency": m.currency(), "decimal": decimal(m)});
    Ok(Json(json!({
        "run_id": report.run_id,
        "at": report.at.to_string(),
        "replayed": report.replayed,
        "paid": report.paid.iter().map(|e| json!({
            "affiliate_id": e.affiliate,
            "entry_id": e.id,
            "amount_minor": e.amount.minor(),
            "currency": e.amount.currency(),
            "amount": decimal(e.amount),
            "covers": e.references,
        })).collect::<Vec<_>>(),
        "rolled_over": report.rolled_over.iter().map(|r| json!({
            "affiliate_id": r.affiliate,
            "payable": money(r.payable),
            "min_payout": money(r.min_payout),
        })).collect::<Vec<_>>(),
        "skipped": report.skipped,
        "run": report.run.as_ref().map(run_summary),
    })))
}

/// `POST /admin/v1/commissions/run`: runs the commission job now.
pub async fn run_job(_op: Finance, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let report = job(&state)
        .run_once(now_ms())
        .await
        .map_err(CommissionError::Job)?;
    Ok(Json(run_summary(&report)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_print_as_exact_decimals_in_the_currency_digits() {
        let c = |s| Currency::parse(s).expect("currency");
        assert_eq!(decimal(Money::new(10_000, c("EUR"))), "100.00");
        assert_eq!(decimal(Money::new(-5, c("EUR"))), "-0.05");
        assert_eq!(decimal(Money::new(1_500, c("JPY"))), "1500");
        assert_eq!(decimal(Money::new(1_500, c("KWD"))), "1.500");
    }

    #[test]
    fn fx_tables_are_checked_field_by_field() {
        let body: FxTableBody = serde_json::from_value(json!({
            "month": "2026-13", "version": 0,
            "rates": [
                {"from": "USD", "to": "USD", "numerator": 1, "denominator": 1},
                {"from": "EURO", "to": "USD", "numerator": 0, "denominator": -1}
            ]
        }))
        .expect("shape");
        let problems = body.parse().expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "month",
                "version",
                "rates[0]",
                "rates[1].from",
                "rates[1].numerator",
                "rates[1].denominator"
            ]
        );
        let ok: FxTableBody = serde_json::from_value(json!({
            "month": "2026-01", "version": 7,
            "rates": [{"from": "USD", "to": "EUR", "numerator": 92, "denominator": 100}]
        }))
        .expect("shape");
        let t = ok.parse().expect("valid");
        assert_eq!(t.version, 7);
        assert_eq!(t.rates.len(), 1);
    }
}
