//! Classifies ClickHouse failures: worth retrying (the server is down, busy
//! or slow) or not (our SQL or data is wrong). The ingest API answers 503
//! only for retryable failures, so the edge retries exactly those.

use std::time::Duration;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// ClickHouse is unreachable, overloaded or timed out: retry later.
    #[error("ClickHouse unavailable: {0}")]
    Unavailable(String),
    /// ClickHouse refused the request (schema or data problem): retrying
    /// the same request will not help.
    #[error("ClickHouse rejected the request: {0}")]
    Rejected(String),
    /// The writer is shutting down and takes no more rows.
    #[error("the click writer is shut down")]
    ShutDown,
}

impl StoreError {
    /// An owned copy of an error shared by every request of a group (same
    /// message and retry class).
    pub fn from_shared(shared: std::sync::Arc<StoreError>) -> StoreError {
        std::sync::Arc::try_unwrap(shared).unwrap_or_else(|shared| match &*shared {
            StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
            StoreError::Rejected(m) => StoreError::Rejected(m.clone()),
            StoreError::ShutDown => StoreError::ShutDown,
        })
    }

    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::ShutDown)
    }
}

/// ClickHouse server error codes that mean "try again": timeouts, memory and
/// concurrency limits, too many parts, network trouble, read-only replicas.
const RETRYABLE_CODES: &[u32] = &[
    3,   // UNEXPECTED_END_OF_FILE (connection cut mid-request)
    159, // TIMEOUT_EXCEEDED
    164, // READONLY
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    203, // NO_FREE_CONNECTION
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    236, // ABORTED
    241, // MEMORY_LIMIT_EXCEEDED
    242, // TABLE_IS_READ_ONLY
    252, // TOO_MANY_PARTS
    285, // TOO_FEW_LIVE_REPLICAS
    319, // UNKNOWN_STATUS_OF_INSERT
    425, // SYSTEM_ERROR
];

/// Reads `Code: NNN` from a ClickHouse error text.
fn server_code(text: &str) -> Option<u32> {
    let rest = &text[text.find("Code: ")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl From<clickhouse::error::Error> for StoreError {
    fn from(e: clickhouse::error::Error) -> Self {
        use clickhouse::error::Error as E;
        let text = e.to_string();
        match &e {
            E::Network(_) | E::TimedOut => StoreError::Unavailable(text),
            E::BadResponse(body) => match server_code(body) {
                Some(code) if RETRYABLE_CODES.contains(&code) => StoreError::Unavailable(text),
                Some(_) => StoreError::Rejected(text),
                // No code: a proxy or an overloaded server answering oddly.
                None => StoreError::Unavailable(text),
            },
            _ => StoreError::Rejected(text),
        }
    }
}

/// Backoff before retry `attempt` (0-based): 50 ms doubling, capped at 1 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((50u64 << attempt.min(5)).min(1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_codes_are_read_from_error_text() {
        assert_eq!(
            server_code("Code: 252, e.displayText() = DB::Exception: Too many parts"),
            Some(252)
        );
        assert_eq!(
            server_code("Code: 62. DB::Exception: Syntax error"),
            Some(62)
        );
        assert_eq!(server_code("no code here"), None);
    }

    #[test]
    fn overload_is_retryable_and_syntax_errors_are_not() {
        let busy = clickhouse::error::Error::BadResponse("Code: 252, Too many parts".into());
        let syntax = clickhouse::error::Error::BadResponse("Code: 62, Syntax error".into());
        assert!(StoreError::from(busy).is_retryable());
        assert!(!StoreError::from(syntax).is_retryable());
        assert!(StoreError::from(clickhouse::error::Error::TimedOut).is_retryable());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(50));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(30), Duration::from_secs(1));
    }
}
