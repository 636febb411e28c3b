//! The outbox: a durable, bounded, prioritised FIFO of alerts in sled, between the health
//! engine and the uplink.
//!
//! Why it exists: rumqttc keeps in-flight QoS 1 publishes only in memory and silently drops them
//! when the broker comes back without a session, and a gateway may be cut off from head office
//! for hours. So every alert is written here first, made durable, and leaves only when the
//! broker has acknowledged it (PUBACK). Delivery is therefore at-least-once; head office dedupes
//! on (`branch`, `id`) and detects gaps in `seq`.
//!
//! Design, and the invariants the model test (`tests/outbox_model/`) checks:
//!
//! * **Sequence numbers.** `append` assigns the next per-gateway `seq`, contiguous from 1. The
//!   counter survives restarts: on open it is `max(highest stored key, persisted counter)`; the
//!   counter is written by the group-commit flusher in the same flush as the events it covers, so
//!   a seq is never reused even after every event was delivered and deleted.
//! * **Durability / group commit.** `append` returns only after an `fsync` (sled `flush`) that
//!   covers its write. One flusher thread serves all appenders: while one flush runs, later
//!   appends queue up and share the next one, so throughput scales with concurrency instead of
//!   being pinned to one fsync per event. Nothing is acknowledged before its flush.
//! * **Only durable events are handed out.** [`Outbox::pending_from`] never returns an event
//!   beyond the durable watermark, so an event head office has seen can never vanish in a crash
//!   and have its seq reused for different content.
//! * **Storage form.** An event is stored packed ([`protocols::packed`]: varints, strings that
//!   repeat from event to event — devices, zones, messages, reasons — kept once in a string
//!   table per database, see `StringTable`) and made JSON when it is handed out: about 60
//!   bytes instead of the 540 of its JSON. The JSON is byte for byte the one of the alert
//!   appended, on every redelivery. Records in JSON, as earlier releases wrote them, are read
//!   as they are (an upgraded gateway delivers its backlog unchanged); an alert the packed form
//!   cannot hold exactly (a leap-second timestamp) is stored that way too.
//! * **Lanes.** Keys are big-endian `u64` seqs (sled key order = numeric order). Priority events
//!   (alarm-link, forced doors: [`Alert::is_priority`]) live in their own tree and are delivered
//!   first after an outage. Non-priority events are split by severity into four trees so that
//!   eviction of "the oldest lowest-severity event" is a `pop_min` rather than a scan; delivery
//!   merges the four by seq, so within a priority class the order is the append order (and so
//!   per-device order is preserved).
//! * **Bounds.** Count and bytes (key + stored value; the string table is bounded apart) are
//!   bounded. When an append would exceed a bound, victims are taken in order (severity
//!   ascending, then oldest first) among the stored non-priority events *and the incoming
//!   event if it is non-priority* — a flood of `info` events cannot push out an older
//!   `critical` camera loss; if the incoming event is the least valuable it is the one dropped
//!   (it still consumes its seq, so head office sees the gap). Priority events are never
//!   evicted and never dropped: if only they remain, the outbox goes over the bound and logs a
//!   warning. [`Appended::evicted`] reports how many events one append cost; the caller hands
//!   that to the health engine, which makes the coalesced `device-fault`/`outbox-overflow`
//!   alert (the outbox makes no alerts of its own).
//! * **Open conditions.** The `conditions` tree holds the latest state of each condition
//!   ([`Alert::condition_key`]) with the raised alert, so that the engine can take over after a
//!   restart. A condition change is
//!   written by the flusher once the flush has made its event durable and before the event is
//!   handed out: it is never recorded for an event a crash can still lose, and never written on
//!   the appenders' path (a sled transaction there cost 4× the enqueue rate: it serialises
//!   every append behind sled's global concurrency lock). One that a crash loses is replayed
//!   at open from the newest stored event of its condition (the open scan decodes each stored
//!   event for this); cleared conditions stay as tombstones so that an older stored event
//!   cannot reopen them. A raise over a raise is not rewritten.
//! * **Counters.** Depth and bytes are kept exactly in memory (sled's `len()` is O(n)) and
//!   recovered on open by one scan.
//! * **Acks** (removals after PUBACK) are not flushed individually: sled's background flusher
//!   makes them durable within ~500 ms and every later group commit covers them too. After a
//!   crash an acked event may therefore reappear and be delivered again — a duplicate, which the
//!   contract allows — but an appended, unacknowledged event is never lost.
//! * **Disk use.** sled's log takes about 90 bytes per event plus 1.7× its stored bytes on
//!   disk, and never gives space back: an outbox that is empty again moves to a fresh database
//!   when the old one has grown (a rotation; also when its string table is half full). The outbox reports `size_on_disk` against the
//!   live bytes ([`Outbox::disk_usage`]); bench scenario 4 (`bsg-bench`, docs/BENCHMARKS.md)
//!   measures the directory at 1,000,000 buffered events (~195 bytes per event; sled's
//!   settings and why: `Store::open`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use protocols::{Alert, AlertKind, AlertState, Seq, Severity};
use tokio::sync::{Notify, watch};

/// Why the outbox failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox storage error: {0}")]
    Storage(String),
    #[error("outbox storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("cannot encode alert: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the outbox flush failed: {0}")]
    Flush(String),
    #[error("the outbox is closed")]
    Closed,
}

/// Bounds from `[storage]`.
#[derive(Debug, Clone, Copy)]
pub struct OutboxBounds {
    /// Most events held before non-priority ones are evicted.
    pub max_events: u64,
    /// Most bytes (key + stored value) held before non-priority ones are evicted.
    pub max_bytes: u64,
}

/// The result of [`Outbox::append`].
#[derive(Debug, Clone)]
pub struct Appended {
    /// The alert as stored, with its `seq`.
    pub alert: Alert,
    /// How many events were dropped by the bound to make room (the incoming one included, if it
    /// was dropped itself: see `stored`).
    pub evicted: u64,
    /// False when the incoming event was itself the least valuable one and was dropped.
    pub stored: bool,
    /// The bytes it occupies (or would have) as counted by the bound: key + stored value.
    pub size: u64,
}

/// The storage lane of an event: priority, or a non-priority severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lane(u8);

impl Lane {
    pub const PRIORITY: Lane = Lane(0);

    fn of(alert: &Alert) -> Lane {
        if alert.is_priority() { Lane::PRIORITY } else { Lane(1 + severity_rank(alert.severity)) }
    }
    pub fn is_priority(self) -> bool {
        self == Lane::PRIORITY
    }
    fn index(self) -> usize {
        self.0 as usize
    }
}

