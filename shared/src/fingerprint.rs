//! What recognises a returning visitor without storing who they are: the
//! identity hash (IP + user agent, keyed with a secret salt, used to mark
//! duplicate clicks), the device fingerprint (stable request headers and
//! client hints: a *weak* signal, since everyone on the same phone model,
//! browser build and language shares it) and the visitor id (a random
//! first-party cookie value: one browser profile, high entropy).
//!
//! Owns the inputs and the hash construction. Does not read requests: the
//! edge extracts the header values and hands them in.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A 128-bit digest shown as 32 lower-case hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hash128([u8; 16]);

/// Why a hash did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 32 lower-case hex characters")]
pub struct HashError;

impl Hash128 {
    /// Parses 32 lower-case hex characters.
    pub fn parse(text: &str) -> Result<Self, HashError> {
        if text.len() != 32 || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(HashError);
        }
        let mut out = [0u8; 16];
        hex::decode_to_slice(text, &mut out).map_err(|_| HashError)?;
        Ok(Self(out))
    }

    fn from_digest(digest: &[u8]) -> Self {
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        Self(out)
    }
}

impl fmt::Display for Hash128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash128({self})")
    }
}

impl Serialize for Hash128 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hash128 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A browser's visitor id: 128 random bits the edge keeps in a first-party
/// cookie on the tracking domain, shown as 32 lower-case hex characters.
/// Unlike the [`device_fingerprint`], two browsers share one only by
/// sharing the cookie jar (the same browser profile), so it is a
/// high-entropy identity that fraud scoring and attribution may rely on.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VisitorId(Hash128);

impl VisitorId {
    /// Parses 32 lower-case hex characters.
    pub fn parse(text: &str) -> Result<Self, HashError> {
        let hash = Hash128::parse(text)?;
        if hash.0 == [0; 16] {
            return Err(HashError);
        }
        Ok(Self(hash))
    }

    /// The visitor id as a device key for fraud scoring (the same bits).
    pub fn device_key(&self) -> Hash128 {
        self.0
    }

    /// A new visitor id from 16 random bytes (the caller draws them).
    /// `None` when all bytes are zero (a broken random source).
    pub fn from_random(bytes: [u8; 16]) -> Option<Self> {
        (bytes != [0; 16]).then_some(Self(Hash128(bytes)))
    }
}

impl fmt::Display for VisitorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for VisitorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VisitorId({})", self.0)
    }
}

/// The device key of a brand's own device id (an SDK or JavaScript device
/// identifier sent with events): SHA-256 over a domain prefix and the id,
/// cut to 128 bits, so the id itself is not kept.
pub fn brand_device_key(device_id: &str) -> Hash128 {
    let mut h = Sha256::new();
    h.update(b"clickstitch brand device id\0");
    h.update(device_id.as_bytes());
    Hash128::from_digest(&h.finalize())
}

/// The identity of a visitor for duplicate detection: HMAC-SHA256 keyed with
/// a deployment secret over the IP and user agent, cut to 128 bits. Keyed so
/// that the stored value cannot be reversed by hashing all IPv4 addresses.
pub fn identity_hash(salt: &[u8], ip: &str, user_agent: &str) -> Hash128 {
    // HMAC accepts keys of any length; an error here is impossible.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(salt)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any size"));
    mac.update(ip.as_bytes());
    mac.update(&[0]);
    mac.update(user_agent.as_bytes());
    Hash128::from_digest(&mac.finalize().into_bytes())
}

/// Request properties that stay the same for one browser on one device
/// across networks. Absent values are empty strings.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceSignals<'a> {
    /// `User-Agent`.
    pub user_agent: &'a str,
    /// `Accept-Language`.
    pub accept_language: &'a str,
    /// `Sec-CH-UA` client hint.
    pub sec_ch_ua: &'a str,
    /// `Sec-CH-UA-Platform` client hint.
    pub sec_ch_ua_platform: &'a str,
    /// `Sec-CH-UA-Mobile` client hint.
    pub sec_ch_ua_mobile: &'a str,
    /// Cloudflare's `cf.tlsClientCiphersSha1` (the browser's TLS cipher list).
    pub tls_client_ciphers_sha1: &'a str,
    /// Cloudflare's `cf.tlsClientExtensionsSha1`.
    pub tls_client_extensions_sha1: &'a str,
}

/// SHA-256 over the device signals, each prefixed with its name, cut to 128
/// bits. Not keyed: brands may compute the same value on their side.
pub fn device_fingerprint(signals: &DeviceSignals<'_>) -> Hash128 {
    let mut h = Sha256::new();
    for (name, value) in [
        ("ua", signals.user_agent),
        ("al", signals.accept_language),
        ("chua", signals.sec_ch_ua),
        ("chplat", signals.sec_ch_ua_platform),
        ("chmob", signals.sec_ch_ua_mobile),
        ("tlsc", signals.tls_client_ciphers_sha1),
        ("tlse", signals.tls_client_extensions_sha1),
    ] {
        h.update(name.as_bytes());
        h.update(b"=");
        h.update(value.trim().as_bytes());
        h.update([0]);
    }
    Hash128::from_digest(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_hash_depends_on_ip_user_agent_and_salt() {
        let a = identity_hash(b"salt", "1.2.3.4", "UA");
        assert_eq!(a, identity_hash(b"salt", "1.2.3.4", "UA"));
        assert_ne!(a, identity_hash(b"salt", "1.2.3.5", "UA"));
        assert_ne!(a, identity_hash(b"salt", "1.2.3.4", "UA2"));
        assert_ne!(a, identity_hash(b"pepper", "1.2.3.4", "UA"));
        // The separator keeps ("1.2.3.4", "5UA") apart from ("1.2.3.45", "UA").
        assert_ne!(
            identity_hash(b"s", "1.2.3.4", "5UA"),
            identity_hash(b"s", "1.2.3.45", "UA")
        );
    }

    #[test]
    fn the_device_fingerprint_ignores_the_network_but_not_the_browser() {
        let base = DeviceSignals {
            user_agent: "UA",
            accept_language: "de-DE",
            ..Default::default()
        };
        let other_lang = DeviceSignals {
            accept_language: "en-GB",
            ..base
        };
        assert_eq!(device_fingerprint(&base), device_fingerprint(&base));
        assert_ne!(device_fingerprint(&base), device_fingerprint(&other_lang));
    }

    #[test]
    fn visitor_ids_round_trip_and_refuse_zero_and_other_text() {
        let v = VisitorId::from_random([7; 16]).unwrap();
        assert_eq!(VisitorId::parse(&v.to_string()), Ok(v));
        assert!(VisitorId::from_random([0; 16]).is_none());
        assert!(VisitorId::parse("00000000000000000000000000000000").is_err());
        assert!(VisitorId::parse("not-a-visitor").is_err());
    }

    #[test]
    fn hashes_round_trip_through_hex_and_refuse_other_text() {
        let h = identity_hash(b"k", "ip", "ua");
        assert_eq!(Hash128::parse(&h.to_string()), Ok(h));
        assert!(Hash128::parse("ABCDEF0123456789ABCDEF0123456789").is_err());
        assert!(Hash128::parse("xyz").is_err());
    }
}
