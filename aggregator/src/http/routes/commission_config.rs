//! Operator read-backs of the commission configuration and run log:
//!
//! * `GET /admin/v1/deals`, `GET /admin/v1/deals/{affiliate_id}` — every
//!   affiliate's current deal document; one affiliate's, with every stored
//!   document (newest first).
//! * `GET /admin/v1/ngr-formulas`, `GET /admin/v1/ngr-formulas/{brand_id}`
//!   — the same for NGR formulas.
//! * `GET /admin/v1/fx-tables?month=YYYY-MM` — every FX table version,
//!   marking the one in force (the month's highest).
//! * `GET /admin/v1/commissions/runs?kind=job|payout&limit=N`,
//!   `GET /admin/v1/commissions/runs/{run_id}` — the run log, and one run
//!   with the problems it met.
//! * `GET /admin/v1/payouts?limit=N`, `GET /admin/v1/payouts/{run_id}` —
//!   payout runs with the payout entries they appended.
//!
//! Owns the query and path parsing and the JSON views. Must not write
//! anything (configuration is stored by [`crate::http::routes::commissions`]
//! through the commission job) nor run SQL (the store's
//! [`crate::store::commission_reads`] does).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use clickstitch_shared::{AffiliateId, BrandId};

use crate::commission::{LedgerEntry, Month, Slot, Timestamp};
use crate::error::Problem;
use crate::http::auth::Operator;
use crate::http::error::ApiError;
use crate::http::extract::ApiQuery;
use crate::http::routes::commissions::decimal;
use crate::http::state::AppState;
use crate::store::commission_reads::{
    RunKind, RunProblemRow, StoredDeal, StoredFormula, StoredFxVersion, StoredRun,
};

/// Largest `limit` of the run and payout lists.
pub const MAX_RUNS: u32 = 1_000;

/// Default `limit` of the run and payout lists.
pub const DEFAULT_RUNS: u32 = 100;

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![Problem::new(field, message)])
}

fn time(ms: u64) -> String {
    Timestamp::from_unix_ms(ms).to_string()
}

fn parse_limit(text: Option<&str>) -> Result<u32, Problem> {
    let Some(text) = text else {
        return Ok(DEFAULT_RUNS);
    };
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_RUNS).contains(n))
        .ok_or_else(|| Problem::new("limit", format!("must be an integer 1..={MAX_RUNS}")))
}

fn parse_run_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|e| invalid("run_id", format!("must be a UUID: {e}")))
}

// ---------------------------------------------------------------- deals

fn deal_json(d: &StoredDeal) -> Value {
    json!({
        "latest_version": d.latest_version,
        "stored_at": time(d.stored_at_ms),
        "stored_at_ms": d.stored_at_ms,
        "deal": d.deal,
    })
}

fn current_deal_json(d: &StoredDeal) -> Value {
    let mut v = deal_json(d);
    v["affiliate_id"] = json!(d.deal.affiliate());
    v["currency"] = json!(d.deal.currency());
    v
}

/// `GET /admin/v1/deals`: every affiliate's current deal document (all its
/// versions), by affiliate id.
pub async fn list_deals(
    _op: Operator,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let deals = state.store().load_current_deals().await?;
    Ok(Json(json!({
        "deals": deals.iter().map(current_deal_json).collect::<Vec<_>>(),
    })))
}

