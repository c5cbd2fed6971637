//! The review of quarantined clicks and conversions.
//!
//! * `GET /api/v1/fraud/quarantine` — one page of held entities with their
//!   score, signals (points and a sentence each) and review state, newest
//!   first (`limit` 1..=500, default 100; `cursor` = the previous page's
//!   `next_cursor`, absent on the last page; filters `brand_id`,
//!   `affiliate_id`, `kind`, `signal`, `min_score`, `max_score`, `from`,
//!   `to`, `status` = pending | approved | rejected). The page is selected
//!   in ClickHouse ([`crate::store::fraud_review`]), one page per call.
//! * `POST /api/v1/fraud/quarantine/{kind}/{id}/decision` approves
//!   (released: attribution and commission proceed) or rejects (confirmed
//!   fraud: the commission job claws back anything accrued) one of them;
//!   the first decision is binding (409 after), and records who decided and
//!   when. Operator token only.
//! * `POST /api/v1/fraud/quarantine/decisions` takes one decision, with one
//!   reason, on up to 1 000 entities (of any brands the caller may see),
//!   stored in one INSERT, and says per entity whether it was decided,
//!   already decided, not held, not found or forbidden.
//! * `POST /admin/v1/fraud/sweep` runs the population sweep at once
//!   (operator token) and answers its findings and the clicks it held.
//!
//! Owns parsing (every bad value is a 422 naming its field), the cursor,
//! the callers' scopes and the JSON views; what a decision does belongs to
//! [`crate::services::fraud::quarantine`]. The operator token sees and decides every brand's
//! holds, a brand key its own brand's (a `brand_id` filter naming another
//! brand gives an empty page; another brand's entity in a bulk decision is
//! `forbidden`); affiliate keys get 403.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use clickstitch_shared::{AffiliateId, BrandId};

use crate::error::Problem;
use crate::events::parse_time;
use crate::fraud::Signal;
use crate::http::auth::{require_operator, ApiCaller, Principal, RiskReviewer};
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::state::AppState;
use crate::keys::Permission;
use crate::services::fraud::quarantine::{
    Decision, DecisionOutcome, EntityKind, ReviewItem, ReviewPage, Verdict,
};
use crate::store::fraud_review::{QueueKey, QueueQuery, QueueStatus};
use crate::support::clock::now_ms;

/// Largest page (`limit`).
pub const MAX_LIMIT: usize = 500;

/// Default page size.
pub const DEFAULT_LIMIT: usize = 100;

/// Most entities one bulk decision may name.
pub const MAX_BULK_ENTITIES: usize = 1000;

/// Longest `reason` of a bulk decision (and `note` of a single one), in
/// bytes.
pub const MAX_REASON_BYTES: usize = 2000;

/// The credential recorded with decisions taken with a brand key.
const BRAND_CREDENTIAL: &str = "brand_key";

/// Why an affiliate key is refused.
const REVIEWERS_ONLY: &str = "the review queue takes the operator token or a brand API key";

/// `GET /api/v1/fraud/quarantine` query (every value as text, so that a
/// bad one is a 422 naming it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    brand_id: Option<String>,
    affiliate_id: Option<String>,
    kind: Option<String>,
    signal: Option<String>,
    min_score: Option<String>,
    max_score: Option<String>,
    from: Option<String>,
    to: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `POST …/{kind}/{id}/decision` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    brand_id: Option<String>,
    decision: Option<String>,
    reviewer: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// One entity of a bulk decision (`id` is accepted for `entity_id`, as
/// the queue's items name it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityRef {
    brand_id: Option<String>,
    kind: Option<String>,
    #[serde(alias = "id")]
    entity_id: Option<String>,
}

