//! The commission balances API:
//!
//! * `GET /api/v1/commissions` — one page of affiliates (in the ledger's
//!   order of affiliate ids; `limit`, `cursor` = the previous page's
//!   `next_cursor`), each with its complete balances (pending / approved /
//!   payable / paid) and its ledger lines (filters `affiliate_id`,
//!   `brand_id`, `period`, `state`; at most `lines_limit`), scoped by the
//!   caller: the operator sees every affiliate, an affiliate key its own
//!   lines (its overrides on sub-affiliates included), a brand key the
//!   lines that concern its brand alone. A page costs its affiliates'
//!   ledgers, not the ledger.
//! * `GET /api/v1/commissions/statements/{id}` — one NGR statement (how a
//!   player's NGR was reached), to callers who can see a line behind it.
//!
//! Owns the paging, the caller scoping and the JSON view of balances and
//! lines. Reads only: must not write the ledger nor compute commissions
//! (balances and states come from [`crate::commission`]).

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use clickstitch_shared::{AffiliateId, BrandId};

use crate::commission::ledger::FormulaRef;
use crate::commission::{
    balances, state_of, Detail, EntryKind, EntryState, Gate, LedgerEntry, Month, PeriodCalendar,
    PlayerId, Reason, Slot, Timestamp,
};
use crate::error::Problem;
use crate::http::auth::ApiCaller;
use crate::http::error::ApiError;
use crate::http::extract::ApiQuery;
use crate::http::routes::commissions::decimal;
use crate::http::state::AppState;
use crate::money::{Currency, Money};
use crate::store::commission_reads::{AffiliatePage, SlotBrands};
use crate::store::ledger::brands_of;
use crate::support::clock::now_ms;

/// The commission routes under `/api/v1` (operator, brand or affiliate).
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/commissions", get(get_commissions))
        .route("/commissions/statements/{statement_id}", get(get_statement))
}

// ---------------------------------------------------------------- reading

/// Largest `limit` (affiliates per page).
pub const MAX_PAGE: u32 = 200;

/// Default `limit`.
pub const DEFAULT_PAGE: u32 = 50;

/// Largest `lines_limit` (lines per affiliate).
pub const MAX_LINES: usize = 1_000;

/// Default `lines_limit`.
pub const DEFAULT_LINES: usize = 200;

/// `GET /api/v1/commissions` query (every field as text, parsed by
/// `CommissionsQuery::parse` so that a bad value is a 422 naming it).
#[derive(Debug, Default, Deserialize)]
pub struct CommissionsQuery {
    /// Affiliates per page, 1..=200 (default 50).
    limit: Option<String>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
    /// Only this affiliate.
    affiliate_id: Option<String>,
    /// Only the slots naming this brand (operator only).
    brand_id: Option<String>,
    /// Only lines booked in this month (`YYYY-MM`), and affiliates with one.
    period: Option<String>,
    /// Only lines in these states (comma-separated: pending, approved,
    /// payable, paid); balances are always complete.
    state: Option<String>,
    /// Lines per affiliate, 1..=1000 (default 200).
    lines_limit: Option<String>,
}

/// A parsed [`CommissionsQuery`].
#[derive(Debug)]
struct PageRequest {
    limit: u32,
    after: Option<AffiliateId>,
    affiliate: Option<AffiliateId>,
    brand: Option<BrandId>,
    period: Option<Month>,
    states: Option<BTreeSet<EntryState>>,
    lines_limit: usize,
}

const CURSOR_PREFIX: &str = "a1.";

/// The cursor of the page after the one ending with `last`.
fn encode_cursor(last: AffiliateId) -> String {
    format!("{CURSOR_PREFIX}{}", last.as_uuid().simple())
}

fn decode_cursor(text: &str) -> Option<AffiliateId> {
    let hex = text.strip_prefix(CURSOR_PREFIX)?;
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Uuid::parse_str(hex).ok().map(AffiliateId::from)
}

fn parse_count<T: TryFrom<u64> + Copy>(
    field: &str,
    text: Option<&str>,
    default: T,
    max: u64,
) -> Result<T, Problem> {
    let Some(text) = text else {
        return Ok(default);
    };
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| Problem::new(field, format!("must be an integer 1..={max}")))
}

/// `r`'s value, or `None` with its problem recorded.
fn take<T>(problems: &mut Vec<Problem>, r: Result<T, Problem>) -> Option<T> {
    r.map_err(|p| problems.push(p)).ok()
}

