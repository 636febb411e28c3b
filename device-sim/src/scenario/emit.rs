//! The gateway site config that matches a running scenario, so an installer starts from a
//! working pair: every camera with its real device URL and credentials (passwords in files
//! next to the config, never inline), every panel with its real address, the zones, alarm
//! zones and doors, and the scenario's `[gateway]` settings.
//!
//! The text is built from serde structs that mirror docs/CONFIG.md rather than by string
//! pasting, so names with quotes or backslashes cannot break the file. The simulator never
//! links the gateway (dependencies point one way), so the tests check the result with the
//! real `branch-gateway check-config`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::Scenario;
use super::live::LiveBranch;

#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("cannot write {}: {source} (fix: check that the directory exists and is writable)", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot render the site config: {0}")]
    Render(#[from] toml::ser::Error),
}

/// The files of an emitted config: the config text and the password files it refers to
/// (names relative to the config's directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    pub config: String,
    pub secrets: Vec<(String, String)>,
}

#[derive(Serialize)]
struct Site {
    branch: BranchOut,
    uplink: Uplink,
    storage: Storage,
    #[serde(skip_serializing_if = "Health::is_empty")]
    health: Health,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<Metrics>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    zone: Vec<ZoneOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    camera: Vec<CameraOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    panel: Vec<PanelOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    alarm_zone: Vec<AlarmZoneOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    door: Vec<DoorOut>,
}

#[derive(Serialize)]
struct BranchOut {
    id: String,
    name: String,
}

#[derive(Serialize)]
struct Uplink {
    broker: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_alive: Option<String>,
}

#[derive(Serialize)]
struct Storage {
    path: String,
}

#[derive(Serialize, Default)]
struct Health {
    #[serde(skip_serializing_if = "Option::is_none")]
    offline_after: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    online_after: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    coverage_period: Option<String>,
}

impl Health {
    fn is_empty(&self) -> bool {
        self.offline_after.is_none() && self.online_after.is_none() && self.coverage_period.is_none()
    }
}

#[derive(Serialize)]
struct Metrics {
    listen: String,
}

#[derive(Serialize)]
struct ZoneOut {
    id: String,
    name: String,
    coverage_required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_live_cameras: Option<u32>,
}

#[derive(Serialize)]
struct CameraOut {
    id: String,
    name: String,
    onvif: String,
    username: String,
    password_file: String,
    auth: &'static str,
    zones: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    poll_interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    maintenance: bool,
}

#[derive(Serialize)]
struct PanelOut {
    id: String,
    name: String,
    kind: &'static str,
    address: String,
    unit_id: u8,
    profile: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    poll_interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
}

#[derive(Serialize)]
struct AlarmZoneOut {
    id: String,
    name: String,
    panel: String,
    point: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    twenty_four_hour: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    area: Option<String>,
    linked_cameras: Vec<String>,
}

#[derive(Serialize)]
struct DoorOut {
    id: String,
    name: String,
    panel: String,
    point: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    area: Option<String>,
    linked_cameras: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    held_open_limit: Option<String>,
}

fn dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `addr` as a client on this host reaches it (`0.0.0.0:502` → `127.0.0.1:502`), as the
/// camera fleet does for its URLs.
fn reachable(mut addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr.to_string()
}

/// The broker the gateway should use: the link proxy's address when there is one.
pub fn gateway_broker(branch: &LiveBranch, broker: &str) -> String {
    match branch.link() {
        None => broker.to_string(),
        Some(l) => {
            let scheme = if broker.starts_with("mqtts://") { "mqtts" } else { "mqtt" };
            format!("{scheme}://{}", reachable(l.listen()))
        }
    }
}

