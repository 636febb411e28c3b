//! A scenario's branch, running: the camera and panel fleets (and the link proxy) started
//! from a [`Scenario`], one place that applies [`Action`]s whoever asks (timeline or control
//! API), and a journal of every action applied.
//!
//! Why it remembers faults itself: the fleets apply faults but do not report them back, and
//! an installer asking "what did I switch on?" (`GET /devices`) needs the answer. Every
//! change goes through [`LiveBranch::apply`], so the record here is complete.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use i18n::{Text, text};
use protocols::modbus::Profile;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tracing::{info, warn};

use super::action::{Action, PointSet, camera_event_name, camera_fault_name, millis, panel_fault_name};
use super::link::{LinkError, LinkProxy, broker_target};
use super::ports::{PortError, PortPlan};
use super::{Scenario, Step};
use crate::camera::{self, AuthMode, CameraEventKind, CameraFault, CameraFleet, CameraInfo, CameraSpec};
use crate::panel::{self, PanelFaultSim, PanelFleet, PanelInfo, PanelKindSim, PanelSpec};

/// Records kept for a slow journal reader before it starts missing some.
const JOURNAL_CAPACITY: usize = 4096;

/// Why the branch could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cameras: {0}")]
    Cameras(#[from] camera::SimError),
    #[error("panels: {0}")]
    Panels(#[from] panel::SimError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("initial state of the branch: {0}")]
    Initial(#[from] ApplyError),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Ports(Vec<PortError>),
}

/// Why an action could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Camera(#[from] camera::SimError),
    #[error(transparent)]
    Panel(#[from] panel::SimError),
    #[error("this branch has no link proxy (add a [link] section to the scenario)")]
    NoLink,
}

impl ApplyError {
    /// Whether the action named something that does not exist (a camera, panel or point).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ApplyError::Camera(camera::SimError::UnknownCamera(_))
                | ApplyError::Panel(panel::SimError::UnknownPanel(_) | panel::SimError::UnknownPoint { .. })
                | ApplyError::NoLink
        )
    }

    /// The error in both languages (what the control API answers).
    pub fn text(&self) -> Text {
        match self {
            ApplyError::Camera(camera::SimError::UnknownCamera(id)) => {
                text!("no camera with id {id:?}", "没有 id 为 {id:?} 的摄像机")
            }
            ApplyError::Panel(panel::SimError::UnknownPanel(id)) => text!("no panel {id:?}", "没有主机 {id:?}"),
            ApplyError::Panel(panel::SimError::UnknownPoint { panel, point }) => {
                text!("panel {panel:?} has no point {point:?}", "主机 {panel:?} 没有点位 {point:?}")
            }
            ApplyError::Panel(panel::SimError::Encode { panel, source }) => {
                let why = super::action::encode_error(source);
                let (en, zh) = (&why.en, &why.zh);
                Text::new(format!("panel {panel:?}: {en}"), format!("主机 {panel:?}：{zh}"))
            }
            ApplyError::NoLink => text!(
                "this branch has no link proxy (add a [link] section to the scenario)",
                "这个网点没有链路代理（在场景里加上 [link] 一节）"
            ),
            other => Text::verbatim(other.to_string()),
        }
    }

    /// Whether the value was wrong for its target (a state the point does not know…).
    pub fn is_bad_value(&self) -> bool {
        matches!(self, ApplyError::Panel(panel::SimError::Encode { .. }))
    }
}

/// Who asked for an action.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// The start-up state a scenario declares (initial faults, events, points).
    Initial,
    /// A timeline step.
    Timeline { entry: usize, at: Duration, repeat: u32, note: Option<Arc<str>> },
    /// The control API.
    Control,
}

impl Origin {
    pub fn of(step: &Step) -> Origin {
        Origin::Timeline { entry: step.entry, at: step.at, repeat: step.repeat, note: step.note.clone() }
    }
}

/// One applied (or refused) action, as journaled.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Wall time since the branch's clock started ([`LiveBranch::start_clock`]).
    pub t: Duration,
    pub origin: Origin,
    pub action: Action,
    pub error: Option<String>,
}

