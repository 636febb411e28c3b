//! Head office's own history, in sled: deduplicated alerts, the changes of every retained state,
//! the latest retained values, and counters.
//!
//! Trees and keys (ids never contain `\0`, so `\0` separates key parts; times are big-endian
//! milliseconds so a key scan is time order):
//!
//! | tree | key | value |
//! |---|---|---|
//! | `alerts` | branch `\0` id | [`AlertRecord`] — inserted once: this is the dedupe on (branch, id) |
//! | `gateway` | branch `\0` at `\0` n | [`GatewayChange`] |
//! | `devices` | branch `\0` device `\0` at `\0` n | [`DeviceChange`] |
//! | `zones` | branch `\0` zone `\0` at `\0` n | [`ZoneChange`] |
//! | `latest` | `g\0`branch, `d\0`branch`\0`device, `c\0`branch | [`Latest`] of the retained payload |
//! | `meta` | counter name | u64, big-endian |
//!
//! One writer (`hq listen`) holds sled's lock. Readers (`hq report`, …) that find the store
//! locked read a copy of it instead, so a report can run next to a live listener.

use std::path::{Path, PathBuf};

use protocols::time::Timestamp;
use protocols::{Alert, BranchId, CoverageReport, DeviceHealth, DeviceId, GatewayStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ingest::Message;
use crate::records::{AlertRecord, DeviceChange, GatewayChange, History, Latest, Snapshot, ZoneChange};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("the store {0} is in use by another `hq listen`; give each listener its own --store")]
    Locked(PathBuf),
    #[error("no store at {0} (run `hq listen --store {0}` first, or pass the right --store)")]
    Missing(PathBuf),
    #[error("cannot copy the locked store {path} for reading: {source}")]
    Copy { path: PathBuf, source: std::io::Error },
    #[error("store {path}: {source}")]
    Db { path: PathBuf, source: sled::Error },
    #[error("store {path}: cannot encode a record: {source}")]
    Encode { path: PathBuf, source: serde_json::Error },
}

/// What storing one message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new alert, stored.
    NewAlert,
    /// An alert already stored (same branch and id): re-delivery, nothing stored.
    DuplicateAlert,
    /// Retained state that differs from the last value: a change was recorded.
    Changed,
    /// Retained state equal to the last value (re-sent after a reconnect).
    Unchanged,
    /// A retained value was deleted by its publisher.
    Removed,
}

/// Named counters kept in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Alerts,
    Duplicates,
    Malformed,
    GatewayChanges,
    DeviceChanges,
    ZoneChanges,
}

impl Counter {
    const ALL: [Counter; 6] = [
        Counter::Alerts,
        Counter::Duplicates,
        Counter::Malformed,
        Counter::GatewayChanges,
        Counter::DeviceChanges,
        Counter::ZoneChanges,
    ];
    fn key(self) -> &'static str {
        match self {
            Counter::Alerts => "alerts",
            Counter::Duplicates => "duplicates",
            Counter::Malformed => "malformed",
            Counter::GatewayChanges => "gateway_changes",
            Counter::DeviceChanges => "device_changes",
            Counter::ZoneChanges => "zone_changes",
        }
    }
}

/// The counters of one store (`hq stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Distinct alerts stored.
    pub alerts: u64,
    /// Re-deliveries of an alert already stored.
    pub duplicates: u64,
    /// Messages rejected (bad JSON, wrong schema, branch or kind not matching the topic).
    pub malformed: u64,
    pub gateway_changes: u64,
    pub device_changes: u64,
    pub zone_changes: u64,
}

pub struct Store {
    path: PathBuf,
    db: sled::Db,
    alerts: sled::Tree,
    gateway: sled::Tree,
    devices: sled::Tree,
    zones: sled::Tree,
    latest: sled::Tree,
    meta: sled::Tree,
    /// The copy being read when the store was locked by a listener.
    _copy: Option<tempfile::TempDir>,
}

