//! A local write-ahead journal: records made durable on local disk first and
//! written to ClickHouse afterwards, in the background.
//!
//! Owns the on-disk format, `fsync`, replay and truncation. It stores opaque
//! records (any `Serialize + DeserializeOwned` item as JSON) and hands them
//! to a shipping function; it knows nothing about events or HTTP.
//!
//! # On disk
//!
//! The journal is a directory of segment files `journal-<start>.log`, where
//! `<start>` (20 decimal digits) is the journal position of the segment's
//! first byte: positions count bytes across all segments ever written, so a
//! segment begins exactly where the previous one ends, and a record's
//! position (its end) orders it among all others. A segment is a sequence
//! of records, each
//!
//! ```text
//! len: u32 LE | crc: u32 LE | payload: len bytes
//! ```
//!
//! where `crc` is the CRC-32C of the four `len` bytes followed by the
//! payload. Nothing else is stored (no index, no "shipped" marker); an
//! empty `journal.lock`, locked while a process has the journal open, keeps
//! a second process out.
//!
//! # Writing (group commit)
//!
//! [`Journaled::append`] encodes its item on the caller's task and queues
//! it. One dedicated thread takes everything queued (up to
//! [`JournalConfig::max_append_bytes`]), writes it with one `write`, calls
//! `fdatasync` and only then answers every caller of the group with the
//! record's position: acknowledged means durable. A failed write or sync
//! fails the whole group, cuts the segment back to its last durable record
//! and continues in a fresh segment; if even that fails, the journal refuses
//! every further write (until a restart). A new segment is started before an
//! append once the active one holds [`JournalConfig::segment_bytes`] or is
//! older than [`JournalConfig::segment_age`]; the directory is `fsync`ed
//! after a segment is created or deleted.
//!
//! # Shipping and truncation
//!
//! One task reads the durable records in order, at most every
//! [`PipelineConfig::ship_interval`] (at once for a caller waiting in
//! [`Journaled::wait_shipped`], and during shutdown), and passes them to the
//! shipping function in one call, retrying with backoff (up to 5 s between
//! attempts) for as long as it fails: ClickHouse down only makes the backlog
//! grow. Once a call succeeds, the records are "shipped" and every segment
//! that ends at or before that position is deleted (never the active one).
//! When the backlog (durable or queued, not shipped) would exceed
//! [`PipelineConfig::max_backlog_bytes`], `append` fails with
//! [`JournalError::BacklogFull`] instead of growing without bound.
//!
//! Shutdown ([`JournalTask::finished`], after the drain signal): whatever can
//! be shipped is; when shipping fails three times in a row during the drain,
//! the rest stays in the journal for the next start.
//!
//! # Replay
//!
//! [`Journal::open`] checks every record of every segment. A bad record
//! (short, implausible length or checksum mismatch) at the end of the last
//! segment, within the size of one append, is a torn write from a crash: it
//! was never acknowledged, so it is cut off (with a warning). A bad record
//! anywhere else, or segments that do not line up, refuse the open with an
//! error naming the file and byte offset; nothing is guessed. (The cost of
//! the rule: damage to the last append's bytes looks exactly like a torn
//! write and is cut off too.) Shipping then starts at the oldest segment, so
//! everything not known to be in ClickHouse — and records that already were,
//! up to one segment's worth — is written again: the shipping function must
//! be idempotent. [`Journaled::replay`] waits until everything found at open
//! is shipped.
//!
//! # Consistency
//!
//! Readers of what was shipped (ClickHouse queries) see a record up to one
//! `ship_interval` plus one INSERT after it was acknowledged, and later while
//! ClickHouse is unreachable. A caller that must read its own earlier
//! records from ClickHouse waits for them with [`Journaled::wait_shipped`]
//! (or [`Journaled::wait_all_shipped`]) first.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Instant;

use super::StoreError;

/// Bytes of a record header (`len` and `crc`).
pub const HEADER_BYTES: u64 = 8;

/// The file locked by the process using the journal.
const LOCK_FILE: &str = "journal.lock";

/// Failed shipping attempts tolerated during the shutdown drain.
const DRAIN_ATTEMPTS: u32 = 3;

/// Segment and append limits.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Start a new segment before an append once the active one holds this
    /// many bytes.
    pub segment_bytes: u64,
    /// ... or once the active one is this old and not empty, so that a quiet
    /// journal frees its space too.
    pub segment_age: Duration,
    /// Largest single append (one group commit, headers included). Bounds a
    /// record, and the tail that [`Journal::open`] may treat as torn.
    pub max_append_bytes: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            segment_age: Duration::from_secs(60),
            max_append_bytes: 8 << 20,
        }
    }
}

/// A journal failure.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file operation failed.
    #[error("journal I/O on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A segment holds a bad record that cannot be a torn write, or the
    /// segments do not line up.
    #[error("journal segment {} is corrupt at byte offset {offset}: {reason}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// One record (or one append) is larger than the journal takes.
    #[error("a journal append of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Bytes asked for.
        len: u64,
        /// The limit ([`JournalConfig::max_append_bytes`]).
        limit: u64,
    },
    /// Too much is journaled and not yet shipped.
    #[error("the journal backlog is full: {backlog} bytes not yet in ClickHouse (limit {limit})")]
    BacklogFull {
        /// Bytes journaled or queued and not shipped.
        backlog: u64,
        /// The limit.
        limit: u64,
    },
    /// An earlier write failure could not be cleaned up; no more writes
    /// until a restart.
    #[error("the journal refuses writes after a write failure it could not repair")]
    Broken,
    /// The journal thread has stopped.
    #[error("the journal is shut down")]
    Closed,
    /// A record could not be encoded or decoded.
    #[error("journal record encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    /// A record is not yet shipped after the wait allowed.
    #[error("journal position {position} is not yet in ClickHouse: {reason}")]
    Behind {
        /// The position waited for.
        position: u64,
        /// The last shipping failure, if any.
        reason: String,
    },
    /// Shipping failed in a way retrying will not fix (as seen by
    /// [`Journaled::replay`]).
    #[error("journaled records cannot be shipped: {0}")]
    Unshippable(String),
    /// The failure of a whole group commit, shared by its callers.
    #[error(transparent)]
    Group(Arc<JournalError>),
}

