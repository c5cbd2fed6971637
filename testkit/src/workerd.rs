//! A real `workerd` process running a worker for integration tests: [`Workerd`].
//!
//! [`Workerd::start`] copies the worker's modules into a fresh temporary directory, writes a
//! `config.capnp` next to them (template below), spawns `workerd serve config.capnp
//! --control-fd=1 --verbose` and returns once workerd reports that its HTTP socket listens. The
//! socket is bound to `127.0.0.1:0`, so the kernel picks a free port and there is no
//! choose-then-bind race; workerd reports the actual port as a JSON line on the control fd
//! (`{"event":"listen","socket":"http","port":NNNNN}`), which doubles as the readiness signal.
//! (`WorkerdConfig::port` binds a fixed port instead, as `cargo xtask dev-up` does.)
//! `--experimental` is not needed for anything used here.
//!
//! ```capnp
//! using Workerd = import "/workerd/workerd.capnp";
//!
//! const config :Workerd.Config = (
//!   services = [
//!     (name = "main", worker = .mainWorker),
//!     # workerd's implicit "internet" service only allows public addresses; tests need
//!     # loopback (aggregator / mock servers on 127.0.0.1), so outbound fetch() goes here.
//!     (name = "outbound", network = (
//!       allow = ["public", "private", "local"],
//!       tlsOptions = (trustBrowserCas = true))),
//!   ],
//!   sockets = [
//!     (name = "http", address = "127.0.0.1:0", service = "main",
//!      http = (cfBlobHeader = "x-test-cf")),
//!   ],
//! );
//!
//! const mainWorker :Workerd.Worker = (
//!   modules = [
//!     (name = "index.js", esModule = embed "modules/index.js"),         # main module first
//!     (name = "index_bg.wasm", wasm = embed "modules/index_bg.wasm"),
//!   ],
//!   compatibilityDate = "<compatibility_date from wrangler.toml>",
//!   compatibilityFlags = [<compatibility_flags from wrangler.toml>],
//!   bindings = [
//!     (name = "AGGREGATOR_URL", text = "http://127.0.0.1:1234"),   # vars
//!     (name = "EDGE_SECRET", text = "..."),                        # secrets (also text)
//!   ],
//!   globalOutbound = "outbound",
//! );
//! ```
//!
//! # The `cf` object
//!
//! The socket's `cfBlobHeader` makes workerd build `request.cf` from the JSON in the
//! [`CF_HEADER`] request header (`x-test-cf: {"country":"DE"}`), which is how tests choose the
//! visitor's country, ASN, bot score and so on. The header itself is stripped.
//!
//! # Which worker runs
//!
//! * [`WorkerSource::RustBundle`]: a worker-build 0.8.7 output directory — `index.js` (the ES
//!   module entry, loaded as the main module) and every `*.wasm` next to it (`index_bg.wasm`),
//!   each under its file name so `import "./index_bg.wasm"` resolves.
//!   [`build_edge_worker`] builds `edge-worker/` with [`crate::edge::build`] (once per process)
//!   and returns that directory; [`WorkerdConfig::edge_worker`] combines the two.
//! * [`WorkerSource::JsModule`]: one self-contained ES module file, e.g.
//!   `benches/workers/hello-redirect.js` ([`WorkerdConfig::hello_redirect`]).
//!
//! # Which workerd binary
//!
//! `WORKERD_BIN` if set; otherwise the platform binary npm installed,
//! `node_modules/@cloudflare/workerd-linux-64/bin/workerd` (or `-linux-arm64`), falling back to
//! `node_modules/.bin/workerd`. The platform binary is preferred because without the `workerd`
//! package's postinstall step `node_modules/.bin/workerd` is a Node launcher that would spawn the
//! real server as a grandchild — which [`Drop`] could not kill. Run `npm ci` (or
//! `scripts/install-edge-toolchain.sh`) at the repository root first.
//!
//! # Never leaking servers
//!
//! As for the ClickHouse harness: every workerd gets a `/bin/sh` watchdog whose
//! stdin is a pipe whose only write end lives in this process. When the test process exits for
//! any reason (including `SIGKILL`) the kernel closes that pipe, `read` sees end-of-file and the
//! watchdog `SIGKILL`s workerd — after checking `/proc/<pid>/cmdline` still names this
//! instance's unique config path, so a reused pid is never hit — and deletes the temporary
//! directory. Dropping a [`Workerd`] retires
//! the watchdog, kills workerd and deletes the temporary directory.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use tempfile::TempDir;

