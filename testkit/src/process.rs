//! A spawned server process guarded by a watchdog, so that it never outlives
//! the test process.
//!
//! Owns the watchdog: `sh -c 'while read -r _; do :; done; kill …'` whose stdin
//! is a pipe whose only write end lives in the test process. When the test
//! process exits for *any* reason (normal exit with the handle still in a
//! `static`, panic, `SIGKILL`) the kernel closes that write end, the shell's
//! `read` sees end-of-file, and the watchdog `SIGKILL`s the server — after
//! checking `/proc/<pid>/cmdline` still names the server's unique config path,
//! so a reused pid is never hit — waits for it to die and removes its
//! temporary directory. The normal stop/drop path retires the watchdog first.
//! Used by the ClickHouse and workerd harnesses; knows nothing of either.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// The watchdog script. `$1` is the server pid; `$2` a string that must occur
/// in the server's command line (its unique config path) before it is killed;
/// `$3` the server's temporary directory, removed once the server is dead,
/// and only if it is one of ours (`clickstitch-*`); empty for a directory
/// that must outlive the server.
const WATCHDOG_SCRIPT: &str = r#"
while read -r _; do :; done
if [ ! -d /proc/self ] || grep -qF -- "$2" "/proc/$1/cmdline" 2>/dev/null; then
    kill -KILL "$1" 2>/dev/null
    n=0
    while [ $n -lt 100 ] && [ -r "/proc/$1/stat" ] && ! grep -q ') Z' "/proc/$1/stat" 2>/dev/null; do
        sleep 0.05
        n=$((n + 1))
    done
fi
case "$3" in
    */clickstitch-*) rm -rf -- "$3" ;;
esac
"#;

/// A running server process and its watchdog.
#[derive(Debug)]
pub struct Guarded {
    /// The server.
    pub server: Child,
    watchdog: Option<Child>,
    /// The write end of the watchdog's stdin; closing it makes the watchdog
    /// kill the server.
    watchdog_stdin: Option<ChildStdin>,
}

impl Guarded {
    /// Puts `server` under a watchdog named `name` (visible in `ps`) that
    /// kills it when this process is gone, if its command line still
    /// contains `guard`, and then deletes `dir` (when given). On failure the
    /// server is killed and reaped.
    pub fn watch(
        mut server: Child,
        name: &str,
        guard: &OsStr,
        dir: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let watchdog = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg(name)
            .arg(server.id().to_string())
            .arg(guard)
            .arg(dir.map_or(OsStr::new(""), Path::as_os_str))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match watchdog {
            Ok(mut watchdog) => Ok(Self {
                watchdog_stdin: watchdog.stdin.take(),
                watchdog: Some(watchdog),
                server,
            }),
            Err(e) => {
                let _ = server.kill();
                let _ = server.wait();
                Err(e).with_context(|| format!("spawning the /bin/sh watchdog {name}"))
            }
        }
    }

    /// Kills the server (retiring the watchdog first, so it can never fire at
    /// a pid that was already reaped and possibly reused) and reaps both.
    /// Idempotent.
    pub fn shutdown(&mut self) -> std::io::Result<()> {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        self.watchdog_stdin = None;
        match self.server.try_wait()? {
            Some(_) => Ok(()),
            None => {
                self.server.kill()?;
                self.server.wait().map(drop)
            }
        }
    }

    /// Stops the server gracefully: retires the watchdog, sends `SIGTERM`
    /// and waits up to `timeout` for it to exit, then kills it. Idempotent.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<()> {
        if self.server.try_wait()?.is_none() {
            let pid = self.server.id().to_string();
            let sent = Command::new("kill")
                .args(["-TERM", &pid])
                .stderr(Stdio::null())
                .status()
                .context("running kill -TERM")?;
            if sent.success() {
                let deadline = Instant::now() + timeout;
                while self.server.try_wait()?.is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        self.shutdown().context("stopping the server")
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