impl JournalError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
        move |source| JournalError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

// ---------------------------------------------------------------------------
// CRC-32C (Castagnoli), table-driven.

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0x82F6_3B78 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32C of the concatenation of `parts`.
pub fn crc32c(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for part in parts {
        for &b in *part {
            crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
        }
    }
    !crc
}

// ---------------------------------------------------------------------------
// Segments and records.

fn segment_path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("journal-{start:020}.log"))
}

fn segment_start(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("journal-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, JournalError> {
    let mut starts = Vec::new();
    for entry in fs::read_dir(dir).map_err(JournalError::io(dir))? {
        let entry = entry.map_err(JournalError::io(dir))?;
        if let Some(start) = entry.file_name().to_str().and_then(segment_start) {
            starts.push(start);
        }
    }
    starts.sort_unstable();
    Ok(starts)
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(JournalError::io(dir))
}

fn frame(payload: &[u8], out: &mut Vec<u8>) -> Result<u64, JournalError> {
    let len = u32::try_from(payload.len()).map_err(|_| JournalError::TooLarge {
        len: payload.len() as u64,
        limit: u64::from(u32::MAX),
    })?;
    let len_bytes = len.to_le_bytes();
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&crc32c(&[&len_bytes, payload]).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(HEADER_BYTES + u64::from(len))
}

enum RecordError {
    Invalid(String),
    Io(io::Error),
}

/// Reads one record into `payload`, with `remaining` bytes left in the
/// readable part of the segment; returns the record's size.
fn read_record(
    reader: &mut impl Read,
    remaining: u64,
    max_append: u64,
    payload: &mut Vec<u8>,
) -> Result<u64, RecordError> {
    if remaining < HEADER_BYTES {
        return Err(RecordError::Invalid(format!(
            "{remaining} bytes left, too few for a record header"
        )));
    }
    let mut header = [0u8; HEADER_BYTES as usize];
    reader.read_exact(&mut header).map_err(RecordError::Io)?;
    let len_bytes = [header[0], header[1], header[2], header[3]];
    let len = u64::from(u32::from_le_bytes(len_bytes));
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if HEADER_BYTES + len > max_append {
        return Err(RecordError::Invalid(format!(
            "implausible record length {len}"
        )));
    }
    if HEADER_BYTES + len > remaining {
        return Err(RecordError::Invalid(format!(
            "a record of {len} bytes runs past the end ({remaining} bytes left)"
        )));
    }
    payload.resize(len as usize, 0);
    reader.read_exact(payload).map_err(RecordError::Io)?;
    if crc32c(&[&len_bytes, payload]) != crc {
        return Err(RecordError::Invalid("checksum mismatch".into()));
    }
    Ok(HEADER_BYTES + len)
}

/// What a segment check found.
struct Scan {
    /// Bytes of good records from the start.
    valid: u64,
    /// Bytes after them (a torn tail; 0 when clean).
    torn: u64,
}

fn scan_segment(path: &Path, last: bool, max_append: u64) -> Result<Scan, JournalError> {
    let file = File::open(path).map_err(JournalError::io(path))?;
    let len = file.metadata().map_err(JournalError::io(path))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut payload = Vec::new();
    let mut offset = 0;
    while offset < len {
        match read_record(&mut reader, len - offset, max_append, &mut payload) {
            Ok(size) => offset += size,
            Err(RecordError::Io(e)) => return Err(JournalError::io(path)(e)),
            Err(RecordError::Invalid(reason)) => {
                let rest = len - offset;
                // Only the last append can be torn: the last segment, and
                // no more bytes than one append writes.
                if last && rest <= max_append {
                    return Ok(Scan {
                        valid: offset,
                        torn: rest,
                    });
                }
                return Err(JournalError::Corrupt {
                    path: path.to_owned(),
                    offset,
                    reason,
                });
            }
        }
    }
    Ok(Scan {
        valid: offset,
        torn: 0,
    })
}

/// The segment starts, oldest first (the last one is being appended to).
type Segments = Arc<Mutex<VecDeque<u64>>>;

fn lock(segments: &Segments) -> std::sync::MutexGuard<'_, VecDeque<u64>> {
    segments.lock().unwrap_or_else(|p| p.into_inner())
}

/// The writing end of a journal directory (one per directory and process).
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    config: JournalConfig,
    segments: Segments,
    active: File,
    active_start: u64,
    active_since: Instant,
    start: u64,
    end: u64,
    fresh_segment_due: bool,
    /// Held (locked) for as long as this journal is open.
    _lock: File,
    broken: bool,
}

