//! Attribution: the engine (crate `clickstitch-attribution`, re-exported
//! whole) and the rules directory's loader and hot reload ([`loader`]), the
//! IO the engine leaves to the aggregator.

pub use clickstitch_attribution::*;

pub mod loader;

pub use loader::{load_dir, ReloadError, ReloadOutcome, ReloadReport, RulesReloader, RulesStore};
