//! Health: turns observations (facts) into events (decisions).
//!
//! One [`Engine`] owns every device's state machine, so there are no locks and the order of
//! decisions is the order of observations. It is synchronous and pure apart from the clock
//! values handed in, so every rule here is unit-tested without sockets.
//!
//! Rules (see docs/DESIGN.md, "Health semantics"):
//! - a device is lost after `offline_after` consecutive failed polls and back after
//!   `online_after` good ones; the alert is raised once and cleared once;
//! - a camera that keeps coming and going is reported `flapping` and held raised until it has
//!   stayed good for a settle time that doubles each time it flaps again;
//! - maintenance devices are watched but never alert;
//! - a camera lost while a partition is armed, or that leaves a required zone uncovered, is
//!   critical; 24-hour (panic) zones are always armed;
//! - alarm zones and doors are edge-triggered from the panel's decoded points;
//! - a device is `unknown` until proven, and what was raised before a restart is taken over.
//!
//! Layout: `debounce.rs` (the N/M switch), `camera.rs` (probes, flapping, the camera's view
//! for coverage and linkage), `panel.rs` (readability, heartbeats, fault points), `zone.rs`
//! (alarm zones), `door.rs` (forced and held-open doors), `alerts.rs` (fault alerts),
//! `restore.rs` (conditions taken over at start), `gateway.rs` (the gateway's own faults). The
//! engine works on the typed [`Site`] (`site.rs`): ids parsed and references resolved once.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use protocols::alert::{AlarmLinkDetails, CameraOfflineDetails, DeviceFaultDetails, DoorStatusDetails};
use protocols::status::DEVICE_HEALTH_SCHEMA;
use protocols::time::Timestamp;
use protocols::{
    Alert, AlertBody, AlertState, BranchId, DeviceHealth, DeviceId, DeviceRef, DeviceType, DoorState, Severity, Topics,
    ZoneId,
};

use crate::config::PanelKind;
use crate::coverage::{CameraView, Coverage};
use crate::events::{GatewayEvent, Retained};
use crate::linkage::{CameraLive, any_down, linked_cameras};
use crate::messages::{Lang, Msg};
use crate::pollers::{CameraObservation, Observation, PanelFault, PanelObservation, PanelOutcome, Reach, Video};
use crate::site::Site;

mod alerts;
mod camera;
mod debounce;
mod door;
pub mod gateway;
mod panel;
mod restore;
#[cfg(test)]
mod tests;
mod zone;

use camera::CameraState;
use debounce::{Debounce, Edge};
use door::DoorRuntime;
pub use gateway::{GatewayFaults, gateway_device};
use panel::PanelState;
use zone::AlarmZoneState;

/// Raise/clear cycles within [`FLAP_WINDOW`] after which a camera counts as flapping.
const FLAP_CYCLES: usize = 2;
const FLAP_WINDOW: Duration = Duration::from_secs(600);
const FLAP_SETTLE_START: Duration = Duration::from_secs(60);
const FLAP_SETTLE_MAX: Duration = Duration::from_secs(3600);
/// A panel heartbeat that has not changed for this long means the panel is hung.
const HEARTBEAT_STALE: Duration = Duration::from_secs(10);
/// Coverage is first published once every camera has reported, or after this long.
const COVERAGE_GRACE: Duration = Duration::from_secs(30);

/// What the engine decided: alerts for the outbox, retained state for the uplink, and
/// snapshots to take for alarms configured with `snapshot = true`.
#[derive(Debug, Default)]
pub struct Output {
    pub alerts: Vec<Alert>,
    pub retained: Vec<Retained>,
    pub snapshots: Vec<SnapshotRequest>,
}

impl Output {
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.retained.is_empty() && self.snapshots.is_empty()
    }
}

/// Take a picture from each of these cameras for the alarm `alert`, then send a follow-up.
#[derive(Debug, Clone)]
pub struct SnapshotRequest {
    pub alert: Alert,
    /// (camera id, snapshot URI last reported by the camera).
    pub cameras: Vec<(DeviceId, String)>,
}

/// The health engine of one branch.
pub struct Engine {
    /// Shared so that loops over its zones and doors borrow a cheap handle, not a copy.
    site: std::sync::Arc<Site>,
    branch: BranchId,
    topics: Topics,
    cameras: BTreeMap<DeviceId, CameraState>,
    panels: BTreeMap<DeviceId, PanelState>,
    alarm_zones: BTreeMap<ZoneId, AlarmZoneState>,
    doors: BTreeMap<ZoneId, DoorRuntime>,
    coverage: Coverage,
    started: Instant,
    coverage_started: bool,
    last_coverage_publish: Option<Instant>,
    /// The gateway's own faults (link down, publishes refused, events dropped).
    faults: GatewayFaults,
    lang: Lang,
    /// A camera's published state changed since coverage was last computed. Coverage is
    /// recomputed only then (or when due): recomputing per observation cost O(cameras) per
    /// probe and per panel read, most of the gateway's CPU at 1,000 cameras.
    coverage_dirty: bool,
    /// Whether any partition is armed, recomputed on panel observations only.
    armed: bool,
}

