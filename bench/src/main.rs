//! `bsg-bench`: one command for every performance budget of the branch gateway.
//!
//! It stands up a real mosquitto on a free loopback port, the device simulator (in this process
//! where a scenario flips registers or takes cameras down, in a child process for the scale
//! runs) and the **release-built** `branch-gateway` as a separate process, measured from
//! outside: latencies at an independent MQTT subscriber in this process, CPU and memory from
//! `/proc/PID/{stat,status}`. The head-office scenario measures the release-built `hq` the same
//! way, against a throw-away PostgreSQL cluster and SQLite files. It prints a table — scenario,
//! figure, median and spread over several runs, budget, PASS/FAIL — and with `--json FILE`
//! writes the same as JSON.
//!
//! A budget miss is a FAIL row and exit 0; a broken harness (no mosquitto, a gateway that never
//! comes up) is an ERROR and a non-zero exit. See docs/BENCHMARKS.md for the method and the
//! latest figures, and `scripts/bench` for the command that builds what it needs first.

// As in every crate of the workspace: no unwrap/expect outside tests (a measurement that cannot
// be made is an ERROR row with its reason, never a panic).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod gateway_proc;
mod mqtt;
mod outbox_worker;
mod procfs;
mod report;
mod rusage;
mod scenario;
mod sim;
mod stats;
mod stress;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::report::{Row, Verdict};
use crate::scenario::Ctx;

#[derive(Parser)]
#[command(
    name = "bsg-bench",
    version,
    about = "Measures every performance budget of branch-gateway against a real mosquitto and the simulator"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Internal>,
    /// Fewer runs, shorter windows (under two minutes); said so in the output.
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Run only these scenarios (comma-separated). `peers` runs only when named here: it
    /// installs Node-RED, modbus2mqtt and onvif-zeep-async from the registries on first use.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Which>,
    /// The branch-gateway binary to measure (default: next to this one, i.e. target/release).
    #[arg(long, value_name = "PATH")]
    gateway: Option<PathBuf>,
    /// The head-office `hq` binary to measure (default: next to this one, i.e. target/release).
    #[arg(long, value_name = "PATH")]
    hq: Option<PathBuf>,
    /// Run a CPU and disk load beside the gateway in the alarm scenario (one spinning process
    /// per core, one writer fsyncing 4 MiB chunks on the outbox's filesystem): the alarm's tail
    /// on a busy machine.
    #[arg(long)]
    stress: bool,
    /// The gateway's nice under --stress (default 0, the load's; -5 measured no different,
    /// docs/BENCHMARKS.md). A negative nice needs root.
    #[arg(long, value_name = "N", default_value_t = 0, allow_hyphen_values = true)]
    stress_nice: i32,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Which {
    Alarm,
    CameraLoss,
    Scale,
    Outbox,
    ColdStart,
    Hq,
    Console,
    Pictures,
    /// Scenario 9: the gateway beside Node-RED, modbus2mqtt and onvif-zeep-async (only with `--only`).
    Peers,
}

