//! The outbox budgets, measured (run in release):
//!
//! ```text
//! cargo run --release -p gateway --example outbox_bench -- [--events 1000000] [--replay 100000]
//! ```
//!
//! 1. durable enqueue rate with group commit (many concurrent appenders, as the health engine's
//!    per-device tasks are), and the single-appender rate for comparison;
//! 2. replay after an outage: the outbox holds `--replay` events, a local mosquitto appears,
//!    time until every event is PUBACKed and removed;
//! 3. disk use at `--events` buffered events (bytes per event, sled's `size_on_disk` and the
//!    directory's real size against the live data and the configured bound);
//! 4. disk use after churn: `--events` events pushed through a queue kept ~10,000 deep.
//!
//! Needs `mosquitto` on PATH (or /usr/sbin) for the replay figure.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use gateway::outbox::{Cursor, Outbox, OutboxBounds};
use gateway::uplink::{self, UplinkSettings};
use protocols::{
    Alert, AlertBody, AlertState, BranchId, CameraOfflineDetails, DeviceRef, DeviceType, Severity, Topics,
};

fn alert(branch: &BranchId, n: u64) -> Alert {
    Alert::new(
        branch.clone(),
        DeviceRef {
            id: format!("cam-{:03}", n % 500).parse().unwrap_or_else(|_| unreachable!()),
            device_type: DeviceType::Camera,
            name: format!("Camera {}", n % 500),
            zones: vec!["hall".parse().unwrap_or_else(|_| unreachable!())],
        },
        AlertState::Raised,
        Severity::Warning,
        protocols::time::now(),
        format!("Camera {} offline: no answer to ONVIF GetDeviceInformation", n % 500),
        AlertBody::CameraOffline(CameraOfflineDetails {
            status: "unreachable".into(),
            reason: "connect: connection timed out".into(),
            consecutive_failures: 3,
            armed: n.is_multiple_of(2),
            uncovered_zones: vec![],
            clock_skew_ms: None,
        }),
    )
}

