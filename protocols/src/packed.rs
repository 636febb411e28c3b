//! The compact binary form of an [`Alert`], for storage: the gateway's outbox keeps each
//! buffered alert in it and makes the JSON when it publishes. [postcard] (varint integers,
//! length-prefixed strings, one byte per enum code) over mirror types of the alert, because the
//! wire types use what a format without field names cannot carry (`flatten`, adjacently tagged
//! enums, `skip_serializing_if`).
//!
//! The promise: for every alert [`encode`] accepts, `serde_json::to_vec(&decode(&b, a.seq, t)?)`
//! is byte for byte `serde_json::to_vec(a)` — the same field order, timestamps, absent optional
//! fields — however often it is decoded. What is not kept, because the JSON does not show it:
//! the `seq` (the store keys its records by it and hands it back to [`decode`]) and timestamps'
//! precision below the millisecond (the wire carries milliseconds). What is packed tighter than
//! it looks: an `id` in the canonical UUID form (lowercase, hyphenated: what [`Alert::new`]
//! makes) as its 16 bytes, `schema` only when it is not [`ALERT_SCHEMA`], `detected_at` as
//! milliseconds after `occurred_at`.
//!
//! **Strings kept once.** Most of an alert's bytes are strings that repeat from alert to alert:
//! the branch, device ids and names, zones, the message, the status and reason. A store can keep
//! each once in a table of its own ([`Interner`] while encoding, [`Strings`] while decoding) and
//! the packed alert then names it by its index, in one or two bytes. A string the table does not
//! take is written out. The alert's `id`, `follow_up_of` and a snapshot's file name are unique
//! and always written out. The store must give [`decode`] the table the alert was encoded with:
//! an index means nothing in another.
//!
//! [`encode`] refuses what it cannot give back exactly — a timestamp inside a leap second, a
//! timestamp or an interval outside ±2⁶³ ms — with [`PackError::Unrepresentable`]; the store
//! keeps such an alert as JSON instead.
//!
//! This is a storage format: records written by one release are read by the next. The field
//! order and the codes below never change; a change is a new format, told apart by the store.

use std::borrow::Cow;
use std::marker::PhantomData;

use chrono::DateTime;
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::alert::{
    ALERT_SCHEMA, AlarmLinkDetails, Alert, AlertBody, AlertState, CameraOfflineDetails, DeviceFaultDetails, DeviceRef,
    DeviceType, DoorState, DoorStatusDetails, LinkedCamera, Severity, Snapshot,
};
use crate::ids::{BranchId, DeviceId, IdError, Seq, ZoneId};
use crate::time::Timestamp;