/// Child modes of this binary; not for users.
#[derive(Subcommand)]
enum Internal {
    /// Serve simulated cameras and panels until stdin closes (the scale scenario's simulator).
    #[command(hide = true)]
    SimServe {
        #[arg(long, default_value_t = 0)]
        cameras: usize,
        #[arg(long, default_value_t = 0)]
        panels: usize,
        #[arg(long, default_value = "zone-status-word")]
        profile: String,
        /// Every camera's snapshot size in bytes: its picture padded to this size (0: the
        /// picture as encoded, about 47 KB at 640x360, 320 KB at 1920x1080).
        #[arg(long, default_value_t = 0)]
        picture_bytes: usize,
        /// Every camera's picture size, WIDTHxHEIGHT (1920x1080 for a 1080p camera's pictures).
        #[arg(long, default_value = "640x360", value_parser = sim::parse_picture_size)]
        picture_size: (u16, u16),
    },
    /// Measure the outbox in a process of its own; prints one JSON object.
    #[command(hide = true)]
    OutboxWorker {
        #[arg(long, value_enum)]
        task: outbox_worker::Task,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        events: u64,
        #[arg(long)]
        port: Option<u16>,
    },
    /// Generate the head-office scenario's history into a migrated, empty database (`hq migrate
    /// --db URL` first): to look into a figure with the database at hand (EXPLAIN ANALYZE…).
    #[command(hide = true)]
    HqHistory {
        /// postgres://… or sqlite://PATH
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 2000)]
        branches: u64,
    },
    /// Load the machine until stdin closes (`--stress`).
    #[command(hide = true)]
    StressWorker {
        #[arg(long, value_enum)]
        kind: stress::Kind,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Run a command (stdout to /dev/null) and print its wall time and exact peak RSS as JSON.
    #[command(hide = true)]
    Rusage {
        #[arg(long, default_value_t = 300)]
        timeout_s: u64,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    // clap's own handling, as in every program of the workspace: help and version exit 0, a
    // usage error exits 2.
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Internal::SimServe { cameras, panels, profile, picture_bytes, picture_size }) => {
            let _ = procfs::raise_nofile_limit();
            sim::serve(cameras, panels, &profile, picture_bytes, picture_size).map(|()| ExitCode::SUCCESS)
        }
        Some(Internal::OutboxWorker { task, dir, events, port }) => {
            outbox_worker::run(task, dir, events, port).map(|()| ExitCode::SUCCESS)
        }
        Some(Internal::HqHistory { db, branches }) => {
            scenario::hq::generate_only(&db, branches).map(|()| ExitCode::SUCCESS)
        }
        Some(Internal::Rusage { timeout_s, command }) => {
            rusage::launch(&command, std::time::Duration::from_secs(timeout_s)).map(|()| ExitCode::SUCCESS)
        }
        Some(Internal::StressWorker { kind, dir }) => stress::worker(kind, dir).map(|()| ExitCode::SUCCESS),
        None => bench(cli.quick, cli.stress.then_some(cli.stress_nice), cli.json, cli.only, cli.gateway, cli.hq),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bsg-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The bench proper. `Err` = the harness could not even start (exit 2).
fn bench(
    quick: bool,
    stress: Option<i32>,
    json_out: Option<PathBuf>,
    only: Vec<Which>,
    gateway: Option<PathBuf>,
    hq: Option<PathBuf>,
) -> Result<ExitCode> {
    let t0 = Instant::now();
    let nofile = procfs::raise_nofile_limit().context("raise the open-files limit")?;
    let machine = procfs::Machine::describe(nofile);
    let self_bin = std::env::current_exe().context("locate bsg-bench itself")?;
    let gateway_bin = match gateway {
        Some(p) => p,
        None => self_bin.parent().map(|d| d.join("branch-gateway")).unwrap_or_default(),
    };
    if !gateway_bin.is_file() {
        anyhow::bail!(
            "no branch-gateway binary at {}; run scripts/bench (it builds the release binaries) or pass --gateway PATH",
            gateway_bin.display()
        );
    }
    let all = [
        Which::Alarm,
        Which::CameraLoss,
        Which::Scale,
        Which::Outbox,
        Which::ColdStart,
        Which::Hq,
        Which::Console,
        Which::Pictures,
        Which::Peers,
    ];
    // `peers` installs from the registries: never part of a run that did not name it.
    let chosen: Vec<Which> =
        all.into_iter().filter(|w| if only.is_empty() { *w != Which::Peers } else { only.contains(w) }).collect();
    let hq_bin = match hq {
        Some(p) => p,
        None => self_bin.parent().map(|d| d.join("hq")).unwrap_or_default(),
    };
    if (chosen.contains(&Which::Hq) || chosen.contains(&Which::Console)) && !hq_bin.is_file() {
        anyhow::bail!(
            "no hq binary at {}; run scripts/bench (it builds the release binaries) or pass --hq PATH",
            hq_bin.display()
        );
    }
    if nofile < 4096 {
        eprintln!("warning: the open-files limit is {nofile}; a thousand simulated cameras need about 4,000 sockets");
    }
    let broker = harness::Mosquitto::start()
        .context("cannot start mosquitto; run scripts/test to install prerequisites (or apt-get install mosquitto)")?;
    let work = tempfile::Builder::new().prefix("bsg-bench-").tempdir().context("create a scratch directory")?;
    let ctx = Ctx {
        quick,
        stress,
        gateway_bin: gateway_bin.clone(),
        hq_bin: hq_bin.clone(),
        self_bin,
        broker,
        work: work.path().to_path_buf(),
    };

    let mode = if quick {
        "QUICK mode: 1 run of 60 alarms per poll (250 and 50 ms), 5 camera-loss trials, scale windows of 2×10 s (cameras) and 3×5 s \
         (panels) and no combined run, 20,000-event outbox runs and 100,000 (not 1,000,000) buffered events, \
         2 cold starts, head office: 1 ingest run of 40,000 alerts and a history of 200 (not 2,000) branches. \
         Indicative only; the full run is what docs/BENCHMARKS.md quotes."
    } else {
        "FULL mode: 3 runs × 200 alarms per poll (250 and 50 ms), 15 camera-loss trials, scale windows of 6×10 s / 12×5 s / 6×10 s, \
         3 outbox runs of 100,000 events and 1,000,000 buffered events, 5 cold starts, head office: 3 ingest \
         runs of 200,000 alerts and a history of 2,000 branches × 180 days."
    };
    let header = format!(
        "bsg-bench {} — {}\n{}\ngateway: {}\nhq: {}\nbroker: mosquitto on 127.0.0.1:{}\n{mode}",
        env!("CARGO_PKG_VERSION"),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine.line(),
        gateway_bin.display(),
        hq_bin.display(),
        ctx.broker.port
    );
    println!("{header}\n");
    if stress.is_some() {
        println!(
            "--stress: the alarm scenario runs beside one CPU spinner per core and one disk writer (4 MiB + fsync) \
             on the outbox's filesystem\n"
        );
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the runtime")?;
    let mut rows: Vec<Row> = Vec::new();
    for w in chosen {
        let (name, label) = match w {
            Which::Alarm => ("1 alarm latency", "alarm latency (register flip → alert at the subscriber)"),
            Which::CameraLoss => ("2 camera loss", "camera-loss detection"),
            Which::Scale => ("3 scale", "scale: CPU and memory of the gateway"),
            Which::Outbox => ("4 outbox", "outbox: enqueue, replay, disk"),
            Which::ColdStart => ("5 cold start", "cold start"),
            Which::Hq => ("6 head office", "head office: ingest into PostgreSQL and SQLite, reports at bank scale"),
            Which::Console => ("7 console", "head office's web console: overview of 2,000 branches, 50 live pages"),
            Which::Pictures => ("8 picture checks", "picture checks: CPU per snapshot check"),
            Which::Peers => ("9 peers", "peers: the gateway beside Node-RED, modbus2mqtt and an onvif-zeep-async loop"),
        };
        eprintln!("== {label}");
        let started = Instant::now();
        let result = rt.block_on(async {
            match w {
                Which::Alarm => scenario::alarm::run(&ctx).await,
                Which::CameraLoss => scenario::camera_loss::run(&ctx).await,
                Which::Scale => scenario::scale::run(&ctx).await,
                Which::Outbox => scenario::outbox::run(&ctx).await,
                Which::ColdStart => scenario::cold_start::run(&ctx).await,
                Which::Hq => scenario::hq::run(&ctx).await,
                Which::Console => scenario::console::run(&ctx).await,
                Which::Pictures => scenario::pictures::run(&ctx).await,
                Which::Peers => scenario::peers::run(&ctx).await,
            }
        });
        match result {
            Ok(r) => rows.extend(r),
            Err(e) => {
                eprintln!("  ERROR: {e:#}");
                rows.push(Row::error(name, "(scenario)", format!("{e:#}")));
            }
        }
        eprintln!("   ({:.0} s)", started.elapsed().as_secs_f64());
    }
    drop(rt);

    let elapsed = t0.elapsed().as_secs_f64();
    println!("{}", report::table(&rows));
    let count = |v: Verdict| rows.iter().filter(|r| r.verdict == v).count();
    let (pass, fail, errors) = (count(Verdict::Pass), count(Verdict::Fail), count(Verdict::Error));
    println!(
        "{pass} within budget, {fail} over budget, {errors} error(s); {elapsed:.0} s in all{}",
        if quick { " (quick mode)" } else { "" }
    );
    if let Some(path) = json_out {
        let doc = json!({
            "tool": "bsg-bench",
            "version": env!("CARGO_PKG_VERSION"),
            "at": chrono::Utc::now().to_rfc3339(),
            "mode": if quick { "quick" } else { "full" },
            "mode_note": mode,
            "machine": machine,
            "gateway": gateway_bin.display().to_string(),
            "hq": hq_bin.display().to_string(),
            "seconds": elapsed,
            "rows": rows,
        });
        let text = serde_json::to_string_pretty(&doc).context("encode the results")?;
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        println!("results written to {}", path.display());
    }
    if errors > 0 {
        let kept = work.keep();
        eprintln!("bsg-bench: the harness broke in {errors} place(s); logs kept in {}", kept.display());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
