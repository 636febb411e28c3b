//! The panel polling budget (docs/DESIGN.md, "Where performance comes from"): 100 panels
//! of about 200 points each, polled every 250 ms, must cost under 25 % of one core. This
//! measures the whole process — the simulator serving the panels included — so the
//! poller's own share is lower still. Run in release mode:
//!
//! `cargo test --release -p e2e-tests --test gateway -- panel_budget --ignored --nocapture`
//!
//! Ignored by default: a CPU figure from a debug build or a loaded CI machine means little.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use device_sim::panel::{PanelFleet, PanelSpec};
use gateway::config::{PanelConfig, PanelKind};
use gateway::pollers::panel::spawn_panel_poller;
use gateway::pollers::{Observation, PanelOutcome};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// User + system CPU time of this process, from /proc/self/stat (clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0) + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a CPU measurement: run in release mode with --ignored"]
async fn hundred_panels_of_200_points_every_250ms_under_a_quarter_core() {
    let profile = protocols::modbus::builtin("zone-status-word").unwrap();
    let points = profile.points().len();
    let specs: Vec<PanelSpec> = (0..100)
        .map(|i| PanelSpec { id: format!("p{i}"), name: format!("p{i}"), profile: profile.clone(), unit_id: 1 })
        .collect();
    let fleet = PanelFleet::start(IpAddr::from([127, 0, 0, 1]), specs).await.unwrap();
    let (tx, mut rx) = mpsc::channel(1024);
    let stop = CancellationToken::new();
    let mut handles = Vec::new();
    for info in fleet.panels() {
        let cfg = PanelConfig {
            pace: std::time::Duration::ZERO,
            id: info.id.clone(),
            name: info.id.clone(),
            kind: PanelKind::Alarm,
            address: info.addr.to_string(),
            unit_id: info.unit_id,
            profile: "zone-status-word".into(),
            poll_interval: Duration::from_millis(250),
            timeout: Duration::from_secs(1),
            maintenance: false,
        };
        handles.push(spawn_panel_poller(cfg, profile.clone(), tx.clone(), stop.clone()));
    }
    drop(tx);
    let counter = tokio::spawn(async move {
        let (mut reads, mut fails) = (0u64, 0u64);
        while let Some(Observation::Panel(p)) = rx.recv().await {
            match p.outcome {
                PanelOutcome::Read(_) => reads += 1,
                PanelOutcome::Failed { .. } => fails += 1,
            }
        }
        (reads, fails)
    });
    // Warm up (connections, first full reads), then measure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (c0, t0) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (cpu, wall) = (cpu_time() - c0, t0.elapsed());
    stop.cancel();
    for h in handles {
        let _ = h.await;
    }
    let (reads, fails) = counter.await.unwrap();
    fleet.shutdown().await;
    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    println!(
        "100 panels x {points} points every 250 ms: {:.1} % of one core (poller + simulator), {reads} reads, {fails} failures, {:.0} us CPU per panel read",
        share * 100.0,
        cpu.as_secs_f64() * 1e6 / (wall.as_secs_f64() * 400.0)
    );
    assert_eq!(fails, 0);
    assert!(share < 0.25, "{:.1} % of a core", share * 100.0);
}
