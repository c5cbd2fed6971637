//! Commission engine (pure): plans, revenue (GGR/NGR), CPA, RevShare, sub-affiliate overrides, ledger entries and balances. Filled in by the commission work.
