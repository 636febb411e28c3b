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
//! - alarm zones and doors are edge-triggered from the panel's decoded points.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use protocols::alert::{AlarmLinkDetails, CameraOfflineDetails, DeviceFaultDetails, DoorStatusDetails};
use protocols::status::DEVICE_HEALTH_SCHEMA;
use protocols::time::Timestamp;
use protocols::{
    Alert, AlertBody, AlertState, BranchId, DeviceHealth, DeviceId, DeviceRef, DeviceType, DoorState, Severity, Topics,
    ZoneId,
};

use crate::config::{PanelKind, SiteConfig};
use crate::coverage::{CameraView, Coverage};
use crate::events::{GatewayEvent, Retained};
use crate::linkage::{CameraLive, any_down, linked_cameras};
use crate::messages::{Lang, Msg};
use crate::pollers::{CameraObservation, Observation, PanelFault, PanelObservation, PanelOutcome, Reach, Video};

pub mod gateway;
pub use gateway::{GatewayFaults, gateway_device};

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

/// What became of a condition raised before a restart.
enum Restored {
    /// Held raised until its device is observed.
    Held,
    /// Cannot be observed any more: cleared now, with this note.
    Gone(Msg<'static>),
}

/// Take a picture from each of these cameras for the alarm `alert`, then send a follow-up.
#[derive(Debug, Clone)]
pub struct SnapshotRequest {
    pub alert: Alert,
    /// (camera id, snapshot URI last reported by the camera).
    pub cameras: Vec<(DeviceId, String)>,
}

/// A debounced raise/clear switch: N failures to raise, M successes to clear.
#[derive(Debug, Clone, Default)]
struct Debounce {
    fails: u32,
    oks: u32,
    raised: bool,
    first_fail_at: Option<Timestamp>,
    /// When the current run of good polls began: a clear dates from the first good poll,
    /// as a raise dates from the first failed one, so durations are true to within a poll.
    first_ok_at: Option<Timestamp>,
}

enum Edge {
    Raise,
    Clear,
    None,
}

impl Debounce {
    fn observe(&mut self, ok: bool, at: Timestamp, offline_after: u32, online_after: u32) -> Edge {
        if ok {
            self.fails = 0;
            self.first_fail_at = None;
            self.first_ok_at.get_or_insert(at);
            self.oks = self.oks.saturating_add(1);
            if self.raised && self.oks >= online_after {
                self.raised = false;
                return Edge::Clear;
            }
        } else {
            self.oks = 0;
            self.first_ok_at = None;
            self.fails = self.fails.saturating_add(1);
            self.first_fail_at.get_or_insert(at);
            if !self.raised && self.fails >= offline_after {
                self.raised = true;
                return Edge::Raise;
            }
        }
        Edge::None
    }
}

#[derive(Debug)]
struct CameraState {
    device: DeviceRef,
    maintenance: bool,
    debounce: Debounce,
    /// Observed at least once.
    known: bool,
    /// Had at least one fully good probe: until then the camera is `unknown` and never counts
    /// as live video, whatever the debounce says.
    proven: bool,
    /// Its `camera-offline` was left raised by the previous run: the first probe decides.
    restored: bool,
    last: Option<CameraObservation>,
    /// The status the raised alert carries (`unreachable`, `frozen`…).
    raised_status: Option<String>,
    /// Completed raise/clear cycles, for flap detection.
    cycles: VecDeque<Instant>,
    flapping: bool,
    settle: Duration,
    /// When it last settled after flapping: flapping again within the flap window doubles
    /// the settle time (up to an hour); later, it starts over.
    settled_at: Option<Instant>,
    good_since: Option<Instant>,
    /// Active camera-pushed faults (signal-loss, tamper, storage-failure).
    active_events: BTreeMap<String, bool>,
    published_state: Option<String>,
}

#[derive(Debug)]
struct PanelState {
    device: DeviceRef,
    kind: PanelKind,
    maintenance: bool,
    debounce: Debounce,
    last_fault: Option<(PanelFault, String)>,
    points: BTreeMap<String, crate::pollers::PointValue>,
    heartbeat: Option<(f64, Instant)>,
    heartbeat_raised: bool,
    /// Raised fault points (panel-fault / reader-fault roles), by point id.
    fault_points: BTreeMap<String, String>,
    /// Point id → role, from the panel's profile.
    roles: BTreeMap<String, String>,
    /// A partition of this panel is armed (updated on each of its observations).
    armed: bool,
    published_state: Option<String>,
    /// Had at least one successful read (until then the panel is `unknown`).
    proven: bool,
    /// Its unreadable fault was left raised by the previous run: the first poll decides.
    restored: bool,
    /// Fault-point codes left raised by the previous run: the first read decides.
    restored_faults: std::collections::BTreeSet<String>,
}

#[derive(Debug, Default)]
struct AlarmZoneState {
    state: Option<String>,
    raised: bool,
    /// Raised by the previous run: the first read decides.
    restored: bool,
}

#[derive(Debug, Default)]
struct DoorRuntime {
    state: Option<String>,
    open_since: Option<Instant>,
    raised: Option<DoorState>,
    /// Raised by the previous run: the first read decides.
    restored: bool,
}

/// The health engine of one branch.
pub struct Engine {
    /// Shared so that loops over its zones and doors borrow a cheap handle, not a copy.
    cfg: std::sync::Arc<SiteConfig>,
    branch: BranchId,
    topics: Topics,
    cameras: BTreeMap<DeviceId, CameraState>,
    panels: BTreeMap<DeviceId, PanelState>,
    alarm_zones: BTreeMap<String, AlarmZoneState>,
    doors: BTreeMap<String, DoorRuntime>,
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
    /// `roles` gives, per panel id, each profile point's id and role (`zone`, `door`,
    /// `partition`, `heartbeat`, `panel-fault`…).
    pub fn new(
        cfg: &SiteConfig,
        topics: Topics,
        roles: &BTreeMap<String, Vec<(String, String)>>,
        now: Instant,
    ) -> Engine {
        let branch = cfg.branch_id();
        let mut cameras = BTreeMap::new();
        for c in &cfg.cameras {
            let Ok(id) = DeviceId::new(c.id.clone()) else { continue };
            let device = DeviceRef {
                id: id.clone(),
                device_type: DeviceType::Camera,
                name: c.name.clone(),
                zones: cfg.zone_ids(&c.zones),
            };
            cameras.insert(
                id,
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
        for p in &cfg.panels {
            let Ok(id) = DeviceId::new(p.id.clone()) else { continue };
            let device_type = match p.kind {
                PanelKind::Alarm => DeviceType::AlarmPanel,
                PanelKind::Access => DeviceType::AccessController,
            };
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
                    roles: roles.get(&p.id).map(|v| v.iter().cloned().collect()).unwrap_or_default(),
                    armed: false,
                    published_state: None,
                    proven: false,
                    restored: false,
                    restored_faults: Default::default(),
                },
            );
        }
        let mut faults = GatewayFaults::new(
            branch.clone(),
            gateway_device(&format!("{} gateway", cfg.branch.name)),
            cfg.branch.language,
        );
        faults.set_bound(cfg.storage.max_events, cfg.storage.max_bytes);
        Engine {
            branch,
            topics,
            cameras,
            panels,
            alarm_zones: cfg.alarm_zones.iter().map(|z| (z.id.clone(), AlarmZoneState::default())).collect(),
            doors: cfg.doors.iter().map(|d| (d.id.clone(), DoorRuntime::default())).collect(),
            coverage: Coverage::new(cfg),
            started: now,
            coverage_started: false,
            last_coverage_publish: None,
            faults,
            lang: cfg.branch.language,
            coverage_dirty: true,
            armed: false,
            cfg: std::sync::Arc::new(cfg.clone()),
        }
    }

    /// Every device's current state as published: (id, type, state).
    pub fn device_states(&self) -> Vec<(String, &'static str, String)> {
        let cams = self.cameras.values().map(|c| {
            (
                c.device.id.to_string(),
                c.device.device_type.as_str(),
                c.published_state.clone().unwrap_or_else(|| "unknown".into()),
            )
        });
        let panels = self.panels.values().map(|p| {
            (
                p.device.id.to_string(),
                p.device.device_type.as_str(),
                p.published_state.clone().unwrap_or_else(|| "unknown".into()),
            )
        });
        cams.chain(panels).collect()
    }

    /// The gateway itself, as a device (for its own faults).
    pub fn gateway_device(&self) -> &DeviceRef {
        self.faults.device()
    }

