//! Ingest through MQTT: 200 simulated branches publish realistic alerts at QoS 1 as fast as a
//! broker takes them, two `hq listen` processes of one shared-subscription group store them,
//! and the clock runs from the first publish until `hq stats` counts every alert in the
//! database — committed, so acknowledged to the broker too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use harness::{Mosquitto, Proc};
use mqtt_setup::ClientOptions;
use protocols::{
    AlarmLinkDetails, Alert, AlertBody, AlertState, BranchId, CameraOfflineDetails, DeviceFaultDetails, DeviceRef,
    DeviceType, DoorState, DoorStatusDetails, LinkedCamera, Seq, Severity,
};
use rumqttc::{AsyncClient, Event, Packet, QoS};

use crate::procfs;

/// Branches publishing.
const BRANCHES: u64 = 200;
/// Publishing connections (each carries a quarter of the branches, so each branch's alerts
/// stay in order).
const PUBLISHERS: u64 = 4;
/// `hq stats` polling period.
const POLL: Duration = Duration::from_millis(200);

/// A broker that never drops a QoS 1 message: no queue or in-flight limit.
pub const BROKER_CONF: &str =
    "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n";

/// One ingest run.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// First publish → every alert counted in the database.
    pub elapsed: Duration,
    /// CPU (user + system) of both listeners over that time.
    pub listeners_cpu: Duration,
    /// The larger of the two listeners' peak RSS (`VmHWM`), bytes.
    pub peak_rss: u64,
}

fn id<T: std::str::FromStr>(s: &str) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    s.parse::<T>().with_context(|| format!("id {s:?}"))
}

fn device(d: &str, ty: DeviceType, name: &str) -> Result<DeviceRef> {
    Ok(DeviceRef { id: id(d)?, device_type: ty, name: name.into(), zones: vec![] })
}

/// Alert `seq` of branch `b`. Every 10: 5 door-status (forced open), 2 alarm-link (one linked
/// camera), 2 camera-offline (raised and cleared in turn on one camera, then the next camera),
/// 1 device-fault.
fn alert(b: u64, seq: u64, base: chrono::DateTime<chrono::Utc>) -> Result<Alert> {
    let branch: BranchId = id(&format!("b{b}"))?;
    let at = base + chrono::Duration::milliseconds(seq as i64 * 100);
    let place = (seq - 1) % 10;
    let camera = |n: u64| -> Result<LinkedCamera> {
        Ok(LinkedCamera {
            id: id(&format!("cam-{n}"))?,
            name: format!("Camera {n}"),
            online: true,
            stream_alive: true,
            frozen: false,
            picture: None,
            stream_uri: Some(format!("rtsp://10.20.0.{n}:554/stream1")),
            snapshot_uri: None,
        })
    };
    let (dev, state, severity, message, body) = match place {
        1 | 7 => (
            device("panel-1", DeviceType::AlarmPanel, "Intrusion panel")?,
            AlertState::Raised,
            Severity::Critical,
            "Alarm: Vault PIR".to_string(),
            AlertBody::AlarmLink(AlarmLinkDetails {
                zone: id("z1-pir")?,
                zone_name: "Vault PIR".into(),
                zone_state: "alarm".into(),
                partition: Some("1".into()),
                armed: true,
                twenty_four_hour: false,
                area: Some(id("z1")?),
                cameras: vec![camera(1)?],
                follow_up_of: None,
                snapshots: vec![],
            }),
        ),
        3 | 9 => {
            // The branch's camera alerts so far: pairs on one camera, then the next camera.
            let m = (seq - 1) / 10 * 2 + u64::from(place == 9);
            let n = (m / 2) % 20 + 1;
            let raised = m.is_multiple_of(2);
            (
                device(&format!("cam-{n}"), DeviceType::Camera, &format!("Camera {n}"))?,
                if raised { AlertState::Raised } else { AlertState::Cleared },
                if raised { Severity::Major } else { Severity::Info },
                format!("Camera {n} {}", if raised { "offline: unreachable" } else { "back online" }),
                AlertBody::CameraOffline(CameraOfflineDetails {
                    status: if raised { "unreachable" } else { "online" }.into(),
                    reason: if raised { "connect: connection refused" } else { "back" }.into(),
                    consecutive_failures: if raised { 3 } else { 0 },
                    armed: false,
                    uncovered_zones: vec![],
                    clock_skew_ms: None,
                }),
            )
        }
        5 => (
            device("panel-1", DeviceType::AlarmPanel, "Intrusion panel")?,
            AlertState::Raised,
            Severity::Major,
            "panel-1: mains power lost".to_string(),
            AlertBody::DeviceFault(DeviceFaultDetails {
                fault: "ac-loss".into(),
                reason: "mains power lost".into(),
                dropped_events: None,
                outage_ms: None,
                waiting_events: None,
            }),
        ),
        _ => (
            device("door-1", DeviceType::AccessController, "Door controller 1")?,
            AlertState::Raised,
            Severity::Critical,
            "Main door forced open".to_string(),
            AlertBody::DoorStatus(DoorStatusDetails {
                door: id("main-door")?,
                door_name: "Main door".into(),
                door_state: DoorState::ForcedOpen,
                locked: None,
                cameras: vec![],
                follow_up_of: None,
                snapshots: vec![],
            }),
        ),
    };
    let mut a = Alert::new(branch, dev, state, severity, at, message, body);
    a.seq = Seq(seq);
    Ok(a)
}