/// The request header whose JSON value becomes `request.cf` inside the worker.
pub const CF_HEADER: &str = "x-test-cf";

/// How long [`Workerd::start`] waits for workerd to report its listening socket.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of workerd's log quoted in start-up errors.
const LOG_TAIL_LINES: usize = 60;
/// The socket name in the generated config (and in workerd's `listen` control message).
const SOCKET_NAME: &str = "http";

/// The repository root (the workspace directory holding `Cargo.lock`, `node_modules/`,
/// `wrangler.toml` and `edge-worker/`), found from this crate's manifest directory.
#[must_use]
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// What code the worker runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerSource {
    /// A worker-build output directory containing `index.js` and `*.wasm`
    /// (normally `edge-worker/build`, as returned by [`build_edge_worker`]).
    RustBundle(PathBuf),
    /// A single self-contained ES module (`export default { fetch() { … } }`).
    JsModule(PathBuf),
}

/// Everything [`Workerd::start`] needs. Build one with [`WorkerdConfig::rust_bundle`],
/// [`WorkerdConfig::edge_worker`], [`WorkerdConfig::js_module`] or
/// [`WorkerdConfig::hello_redirect`], then add bindings with [`WorkerdConfig::var`] and
/// [`WorkerdConfig::secret`] (or push to the public fields directly).
#[derive(Clone)]
pub struct WorkerdConfig {
    /// The worker's code.
    pub source: WorkerSource,
    /// Plain-text bindings, like `[vars]` in wrangler.toml (`env.var("NAME")` in Rust).
    pub vars: Vec<(String, String)>,
    /// Secret bindings (`env.secret("NAME")` in Rust). workerd models secrets as text bindings,
    /// exactly like `wrangler secret put`; they are kept apart only so `Debug` can redact them.
    pub secrets: Vec<(String, String)>,
    /// `None`: use `compatibility_date` from the repository's `wrangler.toml`.
    pub compatibility_date: Option<String>,
    /// `None`: use `compatibility_flags` from the repository's `wrangler.toml` (none if absent).
    pub compatibility_flags: Option<Vec<String>>,
    /// The port to listen on (127.0.0.1); `None`: one the kernel picks (no race).
    pub port: Option<u16>,
}

impl fmt::Debug for WorkerdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secrets: Vec<(&str, &str)> = self
            .secrets
            .iter()
            .map(|(name, _)| (name.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("WorkerdConfig")
            .field("source", &self.source)
            .field("vars", &self.vars)
            .field("secrets", &secrets)
            .field("compatibility_date", &self.compatibility_date)
            .field("compatibility_flags", &self.compatibility_flags)
            .field("port", &self.port)
            .finish()
    }
}

impl WorkerdConfig {
    /// A config running the worker-build bundle in `dir` (with `index.js` + `index_bg.wasm`).
    #[must_use]
    pub fn rust_bundle(dir: impl Into<PathBuf>) -> Self {
        Self::new(WorkerSource::RustBundle(dir.into()))
    }

    /// A config running the edge worker, built first by [`build_edge_worker`].
    ///
    /// # Errors
    ///
    /// As for [`build_edge_worker`].
    pub fn edge_worker() -> anyhow::Result<Self> {
        Ok(Self::rust_bundle(build_edge_worker()?))
    }

    /// A config running one plain ES module file.
    #[must_use]
    pub fn js_module(path: impl Into<PathBuf>) -> Self {
        Self::new(WorkerSource::JsModule(path.into()))
    }

    /// A config running `benches/workers/hello-redirect.js`, the hello-world comparison worker.
    #[must_use]
    pub fn hello_redirect() -> Self {
        Self::js_module(repo_root().join("benches/workers/hello-redirect.js"))
    }

    fn new(source: WorkerSource) -> Self {
        Self {
            source,
            vars: Vec::new(),
            secrets: Vec::new(),
            compatibility_date: None,
            compatibility_flags: None,
            port: None,
        }
    }

    /// Listens on `127.0.0.1:port` instead of a port the kernel picks.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Adds a text binding (a wrangler `[vars]` entry).
    #[must_use]
    pub fn var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.push((name.into(), value.into()));
        self
    }

    /// Adds a secret binding (what `wrangler secret put` would provide).
    #[must_use]
    pub fn secret(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.secrets.push((name.into(), value.into()));
        self
    }
}

