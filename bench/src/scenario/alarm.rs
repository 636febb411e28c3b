//! Scenario 1 — alarm latency: a zone register flips in a simulated alarm panel (in the bench
//! process; the gateway polls it over Modbus TCP every 250 ms, then, in a second pass, every
//! 50 ms as a vault's fast tier) → the `alarm-link` alert at the bench's own MQTT subscriber.
//! The flip is stamped right before `set_point`, the alert on receipt. Flips alternate
//! alarm/normal (both `raised` and `cleared` count) with a random pause of up to one poll
//! interval before each, so the flip falls at a random phase of the poll schedule.
//!
//! Budget: p99 ≤ poll interval + 15 ms. What is left after the poll interval is the pipeline's
//! own path: Modbus read, decode, engine, sled group commit (fsync), PUBLISH, broker fan-out.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use device_sim::panel::PanelFleet;

use super::{Ctx, ms, random_pause};
use crate::gateway_proc::{Gateway, PanelEntry, Site, wait_devices};
use crate::mqtt::Subscriber;
use crate::report::{Budget, Row};
use crate::sim::{LOOPBACK, panel_specs};
use crate::stats::{Summary, percentile};

const SCENARIO: &str = "1 alarm latency";
/// The panel's poll intervals measured: the usual one, and the fast tier of a vault's contacts.
const POLLS: [Duration; 2] = [Duration::from_millis(250), Duration::from_millis(50)];
const ALERT_TIMEOUT: Duration = Duration::from_secs(5);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let fleet = PanelFleet::start(LOOPBACK, panel_specs(["alarm-1".to_string()], "generic-alarm")?).await?;
    // `--stress`: the whole scenario beside a CPU and disk load (stopped when `load` drops).
    let load = match ctx.stress {
        Some(_) => Some(crate::stress::Load::start(&ctx.self_bin, &ctx.dir("stress"))?),
        None => None,
    };
    // `--stress-nice N`: the gateway at another priority than the load's (a negative nice needs
    // root; without it, nice 0, and the rows say so).
    let nice = match ctx.stress {
        Some(n) if n >= 0 || is_root() => n,
        _ => 0,
    };
    let tag = match (load.is_some(), nice) {
        (false, _) => String::new(),
        (true, 0) => ", under --stress".to_string(),
        (true, n) => format!(", under --stress, gateway at nice {n}"),
    };
    let stressed = load.as_ref().map(|l| l.description.clone());
    let mut rows = Vec::new();
    for poll in POLLS {
        match measure(ctx, &fleet, poll, nice, &tag, stressed.as_deref()).await {
            Ok(r) => rows.extend(r),
            Err(e) => {
                fleet.shutdown().await;
                return Err(e);
            }
        }
    }
    fleet.shutdown().await;
    drop(load);
    Ok(rows)
}

