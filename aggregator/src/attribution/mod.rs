//! Attribution (pure): touchpoints, models, versioned per-brand/jurisdiction rules and their hot reload. Filled in by the attribution work.
