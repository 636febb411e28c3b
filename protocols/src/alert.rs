//! The alert payload (`branch-alert/1`): one JSON document per alert on
//! `{prefix}/{branch}/alerts/{kind}`. Delivery is at-least-once; consumers dedupe on
//! (`branch`, `id`) and detect gaps in `seq`. Schema: `docs/schemas/branch-alert-1.json`.

use serde::{Deserialize, Serialize};

use crate::ids::{BranchId, DeviceId, Seq, ZoneId};
use crate::time::{Timestamp, rfc3339_ms};

pub const ALERT_SCHEMA: &str = "branch-alert/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    CameraOffline,
    AlarmLink,
    DoorStatus,
    DeviceFault,
}

impl AlertKind {
    pub const ALL: [AlertKind; 4] =
        [AlertKind::CameraOffline, AlertKind::AlarmLink, AlertKind::DoorStatus, AlertKind::DeviceFault];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::CameraOffline => "camera-offline",
            AlertKind::AlarmLink => "alarm-link",
            AlertKind::DoorStatus => "door-status",
            AlertKind::DeviceFault => "device-fault",
        }
    }
    pub fn parse(s: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Raised,
    Cleared,
}

/// Ordered: `Info < Warning < Major < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Major,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }
    pub fn parse(s: &str) -> Option<Severity> {
        [Severity::Info, Severity::Warning, Severity::Major, Severity::Critical].into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceType {
    Camera,
    AlarmPanel,
    AccessController,
    Gateway,
}

impl DeviceType {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Camera => "camera",
            DeviceType::AlarmPanel => "alarm-panel",
            DeviceType::AccessController => "access-controller",
            DeviceType::Gateway => "gateway",
        }
    }
}

/// The device an alert is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRef {
    pub id: DeviceId,
    #[serde(rename = "type")]
    pub device_type: DeviceType,
    pub name: String,
    #[serde(default)]
    pub zones: Vec<ZoneId>,
}

/// One alert as published to head office.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub schema: String,
    /// Globally unique (UUID v7: time-ordered).
    pub id: String,
    pub seq: Seq,
    pub branch: BranchId,
    pub state: AlertState,
    pub severity: Severity,
    pub device: DeviceRef,
    #[serde(with = "rfc3339_ms")]
    pub occurred_at: Timestamp,
    #[serde(with = "rfc3339_ms")]
    pub detected_at: Timestamp,
    pub message: String,
    /// `kind` and `details` on the wire.
    #[serde(flatten)]
    pub body: AlertBody,
}

impl Alert {
    /// A new alert with a fresh UUID v7 id, `seq` 0 (the outbox assigns it) and
    /// `detected_at` now.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        branch: BranchId,
        device: DeviceRef,
        state: AlertState,
        severity: Severity,
        occurred_at: Timestamp,
        message: String,
        body: AlertBody,
    ) -> Alert {
        Alert {
            schema: ALERT_SCHEMA.to_string(),
            id: uuid::Uuid::now_v7().to_string(),
            seq: Seq(0),
            branch,
            state,
            severity,
            device,
            occurred_at,
            detected_at: crate::time::now(),
            message,
            body,
        }
    }

    pub fn kind(&self) -> AlertKind {
        self.body.kind()
    }
    /// Whether this alert jumps the queue after an outage (alarms and forced doors).
    pub fn is_priority(&self) -> bool {
        self.body.is_priority()
    }

    /// The condition this alert raises or clears, as one string: kind, device and subject
    /// (`details.zone` of an `alarm-link`, `details.door` of a `door-status`, `details.fault`
    /// of a `device-fault`), which is how a `cleared` alert names the `raised` one it ends
    /// (CONTRACT.md 4.3). `None` for alerts that are no condition: an alarm's follow-up with
    /// snapshots, and the one-off `outbox-overflow` report.
    pub fn condition_key(&self) -> Option<String> {
        let subject = match &self.body {
            AlertBody::CameraOffline(_) => "",
            AlertBody::AlarmLink(d) if d.follow_up_of.is_some() => return None,
            AlertBody::AlarmLink(d) => d.zone.as_str(),
            AlertBody::DoorStatus(d) if d.follow_up_of.is_some() => return None,
            AlertBody::DoorStatus(d) => d.door.as_str(),
            AlertBody::DeviceFault(d) if d.fault == "outbox-overflow" => return None,
            AlertBody::DeviceFault(d) => d.fault.as_str(),
        };
        Some(format!("{}/{}/{}", self.kind().as_str(), self.device.id, subject))
    }
}

/// Kind-specific content; serialises as `"kind": "...", "details": {...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "details", rename_all = "kebab-case")]
pub enum AlertBody {
    CameraOffline(CameraOfflineDetails),
    AlarmLink(AlarmLinkDetails),
    DoorStatus(DoorStatusDetails),
    DeviceFault(DeviceFaultDetails),
}

impl AlertBody {
    /// The alert this one follows up (snapshots after an alarm), if it is a follow-up.
    pub fn follow_up_of(&self) -> Option<&str> {
        match self {
            AlertBody::AlarmLink(d) => d.follow_up_of.as_deref(),
            AlertBody::DoorStatus(d) => d.follow_up_of.as_deref(),
            _ => None,
        }
    }

    pub fn kind(&self) -> AlertKind {
        match self {
            AlertBody::CameraOffline(_) => AlertKind::CameraOffline,
            AlertBody::AlarmLink(_) => AlertKind::AlarmLink,
            AlertBody::DoorStatus(_) => AlertKind::DoorStatus,
            AlertBody::DeviceFault(_) => AlertKind::DeviceFault,
        }
    }
    pub fn is_priority(&self) -> bool {
        match self {
            AlertBody::AlarmLink(_) => true,
            AlertBody::DoorStatus(d) => d.door_state == DoorState::ForcedOpen,
            _ => false,
        }
    }
}

