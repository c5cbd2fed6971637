//! The review queue's storage: one page of held entities selected in
//! ClickHouse (filters, keyset cursor, newest score per entity), the
//! decisions on given entities, and decisions written in one INSERT.
//!
//! Owns SQL only; what a decision does belongs to [`crate::services::fraud::quarantine`].
//! Every query splices literals (UUIDs, numbers, enum names and signal
//! codes chosen here, ids escaped by [`sql_string`]) and runs with
//! `query_raw`, so that a `?` in an entity id is no bind placeholder.
//!
//! The SQL runs on ClickHouse 18.16 and on current releases: UUIDs are
//! compared as `toUUID` literals on non-nullable columns and as text on the
//! nullable `affiliate_id`, and no alias shares a column's name. The page
//! query is documented in `docs/clickhouse.md` (a unit test keeps the two
//! identical), where `sql_compat` runs it on both.

use std::collections::HashMap;

use uuid::Uuid;

use super::fraud::{first_decisions, kind_name, select_scores, FraudReviewRow, FraudScoreRow};
use super::lookups::sql_string;
use super::{Store, StoreError};

/// The review state a page keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStatus {
    /// No decision yet.
    Pending,
    /// The first decision approved it.
    Approved,
    /// The first decision rejected it.
    Rejected,
}

/// The sort key of a held entity: the queue is ordered by
/// `occurred_at_ms` descending, then kind (its `Enum8` value), brand id (as
/// text) and entity id ascending. A page starts after the key of the
/// previous page's last entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKey {
    /// When the entity happened (Unix ms).
    pub occurred_at_ms: u64,
    /// Its `entity_kind` value.
    pub entity_kind: i8,
    /// Its brand.
    pub brand_id: Uuid,
    /// Its id.
    pub entity_id: String,
}

impl QueueKey {
    /// The key of a stored score.
    pub fn of(row: &FraudScoreRow) -> Self {
        Self {
            occurred_at_ms: row.occurred_at_ms,
            entity_kind: row.entity_kind,
            brand_id: row.brand_id,
            entity_id: row.entity_id.clone(),
        }
    }
}

/// What one page of the review queue selects: held entities (whose newest
/// score is quarantined) matching every filter given.
#[derive(Debug, Clone, Default)]
pub struct QueueQuery {
    /// Only this brand.
    pub brand: Option<Uuid>,
    /// Only entities credited to this affiliate.
    pub affiliate: Option<Uuid>,
    /// Only this kind (`entity_kind` value).
    pub entity_kind: Option<i8>,
    /// Only entities whose newest score has a hit of this signal code
    /// (lower-case letters and `_`; anything else matches nothing).
    pub signal: Option<String>,
    /// Newest score at least this.
    pub min_score: Option<u8>,
    /// Newest score at most this.
    pub max_score: Option<u8>,
    /// Happened at or after this (Unix ms).
    pub from_ms: Option<u64>,
    /// Happened before this (Unix ms).
    pub to_ms: Option<u64>,
    /// Only entities in this review state.
    pub status: Option<QueueStatus>,
    /// Start after this key (the previous page's last).
    pub after: Option<QueueKey>,
    /// Entities to return at most (500 or fewer: the page's keys make one
    /// query).
    pub limit: usize,
}

use clickstitch_domain::units::DAY_MS;

/// How far back a page looks first, from its newest possible entity (the
/// cursor, `to` or now): a page full within one day is read from one day
/// of scores, else from 30 days, else from everything. A window holding
/// `limit` entities holds the page, as everything outside it is older.
const WINDOWS_MS: [Option<u64>; 3] = [Some(DAY_MS), Some(30 * DAY_MS), None];

/// Ids per `IN` list (keeps a query well under `max_query_size`).
const IDS_PER_QUERY: usize = 250;

/// The queue's order.
const ORDER: &str =
    "ORDER BY occurred_at_ms DESC, toInt8(entity_kind), toString(brand_id), entity_id";

fn is_signal_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// Conditions on the time an entity happened that ClickHouse can prune
/// partitions with (`occurred_at`, seconds), from the bounds in ms.
fn time_bounds(since_ms: Option<u64>, to_ms: Option<u64>, until_ms: Option<u64>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(s) = since_ms {
        out.push(format!("occurred_at >= toDateTime({})", s / 1000));
    }
    if let Some(u) = [to_ms, until_ms].into_iter().flatten().min() {
        out.push(format!("occurred_at <= toDateTime({})", u / 1000));
    }
    out
}