/// `POST /api/v1/fraud/quarantine/decisions` body: one decision and one
/// reason for every entity; `brand_id` is the brand of the entities that
/// name none (a brand key's own brand by default); `reviewer` defaults to
/// the credential's name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkDecisionRequest {
    decision: Option<String>,
    reason: Option<String>,
    #[serde(default)]
    reviewer: Option<String>,
    #[serde(default)]
    brand_id: Option<String>,
    entities: Option<Vec<EntityRef>>,
}

/// `r`'s value, or `None` with its problem recorded.
fn take<T>(problems: &mut Vec<Problem>, r: Result<T, Problem>) -> Option<T> {
    r.map_err(|p| problems.push(p)).ok()
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

fn parse_score(field: &str, text: &str) -> Result<u8, Problem> {
    text.trim()
        .parse::<u8>()
        .ok()
        .filter(|s| *s <= 100)
        .ok_or_else(|| Problem::new(field, "must be an integer 0..=100"))
}

fn parse_instant(field: &str, text: &str) -> Result<u64, Problem> {
    parse_time(&Value::String(text.to_owned())).map_err(|e| {
        Problem::new(
            field,
            format!("{e} (RFC 3339, e.g. 2026-11-20T10:00:00Z; encode + as %2B)"),
        )
    })
}

fn parse_signal(text: &str) -> Result<String, Problem> {
    Signal::parse(text)
        .map(|s| s.code().to_owned())
        .ok_or_else(|| {
            let codes: Vec<&str> = Signal::ALL.iter().map(Signal::code).collect();
            Problem::new(
                "signal",
                format!("must be a signal code ({}), got {text:?}", codes.join(", ")),
            )
        })
}

fn parse_status(text: &str) -> Result<QueueStatus, Problem> {
    match text {
        "pending" => Ok(QueueStatus::Pending),
        "approved" => Ok(QueueStatus::Approved),
        "rejected" => Ok(QueueStatus::Rejected),
        other => Err(Problem::new(
            "status",
            format!("must be pending, approved or rejected, got {other:?}"),
        )),
    }
}

fn parse_limit(text: Option<&str>) -> Result<usize, Problem> {
    let Some(text) = text else {
        return Ok(DEFAULT_LIMIT);
    };
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| Problem::new("limit", format!("must be an integer 1..={MAX_LIMIT}")))
}

// ---------------------------------------------------------------- cursor

