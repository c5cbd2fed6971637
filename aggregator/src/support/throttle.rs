//! A throttle for reloads triggered by cache misses: an instance that does
//! not know a link or key (created through another instance) reloads from
//! ClickHouse, but at most once per interval however many misses arrive.
//!
//! Owns only the timing; what is reloaded is the caller's. Concurrent
//! misses wait for the reload in progress instead of starting their own.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// At most one reload per interval.
#[derive(Debug)]
pub struct ReloadThrottle {
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl ReloadThrottle {
    /// A throttle allowing one reload per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: Mutex::new(None),
        }
    }

    /// Runs `reload` unless one ran within the interval; true when it ran.
    /// A failed reload does not count (the next miss tries again).
    pub async fn run<E, F, Fut>(&self, reload: F) -> Result<bool, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let mut last = self.last.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.every) {
            return Ok(false);
        }
        reload().await?;
        *last = Some(Instant::now());
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn misses_within_the_interval_reload_once_and_a_failure_does_not_count() {
        let throttle = ReloadThrottle::new(Duration::from_secs(60));
        let runs = AtomicUsize::new(0);
        let failed: Result<bool, &str> = throttle.run(|| async { Err("down") }).await;
        assert!(failed.is_err());
        for _ in 0..3 {
            let ran: Result<bool, &str> = throttle
                .run(|| async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
                .await;
            assert!(ran.is_ok());
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
