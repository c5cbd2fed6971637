//! Group commit of click batches into ClickHouse.
//!
//! Request handlers hand their validated rows to [`ClickWriter::write`] and
//! wait. One background task gathers rows from many requests until
//! `max_rows` are pending or `max_delay` has passed since the first of them,
//! then writes them as one RowBinary `INSERT` per table, and only when
//! ClickHouse has answered 200 for all of them tells every waiting request
//! "durable". A failure is reported to every request of the group, so
//! nothing is acknowledged that is not stored. Up to `max_in_flight` groups
//! are written concurrently; beyond that the channel fills and callers wait
//! (backpressure). Dropping every [`ClickWriter`] drains and flushes what is
//! pending, which is how shutdown keeps what it has accepted.
//!
//! Brand events are written through an [`EventSink`]: straight through a
//! [`ClickWriter`], or through the local [`journal`](super::journal) (durable
//! once fsynced there, shipped to ClickHouse by a [`ClickWriter`] later).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::fraud::FraudScoreRow;
use super::journal::{Journal, JournalConfig, JournalError, Journaled, PipelineConfig};
use super::rows::{AttributionRow, ClickRow, GeoBlockRow, PlayerEventRow, PlayerRow};
use super::{retry, Store, StoreError};

/// Batching limits.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Flush once this many rows are pending.
    pub max_rows: usize,
    /// Flush at the latest this long after the first pending row arrived.
    pub max_delay: Duration,
    /// Concurrent INSERT groups.
    pub max_in_flight: usize,
    /// Attempts per group before the error is reported (1 = no retry).
    pub attempts: u32,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_rows: 100_000,
            max_delay: Duration::from_millis(50),
            max_in_flight: 2,
            attempts: 3,
        }
    }
}

/// Rows of one request (also the record of the event journal, as JSON).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WriteBatch {
    /// Rows for `clicks`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clicks: Vec<ClickRow>,
    /// Rows for `geo_blocked_clicks`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub geo_blocks: Vec<GeoBlockRow>,
    /// Rows for `player_events`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<PlayerEventRow>,
    /// Rows for `players`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub players: Vec<PlayerRow>,
    /// Rows for `attributions`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributions: Vec<AttributionRow>,
    /// Rows for `fraud_scores`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fraud_scores: Vec<FraudScoreRow>,
}

impl WriteBatch {
    fn len(&self) -> usize {
        self.clicks.len()
            + self.geo_blocks.len()
            + self.events.len()
            + self.players.len()
            + self.attributions.len()
            + self.fraud_scores.len()
    }

    /// All rows of `batches` in one batch.
    fn merged(batches: Vec<WriteBatch>) -> WriteBatch {
        let mut all = WriteBatch::default();
        for b in batches {
            all.clicks.extend(b.clicks);
            all.geo_blocks.extend(b.geo_blocks);
            all.events.extend(b.events);
            all.players.extend(b.players);
            all.attributions.extend(b.attributions);
            all.fraud_scores.extend(b.fraud_scores);
        }
        all
    }
}

struct Pending {
    batch: WriteBatch,
    ack: oneshot::Sender<Result<(), Arc<StoreError>>>,
}

/// Handle to the writer task; cheap to clone.
#[derive(Debug, Clone)]
pub struct ClickWriter {
    tx: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("rows", &self.batch.len())
            .finish()
    }
}

/// Completes when the writer has flushed everything and stopped.
#[derive(Debug)]
pub struct WriterTask {
    handle: tokio::task::JoinHandle<()>,
    drain: Drainer,
}

/// Tells the writer to stop waiting for fuller groups (shutdown has begun).
#[derive(Debug, Clone)]
pub struct Drainer(Arc<watch::Sender<bool>>);

impl Drainer {
    /// From now on every group is flushed as soon as it is gathered.
    pub fn drain_now(&self) {
        self.0.send_replace(true);
    }
}

impl WriterTask {
    /// A handle to switch the writer to drain mode.
    pub fn drainer(&self) -> Drainer {
        self.drain.clone()
    }

    /// Waits for the final flush (all [`ClickWriter`]s must be dropped).
    pub async fn finished(self) {
        if let Err(e) = self.handle.await {
            tracing::error!(error = %e, "click writer task failed");
        }
    }
}

impl ClickWriter {
    /// Starts the writer task.
    pub fn spawn(store: Store, config: WriterConfig) -> (ClickWriter, WriterTask) {
        let (tx, rx) = mpsc::channel(1024);
        let (drain_tx, drain_rx) = watch::channel(false);
        let handle = tokio::spawn(run(store, config, rx, drain_rx));
        let task = WriterTask {
            handle,
            drain: Drainer(Arc::new(drain_tx)),
        };
        (ClickWriter { tx }, task)
    }

