//! A real ClickHouse server for integration tests: [`ClickHouseServer`].
//!
//! This module owns everything about running ClickHouse under test: locating the server binary,
//! writing a minimal self-contained configuration into a temporary directory, spawning the server
//! on free loopback ports, waiting until it answers `GET /ping`, stopping and restarting it (to
//! simulate outages), making sure it never outlives the test process, and a small synchronous
//! [`ClickHouseServer::query`] helper built on [`crate::net`].
//!
//! # Which server is used
//!
//! * If `CLICKHOUSE_URL` is set (e.g. `http://127.0.0.1:8123`), [`ClickHouseServer::start`]
//!   returns a handle to that *external* server instead of spawning one. `CLICKHOUSE_USER` and
//!   `CLICKHOUSE_PASSWORD` optionally supply credentials (sent as HTTP Basic auth by
//!   [`ClickHouseServer::query`]). Such a handle cannot be stopped or restarted.
//! * Otherwise the binary named by `CLICKHOUSE_SERVER_BIN` is used if set; else the first
//!   `clickhouse-server` found on `PATH`, `/usr/sbin`, `/usr/bin` or `/usr/local/bin`; else the
//!   first single-binary `clickhouse` there (run as `clickhouse server`).
//!
//! The generated configuration is deliberately old-fashioned (`<yandex>` root, `users_config`
//! pointing at a `users.xml`) because that is what ClickHouse 18.16 (Debian's package) requires;
//! current releases still read both (only 18.16 has been exercised here).
//!
//! # Never leaking servers
//!
//! Every spawned server gets a companion watchdog (`crate::process`), `sh -c 'while read -r _; do :; done; kill …'`,
//! whose stdin is a pipe whose only write end lives in the test process. When the test process
//! exits for *any* reason (normal exit with the handle still in a `static`, panic, `SIGKILL`) the
//! kernel closes that write end, the shell's `read` sees end-of-file, and the watchdog `SIGKILL`s
//! the server and removes its temporary directory. This is the "parent is gone" signal without
//! polling a pid (no pid-reuse or zombie pitfalls) and without `PR_SET_PDEATHSIG`, which fires
//! when the *thread* that spawned the child exits — and test threads exit all the time.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _};
use tempfile::TempDir;

use crate::net;

/// How long [`ClickHouseServer::start`] and [`ClickHouseServer::restart`] wait for `/ping`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout for each HTTP request made by [`ClickHouseServer::query`].
const QUERY_TIMEOUT: Duration = Duration::from_secs(120);
/// How many times a fresh start is retried with new ports when a port was taken meanwhile.
const START_ATTEMPTS: usize = 4;
/// Lines of server logs quoted in start-up errors.
const LOG_TAIL_LINES: usize = 40;

/// A ClickHouse server for tests: either one this process spawned (in a temporary directory, on
/// free ports, listening on 127.0.0.1 only) or an external one named by `CLICKHOUSE_URL`.
///
/// Dropping the handle kills a spawned server and deletes its directory; a spawned server also
/// dies when the test process exits without dropping it (see the module docs).
#[derive(Debug)]
pub struct ClickHouseServer {
    url: String,
    user: String,
    password: String,
    // Boxed: the handle stays small where it is moved around (an enum of shared and own servers).
    local: Option<Box<LocalServer>>,
}

/// State of a server this process spawned.
#[derive(Debug)]
struct LocalServer {
    binary: ServerBinary,
    /// Holds `config.xml`, `users.xml`, `data/`, `tmp/`, `user_files/`, `format_schemas/`, `log/`.
    dir: ServerDir,
    http_port: u16,
    tcp_port: u16,
    max_memory_usage: u64,
    log_level: String,
    process: Option<Running>,
}

/// Where a spawned server keeps its files.
#[derive(Debug)]
enum ServerDir {
    /// Deleted with the handle (and by the watchdog).
    Temp(TempDir),
    /// Kept: [`ClickHouseOptions::dir`].
    Kept(PathBuf),
}

