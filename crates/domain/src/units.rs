//! Time units in milliseconds, and the conversion of Unix milliseconds to
//! the Unix seconds ClickHouse `DateTime` columns hold.

/// One second, in milliseconds.
pub const SECOND_MS: u64 = 1_000;
/// One minute, in milliseconds.
pub const MINUTE_MS: u64 = 60 * SECOND_MS;
/// One hour, in milliseconds.
pub const HOUR_MS: u64 = 60 * MINUTE_MS;
/// One day, in milliseconds.
pub const DAY_MS: u64 = 24 * HOUR_MS;

/// Unix seconds of Unix milliseconds `ms`, saturated at `u32::MAX` (the
/// range of a ClickHouse `DateTime`).
pub fn secs(ms: u64) -> u32 {
    u32::try_from(ms / SECOND_MS).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_become_whole_seconds_and_saturate() {
        assert_eq!(secs(1_999), 1);
        assert_eq!(secs(u64::MAX), u32::MAX);
        assert_eq!(DAY_MS, 86_400_000);
    }
}