impl CommissionsQuery {
    /// Checks every parameter (all problems at once); `brand_id` is for
    /// the operator only.
    fn parse(&self, caller: ApiCaller) -> Result<PageRequest, ApiError> {
        let mut problems = Vec::new();
        let limit = take(
            &mut problems,
            parse_count(
                "limit",
                self.limit.as_deref(),
                DEFAULT_PAGE,
                u64::from(MAX_PAGE),
            ),
        );
        let lines_limit = take(
            &mut problems,
            parse_count(
                "lines_limit",
                self.lines_limit.as_deref(),
                DEFAULT_LINES,
                MAX_LINES as u64,
            ),
        );
        let after = take(
            &mut problems,
            self.cursor
                .as_deref()
                .map(|c| {
                    decode_cursor(c).ok_or_else(|| {
                        Problem::new("cursor", "not a cursor of this endpoint (use next_cursor)")
                    })
                })
                .transpose(),
        );
        let affiliate = take(
            &mut problems,
            self.affiliate_id
                .as_deref()
                .map(|s| {
                    AffiliateId::parse(s).map_err(|e| Problem::new("affiliate_id", e.to_string()))
                })
                .transpose(),
        );
        let brand = take(
            &mut problems,
            match (&self.brand_id, caller) {
                (None, _) => Ok(None),
                (Some(s), ApiCaller::Operator) => BrandId::parse(s)
                    .map(Some)
                    .map_err(|e| Problem::new("brand_id", e.to_string())),
                (Some(_), _) => Err(Problem::new(
                    "brand_id",
                    "only the operator filters by brand (a brand key sees its own brand)",
                )),
            },
        );
        let period = take(
            &mut problems,
            self.period
                .as_deref()
                .map(|s| Month::parse(s).map_err(|e| Problem::new("period", e.to_string())))
                .transpose(),
        );
        let states = take(
            &mut problems,
            self.state.as_deref().map(parse_states).transpose(),
        );
        match (limit, lines_limit, after, affiliate, brand, period, states) {
            (
                Some(limit),
                Some(lines_limit),
                Some(after),
                Some(affiliate),
                Some(brand),
                Some(period),
                Some(states),
            ) if problems.is_empty() => Ok(PageRequest {
                limit,
                after,
                affiliate,
                brand,
                period,
                states,
                lines_limit,
            }),
            _ => Err(ApiError::Validation(problems)),
        }
    }
}

#[derive(Serialize)]
struct EventView<'a> {
    brand_id: BrandId,
    event_id: &'a str,
}

#[derive(Serialize)]
struct LineView<'a> {
    entry_id: Uuid,
    kind: EntryKind,
    slot_type: &'static str,
    slot: &'a Slot,
    revision: u32,
    amount_minor: i64,
    currency: Currency,
    amount: String,
    slot_total_minor: i64,
    state: EntryState,
    gate: Gate,
    /// The period the entry is booked in.
    period: Month,
    activity_month: Month,
    hold_days: u32,
    /// When it becomes (became) payable, once its period is closed.
    payable_from: Option<String>,
    plan_version: Option<u32>,
    rules_versions: &'a [String],
    formula_versions: &'a [FormulaRef],
    fx_versions: &'a [u32],
    source_events: Vec<EventView<'a>>,
    statements: &'a [Uuid],
    references: &'a [Uuid],
    reverses: &'a [Uuid],
    paid_by: Vec<Uuid>,
    player_id: Option<PlayerId>,
    brand_ids: BTreeSet<BrandId>,
    reason: &'a Reason,
    detail: Option<&'a Detail>,
}

fn slot_type(slot: &Slot) -> &'static str {
    match slot {
        Slot::Cpa { .. } => "cpa",
        Slot::CpaClawback { .. } => "cpa_clawback",
        Slot::RevShare { .. } => "rev_share",
        Slot::RevShareClawback { .. } => "rev_share_clawback",
        Slot::Override { .. } => "override",
        Slot::Payout { .. } => "payout",
    }
}

