//! Scenario 8 — picture checks: the CPU one check of a snapshot costs (the gateway's
//! `picture::luma_stats`, then the judge), measured on this thread's CPU clock over many runs,
//! on a real 1080p photograph with sensor noise (`gateway/tests/pictures`, 250 KB, the size of
//! a 1080p camera snapshot) and on the simulator's scenes at 1080p and 640×360. For reference
//! the same 1080p picture through jpeg-decoder with its 1/8 DCT scaling, the cheapest way a
//! general decoder offers, in the same run. From the per-check cost: what 1,000 cameras add
//! when each is checked once a minute (the default `frozen_check_every` at 10 s). And the
//! false-alarm run: one judge learns the simulator's noisy normal scene and judges thousands of
//! distinct pictures of it (fresh noise each); any verdict but good is a false alarm.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use device_sim::camera::picture::{Scene, fresh_frames, scene_frame};
use gateway::picture::{Judge, PictureSettings, Verdict, luma_stats};

use super::Ctx;
use crate::report::{Budget, Row};
use crate::stats::Summary;

const SCENARIO: &str = "8 picture checks";

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}

/// Milliseconds of CPU per call of `f`, one figure per batch.
fn per_call(batches: usize, calls: usize, mut f: impl FnMut()) -> Vec<f64> {
    f(); // warm
    (0..batches)
        .map(|_| {
            let t0 = thread_cpu();
            for _ in 0..calls {
                f();
            }
            (thread_cpu() - t0).as_secs_f64() * 1000.0 / calls as f64
        })
        .collect()
}

fn check(judge: &mut Judge, pic: &[u8]) {
    if let Ok(stats) = luma_stats(pic) {
        std::hint::black_box(judge.judge(&stats, 12 * 60));
    }
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let (batches, calls) = ctx.pick((7, 200), (3, 60));
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/tests/pictures");
    let real = std::fs::read(fixtures.join("normal-coffee-1080p.jpg")).context("the 1080p test picture")?;
    let sim_1080 = scene_frame(Scene::Normal, 1920, 1080, 0);
    let sim_360 = scene_frame(Scene::Normal, 640, 360, 0);
    for (name, pic) in [("real 1080p", &real), ("sim 1080p", &sim_1080), ("sim 360p", &sim_360)] {
        luma_stats(pic).with_context(|| format!("the {name} picture does not read"))?;
    }
    let measured = tokio::task::spawn_blocking(move || {
        let mut judge = Judge::new(PictureSettings::default());
        let ours_real = per_call(batches, calls, || check(&mut judge, &real));
        let ours_1080 = per_call(batches, calls, || check(&mut judge, &sim_1080));
        let ours_360 = per_call(batches, calls, || check(&mut judge, &sim_360));
        let general = per_call(batches, calls / 2, || {
            let mut d = jpeg_decoder::Decoder::new(&real[..]);
            if d.read_info().is_ok() && d.scale(160, 90).is_ok() {
                std::hint::black_box(d.decode().ok());
            }
        });
        (ours_real, ours_1080, ours_360, general, real.len(), sim_1080.len(), sim_360.len())
    })
    .await?;
    let (ours_real, ours_1080, ours_360, general, real_len, len_1080, len_360) = measured;
    let pictures = ctx.pick(5000, 500);
    let (judged, false_alarms) = tokio::task::spawn_blocking(move || {
        let mut judge = Judge::new(PictureSettings::default());
        let (mut judged, mut bad) = (0u64, 0u64);
        fresh_frames(Scene::Normal, 640, 360, pictures, |jpeg| {
            if let Ok(stats) = luma_stats(jpeg) {
                judged += 1;
                bad += u64::from(judge.judge(&stats, 12 * 60).0 != Verdict::Good);
            }
        });
        (judged, bad)
    })
    .await?;
    eprintln!("  false alarms: {false_alarms} in {judged} pictures");
    // With none seen in n pictures, the rate is below 3/n at 95 % confidence (the rule of three).
    let bound = if false_alarms == 0 && judged > 0 {
        format!("; below {:.2} % at 95 % confidence", 300.0 / judged as f64)
    } else {
        String::new()
    };
    let over = format!("{batches} × {calls} checks");
    let s_real = Summary::of(&ours_real);
    let ratio = match (Summary::of(&general), s_real) {
        (Some(g), Some(o)) if o.median > 0.0 => {
            format!("{:.1}× less CPU than jpeg-decoder's 1/8 scaling", g.median / o.median)
        }
        _ => String::new(),
    };
    // 1,000 cameras, one check a minute each: the share of one core.
    let fleet: Vec<f64> = ours_real.iter().map(|ms| ms * 1000.0 / 60.0 / 1000.0 * 100.0).collect();
    Ok(vec![
        Row::new(
            SCENARIO,
            &format!("one check, real 1080p photo ({} KB)", real_len / 1024),
            "ms CPU",
            s_real,
            &over,
            Budget::at_most(3.0),
        )
        .with_note(ratio),
        Row::new(
            SCENARIO,
            &format!("one check, simulator's 1080p scene ({} KB)", len_1080 / 1024),
            "ms CPU",
            Summary::of(&ours_1080),
            &over,
            Budget::at_most(3.0),
        ),
        Row::new(
            SCENARIO,
            &format!("one check, simulator's 640×360 scene ({} KB)", len_360 / 1024),
            "ms CPU",
            Summary::of(&ours_360),
            &over,
            None,
        ),
        Row::new(
            SCENARIO,
            "reference: jpeg-decoder, 1/8 DCT scaling, real 1080p",
            "ms CPU",
            Summary::of(&general),
            format!("{batches} × {} decodes", calls / 2),
            None,
        ),
        Row::new(
            SCENARIO,
            "1,000 cameras × 1 real 1080p check a minute",
            "% of a core",
            Summary::of(&fleet),
            "from the per-check CPU",
            Budget::at_most(1.0),
        )
        .with_note("per-check CPU × 1,000 / 60 s"),
        Row::new(
            SCENARIO,
            "false alarms, simulator's noisy normal scene",
            "pictures",
            Summary::of(&[false_alarms as f64]),
            format!("{judged} distinct pictures"),
            Budget::at_most(0.0),
        )
        .with_note(format!("{false_alarms} of {judged}{bound}")),
    ])
}
