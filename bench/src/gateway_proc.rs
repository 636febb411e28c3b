//! The system under test: a site file written for the scenario, and the release-built
//! `branch-gateway` run on it as a separate process (killed on drop), measured from outside.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gateway::config::SiteConfig;
use gateway::pollers::panel::ProfileStore;
use harness::Proc;

use crate::mqtt::Subscriber;

/// A camera of the site file.
#[derive(Debug, Clone)]
pub struct CameraEntry {
    pub id: String,
    pub onvif: String,
}

/// A panel of the site file.
#[derive(Debug, Clone)]
pub struct PanelEntry {
    pub id: String,
    pub address: String,
    /// `alarm` or `access`.
    pub kind: &'static str,
    pub profile: String,
}

/// What a scenario wants the gateway to watch, and how often.
#[derive(Debug, Clone)]
pub struct Site {
    pub branch: String,
    pub cameras: Vec<CameraEntry>,
    pub panels: Vec<PanelEntry>,
    /// (alarm zone id, panel id, point): 24-hour zones, so they fire without arming.
    pub alarm_zones: Vec<(String, String, String)>,
    /// (door id, access panel id, point).
    pub doors: Vec<(String, String, String)>,
    pub camera_poll: Duration,
    pub camera_timeout: Duration,
    pub panel_poll: Duration,
    pub panel_timeout: Duration,
    pub offline_after: u32,
    pub online_after: u32,
    /// `[health] frozen_check_every` (the gateway's default when `None`).
    pub frozen_check_every: Option<u32>,
    /// `[health.picture] checks` (the gateway's default, on, when `None`).
    pub picture_checks: Option<bool>,
}

impl Site {
    pub fn new(branch: &str) -> Site {
        Site {
            branch: branch.into(),
            cameras: Vec::new(),
            panels: Vec::new(),
            alarm_zones: Vec::new(),
            doors: Vec::new(),
            camera_poll: Duration::from_secs(10),
            camera_timeout: Duration::from_secs(2),
            panel_poll: Duration::from_millis(250),
            panel_timeout: Duration::from_secs(1),
            offline_after: 3,
            online_after: 2,
            frozen_check_every: None,
            picture_checks: None,
        }
    }

    /// Every device id, cameras and panels.
    pub fn device_ids(&self) -> Vec<String> {
        self.cameras.iter().map(|c| c.id.clone()).chain(self.panels.iter().map(|p| p.id.clone())).collect()
    }

    /// The site file (credentials: the simulator's `admin`/`admin`). The metrics endpoint
    /// stays on, as it is by default, on a free port so that runs never collide.
    pub fn toml(&self, broker_port: u16, storage: &Path) -> String {
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let mut s = String::new();
        let _ = write!(
            s,
            "[branch]\nid = \"{}\"\nname = \"Bench branch\"\n\n[uplink]\nbroker = \"mqtt://127.0.0.1:{broker_port}\"\n\n\
             [storage]\npath = {:?}\n\n[metrics]\nlisten = \"127.0.0.1:{}\"\n\n[health]\noffline_after = {}\nonline_after = {}\n\n\
             [[zone]]\nid = \"hall\"\nname = \"Hall\"\ncoverage_required = true\n",
            self.branch,
            storage.display().to_string(),
            harness::free_port(),
            self.offline_after,
            self.online_after
        );
        if let Some(n) = self.frozen_check_every {
            // Into [health], ahead of the first table that follows it.
            s = s.replacen("\n\n[[zone]]", &format!("\nfrozen_check_every = {n}\n\n[[zone]]"), 1);
        }
        if let Some(on) = self.picture_checks {
            s = s.replacen("\n\n[[zone]]", &format!("\n\n[health.picture]\nchecks = {on}\n\n[[zone]]"), 1);
        }
        for c in &self.cameras {
            let _ = write!(
                s,
                "\n[[camera]]\nid = \"{}\"\nname = \"Camera {}\"\nonvif = \"{}\"\nusername = \"admin\"\npassword = \"admin\"\n\
                 zones = [\"hall\"]\npoll_interval = \"{}\"\ntimeout = \"{}\"\n",
                c.id,
                c.id,
                c.onvif,
                ms(self.camera_poll),
                ms(self.camera_timeout)
            );
        }
        for p in &self.panels {
            let _ = write!(
                s,
                "\n[[panel]]\nid = \"{}\"\nname = \"Panel {}\"\nkind = \"{}\"\naddress = \"{}\"\nprofile = \"{}\"\n\
                 poll_interval = \"{}\"\ntimeout = \"{}\"\n",
                p.id,
                p.id,
                p.kind,
                p.address,
                p.profile,
                ms(self.panel_poll),
                ms(self.panel_timeout)
            );
        }
        for (id, panel, point) in &self.alarm_zones {
            let _ = write!(
                s,
                "\n[[alarm_zone]]\nid = \"{id}\"\nname = \"Zone {id}\"\npanel = \"{panel}\"\npoint = \"{point}\"\n\
                 twenty_four_hour = true\narea = \"hall\"\n"
            );
        }
        for (id, panel, point) in &self.doors {
            let _ = write!(
                s,
                "\n[[door]]\nid = \"{id}\"\nname = \"Door {id}\"\npanel = \"{panel}\"\npoint = \"{point}\"\n"
            );
        }
        s
    }
}

