//! The site file's model: one TOML file per branch, as serde types that read it (the gateway)
//! and write it (the simulator's emitter), so one definition does both and a field added here
//! is in both. Parsing catches syntax and type errors, with the line; the checks types cannot
//! express are in `validate.rs`, and the typed site the engine runs on in `typed.rs`.
//!
//! What parsing fills in (each camera's snapshot settings from `[health]`, its resolved picture
//! settings) is written back as explicit values: a file read, written and read again gives the
//! same `SiteConfig`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use i18n::{Lang, Text, text, tr};
use protocols::{BranchId, DeviceId, ZoneId};
use serde::{Deserialize, Serialize};

use crate::diagnostic::{Diagnostic, line_of, locate};
use crate::picture::{NightHours, PictureSettings, Resolution};
use crate::validate::ProfileResolver;

/// The whole site file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub branch: BranchConfig,
    pub uplink: UplinkConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub health: HealthConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    pub metrics: MetricsConfig,
    #[serde(default, rename = "zone", skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneConfig>,
    #[serde(default, rename = "camera", skip_serializing_if = "Vec::is_empty")]
    pub cameras: Vec<CameraConfig>,
    #[serde(default, rename = "panel", skip_serializing_if = "Vec::is_empty")]
    pub panels: Vec<PanelConfig>,
    #[serde(default, rename = "alarm_zone", skip_serializing_if = "Vec::is_empty")]
    pub alarm_zones: Vec<AlarmZoneConfig>,
    #[serde(default, rename = "door", skip_serializing_if = "Vec::is_empty")]
    pub doors: Vec<DoorConfig>,
    /// The directory the file lives in: relative paths in the file are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    #[serde(skip)]
    pub source: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BranchConfig {
    pub id: String,
    pub name: String,
    /// Language of alert messages: `en` (default) or `zh-CN`. Field names and codes in the
    /// payloads stay English whatever this says.
    #[serde(default)]
    pub language: Lang,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub broker: String,
    /// Defaults to the username, else `branch-gateway-{branch id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, flatten)]
    pub password: Secret,
    #[serde(default = "default_keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// `"5"` (default: a publish the broker refuses stays in the outbox) or `"3.1.1"` for
    /// brokers without MQTT 5 (a refused publish is then acknowledged and lost: see CONFIG.md).
    #[serde(default)]
    pub mqtt_version: MqttVersion,
}

impl UplinkConfig {
    /// An uplink to `broker` with every other field at its default.
    pub fn new(broker: impl Into<String>) -> UplinkConfig {
        UplinkConfig {
            broker: broker.into(),
            client_id: None,
            topic_prefix: default_prefix(),
            username: None,
            password: Secret::default(),
            keep_alive: default_keep_alive(),
            tls: None,
            mqtt_version: MqttVersion::default(),
        }
    }
}

/// The MQTT protocol version the gateway speaks (`[uplink] mqtt_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum MqttVersion {
    /// MQTT 5: refused publishes are seen (PUBACK reason codes) and kept for a retry.
    #[default]
    #[serde(rename = "5")]
    V5,
    /// MQTT 3.1.1, for brokers without MQTT 5: a publish denied by the broker's ACL is
    /// acknowledged like a delivered one and so cannot be kept (see docs/CONFIG.md).
    #[serde(rename = "3.1.1")]
    V311,
}

impl MqttVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            MqttVersion::V5 => "5",
            MqttVersion::V311 => "3.1.1",
        }
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn default_prefix() -> String {
    protocols::topics::DEFAULT_PREFIX.to_string()
}
fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}

/// A password given inline (`password`), in a file (`password_file`, first line, trailing
/// newline ignored) or in an environment variable (`password_env`). At most one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Secret {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca_file: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default = "default_storage_path")]
    pub path: PathBuf,
    /// Most events the outbox holds before it evicts low-severity ones.
    #[serde(default = "default_max_events")]
    pub max_events: u64,
    /// Most bytes of event payload the outbox holds (`"512MiB"`, `"2GB"` or a number).
    #[serde(default = "default_max_bytes", deserialize_with = "de_bytes", serialize_with = "ser_bytes")]
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

