//! Conversions: taking a brand's events, exactly once, and stitching
//! registrations to clicks.
//!
//! Owns the submission protocol: an event id is processed once per brand; a
//! replay with the same canonical payload returns the first answer, a replay
//! with a different payload is a conflict (409). Requests for the same event
//! id are serialised inside this process (sharded locks); across processes
//! the durable `player_events` row decides. An answer is given only after the
//! event (and, for registrations, the player and the attribution) is durable:
//! in ClickHouse, or — with the event journal ([`EventSink::Journaled`]) —
//! fsynced in the local journal, on its way to ClickHouse.
//!
//! With the journal, ClickHouse lags the answers a little. Reads of
//! ClickHouse made here about a player or an event id (stored-event lookup,
//! the attribution a KYC decision changes, "first deposit?") first wait
//! until this instance's earlier rows for that player or event id are in
//! ClickHouse; escalations (which read other players' scores) wait for
//! everything acknowledged. Other instances and other readers of ClickHouse
//! see events once they are shipped (see [`crate::store::journal`]).
//!
//! Registrations are stitched here: the IO (finding the reported clicks and
//! the player's other clicks by device fingerprint) happens here, the
//! decision in [`crate::attribution`]. Must not compute commissions (the
//! commission job reads the stored events).

pub mod stitching;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex as StdMutex};

use serde_json::{json, Value};
use tokio::sync::Mutex;

use clickstitch_shared::BrandId;

use crate::catalog::Catalog;
use crate::commission::{Month, NgrFormula, Timestamp};
use crate::events::{BrandEvent, EventKind};
use crate::money::Currency;
use crate::services::conversions::stitching::Stitcher;
use crate::services::fraud::quarantine::Quarantine;
use crate::store::rows::{PlayerEventRow, PlayerRow, StoredEventRow};
use crate::store::writer::{EventSink, Receipt, WriteBatch};
use crate::store::{Lookups, StoreError};
use crate::support::bounded::BoundedMap;
use crate::support::clock::now_ms;
use crate::support::presence::PresenceFilter;

/// Lock shards for in-flight event ids.
const SHARDS: usize = 64;
/// Recently answered events kept in memory for fast replays.
const RECENT_CAPACITY: usize = 100_000;
/// Players whose wallet currency is kept in memory.
const WALLET_CAPACITY: usize = 500_000;
/// How long a brand's NGR formula is trusted without reading it again.
const FORMULA_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a submission failed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The event id was used before with a different payload.
    #[error("event id {0} was already used with a different payload")]
    Conflict(String),
    /// Storage failed (nothing was acknowledged).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event contradicts what is stored about the player (e.g. a
    /// currency other than the player's wallet): nothing was stored.
    #[error("the event contradicts what is stored about the player")]
    Invalid(Vec<crate::error::Problem>),
}

/// The answer to a submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    /// True when this is a replay of an event already processed.
    pub replayed: bool,
    /// The answer body (identical for the first submission and replays).
    pub response: Value,
}

/// Journal receipts of this instance's writes not yet known to be in
/// ClickHouse, by hashed player and hashed event id (a collision only costs
/// a wait). Entries already shipped are pruned as the map grows; the
/// journal's backlog bound bounds it.
#[derive(Debug, Default)]
struct Unshipped {
    receipts: HashMap<u64, Receipt>,
    prune_at: usize,
}

fn key_hash(kind: &str, brand: BrandId, id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (kind, brand, id).hash(&mut h);
    h.finish()
}

/// The conversion service.
#[derive(Debug)]
pub struct Conversions {
    lookups: Lookups,
    sink: EventSink,
    unshipped: StdMutex<Unshipped>,
    stitcher: Stitcher,
    quarantine: Arc<Quarantine>,
    locks: Vec<Mutex<()>>,
    recent: StdMutex<BoundedMap<(BrandId, String), StoredEventRow>>,
    /// Wallet currencies known to this process, by (brand, brand player).
    wallets: StdMutex<BoundedMap<(BrandId, String), Currency>>,
    /// Brands' NGR formulas as read at most `FORMULA_TTL` ago.
    formulas: StdMutex<HashMap<BrandId, (std::time::Instant, Option<NgrFormula>)>>,
    /// Every event id stored (warmed at startup, fed after each write);
    /// trusted to prove "new" only when `authoritative`.
    seen: PresenceFilter,
    authoritative: bool,
}