/// A running `branch-gateway run SITE`, its stdout/stderr in `dir/gateway.log`.
pub struct Gateway {
    proc: Proc,
    pub started: Instant,
    pub config: SiteConfig,
    log: PathBuf,
}

impl Gateway {
    /// Writes the site file into `dir` (storage in `dir/outbox`), validates it with the
    /// gateway's own loader, and starts the binary. `started` is stamped just before the spawn.
    pub fn spawn(bin: &Path, dir: &Path, site: &Site, broker_port: u16) -> Result<Gateway> {
        Gateway::spawn_nice(bin, dir, site, broker_port, 0)
    }

    /// [`Gateway::spawn`] at the scheduling priority `nice` (set in the child before exec, so
    /// every thread the gateway starts inherits it), as the systemd unit's `Nice=` does. A
    /// negative nice needs root; without it the gateway runs at the bench's own.
    pub fn spawn_nice(bin: &Path, dir: &Path, site: &Site, broker_port: u16, nice: i32) -> Result<Gateway> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join("site.toml");
        std::fs::write(&path, site.toml(broker_port, &dir.join("outbox")))
            .with_context(|| format!("write {}", path.display()))?;
        let config =
            SiteConfig::load(&path, &ProfileStore).map_err(|e| anyhow::anyhow!("the bench's site file: {e}"))?;
        let log = dir.join("gateway.log");
        let out = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        let started = Instant::now();
        let mut cmd = Command::new(bin);
        cmd.arg("run")
            .arg(&path)
            .env("RUST_LOG", "info,sled=warn,rumqttc=warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if nice != 0 {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: between fork and exec the closure only calls setpriority, which is
            // async-signal-safe, and allocates nothing.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setpriority(libc::PRIO_PROCESS, 0, nice) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().with_context(|| format!("spawn {} at nice {nice}", bin.display()))?;
        Ok(Gateway { proc: Proc { child, name: "branch-gateway".into() }, started, config, log })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// An error if the process has exited, with the end of its log.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Ok(Some(st)) = self.proc.child.try_wait() {
            bail!("branch-gateway exited ({st}); last lines of its log:\n{}", self.log_tail(15));
        }
        Ok(())
    }

    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM, then up to 10 s for a clean exit (then SIGKILL on drop).
    pub fn stop(mut self) {
        self.proc.signal("TERM");
        let _ = self.proc.wait_exit(Duration::from_secs(10));
    }
}

/// What [`wait_devices`] saw.
pub struct Seen {
    /// Device id → (arrival of its first retained health, the state it reported).
    pub devices: HashMap<String, (Instant, String)>,
    /// Arrival of the gateway's retained `online` status, if it came in meanwhile.
    pub online: Option<Instant>,
}

/// When each device's retained `devices/{id}` health first reached the subscriber — the
/// sign, seen from head office, that the gateway has completed a first poll of it.
pub async fn wait_devices(
    sub: &mut Subscriber,
    gw: &mut Gateway,
    branch: &str,
    ids: &[String],
    timeout: Duration,
) -> Result<Seen> {
    let prefix = format!("branches/{branch}/devices/");
    let status_topic = format!("branches/{branch}/gateway");
    let mut online = None;
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut seen: HashMap<String, (Instant, String)> = HashMap::new();
    let deadline = Instant::now() + timeout;
    while seen.len() < want.len() {
        let step = (Instant::now() + Duration::from_secs(1)).min(deadline);
        match sub.next_until(step).await {
            Some(m) => {
                if online.is_none() && m.topic == status_topic && m.json()["status"] == "online" {
                    online = Some(m.at);
                }
                if let Some(id) = m.topic.strip_prefix(&prefix)
                    && want.contains(id)
                    && !seen.contains_key(id)
                {
                    let state = m.json()["state"].as_str().unwrap_or("?").to_string();
                    seen.insert(id.to_string(), (m.at, state));
                }
            }
            None => {
                gw.check_alive()?;
                if Instant::now() >= deadline {
                    let missing: Vec<&&str> = want.iter().filter(|id| !seen.contains_key(**id)).take(5).collect();
                    bail!(
                        "{} of {} devices had no retained health after {timeout:?} (e.g. {missing:?}); gateway log:\n{}",
                        want.len() - seen.len(),
                        want.len(),
                        gw.log_tail(10)
                    );
                }
            }
        }
    }
    Ok(Seen { devices: seen, online })
}
