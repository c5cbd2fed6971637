//! Clickstitch's developer tasks, run as `cargo xtask <cmd>` (an alias in `.cargo/config.toml`).
//!
//! Everything that needs a ClickHouse server, workerd or the edge build uses the testkit
//! harnesses the tests use (`clickstitch-testkit`), so the scripts and the tests run the same
//! code. What installs dependencies stays in shell (`scripts/install-deps.sh`,
//! `scripts/install-edge-toolchain.sh`): the README's two commands run those first, then this.
//!
//! | command | what it does |
//! |---|---|
//! | `dev-up` | the whole stack locally (what `scripts/dev-up.sh` runs after installing) |
//! | `test` | formatting, lints, the wasm build, every test (`scripts/test-all.sh` after installing) |
//! | `bench <name>` | a benchmark: criterion benches, or the ingest / stitch / commission / edge load runs |
//! | `build-edge` | the edge worker's wasm bundle (`scripts/build-edge.sh`, wrangler's build command) |
//! | `check-sql` | the migrations and documented queries on ClickHouse 18.16 and current ClickHouse |
//! | `clickhouse` | a ClickHouse server for shell scripts (`scripts/bench-ingest.sh`) |

mod bench;
mod devup;
mod stop;
mod util;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use clickstitch_testkit::edge::{self, BuildOptions};
use clickstitch_testkit::sqlcheck::check_clickhouse_sql;
use clickstitch_testkit::{ClickHouseOptions, ClickHouseServer};

use crate::util::{cargo, step};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Clickstitch's developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The whole stack locally: ClickHouse (data under .local/), the aggregator, the edge worker
    /// under workerd and a demo link; prints a curl for it. Ctrl-C stops everything.
    DevUp(devup::Args),
    /// Every check CI runs: cargo fmt --check, clippy (native and wasm32), the wasm build, then
    /// cargo test --workspace. Install the dependencies first (scripts/test-all.sh does).
    Test,
    /// A benchmark: a criterion bench (edge_hot_path, fraud_scoring, bot_screening) or a load
    /// run (ingest, stitch, commissions, edge); further arguments go to it.
    Bench {
        /// Which benchmark.
        name: String,
        /// Its arguments (see docs/benchmarks.md).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Builds the edge worker with worker-build (release unless --dev) and prints the bundle
    /// directory on stdout. EDGE_NO_OPT=1 skips wasm-opt.
    BuildEdge {
        /// The dev profile (no wasm-opt).
        #[arg(long, conflicts_with = "release")]
        dev: bool,
        /// The release profile (the default).
        #[arg(long)]
        release: bool,
        /// Further worker-build arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Runs the migrations and every query of docs/clickhouse.md on a ClickHouse server the
    /// testkit starts (or CLICKHOUSE_URL) and on current ClickHouse (chdb).
    CheckSql,
    /// Runs a ClickHouse server until SIGTERM / SIGINT, for shell scripts: once it answers,
    /// writes CH_HTTP_PORT, CH_TCP_PORT, CH_PID (the server's pid) and CH_DIR as shell
    /// assignments to --env-file (or stdout).
    Clickhouse(ClickhouseArgs),
}

#[derive(Debug, clap::Args)]
struct ClickhouseArgs {
    /// Keep config, data and logs here (default: a temporary directory, deleted at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// HTTP port (default: a free one).
    #[arg(long)]
    http_port: Option<u16>,
    /// Native-protocol TCP port (default: a free one).
    #[arg(long)]
    tcp_port: Option<u16>,
    /// max_memory_usage per query, in bytes.
    #[arg(long, default_value_t = 4_000_000_000)]
    max_memory_usage: u64,
    /// The server log's level.
    #[arg(long, default_value = "warning")]
    log_level: String,
    /// Where to write the assignments (written whole, once the server answers).
    #[arg(long)]
    env_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::DevUp(args) => devup::run(&args),
        Cmd::Test => test(),
        Cmd::Bench { name, args } => bench::run(&name, &args),
        Cmd::BuildEdge { dev, release, args } => build_edge(dev && !release, args),
        Cmd::CheckSql => check_sql(),
        Cmd::Clickhouse(args) => clickhouse(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What `scripts/test-all.sh` runs once the dependencies are installed.
fn test() -> anyhow::Result<()> {
    step("cargo fmt --check");
    cargo(&["fmt", "--all", "--", "--check"])?;
    step("cargo clippy (native, all targets)");
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    step("cargo clippy (edge worker, wasm32)");
    cargo(&[
        "clippy",
        "-p",
        "clickstitch-edge",
        "--target",
        "wasm32-unknown-unknown",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    step("building the edge worker (wasm)");
    edge::build(&BuildOptions::default())?;
    step("cargo test --workspace");
    cargo(&["test", "--workspace", "--locked", "--no-fail-fast"])
}

fn build_edge(dev: bool, extra_args: Vec<String>) -> anyhow::Result<()> {
    let dir = edge::build(&BuildOptions {
        release: !dev,
        extra_args,
        ..BuildOptions::default()
    })?;
    // stdout: just the bundle directory, for scripts.
    println!("{}", dir.display());
    Ok(())
}

fn check_sql() -> anyhow::Result<()> {
    let server = ClickHouseServer::start()?;
    eprintln!(
        "check-sql: ClickHouse {} at {}",
        server.version()?,
        server.http_url()
    );
    let report = check_clickhouse_sql(&server)?;
    print!("{}", report.output);
    anyhow::ensure!(report.passed, "the SQL compatibility check failed");
    Ok(())
}

fn clickhouse(args: &ClickhouseArgs) -> anyhow::Result<()> {
    let mut stop = stop::Stop::listen()?;
    let mut server = ClickHouseServer::start_with(&ClickHouseOptions {
        dir: args.dir.clone(),
        http_port: args.http_port,
        tcp_port: args.tcp_port,
        max_memory_usage: args.max_memory_usage,
        log_level: args.log_level.clone(),
    })?;
    let http_port: u16 = server
        .http_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_default();
    let env = format!(
        "CH_HTTP_PORT={http_port}\nCH_TCP_PORT={}\nCH_PID={}\nCH_DIR='{}'\n",
        server.tcp_port().unwrap_or_default(),
        server.pid().unwrap_or_default(),
        server
            .dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    );
    match &args.env_file {
        Some(path) => util::write_atomically(path, &env)?,
        None => print!("{env}"),
    }
    let why = stop.wait_until(|| server.pid().is_some_and(util::exited));
    eprintln!("clickhouse: {why}; stopping");
    server.terminate(std::time::Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["xtask", "bench", "ingest", "--sweep"]).unwrap();
        assert!(
            matches!(cli.command, Cmd::Bench { ref name, ref args } if name == "ingest" && args == &["--sweep"])
        );
        let cli = Cli::try_parse_from(["xtask", "build-edge", "--dev", "--no-opt"]).unwrap();
        assert!(
            matches!(cli.command, Cmd::BuildEdge { dev: true, ref args, .. } if args == &["--no-opt"])
        );
    }

    #[test]
    fn the_repository_root_holds_the_workspace() {
        assert!(crate::util::repo_root().join("Cargo.lock").is_file());
    }
}
