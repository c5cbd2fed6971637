//! The commission configuration (deals, NGR formulas, FX tables): stored
//! append-only, as versioned documents, under the writer lock.

use serde::Serialize;

use crate::commission::{Deal, NgrFormula};
use crate::error::Problem;
use crate::store::ledger::StoredFxTable;

use super::*;

/// Whether a configuration write stored something new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Saved {
    /// Stored.
    Created,
    /// Identical to what is stored: nothing written.
    Unchanged,
}

/// The `version` of the last element of `doc.versions`.
pub(super) fn latest_version(doc: &serde_json::Value) -> u32 {
    doc["versions"]
        .as_array()
        .and_then(|v| v.last())
        .and_then(|v| v["version"].as_u64())
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(0)
}

/// Checks that `new.versions` starts with every version of `old`, unchanged.
pub(super) fn append_only(
    old: &serde_json::Value,
    new: &serde_json::Value,
) -> Result<(), CommissionError> {
    let empty = Vec::new();
    let old_versions = old["versions"].as_array().unwrap_or(&empty);
    let new_versions = new["versions"].as_array().unwrap_or(&empty);
    let mut problems = Vec::new();
    for (i, v) in old_versions.iter().enumerate() {
        match new_versions.get(i) {
            Some(n) if n == v => {}
            _ => problems.push(Problem::new(
                format!("versions[{i}]"),
                format!(
                    "version {} is stored with other terms (or is missing); stored versions never \
                     change: repeat it unchanged and add a new version",
                    v["version"]
                ),
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CommissionError::Invalid(problems))
    }
}

impl CommissionJob {
    /// Stores an affiliate's deal. Versions are append-only: a new document
    /// must repeat every stored version unchanged (a change is a new
    /// version) and keep the currency. The same document again is
    /// [`Saved::Unchanged`].
    pub async fn save_deal(&self, deal: &Deal, now_ms: u64) -> Result<Saved, CommissionError> {
        let _guard = lock_writer().await;
        let new = serde_json::to_value(deal).unwrap_or_default();
        let latest = latest_version(&new);
        if let Some(old) = self.store.load_deal(deal.affiliate()).await? {
            if old.currency() != deal.currency() {
                return Err(CommissionError::invalid(
                    "currency",
                    format!(
                        "the deal currency never changes: the stored deal is in {}",
                        old.currency()
                    ),
                ));
            }
            let old = serde_json::to_value(&old).unwrap_or_default();
            if old == new {
                return Ok(Saved::Unchanged);
            }
            append_only(&old, &new)?;
        }
        self.store.save_deal(deal, latest, now_ms).await?;
        Ok(Saved::Created)
    }

    /// Stores a brand's NGR formula (versions append-only, like deals).
    pub async fn save_formula(
        &self,
        formula: &NgrFormula,
        now_ms: u64,
    ) -> Result<Saved, CommissionError> {
        let _guard = lock_writer().await;
        let new = serde_json::to_value(formula).unwrap_or_default();
        if let Some(old) = self.store.load_formula(formula.brand()).await? {
            let old = serde_json::to_value(&old).unwrap_or_default();
            if old == new {
                return Ok(Saved::Unchanged);
            }
            append_only(&old, &new)?;
        }
        self.store
            .save_formula(formula, latest_version(&new), now_ms)
            .await?;
        Ok(Saved::Created)
    }

    /// Stores an FX table for its month. Its version must be above the
    /// month's stored version (the same table again is
    /// [`Saved::Unchanged`]); the highest version converts the month.
    pub async fn save_fx_table(
        &self,
        table: &StoredFxTable,
        now_ms: u64,
    ) -> Result<Saved, CommissionError> {
        let _guard = lock_writer().await;
        let stored = self.store.load_fx_tables().await?;
        if let Some(old) = stored.iter().find(|t| t.month == table.month) {
            if old == table {
                return Ok(Saved::Unchanged);
            }
            if table.version <= old.version {
                return Err(CommissionError::invalid(
                    "version",
                    format!(
                        "{} already has version {} with other rates; publish a higher version",
                        table.month, old.version
                    ),
                ));
            }
        }
        self.store.save_fx_table(table, now_ms).await?;
        Ok(Saved::Created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_versions_are_append_only() {
        let old = serde_json::json!({"versions": [{"version": 1, "x": 1}]});
        let added =
            serde_json::json!({"versions": [{"version": 1, "x": 1}, {"version": 2, "x": 2}]});
        let changed = serde_json::json!({"versions": [{"version": 1, "x": 9}]});
        assert!(append_only(&old, &added).is_ok());
        assert_eq!(latest_version(&added), 2);
        match append_only(&old, &changed) {
            Err(CommissionError::Invalid(p)) => assert_eq!(p[0].field, "versions[0]"),
            other => panic!("{other:?}"),
        }
    }
}