/// Why an alert could not be packed or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The alert has no exact compact form (keep it as JSON).
    #[error("the alert has no compact form: {0}")]
    Unrepresentable(&'static str),
    #[error("compact alert: {0}")]
    Postcard(#[from] postcard::Error),
    #[error("compact alert: unknown {what} code {code}")]
    Code { what: &'static str, code: u8 },
    #[error("compact alert: {0} bytes left over")]
    Trailing(usize),
    #[error("compact alert: timestamp out of range")]
    Time,
    #[error("compact alert: string {0} is not in the table")]
    MissingString(u32),
    #[error("compact alert: an id {0}")]
    Id(#[from] IdError),
}

/// The encoding side of a store's string table.
pub trait Interner {
    /// The index of `s` in the table, adding it if the table takes it; `None` writes `s` out.
    /// An index, once given for a string, must name that string for as long as any record
    /// encoded with it can be read.
    fn intern(&mut self, s: &str) -> Option<u32>;
}

/// The decoding side of a store's string table.
pub trait Strings {
    fn get(&self, index: u32) -> Option<&str>;
}

/// No table: every string written out.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTable;

impl Interner for NoTable {
    fn intern(&mut self, _: &str) -> Option<u32> {
        None
    }
}

impl Strings for NoTable {
    fn get(&self, _: u32) -> Option<&str> {
        None
    }
}

/// The compact form of `alert`, without its `seq`, every string written out.
pub fn encode(alert: &Alert) -> Result<Vec<u8>, PackError> {
    let mut out = Vec::with_capacity(192 + alert.message.len());
    encode_into(alert, &mut NoTable, &mut out)?;
    Ok(out)
}

/// Appends the compact form of `alert` (without its `seq`) to `out`, naming the strings
/// `table` takes by their index; on an error `out` is left as it was (strings `table` took
/// stay in it).
pub fn encode_into(alert: &Alert, table: &mut dyn Interner, out: &mut Vec<u8>) -> Result<(), PackError> {
    let packed = PAlert::of(alert, &mut Enc(table))?;
    let len = out.len();
    match postcard::to_extend(&packed, std::mem::take(out)) {
        Ok(v) => {
            *out = v;
            Ok(())
        }
        Err(e) => {
            // postcard's writer cannot fail on a Vec; keep the caller's bytes regardless.
            out.truncate(len);
            Err(e.into())
        }
    }
}

/// The alert packed in `bytes` (all of them), with `seq`; `strings` is the table it was
/// encoded with.
pub fn decode(bytes: &[u8], seq: Seq, strings: &dyn Strings) -> Result<Alert, PackError> {
    let (packed, rest) = postcard::take_from_bytes::<PAlert<'_>>(bytes)?;
    if !rest.is_empty() {
        return Err(PackError::Trailing(rest.len()));
    }
    packed.into_alert(seq, &Dec(strings))
}

// ---- mirror types (field order = stored order) ----

/// A string: `2·i` (a varint) for entry `i` of the table, or `1` and then the string.
enum PStr<'a> {
    Ref(u32),
    Text(Cow<'a, str>),
}

impl Serialize for PStr<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A tuple is its elements one after the other in postcard: no length, no tag.
        match self {
            PStr::Ref(i) => {
                let mut t = s.serialize_tuple(1)?;
                t.serialize_element(&(u64::from(*i) << 1))?;
                t.end()
            }
            PStr::Text(text) => {
                let mut t = s.serialize_tuple(2)?;
                t.serialize_element(&1u64)?;
                t.serialize_element(text.as_ref())?;
                t.end()
            }
        }
    }
}

impl<'de, 'a> Deserialize<'de> for PStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PStr<'a>, D::Error> {
        struct V<'a>(PhantomData<PStr<'a>>);
        impl<'de, 'a> Visitor<'de> for V<'a> {
            type Value = PStr<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a string table index")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PStr<'a>, A::Error> {
                let head: u64 = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
                match head {
                    1 => {
                        let text: String = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
                        Ok(PStr::Text(Cow::Owned(text)))
                    }
                    h if h & 1 == 0 => u32::try_from(h >> 1)
                        .map(PStr::Ref)
                        .map_err(|_| de::Error::custom("string table index out of range")),
                    h => Err(de::Error::custom(format_args!("unknown string tag {h}"))),
                }
            }
        }
        // Reads one element (an index) or two (the tag, then the string).
        d.deserialize_tuple(2, V(PhantomData))
    }
}

/// A UUID in canonical form as its bytes, anything else as written.
#[derive(Serialize, Deserialize)]
enum PId<'a> {
    Uuid([u8; 16]),
    Text(Cow<'a, str>),
}

impl<'a> PId<'a> {
    fn of(s: &'a str) -> PId<'a> {
        if let Ok(u) = uuid::Uuid::try_parse(s) {
            let mut buf = uuid::Uuid::encode_buffer();
            if *u.hyphenated().encode_lower(&mut buf) == *s {
                return PId::Uuid(*u.as_bytes());
            }
        }
        PId::Text(Cow::Borrowed(s))
    }
    fn into_string(self) -> String {
        match self {
            PId::Uuid(b) => uuid::Uuid::from_bytes(b).hyphenated().to_string(),
            PId::Text(s) => s.into_owned(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct PAlert<'a> {
    /// `None`: [`ALERT_SCHEMA`].
    schema: Option<Cow<'a, str>>,
    id: PId<'a>,
    branch: PStr<'a>,
    state: u8,
    severity: u8,
    device: PDevice<'a>,
    /// Milliseconds since the epoch.
    occurred_at: i64,
    /// Milliseconds after `occurred_at`.
    detected_after: i64,
    message: PStr<'a>,
    body: PBody<'a>,
}

#[derive(Serialize, Deserialize)]
struct PDevice<'a> {
    id: PStr<'a>,
    device_type: u8,
    name: PStr<'a>,
    zones: Vec<PStr<'a>>,
}

/// The variants' order is their stored code.
#[derive(Serialize, Deserialize)]
enum PBody<'a> {
    CameraOffline {
        status: PStr<'a>,
        reason: PStr<'a>,
        consecutive_failures: u32,
        armed: bool,
        uncovered_zones: Vec<PStr<'a>>,
        clock_skew_ms: Option<i64>,
    },
    AlarmLink {
        zone: PStr<'a>,
        zone_name: PStr<'a>,
        zone_state: PStr<'a>,
        partition: Option<PStr<'a>>,
        armed: bool,
        twenty_four_hour: bool,
        area: Option<PStr<'a>>,
        cameras: Vec<PCamera<'a>>,
        follow_up_of: Option<PId<'a>>,
        snapshots: Vec<PSnapshot<'a>>,
    },
    DoorStatus {
        door: PStr<'a>,
        door_name: PStr<'a>,
        door_state: u8,
        locked: Option<bool>,
        cameras: Vec<PCamera<'a>>,
        follow_up_of: Option<PId<'a>>,
        snapshots: Vec<PSnapshot<'a>>,
    },
    DeviceFault {
        fault: PStr<'a>,
        reason: PStr<'a>,
        dropped_events: Option<u64>,
        outage_ms: Option<u64>,
        waiting_events: Option<u64>,
    },
}

#[derive(Serialize, Deserialize)]
struct PCamera<'a> {
    id: PStr<'a>,
    name: PStr<'a>,
    online: bool,
    stream_alive: bool,
    frozen: bool,
    picture: Option<PStr<'a>>,
    stream_uri: Option<PStr<'a>>,
    snapshot_uri: Option<PStr<'a>>,
}

#[derive(Serialize, Deserialize)]
struct PSnapshot<'a> {
    camera: PStr<'a>,
    file: Option<Cow<'a, str>>,
    taken_at: i64,
    bytes: u64,
    error: Option<PStr<'a>>,
}