/// A running workerd serving one worker on `127.0.0.1:<port>`. Dropping it kills workerd and
/// deletes its temporary directory (config, module copies, log).
pub struct Workerd {
    process: Option<Running>,
    port: u16,
    log_path: PathBuf,
    config_path: PathBuf,
    /// Copies workerd's stdout (the control fd plus anything a worker prints) into the log.
    stdout_pump: Option<JoinHandle<()>>,
    // Declared last so it is deleted after the process is gone.
    dir: TempDir,
}

impl fmt::Debug for Workerd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workerd")
            .field("pid", &self.pid())
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// A running workerd and its watchdog.
type Running = crate::process::Guarded;

impl Drop for Workerd {
    fn drop(&mut self) {
        self.process = None; // kills and reaps workerd
        if let Some(pump) = self.stdout_pump.take() {
            let _ = pump.join(); // workerd's stdout is closed now, so this returns promptly
        }
    }
}

impl Workerd {
    /// Starts workerd with `config` and waits (up to 60 s) until its HTTP socket listens.
    ///
    /// # Errors
    ///
    /// Fails when the workerd binary or the worker's files are missing, the compatibility date
    /// cannot be determined, workerd cannot be spawned, or it exits / does not report its socket
    /// in time (the error then quotes the tail of workerd's log, which includes config and
    /// JavaScript errors).
    #[allow(clippy::needless_pass_by_value)] // a config is built for one process
    pub fn start(config: WorkerdConfig) -> anyhow::Result<Self> {
        let binary = workerd_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("clickstitch-workerd-")
            .tempdir()
            .context("creating a temporary directory for workerd")?;
        let modules = stage_modules(&config.source, dir.path())?;
        let (compatibility_date, compatibility_flags) = compatibility(&config)?;
        let capnp = render_config(
            &modules,
            &compatibility_date,
            &compatibility_flags,
            &config.vars,
            &config.secrets,
            config.port.unwrap_or(0),
        );
        let config_path = dir.path().join("config.capnp");
        fs::write(&config_path, capnp)
            .with_context(|| format!("writing {}", config_path.display()))?;

        let log_path = dir.path().join("workerd.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;

        let mut server = Command::new(&binary)
            .arg("serve")
            .arg(&config_path)
            .arg("--control-fd=1")
            .arg("--verbose")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.try_clone().context("duplicating the log file handle")?)
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let stdout = server.stdout.take();
        let process = Running::watch(
            server,
            "clickstitch-workerd-watchdog",
            config_path.as_os_str(),
            Some(dir.path()),
        )?;

        let (port_tx, port_rx) = mpsc::channel();
        let stdout = stdout.ok_or_else(|| anyhow!("workerd's stdout was not captured"))?;
        let stdout_pump = std::thread::Builder::new()
            .name("workerd-stdout".to_owned())
            .spawn(move || pump_stdout(stdout, log, &port_tx))
            .context("spawning the workerd stdout thread")?;

        let mut workerd = Self {
            process: Some(process),
            port: 0,
            log_path,
            config_path,
            stdout_pump: Some(stdout_pump),
            dir,
        };
        match port_rx.recv_timeout(READY_TIMEOUT) {
            Ok(port) => {
                workerd.port = port;
                Ok(workerd)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // stdout closed: workerd exited. Reap it so the status is known.
                let status = workerd
                    .process
                    .as_mut()
                    .and_then(|p| p.server.wait().ok())
                    .map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
                bail!(
                    "workerd exited during start-up ({status}); config {}\n--- workerd log ---\n{}",
                    workerd.config_path.display(),
                    workerd.log_tail()
                )
            }
            Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                "workerd did not report a listening socket within {READY_TIMEOUT:?}\n\
                 --- workerd log ---\n{}",
                workerd.log_tail()
            ),
        }
    }

    /// The port workerd's HTTP socket listens on (on 127.0.0.1).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// workerd's process id, while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.server.id())
    }

    /// Sends workerd `SIGTERM` and waits up to `timeout` for it to exit. On `SIGTERM` workerd
    /// stops listening, closes idle connections, lets the requests in flight finish and then
    /// exits; it does not wait for `waitUntil` tasks. Returns the exit status.
    ///
    /// # Errors
    ///
    /// Fails when workerd is not running, the signal cannot be sent, or it is still running
    /// after `timeout` (it is then left to [`Drop`]).
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let process = self
            .process
            .as_mut()
            .ok_or_else(|| anyhow!("workerd is not running"))?;
        let pid = process.server.id();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .context("running kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {pid} failed ({status})");
        }
        let started = std::time::Instant::now();
        loop {
            if let Some(exit) = process.server.try_wait().context("waiting for workerd")? {
                return Ok(exit);
            }
            if started.elapsed() > timeout {
                bail!("workerd (pid {pid}) still runs {timeout:?} after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The generated `config.capnp` (for debugging).
    #[must_use]
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Everything workerd wrote so far (stderr with `--verbose`, the control messages, and
    /// whatever the worker logged): useful in assertion messages.
    #[must_use]
    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let logs = self.logs();
        let lines: Vec<&str> = logs.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

/// Copies workerd's stdout into the log, reporting the first `listen` control message for our
/// socket through `port_tx`. Returns at end-of-file (workerd exited).
fn pump_stdout(stdout: impl std::io::Read, mut log: File, port_tx: &mpsc::Sender<u16>) {
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let _ = log.write_all(line.as_bytes());
        if let Some(port) = listen_port(&line) {
            let _ = port_tx.send(port);
        }
    }
}

/// The port in a control message like `{"event":"listen","socket":"http","port":4321}`.
fn listen_port(line: &str) -> Option<u16> {
    let message: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    if message["event"] != "listen" || message["socket"] != SOCKET_NAME {
        return None;
    }
    u16::try_from(message["port"].as_u64()?).ok()
}

/// Finds the workerd binary (see the module docs).
///
/// # Errors
///
/// Fails when neither `WORKERD_BIN` nor an npm-installed workerd exists.
pub fn workerd_binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("WORKERD_BIN").filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        if bin.is_file() {
            return Ok(bin);
        }
        bail!("WORKERD_BIN={} does not exist", bin.display());
    }
    let node_modules = repo_root().join("node_modules");
    let platform = match std::env::consts::ARCH {
        "aarch64" => "linux-arm64",
        _ => "linux-64",
    };
    let candidates = [
        node_modules.join(format!("@cloudflare/workerd-{platform}/bin/workerd")),
        node_modules.join(".bin/workerd"),
    ];
    candidates
        .iter()
        .find(|c| c.is_file())
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "workerd not found (looked for {}); run `npm ci` in {} or set WORKERD_BIN",
                candidates
                    .iter()
                    .map(|c| c.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                repo_root().display()
            )
        })
}

