//! Scenario 2 — camera-loss detection: a simulated camera (in the bench process) goes down
//! (`CameraFault::Down`: its listeners close, connection refused) → `camera-offline` raised at
//! the bench's subscriber. Each trial takes a different camera down, so no camera is ever seen
//! flapping, and waits a random fraction of the poll interval first.
//!
//! Budget: `offline_after` × `poll_interval` + one `timeout`, read from the site file the gateway
//! runs (3 × 1 s + 500 ms). A refused connection fails at once, so `Down` should land near
//! (N − 1) intervals + the phase; `Hung` (accepts, never answers) costs the timeout on each
//! probe and is the case the "+ one timeout" is for: it is measured too.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use device_sim::camera::{CameraFault, CameraFleet};

use super::{Ctx, ms, random_pause};
use crate::gateway_proc::{CameraEntry, Gateway, Site, wait_devices};
use crate::mqtt::Subscriber;
use crate::report::{Budget, Row};
use crate::sim::{LOOPBACK, camera_specs};
use crate::stats::Summary;

const SCENARIO: &str = "2 camera loss";

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let down_trials = ctx.pick(10, 3);
    let hung_trials = ctx.pick(5, 2);
    let total = down_trials + hung_trials;
    let ids: Vec<String> = (1..=total).map(|i| format!("cam-{i:02}")).collect();
    let fleet = CameraFleet::start(LOOPBACK, camera_specs(ids.clone())).await?;
    let branch = "bench-camloss";
    let mut site = Site::new(branch);
    site.camera_poll = Duration::from_secs(1);
    site.camera_timeout = Duration::from_millis(500);
    site.offline_after = 3;
    site.online_after = 2;
    site.cameras = fleet.cameras().into_iter().map(|c| CameraEntry { id: c.id, onvif: c.device_url }).collect();
    let mut sub = Subscriber::start(ctx.broker.port, &format!("branches/{branch}/#")).await?;
    let mut gw = Gateway::spawn(&ctx.gateway_bin, &ctx.dir(branch), &site, ctx.broker.port)?;
    // The budget comes from the configuration the gateway really runs.
    let health = &gw.config.health;
    let cam = gw.config.cameras.first().context("no camera in the site file")?;
    let (n, interval, timeout) = (health.offline_after, cam.poll_interval, cam.timeout);
    let budget = ms(interval) * f64::from(n) + ms(timeout);
    wait_devices(&mut sub, &mut gw, branch, &site.device_ids(), Duration::from_secs(30)).await?;
    // Let every camera finish its first cycles (media URIs, event subscription) before faults.
    tokio::time::sleep(interval * 2).await;
    let topic = format!("branches/{branch}/alerts/camera-offline");
    let mut down = Vec::new();
    let mut hung = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let fault = if i < down_trials { CameraFault::Down } else { CameraFault::Hung };
        random_pause(interval).await;
        sub.drain();
        let t0 = Instant::now();
        fleet.set_fault(id, fault, true)?;
        let got = sub
            .wait_for(t0 + Duration::from_secs_f64(budget / 1000.0 * 4.0), |m| {
                let v = m.json();
                m.topic == topic && v["state"] == "raised" && v["device"]["id"] == id.as_str()
            })
            .await;
        let Some(m) = got else {
            gw.check_alive()?;
            bail!("{id} ({fault:?}) was not reported offline within 4× the budget; gateway log:\n{}", gw.log_tail(10));
        };
        let t = ms(m.at.duration_since(t0));
        eprintln!("  {id} {fault:?}: camera-offline after {t:.0} ms");
        if i < down_trials { down.push(t) } else { hung.push(t) }
    }
    gw.stop();
    fleet.shutdown().await;
    let why = format!("{n} × {} ms + {} ms", interval.as_millis(), timeout.as_millis());
    Ok(vec![
        Row::new(
            SCENARIO,
            "camera down → camera-offline",
            "ms",
            Summary::of(&down),
            format!("{down_trials} trials"),
            Budget::at_most(budget),
        )
        .with_note(format!("budget = offline_after × poll_interval + timeout = {why}")),
        Row::new(
            SCENARIO,
            "camera hung → camera-offline",
            "ms",
            Summary::of(&hung),
            format!("{hung_trials} trials"),
            Budget::at_most(budget),
        ),
    ])
}