impl Store {
    /// Opens (creating if needed) the store for writing.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new().path(dir).open().map_err(|source| {
            if is_lock_error(&source) {
                StoreError::Locked(dir.to_path_buf())
            } else {
                StoreError::Open { path: dir.to_path_buf(), source }
            }
        })?;
        Self::with_db(dir.to_path_buf(), db, None)
    }

    /// Opens an existing store for reading. If a listener holds it, reads a copy.
    pub fn open_read(dir: &Path) -> Result<Store, StoreError> {
        if !dir.join("db").exists() {
            return Err(StoreError::Missing(dir.to_path_buf()));
        }
        match sled::Config::new().path(dir).open() {
            Ok(db) => Self::with_db(dir.to_path_buf(), db, None),
            Err(e) if is_lock_error(&e) => {
                tracing::debug!(store = %dir.display(), "store in use by a listener; reading a copy");
                let copy =
                    tempfile::tempdir().map_err(|source| StoreError::Copy { path: dir.to_path_buf(), source })?;
                copy_dir(dir, copy.path()).map_err(|source| StoreError::Copy { path: dir.to_path_buf(), source })?;
                // The copy may hold a stale lock file name but not the lock itself.
                let db = sled::Config::new()
                    .path(copy.path())
                    .open()
                    .map_err(|source| StoreError::Open { path: dir.to_path_buf(), source })?;
                Self::with_db(dir.to_path_buf(), db, Some(copy))
            }
            Err(source) => Err(StoreError::Open { path: dir.to_path_buf(), source }),
        }
    }

    fn with_db(path: PathBuf, db: sled::Db, copy: Option<tempfile::TempDir>) -> Result<Store, StoreError> {
        let tree = |name: &str| db.open_tree(name).map_err(|source| StoreError::Db { path: path.clone(), source });
        Ok(Store {
            alerts: tree("alerts")?,
            gateway: tree("gateway")?,
            devices: tree("devices")?,
            zones: tree("zones")?,
            latest: tree("latest")?,
            meta: tree("meta")?,
            db,
            path,
            _copy: copy,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db_err(&self) -> impl Fn(sled::Error) -> StoreError + '_ {
        move |source| StoreError::Db { path: self.path.clone(), source }
    }

    fn encode<T: Serialize>(&self, v: &T) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(v).map_err(|source| StoreError::Encode { path: self.path.clone(), source })
    }

    /// Makes every earlier write durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await.map(|_| ()).map_err(self.db_err())
    }

    pub fn bump(&self, c: Counter) -> Result<u64, StoreError> {
        let v = self
            .meta
            .update_and_fetch(c.key(), |old| {
                let n = old.and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_be_bytes);
                Some((n + 1).to_be_bytes().to_vec())
            })
            .map_err(self.db_err())?;
        Ok(v.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok()).map_or(0, u64::from_be_bytes))
    }

    pub fn counters(&self) -> Result<Counters, StoreError> {
        let mut c = Counters::default();
        for k in Counter::ALL {
            let v = self
                .meta
                .get(k.key())
                .map_err(self.db_err())?
                .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
                .map_or(0, u64::from_be_bytes);
            match k {
                Counter::Alerts => c.alerts = v,
                Counter::Duplicates => c.duplicates = v,
                Counter::Malformed => c.malformed = v,
                Counter::GatewayChanges => c.gateway_changes = v,
                Counter::DeviceChanges => c.device_changes = v,
                Counter::ZoneChanges => c.zone_changes = v,
            }
        }
        Ok(c)
    }

    /// Stores one decoded message received at `received_at`.
    pub fn ingest(&self, msg: &Message, received_at: Timestamp) -> Result<Outcome, StoreError> {
        match msg {
            Message::Alert(a) => self.record_alert(a, received_at),
            Message::Gateway(g) => self.record_gateway(g, received_at),
            Message::Device(d) => self.record_device(d, received_at),
            Message::Coverage(c) => self.record_coverage(c, received_at),
            Message::DeviceRemoved { branch, device } => {
                self.latest.remove(device_key(branch, device)).map_err(self.db_err())?;
                Ok(Outcome::Removed)
            }
            Message::CoverageRemoved { branch } => {
                self.latest.remove(branch_key(b'c', branch)).map_err(self.db_err())?;
                Ok(Outcome::Removed)
            }
            Message::GatewayRemoved { branch } => {
                self.latest.remove(branch_key(b'g', branch)).map_err(self.db_err())?;
                Ok(Outcome::Removed)
            }
        }
    }

    fn record_alert(&self, a: &Alert, received_at: Timestamp) -> Result<Outcome, StoreError> {
        let key = join(&[a.branch.as_str().as_bytes(), a.id.as_bytes()]);
        let rec = AlertRecord { received_at, alert: a.clone() };
        let val = self.encode(&rec)?;
        match self.alerts.compare_and_swap(key, None as Option<&[u8]>, Some(val)).map_err(self.db_err())? {
            Ok(()) => {
                self.bump(Counter::Alerts)?;
                Ok(Outcome::NewAlert)
            }
            Err(_) => {
                self.bump(Counter::Duplicates)?;
                Ok(Outcome::DuplicateAlert)
            }
        }
    }

    fn record_gateway(&self, g: &GatewayStatus, received_at: Timestamp) -> Result<Outcome, StoreError> {
        let lkey = branch_key(b'g', &g.branch);
        let prev: Option<Latest<GatewayStatus>> = self.get_json(&self.latest, &lkey)?;
        let at = g.at.unwrap_or(received_at);
        let changed = prev.as_ref().is_none_or(|p| p.value.status != g.status);
        let since = match &prev {
            Some(p) if !changed => p.since,
            _ => Some(at),
        };
        if changed {
            let change =
                GatewayChange { branch: g.branch.clone(), status: g.status, reason: g.reason.clone(), at, received_at };
            let key = self.time_key(&[g.branch.as_str().as_bytes()], at)?;
            self.gateway.insert(key, self.encode(&change)?).map_err(self.db_err())?;
            self.bump(Counter::GatewayChanges)?;
        }
        let latest = Latest { received_at, value: g.clone(), since };
        self.latest.insert(lkey, self.encode(&latest)?).map_err(self.db_err())?;
        Ok(if changed { Outcome::Changed } else { Outcome::Unchanged })
    }

    fn record_device(&self, d: &DeviceHealth, received_at: Timestamp) -> Result<Outcome, StoreError> {
        let lkey = device_key(&d.branch, &d.device.id);
        let prev: Option<Latest<DeviceHealth>> = self.get_json(&self.latest, &lkey)?;
        let changed = prev.as_ref().is_none_or(|p| p.value.state != d.state);
        if changed {
            let change = DeviceChange {
                branch: d.branch.clone(),
                device: d.device.id.clone(),
                device_type: d.device.device_type,
                name: d.device.name.clone(),
                state: d.state.clone(),
                at: d.since,
                received_at,
            };
            let key = self.time_key(&[d.branch.as_str().as_bytes(), d.device.id.as_str().as_bytes()], d.since)?;
            self.devices.insert(key, self.encode(&change)?).map_err(self.db_err())?;
            self.bump(Counter::DeviceChanges)?;
        }
        let latest = Latest { received_at, value: d.clone(), since: Some(d.since) };
        self.latest.insert(lkey, self.encode(&latest)?).map_err(self.db_err())?;
        Ok(if changed { Outcome::Changed } else { Outcome::Unchanged })
    }

    fn record_coverage(&self, c: &CoverageReport, received_at: Timestamp) -> Result<Outcome, StoreError> {
        let lkey = branch_key(b'c', &c.branch);
        let prev: Option<Latest<CoverageReport>> = self.get_json(&self.latest, &lkey)?;
        if let Some(p) = &prev
            && p.value.at > c.at
        {
            // An older report arriving late (re-sent retained value): the newer one stands.
            return Ok(Outcome::Unchanged);
        }
        let mut changed = false;
        for z in &c.zones {
            let before = prev.as_ref().and_then(|p| p.value.zones.iter().find(|o| o.id == z.id));
            if before.is_some_and(|b| b.covered == z.covered) {
                continue;
            }
            let at = if z.covered { c.at } else { z.uncovered_since.unwrap_or(c.at) };
            let change = ZoneChange {
                branch: c.branch.clone(),
                zone: z.id.clone(),
                name: z.name.clone(),
                required: z.required,
                covered: z.covered,
                at,
                received_at,
            };
            let key = self.time_key(&[c.branch.as_str().as_bytes(), z.id.as_str().as_bytes()], at)?;
            self.zones.insert(key, self.encode(&change)?).map_err(self.db_err())?;
            self.bump(Counter::ZoneChanges)?;
            changed = true;
        }
        let latest = Latest { received_at, value: c.clone(), since: None };
        self.latest.insert(lkey, self.encode(&latest)?).map_err(self.db_err())?;
        Ok(if changed { Outcome::Changed } else { Outcome::Unchanged })
    }

    /// `parts \0 at(ms, BE) \0 n`: time-ordered, unique even for two records in one millisecond.
    fn time_key(&self, parts: &[&[u8]], at: Timestamp) -> Result<Vec<u8>, StoreError> {
        let n = self.db.generate_id().map_err(self.db_err())?;
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        let mut k = join(parts);
        k.push(0);
        k.extend_from_slice(&ms.to_be_bytes());
        k.push(0);
        k.extend_from_slice(&n.to_be_bytes());
        Ok(k)
    }

    fn get_json<T: DeserializeOwned>(&self, tree: &sled::Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
        let Some(v) = tree.get(key).map_err(self.db_err())? else { return Ok(None) };
        match serde_json::from_slice(&v) {
            Ok(t) => Ok(Some(t)),
            Err(e) => {
                tracing::warn!(store = %self.path.display(), error = %e, "unreadable record ignored");
                Ok(None)
            }
        }
    }

    fn scan<T: DeserializeOwned>(&self, tree: &sled::Tree) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let mut bad = 0usize;
        for kv in tree.iter() {
            let (_, v) = kv.map_err(self.db_err())?;
            match serde_json::from_slice(&v) {
                Ok(t) => out.push(t),
                Err(_) => bad += 1,
            }
        }
        if bad > 0 {
            tracing::warn!(store = %self.path.display(), tree = ?String::from_utf8_lossy(&tree.name()), records = bad, "unreadable records skipped");
        }
        Ok(out)
    }

    /// Every stored alert, in key order (branch, then id).
    pub fn alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        self.scan(&self.alerts)
    }

    /// The latest retained values.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut s = Snapshot::default();
        for kv in self.latest.iter() {
            let (k, v) = kv.map_err(self.db_err())?;
            let parsed = match k.first() {
                Some(b'g') => serde_json::from_slice::<Latest<GatewayStatus>>(&v).map(|l| {
                    s.gateways.insert(l.value.branch.clone(), l);
                }),
                Some(b'd') => serde_json::from_slice::<Latest<DeviceHealth>>(&v).map(|l| {
                    s.devices.insert((l.value.branch.clone(), l.value.device.id.clone()), l);
                }),
                Some(b'c') => serde_json::from_slice::<Latest<CoverageReport>>(&v).map(|l| {
                    s.coverage.insert(l.value.branch.clone(), l);
                }),
                _ => Ok(()),
            };
            if let Err(e) = parsed {
                tracing::warn!(store = %self.path.display(), error = %e, "unreadable latest value skipped");
            }
        }
        Ok(s)
    }

    /// Everything, for the report (not yet normalized; see [`History::normalize`]).
    pub fn history(&self) -> Result<History, StoreError> {
        Ok(History {
            alerts: self.alerts()?,
            gateway: self.scan(&self.gateway)?,
            devices: self.scan(&self.devices)?,
            zones: self.scan(&self.zones)?,
            latest: self.snapshot()?,
        })
    }
}