impl ServerDir {
    fn path(&self) -> &Path {
        match self {
            ServerDir::Temp(dir) => dir.path(),
            ServerDir::Kept(dir) => dir,
        }
    }
}

/// How [`ClickHouseServer::start_with`] runs a server. The default is what
/// [`ClickHouseServer::start`] spawns: a temporary directory, free ports, 4 GB per query.
#[derive(Debug, Clone)]
pub struct ClickHouseOptions {
    /// A directory to keep the config, data and logs in (created if missing, reused if it holds
    /// data, never deleted); `None`: a temporary directory deleted with the handle.
    pub dir: Option<PathBuf>,
    /// The HTTP port; `None`: a free one.
    pub http_port: Option<u16>,
    /// The native-protocol TCP port; `None`: a free one.
    pub tcp_port: Option<u16>,
    /// `max_memory_usage` of the default profile, in bytes.
    pub max_memory_usage: u64,
    /// The server log's level (`information`, `warning`, …).
    pub log_level: String,
}

impl Default for ClickHouseOptions {
    fn default() -> Self {
        Self {
            dir: None,
            http_port: None,
            tcp_port: None,
            max_memory_usage: 4_000_000_000,
            log_level: "information".to_owned(),
        }
    }
}

/// The server executable and how to invoke it.
#[derive(Debug, Clone)]
struct ServerBinary {
    path: PathBuf,
    /// `true` for the single `clickhouse` binary, which needs the `server` subcommand.
    needs_subcommand: bool,
}

/// A running server process and its watchdog.
type Running = crate::process::Guarded;

impl Drop for LocalServer {
    /// Kills the server before the fields drop, so the temporary directory is removed only once
    /// nothing writes into it any more.
    fn drop(&mut self) {
        if let Some(mut running) = self.process.take() {
            let _ = running.shutdown();
        }
    }
}

impl ClickHouseServer {
    /// Starts a fresh server, or connects to the one named by `CLICKHOUSE_URL` if that is set.
    ///
    /// A fresh server gets its own temporary directory and free ports, and this call returns
    /// once it answers `GET /ping` with `Ok.` (up to 60 s). An external server must also answer
    /// `/ping` within that time.
    ///
    /// # Errors
    ///
    /// Fails when no server binary is found, the directory or config cannot be written, the
    /// process cannot be spawned, or the server does not become ready; the error then quotes
    /// the tail of the server's logs.
    pub fn start() -> anyhow::Result<Self> {
        if let Ok(url) = std::env::var("CLICKHOUSE_URL") {
            if !url.trim().is_empty() {
                let mut server = Self::connect(url.trim())?;
                if let Ok(user) = std::env::var("CLICKHOUSE_USER") {
                    server.user = user;
                }
                server.password = std::env::var("CLICKHOUSE_PASSWORD").unwrap_or_default();
                return Ok(server);
            }
        }
        Self::start_with(&ClickHouseOptions::default())
    }

    /// Spawns a server as `options` say (`CLICKHOUSE_URL` plays no part). Free ports are chosen
    /// again when one was taken meanwhile; fixed ports are not.
    ///
    /// # Errors
    ///
    /// As for [`ClickHouseServer::start`]; also when the directory cannot be created.
    pub fn start_with(options: &ClickHouseOptions) -> anyhow::Result<Self> {
        let binary = ServerBinary::find()?;
        let dir = match &options.dir {
            Some(dir) => {
                fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                ServerDir::Kept(
                    dir.canonicalize()
                        .with_context(|| format!("resolving {}", dir.display()))?,
                )
            }
            None => ServerDir::Temp(
                tempfile::Builder::new()
                    .prefix("clickstitch-clickhouse-")
                    .tempdir()
                    .context("creating a temporary directory for ClickHouse")?,
            ),
        };
        let mut local = LocalServer {
            binary,
            dir,
            http_port: 0,
            tcp_port: 0,
            max_memory_usage: options.max_memory_usage,
            log_level: options.log_level.clone(),
            process: None,
        };
        let fixed = options.http_port.is_some() && options.tcp_port.is_some();
        let mut attempt = 1;
        loop {
            let ports = net::free_ports(2);
            local.http_port = options.http_port.unwrap_or(ports[0]);
            local.tcp_port = options.tcp_port.unwrap_or(if ports[1] == local.http_port {
                ports[0]
            } else {
                ports[1]
            });
            local.write_config()?;
            match local.launch() {
                Ok(()) => break,
                // Another process took one of the ports between choosing and binding it.
                Err(_)
                    if !fixed
                        && attempt < START_ATTEMPTS
                        && local.last_failure_was_port_clash() =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            url: format!("http://127.0.0.1:{}", local.http_port),
            user: "default".to_owned(),
            password: String::new(),
            local: Some(Box::new(local)),
        })
    }

