//! The schedule of background jobs: run a job's `run_once` every interval
//! (the first time at once) until shutdown.
//!
//! Owns only the timing (a missed tick is delayed, never bunched up) and the
//! stop; each job decides what a run does and how it reports. Tests drive
//! the jobs' `run_once` directly.

use std::future::Future;
use std::time::Duration;

/// Calls `run` every `every` (at least one second; the first call at once)
/// until `shutdown` completes. A run in progress finishes first.
pub async fn every<F, Fut>(every: Duration, shutdown: impl Future<Output = ()>, mut run: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(every.max(Duration::from_secs(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticks.tick() => run().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_job_runs_at_once_then_every_interval_until_shutdown() {
        let runs = AtomicUsize::new(0);
        every(
            Duration::from_secs(10),
            tokio::time::sleep(Duration::from_secs(25)),
            || async {
                runs.fetch_add(1, Ordering::SeqCst);
            },
        )
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3); // at 0 s, 10 s and 20 s
    }
}
