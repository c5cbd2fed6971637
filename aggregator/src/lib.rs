//! Clickstitch aggregator: receives click batches from the edge and brand
//! events from brands, stitches and attributes them, scores fraud, keeps
//! the commission ledger, and serves the admin, brand, affiliate and edge
//! APIs — all the IO around the pure engines.
//!
//! Layout: [`startup`] wires everything and [`server`] serves it;
//! [`http`] holds the state, the handlers ([`http::routes`]), who may call
//! them ([`http::auth`]) and how often ([`http::rate_limit`]);
//! [`services`] run the flows (click ingest, conversions with stitching,
//! fraud scoring and review, commissions), and their jobs expose
//! `run_once` and `run_until_stopped`; [`store`] is the only module that
//! talks to ClickHouse; [`support`] holds small generic helpers. The
//! engines are crates of their own, re-exported
//! here under their old paths: [`attribution`] (`clickstitch-attribution`,
//! plus its rules loader), [`commission`] (`clickstitch-commission`),
//! [`fraud`] (`clickstitch-fraud`) and [`money`] (`clickstitch-domain`).

pub mod attribution;
pub mod catalog;
pub mod click_index;
pub mod config;
pub mod entities;
pub mod error;
pub mod events;
pub mod http;
pub mod ingest;
pub mod keys;
pub mod metrics;
pub mod server;
pub mod services;
pub mod startup;
pub mod store;
pub mod support;
pub mod telemetry;

pub use clickstitch_commission as commission;
pub use clickstitch_domain::money;
pub use clickstitch_fraud as fraud;