impl Record {
    /// One JSON object: `t_ms`, `source`, the timeline fields, the action's fields, `ok`.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"t_ms": millis(self.t)});
        match &self.origin {
            Origin::Initial => v["source"] = json!("initial"),
            Origin::Control => v["source"] = json!("control"),
            Origin::Timeline { entry, at, repeat, note } => {
                v["source"] = json!("timeline");
                v["entry"] = json!(entry);
                v["at_ms"] = json!(millis(*at));
                v["repeat"] = json!(repeat);
                if let Some(n) = note {
                    v["note"] = json!(n.as_ref());
                }
            }
        }
        if let (Some(obj), Value::Object(a)) = (v.as_object_mut(), self.action.to_json()) {
            obj.extend(a);
        }
        v["ok"] = json!(self.error.is_none());
        if let Some(e) = &self.error {
            v["error"] = json!(e);
        }
        v
    }
}

#[derive(Debug, Clone)]
struct CameraMeta {
    id: String,
    name: String,
    zones: Vec<String>,
    auth: AuthMode,
    username: String,
}

#[derive(Debug, Clone)]
struct PanelMeta {
    id: String,
    name: String,
    kind: PanelKindSim,
    profile_name: String,
    profile: Arc<Profile>,
}

#[derive(Debug, Default)]
struct CamShadow {
    /// Faults switched on, by name (one value per kind, as the fleet keeps them).
    faults: BTreeMap<&'static str, CameraFault>,
    events: [bool; 3],
}

#[derive(Debug)]
struct PanelShadow {
    faults: BTreeMap<&'static str, PanelFaultSim>,
    heartbeat: bool,
}

#[derive(Debug, Default)]
struct Shadow {
    cams: HashMap<String, CamShadow>,
    panels: HashMap<String, PanelShadow>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data behind short locks: a panic elsewhere leaves it usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn event_index(k: CameraEventKind) -> usize {
    match k {
        CameraEventKind::SignalLoss => 0,
        CameraEventKind::Tamper => 1,
        CameraEventKind::StorageFailure => 2,
    }
}

/// A running simulated branch.
pub struct LiveBranch {
    branch: (String, String),
    cams: CameraFleet,
    panels: PanelFleet,
    link: Option<LinkProxy>,
    camera_meta: Vec<CameraMeta>,
    panel_meta: Vec<PanelMeta>,
    shadow: Mutex<Shadow>,
    epoch: Mutex<Instant>,
    journal: broadcast::Sender<Record>,
}

impl std::fmt::Debug for LiveBranch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveBranch")
            .field("cameras", &self.camera_meta.len())
            .field("panels", &self.panel_meta.len())
            .field("link", &self.link)
            .finish()
    }
}

impl LiveBranch {
    /// Starts every device of `scn` on `bind` (the ports the scenario names, else free ones),
    /// the link proxy towards `broker` if the scenario has one, and applies the scenario's
    /// initial state.
    pub async fn start(scn: &Scenario, bind: IpAddr, broker: &str) -> Result<LiveBranch, StartError> {
        let plan = super::ports::plan(scn, None, 0).map_err(StartError::Ports)?;
        Self::start_on(scn, bind, broker, &plan).await
    }