    /// A handle to an already running server at `url` (e.g. `http://127.0.0.1:8123`) as the
    /// passwordless `default` user, once its `/ping` answers (waiting up to 60 s). This is what
    /// [`ClickHouseServer::start`] does when `CLICKHOUSE_URL` is set; such a handle cannot be
    /// stopped or restarted and dropping it leaves the server alone.
    ///
    /// # Errors
    ///
    /// Fails when `url` is not a plain `http://` URL or `/ping` does not answer `Ok.` in time.
    pub fn connect(url: &str) -> anyhow::Result<Self> {
        let server = Self {
            url: url.trim_end_matches('/').to_owned(),
            user: "default".to_owned(),
            password: String::new(),
            local: None,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match net::http_get(&format!("{}/ping", server.url), Duration::from_secs(2)) {
                Ok(r) if r.status == 200 && r.text().starts_with("Ok.") => return Ok(server),
                Ok(r) if Instant::now() >= deadline => bail!(
                    "ClickHouse at {url}: /ping answered {} {:?}",
                    r.status,
                    r.text()
                ),
                Err(e) if Instant::now() >= deadline => {
                    return Err(e).with_context(|| format!("ClickHouse at {url}: /ping failed"))
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// One server shared by every test in this process, started on first use.
    ///
    /// Use it for tests that just need *a* database (pair it with
    /// [`ClickHouseServer::create_database`] or [`unique_database_name`] so tests don't see each
    /// other's tables). Tests that stop or restart a server need their own from
    /// [`ClickHouseServer::start`]. The shared server lives in a `static` and is never dropped;
    /// its watchdog kills it when the process exits.
    ///
    /// # Panics
    ///
    /// Panics (in every caller) if the server could not be started.
    pub fn shared() -> &'static ClickHouseServer {
        static SHARED: OnceLock<Result<ClickHouseServer, String>> = OnceLock::new();
        match SHARED.get_or_init(|| Self::start().map_err(|e| format!("{e:#}"))) {
            Ok(server) => server,
            Err(e) => panic!("could not start the shared ClickHouse server: {e}"),
        }
    }

    /// The HTTP interface's base URL without a trailing slash, e.g. `http://127.0.0.1:41234`.
    #[must_use]
    pub fn http_url(&self) -> String {
        self.url.clone()
    }

    /// The native-protocol TCP port (for `clickhouse-client --port`), if this process spawned the
    /// server; `None` for an external server.
    #[must_use]
    pub fn tcp_port(&self) -> Option<u16> {
        self.local.as_ref().map(|l| l.tcp_port)
    }

    /// The user that [`ClickHouseServer::query`] authenticates as (`default` unless
    /// `CLICKHOUSE_USER` says otherwise for an external server).
    #[must_use]
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password for [`ClickHouseServer::user`] (empty for a spawned server).
    #[must_use]
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Whether this handle points at an external server (`CLICKHOUSE_URL`).
    #[must_use]
    pub fn is_external(&self) -> bool {
        self.local.is_none()
    }

    /// The pid of the spawned server process while it runs; `None` when stopped or external.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.local
            .as_ref()
            .and_then(|l| l.process.as_ref())
            .map(|p| p.server.id())
    }

    /// The temporary directory holding the spawned server's config, data and logs.
    #[must_use]
    pub fn dir(&self) -> Option<&Path> {
        self.local.as_ref().map(|l| l.dir.path())
    }

    /// Stops the spawned server gracefully: `SIGTERM`, then `SIGKILL` if it still runs after
    /// `timeout`. Its data directory stays, as for [`ClickHouseServer::stop`].
    ///
    /// # Errors
    ///
    /// Fails for an external server, or if the process cannot be signalled or reaped.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let local = self.local_mut("terminate")?;
        if let Some(mut running) = local.process.take() {
            running.terminate(timeout)?;
        }
        Ok(())
    }

    /// Kills the spawned server (`SIGKILL`) and waits for it to exit, keeping its data directory
    /// so that [`ClickHouseServer::restart`] brings the same data back. Afterwards the HTTP and TCP
    /// ports refuse connections, which is how tests simulate "ClickHouse is down".
    ///
    /// Stopping an already stopped server is a no-op.
    ///
    /// # Errors
    ///
    /// Fails for an external server, or if the process cannot be killed or reaped.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let local = self.local_mut("stop")?;
        if let Some(mut running) = local.process.take() {
            running
                .shutdown()
                .context("killing the ClickHouse server")?;
        }
        Ok(())
    }