/// A size as a person writes it (`"4MiB"`) when it is a whole number of a binary unit, else
/// the number of bytes: [`parse_bytes`] reads both back to the same value.
fn ser_bytes<S: serde::Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    match UNITS.iter().find(|(size, _)| *n > 0 && n.is_multiple_of(*size)) {
        Some((size, unit)) => s.serialize_str(&format!("{}{unit}", n / size)),
        None => s.serialize_u64(*n),
    }
}

fn ser_bytes_opt<S: serde::Serializer>(n: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match n {
        Some(n) => ser_bytes(n, s),
        None => s.serialize_none(),
    }
}

/// The operator endpoint (`/metrics`, `/health`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
    #[serde(default = "default_snapshot_max_bytes", deserialize_with = "de_bytes", serialize_with = "ser_bytes")]
    pub snapshot_max_bytes: u64,
    /// Cameras: picture checks (dark, obstructed, defocused) and the HD minimum, for every
    /// camera unless it sets its own (`picture = { … }` on the camera).
    #[serde(default, skip_serializing_if = "is_default")]
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
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PictureConfig {
    /// Whether pictures are checked at all (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<bool>,
    /// Mean brightness (0–255) below which a picture is dark (default 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dark_below: Option<f32>,
    /// Variation of the 8×8 block means below which a picture is uniform: obstructed (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uniform_below: Option<f32>,
    /// Sharpness below this share of the camera's baseline is defocused (default 0.6; 0: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defocus_ratio: Option<f32>,
    /// A fixed sharpness baseline instead of the learned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharpness_baseline: Option<f32>,
    /// The camera lights its scene at night (IR); default true. Without IR, darkness within
    /// `night_hours` is expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ir: Option<bool>,
    /// Local hours when a camera without IR may be dark, `HH:MM-HH:MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub night_hours: Option<String>,
    /// The least main-stream resolution, `WIDTHxHEIGHT` (default 1280x720).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CameraAuth {
    /// WS-Security UsernameToken with PasswordDigest (the ONVIF default).
    #[default]
    UsernameToken,
    /// HTTP Digest (RFC 7616), used by some firmware instead.
    Digest,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub id: String,
    pub name: String,
    /// The device service URL, e.g. `http://10.1.2.21/onvif/device_service`.
    pub onvif: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default, skip_serializing_if = "is_default")]
    pub maintenance: bool,
    /// Fetch the snapshot every Nth probe (`[health] frozen_check_every` when not set; the
    /// site file's value is filled in at parse time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_check_every: Option<u32>,
    /// Largest snapshot read (`[health] snapshot_max_bytes` when not set).
    #[serde(
        default,
        deserialize_with = "de_bytes_opt",
        serialize_with = "ser_bytes_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub snapshot_max_bytes: Option<u64>,
    /// Picture checks and the HD minimum for this camera (`[health.picture]` for what it
    /// does not set; `min_resolution` also from its zones).
    #[serde(default, skip_serializing_if = "is_default")]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_resolution: Option<String>,
}