/// Builds the edge worker for release with [`crate::edge::build`] (what `scripts/build-edge.sh`
/// and `cargo xtask build-edge` run) — at most once per process — and returns the bundle
/// directory (`edge-worker/build`, holding `index.js` and `index_bg.wasm`).
///
/// If `CLICKSTITCH_EDGE_BUNDLE` is set, nothing is built and that directory is returned instead
/// (for CI jobs that built it in an earlier step). A build takes minutes from
/// clean and a few seconds when up to date (cargo is incremental; wasm-bindgen and wasm-opt
/// rerun); concurrent builds from several test processes are serialised by worker-build's lock.
///
/// # Errors
///
/// Fails (with worker-build's output) when the build fails, e.g. because the toolchain is missing
/// — run `scripts/install-edge-toolchain.sh`. A failure is remembered for the rest of the process.
pub fn build_edge_worker() -> anyhow::Result<PathBuf> {
    static BUNDLE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUNDLE
        .get_or_init(|| build_edge_worker_uncached().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn build_edge_worker_uncached() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CLICKSTITCH_EDGE_BUNDLE").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if !dir.join("index.js").is_file() {
            bail!(
                "CLICKSTITCH_EDGE_BUNDLE={} has no index.js (expected worker-build output)",
                dir.display()
            );
        }
        return Ok(dir);
    }
    let dir = crate::edge::build(&crate::edge::BuildOptions {
        quiet: true,
        ..crate::edge::BuildOptions::default()
    })?;
    if !dir.join("index.js").is_file() {
        bail!(
            "the build reported {} but it has no index.js",
            dir.display()
        );
    }
    Ok(dir)
}

/// One module of the worker, copied into the temporary directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Module {
    /// The module name (what `import` statements resolve against).
    name: String,
    kind: ModuleKind,
    /// Path of the copy, relative to the config file.
    embed: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModuleKind {
    EsModule,
    Wasm,
}