impl Engine {
    /// An engine for `site` (typed and resolved: see [`Site::new`]).
    pub fn new(site: &Site, topics: Topics, now: Instant) -> Engine {
        let branch = site.branch.clone();
        let mut cameras = BTreeMap::new();
        for c in &site.cameras {
            let device = DeviceRef {
                id: c.id.clone(),
                device_type: DeviceType::Camera,
                name: c.name.clone(),
                zones: c.zones.clone(),
            };
            cameras.insert(
                c.id.clone(),
                CameraState {
                    device,
                    maintenance: c.maintenance,
                    debounce: Debounce::default(),
                    known: false,
                    proven: false,
                    restored: false,
                    last: None,
                    raised_status: None,
                    cycles: VecDeque::new(),
                    flapping: false,
                    settle: FLAP_SETTLE_START,
                    settled_at: None,
                    good_since: None,
                    active_events: BTreeMap::new(),
                    published_state: None,
                },
            );
        }
        let mut panels = BTreeMap::new();
        for p in &site.panels {
            let id = p.id.clone();
            let device_type = p.kind.device_type();
            panels.insert(
                id.clone(),
                PanelState {
                    device: DeviceRef { id, device_type, name: p.name.clone(), zones: vec![] },
                    kind: p.kind,
                    maintenance: p.maintenance,
                    debounce: Debounce::default(),
                    last_fault: None,
                    points: BTreeMap::new(),
                    heartbeat: None,
                    heartbeat_raised: false,
                    fault_points: BTreeMap::new(),
                    roles: p.roles.clone(),
                    partitions: p
                        .roles
                        .iter()
                        .filter(|(_, r)| **r == protocols::modbus::Role::Partition)
                        .map(|(k, _)| k.clone())
                        .collect(),
                    armed: false,
                    published_state: None,
                    proven: false,
                    restored: false,
                    restored_faults: Default::default(),
                },
            );
        }
        let mut faults =
            GatewayFaults::new(branch.clone(), gateway_device(&format!("{} gateway", site.name)), site.lang);
        faults.set_bound(site.bound.0, site.bound.1);
        Engine {
            branch,
            topics,
            cameras,
            panels,
            alarm_zones: site.alarm_zones.iter().map(|z| (z.id.clone(), AlarmZoneState::default())).collect(),
            doors: site.doors.iter().map(|d| (d.id.clone(), DoorRuntime::default())).collect(),
            coverage: Coverage::new(site),
            started: now,
            coverage_started: false,
            last_coverage_publish: None,
            faults,
            lang: site.lang,
            coverage_dirty: true,
            armed: false,
            site: std::sync::Arc::new(site.clone()),
        }
    }

    /// Feeds one event of the gateway's own plumbing (uplink, outbox).
    pub fn gateway_event(&mut self, ev: GatewayEvent, now: Instant) -> Output {
        Output { alerts: self.faults.on_event(ev, now), ..Output::default() }
    }

    /// Feeds one observation.
    pub fn observe(&mut self, obs: Observation, now: Instant) -> Output {
        let mut out = Output::default();
        match obs {
            Observation::Camera(c) => self.observe_camera(c, now, &mut out),
            Observation::Panel(p) => self.observe_panel(p, now, &mut out),
        }
        self.refresh_coverage(now, false, &mut out);
        out
    }

    /// Timers: held-open doors, stale heartbeats, flap settle, periodic coverage.
    pub fn tick(&mut self, now: Instant, wall: Timestamp) -> Output {
        let mut out = Output::default();
        self.tick_doors(now, wall, &mut out);
        self.tick_heartbeats(now, wall, &mut out);
        self.tick_flapping(now, wall, &mut out);
        out.alerts.extend(self.faults.tick(now));
        self.refresh_coverage(now, true, &mut out);
        out
    }

    /// Whether any alarm partition is armed right now.
    pub fn armed(&self) -> bool {
        self.armed
    }

    // ---- cameras ----

    // ---- panels ----

    fn snapshot_request(&self, alert: &Alert, linked: &[DeviceId]) -> SnapshotRequest {
        let cameras = linked
            .iter()
            .filter_map(|id| {
                let uri = self.cameras.get(id)?.last.as_ref()?.snapshot_uri.clone()?;
                Some((id.clone(), uri))
            })
            .collect();
        SnapshotRequest { alert: alert.clone(), cameras }
    }

    /// The language of messages.
    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// The configured name of a zone, for messages.
    fn zone_name(&self, id: &ZoneId) -> String {
        self.site.zone(id).map(|z| z.name.clone()).unwrap_or_else(|| id.to_string())
    }

    // ---- coverage ----

    fn refresh_coverage(&mut self, now: Instant, periodic: bool, out: &mut Output) {
        let due =
            periodic && self.last_coverage_publish.is_none_or(|t| now.duration_since(t) >= self.site.coverage_period);
        if !self.coverage_dirty && !due {
            return;
        }
        if !self.coverage_started {
            let all_known = self.cameras.values().all(|c| c.known);
            if !all_known && now.duration_since(self.started) < COVERAGE_GRACE {
                return;
            }
            self.coverage_started = true;
        }
        self.coverage_dirty = false;
        let views = self.camera_views();
        let wall = protocols::time::now();
        let report = match self.coverage.update(&views, wall) {
            Some(r) => Some(r),
            None if due => self.coverage.last().cloned(),
            None => None,
        };
        if let Some(r) = report {
            self.last_coverage_publish = Some(now);
            out.retained.push(retained(self.topics.coverage(), &r));
        }
    }
}

fn retained<T: serde::Serialize>(topic: String, value: &T) -> Retained {
    Retained { topic, payload: serde_json::to_vec(value).unwrap_or_default() }
}
