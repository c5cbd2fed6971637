//! Building the edge worker (`edge-worker/`) for workerd / Cloudflare Workers with worker-build,
//! using only locally installed tools (no downloads from GitHub): [`build`].
//!
//! | tool          | where it comes from                                                  |
//! |---------------|----------------------------------------------------------------------|
//! | `wasm-bindgen`| `cargo install wasm-bindgen-cli --version <Cargo.lock's wasm-bindgen>` |
//! | `worker-build`| `cargo install worker-build --version 0.8.7 --locked`                |
//! | `esbuild`     | `node_modules/.bin/esbuild` (`npm ci`), or `ESBUILD_BIN`             |
//! | `wasm-opt`    | `node_modules/.bin/wasm-opt` (`npm ci`, package `binaryen`), or `WASM_OPT_BIN` |
//!
//! `scripts/install-edge-toolchain.sh` installs all of them. Every tool is checked (present, the
//! pinned version) before worker-build runs, and only absolute, verified paths are handed to it:
//! worker-build falls back to *downloading* a tool when a `*_BIN` path does not resolve.
//!
//! Output (worker-build 0.8.7 layout): `edge-worker/build/index.js` (ES module entry, imports
//! `./index_bg.wasm`), `edge-worker/build/index_bg.wasm` and `edge-worker/build/worker/shim.mjs`
//! (re-exports `../index.js`; what `wrangler.toml`'s `main` points at). Re-running rebuilds
//! incrementally; worker-build swaps the output directory in atomically and serialises
//! concurrent builds with a lock file.

use std::ffi::OsString;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context as _};

use crate::workerd::repo_root;

/// The worker-build release the build is pinned to.
pub const WORKER_BUILD_VERSION: &str = "0.8.7";

const HINT: &str = "run scripts/install-edge-toolchain.sh";

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `true`: worker-build `--release` (the default); `false`: `--dev` (no wasm-opt).
    pub release: bool,
    /// Skip wasm-opt (`--no-opt`); also set by a non-empty `EDGE_NO_OPT`.
    pub no_opt: bool,
    /// Further arguments for worker-build.
    pub extra_args: Vec<String>,
    /// `true`: worker-build's output is captured and quoted only when the build fails (tests);
    /// `false`: it goes to this process's stderr, as does the progress of the build.
    pub quiet: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            release: true,
            no_opt: std::env::var_os("EDGE_NO_OPT").is_some_and(|v| !v.is_empty()),
            extra_args: Vec::new(),
            quiet: false,
        }
    }
}

/// Builds the edge worker and returns the bundle directory (`edge-worker/build`).
///
/// # Errors
///
/// Fails when a tool is missing or has the wrong version (the error names it and how to install
/// it), when worker-build fails (quoting its output when [`BuildOptions::quiet`]), or when the
/// bundle is incomplete afterwards.
pub fn build(options: &BuildOptions) -> anyhow::Result<PathBuf> {
    let root = repo_root();
    let crate_dir = root.join("edge-worker");
    let out_dir = crate_dir.join("build");
    let path = search_path();
    let say = |line: &str| {
        if !options.quiet {
            eprintln!("build-edge: {line}");
        }
    };

    let tools = Toolchain::find(&root, &path, options)?;
    let mut args = vec![if options.release {
        "--release"
    } else {
        "--dev"
    }
    .to_owned()];
    if options.no_opt {
        args.push("--no-opt".to_owned());
    }
    args.extend(options.extra_args.iter().cloned());

    say(&format!(
        "worker-build {WORKER_BUILD_VERSION}, wasm-bindgen {}, esbuild {}, {}",
        tools.bindgen_version,
        version_line(&tools.esbuild, &["--version"]).unwrap_or_default(),
        tools
            .wasm_opt
            .as_deref()
            .and_then(|w| version_line(w, &["--version"]))
            .unwrap_or_else(|| "wasm-opt n/a".to_owned()),
    ));
    say(&format!(
        "(cd edge-worker && worker-build {})",
        args.join(" ")
    ));

    let mut command = Command::new(&tools.worker_build);
    command
        .args(&args)
        .current_dir(&crate_dir)
        .env("PATH", &path)
        .env("WASM_BINDGEN_BIN", &tools.wasm_bindgen)
        .env("ESBUILD_BIN", &tools.esbuild)
        .stdin(Stdio::null());
    if let Some(wasm_opt) = &tools.wasm_opt {
        command.env("WASM_OPT_BIN", wasm_opt);
    }
    if options.quiet {
        let output = command
            .output()
            .with_context(|| format!("running {}", tools.worker_build.display()))?;
        if !output.status.success() {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            let lines: Vec<&str> = text.lines().collect();
            bail!(
                "worker-build failed ({}):\n{}",
                output.status,
                lines[lines.len().saturating_sub(80)..].join("\n")
            );
        }
    } else {
        // worker-build's stdout goes to stderr too: stdout is for the bundle directory.
        let stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating stderr")?;
        let status = command
            .stdout(Stdio::from(stderr))
            .status()
            .with_context(|| format!("running {}", tools.worker_build.display()))?;
        if !status.success() {
            bail!("worker-build failed ({status})");
        }
    }

    for file in ["index.js", "index_bg.wasm", "worker/shim.mjs"] {
        let f = out_dir.join(file);
        if f.metadata().map_or(true, |m| m.len() == 0) {
            bail!("worker-build finished but {} is missing", f.display());
        }
    }
    let wasm_bytes = out_dir
        .join("index_bg.wasm")
        .metadata()
        .map_or(0, |m| m.len());
    say(&format!("bundle dir: {}", out_dir.display()));
    say(&format!(
        "  entry  {} (alias: {})",
        out_dir.join("index.js").display(),
        out_dir.join("worker/shim.mjs").display()
    ));
    say(&format!(
        "  wasm   {} ({wasm_bytes} bytes)",
        out_dir.join("index_bg.wasm").display()
    ));
    Ok(out_dir)
}

