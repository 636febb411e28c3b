//! Scenario 3 — scale: a thousand cameras probed every 10 s, and a hundred panels of ~200
//! points (`zone-status-word`) read every 250 ms, served by a simulator in its own process
//! (`bsg-bench sim-serve`). The gateway's CPU (utime + stime, as a share of one core) and
//! resident memory are read from `/proc` over consecutive windows of a steady period, after
//! every device has been seen once and a warm-up.
//!
//! Budgets: cameras alone < 10 % of one core and < 64 MiB RSS; panels alone < 25 % of one
//! core. Measured separately (and combined, for information). Each camera window is one whole
//! poll period, so every window holds exactly one probe of every camera.
//!
//! The cameras run twice: with the simulator's own picture (a 640×360 scene, about 47 KB), and
//! padded to a realistic size ([`REALISTIC_PICTURE`] bytes of JPEG, as a 1080p camera sends)
//! under the same budgets — once
//! with the gateway's default snapshot check (every `frozen_check_every`th probe) and, in the
//! full run, once fetching the picture on every probe (`frozen_check_every = 1`).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;

use super::Ctx;
use crate::gateway_proc::{Gateway, Site, wait_devices};
use crate::mqtt::Subscriber;
use crate::procfs;
use crate::report::{Budget, Row};
use crate::sim::SimProc;
use crate::stats::Summary;

const SCENARIO: &str = "3 scale";
const MIB: f64 = 1024.0 * 1024.0;
/// A realistic snapshot: a 1080p JPEG is 200–700 KB.
const REALISTIC_PICTURE: usize = 600_000;

#[derive(Clone)]
struct Load {
    name: &'static str,
    label: String,
    cameras: usize,
    panels: usize,
    window: Duration,
    windows: usize,
    cpu_budget: Option<f64>,
    rss_budget: Option<f64>,
    /// Snapshot size (0: the simulator's picture as encoded, about 47 KB).
    picture_bytes: usize,
    /// The simulator's picture size (640×360 by default; 1920×1080: a 1080p camera's).
    picture_size: (u16, u16),
    frozen_check_every: Option<u32>,
    /// `[health.picture] checks`; `None`: the default (on).
    picture_checks: Option<bool>,
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let cameras = 1000;
    let panels = 100;
    // The camera fleet; its variants differ only in the picture and the frozen-check cadence.
    let fleet = Load {
        name: "cameras",
        label: format!("{cameras} cameras / 10 s"),
        cameras,
        panels: 0,
        window: Duration::from_secs(10),
        windows: ctx.pick(6, 2),
        cpu_budget: Some(10.0),
        rss_budget: Some(64.0),
        picture_bytes: 0,
        picture_size: device_sim::camera::DEFAULT_PICTURE_SIZE,
        frozen_check_every: None,
        picture_checks: None,
    };
    // 1080p scenes (about 310 KB, as a 1080p camera sends), every sixth one checked; and the
    // same without the picture checks: the difference is what the checks cost at this scale.
    let hd = Load {
        name: "cameras-1080p",
        label: format!("{cameras} cameras / 10 s, 1080p pictures"),
        picture_size: (1920, 1080),
        cpu_budget: None,
        ..fleet.clone()
    };
    let hd_unchecked = Load {
        name: "cameras-1080p-unchecked",
        label: format!("{cameras} cameras / 10 s, 1080p pictures, picture checks off"),
        picture_checks: Some(false),
        ..hd.clone()
    };
    let realistic = Load {
        name: "cameras-600k",
        label: format!("{cameras} cameras / 10 s, 600 KB pictures"),
        picture_bytes: REALISTIC_PICTURE,
        ..fleet.clone()
    };
    let mut loads = vec![
        fleet,
        realistic.clone(),
        hd,
        hd_unchecked,
        Load {
            name: "panels",
            label: format!("{panels} panels × 200 pts / 250 ms"),
            cameras: 0,
            panels,
            window: Duration::from_secs(5),
            windows: ctx.pick(12, 3),
            cpu_budget: Some(25.0),
            rss_budget: None,
            picture_bytes: 0,
            picture_size: device_sim::camera::DEFAULT_PICTURE_SIZE,
            frozen_check_every: None,
            picture_checks: None,
        },
    ];
    if !ctx.quick {
        loads.insert(
            2,
            Load {
                name: "cameras-600k-every",
                label: format!("{cameras} cameras / 10 s, 600 KB pictures, frozen_check_every = 1"),
                windows: 6,
                frozen_check_every: Some(1),
                ..realistic
            },
        );
        loads.push(Load {
            name: "combined",
            label: "cameras + panels".into(),
            cameras,
            panels,
            window: Duration::from_secs(10),
            windows: 6,
            cpu_budget: None,
            rss_budget: None,
            picture_bytes: 0,
            picture_size: device_sim::camera::DEFAULT_PICTURE_SIZE,
            frozen_check_every: None,
            picture_checks: None,
        });
    }
    let mut rows = Vec::new();
    for load in &loads {
        rows.extend(measure(ctx, load).await?);
    }
    Ok(rows)
}