/// Scenario 1 at one poll interval.
async fn measure(
    ctx: &Ctx,
    fleet: &PanelFleet,
    poll: Duration,
    nice: i32,
    tag: &str,
    stressed: Option<&str>,
) -> Result<Vec<Row>> {
    let runs = ctx.pick(3, 1);
    let alarms = ctx.pick(200, 60);
    let addr = fleet.addr("alarm-1").map(|a| a.to_string()).unwrap_or_default();
    let (mut p50, mut p99, mut worst, mut missing, mut all) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut poll_share, mut after_read, mut after_detect): (Vec<f64>, Vec<f64>, Vec<f64>) = (vec![], vec![], vec![]);
    let poll_ms = poll.as_millis();
    for run in 0..runs {
        let branch = format!("bench-alarm-{poll_ms}-{run}");
        let mut site = Site::new(&branch);
        site.panel_poll = poll;
        site.panels.push(PanelEntry {
            id: "alarm-1".into(),
            address: addr.clone(),
            kind: "alarm",
            profile: "generic-alarm".into(),
        });
        site.alarm_zones.push(("z1".into(), "alarm-1".into(), "zone.1".into()));
        fleet.set_point("alarm-1", "zone.1", "normal")?;
        let mut sub = Subscriber::start(ctx.broker.port, &format!("branches/{branch}/#")).await?;
        let mut gw = Gateway::spawn_nice(&ctx.gateway_bin, &ctx.dir(&branch), &site, ctx.broker.port, nice)?;
        wait_devices(&mut sub, &mut gw, &branch, &site.device_ids(), Duration::from_secs(30)).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let topic = format!("branches/{branch}/alerts/alarm-link");
        let mut lat = Vec::with_capacity(alarms);
        let mut lost = 0u32;
        for i in 0..alarms {
            let (state, expect) = if i % 2 == 0 { ("alarm", "raised") } else { ("normal", "cleared") };
            random_pause(poll).await;
            sub.drain();
            let (t0, wall0) = (Instant::now(), SystemTime::now());
            fleet.set_point("alarm-1", "zone.1", state)?;
            let got = sub.wait_for(t0 + ALERT_TIMEOUT, |m| m.topic == topic && m.json()["state"] == expect).await;
            match got {
                Some(m) => {
                    let total = ms(m.at.duration_since(t0));
                    lat.push(total);
                    // The alert's own timestamps (wall clock, ms) split the path: `occurred_at`
                    // is stamped when the poll's read completed, so flip → occurred_at is the
                    // wait for the next poll plus one Modbus round trip; the rest is the
                    // pipeline after the read (engine, sled group commit, PUBLISH, broker).
                    let v = m.json();
                    if let (Some(read), Some(detected)) = (wall_ms(&v["occurred_at"]), wall_ms(&v["detected_at"])) {
                        let flip = wall0.duration_since(UNIX_EPOCH).map(ms).unwrap_or(f64::NAN);
                        let to_read = (read - flip).max(0.0);
                        let to_detect = (detected - flip).max(to_read);
                        poll_share.push(to_read);
                        after_read.push((total - to_read).max(0.0));
                        after_detect.push((total - to_detect).max(0.0));
                    }
                }
                None => {
                    gw.check_alive()?;
                    lost += 1;
                    if lost > 5 {
                        bail!(
                            "more than 5 alarm flips got no alarm-link alert within {ALERT_TIMEOUT:?}; gateway log:\n{}",
                            gw.log_tail(10)
                        );
                    }
                }
            }
        }
        gw.stop();
        eprintln!(
            "  {poll_ms} ms poll, run {}: {} alarms, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {lost} missing",
            run + 1,
            lat.len(),
            percentile(&lat, 50.0).unwrap_or(f64::NAN),
            percentile(&lat, 99.0).unwrap_or(f64::NAN),
            percentile(&lat, 100.0).unwrap_or(f64::NAN)
        );
        p50.extend(percentile(&lat, 50.0));
        p99.extend(percentile(&lat, 99.0));
        worst.extend(percentile(&lat, 100.0));
        missing.push(f64::from(lost));
        all.extend(lat);
    }
    let over = format!("{runs} run(s) × {alarms} alarms");
    let budget = ms(poll) + 15.0;
    let pooled = format!(
        "pooled over all {} alarms: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        all.len(),
        percentile(&all, 50.0).unwrap_or(f64::NAN),
        percentile(&all, 90.0).unwrap_or(f64::NAN),
        percentile(&all, 99.0).unwrap_or(f64::NAN),
        percentile(&all, 100.0).unwrap_or(f64::NAN)
    );
    Ok(vec![
        Row::new(SCENARIO, &format!("p50 flip → alert ({poll_ms} ms poll){tag}"), "ms", Summary::of(&p50), &over, None),
        Row::new(
            SCENARIO,
            &format!("p99 flip → alert ({poll_ms} ms poll){tag}"),
            "ms",
            Summary::of(&p99),
            &over,
            Budget::at_most(budget),
        )
        .with_note(match stressed {
            Some(load) => format!("{pooled}; load: {load}"),
            None => pooled,
        }),
        Row::new(
            SCENARIO,
            &format!("max flip → alert ({poll_ms} ms poll){tag}"),
            "ms",
            Summary::of(&worst),
            &over,
            None,
        ),
        Row::new(
            SCENARIO,
            &format!("flip → poll read (p50) ({poll_ms} ms poll)"),
            "ms",
            Summary::of(&[percentile(&poll_share, 50.0).unwrap_or(f64::NAN)]),
            "pooled",
            None,
        )
        .with_note("from the alert's occurred_at (stamped when the read completed); 1 ms resolution"),
        Row::new(
            SCENARIO,
            &format!("read → alert at subscriber (p50) ({poll_ms} ms poll)"),
            "ms",
            Summary::of(&[percentile(&after_read, 50.0).unwrap_or(f64::NAN)]),
            "pooled",
            None,
        ),
        Row::new(
            SCENARIO,
            &format!("read → alert at subscriber (p99) ({poll_ms} ms poll)"),
            "ms",
            Summary::of(&[percentile(&after_read, 99.0).unwrap_or(f64::NAN)]),
            "pooled",
            None,
        ),
        Row::new(
            SCENARIO,
            &format!("alert created → at subscriber (p99) ({poll_ms} ms poll)"),
            "ms",
            Summary::of(&[percentile(&after_detect, 99.0).unwrap_or(f64::NAN)]),
            "pooled",
            None,
        )
        .with_note("from the alert's detected_at: sled append + group commit (fsync), PUBLISH, mosquitto"),
        Row::new(
            SCENARIO,
            &format!("flips with no alert in 5 s ({poll_ms} ms poll)"),
            "",
            Summary::of(&missing),
            &over,
            Budget::at_most(0.0),
        ),
    ])
}

/// An RFC 3339 timestamp as milliseconds since the Unix epoch.
fn wall_ms(v: &serde_json::Value) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(v.as_str()?).ok()?;
    Some(t.timestamp_millis() as f64)
}