const LANES: usize = 5;
const LANE_TREES: [&str; LANES] = ["priority", "normal-info", "normal-warning", "normal-major", "normal-critical"];
const META_TREE: &str = "meta";
/// Open conditions: [`Alert::condition_key`] → `[seq (u64 BE), state]` and, for a raised one,
/// the JSON of its `raised` alert (state 1); a cleared one is kept as a tombstone (state 2) so
/// that an older event replayed at open can never reopen it.
const CONDITIONS_TREE: &str = "conditions";
const RAISED: u8 = 1;
const CLEARED: u8 = 2;
const META_LAST_SEQ: &[u8] = b"last_seq";
/// The string table of the packed events: index (u32 BE) → UTF-8 (see [`StringTable`]).
const STRINGS_TREE: &str = "strings";
/// The table's bounds: it lives as long as its generation (a rotation starts an empty one),
/// and is held in memory whole.
const STRINGS_MAX: u32 = 16_384;
const STRINGS_MAX_BYTES: usize = 1 << 20;
/// Longer strings are written out in each event.
const STRING_MAX_LEN: usize = 256;
/// Names the live generation directory (`gen-N`).
const CURRENT: &str = "CURRENT";
/// An empty outbox whose database uses at least this much disk is moved to a fresh one.
pub const ROTATE_MIN_BYTES: u64 = 64 * 1024 * 1024;
const ROTATE_CHECK_EVERY: Duration = Duration::from_secs(10);

/// A stored value is one of two forms, told apart by its first byte:
///
/// * `PACKED` (written since the compact outbox): `[2, enqueued_at_ms (48-bit BE)] ++` the
///   alert in [`protocols::packed`] form, without its seq (the key is the seq). The JSON is
///   made when the event is handed out; `protocols::packed` guarantees it is byte for byte the
///   JSON of the alert appended, on every redelivery.
/// * `JSON` (what earlier releases wrote, so an upgraded gateway still delivers its backlog;
///   and the form of an alert the packed one cannot hold exactly, i.e. a timestamp inside a
///   leap second): `[1, kind, enqueued_at_ms (u64 BE)] ++` the alert JSON as published.
const JSON_FORMAT: u8 = 1;
const JSON_HEADER: usize = 10;
const PACKED_FORMAT: u8 = 2;
const PACKED_HEADER: usize = 7;
const KEY: u64 = 8;

fn severity_rank(s: Severity) -> u8 {
    match s {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Major => 2,
        Severity::Critical => 3,
    }
}

fn kind_code(k: AlertKind) -> u8 {
    match k {
        AlertKind::CameraOffline => 0,
        AlertKind::AlarmLink => 1,
        AlertKind::DoorStatus => 2,
        AlertKind::DeviceFault => 3,
    }
}