impl Conversions {
    /// A service writing through `sink` (configured for low latency).
    /// `filter_capacity` sizes the event-id filter; `authoritative` says
    /// whether this instance sees every event (then a filter miss proves
    /// an event id new without a ClickHouse lookup).
    pub fn new(
        lookups: Lookups,
        sink: EventSink,
        stitcher: Stitcher,
        quarantine: Arc<Quarantine>,
        filter_capacity: usize,
        authoritative: bool,
    ) -> Self {
        Self {
            lookups,
            sink,
            unshipped: StdMutex::new(Unshipped::default()),
            stitcher,
            quarantine,
            locks: (0..SHARDS).map(|_| Mutex::new(())).collect(),
            recent: StdMutex::new(BoundedMap::new(RECENT_CAPACITY)),
            wallets: StdMutex::new(BoundedMap::new(WALLET_CAPACITY)),
            formulas: StdMutex::new(HashMap::new()),
            seen: PresenceFilter::with_capacity(filter_capacity),
            authoritative,
        }
    }

    /// Records an event id stored earlier (warm-up at startup).
    pub fn remember_stored(&self, brand: BrandId, event_id: &str) {
        self.seen.insert(&(brand, event_id));
    }

    /// Whether the event id may already be stored (so ClickHouse must be
    /// asked).
    fn maybe_stored(&self, brand: BrandId, event_id: &str) -> bool {
        !self.authoritative || self.seen.contains(&(brand, event_id))
    }

    /// The stitcher (for reading attributions).
    pub fn stitcher(&self) -> &Stitcher {
        &self.stitcher
    }

    /// The latest receipt of this instance's writes for the event's player
    /// or event id that may not be in ClickHouse yet.
    fn unshipped_receipt(&self, event: &BrandEvent) -> Option<Receipt> {
        let shipped = self.sink.in_clickhouse_up_to();
        let unshipped = self.unshipped.lock().unwrap_or_else(|p| p.into_inner());
        if unshipped.receipts.is_empty() {
            return None;
        }
        let keys = [
            key_hash("player", event.brand_id, event.brand_player_id.as_str()),
            key_hash("event", event.brand_id, event.event_id.as_str()),
        ];
        keys.iter()
            .filter_map(|k| unshipped.receipts.get(k).copied())
            .filter(|r| *r > shipped)
            .max()
    }

    /// Notes a write that may not be in ClickHouse yet.
    fn note_unshipped(&self, event: &BrandEvent, receipt: Receipt) {
        let shipped = self.sink.in_clickhouse_up_to();
        if receipt <= shipped {
            return;
        }
        let mut unshipped = self.unshipped.lock().unwrap_or_else(|p| p.into_inner());
        for key in [
            key_hash("player", event.brand_id, event.brand_player_id.as_str()),
            key_hash("event", event.brand_id, event.event_id.as_str()),
        ] {
            unshipped.receipts.insert(key, receipt);
        }
        if unshipped.receipts.len() >= unshipped.prune_at {
            unshipped.receipts.retain(|_, r| *r > shipped);
            unshipped.prune_at = (unshipped.receipts.len() * 2).max(4096);
        }
    }