// ---- codes ----

fn state_code(s: AlertState) -> u8 {
    match s {
        AlertState::Raised => 0,
        AlertState::Cleared => 1,
    }
}

fn state_of(c: u8) -> Result<AlertState, PackError> {
    match c {
        0 => Ok(AlertState::Raised),
        1 => Ok(AlertState::Cleared),
        code => Err(PackError::Code { what: "state", code }),
    }
}

fn severity_code(s: Severity) -> u8 {
    match s {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Major => 2,
        Severity::Critical => 3,
    }
}

fn severity_of(c: u8) -> Result<Severity, PackError> {
    match c {
        0 => Ok(Severity::Info),
        1 => Ok(Severity::Warning),
        2 => Ok(Severity::Major),
        3 => Ok(Severity::Critical),
        code => Err(PackError::Code { what: "severity", code }),
    }
}

fn device_type_code(t: DeviceType) -> u8 {
    match t {
        DeviceType::Camera => 0,
        DeviceType::AlarmPanel => 1,
        DeviceType::AccessController => 2,
        DeviceType::Gateway => 3,
    }
}

fn device_type_of(c: u8) -> Result<DeviceType, PackError> {
    match c {
        0 => Ok(DeviceType::Camera),
        1 => Ok(DeviceType::AlarmPanel),
        2 => Ok(DeviceType::AccessController),
        3 => Ok(DeviceType::Gateway),
        code => Err(PackError::Code { what: "device type", code }),
    }
}

fn door_state_code(s: DoorState) -> u8 {
    match s {
        DoorState::Closed => 0,
        DoorState::Open => 1,
        DoorState::ForcedOpen => 2,
        DoorState::HeldOpen => 3,
    }
}

fn door_state_of(c: u8) -> Result<DoorState, PackError> {
    match c {
        0 => Ok(DoorState::Closed),
        1 => Ok(DoorState::Open),
        2 => Ok(DoorState::ForcedOpen),
        3 => Ok(DoorState::HeldOpen),
        code => Err(PackError::Code { what: "door state", code }),
    }
}

/// Milliseconds since the epoch; a leap second's timestamp has none that formats the same.
fn millis(ts: &Timestamp) -> Result<i64, PackError> {
    if ts.timestamp_subsec_nanos() >= 1_000_000_000 {
        return Err(PackError::Unrepresentable("a timestamp inside a leap second"));
    }
    Ok(ts.timestamp_millis())
}

fn timestamp(ms: i64) -> Result<Timestamp, PackError> {
    DateTime::from_timestamp_millis(ms).ok_or(PackError::Time)
}

// ---- Alert → mirror ----

struct Enc<'t>(&'t mut dyn Interner);

