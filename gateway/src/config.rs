//! Site configuration: one TOML file per branch, validated as a whole so that an installer
//! sees every problem at once, each naming the file, the field and the fix.
//!
//! Parsing (`toml` + serde) catches syntax and type errors; [`SiteConfig::validate`] catches
//! what types cannot: duplicate ids, dangling references, out-of-range intervals, unusable
//! topic segments and unreadable credential files.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use i18n::{Lang, Text, text, tr};
use protocols::ids::validate_segment;
use protocols::{BranchId, DeviceId, ZoneId};
use serde::Deserialize;

use crate::picture::{NightHours, PictureSettings, Resolution};

/// The whole site file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub branch: BranchConfig,
    pub uplink: UplinkConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraConfig>,
    #[serde(default, rename = "panel")]
    pub panels: Vec<PanelConfig>,
    #[serde(default, rename = "zone")]
    pub zones: Vec<ZoneConfig>,
    #[serde(default, rename = "alarm_zone")]
    pub alarm_zones: Vec<AlarmZoneConfig>,
    #[serde(default, rename = "door")]
    pub doors: Vec<DoorConfig>,
    /// The directory the file lives in: relative paths in the file are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    #[serde(skip)]
    pub source: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchConfig {
    pub id: String,
    pub name: String,
    /// Language of alert messages: `en` (default) or `zh-CN`. Field names and codes in the
    /// payloads stay English whatever this says.
    #[serde(default)]
    pub language: crate::messages::Lang,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub broker: String,
    /// Defaults to the username, else `branch-gateway-{branch id}`.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default, flatten)]
    pub password: Secret,
    #[serde(default = "default_keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// `"5"` (default: a publish the broker refuses stays in the outbox) or `"3.1.1"` for
    /// brokers without MQTT 5 (a refused publish is then acknowledged and lost: see CONFIG.md).
    #[serde(default)]
    pub mqtt_version: crate::mqtt::MqttVersion,
}

fn default_prefix() -> String {
    protocols::topics::DEFAULT_PREFIX.to_string()
}
fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}

/// A password given inline (`password`), in a file (`password_file`, first line, trailing
/// newline ignored) or in an environment variable (`password_env`). At most one.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Secret {
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub password_env: Option<String>,
}

impl Secret {
    pub fn is_set(&self) -> bool {
        self.password.is_some() || self.password_file.is_some() || self.password_env.is_some()
    }

    /// Reads the secret. `base_dir` resolves a relative `password_file`.
    pub fn resolve(&self, base_dir: &Path) -> Result<Option<String>, String> {
        if let Some(p) = &self.password {
            return Ok(Some(p.clone()));
        }
        if let Some(f) = &self.password_file {
            let path = base_dir.join(f);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read password file {}: {e}", path.display()))?;
            let first = text.lines().next().unwrap_or("").to_string();
            return Ok(Some(first));
        }
        if let Some(var) = &self.password_env {
            return match std::env::var(var) {
                Ok(v) => Ok(Some(v)),
                Err(_) => Err(format!("environment variable {var} is not set")),
            };
        }
        Ok(None)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca_file: PathBuf,
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default = "default_storage_path")]
    pub path: PathBuf,
    /// Most events the outbox holds before it evicts low-severity ones.
    #[serde(default = "default_max_events")]
    pub max_events: u64,
    /// Most bytes of event payload the outbox holds (`"512MiB"`, `"2GB"` or a number).
    #[serde(default = "default_max_bytes", deserialize_with = "de_bytes")]
    pub max_bytes: u64,
    /// Alarm snapshots kept (the oldest are deleted beyond this).
    #[serde(default = "default_snapshots_keep")]
    pub snapshots_keep: usize,
}

fn default_snapshots_keep() -> usize {
    500
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: default_storage_path(),
            max_events: default_max_events(),
            max_bytes: default_max_bytes(),
            snapshots_keep: default_snapshots_keep(),
        }
    }
}

fn default_storage_path() -> PathBuf {
    PathBuf::from("/var/lib/branch-gateway")
}
fn default_max_events() -> u64 {
    1_000_000
}
fn default_max_bytes() -> u64 {
    1024 * 1024 * 1024
}

/// Parses `"512MiB"`, `"2GB"`, `"100kB"` or an integer of bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size; write e.g. \"512MiB\""))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1000,
        "KiB" => 1024,
        "MB" => 1000 * 1000,
        "MiB" => 1024 * 1024,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1024 * 1024 * 1024,
        other => return Err(format!("unknown size unit {other:?}; use B, kB, KiB, MB, MiB, GB or GiB")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"))
}

fn de_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(n),
        Raw::S(s) => parse_bytes(&s).map_err(serde::de::Error::custom),
    }
}

fn de_bytes_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_bytes(d).map(Some)
}

/// The operator endpoint (`/metrics`, `/health`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default = "default_metrics_enabled")]
    pub enabled: bool,
    /// Loopback by default: expose it further only through a reverse proxy or a firewall rule.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: default_metrics_enabled(), listen: default_metrics_listen() }
    }
}

fn default_metrics_enabled() -> bool {
    true
}
fn default_metrics_listen() -> String {
    "127.0.0.1:9464".to_string()
}

