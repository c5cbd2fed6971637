//! Test harness for Clickstitch integration tests.
//!
//! This crate owns the machinery that lets tests run against *real* services instead of mocks:
//!
//! * [`clickhouse`] — [`ClickHouseServer`], a real ClickHouse server in a temporary directory on
//!   free ports (or an external one via `CLICKHOUSE_URL`), which can be stopped and restarted to
//!   simulate outages and never outlives the test process.
//! * [`workerd`] — the edge worker's wasm bundle served by a real `workerd` process on a free
//!   port (with `cfBlobHeader` so tests set the `cf` object), stoppable with SIGTERM.
//! * [`wrangler`] — `wrangler dev` for what only wrangler emulates locally (Queues).
//! * [`net`] — free-port helpers and a tiny synchronous HTTP client.
//! * [`process`] — a spawned process that never outlives this one (the harnesses' watchdog).
//! * [`edge`] — building the edge worker's wasm bundle with worker-build.
//! * [`sqlcheck`] — the ClickHouse SQL compatibility check (18.16 and current ClickHouse).
//! * `aggregator` (feature `aggregator`) — the aggregator's settings and secrets for tests.
//!
//! Everything here is synchronous and cheap to call; from async tests either call it directly
//! (queries are fast) or wrap it in `tokio::task::spawn_blocking`.

#[cfg(feature = "aggregator")]
pub mod aggregator;
pub mod clickhouse;
pub mod edge;
pub mod net;
pub mod process;
pub mod sqlcheck;
pub mod workerd;
pub mod wrangler;

pub use clickhouse::{unique_database_name, ClickHouseOptions, ClickHouseServer};
pub use net::{free_port, free_ports};
