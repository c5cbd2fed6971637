//! The schema and every query in docs/clickhouse.md run on ClickHouse 18.16
//! (the server the tests start) and on current ClickHouse (embedded `chdb`),
//! through `scripts/check-clickhouse-sql.py`.

use std::path::PathBuf;
use std::process::Command;

use clickstitch_testkit::clickhouse::ClickHouseServer;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Pulls the ```sql blocks out of a Markdown file.
fn sql_blocks(markdown: &str) -> Vec<String> {
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

#[test]
fn migrations_and_documented_queries_run_on_clickhouse_18_and_current() {
    let root = repo_root();
    let doc = std::fs::read_to_string(root.join("docs/clickhouse.md")).expect("docs/clickhouse.md");
    let blocks = sql_blocks(&doc);
    assert!(
        blocks.len() >= 8,
        "expected the documented example queries, found {}",
        blocks.len()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    for (i, block) in blocks.iter().enumerate() {
        std::fs::write(dir.path().join(format!("doc_query_{i:02}.sql")), block).expect("write");
    }
    let server = ClickHouseServer::shared();
    let output = Command::new("python3")
        .arg(root.join("scripts/check-clickhouse-sql.py"))
        .arg("--migrations")
        .arg(root.join("aggregator/migrations"))
        .arg("--queries")
        .arg(dir.path())
        .arg("--http-url")
        .arg(server.http_url())
        .output()
        .expect("python3 runs");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "SQL compatibility check failed:\n{report}"
    );
    assert!(
        report.contains("chdb"),
        "the modern engine was not checked:\n{report}"
    );
    assert!(!report.contains("FAIL"), "{report}");
}

#[test]
fn markdown_sql_blocks_are_extracted() {
    let md = "text\n```sql\nSELECT 1;\n```\nmore\n```sql\nSELECT 2;\n```\n";
    assert_eq!(sql_blocks(md), ["SELECT 1;\n", "SELECT 2;\n"]);
}
