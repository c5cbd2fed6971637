//! Small helpers shared by the tasks.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clickstitch_testkit::net;

/// The repository root.
pub(crate) fn repo_root() -> PathBuf {
    clickstitch_testkit::workerd::repo_root()
}

/// Prints a step heading, as `scripts/test-all.sh` did.
pub(crate) fn step(what: &str) {
    println!();
    println!("==> {what}");
}

/// `PATH` for the tools the tasks run: cargo's bin directory first (`cargo install`ed
/// worker-build, wasm-bindgen) and `/usr/sbin` last (Debian's `clickhouse-server`).
pub(crate) fn tool_path() -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> =
        std::env::split_paths(&clickstitch_testkit::edge::search_path()).collect();
    dirs.push(PathBuf::from("/usr/sbin"));
    std::env::join_paths(dirs).unwrap_or_default()
}

/// A command in the repository root with [`tool_path`] and wrangler's telemetry off.
pub(crate) fn command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    command
        .current_dir(repo_root())
        .env("PATH", tool_path())
        .env("WRANGLER_SEND_METRICS", "false");
    command
}

/// Runs `cargo args…` in the repository root; fails unless it succeeds.
pub(crate) fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(command(cargo).args(args))
}

/// Runs a command to completion; fails unless it succeeds.
pub(crate) fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

/// The cargo target directory (`CARGO_TARGET_DIR`, else `target/` in the repository).
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| repo_root().join("target"), PathBuf::from)
}

/// Polls `url` until it answers 2xx, `tries` times half a second apart.
pub(crate) fn wait_http(url: &str, what: &str, tries: u32) -> anyhow::Result<()> {
    wait_http_unless(url, what, tries, || None)
}

/// [`wait_http`] that gives up as soon as `interrupted()` names a reason.
pub(crate) fn wait_http_unless(
    url: &str,
    what: &str,
    tries: u32,
    mut interrupted: impl FnMut() -> Option<&'static str>,
) -> anyhow::Result<()> {
    for _ in 0..tries {
        if net::http_get(url, Duration::from_secs(1)).is_ok_and(|r| (200..300).contains(&r.status))
        {
            return Ok(());
        }
        if let Some(why) = interrupted() {
            bail!("{why} received while waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("{what} did not come up ({url})")
}

/// Whether process `pid` is gone or a zombie (exited, not yet reaped).
pub(crate) fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// Writes `text` to `path` through a temporary file and a rename, so readers see all or nothing.
pub(crate) fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// The machine line the load benchmarks print: cores, CPU model, load average.
pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    format!("{cores} cores, {model}, load {load}")
}
