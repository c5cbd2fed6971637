//! The schema and every query in docs/clickhouse.md run on ClickHouse 18.16
//! (the server the tests start) and on current ClickHouse (embedded `chdb`),
//! through `clickstitch_testkit::sqlcheck` (also `cargo xtask check-sql`).

use clickstitch_testkit::clickhouse::ClickHouseServer;
use clickstitch_testkit::sqlcheck::check_clickhouse_sql;

#[test]
fn migrations_and_documented_queries_run_on_clickhouse_18_and_current() {
    let report = check_clickhouse_sql(ClickHouseServer::shared()).expect("the check runs");
    assert!(
        report.output.contains("chdb"),
        "the modern engine was not checked:\n{}",
        report.output
    );
    assert!(
        report.passed,
        "SQL compatibility check failed:\n{}",
        report.output
    );
}