fn kind_of_code(c: u8) -> Option<AlertKind> {
    AlertKind::ALL.get(c as usize).copied().filter(|k| kind_code(*k) == c)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The condition an alert opens or closes: its key and state byte.
fn condition_of(alert: &Alert) -> Option<(String, u8)> {
    Some((alert.condition_key()?, if alert.state == AlertState::Raised { RAISED } else { CLEARED }))
}

/// An alert encoded for storage before the write lock is taken (all of it but the seq).
struct Prepared {
    alert: Alert,
    lane: Lane,
    /// The packed value; `None` when the alert has no packed form (stored as JSON, which
    /// carries the seq and so is made under the lock).
    packed: Option<Vec<u8>>,
    /// The generation whose string table `packed` names strings in.
    generation: u64,
    enqueued_at: u64,
    /// The condition it opens or closes.
    condition: Option<(String, u8)>,
}

impl Prepared {
    fn new(alert: Alert, st: &Store) -> Prepared {
        let enqueued_at = now_ms();
        let packed = packed_value(&alert, enqueued_at, &st.strings);
        Prepared {
            lane: Lane::of(&alert),
            condition: condition_of(&alert),
            alert,
            packed,
            generation: st.generation,
            enqueued_at,
        }
    }

    /// The value to store in `st` for the alert with its seq assigned.
    fn value(&mut self, st: &Store) -> Result<Vec<u8>, OutboxError> {
        if self.generation != st.generation {
            // A rotation came between the encoding and the lock: the indices are the old table's.
            self.packed = packed_value(&self.alert, self.enqueued_at, &st.strings);
        }
        match self.packed.take() {
            Some(v) => Ok(v),
            None => json_value(&self.alert, self.enqueued_at),
        }
    }
}

fn packed_value(alert: &Alert, enqueued_at: u64, strings: &StringTable) -> Option<Vec<u8>> {
    let mut v = Vec::with_capacity(PACKED_HEADER + 96 + alert.message.len());
    v.push(PACKED_FORMAT);
    v.extend_from_slice(&enqueued_at.to_be_bytes()[2..]);
    match protocols::packed::encode_into(alert, &mut Interning(strings), &mut v) {
        Ok(()) => Some(v),
        Err(e) => {
            tracing::debug!(id = %alert.id, error = %e, "alert stored as JSON");
            None
        }
    }
}

fn json_value(alert: &Alert, enqueued_at: u64) -> Result<Vec<u8>, OutboxError> {
    let json = serde_json::to_vec(alert)?;
    let mut v = Vec::with_capacity(JSON_HEADER + json.len());
    v.push(JSON_FORMAT);
    v.push(kind_code(alert.kind()));
    v.extend_from_slice(&enqueued_at.to_be_bytes());
    v.extend_from_slice(&json);
    Ok(v)
}

/// A stored value that cannot be read back.
#[derive(Debug, thiserror::Error)]
enum BadValue {
    #[error("unknown format {0:?}")]
    Format(Option<u8>),
    #[error("unknown kind code {0}")]
    Kind(u8),
    #[error(transparent)]
    Packed(#[from] protocols::packed::PackError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// The kind and the JSON to publish of the stored value of event `seq`; `strings` is the
/// table of the generation it is stored in.
fn value_json(seq: Seq, v: &[u8], strings: &Table) -> Result<(AlertKind, Vec<u8>), BadValue> {
    match v.first() {
        Some(&JSON_FORMAT) if v.len() >= JSON_HEADER => {
            Ok((kind_of_code(v[1]).ok_or(BadValue::Kind(v[1]))?, v[JSON_HEADER..].to_vec()))
        }
        Some(&PACKED_FORMAT) if v.len() >= PACKED_HEADER => {
            let alert = decode_packed(strings, seq, &v[PACKED_HEADER..])?;
            // Room for a typical alert's JSON at once (to_vec would grow from 128 bytes).
            let mut json = Vec::with_capacity(1024);
            serde_json::to_writer(&mut json, &alert)?;
            Ok((alert.kind(), json))
        }
        f => Err(BadValue::Format(f.copied())),
    }
}

/// The alert in the stored value of event `seq`.
fn value_alert(seq: Seq, v: &[u8], strings: &Table) -> Result<Alert, BadValue> {
    match v.first() {
        Some(&JSON_FORMAT) if v.len() >= JSON_HEADER => Ok(serde_json::from_slice(&v[JSON_HEADER..])?),
        Some(&PACKED_FORMAT) if v.len() >= PACKED_HEADER => Ok(decode_packed(strings, seq, &v[PACKED_HEADER..])?),
        f => Err(BadValue::Format(f.copied())),
    }
}

/// When the stored value was appended (ms since the epoch).
fn value_enqueued_at(v: &[u8]) -> Option<u64> {
    let mut b = [0u8; 8];
    match v.first() {
        Some(&JSON_FORMAT) if v.len() >= JSON_HEADER => b.copy_from_slice(&v[2..JSON_HEADER]),
        Some(&PACKED_FORMAT) if v.len() >= PACKED_HEADER => b[2..].copy_from_slice(&v[1..PACKED_HEADER]),
        _ => return None,
    }
    Some(u64::from_be_bytes(b))
}

/// The string table of one generation: the strings that repeat from event to event (the
/// branch, device ids and names, zones, messages, statuses and reasons), each stored once in
/// the `strings` tree and named by its index in the packed events
/// ([`protocols::packed::Interner`]). Without it a packed event would be ~180 bytes and sled's
/// log 400 on disk; with it ~60 and ~190 (docs/BENCHMARKS.md, scenario 4).
///
/// An index never changes its string within a generation: entries are only added, and a new
/// one is inserted before the event that names it, so the flush that makes the event durable
/// makes the entry durable too (sled recovers its log in order); an acknowledged event that a
/// crash brings back still reads as it was. The table is bounded ([`STRINGS_MAX`] entries,
/// [`STRINGS_MAX_BYTES`]); once full, new strings are written out in each event. It is emptied
/// with its generation: a rotation, which happens only when the outbox is empty, starts a new
/// database with an empty table (see `OutboxCore::rotate`).
struct StringTable {
    tree: sled::Tree,
    /// Shared with the condition changes waiting for their flush, which may outlive the
    /// generation.
    inner: Arc<Table>,
}

/// A string table's entries, in memory.
type Table = RwLock<Interned>;

fn read_table(t: &Table) -> std::sync::RwLockReadGuard<'_, Interned> {
    t.read().unwrap_or_else(|p| p.into_inner())
}

fn decode_packed(t: &Table, seq: Seq, packed: &[u8]) -> Result<Alert, protocols::packed::PackError> {
    protocols::packed::decode(packed, seq, &*read_table(t))
}

#[derive(Default)]
struct Interned {
    by_str: std::collections::HashMap<Arc<str>, u32>,
    by_index: Vec<Option<Arc<str>>>,
    bytes: usize,
}

impl protocols::packed::Strings for Interned {
    fn get(&self, index: u32) -> Option<&str> {
        self.by_index.get(index as usize).and_then(|s| s.as_deref())
    }
}

impl StringTable {
    fn open(tree: sled::Tree) -> Result<StringTable, OutboxError> {
        let mut t = Interned::default();
        for kv in tree.iter() {
            let (k, v) = kv?;
            let (Some(i), Ok(text)) = (k.as_ref().try_into().ok().map(u32::from_be_bytes), std::str::from_utf8(&v))
            else {
                tracing::error!(key = ?k, "an outbox string table entry does not decode; skipped");
                continue;
            };
            let text: Arc<str> = Arc::from(text);
            if t.by_index.len() <= i as usize {
                t.by_index.resize(i as usize + 1, None);
            }
            t.bytes += text.len();
            t.by_str.insert(text.clone(), i);
            t.by_index[i as usize] = Some(text);
        }
        Ok(StringTable { tree, inner: Arc::new(RwLock::new(t)) })
    }

    /// Makes `index` and those below it unavailable for new strings.
    fn skip_past(&self, index: u32) {
        let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if t.by_index.len() <= index as usize {
            t.by_index.resize(index as usize + 1, None);
        }
    }

    /// Whether the table is worth emptying (by a rotation) once the outbox is empty.
    fn half_full(&self) -> bool {
        let t = read_table(&self.inner);
        t.by_index.len() >= STRINGS_MAX as usize / 2 || t.bytes >= STRINGS_MAX_BYTES / 2
    }
}

/// The encoding side of a [`StringTable`].
struct Interning<'a>(&'a StringTable);

impl protocols::packed::Interner for Interning<'_> {
    fn intern(&mut self, s: &str) -> Option<u32> {
        if s.len() > STRING_MAX_LEN {
            return None;
        }
        if let Some(&i) = read_table(&self.0.inner).by_str.get(s) {
            return Some(i);
        }
        let mut t = self.0.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(&i) = t.by_str.get(s) {
            return Some(i);
        }
        let i = t.by_index.len();
        if i >= STRINGS_MAX as usize || t.bytes + s.len() > STRINGS_MAX_BYTES {
            return None;
        }
        let index = i as u32;
        if let Err(e) = self.0.tree.insert(index.to_be_bytes(), s.as_bytes()) {
            tracing::error!(error = %e, "cannot add to the outbox string table; the string is stored in the event");
            return None;
        }
        let text: Arc<str> = Arc::from(s);
        t.bytes += text.len();
        t.by_str.insert(text.clone(), index);
        t.by_index.push(Some(text));
        Some(index)
    }
}

/// A condition change waiting for the flush that makes its event durable (see
/// [`OutboxCore::apply_conditions`]).
struct ConditionOp {
    seq: u64,
    key: String,
    state: u8,
    /// The raised alert's stored value and the string table it was packed with, made JSON
    /// when it is written (none for a clear; and a raise over a raise is never written).
    value: Option<(sled::IVec, Arc<Table>)>,
}

/// A reference to one stored event: what the uplink keeps per in-flight publish to ack it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventRef {
    pub seq: Seq,
    pub lane: Lane,
}

/// One event ready for delivery.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: EventRef,
    pub kind: AlertKind,
    /// The alert JSON, exactly as published.
    pub payload: Vec<u8>,
}