/// One message to publish: topic and payload.
type Message = (String, Vec<u8>);

/// Every publisher's messages, serialised, in publishing order: each branch's alerts in `seq`
/// order, the branches of one publisher interleaved.
fn messages(alerts: u64) -> Result<Vec<Vec<Message>>> {
    let per_branch = alerts / BRANCHES;
    let base = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut out: Vec<Vec<Message>> = (0..PUBLISHERS).map(|_| Vec::new()).collect();
    for seq in 1..=per_branch {
        for b in 1..=BRANCHES {
            let a = alert(b, seq, base)?;
            let topic = format!("branches/{}/alerts/{}", a.branch, a.kind().as_str());
            out[((b - 1) % PUBLISHERS) as usize].push((topic, serde_json::to_vec(&a)?));
        }
    }
    Ok(out)
}

/// A connected publisher: its client and the task that polls its event loop, which ends with
/// the number of PUBACKs once it has them all.
struct Publisher {
    client: AsyncClient,
    acks: tokio::task::JoinHandle<Result<usize>>,
}

async fn connect(port: u16, name: &str, expected_acks: usize) -> Result<Publisher> {
    let (client, mut eventloop) = ClientOptions::loopback(port, name).v311_client(1000, |o| {
        o.set_inflight(100);
    });
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let acks = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut acked = 0;
        while acked < expected_acks {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => bail!("publisher connection: {e}"),
            }
        }
        Ok(acked)
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .context("the bench's publisher did not connect within 10 s")?
        .context("the bench's publisher failed to connect")?;
    Ok(Publisher { client, acks })
}

/// A running `hq listen`, its stdout and stderr in `log`.
pub struct Listener {
    proc: Proc,
    log: PathBuf,
}

