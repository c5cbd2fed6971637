//! Commission problems: the rows of `commission_problems` (migration 0006)
//! and the operator's view of them (first seen, last seen, still failing).
//!
//! Owns that table's SQL and row layout. Must not decide what is a problem
//! (the commission engine and job do) nor know about HTTP.

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::commission::RunProblem;

use super::{Store, StoreError};

/// One `commission_problems` row: a problem met by one run.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
struct ProblemRow {
    #[serde(with = "clickhouse::serde::uuid")]
    run_id: Uuid,
    run_at: u32,
    run_at_ms: u64,
    problem_key: String,
    kind: String,
    held: String,
    player_id: String,
    brand_id: String,
    affiliate_id: String,
    events: Vec<String>,
    message: String,
}

/// A problem across runs, as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ProblemSummary {
    /// Stable identity: `kind|held|player|brand|affiliate`.
    pub problem_key: String,
    /// The problem kind's code (`wrong_currency`, `no_ngr_formula`, …).
    pub kind: String,
    /// What it holds back (`player`, `cpa`, `revshare_contribution`, …).
    pub held: String,
    /// The player (empty when the problem is about an affiliate).
    pub player_id: String,
    /// The brand (empty when unknown).
    pub brand_id: String,
    /// The affiliate (empty when the problem is about a player).
    pub affiliate_id: String,
    /// The brand events involved, as of the latest run that met it.
    pub events: Vec<String>,
    /// The explanation, as of the latest run that met it.
    pub message: String,
    /// `now` of the first run that met it (Unix ms).
    pub first_seen_ms: u64,
    /// `now` of the latest run that met it (Unix ms).
    pub last_seen_ms: u64,
    /// 1 when the latest successful job run met it.
    pub still_failing: u8,
}

/// Filters of [`Store::load_problems`].
#[derive(Debug, Clone, Default)]
pub struct ProblemFilter {
    /// Only problems of this brand.
    pub brand: Option<Uuid>,
    /// Only this kind (a code).
    pub kind: Option<String>,
    /// Only problems the latest run still met (true) or no longer met
    /// (false).
    pub still_failing: Option<bool>,
    /// At most this many (newest first).
    pub limit: u32,
}

impl Store {
    /// Records the problems of one job run (nothing when there are none).
    pub async fn append_problems(
        &self,
        run_id: Uuid,
        now_ms: u64,
        problems: &[RunProblem],
    ) -> Result<(), StoreError> {
        let text = |x: Option<String>| x.unwrap_or_default();
        let rows: Vec<ProblemRow> = problems
            .iter()
            .map(|p| ProblemRow {
                run_id,
                run_at: crate::support::clock::secs(now_ms),
                run_at_ms: now_ms,
                problem_key: p.key(),
                kind: p.kind.code().to_owned(),
                held: p.held.code().to_owned(),
                player_id: text(p.player.map(|x| x.to_string())),
                brand_id: text(p.brand.map(|x| x.to_string())),
                affiliate_id: text(p.affiliate.map(|x| x.to_string())),
                events: p.events.iter().map(|e| e.as_str().to_owned()).collect(),
                message: p.message.clone(),
            })
            .collect();
        self.insert_all("commission_problems", &rows).await
    }

    /// Every problem ever met (grouped across runs), still failing ones
    /// first, then the most recently seen.
    pub async fn load_problems(
        &self,
        filter: &ProblemFilter,
    ) -> Result<Vec<ProblemSummary>, StoreError> {
        let latest: String = self
            .client()
            .query(
                "SELECT toString(argMax(run_id, finished_at_ms)) FROM commission_runs \
                 WHERE kind = 'job' AND error = ''",
            )
            .fetch_optional::<String>()
            .await?
            .unwrap_or_default();
        let mut wheres = Vec::new();
        if filter.brand.is_some() {
            wheres.push("brand_id = ?");
        }
        if filter.kind.is_some() {
            wheres.push("kind = ?");
        }
        let where_sql = if wheres.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", wheres.join(" AND "))
        };
        let having = match filter.still_failing {
            None => "",
            Some(true) => "HAVING p_still_failing = 1",
            Some(false) => "HAVING p_still_failing = 0",
        };
        let sql = format!(
            "SELECT problem_key, any(kind), any(held), any(player_id), any(brand_id), \
             any(affiliate_id), argMax(events, run_at_ms), argMax(message, run_at_ms), \
             min(run_at_ms) AS p_first_seen, max(run_at_ms) AS p_last_seen, \
             toUInt8(max(toString(run_id) = ?)) AS p_still_failing \
             FROM commission_problems {where_sql} GROUP BY problem_key {having} \
             ORDER BY p_still_failing DESC, p_last_seen DESC, problem_key LIMIT ?"
        );
        let mut q = self.client().query(&sql).bind(latest);
        if let Some(b) = filter.brand {
            q = q.bind(b.to_string());
        }
        if let Some(k) = &filter.kind {
            q = q.bind(k.as_str());
        }
        Ok(q.bind(filter.limit).fetch_all().await?)
    }
}
