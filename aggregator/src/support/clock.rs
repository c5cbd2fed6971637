//! The wall clock, in the two forms the aggregator stores: Unix
//! milliseconds and Unix seconds. The only place that reads the clock in the
//! request path (jobs take time as a parameter so tests can drive them).

/// Now, Unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub use clickstitch_domain::units::secs;

/// Now, as (Unix seconds, Unix milliseconds).
pub fn now() -> (u32, u64) {
    let ms = now_ms();
    (secs(ms), ms)
}