fn line<'a>(
    e: &'a LedgerEntry,
    calendar: &PeriodCalendar,
    now: Timestamp,
    paid_by: Vec<Uuid>,
) -> LineView<'a> {
    let payable_from = match (e.kind, calendar.closed_at(e.booked_in)) {
        (EntryKind::Payout, _) => None,
        (_, Some(c)) if e.gate == Gate::Final => Some(c.plus_days(e.hold_days).to_string()),
        _ => None,
    };
    LineView {
        entry_id: e.id,
        kind: e.kind,
        slot_type: slot_type(&e.slot),
        slot: &e.slot,
        revision: e.revision,
        amount_minor: e.amount.minor(),
        currency: e.amount.currency(),
        amount: decimal(e.amount),
        slot_total_minor: e.slot_total.minor(),
        state: state_of(e, calendar, now),
        gate: e.gate,
        period: e.booked_in,
        activity_month: e.activity_month,
        hold_days: e.hold_days,
        payable_from,
        plan_version: e.deal_version,
        rules_versions: &e.rules_versions,
        formula_versions: &e.formula_versions,
        fx_versions: &e.fx_versions,
        source_events: e
            .events
            .iter()
            .map(|r| EventView {
                brand_id: r.brand,
                event_id: r.event.as_str(),
            })
            .collect(),
        statements: &e.statements,
        references: &e.references,
        reverses: if e.kind == EntryKind::Reversal {
            &e.references
        } else {
            &[]
        },
        paid_by,
        player_id: e.slot.player(),
        brand_ids: brands_of(e),
        reason: &e.reason,
        detail: e.detail.as_ref(),
    }
}

/// Sums per state, in one currency.
#[derive(Default)]
struct Sums {
    pending: i64,
    approved: i64,
    payable: i64,
    paid: i64,
}

fn balance_json(currency: Currency, s: &Sums) -> Value {
    let m = |minor| Money::new(minor, currency);
    json!({
        "currency": currency,
        "pending_minor": s.pending, "pending": decimal(m(s.pending)),
        "approved_minor": s.approved, "approved": decimal(m(s.approved)),
        "payable_minor": s.payable, "payable": decimal(m(s.payable)),
        "paid_minor": s.paid, "paid": decimal(m(s.paid)),
    })
}

fn parse_states(text: &str) -> Result<BTreeSet<EntryState>, Problem> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| match s.trim() {
            "pending" => Ok(EntryState::Pending),
            "approved" => Ok(EntryState::Approved),
            "payable" => Ok(EntryState::Payable),
            "paid" => Ok(EntryState::Paid),
            other => Err(Problem::new(
                "state",
                format!("must be pending, approved, payable or paid, got {other:?}"),
            )),
        })
        .collect()
}

/// `GET /api/v1/commissions`: one page of affiliates, each with its
/// balances by state and currency (complete) and its ledger lines
/// (filtered, at most `lines_limit`), as of now, plus the `next_cursor` of
/// the following page (`null` on the last one).
///
/// Affiliates come in the ledger's storage order of their ids (ClickHouse
/// compares UUIDs second half first), stable from page to page. A page
/// costs the page, not the ledger: one query finds its affiliates, a
/// second loads only their ledgers.
pub async fn get_commissions(
    caller: ApiCaller,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<CommissionsQuery>,
) -> Result<Json<Value>, ApiError> {
    let req = q.parse(caller)?;
    let (slots, scope_json) = match caller {
        ApiCaller::Operator => (
            req.brand.map_or(SlotBrands::Any, SlotBrands::Naming),
            json!({"type": "operator"}),
        ),
        ApiCaller::Brand(b) => (SlotBrands::Only(b), json!({"type": "brand", "brand_id": b})),
        ApiCaller::Affiliate(a) => (
            SlotBrands::Any,
            json!({"type": "affiliate", "affiliate_id": a}),
        ),
    };
    // An affiliate key sees itself only, whatever it asks for.
    let affiliate = match caller {
        ApiCaller::Affiliate(own) => match req.affiliate {
            Some(other) if other != own => None,
            _ => Some(Some(own)),
        },
        ApiCaller::Operator | ApiCaller::Brand(_) => Some(req.affiliate),
    };
    let store = state.store();
    let mut ids = match affiliate {
        None => Vec::new(),
        Some(affiliate) => {
            store
                .commission_page_affiliates(&AffiliatePage {
                    after: req.after,
                    affiliate,
                    slots,
                    period: req.period,
                    // One more than the page: whether there is a next one.
                    limit: req.limit + 1,
                })
                .await?
        }
    };
    let page_len = req.limit as usize;
    let next_cursor = if ids.len() > page_len {
        ids.truncate(page_len);
        ids.last().copied().map(encode_cursor)
    } else {
        None
    };
    let ledger = store.load_affiliate_ledgers(&ids).await?;
    let calendar = store.load_calendar().await?;
    let now = Timestamp::from_unix_ms(now_ms());

    let mut by_affiliate: BTreeMap<AffiliateId, Vec<LedgerEntry>> = BTreeMap::new();
    for e in ledger {
        by_affiliate.entry(e.affiliate).or_default().push(e);
    }
    let view = BlockView {
        caller,
        slots,
        req: &req,
        calendar: &calendar,
        now,
    };
    let mut affiliates = Vec::with_capacity(ids.len());
    for id in &ids {
        let Some(ledger) = by_affiliate.get(id) else {
            continue;
        };
        if let Some(block) = view.block(*id, ledger)? {
            affiliates.push(block);
        }
    }
    Ok(Json(json!({
        "as_of": now.to_string(),
        "as_of_ms": now.unix_ms(),
        "scope": scope_json,
        "affiliates": affiliates,
        "next_cursor": next_cursor,
    })))
}

