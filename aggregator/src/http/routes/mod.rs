//! HTTP routes, one module per area, each with its own `router()`. Handlers parse (DTO → domain type),
//! call the domain, and map results to responses; no SQL here.

pub mod admin;
pub mod clicks;
pub mod commission_balances;
pub mod commission_config;
pub mod commission_problems;
pub mod commissions;
pub mod cpa_status;
pub mod edge_links;
pub mod events;
pub mod fraud;
pub mod health;
pub mod metrics;
pub mod postback;
