//! Scenarios: a whole simulated branch in one TOML file — cameras, panels, zones, alarm
//! zones and doors, the gateway settings to emit, and a timeline of faults and events —
//! played deterministically against real sockets.
//!
//! Why a file and not a script: an installer commissioning a branch, a tester reproducing a
//! bank's "bad day" and an end-to-end test all want the same thing — a branch that does
//! *this* at *that* second — and want to hand it to each other. A file that validates with
//! precise errors (file, line, entry, field, fix) is the thing they can share.
//!
//! - [`load`]/[`parse`] read and check a scenario ([`Scenario`]), listing every problem.
//! - [`LiveBranch`] runs one: starts the camera and panel fleets (and the optional MQTT
//!   [`link`] proxy), applies [`Action`]s, remembers what it applied (the fleets do not expose
//!   their fault state), and journals every action for `--events-json` and the control API.
//! - [`play`] runs the timeline against a [`LiveBranch`]; [`emit`] writes the matching
//!   gateway site config.
//!
//! The format is documented field by field in docs/SIMULATOR.md.

mod action;
pub mod emit;
pub mod link;
mod live;
mod parse;
mod player;
pub mod ports;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use i18n::{Lang, tr};
use protocols::modbus::Profile;

pub use action::{
    Action, CAMERA_EVENTS, CAMERA_FAULTS, DEFAULT_EXCEPTION_CODE, Invalid, PANEL_FAULTS, PointSet, camera_event,
    camera_event_name, camera_fault, camera_fault_help, camera_fault_name, panel_fault, panel_fault_help,
    panel_fault_name,
};
pub use live::{ApplyError, LiveBranch, Origin, Record, StartError};
pub use player::play;

use crate::camera::{AuthMode, CameraEventKind, CameraFault};
use crate::panel::{PanelFaultSim, PanelKindSim};

/// The broker an emitted config points at when neither the scenario nor `--broker` says.
pub const DEFAULT_BROKER: &str = "mqtt://127.0.0.1:1883";
/// Most timeline steps after `every` expansion: a bound against `every = "1ms"` typos.
pub const MAX_STEPS: usize = 100_000;
/// Most cameras and panels a scenario may define (each costs sockets and tasks).
pub const MAX_DEVICES: usize = 2_000;
/// Largest scenario file read.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A checked scenario. Timeline steps are expanded (`every`) and sorted by time, ties in
/// file order, so playing it is deterministic.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file it came from (for messages and for naming emitted files).
    pub source: PathBuf,
    pub name: String,
    pub description: String,
    /// How long the scenario lasts; `--exit-when-done` waits at least this long.
    pub duration: Option<Duration>,
    /// `[scenario] base_port`: devices without their own `port` listen on ports counted from
    /// it ([`ports`]); `--base-port` overrides it.
    pub base_port: Option<u16>,
    pub branch: BranchDef,
    pub gateway: GatewayDef,
    pub link: Option<LinkDef>,
    pub zones: Vec<ZoneDef>,
    pub cameras: Vec<CameraDef>,
    pub panels: Vec<PanelDef>,
    pub alarm_zones: Vec<AlarmZoneDef>,
    pub doors: Vec<DoorDef>,
    pub timeline: Vec<Step>,
}

impl Scenario {
    /// When the last step fires (zero for an empty timeline).
    pub fn last_step(&self) -> Duration {
        self.timeline.last().map(|s| s.at).unwrap_or_default()
    }

