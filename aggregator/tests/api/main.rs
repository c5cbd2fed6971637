//! Aggregator integration tests: the real binary's router on a real port,
//! against a real ClickHouse server started by the test harness (or the one
//! `CLICKHOUSE_URL` points at).

mod admin;
mod clicks;
mod commission_incremental;
mod commission_pages;
mod commission_problems;
mod commission_reads;
mod commissions;
mod events;
mod fraud;
mod fraud_review;
mod fraud_scenarios;
mod health;
mod helpers;
mod journal;
mod security;
