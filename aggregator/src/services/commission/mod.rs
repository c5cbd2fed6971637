//! Commissions around the engine (`clickstitch-commission`): stored rows
//! to engine facts ([`facts`]), runs, period closes and payouts ([`job`]),
//! what incremental runs keep and when they go incremental
//! ([`incremental`]), and the per-player CPA status read ([`cpa_status`]).

pub mod cpa_status;
pub mod facts;
pub mod incremental;
pub mod job;