fn default_min_live() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmZoneConfig {
    pub id: String,
    pub name: String,
    pub panel: String,
    /// The profile point that carries this zone's state (e.g. `zone.3`).
    pub point: String,
    /// Partition whose armed state applies (a profile point id of role `partition`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Panic / hold-up zones: always armed.
    #[serde(default)]
    pub twenty_four_hour: bool,
    /// The coverage zone the alarm zone lies in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    #[serde(default)]
    pub linked_cameras: Vec<String>,
    /// Fetch a snapshot from each linked camera right after the alarm, keep it under
    /// `{storage}/snapshots`, and name it in a follow-up event.
    #[serde(default)]
    pub snapshot: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DoorConfig {
    pub id: String,
    pub name: String,
    pub panel: String,
    pub point: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

impl SiteConfig {
    /// A site with these branch and uplink settings and everything else at its default: no
    /// devices, zones, alarm zones or doors.
    pub fn new(branch: BranchConfig, uplink: UplinkConfig) -> SiteConfig {
        SiteConfig {
            branch,
            uplink,
            storage: StorageConfig::default(),
            health: HealthConfig::default(),
            metrics: MetricsConfig::default(),
            zones: Vec::new(),
            cameras: Vec::new(),
            panels: Vec::new(),
            alarm_zones: Vec::new(),
            doors: Vec::new(),
            base_dir: PathBuf::new(),
            source: PathBuf::new(),
        }
    }
}

impl BranchConfig {
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> BranchConfig {
        BranchConfig { id: id.into(), name: name.into(), language: Lang::default() }
    }
}

impl ZoneConfig {
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> ZoneConfig {
        ZoneConfig {
            id: id.into(),
            name: name.into(),
            coverage_required: false,
            min_live_cameras: default_min_live(),
            min_resolution: None,
        }
    }
}

impl CameraConfig {
    /// A camera at `onvif` with every other field at its default.
    pub fn new(id: impl Into<String>, name: impl Into<String>, onvif: impl Into<String>) -> CameraConfig {
        CameraConfig {
            id: id.into(),
            name: name.into(),
            onvif: onvif.into(),
            username: None,
            password: Secret::default(),
            auth: CameraAuth::default(),
            zones: Vec::new(),
            poll_interval: default_camera_interval(),
            timeout: default_camera_timeout(),
            maintenance: false,
            frozen_check_every: None,
            snapshot_max_bytes: None,
            picture: PictureConfig::default(),
            picture_resolved: PictureConfig::default(),
        }
    }
}

impl PanelConfig {
    /// A panel at `address` with `profile` and every other field at its default.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        kind: PanelKind,
        address: impl Into<String>,
        profile: impl Into<String>,
    ) -> PanelConfig {
        PanelConfig {
            id: id.into(),
            name: name.into(),
            kind,
            address: address.into(),
            unit_id: default_unit_id(),
            profile: profile.into(),
            poll_interval: default_panel_interval(),
            timeout: default_panel_timeout(),
            pace: Duration::ZERO,
            maintenance: false,
        }
    }
}

impl AlarmZoneConfig {
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        panel: impl Into<String>,
        point: impl Into<String>,
    ) -> AlarmZoneConfig {
        AlarmZoneConfig {
            id: id.into(),
            name: name.into(),
            panel: panel.into(),
            point: point.into(),
            partition: None,
            twenty_four_hour: false,
            area: None,
            linked_cameras: Vec::new(),
            snapshot: false,
        }
    }
}

impl DoorConfig {
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        panel: impl Into<String>,
        point: impl Into<String>,
    ) -> DoorConfig {
        DoorConfig {
            id: id.into(),
            name: name.into(),
            panel: panel.into(),
            point: point.into(),
            area: None,
            linked_cameras: Vec::new(),
            held_open_limit: default_held_open(),
            snapshot: false,
        }
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the file: {source} (fix: check the path and its permissions)")]
    Read { path: PathBuf, source: std::io::Error },
    /// Not TOML, or not the site file's shape (a wrong type, an unknown field), with the line.
    #[error("{path}: {}", diagnostic.render_item(Lang::En))]
    Parse { path: PathBuf, diagnostic: Box<Diagnostic> },
    #[error("{path}: {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {}", p.render_item(Lang::En))).collect::<Vec<_>>().join("\n"))]
    Invalid { path: PathBuf, problems: Vec<Diagnostic> },
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
            ConfigError::Parse { path, diagnostic } => format!("{}: {}", path.display(), diagnostic.render_item(lang)),
            ConfigError::Invalid { path, problems } => {
                let n = problems.len();
                let mut out = tr!(lang, "{}: {n} problem(s):", "{}：{n} 处问题：", path.display());
                for p in problems {
                    out.push_str("\n  - ");
                    out.push_str(&p.render_item(lang));
                }
                out
            }
        }
    }

    /// Every diagnostic in it (one for a file that does not parse, none for one not read).
    pub fn diagnostics(&self) -> Vec<&Diagnostic> {
        match self {
            ConfigError::Read { .. } => Vec::new(),
            ConfigError::Parse { diagnostic, .. } => vec![&**diagnostic],
            ConfigError::Invalid { problems, .. } => problems.iter().collect(),
        }
    }
}

