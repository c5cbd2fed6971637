//! Clickstitch aggregator: receives click batches from the edge, stores them
//! in ClickHouse, and serves the link catalogue (to the edge) and the admin
//! API (to operators).
//!
//! Layout: [`startup`] wires everything; [`routes`] hold the HTTP handlers;
//! [`catalog`] and [`ingest`] are the domain; [`store`] is the only module
//! that talks to ClickHouse.

pub mod attribution;
pub mod auth;
pub mod bounded;
pub mod catalog;
pub mod click_index;
pub mod clock;
pub mod commission;
pub mod commission_facts;
pub mod commission_incremental;
pub mod commission_job;
pub mod config;
pub mod conversions;
pub mod cpa_status;
pub mod error;
pub mod events;
pub mod fraud;
pub mod fraud_job;
pub mod ingest;
pub mod keys;
pub mod metrics;
pub mod money;
pub mod presence;
pub mod quarantine;
pub mod rate_limit;
pub mod routes;
pub mod schedule;
pub mod server;
pub mod startup;
pub mod stitching;
pub mod store;
pub mod sweep;
pub mod telemetry;
pub mod throttle;