    /// The player's wallet currency: the currency of their earliest stored
    /// money event (`None` before the first one).
    async fn wallet(&self, event: &BrandEvent) -> Result<Option<Currency>, StoreError> {
        let key = (event.brand_id, event.brand_player_id.as_str().to_owned());
        let cached = self
            .wallets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied();
        if cached.is_some() {
            return Ok(cached);
        }
        let found = self.lookups.wallets.get(key.clone()).await?;
        if let Some(c) = found {
            self.wallets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, c);
        }
        Ok(found)
    }

    /// Refuses a money event in another currency than the player's wallet
    /// (the commission engine cannot add currencies of one player).
    async fn check_wallet(&self, event: &BrandEvent) -> Result<(), SubmitError> {
        let Some(currency) = event.kind.currency() else {
            return Ok(());
        };
        match self.wallet(event).await? {
            Some(wallet) if wallet != currency => {
                Err(SubmitError::Invalid(vec![crate::error::Problem::new(
                    "currency",
                    format!(
                        "player {} has a {wallet} wallet at this brand (the currency of their \
                         first money event); amounts must be in {wallet}, got {currency}",
                        event.brand_player_id.as_str()
                    ),
                )]))
            }
            _ => Ok(()),
        }
    }

    /// A chargeback that names its deposit (`deposit_event_id`) must name a
    /// stored deposit of the same brand and player.
    async fn check_chargeback(&self, event: &BrandEvent) -> Result<(), SubmitError> {
        let EventKind::Chargeback {
            deposit_event_id: Some(deposit),
            ..
        } = &event.kind
        else {
            return Ok(());
        };
        let invalid = |m: String| {
            SubmitError::Invalid(vec![crate::error::Problem::new("deposit_event_id", m)])
        };
        let meta = self
            .lookups
            .store
            .find_event_meta(event.brand_id.as_uuid(), deposit.as_str())
            .await?
            .ok_or_else(|| {
                invalid(format!(
                    "no deposit {} of this brand is stored: send the deposit first",
                    deposit.as_str()
                ))
            })?;
        if meta.event_type != "deposit" {
            return Err(invalid(format!(
                "event {} is a {}, not a deposit",
                deposit.as_str(),
                meta.event_type
            )));
        }
        if meta.brand_player_id != event.brand_player_id.as_str() {
            return Err(invalid(format!(
                "deposit {} belongs to another player",
                deposit.as_str()
            )));
        }
        Ok(())
    }

    /// A void or correction must name an earlier event of the same player
    /// (a correction: of the same type) that is not a registration or a
    /// void and was not taken out before. The row to store, if any.
    async fn check_repair(
        &self,
        event: &BrandEvent,
    ) -> Result<Option<crate::store::voids::VoidRow>, SubmitError> {
        let Some(original) = event.takes_out() else {
            return Ok(None);
        };
        let (field, kind, reason) = match &event.kind {
            EventKind::Void { reason, .. } => ("voids_event_id", 1, reason.clone()),
            _ => ("corrects_event_id", 2, String::new()),
        };
        let invalid = |m: String| SubmitError::Invalid(vec![crate::error::Problem::new(field, m)]);
        let store = &self.lookups.store;
        let brand = event.brand_id.as_uuid();
        let meta = store
            .find_event_meta(brand, original.as_str())
            .await?
            .ok_or_else(|| invalid(format!("no event {} of this brand", original.as_str())))?;
        if meta.brand_player_id != event.brand_player_id.as_str() {
            return Err(invalid(format!(
                "event {} belongs to another player",
                original.as_str()
            )));
        }
        match (meta.event_type.as_str(), &event.kind) {
            ("registration" | "void", _) => {
                return Err(invalid(format!(
                    "a {} cannot be voided or corrected",
                    meta.event_type
                )))
            }
            (_, EventKind::Void { .. }) => {}
            (t, k) if t != k.type_name() => {
                return Err(invalid(format!(
                    "event {} is a {t}: its correction must be a {t} too",
                    original.as_str()
                )))
            }
            _ => {}
        }
        match store.find_void(brand, original.as_str()).await? {
            Some(by) if by != event.event_id.as_str() => Err(invalid(format!(
                "event {} was already taken out by {by}: void or correct {by} instead",
                original.as_str()
            ))),
            _ => {
                let received_ms = now_ms();
                Ok(Some(crate::store::voids::VoidRow {
                    brand_id: brand,
                    voided_event_id: original.as_str().to_owned(),
                    by_event_id: event.event_id.as_str().to_owned(),
                    kind,
                    brand_player_id: event.brand_player_id.as_str().to_owned(),
                    voided_at: crate::support::clock::secs(received_ms),
                    voided_at_ms: received_ms,
                    reason,
                }))
            }
        }
    }

    /// A money event dated in a month that the brand's NGR formula does not
    /// cover (the brand has a formula, but its first version starts later)
    /// is refused: its NGR could never be computed. A brand without any
    /// formula (CPA only) is not checked.
    async fn check_formula_month(&self, event: &BrandEvent) -> Result<(), SubmitError> {
        if event.kind.currency().is_none() {
            return Ok(());
        }
        let cached = self
            .formulas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&event.brand_id)
            .filter(|(at, _)| at.elapsed() < FORMULA_TTL)
            .map(|(_, f)| f.clone());
        let formula = match cached {
            Some(f) => f,
            None => {
                let f = self
                    .lookups
                    .store
                    .load_formula(event.brand_id)
                    .await
                    .map_err(|e| match e {
                        crate::store::ledger::LedgerStoreError::Store(s) => SubmitError::Store(s),
                        other => SubmitError::Store(StoreError::Rejected(other.to_string())),
                    })?;
                self.formulas
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(event.brand_id, (std::time::Instant::now(), f.clone()));
                f
            }
        };
        let month: Month = Timestamp::from_unix_ms(event.occurred_at_ms).month();
        match formula {
            Some(f) if f.version_at(month).is_none() => {
                Err(SubmitError::Invalid(vec![crate::error::Problem::new(
                    "occurred_at",
                    format!(
                        "the brand's NGR formula starts after {month}: an amount in {month} could \
                         never count (configure a formula version for it, or correct the date)"
                    ),
                )]))
            }
            _ => Ok(()),
        }
    }

    fn shard(&self, brand: BrandId, event_id: &str) -> &Mutex<()> {
        let mut h = DefaultHasher::new();
        (brand, event_id).hash(&mut h);
        &self.locks[(h.finish() as usize) % SHARDS]
    }

    fn replay(
        &self,
        event: &BrandEvent,
        stored: &StoredEventRow,
    ) -> Result<Submitted, SubmitError> {
        if stored.payload_sha256 != event.payload_sha256 {
            return Err(SubmitError::Conflict(event.event_id.as_str().to_owned()));
        }
        let response = serde_json::from_str(&stored.response).unwrap_or(Value::Null);
        Ok(Submitted {
            replayed: true,
            response,
        })
    }

    /// Processes an event exactly once.
    pub async fn submit(
        &self,
        catalog: &Catalog,
        event: BrandEvent,
    ) -> Result<Submitted, SubmitError> {
        let key = (event.brand_id, event.event_id.as_str().to_owned());
        let _guard = self
            .shard(event.brand_id, event.event_id.as_str())
            .lock()
            .await;
        let cached = self
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(stored) = cached {
            return self.replay(&event, &stored);
        }
        // ClickHouse is read below about this player and event id: it must
        // have what this instance acknowledged about them (journal).
        if let Some(receipt) = self.unshipped_receipt(&event) {
            self.sink.in_clickhouse(receipt).await?;
        }
        let received_ms = now_ms();
        // The stored-event lookup and the stitching lookups are independent:
        // run them together (a new event id is the common case).
        let stitching = async {
            match &event.kind {
                EventKind::Registration { .. } => self
                    .stitcher
                    .stitch(catalog, &event, received_ms)
                    .await
                    .map(Some),
                _ => Ok(None),
            }
        };
        let stored = async {
            if self.maybe_stored(event.brand_id, event.event_id.as_str()) {
                self.lookups.events.get(key.clone()).await
            } else {
                Ok(None)
            }
        };
        let (stored, stitched) = tokio::join!(stored, stitching);
        if let Some(stored) = stored? {
            self.recent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, stored.clone());
            return self.replay(&event, &stored);
        }
        let void = self.check_repair(&event).await?;
        self.check_chargeback(&event).await?;
        self.check_wallet(&event).await?;
        self.check_formula_month(&event).await?;
        if let Some(row) = &void {
            // Durable before the event: a crash in between leaves the
            // original taken out, and the brand's retry completes the void.
            self.lookups.store.save_void(row).await?;
            self.wallets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&(event.brand_id, event.brand_player_id.as_str().to_owned()));
        }
        let received_at = u32::try_from(received_ms / 1000).unwrap_or(u32::MAX);
        let mut batch = WriteBatch::default();
        let mut response = json!({
            "event_id": event.event_id,
            "type": event.kind.type_name(),
            "player_id": event.brand_player_id,
            "status": "accepted",
        });
        let mut scored = None;
        match &event.kind {
            EventKind::Registration { .. } => {
                let attribution = stitched?
                    .ok_or_else(|| StoreError::Rejected("registration was not stitched".into()))?;
                response["attribution"] = attribution.to_json();
                scored = Some(self.quarantine.score_registration(
                    &event,
                    attribution.last_click.as_ref(),
                    received_ms,
                ));
                batch.attributions.push(attribution.row);
                batch
                    .players
                    .push(PlayerRow::from_registration(&event, received_ms));
            }
            EventKind::Deposit { .. } => {
                scored = self
                    .quarantine
                    .score_first_deposit(&event, received_ms)
                    .await?;
            }
            EventKind::Kyc { status } => {
                if let Some(updated) = self
                    .stitcher
                    .apply_kyc(&event, *status, received_ms)
                    .await?
                {
                    response["attribution"] = updated.to_json();
                    batch.attributions.push(updated.row);
                }
            }
            _ => {}
        }
        if let Some((score, row)) = scored {
            response["fraud"] = json!({
                "score": score.value,
                "quarantined": score.quarantined,
                "policy_version": score.policy_version,
                "signals": score.hits,
                "scored_as": crate::services::fraud::quarantine::EntityKind::from_code(row.entity_kind)
                    .map(crate::services::fraud::quarantine::EntityKind::as_str),
            });
            if !score.escalations.is_empty() {
                // Earlier entities this one shows to be fraud too: stored
                // before this event is acknowledged.
                let by = event.event_id.as_str().to_owned();
                let escalations: Vec<_> = score
                    .escalations
                    .iter()
                    .map(|e| (e.clone(), by.clone()))
                    .collect();
                let skip = std::iter::once(by).collect();
                // Escalations read other players' stored scores.
                self.sink.all_in_clickhouse().await?;
                self.quarantine
                    .escalate(&escalations, &skip, received_ms)
                    .await?;
            }
            batch.fraud_scores.push(row);
        }
        let response_text = response.to_string();
        let remembered = batch.attributions.first().cloned();
        let fraud_rows = batch.fraud_scores.clone();
        batch.events.push(PlayerEventRow::from_event(
            &event,
            received_at,
            response_text.clone(),
        ));
        let receipt = self
            .sink
            .write(batch)
            .await
            .map_err(|e| SubmitError::Store(StoreError::from_shared(e)))?;
        self.note_unshipped(&event, receipt);
        if let Some(currency) = event.kind.currency() {
            let key = (event.brand_id, event.brand_player_id.as_str().to_owned());
            let mut wallets = self.wallets.lock().unwrap_or_else(|p| p.into_inner());
            if wallets.get(&key).is_none() {
                wallets.insert(key, currency);
            }
        }
        self.seen.insert(&(event.brand_id, event.event_id.as_str()));
        self.quarantine.hold(&fraud_rows);
        if let Some(row) = remembered {
            self.stitcher.remember(row);
        }
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                key,
                StoredEventRow {
                    payload_sha256: event.payload_sha256.clone(),
                    response: response_text,
                },
            );
        Ok(Submitted {
            replayed: false,
            response,
        })
    }
}