async fn fill(outbox: &Arc<Outbox>, branch: &BranchId, n: u64, concurrency: usize) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let per = n / concurrency as u64;
    for w in 0..concurrency as u64 {
        let ob = outbox.clone();
        let b = branch.clone();
        let count = if w == 0 { n - per * (concurrency as u64 - 1) } else { per };
        tasks.spawn(async move {
            for i in 0..count {
                ob.append(alert(&b, w * 1_000_000 + i)).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(t0.elapsed())
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                Ok(m) => {
                    use std::os::unix::fs::MetadataExt;
                    total += m.blocks() * 512;
                }
                Err(_) => {}
            }
        }
    }
    total
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let events = arg("--events", 1_000_000);
    let replay = arg("--replay", 100_000);
    let branch: BranchId = "b01".parse().context("branch")?;
    let bounds = OutboxBounds { max_events: 2_000_000, max_bytes: 1 << 30 };
    let tmp = tempfile::tempdir()?;

    // 1. Durable enqueue.
    {
        let ob = Outbox::open(&tmp.path().join("enqueue"), bounds)?;
        let t = fill(&ob, &branch, 2_000, 1).await?;
        println!("enqueue, 1 appender:     {:>9.0} events/s (each waits for its own fsync)", 2_000.0 / t.as_secs_f64());
        for c in [16usize, 256] {
            let n = 100_000;
            let t = fill(&ob, &branch, n, c).await?;
            println!("enqueue, {c:>3} appenders: {:>9.0} events/s (group commit)", n as f64 / t.as_secs_f64());
        }
        let stored = ob.append(alert(&branch, 1)).await?;
        println!("event size: {} bytes stored (packed alert + 7-byte header + 8-byte key)", stored.size);
    }

    // 2. Replay after an outage.
    if let Some(exe) = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"]
        .iter()
        .find(|p| Path::new(p).exists())
    {
        let ob = Outbox::open(&tmp.path().join("replay"), bounds)?;
        fill(&ob, &branch, replay, 256).await?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let conf = tmp.path().join("mosquitto.conf");
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"))?;
        let mut broker = std::process::Command::new(exe)
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let topics = Topics::new("branches", branch.clone())?;
        let s = UplinkSettings::new("127.0.0.1", port, "bench", topics);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        let t0 = Instant::now();
        let task = tokio::spawn(uplink::run(s, ob.clone(), rx, shutdown.clone()));
        while ob.depth() > 0 && t0.elapsed() < Duration::from_secs(300) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let t = t0.elapsed();
        println!(
            "replay to mosquitto:     {:>9.0} events/s ({replay} events in {:.2} s, connect included)",
            replay as f64 / t.as_secs_f64(),
            t.as_secs_f64()
        );
        shutdown.cancel();
        let _ = task.await;
        let _ = broker.kill();
        let _ = broker.wait();
    } else {
        println!("replay: skipped (no mosquitto)");
    }

    // 3. Disk use at `events` buffered events.
    {
        let dir = tmp.path().join("million");
        let ob = Outbox::open(&dir, bounds)?;
        let t = fill(&ob, &branch, events, 256).await?;
        ob.flush().await?;
        let u = ob.disk_usage()?;
        let real = dir_size(&dir);
        println!(
            "{events} buffered: filled at {:.0} events/s; live {:.1} MiB ({} B/event), sled size_on_disk {:.1} MiB, directory {:.1} MiB ({} B/event, {:.2}x live); bound {:.0} MiB",
            events as f64 / t.as_secs_f64(),
            mib(u.live),
            u.live / events.max(1),
            mib(u.on_disk),
            mib(real),
            real / events.max(1),
            real as f64 / u.live.max(1) as f64,
            mib(bounds.max_bytes)
        );
        // Drain it the uplink's way and see what sled gives back.
        let t0 = Instant::now();
        let mut n = 0u64;
        loop {
            let mut c = Cursor::START;
            let got = ob.pending_from(&mut c, 1024)?;
            if got.is_empty() {
                break;
            }
            for p in got {
                ob.ack(p.id)?;
                n += 1;
            }
        }
        ob.flush().await?;
        // Emptied: the flusher rotates to a fresh database in the background.
        let g0 = Instant::now();
        while ob.generation() == 1 && g0.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await; // the old generation's removal
        println!(
            "drained {n} in {:.1} s; directory after drain (generation {}) {:.1} MiB",
            t0.elapsed().as_secs_f64(),
            ob.generation(),
            mib(dir_size(&dir))
        );
        drop(ob);
        let ob = Outbox::open(&dir, bounds)?;
        println!("reopened: depth {}, directory {:.1} MiB", ob.depth(), mib(dir_size(&dir)));
    }

    // 4. Churn: a queue ~10,000 deep with `events` pushed through.
    {
        let dir = tmp.path().join("churn");
        let ob = Outbox::open(&dir, bounds)?;
        fill(&ob, &branch, 10_000, 64).await?;
        let mut c = Cursor::START;
        let t0 = Instant::now();
        let mut pushed = 0u64;
        let mut peak = 0u64;
        while pushed < events {
            fill(&ob, &branch, 10_000, 64).await?;
            pushed += 10_000;
            let got = ob.pending_from(&mut c, 10_000)?;
            for p in got {
                ob.ack(p.id)?;
            }
            if pushed.is_multiple_of(100_000) {
                peak = peak.max(dir_size(&dir));
            }
        }
        ob.flush().await?;
        println!(
            "churn: {pushed} events through a ~10k-deep queue in {:.1} s; live {:.1} MiB, directory {:.1} MiB (peak {:.1} MiB)",
            t0.elapsed().as_secs_f64(),
            mib(ob.bytes()),
            mib(dir_size(&dir)),
            mib(peak)
        );
    }
    Ok(())
}
