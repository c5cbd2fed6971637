//! The operators' review of quarantined clicks and conversions.
//!
//! * `GET /api/v1/fraud/quarantine` — one page of held entities with their
//!   score, signals and review state, newest first (`limit` 1..=500,
//!   `cursor` = the previous page's `next_cursor`; filters `brand_id`,
//!   `affiliate_id`, `kind`, `signal`, `min_score`, `max_score`, `from`,
//!   `to`, `status` = pending | approved | rejected). The page is selected
//!   in ClickHouse ([`crate::store::fraud_review`]).
//! * `POST /api/v1/fraud/quarantine/{kind}/{id}/decision` approves
//!   (released: attribution and commission proceed) or rejects (confirmed
//!   fraud: the commission job claws back anything accrued) one of them;
//!   the first decision is binding (409 after), and records who decided and
//!   when.
//! * `POST /api/v1/fraud/quarantine/decisions` takes the same decision on
//!   up to 1 000 entities of one brand, and says per entity whether it was
//!   decided, already decided, not found or not quarantined.
//!
//! Owns parsing (every bad value is a 422 naming its field), the cursor
//! and the JSON views; what a decision does belongs to
//! [`crate::quarantine`]. Operator token only: brands and affiliates never
//! see the review queue.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use clickstitch_shared::{AffiliateId, BrandId};

use crate::auth::Operator;
use crate::clock::now_ms;
use crate::error::{ApiError, Problem};
use crate::events::parse_time;
use crate::fraud::Signal;
use crate::quarantine::{
    Decision, DecisionOutcome, EntityKind, ReviewError, ReviewItem, ReviewPage, Verdict,
};
use crate::routes::admin::{ApiJson, ApiQuery};
use crate::startup::AppState;
use crate::store::fraud_review::{QueueKey, QueueQuery, QueueStatus};

/// Largest page (`limit`).
pub const MAX_LIMIT: usize = 500;

/// Default page size.
pub const DEFAULT_LIMIT: usize = 100;

/// Most entities one bulk decision may name.
pub const MAX_BULK_ENTITIES: usize = 1000;

/// The credential recorded with operator decisions.
const OPERATOR_CREDENTIAL: &str = "operator_token";

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

/// One entity of a bulk decision.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityRef {
    kind: Option<String>,
    id: Option<String>,
}