/// What one affiliate block of a page shows, and as of when.
struct BlockView<'a> {
    caller: ApiCaller,
    slots: SlotBrands,
    req: &'a PageRequest,
    calendar: &'a PeriodCalendar,
    now: Timestamp,
}

impl BlockView<'_> {
    /// The block of `affiliate` from its complete `ledger`; `None` when
    /// none of its slots is listed.
    fn block(
        &self,
        affiliate: AffiliateId,
        ledger: &[LedgerEntry],
    ) -> Result<Option<Value>, ApiError> {
        let mut paid_by: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
        for p in ledger.iter().filter(|e| e.kind == EntryKind::Payout) {
            for r in &p.references {
                paid_by.entry(*r).or_default().push(p.id);
            }
        }
        // A slot is listed whole (all its entries, so that an accrual is
        // never shown without its reversal).
        let visible: Vec<&LedgerEntry> = match self.slots {
            SlotBrands::Any => ledger.iter().collect(),
            SlotBrands::Naming(b) => {
                let naming: BTreeSet<&Slot> = ledger
                    .iter()
                    .filter(|e| brands_of(e).contains(&b))
                    .map(|e| &e.slot)
                    .collect();
                ledger.iter().filter(|e| naming.contains(&e.slot)).collect()
            }
            // A brand sees a slot when the slot is about that brand alone.
            SlotBrands::Only(b) => {
                let mut slot_brands: BTreeMap<&Slot, BTreeSet<BrandId>> = BTreeMap::new();
                for e in ledger {
                    slot_brands.entry(&e.slot).or_default().extend(brands_of(e));
                }
                let only = BTreeSet::from([b]);
                ledger
                    .iter()
                    .filter(|e| {
                        e.kind != EntryKind::Payout && slot_brands.get(&e.slot) == Some(&only)
                    })
                    .collect()
            }
        };
        if visible.is_empty() {
            return Ok(None);
        }
        let balances_json = match self.caller {
            // The affiliate's complete ledger: the engine's balances.
            ApiCaller::Operator | ApiCaller::Affiliate(_) => {
                balances(ledger, self.calendar, self.now)
                    .map_err(|e| ApiError::Internal(e.to_string()))?
                    .values()
                    .map(|b| {
                        balance_json(
                            b.pending.currency(),
                            &Sums {
                                pending: b.pending.minor(),
                                approved: b.approved.minor(),
                                payable: b.payable.minor(),
                                paid: b.paid.minor(),
                            },
                        )
                    })
                    .collect::<Vec<Value>>()
            }
            // The brand's lines only: per line, a line a payout covered
            // counts as paid.
            ApiCaller::Brand(_) => {
                let mut sums: BTreeMap<Currency, Sums> = BTreeMap::new();
                for e in &visible {
                    let s = sums.entry(e.amount.currency()).or_default();
                    let bucket = if paid_by.contains_key(&e.id) {
                        &mut s.paid
                    } else {
                        match state_of(e, self.calendar, self.now) {
                            EntryState::Pending => &mut s.pending,
                            EntryState::Approved => &mut s.approved,
                            EntryState::Payable => &mut s.payable,
                            EntryState::Paid => &mut s.paid,
                        }
                    };
                    *bucket += e.amount.minor();
                }
                sums.iter().map(|(c, s)| balance_json(*c, s)).collect()
            }
        };
        let mut listed: Vec<&LedgerEntry> = visible
            .into_iter()
            .filter(|e| self.req.period.is_none_or(|m| e.booked_in == m))
            .filter(|e| {
                self.req
                    .states
                    .as_ref()
                    .is_none_or(|s| s.contains(&state_of(e, self.calendar, self.now)))
            })
            .collect();
        listed.sort_by(|a, b| {
            (a.booked_in, &a.slot, a.revision).cmp(&(b.booked_in, &b.slot, b.revision))
        });
        let line_count = listed.len();
        let lines: Vec<LineView<'_>> = listed
            .iter()
            .take(self.req.lines_limit)
            .map(|e| {
                line(
                    e,
                    self.calendar,
                    self.now,
                    paid_by.get(&e.id).cloned().unwrap_or_default(),
                )
            })
            .collect();
        Ok(Some(json!({
            "affiliate_id": affiliate,
            "balances": balances_json,
            "lines": lines,
            "line_count": line_count,
            "lines_truncated": line_count > self.req.lines_limit,
        })))
    }
}