/// sled reports another process's lock only as an I/O error with this text.
fn is_lock_error(e: &sled::Error) -> bool {
    e.to_string().contains("could not acquire lock")
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p);
    }
    k
}

fn branch_key(tag: u8, branch: &BranchId) -> Vec<u8> {
    join(&[&[tag], branch.as_str().as_bytes()])
}

fn device_key(branch: &BranchId, device: &DeviceId) -> Vec<u8> {
    join(&[b"d", branch.as_str().as_bytes(), device.as_str().as_bytes()])
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use protocols::status::{DEVICE_HEALTH_SCHEMA, GATEWAY_STATUS_SCHEMA, GatewayState};
    use protocols::{DeviceRef, DeviceType};

    fn t(m: u32) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 1, 1, 10, m, 0).unwrap()
    }

    fn gw(status: GatewayState, at: Option<Timestamp>) -> Message {
        Message::Gateway(GatewayStatus {
            schema: GATEWAY_STATUS_SCHEMA.into(),
            branch: BranchId::new("b1").unwrap(),
            status,
            reason: None,
            at,
            version: "1".into(),
        })
    }

    #[test]
    fn retained_repeats_are_not_changes_and_a_will_uses_receipt_time() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.ingest(&gw(GatewayState::Online, Some(t(0))), t(0)).unwrap(), Outcome::Changed);
        assert_eq!(s.ingest(&gw(GatewayState::Online, Some(t(1))), t(1)).unwrap(), Outcome::Unchanged);
        assert_eq!(s.ingest(&gw(GatewayState::Offline, None), t(5)).unwrap(), Outcome::Changed);
        let h = s.history().unwrap();
        assert_eq!(h.gateway.len(), 2);
        assert_eq!(h.gateway[1].at, t(5));
        assert_eq!(h.latest.gateways.values().next().unwrap().since, Some(t(5)));
    }

    #[test]
    fn device_changes_are_recorded_at_since() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let dev = |state: &str, since| {
            Message::Device(DeviceHealth {
                schema: DEVICE_HEALTH_SCHEMA.into(),
                branch: BranchId::new("b1").unwrap(),
                device: DeviceRef {
                    id: DeviceId::new("cam-1").unwrap(),
                    device_type: DeviceType::Camera,
                    name: "Lobby".into(),
                    zones: vec![],
                },
                state: state.into(),
                since,
                updated_at: since,
                reason: None,
                clock_skew_ms: None,
            })
        };
        s.ingest(&dev("online", t(0)), t(0)).unwrap();
        s.ingest(&dev("offline", t(3)), t(4)).unwrap();
        s.ingest(&dev("offline", t(3)), t(6)).unwrap();
        let h = s.history().unwrap();
        assert_eq!(
            h.devices.iter().map(|d| (d.state.as_str(), d.at)).collect::<Vec<_>>(),
            vec![("online", t(0)), ("offline", t(3))]
        );
        assert_eq!(s.counters().unwrap().device_changes, 2);
    }

    #[test]
    fn a_locked_store_is_read_from_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let w = Store::open(dir.path()).unwrap();
        w.ingest(&gw(GatewayState::Online, Some(t(0))), t(0)).unwrap();
        w.db.flush().unwrap();
        let r = Store::open_read(dir.path()).unwrap();
        assert_eq!(r.counters().unwrap().gateway_changes, 1);
        assert!(matches!(Store::open(dir.path()), Err(StoreError::Locked(_))));
        assert!(matches!(Store::open_read(&dir.path().join("nope")), Err(StoreError::Missing(_))));
    }
}