async fn measure(ctx: &Ctx, load: &Load) -> Result<Vec<Row>> {
    eprintln!("  {}: starting the simulator", load.label);
    let sim = SimProc::spawn(
        &ctx.self_bin,
        load.cameras,
        load.panels,
        "zone-status-word",
        load.picture_bytes,
        load.picture_size,
    )?;
    let branch = format!("bench-scale-{}", load.name);
    let mut site = Site::new(&branch);
    site.frozen_check_every = load.frozen_check_every;
    site.picture_checks = load.picture_checks;
    site.cameras = sim.cameras.clone();
    site.panels = sim.panels.clone();
    let mut sub = Subscriber::start(ctx.broker.port, &format!("branches/{branch}/#")).await?;
    let mut gw = Gateway::spawn(&ctx.gateway_bin, &ctx.dir(&branch), &site, ctx.broker.port)?;
    let ids = site.device_ids();
    let seen = wait_devices(&mut sub, &mut gw, &branch, &ids, Duration::from_secs(120)).await?;
    let cold = seen.devices.values().map(|(at, _)| at.duration_since(gw.started)).max().unwrap_or_default();
    eprintln!("  {}: every device seen after {:.1} s; warming up", load.label, cold.as_secs_f64());
    // One whole camera period after the first probes (media URIs and event subscriptions are
    // set up in the first cycle); panels settle at once.
    let warm = if load.cameras > 0 { site.camera_poll } else { Duration::from_secs(2) };
    tokio::time::sleep(warm).await;
    gw.check_alive()?;
    let hwm_reset = procfs::reset_peak(gw.pid());
    sub.drain();
    let sim_cpu0 = procfs::cpu_time(sim.pid())?;
    let mut cpu = Vec::new();
    let mut rss_max = 0u64;
    let mut hwm = 0u64;
    let mut cpu_s = 0.0;
    let mut wall_s = 0.0;
    for _ in 0..load.windows {
        let w = procfs::measure(gw.pid(), load.window, Duration::from_millis(500)).await?;
        cpu.push(w.cpu_percent());
        rss_max = rss_max.max(w.rss_max);
        hwm = w.hwm;
        cpu_s += w.cpu.as_secs_f64();
        wall_s += w.wall.as_secs_f64();
    }
    let sim_cpu = (procfs::cpu_time(sim.pid())?.saturating_sub(sim_cpu0)).as_secs_f64() / wall_s.max(1e-9) * 100.0;
    // What head office saw during the steady period: a gateway that cannot keep up shows as
    // devices reported offline, which would make the CPU figure meaningless.
    let mut offline_alerts = 0usize;
    let mut last_state: HashMap<String, String> = seen.devices.into_iter().map(|(k, (_, s))| (k, s)).collect();
    let dev_prefix = format!("branches/{branch}/devices/");
    while let Some(m) = sub.try_next() {
        let v = m.json();
        if m.topic.contains("/alerts/") && v["state"] == "raised" {
            offline_alerts += 1;
        }
        if let Some(id) = m.topic.strip_prefix(&dev_prefix) {
            last_state.insert(id.to_string(), v["state"].as_str().unwrap_or("?").to_string());
        }
    }
    let not_online = last_state.values().filter(|s| s.as_str() != "online").count();
    gw.stop();
    drop(sim);

    let over = format!("{} windows of {} s", load.windows, load.window.as_secs());
    let per_unit = if load.cameras > 0 && load.panels == 0 {
        let probes = load.cameras as f64 * wall_s / site.camera_poll.as_secs_f64();
        Some(("CPU per camera probe", cpu_s * 1e6 / probes.max(1.0)))
    } else if load.panels > 0 && load.cameras == 0 {
        let reads = load.panels as f64 * wall_s / site.panel_poll.as_secs_f64();
        Some(("CPU per panel poll (~200 pts)", cpu_s * 1e6 / reads.max(1.0)))
    } else {
        None
    };
    let health_note = format!(
        "simulator process {sim_cpu:.1} % of a core; {offline_alerts} alert(s) raised during the window; {not_online} of {} device(s) not online at the end",
        ids.len()
    );
    let mut rows = vec![
        Row::new(
            SCENARIO,
            &format!("gateway CPU, {}", load.label),
            "% core",
            Summary::of(&cpu),
            &over,
            load.cpu_budget.and_then(Budget::below),
        )
        .with_note(health_note),
        Row::new(
            SCENARIO,
            &format!("gateway peak RSS, {}", load.label),
            "MiB",
            Summary::of(&[hwm.max(rss_max) as f64 / MIB]),
            if hwm_reset { "steady period (VmHWM reset)" } else { "whole life (VmHWM)" },
            load.rss_budget.and_then(Budget::below),
        ),
        Row::new(
            SCENARIO,
            &format!("cold start to every device seen, {}", load.label),
            "s",
            Summary::of(&[cold.as_secs_f64()]),
            "1 run",
            None,
        ),
    ];
    if let Some((what, us)) = per_unit {
        rows.push(Row::new(SCENARIO, &format!("{what}, {}", load.label), "µs", Summary::of(&[us]), &over, None));
    }
    Ok(rows)
}