/// `POST /api/v1/fraud/quarantine/decisions` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkDecisionRequest {
    brand_id: Option<String>,
    decision: Option<String>,
    reviewer: Option<String>,
    #[serde(default)]
    note: Option<String>,
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
    Signal::parse(text).map(|s| s.code().to_owned()).ok_or_else(|| {
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
        let signal = self.signal.as_deref().and_then(|s| take(p, parse_signal(s)));
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
        let status = self.status.as_deref().and_then(|s| take(p, parse_status(s)));
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
    let status = item.decision.as_ref().map_or("pending", |(v, _)| v.as_str());
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

/// Lists one page of quarantined entities.
pub async fn list(
    _op: Operator,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let query = q.parse()?;
    let ReviewPage { items, next } = state.quarantine().review_page(&query, now_ms()).await?;
    Ok(Json(json!({
        "items": items.iter().map(item_json).collect::<Vec<_>>(),
        "next_cursor": next.as_ref().map(encode_cursor),
    })))
}

// ---------------------------------------------------------------- decide

/// The fields a single and a bulk decision share, checked.
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
    let verdict = match decision {
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
    let reviewer = reviewer.map(str::trim).unwrap_or_default().to_owned();
    if reviewer.is_empty() || reviewer.len() > 128 || reviewer.chars().any(char::is_control) {
        problems.push(Problem::new(
            "reviewer",
            "is required: who decides (1..=128 printable characters)",
        ));
    }
    let note = note.unwrap_or_default();
    if note.len() > 2000 {
        problems.push(Problem::new("note", "must be at most 2000 bytes"));
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
    _op: Operator,
    State(state): State<AppState>,
    Path((kind, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<DecisionRequest>,
) -> Result<Response, ApiError> {
    let mut problems = Vec::new();
    let kind = take(&mut problems, parse_kind(&kind, "kind"));
    let fields = decision_fields(
        &mut problems,
        body.brand_id.as_deref(),
        body.decision.as_deref(),
        body.reviewer.as_deref(),
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
            OPERATOR_CREDENTIAL,
            &fields.note,
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

/// Checks a bulk decision's entity list: 1..=1000 entities, each with a
/// kind and an id, none twice.
fn parse_entities(
    problems: &mut Vec<Problem>,
    entities: Option<Vec<EntityRef>>,
) -> Vec<(EntityKind, String)> {
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
        let kind = match e.kind.as_deref() {
            Some(k) => take(problems, parse_kind(k, &format!("entities[{i}].kind"))),
            None => {
                problems.push(Problem::new(format!("entities[{i}].kind"), "is required"));
                None
            }
        };
        let id = e.id.map(|id| id.trim().to_owned()).unwrap_or_default();
        if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
            problems.push(Problem::new(
                format!("entities[{i}].id"),
                "is required: 1..=128 printable characters",
            ));
            continue;
        }
        let Some(kind) = kind else { continue };
        if !seen.insert((kind, id.clone())) {
            problems.push(Problem::new(
                format!("entities[{i}]"),
                "lists an entity already listed",
            ));
            continue;
        }
        out.push((kind, id));
    }
    out
}

fn outcome_json(kind: EntityKind, id: &str, outcome: &DecisionOutcome) -> Value {
    match outcome {
        DecisionOutcome::Decided(row) => json!({
            "kind": kind.as_str(), "id": id, "outcome": "decided",
            "review_id": row.review_id.to_string(),
            "player_id": (!row.brand_player_id.is_empty()).then_some(&row.brand_player_id),
        }),
        DecisionOutcome::AlreadyDecided { verdict, earlier } => json!({
            "kind": kind.as_str(), "id": id, "outcome": "already_decided",
            "decision": {
                "review_id": earlier.review_id.to_string(),
                "verdict": verdict.map_or("decided", Verdict::as_str),
                "reviewer": earlier.reviewer,
                "decided_at_ms": earlier.decided_at_ms,
            },
        }),
        DecisionOutcome::NotFound => json!({"kind": kind.as_str(), "id": id, "outcome": "not_found"}),
        DecisionOutcome::NotQuarantined => {
            json!({"kind": kind.as_str(), "id": id, "outcome": "not_quarantined"})
        }
    }
}

/// Approves or rejects many quarantined entities of one brand at once:
/// one `fraud_reviews` row per entity that is quarantined and undecided
/// (stored together), and per entity what became of it.
pub async fn decide_many(
    _op: Operator,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<BulkDecisionRequest>,
) -> Result<Json<Value>, ApiError> {
    let mut problems = Vec::new();
    let fields = decision_fields(
        &mut problems,
        body.brand_id.as_deref(),
        body.decision.as_deref(),
        body.reviewer.as_deref(),
        body.note,
    );
    let entities = parse_entities(&mut problems, body.entities);
    let (Some(brand), Some(verdict), true) = (fields.brand, fields.verdict, problems.is_empty())
    else {
        return Err(ApiError::Validation(problems));
    };
    let at_ms = now_ms();
    let outcomes = state
        .quarantine()
        .decide_many(
            brand,
            &entities,
            Decision {
                verdict,
                reviewer: &fields.reviewer,
                credential: OPERATOR_CREDENTIAL,
                note: &fields.note,
                at_ms,
            },
        )
        .await?;
    let count = |f: fn(&DecisionOutcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    Ok(Json(json!({
        "brand_id": brand.to_string(),
        "decision": verdict.as_str(),
        "reviewer": fields.reviewer,
        "note": fields.note,
        "decided_at_ms": at_ms,
        "counts": {
            "decided": count(|o| matches!(o, DecisionOutcome::Decided(_))),
            "already_decided": count(|o| matches!(o, DecisionOutcome::AlreadyDecided { .. })),
            "not_found": count(|o| matches!(o, DecisionOutcome::NotFound)),
            "not_quarantined": count(|o| matches!(o, DecisionOutcome::NotQuarantined)),
        },
        "results": entities
            .iter()
            .zip(&outcomes)
            .map(|((kind, id), o)| outcome_json(*kind, id, o))
            .collect::<Vec<_>>(),
    })))
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
        assert_eq!(base64url_encode(b"any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw");
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
        assert_eq!(ok.from_ms, Some(1_763_629_200_000));
        assert_eq!(ok.limit, 500);
    }
}