impl Listener {
    /// Starts `hq listen` and returns once its log says it is subscribed.
    pub async fn start(hq: &Path, db: &str, broker_port: u16, client_id: &str, log: PathBuf) -> Result<Listener> {
        let out = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        let broker = format!("mqtt://127.0.0.1:{broker_port}");
        let child = Command::new(hq)
            .args(["listen", "--db", db, "--broker", &broker, "--share-group", "hq", "--client-id", client_id])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("spawn {}", hq.display()))?;
        let mut l = Listener { proc: Proc { child, name: "hq listen".into() }, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&l.log).unwrap_or_default().contains("subscribed") {
            l.check_alive()?;
            if Instant::now() > deadline {
                bail!("hq listen did not subscribe within 20 s:\n{}", l.log_tail(10));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(l)
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Ok(Some(st)) = self.proc.child.try_wait() {
            bail!("hq listen exited ({st}):\n{}", self.log_tail(15));
        }
        Ok(())
    }

    fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM, then up to 10 s for a clean exit (then SIGKILL on drop).
    fn stop(mut self) {
        self.proc.signal("TERM");
        let _ = self.proc.wait_exit(Duration::from_secs(10));
    }
}

/// `hq stats` of the database: (alerts, malformed).
async fn stats(hq: &Path, db: &str) -> Result<(u64, u64)> {
    let out = tokio::process::Command::new(hq)
        .args(["stats", "--db", db, "--format", "json"])
        .stdin(Stdio::null())
        .output()
        .await
        .context("run hq stats")?;
    if !out.status.success() {
        bail!("hq stats failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("hq stats printed no JSON")?;
    let n = |k: &str| v[k].as_u64().with_context(|| format!("hq stats has no {k:?}: {v}"));
    Ok((n("alerts")?, n("malformed")?))
}

/// One run into the migrated, empty database `db`: a fresh broker, two fresh listeners.
pub async fn run_once(hq: &Path, db: &str, alerts: u64, dir: &Path) -> Result<Run> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let broker = Mosquitto::start_with(BROKER_CONF).context("start mosquitto")?;
    let mut listeners = Vec::new();
    for name in ["a", "b"] {
        let log = dir.join(format!("listen-{name}.log"));
        listeners.push(Listener::start(hq, db, broker.port, &format!("hq-bench-{name}"), log).await?);
    }
    // Everything the clock should not see: payloads serialised, publishers connected.
    let batches = messages(alerts)?;
    let mut publishers = Vec::new();
    for (q, batch) in batches.iter().enumerate() {
        publishers.push(connect(broker.port, &format!("bench-branches-{q}"), batch.len()).await?);
    }
    let cpu0: Vec<Duration> = listeners.iter().map(|l| procfs::cpu_time(l.pid())).collect::<Result<_>>()?;

    let t0 = Instant::now();
    let mut sending = Vec::new();
    for (p, batch) in publishers.iter().zip(batches) {
        let client = p.client.clone();
        sending.push(tokio::spawn(async move {
            for (topic, payload) in batch {
                client.publish(topic, QoS::AtLeastOnce, false, payload).await?;
            }
            Ok::<(), rumqttc::ClientError>(())
        }));
    }
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + POLL, POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut last, mut last_change) = (0, Instant::now());
    let elapsed = loop {
        tick.tick().await;
        let (stored, malformed) = stats(hq, db).await?;
        if malformed > 0 {
            bail!("the listeners rejected {malformed} of the bench's messages as malformed; see {}", dir.display());
        }
        if stored >= alerts {
            break t0.elapsed();
        }
        if stored != last {
            (last, last_change) = (stored, Instant::now());
        } else if last_change.elapsed() > Duration::from_secs(30) {
            for l in &mut listeners {
                l.check_alive()?;
            }
            bail!(
                "no progress for 30 s at {stored} of {alerts} alerts; a listener's log ends:\n{}",
                listeners[0].log_tail(10)
            );
        }
    };
    let mut listeners_cpu = Duration::ZERO;
    let mut peak_rss = 0;
    for (l, c0) in listeners.iter().zip(cpu0) {
        listeners_cpu += procfs::cpu_time(l.pid())?.saturating_sub(c0);
        peak_rss = peak_rss.max(procfs::memory(l.pid())?.1);
    }
    for s in sending {
        s.await.context("a publishing task")?.context("publish")?;
    }
    for p in publishers {
        tokio::time::timeout(Duration::from_secs(10), p.acks)
            .await
            .context("PUBACKs missing 10 s after every alert was stored")?
            .context("a publisher task")??;
    }
    for l in listeners {
        l.stop();
    }
    drop(broker);
    Ok(Run { elapsed, listeners_cpu, peak_rss })
}