/// Copies the worker's files into `<dir>/modules/` and lists them, main module first. Copies
/// (not references) keep a running workerd independent of later rebuilds of the bundle.
fn stage_modules(source: &WorkerSource, dir: &Path) -> anyhow::Result<Vec<Module>> {
    let modules_dir = dir.join("modules");
    fs::create_dir_all(&modules_dir).context("creating the modules directory")?;
    let stage = |from: &Path, kind: ModuleKind| -> anyhow::Result<Module> {
        let name = from
            .file_name()
            .and_then(OsStr::to_str)
            .ok_or_else(|| anyhow!("bad module file name {}", from.display()))?
            .to_owned();
        fs::copy(from, modules_dir.join(&name))
            .with_context(|| format!("copying {}", from.display()))?;
        Ok(Module {
            embed: format!("modules/{name}"),
            name,
            kind,
        })
    };
    match source {
        WorkerSource::JsModule(path) => {
            if !path.is_file() {
                bail!("worker script {} does not exist", path.display());
            }
            Ok(vec![stage(path, ModuleKind::EsModule)?])
        }
        WorkerSource::RustBundle(bundle) => {
            let entry = bundle.join("index.js");
            if !entry.is_file() {
                bail!(
                    "{} is not a worker-build bundle (no index.js); build it with \
                     scripts/build-edge.sh or testkit::workerd::build_edge_worker()",
                    bundle.display()
                );
            }
            let mut modules = vec![stage(&entry, ModuleKind::EsModule)?];
            let mut wasm: Vec<PathBuf> = fs::read_dir(bundle)
                .with_context(|| format!("listing {}", bundle.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension() == Some(OsStr::new("wasm")))
                .collect();
            wasm.sort();
            if wasm.is_empty() {
                bail!("{} has index.js but no .wasm module", bundle.display());
            }
            for path in wasm {
                modules.push(stage(&path, ModuleKind::Wasm)?);
            }
            Ok(modules)
        }
    }
}

/// The compatibility date and flags: from the config, else from the repository's wrangler.toml.
fn compatibility(config: &WorkerdConfig) -> anyhow::Result<(String, Vec<String>)> {
    if let (Some(date), Some(flags)) = (&config.compatibility_date, &config.compatibility_flags) {
        return Ok((date.clone(), flags.clone()));
    }
    let path = repo_root().join("wrangler.toml");
    let toml = fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} for the compatibility date (or set WorkerdConfig::compatibility_date)",
            path.display()
        )
    })?;
    let (date, flags) = wrangler_compatibility(&toml);
    let date = match &config.compatibility_date {
        Some(date) => date.clone(),
        None => date.ok_or_else(|| anyhow!("no compatibility_date in {}", path.display()))?,
    };
    let flags = config.compatibility_flags.clone().unwrap_or(flags);
    Ok((date, flags))
}

/// Top-level `compatibility_date` and `compatibility_flags` of a wrangler.toml. A deliberately
/// small parser (keys before the first `[table]`, double-quoted strings, flags possibly spread
/// over several lines) so the testkit needs no TOML dependency.
fn wrangler_compatibility(toml: &str) -> (Option<String>, Vec<String>) {
    let mut date = None;
    let mut flags = Vec::new();
    let mut in_flags = false;
    for raw in toml.lines() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if in_flags {
            flags.extend(quoted_strings(line));
            in_flags = !line.contains(']');
            continue;
        }
        if line.starts_with('[') {
            break;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key.trim() {
            "compatibility_date" => date = quoted_strings(value).into_iter().next(),
            "compatibility_flags" => {
                flags.extend(quoted_strings(value));
                in_flags = !value.contains(']');
            }
            _ => {}
        }
    }
    (date, flags)
}

