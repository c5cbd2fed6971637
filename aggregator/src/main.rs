//! Entry point: parse the command line, load settings, start logging, run.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use clickstitch_aggregator::config::{Settings, SETTINGS_HELP};
use clickstitch_aggregator::startup::{shutdown_signal, Application};
use clickstitch_aggregator::telemetry;

/// Clickstitch aggregator: ingests click batches from the edge worker into
/// ClickHouse and serves the link catalogue and admin API.
#[derive(Debug, Parser)]
#[command(version, about, after_long_help = SETTINGS_HELP, after_help = "See --help for every setting.")]
struct Cli {
    /// TOML configuration file (optional; environment variables override it).
    #[arg(short, long, env = "CLICKSTITCH_CONFIG")]
    config: Option<PathBuf>,

    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    settings.secrets().context("checking secrets")?;
    if cli.check_config {
        eprintln!("configuration OK");
        return Ok(());
    }
    telemetry::init(&settings.log);
    let app = Application::build(settings).await?;
    app.run_until_stopped(shutdown_signal()).await
}