    /// Writes the rows; returns once they are durable in ClickHouse.
    pub async fn write(&self, batch: WriteBatch) -> Result<(), Arc<StoreError>> {
        if batch.len() == 0 {
            return Ok(());
        }
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Pending { batch, ack })
            .await
            .map_err(|_| Arc::new(StoreError::ShutDown))?;
        done.await.map_err(|_| Arc::new(StoreError::ShutDown))?
    }
}

/// Proof that rows written through an [`EventSink`] are durable, and a way
/// to wait until ClickHouse has them ([`EventSink::in_clickhouse`]).
/// Ordered: a later write has a later receipt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Receipt(u64);

/// Where brand events are written.
#[derive(Debug, Clone)]
pub enum EventSink {
    /// Straight into ClickHouse: a write returns once ClickHouse has the
    /// rows.
    Direct(ClickWriter),
    /// Through the local journal: a write returns once the rows are
    /// fsynced there; they reach ClickHouse in the background.
    Journaled(Journaled<WriteBatch>),
}

/// How to set up a journaled [`EventSink`].
#[derive(Debug, Clone)]
pub struct JournalSetup {
    /// The journal directory (created if missing).
    pub dir: PathBuf,
    /// Segment and append limits.
    pub journal: JournalConfig,
    /// Backlog, shipping and waiting limits.
    pub pipeline: PipelineConfig,
    /// The writer that ships journaled rows to ClickHouse.
    pub shipping: WriterConfig,
}

/// The storage error a journal failure means to callers: the journal being
/// full, behind or failing is "try again later" (503).
fn journal_store_error(e: JournalError) -> StoreError {
    match e {
        JournalError::Closed => StoreError::ShutDown,
        JournalError::Group(shared) => match Arc::try_unwrap(shared) {
            Ok(e) => journal_store_error(e),
            Err(shared) => StoreError::Unavailable(format!("event journal: {shared}")),
        },
        e @ (JournalError::TooLarge { .. } | JournalError::Encoding(_)) => {
            StoreError::Rejected(format!("event journal: {e}"))
        }
        e => StoreError::Unavailable(format!("event journal: {e}")),
    }
}

impl EventSink {
    /// Opens the journal in `setup.dir` (refusing a corrupt one, see
    /// [`Journal::open`]) and starts shipping it — first whatever an earlier
    /// run left in it — to ClickHouse. Use [`EventSink::replay`] to wait for
    /// the leftovers.
    pub async fn spawn_journaled(
        store: Store,
        setup: JournalSetup,
    ) -> Result<(EventSink, WriterTask), JournalError> {
        let JournalSetup {
            dir,
            journal,
            pipeline,
            shipping,
        } = setup;
        let open_dir = dir.clone();
        let journal = tokio::task::spawn_blocking(move || Journal::open(&open_dir, journal))
            .await
            .map_err(|e| JournalError::Io {
                path: dir,
                source: std::io::Error::other(e.to_string()),
            })??;
        let (writer, writer_task) = ClickWriter::spawn(store, shipping);
        let (drain_tx, drain_rx) = watch::channel(false);
        let ship = move |batches: Vec<WriteBatch>| {
            let writer = writer.clone();
            async move {
                writer
                    .write(WriteBatch::merged(batches))
                    .await
                    .map_err(StoreError::from_shared)
            }
        };
        let (journaled, journal_task) = Journaled::spawn(journal, pipeline, drain_rx, ship)?;
        // The shipping writer stops once the shipper (holding its handle)
        // has.
        let handle = tokio::spawn(async move {
            journal_task.finished().await;
            writer_task.finished().await;
        });
        let task = WriterTask {
            handle,
            drain: Drainer(Arc::new(drain_tx)),
        };
        Ok((EventSink::Journaled(journaled), task))
    }

    /// Writes the rows; returns once they are durable (in ClickHouse, or in
    /// the journal).
    pub async fn write(&self, batch: WriteBatch) -> Result<Receipt, Arc<StoreError>> {
        match self {
            EventSink::Direct(writer) => writer.write(batch).await.map(|()| Receipt(0)),
            EventSink::Journaled(_) if batch.len() == 0 => Ok(Receipt(0)),
            EventSink::Journaled(journal) => journal
                .append(&batch)
                .await
                .map(Receipt)
                .map_err(|e| Arc::new(journal_store_error(e))),
        }
    }

    /// Every write whose receipt is at most this one is in ClickHouse.
    pub fn in_clickhouse_up_to(&self) -> Receipt {
        match self {
            EventSink::Direct(_) => Receipt(u64::MAX),
            EventSink::Journaled(journal) => Receipt(journal.shipped()),
        }
    }

    /// Waits (at most the journal's wait timeout) until the rows of
    /// `receipt` are in ClickHouse.
    pub async fn in_clickhouse(&self, receipt: Receipt) -> Result<(), StoreError> {
        match self {
            EventSink::Direct(_) => Ok(()),
            EventSink::Journaled(journal) => journal
                .wait_shipped(receipt.0)
                .await
                .map_err(journal_store_error),
        }
    }