/// `GET /admin/v1/deals/{affiliate_id}`: one affiliate's current deal and
/// every stored document, newest first (404 when it has no deal).
pub async fn get_deal(
    _op: Operator,
    State(state): State<AppState>,
    Path(affiliate_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let affiliate =
        AffiliateId::parse(&affiliate_id).map_err(|e| invalid("affiliate_id", e.to_string()))?;
    let history = state.store().load_deal_history(affiliate).await?;
    let current = history.first().ok_or(ApiError::NotFound("deal"))?;
    let mut v = current_deal_json(current);
    v["history"] = history.iter().map(deal_json).collect();
    Ok(Json(v))
}

// ---------------------------------------------------------------- formulas

fn formula_json(f: &StoredFormula) -> Value {
    json!({
        "latest_version": f.latest_version,
        "stored_at": time(f.stored_at_ms),
        "stored_at_ms": f.stored_at_ms,
        "formula": f.formula,
    })
}

fn current_formula_json(f: &StoredFormula) -> Value {
    let mut v = formula_json(f);
    v["brand_id"] = json!(f.formula.brand());
    v
}

/// `GET /admin/v1/ngr-formulas`: every brand's current NGR formula
/// document (all its versions), by brand id.
pub async fn list_ngr_formulas(
    _op: Operator,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let formulas = state.store().load_current_formulas().await?;
    Ok(Json(json!({
        "formulas": formulas.iter().map(current_formula_json).collect::<Vec<_>>(),
    })))
}

/// `GET /admin/v1/ngr-formulas/{brand_id}`: one brand's current NGR
/// formula and every stored document, newest first (404 when it has none).
pub async fn get_ngr_formula(
    _op: Operator,
    State(state): State<AppState>,
    Path(brand_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let brand = BrandId::parse(&brand_id).map_err(|e| invalid("brand_id", e.to_string()))?;
    let history = state.store().load_formula_history(brand).await?;
    let current = history.first().ok_or(ApiError::NotFound("NGR formula"))?;
    let mut v = current_formula_json(current);
    v["history"] = history.iter().map(formula_json).collect();
    Ok(Json(v))
}

// ---------------------------------------------------------------- FX

/// Query of `GET /admin/v1/fx-tables`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FxTablesQuery {
    month: Option<String>,
}

fn fx_version_json(t: &StoredFxVersion) -> Value {
    json!({
        "month": t.table.month,
        "version": t.table.version,
        "in_force": t.in_force,
        "stored_at": time(t.stored_at_ms),
        "stored_at_ms": t.stored_at_ms,
        "rates": t.table.rates.iter().map(|((from, to), r)| json!({
            "from": from, "to": to, "numerator": r.numerator, "denominator": r.denominator,
        })).collect::<Vec<_>>(),
    })
}

/// `GET /admin/v1/fx-tables?month=YYYY-MM`: every stored FX table version
/// (months in order, each month's versions highest first); `in_force`
/// marks the version that converts its month.
pub async fn list_fx_tables(
    _op: Operator,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<FxTablesQuery>,
) -> Result<Json<Value>, ApiError> {
    let month = q
        .month
        .as_deref()
        .map(Month::parse)
        .transpose()
        .map_err(|e| invalid("month", e.to_string()))?;
    let tables = state.store().load_fx_history(month).await?;
    Ok(Json(json!({
        "tables": tables.iter().map(fx_version_json).collect::<Vec<_>>(),
    })))
}

// ---------------------------------------------------------------- runs

/// Query of `GET /admin/v1/commissions/runs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    kind: Option<String>,
    limit: Option<String>,
}

fn run_json(r: &StoredRun) -> Value {
    json!({
        "run_id": r.run_id,
        "kind": r.kind.code(),
        "started_at": time(r.started_at_ms),
        "duration_ms": r.finished_at_ms.saturating_sub(r.started_at_ms),
        "now": time(r.now_ms),
        "players": r.players,
        "skipped_players": r.skipped_players,
        "prior_entries": r.prior_entries,
        "entries_appended": r.entries_appended,
        "statements_appended": r.statements_appended,
        "error": (!r.error.is_empty()).then_some(r.error.as_str()),
    })
}

fn problem_json(p: &RunProblemRow) -> Value {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    json!({
        "kind": p.kind,
        "held": p.held,
        "player_id": opt(&p.player_id),
        "brand_id": opt(&p.brand_id),
        "affiliate_id": opt(&p.affiliate_id),
        "events": p.events,
        "message": p.message,
    })
}

/// `GET /admin/v1/commissions/runs?kind=job|payout&limit=N`: the latest
/// runs, newest first; `limit` 1..=1000 (default 100).
pub async fn list_runs(
    _op: Operator,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut problems = Vec::new();
    let kind = match q.kind.as_deref() {
        None => None,
        Some("job") => Some(RunKind::Job),
        Some("payout") => Some(RunKind::Payout),
        Some(_) => {
            problems.push(Problem::new("kind", "must be job or payout"));
            None
        }
    };
    let limit = parse_limit(q.limit.as_deref())
        .map_err(|p| problems.push(p))
        .unwrap_or(DEFAULT_RUNS);
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let runs = state.store().load_runs(kind, limit).await?;
    Ok(Json(json!({
        "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
    })))
}