    /// Starts the server again on the same ports with the same data directory and waits for
    /// `/ping`. If it is still running it is stopped first.
    ///
    /// # Errors
    ///
    /// Fails for an external server or when the server does not come back (the error quotes the
    /// tail of its logs).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        let local = self.local_mut("restart")?;
        // The ports were ours a moment ago; should another process have grabbed one in the
        // meantime there is nothing sensible to do but report it.
        local.launch()
    }

    /// Runs one SQL statement over HTTP and returns the response body.
    ///
    /// The statement is POSTed as the request body with `wait_end_of_query=1`, so errors that
    /// happen while results are produced still turn into a non-200 status. Add a `FORMAT` clause
    /// to choose the output format (the default is `TabSeparated`).
    ///
    /// # Errors
    ///
    /// Fails when the server is unreachable or answers with a non-200 status (the error includes
    /// status and body).
    pub fn query(&self, sql: &str) -> anyhow::Result<String> {
        self.query_with_params(&[], sql)
    }

    /// Like [`ClickHouseServer::query`] but with `database` as the current database, so that
    /// unqualified table names resolve there.
    ///
    /// # Errors
    ///
    /// As for [`ClickHouseServer::query`].
    pub fn query_in(&self, database: &str, sql: &str) -> anyhow::Result<String> {
        self.query_with_params(&[("database", database)], sql)
    }

    /// Like [`ClickHouseServer::query`] with extra URL parameters (ClickHouse settings such as
    /// `("max_threads", "1")`, `("database", "db")` or `param_<name>` query parameters).
    ///
    /// # Errors
    ///
    /// As for [`ClickHouseServer::query`].
    pub fn query_with_params(&self, params: &[(&str, &str)], sql: &str) -> anyhow::Result<String> {
        let mut url = format!("{}/?wait_end_of_query=1", self.url);
        for (name, value) in params {
            url.push('&');
            url.push_str(&net::percent_encode(name));
            url.push('=');
            url.push_str(&net::percent_encode(value));
        }
        let authorization;
        let headers: &[(&str, &str)] = if self.user == "default" && self.password.is_empty() {
            &[]
        } else {
            authorization = net::basic_authorization(&self.user, &self.password);
            &[("Authorization", authorization.as_str())]
        };
        let response = net::http_request("POST", &url, headers, sql.as_bytes(), QUERY_TIMEOUT)
            .with_context(|| format!("sending query to ClickHouse at {}: {sql}", self.url))?;
        if response.status == 200 {
            Ok(response.text())
        } else {
            Err(anyhow!(
                "ClickHouse answered HTTP {} to {sql:?}: {}",
                response.status,
                response.text().trim_end()
            ))
        }
    }

    /// Creates a database named by [`unique_database_name`]`(prefix)` and returns its name.
    ///
    /// # Errors
    ///
    /// As for [`ClickHouseServer::query`].
    pub fn create_database(&self, prefix: &str) -> anyhow::Result<String> {
        let name = unique_database_name(prefix);
        self.query(&format!("CREATE DATABASE {name}"))?;
        Ok(name)
    }

    /// Drops a database if it exists (useful with an external server, where databases outlive
    /// the test run).
    ///
    /// # Errors
    ///
    /// As for [`ClickHouseServer::query`].
    pub fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        self.query(&format!("DROP DATABASE IF EXISTS {name}"))
            .map(drop)
    }

    /// The server's version string, e.g. `18.16.1` (from `SELECT version()`).
    ///
    /// # Errors
    ///
    /// As for [`ClickHouseServer::query`].
    pub fn version(&self) -> anyhow::Result<String> {
        Ok(self.query("SELECT version()")?.trim().to_owned())
    }

    fn local_mut(&mut self, what: &str) -> anyhow::Result<&mut LocalServer> {
        let url = self.url.clone();
        self.local
            .as_deref_mut()
            .ok_or_else(|| anyhow!("cannot {what} the external ClickHouse server at {url}"))
    }
}

