//! Pollers are the sources of the pipeline: one task per device, each turning what it sees
//! into [`Observation`]s — facts ("probe failed: timeout"), never decisions. They know
//! nothing of health thresholds, alerts or MQTT; a slow device only delays its own task.

pub mod camera;
pub mod panel;

use std::collections::BTreeMap;
use std::sync::Arc;

use protocols::DeviceId;
use protocols::time::Timestamp;

/// What one poll of one device saw.
#[derive(Debug, Clone)]
pub enum Observation {
    Camera(CameraObservation),
    Panel(PanelObservation),
}

impl Observation {
    /// How long the poll that produced this took.
    pub fn duration(&self) -> std::time::Duration {
        match self {
            Observation::Camera(c) => c.duration,
            Observation::Panel(p) => p.duration,
        }
    }

    /// `camera` or `panel`, for metrics labels.
    pub fn source(&self) -> &'static str {
        match self {
            Observation::Camera(_) => "camera",
            Observation::Panel(_) => "panel",
        }
    }

    pub fn device(&self) -> &DeviceId {
        match self {
            Observation::Camera(c) => &c.device,
            Observation::Panel(p) => &p.device,
        }
    }
}

/// How far a camera got in one probe, from worst to best (the status ladder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reach {
    /// No TCP connection (refused, no route, connect timeout).
    Unreachable,
    /// TCP connects but ONVIF does not answer usefully (hung, HTTP 500, garbage).
    TcpOnly,
    /// ONVIF answers without auth, but our credentials are refused.
    AuthFailed,
    /// Authenticated ONVIF calls succeed.
    Online,
}

/// The state of the video itself, as far as the probe could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Video {
    /// Not checked (camera unreachable, or no stream URI yet).
    Unknown,
    /// RTSP DESCRIBE failed.
    StreamDown,
    /// Snapshot unchanged across the configured number of probes.
    Frozen,
    /// The camera reported video signal loss.
    SignalLost,
    /// The picture is nearly uniform: lens covered, sprayed or turned to a wall.
    Obstructed,
    /// The picture is dark (outside expected night darkness).
    Dark,
    /// The picture lost its detail against the camera's own baseline: out of focus.
    Defocused,
    /// Stream answers and the picture changes.
    Live,
}

/// A health event the camera pushed (through its PullPoint subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraEvent {
    /// `signal-loss`, `tamper`, `storage-failure`.
    pub fault: String,
    /// Whether the condition is now active (true) or over (false).
    pub active: bool,
    /// The ONVIF topic it came from.
    pub topic: String,
}

#[derive(Debug, Clone)]
pub struct CameraObservation {
    pub device: DeviceId,
    pub at: Timestamp,
    pub reach: Reach,
    pub video: Video,
    /// Why the probe fell short of `Online` + `Live`, in words.
    pub reason: Option<String>,
    /// Camera clock minus gateway clock.
    pub clock_skew_ms: Option<i64>,
    pub stream_uri: Option<String>,
    pub snapshot_uri: Option<String>,
    pub events: Vec<CameraEvent>,
    /// The main stream's encoder settings, when the camera told them.
    pub stream: Option<StreamInfo>,
    /// How long the probe took (all its requests).
    pub duration: std::time::Duration,
}

/// A camera's main stream as its video encoder configuration describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub resolution: crate::picture::Resolution,
    /// `H264`, `H265`, `JPEG`…
    pub encoding: String,
    /// The camera's minimum (`min_resolution`).
    pub minimum: crate::picture::Resolution,
}

impl StreamInfo {
    pub fn meets_minimum(&self) -> bool {
        self.resolution.meets(self.minimum)
    }
}

/// One decoded point of a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct PointValue {
    /// The raw value as read (bools as 0/1).
    pub raw: f64,
    /// The state the profile maps it to (`alarm`, `normal`, `forced`…), if any.
    pub state: Option<String>,
}

/// What one successful poll cycle hands over: the points whose raw value or state changed since
/// the previous hand-over, so that a panel whose 200 points sit still costs the engine nothing
/// and the poller no allocation. The first read after start and the first after a failed cycle
/// carry every point (`complete`); the engine keeps the merged picture (`merge_into`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PanelRead {
    /// Every point of the profile is in `changed` (first read, or first after a failure).
    pub complete: bool,
    /// The changed points, in the profile's order of point ids, each id shared with the profile.
    pub changed: Vec<(Arc<str>, PointValue)>,
}

impl PanelRead {
    /// The point's value, if it is part of this hand-over.
    pub fn get(&self, id: &str) -> Option<&PointValue> {
        self.changed.iter().find(|(k, _)| &**k == id).map(|(_, v)| v)
    }

    /// Brings `into` (the points as last known) up to date with this hand-over.
    pub fn merge_into(&self, into: &mut BTreeMap<String, PointValue>) {
        for (k, v) in &self.changed {
            match into.get_mut(&**k) {
                Some(slot) => slot.clone_from(v),
                None => {
                    into.insert(k.to_string(), v.clone());
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub enum PanelOutcome {
    /// The poll cycle read every point; what changed is handed over.
    Read(PanelRead),
    /// The poll cycle failed: no points this time.
    Failed { fault: PanelFault, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelFault {
    /// Could not connect, or the request timed out.
    Unreachable,
    /// The device answered with a Modbus exception (connection kept).
    Exception,
    /// The answer was malformed (wrong transaction id, bad length): connection dropped.
    Protocol,
}

#[derive(Debug, Clone)]
pub struct PanelObservation {
    pub device: DeviceId,
    pub at: Timestamp,
    pub outcome: PanelOutcome,
    /// How long the poll cycle took (all its requests).
    pub duration: std::time::Duration,
}
