//! Scenario 4 — the outbox: durable enqueue rate with group commit, replay rate to a local
//! mosquitto after an outage, and disk use at a million buffered events, each in a fresh
//! `bsg-bench outbox-worker` process over the gateway library's own `Outbox` and uplink.
//!
//! Budgets: enqueue ≥ 50,000 events/s with 256 appenders (group commit; 20,000 until the
//! compact outbox of issue 15), replay ≥ 10,000 events/s, at most 300 bytes of outbox directory
//! per buffered event (issue 15; 1,026 before it), and the directory within the configured
//! bound (`storage.max_bytes`, default 1 GiB) at 1,000,000 events (the default `max_events`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::Ctx;
use crate::report::{Budget, Row};
use crate::stats::Summary;

const SCENARIO: &str = "4 outbox";
const MIB: f64 = 1024.0 * 1024.0;

/// Runs one worker and returns the JSON it printed.
fn worker(self_bin: &Path, task: &str, dir: &Path, events: u64, port: Option<u16>) -> Result<serde_json::Value> {
    let mut cmd = Command::new(self_bin);
    cmd.args(["outbox-worker", "--task", task, "--events", &events.to_string(), "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = port {
        cmd.args(["--port", &p.to_string()]);
    }
    let mut child = harness::Proc { child: cmd.spawn().context("spawn outbox-worker")?, name: "outbox-worker".into() };
    // Bounded: the largest task (a million events) takes about a minute here.
    let Some(code) = child.wait_exit(Duration::from_secs(600)) else {
        bail!("outbox-worker --task {task} did not finish within 600 s");
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.child.stdout.take() {
        std::io::Read::read_to_string(&mut o, &mut out).context("read outbox-worker output")?;
    }
    if let Some(mut e) = child.child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    if code != 0 {
        bail!("outbox-worker --task {task} exited {code}: {}", err.trim());
    }
    serde_json::from_str(out.trim()).with_context(|| format!("outbox-worker --task {task} printed {out:?}"))
}

fn f(v: &serde_json::Value, k: &str) -> Result<f64> {
    v[k].as_f64().with_context(|| format!("outbox-worker output has no number {k:?}: {v}"))
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let bin = ctx.self_bin.clone();
    let (enq_events, enq_runs) = ctx.pick((100_000, 3), (20_000, 2));
    let (replay_events, replay_runs) = ctx.pick((100_000, 3), (20_000, 1));
    let fill_events = ctx.pick(1_000_000, 100_000);
    let port = ctx.broker.port;
    let work = ctx.work.clone();
    // The workers block on a child process: keep that off the async runtime's threads.
    tokio::task::spawn_blocking(move || {
        run_blocking(&bin, &work, port, enq_events, enq_runs, replay_events, replay_runs, fill_events)
    })
    .await
    .context("outbox scenario task")?
}

#[allow(clippy::too_many_arguments)]
fn run_blocking(
    bin: &Path,
    work: &Path,
    port: u16,
    enq_events: u64,
    enq_runs: usize,
    replay_events: u64,
    replay_runs: usize,
    fill_events: u64,
) -> Result<Vec<Row>> {
    let mut rates: [Vec<f64>; 3] = Default::default();
    for run in 0..enq_runs {
        let v = worker(bin, "enqueue", &work.join(format!("outbox-enqueue-{run}")), enq_events, None)?;
        for (i, c) in [1, 16, 256].iter().enumerate() {
            rates[i].push(f(&v, &format!("appenders_{c}"))?);
        }
        eprintln!(
            "  enqueue run {}: {:.0} / {:.0} / {:.0} events/s with 1 / 16 / 256 appenders",
            run + 1,
            rates[0][run],
            rates[1][run],
            rates[2][run]
        );
        let _ = std::fs::remove_dir_all(work.join(format!("outbox-enqueue-{run}")));
    }
    let mut replay = Vec::new();
    for run in 0..replay_runs {
        let dir = work.join(format!("outbox-replay-{run}"));
        let v = worker(bin, "replay", &dir, replay_events, Some(port))?;
        replay.push(f(&v, "rate")?);
        eprintln!("  replay run {}: {:.0} events/s ({:.2} s)", run + 1, f(&v, "rate")?, f(&v, "seconds")?);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let dir = work.join("outbox-fill");
    let v = worker(bin, "fill", &dir, fill_events, None)?;
    // A restart with that backlog: the open scans the stored events (counters, conditions).
    let o = worker(bin, "open", &dir, 0, None)?;
    let _ = std::fs::remove_dir_all(&dir);
    let open_s = f(&o, "seconds")?;
    eprintln!("  reopened with {:.0} events in {open_s:.2} s", f(&o, "depth")?);
    let (dir_bytes, live, max_bytes) = (f(&v, "dir_bytes")?, f(&v, "live_bytes")?, f(&v, "max_bytes")?);
    let per_event = dir_bytes / fill_events as f64;
    eprintln!(
        "  {fill_events} buffered: directory {:.1} MiB ({per_event:.0} B/event), live {:.1} MiB, filled at {:.0} events/s",
        dir_bytes / MIB,
        live / MIB,
        f(&v, "rate")?
    );
    let n = |x: u64| crate::report::num(x as f64);
    let enq_over = format!("{enq_runs} run(s) × {} events", n(enq_events));
    Ok(vec![
        Row::new(
            SCENARIO,
            "durable enqueue, 256 appenders",
            "events/s",
            Summary::of(&rates[2]),
            &enq_over,
            Budget::at_least(50_000.0),
        ),
        Row::new(SCENARIO, "durable enqueue, 16 appenders", "events/s", Summary::of(&rates[1]), &enq_over, None),
        Row::new(
            SCENARIO,
            "durable enqueue, 1 appender (fsync each)",
            "events/s",
            Summary::of(&rates[0]),
            &enq_over,
            None,
        ),
        Row::new(
            SCENARIO,
            "replay after outage → mosquitto",
            "events/s",
            Summary::of(&replay),
            format!("{replay_runs} run(s) × {} events", n(replay_events)),
            Budget::at_least(10_000.0),
        )
        .with_note("connect included; every event PUBACKed and deleted from sled"),
        Row::new(
            SCENARIO,
            &format!("disk per buffered event at {}", n(fill_events)),
            "B",
            Summary::of(&[per_event]),
            "1 run",
            Budget::at_most(300.0),
        )
        .with_note(format!(
            "live data {:.0} B/event; directory / live = {:.2}; sled size_on_disk {:.1} MiB; worker peak RSS {:.0} MiB",
            live / fill_events as f64,
            dir_bytes / live.max(1.0),
            f(&v, "sled_on_disk")? / MIB,
            f(&v, "peak_rss")? / MIB
        )),
        Row::new(
            SCENARIO,
            &format!("outbox directory at {} events", n(fill_events)),
            "MiB",
            Summary::of(&[dir_bytes / MIB]),
            "1 run",
            Budget::at_most(max_bytes / MIB),
        )
        .with_note("budget = storage.max_bytes (default); the bound limits live bytes, sled's log adds to it on disk"),
        Row::new(
            SCENARIO,
            &format!("reopen with {} buffered events", n(fill_events)),
            "s",
            Summary::of(&[open_s]),
            "1 run",
            None,
        )
        .with_note("Outbox::open in a fresh process: the scan of every stored event (counters, open conditions)"),
    ])
}
