//! `bsg-bench outbox-worker`: the outbox measured in a process of its own (so that sled's
//! cache and threads neither disturb nor are disturbed by the rest of the bench), through the
//! gateway library's own [`Outbox`] and [`uplink::run`] — the code the gateway runs. Prints one
//! JSON object on stdout.
//!
//! - `enqueue`: durable appends (each returns after the group commit covering it) from 1, 16
//!   and 256 concurrent appenders.
//! - `replay`: `--events` buffered while head office was unreachable, then the uplink starts
//!   against mosquitto on `--port`: time until every event is PUBACKed and removed.
//! - `fill`: `--events` buffered; the outbox directory's real size (allocated blocks) against
//!   the live data and the configured bound.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gateway::config::StorageConfig;
use gateway::outbox::{Outbox, OutboxBounds};
use gateway::uplink::{self, UplinkSettings};
use protocols::{
    Alert, AlertBody, AlertState, BranchId, CameraOfflineDetails, DeviceRef, DeviceType, Severity, Topics,
};
use serde_json::json;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Task {
    Enqueue,
    Replay,
    Fill,
    /// Open an existing outbox (a gateway's restart): the counters' scan and the replay of
    /// open conditions from the stored events.
    Open,
}

/// A camera-offline alert of realistic size (about 540 bytes stored).
fn alert(branch: &BranchId, n: u64) -> Result<Alert> {
    let cam = n % 500;
    Ok(Alert::new(
        branch.clone(),
        DeviceRef {
            id: format!("cam-{cam:03}").parse().context("device id")?,
            device_type: DeviceType::Camera,
            name: format!("Camera {cam}"),
            zones: vec!["hall".parse().context("zone id")?],
        },
        AlertState::Raised,
        Severity::Warning,
        protocols::time::now(),
        format!("Camera {cam} offline: no answer to ONVIF GetDeviceInformation"),
        AlertBody::CameraOffline(CameraOfflineDetails {
            status: "unreachable".into(),
            reason: "connect: connection timed out".into(),
            consecutive_failures: 3,
            armed: n.is_multiple_of(2),
            uncovered_zones: vec![],
            clock_skew_ms: None,
        }),
    ))
}

/// Appends `n` events from `concurrency` tasks; returns the wall time.
async fn fill(outbox: &Arc<Outbox>, branch: &BranchId, n: u64, concurrency: u64) -> Result<Duration> {
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let per = n / concurrency;
    for w in 0..concurrency {
        let (ob, b) = (outbox.clone(), branch.clone());
        let count = if w == 0 { n - per * (concurrency - 1) } else { per };
        tasks.spawn(async move {
            for i in 0..count {
                ob.append(alert(&b, w * 10_000_000 + i)?).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("appender task")??;
    }
    Ok(t0.elapsed())
}

/// Bytes really allocated under `p` (blocks, not apparent sizes).
pub fn dir_size(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                Ok(m) => total += m.blocks() * 512,
                Err(_) => {}
            }
        }
    }
    total
}

pub fn run(task: Task, dir: PathBuf, events: u64, port: Option<u16>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the runtime")?;
    let out = rt.block_on(work(task, &dir, events, port))?;
    println!("{out}");
    Ok(())
}

async fn work(task: Task, dir: &Path, events: u64, port: Option<u16>) -> Result<serde_json::Value> {
    let branch: BranchId = "bench-outbox".parse().context("branch id")?;
    // The bounds an installer gets without writing any (docs/CONFIG.md, [storage]).
    let defaults = StorageConfig::default();
    let bounds = OutboxBounds { max_events: defaults.max_events, max_bytes: defaults.max_bytes };
    let t_open = Instant::now();
    let outbox = Outbox::open(dir, bounds).with_context(|| format!("open the outbox in {}", dir.display()))?;
    let opened = t_open.elapsed();
    match task {
        Task::Open => Ok(json!({ "seconds": opened.as_secs_f64(), "depth": outbox.depth() })),
        Task::Enqueue => {
            // Warm up sled (tree creation, first segment) before timing.
            fill(&outbox, &branch, 1_000, 64).await?;
            let mut rates = serde_json::Map::new();
            for c in [1u64, 16, 256] {
                // One appender waits for its own fsync each time: fewer events suffice.
                let n = if c == 1 { (events / 50).clamp(200, 2_000) } else { events };
                let t = fill(&outbox, &branch, n, c).await?;
                rates.insert(format!("appenders_{c}"), json!(n as f64 / t.as_secs_f64()));
            }
            Ok(serde_json::Value::Object(rates))
        }
        Task::Replay => {
            let port = port.context("--port is needed for replay")?;
            fill(&outbox, &branch, events, 256).await?;
            let topics = Topics::new("bench", branch.clone()).context("topics")?;
            let settings = UplinkSettings::new("127.0.0.1", port, "bsg-bench-replay", topics);
            let stop = tokio_util::sync::CancellationToken::new();
            let (_retained_tx, retained_rx) = tokio::sync::mpsc::channel(1);
            let t0 = Instant::now();
            let task = tokio::spawn(uplink::run(settings, outbox.clone(), retained_rx, stop.clone()));
            while outbox.depth() > 0 {
                if t0.elapsed() > Duration::from_secs(300) {
                    bail!("replay: {} events still waiting after 300 s", outbox.depth());
                }
                if task.is_finished() {
                    bail!("replay: the uplink stopped with {} events waiting", outbox.depth());
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let t = t0.elapsed();
            stop.cancel();
            let _ = task.await;
            Ok(json!({ "rate": events as f64 / t.as_secs_f64(), "seconds": t.as_secs_f64() }))
        }
        Task::Fill => {
            let t = fill(&outbox, &branch, events, 256).await?;
            outbox.flush().await?;
            let usage = outbox.disk_usage()?;
            let (_, hwm) = crate::procfs::memory(std::process::id())?;
            Ok(json!({
                "events": events,
                "depth": outbox.depth(),
                "rate": events as f64 / t.as_secs_f64(),
                "live_bytes": usage.live,
                "sled_on_disk": usage.on_disk,
                "dir_bytes": dir_size(dir),
                "max_bytes": bounds.max_bytes,
                "max_events": bounds.max_events,
                "peak_rss": hwm,
            }))
        }
    }
}