impl Pending {
    pub fn seq(&self) -> Seq {
        self.id.seq
    }
    pub fn is_priority(&self) -> bool {
        self.id.lane.is_priority()
    }
}

/// Where a reader is in the outbox: the last seq handed out per class. Start from
/// [`Cursor::START`] after every (re)connect to re-send everything not yet acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    priority: u64,
    normal: u64,
}

impl Cursor {
    pub const START: Cursor = Cursor { priority: 0, normal: 0 };
}

/// Disk use as measured by sled versus the live data.
#[derive(Debug, Clone, Copy)]
pub struct DiskUsage {
    pub on_disk: u64,
    pub live: u64,
    pub events: u64,
}

struct Counts {
    events: [u64; LANES],
    bytes: [u64; LANES],
}

impl Counts {
    fn total_events(&self) -> u64 {
        self.events.iter().sum()
    }
    fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }
}

/// State touched by appends, acks and evictions; one writer at a time.
struct WriteState {
    last_seq: u64,
    counts: Counts,
    last_rotate_check: Option<Instant>,
    /// Condition changes of appended events, in seq order, not yet written.
    condition_ops: std::collections::VecDeque<ConditionOp>,
}

#[derive(Debug, Clone, Default)]
struct Durable {
    /// Every seq `<=` this is on disk.
    upto: u64,
    /// A flush covering seqs up to here failed (and `upto` did not reach them).
    failed_upto: u64,
    error: Option<String>,
}

struct FlushQueue {
    requested: u64,
    /// Rotate to a fresh sled database if the outbox is empty and the old one is big.
    rotate: Option<u64>,
    stop: bool,
}

struct FlushShared {
    queue: Mutex<FlushQueue>,
    wake: Condvar,
}

/// One sled database (a generation: `dir/gen-N`, named by `dir/CURRENT`).
struct Store {
    db: sled::Db,
    lanes: [sled::Tree; LANES],
    meta: sled::Tree,
    conditions: sled::Tree,
    strings: StringTable,
    generation: u64,
    path: PathBuf,
}

impl Store {
    fn open(path: &Path, generation: u64) -> Result<Store, OutboxError> {
        // sled's settings, measured with bench scenario 4 at 1,000,000 buffered events
        // (docs/BENCHMARKS.md): whatever the setting, sled's log takes about 90 bytes per entry
        // plus 1.7× the entry's bytes (a log segment is rewritten only once it is under half
        // live, and every insert is first logged alone, then again in its node), so the bytes
        // per event are won in the value (the packed form and the string table: 1,026 → ~195
        // B/event) and not here.
        // - segment_size: sled's default, 512 KiB. 2 MiB saves 3 % of the disk (189 B/event),
        //   8 MiB 18 % (159 B/event) for +20 MiB of memory (its write buffers); 128 KiB costs
        //   1 % more disk. All within the budget: the default keeps memory low.
        // - use_compression (zstd, the `compression` feature): 148 B/event before the string
        //   table, but the fill fell to 21,000 events/s and the worker's RSS rose to 384 MiB
        //   (sled compresses each log message with a fresh zstd context, on the appender's
        //   path), and it builds a C library into the gateway. Off.
        // - cache_capacity: 16 MiB. It bounds sled's page cache, counted in stored bytes: with
        //   packed events its 64 MiB held 4× more of them in memory and the worker's RSS at
        //   1,000,000 events grew from 92 to 160 MiB; 16 MiB: 68 MiB, no change in the enqueue,
        //   replay or reopen figures.
        // - Trees: nine (five lanes, meta, conditions, strings, sled's default); an empty outbox
        //   is 1 KiB of log, so merging them would save nothing. Keys: the big-endian u64 seq,
        //   which sled stores prefix-compressed within a node.
        let config = sled::Config::new().path(path).cache_capacity(16 * 1024 * 1024).flush_every_ms(Some(500));
        // sled releases its file lock only when its last background I/O of a closed database
        // has finished: reopening right after a close (the tests, a restart in-process) can
        // find it still held for a moment. Another process holding it is an error after 2 s.
        let mut attempts = 0;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::Other
                        && attempts < 40
                        && e.to_string().contains("could not acquire lock") =>
                {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                r => break r?,
            }
        };
        let mut trees = Vec::with_capacity(LANES);
        for name in LANE_TREES {
            trees.push(db.open_tree(name)?);
        }
        let lanes: [sled::Tree; LANES] = trees.try_into().map_err(|_| OutboxError::Storage("lane trees".into()))?;
        let meta = db.open_tree(META_TREE)?;
        let conditions = db.open_tree(CONDITIONS_TREE)?;
        let strings = StringTable::open(db.open_tree(STRINGS_TREE)?)?;
        Ok(Store { db, lanes, meta, conditions, strings, generation, path: path.to_path_buf() })
    }
}

impl Store {
    /// After a crash, a stored event's condition change may not have been written yet (it is
    /// written after the flush that made the event durable): apply the latest change of each
    /// condition found among the stored events when it is newer than the recorded one.
    fn replay_conditions(
        &self,
        latest: std::collections::HashMap<Vec<u8>, (u64, u8, usize)>,
    ) -> Result<(), OutboxError> {
        let mut replayed = 0u64;
        for (key, (seq, state, lane)) in latest {
            let recorded = self.conditions.get(&key)?.map(|v| condition_seq(&v)).unwrap_or(0);
            if seq <= recorded {
                continue;
            }
            let json = match state {
                RAISED => match self.lanes[lane].get(Seq(seq).to_key())? {
                    Some(v) => match value_json(Seq(seq), &v, &self.strings.inner) {
                        Ok((_, json)) => json,
                        Err(e) => {
                            tracing::error!(seq, error = %e, "a stored event does not decode; its condition is not replayed");
                            continue;
                        }
                    },
                    None => continue,
                },
                _ => Vec::new(),
            };
            self.conditions.insert(key, condition_value(seq, state, &json))?;
            replayed += 1;
        }
        if replayed > 0 {
            tracing::info!(
                replayed,
                "{}",
                i18n::Lang::current().t(
                    "condition changes of stored events replayed after a crash",
                    "异常退出后已重放已存事件的告警状态变化"
                )
            );
        }
        Ok(())
    }
}