impl LocalServer {
    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn config_path(&self) -> PathBuf {
        self.path("config.xml")
    }

    /// Writes `config.xml` and `users.xml` for the current ports and creates the directories.
    fn write_config(&self) -> anyhow::Result<()> {
        for sub in ["data", "tmp", "user_files", "format_schemas", "log"] {
            fs::create_dir_all(self.path(sub))
                .with_context(|| format!("creating {}", self.path(sub).display()))?;
        }
        let dir = |sub: &str| xml_escape(&format!("{}/", self.path(sub).display()));
        let config = format!(
            r#"<?xml version="1.0"?>
<!-- Generated by clickstitch-testkit for one test server. -->
<yandex>
    <logger>
        <level>{log_level}</level>
        <log>{log}</log>
        <errorlog>{errorlog}</errorlog>
        <size>100M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>{data}</path>
    <tmp_path>{tmp}</tmp_path>
    <user_files_path>{user_files}</user_files_path>
    <format_schema_path>{format_schemas}</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
"#,
            log = xml_escape(&self.path("log/clickhouse-server.log").display().to_string()),
            errorlog = xml_escape(
                &self
                    .path("log/clickhouse-server.err.log")
                    .display()
                    .to_string()
            ),
            log_level = xml_escape(&self.log_level),
            http_port = self.http_port,
            tcp_port = self.tcp_port,
            data = dir("data"),
            tmp = dir("tmp"),
            user_files = dir("user_files"),
            format_schemas = dir("format_schemas"),
        );
        let users = format!(
            r#"<?xml version="1.0"?>
<!-- Generated by clickstitch-testkit: one passwordless `default` user, loopback only. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>{max_memory_usage}</max_memory_usage>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default></default>
    </quotas>
</yandex>
"#,
            max_memory_usage = self.max_memory_usage
        );
        fs::write(self.config_path(), config).context("writing config.xml")?;
        fs::write(self.path("users.xml"), users).context("writing users.xml")?;
        Ok(())
    }