impl Journal {
    /// Opens (creating it if needed) the journal in `dir`: checks every
    /// record, cuts off a torn tail, and starts a new segment for appends.
    /// Refuses a corrupt journal, naming the file and byte offset.
    pub fn open(dir: &Path, config: JournalConfig) -> Result<Journal, JournalError> {
        fs::create_dir_all(dir).map_err(JournalError::io(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(JournalError::io(&lock_path))?;
        if let Err(e) = lock_file.try_lock() {
            return Err(JournalError::Io {
                path: lock_path,
                source: io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("the journal is in use by another process ({e})"),
                ),
            });
        }
        let starts = list_segments(dir)?;
        let mut end = starts.first().copied().unwrap_or(0);
        for (i, &start) in starts.iter().enumerate() {
            let path = segment_path(dir, start);
            if start != end {
                return Err(JournalError::Corrupt {
                    path,
                    offset: 0,
                    reason: format!(
                        "the segment starts at journal position {start} but the previous one \
                         ends at {end}: a segment is missing or was cut short"
                    ),
                });
            }
            let last = i + 1 == starts.len();
            let scan = scan_segment(&path, last, config.max_append_bytes)?;
            if scan.torn > 0 {
                tracing::warn!(
                    file = %path.display(),
                    offset = scan.valid,
                    bytes = scan.torn,
                    "cutting off a torn journal tail (an append interrupted by a crash, never acknowledged)"
                );
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| {
                        f.set_len(scan.valid)?;
                        f.sync_all()
                    })
                    .map_err(JournalError::io(&path))?;
            }
            end = start + scan.valid;
        }
        let first = starts.first().copied().unwrap_or(end);
        let mut segments: VecDeque<u64> = starts.iter().copied().collect();
        // Append to an empty last segment, else to a new one.
        let active_start = end;
        let path = segment_path(dir, active_start);
        let active = if segments.back() == Some(&end) {
            OpenOptions::new().append(true).open(&path)
        } else {
            segments.push_back(end);
            OpenOptions::new().append(true).create_new(true).open(&path)
        }
        .map_err(JournalError::io(&path))?;
        sync_dir(dir)?;
        Ok(Journal {
            dir: dir.to_owned(),
            config,
            segments: Arc::new(Mutex::new(segments)),
            active,
            active_start,
            active_since: Instant::now(),
            start: first,
            end,
            fresh_segment_due: false,
            _lock: lock_file,
            broken: false,
        })
    }

    /// The position of the oldest record kept (where replay starts).
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The position after the last durable record.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The largest append, headers included.
    pub fn max_append_bytes(&self) -> u64 {
        self.config.max_append_bytes
    }

    /// A reader (and releaser) of this journal's segments, for another
    /// thread.
    pub fn reader(&self) -> Reader {
        Reader {
            dir: self.dir.clone(),
            segments: Arc::clone(&self.segments),
            max_append: self.config.max_append_bytes,
            current: None,
        }
    }

    /// Appends `records` with one write and one `fdatasync`; returns each
    /// record's position (its end). Nothing is durable when this fails.
    pub fn append(&mut self, records: &[&[u8]]) -> Result<Vec<u64>, JournalError> {
        if self.broken {
            return Err(JournalError::Broken);
        }
        let total: u64 = records.iter().map(|r| HEADER_BYTES + r.len() as u64).sum();
        if total > self.config.max_append_bytes {
            return Err(JournalError::TooLarge {
                len: total,
                limit: self.config.max_append_bytes,
            });
        }
        self.rotate_if_due()?;
        let mut buf = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        let mut ends = Vec::with_capacity(records.len());
        let mut end = self.end;
        for record in records {
            end += frame(record, &mut buf)?;
            ends.push(end);
        }
        let written = self
            .active
            .write_all(&buf)
            .and_then(|()| self.active.sync_data());
        match written {
            Ok(()) => {
                self.end = end;
                Ok(ends)
            }
            Err(e) => {
                let path = segment_path(&self.dir, self.active_start);
                self.repair();
                Err(JournalError::Io { path, source: e })
            }
        }
    }

    /// After a failed append: cuts the segment back to its last durable
    /// record and asks for a fresh segment; refuses further writes if that
    /// fails.
    fn repair(&mut self) {
        let keep = self.end - self.active_start;
        match self
            .active
            .set_len(keep)
            .and_then(|()| self.active.sync_all())
        {
            Ok(()) => self.fresh_segment_due = true,
            Err(e) => {
                tracing::error!(
                    error = %e,
                    dir = %self.dir.display(),
                    "cannot cut a failed journal append off; refusing further writes"
                );
                self.broken = true;
            }
        }
    }

    fn rotate_if_due(&mut self) -> Result<(), JournalError> {
        let len = self.end - self.active_start;
        if len == 0 {
            // Nothing durable in it: keep using it (cut back to empty).
            self.fresh_segment_due = false;
            return Ok(());
        }
        let due = self.fresh_segment_due
            || len >= self.config.segment_bytes
            || self.active_since.elapsed() >= self.config.segment_age;
        if !due {
            return Ok(());
        }
        let start = self.end;
        let path = segment_path(&self.dir, start);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(JournalError::io(&path))?;
        sync_dir(&self.dir)?;
        lock(&self.segments).push_back(start);
        self.active = file;
        self.active_start = start;
        self.active_since = Instant::now();
        self.fresh_segment_due = false;
        Ok(())
    }
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's position (its end).
    pub end: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

#[derive(Debug)]
struct Cursor {
    start: u64,
    reader: BufReader<File>,
}

/// Reads durable records and deletes shipped segments (from a thread other
/// than the writer's).
#[derive(Debug)]
pub struct Reader {
    dir: PathBuf,
    segments: Segments,
    max_append: u64,
    current: Option<Cursor>,
}

impl Reader {
    /// The records from position `from` (a record boundary) up to `to` (at
    /// most the durable end), stopping once `max_bytes` are read (at least
    /// one record when `from < to`).
    pub fn read(
        &mut self,
        from: u64,
        to: u64,
        max_bytes: u64,
    ) -> Result<Vec<Record>, JournalError> {
        let mut out = Vec::new();
        let mut pos = from;
        let mut bytes = 0;
        while pos < to && (out.is_empty() || bytes < max_bytes) {
            let (start, next) = {
                let segments = lock(&self.segments);
                let Some(i) = segments.iter().rposition(|&s| s <= pos) else {
                    return Err(JournalError::Corrupt {
                        path: self.dir.clone(),
                        offset: pos,
                        reason: "no segment holds this journal position".into(),
                    });
                };
                (segments[i], segments.get(i + 1).copied())
            };
            let path = segment_path(&self.dir, start);
            let limit = next.map_or(to, |n| n.min(to));
            if self.current.as_ref().is_none_or(|c| c.start != start) {
                let file = File::open(&path).map_err(JournalError::io(&path))?;
                self.current = Some(Cursor {
                    start,
                    reader: BufReader::with_capacity(1 << 20, file),
                });
            }
            let Some(cursor) = self.current.as_mut() else {
                continue;
            };
            // Re-position on every call: whatever the buffer holds beyond
            // the durable end may have been cut off since.
            cursor
                .reader
                .seek(SeekFrom::Start(pos - start))
                .map_err(JournalError::io(&path))?;
            while pos < limit && (out.is_empty() || bytes < max_bytes) {
                let mut payload = Vec::new();
                let size = read_record(
                    &mut cursor.reader,
                    limit - pos,
                    self.max_append,
                    &mut payload,
                )
                .map_err(|e| match e {
                    RecordError::Io(e) => JournalError::io(&path)(e),
                    RecordError::Invalid(reason) => JournalError::Corrupt {
                        path: path.clone(),
                        offset: pos - start,
                        reason,
                    },
                })?;
                pos += size;
                bytes += size;
                out.push(Record { end: pos, payload });
            }
        }
        Ok(out)
    }

