//! ClickHouse reachability, for `/health`.

use std::time::{Duration, Instant};

use super::{Store, StoreError};

impl Store {
    /// Runs `SELECT 1` and returns how long it took.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let started = Instant::now();
        let one = tokio::time::timeout(
            self.timeout(),
            self.client().query("SELECT toUInt8(1)").fetch_one::<u8>(),
        )
        .await
        .map_err(|_| StoreError::Unavailable("ping timed out".into()))??;
        if one != 1 {
            return Err(StoreError::Rejected(format!("SELECT 1 returned {one}")));
        }
        Ok(started.elapsed())
    }
}
