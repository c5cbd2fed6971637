//! API keys for brands (report events, read their players and commissions),
//! affiliates (read their own commissions) and named operators (the admin
//! API, within their [`Role`]), and postback secrets.
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
//! HMAC-SHA256(server postback key, brand id and generation), so nothing
//! secret about them is stored either. A rotation ([`Keys::rotate_postback`])
//! starts the next generation and keeps the previous one valid for an
//! overlap the operator chooses (at most [`MAX_POSTBACK_OVERLAP_HOURS`]);
//! rotations are reloaded with the keys, so every instance follows within
//! `auth.key_refresh_secs`. Knows nothing of HTTP.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use clickstitch_shared::BrandId;

pub use crate::entities::credentials::{
    ApiKey, KeyScope, Owner, Permission, PostbackRotation, Role, MAX_OWNER_BYTES,
};
use crate::events::hex_sha256;
use crate::store::{Store, StoreError};
use crate::support::clock::now;
use crate::support::throttle::ReloadThrottle;

/// Minimum time between two reloads triggered by an unknown key.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

const KEY_ID_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

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

/// Longest overlap of a postback secret rotation (30 days).
pub const MAX_POSTBACK_OVERLAP_HOURS: u32 = 720;

/// Keys in memory, backed by ClickHouse.
#[derive(Debug)]
pub struct Keys {
    by_id: RwLock<HashMap<String, ApiKey>>,
    rotations: RwLock<HashMap<BrandId, PostbackRotation>>,
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
            rotations: RwLock::new(HashMap::new()),
            store,
            reloads: ReloadThrottle::new(RELOAD_INTERVAL),
            postback_key,
        };
        keys.reload().await?;
        Ok(keys)
    }

    async fn reload(&self) -> Result<(), StoreError> {
        let all = self.store.load_api_keys().await?;
        let rotations = self.store.load_postback_rotations().await?;
        let map = all.into_iter().map(|k| (k.key_id.clone(), k)).collect();
        *self.by_id.write().unwrap_or_else(|p| p.into_inner()) = map;
        let mut held = self.rotations.write().unwrap_or_else(|p| p.into_inner());
        for r in rotations {
            // Never step back to an older generation than one rotated here.
            let keep = held
                .get(&r.brand)
                .is_some_and(|h| h.generation > r.generation);
            if !keep {
                held.insert(r.brand, r);
            }
        }
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

    /// Every named operator credential (revoked ones included).
    pub fn operator_keys(&self) -> Vec<ApiKey> {
        let mut keys: Vec<ApiKey> = self
            .by_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|k| matches!(k.scope, KeyScope::Operator { .. }))
            .cloned()
            .collect();
        keys.sort_by(|a, b| (a.created_at, &a.key_id).cmp(&(b.created_at, &b.key_id)));
        keys
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

    /// The key id and scope of a valid, unrevoked token.
    pub async fn authenticate(
        &self,
        token: &str,
    ) -> Result<Option<(String, KeyScope)>, StoreError> {
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
            bool::from(given.as_bytes().ct_eq(k.token_sha256.as_bytes()))
                .then_some((k.key_id, k.scope))
        }))
    }

    /// The brand's current postback secret, or None when postbacks are not
    /// configured (`auth.postback_key`).
    pub fn postback_secret(&self, brand: BrandId) -> Option<SecretString> {
        self.derive_postback(brand, self.rotation(brand).map_or(0, |r| r.generation))
    }

    /// The secrets a postback of `brand` may carry at `now_ms`: the current
    /// one, and the previous one while its overlap lasts.
    pub fn accepted_postback_secrets(&self, brand: BrandId, now_ms: u64) -> Vec<SecretString> {
        let rotation = self.rotation(brand);
        let current = rotation.map_or(0, |r| r.generation);
        let mut out: Vec<SecretString> = self.derive_postback(brand, current).into_iter().collect();
        if let Some(r) = rotation.filter(|r| now_ms < r.previous_valid_until_ms) {
            out.extend(self.derive_postback(brand, r.generation - 1));
        }
        out
    }

    /// Starts the brand's next postback secret generation; the previous one
    /// stays valid for `overlap_hours` (0..=[`MAX_POSTBACK_OVERLAP_HOURS`]).
    /// Returns the rotation and the new secret; None when postbacks are not
    /// configured.
    pub async fn rotate_postback(
        &self,
        brand: BrandId,
        overlap_hours: u32,
    ) -> Result<Option<(PostbackRotation, SecretString)>, StoreError> {
        if self.postback_key.is_none() {
            return Ok(None);
        }
        // Another instance may have rotated since the last refresh.
        self.reload().await?;
        let now_ms = now().1;
        let rotation = PostbackRotation {
            brand,
            generation: self.rotation(brand).map_or(0, |r| r.generation) + 1,
            rotated_at_ms: now_ms,
            previous_valid_until_ms: now_ms
                + u64::from(overlap_hours.min(MAX_POSTBACK_OVERLAP_HOURS)) * 3_600_000,
        };
        self.store.save_postback_rotation(&rotation).await?;
        self.rotations
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(brand, rotation);
        Ok(self
            .derive_postback(brand, rotation.generation)
            .map(|s| (rotation, s)))
    }

    /// The brand's latest rotation, if it was ever rotated.
    pub fn rotation(&self, brand: BrandId) -> Option<PostbackRotation> {
        self.rotations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&brand)
            .copied()
    }

    /// HMAC-SHA256(postback key, brand id, and `:<generation>` from the
    /// first rotation on), hex.
    fn derive_postback(&self, brand: BrandId, generation: u32) -> Option<SecretString> {
        let master = self.postback_key.as_ref()?;
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(master.expose_secret().as_bytes()).ok()?;
        mac.update(b"clickstitch-postback-v1:");
        mac.update(brand.to_string().as_bytes());
        if generation > 0 {
            mac.update(format!(":{generation}").as_bytes());
        }
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
    fn each_role_grants_reads_and_only_its_own_writes() {
        use Permission::*;
        let grants = |r: Role| [Read, Finance, Risk, Admin].map(|p| r.grants(p));
        assert_eq!(grants(Role::Admin), [true, true, true, true]);
        assert_eq!(grants(Role::Finance), [true, true, false, false]);
        assert_eq!(grants(Role::RiskReviewer), [true, false, true, false]);
        assert_eq!(grants(Role::ReadOnly), [true, false, false, false]);
        for r in [
            Role::Admin,
            Role::Finance,
            Role::RiskReviewer,
            Role::ReadOnly,
        ] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn owners_are_printable_and_bounded() {
        assert_eq!(
            Owner::parse("  ana@example.com ").unwrap().as_str(),
            "ana@example.com"
        );
        assert!(Owner::parse("").is_none());
        assert!(Owner::parse("a\nb").is_none());
        assert!(Owner::parse(&"x".repeat(MAX_OWNER_BYTES + 1)).is_none());
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