    /// Waits until every write acknowledged so far is in ClickHouse.
    pub async fn all_in_clickhouse(&self) -> Result<(), StoreError> {
        match self {
            EventSink::Direct(_) => Ok(()),
            EventSink::Journaled(journal) => journal
                .wait_all_shipped()
                .await
                .map_err(journal_store_error),
        }
    }

    /// Waits until what the journal held at open is in ClickHouse (see
    /// [`Journaled::replay`]); at once for a direct sink.
    pub async fn replay(&self, stall: Duration) -> Result<(), JournalError> {
        match self {
            EventSink::Direct(_) => Ok(()),
            EventSink::Journaled(journal) => journal.replay(stall).await,
        }
    }
}

async fn run(
    store: Store,
    config: WriterConfig,
    mut rx: mpsc::Receiver<Pending>,
    mut drain: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let mut in_flight = JoinSet::new();
    while let Some(first) = rx.recv().await {
        let deadline = Instant::now() + config.max_delay;
        let mut rows = first.batch.len();
        let mut group = vec![first];
        while rows < config.max_rows && !*drain.borrow() {
            tokio::select! {
                _ = drain.changed() => break,
                next = rx.recv() => match next {
                    Some(p) => {
                        rows += p.batch.len();
                        group.push(p);
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        // Reap finished groups so the set does not grow.
        while in_flight.try_join_next().is_some() {}
        // Wait for a free INSERT slot, and keep gathering meanwhile: under
        // load, requests that arrive while INSERTs run join this group
        // instead of each waiting for a slot of its own.
        let permit = loop {
            if let Ok(p) = Arc::clone(&permits).try_acquire_owned() {
                break Some(p);
            }
            if rows >= config.max_rows {
                break Arc::clone(&permits).acquire_owned().await.ok();
            }
            tokio::select! {
                p = Arc::clone(&permits).acquire_owned() => break p.ok(),
                next = rx.recv() => match next {
                    Some(p) => {
                        rows += p.batch.len();
                        group.push(p);
                    }
                    None => break Arc::clone(&permits).acquire_owned().await.ok(),
                },
            }
        };
        let Some(permit) = permit else {
            break;
        };
        let store = store.clone();
        let attempts = config.attempts.max(1);
        in_flight.spawn(async move {
            let result = write_group(&store, &group, attempts).await;
            let result = result.map_err(Arc::new);
            if let Err(e) = &result {
                tracing::warn!(error = %e, rows, requests = group.len(), "click group not stored");
            } else {
                tracing::debug!(rows, requests = group.len(), "click group stored");
            }
            for p in group {
                let _ = p.ack.send(result.clone());
            }
            drop(permit);
        });
    }
    while in_flight.join_next().await.is_some() {}
}

async fn write_group(store: &Store, group: &[Pending], attempts: u32) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        match insert_group(store, group).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retryable() && attempt + 1 < attempts => {
                tokio::time::sleep(retry::backoff(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn insert_group(store: &Store, group: &[Pending]) -> Result<(), StoreError> {
    // Collect first: iterator adaptors must not live across an await.
    fn rows<'a, R>(group: &'a [Pending], pick: fn(&'a WriteBatch) -> &'a Vec<R>) -> Vec<&'a R> {
        group.iter().flat_map(|p| pick(&p.batch)).collect()
    }
    // One INSERT per table, all at once; the group is acknowledged only
    // when every one of them has succeeded.
    let (clicks, blocks, players, attributions, events, scores) = (
        rows(group, |b| &b.clicks),
        rows(group, |b| &b.geo_blocks),
        rows(group, |b| &b.players),
        rows(group, |b| &b.attributions),
        rows(group, |b| &b.events),
        rows(group, |b| &b.fraud_scores),
    );
    tokio::try_join!(
        insert_rows(store, "clicks", &clicks),
        insert_rows(store, "geo_blocked_clicks", &blocks),
        insert_rows(store, "players", &players),
        insert_rows(store, "attributions", &attributions),
        insert_rows(store, "player_events", &events),
        insert_rows(store, "fraud_scores", &scores),
    )?;
    Ok(())
}

/// One INSERT of all `rows` into `table` (nothing when there are none).
async fn insert_rows<R>(store: &Store, table: &str, rows: &[&R]) -> Result<(), StoreError>
where
    R: clickhouse::RowOwned + clickhouse::RowWrite,
{
    if rows.is_empty() {
        return Ok(());
    }
    let timeout = Some(store.timeout());
    let mut insert = store
        .client()
        .insert::<R>(table)
        .await?
        .with_timeouts(timeout, timeout);
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await?;
    Ok(())
}
