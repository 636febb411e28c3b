//! Test peer for the end-to-end tests (`tests/tests/uplink_*.rs`): a process that owns an
//! outbox and an uplink, appends a burst of alerts at a given rate and delivers them — so a test
//! can SIGKILL it at random moments and restart it on the same outbox directory.
//!
//! It appends until `last_seq` reaches `--total` (so a restarted process continues where the
//! killed one stopped: seq is never reused), then, with `--exit-when-delivered`, waits until
//! the outbox is empty and shuts down cleanly. SIGTERM/SIGINT also shut down cleanly (drain,
//! retained `offline`, DISCONNECT). Every `--priority-every`-th event is an alarm (priority).
//!
//! ```text
//! outbox_burst --dir D --port P --total 10000 --rate 2000 [--host H] [--branch b01]
//!              [--client-id ID] [--username U --password-env VAR] [--ca F [--cert F --key F]]
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use gateway::events::{EventSink, GatewayEvent};
use gateway::health::{GatewayFaults, gateway_device};
use gateway::messages::Lang;
use gateway::mqtt::MqttVersion;
use gateway::outbox::{Outbox, OutboxBounds};
use gateway::uplink::{self, TlsFiles, UplinkSettings};
use protocols::{
    AlarmLinkDetails, Alert, AlertBody, AlertState, BranchId, CameraOfflineDetails, DeviceRef, DeviceType, Severity,
    Topics,
};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long)]
    port: u16,
    #[arg(long, default_value = "b01")]
    branch: String,
    #[arg(long, default_value = "branches")]
    prefix: String,
    #[arg(long)]
    client_id: Option<String>,
    /// Append until the outbox's last seq reaches this.
    #[arg(long, default_value_t = 1000)]
    total: u64,
    /// Events per second (0: as fast as possible).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Concurrent appends (group commit shares one flush among them).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 0)]
    priority_every: u64,
    #[arg(long, default_value_t = 1_000_000)]
    max_events: u64,
    #[arg(long, default_value_t = 1 << 30)]
    max_bytes: u64,
    #[arg(long)]
    exit_when_delivered: bool,
    #[arg(long)]
    username: Option<String>,
    /// Name of the environment variable holding the password (never on the command line).
    #[arg(long)]
    password_env: Option<String>,
    #[arg(long)]
    ca: Option<PathBuf>,
    #[arg(long)]
    cert: Option<PathBuf>,
    #[arg(long)]
    key: Option<PathBuf>,
    #[arg(long, default_value_t = 30)]
    keep_alive_secs: u64,
    #[arg(long, default_value_t = 30_000)]
    link_down_after_ms: u64,
    /// MQTT protocol version: 5 or 3.1.1.
    #[arg(long, default_value = "5", value_parser = parse_version)]
    mqtt_version: MqttVersion,
}