    /// Deletes every segment that ends at or before position `upto`
    /// (never the active one); returns how many were deleted.
    pub fn release(&mut self, upto: u64) -> Result<usize, JournalError> {
        let mut deleted = 0;
        loop {
            let victim = {
                let segments = lock(&self.segments);
                match (segments.front(), segments.get(1)) {
                    (Some(&first), Some(&next)) if next <= upto => Some(first),
                    _ => None,
                }
            };
            let Some(start) = victim else {
                break;
            };
            if self.current.as_ref().is_some_and(|c| c.start == start) {
                self.current = None;
            }
            let path = segment_path(&self.dir, start);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(JournalError::io(&path)(e)),
            }
            // One at a time, in order: a crash never leaves a gap.
            sync_dir(&self.dir)?;
            lock(&self.segments).pop_front();
            deleted += 1;
        }
        Ok(deleted)
    }
}

// ---------------------------------------------------------------------------
// The pipeline: group commit, shipping, replay.

/// Backlog, shipping and waiting limits.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Appends fail with [`JournalError::BacklogFull`] once this many bytes
    /// are journaled (or queued) and not shipped.
    pub max_backlog_bytes: u64,
    /// Shipping runs at most this often (unless someone waits for it, or
    /// during shutdown): fewer, larger INSERTs.
    pub ship_interval: Duration,
    /// Bytes of records shipped in one call at most.
    pub ship_max_bytes: u64,
    /// How long [`Journaled::wait_shipped`] waits.
    pub wait_timeout: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_backlog_bytes: 1 << 30,
            ship_interval: Duration::from_millis(200),
            ship_max_bytes: 16 << 20,
            wait_timeout: Duration::from_secs(10),
        }
    }
}

struct Append {
    bytes: Vec<u8>,
    ack: oneshot::Sender<Result<u64, Arc<JournalError>>>,
}

#[derive(Debug, Clone)]
struct Failure {
    message: String,
    retryable: bool,
}

#[derive(Debug, Clone)]
struct Progress {
    shipped: u64,
    failure: Option<Failure>,
}

#[derive(Debug)]
struct Shared {
    /// Durable end (written by the journal thread before it acknowledges).
    committed: AtomicU64,
    /// Bytes queued for the journal thread, not yet durable.
    pending: AtomicU64,
    /// The durable end found by [`Journal::open`].
    recovered: u64,
    max_backlog: u64,
    max_append: u64,
    progress: watch::Sender<Progress>,
    hurry: Notify,
}

impl Shared {
    fn shipped(&self) -> u64 {
        self.progress.borrow().shipped
    }

    fn backlog(&self) -> u64 {
        (self.committed.load(Ordering::Acquire) + self.pending.load(Ordering::Acquire))
            .saturating_sub(self.shipped())
    }
}

/// Handle to a running journal: append items, wait for them to be shipped.
/// Cheap to clone; the journal thread stops once every handle is dropped.
pub struct Journaled<T> {
    tx: mpsc::Sender<Append>,
    shared: Arc<Shared>,
    wait_timeout: Duration,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Journaled<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            shared: Arc::clone(&self.shared),
            wait_timeout: self.wait_timeout,
            _items: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Journaled<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journaled")
            .field("shipped", &self.shared.shipped())
            .field("backlog", &self.shared.backlog())
            .finish_non_exhaustive()
    }
}

/// Completes when the journal has stopped: every handle dropped, what could
/// be shipped shipped.
#[derive(Debug)]
pub struct JournalTask {
    shipper: tokio::task::JoinHandle<()>,
    appender: oneshot::Receiver<()>,
}

impl JournalTask {
    /// Waits for the journal thread and the shipper to stop.
    pub async fn finished(self) {
        let _ = self.appender.await;
        if let Err(e) = self.shipper.await {
            tracing::error!(error = %e, "journal shipper failed");
        }
    }
}