/// The SQL selecting the keys of one page: the held entities after the
/// cursor whose newest score (after `FINAL`) passes the filters, in the
/// queue's order, `q.limit` at most; `since_ms` is the window's lower
/// bound. Every condition but the review state is on the newest row; the
/// review state is the first decision in `fraud_reviews`.
pub(crate) fn page_keys_sql(q: &QueueQuery, since_ms: Option<u64>) -> String {
    let since_ms = [since_ms, q.from_ms].into_iter().flatten().max();
    let mut inner = time_bounds(
        since_ms,
        q.to_ms,
        q.after.as_ref().map(|k| k.occurred_at_ms),
    );
    inner.push("quarantined = 1".to_owned());
    let mut scope = Vec::new();
    if let Some(b) = q.brand {
        scope.push(format!("brand_id = toUUID('{b}')"));
    }
    if let Some(k) = q.entity_kind {
        scope.push(format!("entity_kind = '{}'", kind_name(k)));
    }
    inner.extend(scope.iter().cloned());
    if let Some(a) = q.affiliate {
        inner.push(format!("toString(affiliate_id) = '{a}'"));
    }
    if let Some(s) = q.min_score {
        inner.push(format!("score >= {s}"));
    }
    if let Some(s) = q.max_score {
        inner.push(format!("score <= {s}"));
    }
    if let Some(code) = &q.signal {
        let code = if is_signal_code(code) {
            code.as_str()
        } else {
            "-"
        };
        inner.push(format!(
            "position(signals, {}) > 0",
            sql_string(&format!("\"signal\":\"{code}\""))
        ));
    }
    if let Some(s) = since_ms {
        inner.push(format!("occurred_at_ms >= {s}"));
    }
    if let Some(t) = q.to_ms {
        inner.push(format!("occurred_at_ms < {t}"));
    }
    if let Some(k) = &q.after {
        let t = k.occurred_at_ms;
        inner.push(format!(
            "(occurred_at_ms < {t} OR (occurred_at_ms = {t} AND \
             (toInt8(entity_kind), toString(brand_id), entity_id) > ({}, '{}', {})))",
            k.entity_kind,
            k.brand_id,
            sql_string(&k.entity_id)
        ));
    }
    let reviews = if scope.is_empty() {
        "fraud_reviews".to_owned()
    } else {
        format!("fraud_reviews WHERE {}", scope.join(" AND "))
    };
    let status = match q.status {
        None => String::new(),
        Some(QueueStatus::Pending) => format!(
            " WHERE (brand_id, entity_kind, entity_id) NOT IN \
             (SELECT brand_id, entity_kind, entity_id FROM {reviews})"
        ),
        Some(s) => format!(
            " WHERE (brand_id, entity_kind, entity_id) IN \
             (SELECT brand_id, entity_kind, entity_id FROM {reviews} \
             GROUP BY brand_id, entity_kind, entity_id \
             HAVING argMin(decision, decided_at_ms) = '{}')",
            if s == QueueStatus::Approved {
                "approved"
            } else {
                "rejected"
            }
        ),
    };
    format!(
        "SELECT brand_id, entity_kind, entity_id, occurred_at_ms \
         FROM (SELECT brand_id, entity_kind, entity_id, occurred_at_ms \
         FROM fraud_scores FINAL WHERE {}){status} {ORDER} LIMIT {}",
        inner.join(" AND "),
        q.limit
    )
}

/// `(brand_id, entity_kind, entity_id) IN ((toUUID('…'), 'kind', '…'), …)`.
fn keys_in(keys: &[(Uuid, i8, String)]) -> String {
    let list: Vec<String> = keys
        .iter()
        .map(|(b, k, id)| format!("(toUUID('{b}'), '{}', {})", kind_name(*k), sql_string(id)))
        .collect();
    format!(
        "(brand_id, entity_kind, entity_id) IN ({})",
        list.join(", ")
    )
}

const REVIEW_COLUMNS: &str = "review_id, brand_id, entity_kind, entity_id, brand_player_id, \
     decision, reviewer, credential, note, decided_at, decided_at_ms";