    /// [`LiveBranch::start`] on the ports of `plan` (see [`super::ports`]).
    pub async fn start_on(
        scn: &Scenario,
        bind: IpAddr,
        broker: &str,
        plan: &PortPlan,
    ) -> Result<LiveBranch, StartError> {
        let specs = scn
            .cameras
            .iter()
            .map(|c| CameraSpec {
                id: c.id.clone(),
                name: c.name.clone(),
                username: c.username.clone(),
                password: c.password.clone(),
                auth: c.auth,
            })
            .collect();
        let cams = CameraFleet::start_on(bind, specs, &plan.cameras).await?;
        let panel_specs = scn
            .panels
            .iter()
            .map(|p| PanelSpec {
                id: p.id.clone(),
                name: p.name.clone(),
                profile: Profile::clone(&p.profile),
                unit_id: p.unit_id,
            })
            .collect();
        let panels = match PanelFleet::start_on(bind, panel_specs, &plan.panels).await {
            Ok(p) => p,
            Err(e) => {
                cams.shutdown().await;
                return Err(e.into());
            }
        };
        let link = match &scn.link {
            None => None,
            Some(l) => {
                let started = match broker_target(broker) {
                    Ok(target) => {
                        let listen = std::net::SocketAddr::new(l.listen.ip(), plan.link);
                        LinkProxy::start(listen, target).await
                    }
                    Err(e) => Err(e),
                };
                match started {
                    Ok(p) => Some(p),
                    Err(e) => {
                        cams.shutdown().await;
                        panels.shutdown().await;
                        return Err(e.into());
                    }
                }
            }
        };
        let mut shadow = Shadow::default();
        for c in &scn.cameras {
            shadow.cams.insert(c.id.clone(), CamShadow::default());
        }
        for p in &scn.panels {
            shadow.panels.insert(p.id.clone(), PanelShadow { faults: BTreeMap::new(), heartbeat: true });
        }
        let (journal, _) = broadcast::channel(JOURNAL_CAPACITY);
        let branch = LiveBranch {
            branch: (scn.branch.id.clone(), scn.branch.name.clone()),
            cams,
            panels,
            link,
            camera_meta: scn
                .cameras
                .iter()
                .map(|c| CameraMeta {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    zones: c.zones.clone(),
                    auth: c.auth,
                    username: c.username.clone(),
                })
                .collect(),
            panel_meta: scn
                .panels
                .iter()
                .map(|p| PanelMeta {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    kind: p.kind,
                    profile_name: p.profile_name.clone(),
                    profile: p.profile.clone(),
                })
                .collect(),
            shadow: Mutex::new(shadow),
            epoch: Mutex::new(Instant::now()),
            journal,
        };
        if let Err(e) = branch.initial_state(scn) {
            branch.shutdown().await;
            return Err(e.into());
        }
        Ok(branch)
    }

    fn initial_state(&self, scn: &Scenario) -> Result<(), ApplyError> {
        let mut actions = Vec::new();
        for c in &scn.cameras {
            for f in &c.faults {
                actions.push(Action::CameraFault { camera: c.id.clone(), fault: *f, on: true });
            }
            for k in &c.events {
                actions.push(Action::CameraEvent { camera: c.id.clone(), kind: *k, active: true });
            }
        }
        for p in &scn.panels {
            for (point, value) in &p.points {
                actions.push(Action::Point { panel: p.id.clone(), point: point.clone(), value: value.clone() });
            }
            for f in &p.faults {
                actions.push(Action::PanelFault { panel: p.id.clone(), fault: *f, on: true });
            }
            if !p.heartbeat {
                actions.push(Action::Heartbeat { panel: p.id.clone(), running: false });
            }
        }
        for a in &actions {
            self.apply(Origin::Initial, a)?;
        }
        Ok(())
    }

    /// Restarts the clock that journal times (and the timeline) count from; returns it.
    pub fn start_clock(&self) -> Instant {
        let now = Instant::now();
        *lock(&self.epoch) = now;
        now
    }

    /// Time since [`LiveBranch::start_clock`] (or since start-up).
    pub fn elapsed(&self) -> Duration {
        lock(&self.epoch).elapsed()
    }

    /// Every action applied from now on (timeline, control, initial), as it happens.
    pub fn subscribe(&self) -> broadcast::Receiver<Record> {
        self.journal.subscribe()
    }

    /// Applies `action`, logs it at info with its offset, and journals it (refused ones too).
    pub fn apply(&self, origin: Origin, action: &Action) -> Result<(), ApplyError> {
        let result = self.apply_inner(action);
        let t = self.elapsed();
        let offset = format!("{:.3}s", t.as_secs_f64());
        let what = action.describe();
        match (&result, &origin) {
            (Ok(()), Origin::Timeline { entry, note: Some(note), .. }) => {
                info!(offset = %offset, entry, note = %note, "{what}")
            }
            (Ok(()), Origin::Timeline { entry, note: None, .. }) => info!(offset = %offset, entry, "{what}"),
            (Ok(()), Origin::Control) => info!(offset = %offset, source = "control", "{what}"),
            (Ok(()), Origin::Initial) => tracing::debug!("initial: {what}"),
            (Err(e), _) => {
                let lang = i18n::Lang::current();
                let error = e.text();
                let error = error.get(lang);
                warn!(offset = %offset, source = ?origin, error, "{}", i18n::tr!(lang, "could not apply: {what}", "无法执行：{what}"))
            }
        }
        let _ = self.journal.send(Record {
            t,
            origin,
            action: action.clone(),
            error: result.as_ref().err().map(ToString::to_string),
        });
        result
    }