    /// Spawns the server plus watchdog and waits for `/ping`; on failure nothing keeps running.
    fn launch(&mut self) -> anyhow::Result<()> {
        let log_offsets = self.log_offsets();
        let mut running = self.spawn()?;
        let url = format!("http://127.0.0.1:{}/ping", self.http_port);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = running.server.try_wait()? {
                bail!(
                    "ClickHouse ({}) exited during start-up with {status}; recent log lines:\n{}",
                    self.binary.path.display(),
                    self.log_tail(&log_offsets)
                );
            }
            if let Ok(r) = net::http_get(&url, Duration::from_secs(1)) {
                if r.status == 200 && r.text().starts_with("Ok.") {
                    self.process = Some(running);
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                let _ = running.shutdown();
                bail!(
                    "ClickHouse ({}) did not answer {url} within {READY_TIMEOUT:?}; recent log lines:\n{}",
                    self.binary.path.display(),
                    self.log_tail(&log_offsets)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn spawn(&self) -> anyhow::Result<Running> {
        let output = |name: &str| -> anyhow::Result<File> {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path(name))
                .with_context(|| format!("opening {name}"))
        };
        let config = self.config_path();
        let mut command = Command::new(&self.binary.path);
        if self.binary.needs_subcommand {
            command.arg("server");
        }
        command
            .arg(format!("--config-file={}", config.display()))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(output("log/stdout.log")?)
            .stderr(output("log/stderr.log")?);
        let server = command
            .spawn()
            .with_context(|| format!("spawning {}", self.binary.path.display()))?;
        let temporary = match &self.dir {
            ServerDir::Temp(dir) => Some(dir.path()),
            ServerDir::Kept(_) => None,
        };
        Running::watch(
            server,
            "clickstitch-clickhouse-watchdog",
            config.as_os_str(),
            temporary,
        )
    }

    fn log_files(&self) -> [PathBuf; 2] {
        [
            self.path("log/clickhouse-server.err.log"),
            self.path("log/stderr.log"),
        ]
    }

    fn log_offsets(&self) -> [u64; 2] {
        self.log_files()
            .map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
    }

    /// The last lines written to the error log and stderr since `offsets` were taken.
    fn log_tail(&self, offsets: &[u64; 2]) -> String {
        let mut out = String::new();
        for (path, offset) in self.log_files().iter().zip(offsets) {
            let mut text = String::new();
            if let Ok(mut f) = File::open(path) {
                let _ = f.seek(SeekFrom::Start(*offset));
                let mut bytes = Vec::new();
                let _ = f.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            out.push_str(&format!("--- {} ---\n", path.display()));
            for line in tail {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    fn last_failure_was_port_clash(&self) -> bool {
        self.log_tail(&[0, 0]).contains("Address already in use")
    }
}

impl ServerBinary {
    fn find() -> anyhow::Result<Self> {
        if let Some(path) = std::env::var_os("CLICKHOUSE_SERVER_BIN") {
            let path = PathBuf::from(path);
            let needs_subcommand = path.file_name().is_some_and(|n| n == "clickhouse");
            return Ok(Self {
                path,
                needs_subcommand,
            });
        }
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        for extra in ["/usr/sbin", "/usr/bin", "/usr/local/bin"] {
            dirs.push(PathBuf::from(extra));
        }
        for (name, needs_subcommand) in [("clickhouse-server", false), ("clickhouse", true)] {
            if let Some(path) = dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p)) {
                return Ok(Self {
                    path,
                    needs_subcommand,
                });
            }
        }
        bail!(
            "no ClickHouse server binary found: looked for clickhouse-server and clickhouse on PATH, \
             /usr/sbin, /usr/bin and /usr/local/bin; install one, set CLICKHOUSE_SERVER_BIN, or set \
             CLICKHOUSE_URL to use a running server"
        )
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Returns a fresh database name: `prefix` (reduced to ASCII letters, digits and `_`), then the
/// process id, a per-process counter and the current time in nanoseconds, e.g.
/// `clicks_12345_7_1732140000123456789`.
///
/// The result is a valid unquoted ClickHouse identifier and differs for every call, within a
/// process and across processes (several test binaries may share one external server).
#[must_use]
pub fn unique_database_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut clean: String = prefix
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if clean.is_empty() || clean.starts_with(|c: char| c.is_ascii_digit()) {
        clean.insert_str(0, "db_");
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{clean}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_identifiers_and_never_repeat() {
        let a = unique_database_name("clicks");
        let b = unique_database_name("clicks");
        assert_ne!(a, b);
        assert!(a.starts_with("clicks_"));
        for name in [
            a,
            unique_database_name("9 bad-prefix!"),
            unique_database_name(""),
        ] {
            assert!(
                name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'),
                "{name}"
            );
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{name}"
            );
        }
    }
}