/// The verified tools.
struct Toolchain {
    worker_build: PathBuf,
    wasm_bindgen: PathBuf,
    bindgen_version: String,
    esbuild: PathBuf,
    wasm_opt: Option<PathBuf>,
}

impl Toolchain {
    fn find(root: &Path, path: &OsString, options: &BuildOptions) -> anyhow::Result<Self> {
        let missing = |what: String| anyhow!("{what}\nhint: {HINT}");
        which("cargo", path).ok_or_else(|| missing("cargo not found on PATH".to_owned()))?;
        which("node", path).ok_or_else(|| {
            missing("node not found on PATH (esbuild/wasm-opt from npm need it)".to_owned())
        })?;
        if let Some(rustup) = which("rustup", path) {
            let installed = Command::new(rustup)
                .args(["target", "list", "--installed"])
                .env("PATH", path)
                .output()
                .context("running rustup target list --installed")?;
            let installed = String::from_utf8_lossy(&installed.stdout);
            if !installed
                .lines()
                .any(|l| l.trim() == "wasm32-unknown-unknown")
            {
                return Err(missing(
                    "rust target wasm32-unknown-unknown is not installed \
                     (rustup target add wasm32-unknown-unknown)"
                        .to_owned(),
                ));
            }
        }

        let worker_build = which("worker-build", path).ok_or_else(|| {
            missing(format!(
                "worker-build not found (cargo install worker-build --version \
                 {WORKER_BUILD_VERSION} --locked)"
            ))
        })?;
        let have = version_line(&worker_build, &["--version"])
            .and_then(|l| l.split_whitespace().last().map(str::to_owned))
            .unwrap_or_default();
        if have != WORKER_BUILD_VERSION {
            return Err(missing(format!(
                "worker-build {have} found at {}, need {WORKER_BUILD_VERSION}",
                worker_build.display()
            )));
        }

        // The wasm-bindgen CLI must match the library version in Cargo.lock exactly.
        let want = locked_version(root, "wasm-bindgen")?;
        let wasm_bindgen = match std::env::var_os("WASM_BINDGEN_BIN").filter(|v| !v.is_empty()) {
            Some(bin) => which(&bin.to_string_lossy(), path),
            None => which("wasm-bindgen", path),
        }
        .ok_or_else(|| {
            missing(format!(
                "wasm-bindgen not found (cargo install wasm-bindgen-cli --version {want})"
            ))
        })?;
        let bindgen_version = version_line(&wasm_bindgen, &["--version"])
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .unwrap_or_default();
        if bindgen_version != want {
            return Err(missing(format!(
                "wasm-bindgen CLI {bindgen_version} at {} does not match wasm-bindgen {want} in \
                 Cargo.lock",
                wasm_bindgen.display()
            )));
        }

        let npm_tool = |var: &str, name: &str| -> PathBuf {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map_or_else(|| root.join("node_modules/.bin").join(name), PathBuf::from)
        };
        let esbuild = npm_tool("ESBUILD_BIN", "esbuild");
        if !is_executable(&esbuild) {
            return Err(missing(format!(
                "esbuild not found at {} (npm ci)",
                esbuild.display()
            )));
        }
        let wasm_opt = npm_tool("WASM_OPT_BIN", "wasm-opt");
        let wasm_opt = if is_executable(&wasm_opt) {
            Some(wasm_opt)
        } else if options.release && !options.no_opt {
            return Err(missing(format!(
                "wasm-opt not found at {} (npm ci; or set EDGE_NO_OPT=1)",
                wasm_opt.display()
            )));
        } else {
            None
        };
        Ok(Self {
            worker_build,
            wasm_bindgen,
            bindgen_version,
            esbuild,
            wasm_opt,
        })
    }
}

/// `PATH` with cargo's bin directory (where `cargo install` puts worker-build and wasm-bindgen)
/// in front, so a non-login CI shell finds them too.
#[must_use]
pub fn search_path() -> OsString {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let mut dirs: Vec<PathBuf> = cargo_home.map(|c| c.join("bin")).into_iter().collect();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).unwrap_or_else(|_| std::env::var_os("PATH").unwrap_or_default())
}

/// The executable `name` on `path` (or `name` itself when it contains a `/`).
#[must_use]
pub fn which(name: &str, path: &OsString) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then(|| p.canonicalize().unwrap_or(p));
    }
    std::env::split_paths(path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// The version of package `name` recorded in the repository's `Cargo.lock`.
///
/// # Errors
///
/// Fails when `Cargo.lock` cannot be read or has no such package.
pub fn locked_version(root: &Path, name: &str) -> anyhow::Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            if let Some(version) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
            {
                return Ok(version.trim_matches('"').to_owned());
            }
        }
    }
    bail!("could not read the {name} version from Cargo.lock")
}

/// The first line a tool prints for `args` (e.g. `--version`), if it runs.
fn version_line(tool: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_locked_wasm_bindgen_version_is_found() {
        let version = locked_version(&repo_root(), "wasm-bindgen").unwrap();
        assert!(
            version.split('.').count() == 3
                && version.chars().all(|c| c.is_ascii_digit() || c == '.'),
            "{version}"
        );
        assert!(locked_version(&repo_root(), "no-such-package-here").is_err());
    }
}