/// Why a camera counts as lost. `status` follows the ladder: `unreachable` (no TCP),
/// `tcp-only` (connects, no ONVIF answer), `auth-failed`, `stream-down`, `frozen`,
/// `signal-lost`, `flapping`; `online` on a cleared alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraOfflineDetails {
    pub status: String,
    /// The last probe failure, in words (`"connect: connection refused"`).
    pub reason: String,
    pub consecutive_failures: u32,
    /// Whether an alarm partition was armed when the camera was lost.
    pub armed: bool,
    /// Required zones left without their minimum of live cameras by this loss.
    #[serde(default)]
    pub uncovered_zones: Vec<ZoneId>,
    /// Camera clock minus gateway clock, when the camera answered GetSystemDateAndTime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_ms: Option<i64>,
}

/// A camera linked to an alarm zone or door, as it was when the alarm was detected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedCamera {
    pub id: DeviceId,
    pub name: String,
    pub online: bool,
    pub stream_alive: bool,
    pub frozen: bool,
    /// The picture check's fault when the picture shows nothing usable (`obstructed`, `dark`,
    /// `defocused`); absent when the picture is fine or was not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_uri: Option<String>,
}

impl LinkedCamera {
    /// Whether the camera was not watching when the alarm came: offline, no stream, a frozen
    /// picture or a picture that shows nothing usable. The one definition head office and the
    /// gateway both use ("an alarm with its camera down").
    pub fn is_down(&self) -> bool {
        !self.online || !self.stream_alive || self.frozen || self.picture.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmLinkDetails {
    /// The alarm zone (panel point) id from the site config.
    pub zone: ZoneId,
    pub zone_name: String,
    /// The panel's zone state: `alarm`, `tamper`, `fault`, `normal`…
    pub zone_state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Whether the zone's partition was armed (always true for 24-hour zones).
    pub armed: bool,
    pub twenty_four_hour: bool,
    /// The area (coverage zone) this alarm zone lies in, if configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<ZoneId>,
    pub cameras: Vec<LinkedCamera>,
    /// On a follow-up event: the `id` of the alert it completes (it is not a new alarm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up_of: Option<String>,
    /// Snapshots fetched from the linked cameras after the alarm (follow-up events only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<Snapshot>,
}

/// A picture a linked camera gave right after an alarm, stored by the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub camera: DeviceId,
    /// File name in the gateway's snapshot directory, absent when the fetch failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(with = "rfc3339_ms")]
    pub taken_at: Timestamp,
    pub bytes: u64,
    /// Why there is no picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DoorState {
    Closed,
    Open,
    ForcedOpen,
    HeldOpen,
}

impl DoorState {
    pub fn as_str(self) -> &'static str {
        match self {
            DoorState::Closed => "closed",
            DoorState::Open => "open",
            DoorState::ForcedOpen => "forced-open",
            DoorState::HeldOpen => "held-open",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorStatusDetails {
    pub door: ZoneId,
    pub door_name: String,
    pub door_state: DoorState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    pub cameras: Vec<LinkedCamera>,
    /// As for alarm-link: a follow-up event carrying snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up_of: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<Snapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceFaultDetails {
    /// A stable code: `unreachable`, `modbus-exception`, `heartbeat-stopped`, `tamper`,
    /// `signal-loss`, `storage-failure`, `ac-loss`, `battery-low`, `uplink-down`,
    /// `outbox-overflow`, …
    pub fault: String,
    pub reason: String,
    /// For `outbox-overflow`: how many events were dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_events: Option<u64>,
    /// For `uplink-down` cleared: how long the link was down, and how many events waited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_events: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::now;
    use chrono::SubsecRound;

    fn sample() -> Alert {
        Alert {
            schema: ALERT_SCHEMA.into(),
            id: "0190-test".into(),
            seq: Seq(7),
            branch: BranchId::new("b01").unwrap(),
            state: AlertState::Raised,
            severity: Severity::Critical,
            device: DeviceRef {
                id: DeviceId::new("alarm-1").unwrap(),
                device_type: DeviceType::AlarmPanel,
                name: "Intrusion panel".into(),
                zones: vec![],
            },
            // The wire carries milliseconds: build the sample at that precision.
            occurred_at: now().trunc_subsecs(3),
            detected_at: now().trunc_subsecs(3),
            message: "Zone vault fired".into(),
            body: AlertBody::AlarmLink(AlarmLinkDetails {
                follow_up_of: None,
                snapshots: Vec::new(),
                zone: ZoneId::new("z1").unwrap(),
                zone_name: "Vault".into(),
                zone_state: "alarm".into(),
                partition: Some("1".into()),
                armed: true,
                twenty_four_hour: false,
                area: None,
                cameras: vec![LinkedCamera {
                    id: DeviceId::new("cam-1").unwrap(),
                    name: "Vault cam".into(),
                    online: true,
                    stream_alive: true,
                    frozen: false,
                    picture: None,
                    stream_uri: Some("rtsp://127.0.0.1:8554/cam-1".into()),
                    snapshot_uri: None,
                }],
            }),
        }
    }

    #[test]
    fn kind_and_details_sit_at_the_top_level() {
        let a = sample();
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["kind"], "alarm-link");
        assert_eq!(v["details"]["zone"], "z1");
        assert_eq!(v["device"]["type"], "alarm-panel");
        assert_eq!(v["seq"], 7);
        let ts = v["occurred_at"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == "2026-11-24T08:00:00.123Z".len(), "{ts}");
        let back: Alert = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
        assert!(back.is_priority());
    }
}
