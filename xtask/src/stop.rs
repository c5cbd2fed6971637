//! Stopping on a signal: [`Stop::listen`] takes over `SIGINT`, `SIGTERM` and `SIGHUP` (so they
//! no longer kill this process outright) and [`Stop::wait_until`] returns when one arrives, or
//! when a watched component has exited, whichever is first. The task then stops what it
//! started, in order.

use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};

/// Signals received, as a channel of their names.
#[derive(Debug)]
pub(crate) struct Stop {
    signals: mpsc::Receiver<&'static str>,
}

impl Stop {
    /// Installs the handlers (a thread with a small tokio runtime waits for the signals).
    pub(crate) fn listen() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("starting the signal runtime")?;
        let (mut int, mut term, mut hup) = {
            let _entered = runtime.enter();
            let install = |kind| signal(kind).context("installing a signal handler");
            (
                install(SignalKind::interrupt())?,
                install(SignalKind::terminate())?,
                install(SignalKind::hangup())?,
            )
        };
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("xtask-signals".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    loop {
                        let name = tokio::select! {
                            _ = int.recv() => "SIGINT",
                            _ = term.recv() => "SIGTERM",
                            _ = hup.recv() => "SIGHUP",
                        };
                        if tx.send(name).is_err() {
                            return;
                        }
                    }
                });
            })
            .context("spawning the signal thread")?;
        Ok(Self { signals: rx })
    }

    /// Whether a signal arrived (without waiting).
    pub(crate) fn received(&mut self) -> Option<&'static str> {
        self.signals.try_recv().ok()
    }

    /// Waits for a signal or for `exited()` to hold (checked twice a second); says which.
    pub(crate) fn wait_until(&mut self, mut exited: impl FnMut() -> bool) -> String {
        loop {
            match self.signals.recv_timeout(Duration::from_millis(500)) {
                Ok(name) => return format!("{name} received"),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return "the signal thread ended".to_owned()
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if exited() {
                return "a component exited".to_owned();
            }
        }
    }
}