/// Health thresholds shared by all devices unless a device overrides them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Consecutive failed probes before a device is offline.
    #[serde(default = "default_offline_after")]
    pub offline_after: u32,
    /// Consecutive good probes before it is back.
    #[serde(default = "default_online_after")]
    pub online_after: u32,
    /// How often the coverage report is re-published even when nothing changed.
    #[serde(default = "default_coverage_period", with = "humantime_serde")]
    pub coverage_period: Duration,
    /// Cameras: fetch the snapshot (to tell a frozen picture) on every Nth probe; a camera's
    /// own `frozen_check_every` overrides it.
    #[serde(default = "default_frozen_check_every")]
    pub frozen_check_every: u32,
    /// Cameras: the largest snapshot read; a bigger picture is a reason, not a hash. A camera's
    /// own `snapshot_max_bytes` overrides it.
    #[serde(default = "default_snapshot_max_bytes", deserialize_with = "de_bytes")]
    pub snapshot_max_bytes: u64,
    /// Cameras: picture checks (dark, obstructed, defocused) and the HD minimum, for every
    /// camera unless it sets its own (`picture = { … }` on the camera).
    #[serde(default)]
    pub picture: PictureConfig,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            offline_after: default_offline_after(),
            online_after: default_online_after(),
            coverage_period: default_coverage_period(),
            frozen_check_every: default_frozen_check_every(),
            snapshot_max_bytes: default_snapshot_max_bytes(),
            picture: PictureConfig::default(),
        }
    }
}

/// Picture-check settings as written (`[health.picture]`, a camera's `picture`); every field
/// optional, a camera's own value winning over `[health.picture]`'s, then the default. What
/// each means and how the defaults were chosen: docs/CONFIG.md, section `[health.picture]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PictureConfig {
    /// Whether pictures are checked at all (default true).
    pub checks: Option<bool>,
    /// Mean brightness (0–255) below which a picture is dark (default 25).
    pub dark_below: Option<f32>,
    /// Variation of the 8×8 block means below which a picture is uniform: obstructed (default 8).
    pub uniform_below: Option<f32>,
    /// Sharpness below this share of the camera's baseline is defocused (default 0.6; 0: off).
    pub defocus_ratio: Option<f32>,
    /// A fixed sharpness baseline instead of the learned one.
    pub sharpness_baseline: Option<f32>,
    /// The camera lights its scene at night (IR); default true. Without IR, darkness within
    /// `night_hours` is expected.
    pub ir: Option<bool>,
    /// Local hours when a camera without IR may be dark, `HH:MM-HH:MM`.
    pub night_hours: Option<String>,
    /// The least main-stream resolution, `WIDTHxHEIGHT` (default 1280x720).
    pub min_resolution: Option<String>,
}

impl PictureConfig {
    /// `self` with every unset field taken from `fallback`.
    fn or(&self, fallback: &PictureConfig) -> PictureConfig {
        PictureConfig {
            checks: self.checks.or(fallback.checks),
            dark_below: self.dark_below.or(fallback.dark_below),
            uniform_below: self.uniform_below.or(fallback.uniform_below),
            defocus_ratio: self.defocus_ratio.or(fallback.defocus_ratio),
            sharpness_baseline: self.sharpness_baseline.or(fallback.sharpness_baseline),
            ir: self.ir.or(fallback.ir),
            night_hours: self.night_hours.clone().or_else(|| fallback.night_hours.clone()),
            min_resolution: self.min_resolution.clone().or_else(|| fallback.min_resolution.clone()),
        }
    }

    /// The judge's settings (defaults for what is unset or unreadable: validation reports those).
    pub fn settings(&self) -> PictureSettings {
        let d = PictureSettings::default();
        PictureSettings {
            enabled: self.checks.unwrap_or(d.enabled),
            dark_below: self.dark_below.unwrap_or(d.dark_below),
            uniform_below: self.uniform_below.unwrap_or(d.uniform_below),
            defocus_ratio: self.defocus_ratio.unwrap_or(d.defocus_ratio),
            sharpness_baseline: self.sharpness_baseline,
            ir: self.ir.unwrap_or(d.ir),
            night_hours: self.night_hours.as_deref().and_then(NightHours::parse),
        }
    }

    /// The least main-stream resolution.
    pub fn min_resolution(&self) -> Resolution {
        self.min_resolution.as_deref().and_then(Resolution::parse).unwrap_or(Resolution::HD)
    }
}

/// Default of `frozen_check_every`: one snapshot every 6 probes (once a minute at the default
/// 10 s interval). Costs and delays in docs/CONFIG.md.
pub const DEFAULT_FROZEN_CHECK_EVERY: u32 = 6;
/// Default of `snapshot_max_bytes`: 4 MiB, several times a 1080p JPEG (200–700 KB).
pub const DEFAULT_SNAPSHOT_MAX_BYTES: u64 = 4 * 1024 * 1024;

fn default_frozen_check_every() -> u32 {
    DEFAULT_FROZEN_CHECK_EVERY
}
fn default_snapshot_max_bytes() -> u64 {
    DEFAULT_SNAPSHOT_MAX_BYTES
}

fn default_offline_after() -> u32 {
    3
}
fn default_online_after() -> u32 {
    2
}
fn default_coverage_period() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CameraAuth {
    /// WS-Security UsernameToken with PasswordDigest (the ONVIF default).
    #[default]
    UsernameToken,
    /// HTTP Digest (RFC 7616), used by some firmware instead.
    Digest,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub id: String,
    pub name: String,
    /// The device service URL, e.g. `http://10.1.2.21/onvif/device_service`.
    pub onvif: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default, flatten)]
    pub password: Secret,
    #[serde(default)]
    pub auth: CameraAuth,
    /// Coverage zones this camera watches.
    #[serde(default)]
    pub zones: Vec<String>,
    #[serde(default = "default_camera_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Deadline for each request of a probe.
    #[serde(default = "default_camera_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Planned work: probed, reported as `maintenance`, never alerts.
    #[serde(default)]
    pub maintenance: bool,
    /// Fetch the snapshot every Nth probe (`[health] frozen_check_every` when not set; the
    /// site file's value is filled in at parse time).
    #[serde(default)]
    pub frozen_check_every: Option<u32>,
    /// Largest snapshot read (`[health] snapshot_max_bytes` when not set).
    #[serde(default, deserialize_with = "de_bytes_opt")]
    pub snapshot_max_bytes: Option<u64>,
    /// Picture checks and the HD minimum for this camera (`[health.picture]` for what it
    /// does not set; `min_resolution` also from its zones).
    #[serde(default)]
    pub picture: PictureConfig,
    /// `picture` resolved at parse time: its own values, then its zones' strictest
    /// `min_resolution`, then `[health.picture]`.
    #[serde(skip)]
    pub picture_resolved: PictureConfig,
}

