//! Fraud scoring around the engine (`clickstitch-fraud`): scoring, holds,
//! escalation and reviews of clicks, registrations and first deposits
//! ([`quarantine`]), the background job that reloads policies and
//! baselines ([`job`]), and the population sweep's IO ([`sweep`]).

pub mod job;
pub mod quarantine;
pub mod sweep;
