//! `wrangler dev` (Miniflare, local) running the edge worker from the
//! repository's `wrangler.toml`, for tests of what plain workerd lacks:
//! Cloudflare Queues (producer in the fetch handler, consumer posting
//! batches). [`WranglerDev::start`] spawns it in its own process group on
//! free ports with its own persistence directory, waits for `Ready on`, and
//! [`Drop`] kills the whole group (wrangler, its workerd, esbuild).
//!
//! Offline operation: `WRANGLER_SEND_METRICS=false`, no update check banner,
//! and `CLOUDFLARE_CF_FETCH_PATH` pointing at a `cf.json` the test writes, so
//! `request.cf` (country, ASN, …) is the test's choice and nothing is
//! fetched from the internet.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use tempfile::TempDir;

use crate::net::free_port;
use crate::workerd::repo_root;

/// How long start-up may take (wrangler runs the build command first).
const READY_TIMEOUT: Duration = Duration::from_secs(240);

/// A running `wrangler dev`.
pub struct WranglerDev {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
    _dir: TempDir,
}

impl std::fmt::Debug for WranglerDev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WranglerDev")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl WranglerDev {
    /// Starts `wrangler dev --env <env>` with `vars` (secrets too: at
    /// runtime they are plain bindings) and `cf` as `request.cf`.
    pub fn start(env: &str, vars: &[(&str, &str)], cf: &str) -> anyhow::Result<Self> {
        let root = repo_root();
        let wrangler: PathBuf = root.join("node_modules/.bin/wrangler");
        anyhow::ensure!(
            wrangler.exists(),
            "{} missing: run npm ci",
            wrangler.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("clickstitch-wrangler-")
            .tempdir()?;
        let cf_path = dir.path().join("cf.json");
        std::fs::write(&cf_path, cf)?;
        let port = free_port();
        let mut cmd = Command::new(&wrangler);
        cmd.current_dir(&root)
            .arg("dev")
            .args(["--env", env, "--ip", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .arg("--persist-to")
            .arg(dir.path().join("state"))
            .args([
                "--show-interactive-dev-session=false",
                "--log-level",
                "info",
            ]);
        for (k, v) in vars {
            cmd.arg("--var").arg(format!("{k}:{v}"));
        }
        cmd.env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("CLOUDFLARE_CF_FETCH_PATH", &cf_path)
            .env("EDGE_NO_OPT", "1")
            .env("CI", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().context("spawning wrangler dev")?;
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&log);
            let ready_tx = ready_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if line.contains("Ready on") {
                        let _ = ready_tx.send(());
                    }
                    if let Ok(mut l) = log.lock() {
                        l.push_str(&line);
                        l.push('\n');
                    }
                }
            });
        }
        let mut dev = Self {
            child,
            port,
            log,
            _dir: dir,
        };
        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(()) => Ok(dev),
            Err(_) => {
                let status = dev.child.try_wait().ok().flatten();
                bail!(
                    "wrangler dev did not become ready (exit: {status:?}):\n{}",
                    dev.logs()
                )
            }
        }
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything wrangler printed so far.
    pub fn logs(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for WranglerDev {
    fn drop(&mut self) {
        // The negative pid addresses the process group: wrangler and its
        // workerd / esbuild children.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}
