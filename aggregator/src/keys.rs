//! API keys for brands (report events, read their players and commissions)
//! and affiliates (read their own commissions), and postback secrets.
//!
//! Owns issuing, revoking and checking keys. A token is
//! `csk_<key id>_<secret>`; only its SHA-256 is stored (ClickHouse table
//! `api_keys`), so a copy of the database does not reveal any token. The
//! token is returned once, when issued. Keys are cached in memory; an
//! unknown key id triggers a reload from ClickHouse at most once per
//! [`RELOAD_INTERVAL`], so keys issued on another aggregator work here too,
//! and every instance reloads them all every `auth.key_refresh_secs`
//! ([`Keys::refresh`]), so a key revoked on another instance stops working
//! here within that time.
//!
//! Postback secrets (for brands that can only fire URLs) are derived:
//! HMAC-SHA256(server postback key, brand id), so nothing secret about them
//! is stored either. Knows nothing of HTTP.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use clickstitch_shared::{AffiliateId, BrandId};

use crate::clock::now;
use crate::events::hex_sha256;
use crate::store::{Store, StoreError};
use crate::throttle::ReloadThrottle;

/// Minimum time between two reloads triggered by an unknown key.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

const KEY_ID_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Whose key it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum KeyScope {
    /// A brand's key: its own events, players and commissions.
    Brand {
        /// The brand.
        brand_id: BrandId,
    },
    /// An affiliate's key: its own commissions.
    Affiliate {
        /// The affiliate.
        affiliate_id: AffiliateId,
    },
}

/// A stored key (without its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Public id (part of the token).
    pub key_id: String,
    /// SHA-256 of the full token, hex.
    #[serde(skip)]
    pub token_sha256: String,
    /// Whose key.
    #[serde(flatten)]
    pub scope: KeyScope,
    /// Unix seconds.
    pub created_at: u32,
    /// Revoked keys authenticate nothing.
    pub revoked: bool,
    /// Version (Unix ms of the last change).
    #[serde(skip)]
    pub version: u64,
}

/// Splits `csk_<key id>_<secret>` into the key id, or None.
fn key_id_of(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("csk_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == KEY_ID_LEN
        && secret.len() == SECRET_LEN
        && (id.bytes().chain(secret.bytes())).all(|b| b.is_ascii_alphanumeric()))
    .then_some(id)
}

fn random_base62(len: usize) -> String {
    let mut rng = rand::rng();
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut b = [0u8; 64];
        rng.fill_bytes(&mut b);
        out.extend(
            b.iter()
                .filter(|x| **x < 248)
                .map(|x| ALPHABET[usize::from(*x % 62)] as char)
                .take(len - out.len()),
        );
    }
    out
}

/// Keys in memory, backed by ClickHouse.
#[derive(Debug)]
pub struct Keys {
    by_id: RwLock<HashMap<String, ApiKey>>,
    store: Store,
    reloads: ReloadThrottle,
    postback_key: Option<SecretString>,
}

impl Keys {
    /// Loads the keys.
    pub async fn load(
        store: Store,
        postback_key: Option<SecretString>,
    ) -> Result<Self, StoreError> {
        let keys = Self {
            by_id: RwLock::new(HashMap::new()),
            store,
            reloads: ReloadThrottle::new(RELOAD_INTERVAL),
            postback_key,
        };
        keys.reload().await?;
        Ok(keys)
    }

    async fn reload(&self) -> Result<(), StoreError> {
        let all = self.store.load_api_keys().await?;
        let map = all.into_iter().map(|k| (k.key_id.clone(), k)).collect();
        *self.by_id.write().unwrap_or_else(|p| p.into_inner()) = map;
        Ok(())
    }

    /// Reloads every key from ClickHouse (issued and revoked elsewhere).
    pub async fn refresh(&self) -> Result<(), StoreError> {
        self.reload().await
    }

    fn get(&self, key_id: &str) -> Option<ApiKey> {
        self.by_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
            .cloned()
    }

    /// Issues a key; returns it and its token (the only time the token is
    /// available).
    pub async fn issue(&self, scope: KeyScope) -> Result<(ApiKey, SecretString), StoreError> {
        let key_id = random_base62(KEY_ID_LEN);
        let token = format!("csk_{key_id}_{}", random_base62(SECRET_LEN));
        let (secs, ms) = now();
        let key = ApiKey {
            key_id: key_id.clone(),
            token_sha256: hex_sha256(token.as_bytes()),
            scope,
            created_at: secs,
            revoked: false,
            version: ms,
        };
        self.store.save_api_key(&key).await?;
        self.by_id
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key_id, key.clone());
        Ok((key, SecretString::from(token)))
    }

    /// Revokes a key; false if there is no such key.
    pub async fn revoke(&self, key_id: &str) -> Result<bool, StoreError> {
        let Some(mut key) = self.get(key_id) else {
            return Ok(false);
        };
        key.revoked = true;
        key.version = now().1.max(key.version + 1);
        self.store.save_api_key(&key).await?;
        self.by_id
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.key_id.clone(), key);
        Ok(true)
    }

    /// The scope of a valid, unrevoked token.
    pub async fn authenticate(&self, token: &str) -> Result<Option<KeyScope>, StoreError> {
        let Some(key_id) = key_id_of(token) else {
            return Ok(None);
        };
        let mut key = self.get(key_id);
        if key.is_none() {
            self.reloads.run(|| self.reload()).await?;
            key = self.get(key_id);
        }
        Ok(key.filter(|k| !k.revoked).and_then(|k| {
            let given = hex_sha256(token.as_bytes());
            bool::from(given.as_bytes().ct_eq(k.token_sha256.as_bytes())).then_some(k.scope)
        }))
    }

    /// The brand's postback secret, or None when postbacks are not
    /// configured (`auth.postback_key`).
    pub fn postback_secret(&self, brand: BrandId) -> Option<SecretString> {
        let master = self.postback_key.as_ref()?;
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(master.expose_secret().as_bytes()).ok()?;
        mac.update(b"clickstitch-postback-v1:");
        mac.update(brand.to_string().as_bytes());
        let digest = mac.finalize().into_bytes();
        Some(SecretString::from(
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        ))
    }
}

/// HMAC-SHA256 (hex) of `message` under `secret`, for signed postbacks.
pub fn sign(secret: &str, message: &str) -> String {
    match <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(message.as_bytes());
            mac.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
        Err(_) => String::new(),
    }
}

/// Constant-time comparison of two strings.
pub fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_a_fixed_shape() {
        let token = format!(
            "csk_{}_{}",
            random_base62(KEY_ID_LEN),
            random_base62(SECRET_LEN)
        );
        assert!(key_id_of(&token).is_some());
        assert_eq!(key_id_of("csk_short_secret"), None);
        assert_eq!(key_id_of("Bearer csk_x"), None);
        assert_eq!(key_id_of(&token.replace("csk_", "sk_")), None);
    }

    #[test]
    fn signatures_depend_on_secret_and_message() {
        assert_eq!(sign("s", "m"), sign("s", "m"));
        assert_ne!(sign("s", "m"), sign("t", "m"));
        assert_ne!(sign("s", "m"), sign("s", "n"));
        assert_eq!(sign("s", "m").len(), 64);
        assert!(same("abc", "abc") && !same("abc", "abd"));
    }
}