/// Version tag of the cursor's content.
const CURSOR_TAG: &str = "q1";

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(BASE64URL[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| BASE64URL.iter().position(|x| *x == c).map(|v| v as u32);
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    for chunk in text.as_bytes().chunks(4) {
        if chunk.len() < 2 {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // Bits past the last whole byte must be zero (one text per key).
        let kept = chunk.len() - 1;
        if kept < 3 && n & (0xFF_FFFF >> (8 * kept)) != 0 {
            return None;
        }
        out.extend_from_slice(&bytes[..kept]);
    }
    Some(out)
}

/// The opaque cursor of the page after the one ending with `last`:
/// base64url of the queue's sort key.
fn encode_cursor(last: &QueueKey) -> String {
    base64url_encode(
        format!(
            "{CURSOR_TAG}\n{}\n{}\n{}\n{}",
            last.occurred_at_ms,
            last.entity_kind,
            last.brand_id.as_hyphenated(),
            last.entity_id
        )
        .as_bytes(),
    )
}

fn decode_cursor(text: &str) -> Option<QueueKey> {
    let bytes = base64url_decode(text.trim())?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.splitn(5, '\n');
    if parts.next()? != CURSOR_TAG {
        return None;
    }
    let occurred_at_ms = parts.next()?.parse().ok()?;
    let entity_kind = parts.next()?.parse().ok()?;
    EntityKind::from_code(entity_kind)?;
    let brand_id = Uuid::parse_str(parts.next()?).ok()?;
    let entity_id = parts.next()?.to_owned();
    if entity_id.is_empty() || entity_id.len() > 128 {
        return None;
    }
    Some(QueueKey {
        occurred_at_ms,
        entity_kind,
        brand_id,
        entity_id,
    })
}

// ---------------------------------------------------------------- list

impl ListQuery {
    /// Checks every parameter (all problems at once).
    fn parse(&self) -> Result<QueueQuery, ApiError> {
        let mut problems = Vec::new();
        let p = &mut problems;
        let brand = self
            .brand_id
            .as_deref()
            .and_then(|b| take(p, parse_brand(b)));
        let affiliate = self.affiliate_id.as_deref().and_then(|a| {
            take(
                p,
                AffiliateId::parse(a).map_err(|e| Problem::new("affiliate_id", e.to_string())),
            )
        });
        let kind = self
            .kind
            .as_deref()
            .and_then(|k| take(p, parse_kind(k, "kind")));
        let signal = self
            .signal
            .as_deref()
            .and_then(|s| take(p, parse_signal(s)));
        let min_score = self
            .min_score
            .as_deref()
            .and_then(|s| take(p, parse_score("min_score", s)));
        let max_score = self
            .max_score
            .as_deref()
            .and_then(|s| take(p, parse_score("max_score", s)));
        if let (Some(lo), Some(hi)) = (min_score, max_score) {
            if lo > hi {
                p.push(Problem::new("min_score", "must not exceed max_score"));
            }
        }
        let from = self
            .from
            .as_deref()
            .and_then(|t| take(p, parse_instant("from", t)));
        let to = self
            .to
            .as_deref()
            .and_then(|t| take(p, parse_instant("to", t)));
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                p.push(Problem::new("to", "must be after from"));
            }
        }
        let status = self
            .status
            .as_deref()
            .and_then(|s| take(p, parse_status(s)));
        let limit = take(p, parse_limit(self.limit.as_deref()));
        let after = self.cursor.as_deref().and_then(|c| {
            take(
                p,
                decode_cursor(c).ok_or_else(|| {
                    Problem::new("cursor", "not a cursor of this endpoint (use next_cursor)")
                }),
            )
        });
        match limit {
            Some(limit) if problems.is_empty() => Ok(QueueQuery {
                brand: brand.map(|b| b.as_uuid()),
                affiliate: affiliate.map(|a| a.as_uuid()),
                entity_kind: kind.map(EntityKind::code),
                signal,
                min_score,
                max_score,
                from_ms: from,
                to_ms: to,
                status,
                after,
                limit,
            }),
            _ => Err(ApiError::Validation(problems)),
        }
    }
}

fn item_json(item: &ReviewItem) -> Value {
    let r = &item.score;
    let status = item
        .decision
        .as_ref()
        .map_or("pending", |(v, _)| v.as_str());
    let signals: Value = serde_json::from_str(&r.signals).unwrap_or(Value::Null);
    let mut out = json!({
        "brand_id": r.brand_id.to_string(),
        "kind": item.kind.as_str(),
        "id": r.entity_id,
        "player_id": (!r.brand_player_id.is_empty()).then_some(&r.brand_player_id),
        "affiliate_id": r.affiliate_id.map(|a| a.to_string()),
        "link_code": (!r.link_code.is_empty()).then_some(&r.link_code),
        "occurred_at_ms": r.occurred_at_ms,
        "score": r.score,
        "policy_version": r.policy_version,
        "signals": signals,
        "escalated_by": (!r.escalated_by.is_empty()).then_some(&r.escalated_by),
        "status": status,
    });
    if let Some((verdict, d)) = &item.decision {
        out["decision"] = json!({
            "review_id": d.review_id.to_string(),
            "verdict": verdict.as_str(),
            "reviewer": d.reviewer,
            "credential": d.credential,
            "note": d.note,
            "decided_at_ms": d.decided_at_ms,
        });
    }
    out
}

