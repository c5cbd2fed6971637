//! Whose word the worker takes for who the visitor is: the client IP
//! (`CF-Connecting-IP`), the country (`cf.country`, `CF-IPCountry`) and the
//! rest of `request.cf` (region, city, ASN, colo, TLS hashes, verified bot).
//!
//! Owns the trust setting's values and the per-request decision. On
//! Cloudflare these facts are set by Cloudflare itself (it overwrites any
//! `CF-Connecting-IP` / `CF-IPCountry` a visitor sends), so they are trusted
//! as they come ([`ClientTrust::Always`], the default). On self-hosted workerd
//! anyone can send them; with [`ClientTrust::Proxy`] they are believed only on
//! requests that carry the trusted reverse proxy's secret in
//! [`PROXY_AUTH_HEADER`], and ignored on every other request. Pure: the
//! runtime reads the header and drops the facts.

/// The request header in which the trusted reverse proxy presents its
/// secret (lower case, as the runtime looks headers up).
pub const PROXY_AUTH_HEADER: &str = "x-clickstitch-proxy-auth";

/// Shortest accepted proxy secret, in bytes.
pub const MIN_PROXY_SECRET_LEN: usize = 32;

/// Which requests' client-identity facts are believed.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientTrust {
    /// Every request's (Cloudflare, or a proxy that strips and sets them on
    /// every request and is the only way in).
    Always,
    /// Only those of requests whose [`PROXY_AUTH_HEADER`] equals this secret.
    Proxy {
        /// The shared secret (at least [`MIN_PROXY_SECRET_LEN`] bytes).
        secret: String,
    },
}

impl std::fmt::Debug for ClientTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Always => f.write_str("Always"),
            Self::Proxy { .. } => f.write_str("Proxy { secret: [redacted] }"),
        }
    }
}

impl ClientTrust {
    /// Whether a request presenting `proxy_auth` (its [`PROXY_AUTH_HEADER`],
    /// if any) has trustworthy client-identity facts.
    pub fn trusts(&self, proxy_auth: Option<&str>) -> bool {
        match self {
            Self::Always => true,
            Self::Proxy { secret } => proxy_auth
                .is_some_and(|given| constant_time_eq(given.as_bytes(), secret.as_bytes())),
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths,
/// not on where they first differ (the secret's length is not a secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn by_default_every_request_is_trusted_as_on_cloudflare() {
        assert!(ClientTrust::Always.trusts(None));
        assert!(ClientTrust::Always.trusts(Some("anything")));
    }

    #[test]
    fn in_proxy_mode_only_the_exact_secret_is_trusted() {
        let trust = ClientTrust::Proxy {
            secret: SECRET.into(),
        };
        assert!(trust.trusts(Some(SECRET)));
        assert!(!trust.trusts(None));
        assert!(!trust.trusts(Some("")));
        assert!(!trust.trusts(Some(&SECRET[1..])));
        assert!(!trust.trusts(Some(&format!("{SECRET}x"))));
        assert!(!trust.trusts(Some(&SECRET.to_uppercase())));
        assert!(!trust.trusts(Some(&format!(" {SECRET}"))));
    }

    #[test]
    fn the_comparison_needs_equal_lengths_and_bytes() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let trust = ClientTrust::Proxy {
            secret: SECRET.into(),
        };
        assert!(!format!("{trust:?}").contains(SECRET));
    }
}
