//! The edge worker's settings, read from Worker vars and secrets.
//!
//! Owns their names, defaults and parsing (pure: the runtime passes a lookup
//! function). Does not read the environment itself.

use std::time::Duration;

/// How clicks leave the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Cloudflare Queue `CLICK_QUEUE`; the queue consumer posts batches.
    Queue,
    /// In-isolate buffer flushed to the aggregator via `waitUntil` (for
    /// runtimes without queues, e.g. plain workerd).
    Direct,
}

/// Everything the worker needs to know.
#[derive(Clone)]
pub struct EdgeConfig {
    /// Base URL of the aggregator, e.g. `https://agg.example.com`.
    pub aggregator_url: String,
    /// Shared secret for the aggregator's `/edge/v1` endpoints.
    pub edge_secret: String,
    /// Key of the identity hash (duplicate detection).
    pub identity_salt: String,
    /// Delivery mode.
    pub delivery: Delivery,
    /// Direct mode: flush when this many records are buffered.
    pub flush_max_records: usize,
    /// Direct mode: flush at the latest this long after the first record.
    pub flush_max_delay: Duration,
    /// How long a fetched link definition is used without revalidation.
    pub link_fresh_for: Duration,
}

impl std::fmt::Debug for EdgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeConfig")
            .field("aggregator_url", &self.aggregator_url)
            .field("edge_secret", &"[redacted]")
            .field("identity_salt", &"[redacted]")
            .field("delivery", &self.delivery)
            .field("flush_max_records", &self.flush_max_records)
            .field("flush_max_delay", &self.flush_max_delay)
            .field("link_fresh_for", &self.link_fresh_for)
            .finish()
    }
}

/// A missing or malformed setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("edge setting {name}: {problem}")]
pub struct ConfigError {
    /// The var or secret name.
    pub name: &'static str,
    /// What is wrong.
    pub problem: String,
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| ConfigError {
            name,
            problem: format!("expected a whole number, got {v:?}"),
        }),
    }
}

impl EdgeConfig {
    /// Reads the settings through `get` (var or secret by name).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            get(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError {
                    name,
                    problem: "is required".into(),
                })
        };
        let aggregator_url = required("AGGREGATOR_URL")?.trim_end_matches('/').to_owned();
        if !(aggregator_url.starts_with("https://") || aggregator_url.starts_with("http://")) {
            return Err(ConfigError {
                name: "AGGREGATOR_URL",
                problem: "must be an http(s) URL".into(),
            });
        }
        let edge_secret = required("EDGE_SECRET")?;
        let identity_salt =
            get("IDENTITY_SALT").unwrap_or_else(|| format!("identity:{edge_secret}"));
        let delivery = match get("CLICK_DELIVERY").as_deref().map(str::trim) {
            None | Some("queue") => Delivery::Queue,
            Some("direct") => Delivery::Direct,
            Some(other) => {
                return Err(ConfigError {
                    name: "CLICK_DELIVERY",
                    problem: format!("must be \"queue\" or \"direct\", got {other:?}"),
                })
            }
        };
        Ok(Self {
            aggregator_url,
            edge_secret,
            identity_salt,
            delivery,
            flush_max_records: number(&get, "FLUSH_MAX_CLICKS", 500)?.max(1) as usize,
            flush_max_delay: Duration::from_millis(number(&get, "FLUSH_MAX_MS", 1000)?),
            link_fresh_for: Duration::from_secs(number(&get, "LINK_CACHE_TTL_SECONDS", 60)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_apply_and_required_settings_are_enforced() {
        let c = EdgeConfig::from_lookup(lookup(&[
            ("AGGREGATOR_URL", "http://127.0.0.1:8080/"),
            ("EDGE_SECRET", "s3cret"),
        ]))
        .expect("valid");
        assert_eq!(c.aggregator_url, "http://127.0.0.1:8080");
        assert_eq!(c.delivery, Delivery::Queue);
        assert_eq!(c.flush_max_records, 500);
        assert!(!format!("{c:?}").contains("s3cret"));
        let missing = EdgeConfig::from_lookup(lookup(&[("AGGREGATOR_URL", "http://x")]))
            .expect_err("no secret");
        assert_eq!(missing.name, "EDGE_SECRET");
        let bad = EdgeConfig::from_lookup(lookup(&[
            ("AGGREGATOR_URL", "http://x"),
            ("EDGE_SECRET", "s"),
            ("CLICK_DELIVERY", "carrier-pigeon"),
        ]))
        .expect_err("bad mode");
        assert_eq!(bad.name, "CLICK_DELIVERY");
    }
}