/// The answer of one page: `next_cursor` only when a next page exists.
fn page_json(items: &[ReviewItem], next: Option<&QueueKey>) -> Value {
    let mut out = json!({"items": items.iter().map(item_json).collect::<Vec<_>>()});
    if let Some(next) = next {
        out["next_cursor"] = Value::String(encode_cursor(next));
    }
    out
}

/// Lists one page of quarantined entities: every brand's for the
/// operator, its own for a brand key.
pub async fn list(
    caller: ApiCaller,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    if let ApiCaller::Affiliate(_) = caller {
        return Err(ApiError::Forbidden(REVIEWERS_ONLY));
    }
    let mut query = q.parse()?;
    if let ApiCaller::Brand(own) = caller {
        // A brand key sees its own brand only, whatever it asks for.
        match query.brand {
            Some(other) if other != own.as_uuid() => return Ok(Json(page_json(&[], None))),
            _ => query.brand = Some(own.as_uuid()),
        }
    }
    let ReviewPage { items, next } = state.quarantine().review_page(&query, now_ms()).await?;
    Ok(Json(page_json(&items, next.as_ref())))
}

// ---------------------------------------------------------------- decide

/// `decision`: approve or reject.
fn parse_verdict(problems: &mut Vec<Problem>, decision: Option<&str>) -> Option<Verdict> {
    match decision {
        Some("approve") => Some(Verdict::Approved),
        Some("reject") => Some(Verdict::Rejected),
        other => {
            problems.push(Problem::new(
                "decision",
                format!("must be approve or reject, got {other:?}"),
            ));
            None
        }
    }
}

/// Who decides: 1..=128 printable characters.
fn parse_reviewer(problems: &mut Vec<Problem>, reviewer: Option<&str>) -> String {
    let reviewer = reviewer.map(str::trim).unwrap_or_default().to_owned();
    if reviewer.is_empty() || reviewer.len() > 128 || reviewer.chars().any(char::is_control) {
        problems.push(Problem::new(
            "reviewer",
            "is required: who decides (1..=128 printable characters)",
        ));
    }
    reviewer
}

/// The fields of a single decision, checked.
struct DecisionFields {
    brand: Option<BrandId>,
    verdict: Option<Verdict>,
    reviewer: String,
    note: String,
}

fn decision_fields(
    problems: &mut Vec<Problem>,
    brand_id: Option<&str>,
    decision: Option<&str>,
    reviewer: Option<&str>,
    note: Option<String>,
) -> DecisionFields {
    let brand = match brand_id {
        Some(b) => take(problems, parse_brand(b)),
        None => {
            problems.push(Problem::new("brand_id", "is required"));
            None
        }
    };
    let verdict = parse_verdict(problems, decision);
    let reviewer = parse_reviewer(problems, reviewer);
    let note = note.unwrap_or_default();
    if note.len() > MAX_REASON_BYTES {
        problems.push(Problem::new(
            "note",
            format!("must be at most {MAX_REASON_BYTES} bytes"),
        ));
    }
    DecisionFields {
        brand,
        verdict,
        reviewer,
        note,
    }
}