/// `GET /api/v1/commissions/statements/{id}`: an NGR statement, line by
/// line. The operator sees any; a brand its brand's; an affiliate those
/// behind one of its ledger lines.
pub async fn get_statement(
    caller: ApiCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("statement"))?;
    let store = state.store();
    let statement = store
        .load_statement(id)
        .await?
        .ok_or(ApiError::NotFound("statement"))?;
    let allowed = match caller {
        ApiCaller::Operator => true,
        ApiCaller::Brand(b) => statement.brand == b,
        ApiCaller::Affiliate(a) => store.statement_behind(a, id).await?,
    };
    if !allowed {
        return Err(ApiError::NotFound("statement"));
    }
    let mut v = serde_json::to_value(&statement).unwrap_or_default();
    v["ngr_decimal"] = Value::String(decimal(statement.ngr));
    Ok(Json(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_nothing_else_decodes() {
        let a = AffiliateId::parse("0190c3a2-7b1e-7c00-8000-00000000abcd").expect("id");
        let c = encode_cursor(a);
        assert_eq!(c, "a1.0190c3a27b1e7c00800000000000abcd");
        assert_eq!(decode_cursor(&c), Some(a));
        for bad in [
            "",
            "a1.",
            "a1.0190c3a27b1e7c00800000000000abc",
            "a1.0190c3a27b1e7c00800000000000abcg",
            "a1.0190c3a2-7b1e-7c00-8000-00000000abcd",
            "0190c3a2-7b1e-7c00-8000-00000000abcd",
            "b1.0190c3a27b1e7c00800000000000abcd",
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn paging_parameters_default_to_50_affiliates_and_200_lines_and_are_bounded() {
        let query = |v: Value| serde_json::from_value::<CommissionsQuery>(v).expect("shape");
        let req = query(json!({}))
            .parse(ApiCaller::Operator)
            .expect("defaults");
        assert_eq!((req.limit, req.lines_limit), (DEFAULT_PAGE, DEFAULT_LINES));
        assert_eq!((req.after, req.period, req.brand), (None, None, None));
        let req = query(json!({"limit": "200", "lines_limit": "1000", "period": "2026-07"}))
            .parse(ApiCaller::Operator)
            .expect("bounds");
        assert_eq!((req.limit, req.lines_limit), (200, 1_000));
        assert_eq!(req.period, Month::parse("2026-07").ok());
        let Err(ApiError::Validation(problems)) = query(json!({
            "limit": "201", "lines_limit": "0", "cursor": "x", "period": "2026-13",
            "affiliate_id": "nobody", "brand_id": "nobody", "state": "open",
        }))
        .parse(ApiCaller::Operator) else {
            panic!("accepted");
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "limit",
                "lines_limit",
                "cursor",
                "affiliate_id",
                "brand_id",
                "period",
                "state"
            ]
        );
        let brand = BrandId::parse("0190c3a2-7b1e-7c00-8000-00000000beef").expect("id");
        let own = json!({"brand_id": brand.to_string()});
        assert!(query(own.clone()).parse(ApiCaller::Brand(brand)).is_err());
        assert_eq!(
            query(own)
                .parse(ApiCaller::Operator)
                .expect("operator")
                .brand,
            Some(brand)
        );
    }
}