impl Enc<'_> {
    fn s<'a>(&mut self, s: &'a str) -> PStr<'a> {
        match self.0.intern(s) {
            Some(i) => PStr::Ref(i),
            None => PStr::Text(Cow::Borrowed(s)),
        }
    }
    fn opt<'a>(&mut self, s: Option<&'a str>) -> Option<PStr<'a>> {
        s.map(|s| self.s(s))
    }
    fn all<'a, T: AsRef<str>>(&mut self, v: &'a [T]) -> Vec<PStr<'a>> {
        v.iter().map(|s| self.s(s.as_ref())).collect()
    }
}

impl<'a> PAlert<'a> {
    fn of(a: &'a Alert, e: &mut Enc<'_>) -> Result<PAlert<'a>, PackError> {
        let occurred_at = millis(&a.occurred_at)?;
        let detected_after = millis(&a.detected_at)?
            .checked_sub(occurred_at)
            .ok_or(PackError::Unrepresentable("detected_at too far from occurred_at"))?;
        // Strings are offered to the table in stored order.
        Ok(PAlert {
            schema: (a.schema != ALERT_SCHEMA).then_some(Cow::Borrowed(a.schema.as_str())),
            id: PId::of(&a.id),
            branch: e.s(a.branch.as_str()),
            state: state_code(a.state),
            severity: severity_code(a.severity),
            device: PDevice {
                id: e.s(a.device.id.as_str()),
                device_type: device_type_code(a.device.device_type),
                name: e.s(&a.device.name),
                zones: e.all(&a.device.zones),
            },
            occurred_at,
            detected_after,
            message: e.s(&a.message),
            body: PBody::of(&a.body, e)?,
        })
    }
}

impl<'a> PBody<'a> {
    fn of(b: &'a AlertBody, e: &mut Enc<'_>) -> Result<PBody<'a>, PackError> {
        Ok(match b {
            AlertBody::CameraOffline(d) => PBody::CameraOffline {
                status: e.s(&d.status),
                reason: e.s(&d.reason),
                consecutive_failures: d.consecutive_failures,
                armed: d.armed,
                uncovered_zones: e.all(&d.uncovered_zones),
                clock_skew_ms: d.clock_skew_ms,
            },
            AlertBody::AlarmLink(d) => PBody::AlarmLink {
                zone: e.s(d.zone.as_str()),
                zone_name: e.s(&d.zone_name),
                zone_state: e.s(&d.zone_state),
                partition: e.opt(d.partition.as_deref()),
                armed: d.armed,
                twenty_four_hour: d.twenty_four_hour,
                area: e.opt(d.area.as_ref().map(ZoneId::as_str)),
                cameras: d.cameras.iter().map(|c| PCamera::of(c, e)).collect(),
                follow_up_of: d.follow_up_of.as_deref().map(PId::of),
                snapshots: d.snapshots.iter().map(|s| PSnapshot::of(s, e)).collect::<Result<_, _>>()?,
            },
            AlertBody::DoorStatus(d) => PBody::DoorStatus {
                door: e.s(d.door.as_str()),
                door_name: e.s(&d.door_name),
                door_state: door_state_code(d.door_state),
                locked: d.locked,
                cameras: d.cameras.iter().map(|c| PCamera::of(c, e)).collect(),
                follow_up_of: d.follow_up_of.as_deref().map(PId::of),
                snapshots: d.snapshots.iter().map(|s| PSnapshot::of(s, e)).collect::<Result<_, _>>()?,
            },
            AlertBody::DeviceFault(d) => PBody::DeviceFault {
                fault: e.s(&d.fault),
                reason: e.s(&d.reason),
                dropped_events: d.dropped_events,
                outage_ms: d.outage_ms,
                waiting_events: d.waiting_events,
            },
        })
    }
}

impl<'a> PCamera<'a> {
    fn of(c: &'a LinkedCamera, e: &mut Enc<'_>) -> PCamera<'a> {
        PCamera {
            id: e.s(c.id.as_str()),
            name: e.s(&c.name),
            online: c.online,
            stream_alive: c.stream_alive,
            frozen: c.frozen,
            picture: e.opt(c.picture.as_deref()),
            stream_uri: e.opt(c.stream_uri.as_deref()),
            snapshot_uri: e.opt(c.snapshot_uri.as_deref()),
        }
    }
}

impl<'a> PSnapshot<'a> {
    fn of(s: &'a Snapshot, e: &mut Enc<'_>) -> Result<PSnapshot<'a>, PackError> {
        Ok(PSnapshot {
            camera: e.s(s.camera.as_str()),
            file: s.file.as_deref().map(Cow::Borrowed),
            taken_at: millis(&s.taken_at)?,
            bytes: s.bytes,
            error: e.opt(s.error.as_deref()),
        })
    }
}