/// Approves or rejects one quarantined entity.
pub async fn decide(
    RiskReviewer(op): RiskReviewer,
    State(state): State<AppState>,
    Path((kind, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<DecisionRequest>,
) -> Result<Response, ApiError> {
    let mut problems = Vec::new();
    let kind = take(&mut problems, parse_kind(&kind, "kind"));
    // A named credential decides as its owner; the bootstrap token names
    // the reviewer in the body.
    let reviewer = if op.is_bootstrap() {
        body.reviewer.as_deref()
    } else {
        Some(op.owner())
    };
    let fields = decision_fields(
        &mut problems,
        body.brand_id.as_deref(),
        body.decision.as_deref(),
        reviewer,
        body.note,
    );
    let (Some(kind), Some(brand), Some(verdict), true) =
        (kind, fields.brand, fields.verdict, problems.is_empty())
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
            &fields.reviewer,
            &op.credential(),
            &fields.note,
            now_ms(),
        )
        .await?;
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

/// `reason`: why, 1..=2000 bytes (surrounding white space dropped).
fn parse_reason(problems: &mut Vec<Problem>, reason: Option<&str>) -> String {
    let reason = reason.map(str::trim).unwrap_or_default().to_owned();
    if reason.is_empty() {
        problems.push(Problem::new(
            "reason",
            format!("is required: why (1..={MAX_REASON_BYTES} bytes)"),
        ));
    } else if reason.len() > MAX_REASON_BYTES {
        problems.push(Problem::new(
            "reason",
            format!(
                "must be at most {MAX_REASON_BYTES} bytes, got {}",
                reason.len()
            ),
        ));
    }
    reason
}

/// An entity of a bulk decision, checked: its brand (given, the request's,
/// or the brand key's), kind and id.
type BulkKey = (BrandId, EntityKind, String);

/// Checks a bulk decision's entity list: 1..=1000 entities, each with a
/// brand (its own `brand_id`, else `default_brand`), a kind and an id,
/// none twice.
fn parse_entities(
    problems: &mut Vec<Problem>,
    entities: Option<Vec<EntityRef>>,
    default_brand: Option<BrandId>,
) -> Vec<BulkKey> {
    let Some(entities) = entities else {
        problems.push(Problem::new("entities", "is required"));
        return Vec::new();
    };
    if entities.is_empty() || entities.len() > MAX_BULK_ENTITIES {
        problems.push(Problem::new(
            "entities",
            format!(
                "must list 1..={MAX_BULK_ENTITIES} entities, got {}",
                entities.len()
            ),
        ));
        return Vec::new();
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(entities.len());
    for (i, e) in entities.into_iter().enumerate() {
        let brand = match e.brand_id.as_deref() {
            Some(b) => BrandId::parse(b)
                .map_err(|err| {
                    problems.push(Problem::new(
                        format!("entities[{i}].brand_id"),
                        err.to_string(),
                    ))
                })
                .ok(),
            None if default_brand.is_some() => default_brand,
            None => {
                problems.push(Problem::new(
                    format!("entities[{i}].brand_id"),
                    "is required (here or as the request's brand_id)",
                ));
                None
            }
        };
        let kind = match e.kind.as_deref() {
            Some(k) => take(problems, parse_kind(k, &format!("entities[{i}].kind"))),
            None => {
                problems.push(Problem::new(format!("entities[{i}].kind"), "is required"));
                None
            }
        };
        let id = e
            .entity_id
            .map(|id| id.trim().to_owned())
            .unwrap_or_default();
        if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
            problems.push(Problem::new(
                format!("entities[{i}].entity_id"),
                "is required: 1..=128 printable characters",
            ));
            continue;
        }
        let (Some(brand), Some(kind)) = (brand, kind) else {
            continue;
        };
        if !seen.insert((brand, kind, id.clone())) {
            problems.push(Problem::new(
                format!("entities[{i}]"),
                "lists an entity already listed",
            ));
            continue;
        }
        out.push((brand, kind, id));
    }
    out
}

/// What became of one entity of a bulk decision.
enum BulkOutcome {
    /// The caller may not decide it (another brand's, for a brand key).
    Forbidden,
    /// Looked at by [`crate::services::fraud::quarantine`].
    Looked(DecisionOutcome),
}

impl BulkOutcome {
    fn name(&self) -> &'static str {
        match self {
            Self::Forbidden => "forbidden",
            Self::Looked(DecisionOutcome::Decided(_)) => "decided",
            Self::Looked(DecisionOutcome::AlreadyDecided { .. }) => "already_decided",
            Self::Looked(DecisionOutcome::NotQuarantined) => "not_held",
            Self::Looked(DecisionOutcome::NotFound) => "not_found",
        }
    }
}

/// Outcome names, in the order the answer counts them.
const OUTCOMES: [&str; 5] = [
    "decided",
    "already_decided",
    "not_held",
    "not_found",
    "forbidden",
];

fn outcome_json((brand, kind, id): &BulkKey, outcome: &BulkOutcome) -> Value {
    let mut out = json!({
        "brand_id": brand.to_string(),
        "kind": kind.as_str(),
        "entity_id": id,
        "outcome": outcome.name(),
    });
    match outcome {
        BulkOutcome::Looked(DecisionOutcome::Decided(row)) => {
            out["review_id"] = json!(row.review_id.to_string());
            out["player_id"] =
                json!((!row.brand_player_id.is_empty()).then_some(&row.brand_player_id));
        }
        BulkOutcome::Looked(DecisionOutcome::AlreadyDecided { verdict, earlier }) => {
            out["decision"] = json!({
                "review_id": earlier.review_id.to_string(),
                "verdict": verdict.map_or("decided", Verdict::as_str),
                "reviewer": earlier.reviewer,
                "note": earlier.note,
                "decided_at_ms": earlier.decided_at_ms,
            });
        }
        _ => {}
    }
    out
}

/// Approves or rejects many quarantined entities at once, with one reason:
/// one `fraud_reviews` row per entity the caller may decide that is held
/// and undecided, all stored in one INSERT (or none), and per entity, in
/// the request's order, what became of it.
pub async fn decide_many(
    caller: ApiCaller,
    principal: Option<axum::Extension<Principal>>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<BulkDecisionRequest>,
) -> Result<Json<Value>, ApiError> {
    let (credential, own, owner) = match caller {
        ApiCaller::Operator => {
            let op = require_operator(principal.as_ref().map(|p| &p.0), Permission::Risk)?;
            let owner = (!op.is_bootstrap()).then(|| op.owner().to_owned());
            (op.credential(), None, owner)
        }
        ApiCaller::Brand(b) => (BRAND_CREDENTIAL.to_owned(), Some(b), None),
        ApiCaller::Affiliate(_) => return Err(ApiError::Forbidden(REVIEWERS_ONLY)),
    };
    let mut problems = Vec::new();
    let p = &mut problems;
    let verdict = parse_verdict(p, body.decision.as_deref());
    let reason = parse_reason(p, body.reason.as_deref());
    let reviewer = match (owner, body.reviewer.as_deref()) {
        (Some(owner), _) => owner,
        (None, Some(r)) => parse_reviewer(p, Some(r)),
        (None, None) => credential.clone(),
    };
    let default_brand = match body.brand_id.as_deref() {
        Some(b) => take(p, parse_brand(b)),
        None => own,
    };
    let entities = parse_entities(p, body.entities, default_brand);
    let (Some(verdict), true) = (verdict, problems.is_empty()) else {
        return Err(ApiError::Validation(problems));
    };
    let may_decide = |brand: BrandId| own.is_none_or(|b| b == brand);
    let allowed: Vec<BulkKey> = entities
        .iter()
        .filter(|(b, _, _)| may_decide(*b))
        .cloned()
        .collect();
    let at_ms = now_ms();
    let mut looked = if allowed.is_empty() {
        Vec::new()
    } else {
        state
            .quarantine()
            .decide_many(
                &allowed,
                Decision {
                    verdict,
                    reviewer: &reviewer,
                    credential: &credential,
                    note: &reason,
                    at_ms,
                },
            )
            .await?
    }
    .into_iter();
    let outcomes: Vec<BulkOutcome> = entities
        .iter()
        .map(|(b, _, _)| {
            if may_decide(*b) {
                // One outcome per allowed entity, in order.
                looked
                    .next()
                    .map_or(BulkOutcome::Forbidden, BulkOutcome::Looked)
            } else {
                BulkOutcome::Forbidden
            }
        })
        .collect();
    let counts: serde_json::Map<String, Value> = OUTCOMES
        .iter()
        .map(|name| {
            let n = outcomes.iter().filter(|o| o.name() == *name).count();
            ((*name).to_owned(), json!(n))
        })
        .collect();
    Ok(Json(json!({
        "decision": verdict.as_str(),
        "reason": reason,
        "reviewer": reviewer,
        "credential": credential,
        "decided_at_ms": at_ms,
        "counts": counts,
        "results": entities
            .iter()
            .zip(&outcomes)
            .map(|(key, o)| outcome_json(key, o))
            .collect::<Vec<_>>(),
    })))
}

/// `POST /admin/v1/fraud/sweep`: runs the population sweep now (the fraud
/// job runs it every `fraud.sweep_interval_secs`), e.g. after importing
/// traffic. Operator token only. Answers what it found and how many clicks
/// it held.
pub async fn sweep_now(
    _op: RiskReviewer,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let report = state.sweep().run_once(now_ms()).await?;
    let findings: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            json!({
                "brand_id": f.brand_id,
                "link_code": f.link_code.as_str(),
                "group": f.group.to_string(),
                "clicks": f.clicks,
                "converted": f.converted,
                "expected": (f.expected * 10.0).round() / 10.0,
                "signal": f.hit.signal.code(),
                "points": f.hit.points,
                "detail": f.hit.detail,
            })
        })
        .collect();
    Ok(Json(json!({
        "findings": findings,
        "held_clicks": report.held.len(),
        "skipped_rows": report.skipped_rows,
    })))
}

