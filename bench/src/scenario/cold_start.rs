//! Scenario 5 — cold start: `branch-gateway run` spawned → the first completed poll of every
//! device, observed at head office as the first retained `devices/{id}` health of each (the
//! engine publishes one as soon as a device's first poll is in). That is the figure an
//! installer feels after a reboot, and it includes everything on the way: exec, config load,
//! sled open, MQTT connect, first probes, the first publishes. A typical branch: 8 cameras
//! (10 s period), an alarm panel and a door controller (250 ms), simulated in the bench
//! process; a fresh outbox and a fresh branch id every run, so no retained message of an
//! earlier run can be mistaken for this one's.

use std::time::Duration;

use anyhow::Result;
use device_sim::camera::CameraFleet;
use device_sim::panel::PanelFleet;

use super::{Ctx, ms};
use crate::gateway_proc::{CameraEntry, Gateway, PanelEntry, Site, wait_devices};
use crate::mqtt::Subscriber;
use crate::report::Row;
use crate::sim::{LOOPBACK, camera_specs, panel_specs};
use crate::stats::Summary;

const SCENARIO: &str = "5 cold start";

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let runs = ctx.pick(5, 2);
    let cams = CameraFleet::start(LOOPBACK, camera_specs((1..=8).map(|i| format!("cam-{i:02}")))).await?;
    let mut specs = panel_specs(["alarm-1".to_string()], "generic-alarm")?;
    specs.extend(panel_specs(["access-1".to_string()], "generic-access")?);
    let panels = PanelFleet::start(LOOPBACK, specs).await?;
    let mut online = Vec::new();
    let mut all_seen = Vec::new();
    for run in 0..runs {
        let branch = format!("bench-cold-{run}");
        let mut site = Site::new(&branch);
        site.cameras = cams.cameras().into_iter().map(|c| CameraEntry { id: c.id, onvif: c.device_url }).collect();
        for (p, kind, profile) in [("alarm-1", "alarm", "generic-alarm"), ("access-1", "access", "generic-access")] {
            let address = panels.addr(p).map(|a| a.to_string()).unwrap_or_default();
            site.panels.push(PanelEntry { id: p.into(), address, kind, profile: profile.into() });
        }
        let mut sub = Subscriber::start(ctx.broker.port, &format!("branches/{branch}/#")).await?;
        let mut gw = Gateway::spawn(&ctx.gateway_bin, &ctx.dir(&branch), &site, ctx.broker.port)?;
        let seen = wait_devices(&mut sub, &mut gw, &branch, &site.device_ids(), Duration::from_secs(30)).await?;
        let last = seen.devices.values().map(|(at, _)| at.duration_since(gw.started)).max().unwrap_or_default();
        let connected = seen.online.map(|at| at.duration_since(gw.started));
        gw.stop();
        eprintln!(
            "  run {}: online at {} ms, every device at {:.0} ms",
            run + 1,
            connected.map(|c| format!("{:.0}", ms(c))).unwrap_or_else(|| "?".into()),
            ms(last)
        );
        online.extend(connected.map(ms));
        all_seen.push(ms(last));
    }
    cams.shutdown().await;
    panels.shutdown().await;
    let over = format!("{runs} runs");
    Ok(vec![
        Row::new(SCENARIO, "spawn → gateway `online` at HQ", "ms", Summary::of(&online), &over, None),
        Row::new(
            SCENARIO,
            "spawn → every device's health at HQ (8 cams, 2 panels)",
            "ms",
            Summary::of(&all_seen),
            &over,
            None,
        )
        .with_note("observed as the first retained devices/{id} of each device at the bench's subscriber"),
    ])
}