// ---- mirror → Alert ----

struct Dec<'t>(&'t dyn Strings);

impl Dec<'_> {
    fn s(&self, p: PStr<'_>) -> Result<String, PackError> {
        match p {
            PStr::Text(t) => Ok(t.into_owned()),
            PStr::Ref(i) => self.0.get(i).map(str::to_owned).ok_or(PackError::MissingString(i)),
        }
    }
    fn opt(&self, p: Option<PStr<'_>>) -> Result<Option<String>, PackError> {
        p.map(|p| self.s(p)).transpose()
    }
    fn device(&self, p: PStr<'_>) -> Result<DeviceId, PackError> {
        Ok(DeviceId::new(self.s(p)?)?)
    }
    fn zone(&self, p: PStr<'_>) -> Result<ZoneId, PackError> {
        Ok(ZoneId::new(self.s(p)?)?)
    }
    fn zones(&self, v: Vec<PStr<'_>>) -> Result<Vec<ZoneId>, PackError> {
        v.into_iter().map(|p| self.zone(p)).collect()
    }
    fn cameras(&self, v: Vec<PCamera<'_>>) -> Result<Vec<LinkedCamera>, PackError> {
        v.into_iter()
            .map(|c| {
                Ok(LinkedCamera {
                    id: self.device(c.id)?,
                    name: self.s(c.name)?,
                    online: c.online,
                    stream_alive: c.stream_alive,
                    frozen: c.frozen,
                    picture: self.opt(c.picture)?,
                    stream_uri: self.opt(c.stream_uri)?,
                    snapshot_uri: self.opt(c.snapshot_uri)?,
                })
            })
            .collect()
    }
    fn snapshots(&self, v: Vec<PSnapshot<'_>>) -> Result<Vec<Snapshot>, PackError> {
        v.into_iter()
            .map(|s| {
                Ok(Snapshot {
                    camera: self.device(s.camera)?,
                    file: s.file.map(Cow::into_owned),
                    taken_at: timestamp(s.taken_at)?,
                    bytes: s.bytes,
                    error: self.opt(s.error)?,
                })
            })
            .collect()
    }
}

impl PAlert<'_> {
    fn into_alert(self, seq: Seq, d: &Dec<'_>) -> Result<Alert, PackError> {
        let occurred_at = timestamp(self.occurred_at)?;
        let detected_at = timestamp(self.occurred_at.checked_add(self.detected_after).ok_or(PackError::Time)?)?;
        Ok(Alert {
            schema: self.schema.map_or_else(|| ALERT_SCHEMA.to_string(), Cow::into_owned),
            id: self.id.into_string(),
            seq,
            branch: BranchId::new(d.s(self.branch)?)?,
            state: state_of(self.state)?,
            severity: severity_of(self.severity)?,
            device: DeviceRef {
                id: d.device(self.device.id)?,
                device_type: device_type_of(self.device.device_type)?,
                name: d.s(self.device.name)?,
                zones: d.zones(self.device.zones)?,
            },
            occurred_at,
            detected_at,
            message: d.s(self.message)?,
            body: self.body.into_body(d)?,
        })
    }
}

