//! `cargo xtask bench <name> [args…]`.
//!
//! - `edge_hot_path`, `fraud_scoring`, `bot_screening`: the criterion benches
//!   (`cargo bench -p clickstitch-benches --bench <name> -- args…`).
//! - `commissions [players=100000] [events=2000000] [dirty=1000]`: the commission job at scale
//!   (`commission-load`) against a throwaway ClickHouse.
//! - `stitch [rate=1000] [duration_secs=30] [clicks=50000] [journal]`: registration → readable
//!   attribution latency (`stitch-load`) against a release aggregator and a throwaway
//!   ClickHouse; `journal` (or `JOURNAL=1`) turns on the brand-event journal.
//! - `ingest`, `edge`: `scripts/bench-ingest.sh` and `scripts/bench-edge.sh` (wrk, perf and
//!   clickhouse-client around the run; their ClickHouse comes from `cargo xtask clickhouse` /
//!   `cargo xtask dev-up`).
//!
//! Everything a run starts is stopped when it ends (or fails), temporary directories removed.

use std::fs::File;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clickstitch_testkit::net::free_port;
use clickstitch_testkit::process::Guarded;
use clickstitch_testkit::{ClickHouseOptions, ClickHouseServer};

use crate::util::{cargo, command, machine, run as run_command, target_dir, wait_http};

const CRITERION: [&str; 3] = ["edge_hot_path", "fraud_scoring", "bot_screening"];

pub(crate) fn run(name: &str, args: &[String]) -> anyhow::Result<()> {
    match name {
        n if CRITERION.contains(&n) => {
            let mut all = vec!["bench", "-p", "clickstitch-benches", "--bench", n];
            if !args.is_empty() {
                all.push("--");
                all.extend(args.iter().map(String::as_str));
            }
            cargo(&all)
        }
        "commissions" => commissions(args),
        "stitch" => stitch(args),
        "ingest" | "edge" => run_command(
            command("bash")
                .arg(format!("scripts/bench-{name}.sh"))
                .args(args),
        ),
        other => bail!(
            "unknown benchmark {other:?}: one of {}, commissions, stitch, ingest, edge",
            CRITERION.join(", ")
        ),
    }
}

/// The `i`th positional argument, or `default`.
fn arg<'a>(args: &'a [String], i: usize, default: &'a str) -> &'a str {
    args.get(i).map_or(default, String::as_str)
}

/// A throwaway ClickHouse for a load run (temporary directory, free ports).
fn throwaway_clickhouse() -> anyhow::Result<ClickHouseServer> {
    ClickHouseServer::start_with(&ClickHouseOptions {
        log_level: "warning".to_owned(),
        ..ClickHouseOptions::default()
    })
}

fn commissions(args: &[String]) -> anyhow::Result<()> {
    let (players, events, dirty) = (
        arg(args, 0, "100000"),
        arg(args, 1, "2000000"),
        arg(args, 2, "1000"),
    );
    cargo(&[
        "build",
        "-q",
        "--release",
        "-p",
        "clickstitch-benches",
        "--bin",
        "commission-load",
    ])?;
    let clickhouse = throwaway_clickhouse()?;
    eprintln!("bench-commissions: {}", machine());
    run_command(command(target_dir().join("release/commission-load")).args([
        "--clickhouse-url",
        &clickhouse.http_url(),
        "--players",
        players,
        "--events",
        events,
        "--dirty",
        dirty,
    ]))
}

fn stitch(args: &[String]) -> anyhow::Result<()> {
    let (rate, duration, clicks) = (
        arg(args, 0, "1000"),
        arg(args, 1, "30"),
        arg(args, 2, "50000"),
    );
    let journal = match args.get(3).map(String::as_str) {
        Some("journal") => true,
        None => std::env::var("JOURNAL").is_ok_and(|j| j == "1"),
        Some(_) => bail!("usage: cargo xtask bench stitch [rate] [secs] [clicks] [journal]"),
    };
    cargo(&[
        "build",
        "-q",
        "--release",
        "-p",
        "clickstitch-aggregator",
        "--bin",
        "clickstitch-aggregator",
        "-p",
        "clickstitch-benches",
        "--bin",
        "stitch-load",
    ])?;
    let clickhouse = throwaway_clickhouse()?;
    let dir = tempfile::Builder::new()
        .prefix("clickstitch-stitch-")
        .tempdir()?;
    let port = free_port();
    let binary = target_dir().join("release/clickstitch-aggregator");
    let log = File::create(dir.path().join("aggregator.log")).context("aggregator.log")?;
    let mut aggregator = command(&binary);
    aggregator
        .env("CLICKSTITCH_SERVER__PORT", port.to_string())
        .env("CLICKSTITCH_CLICKHOUSE__URL", clickhouse.http_url())
        .env(
            "CLICKSTITCH_AUTH__EDGE_SECRET",
            "bench-edge-secret-0123456789",
        )
        .env(
            "CLICKSTITCH_AUTH__OPERATOR_TOKEN",
            "bench-operator-token-0123456789",
        )
        .env("CLICKSTITCH_LOG__FILTER", "warn")
        .env("CLICKSTITCH_CLICKHOUSE__COMPRESSION", "none")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if journal {
        aggregator.env(
            "CLICKSTITCH_ATTRIBUTION__JOURNAL_DIR",
            dir.path().join("journal"),
        );
    }
    let child = aggregator
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut aggregator = Guarded::watch(
        child,
        "clickstitch-aggregator-watchdog",
        binary.as_os_str(),
        None,
    )?;
    let url = format!("http://127.0.0.1:{port}");
    let result = wait_http(&format!("{url}/health"), "aggregator", 120).and_then(|()| {
        eprintln!(
            "bench-stitch: events {}, {}",
            if journal { "journal" } else { "direct" },
            machine()
        );
        run_command(command(target_dir().join("release/stitch-load")).args([
            "--url",
            &url,
            "--rate",
            rate,
            "--duration-secs",
            duration,
            "--clicks",
            clicks,
        ]))
    });
    let _ = aggregator.terminate(Duration::from_secs(30));
    drop(clickhouse);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_benchmarks_are_refused() {
        let e = run("nope", &[]).unwrap_err().to_string();
        assert!(
            e.contains("unknown benchmark") && e.contains("edge_hot_path"),
            "{e}"
        );
    }

    #[test]
    fn positional_arguments_have_defaults() {
        let args = vec!["5".to_owned()];
        assert_eq!(arg(&args, 0, "1"), "5");
        assert_eq!(arg(&args, 1, "30"), "30");
    }

    #[test]
    fn util_exited_sees_this_process_alive() {
        assert!(!crate::util::exited(std::process::id()));
    }
}