/// The durable, bounded, prioritised alert queue. Cheap to share (`Arc`).
pub struct Outbox {
    core: Arc<OutboxCore>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

/// The outbox's state and operations: everything but the flusher thread's handle, shared with
/// that thread. Used through [`Outbox`], which derefs to it (so that dropping the last
/// `Arc<Outbox>` stops and joins the flusher before the database closes).
pub struct OutboxCore {
    dir: PathBuf,
    store: RwLock<Arc<Store>>,
    bounds: OutboxBounds,
    write: Mutex<WriteState>,
    depth: AtomicU64,
    bytes: AtomicU64,
    last_seq: AtomicU64,
    durable_rx: watch::Receiver<Durable>,
    durable_tx: watch::Sender<Durable>,
    flush: FlushShared,
    new_events: Notify,
}

impl std::fmt::Debug for OutboxCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("depth", &self.depth())
            .field("bytes", &self.bytes())
            .field("last_seq", &self.last_seq())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain counters behind; carry on with them.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Outbox {
    /// Opens (or creates) the outbox under `dir`; recovers `seq` and the counters from disk.
    pub fn open(dir: &Path, bounds: OutboxBounds) -> Result<Arc<Outbox>, OutboxError> {
        let core = OutboxCore::open(dir, bounds)?;
        let for_thread = core.clone();
        let done = core.last_seq.load(Ordering::Acquire);
        let handle = std::thread::Builder::new()
            .name("outbox-flush".into())
            .spawn(move || flusher(for_thread, done))
            .map_err(|e| OutboxError::Storage(format!("spawn the flusher: {e}")))?;
        if core.depth() == 0 {
            core.request_rotate(ROTATE_MIN_BYTES);
        }
        Ok(Arc::new(Outbox { core, flusher: Mutex::new(Some(handle)) }))
    }
}

impl std::ops::Deref for Outbox {
    type Target = OutboxCore;
    fn deref(&self) -> &OutboxCore {
        &self.core
    }
}

impl OutboxCore {
    /// Opens (or creates) the outbox under `dir`; recovers `seq` and the counters from disk.
    fn open(dir: &Path, bounds: OutboxBounds) -> Result<Arc<OutboxCore>, OutboxError> {
        let io = |what: &str, e: std::io::Error| OutboxError::Storage(format!("{what} {}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(|e| io("create", e))?;
        // Which generation is live; anything else is a leftover of an interrupted rotation.
        let generation = match std::fs::read_to_string(dir.join(CURRENT)) {
            Ok(t) => t
                .trim()
                .strip_prefix("gen-")
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| OutboxError::Storage(format!("{}/{CURRENT} is corrupt: {t:?}", dir.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_current(dir, 1).map_err(|e| io("initialise", e))?;
                1
            }
            Err(e) => return Err(io("read CURRENT in", e)),
        };
        remove_other_generations(dir, generation);
        let store = Store::open(&dir.join(format!("gen-{generation}")), generation)?;

        // One scan: exact counters, the highest stored seq, and the latest condition change of
        // each condition among the stored events.
        let mut counts = Counts { events: [0; LANES], bytes: [0; LANES] };
        let mut max_key = 0u64;
        let mut latest: std::collections::HashMap<Vec<u8>, (u64, u8, usize)> = Default::default();
        for (i, tree) in store.lanes.iter().enumerate() {
            for kv in tree.iter() {
                let (k, v) = kv?;
                counts.events[i] += 1;
                counts.bytes[i] += k.len() as u64 + v.len() as u64;
                // The condition of each stored event (a full decode: one definition of the key).
                let Some(seq) = Seq::from_key(&k) else { continue };
                let cond = match value_alert(seq, &v, &store.strings.inner) {
                    Ok(a) => condition_of(&a),
                    Err(BadValue::Packed(protocols::packed::PackError::MissingString(index))) => {
                        // Its string is lost (sled recovers its log in order, so only damage
                        // does this): the index must never name another string.
                        store.strings.skip_past(index);
                        None
                    }
                    Err(_) => None,
                };
                if let Some((key, state)) = cond {
                    let e = latest.entry(key.into_bytes()).or_insert((0, 0, i));
                    if seq.0 > e.0 {
                        *e = (seq.0, state, i);
                    }
                }
            }
            if let Some((k, _)) = tree.last()?
                && let Some(s) = Seq::from_key(&k)
            {
                max_key = max_key.max(s.0);
            }
        }
        let counter = store.meta.get(META_LAST_SEQ)?.and_then(|v| Seq::from_key(&v)).map(|s| s.0).unwrap_or(0);
        let last_seq = max_key.max(counter);
        store.replay_conditions(latest)?;
        tracing::info!(
            dir = %dir.display(),
            generation = generation,
            events = counts.total_events(),
            bytes = counts.total_bytes(),
            last_seq,
            "outbox opened"
        );
        let (durable_tx, durable_rx) = watch::channel(Durable { upto: last_seq, ..Durable::default() });
        Ok(Arc::new(OutboxCore {
            dir: dir.to_path_buf(),
            store: RwLock::new(Arc::new(store)),
            bounds,
            depth: AtomicU64::new(counts.total_events()),
            bytes: AtomicU64::new(counts.total_bytes()),
            last_seq: AtomicU64::new(last_seq),
            write: Mutex::new(WriteState {
                last_seq,
                counts,
                last_rotate_check: None,
                condition_ops: Default::default(),
            }),
            durable_rx,
            durable_tx,
            flush: FlushShared {
                queue: Mutex::new(FlushQueue { requested: last_seq, rotate: None, stop: false }),
                wake: Condvar::new(),
            },
            new_events: Notify::new(),
        }))
    }

    fn store(&self) -> Arc<Store> {
        self.store.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Assigns the next seq to `alert` (overwriting `alert.seq`), stores it, applies the bound,
    /// and returns once it is durable (group commit).
    pub async fn append(&self, alert: Alert) -> Result<Appended, OutboxError> {
        // Encoding (all but the seq) happens before the lock: appenders serialise on it.
        let prepared = Prepared::new(alert, &self.store());
        let (appended, upto) = {
            let mut w = lock(&self.write);
            let st = self.store();
            let appended = self.insert_locked(&st, &mut w, prepared)?;
            (appended, w.last_seq)
        };
        self.request_flush(upto);
        self.wait_durable(appended.alert.seq.0).await?;
        Ok(appended)
    }

    /// Stores one alert under the write lock. Does not flush.
    fn insert_locked(&self, st: &Store, w: &mut WriteState, mut p: Prepared) -> Result<Appended, OutboxError> {
        let seq = Seq(w.last_seq + 1);
        p.alert.seq = seq;
        let value = sled::IVec::from(p.value(st)?);
        let size = KEY + value.len() as u64;
        let lane = p.lane;

        // The bound: evict (severity asc, oldest first) among stored non-priority events and
        // the incoming one if it is non-priority.
        let mut evicted = 0u64;
        let mut stored = true;
        loop {
            let over_count = w.counts.total_events() + 1 > self.bounds.max_events;
            let over_bytes = w.counts.total_bytes() + size > self.bounds.max_bytes;
            if !over_count && !over_bytes {
                break;
            }
            let victim = (1..LANES).find(|&i| w.counts.events[i] > 0);
            match victim {
                Some(i) if lane.is_priority() || lane.index() >= i => {
                    if let Some((k, v)) = st.lanes[i].pop_min()? {
                        w.counts.events[i] -= 1;
                        w.counts.bytes[i] -= k.len() as u64 + v.len() as u64;
                        evicted += 1;
                    } else {
                        // Counters and tree disagree: trust the tree.
                        tracing::error!(lane = i, "outbox counter drift; resetting lane counter");
                        w.counts.events[i] = 0;
                        w.counts.bytes[i] = 0;
                    }
                }
                _ if !lane.is_priority() => {
                    // The incoming event is the least valuable one: drop it.
                    stored = false;
                    evicted += 1;
                    break;
                }
                _ => {
                    tracing::warn!(
                        seq = seq.0,
                        events = w.counts.total_events(),
                        bytes = w.counts.total_bytes(),
                        "{}",
                        i18n::Lang::current().t(
                            "outbox full of priority events; accepting an alarm over the bound",
                            "待发队列已满且均为优先事件，超出上限接收一条报警"
                        )
                    );
                    break;
                }
            }
        }
        if stored {
            st.lanes[lane.index()].insert(seq.to_key(), value.clone())?;
        }
        // The condition it opens or closes is written once the event is durable (by the
        // flusher, before it hands the event out), and also when the bound dropped the event:
        // the engine holds the condition either way.
        if let Some((key, state)) = p.condition {
            let value = (state == RAISED).then(|| (value, st.strings.inner.clone()));
            w.condition_ops.push_back(ConditionOp { seq: seq.0, key, state, value });
        }
        if stored {
            w.counts.events[lane.index()] += 1;
            w.counts.bytes[lane.index()] += size;
        }
        if evicted > 0 {
            tracing::warn!(
                seq = seq.0,
                evicted,
                stored,
                "{}",
                i18n::Lang::current().t("outbox bound reached; events dropped", "待发队列已满，事件被丢弃")
            );
        }
        w.last_seq = seq.0;
        self.publish_counts(w);
        Ok(Appended { alert: p.alert, evicted, stored, size })
    }

    fn publish_counts(&self, w: &WriteState) {
        self.depth.store(w.counts.total_events(), Ordering::Relaxed);
        self.bytes.store(w.counts.total_bytes(), Ordering::Relaxed);
        self.last_seq.store(w.last_seq, Ordering::Release);
    }

    fn request_flush(&self, upto: u64) {
        let mut q = lock(&self.flush.queue);
        if upto > q.requested {
            q.requested = upto;
            self.flush.wake.notify_one();
        }
    }

    async fn wait_durable(&self, seq: u64) -> Result<(), OutboxError> {
        let mut rx = self.durable_rx.clone();
        let d = rx.wait_for(|d| d.upto >= seq || d.failed_upto >= seq).await.map_err(|_| OutboxError::Closed)?;
        if d.upto >= seq { Ok(()) } else { Err(OutboxError::Flush(d.error.clone().unwrap_or_default())) }
    }

    /// Makes every earlier write (acks included) durable now.
    pub async fn flush(&self) -> Result<(), OutboxError> {
        let db = self.store().db.clone();
        tokio::task::spawn_blocking(move || db.flush()).await.map_err(|e| OutboxError::Flush(e.to_string()))??;
        Ok(())
    }

    /// Up to `limit` durable events after `cursor`, priority events first, each class in seq
    /// order; advances `cursor`. Never returns an event that is not yet durable.
    pub fn pending_from(&self, cursor: &mut Cursor, limit: usize) -> Result<Vec<Pending>, OutboxError> {
        let durable = self.durable_rx.borrow().upto;
        let st = self.store();
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let hi = Seq(durable).to_key();
        if cursor.priority < durable {
            let lo = Seq(cursor.priority + 1).to_key();
            for kv in st.lanes[0].range(lo..=hi) {
                let (k, v) = kv?;
                let Some(p) = decode(&k, &v, Lane::PRIORITY, &st.strings.inner) else { continue };
                cursor.priority = p.id.seq.0;
                out.push(p);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
            cursor.priority = cursor.priority.max(durable);
        }
        if cursor.normal < durable {
            let lo = Seq(cursor.normal + 1).to_key();
            let mut iters: Vec<_> = (1..LANES).map(|i| (i, st.lanes[i].range(lo..=hi).peekable())).collect();
            loop {
                // The smallest head among the four severity lanes.
                let mut best: Option<(usize, u64)> = None;
                for (j, (_, it)) in iters.iter_mut().enumerate() {
                    match it.peek() {
                        Some(Ok((k, _))) => {
                            let s = Seq::from_key(k).map(|s| s.0).unwrap_or(u64::MAX);
                            if best.is_none_or(|(_, b)| s < b) {
                                best = Some((j, s));
                            }
                        }
                        Some(Err(_)) => {
                            if let Some(Err(e)) = it.next() {
                                return Err(e.into());
                            }
                        }
                        None => {}
                    }
                }
                let Some((j, _)) = best else {
                    cursor.normal = cursor.normal.max(durable);
                    break;
                };
                let lane = Lane(iters[j].0 as u8);
                if let Some(Ok((k, v))) = iters[j].1.next()
                    && let Some(p) = decode(&k, &v, lane, &st.strings.inner)
                {
                    cursor.normal = p.id.seq.0;
                    out.push(p);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The conditions raised and not yet cleared, as their `raised` alerts (see
    /// [`Alert::condition_key`]); the engine loads them at start. An entry that no longer
    /// decodes is skipped with an error in the log.
    pub fn open_conditions(&self) -> Result<Vec<Alert>, OutboxError> {
        let mut out = Vec::new();
        for kv in self.store().conditions.iter() {
            let (k, v) = kv?;
            if v.get(8) != Some(&RAISED) {
                continue;
            }
            match serde_json::from_slice::<Alert>(&v[9..]) {
                Ok(a) => out.push(a),
                Err(e) => {
                    tracing::error!(key = %String::from_utf8_lossy(&k), error = %e, "an open condition does not decode; skipped")
                }
            }
        }
        Ok(out)
    }

    /// Writes the condition changes of the events up to `upto`, which are now durable, in seq
    /// order. Called by the flusher after the flush and before the events are handed out, so
    /// that a condition is never recorded for an event a crash could still lose; one whose
    /// write a crash loses is replayed from its event at open ([`Store::replay_conditions`]).
    fn apply_conditions(&self, upto: u64) {
        let ops: Vec<ConditionOp> = {
            let mut w = lock(&self.write);
            let n = w.condition_ops.iter().take_while(|o| o.seq <= upto).count();
            w.condition_ops.drain(..n).collect()
        };
        if ops.is_empty() {
            return;
        }
        let st = self.store();
        for op in ops {
            // A raise over a raise adds nothing (the engine raises once; a stream of raises of
            // one condition, as in the bench, would otherwise rewrite it for every event).
            let raised =
                || st.conditions.get(op.key.as_bytes()).ok().flatten().is_some_and(|v| v.get(8) == Some(&RAISED));
            if op.state == RAISED && raised() {
                continue;
            }
            let json = match &op.value {
                Some((v, strings)) => match value_json(Seq(op.seq), v, strings) {
                    Ok((_, json)) => json,
                    Err(e) => {
                        tracing::error!(condition = %op.key, error = %e, "cannot record a condition: its event does not decode");
                        continue;
                    }
                },
                None => Vec::new(),
            };
            if let Err(e) = st.conditions.insert(op.key.as_bytes(), condition_value(op.seq, op.state, &json)) {
                tracing::error!(condition = %op.key, error = %e, "cannot record a condition");
            }
        }
    }

    /// Removes a delivered event (after its PUBACK). Returns whether it was still there
    /// (an evicted or already acked event is not).
    pub fn ack(&self, id: EventRef) -> Result<bool, OutboxError> {
        let mut w = lock(&self.write);
        let removed = self.store().lanes[id.lane.index()].remove(id.seq.to_key())?;
        let Some(v) = removed else { return Ok(false) };
        let i = id.lane.index();
        w.counts.events[i] = w.counts.events[i].saturating_sub(1);
        w.counts.bytes[i] = w.counts.bytes[i].saturating_sub(KEY + v.len() as u64);
        self.publish_counts(&w);
        // Emptied after an outage: give sled's disk space back if it grew (rate-limited).
        if w.counts.total_events() == 0 && w.last_rotate_check.is_none_or(|t| t.elapsed() >= ROTATE_CHECK_EVERY) {
            w.last_rotate_check = Some(Instant::now());
            drop(w);
            self.request_rotate(ROTATE_MIN_BYTES);
        }
        Ok(true)
    }

    /// Removes a delivered event by seq alone (searches every lane).
    pub fn ack_seq(&self, seq: Seq) -> Result<bool, OutboxError> {
        let st = self.store();
        for i in 0..LANES {
            if st.lanes[i].contains_key(seq.to_key())? {
                return self.ack(EventRef { seq, lane: Lane(i as u8) });
            }
        }
        Ok(false)
    }

    /// Resolves when events may have been appended since the last call (a permit is kept if
    /// nobody is waiting, so no wake-up is lost). One consumer: the uplink.
    pub async fn wait_new(&self) {
        self.new_events.notified().await
    }

    /// Events waiting for delivery.
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }
    /// Bytes (key + stored value) waiting for delivery.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    /// The last seq assigned (0 before the first event ever).
    pub fn last_seq(&self) -> Seq {
        Seq(self.last_seq.load(Ordering::Acquire))
    }
    /// The highest seq known to be durable.
    pub fn durable_seq(&self) -> Seq {
        Seq(self.durable_rx.borrow().upto)
    }
    pub fn bounds(&self) -> OutboxBounds {
        self.bounds
    }

    /// How long the oldest waiting event has been in the outbox.
    pub fn oldest_pending_age(&self) -> Option<Duration> {
        let now = now_ms();
        let mut oldest: Option<u64> = None;
        for tree in &self.store().lanes {
            if let Ok(Some((_, v))) = tree.first()
                && let Some(t) = value_enqueued_at(&v)
            {
                oldest = Some(oldest.map_or(t, |o| o.min(t)));
            }
        }
        oldest.map(|t| Duration::from_millis(now.saturating_sub(t)))
    }

    /// sled's disk use against the live data.
    pub fn disk_usage(&self) -> Result<DiskUsage, OutboxError> {
        Ok(DiskUsage { on_disk: self.store().db.size_on_disk()?, live: self.bytes(), events: self.depth() })
    }

    /// Asks the flusher to move to a fresh sled database if the outbox is empty and the
    /// current one uses at least `min_bytes` on disk (sled does not give space back) or its
    /// string table is half full.
    pub fn request_rotate(&self, min_bytes: u64) {
        let mut q = lock(&self.flush.queue);
        q.rotate = Some(q.rotate.map_or(min_bytes, |m| m.min(min_bytes)));
        self.flush.wake.notify_one();
    }

    /// Rotates now, on the calling thread (blocking I/O: for tools and tests), if the outbox is
    /// empty; returns whether it did.
    pub fn compact_now(&self) -> Result<bool, OutboxError> {
        let before = self.generation();
        self.rotate(0)?;
        Ok(self.generation() != before)
    }

    /// The current sled generation (increases with every rotation).
    pub fn generation(&self) -> u64 {
        self.store().generation
    }

    /// Rotation, on the flusher thread: under the write lock, if still empty, open
    /// `gen-(N+1)`, carry the seq counter over, flush, switch `CURRENT`, drop the old one.
    fn rotate(&self, min_bytes: u64) -> Result<(), OutboxError> {
        let w = lock(&self.write);
        if w.counts.total_events() != 0 {
            return Ok(());
        }
        let old = self.store();
        let on_disk = old.db.size_on_disk()?;
        if on_disk < min_bytes && !old.strings.half_full() {
            return Ok(());
        }
        let generation = old.generation + 1;
        let path = self.dir.join(format!("gen-{generation}"));
        let io = |e: std::io::Error| OutboxError::Storage(format!("rotate to {}: {e}", path.display()));
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(io)?;
        }
        let new = Store::open(&path, generation)?;
        new.meta.insert(META_LAST_SEQ, &Seq(w.last_seq).to_key())?;
        // The lanes are empty, so no older event can be replayed: tombstones are not needed.
        for kv in old.conditions.iter() {
            let (k, v) = kv?;
            if v.get(8) == Some(&RAISED) {
                new.conditions.insert(k, v)?;
            }
        }
        new.db.flush()?;
        write_current(&self.dir, generation).map_err(io)?;
        *self.store.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
        drop(w);
        let old_path = old.path.clone();
        drop(old);
        if let Err(e) = std::fs::remove_dir_all(&old_path) {
            tracing::warn!(path = %old_path.display(), error = %e, "cannot remove the old outbox generation");
        }
        tracing::info!(generation = generation, reclaimed_bytes = on_disk, "outbox rotated to a fresh database");
        Ok(())
    }
}

fn decode(k: &[u8], v: &[u8], lane: Lane, strings: &Table) -> Option<Pending> {
    let seq = Seq::from_key(k)?;
    match value_json(seq, v, strings) {
        Ok((kind, payload)) => Some(Pending { id: EventRef { seq, lane }, kind, payload }),
        Err(e) => {
            tracing::error!(seq = seq.0, error = %e, "an outbox entry does not decode; skipped");
            None
        }
    }
}

fn condition_value(seq: u64, state: u8, json: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(9 + json.len());
    v.extend_from_slice(&seq.to_be_bytes());
    v.push(state);
    v.extend_from_slice(json);
    v
}

fn condition_seq(v: &[u8]) -> u64 {
    v.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0)
}

/// The group-commit loop: wait for a request, persist the seq counter, flush once for every
/// append that arrived meanwhile, publish the new durable watermark. Also runs rotations.
/// Stopped (and joined) by `Outbox`'s `Drop`.
fn flusher(ob: Arc<OutboxCore>, mut done: u64) {
    let shared = &ob.flush;
    loop {
        let (target, rotate) = {
            let mut q = lock(&shared.queue);
            while q.requested <= done && q.rotate.is_none() && !q.stop {
                q = shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            if q.stop {
                return;
            }
            (q.requested, q.rotate.take())
        };
        if target > done {
            let st = ob.store();
            let res = st.meta.insert(META_LAST_SEQ, &Seq(target).to_key()).and_then(|_| st.db.flush());
            done = target;
            match res {
                Ok(_) => {
                    ob.apply_conditions(target);
                    ob.durable_tx.send_modify(|d| d.upto = d.upto.max(target));
                    ob.new_events.notify_one();
                }
                Err(e) => {
                    tracing::error!(error = %e, "{}", i18n::Lang::current().t("outbox flush failed", "待发队列写盘失败"));
                    ob.durable_tx.send_modify(|d| {
                        d.failed_upto = d.failed_upto.max(target);
                        d.error = Some(e.to_string());
                    });
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        if let Some(min) = rotate
            && let Err(e) = ob.rotate(min)
        {
            tracing::error!(error = %e, "{}", i18n::Lang::current().t("outbox rotation failed; keeping the current database", "待发队列轮换失败，继续使用当前数据库"));
        }
    }
}

fn write_current(dir: &Path, generation: u64) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = dir.join(format!("{CURRENT}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(format!("gen-{generation}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(CURRENT))?;
    std::fs::File::open(dir)?.sync_all()
}

fn remove_other_generations(dir: &Path, keep: u64) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(n) = name.to_str().and_then(|n| n.strip_prefix("gen-")).and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        if n != keep {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        {
            let mut q = lock(&self.flush.queue);
            q.stop = true;
            self.flush.wake.notify_all();
        }
        if let Some(h) = lock(&self.flusher).take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocols::packed::{Interner, Strings};

    fn table(dir: &Path) -> (sled::Db, StringTable) {
        let db = sled::open(dir).unwrap();
        let t = StringTable::open(db.open_tree(STRINGS_TREE).unwrap()).unwrap();
        (db, t)
    }

    #[test]
    fn the_string_table_is_bounded_and_keeps_its_indices() {
        let dir = tempfile::tempdir().unwrap();
        let (db, t) = table(dir.path());
        let mut i = Interning(&t);
        assert_eq!(i.intern(&"x".repeat(STRING_MAX_LEN + 1)), None, "too long: written out");
        for n in 0..STRINGS_MAX {
            assert_eq!(i.intern(&format!("string {n}")), Some(n));
        }
        assert!(t.half_full());
        assert_eq!(i.intern("one more"), None, "full: written out");
        assert_eq!(i.intern("string 7"), Some(7), "what it holds is still found");
        drop(t);
        let t = StringTable::open(db.open_tree(STRINGS_TREE).unwrap()).unwrap();
        let r = read_table(&t.inner);
        assert_eq!(r.get(7), Some("string 7"));
        assert_eq!(r.get(STRINGS_MAX - 1), Some(format!("string {}", STRINGS_MAX - 1).as_str()));
        assert_eq!(r.get(STRINGS_MAX), None);
    }

    #[test]
    fn the_string_table_is_bounded_in_bytes_too() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, t) = table(dir.path());
        let mut i = Interning(&t);
        let mut n = 0u32;
        while i.intern(&format!("{n:0>250}")).is_some() {
            n += 1;
        }
        assert_eq!(n as usize, STRINGS_MAX_BYTES / 250);
        assert!(t.half_full());
    }

    #[test]
    fn an_alert_packed_with_a_full_table_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, t) = table(dir.path());
        let mut i = Interning(&t);
        // Room for two strings: the branch and the device id; the rest is written out.
        for n in 0..STRINGS_MAX - 2 {
            i.intern(&format!("filler {n}")).unwrap();
        }
        let mut a = Alert::new(
            "b01".parse().unwrap(),
            protocols::DeviceRef {
                id: "cam-1".parse().unwrap(),
                device_type: protocols::DeviceType::Camera,
                name: "Cam".into(),
                zones: vec![],
            },
            AlertState::Raised,
            Severity::Warning,
            protocols::time::now(),
            "offline".into(),
            protocols::AlertBody::CameraOffline(protocols::CameraOfflineDetails {
                status: "unreachable".into(),
                reason: "timeout".into(),
                consecutive_failures: 3,
                armed: false,
                uncovered_zones: vec![],
                clock_skew_ms: None,
            }),
        );
        a.seq = Seq(9);
        let v = packed_value(&a, now_ms(), &t).unwrap();
        let (kind, json) = value_json(a.seq, &v, &t.inner).unwrap();
        assert_eq!(kind, AlertKind::CameraOffline);
        assert_eq!(json, serde_json::to_vec(&a).unwrap());
        assert_eq!(read_table(&t.inner).by_index.len(), STRINGS_MAX as usize);
    }
}
