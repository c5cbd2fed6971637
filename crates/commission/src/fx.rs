//! FX for commissions: which [`FxTable`] converts the amounts of which
//! month.
//!
//! Owns the rule "month M's amounts are converted with the table published
//! for M" and reports the table version of every conversion so the ledger
//! can record it. Must not hold rates itself (that is
//! [`clickstitch_domain::money::FxTable`]) nor round differently (half-to-even, once per
//! conversion).

use std::collections::BTreeMap;

use clickstitch_domain::money::{Currency, FxTable, Money, MoneyError};

use super::time::Month;

/// Why a conversion failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FxError {
    /// No table for the month although currencies differ.
    #[error("no FX table for {month} to convert {from} -> {to}")]
    NoTable {
        /// The month.
        month: Month,
        /// Source currency.
        from: Currency,
        /// Target currency.
        to: Currency,
    },
    /// The table lacks the pair, or the result overflowed.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// A converted amount and the table version used (`None` when the
/// currencies were the same and nothing was converted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Converted {
    /// The amount in the target currency.
    pub amount: Money,
    /// The FX table version, if a conversion happened.
    pub fx_version: Option<u32>,
}

/// FX tables by month.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FxBook {
    tables: BTreeMap<Month, FxTable>,
}

impl FxBook {
    /// No tables (enough when every amount is already in the deal currency).
    pub fn empty() -> Self {
        Self::default()
    }

    /// One table per month (a later duplicate replaces an earlier one).
    pub fn new(tables: impl IntoIterator<Item = (Month, FxTable)>) -> Self {
        Self {
            tables: tables.into_iter().collect(),
        }
    }

    /// The table for `month`.
    pub fn table(&self, month: Month) -> Option<&FxTable> {
        self.tables.get(&month)
    }

    /// Converts an amount of `month` into `to` with that month's table.
    pub fn convert(&self, amount: Money, to: Currency, month: Month) -> Result<Converted, FxError> {
        if amount.currency() == to {
            return Ok(Converted {
                amount,
                fx_version: None,
            });
        }
        let table = self.tables.get(&month).ok_or(FxError::NoTable {
            month,
            from: amount.currency(),
            to,
        })?;
        Ok(Converted {
            amount: table.convert(amount, to)?,
            fx_version: Some(table.version),
        })
    }
}