/// The review queue and decision routes (under `/api/v1`).
pub fn api_routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/fraud/quarantine", get(list))
        .route("/fraud/quarantine/decisions", post(decide_many))
        .route("/fraud/quarantine/{kind}/{id}/decision", post(decide))
}

/// The population sweep route (under `/admin/v1`).
pub fn admin_routes() -> axum::Router<AppState> {
    axum::Router::new().route("/fraud/sweep", axum::routing::post(sweep_now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_every_length_and_refuses_what_it_never_writes() {
        for n in 0..12 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 250) as u8).collect();
            let text = base64url_encode(&bytes);
            assert!(!text.contains('='), "{text}");
            assert_eq!(base64url_decode(&text), Some(bytes), "{text}");
        }
        assert_eq!(
            base64url_encode(b"any carnal pleas"),
            "YW55IGNhcm5hbCBwbGVhcw"
        );
        for bad in ["Y", "YW5=", "YW!x", "YX"] {
            assert_eq!(base64url_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_nothing_else_decodes() {
        let key = QueueKey {
            occurred_at_ms: 1_766_000_000_123,
            entity_kind: 2,
            brand_id: Uuid::from_u128(7),
            entity_id: "reg?1\nwith newline".into(),
        };
        let c = encode_cursor(&key);
        assert!(c
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(decode_cursor(&c), Some(key.clone()));
        let other_kind = QueueKey {
            entity_kind: 9,
            ..key
        };
        for bad in [
            "",
            "x",
            "a1.0190a1b2000070008000000000000001",
            &base64url_encode(b"q2\n1\n1\n00000000-0000-0000-0000-000000000007\nid"),
            &base64url_encode(b"q1\nsoon\n1\n00000000-0000-0000-0000-000000000007\nid"),
            &base64url_encode(b"q1\n1\n1\nnot-a-uuid\nid"),
            &base64url_encode(b"q1\n1\n1\n00000000-0000-0000-0000-000000000007\n"),
            &encode_cursor(&other_kind),
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_bad_list_parameter_is_named() {
        let q = ListQuery {
            brand_id: Some("nope".into()),
            affiliate_id: Some("nope".into()),
            kind: Some("visit".into()),
            signal: Some("vibes".into()),
            min_score: Some("101".into()),
            max_score: Some("-1".into()),
            from: Some("yesterday".into()),
            to: Some("2026-13-01T00:00:00Z".into()),
            status: Some("lost".into()),
            limit: Some("501".into()),
            cursor: Some("x".into()),
        };
        let Err(ApiError::Validation(problems)) = q.parse() else {
            panic!("accepted");
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "brand_id",
                "affiliate_id",
                "kind",
                "signal",
                "min_score",
                "max_score",
                "from",
                "to",
                "status",
                "limit",
                "cursor"
            ]
        );
    }

    #[test]
    fn scores_and_times_must_make_a_range() {
        let q = ListQuery {
            min_score: Some("80".into()),
            max_score: Some("60".into()),
            from: Some("2026-11-20T10:00:00Z".into()),
            to: Some("2026-11-20T10:00:00Z".into()),
            ..ListQuery::default()
        };
        let Err(ApiError::Validation(problems)) = q.parse() else {
            panic!("accepted");
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["min_score", "to"]);
        let ok = ListQuery {
            min_score: Some("0".into()),
            max_score: Some("100".into()),
            from: Some("2026-11-20T10:00:00+01:00".into()),
            limit: Some("500".into()),
            ..ListQuery::default()
        }
        .parse()
        .expect("valid");
        assert_eq!(ok.from_ms, Some(1_795_165_200_000));
        assert_eq!(ok.limit, 500);
    }

    fn entity(brand: Option<&str>, kind: &str, id: &str) -> EntityRef {
        EntityRef {
            brand_id: brand.map(str::to_owned),
            kind: Some(kind.to_owned()),
            entity_id: Some(id.to_owned()),
        }
    }

    #[test]
    fn bulk_entities_take_their_own_brand_else_the_default_and_are_listed_once() {
        let own = BrandId::from(Uuid::from_u128(1));
        let other = "00000000-0000-0000-0000-000000000002";
        let mut problems = Vec::new();
        let keys = parse_entities(
            &mut problems,
            Some(vec![
                entity(None, "click", "c-1"),
                entity(Some(other), "registration", " r-1 "),
                entity(Some(other), "click", "c-1"),
            ]),
            Some(own),
        );
        assert!(problems.is_empty(), "{problems:?}");
        let other = BrandId::parse(other).expect("uuid");
        assert_eq!(
            keys,
            [
                (own, EntityKind::Click, "c-1".to_owned()),
                (other, EntityKind::Registration, "r-1".to_owned()),
                (other, EntityKind::Click, "c-1".to_owned()),
            ]
        );
        let mut problems = Vec::new();
        parse_entities(
            &mut problems,
            Some(vec![
                entity(None, "click", "c-1"),
                entity(Some("nope"), "click", "c-2"),
                entity(Some("00000000-0000-0000-0000-000000000001"), "click", "c-3"),
                entity(Some("00000000-0000-0000-0000-000000000001"), "click", "c-3"),
            ]),
            None,
        );
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "entities[0].brand_id",
                "entities[1].brand_id",
                "entities[3]"
            ]
        );
        for n in [0, MAX_BULK_ENTITIES + 1] {
            let mut problems = Vec::new();
            let many = (0..n)
                .map(|i| entity(None, "click", &i.to_string()))
                .collect();
            assert!(parse_entities(&mut problems, Some(many), Some(own)).is_empty());
            assert_eq!(problems[0].field, "entities", "{n}");
        }
    }

    #[test]
    fn a_bulk_reason_is_required_and_at_most_2000_bytes() {
        for (reason, ok) in [
            (None, false),
            (Some(" \n "), false),
            (Some("farm"), true),
            (Some(&*"é".repeat(1000)), true),
            (Some(&*"é".repeat(1001)), false),
        ] {
            let mut problems = Vec::new();
            parse_reason(&mut problems, reason);
            assert_eq!(problems.is_empty(), ok, "{reason:?}: {problems:?}");
            assert!(problems.iter().all(|p| p.field == "reason"));
        }
    }
}