/// Renders the config for `scn` as `branch` serves it. `stem` names the password files and
/// the default outbox directory (`{stem}-cameras.pass`, `{stem}-outbox`).
pub fn render(scn: &Scenario, branch: &LiveBranch, broker: &str, stem: &str) -> Result<Emitted, EmitError> {
    let g = &scn.gateway;
    let infos = branch.cameras();
    let panel_infos = branch.panels();
    // One file per distinct password, in order of first use.
    let mut passwords: Vec<&str> = Vec::new();
    for c in &scn.cameras {
        if !passwords.contains(&c.password.as_str()) {
            passwords.push(&c.password);
        }
    }
    let file_of = |pw: &str| -> String {
        match passwords.iter().position(|p| *p == pw) {
            Some(_) if passwords.len() == 1 => format!("{stem}-cameras.pass"),
            Some(i) => format!("{stem}-cameras-{}.pass", i + 1),
            None => format!("{stem}-cameras.pass"),
        }
    };
    let site = Site {
        branch: BranchOut { id: scn.branch.id.clone(), name: scn.branch.name.clone() },
        uplink: Uplink {
            broker: gateway_broker(branch, broker),
            client_id: g.client_id.clone(),
            topic_prefix: g.topic_prefix.clone(),
            keep_alive: g.keep_alive.map(dur),
        },
        storage: Storage { path: g.storage_path.clone().unwrap_or_else(|| format!("{stem}-outbox")) },
        health: Health {
            offline_after: g.offline_after,
            online_after: g.online_after,
            coverage_period: g.coverage_period.map(dur),
        },
        metrics: g.metrics_listen.map(|a| Metrics { listen: a.to_string() }),
        zone: scn
            .zones
            .iter()
            .map(|z| ZoneOut {
                id: z.id.clone(),
                name: z.name.clone(),
                coverage_required: z.coverage_required,
                min_live_cameras: z.min_live_cameras,
            })
            .collect(),
        camera: scn
            .cameras
            .iter()
            .map(|c| CameraOut {
                id: c.id.clone(),
                name: c.name.clone(),
                onvif: infos.iter().find(|i| i.id == c.id).map(|i| i.device_url.clone()).unwrap_or_default(),
                username: c.username.clone(),
                password_file: file_of(&c.password),
                auth: match c.auth {
                    crate::camera::AuthMode::UsernameToken => "username-token",
                    crate::camera::AuthMode::Digest => "digest",
                },
                zones: c.zones.clone(),
                poll_interval: c.poll_interval.or(g.camera_poll_interval).map(dur),
                timeout: g.camera_timeout.map(dur),
                maintenance: c.maintenance,
            })
            .collect(),
        panel: scn
            .panels
            .iter()
            .map(|p| PanelOut {
                id: p.id.clone(),
                name: p.name.clone(),
                kind: match p.kind {
                    crate::panel::PanelKindSim::Alarm => "alarm",
                    crate::panel::PanelKindSim::Access => "access",
                },
                address: panel_infos.iter().find(|i| i.id == p.id).map(|i| reachable(i.addr)).unwrap_or_default(),
                unit_id: p.unit_id,
                profile: p.profile_name.clone(),
                poll_interval: p.poll_interval.or(g.panel_poll_interval).map(dur),
                timeout: g.panel_timeout.map(dur),
            })
            .collect(),
        alarm_zone: scn
            .alarm_zones
            .iter()
            .map(|a| AlarmZoneOut {
                id: a.id.clone(),
                name: a.name.clone(),
                panel: a.panel.clone(),
                point: a.point.clone(),
                partition: a.partition.clone(),
                twenty_four_hour: a.twenty_four_hour,
                area: a.area.clone(),
                linked_cameras: a.linked_cameras.clone(),
            })
            .collect(),
        door: scn
            .doors
            .iter()
            .map(|d| DoorOut {
                id: d.id.clone(),
                name: d.name.clone(),
                panel: d.panel.clone(),
                point: d.point.clone(),
                area: d.area.clone(),
                linked_cameras: d.linked_cameras.clone(),
                held_open_limit: d.held_open_limit.map(dur),
            })
            .collect(),
    };
    let body = toml::to_string(&site)?;
    let header = format!(
        "# Generated by device-sim from the scenario {:?} ({}).\n\
         # The addresses below are the simulator's, valid while that device-sim process runs\n\
         # (its ports are chosen afresh on every start: emit the config again after a restart).\n\
         # Check it with: branch-gateway check-config THIS-FILE\n\n",
        scn.name,
        scn.source.display()
    );
    let secrets = passwords.iter().map(|pw| (file_of(pw), format!("{pw}\n"))).collect();
    Ok(Emitted { config: format!("{header}{body}"), secrets })
}

/// Renders and writes the config to `path` and its password files next to it (mode 0600 on
/// Unix). Returns every file written.
pub fn write(path: &Path, scn: &Scenario, branch: &LiveBranch, broker: &str) -> Result<Vec<PathBuf>, EmitError> {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "site".into());
    let emitted = render(scn, branch, broker, &stem)?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut written = Vec::new();
    for (name, content) in &emitted.secrets {
        let p = dir.join(name);
        write_private(&p, content).map_err(|source| EmitError::Write { path: p.clone(), source })?;
        written.push(p);
    }
    std::fs::write(path, &emitted.config).map_err(|source| EmitError::Write { path: path.to_path_buf(), source })?;
    written.insert(0, path.to_path_buf());
    Ok(written)
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(content.as_bytes())
}