impl<T> Journaled<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// Starts the journal thread and the shipper: everything in `journal`
    /// from its oldest segment on, and every item appended later, is passed
    /// to `ship` in order (retried until it succeeds). Shipping turns to
    /// drain mode when `drain` becomes true or every handle is dropped.
    pub fn spawn<F, Fut>(
        journal: Journal,
        config: PipelineConfig,
        drain: watch::Receiver<bool>,
        ship: F,
    ) -> Result<(Self, JournalTask), JournalError>
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), StoreError>> + Send + 'static,
    {
        let (progress, _) = watch::channel(Progress {
            shipped: journal.start(),
            failure: None,
        });
        let shared = Arc::new(Shared {
            committed: AtomicU64::new(journal.end()),
            pending: AtomicU64::new(0),
            recovered: journal.end(),
            max_backlog: config.max_backlog_bytes,
            max_append: journal.max_append_bytes(),
            progress,
            hurry: Notify::new(),
        });
        let reader = journal.reader();
        let (tx, rx) = mpsc::channel(4096);
        let (committed_tx, committed_rx) = watch::channel(journal.end());
        let (done_tx, done_rx) = oneshot::channel();
        let dir = journal.dir().to_owned();
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || {
                append_loop(journal, rx, &thread_shared, &committed_tx);
                drop(committed_tx);
                let _ = done_tx.send(());
            })
            .map_err(JournalError::io(&dir))?;
        let wait_timeout = config.wait_timeout;
        let shipper = tokio::spawn(ship_loop(
            reader,
            Arc::clone(&shared),
            committed_rx,
            drain,
            config,
            ship,
        ));
        Ok((
            Journaled {
                tx,
                shared,
                wait_timeout,
                _items: PhantomData,
            },
            JournalTask {
                shipper,
                appender: done_rx,
            },
        ))
    }

    /// Journals `item`; returns its position once it is durable (fsynced).
    pub async fn append(&self, item: &T) -> Result<u64, JournalError> {
        let bytes = serde_json::to_vec(item)?;
        let size = HEADER_BYTES + bytes.len() as u64;
        if size > self.shared.max_append {
            return Err(JournalError::TooLarge {
                len: size,
                limit: self.shared.max_append,
            });
        }
        let backlog = self.shared.backlog();
        if backlog + size > self.shared.max_backlog {
            return Err(JournalError::BacklogFull {
                backlog,
                limit: self.shared.max_backlog,
            });
        }
        self.shared.pending.fetch_add(size, Ordering::AcqRel);
        let (ack, done) = oneshot::channel();
        if self.tx.send(Append { bytes, ack }).await.is_err() {
            self.shared.pending.fetch_sub(size, Ordering::AcqRel);
            return Err(JournalError::Closed);
        }
        match done.await {
            Ok(Ok(position)) => Ok(position),
            Ok(Err(e)) => Err(JournalError::Group(e)),
            Err(_) => Err(JournalError::Closed),
        }
    }

    /// Everything up to this position is shipped.
    pub fn shipped(&self) -> u64 {
        self.shared.shipped()
    }

    /// Bytes journaled (or queued) and not yet shipped.
    pub fn backlog(&self) -> u64 {
        self.shared.backlog()
    }

    /// Waits (at most the configured `wait_timeout`, shipping at once)
    /// until everything up to `position` is shipped.
    pub async fn wait_shipped(&self, position: u64) -> Result<(), JournalError> {
        if self.shared.shipped() >= position {
            return Ok(());
        }
        self.shared.hurry.notify_one();
        let mut progress = self.shared.progress.subscribe();
        let waited = tokio::time::timeout(
            self.wait_timeout,
            progress.wait_for(|p| p.shipped >= position),
        )
        .await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(JournalError::Closed),
            Err(_) => Err(JournalError::Behind {
                position,
                reason: self.failure_text(),
            }),
        }
    }

    /// Waits until everything acknowledged before this call is shipped.
    pub async fn wait_all_shipped(&self) -> Result<(), JournalError> {
        let committed = self.shared.committed.load(Ordering::Acquire);
        self.wait_shipped(committed).await
    }

    /// Waits until everything found in the journal at open is shipped;
    /// fails when shipping makes no progress for `stall`, or fails in a way
    /// retrying will not fix.
    pub async fn replay(&self, stall: Duration) -> Result<(), JournalError> {
        let target = self.shared.recovered;
        let mut progress = self.shared.progress.subscribe();
        let mut last = self.shared.shipped();
        let mut deadline = Instant::now() + stall;
        loop {
            {
                let p = progress.borrow_and_update();
                if p.shipped >= target {
                    return Ok(());
                }
                if let Some(f) = p.failure.as_ref().filter(|f| !f.retryable) {
                    return Err(JournalError::Unshippable(f.message.clone()));
                }
                if p.shipped > last {
                    last = p.shipped;
                    deadline = Instant::now() + stall;
                }
            }
            match tokio::time::timeout_at(deadline, progress.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(JournalError::Closed),
                Err(_) => {
                    return Err(JournalError::Behind {
                        position: target,
                        reason: self.failure_text(),
                    })
                }
            }
        }
    }

    fn failure_text(&self) -> String {
        self.shared
            .progress
            .borrow()
            .failure
            .as_ref()
            .map_or_else(|| "shipping is slow".to_owned(), |f| f.message.clone())
    }
}

/// The journal thread: group commit.
fn append_loop(
    mut journal: Journal,
    mut rx: mpsc::Receiver<Append>,
    shared: &Shared,
    committed: &watch::Sender<u64>,
) {
    let limit = journal.max_append_bytes();
    let mut carried: Option<Append> = None;
    loop {
        let first = match carried.take() {
            Some(a) => a,
            None => match rx.blocking_recv() {
                Some(a) => a,
                None => break,
            },
        };
        let mut size = HEADER_BYTES + first.bytes.len() as u64;
        let mut group = vec![first];
        while let Ok(next) = rx.try_recv() {
            let next_size = HEADER_BYTES + next.bytes.len() as u64;
            if size + next_size > limit {
                carried = Some(next);
                break;
            }
            size += next_size;
            group.push(next);
        }
        let records: Vec<&[u8]> = group.iter().map(|a| a.bytes.as_slice()).collect();
        match journal.append(&records) {
            Ok(ends) => {
                // Durable first, then pending: the backlog never dips.
                shared.committed.store(journal.end(), Ordering::Release);
                committed.send_replace(journal.end());
                shared.pending.fetch_sub(size, Ordering::AcqRel);
                for (a, end) in group.into_iter().zip(ends) {
                    let _ = a.ack.send(Ok(end));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, records = group.len(), "journal append failed");
                shared.pending.fetch_sub(size, Ordering::AcqRel);
                let e = Arc::new(e);
                for a in group {
                    let _ = a.ack.send(Err(Arc::clone(&e)));
                }
            }
        }
    }
}