    /// Takes over the conditions the previous run left raised (the outbox keeps them with the
    /// alerts that raised them): each is held raised without a new alert, and the first
    /// observation of its device clears it if it is no longer true (the cleared alert says it
    /// was observed after a restart). What belongs to a device, zone or door no longer in the
    /// configuration, or to a device now in maintenance, is cleared at once.
    pub fn restore(&mut self, open: Vec<Alert>) -> Output {
        let mut out = Output::default();
        for raised in open {
            if raised.branch != self.branch {
                tracing::warn!(branch = %raised.branch, "an open condition of another branch id is dropped");
                continue;
            }
            let key = raised.condition_key().unwrap_or_default();
            match self.restore_one(&raised) {
                Restored::Held => tracing::info!(condition = %key, "held raised until observed"),
                Restored::Gone(note) => {
                    tracing::info!(condition = %key, "cleared: cannot be observed any more");
                    out.alerts.push(self.ended(&raised, note));
                }
            }
        }
        out
    }

    fn restore_one(&mut self, raised: &Alert) -> Restored {
        let id = &raised.device.id;
        if raised.device.device_type == DeviceType::Gateway {
            return match &raised.body {
                AlertBody::DeviceFault(d) if self.faults.restore(&d.fault) => Restored::Held,
                _ => Restored::Gone(Msg::ObservedAfterRestart),
            };
        }
        if let Some(cam) = self.cameras.get_mut(id) {
            if cam.maintenance {
                return Restored::Gone(Msg::InMaintenance);
            }
            match &raised.body {
                AlertBody::CameraOffline(d) => {
                    cam.debounce.raised = true;
                    cam.raised_status = Some(d.status.clone());
                    cam.restored = true;
                }
                AlertBody::DeviceFault(d) => {
                    cam.active_events.insert(d.fault.clone(), true);
                }
                _ => return Restored::Gone(Msg::ObservedAfterRestart),
            }
            return Restored::Held;
        }
        let Some(p) = self.panels.get_mut(id) else { return Restored::Gone(Msg::RemovedFromConfig) };
        if p.maintenance {
            return Restored::Gone(Msg::InMaintenance);
        }
        match &raised.body {
            AlertBody::DeviceFault(d) => {
                let fault = match d.fault.as_str() {
                    "unreachable" => Some(PanelFault::Unreachable),
                    "modbus-exception" => Some(PanelFault::Exception),
                    "protocol-error" => Some(PanelFault::Protocol),
                    _ => None,
                };
                if let Some(f) = fault {
                    p.debounce.raised = true;
                    p.restored = true;
                    p.last_fault = Some((f, d.reason.clone()));
                } else if d.fault == "heartbeat-stopped" {
                    p.heartbeat_raised = true;
                } else {
                    p.restored_faults.insert(d.fault.clone());
                }
            }
            AlertBody::AlarmLink(d) => {
                let Some(rt) = self.alarm_zones.get_mut(d.zone.as_str()) else {
                    return Restored::Gone(Msg::RemovedFromConfig);
                };
                rt.raised = true;
                rt.restored = true;
                rt.state = Some(d.zone_state.clone());
            }
            AlertBody::DoorStatus(d) => {
                let Some(rt) = self.doors.get_mut(d.door.as_str()) else {
                    return Restored::Gone(Msg::RemovedFromConfig);
                };
                rt.raised = Some(d.door_state);
                rt.restored = true;
            }
            AlertBody::CameraOffline(_) => return Restored::Gone(Msg::RemovedFromConfig),
        }
        Restored::Held
    }

    /// The `cleared` alert for a condition raised before a restart that cannot be observed any
    /// more: the raise's device and details, its message prefixed with "ended" and `note`.
    fn ended(&self, raised: &Alert, note: Msg<'_>) -> Alert {
        let mut body = raised.body.clone();
        if let AlertBody::CameraOffline(d) = &mut body {
            d.status = "online".into();
            d.consecutive_failures = 0;
            d.uncovered_zones.clear();
        }
        let message = format!("{}{}", Msg::Ended { raised: &raised.message }.render(self.lang), note.render(self.lang));
        Alert::new(
            self.branch.clone(),
            raised.device.clone(),
            AlertState::Cleared,
            Severity::Info,
            protocols::time::now(),
            message,
            body,
        )
    }

