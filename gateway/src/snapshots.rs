//! Alarm snapshots: right after an alarm (or a forced door) configured with
//! `snapshot = true`, fetch a picture from each linked camera, keep it on the gateway's disk
//! with a bounded retention, and name it in a follow-up event.
//!
//! Head office's first question after an alarm is what the cameras saw; a picture taken
//! within seconds answers it even if the camera dies next (GB 50395 asks for linked recording
//! within 4 s). The alarm itself is never delayed for this: the follow-up is a second event,
//! marked with `follow_up_of`, so consumers do not count it as a new alarm.

use std::path::{Path, PathBuf};
use std::time::Duration;

use protocols::{Alert, AlertBody, Snapshot};

use crate::config::CameraConfig;
use crate::health::SnapshotRequest;
use crate::messages::{Lang, Msg};
use crate::pollers::camera::fetch_snapshot;

/// All pictures of one alarm must be taken within this (GB 50395: 4 s).
pub const DEADLINE: Duration = Duration::from_millis(3500);

/// Takes the pictures, stores them under `dir`, prunes beyond `keep`, and returns the
/// follow-up alert (to be stored in the outbox like any other).
pub async fn capture(
    req: SnapshotRequest,
    cameras: &[CameraConfig],
    base_dir: &Path,
    dir: &Path,
    keep: usize,
    lang: Lang,
) -> Alert {
    let alert_id = req.alert.id.as_str();
    let fetches = req.cameras.iter().map(|(id, uri)| async move {
        let taken_at = protocols::time::now();
        let cfg = cameras.iter().find(|c| c.id == id.as_str());
        let result = match cfg {
            Some(cfg) => fetch_snapshot(cfg, base_dir, uri, DEADLINE).await,
            None => Err("camera not configured".to_string()),
        };
        let (file, bytes, error) = match result {
            Ok(pic) => {
                let name = format!("{alert_id}-{id}.jpg");
                match write(dir, &name, &pic) {
                    Ok(()) => (Some(name), pic.len() as u64, None),
                    Err(e) => (None, 0, Some(format!("cannot store the picture: {e}"))),
                }
            }
            Err(e) => (None, 0, Some(e)),
        };
        Snapshot { camera: id.clone(), file, taken_at, bytes, error }
    });
    let snapshots: Vec<Snapshot> = futures::future::join_all(fetches).await;
    prune(dir, keep);
    follow_up(&req.alert, snapshots, lang)
}

fn write(dir: &Path, name: &str, pic: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    // Write then rename: a crash never leaves a half picture under the final name.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, pic)?;
    std::fs::rename(&tmp, dir.join(name))
}

/// Keeps the `keep` newest pictures (by modification time).
fn prune(dir: &Path, keep: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jpg"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() <= keep {
        return;
    }
    files.sort();
    let excess = files.len() - keep;
    for (_, p) in files.into_iter().take(excess) {
        let _ = std::fs::remove_file(p);
    }
}

/// The follow-up: the same kind, device and details as the alarm, a new id, and the pictures.
pub fn follow_up(alarm: &Alert, snapshots: Vec<Snapshot>, lang: Lang) -> Alert {
    let taken = snapshots.iter().filter(|s| s.file.is_some()).count();
    let mut body = alarm.body.clone();
    let what = match &mut body {
        AlertBody::AlarmLink(d) => {
            d.follow_up_of = Some(alarm.id.clone());
            d.snapshots = snapshots;
            d.zone_name.clone()
        }
        AlertBody::DoorStatus(d) => {
            d.follow_up_of = Some(alarm.id.clone());
            d.snapshots = snapshots;
            d.door_name.clone()
        }
        _ => String::new(),
    };
    let total = match &body {
        AlertBody::AlarmLink(d) => d.snapshots.len(),
        AlertBody::DoorStatus(d) => d.snapshots.len(),
        _ => 0,
    };
    let message = Msg::Snapshots { what: &what, taken, total }.render(lang);
    Alert::new(
        alarm.branch.clone(),
        alarm.device.clone(),
        alarm.state,
        alarm.severity,
        alarm.occurred_at,
        message,
        body,
    )
}