/// Completes once `drain` is true (never if its sender is gone first).
async fn drain_started(drain: &mut watch::Receiver<bool>) {
    if drain.wait_for(|d| *d).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Backoff between shipping attempts: 50 ms doubling, at most 5 s.
fn ship_backoff(attempt: u32) -> Duration {
    Duration::from_millis((50u64 << attempt.min(7)).min(5_000))
}

fn decode<T: DeserializeOwned>(records: &[Record]) -> Result<Vec<T>, String> {
    records
        .iter()
        .map(|r| {
            serde_json::from_slice(&r.payload)
                .map_err(|e| format!("the record ending at journal position {}: {e}", r.end))
        })
        .collect()
}

/// The shipper: reads durable records in order and ships them.
async fn ship_loop<T, F, Fut>(
    reader: Reader,
    shared: Arc<Shared>,
    mut committed: watch::Receiver<u64>,
    mut drain: watch::Receiver<bool>,
    config: PipelineConfig,
    mut ship: F,
) where
    T: DeserializeOwned,
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    let reader = Arc::new(Mutex::new(reader));
    let mut shipped = shared.shipped();
    let mut appender_open = true;
    let mut last_ship: Option<Instant> = None;
    let mut drain_failures = 0u32;
    // Failed attempts in a row (backoff and log throttling).
    let mut failures = 0u32;
    let publish = |shipped: u64, failure: Option<Failure>| {
        shared.progress.send_replace(Progress { shipped, failure });
    };
    'ship: loop {
        let target = *committed.borrow_and_update();
        if shipped >= target {
            if !appender_open {
                break;
            }
            if committed.changed().await.is_err() {
                appender_open = false;
            }
            continue;
        }
        let draining = !appender_open || *drain.borrow();
        if let (false, Some(last)) = (draining, last_ship) {
            tokio::select! {
                () = tokio::time::sleep_until(last + config.ship_interval) => {}
                () = shared.hurry.notified() => {}
                () = drain_started(&mut drain) => {}
            }
        }
        // Take whatever is durable by now.
        let target = *committed.borrow_and_update();
        last_ship = Some(Instant::now());
        let max_bytes = config.ship_max_bytes;
        let read_from = Arc::clone(&reader);
        let read = tokio::task::spawn_blocking(move || {
            read_from
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .read(shipped, target, max_bytes)
        })
        .await;
        let records = match read {
            Ok(Ok(records)) if !records.is_empty() => Ok(records),
            Ok(Ok(_)) => Err(format!("no journal record at position {shipped}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("journal reader failed: {e}")),
        };
        let end = loop {
            let result = match &records {
                Ok(records) => match decode::<T>(records) {
                    Ok(items) => ship(items)
                        .await
                        .map(|()| records.last().map_or(shipped, |r| r.end))
                        .map_err(|e| Failure {
                            retryable: e.is_retryable(),
                            message: e.to_string(),
                        }),
                    Err(message) => Err(Failure {
                        message,
                        retryable: false,
                    }),
                },
                Err(message) => Err(Failure {
                    message: message.clone(),
                    retryable: false,
                }),
            };
            let failure = match result {
                Ok(end) => break end,
                Err(f) => f,
            };
            if committed.has_changed().is_err() {
                appender_open = false;
            }
            let draining = !appender_open || *drain.borrow();
            if draining {
                drain_failures += 1;
            }
            if failures.is_multiple_of(20) && failure.retryable {
                tracing::warn!(
                    error = %failure.message,
                    failures,
                    backlog = shared.backlog(),
                    "journaled records not shipped yet; retrying"
                );
            } else if failures.is_multiple_of(20) {
                tracing::error!(
                    error = %failure.message,
                    failures,
                    backlog = shared.backlog(),
                    "journaled records cannot be shipped; retrying (this needs an operator)"
                );
            }
            publish(shipped, Some(failure));
            if draining && drain_failures >= DRAIN_ATTEMPTS {
                break 'ship;
            }
            tokio::select! {
                () = tokio::time::sleep(ship_backoff(failures)) => {}
                () = drain_started(&mut drain), if !draining => {}
            }
            failures += 1;
            if records.is_err() {
                // A read failure: read again.
                continue 'ship;
            }
        };
        failures = 0;
        shipped = end;
        publish(shipped, None);
        let release_in = Arc::clone(&reader);
        let released = tokio::task::spawn_blocking(move || {
            release_in
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .release(end)
        })
        .await;
        match released {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(segments = n, "journal segments released"),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot delete a shipped journal segment"),
            Err(e) => tracing::warn!(error = %e, "journal release failed"),
        }
    }
    let left = shared.backlog();
    if left > 0 {
        tracing::warn!(
            bytes = left,
            "journal not fully shipped; the rest is replayed at the next start"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;

    fn small() -> JournalConfig {
        JournalConfig {
            segment_bytes: 1 << 20,
            segment_age: Duration::from_secs(3600),
            max_append_bytes: 1 << 16,
        }
    }

    fn payloads(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{{\"record\":{i}}}").into_bytes())
            .collect()
    }

    fn append_all(journal: &mut Journal, records: &[Vec<u8>]) -> Vec<u64> {
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        journal.append(&refs).expect("append")
    }

    fn read_all(journal: &Journal) -> Vec<Vec<u8>> {
        journal
            .reader()
            .read(journal.start(), journal.end(), u64::MAX)
            .expect("read")
            .into_iter()
            .map(|r| r.payload)
            .collect()
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        list_segments(dir)
            .expect("list")
            .into_iter()
            .map(|s| segment_path(dir, s))
            .collect()
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(&[b"123456789"]), 0xE306_9283);
        assert_eq!(crc32c(&[b"1234", b"56789"]), 0xE306_9283);
    }

    #[test]
    fn appended_records_are_read_back_in_order_after_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let records = payloads(50);
        let mut journal = Journal::open(dir.path(), small()).expect("open");
        let ends = append_all(&mut journal, &records[..20]);
        let more = append_all(&mut journal, &records[20..]);
        assert!(ends.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(more.last().copied(), Some(journal.end()));
        drop(journal);

        let journal = Journal::open(dir.path(), small()).expect("reopen");
        assert_eq!(journal.start(), 0);
        assert_eq!(Some(journal.end()), more.last().copied());
        assert_eq!(read_all(&journal), records);
        // Reading from a record boundary in the middle starts there.
        let tail = journal
            .reader()
            .read(ends[19], journal.end(), u64::MAX)
            .expect("read");
        assert_eq!(tail.len(), 30);
        assert_eq!(tail[0].payload, records[20]);
    }

    #[test]
    fn a_torn_tail_is_ignored_and_cut_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let records = payloads(10);
        let mut journal = Journal::open(dir.path(), small()).expect("open");
        append_all(&mut journal, &records);
        let durable = journal.end();
        drop(journal);
        // A crash in the middle of the next append: a header promising more
        // bytes than were written, then part of a payload.
        let last = segment_files(dir.path()).pop().expect("a segment");
        let mut file = OpenOptions::new()
            .append(true)
            .open(&last)
            .expect("open segment");
        file.write_all(&200u32.to_le_bytes()).expect("write");
        file.write_all(&[0xAB; 4]).expect("write");
        file.write_all(b"{\"record\":").expect("write");
        drop(file);

        let mut journal = Journal::open(dir.path(), small()).expect("a torn tail is no error");
        assert_eq!(journal.end(), durable);
        assert_eq!(read_all(&journal), records);
        // The tail is gone for good: new appends follow the good records.
        append_all(&mut journal, &payloads(1));
        drop(journal);
        let journal = Journal::open(dir.path(), small()).expect("reopen");
        assert_eq!(read_all(&journal).len(), 11);
    }

    #[test]
    fn a_final_record_with_a_bad_checksum_is_a_torn_tail_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut journal = Journal::open(dir.path(), small()).expect("open");
        let ends = append_all(&mut journal, &payloads(3));
        drop(journal);
        let last = segment_files(dir.path()).pop().expect("a segment");
        let mut bytes = fs::read(&last).expect("read");
        let n = bytes.len();
        bytes[n - 2] ^= 0xFF;
        fs::write(&last, &bytes).expect("write");

        let journal = Journal::open(dir.path(), small()).expect("open");
        assert_eq!(journal.end(), ends[1]);
        assert_eq!(read_all(&journal), payloads(2));
    }

    #[test]
    fn a_corrupt_record_in_the_middle_refuses_to_open_naming_the_file_and_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Appends of at most 1 KiB: damage further from the end than that
        // cannot be a torn write.
        let config = JournalConfig {
            max_append_bytes: 1024,
            ..small()
        };
        let mut journal = Journal::open(dir.path(), config.clone()).expect("open");
        let records = payloads(200);
        for chunk in records.chunks(10) {
            append_all(&mut journal, chunk);
        }
        drop(journal);
        let segment = segment_files(dir.path()).pop().expect("a segment");
        let mut bytes = fs::read(&segment).expect("read");
        // The third record's payload: after two records of 12 + 8 bytes.
        let third = 2 * (HEADER_BYTES as usize + records[0].len());
        bytes[third + HEADER_BYTES as usize + 1] ^= 0x01;
        fs::write(&segment, &bytes).expect("write");

        let err = Journal::open(dir.path(), config).expect_err("corruption must refuse to open");
        match &err {
            JournalError::Corrupt { path, offset, .. } => {
                assert_eq!(path, &segment);
                assert_eq!(*offset, third as u64);
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&segment.display().to_string()),
            "{message}"
        );
        assert!(message.contains(&format!("offset {third}")), "{message}");
        assert!(message.contains("checksum mismatch"), "{message}");
    }

    #[test]
    fn damage_at_the_end_of_an_older_segment_is_corruption_not_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = JournalConfig {
            segment_bytes: 100,
            ..small()
        };
        let mut journal = Journal::open(dir.path(), config.clone()).expect("open");
        for r in payloads(30) {
            append_all(&mut journal, &[r]);
        }
        drop(journal);
        let files = segment_files(dir.path());
        assert!(files.len() > 2);
        let first = &files[0];
        let mut bytes = fs::read(first).expect("read");
        let n = bytes.len();
        bytes[n - 1] ^= 0xFF;
        fs::write(first, &bytes).expect("write");
        let err = Journal::open(dir.path(), config).expect_err("corrupt");
        assert!(
            matches!(&err, JournalError::Corrupt { path, .. } if path == first),
            "{err}"
        );
    }

    #[test]
    fn segments_rotate_by_size_and_are_deleted_once_shipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = JournalConfig {
            segment_bytes: 100,
            ..small()
        };
        let mut journal = Journal::open(dir.path(), config.clone()).expect("open");
        let records = payloads(40);
        let mut ends = Vec::new();
        for r in &records {
            ends.extend(append_all(&mut journal, std::slice::from_ref(r)));
        }
        let files = segment_files(dir.path());
        // Each segment takes records until it holds at least 100 bytes.
        assert!(files.len() >= 5, "{files:?}");
        let mut reader = journal.reader();
        assert_eq!(
            reader.read(0, journal.end(), u64::MAX).expect("read").len(),
            40
        );

        // Half shipped: every segment ending at or before that goes.
        let half = ends[19];
        let deleted = reader.release(half).expect("release");
        assert!(deleted > 0);
        let starts = list_segments(dir.path()).expect("list");
        assert!(starts[0] <= half, "the segment holding {half} is kept");
        assert_eq!(starts.len(), files.len() - deleted);
        // Reopening replays from the oldest kept segment: nothing after
        // `half` is lost, some shipped records may come again.
        drop(reader);
        drop(journal);
        let mut journal = Journal::open(dir.path(), config).expect("reopen");
        let replayed = read_all(&journal);
        assert!(replayed.len() >= 20 && replayed.len() < 40);
        assert_eq!(replayed[replayed.len() - 20..], records[20..]);

        // Everything shipped: only the active (empty) segment is left.
        let end = journal.end();
        journal.reader().release(end).expect("release");
        assert_eq!(list_segments(dir.path()).expect("list"), vec![end]);
        append_all(&mut journal, &payloads(1));
        let read = journal
            .reader()
            .read(end, journal.end(), u64::MAX)
            .expect("read");
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].payload, payloads(1)[0]);
    }

    #[test]
    fn a_journal_in_use_cannot_be_opened_a_second_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(dir.path(), small()).expect("open");
        let err = Journal::open(dir.path(), small()).expect_err("in use");
        assert!(err.to_string().contains("in use"), "{err}");
        drop(journal);
        Journal::open(dir.path(), small()).expect("free again");
    }

    #[test]
    fn an_append_larger_than_the_limit_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut journal = Journal::open(dir.path(), small()).expect("open");
        let big = vec![b'x'; 1 << 16];
        assert!(matches!(
            journal.append(&[&big]),
            Err(JournalError::TooLarge { .. })
        ));
        assert_eq!(journal.end(), 0);
    }

    type Shipped = Arc<StdMutex<Vec<u32>>>;

    /// A pipeline shipping into `out`; fails while `down` is set.
    fn pipeline(
        dir: &Path,
        config: PipelineConfig,
        out: &Shipped,
        down: &Arc<std::sync::atomic::AtomicBool>,
    ) -> (Journaled<u32>, JournalTask, watch::Sender<bool>) {
        let journal = Journal::open(
            dir,
            JournalConfig {
                segment_bytes: 64,
                ..small()
            },
        )
        .expect("open");
        let (drain_tx, drain_rx) = watch::channel(false);
        let (out, down) = (Arc::clone(out), Arc::clone(down));
        let (journaled, task) =
            Journaled::spawn(journal, config, drain_rx, move |items: Vec<u32>| {
                let (out, down) = (Arc::clone(&out), Arc::clone(&down));
                async move {
                    if down.load(Ordering::SeqCst) {
                        return Err(StoreError::Unavailable("down".into()));
                    }
                    out.lock().expect("lock").extend(items);
                    Ok(())
                }
            })
            .expect("spawn");
        (journaled, task, drain_tx)
    }

    fn quick() -> PipelineConfig {
        PipelineConfig {
            ship_interval: Duration::from_millis(20),
            wait_timeout: Duration::from_secs(5),
            ..PipelineConfig::default()
        }
    }

    #[tokio::test]
    async fn acknowledged_items_are_shipped_in_order_and_their_segments_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Shipped::default();
        let down = Arc::default();
        let (journaled, task, drain) = pipeline(dir.path(), quick(), &out, &down);
        let mut last = 0;
        for i in 0..100u32 {
            let position = journaled.append(&i).await.expect("append");
            assert!(position > last);
            last = position;
        }
        journaled.wait_shipped(last).await.expect("shipped");
        assert_eq!(*out.lock().expect("lock"), (0..100).collect::<Vec<_>>());
        journaled.wait_all_shipped().await.expect("all shipped");
        // Shipped segments go right after shipping (the active one stays).
        let deadline = Instant::now() + Duration::from_secs(5);
        let kept = loop {
            let kept = list_segments(dir.path()).expect("list");
            if kept.len() == 1 || Instant::now() > deadline {
                break kept;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(kept.len(), 1, "{kept:?}");
        drain.send_replace(true);
        drop(journaled);
        task.finished().await;
    }

    #[tokio::test]
    async fn while_shipping_fails_items_are_still_acknowledged_and_arrive_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Shipped::default();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (journaled, task, _drain) = pipeline(dir.path(), quick(), &out, &down);
        for i in 0..10u32 {
            journaled.append(&i).await.expect("acknowledged while down");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(out.lock().expect("lock").is_empty());
        assert!(journaled.backlog() > 0);
        down.store(false, Ordering::SeqCst);
        journaled.wait_all_shipped().await.expect("shipped");
        assert_eq!(*out.lock().expect("lock"), (0..10).collect::<Vec<_>>());
        assert_eq!(journaled.backlog(), 0);
        drop(journaled);
        task.finished().await;
    }

    #[tokio::test]
    async fn a_full_backlog_refuses_new_items() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Shipped::default();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let config = PipelineConfig {
            max_backlog_bytes: 100,
            ..quick()
        };
        let (journaled, task, drain) = pipeline(dir.path(), config, &out, &down);
        let mut accepted = 0;
        let refused = loop {
            match journaled.append(&accepted).await {
                Ok(_) => accepted += 1,
                Err(e) => break e,
            }
        };
        assert!(
            matches!(refused, JournalError::BacklogFull { .. }),
            "{refused}"
        );
        // 9-byte records (header + one digit): at most 100 bytes journaled.
        assert!((5..=11).contains(&accepted), "{accepted}");
        down.store(false, Ordering::SeqCst);
        journaled.wait_all_shipped().await.expect("shipped");
        journaled.append(&99).await.expect("room again");
        drain.send_replace(true);
        drop(journaled);
        task.finished().await;
    }

    #[tokio::test]
    async fn items_never_shipped_are_replayed_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Shipped::default();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (journaled, task, drain) = pipeline(dir.path(), quick(), &out, &down);
        for i in 0..25u32 {
            journaled.append(&i).await.expect("append");
        }
        // Shutdown while shipping fails: the drain gives up, the items stay.
        drain.send_replace(true);
        drop(journaled);
        task.finished().await;
        assert!(out.lock().expect("lock").is_empty());

        down.store(false, Ordering::SeqCst);
        let (journaled, task, drain) = pipeline(dir.path(), quick(), &out, &down);
        journaled
            .replay(Duration::from_secs(5))
            .await
            .expect("replayed");
        assert_eq!(*out.lock().expect("lock"), (0..25).collect::<Vec<_>>());
        drain.send_replace(true);
        drop(journaled);
        task.finished().await;
    }
}