    /// Appends `note` to the messages of the alerts pushed since `from`.
    fn note(&self, out: &mut Output, from: usize, note: Msg<'_>) {
        let text = note.render(self.lang);
        for a in out.alerts.iter_mut().skip(from) {
            a.message.push_str(&text);
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
        // Doors held open.
        let cfg = std::sync::Arc::clone(&self.cfg);
        for d in &cfg.doors {
            let Some(rt) = self.doors.get_mut(&d.id) else { continue };
            if let Some(since) = rt.open_since
                && rt.raised.is_none()
                && now.duration_since(since) >= d.held_open_limit
            {
                rt.raised = Some(DoorState::HeldOpen);
                // Watched but silent in maintenance, like every other rule.
                if self.panels.values().any(|p| p.device.id.as_str() == d.panel && p.maintenance) {
                    continue;
                }
                let panel = self.panel_ref(&d.panel);
                let held = now.duration_since(since);
                let alert = self.door_alert(d, panel, DoorState::HeldOpen, AlertState::Raised, wall, Some(held));
                if d.snapshot {
                    out.snapshots.push(self.snapshot_request(&alert, &d.linked_cameras));
                }
                out.alerts.push(alert);
            }
        }
        // Heartbeats.
        let ids: Vec<DeviceId> = self.panels.keys().cloned().collect();
        for id in ids {
            let Some(p) = self.panels.get_mut(&id) else { continue };
            if let Some((_, changed_at)) = p.heartbeat
                && !p.heartbeat_raised
                && !p.debounce.raised
                && now.duration_since(changed_at) >= HEARTBEAT_STALE
            {
                p.heartbeat_raised = true;
                if !p.maintenance {
                    let dev = p.device.clone();
                    let secs = HEARTBEAT_STALE.as_secs();
                    let msg = Msg::PanelHung { name: &dev.name, secs };
                    out.alerts.push(self.fault_alert(
                        dev.clone(),
                        AlertState::Raised,
                        Severity::Major,
                        wall,
                        "heartbeat-stopped",
                        format!("heartbeat unchanged for {secs} s"),
                        Some(msg),
                    ));
                }
            }
        }
        // Flapping cameras that have settled.
        let cam_ids: Vec<DeviceId> = self.cameras.keys().cloned().collect();
        for id in cam_ids {
            let settled = self.cameras.get(&id).is_some_and(|c| {
                c.flapping && c.debounce.raised && c.good_since.is_some_and(|g| now.duration_since(g) >= c.settle)
            });
            if settled {
                self.clear_camera(&id, now, wall, &mut out);
            }
        }
        out.alerts.extend(self.faults.tick(now));
        self.refresh_coverage(now, true, &mut out);
        out
    }

    /// Whether any alarm partition is armed right now.
    pub fn armed(&self) -> bool {
        self.armed
    }

    /// Whether `panel` reports an armed partition right now.
    fn panel_armed(p: &PanelState) -> bool {
        p.kind == PanelKind::Alarm
            && !p.debounce.raised
            && p.points.iter().any(|(k, v)| {
                v.state.as_deref() == Some("armed") && p.roles.get(k).map(String::as_str) == Some("partition")
            })
    }

    // ---- cameras ----

    fn observe_camera(&mut self, obs: CameraObservation, now: Instant, out: &mut Output) {
        let (offline_after, online_after) = (self.cfg.health.offline_after, self.cfg.health.online_after);
        let id = obs.device.clone();
        let armed = self.armed;
        let Some(cam) = self.cameras.get_mut(&id) else { return };
        cam.known = true;

        // Camera-pushed events are edge-triggered faults of their own.
        for ev in &obs.events {
            let was = cam.active_events.get(&ev.fault).copied().unwrap_or(false);
            if was != ev.active {
                cam.active_events.insert(ev.fault.clone(), ev.active);
                if !cam.maintenance {
                    let state = if ev.active { AlertState::Raised } else { AlertState::Cleared };
                    let sev = if ev.active { Severity::Major } else { Severity::Info };
                    let reason = format!("camera reported {} ({})", ev.fault, ev.topic);
                    let dev = cam.device.clone();
                    let a = Self::make_fault_alert(
                        &self.branch,
                        self.lang,
                        dev,
                        state,
                        sev,
                        obs.at,
                        &ev.fault,
                        reason,
                        None,
                    );
                    out.alerts.push(a);
                }
            }
        }
        let Some(cam) = self.cameras.get_mut(&id) else { return };

        let (ok, status) = camera_verdict(&obs);
        cam.proven |= ok;
        if std::mem::take(&mut cam.restored) && ok {
            // Raised before the restart and fine now: cleared at once, saying why.
            cam.last = Some(obs.clone());
            cam.good_since = Some(now);
            cam.debounce = Debounce { oks: 1, first_ok_at: Some(obs.at), raised: true, ..Debounce::default() };
            let before = out.alerts.len();
            self.clear_camera(&id, now, obs.at, out);
            self.note(out, before, Msg::ObservedAfterRestart);
            return;
        }
        let edge = cam.debounce.observe(ok, obs.at, offline_after, online_after);
        cam.good_since = if ok { cam.good_since.or(Some(now)) } else { None };
        cam.last = Some(obs.clone());
        match edge {
            Edge::Raise => {
                cam.raised_status = Some(status.clone());
                let flapping = {
                    while cam.cycles.front().is_some_and(|t| now.duration_since(*t) > FLAP_WINDOW) {
                        cam.cycles.pop_front();
                    }
                    cam.cycles.len() >= FLAP_CYCLES
                };
                if flapping && !cam.flapping {
                    cam.flapping = true;
                    cam.settle = match cam.settled_at {
                        Some(t) if now.duration_since(t) <= FLAP_WINDOW => (cam.settle * 2).min(FLAP_SETTLE_MAX),
                        _ => FLAP_SETTLE_START,
                    };
                }
                if !cam.maintenance {
                    let views = self.camera_views();
                    let uncovered = self.coverage.zones_uncovered_without(&id, &views);
                    let Some(cam) = self.cameras.get(&id) else { return };
                    let status = if cam.flapping { "flapping".to_string() } else { status };
                    let severity = if armed || !uncovered.is_empty() {
                        Severity::Critical
                    } else if status == "auth-failed" {
                        Severity::Warning
                    } else {
                        Severity::Major
                    };
                    let lang = self.lang;
                    let name = cam.device.name.as_str();
                    let mut message = match status.as_str() {
                        "flapping" => Msg::CameraFlapping {
                            name,
                            losses: cam.cycles.len() + 1,
                            settle_secs: cam.settle.as_secs(),
                        }
                        .render(lang),
                        s => Msg::CameraLost { name, status: s }.render(lang),
                    };
                    if !uncovered.is_empty() {
                        let names: Vec<String> = uncovered.iter().map(|z| self.zone_name(z)).collect();
                        message.push_str(&Msg::ZonesUnwatched { zones: &names }.render(lang));
                    }
                    if armed {
                        message.push_str(&Msg::Armed.render(lang));
                    }
                    let details = CameraOfflineDetails {
                        status: status.clone(),
                        reason: obs.reason.clone().unwrap_or_else(|| status.clone()),
                        consecutive_failures: cam.debounce.fails,
                        armed,
                        uncovered_zones: uncovered,
                        clock_skew_ms: obs.clock_skew_ms,
                    };
                    let occurred = cam.debounce.first_fail_at.unwrap_or(obs.at);
                    out.alerts.push(Alert::new(
                        self.branch.clone(),
                        cam.device.clone(),
                        AlertState::Raised,
                        severity,
                        occurred,
                        message,
                        AlertBody::CameraOffline(details),
                    ));
                }
            }
            Edge::Clear => {
                let flapping = cam.flapping;
                if flapping {
                    // Held raised until settled (see `tick`).
                    cam.debounce.raised = true;
                } else {
                    let at = cam.debounce.first_ok_at.unwrap_or(obs.at);
                    self.clear_camera(&id, now, at, out);
                }
            }
            Edge::None => {}
        }
        self.publish_camera_state(&id, out);
    }

    fn clear_camera(&mut self, id: &DeviceId, now: Instant, at: Timestamp, out: &mut Output) {
        let armed = self.armed();
        let Some(cam) = self.cameras.get_mut(id) else { return };
        cam.debounce.raised = false;
        cam.cycles.push_back(now);
        let was_flapping = cam.flapping;
        cam.flapping = false;
        if was_flapping {
            cam.settled_at = Some(now);
        }
        let status = cam.raised_status.take().unwrap_or_else(|| "offline".into());
        if !cam.maintenance {
            let last = cam.last.as_ref();
            let details = CameraOfflineDetails {
                status: "online".into(),
                reason: if was_flapping {
                    format!("settled after flapping ({status})")
                } else {
                    format!("recovered from {status}")
                },
                consecutive_failures: 0,
                armed,
                uncovered_zones: vec![],
                clock_skew_ms: last.and_then(|l| l.clock_skew_ms),
            };
            out.alerts.push(Alert::new(
                self.branch.clone(),
                cam.device.clone(),
                AlertState::Cleared,
                Severity::Info,
                at,
                Msg::CameraBack { name: &cam.device.name }.render(self.lang),
                AlertBody::CameraOffline(details),
            ));
        }
        self.publish_camera_state(id, out);
    }

    fn camera_views(&self) -> BTreeMap<DeviceId, CameraView> {
        self.cameras.iter().map(|(id, c)| (id.clone(), camera_view(c))).collect()
    }

    fn camera_lives(&self) -> BTreeMap<DeviceId, CameraLive> {
        self.cameras
            .iter()
            .map(|(id, c)| {
                let v = camera_view(c);
                let last = c.last.as_ref();
                (
                    id.clone(),
                    CameraLive {
                        name: c.device.name.clone(),
                        online: v.online,
                        stream_alive: v.online && last.is_some_and(|l| l.video != Video::StreamDown),
                        frozen: last.is_some_and(|l| l.video == Video::Frozen),
                        stream_uri: last.and_then(|l| l.stream_uri.clone()),
                        snapshot_uri: last.and_then(|l| l.snapshot_uri.clone()),
                    },
                )
            })
            .collect()
    }

    fn publish_camera_state(&mut self, id: &DeviceId, out: &mut Output) {
        let Some(cam) = self.cameras.get_mut(id) else { return };
        let state = if cam.maintenance {
            "maintenance".to_string()
        } else if !cam.known || (!cam.proven && !cam.debounce.raised) {
            "unknown".to_string()
        } else if cam.debounce.raised {
            if cam.flapping { "flapping".into() } else { cam.raised_status.clone().unwrap_or_else(|| "offline".into()) }
        } else {
            "online".to_string()
        };
        if cam.published_state.as_deref() == Some(state.as_str()) {
            return;
        }
        cam.published_state = Some(state.clone());
        self.coverage_dirty = true;
        let last = cam.last.as_ref();
        let at = last.map(|l| l.at).unwrap_or_else(protocols::time::now);
        let health = DeviceHealth {
            schema: DEVICE_HEALTH_SCHEMA.into(),
            branch: self.branch.clone(),
            device: cam.device.clone(),
            state,
            since: at,
            updated_at: at,
            reason: last.and_then(|l| l.reason.clone()),
            clock_skew_ms: last.and_then(|l| l.clock_skew_ms),
        };
        out.retained.push(retained(self.topics.device(id), &health));
    }

    // ---- panels ----

    fn panel_ref(&self, panel: &str) -> DeviceRef {
        self.panels
            .values()
            .find(|p| p.device.id.as_str() == panel)
            .map(|p| p.device.clone())
            .unwrap_or_else(|| self.faults.device().clone())
    }

    fn observe_panel(&mut self, obs: PanelObservation, now: Instant, out: &mut Output) {
        let (offline_after, online_after) = (self.cfg.health.offline_after, self.cfg.health.online_after);
        let id = obs.device.clone();
        let Some(p) = self.panels.get_mut(&id) else { return };
        let ok = matches!(obs.outcome, PanelOutcome::Read(_));
        if let PanelOutcome::Failed { fault, reason } = &obs.outcome {
            p.last_fault = Some((*fault, reason.clone()));
        }
        p.proven |= ok;
        let restored = std::mem::take(&mut p.restored);
        let edge = if restored && ok {
            // Unreadable before the restart and read now: cleared at once.
            p.debounce = Debounce { oks: 1, first_ok_at: Some(obs.at), ..Debounce::default() };
            Edge::Clear
        } else {
            p.debounce.observe(ok, obs.at, offline_after, online_after)
        };
        let before = out.alerts.len();
        let maintenance = p.maintenance;
        let dev = p.device.clone();
        match edge {
            Edge::Raise if !maintenance => {
                let (fault, reason) = p.last_fault.clone().unwrap_or((PanelFault::Unreachable, "no answer".into()));
                let code = match fault {
                    PanelFault::Unreachable => "unreachable",
                    PanelFault::Exception => "modbus-exception",
                    PanelFault::Protocol => "protocol-error",
                };
                let occurred = p.debounce.first_fail_at.unwrap_or(obs.at);
                let msg = Msg::PanelUnreadable { name: &dev.name, reason: &reason };
                out.alerts.push(self.fault_alert(
                    dev.clone(),
                    AlertState::Raised,
                    Severity::Critical,
                    occurred,
                    code,
                    reason.clone(),
                    Some(msg),
                ));
            }
            Edge::Clear if !maintenance => {
                let code = match self.panels.get(&id).and_then(|p| p.last_fault.as_ref()).map(|f| f.0) {
                    Some(PanelFault::Exception) => "modbus-exception",
                    Some(PanelFault::Protocol) => "protocol-error",
                    _ => "unreachable",
                };
                let at = self.panels.get(&id).and_then(|p| p.debounce.first_ok_at).unwrap_or(obs.at);
                out.alerts.push(self.fault_alert(
                    dev.clone(),
                    AlertState::Cleared,
                    Severity::Info,
                    at,
                    code,
                    "readable again".into(),
                    Some(Msg::PanelReadable { name: &dev.name }),
                ));
                if restored {
                    self.note(out, before, Msg::ObservedAfterRestart);
                }
            }
            _ => {}
        }
        if let PanelOutcome::Read(points) = obs.outcome {
            self.apply_points(&id, points, obs.at, now, out);
        }
        if let Some(p) = self.panels.get_mut(&id) {
            p.armed = Self::panel_armed(p);
        }
        self.armed = self.panels.values().any(|p| p.armed);
        self.publish_panel_state(&id, obs.at, out);
    }

    fn apply_points(
        &mut self,
        id: &DeviceId,
        points: BTreeMap<String, crate::pollers::PointValue>,
        at: Timestamp,
        now: Instant,
        out: &mut Output,
    ) {
        let Some(p) = self.panels.get_mut(id) else { return };
        let maintenance = p.maintenance;
        // Heartbeat: the point of role `heartbeat`, if the profile has one.
        let roles = &p.roles;
        if let Some((_, hb)) = points.iter().find(|(k, _)| roles.get(*k).map(String::as_str) == Some("heartbeat")) {
            match p.heartbeat {
                Some((v, _)) if v == hb.raw => {}
                // Hung before a restart: it has to change (not merely be read) to clear.
                None if p.heartbeat_raised => p.heartbeat = Some((hb.raw, now)),
                _ => {
                    p.heartbeat = Some((hb.raw, now));
                    if p.heartbeat_raised {
                        p.heartbeat_raised = false;
                        let dev = p.device.clone();
                        if !maintenance {
                            out.alerts.push(self.fault_alert(
                                dev.clone(),
                                AlertState::Cleared,
                                Severity::Info,
                                at,
                                "heartbeat-stopped",
                                "heartbeat is changing again".into(),
                                Some(Msg::PanelHeartbeatBack { name: &dev.name }),
                            ));
                        }
                    }
                }
            }
        }
        let Some(p) = self.panels.get_mut(id) else { return };
        // Fault points (roles panel-fault, reader-fault): any state but "ok" is a fault.
        let mut fault_edges = Vec::new();
        for (pid, v) in &points {
            if !matches!(p.roles.get(pid).map(String::as_str), Some("panel-fault" | "reader-fault")) {
                continue;
            }
            let state = v.state.clone().unwrap_or_else(|| "ok".into());
            let active = state != "ok";
            let was = p.fault_points.get(pid).cloned();
            match (was, active) {
                (None, true) if p.restored_faults.remove(&state) => {
                    // Still true after a restart: already raised.
                    p.fault_points.insert(pid.clone(), state.clone());
                }
                (None, true) => {
                    p.fault_points.insert(pid.clone(), state.clone());
                    fault_edges.push((AlertState::Raised, state, pid.clone()));
                }
                (Some(code), false) => {
                    p.fault_points.remove(pid);
                    fault_edges.push((AlertState::Cleared, code, pid.clone()));
                }
                _ => {}
            }
        }
        p.points = points;
        let dev = p.device.clone();
        let gone = std::mem::take(&mut p.restored_faults);
        if !maintenance {
            for (st, code, pid) in fault_edges {
                let sev = if st == AlertState::Raised { Severity::Major } else { Severity::Info };
                let reason = match st {
                    AlertState::Raised => format!("point {pid} reports {code}"),
                    AlertState::Cleared => format!("point {pid} no longer reports {code}"),
                };
                out.alerts.push(self.fault_alert(dev.clone(), st, sev, at, &code, reason, None));
            }
            // Raised before a restart and reported by no point now.
            for code in gone {
                let before = out.alerts.len();
                let reason = format!("no point reports {code}");
                out.alerts.push(self.fault_alert(
                    dev.clone(),
                    AlertState::Cleared,
                    Severity::Info,
                    at,
                    &code,
                    reason,
                    None,
                ));
                self.note(out, before, Msg::ObservedAfterRestart);
            }
        }

        // Alarm zones on this panel.
        let cfg = std::sync::Arc::clone(&self.cfg);
        for z in cfg.alarm_zones.iter().filter(|z| z.panel == id.as_str()) {
            let Some(p) = self.panels.get(id) else { return };
            let state = p.points.get(&z.point).and_then(|v| v.state.clone()).unwrap_or_else(|| "normal".into());
            let partition_armed = match &z.partition {
                Some(part) => p.points.get(part).and_then(|v| v.state.as_deref()) == Some("armed"),
                None => true,
            };
            let armed = z.twenty_four_hour || partition_armed;
            let firing = match state.as_str() {
                "alarm" => armed,
                "tamper" => true,
                _ => false,
            };
            let Some(rt) = self.alarm_zones.get_mut(&z.id) else { continue };
            let restored = std::mem::take(&mut rt.restored);
            let changed = rt.state.as_deref() != Some(state.as_str());
            rt.state = Some(state.clone());
            if !changed && firing == rt.raised {
                continue;
            }
            let edge = match (rt.raised, firing) {
                (false, true) => AlertState::Raised,
                (true, false) => AlertState::Cleared,
                _ => continue,
            };
            rt.raised = firing;
            if maintenance {
                continue;
            }
            let cameras = linked_cameras(&z.linked_cameras, &self.camera_lives());
            let down = any_down(&cameras);
            let zone_id = ZoneId::new(z.id.clone()).unwrap_or_else(|_| unreachable!("validated"));
            let mut message = match edge {
                AlertState::Raised if state == "tamper" => Msg::ZoneTamper { zone: &z.name },
                AlertState::Raised => Msg::ZoneAlarm { zone: &z.name },
                AlertState::Cleared => Msg::ZoneRestored { zone: &z.name, state: &state },
            }
            .render(self.lang);
            if edge == AlertState::Raised && down {
                message.push_str(&Msg::LinkedCameraDown.render(self.lang));
            }
            if restored {
                message.push_str(&Msg::ObservedAfterRestart.render(self.lang));
            }
            let details = AlarmLinkDetails {
                follow_up_of: None,
                snapshots: Vec::new(),
                zone: zone_id.clone(),
                zone_name: z.name.clone(),
                zone_state: state.clone(),
                partition: z.partition.clone(),
                armed,
                twenty_four_hour: z.twenty_four_hour,
                area: z.area.as_ref().and_then(|a| ZoneId::new(a.clone()).ok()),
                cameras,
            };
            let severity = if edge == AlertState::Cleared { Severity::Info } else { Severity::Critical };
            let mut device = dev.clone();
            device.zones = vec![zone_id];
            let alert =
                Alert::new(self.branch.clone(), device, edge, severity, at, message, AlertBody::AlarmLink(details));
            if edge == AlertState::Raised && z.snapshot {
                out.snapshots.push(self.snapshot_request(&alert, &z.linked_cameras));
            }
            out.alerts.push(alert);
        }

        // Doors on this panel.
        for d in cfg.doors.iter().filter(|d| d.panel == id.as_str()) {
            let Some(p) = self.panels.get(id) else { return };
            let state = p.points.get(&d.point).and_then(|v| v.state.clone()).unwrap_or_else(|| "closed".into());
            let Some(rt) = self.doors.get_mut(&d.id) else { continue };
            let restored = std::mem::take(&mut rt.restored);
            if rt.state.as_deref() == Some(state.as_str()) {
                continue;
            }
            rt.state = Some(state.clone());
            let (raise, clear) = match state.as_str() {
                "forced" | "forced-open" => {
                    rt.open_since.get_or_insert(now);
                    (rt.raised != Some(DoorState::ForcedOpen))
                        .then_some(DoorState::ForcedOpen)
                        .map_or((None, false), |s| (Some(s), false))
                }
                "held-open" => {
                    rt.open_since.get_or_insert(now);
                    (if rt.raised.is_none() { Some(DoorState::HeldOpen) } else { None }, false)
                }
                "open" => {
                    rt.open_since.get_or_insert(now);
                    (None, false)
                }
                _ => {
                    rt.open_since = None;
                    (None, rt.raised.is_some())
                }
            };
            if let Some(s) = raise {
                rt.raised = Some(s);
                if !maintenance {
                    let alert = self.door_alert(d, dev.clone(), s, AlertState::Raised, at, None);
                    if d.snapshot {
                        out.snapshots.push(self.snapshot_request(&alert, &d.linked_cameras));
                    }
                    out.alerts.push(alert);
                }
            } else if clear {
                rt.raised = None;
                if !maintenance {
                    let before = out.alerts.len();
                    out.alerts.push(self.door_alert(d, dev.clone(), DoorState::Closed, AlertState::Cleared, at, None));
                    if restored {
                        self.note(out, before, Msg::ObservedAfterRestart);
                    }
                }
            }
        }
    }

    fn door_alert(
        &self,
        d: &crate::config::DoorConfig,
        mut device: DeviceRef,
        door_state: DoorState,
        state: AlertState,
        at: Timestamp,
        held: Option<Duration>,
    ) -> Alert {
        let cameras = linked_cameras(&d.linked_cameras, &self.camera_lives());
        let down = any_down(&cameras);
        let mut message = match door_state {
            DoorState::ForcedOpen => Msg::DoorForced { door: &d.name },
            DoorState::HeldOpen => Msg::DoorHeld { door: &d.name, secs: held.unwrap_or(d.held_open_limit).as_secs() },
            DoorState::Closed | DoorState::Open => Msg::DoorClosed { door: &d.name },
        }
        .render(self.lang);
        if state == AlertState::Raised && down {
            message.push_str(&Msg::LinkedCameraDown.render(self.lang));
        }
        let severity = match (state, door_state) {
            (AlertState::Cleared, _) => Severity::Info,
            (_, DoorState::ForcedOpen) => Severity::Critical,
            _ => Severity::Major,
        };
        let door = ZoneId::new(d.id.clone()).unwrap_or_else(|_| unreachable!("validated"));
        device.zones = vec![door.clone()];
        // The door's lock state, when the profile has a `lock` point with the door's number.
        let locked = self.panels.get(&device.id).and_then(|p| {
            let suffix = d.point.rsplit('.').next()?;
            p.points
                .iter()
                .find(|(k, _)| {
                    p.roles.get(*k).map(String::as_str) == Some("lock") && k.rsplit('.').next() == Some(suffix)
                })
                .and_then(|(_, v)| v.state.as_deref().map(|s| s == "locked"))
        });
        Alert::new(
            self.branch.clone(),
            device,
            state,
            severity,
            at,
            message,
            AlertBody::DoorStatus(DoorStatusDetails {
                follow_up_of: None,
                snapshots: Vec::new(),
                door,
                door_name: d.name.clone(),
                door_state,
                locked,
                cameras,
            }),
        )
    }

    fn publish_panel_state(&mut self, id: &DeviceId, at: Timestamp, out: &mut Output) {
        let Some(p) = self.panels.get_mut(id) else { return };
        let state = if p.maintenance {
            "maintenance"
        } else if p.debounce.raised {
            "offline"
        } else if !p.proven {
            "unknown"
        } else if p.heartbeat_raised {
            "hung"
        } else {
            "online"
        };
        if p.published_state.as_deref() == Some(state) {
            return;
        }
        p.published_state = Some(state.to_string());
        let health = DeviceHealth {
            schema: DEVICE_HEALTH_SCHEMA.into(),
            branch: self.branch.clone(),
            device: p.device.clone(),
            state: state.to_string(),
            since: at,
            updated_at: at,
            reason: if p.debounce.raised { p.last_fault.as_ref().map(|f| f.1.clone()) } else { None },
            clock_skew_ms: None,
        };
        out.retained.push(retained(self.topics.device(id), &health));
    }

    fn snapshot_request(&self, alert: &Alert, linked: &[String]) -> SnapshotRequest {
        let cameras = linked
            .iter()
            .filter_map(|id| {
                let id = DeviceId::new(id.clone()).ok()?;
                let uri = self.cameras.get(&id)?.last.as_ref()?.snapshot_uri.clone()?;
                Some((id, uri))
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
        self.cfg.zones.iter().find(|z| z.id == id.as_str()).map(|z| z.name.clone()).unwrap_or_else(|| id.to_string())
    }

    // ---- coverage ----

    fn refresh_coverage(&mut self, now: Instant, periodic: bool, out: &mut Output) {
        let due = periodic
            && self.last_coverage_publish.is_none_or(|t| now.duration_since(t) >= self.cfg.health.coverage_period);
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

    /// A `device-fault` alert; `message` overrides the generic one.
    #[allow(clippy::too_many_arguments)]
    fn fault_alert(
        &self,
        device: DeviceRef,
        state: AlertState,
        severity: Severity,
        at: Timestamp,
        fault: &str,
        reason: String,
        message: Option<Msg<'_>>,
    ) -> Alert {
        Self::make_fault_alert(&self.branch, self.lang, device, state, severity, at, fault, reason, message)
    }

    #[allow(clippy::too_many_arguments)]
    fn make_fault_alert(
        branch: &BranchId,
        lang: Lang,
        device: DeviceRef,
        state: AlertState,
        severity: Severity,
        at: Timestamp,
        fault: &str,
        reason: String,
        message: Option<Msg<'_>>,
    ) -> Alert {
        let message = match (message, state) {
            (Some(m), _) => m.render(lang),
            (None, AlertState::Raised) => Msg::Fault { device: &device.name, fault, detail: &reason }.render(lang),
            (None, AlertState::Cleared) => Msg::FaultCleared { device: &device.name, fault }.render(lang),
        };
        Alert::new(
            branch.clone(),
            device,
            state,
            severity,
            at,
            message,
            AlertBody::DeviceFault(DeviceFaultDetails {
                fault: fault.to_string(),
                reason,
                dropped_events: None,
                outage_ms: None,
                waiting_events: None,
            }),
        )
    }
}

/// Whether one probe counts as good, and if not, the status it shows.
fn camera_verdict(obs: &CameraObservation) -> (bool, String) {
    let status = match obs.reach {
        Reach::Unreachable => "unreachable",
        Reach::TcpOnly => "tcp-only",
        Reach::AuthFailed => "auth-failed",
        Reach::Online => match obs.video {
            Video::StreamDown => "stream-down",
            Video::Frozen => "frozen",
            Video::SignalLost => "signal-lost",
            Video::Live | Video::Unknown => return (true, "online".into()),
        },
    };
    (false, status.to_string())
}

fn camera_view(c: &CameraState) -> CameraView {
    if !c.known {
        return CameraView::default();
    }
    if !c.debounce.raised {
        // Not lost, but not proven either: an unverified camera watches nothing.
        return CameraView { known: true, online: c.proven, live_video: c.proven };
    }
    let online = matches!(c.raised_status.as_deref(), Some("stream-down" | "frozen" | "signal-lost"));
    CameraView { known: true, online, live_video: false }
}

fn retained<T: serde::Serialize>(topic: String, value: &T) -> Retained {
    Retained { topic, payload: serde_json::to_vec(value).unwrap_or_default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pollers::PointValue;
    use protocols::BranchId;

    const CFG: &str = r#"
[branch]
id = "b01"
name = "Test branch"
[uplink]
broker = "mqtt://127.0.0.1:1883"
[health]
offline_after = 3
online_after = 2
[[zone]]
id = "vault"
name = "Vault"
coverage_required = true
[[camera]]
id = "cam-1"
name = "Vault cam"
onvif = "http://127.0.0.1:1/onvif/device_service"
zones = ["vault"]
[[camera]]
id = "cam-2"
name = "Hall cam"
onvif = "http://127.0.0.1:2/onvif/device_service"
[[panel]]
id = "alarm-1"
name = "Intrusion panel"
kind = "alarm"
address = "127.0.0.1:502"
profile = "generic-alarm"
[[panel]]
id = "access-1"
name = "Doors"
kind = "access"
address = "127.0.0.1:503"
profile = "generic-access"
[[alarm_zone]]
id = "z-vault"
name = "Vault door contact"
panel = "alarm-1"
point = "zone.1"
partition = "partition.1"
linked_cameras = ["cam-1"]
[[alarm_zone]]
id = "z-panic"
name = "Counter panic button"
panel = "alarm-1"
point = "zone.2"
twenty_four_hour = true
[[door]]
id = "d-staff"
name = "Staff door"
panel = "access-1"
point = "door.1"
held_open_limit = "5s"
linked_cameras = ["cam-2"]
"#;

    fn engine(now: Instant) -> Engine {
        let cfg = SiteConfig::parse_str(CFG).unwrap();
        let topics = Topics::new("branches", BranchId::new("b01").unwrap()).unwrap();
        let mut roles = BTreeMap::new();
        roles.insert(
            "alarm-1".to_string(),
            vec![
                ("zone.1".to_string(), "zone".to_string()),
                ("zone.2".to_string(), "zone".to_string()),
                ("partition.1".to_string(), "partition".to_string()),
                ("heartbeat".to_string(), "heartbeat".to_string()),
                ("fault.ac".to_string(), "panel-fault".to_string()),
            ],
        );
        roles.insert("access-1".to_string(), vec![("door.1".to_string(), "door".to_string())]);
        Engine::new(&cfg, topics, &roles, now)
    }

    fn cam(id: &str, reach: Reach, video: Video) -> Observation {
        Observation::Camera(CameraObservation {
            device: DeviceId::new(id).unwrap(),
            at: protocols::time::now(),
            reach,
            video,
            reason: (reach != Reach::Online).then(|| "connect: connection refused".to_string()),
            clock_skew_ms: Some(5),
            stream_uri: Some(format!("rtsp://127.0.0.1/{id}")),
            snapshot_uri: None,
            events: vec![],
            duration: Duration::ZERO,
        })
    }

    fn panel(id: &str, points: &[(&str, f64, &str)]) -> Observation {
        Observation::Panel(PanelObservation {
            device: DeviceId::new(id).unwrap(),
            at: protocols::time::now(),
            outcome: PanelOutcome::Read(
                points
                    .iter()
                    .map(|(k, raw, s)| (k.to_string(), PointValue { raw: *raw, state: Some(s.to_string()) }))
                    .collect(),
            ),
            duration: Duration::ZERO,
        })
    }

    fn kinds(out: &Output) -> Vec<(AlertKindState, String)> {
        out.alerts.iter().map(|a| ((a.kind(), a.state), a.device.id.to_string())).collect()
    }
    type AlertKindState = (protocols::AlertKind, AlertState);

    #[test]
    fn camera_offline_is_raised_once_after_n_failures_and_cleared_once_after_m() {
        let t0 = Instant::now();
        let mut e = engine(t0);
        let mut alerts = Vec::new();
        for i in 0..6 {
            let out = e.observe(cam("cam-1", Reach::Unreachable, Video::Unknown), t0 + Duration::from_secs(i));
            alerts.extend(out.alerts);
            if i == 1 {
                assert!(alerts.is_empty(), "raised before the third failure");
            }
        }
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].state, AlertState::Raised);
        // cam-1 is the only camera of a required zone: critical, and the zone is named.
        assert_eq!(alerts[0].severity, Severity::Critical);
        match &alerts[0].body {
            AlertBody::CameraOffline(d) => {
                assert_eq!(d.status, "unreachable");
                assert_eq!(d.uncovered_zones, vec![ZoneId::new("vault").unwrap()]);
            }
            other => panic!("{other:?}"),
        }
        let mut cleared = Vec::new();
        for i in 6..10 {
            cleared.extend(e.observe(cam("cam-1", Reach::Online, Video::Live), t0 + Duration::from_secs(i)).alerts);
        }
        assert_eq!(cleared.len(), 1);
        assert_eq!(cleared[0].state, AlertState::Cleared);
    }

    #[test]
    fn a_blip_shorter_than_n_probes_does_not_alert() {
        let t0 = Instant::now();
        let mut e = engine(t0);
        let mut n = 0;
        for i in 0..20 {
            let (r, v) = if i % 3 == 0 { (Reach::Unreachable, Video::Unknown) } else { (Reach::Online, Video::Live) };
            n += e.observe(cam("cam-2", r, v), t0 + Duration::from_secs(i)).alerts.len();
        }
        assert_eq!(n, 0);
    }

    #[test]
    fn a_flapping_camera_is_reported_as_flapping_not_as_a_storm() {
        let t0 = Instant::now();
        let mut e = engine(t0);
        let mut alerts = Vec::new();
        let mut t = 0;
        for _cycle in 0..10 {
            for _ in 0..3 {
                alerts.extend(
                    e.observe(cam("cam-2", Reach::Unreachable, Video::Unknown), t0 + Duration::from_secs(t)).alerts,
                );
                t += 1;
            }
            for _ in 0..2 {
                alerts.extend(e.observe(cam("cam-2", Reach::Online, Video::Live), t0 + Duration::from_secs(t)).alerts);
                t += 1;
            }
        }
        // Two plain cycles, then one raised "flapping" held until it settles.
        assert!(alerts.len() <= 5, "storm: {} alerts", alerts.len());
        let last = alerts.last().unwrap();
        assert_eq!(last.state, AlertState::Raised);
        match &last.body {
            AlertBody::CameraOffline(d) => assert_eq!(d.status, "flapping"),
            other => panic!("{other:?}"),
        }
        // Stays good past the settle time: cleared exactly once.
        let later = t0 + Duration::from_secs(t + 120);
        let out = e.tick(later, protocols::time::now());
        assert_eq!(out.alerts.len(), 1);
        assert_eq!(out.alerts[0].state, AlertState::Cleared);

        // Flapping again soon after: the settle time doubles (60 s → 120 s).
        let mut t = t + 121;
        for _cycle in 0..3 {
            for _ in 0..3 {
                e.observe(cam("cam-2", Reach::Unreachable, Video::Unknown), t0 + Duration::from_secs(t));
                t += 1;
            }
            for _ in 0..2 {
                e.observe(cam("cam-2", Reach::Online, Video::Live), t0 + Duration::from_secs(t));
                t += 1;
            }
        }
        let id = DeviceId::new("cam-2").unwrap();
        assert!(e.cameras[&id].flapping, "not flapping again");
        assert_eq!(e.cameras[&id].settle, Duration::from_secs(120));
        let early = e.tick(t0 + Duration::from_secs(t + 90), protocols::time::now());
        assert!(early.alerts.is_empty(), "cleared before the doubled settle time");
        let late = e.tick(t0 + Duration::from_secs(t + 125), protocols::time::now());
        assert_eq!(late.alerts.len(), 1, "not cleared after the doubled settle time");
    }

    #[test]
    fn maintenance_cameras_never_alert() {
        let cfg_text = CFG.replace("name = \"Hall cam\"", "name = \"Hall cam\"\nmaintenance = true");
        let cfg = SiteConfig::parse_str(&cfg_text).unwrap();
        let topics = Topics::new("branches", BranchId::new("b01").unwrap()).unwrap();
        let t0 = Instant::now();
        let mut e = Engine::new(&cfg, topics, &BTreeMap::new(), t0);
        let mut n = 0;
        for i in 0..10 {
            n += e.observe(cam("cam-2", Reach::Unreachable, Video::Unknown), t0 + Duration::from_secs(i)).alerts.len();
        }
        assert_eq!(n, 0);
    }

    #[test]
    fn frozen_picture_is_its_own_status() {
        let t0 = Instant::now();
        let mut e = engine(t0);
        let mut alerts = Vec::new();
        for i in 0..3 {
            alerts.extend(e.observe(cam("cam-2", Reach::Online, Video::Frozen), t0 + Duration::from_secs(i)).alerts);
        }
        assert_eq!(alerts.len(), 1);
        match &alerts[0].body {
            AlertBody::CameraOffline(d) => assert_eq!(d.status, "frozen"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn alarm_zone_fires_only_when_armed_but_panic_zones_always() {
        let t0 = Instant::now();
        let mut e = engine(t0);
        e.observe(cam("cam-1", Reach::Online, Video::Live), t0);
        let base = [
            ("zone.1", 0.0, "normal"),
            ("zone.2", 0.0, "normal"),
            ("partition.1", 0.0, "disarmed"),
            ("heartbeat", 1.0, ""),
        ];
        assert!(e.observe(panel("alarm-1", &base), t0).alerts.is_empty());
        // Disarmed: the vault contact opening is not an alarm.
        let out = e.observe(
            panel("alarm-1", &[("zone.1", 1.0, "alarm"), ("zone.2", 0.0, "normal"), ("partition.1", 0.0, "disarmed")]),
            t0,
        );
        assert!(out.alerts.is_empty(), "{:?}", kinds(&out));
        // The panic zone fires even disarmed.
        let out = e.observe(
            panel("alarm-1", &[("zone.1", 1.0, "alarm"), ("zone.2", 1.0, "alarm"), ("partition.1", 0.0, "disarmed")]),
            t0,
        );
        assert_eq!(kinds(&out), vec![((protocols::AlertKind::AlarmLink, AlertState::Raised), "alarm-1".to_string())]);
        // Arming with the contact open: the vault zone fires, carrying its camera's state.
        let out = e.observe(
            panel("alarm-1", &[("zone.1", 1.0, "alarm"), ("zone.2", 1.0, "alarm"), ("partition.1", 1.0, "armed")]),
            t0,
        );
        assert_eq!(out.alerts.len(), 1);
        match &out.alerts[0].body {
            AlertBody::AlarmLink(d) => {
                assert_eq!(d.zone.as_str(), "z-vault");
                assert!(d.armed);
                assert_eq!(d.cameras.len(), 1);
                assert!(d.cameras[0].online);
                assert_eq!(d.cameras[0].stream_uri.as_deref(), Some("rtsp://127.0.0.1/cam-1"));
            }
            other => panic!("{other:?}"),
        }
        // Both back to normal: two clears.
        let out = e.observe(
            panel("alarm-1", &[("zone.1", 0.0, "normal"), ("zone.2", 0.0, "normal"), ("partition.1", 1.0, "armed")]),
            t0,
        );
        assert_eq!(out.alerts.iter().filter(|a| a.state == AlertState::Cleared).count(), 2);
    }

    #[test]
    fn an_alarm_while_its_camera_is_down_says_so() {
        let t0 = Instant::now();
        let mut e = engine(t0);
        for i in 0..3 {
            e.observe(cam("cam-1", Reach::Unreachable, Video::Unknown), t0 + Duration::from_secs(i));
        }
        let out = e.observe(panel("alarm-1", &[("zone.1", 1.0, "alarm"), ("partition.1", 1.0, "armed")]), t0);
        let a = out.alerts.iter().find(|a| a.kind() == protocols::AlertKind::AlarmLink).unwrap();
        assert!(a.message.contains("DOWN"), "{}", a.message);
        match &a.body {
            AlertBody::AlarmLink(d) => assert!(!d.cameras[0].online),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn forced_door_raises_at_once_and_closing_clears() {
        let t0 = Instant::now();
        let mut e = engine(t0);
        e.observe(panel("access-1", &[("door.1", 0.0, "closed")]), t0);
        let out = e.observe(panel("access-1", &[("door.1", 2.0, "forced")]), t0);
        assert_eq!(out.alerts.len(), 1);
        assert_eq!(out.alerts[0].severity, Severity::Critical);
        assert!(out.alerts[0].is_priority());
        let out = e.observe(panel("access-1", &[("door.1", 0.0, "closed")]), t0);
        assert_eq!(out.alerts.len(), 1);
        assert_eq!(out.alerts[0].state, AlertState::Cleared);
    }

    #[test]
    fn door_held_open_past_its_limit_raises_once() {
        let t0 = Instant::now();
        let mut e = engine(t0);
        e.observe(panel("access-1", &[("door.1", 1.0, "open")]), t0);
        assert!(e.tick(t0 + Duration::from_secs(4), protocols::time::now()).alerts.is_empty());
        let out = e.tick(t0 + Duration::from_secs(6), protocols::time::now());
        assert_eq!(out.alerts.len(), 1);
        match &out.alerts[0].body {
            AlertBody::DoorStatus(d) => assert_eq!(d.door_state, DoorState::HeldOpen),
            other => panic!("{other:?}"),
        }
        assert!(e.tick(t0 + Duration::from_secs(9), protocols::time::now()).alerts.is_empty());
        let out = e.observe(panel("access-1", &[("door.1", 0.0, "closed")]), t0 + Duration::from_secs(10));
        assert_eq!(out.alerts.len(), 1);
        assert_eq!(out.alerts[0].state, AlertState::Cleared);
    }

    #[test]
    fn a_stopped_heartbeat_is_a_hung_panel() {
        let t0 = Instant::now();
        let mut e = engine(t0);
        e.observe(panel("alarm-1", &[("heartbeat", 7.0, "")]), t0);
        e.observe(panel("alarm-1", &[("heartbeat", 7.0, "")]), t0 + Duration::from_secs(5));
        let out = e.tick(t0 + Duration::from_secs(11), protocols::time::now());
        assert_eq!(out.alerts.len(), 1);
        match &out.alerts[0].body {
            AlertBody::DeviceFault(d) => assert_eq!(d.fault, "heartbeat-stopped"),
            other => panic!("{other:?}"),
        }
        let out = e.observe(panel("alarm-1", &[("heartbeat", 8.0, "")]), t0 + Duration::from_secs(12));
        assert_eq!(out.alerts.len(), 1);
        assert_eq!(out.alerts[0].state, AlertState::Cleared);
    }

    #[test]
    fn unreadable_panel_raises_one_device_fault() {
        let t0 = Instant::now();
        let mut e = engine(t0);
        let mut n = 0;
        for i in 0..10 {
            let out = e.observe(
                Observation::Panel(PanelObservation {
                    device: DeviceId::new("alarm-1").unwrap(),
                    at: protocols::time::now(),
                    outcome: PanelOutcome::Failed { fault: PanelFault::Unreachable, reason: "timeout".into() },
                    duration: Duration::ZERO,
                }),
                t0 + Duration::from_millis(250 * i),
            );
            n += out.alerts.len();
        }
        assert_eq!(n, 1);
    }

    #[test]
    fn coverage_reports_the_uncovered_required_zone() {
        let t0 = Instant::now();
        let mut e = engine(t0);
        e.observe(cam("cam-2", Reach::Online, Video::Live), t0);
        let out = e.observe(cam("cam-1", Reach::Online, Video::Live), t0);
        let cov = out.retained.iter().find(|r| r.topic == "branches/b01/coverage").expect("first coverage");
        let v: serde_json::Value = serde_json::from_slice(&cov.payload).unwrap();
        assert_eq!(v["totals"]["required_zones_uncovered"], 0);
        let mut last = None;
        for i in 1..4 {
            let out = e.observe(cam("cam-1", Reach::Unreachable, Video::Unknown), t0 + Duration::from_secs(i));
            if let Some(r) = out.retained.into_iter().find(|r| r.topic.ends_with("/coverage")) {
                last = Some(r);
            }
        }
        let v: serde_json::Value = serde_json::from_slice(&last.expect("coverage changed").payload).unwrap();
        assert_eq!(v["totals"]["required_zones_uncovered"], 1);
        assert_eq!(v["zones"][0]["covered"], false);
        assert!(v["zones"][0]["uncovered_since"].is_string());
    }

    // ---- restarts: the conditions the outbox keeps ----

    /// What the outbox does with the conditions of the alerts appended to it.
    fn keep(open: &mut BTreeMap<String, Alert>, a: &Alert) {
        if let Some(k) = a.condition_key() {
            match a.state {
                AlertState::Raised => open.insert(k, a.clone()),
                AlertState::Cleared => open.remove(&k),
            };
        }
    }

    #[test]
    fn a_restart_holds_what_is_still_true_and_clears_what_is_over() {
        let t0 = Instant::now();
        let mut e = engine(t0);
        let mut open = BTreeMap::new();
        let mut delivered = Vec::new();
        let feed =
            |e: &mut Engine, obs: Observation, delivered: &mut Vec<Alert>, open: &mut BTreeMap<String, Alert>| {
                for a in e.observe(obs, t0).alerts {
                    keep(open, &a);
                    delivered.push(a);
                }
            };
        let armed = |z1: &str| {
            panel(
                "alarm-1",
                &[
                    ("zone.1", 1.0, z1),
                    ("zone.2", 0.0, "normal"),
                    ("partition.1", 1.0, "armed"),
                    ("fault.ac", 1.0, "ac-loss"),
                ],
            )
        };
        for _ in 0..3 {
            feed(&mut e, cam("cam-1", Reach::Unreachable, Video::Unknown), &mut delivered, &mut open);
        }
        feed(&mut e, armed("alarm"), &mut delivered, &mut open);
        feed(&mut e, panel("access-1", &[("door.1", 2.0, "forced")]), &mut delivered, &mut open);
        assert_eq!(open.len(), 4, "camera, zone, door, ac-loss: {:?}", open.keys());

        // Restart: the zone is back to normal, the rest still true.
        let mut e = engine(t0);
        let out = e.restore(open.values().cloned().collect());
        assert!(out.alerts.is_empty(), "nothing is cleared before it is observed: {:?}", kinds(&out));
        let before = delivered.len();
        feed(&mut e, cam("cam-1", Reach::Unreachable, Video::Unknown), &mut delivered, &mut open);
        feed(&mut e, armed("normal"), &mut delivered, &mut open);
        feed(&mut e, panel("access-1", &[("door.1", 2.0, "forced")]), &mut delivered, &mut open);
        let after: Vec<_> = delivered[before..].iter().map(|a| (a.kind(), a.state)).collect();
        assert_eq!(after, [(protocols::AlertKind::AlarmLink, AlertState::Cleared)], "only the zone's clear");
        assert!(delivered[before].message.contains("restart"), "{}", delivered[before].message);

        // Another restart; everything is over now: one clear each, at the first observation.
        let mut e = engine(t0);
        assert!(e.restore(open.values().cloned().collect()).alerts.is_empty());
        feed(&mut e, cam("cam-1", Reach::Online, Video::Live), &mut delivered, &mut open);
        feed(
            &mut e,
            panel("alarm-1", &[("zone.1", 0.0, "normal"), ("partition.1", 1.0, "armed"), ("fault.ac", 0.0, "ok")]),
            &mut delivered,
            &mut open,
        );
        feed(&mut e, panel("access-1", &[("door.1", 0.0, "closed")]), &mut delivered, &mut open);
        assert!(open.is_empty(), "still open: {:?}", open.keys());
        let mut pairs: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        for a in &delivered {
            let p = pairs.entry(a.condition_key().unwrap_or_default()).or_default();
            if a.state == AlertState::Raised { p.0 += 1 } else { p.1 += 1 }
        }
        assert!(pairs.values().all(|&(r, c)| r == 1 && c == 1), "{pairs:?}");
    }

    #[test]
    fn conditions_of_removed_or_maintenance_devices_are_cleared_at_start() {
        let t0 = Instant::now();
        let mut e = engine(t0);
        let mut open = BTreeMap::new();
        for _ in 0..3 {
            for a in e.observe(cam("cam-2", Reach::Unreachable, Video::Unknown), t0).alerts {
                keep(&mut open, &a);
            }
        }
        let mut gone = open.values().next().cloned().expect("cam-2 raised");
        gone.device.id = DeviceId::new("cam-9").unwrap();
        let out = engine(t0).restore(vec![gone]);
        assert_eq!(out.alerts.len(), 1);
        assert_eq!(out.alerts[0].state, AlertState::Cleared);
        assert!(out.alerts[0].message.contains("removed from the configuration"), "{}", out.alerts[0].message);
    }

    #[test]
    fn unproven_devices_are_unknown_and_watch_nothing() {
        let t0 = Instant::now();
        let mut e = engine(t0);
        let out = e.observe(cam("cam-1", Reach::TcpOnly, Video::Unknown), t0);
        let states: Vec<String> = out
            .retained
            .iter()
            .filter(|r| r.topic.ends_with("/devices/cam-1"))
            .map(|r| {
                serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap()["state"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        assert_eq!(states, ["unknown"]);
        assert!(!camera_view(&e.cameras[&DeviceId::new("cam-1").unwrap()]).live_video);
        let out = e.observe(cam("cam-1", Reach::Online, Video::Live), t0);
        assert!(
            out.retained
                .iter()
                .any(|r| r.topic.ends_with("/devices/cam-1")
                    && String::from_utf8_lossy(&r.payload).contains("\"online\""))
        );
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            /// Flip one fact of the world: 0 camera, 1 vault zone, 2 panic zone, 3 door, 4 AC power.
            Flip(u8),
            /// Poll one device (0 cam-1, 1 alarm-1, 2 access-1).
            Poll(u8),
            /// Poll, then crash after storing only the first `keep` of its alerts, and restart.
            PollAndCrash(u8, u8),
            /// A clean restart.
            Restart,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => (0u8..5).prop_map(Op::Flip),
                6 => (0u8..3).prop_map(Op::Poll),
                1 => ((0u8..3), (0u8..4)).prop_map(|(d, k)| Op::PollAndCrash(d, k)),
                1 => Just(Op::Restart),
            ]
        }

        #[derive(Default)]
        struct World {
            bad: [bool; 5],
        }

        impl World {
            fn observe(&mut self, dev: u8) -> Observation {
                let s = |b: bool, yes: &'static str, no: &'static str| if b { yes } else { no };
                match dev {
                    0 if self.bad[0] => cam("cam-1", Reach::Unreachable, Video::Unknown),
                    0 => cam("cam-1", Reach::Online, Video::Live),
                    1 => panel(
                        "alarm-1",
                        &[
                            ("zone.1", 0.0, s(self.bad[1], "alarm", "normal")),
                            ("zone.2", 0.0, s(self.bad[2], "alarm", "normal")),
                            ("partition.1", 1.0, "armed"),
                            ("fault.ac", 0.0, s(self.bad[4], "ac-loss", "ok")),
                        ],
                    ),
                    _ => panel("access-1", &[("door.1", 0.0, s(self.bad[3], "forced", "closed"))]),
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            /// Observations, crashes mid-delivery and restarts in any order: the delivered stream
            /// pairs every raise with exactly one clear, and once the world is all good and every
            /// device was polled, nothing is left open.
            #[test]
            fn every_raise_gets_exactly_one_clear(ops in proptest::collection::vec(op(), 1..60)) {
                let t0 = Instant::now();
                let mut world = World::default();
                let mut open: BTreeMap<String, Alert> = BTreeMap::new();
                let mut delivered: Vec<Alert> = Vec::new();
                let mut e = engine(t0);
                let restart = |open: &BTreeMap<String, Alert>, delivered: &mut Vec<Alert>, open_mut: &mut Vec<Alert>| {
                    let mut e = engine(t0);
                    let out = e.restore(open.values().cloned().collect());
                    open_mut.extend(out.alerts.iter().cloned());
                    delivered.extend(out.alerts);
                    e
                };
                for op in ops {
                    match op {
                        Op::Flip(i) => world.bad[i as usize] = !world.bad[i as usize],
                        Op::Poll(d) => {
                            for a in e.observe(world.observe(d), t0).alerts {
                                keep(&mut open, &a);
                                delivered.push(a);
                            }
                        }
                        Op::PollAndCrash(d, k) => {
                            for a in e.observe(world.observe(d), t0).alerts.into_iter().take(k as usize) {
                                keep(&mut open, &a);
                                delivered.push(a);
                            }
                            let mut extra = Vec::new();
                            e = restart(&open, &mut delivered, &mut extra);
                            for a in &extra { keep(&mut open, a); }
                        }
                        Op::Restart => {
                            let mut extra = Vec::new();
                            e = restart(&open, &mut delivered, &mut extra);
                            for a in &extra { keep(&mut open, a); }
                        }
                    }
                }
                // The tail: the world all good, every device polled enough to clear.
                world.bad = [false; 5];
                for _ in 0..4 {
                    for d in 0..3 {
                        for a in e.observe(world.observe(d), t0).alerts {
                            keep(&mut open, &a);
                            delivered.push(a);
                        }
                    }
                }
                prop_assert!(open.is_empty(), "left open: {:?}", open.keys().collect::<Vec<_>>());
                let mut last: BTreeMap<String, AlertState> = BTreeMap::new();
                for a in &delivered {
                    let Some(k) = a.condition_key() else { continue };
                    let prev = last.insert(k.clone(), a.state);
                    let ok = match a.state {
                        AlertState::Raised => prev != Some(AlertState::Raised),
                        AlertState::Cleared => prev == Some(AlertState::Raised),
                    };
                    prop_assert!(ok, "{k}: {:?} after {:?}", a.state, prev);
                }
                prop_assert!(last.values().all(|s| *s == AlertState::Cleared), "{last:?}");
            }
        }
    }
}
