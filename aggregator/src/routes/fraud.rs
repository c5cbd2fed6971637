//! The operators' review of quarantined clicks and conversions.
//!
//! `GET /api/v1/fraud/quarantine` lists quarantined entities with their
//! score, signals and review state (filters: `brand_id`, `kind`, `status`
//! = pending | approved | rejected, `limit`). `POST
//! /api/v1/fraud/quarantine/{kind}/{id}/decision` approves (released:
//! attribution and commission proceed) or rejects (confirmed fraud: the
//! commission job claws back anything accrued) one of them; the first
//! decision is binding (409 after), and records who decided and when.
//! Operator token only: brands and affiliates never see the review queue.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use clickstitch_shared::BrandId;

use crate::auth::Operator;
use crate::clock::now_ms;
use crate::error::{ApiError, Problem};
use crate::quarantine::{EntityKind, ReviewError, Verdict};
use crate::routes::admin::{ApiJson, ApiQuery};
use crate::startup::AppState;

/// Largest page of the list.
const MAX_LIMIT: usize = 1000;

/// `GET /api/v1/fraud/quarantine` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    brand_id: Option<String>,
    kind: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
}

/// `POST …/decision` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    brand_id: Option<String>,
    decision: Option<String>,
    reviewer: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

fn parse_brand(text: &str) -> Result<BrandId, Problem> {
    BrandId::parse(text).map_err(|e| Problem::new("brand_id", e.to_string()))
}

fn parse_kind(text: &str, field: &str) -> Result<EntityKind, Problem> {
    EntityKind::parse(text).ok_or_else(|| {
        Problem::new(
            field,
            format!("must be click, registration or first_deposit, got {text:?}"),
        )
    })
}

/// Lists quarantined entities.
pub async fn list(
    _op: Operator,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut problems = Vec::new();
    let brand = q
        .brand_id
        .as_deref()
        .map(parse_brand)
        .transpose()
        .map_err(|p| problems.push(p))
        .ok()
        .flatten();
    let kind = q
        .kind
        .as_deref()
        .map(|k| parse_kind(k, "kind"))
        .transpose()
        .map_err(|p| problems.push(p))
        .ok()
        .flatten();
    if let Some(s) = q.status.as_deref() {
        if !matches!(s, "pending" | "approved" | "rejected") {
            problems.push(Problem::new(
                "status",
                format!("must be pending, approved or rejected, got {s:?}"),
            ));
        }
    }
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        problems.push(Problem::new(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let items = state
        .quarantine()
        .list(brand, kind, q.status.as_deref(), limit)
        .await?;
    Ok(Json(json!({ "items": items })))
}

/// Approves or rejects one quarantined entity.
pub async fn decide(
    _op: Operator,
    State(state): State<AppState>,
    Path((kind, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<DecisionRequest>,
) -> Result<Response, ApiError> {
    let mut problems = Vec::new();
    let kind = parse_kind(&kind, "kind").map_err(|p| problems.push(p)).ok();
    let brand = match body.brand_id.as_deref() {
        Some(b) => parse_brand(b).map_err(|p| problems.push(p)).ok(),
        None => {
            problems.push(Problem::new("brand_id", "is required"));
            None
        }
    };
    let verdict = match body.decision.as_deref() {
        Some("approve") => Some(Verdict::Approved),
        Some("reject") => Some(Verdict::Rejected),
        other => {
            problems.push(Problem::new(
                "decision",
                format!("must be approve or reject, got {other:?}"),
            ));
            None
        }
    };
    let reviewer = body.reviewer.as_deref().map(str::trim).unwrap_or_default();
    if reviewer.is_empty() || reviewer.len() > 128 || reviewer.chars().any(char::is_control) {
        problems.push(Problem::new(
            "reviewer",
            "is required: who decides (1..=128 printable characters)",
        ));
    }
    let note = body.note.unwrap_or_default();
    if note.len() > 2000 {
        problems.push(Problem::new("note", "must be at most 2000 bytes"));
    }
    let (Some(kind), Some(brand), Some(verdict), true) =
        (kind, brand, verdict, problems.is_empty())
    else {
        return Err(ApiError::Validation(problems));
    };
    let row = state
        .quarantine()
        .decide(
            brand,
            kind,
            &id,
            verdict,
            reviewer,
            "operator_token",
            &note,
            now_ms(),
        )
        .await
        .map_err(|e| match e {
            ReviewError::NotQuarantined { .. } => ApiError::NotFound("quarantined entity"),
            ReviewError::AlreadyDecided { .. } => ApiError::Conflict(e.to_string()),
            ReviewError::Store(e) => e.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "review_id": row.review_id.to_string(),
            "brand_id": row.brand_id.to_string(),
            "kind": kind.as_str(),
            "id": row.entity_id,
            "player_id": (!row.brand_player_id.is_empty()).then_some(row.brand_player_id),
            "decision": verdict.as_str(),
            "reviewer": row.reviewer,
            "credential": row.credential,
            "note": row.note,
            "decided_at_ms": row.decided_at_ms,
        })),
    )
        .into_response())
}
