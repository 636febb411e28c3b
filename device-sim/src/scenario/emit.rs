//! The gateway site config that matches a running scenario, so an installer starts from a
//! working pair: every camera with its real device URL and credentials (passwords in files
//! next to the config, never inline), every panel with its real address, the zones, alarm
//! zones and doors, and the scenario's `[gateway]` settings.
//!
//! The text is written with the site file's own types (the `site` crate, which the gateway
//! reads with), not by string pasting, so names with quotes or backslashes cannot break the
//! file and a field the gateway learns is one the emitter can write. The simulator never links
//! the gateway (dependencies point one way: both use `site`); the tests check the result with
//! the real `branch-gateway check-config`.

use std::path::{Path, PathBuf};

use site::{
    AlarmZoneConfig, BranchConfig, CameraAuth, CameraConfig, DoorConfig, MetricsConfig, PanelConfig, PanelKind, Secret,
    SiteConfig, UplinkConfig, ZoneConfig,
};

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
    let mut uplink = UplinkConfig::new(gateway_broker(branch, broker));
    uplink.client_id = g.client_id.clone();
    if let Some(p) = &g.topic_prefix {
        uplink.topic_prefix = p.clone();
    }
    if let Some(k) = g.keep_alive {
        uplink.keep_alive = k;
    }
    let mut site = SiteConfig::new(BranchConfig::new(&scn.branch.id, &scn.branch.name), uplink);
    site.storage.path = g.storage_path.clone().unwrap_or_else(|| format!("{stem}-outbox")).into();
    if let Some(n) = g.offline_after {
        site.health.offline_after = n;
    }
    if let Some(n) = g.online_after {
        site.health.online_after = n;
    }
    if let Some(d) = g.coverage_period {
        site.health.coverage_period = d;
    }
    if let Some(a) = g.metrics_listen {
        site.metrics = MetricsConfig { listen: a.to_string(), ..MetricsConfig::default() };
    }
    site.zones = scn
        .zones
        .iter()
        .map(|z| {
            let mut out = ZoneConfig::new(&z.id, &z.name);
            out.coverage_required = z.coverage_required;
            if let Some(n) = z.min_live_cameras {
                out.min_live_cameras = n;
            }
            out
        })
        .collect();
    site.cameras = scn
        .cameras
        .iter()
        .map(|c| {
            let url = infos.iter().find(|i| i.id == c.id).map(|i| i.device_url.clone()).unwrap_or_default();
            let mut out = CameraConfig::new(&c.id, &c.name, url);
            out.username = Some(c.username.clone());
            out.password = Secret { password_file: Some(file_of(&c.password).into()), ..Secret::default() };
            out.auth = match c.auth {
                crate::camera::AuthMode::UsernameToken => CameraAuth::UsernameToken,
                crate::camera::AuthMode::Digest => CameraAuth::Digest,
            };
            out.zones = c.zones.clone();
            if let Some(d) = c.poll_interval.or(g.camera_poll_interval) {
                out.poll_interval = d;
            }
            if let Some(d) = g.camera_timeout {
                out.timeout = d;
            }
            out.maintenance = c.maintenance;
            out
        })
        .collect();
    site.panels = scn
        .panels
        .iter()
        .map(|p| {
            let kind = match p.kind {
                crate::panel::PanelKindSim::Alarm => PanelKind::Alarm,
                crate::panel::PanelKindSim::Access => PanelKind::Access,
            };
            let address = panel_infos.iter().find(|i| i.id == p.id).map(|i| reachable(i.addr)).unwrap_or_default();
            let mut out = PanelConfig::new(&p.id, &p.name, kind, address, &p.profile_name);
            out.unit_id = p.unit_id;
            if let Some(d) = p.poll_interval.or(g.panel_poll_interval) {
                out.poll_interval = d;
            }
            if let Some(d) = g.panel_timeout {
                out.timeout = d;
            }
            out
        })
        .collect();
    site.alarm_zones = scn
        .alarm_zones
        .iter()
        .map(|a| {
            let mut out = AlarmZoneConfig::new(&a.id, &a.name, &a.panel, &a.point);
            out.partition = a.partition.clone();
            out.twenty_four_hour = a.twenty_four_hour;
            out.area = a.area.clone();
            out.linked_cameras = a.linked_cameras.clone();
            out
        })
        .collect();
    site.doors = scn
        .doors
        .iter()
        .map(|d| {
            let mut out = DoorConfig::new(&d.id, &d.name, &d.panel, &d.point);
            out.area = d.area.clone();
            out.linked_cameras = d.linked_cameras.clone();
            if let Some(limit) = d.held_open_limit {
                out.held_open_limit = limit;
            }
            out
        })
        .collect();
    let body = site.to_toml()?;
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