    fn apply_inner(&self, action: &Action) -> Result<(), ApplyError> {
        match action {
            Action::CameraFault { camera, fault, on } => {
                self.cams.set_fault(camera, *fault, *on)?;
                if let Some(s) = lock(&self.shadow).cams.get_mut(camera) {
                    let name = camera_fault_name(*fault);
                    let clears = *on && matches!(fault, CameraFault::ClockSkew(0));
                    if *on && !clears {
                        s.faults.insert(name, *fault);
                    } else {
                        s.faults.remove(name);
                    }
                }
            }
            Action::CameraEvent { camera, kind, active } => {
                self.cams.emit_event(camera, *kind, *active)?;
                if let Some(s) = lock(&self.shadow).cams.get_mut(camera) {
                    s.events[event_index(*kind)] = *active;
                }
            }
            Action::Point { panel, point, value } => match value {
                PointSet::State(s) => self.panels.set_point(panel, point, s)?,
                PointSet::Raw(r) => self.panels.set_raw(panel, point, *r)?,
            },
            Action::PanelFault { panel, fault, on } => {
                self.panels.set_fault(panel, *fault, *on)?;
                if let Some(s) = lock(&self.shadow).panels.get_mut(panel) {
                    let name = panel_fault_name(*fault);
                    if *on {
                        s.faults.insert(name, *fault);
                    } else {
                        s.faults.remove(name);
                    }
                }
            }
            Action::Heartbeat { panel, running } => {
                self.panels.set_heartbeat_running(panel, *running)?;
                if let Some(s) = lock(&self.shadow).panels.get_mut(panel) {
                    s.heartbeat = *running;
                }
            }
            Action::Link { up } => match &self.link {
                Some(l) => l.set_up(*up),
                None => return Err(ApplyError::NoLink),
            },
        }
        Ok(())
    }

    /// Where each camera can be reached.
    pub fn cameras(&self) -> Vec<CameraInfo> {
        self.cams.cameras()
    }

    /// Answers WS-Discovery probes (UDP 3702, multicast on `bind`'s interface) for the cameras.
    pub fn start_discovery(&self, bind: std::net::IpAddr) -> Result<camera::DiscoveryHandle, camera::SimError> {
        self.cams.start_discovery(bind)
    }

    /// Where each panel listens.
    pub fn panels(&self) -> Vec<PanelInfo> {
        self.panels.panels()
    }

    /// The link proxy, if the scenario has one.
    pub fn link(&self) -> Option<&LinkProxy> {
        self.link.as_ref()
    }

    /// The camera fleet, for callers that drive cameras beyond [`Action`]s (the demo, tests).
    pub fn camera_fleet(&self) -> &CameraFleet {
        &self.cams
    }

    /// The panel fleet.
    pub fn panel_fleet(&self) -> &PanelFleet {
        &self.panels
    }

    /// Whether a camera with this id exists.
    pub fn has_camera(&self, id: &str) -> bool {
        self.camera_meta.iter().any(|c| c.id == id)
    }

    /// Whether a panel with this id exists.
    pub fn has_panel(&self, id: &str) -> bool {
        self.panel_meta.iter().any(|p| p.id == id)
    }

