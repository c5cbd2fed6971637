//! The ClickHouse SQL compatibility check: the aggregator's migrations and every query documented
//! in `docs/clickhouse.md` must run on the server a [`ClickHouseServer`] points at (ClickHouse
//! 18.16 when the harness spawns Debian's) **and** on current ClickHouse (the embedded `chdb`).
//!
//! [`check_clickhouse_sql`] writes the documented queries (the ```` ```sql ```` blocks) into a
//! temporary directory and runs `scripts/check-clickhouse-sql.py` on them against the server's
//! HTTP interface; the script runs `chdb` itself (Python: there is no embedded ClickHouse for
//! Rust). `cargo xtask check-sql` and the aggregator's `sql_compat` test both call it.

use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

use crate::workerd::repo_root;
use crate::ClickHouseServer;

/// What one run of the check printed.
#[derive(Debug, Clone)]
pub struct SqlCheckReport {
    /// Whether every statement ran on every engine.
    pub passed: bool,
    /// The script's output (one line per statement and engine, then a summary).
    pub output: String,
}

/// Runs the check against `server` (see the module docs).
///
/// # Errors
///
/// Fails when `docs/clickhouse.md` cannot be read or has fewer than 8 SQL blocks, or when
/// `python3` cannot be run. A failing check is not an error: see [`SqlCheckReport::passed`].
pub fn check_clickhouse_sql(server: &ClickHouseServer) -> anyhow::Result<SqlCheckReport> {
    let root = repo_root();
    let doc_path = root.join("docs/clickhouse.md");
    let doc = std::fs::read_to_string(&doc_path)
        .with_context(|| format!("reading {}", doc_path.display()))?;
    let blocks = sql_blocks(&doc);
    if blocks.len() < 8 {
        bail!(
            "expected the documented example queries in {}, found {} SQL blocks",
            doc_path.display(),
            blocks.len()
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("clickstitch-sqlcheck-")
        .tempdir()?;
    for (i, block) in blocks.iter().enumerate() {
        std::fs::write(dir.path().join(format!("doc_query_{i:02}.sql")), block)?;
    }
    let mut command = Command::new("python3");
    command
        .arg(root.join("scripts/check-clickhouse-sql.py"))
        .arg("--migrations")
        .arg(root.join("aggregator/migrations"))
        .arg("--queries")
        .arg(dir.path())
        .arg("--http-url")
        .arg(server.http_url())
        .stdin(Stdio::null());
    if server.user() != "default" || !server.password().is_empty() {
        command
            .args(["--user", server.user()])
            .args(["--password", server.password()]);
    }
    let output = command.output().context("running python3")?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let passed = output.status.success() && text.contains("chdb") && !text.contains("FAIL");
    Ok(SqlCheckReport {
        passed,
        output: text,
    })
}

/// Pulls the ```` ```sql ```` blocks out of a Markdown file.
#[must_use]
pub fn sql_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim()) {
            (None, "```sql") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_sql_blocks_are_extracted() {
        let md = "text\n```sql\nSELECT 1;\n```\nmore\n```sql\nSELECT 2;\n```\n";
        assert_eq!(sql_blocks(md), ["SELECT 1;\n", "SELECT 2;\n"]);
    }
}