impl PBody<'_> {
    fn into_body(self, d: &Dec<'_>) -> Result<AlertBody, PackError> {
        Ok(match self {
            PBody::CameraOffline { status, reason, consecutive_failures, armed, uncovered_zones, clock_skew_ms } => {
                AlertBody::CameraOffline(CameraOfflineDetails {
                    status: d.s(status)?,
                    reason: d.s(reason)?,
                    consecutive_failures,
                    armed,
                    uncovered_zones: d.zones(uncovered_zones)?,
                    clock_skew_ms,
                })
            }
            PBody::AlarmLink {
                zone,
                zone_name,
                zone_state,
                partition,
                armed,
                twenty_four_hour,
                area,
                cameras,
                follow_up_of,
                snapshots,
            } => AlertBody::AlarmLink(AlarmLinkDetails {
                zone: d.zone(zone)?,
                zone_name: d.s(zone_name)?,
                zone_state: d.s(zone_state)?,
                partition: d.opt(partition)?,
                armed,
                twenty_four_hour,
                area: area.map(|a| d.zone(a)).transpose()?,
                cameras: d.cameras(cameras)?,
                follow_up_of: follow_up_of.map(PId::into_string),
                snapshots: d.snapshots(snapshots)?,
            }),
            PBody::DoorStatus { door, door_name, door_state, locked, cameras, follow_up_of, snapshots } => {
                AlertBody::DoorStatus(DoorStatusDetails {
                    door: d.zone(door)?,
                    door_name: d.s(door_name)?,
                    door_state: door_state_of(door_state)?,
                    locked,
                    cameras: d.cameras(cameras)?,
                    follow_up_of: follow_up_of.map(PId::into_string),
                    snapshots: d.snapshots(snapshots)?,
                })
            }
            PBody::DeviceFault { fault, reason, dropped_events, outage_ms, waiting_events } => {
                AlertBody::DeviceFault(DeviceFaultDetails {
                    fault: d.s(fault)?,
                    reason: d.s(reason)?,
                    dropped_events,
                    outage_ms,
                    waiting_events,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertKind;
    use chrono::TimeZone;

    /// A table for the tests: every string taken, up to `cap`.
    #[derive(Default)]
    struct Table {
        strings: Vec<String>,
        cap: usize,
    }

    impl Interner for Table {
        fn intern(&mut self, s: &str) -> Option<u32> {
            if let Some(i) = self.strings.iter().position(|x| x == s) {
                return Some(i as u32);
            }
            (self.strings.len() < self.cap).then(|| {
                self.strings.push(s.to_string());
                self.strings.len() as u32 - 1
            })
        }
    }

    impl Strings for Table {
        fn get(&self, i: u32) -> Option<&str> {
            self.strings.get(i as usize).map(String::as_str)
        }
    }

    fn device(id: &str, t: DeviceType, zones: &[&str]) -> DeviceRef {
        DeviceRef {
            id: DeviceId::new(id).unwrap(),
            device_type: t,
            name: format!("{id} 名称"),
            zones: zones.iter().map(|z| ZoneId::new(*z).unwrap()).collect(),
        }
    }

    fn camera(id: &str, full: bool) -> LinkedCamera {
        LinkedCamera {
            id: DeviceId::new(id).unwrap(),
            name: format!("Camera {id}"),
            online: full,
            stream_alive: !full,
            frozen: full,
            picture: full.then(|| "dark".to_string()),
            stream_uri: full.then(|| format!("rtsp://10.0.0.9:554/{id}")),
            snapshot_uri: full.then(|| format!("http://10.0.0.9/snap/{id}.jpg")),
        }
    }

    fn snapshots() -> Vec<Snapshot> {
        vec![
            Snapshot {
                camera: DeviceId::new("cam-1").unwrap(),
                file: Some("20261124T080000.123Z-cam-1.jpg".into()),
                taken_at: crate::time::now(),
                bytes: 48_213,
                error: None,
            },
            Snapshot {
                camera: DeviceId::new("cam-2").unwrap(),
                file: None,
                taken_at: crate::time::now(),
                bytes: 0,
                error: Some("connect: connection refused".into()),
            },
        ]
    }

    /// Every kind of body, with its optional fields both present and absent.
    fn bodies() -> Vec<AlertBody> {
        let zone = |z: &str| ZoneId::new(z).unwrap();
        vec![
            AlertBody::CameraOffline(CameraOfflineDetails {
                status: "unreachable".into(),
                reason: "connect: connection timed out".into(),
                consecutive_failures: 3,
                armed: true,
                uncovered_zones: vec![],
                clock_skew_ms: None,
            }),
            AlertBody::CameraOffline(CameraOfflineDetails {
                status: "frozen".into(),
                reason: "画面冻结".into(),
                consecutive_failures: u32::MAX,
                armed: false,
                uncovered_zones: vec![zone("hall"), zone("vault")],
                clock_skew_ms: Some(-1_234_567),
            }),
            AlertBody::AlarmLink(AlarmLinkDetails {
                zone: zone("z1"),
                zone_name: "Vault".into(),
                zone_state: "alarm".into(),
                partition: None,
                armed: true,
                twenty_four_hour: false,
                area: None,
                cameras: vec![],
                follow_up_of: None,
                snapshots: vec![],
            }),
            AlertBody::AlarmLink(AlarmLinkDetails {
                zone: zone("金库"),
                zone_name: "金库".into(),
                zone_state: "tamper".into(),
                partition: Some("1".into()),
                armed: false,
                twenty_four_hour: true,
                area: Some(zone("back-office")),
                cameras: vec![camera("cam-1", true), camera("cam-2", false)],
                follow_up_of: Some(uuid::Uuid::now_v7().to_string()),
                snapshots: snapshots(),
            }),
            AlertBody::DoorStatus(DoorStatusDetails {
                door: zone("d1"),
                door_name: "Main door".into(),
                door_state: DoorState::ForcedOpen,
                locked: None,
                cameras: vec![camera("cam-3", false)],
                follow_up_of: None,
                snapshots: vec![],
            }),
            AlertBody::DoorStatus(DoorStatusDetails {
                door: zone("d2"),
                door_name: "Cash room".into(),
                door_state: DoorState::HeldOpen,
                locked: Some(false),
                cameras: vec![camera("cam-4", true)],
                follow_up_of: Some("not-a-uuid".into()),
                snapshots: snapshots(),
            }),
            AlertBody::DeviceFault(DeviceFaultDetails {
                fault: "heartbeat-stopped".into(),
                reason: "no heartbeat for 30 s".into(),
                dropped_events: None,
                outage_ms: None,
                waiting_events: None,
            }),
            AlertBody::DeviceFault(DeviceFaultDetails {
                fault: "uplink-down".into(),
                reason: "broker unreachable".into(),
                dropped_events: Some(u64::MAX),
                outage_ms: Some(3_600_000),
                waiting_events: Some(0),
            }),
        ]
    }

    fn alerts() -> Vec<Alert> {
        let branch = BranchId::new("b0101").unwrap();
        let mut out = Vec::new();
        for (i, body) in bodies().into_iter().enumerate() {
            let dev = match body.kind() {
                AlertKind::CameraOffline => device("cam-1", DeviceType::Camera, &["hall"]),
                AlertKind::AlarmLink => device("panel-1", DeviceType::AlarmPanel, &[]),
                AlertKind::DoorStatus => device("door-ctl", DeviceType::AccessController, &["lobby", "vault"]),
                AlertKind::DeviceFault => device("gateway", DeviceType::Gateway, &[]),
            };
            let state = if i % 2 == 0 { AlertState::Raised } else { AlertState::Cleared };
            let severity = [Severity::Info, Severity::Warning, Severity::Major, Severity::Critical][i % 4];
            let mut a =
                Alert::new(branch.clone(), dev, state, severity, crate::time::now(), format!("message {i} 消息"), body);
            a.seq = Seq(1 + i as u64 * 1_000_003);
            out.push(a);
        }
        out
    }

    fn json(a: &Alert) -> Vec<u8> {
        serde_json::to_vec(a).unwrap()
    }

    #[test]
    fn every_kind_gives_back_the_same_json() {
        for a in alerts() {
            let packed = encode(&a).unwrap();
            let back = decode(&packed, a.seq, &NoTable).unwrap();
            assert_eq!(String::from_utf8(json(&back)).unwrap(), String::from_utf8(json(&a)).unwrap());
            // Decoding again gives the same bytes again.
            assert_eq!(json(&decode(&packed, a.seq, &NoTable).unwrap()), json(&a));
            assert!(packed.len() * 2 < json(&a).len(), "{} packed vs {} JSON", packed.len(), json(&a).len());
        }
    }

    #[test]
    fn with_a_table_strings_are_kept_once() {
        // A table that fills up half-way: some strings by index, the rest written out.
        for cap in [0, 5, 1_000] {
            let mut table = Table { cap, ..Table::default() };
            for a in alerts() {
                let mut packed = vec![0xAA];
                encode_into(&a, &mut table, &mut packed).unwrap();
                assert_eq!(packed[0], 0xAA, "the prefix is kept");
                let back = decode(&packed[1..], a.seq, &table).unwrap();
                assert_eq!(json(&back), json(&a));
                let again = {
                    let mut v = Vec::new();
                    encode_into(&a, &mut table, &mut v).unwrap();
                    v
                };
                if cap == 1_000 {
                    assert!(
                        again.len() * 2 < encode(&a).unwrap().len(),
                        "{} vs {}",
                        again.len(),
                        encode(&a).unwrap().len()
                    );
                }
            }
        }
    }

    #[test]
    fn an_index_missing_from_the_table_is_an_error() {
        let mut table = Table { cap: 1_000, ..Table::default() };
        let a = alerts().remove(0);
        let mut packed = Vec::new();
        encode_into(&a, &mut table, &mut packed).unwrap();
        assert!(matches!(decode(&packed, a.seq, &NoTable), Err(PackError::MissingString(0))));
        // A table whose entry is not a valid id.
        let bad = Table { strings: vec!["a/b".into(); 10], cap: 0 };
        assert!(matches!(decode(&packed, a.seq, &bad), Err(PackError::Id(_))));
    }

    #[test]
    fn odd_values_are_kept_as_written() {
        let mut a = alerts().remove(0);
        a.schema = "branch-alert/2".into();
        a.id = "0190-TEST".into();
        // An upper-case UUID is not the canonical form: kept as text, not lowercased.
        let mut b = alerts().remove(1);
        b.id = uuid::Uuid::now_v7().hyphenated().to_string().to_uppercase();
        // detected_at before occurred_at, and far from it.
        let mut c = alerts().remove(2);
        c.occurred_at = chrono::Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
        c.detected_at = chrono::Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        let mut d = alerts().remove(3);
        d.occurred_at = chrono::Utc.with_ymd_and_hms(1969, 7, 20, 20, 17, 40).unwrap();
        // Empty strings, and strings that look like the packed form's tags.
        let mut e = alerts().remove(6);
        e.message = String::new();
        e.device.name = "\u{1}\u{2}".into();
        for a in [a, b, c, d, e] {
            assert_eq!(json(&decode(&encode(&a).unwrap(), a.seq, &NoTable).unwrap()), json(&a));
        }
    }

    #[test]
    fn a_leap_second_is_refused_not_changed() {
        let mut a = alerts().remove(0);
        a.occurred_at = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_milli_opt(23, 59, 59, 1_500)
            .unwrap()
            .and_utc();
        assert!(matches!(encode(&a), Err(PackError::Unrepresentable(_))));
    }

    #[test]
    fn damaged_bytes_are_errors() {
        let a = alerts().remove(3);
        let packed = encode(&a).unwrap();
        for n in 0..packed.len() {
            assert!(decode(&packed[..n], a.seq, &NoTable).is_err(), "a prefix of {n} bytes decoded");
        }
        let mut longer = packed.clone();
        longer.push(0);
        assert!(matches!(decode(&longer, a.seq, &NoTable), Err(PackError::Trailing(1))));
        let mut bad = encode(&alerts().remove(0)).unwrap();
        // schema None, id Uuid (16 bytes), branch (tag 1, length, 5 bytes): the state code.
        bad[1 + 1 + 16 + 2 + 5] = 7;
        assert!(matches!(decode(&bad, a.seq, &NoTable), Err(PackError::Code { what: "state", code: 7 })));
        // An odd string tag other than 1.
        let mut bad = encode(&alerts().remove(0)).unwrap();
        bad[1 + 1 + 16] = 3;
        assert!(decode(&bad, a.seq, &NoTable).is_err());
    }

    /// The layout and the codes are stored: this pins them.
    #[test]
    fn layout_and_codes_are_stable() {
        let a = alerts().remove(0);
        let packed = encode(&a).unwrap();
        assert_eq!(packed[0], 0, "schema: None");
        assert_eq!(packed[1], 0, "id: Uuid");
        assert_eq!(&packed[2..18], uuid::Uuid::try_parse(&a.id).unwrap().as_bytes());
        assert_eq!(&packed[18..20], &[1, 5], "branch: written out, 5 bytes");
        assert_eq!(&packed[20..25], b"b0101");
        assert_eq!((packed[25], packed[26]), (0, 0), "raised, info");
        let mut table = Table { cap: 1, ..Table::default() };
        let mut v = Vec::new();
        encode_into(&a, &mut table, &mut v).unwrap();
        assert_eq!(&v[18..21], &[0, 0, 0], "branch: entry 0 (2·0); raised, info");
        assert_eq!(&v[21..23], &[1, 5], "device id: written out (the table is full)");
        for (i, s) in [Severity::Info, Severity::Warning, Severity::Major, Severity::Critical].into_iter().enumerate() {
            assert_eq!(severity_code(s), i as u8);
            assert_eq!(severity_of(i as u8).unwrap(), s);
        }
        for (i, t) in [DeviceType::Camera, DeviceType::AlarmPanel, DeviceType::AccessController, DeviceType::Gateway]
            .into_iter()
            .enumerate()
        {
            assert_eq!(device_type_code(t), i as u8);
            assert_eq!(device_type_of(i as u8).unwrap(), t);
        }
        for (i, d) in
            [DoorState::Closed, DoorState::Open, DoorState::ForcedOpen, DoorState::HeldOpen].into_iter().enumerate()
        {
            assert_eq!(door_state_code(d), i as u8);
            assert_eq!(door_state_of(i as u8).unwrap(), d);
        }
        assert_eq!(state_of(1).unwrap(), AlertState::Cleared);
    }
}
