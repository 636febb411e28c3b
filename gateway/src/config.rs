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

use protocols::ids::validate_segment;
use protocols::{BranchId, DeviceId, ZoneId};
use serde::Deserialize;

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
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            offline_after: default_offline_after(),
            online_after: default_online_after(),
            coverage_period: default_coverage_period(),
        }
    }
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
    /// `camera[2].id`, `uplink.topic_prefix`…
    pub field: String,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", self.field, self.message, self.fix)
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the file: {source} (fix: check the path and its permissions)")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
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

    pub fn parse_str(text: &str) -> Result<SiteConfig, String> {
        toml::from_str::<SiteConfig>(text).map_err(|e| {
            let msg = e.message().to_string();
            match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: {msg} (fix: see deploy/examples/ and docs/CONFIG.md)")
                }
                None => format!("{msg} (fix: see deploy/examples/ and docs/CONFIG.md)"),
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
    pub fn warnings(&self) -> Vec<(&'static str, String)> {
        let mut w = Vec::new();
        if let Some(user) = &self.uplink.username
            && user != &self.branch.id
        {
            w.push((
                "uplink.username",
                format!(
                    "is {user:?} but the branch id is {:?}: head office's shipped ACL (pattern write {}/%u/#) lets a \
                     user publish only under its own name, so the broker would refuse every alert unless head office \
                     added this user to its ACL (branch-gateway commission checks it)",
                    self.branch.id, self.uplink.topic_prefix
                ),
            ));
        }
        if self.uplink.mqtt_version == crate::mqtt::MqttVersion::V311 {
            w.push((
                "uplink.mqtt_version",
                "is \"3.1.1\": a publish the broker refuses is acknowledged like a delivered one and is lost; use \"5\" \
                 unless the broker cannot speak MQTT 5"
                    .to_string(),
            ));
        }
        w
    }

    /// Every problem in the file; empty when it is usable.
    pub fn validate(&self, profiles: &dyn ProfileResolver) -> Vec<Problem> {
        let mut v = Validator::default();
        v.segment("branch.id", &self.branch.id, "use letters, digits, `-`, `_` or `.`, e.g. \"b0101\"");
        if self.branch.name.trim().is_empty() {
            v.push("branch.name", "is empty", "give the branch a human-readable name");
        }

        // Uplink.
        let scheme_ok = self.uplink.broker.starts_with("mqtt://") || self.uplink.broker.starts_with("mqtts://");
        if !scheme_ok {
            v.push(
                "uplink.broker",
                &format!("{:?} is not an MQTT URL", self.uplink.broker),
                "write mqtt://HOST:PORT or mqtts://HOST:PORT",
            );
        } else if broker_host_port(&self.uplink.broker).is_none() {
            v.push(
                "uplink.broker",
                &format!("{:?} has no valid host and port", self.uplink.broker),
                "write mqtt://HOST:PORT",
            );
        }
        if self.uplink.broker.starts_with("mqtts://") && self.uplink.tls.is_none() {
            v.push("uplink.tls", "mqtts:// needs a [uplink.tls] section", "add [uplink.tls] with ca_file");
        }
        for (i, seg) in self.uplink.topic_prefix.split('/').enumerate() {
            if let Err(e) = validate_segment(seg) {
                v.push(
                    "uplink.topic_prefix",
                    &format!("level {} ({seg:?}) {e}", i + 1),
                    "use plain words separated by single `/`, e.g. \"branches\"",
                );
            }
        }
        if let Some(cid) = &self.uplink.client_id
            && (cid.is_empty() || cid.len() > 128)
        {
            v.push("uplink.client_id", "must be 1 to 128 characters", "shorten it or remove it to use the default");
        }
        v.secret("uplink", &self.uplink.password, &self.base_dir);
        if self.uplink.password.is_set() && self.uplink.username.is_none() {
            v.push("uplink.username", "a password is set but no username", "add username = \"...\"");
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
                _ => v.push("uplink.tls", "client_cert_file and client_key_file go together", "set both or neither"),
            }
        }

        // Storage and health.
        if self.storage.max_events < 1000 {
            v.push("storage.max_events", "is below 1000", "allow at least 1000 events (the default is 1000000)");
        }
        if self.storage.max_bytes < 1024 * 1024 {
            v.push("storage.max_bytes", "is below 1 MiB", "allow at least \"1MiB\" (the default is \"1GiB\")");
        }
        if !(1..=100).contains(&self.health.offline_after) {
            v.push("health.offline_after", "must be 1 to 100 probes", "set e.g. 3");
        }
        if !(1..=100).contains(&self.health.online_after) {
            v.push("health.online_after", "must be 1 to 100 probes", "set e.g. 2");
        }
        v.duration(
            "health.coverage_period",
            self.health.coverage_period,
            Duration::from_secs(1),
            Duration::from_secs(86400),
        );

        if self.metrics.enabled && self.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
            v.push(
                "metrics.listen",
                &format!("{:?} is not IP:PORT", self.metrics.listen),
                "write e.g. \"127.0.0.1:9464\" (port 0 picks a free port)",
            );
        }

        // Zones.
        let mut zone_ids = HashSet::new();
        for (i, z) in self.zones.iter().enumerate() {
            let f = format!("zone[{i}]");
            v.segment(&format!("{f}.id"), &z.id, "use letters, digits, `-` or `_`");
            v.unique(&mut zone_ids, &format!("{f}.id"), &z.id, "zone");
            if z.coverage_required && z.min_live_cameras == 0 {
                v.push(&format!("{f}.min_live_cameras"), "is 0 for a required zone", "set at least 1");
            }
        }

        // Devices share one id space: they share the devices/ topic subtree.
        let mut device_ids = HashSet::new();
        let mut camera_ids = HashSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let f = format!("camera[{i}]");
            v.segment(&format!("{f}.id"), &c.id, "use letters, digits, `-` or `_`, e.g. \"cam-01\"");
            v.unique(&mut device_ids, &format!("{f}.id"), &c.id, "device");
            camera_ids.insert(c.id.clone());
            if !(c.onvif.starts_with("http://") || c.onvif.starts_with("https://")) {
                v.push(
                    &format!("{f}.onvif"),
                    &format!("{:?} is not an http(s) URL", c.onvif),
                    "write http://HOST/onvif/device_service",
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
                    "is not shorter than poll_interval",
                    "make the timeout shorter than the interval",
                );
            }
            v.secret(&f, &c.password, &self.base_dir);
            for (j, z) in c.zones.iter().enumerate() {
                if !self.zones.iter().any(|zc| &zc.id == z) {
                    v.push(
                        &format!("{f}.zones[{j}]"),
                        &format!("unknown zone {z:?}"),
                        "add a [[zone]] with that id or fix the spelling",
                    );
                }
            }
        }
        let mut panel_points: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (i, p) in self.panels.iter().enumerate() {
            let f = format!("panel[{i}]");
            v.segment(&format!("{f}.id"), &p.id, "use letters, digits, `-` or `_`, e.g. \"alarm-1\"");
            v.unique(&mut device_ids, &format!("{f}.id"), &p.id, "device");
            if p.address.parse::<std::net::SocketAddr>().is_err() && split_host_port(&p.address, 502).is_none() {
                v.push(
                    &format!("{f}.address"),
                    &format!("{:?} is not HOST:PORT", p.address),
                    "write e.g. \"10.1.2.50:502\"",
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
                v.push(&format!("{f}.pace"), "is longer than 1 s", "use a few milliseconds, e.g. \"20ms\"");
            }
            match profiles.points(&p.profile, &self.base_dir) {
                Ok(points) => {
                    panel_points.insert(p.id.clone(), points);
                }
                Err(errs) => {
                    for e in errs {
                        v.push(
                            &format!("{f}.profile"),
                            &format!("profile {:?}: {e}", p.profile),
                            "fix the profile file (see docs/PROFILES.md)",
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
            v.segment(&format!("{f}.id"), id, "use letters, digits, `-` or `_`");
            v.unique(&mut point_ids, &format!("{f}.id"), id, "alarm zone or door");
            match self.panels.iter().find(|p| p.id == panel) {
                None => v.push(&format!("{f}.panel"), &format!("unknown panel {panel:?}"), "use the id of a [[panel]]"),
                Some(p) => {
                    if p.kind != want_kind {
                        let want = if want_kind == PanelKind::Alarm { "alarm" } else { "access" };
                        v.push(
                            &format!("{f}.panel"),
                            &format!("panel {panel:?} is not an {want} panel"),
                            &format!("point it at a panel with kind = \"{want}\""),
                        );
                    }
                    if let Some(points) = panel_points.get(panel) {
                        match points.iter().find(|(pid, _)| pid == point) {
                            None => v.push(
                                &format!("{f}.point"),
                                &format!("profile {:?} has no point {point:?}", p.profile),
                                "use a point id from the panel's profile (`branch-gateway profile show NAME` lists them)",
                            ),
                            Some((_, role)) if !roles.contains(&role.as_str()) => v.push(
                                &format!("{f}.point"),
                                &format!("point {point:?} has role {role:?}, expected {}", roles.join(" or ")),
                                "pick a point of the right role",
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
                    &format!("unknown zone {a:?}"),
                    "add a [[zone]] with that id or remove area",
                );
            }
            for (j, c) in cams.iter().enumerate() {
                if !camera_ids.contains(c) {
                    v.push(
                        &format!("{f}.linked_cameras[{j}]"),
                        &format!("unknown camera {c:?}"),
                        "use the id of a [[camera]]",
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
                    &format!("no partition point {part:?} in the panel's profile"),
                    "use a point of role \"partition\" or remove partition",
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

/// `host:port` or `host` → (host, port).
pub fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    if s.is_empty() || s.contains('/') {
        return None;
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
    fn push(&mut self, field: &str, message: &str, fix: &str) {
        self.problems.push(Problem { field: field.into(), message: message.into(), fix: fix.into() });
    }

    fn segment(&mut self, field: &str, value: &str, fix: &str) {
        if let Err(e) = validate_segment(value) {
            self.push(field, &format!("{value:?} {e}"), fix);
        }
    }

    fn unique(&mut self, seen: &mut HashSet<String>, field: &str, value: &str, what: &str) {
        if !seen.insert(value.to_string()) {
            self.push(field, &format!("duplicate {what} id {value:?}"), "give each one a unique id");
        }
    }

    fn duration(&mut self, field: &str, d: Duration, min: Duration, max: Duration) {
        if d < min || d > max {
            self.push(
                field,
                &format!("{} is out of range", humantime::format_duration(d)),
                &format!("use a value from {} to {}", humantime::format_duration(min), humantime::format_duration(max)),
            );
        }
    }

    fn readable(&mut self, field: &str, path: &Path) {
        if let Err(e) = std::fs::File::open(path) {
            self.push(
                field,
                &format!("cannot read {}: {e}", path.display()),
                "check the path and that the gateway user may read it",
            );
        }
    }

    fn secret(&mut self, prefix: &str, s: &Secret, base_dir: &Path) {
        let n =
            [s.password.is_some(), s.password_file.is_some(), s.password_env.is_some()].iter().filter(|b| **b).count();
        if n > 1 {
            self.push(
                &format!("{prefix}.password"),
                "more than one of password, password_file, password_env is set",
                "keep exactly one",
            );
            return;
        }
        if let Some(f) = &s.password_file {
            let path = base_dir.join(f);
            if let Err(e) = std::fs::read_to_string(&path) {
                self.push(
                    &format!("{prefix}.password_file"),
                    &format!("cannot read {}: {e}", path.display()),
                    "create the file or fix the path; it must be readable by the gateway user",
                );
            }
        }
        if let Some(var) = &s.password_env
            && std::env::var_os(var).is_none()
        {
            self.push(
                &format!("{prefix}.password_env"),
                &format!("environment variable {var} is not set"),
                &format!("export {var}=... in the service environment"),
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
    }
}
