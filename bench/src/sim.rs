//! The simulator for the scale scenarios, in a process of its own (`bsg-bench sim-serve`), so
//! that the measuring process stays idle and the simulator's CPU is accounted to itself.
//!
//! The child serves the fleets, prints one JSON line with every device's address, and lives
//! until its stdin closes — so it dies with the bench even if the bench is killed.

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use device_sim::camera::{AuthMode, CameraFleet, CameraSpec};
use device_sim::panel::{PanelFleet, PanelSpec};
use harness::Proc;
use serde::{Deserialize, Serialize};

use crate::gateway_proc::{CameraEntry, PanelEntry};

pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[derive(Debug, Serialize, Deserialize)]
struct Served {
    cameras: Vec<(String, String)>,
    panels: Vec<(String, String)>,
}

/// Camera specs with the credentials the bench's site files use.
pub fn camera_specs(ids: impl IntoIterator<Item = String>) -> Vec<CameraSpec> {
    ids.into_iter()
        .map(|id| CameraSpec {
            name: id.clone(),
            id,
            username: "admin".into(),
            password: "admin".into(),
            auth: AuthMode::UsernameToken,
        })
        .collect()
}

/// Panel specs of one built-in profile.
pub fn panel_specs(ids: impl IntoIterator<Item = String>, profile: &str) -> Result<Vec<PanelSpec>> {
    let p = protocols::modbus::builtin(profile).with_context(|| format!("no built-in profile {profile:?}"))?;
    Ok(ids.into_iter().map(|id| PanelSpec { name: id.clone(), id, profile: p.clone(), unit_id: 1 }).collect())
}

/// `WIDTHxHEIGHT` (`1920x1080`), each side within what the simulator serves.
pub fn parse_picture_size(s: &str) -> Result<(u16, u16), String> {
    use device_sim::camera::{MAX_PICTURE_SIDE, MIN_PICTURE_SIDE};
    let side = |v: &str| v.trim().parse::<u16>().ok().filter(|n| (MIN_PICTURE_SIDE..=MAX_PICTURE_SIDE).contains(n));
    s.split_once(['x', 'X', '×']).and_then(|(w, h)| Some((side(w)?, side(h)?))).ok_or_else(|| {
        format!("expected WIDTHxHEIGHT, each {MIN_PICTURE_SIDE}-{MAX_PICTURE_SIDE} (e.g. 1920x1080), not {s:?}")
    })
}

/// `bsg-bench sim-serve`: the child side. The cameras' pictures are encoded before the device
/// list is printed, so that no measurement includes it.
pub fn serve(
    cameras: usize,
    panels: usize,
    profile: &str,
    picture_bytes: usize,
    picture_size: (u16, u16),
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the runtime")?;
    rt.block_on(async {
        let cams = CameraFleet::start(LOOPBACK, camera_specs((1..=cameras).map(|i| format!("cam-{i:04}"))))
            .await
            .context("start the cameras")?;
        for c in cams.cameras() {
            cams.set_picture_bytes(&c.id, picture_bytes).context("set the picture's bytes")?;
            cams.set_picture_size(&c.id, picture_size.0, picture_size.1).context("set the picture size")?;
        }
        if cameras > 0 {
            tokio::task::block_in_place(|| cams.prepare_pictures());
        }
        let pans = PanelFleet::start(LOOPBACK, panel_specs((1..=panels).map(|i| format!("panel-{i:03}")), profile)?)
            .await
            .context("start the panels")?;
        let served = Served {
            cameras: cams.cameras().into_iter().map(|c| (c.id, c.device_url)).collect(),
            panels: pans.panels().into_iter().map(|p| (p.id, p.addr.to_string())).collect(),
        };
        println!("{}", serde_json::to_string(&served)?);
        // Live until the parent closes our stdin (or dies).
        tokio::task::spawn_blocking(|| {
            let mut sink = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        })
        .await
        .context("wait for stdin")?;
        cams.shutdown().await;
        pans.shutdown().await;
        Ok(())
    })
}

/// The parent side: a running `sim-serve` child and what it serves.
pub struct SimProc {
    proc: Proc,
    _stdin: ChildStdin,
    pub cameras: Vec<CameraEntry>,
    pub panels: Vec<PanelEntry>,
}

impl SimProc {
    /// Every camera's snapshot is a `picture_size` picture (width, height) padded to
    /// `picture_bytes` (0: as encoded).
    pub fn spawn(
        self_bin: &Path,
        cameras: usize,
        panels: usize,
        profile: &str,
        picture_bytes: usize,
        picture_size: (u16, u16),
    ) -> Result<SimProc> {
        let size = format!("{}x{}", picture_size.0, picture_size.1);
        let mut child = Command::new(self_bin)
            .args(["sim-serve", "--cameras", &cameras.to_string(), "--panels", &panels.to_string()])
            .args(["--profile", profile, "--picture-bytes", &picture_bytes.to_string(), "--picture-size", &size])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawn {} sim-serve", self_bin.display()))?;
        let stdin = child.stdin.take().context("sim-serve stdin")?;
        let stdout = child.stdout.take().context("sim-serve stdout")?;
        let proc = Proc { child, name: "sim-serve".into() };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = tx.send(BufReader::new(stdout).read_line(&mut line).map(|_| line));
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(l)) if !l.trim().is_empty() => l,
            Ok(Ok(_)) => bail!("the simulator exited before serving (see its errors above)"),
            Ok(Err(e)) => bail!("reading the simulator's output: {e}"),
            Err(_) => bail!("the simulator did not come up within 60 s"),
        };
        let served: Served = serde_json::from_str(line.trim()).context("the simulator's device list")?;
        Ok(SimProc {
            proc,
            _stdin: stdin,
            cameras: served.cameras.into_iter().map(|(id, onvif)| CameraEntry { id, onvif }).collect(),
            panels: served
                .panels
                .into_iter()
                .map(|(id, address)| PanelEntry { id, address, kind: "alarm", profile: profile.to_string() })
                .collect(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}
