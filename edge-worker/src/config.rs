//! The edge worker's settings, read from Worker vars and secrets.
//!
//! Owns their names, defaults and parsing (pure: the runtime passes a lookup
//! function). Does not read the environment itself.

use std::time::Duration;

use crate::trust::{ClientTrust, MIN_PROXY_SECRET_LEN};

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
    /// Direct mode: how long a batch smaller than `flush_max_records` may
    /// wait for more records before it is posted (0: at once, the default:
    /// the shortest window in which a shutdown can lose clicks).
    pub flush_max_delay: Duration,
    /// Direct mode: the cap of the retry backoff while the aggregator is
    /// unavailable (retries go on for as long as records wait).
    pub flush_retry_max: Duration,
    /// Direct mode: while more records than this are not stored yet (and
    /// the aggregator is not failing), a new answer waits for the flusher, at
    /// most `MAX_ANSWER_WAIT` in the runtime. Bounds what a shutdown can lose;
    /// 0 turns it off.
    pub flush_max_unstored: usize,
    /// Whose client-identity facts (IP, country, `cf`) are believed.
    pub client_trust: ClientTrust,
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
            .field("flush_retry_max", &self.flush_retry_max)
            .field("flush_max_unstored", &self.flush_max_unstored)
            .field("client_trust", &self.client_trust)
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

/// `number`, refused outside `min..=max`.
fn bounded(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let v = number(get, name, default)?;
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError {
            name,
            problem: format!("must be between {min} and {max}, got {v}"),
        })
    }
}

/// `TRUST_CLIENT_HEADERS` and `PROXY_AUTH_SECRET`.
fn client_trust(get: &impl Fn(&str) -> Option<String>) -> Result<ClientTrust, ConfigError> {
    let secret = get("PROXY_AUTH_SECRET");
    match get("TRUST_CLIENT_HEADERS").as_deref().map(str::trim) {
        None | Some("always") => match secret {
            None => Ok(ClientTrust::Always),
            Some(_) => Err(ConfigError {
                name: "PROXY_AUTH_SECRET",
                problem: "is set but TRUST_CLIENT_HEADERS is not \"proxy\": \
                          set TRUST_CLIENT_HEADERS = \"proxy\" to use it, or remove it"
                    .into(),
            }),
        },
        Some("proxy") => match secret {
            Some(secret) if secret.len() >= MIN_PROXY_SECRET_LEN && secret.trim() == secret => {
                Ok(ClientTrust::Proxy { secret })
            }
            Some(_) => Err(ConfigError {
                name: "PROXY_AUTH_SECRET",
                problem: format!(
                    "must be at least {MIN_PROXY_SECRET_LEN} bytes without surrounding blanks"
                ),
            }),
            None => Err(ConfigError {
                name: "PROXY_AUTH_SECRET",
                problem: "is required when TRUST_CLIENT_HEADERS = \"proxy\"".into(),
            }),
        },
        Some(other) => Err(ConfigError {
            name: "TRUST_CLIENT_HEADERS",
            problem: format!("must be \"always\" or \"proxy\", got {other:?}"),
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
            flush_max_delay: Duration::from_millis(bounded(&get, "FLUSH_MAX_MS", 0, 0, 60_000)?),
            flush_retry_max: Duration::from_millis(bounded(
                &get,
                "FLUSH_RETRY_MAX_MS",
                2_000,
                100,
                60_000,
            )?),
            flush_max_unstored: bounded(&get, "FLUSH_MAX_UNSTORED", 100, 0, 100_000)? as usize,
            client_trust: client_trust(&get)?,
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

    fn with(extra: &[(&str, &str)]) -> Result<EdgeConfig, ConfigError> {
        let mut pairs = vec![("AGGREGATOR_URL", "http://x"), ("EDGE_SECRET", "s")];
        pairs.extend_from_slice(extra);
        EdgeConfig::from_lookup(lookup(&pairs))
    }

    #[test]
    fn direct_delivery_posts_at_once_and_retries_every_two_seconds_at_most_by_default() {
        let c = with(&[]).expect("valid");
        assert_eq!(c.flush_max_delay, Duration::ZERO);
        assert_eq!(c.flush_retry_max, Duration::from_secs(2));
        assert_eq!(c.flush_max_unstored, 100);
        let c = with(&[
            ("FLUSH_MAX_MS", "250"),
            ("FLUSH_RETRY_MAX_MS", "5000"),
            ("FLUSH_MAX_UNSTORED", "0"),
        ])
        .expect("valid");
        assert_eq!(c.flush_max_unstored, 0);
        assert_eq!(c.flush_max_delay, Duration::from_millis(250));
        assert_eq!(c.flush_retry_max, Duration::from_secs(5));
        for (name, value) in [
            ("FLUSH_RETRY_MAX_MS", "99"),
            ("FLUSH_RETRY_MAX_MS", "60001"),
            ("FLUSH_RETRY_MAX_MS", "2s"),
            ("FLUSH_MAX_MS", "60001"),
            ("FLUSH_MAX_MS", "-1"),
            ("FLUSH_MAX_UNSTORED", "100001"),
        ] {
            assert_eq!(with(&[(name, value)]).expect_err(value).name, name);
        }
    }

    #[test]
    fn client_headers_are_trusted_by_default_and_only_with_the_proxy_secret_in_proxy_mode() {
        assert_eq!(with(&[]).expect("valid").client_trust, ClientTrust::Always);
        assert_eq!(
            with(&[("TRUST_CLIENT_HEADERS", "always")])
                .expect("valid")
                .client_trust,
            ClientTrust::Always
        );
        let secret = "p".repeat(MIN_PROXY_SECRET_LEN);
        let c = with(&[
            ("TRUST_CLIENT_HEADERS", "proxy"),
            ("PROXY_AUTH_SECRET", &secret),
        ])
        .expect("valid");
        assert_eq!(
            c.client_trust,
            ClientTrust::Proxy {
                secret: secret.clone()
            }
        );
        assert!(!format!("{c:?}").contains(&secret));
    }

    #[test]
    fn the_trust_settings_are_parsed_strictly() {
        let secret = "p".repeat(MIN_PROXY_SECRET_LEN);
        let short = "p".repeat(MIN_PROXY_SECRET_LEN - 1);
        let padded = format!(" {secret}");
        for (pairs, name) in [
            (
                vec![("TRUST_CLIENT_HEADERS", "Proxy")],
                "TRUST_CLIENT_HEADERS",
            ),
            (
                vec![("TRUST_CLIENT_HEADERS", "never")],
                "TRUST_CLIENT_HEADERS",
            ),
            (vec![("TRUST_CLIENT_HEADERS", "proxy")], "PROXY_AUTH_SECRET"),
            (
                vec![
                    ("TRUST_CLIENT_HEADERS", "proxy"),
                    ("PROXY_AUTH_SECRET", &short),
                ],
                "PROXY_AUTH_SECRET",
            ),
            (
                vec![
                    ("TRUST_CLIENT_HEADERS", "proxy"),
                    ("PROXY_AUTH_SECRET", &padded),
                ],
                "PROXY_AUTH_SECRET",
            ),
            // A secret without the mode would silently keep trusting everyone.
            (vec![("PROXY_AUTH_SECRET", &secret)], "PROXY_AUTH_SECRET"),
        ] {
            assert_eq!(with(&pairs).expect_err(name).name, name, "{pairs:?}");
        }
    }
}