#[derive(clickhouse::Row, serde::Deserialize)]
struct KeyRow {
    #[serde(with = "clickhouse::serde::uuid")]
    brand_id: Uuid,
    entity_kind: i8,
    entity_id: String,
    occurred_at_ms: u64,
}

impl Store {
    /// One page of the review queue: at most `q.limit` held entities after
    /// `q.after` matching the filters, newest first (see [`QueueKey`]),
    /// each with its newest score. Selected in ClickHouse from the scores
    /// of a window of time before the page (one day, then 30 days, then
    /// everything, as needed); `now_ms` anchors the first page's window.
    pub async fn review_queue_page(
        &self,
        q: &QueueQuery,
        now_ms: u64,
    ) -> Result<Vec<FraudScoreRow>, StoreError> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let newest = [
            q.after.as_ref().map(|k| k.occurred_at_ms),
            q.to_ms,
            Some(now_ms),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now_ms);
        let mut keys: Vec<KeyRow> = Vec::new();
        for window in WINDOWS_MS {
            // A window reaching `from` (or the epoch) is everything.
            let since = window
                .map(|w| newest.saturating_sub(w))
                .filter(|s| *s > q.from_ms.unwrap_or(0));
            keys = self
                .client()
                .query_raw(&page_keys_sql(q, since))
                .fetch_all()
                .await?;
            if keys.len() >= q.limit || since.is_none() {
                break;
            }
        }
        let (Some(oldest), Some(newest)) = (
            keys.iter().map(|k| k.occurred_at_ms).min(),
            keys.iter().map(|k| k.occurred_at_ms).max(),
        ) else {
            return Ok(Vec::new());
        };
        let keys: Vec<(Uuid, i8, String)> = keys
            .into_iter()
            .map(|k| (k.brand_id, k.entity_kind, k.entity_id))
            .collect();
        // The page's time span selects its partitions.
        let span = time_bounds(Some(oldest), None, Some(newest)).join(" AND ");
        let rows: Vec<FraudScoreRow> = self
            .client()
            .query_raw(&select_scores(&format!("{span} AND {}", keys_in(&keys))))
            .fetch_all()
            .await?;
        // The keys' order; a key whose newest row went away is left out.
        let mut by_key: HashMap<(Uuid, i8, String), FraudScoreRow> = rows
            .into_iter()
            .map(|r| ((r.brand_id, r.entity_kind, r.entity_id.clone()), r))
            .collect();
        Ok(keys.iter().filter_map(|k| by_key.remove(k)).collect())
    }

    /// The newest score of each of these entities that has one.
    pub async fn scores_of_keys(
        &self,
        keys: &[(Uuid, i8, String)],
    ) -> Result<Vec<FraudScoreRow>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(IDS_PER_QUERY) {
            let rows: Vec<FraudScoreRow> = self
                .client()
                .query_raw(&select_scores(&keys_in(chunk)))
                .fetch_all()
                .await?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// The first (binding) decision on each of these entities that has
    /// one.
    pub async fn first_reviews_of(
        &self,
        keys: &[(Uuid, i8, String)],
    ) -> Result<HashMap<(Uuid, i8, String), FraudReviewRow>, StoreError> {
        let mut rows: Vec<FraudReviewRow> = Vec::new();
        for chunk in keys.chunks(IDS_PER_QUERY) {
            let sql = format!(
                "SELECT {REVIEW_COLUMNS} FROM fraud_reviews FINAL WHERE {} ORDER BY decided_at_ms",
                keys_in(chunk)
            );
            rows.extend(
                self.client()
                    .query_raw(&sql)
                    .fetch_all::<FraudReviewRow>()
                    .await?,
            );
        }
        // Chunks are each in time order; the first decision is the earliest.
        rows.sort_by_key(|r| r.decided_at_ms);
        Ok(first_decisions(rows))
    }

    /// Stores decisions in one INSERT (one block: all stored or none),
    /// durable when it returns.
    pub async fn save_reviews(&self, rows: &[FraudReviewRow]) -> Result<(), StoreError> {
        self.insert_all("fraud_reviews", rows).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fraud::kind;

    /// Whitespace-insensitive form of a statement.
    fn normal(sql: &str) -> String {
        sql.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace("( ", "(")
            .replace(" )", ")")
            .trim_end_matches(';')
            .to_owned()
    }

    fn documented_query() -> QueueQuery {
        QueueQuery {
            brand: Some(Uuid::parse_str("0190a1b2-0000-7000-8000-000000000001").unwrap()),
            affiliate: Some(Uuid::parse_str("0190a1b2-0000-7000-8000-000000000002").unwrap()),
            entity_kind: Some(kind::REGISTRATION),
            signal: Some("device_registrations".into()),
            min_score: Some(60),
            max_score: Some(100),
            from_ms: Some(1_764_547_200_000),
            to_ms: Some(1_767_225_600_000),
            status: Some(QueueStatus::Pending),
            after: Some(QueueKey {
                occurred_at_ms: 1_766_000_000_000,
                entity_kind: kind::REGISTRATION,
                brand_id: Uuid::parse_str("0190a1b2-0000-7000-8000-000000000001").unwrap(),
                entity_id: "reg-1042".into(),
            }),
            limit: 101,
        }
    }

    #[test]
    fn the_page_query_in_the_clickhouse_docs_is_the_one_the_store_runs() {
        let doc = include_str!("../../../docs/clickhouse.md");
        let sql = normal(&page_keys_sql(&documented_query(), Some(1_765_913_600_000)));
        let blocks: Vec<String> = doc
            .split("```sql")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .map(normal)
            .collect();
        assert!(
            blocks.contains(&sql),
            "docs/clickhouse.md must hold the review queue's page query verbatim:\n{sql}"
        );
    }

    #[test]
    fn a_first_page_without_filters_reads_held_entities_only() {
        let sql = page_keys_sql(
            &QueueQuery {
                limit: 11,
                ..QueueQuery::default()
            },
            None,
        );
        assert_eq!(
            normal(&sql),
            normal(
                "SELECT brand_id, entity_kind, entity_id, occurred_at_ms FROM (SELECT brand_id, \
                 entity_kind, entity_id, occurred_at_ms FROM fraud_scores FINAL WHERE quarantined = 1) \
                 ORDER BY occurred_at_ms DESC, toInt8(entity_kind), toString(brand_id), entity_id \
                 LIMIT 11"
            )
        );
    }

    #[test]
    fn spliced_text_is_escaped_and_odd_signal_codes_match_nothing() {
        let q = QueueQuery {
            signal: Some("x') OR 1 = 1 --".into()),
            after: Some(QueueKey {
                occurred_at_ms: 5_000,
                entity_kind: kind::CLICK,
                brand_id: Uuid::nil(),
                entity_id: "it's?".into(),
            }),
            status: Some(QueueStatus::Rejected),
            limit: 3,
            ..QueueQuery::default()
        };
        let sql = page_keys_sql(&q, None);
        assert!(
            sql.contains("position(signals, '\"signal\":\"-\"') > 0"),
            "{sql}"
        );
        assert!(sql.contains("'it\\'s?'"), "{sql}");
        assert!(sql.contains("occurred_at <= toDateTime(5)"), "{sql}");
        assert!(
            sql.contains("HAVING argMin(decision, decided_at_ms) = 'rejected'"),
            "{sql}"
        );
        assert!(!sql.contains("OR 1 = 1"), "{sql}");
    }

    #[test]
    fn the_window_and_from_bound_the_time_and_the_later_one_wins() {
        let q = QueueQuery {
            from_ms: Some(10_000),
            limit: 1,
            ..QueueQuery::default()
        };
        let sql = page_keys_sql(&q, Some(20_000));
        assert!(sql.contains("occurred_at >= toDateTime(20)"), "{sql}");
        assert!(sql.contains("occurred_at_ms >= 20000"), "{sql}");
        assert!(!sql.contains("occurred_at_ms >= 10000"), "{sql}");
        let sql = page_keys_sql(&q, None);
        assert!(sql.contains("occurred_at_ms >= 10000"), "{sql}");
    }

    #[test]
    fn key_lists_name_brand_kind_and_id() {
        let keys = vec![
            (Uuid::nil(), kind::CLICK, "c".to_owned()),
            (Uuid::nil(), kind::FIRST_DEPOSIT, "d'1".to_owned()),
        ];
        assert_eq!(
            keys_in(&keys),
            "(brand_id, entity_kind, entity_id) IN ((toUUID('00000000-0000-0000-0000-000000000000'), \
             'click', 'c'), (toUUID('00000000-0000-0000-0000-000000000000'), 'first_deposit', 'd\\'1'))"
        );
    }
}