impl SiteConfig {
    /// Reads and parses `path`; does not validate.
    pub fn parse_file(path: &Path) -> Result<SiteConfig, ConfigError> {
        let text = Self::read(path)?;
        Self::parse_at(path, &text)
    }

    fn read(path: &Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })
    }

    fn parse_at(path: &Path, text: &str) -> Result<SiteConfig, ConfigError> {
        let mut cfg = Self::parse_str(text)
            .map_err(|d| ConfigError::Parse { path: path.to_path_buf(), diagnostic: Box::new(d.with_file(path)) })?;
        cfg.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if cfg.base_dir.as_os_str().is_empty() {
            cfg.base_dir = PathBuf::from(".");
        }
        cfg.source = path.to_path_buf();
        Ok(cfg)
    }

    /// Parses a site file's text. The message is the TOML parser's (English only), the fix in
    /// both languages.
    pub fn parse_str(src: &str) -> Result<SiteConfig, Box<Diagnostic>> {
        let mut cfg = Self::parse_toml(src)?;
        cfg.resolve();
        Ok(cfg)
    }

    /// Fills in what the file leaves to `[health]` and the zones: each camera's snapshot
    /// settings and its resolved picture settings.
    fn resolve(&mut self) {
        for c in &mut self.cameras {
            c.frozen_check_every.get_or_insert(self.health.frozen_check_every);
            c.snapshot_max_bytes.get_or_insert(self.health.snapshot_max_bytes);
            // The strictest minimum among the camera's zones (by long side, then short side).
            let zones_min = self
                .zones
                .iter()
                .filter(|z| c.zones.contains(&z.id))
                .filter_map(|z| z.min_resolution.as_deref())
                .filter_map(|r| Resolution::parse(r).map(|p| (p.width.max(p.height), p.width.min(p.height), r)))
                .max()
                .map(|(_, _, r)| r.to_string());
            let zones = PictureConfig { min_resolution: zones_min, ..PictureConfig::default() };
            c.picture_resolved = c.picture.or(&zones).or(&self.health.picture);
        }
    }

    fn parse_toml(src: &str) -> Result<SiteConfig, Box<Diagnostic>> {
        toml::from_str::<SiteConfig>(src).map_err(|e| {
            let msg = e.message().to_string();
            let d = Diagnostic::new(
                "",
                Text::new(msg.clone(), msg),
                text!("see deploy/examples/ and docs/CONFIG.md", "参照 deploy/examples/ 与 docs/CONFIG.zh-CN.md"),
            )
            .with_line(e.span().map(|span| line_of(src, span.start)));
            Box::new(d)
        })
    }

    /// The site file's text as TOML: what [`SiteConfig::parse_str`] reads back to an equal
    /// value (what parsing filled in is written out).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// Parses and validates; the error lists every problem, each with its line.
    pub fn load(path: &Path, profiles: &dyn ProfileResolver) -> Result<SiteConfig, ConfigError> {
        let text = Self::read(path)?;
        let cfg = Self::parse_at(path, &text)?;
        let mut problems = cfg.validate(profiles);
        if problems.is_empty() {
            return Ok(cfg);
        }
        locate(&mut problems, Some(path), &text);
        Err(ConfigError::Invalid { path: path.to_path_buf(), problems })
    }

    /// Parses and validates a text (no file: relative paths against the working directory);
    /// every problem with its line.
    pub fn check_str(src: &str, profiles: &dyn ProfileResolver) -> Result<SiteConfig, Vec<Diagnostic>> {
        let mut cfg = Self::parse_str(src).map_err(|d| vec![*d])?;
        cfg.base_dir = PathBuf::from(".");
        let mut problems = cfg.validate(profiles);
        if problems.is_empty() {
            return Ok(cfg);
        }
        locate(&mut problems, None, src);
        Err(problems)
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

    pub fn camera(&self, id: &DeviceId) -> Option<&CameraConfig> {
        self.cameras.iter().find(|c| c.id == id.as_str())
    }

    pub fn zone_ids(&self, ids: &[String]) -> Vec<ZoneId> {
        ids.iter().filter_map(|z| ZoneId::new(z.clone()).ok()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field of the site file set, most to a value other than its default.
    const FULL: &str = r#"
[branch]
id = "b0101"
name = "Full \"quoted\" branch \\ 全字段"
language = "zh-CN"

[uplink]
broker = "mqtts://ho.example:8883"
client_id = "gw-b0101"
topic_prefix = "bank/branches"
username = "b0101"
password_file = "secrets/mqtt.pass"
keep_alive = "45s"
mqtt_version = "3.1.1"

[uplink.tls]
ca_file = "tls/ca.pem"
client_cert_file = "tls/client.pem"
client_key_file = "tls/client.key"

[storage]
path = "outbox"
max_events = 5000
max_bytes = "512MiB"
snapshots_keep = 20

[health]
offline_after = 4
online_after = 3
coverage_period = "2m"
frozen_check_every = 3
snapshot_max_bytes = 1000000

[health.picture]
checks = true
dark_below = 30.5
uniform_below = 6
defocus_ratio = 0.5
sharpness_baseline = 0.25
ir = false
night_hours = "19:00-07:00"
min_resolution = "1280x720"

[metrics]
enabled = false
listen = "127.0.0.1:0"

[[zone]]
id = "vault"
name = "Vault"
coverage_required = true
min_live_cameras = 2
min_resolution = "1920x1080"

[[zone]]
id = "lobby"
name = "Lobby"

[[camera]]
id = "cam-01"
name = "Vault door"
onvif = "http://10.1.2.21/onvif/device_service"
username = "admin"
password_env = "CAM_PW"
auth = "digest"
zones = ["vault", "lobby"]
poll_interval = "5s"
timeout = "1500ms"
maintenance = true
frozen_check_every = 12
snapshot_max_bytes = "8MiB"
picture = { checks = false, ir = true, min_resolution = "2560x1440" }

[[camera]]
id = "cam-02"
name = "Lobby"
onvif = "https://10.1.2.22/onvif/device_service"
password = "inline"

[[panel]]
id = "alarm-1"
name = "Intrusion panel"
kind = "alarm"
address = "10.1.2.50:502"
unit_id = 7
profile = "generic-alarm"
poll_interval = "100ms"
timeout = "800ms"
pace = "20ms"
maintenance = true

[[panel]]
id = "door-1"
name = "Doors"
kind = "access"
address = "door-ctl.local"
profile = "profiles/doors.toml"

[[alarm_zone]]
id = "z1"
name = "Vault contact"
panel = "alarm-1"
point = "zone.1"
partition = "partition.1"
twenty_four_hour = true
area = "vault"
linked_cameras = ["cam-01", "cam-02"]
snapshot = true

[[door]]
id = "d1"
name = "Vault door"
panel = "door-1"
point = "door.1"
area = "vault"
linked_cameras = ["cam-01"]
held_open_limit = "45s"
snapshot = true
"#;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("512MiB"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert!(parse_bytes("12 parsecs").is_err());
    }

    /// Read, write, read: the second read equals the first.
    fn round_trip(src: &str) -> (SiteConfig, String) {
        let first = SiteConfig::parse_str(src).unwrap_or_else(|d| panic!("{d}"));
        let written = first.to_toml().unwrap();
        let second = SiteConfig::parse_str(&written).unwrap_or_else(|d| panic!("{d}\n{written}"));
        assert_eq!(second, first, "the round trip changed the site; written:\n{written}");
        (first, written)
    }

    #[test]
    fn a_full_site_file_survives_a_round_trip() {
        let (site, written) = round_trip(FULL);
        // What the file says, not the defaults: the test would not see a field the writer drops.
        assert_eq!(site.branch.language, Lang::Zh);
        assert_eq!(site.uplink.mqtt_version, MqttVersion::V311);
        assert_eq!(site.uplink.password.password_file.as_deref(), Some(Path::new("secrets/mqtt.pass")));
        assert_eq!(site.storage.max_bytes, 512 * 1024 * 1024);
        assert!(!site.metrics.enabled);
        assert_eq!(site.health.picture.night_hours.as_deref(), Some("19:00-07:00"));
        let cam = &site.cameras[0];
        assert_eq!((cam.auth, cam.maintenance, cam.frozen_check_every), (CameraAuth::Digest, true, Some(12)));
        assert_eq!(cam.snapshot_max_bytes, Some(8 * 1024 * 1024));
        assert_eq!(cam.picture_resolved.min_resolution.as_deref(), Some("2560x1440"));
        assert_eq!(site.cameras[1].snapshot_max_bytes, Some(1_000_000), "[health]'s, filled in");
        assert_eq!(site.panels[0].pace, Duration::from_millis(20));
        assert_eq!(site.doors[0].held_open_limit, Duration::from_secs(45));
        // Sizes are written as a person would.
        assert!(written.contains("max_bytes = \"512MiB\""), "{written}");
        assert!(written.contains("snapshot_max_bytes = \"8MiB\""), "{written}");
    }

    #[test]
    fn a_minimal_site_file_survives_a_round_trip_and_stays_short() {
        let (site, written) = round_trip("[branch]\nid = \"b1\"\nname = \"B\"\n[uplink]\nbroker = \"mqtt://h\"\n");
        assert_eq!(site.health, HealthConfig::default());
        assert!(!written.contains("[health]") && !written.contains("[metrics]"), "defaults left out:\n{written}");
    }

    #[test]
    fn the_shipped_examples_survive_a_round_trip() {
        round_trip(include_str!("../../deploy/examples/branch.toml"));
        round_trip(include_str!("../../deploy/examples/minimal.toml"));
    }

    #[test]
    fn a_site_built_in_code_reads_back_as_built() {
        let mut site = SiteConfig::new(BranchConfig::new("b1", "Built"), UplinkConfig::new("mqtt://127.0.0.1:1883"));
        site.zones.push(ZoneConfig::new("z", "Zone"));
        let mut cam = CameraConfig::new("cam-1", "Cam", "http://127.0.0.1:1/onvif/device_service");
        cam.zones = vec!["z".into()];
        site.cameras.push(cam);
        site.panels.push(PanelConfig::new("p1", "Panel", PanelKind::Alarm, "127.0.0.1:502", "generic-alarm"));
        site.alarm_zones.push(AlarmZoneConfig::new("a1", "Contact", "p1", "zone.1"));
        site.doors.push(DoorConfig::new("d1", "Door", "p1", "door.1"));
        let mut read = SiteConfig::parse_str(&site.to_toml().unwrap()).unwrap();
        // Parsing fills in what the file leaves to [health]; built in code, it is left unset.
        read.cameras[0].frozen_check_every = None;
        read.cameras[0].snapshot_max_bytes = None;
        read.cameras[0].picture_resolved = PictureConfig::default();
        assert_eq!(read, site);
    }

    #[test]
    fn a_type_error_names_its_line() {
        let d =
            SiteConfig::parse_str("[branch]\nid = \"b1\"\nname = 5\n[uplink]\nbroker = \"mqtt://h\"\n").unwrap_err();
        assert_eq!(d.line, Some(3), "{d:?}");
        assert!(d.render_item(Lang::En).starts_with("line 3: "), "{}", d.render_item(Lang::En));
        assert!(d.render_item(Lang::Zh).starts_with("第 3 行："), "{}", d.render_item(Lang::Zh));
    }
}