    /// How long `--exit-when-done` keeps the branch up: the declared duration or the last
    /// step, whichever is later.
    pub fn end(&self) -> Duration {
        self.duration.unwrap_or_default().max(self.last_step())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchDef {
    pub id: String,
    pub name: String,
}

/// Settings for the emitted gateway config. `None` leaves the gateway's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayDef {
    pub broker: String,
    pub client_id: Option<String>,
    pub topic_prefix: Option<String>,
    pub keep_alive: Option<Duration>,
    /// The outbox directory, relative to the emitted config; default `{config stem}-outbox`.
    pub storage_path: Option<String>,
    pub offline_after: Option<u32>,
    pub online_after: Option<u32>,
    pub coverage_period: Option<Duration>,
    pub camera_poll_interval: Option<Duration>,
    pub camera_timeout: Option<Duration>,
    pub panel_poll_interval: Option<Duration>,
    pub panel_timeout: Option<Duration>,
    /// `[metrics] listen` of the emitted config (`127.0.0.1:0` lets several gateways share a
    /// host, as tests do); `None` keeps the gateway's default port.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl Default for GatewayDef {
    /// The local broker and the gateway's own default for everything else.
    fn default() -> Self {
        GatewayDef {
            broker: DEFAULT_BROKER.into(),
            client_id: None,
            topic_prefix: None,
            keep_alive: None,
            storage_path: None,
            offline_after: None,
            online_after: None,
            coverage_period: None,
            camera_poll_interval: None,
            camera_timeout: None,
            panel_poll_interval: None,
            panel_timeout: None,
            metrics_listen: None,
        }
    }
}

/// The optional TCP proxy standing in for the branch's WAN link to head office.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkDef {
    /// Where the proxy listens (port 0: a free port); the emitted config's broker points here.
    pub listen: std::net::SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneDef {
    pub id: String,
    pub name: String,
    pub coverage_required: bool,
    pub min_live_cameras: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraDef {
    pub id: String,
    pub name: String,
    pub zones: Vec<String>,
    pub auth: AuthMode,
    pub username: String,
    pub password: String,
    /// Faults on from the start.
    pub faults: Vec<CameraFault>,
    /// Health conditions active from the start.
    pub events: Vec<CameraEventKind>,
    /// Emitted as `maintenance = true`.
    pub maintenance: bool,
    /// Overrides `[gateway] camera_poll_interval` in the emitted config.
    pub poll_interval: Option<Duration>,
    /// The ONVIF/snapshot port to listen on (RTSP on the next); `None`: from the base port or free.
    pub port: Option<u16>,
}

#[derive(Debug, Clone)]
pub struct PanelDef {
    pub id: String,
    pub name: String,
    pub kind: PanelKindSim,
    /// The built-in profile's name (what the emitted config says).
    pub profile_name: String,
    pub profile: Arc<Profile>,
    pub unit_id: u8,
    pub faults: Vec<PanelFaultSim>,
    /// Whether the heartbeat counts at start.
    pub heartbeat: bool,
    /// Points set at start, in file order (e.g. `partition.1 = "armed"`).
    pub points: Vec<(String, PointSet)>,
    pub poll_interval: Option<Duration>,
    /// The Modbus TCP port to listen on; `None`: from the base port or free.
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmZoneDef {
    pub id: String,
    pub name: String,
    pub panel: String,
    pub point: String,
    pub partition: Option<String>,
    pub twenty_four_hour: bool,
    pub area: Option<String>,
    pub linked_cameras: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorDef {
    pub id: String,
    pub name: String,
    pub panel: String,
    pub point: String,
    pub area: Option<String>,
    pub linked_cameras: Vec<String>,
    pub held_open_limit: Option<Duration>,
}

/// One scheduled action.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Offset from the start of play (scenario time; `--speed` scales it).
    pub at: Duration,
    /// The `[[timeline]]` entry it comes from, 1-based.
    pub entry: usize,
    /// Which repetition of an `every` entry (0 for the first or only one).
    pub repeat: u32,
    /// The entry's `note`, echoed in logs and JSON.
    pub note: Option<Arc<str>>,
    pub action: Action,
}

/// One problem in a scenario file: the workspace's one [`site::Diagnostic`], its line the
/// line of the entry's header (or inline table), its entry `timeline #4`, `camera #2 (cam-02)`,
/// `[gateway]` or `(top level)`, its field `fault`, `at`… (empty when the entry as a whole is
/// wrong).
pub type Problem = site::Diagnostic;

/// Why a scenario cannot be used.
#[derive(Debug)]
pub enum ScenarioError {
    Read { path: PathBuf, source: std::io::Error },
    TooLarge { path: PathBuf, size: u64 },
    Syntax { path: PathBuf, message: String },
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

impl ScenarioError {
    /// An invalid scenario: each problem names `path`.
    fn invalid(path: &Path, problems: Vec<Problem>) -> ScenarioError {
        let problems = problems.into_iter().map(|p| p.with_file(path)).collect();
        ScenarioError::Invalid { path: path.to_path_buf(), problems }
    }

    /// Every line of the error in `lang`: one line per problem for an invalid file.
    pub fn render(&self, lang: Lang) -> String {
        match self {
            ScenarioError::Read { path, source } => {
                let path = path.display();
                tr!(
                    lang,
                    "{path}: cannot read the scenario: {source} (fix: check the path)",
                    "{path}：无法读取场景文件：{source}（修正：检查路径）"
                )
            }
            ScenarioError::TooLarge { path, size } => {
                let path = path.display();
                tr!(
                    lang,
                    "{path}: the file is {size} bytes; scenarios are limited to {MAX_FILE_BYTES} (fix: split it)",
                    "{path}：文件有 {size} 字节，场景文件上限为 {MAX_FILE_BYTES}（修正：拆成几个文件）"
                )
            }
            ScenarioError::Syntax { path, message } => {
                let path = path.display();
                tr!(lang, "{path}: not valid TOML: {message}", "{path}：不是有效的 TOML：{message}")
            }
            ScenarioError::Invalid { problems, .. } => {
                problems.iter().map(|p| p.render(lang)).collect::<Vec<_>>().join("\n")
            }
        }
    }

    /// The individual problems (empty for read and syntax errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ScenarioError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// English.
impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(Lang::En))
    }
}

impl std::error::Error for ScenarioError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScenarioError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads and checks a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let read_err = |source| ScenarioError::Read { path: path.to_path_buf(), source };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > MAX_FILE_BYTES {
        return Err(ScenarioError::TooLarge { path: path.to_path_buf(), size });
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    parse(&text, path)
}

/// Checks scenario text; `path` is only used in messages and as [`Scenario::source`].
pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
    parse::parse(text, path)
}
