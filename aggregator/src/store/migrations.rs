//! Versioned, idempotent schema migrations, applied at startup.
//!
//! Each migration is a `.sql` file under `aggregator/migrations/`, compiled in.
//! Every statement is written to be safe to run twice (`IF NOT EXISTS`,
//! `MODIFY COLUMN` to a type that running it again keeps, or `ADD COLUMN`,
//! which the runner skips when `system.columns` already has the column:
//! ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS`), so
//! two aggregators starting at once cannot break each other; applied versions
//! are recorded in `schema_migrations`. The SQL runs on ClickHouse 18.16 and
//! on current releases (checked by `scripts/check-clickhouse-sql.py`).

use super::StoreError;

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Increasing version number (the file's numeric prefix).
    pub version: u32,
    /// Short name (the rest of the file name).
    pub name: &'static str,
    /// The statements, separated by `;` at the end of a line.
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "catalogue",
        sql: include_str!("../../migrations/0001_catalogue.sql"),
    },
    Migration {
        version: 2,
        name: "clicks",
        sql: include_str!("../../migrations/0002_clicks.sql"),
    },
    Migration {
        version: 3,
        name: "brand_events",
        sql: include_str!("../../migrations/0003_brand_events.sql"),
    },
    Migration {
        version: 4,
        name: "commissions",
        sql: include_str!("../../migrations/0004_commissions.sql"),
    },
    Migration {
        version: 5,
        name: "fraud",
        sql: include_str!("../../migrations/0005_fraud.sql"),
    },
    Migration {
        version: 6,
        name: "commission_repair",
        sql: include_str!("../../migrations/0006_commission_repair.sql"),
    },
    Migration {
        version: 7,
        name: "visitor_identity",
        sql: include_str!("../../migrations/0007_visitor_identity.sql"),
    },
    Migration {
        version: 8,
        name: "postback_rotation",
        sql: include_str!("../../migrations/0008_postback_rotation.sql"),
    },
    Migration {
        version: 9,
        name: "operator_credentials",
        sql: include_str!("../../migrations/0009_operator_credentials.sql"),
    },
    Migration {
        version: 10,
        name: "player_link_groups",
        sql: include_str!("../../migrations/0010_player_link_groups.sql"),
    },
];

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations \
    (version UInt32, name String, applied_at DateTime) \
    ENGINE = ReplacingMergeTree() ORDER BY version";

/// Splits a migration into statements: `--` comment lines dropped, split on
/// `;` at the end of a line.
pub fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            let stmt = current.trim().trim_end_matches(';').trim().to_owned();
            out.push(stmt);
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

/// The table and column of an `ALTER TABLE t ADD COLUMN c …` statement.
fn added_column(stmt: &str) -> Option<(&str, &str)> {
    let mut words = stmt.split_whitespace();
    match (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) {
        (Some("ALTER"), Some("TABLE"), Some(table), Some("ADD"), Some("COLUMN"), Some(column)) => {
            Some((table, column))
        }
        _ => None,
    }
}

/// Whether `name` is a plain identifier (the database name is spliced into SQL).
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// Creates `database` if needed and applies the migrations it lacks.
/// Returns the versions applied by this call.
pub async fn run(server: &clickhouse::Client, database: &str) -> Result<Vec<u32>, StoreError> {
    if !is_identifier(database) {
        return Err(StoreError::Rejected(format!(
            "database name {database:?} must match [A-Za-z_][A-Za-z0-9_]*"
        )));
    }
    server
        .query_raw(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
        .execute()
        .await?;
    let db = server.clone().with_database(database);
    db.query_raw(MIGRATIONS_TABLE).execute().await?;
    let applied: Vec<u32> = db
        .query_raw("SELECT version FROM schema_migrations FINAL")
        .fetch_all()
        .await?;

    let mut newly = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        for stmt in statements(m.sql) {
            if let Some((table, column)) = added_column(&stmt) {
                let present: u64 = db
                    .query(
                        "SELECT count() FROM system.columns \
                         WHERE database = ? AND table = ? AND name = ?",
                    )
                    .bind(database)
                    .bind(table)
                    .bind(column)
                    .fetch_one()
                    .await?;
                if present > 0 {
                    continue;
                }
            }
            db.query_raw(&stmt).execute().await?;
        }
        db.query_raw(&format!(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ({}, '{}', now())",
            m.version, m.name
        ))
        .execute()
        .await?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        newly.push(m.version);
    }
    Ok(newly)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_and_split_into_statements() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            let stmts = statements(m.sql);
            assert!(!stmts.is_empty());
            assert!(stmts
                .iter()
                .all(|s| !s.ends_with(';') && !s.starts_with("--")));
            // Safe to run twice: created only if missing, a column
            // modified to a type (an Enum with more values) that it keeps,
            // a column added (skipped by the runner when present), or a
            // view dropped that the same migration creates again.
            let recreated_view = |s: &str| {
                s.strip_prefix("DROP TABLE IF EXISTS ").is_some_and(|name| {
                    stmts
                        .iter()
                        .any(|c| c.starts_with(&format!("CREATE VIEW IF NOT EXISTS {name} AS ")))
                })
            };
            assert!(
                stmts.iter().all(|s| s.contains("IF NOT EXISTS")
                    || s.contains(" MODIFY COLUMN ")
                    || added_column(s).is_some()
                    || recreated_view(s)),
                "{}",
                m.name
            );
        }
    }

    #[test]
    fn added_columns_are_recognised_by_table_and_name() {
        assert_eq!(
            added_column("ALTER TABLE clicks ADD COLUMN visitor_id String DEFAULT ''"),
            Some(("clicks", "visitor_id"))
        );
        assert_eq!(
            added_column("ALTER TABLE clicks MODIFY COLUMN x UInt8"),
            None
        );
    }

    #[test]
    fn only_plain_identifiers_are_accepted_as_database_names() {
        assert!(is_identifier("clickstitch_test_1"));
        assert!(!is_identifier("x; DROP TABLE clicks"));
        assert!(!is_identifier("1abc"));
        assert!(!is_identifier(""));
    }
}