fn quoted_strings(s: &str) -> Vec<String> {
    s.split('"').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Renders the `config.capnp` text (see the module docs for the template).
fn render_config(
    modules: &[Module],
    compatibility_date: &str,
    compatibility_flags: &[String],
    vars: &[(String, String)],
    secrets: &[(String, String)],
    port: u16,
) -> String {
    let mut out = String::new();
    out.push_str("# Generated by clickstitch-testkit (testkit/src/workerd.rs).\n");
    out.push_str("using Workerd = import \"/workerd/workerd.capnp\";\n\n");
    out.push_str("const config :Workerd.Config = (\n  services = [\n");
    out.push_str("    (name = \"main\", worker = .mainWorker),\n");
    out.push_str(
        "    (name = \"outbound\", network = (allow = [\"public\", \"private\", \"local\"], \
         tlsOptions = (trustBrowserCas = true))),\n",
    );
    out.push_str("  ],\n  sockets = [\n");
    out.push_str(&format!(
        "    (name = {}, address = \"127.0.0.1:{port}\", service = \"main\", \
         http = (cfBlobHeader = {})),\n",
        capnp_string(SOCKET_NAME),
        capnp_string(CF_HEADER)
    ));
    out.push_str("  ],\n);\n\n");
    out.push_str("const mainWorker :Workerd.Worker = (\n  modules = [\n");
    for module in modules {
        let kind = match module.kind {
            ModuleKind::EsModule => "esModule",
            ModuleKind::Wasm => "wasm",
        };
        out.push_str(&format!(
            "    (name = {}, {kind} = embed {}),\n",
            capnp_string(&module.name),
            capnp_string(&module.embed)
        ));
    }
    out.push_str("  ],\n");
    out.push_str(&format!(
        "  compatibilityDate = {},\n",
        capnp_string(compatibility_date)
    ));
    let flags: Vec<String> = compatibility_flags
        .iter()
        .map(|f| capnp_string(f))
        .collect();
    out.push_str(&format!("  compatibilityFlags = [{}],\n", flags.join(", ")));
    out.push_str("  bindings = [\n");
    for (name, value) in vars.iter().chain(secrets) {
        out.push_str(&format!(
            "    (name = {}, text = {}),\n",
            capnp_string(name),
            capnp_string(value)
        ));
    }
    out.push_str("  ],\n  globalOutbound = \"outbound\",\n);\n");
    out
}

/// A Cap'n Proto text-format string literal.
fn capnp_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capnp_strings_are_escaped() {
        assert_eq!(capnp_string("plain"), "\"plain\"");
        assert_eq!(capnp_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\x01\"");
        assert_eq!(capnp_string("grüße"), "\"grüße\"");
    }

    #[test]
    fn wrangler_compatibility_reads_top_level_keys_only() {
        let toml = r#"
name = "x"
compatibility_date = "2026-04-20" # comment
compatibility_flags = [
  "nodejs_compat", # why
  "other",
]
[env.local]
compatibility_date = "1999-01-01"
"#;
        assert_eq!(
            wrangler_compatibility(toml),
            (
                Some("2026-04-20".to_owned()),
                vec!["nodejs_compat".to_owned(), "other".to_owned()]
            )
        );
        assert_eq!(
            wrangler_compatibility("compatibility_flags = []\n"),
            (None, vec![])
        );
    }

    #[test]
    fn listen_messages_are_recognised() {
        assert_eq!(
            listen_port(r#"{"event":"listen","socket":"http","port":4321}"#),
            Some(4321)
        );
        assert_eq!(
            listen_port(r#"{"event":"listen","socket":"other","port":1}"#),
            None
        );
        assert_eq!(listen_port("console output"), None);
    }

    #[test]
    fn rendered_config_has_modules_bindings_and_outbound() {
        let modules = vec![
            Module {
                name: "index.js".to_owned(),
                kind: ModuleKind::EsModule,
                embed: "modules/index.js".to_owned(),
            },
            Module {
                name: "index_bg.wasm".to_owned(),
                kind: ModuleKind::Wasm,
                embed: "modules/index_bg.wasm".to_owned(),
            },
        ];
        let text = render_config(
            &modules,
            "2026-04-20",
            &[],
            &[("A".to_owned(), "1".to_owned())],
            &[("S".to_owned(), "s\"".to_owned())],
            0,
        );
        assert!(text.contains(r#"(name = "index.js", esModule = embed "modules/index.js")"#));
        assert!(text.contains(r#"(name = "index_bg.wasm", wasm = embed "modules/index_bg.wasm")"#));
        assert!(text.contains(r#"(name = "S", text = "s\""),"#));
        assert!(text.contains(r#"cfBlobHeader = "x-test-cf""#));
        assert!(text.contains(r#"globalOutbound = "outbound""#));
    }

    #[test]
    fn debug_redacts_secrets() {
        let config = WorkerdConfig::hello_redirect()
            .var("V", "visible")
            .secret("EDGE_SECRET", "hunter2");
        let debug = format!("{config:?}");
        assert!(debug.contains("visible") && debug.contains("EDGE_SECRET"));
        assert!(!debug.contains("hunter2"));
    }
}