/// `GET /admin/v1/commissions/runs/{run_id}`: one run and the problems it
/// met (empty for a payout run or a run without problems).
pub async fn get_run(
    _op: Operator,
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run_id = parse_run_id(&run_id)?;
    let store = state.store();
    let run = store
        .load_run(run_id, None)
        .await?
        .ok_or(ApiError::NotFound("run"))?;
    let problems = store.load_run_problems(run_id).await?;
    let mut v = run_json(&run);
    v["problems"] = problems.iter().map(problem_json).collect();
    Ok(Json(v))
}

// ---------------------------------------------------------------- payouts

/// Query of `GET /admin/v1/payouts`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayoutsQuery {
    limit: Option<String>,
}

fn paid_json(e: &LedgerEntry) -> Value {
    json!({
        "affiliate_id": e.affiliate,
        "entry_id": e.id,
        "amount_minor": e.amount.minor(),
        "currency": e.amount.currency(),
        "amount": decimal(e.amount),
        "references": e.references,
    })
}

fn payout_json(r: &StoredRun, paid: &[&LedgerEntry]) -> Value {
    let mut v = run_json(r);
    v["paid"] = paid.iter().map(|e| paid_json(e)).collect();
    v
}

fn run_of(e: &LedgerEntry) -> Option<Uuid> {
    match e.slot {
        Slot::Payout { run, .. } => Some(run),
        _ => None,
    }
}

/// `GET /admin/v1/payouts?limit=N`: the latest payout runs, newest first,
/// each with the payout entries it appended; `limit` 1..=1000 (default
/// 100).
pub async fn list_payouts(
    _op: Operator,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PayoutsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = parse_limit(q.limit.as_deref()).map_err(|p| ApiError::Validation(vec![p]))?;
    let store = state.store();
    let runs = store.load_runs(Some(RunKind::Payout), limit).await?;
    let entries = store.load_payout_entries(None).await?;
    let mut by_run: BTreeMap<Uuid, Vec<&LedgerEntry>> = BTreeMap::new();
    for e in &entries {
        if let Some(run) = run_of(e) {
            by_run.entry(run).or_default().push(e);
        }
    }
    Ok(Json(json!({
        "payouts": runs.iter().map(|r| payout_json(
            r,
            by_run.get(&r.run_id).map_or(&[][..], Vec::as_slice),
        )).collect::<Vec<_>>(),
    })))
}

/// `GET /admin/v1/payouts/{run_id}`: one payout run and the payout entries
/// it appended (404 when no payout run has this id).
pub async fn get_payout(
    _op: Operator,
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run_id = parse_run_id(&run_id)?;
    let store = state.store();
    let run = store
        .load_run(run_id, Some(RunKind::Payout))
        .await?
        .ok_or(ApiError::NotFound("payout run"))?;
    let entries = store.load_payout_entries(Some(run_id)).await?;
    let paid: Vec<&LedgerEntry> = entries.iter().collect();
    Ok(Json(payout_json(&run, &paid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_to_100_and_must_be_1_to_1000() {
        assert_eq!(parse_limit(None), Ok(DEFAULT_RUNS));
        assert_eq!(parse_limit(Some("1")), Ok(1));
        assert_eq!(parse_limit(Some("1000")), Ok(1_000));
        for bad in ["0", "1001", "-1", "ten", ""] {
            let p = parse_limit(Some(bad)).expect_err(bad);
            assert_eq!(p.field, "limit", "{bad}");
        }
    }

    #[test]
    fn a_run_without_error_shows_null_and_its_duration() {
        let run = StoredRun {
            run_id: Uuid::nil(),
            kind: RunKind::Payout,
            started_at_ms: 1_000,
            finished_at_ms: 1_250,
            now_ms: 1_000,
            players: 0,
            skipped_players: 0,
            prior_entries: 3,
            entries_appended: 1,
            statements_appended: 0,
            error: String::new(),
        };
        let v = run_json(&run);
        assert_eq!(v["kind"], "payout");
        assert_eq!(v["duration_ms"], 250);
        assert_eq!(v["error"], Value::Null);
        assert_eq!(v["started_at"], "1970-01-01T00:00:01.000Z");
        let failed = StoredRun {
            error: "boom".to_owned(),
            ..run
        };
        assert_eq!(run_json(&failed)["error"], "boom");
    }
}