    /// Everything an installer wants to see: addresses, current faults, point states.
    pub fn devices(&self) -> Value {
        let infos: HashMap<String, CameraInfo> = self.cams.cameras().into_iter().map(|c| (c.id.clone(), c)).collect();
        let panel_infos: HashMap<String, PanelInfo> =
            self.panels.panels().into_iter().map(|p| (p.id.clone(), p)).collect();
        let shadow = lock(&self.shadow);
        let cameras: Vec<Value> = self
            .camera_meta
            .iter()
            .map(|m| {
                let info = infos.get(&m.id);
                let sh = shadow.cams.get(&m.id);
                let faults: Vec<Value> =
                    sh.map(|s| s.faults.values().map(|f| camera_fault_json(*f)).collect()).unwrap_or_default();
                let events: serde_json::Map<String, Value> = EVENT_KINDS
                    .iter()
                    .map(|k| {
                        let on = sh.map(|s| s.events[event_index(*k)]).unwrap_or(false);
                        (camera_event_name(*k).to_string(), json!(on))
                    })
                    .collect();
                json!({
                    "id": m.id,
                    "name": m.name,
                    "zones": m.zones,
                    "auth": match m.auth { AuthMode::UsernameToken => "username-token", AuthMode::Digest => "digest" },
                    "username": m.username,
                    "onvif": info.map(|i| i.device_url.clone()),
                    "rtsp": info.map(|i| i.rtsp_uri.clone()),
                    "snapshot": info.map(|i| i.snapshot_uri.clone()),
                    "http_port": info.map(|i| i.http_port),
                    "rtsp_port": info.map(|i| i.rtsp_port),
                    "faults": faults,
                    "events": events,
                })
            })
            .collect();
        let panels: Vec<Value> = self
            .panel_meta
            .iter()
            .map(|m| {
                let info = panel_infos.get(&m.id);
                let sh = shadow.panels.get(&m.id);
                let mut points = serde_json::Map::new();
                for p in m.profile.points() {
                    let raw = self.panels.raw(&m.id, &p.id).ok();
                    let state = self.panels.state(&m.id, &p.id).ok().flatten();
                    points.insert(p.id.clone(), json!({"role": p.role.as_str(), "state": state, "raw": raw}));
                }
                json!({
                    "id": m.id,
                    "name": m.name,
                    "kind": match m.kind { PanelKindSim::Alarm => "alarm", PanelKindSim::Access => "access" },
                    "profile": m.profile_name,
                    "address": info.map(|i| i.addr.to_string()),
                    "unit_id": info.map(|i| i.unit_id),
                    "heartbeat": sh.map(|s| s.heartbeat).unwrap_or(true),
                    "faults": sh.map(|s| s.faults.values().map(|f| panel_fault_json(*f)).collect::<Vec<_>>()).unwrap_or_default(),
                    "points": points,
                })
            })
            .collect();
        let link = self
            .link
            .as_ref()
            .map(|l| json!({"listen": l.listen().to_string(), "target": l.target(), "up": l.is_up()}));
        json!({
            "branch": {"id": self.branch.0, "name": self.branch.1},
            "elapsed_ms": millis(self.elapsed()),
            "cameras": cameras,
            "panels": panels,
            "link": link,
        })
    }

    /// Closes every listener, connection and the link proxy.
    pub async fn shutdown(&self) {
        if let Some(l) = &self.link {
            l.shutdown();
        }
        self.cams.shutdown().await;
        self.panels.shutdown().await;
    }
}

/// Every health condition, in the documented order (the fleet keeps its own list private).
const EVENT_KINDS: [CameraEventKind; 3] =
    [CameraEventKind::SignalLoss, CameraEventKind::Tamper, CameraEventKind::StorageFailure];

fn camera_fault_json(f: CameraFault) -> Value {
    let mut v = json!({"fault": camera_fault_name(f)});
    match f {
        CameraFault::Slow(d) => v["ms"] = json!(millis(d)),
        CameraFault::ClockSkew(s) => v["seconds"] = json!(s),
        _ => {}
    }
    v
}

fn panel_fault_json(f: PanelFaultSim) -> Value {
    let mut v = json!({"fault": panel_fault_name(f)});
    match f {
        PanelFaultSim::Slow(d) => v["ms"] = json!(millis(d)),
        PanelFaultSim::Exception(c) => v["code"] = json!(c),
        _ => {}
    }
    v
}