fn default_camera_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_camera_timeout() -> Duration {
    Duration::from_secs(2)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PanelKind {
    Alarm,
    Access,
}

impl PanelKind {
    /// The device type a panel of this kind is published as.
    pub fn device_type(self) -> protocols::DeviceType {
        match self {
            PanelKind::Alarm => protocols::DeviceType::AlarmPanel,
            PanelKind::Access => protocols::DeviceType::AccessController,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelConfig {
    pub id: String,
    pub name: String,
    pub kind: PanelKind,
    /// `host:port` of the Modbus TCP server (port 502 when omitted).
    pub address: String,
    #[serde(default = "default_unit_id")]
    pub unit_id: u8,
    /// A built-in profile name (`generic-alarm`, `generic-access`, `zone-status-word`) or a
    /// path to a profile file (relative to this config file).
    pub profile: String,
    #[serde(default = "default_panel_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(default = "default_panel_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// A pause between the requests of one poll cycle, for strict devices (0 = none).
    #[serde(default, with = "humantime_serde")]
    pub pace: Duration,
    #[serde(default)]
    pub maintenance: bool,
}

fn default_unit_id() -> u8 {
    1
}
fn default_panel_interval() -> Duration {
    Duration::from_millis(250)
}
fn default_panel_timeout() -> Duration {
    Duration::from_secs(1)
}

/// An area of the branch for coverage (entrance, cash counter, vault…).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub coverage_required: bool,
    #[serde(default = "default_min_live")]
    pub min_live_cameras: u32,
    /// The least main-stream resolution of the cameras watching this zone (`WIDTHxHEIGHT`); a
    /// camera's own `picture.min_resolution` wins.
    #[serde(default)]
    pub min_resolution: Option<String>,
}

fn default_min_live() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmZoneConfig {
    pub id: String,
    pub name: String,
    pub panel: String,
    /// The profile point that carries this zone's state (e.g. `zone.3`).
    pub point: String,
    /// Partition whose armed state applies (a profile point id of role `partition`).
    #[serde(default)]
    pub partition: Option<String>,
    /// Panic / hold-up zones: always armed.
    #[serde(default)]
    pub twenty_four_hour: bool,
    /// The coverage zone the alarm zone lies in.
    #[serde(default)]
    pub area: Option<String>,
    #[serde(default)]
    pub linked_cameras: Vec<String>,
    /// Fetch a snapshot from each linked camera right after the alarm, keep it under
    /// `{storage}/snapshots`, and name it in a follow-up event.
    #[serde(default)]
    pub snapshot: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoorConfig {
    pub id: String,
    pub name: String,
    pub panel: String,
    pub point: String,
    #[serde(default)]
    pub area: Option<String>,
    #[serde(default)]
    pub linked_cameras: Vec<String>,
    /// A door open longer than this is `held-open`.
    #[serde(default = "default_held_open", with = "humantime_serde")]
    pub held_open_limit: Duration,
    /// As for alarm zones: snapshots from the linked cameras when the door is forced or held.
    #[serde(default)]
    pub snapshot: bool,
}

fn default_held_open() -> Duration {
    Duration::from_secs(30)
}

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `camera[2].id`, `uplink.topic_prefix`… (never translated: it is what the file says).
    pub field: String,
    pub message: Text,
    pub fix: Text,
}

impl Problem {
    /// `field: message (fix: …)` in `lang`.
    pub fn render(&self, lang: Lang) -> String {
        let (message, fix) = (self.message.get(lang), self.fix.get(lang));
        tr!(lang, "{}: {message} (fix: {fix})", "{}：{message}（修正：{fix}）", self.field)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(Lang::En))
    }
}

/// How to write a good id, with an example when given.
fn id_fix(example: &str) -> Text {
    if example.is_empty() {
        text!("use letters, digits, `-` or `_`", "只用字母、数字、`-` 或 `_`")
    } else {
        text!("use letters, digits, `-` or `_`, e.g. {example:?}", "只用字母、数字、`-` 或 `_`，例如 {example:?}")
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the file: {source} (fix: check the path and its permissions)")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: Text },
    #[error("{path}: {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

impl ConfigError {
    /// The whole error in `lang`, as `check-config` prints it.
    pub fn render(&self, lang: Lang) -> String {
        match self {
            ConfigError::Read { path, source } => tr!(
                lang,
                "{}: cannot read the file: {source} (fix: check the path and its permissions)",
                "{}：无法读取该文件：{source}（修正：检查路径及其权限）",
                path.display()
            ),
            ConfigError::Parse { path, message } => format!("{}: {}", path.display(), message.get(lang)),
            ConfigError::Invalid { path, problems } => {
                let n = problems.len();
                let mut out = tr!(lang, "{}: {n} problem(s):", "{}：{n} 处问题：", path.display());
                for p in problems {
                    out.push_str("\n  - ");
                    out.push_str(&p.render(lang));
                }
                out
            }
        }
    }
}

/// A checker for profile references: returns the point ids of a profile and their roles, or
/// the problems found in it. Lives outside this module so that config stays independent of
/// the Modbus code.
pub trait ProfileResolver {
    /// `Ok(points)` as (point id, role name); `Err(problems)` in the profile itself.
    fn points(&self, profile: &str, base_dir: &Path) -> Result<Vec<(String, String)>, Vec<String>>;
}

impl SiteConfig {
    /// Reads and parses `path`; does not validate.
    pub fn parse_file(path: &Path) -> Result<SiteConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let mut cfg =
            Self::parse_str(&text).map_err(|message| ConfigError::Parse { path: path.to_path_buf(), message })?;
        cfg.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if cfg.base_dir.as_os_str().is_empty() {
            cfg.base_dir = PathBuf::from(".");
        }
        cfg.source = path.to_path_buf();
        Ok(cfg)
    }

    /// Parses a site file's text. The error's detail is the TOML parser's (English only).
    pub fn parse_str(src: &str) -> Result<SiteConfig, Text> {
        let mut cfg = Self::parse_toml(src)?;
        // Each camera carries its own snapshot settings, `[health]`'s unless it sets them.
        for c in &mut cfg.cameras {
            c.frozen_check_every.get_or_insert(cfg.health.frozen_check_every);
            c.snapshot_max_bytes.get_or_insert(cfg.health.snapshot_max_bytes);
            // The strictest minimum among the camera's zones (by long side, then short side).
            let zones_min = cfg
                .zones
                .iter()
                .filter(|z| c.zones.contains(&z.id))
                .filter_map(|z| z.min_resolution.as_deref())
                .filter_map(|r| Resolution::parse(r).map(|p| (p.width.max(p.height), p.width.min(p.height), r)))
                .max()
                .map(|(_, _, r)| r.to_string());
            let zones = PictureConfig { min_resolution: zones_min, ..PictureConfig::default() };
            c.picture_resolved = c.picture.or(&zones).or(&cfg.health.picture);
        }
        Ok(cfg)
    }

    fn parse_toml(src: &str) -> Result<SiteConfig, Text> {
        toml::from_str::<SiteConfig>(src).map_err(|e| {
            let msg = e.message().to_string();
            match e.span() {
                Some(span) => {
                    let line = src[..span.start.min(src.len())].matches('\n').count() + 1;
                    text!(
                        "line {line}: {msg} (fix: see deploy/examples/ and docs/CONFIG.md)",
                        "第 {line} 行：{msg}（修正：参照 deploy/examples/ 与 docs/CONFIG.zh-CN.md）"
                    )
                }
                None => text!(
                    "{msg} (fix: see deploy/examples/ and docs/CONFIG.md)",
                    "{msg}（修正：参照 deploy/examples/ 与 docs/CONFIG.zh-CN.md）"
                ),
            }
        })
    }

    /// Parses and validates; the error lists every problem.
    pub fn load(path: &Path, profiles: &dyn ProfileResolver) -> Result<SiteConfig, ConfigError> {
        let cfg = Self::parse_file(path)?;
        let problems = cfg.validate(profiles);
        if problems.is_empty() { Ok(cfg) } else { Err(ConfigError::Invalid { path: path.to_path_buf(), problems }) }
    }

    pub fn branch_id(&self) -> BranchId {
        // Validated by `validate`; a fallback keeps this total.
        BranchId::new(self.branch.id.clone())
            .unwrap_or_else(|_| BranchId::new("invalid-branch").unwrap_or_else(|_| unreachable!()))
    }

    pub fn client_id(&self) -> String {
        // Brokers that bind client ids to users (the shipped mosquitto and EMQX configurations)
        // use the username anyway; saying so keeps the logs and the broker's view the same.
        self.uplink
            .client_id
            .clone()
            .or_else(|| self.uplink.username.clone())
            .unwrap_or_else(|| format!("branch-gateway-{}", self.branch.id))
    }

    /// The outbox directory, relative paths resolved against the config file.
    pub fn storage_path(&self) -> PathBuf {
        self.base_dir.join(&self.storage.path)
    }

    /// Things that are valid but probably wrong, each as `(field, what, why)`; the gateway runs
    /// with them and `check-config` prints them.
    pub fn warnings(&self) -> Vec<(&'static str, Text)> {
        let mut w = Vec::new();
        if let Some(user) = &self.uplink.username
            && user != &self.branch.id
        {
            w.push((
                "uplink.username",
                text!(
                    "is {user:?} but the branch id is {:?}: head office's shipped ACL (pattern write {}/%u/#) lets a \
                     user publish only under its own name, so the broker would refuse every alert unless head office \
                     added this user to its ACL (branch-gateway commission checks it)",
                    "是 {user:?}，而网点 id 是 {:?}：总行随附的 ACL（pattern write {}/%u/#）只允许用户在自己名下发布，\
                     除非总行把这个用户加进 ACL，消息服务器会拒收所有告警（branch-gateway commission 会检查这一点）",
                    self.branch.id,
                    self.uplink.topic_prefix
                ),
            ));
        }
        if self.uplink.mqtt_version == crate::mqtt::MqttVersion::V311 {
            w.push((
                "uplink.mqtt_version",
                text!(
                    "is \"3.1.1\": a publish the broker refuses is acknowledged like a delivered one and is lost; use \
                     \"5\" unless the broker cannot speak MQTT 5",
                    "是 \"3.1.1\"：消息服务器拒收的消息会像已送达一样被确认，从而丢失；除非消息服务器不支持 MQTT 5，\
                     请用 \"5\""
                ),
            ));
        }
        w
    }

    /// Every problem in the file; empty when it is usable.
    pub fn validate(&self, profiles: &dyn ProfileResolver) -> Vec<Problem> {
        let mut v = Validator::default();
        v.segment(
            "branch.id",
            &self.branch.id,
            text!(
                "use letters, digits, `-`, `_` or `.`, e.g. \"b0101\"",
                "只用字母、数字、`-`、`_` 或 `.`，例如 \"b0101\""
            ),
        );
        if self.branch.name.trim().is_empty() {
            v.push(
                "branch.name",
                text!("is empty", "为空"),
                text!("give the branch a human-readable name", "填写网点名称"),
            );
        }

        // Uplink.
        let scheme_ok = self.uplink.broker.starts_with("mqtt://") || self.uplink.broker.starts_with("mqtts://");
        if !scheme_ok {
            v.push(
                "uplink.broker",
                text!("{:?} is not an MQTT URL", "{:?} 不是 MQTT 地址", self.uplink.broker),
                text!("write mqtt://HOST:PORT or mqtts://HOST:PORT", "写成 mqtt://主机:端口 或 mqtts://主机:端口"),
            );
        } else if broker_host_port(&self.uplink.broker).is_none() {
            v.push(
                "uplink.broker",
                text!("{:?} has no valid host and port", "{:?} 中没有有效的主机和端口", self.uplink.broker),
                text!("write mqtt://HOST:PORT", "写成 mqtt://主机:端口"),
            );
        }
        if self.uplink.broker.starts_with("mqtts://") && self.uplink.tls.is_none() {
            v.push(
                "uplink.tls",
                text!("mqtts:// needs a [uplink.tls] section", "mqtts:// 需要 [uplink.tls] 一节"),
                text!("add [uplink.tls] with ca_file", "加上 [uplink.tls] 并填写 ca_file"),
            );
        }
        for (i, seg) in self.uplink.topic_prefix.split('/').enumerate() {
            if let Err(e) = validate_segment(seg) {
                v.push(
                    "uplink.topic_prefix",
                    {
                        let (n, e) = (i + 1, e.text());
                        Text::new(format!("level {n} ({seg:?}) {}", e.en), format!("第 {n} 级（{seg:?}）{}", e.zh))
                    },
                    text!(
                        "use plain words separated by single `/`, e.g. \"branches\"",
                        "用单个 `/` 分隔的简单单词，例如 \"branches\""
                    ),
                );
            }
        }
        if let Some(cid) = &self.uplink.client_id
            && (cid.is_empty() || cid.len() > 128)
        {
            v.push(
                "uplink.client_id",
                text!("must be 1 to 128 characters", "长度须为 1 到 128 个字符"),
                text!("shorten it or remove it to use the default", "改短，或删掉这一项以使用默认值"),
            );
        }
        v.secret("uplink", &self.uplink.password, &self.base_dir);
        if self.uplink.password.is_set() && self.uplink.username.is_none() {
            v.push(
                "uplink.username",
                text!("a password is set but no username", "设置了密码却没有用户名"),
                text!("add username = \"...\"", "加上 username = \"...\""),
            );
        }
        v.duration("uplink.keep_alive", self.uplink.keep_alive, Duration::from_secs(5), Duration::from_secs(3600));
        if let Some(tls) = &self.uplink.tls {
            v.readable("uplink.tls.ca_file", &self.base_dir.join(&tls.ca_file));
            match (&tls.client_cert_file, &tls.client_key_file) {
                (Some(c), Some(k)) => {
                    v.readable("uplink.tls.client_cert_file", &self.base_dir.join(c));
                    v.readable("uplink.tls.client_key_file", &self.base_dir.join(k));
                }
                (None, None) => {}
                _ => v.push(
                    "uplink.tls",
                    text!(
                        "client_cert_file and client_key_file go together",
                        "client_cert_file 与 client_key_file 必须同时设置"
                    ),
                    text!("set both or neither", "两项都设或都不设"),
                ),
            }
        }

        // Storage and health.
        if self.storage.max_events < 1000 {
            v.push(
                "storage.max_events",
                text!("is below 1000", "小于 1000"),
                text!("allow at least 1000 events (the default is 1000000)", "至少允许 1000 条事件（默认 1000000）"),
            );
        }
        if self.storage.max_bytes < 1024 * 1024 {
            v.push(
                "storage.max_bytes",
                text!("is below 1 MiB", "小于 1 MiB"),
                text!("allow at least \"1MiB\" (the default is \"1GiB\")", "至少允许 \"1MiB\"（默认 \"1GiB\"）"),
            );
        }
        if !(1..=100).contains(&self.health.offline_after) {
            v.push(
                "health.offline_after",
                text!("must be 1 to 100 probes", "须为 1 到 100 次探测"),
                text!("set e.g. 3", "例如设为 3"),
            );
        }
        if !(1..=100).contains(&self.health.online_after) {
            v.push(
                "health.online_after",
                text!("must be 1 to 100 probes", "须为 1 到 100 次探测"),
                text!("set e.g. 2", "例如设为 2"),
            );
        }
        v.frozen_check_every("health.frozen_check_every", self.health.frozen_check_every);
        v.snapshot_max_bytes("health.snapshot_max_bytes", self.health.snapshot_max_bytes);
        v.picture("health.picture", &self.health.picture);
        v.duration(
            "health.coverage_period",
            self.health.coverage_period,
            Duration::from_secs(1),
            Duration::from_secs(86400),
        );

        if self.metrics.enabled && self.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
            v.push(
                "metrics.listen",
                text!("{:?} is not IP:PORT", "{:?} 不是 IP:端口", self.metrics.listen),
                text!(
                    "write e.g. \"127.0.0.1:9464\" (port 0 picks a free port)",
                    "写成例如 \"127.0.0.1:9464\"（端口 0 表示自动选空闲端口）"
                ),
            );
        }

        // Zones.
        let mut zone_ids = HashSet::new();
        for (i, z) in self.zones.iter().enumerate() {
            let f = format!("zone[{i}]");
            v.segment(&format!("{f}.id"), &z.id, id_fix(""));
            v.unique(&mut zone_ids, &format!("{f}.id"), &z.id, text!("zone", "区域"));
            if let Some(r) = &z.min_resolution {
                v.resolution(&format!("{f}.min_resolution"), r);
            }
            if z.coverage_required && z.min_live_cameras == 0 {
                v.push(
                    &format!("{f}.min_live_cameras"),
                    text!("is 0 for a required zone", "必防区域不能为 0"),
                    text!("set at least 1", "至少设为 1"),
                );
            }
        }

        // Devices share one id space: they share the devices/ topic subtree.
        let mut device_ids = HashSet::new();
        let mut camera_ids = HashSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let f = format!("camera[{i}]");
            v.segment(&format!("{f}.id"), &c.id, id_fix("cam-01"));
            v.unique(&mut device_ids, &format!("{f}.id"), &c.id, text!("device", "设备"));
            camera_ids.insert(c.id.clone());
            if !(c.onvif.starts_with("http://") || c.onvif.starts_with("https://")) {
                v.push(
                    &format!("{f}.onvif"),
                    text!("{:?} is not an http(s) URL", "{:?} 不是 http(s) 地址", c.onvif),
                    text!("write http://HOST/onvif/device_service", "写成 http://主机/onvif/device_service"),
                );
            }
            v.duration(
                &format!("{f}.poll_interval"),
                c.poll_interval,
                Duration::from_secs(1),
                Duration::from_secs(3600),
            );
            v.duration(&format!("{f}.timeout"), c.timeout, Duration::from_millis(100), Duration::from_secs(60));
            if c.timeout >= c.poll_interval {
                v.push(
                    &format!("{f}.timeout"),
                    text!("is not shorter than poll_interval", "不短于 poll_interval"),
                    text!("make the timeout shorter than the interval", "超时须短于轮询间隔"),
                );
            }
            if let Some(n) = c.frozen_check_every {
                v.frozen_check_every(&format!("{f}.frozen_check_every"), n);
            }
            if let Some(n) = c.snapshot_max_bytes {
                v.snapshot_max_bytes(&format!("{f}.snapshot_max_bytes"), n);
            }
            v.picture(&format!("{f}.picture"), &c.picture);
            v.secret(&f, &c.password, &self.base_dir);
            for (j, z) in c.zones.iter().enumerate() {
                if !self.zones.iter().any(|zc| &zc.id == z) {
                    v.push(
                        &format!("{f}.zones[{j}]"),
                        text!("unknown zone {z:?}", "未知区域 {z:?}"),
                        text!("add a [[zone]] with that id or fix the spelling", "添加该 id 的 [[zone]]，或改正拼写"),
                    );
                }
            }
        }
        let mut panel_points: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (i, p) in self.panels.iter().enumerate() {
            let f = format!("panel[{i}]");
            v.segment(&format!("{f}.id"), &p.id, id_fix("alarm-1"));
            v.unique(&mut device_ids, &format!("{f}.id"), &p.id, text!("device", "设备"));
            if p.address.parse::<std::net::SocketAddr>().is_err() && split_host_port(&p.address, 502).is_none() {
                v.push(
                    &format!("{f}.address"),
                    text!("{:?} is not HOST:PORT", "{:?} 不是 主机:端口", p.address),
                    text!("write e.g. \"10.1.2.50:502\"", "写成例如 \"10.1.2.50:502\""),
                );
            }
            v.duration(
                &format!("{f}.poll_interval"),
                p.poll_interval,
                Duration::from_millis(20),
                Duration::from_secs(3600),
            );
            v.duration(&format!("{f}.timeout"), p.timeout, Duration::from_millis(20), Duration::from_secs(60));
            if p.pace > Duration::from_secs(1) {
                v.push(
                    &format!("{f}.pace"),
                    text!("is longer than 1 s", "超过 1 秒"),
                    text!("use a few milliseconds, e.g. \"20ms\"", "用几毫秒即可，例如 \"20ms\""),
                );
            }
            match profiles.points(&p.profile, &self.base_dir) {
                Ok(points) => {
                    panel_points.insert(p.id.clone(), points);
                }
                Err(errs) => {
                    for e in errs {
                        v.push(
                            &format!("{f}.profile"),
                            text!("profile {:?}: {e}", "配置模板 {:?}：{e}", p.profile),
                            text!(
                                "fix the profile file (see docs/PROFILES.md)",
                                "修改配置模板文件（见 docs/PROFILES.zh-CN.md）"
                            ),
                        );
                    }
                }
            }
        }

        let mut point_ids = HashSet::new();
        let mut check_point = |v: &mut Validator,
                               f: &str,
                               id: &str,
                               panel: &str,
                               point: &str,
                               area: &Option<String>,
                               cams: &[String],
                               want_kind: PanelKind,
                               roles: &[&str]| {
            v.segment(&format!("{f}.id"), id, id_fix(""));
            v.unique(&mut point_ids, &format!("{f}.id"), id, text!("alarm zone or door", "防区或门"));
            match self.panels.iter().find(|p| p.id == panel) {
                None => v.push(
                    &format!("{f}.panel"),
                    text!("unknown panel {panel:?}", "未知的主机 {panel:?}"),
                    text!("use the id of a [[panel]]", "填写某个 [[panel]] 的 id"),
                ),
                Some(p) => {
                    if p.kind != want_kind {
                        let (want, want_zh) = if want_kind == PanelKind::Alarm {
                            ("alarm", "报警主机")
                        } else {
                            ("access", "门禁控制器")
                        };
                        v.push(
                            &format!("{f}.panel"),
                            text!("panel {panel:?} is not an {want} panel", "{panel:?} 不是{want_zh}"),
                            text!("point it at a panel with kind = \"{want}\"", "改为 kind = \"{want}\" 的主机"),
                        );
                    }
                    if let Some(points) = panel_points.get(panel) {
                        match points.iter().find(|(pid, _)| pid == point) {
                            None => v.push(
                                &format!("{f}.point"),
                                text!(
                                    "profile {:?} has no point {point:?}",
                                    "配置模板 {:?} 中没有点位 {point:?}",
                                    p.profile
                                ),
                                text!(
                                    "use a point id from the panel's profile (see docs/PROFILES.md)",
                                    "填写该主机配置模板中的点位 id（见 docs/PROFILES.zh-CN.md）"
                                ),
                            ),
                            Some((_, role)) if !roles.contains(&role.as_str()) => v.push(
                                &format!("{f}.point"),
                                text!(
                                    "point {point:?} has role {role:?}, expected {}",
                                    "点位 {point:?} 的角色是 {role:?}，应为 {}",
                                    roles.join(" / ")
                                ),
                                text!("pick a point of the right role", "选一个角色正确的点位"),
                            ),
                            Some(_) => {}
                        }
                    }
                }
            }
            if let Some(a) = area
                && !self.zones.iter().any(|z| &z.id == a)
            {
                v.push(
                    &format!("{f}.area"),
                    text!("unknown zone {a:?}", "未知区域 {a:?}"),
                    text!("add a [[zone]] with that id or remove area", "添加该 id 的 [[zone]]，或删掉 area"),
                );
            }
            for (j, c) in cams.iter().enumerate() {
                if !camera_ids.contains(c) {
                    v.push(
                        &format!("{f}.linked_cameras[{j}]"),
                        text!("unknown camera {c:?}", "未知摄像机 {c:?}"),
                        text!("use the id of a [[camera]]", "填写某个 [[camera]] 的 id"),
                    );
                }
            }
        };
        for (i, a) in self.alarm_zones.iter().enumerate() {
            let f = format!("alarm_zone[{i}]");
            check_point(&mut v, &f, &a.id, &a.panel, &a.point, &a.area, &a.linked_cameras, PanelKind::Alarm, &["zone"]);
            if let (Some(part), Some(points)) = (&a.partition, panel_points.get(&a.panel))
                && !points.iter().any(|(pid, role)| pid == part && role == "partition")
            {
                v.push(
                    &format!("{f}.partition"),
                    text!(
                        "no partition point {part:?} in the panel's profile",
                        "该主机的配置模板中没有分区点位 {part:?}"
                    ),
                    text!(
                        "use a point of role \"partition\" or remove partition",
                        "填写角色为 \"partition\" 的点位，或删掉 partition"
                    ),
                );
            }
        }
        for (i, d) in self.doors.iter().enumerate() {
            let f = format!("door[{i}]");
            check_point(
                &mut v,
                &f,
                &d.id,
                &d.panel,
                &d.point,
                &d.area,
                &d.linked_cameras,
                PanelKind::Access,
                &["door"],
            );
            v.duration(
                &format!("{f}.held_open_limit"),
                d.held_open_limit,
                Duration::from_secs(1),
                Duration::from_secs(86400),
            );
        }
        v.problems
    }

    pub fn camera(&self, id: &DeviceId) -> Option<&CameraConfig> {
        self.cameras.iter().find(|c| c.id == id.as_str())
    }

    pub fn zone_ids(&self, ids: &[String]) -> Vec<ZoneId> {
        ids.iter().filter_map(|z| ZoneId::new(z.clone()).ok()).collect()
    }
}

/// `mqtt://host:port` → (host, port); port defaults to 1883 (8883 for mqtts).
pub fn broker_host_port(url: &str) -> Option<(String, u16)> {
    let (rest, default) =
        if let Some(r) = url.strip_prefix("mqtts://") { (r, 8883) } else { (url.strip_prefix("mqtt://")?, 1883) };
    let rest = rest.trim_end_matches('/');
    split_host_port(rest, default)
}

/// `host:port` or `host` → (host, port); an IPv6 address in brackets (`[::1]:1883`, `[::1]`).
pub fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    if s.is_empty() || s.contains('/') {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        return match after {
            "" => Some((host.to_string(), default_port)),
            p => Some((host.to_string(), p.strip_prefix(':')?.parse().ok()?)),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?)),
        Some(_) => None,
        None => Some((s.to_string(), default_port)),
    }
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn push(&mut self, field: &str, message: Text, fix: Text) {
        self.problems.push(Problem { field: field.into(), message, fix });
    }

    fn segment(&mut self, field: &str, value: &str, fix: Text) {
        if let Err(e) = validate_segment(value) {
            let e = e.text();
            self.push(field, Text::new(format!("{value:?} {}", e.en), format!("{value:?} {}", e.zh)), fix);
        }
    }

    fn unique(&mut self, seen: &mut HashSet<String>, field: &str, value: &str, what: Text) {
        if !seen.insert(value.to_string()) {
            self.push(
                field,
                Text::new(format!("duplicate {} id {value:?}", what.en), format!("{}的 id {value:?} 重复", what.zh)),
                text!("give each one a unique id", "每一项的 id 都不能相同"),
            );
        }
    }

    fn frozen_check_every(&mut self, field: &str, n: u32) {
        if !(1..=360).contains(&n) {
            self.push(
                field,
                text!("must be 1 to 360 probes", "须为 1 到 360 次探测"),
                text!("set e.g. 6 (a snapshot every sixth probe)", "例如设为 6（每 6 次探测取一次快照）"),
            );
        }
    }

    fn picture(&mut self, field: &str, p: &PictureConfig) {
        let mut range = |name: &str, value: Option<f32>, min: f32, max: f32, example: &str| {
            if let Some(x) = value
                && !(x.is_finite() && (min..=max).contains(&x))
            {
                self.push(
                    &format!("{field}.{name}"),
                    text!("{x} is out of range", "{x} 超出范围"),
                    text!(
                        "use a value from {min} to {max}, e.g. {example}",
                        "取值须在 {min} 到 {max} 之间，例如 {example}"
                    ),
                );
            }
        };
        range("dark_below", p.dark_below, 0.0, 255.0, "25");
        range("uniform_below", p.uniform_below, 0.0, 128.0, "8");
        range("defocus_ratio", p.defocus_ratio, 0.0, 1.0, "0.6");
        range("sharpness_baseline", p.sharpness_baseline, 0.001, 100.0, "0.3");
        if let Some(n) = &p.night_hours
            && NightHours::parse(n).is_none()
        {
            self.push(
                &format!("{field}.night_hours"),
                text!("{n:?} is not HH:MM-HH:MM", "{n:?} 不是 时:分-时:分 格式"),
                text!("write e.g. \"19:00-07:00\" (local time)", "写成例如 \"19:00-07:00\"（当地时间）"),
            );
        }
        if let Some(r) = &p.min_resolution {
            self.resolution(&format!("{field}.min_resolution"), r);
        }
    }

    fn resolution(&mut self, field: &str, r: &str) {
        if Resolution::parse(r).is_none() {
            self.push(
                field,
                text!("{r:?} is not WIDTHxHEIGHT", "{r:?} 不是 宽x高 格式"),
                text!(
                    "write e.g. \"1280x720\" (the default) or \"1920x1080\"",
                    "写成例如 \"1280x720\"（默认）或 \"1920x1080\""
                ),
            );
        }
    }

    fn snapshot_max_bytes(&mut self, field: &str, n: u64) {
        if !(64 * 1024..=64 * 1024 * 1024).contains(&n) {
            self.push(
                field,
                text!("{n} bytes is out of range", "{n} 字节超出范围"),
                text!(
                    "use a size from \"64KiB\" to \"64MiB\" (the default is \"4MiB\")",
                    "取值须在 \"64KiB\" 到 \"64MiB\" 之间（默认 \"4MiB\"）"
                ),
            );
        }
    }

    fn duration(&mut self, field: &str, d: Duration, min: Duration, max: Duration) {
        if d < min || d > max {
            self.push(
                field,
                text!("{} is out of range", "{} 超出范围", humantime::format_duration(d)),
                text!(
                    "use a value from {} to {}",
                    "取值须在 {} 到 {} 之间",
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ),
            );
        }
    }

    fn readable(&mut self, field: &str, path: &Path) {
        if let Err(e) = std::fs::File::open(path) {
            self.push(
                field,
                text!("cannot read {}: {e}", "无法读取 {}：{e}", path.display()),
                text!("check the path and that the gateway user may read it", "检查路径，并确认网关用户有读权限"),
            );
        }
    }

    fn secret(&mut self, prefix: &str, s: &Secret, base_dir: &Path) {
        let n =
            [s.password.is_some(), s.password_file.is_some(), s.password_env.is_some()].iter().filter(|b| **b).count();
        if n > 1 {
            self.push(
                &format!("{prefix}.password"),
                text!(
                    "more than one of password, password_file, password_env is set",
                    "password、password_file、password_env 设置了不止一项"
                ),
                text!("keep exactly one", "只保留一项"),
            );
            return;
        }
        if let Some(f) = &s.password_file {
            let path = base_dir.join(f);
            if let Err(e) = std::fs::read_to_string(&path) {
                self.push(
                    &format!("{prefix}.password_file"),
                    text!("cannot read {}: {e}", "无法读取 {}：{e}", path.display()),
                    text!(
                        "create the file or fix the path; it must be readable by the gateway user",
                        "创建该文件或改正路径；网关用户须能读取它"
                    ),
                );
            }
        }
        if let Some(var) = &s.password_env
            && std::env::var_os(var).is_none()
        {
            self.push(
                &format!("{prefix}.password_env"),
                text!("environment variable {var} is not set", "环境变量 {var} 未设置"),
                text!("export {var}=... in the service environment", "在服务的环境中设置 {var}=..."),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("512MiB"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert!(parse_bytes("12 parsecs").is_err());
    }

    #[test]
    fn broker_urls_split() {
        assert_eq!(broker_host_port("mqtt://127.0.0.1:1884"), Some(("127.0.0.1".into(), 1884)));
        assert_eq!(broker_host_port("mqtts://ho.example"), Some(("ho.example".into(), 8883)));
        assert_eq!(broker_host_port("http://x"), None);
        assert_eq!(broker_host_port("mqtt://[::1]:1884"), Some(("::1".into(), 1884)));
        assert_eq!(broker_host_port("mqtts://[fd00::5]"), Some(("fd00::5".into(), 8883)));
        assert_eq!(broker_host_port("mqtt://[::1"), None);
        assert_eq!(broker_host_port("mqtt://[nonsense]:1"), None);
    }
}