fn parse_version(s: &str) -> Result<MqttVersion, String> {
    match s {
        "5" => Ok(MqttVersion::V5),
        "3.1.1" => Ok(MqttVersion::V311),
        _ => Err("expected 5 or 3.1.1".into()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,rumqttc=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let branch: BranchId = a.branch.parse().context("branch id")?;
    let topics = Topics::new(&a.prefix, branch.clone()).context("topic prefix")?;
    let outbox = Outbox::open(&a.dir, OutboxBounds { max_events: a.max_events, max_bytes: a.max_bytes })?;

    let mut s = UplinkSettings::new(
        a.host.clone(),
        a.port,
        a.client_id.clone().unwrap_or_else(|| format!("branch-gateway-{branch}")),
        topics,
    );
    s.username = a.username.clone();
    s.password = match &a.password_env {
        Some(v) => Some(std::env::var(v).with_context(|| format!("${v}"))?),
        None => None,
    };
    s.keep_alive = Duration::from_secs(a.keep_alive_secs);
    s.tls = a.ca.clone().map(|ca| TlsFiles {
        ca_file: ca,
        client_cert_file: a.cert.clone(),
        client_key_file: a.key.clone(),
    });
    s.tuning.link_down_alert_after = Duration::from_millis(a.link_down_after_ms);
    s.version = a.mqtt_version;
    let stats = s.stats.clone();
    // The gateway's own faults (link down, refused, dropped), made as the engine makes them.
    let (sink, events) = EventSink::channel();
    s.events = sink.clone();
    let faults = GatewayFaults::new(branch.clone(), gateway_device("Burst gateway"), Lang::En);
    tokio::spawn(gateway::app::run_gateway_faults(faults, events, outbox.clone()));

    let shutdown = CancellationToken::new();
    let (_retained_tx, retained_rx) = tokio::sync::mpsc::channel(16);
    let up = tokio::spawn(uplink::run(s, outbox.clone(), retained_rx, shutdown.clone()));

    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return,
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            shutdown.cancel();
        });
    }

    let start_seq = outbox.last_seq().0;
    tracing::info!(start_seq, total = a.total, "burst starting");
    let sem = Arc::new(tokio::sync::Semaphore::new(a.concurrency.max(1)));
    let t0 = tokio::time::Instant::now();
    let mut i = 0u64;
    let to_append = a.total.saturating_sub(start_seq);
    while i < to_append && !shutdown.is_cancelled() {
        if a.rate > 0 {
            tokio::time::sleep_until(t0 + Duration::from_secs_f64(i as f64 / a.rate as f64)).await;
        }
        let permit = sem.clone().acquire_owned().await?;
        let (ob, sink) = (outbox.clone(), sink.clone());
        let alert = burst_alert(&branch, start_seq + i + 1, a.priority_every);
        tokio::spawn(async move {
            match ob.append(alert).await {
                Ok(ap) if ap.evicted > 0 => sink.emit(GatewayEvent::EventsDropped { count: ap.evicted }),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "append failed"),
            }
            drop(permit);
        });
        i += 1;
    }
    // Wait for the in-flight appends.
    let _all = sem.acquire_many(a.concurrency.max(1) as u32).await?;
    tracing::info!(last_seq = outbox.last_seq().0, "burst appended");

    if a.exit_when_delivered {
        while outbox.depth() > 0 && !shutdown.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(acked = stats.acked.load(std::sync::atomic::Ordering::Relaxed), "all delivered");
        shutdown.cancel();
    }
    up.await??;
    Ok(())
}

/// The n-th event of the burst (n is the seq it is expected to get; the message says so, so a
/// test can tell a reused seq from a duplicate).
fn burst_alert(branch: &BranchId, n: u64, priority_every: u64) -> Alert {
    let prio = priority_every > 0 && n.is_multiple_of(priority_every);
    let (dt, name, sev, body) = if prio {
        (
            DeviceType::AlarmPanel,
            "panel-1",
            Severity::Critical,
            AlertBody::AlarmLink(AlarmLinkDetails {
                follow_up_of: None,
                snapshots: Vec::new(),
                zone: "vault".parse().unwrap_or_else(|_| unreachable!()),
                zone_name: "Vault".into(),
                zone_state: "alarm".into(),
                partition: None,
                armed: true,
                twenty_four_hour: false,
                area: None,
                cameras: vec![],
            }),
        )
    } else {
        (
            DeviceType::Camera,
            "cam-01",
            Severity::Warning,
            AlertBody::CameraOffline(CameraOfflineDetails {
                status: "unreachable".into(),
                reason: "connect: connection refused".into(),
                consecutive_failures: 3,
                armed: false,
                uncovered_zones: vec![],
                clock_skew_ms: None,
            }),
        )
    };
    let device = DeviceRef {
        id: name.parse().unwrap_or_else(|_| unreachable!()),
        device_type: dt,
        name: name.into(),
        zones: vec![],
    };
    Alert::new(
        branch.clone(),
        device,
        AlertState::Raised,
        sev,
        protocols::time::now(),
        format!("burst event {n}"),
        body,
    )
}
