//! Scenario 9 — peers: the release gateway side by side with what a bank would otherwise run,
//! on the same workload, the same machine and in the same run (issue 15). Runs only when asked
//! (`--only peers`): it installs the peers from the package registries on first use.
//!
//! - **Modbus**: one pymodbus TCP server (`bench/peers/modbus_peer_server.py`, in a process of
//!   its own) with 1 and then 20 units of 200 holding registers, one of which (holding 7 of a
//!   random unit, the gateway's `zone.8`) flips between 0 and 1. Polled every 250 ms, in turn, by
//!   the gateway (a profile of 200 zone status words, merged into two reads), Node-RED 4.1 with
//!   node-red-contrib-modbus 5.23 (per unit two `modbus-read` nodes of 100 registers, each wired
//!   to an `mqtt out` to the bench's mosquitto) and modbus2mqtt 0.73 (per unit two pollers of
//!   100 registers and a reference per register, published on change). The server counts every
//!   read it answers; a tool's CPU per read is its process's `utime + stime` over steady windows
//!   ÷ the reads the server answered in them. Alarm latency: the flip on the server → the
//!   tool's MQTT message at the bench's subscriber.
//! - **ONVIF**: 200 simulated cameras (`bsg-bench sim-serve`), probed every 10 s by the gateway
//!   and then by a loop on onvif-zeep-async 4.x, Home Assistant's ONVIF client
//!   (`bench/peers/onvif_zeep_loop.py`: GetSystemDateAndTime, GetDeviceInformation,
//!   GetStreamUri, the snapshot). CPU per probe and per request, RSS.
//!
//! Budgets (issue 15): the gateway's CPU per Modbus read ≤ 1/10 of the best peer's, its CPU per
//! camera probe ≤ 1/20 of the zeep loop's. A peer that cannot be installed or does not come up
//! is an ERROR row for that peer; the others are still measured.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use harness::Proc;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Ctx, ms, random_pause};
use crate::gateway_proc::{Gateway, PanelEntry, Site, wait_devices};
use crate::mqtt::{Msg, Subscriber};
use crate::procfs;
use crate::report::{Budget, Row};
use crate::sim::SimProc;
use crate::stats::{Summary, percentile};

const SCENARIO: &str = "9 peers";
const MIB: f64 = 1024.0 * 1024.0;
const POLL: Duration = Duration::from_millis(250);
const REGISTERS: usize = 200;
/// The register that flips: holding 7, the gateway profile's `zone.8`.
const ALARM_REG: usize = 7;
const FLIP_TIMEOUT: Duration = Duration::from_secs(5);
const CAMERAS: usize = 200;
const CAMERA_POLL: Duration = Duration::from_secs(10);
/// The gateway's requests per camera probe in the steady state: GetDeviceInformation, RTSP
/// DESCRIBE and PullMessages, and GetSystemDateAndTime and the snapshot every 6th probe
/// (`CLOCK_EVERY_PROBES`, `frozen_check_every`); the media refresh every 60th probe and lease
/// renewals left out.
const GATEWAY_REQUESTS_PER_PROBE: f64 = 3.0 + 2.0 / 6.0;
const ZEEP_REQUESTS_PER_PROBE: f64 = 4.0;
/// How long the installs may take (npm and pip from the registries, the first time).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The gateway's profile: 200 holding registers, one zone status word each (as the built-in
/// `zone-status-word`, without its partitions, fault bits and heartbeat).
const PROFILE: &str = r#"name = "peers-200-holding"
description = "Bench scenario 9: 200 holding registers, one zone status word each"

[states.zone-status]
rules = [
  { mask = 0x0010, state = "tamper" },
  { mask = 0x0004, state = "disabled" },
  { mask = 0x0008, state = "bypassed" },
  { mask = 0x0001, state = "alarm" },
  { mask = 0x0002, state = "fault" },
]
default = "normal"

[[point]]
id = "zone.{n}"
role = "zone"
table = "holding"
address = 0
count = 200
type = "u16"
states = "zone-status"
"#;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tool {
    Gateway,
    NodeRed,
    Modbus2mqtt,
}

impl Tool {
    fn label(self) -> &'static str {
        match self {
            Tool::Gateway => "branch-gateway",
            Tool::NodeRed => "Node-RED",
            Tool::Modbus2mqtt => "modbus2mqtt",
        }
    }
    fn slug(self) -> &'static str {
        match self {
            Tool::Gateway => "gateway",
            Tool::NodeRed => "node-red",
            Tool::Modbus2mqtt => "modbus2mqtt",
        }
    }
}

/// What `scripts/bench-peers-setup` installed: the path to run each peer with, or why not.
struct Installed {
    node_red: Result<PathBuf, String>,
    modbus2mqtt: Result<PathBuf, String>,
    zeep: Result<PathBuf, String>,
}

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let dir = ctx.dir("peers");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    eprintln!("  installing the peers (once; cached in {})", peers_dir(ctx).display());
    let installed = tokio::task::block_in_place(|| install(ctx, &dir));
    let mut rows = Vec::new();
    for (name, r) in
        [("Node-RED", &installed.node_red), ("modbus2mqtt", &installed.modbus2mqtt), ("zeep", &installed.zeep)]
    {
        match r {
            Ok(p) => eprintln!("  {name}: {}", p.display()),
            Err(why) => {
                eprintln!("  {name}: not installed: {why}");
                rows.push(Row::error(SCENARIO, &format!("{name}: install"), why.clone()));
            }
        }
    }
    for units in [1usize, 20] {
        rows.extend(modbus(ctx, &installed, units).await?);
    }
    rows.extend(onvif(ctx, &installed).await?);
    Ok(rows)
}

/// `$BSG_PEERS_DIR`, else `target/peers` beside this binary's `target/release`.
fn peers_dir(ctx: &Ctx) -> PathBuf {
    if let Some(d) = std::env::var_os("BSG_PEERS_DIR") {
        return PathBuf::from(d);
    }
    ctx.self_bin
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("peers"))
        .unwrap_or_else(|| harness::workspace_root().join("target/peers"))
}

/// Runs `scripts/bench-peers-setup` (under a deadline) and reads its verdict per peer.
fn install(ctx: &Ctx, dir: &Path) -> Installed {
    let fail = |why: String| Installed { node_red: Err(why.clone()), modbus2mqtt: Err(why.clone()), zeep: Err(why) };
    let script = harness::workspace_root().join("scripts/bench-peers-setup");
    let out_path = dir.join("setup.out");
    let out = match std::fs::File::create(&out_path) {
        Ok(f) => f,
        Err(e) => return fail(format!("create {}: {e}", out_path.display())),
    };
    let err = match out.try_clone() {
        Ok(f) => f,
        Err(e) => return fail(format!("{e}")),
    };
    let child = die_with_bench(&mut Command::new(&script))
        .arg("--dir")
        .arg(peers_dir(ctx))
        .args(["node-red", "modbus2mqtt", "zeep"])
        .env("BSG_PYTHON", harness::python())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn();
    let mut proc = match child {
        Ok(c) => Proc { child: c, name: "bench-peers-setup".into() },
        Err(e) => return fail(format!("cannot run {}: {e}", script.display())),
    };
    let status = proc.wait_exit(INSTALL_TIMEOUT);
    drop(proc);
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let verdict = |peer: &str| -> Result<PathBuf, String> {
        let prefix = format!("{peer} ");
        match text.lines().rev().find_map(|l| l.strip_prefix(&prefix)) {
            Some(rest) if rest.starts_with("ok ") => Ok(PathBuf::from(rest.trim_start_matches("ok ").trim())),
            Some(rest) => {
                Err(format!("{} (log: {})", rest.trim_start_matches("failed ").trim(), peers_dir(ctx).display()))
            }
            None if status.is_none() => Err(format!("the install took longer than {INSTALL_TIMEOUT:?}")),
            None => Err(format!("{} said nothing about it: {}", script.display(), tail(&text, 3))),
        }
    };
    Installed { node_red: verdict("node-red"), modbus2mqtt: verdict("modbus2mqtt"), zeep: verdict("zeep") }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

fn log_tail(path: &Path, n: usize) -> String {
    tail(&std::fs::read_to_string(path).unwrap_or_default(), n)
}

/// Makes the child die with the bench even when the bench is killed outright (its `Drop`s then
/// never run): SIGKILL when the thread that spawned it exits. Every spawn here happens on the
/// thread that runs the scenario (`block_on`'s), which lives as long as the bench.
fn die_with_bench(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: between fork and exec the closure only calls prctl, which is async-signal-safe,
    // and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// CPU time of every live thread of `pid`, in seconds, to the nanosecond: the first field of
/// each `/proc/PID/task/TID/schedstat`. `/proc/PID/stat` counts in clock ticks (10 ms), too
/// coarse for a gateway that spends a few milliseconds a second on one panel.
fn cpu_fine(pid: u32) -> Result<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).with_context(|| format!("read /proc/{pid}/task"))?;
    let mut ns = 0u64;
    for t in tasks.flatten() {
        // A thread that ended since the listing is simply not counted.
        if let Ok(text) = std::fs::read_to_string(t.path().join("schedstat")) {
            ns += text.split_whitespace().next().and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Ok(ns as f64 / 1e9)
}

/// One measurement window of a process: CPU (schedstat, and `/proc/PID/stat` ticks as a
/// check), wall time, the largest `VmRSS` sampled every 0.5 s.
struct Window {
    cpu: f64,
    ticks_cpu: f64,
    wall: f64,
    rss_max: u64,
}

async fn measure(pid: u32, length: Duration) -> Result<Window> {
    let (c0, k0, t0) = (cpu_fine(pid)?, procfs::cpu_time(pid)?, Instant::now());
    let mut rss_max = procfs::memory(pid)?.0;
    let end = t0 + length;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(500).min(end.saturating_duration_since(Instant::now()))).await;
        rss_max = rss_max.max(procfs::memory(pid)?.0);
    }
    let (c1, k1, wall) = (cpu_fine(pid)?, procfs::cpu_time(pid)?, t0.elapsed());
    Ok(Window {
        cpu: (c1 - c0).max(0.0),
        ticks_cpu: k1.saturating_sub(k0).as_secs_f64(),
        wall: wall.as_secs_f64(),
        rss_max,
    })
}

/// A child that answers one JSON line per command line (the bench's own peers glue).
struct LineChild {
    proc: Proc,
    stdin: Option<ChildStdin>,
    rx: mpsc::UnboundedReceiver<String>,
    log: PathBuf,
}

impl LineChild {
    fn spawn(cmd: &mut Command, name: &str, log: &Path) -> Result<LineChild> {
        let err = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let mut child = die_with_bench(cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .with_context(|| format!("spawn {name}"))?;
        let stdin = child.stdin.take().context("its stdin")?;
        let stdout = child.stdout.take().context("its stdout")?;
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(LineChild { proc: Proc { child, name: name.into() }, stdin: Some(stdin), rx, log: log.to_path_buf() })
    }

    fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The next JSON object it prints, within `timeout`.
    async fn line(&mut self, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(l)) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&l)
                        && v.is_object()
                    {
                        if let Some(e) = v.get("error").and_then(Value::as_str) {
                            bail!("{}: {e}", self.proc.name);
                        }
                        return Ok(v);
                    }
                }
                Ok(None) => bail!("{} exited; its log: {}", self.proc.name, log_tail(&self.log, 5)),
                Err(_) => {
                    bail!("{} said nothing within {timeout:?}; its log: {}", self.proc.name, log_tail(&self.log, 5))
                }
            }
        }
    }

    async fn ask(&mut self, cmd: &str) -> Result<Value> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        writeln!(stdin, "{cmd}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("write to {}", self.proc.name))?;
        self.line(Duration::from_secs(5)).await
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        // EOF first (a clean stop), then the kill on Proc's drop.
        drop(self.stdin.take());
        let _ = self.proc.wait_exit(Duration::from_secs(2));
    }
}

/// `n` distinct free ports on 127.0.0.1: every listener is held until all are picked, so no
/// port comes twice (one at a time, the kernel may hand the same one out again).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("bind a free port on 127.0.0.1")?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// The pymodbus server: its ports and the reads it answered.
struct ModbusServer {
    child: LineChild,
    port: u16,
    unit_ports: Vec<u16>,
}

impl ModbusServer {
    async fn start(ctx: &Ctx, units: usize) -> Result<ModbusServer> {
        let mut ports = free_ports(units + 1)?;
        let port = ports.remove(0);
        let unit_ports = ports;
        let list = unit_ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
        let script = harness::workspace_root().join("bench/peers/modbus_peer_server.py");
        let mut cmd = Command::new(harness::python());
        cmd.arg(&script).args(["--units", &units.to_string(), "--registers", &REGISTERS.to_string()]).args([
            "--port",
            &port.to_string(),
            "--unit-ports",
            &list,
        ]);
        let log = ctx.dir("peers").join(format!("modbus-server-{units}.log"));
        let mut child = LineChild::spawn(&mut cmd, "the pymodbus server", &log)?;
        child.line(Duration::from_secs(30)).await.context("the pymodbus server did not come up")?;
        Ok(ModbusServer { child, port, unit_ports })
    }

    async fn reads(&mut self) -> Result<Vec<u64>> {
        let v = self.child.ask("counts").await?;
        Ok(v["reads"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default())
    }

    async fn set(&mut self, unit: usize, value: u16) -> Result<()> {
        self.child.ask(&format!("set {unit} {ALARM_REG} {value}")).await.map(|_| ())
    }
}

/// A tool under test, running.
enum Running {
    Gateway(Box<Gateway>),
    Other { proc: Proc, log: PathBuf },
}

impl Running {
    fn pid(&self) -> u32 {
        match self {
            Running::Gateway(g) => g.pid(),
            Running::Other { proc, .. } => proc.pid(),
        }
    }
    fn check_alive(&mut self) -> Result<()> {
        match self {
            Running::Gateway(g) => g.check_alive(),
            Running::Other { proc, log } => match proc.child.try_wait() {
                Ok(Some(st)) => bail!("{} exited ({st}); its log: {}", proc.name, log_tail(log, 8)),
                _ => Ok(()),
            },
        }
    }
    fn stop(self) {
        match self {
            Running::Gateway(g) => (*g).stop(),
            Running::Other { mut proc, .. } => {
                proc.signal("TERM");
                let _ = proc.wait_exit(Duration::from_secs(5));
            }
        }
    }
}

fn spawn_other(cmd: &mut Command, name: &str, log: &Path) -> Result<Running> {
    let out = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let err = out.try_clone()?;
    let child = die_with_bench(cmd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("spawn {name}"))?;
    Ok(Running::Other { proc: Proc { child, name: name.into() }, log: log.to_path_buf() })
}

/// What one tool measured at one load.
struct ModbusFigures {
    /// CPU per read, ms, one per window.
    cpu_per_read: Vec<f64>,
    reads_per_s: f64,
    cpu_percent: f64,
    /// CPU per read over every window from `/proc/PID/stat`'s ticks (a check on schedstat).
    ticks_per_read: f64,
    rss_mib: f64,
    latency: Vec<f64>,
    lost: u32,
}

async fn modbus(ctx: &Ctx, installed: &Installed, units: usize) -> Result<Vec<Row>> {
    eprintln!("  Modbus, {units} unit(s) × {REGISTERS} holding registers every 250 ms: starting the pymodbus server");
    let mut server = ModbusServer::start(ctx, units).await?;
    let mut rows = Vec::new();
    let mut results: Vec<(Tool, ModbusFigures)> = Vec::new();
    for tool in [Tool::Gateway, Tool::NodeRed, Tool::Modbus2mqtt] {
        let path = match tool {
            Tool::Gateway => Ok(ctx.gateway_bin.clone()),
            Tool::NodeRed => installed.node_red.clone(),
            Tool::Modbus2mqtt => installed.modbus2mqtt.clone(),
        };
        let label = format!("{}, {units} unit(s)", tool.label());
        let path = match path {
            Ok(p) => p,
            Err(_) => {
                rows.push(Row::error(
                    SCENARIO,
                    &format!("CPU per Modbus read, {label}"),
                    "not installed (see its install row)",
                ));
                continue;
            }
        };
        eprintln!("  {label}");
        match modbus_tool(ctx, &mut server, tool, &path, units).await {
            Ok(f) => results.push((tool, f)),
            Err(e) => {
                eprintln!("  {label}: ERROR {e:#}");
                rows.push(Row::error(SCENARIO, &format!("CPU per Modbus read, {label}"), format!("{e:#}")));
            }
        }
    }
    drop(server);

    let windows = ctx.pick(6, 3);
    let over = format!("{windows} windows of 5 s");
    let asked = units as f64 * 2.0 * 1000.0 / POLL.as_millis() as f64;
    for (tool, f) in &results {
        let label = format!("{}, {units} unit(s)", tool.label());
        rows.push(
            Row::new(SCENARIO, &format!("CPU per Modbus read, {label}"), "ms", Summary::of(&f.cpu_per_read), &over, None)
                .with_note(format!(
                    "{:.1} reads/s answered by the server (asked: {asked:.0}/s, two reads of 100 registers per unit and poll{}); process CPU {:.2} % of a core; from /proc/PID/stat ticks over all windows {:.3} ms per read",
                    f.reads_per_s,
                    match tool {
                        Tool::Gateway => "; the gateway merges 200 registers into 125 + 75",
                        Tool::Modbus2mqtt if units > 10 => "; modbus2mqtt with --set-loop-break 0.001 (its default 10 ms pause serves 40 pollers every 400 ms at best)",
                        _ => "",
                    },
                    f.cpu_percent,
                    f.ticks_per_read
                )),
        );
        rows.push(Row::new(
            SCENARIO,
            &format!("RSS, {label}"),
            "MiB",
            Summary::of(&[f.rss_mib]),
            "largest VmRSS sampled",
            None,
        ));
        let lat_over = format!("{} flips", f.latency.len());
        let mut lat = Row::new(
            SCENARIO,
            &format!("alarm latency p50, {label}"),
            "ms",
            Summary::of(&[percentile(&f.latency, 50.0).unwrap_or(f64::NAN)]),
            &lat_over,
            None,
        );
        lat = lat.with_note(format!(
            "flip on the server → the tool's MQTT message at the bench's subscriber; p90 {:.0} ms, max {:.0} ms; {} flip(s) with no message in {} s",
            percentile(&f.latency, 90.0).unwrap_or(f64::NAN),
            percentile(&f.latency, 100.0).unwrap_or(f64::NAN),
            f.lost,
            FLIP_TIMEOUT.as_secs()
        ));
        rows.push(lat);
        rows.push(Row::new(
            SCENARIO,
            &format!("alarm latency max, {label}"),
            "ms",
            Summary::of(&[percentile(&f.latency, 100.0).unwrap_or(f64::NAN)]),
            &lat_over,
            None,
        ));
    }
    // The budget: the gateway's CPU per read ≤ 1/10 of the best (lowest) peer's.
    let median = |f: &ModbusFigures| Summary::of(&f.cpu_per_read).map(|s| s.median);
    let gw = results.iter().find(|(t, _)| *t == Tool::Gateway).and_then(|(_, f)| median(f));
    let best = results
        .iter()
        .filter(|(t, _)| *t != Tool::Gateway)
        .filter_map(|(t, f)| median(f).map(|m| (*t, m)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let figure = format!("gateway ÷ best peer, CPU per Modbus read, {units} unit(s)");
    match (gw, best) {
        (Some(g), Some((t, b))) => rows.push(
            Row::new(SCENARIO, &figure, "×", Summary::of(&[g / b]), "medians of the windows", Budget::at_most(0.1))
                .with_note(format!(
                    "{g:.4} ms ÷ {b:.4} ms ({}); the peer would need {:.1}× the gateway's CPU per read",
                    t.label(),
                    b / g
                )),
        ),
        _ => rows.push(Row::error(SCENARIO, &figure, "the gateway or every peer could not be measured")),
    }
    Ok(rows)
}

/// Starts `tool` against the server, waits for it to poll every unit and publish, measures
/// its CPU per read over steady windows, then its alarm latency, and stops it.
async fn modbus_tool(
    ctx: &Ctx,
    server: &mut ModbusServer,
    tool: Tool,
    path: &Path,
    units: usize,
) -> Result<ModbusFigures> {
    let dir = ctx.dir(&format!("peers-{}-{units}", tool.slug()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let branch = format!("bench-peers-{units}");
    let prefix = format!("peers/{}/", tool.slug());
    let filter = match tool {
        Tool::Gateway => format!("branches/{branch}/#"),
        _ => format!("{prefix}#"),
    };
    let mut sub = Subscriber::start(ctx.broker.port, &filter).await?;
    let mut running = match tool {
        Tool::Gateway => {
            let profile = dir.join("peers-200.toml");
            std::fs::write(&profile, PROFILE).with_context(|| format!("write {}", profile.display()))?;
            let mut site = Site::new(&branch);
            site.panel_poll = POLL;
            for (i, port) in server.unit_ports.iter().enumerate() {
                let id = format!("panel-{:02}", i + 1);
                site.panels.push(PanelEntry {
                    id: id.clone(),
                    address: format!("127.0.0.1:{port}"),
                    kind: "alarm",
                    profile: profile.display().to_string(),
                });
                site.alarm_zones.push((format!("z{:02}", i + 1), id, format!("zone.{}", ALARM_REG + 1)));
            }
            let mut gw = Gateway::spawn(path, &dir, &site, ctx.broker.port)?;
            wait_devices(&mut sub, &mut gw, &branch, &site.device_ids(), READY_TIMEOUT).await?;
            Running::Gateway(Box::new(gw))
        }
        Tool::NodeRed => {
            let modules = path.parent().and_then(Path::parent).context("node-red's node_modules")?.to_path_buf();
            let link = dir.join("node_modules");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&modules, &link).with_context(|| format!("link {}", link.display()))?;
            std::fs::write(dir.join("settings.js"), node_red_settings(harness::free_port()))?;
            let flows = node_red_flows(&server.unit_ports, ctx.broker.port, &prefix);
            std::fs::write(dir.join("flows.json"), serde_json::to_string_pretty(&flows)?)?;
            let mut cmd = Command::new("node");
            cmd.arg(path).arg("--settings").arg(dir.join("settings.js")).arg("--userDir").arg(&dir).arg("flows.json");
            cmd.current_dir(&dir).env("NODE_RED_ENABLE_PROJECTS", "false");
            spawn_other(&mut cmd, "Node-RED", &dir.join("node-red.log"))?
        }
        Tool::Modbus2mqtt => {
            let config = dir.join("modbus2mqtt.csv");
            std::fs::write(&config, modbus2mqtt_config(units))?;
            let mut cmd = Command::new(path);
            cmd.args(["-m", "modbus2mqtt", "--tcp", "127.0.0.1", "--tcp-port", &server.port.to_string()])
                .args(["--mqtt-host", "127.0.0.1", "--mqtt-port", &ctx.broker.port.to_string()])
                .args(["--mqtt-topic", &prefix, "--verbosity", "1", "--config"])
                .arg(&config)
                .args(modbus2mqtt_loop_break(units))
                .current_dir(&dir)
                .env("PYTHONUNBUFFERED", "1");
            spawn_other(&mut cmd, "modbus2mqtt", &dir.join("modbus2mqtt.log"))?
        }
    };
    let result = measure_modbus(ctx, server, &mut running, &mut sub, tool, units, &prefix).await;
    running.stop();
    result
}

/// modbus2mqtt's main loop pauses 10 ms (`--set-loop-break`) between two visits to its pollers
/// and serves one poller per pass: 40 pollers (20 units) would be polled every 400 ms at best.
/// At 20 units it gets 1 ms; it still falls short of 160 reads/s (each read follows a 2 ms sleep).
fn modbus2mqtt_loop_break(units: usize) -> Vec<String> {
    if units > 10 { vec!["--set-loop-break".into(), "0.001".into()] } else { Vec::new() }
}

async fn measure_modbus(
    ctx: &Ctx,
    server: &mut ModbusServer,
    running: &mut Running,
    sub: &mut Subscriber,
    tool: Tool,
    units: usize,
    prefix: &str,
) -> Result<ModbusFigures> {
    // Ready: every unit read a few times, and something published.
    let deadline = Instant::now() + READY_TIMEOUT;
    let base = server.reads().await?;
    let mut published = tool == Tool::Gateway;
    loop {
        running.check_alive()?;
        while sub.try_next().is_some() {
            published = true;
        }
        let now = server.reads().await?;
        let polled = now.iter().zip(base.iter().chain(std::iter::repeat(&0))).all(|(n, b)| n.saturating_sub(*b) >= 4);
        if polled && published {
            break;
        }
        if Instant::now() >= deadline {
            let short: Vec<String> = now
                .iter()
                .enumerate()
                .map(|(i, n)| (i + 1, n.saturating_sub(base.get(i).copied().unwrap_or(0))))
                .filter(|(_, d)| *d < 4)
                .map(|(u, d)| format!("unit {u}: {d}"))
                .collect();
            bail!(
                "{} did not poll every unit and publish within {READY_TIMEOUT:?} (reads since it started, of the units read fewer than 4 times: {}; published: {published})",
                tool.label(),
                if short.is_empty() { "none".to_string() } else { short.join(", ") }
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(ctx.pick(Duration::from_secs(5), Duration::from_secs(3))).await;
    running.check_alive()?;
    let pid = running.pid();
    let windows = ctx.pick(6, 3);
    let mut cpu_per_read = Vec::new();
    let (mut cpu_s, mut ticks_s, mut wall_s, mut reads_total, mut rss_max) = (0.0, 0.0, 0.0, 0u64, 0u64);
    for _ in 0..windows {
        sub.drain();
        let r0: u64 = server.reads().await?.iter().sum();
        let w = measure(pid, Duration::from_secs(5)).await?;
        let r1: u64 = server.reads().await?.iter().sum();
        let reads = r1.saturating_sub(r0);
        if reads == 0 {
            bail!("{} made no read in a 5 s window", tool.label());
        }
        cpu_per_read.push(w.cpu * 1000.0 / reads as f64);
        cpu_s += w.cpu;
        ticks_s += w.ticks_cpu;
        wall_s += w.wall;
        reads_total += reads;
        rss_max = rss_max.max(w.rss_max);
    }
    // Alarm latency: pairs of flips (alarm, then normal) of one unit at a time.
    let flips = ctx.pick(40, 12);
    let mut latency = Vec::new();
    let mut lost = 0u32;
    let mut unit = 1;
    for i in 0..flips {
        let value: u16 = if i % 2 == 0 { 1 } else { 0 };
        if i % 2 == 0 {
            unit = if units > 1 { rand::random_range(1..=units) } else { 1 };
        }
        random_pause(POLL).await;
        sub.drain();
        let t0 = Instant::now();
        server.set(unit, value).await?;
        let want = |m: &Msg| matches_flip(tool, prefix, m, unit, value);
        match sub.wait_for(t0 + FLIP_TIMEOUT, want).await {
            Some(m) => latency.push(ms(m.at.duration_since(t0))),
            None => {
                running.check_alive()?;
                lost += 1;
                if lost > 5 {
                    // Leave the register normal for the next tool.
                    server.set(unit, 0).await?;
                    break;
                }
            }
        }
    }
    Ok(ModbusFigures {
        cpu_per_read,
        reads_per_s: reads_total as f64 / wall_s.max(1e-9),
        cpu_percent: 100.0 * cpu_s / wall_s.max(1e-9),
        ticks_per_read: ticks_s * 1000.0 / (reads_total as f64).max(1.0),
        rss_mib: rss_max as f64 / MIB,
        latency,
        lost,
    })
}

/// Whether `m` is `tool`'s first word of holding 7 of `unit` being `value`.
fn matches_flip(tool: Tool, prefix: &str, m: &Msg, unit: usize, value: u16) -> bool {
    match tool {
        // One alarm zone per unit, on zone.8: raised on 1, cleared on 0.
        Tool::Gateway => {
            m.topic.ends_with("/alerts/alarm-link")
                && m.json()["state"] == if value == 1 { "raised" } else { "cleared" }
        }
        // Every read of the first 100 registers, as a JSON array.
        Tool::NodeRed => {
            m.topic == format!("{prefix}u{unit:02}/r0") && m.json()[ALARM_REG].as_u64() == Some(u64::from(value))
        }
        // One retained topic per register, published on change.
        Tool::Modbus2mqtt => {
            m.topic == format!("{prefix}u{unit:02}/state/r{ALARM_REG}")
                && std::str::from_utf8(&m.payload).ok().and_then(|s| s.trim().parse::<u64>().ok())
                    == Some(u64::from(value))
        }
    }
}

/// Node-RED's settings: loopback only, no editor, no projects, diagnostics or telemetry,
/// warnings only in the log.
fn node_red_settings(port: u16) -> String {
    format!(
        "module.exports = {{\n  uiHost: \"127.0.0.1\",\n  uiPort: {port},\n  httpAdminRoot: false,\n  httpNodeRoot: false,\n  \
         flowFile: \"flows.json\",\n  credentialSecret: false,\n  \
         logging: {{ console: {{ level: \"warn\", metrics: false, audit: false }} }},\n  \
         editorTheme: {{ projects: {{ enabled: false }} }},\n  diagnostics: {{ enabled: false, ui: false }},\n  \
         runtimeState: {{ enabled: false, ui: false }},\n  telemetry: {{ enabled: false }},\n  \
         externalModules: {{ autoInstall: false, palette: {{ allowInstall: false }}, modules: {{ allowInstall: false }} }}\n}};\n"
    )
}

/// Per unit: a `modbus-client` on the unit's own port, two `modbus-read` nodes (holding 0–99
/// and 100–199, every 250 ms), each wired to an `mqtt out` (QoS 0) publishing its payload.
fn node_red_flows(unit_ports: &[u16], broker: u16, prefix: &str) -> Value {
    let mut nodes = vec![
        json!({"id": "tab", "type": "tab", "label": "bench", "disabled": false, "info": ""}),
        json!({"id": "broker", "type": "mqtt-broker", "name": "bench", "broker": "127.0.0.1", "port": broker.to_string(),
               "clientid": "", "autoConnect": true, "usetls": false, "protocolVersion": "4", "keepalive": "60",
               "cleansession": true, "autoUnsubscribe": true, "birthTopic": "", "closeTopic": "", "willTopic": ""}),
    ];
    for (i, port) in unit_ports.iter().enumerate() {
        let unit = i + 1;
        let client = format!("client-{unit:02}");
        nodes.push(json!({
            "id": client, "type": "modbus-client", "name": format!("u{unit:02}"), "clienttype": "tcp",
            "bufferCommands": true, "stateLogEnabled": false, "queueLogEnabled": false, "failureLogEnabled": true,
            "tcpHost": "127.0.0.1", "tcpPort": port.to_string(), "tcpType": "DEFAULT",
            "serialPort": "/dev/ttyUSB", "serialType": "RTU-BUFFERD", "serialBaudrate": "9600", "serialDatabits": "8",
            "serialStopbits": "1", "serialParity": "none", "serialConnectionDelay": "100",
            "serialAsciiResponseStartDelimiter": "0x3A", "unit_id": "1", "commandDelay": "1", "clientTimeout": "1000",
            "reconnectOnTimeout": true, "reconnectTimeout": "2000", "parallelUnitIdsAllowed": true
        }));
        for adr in [0usize, 100] {
            let read = format!("read-{unit:02}-{adr}");
            let out = format!("out-{unit:02}-{adr}");
            nodes.push(json!({
                "id": read, "type": "modbus-read", "z": "tab", "name": "", "topic": "", "showStatusActivities": false,
                "logIOActivities": false, "showErrors": false, "unitid": "", "dataType": "HoldingRegister",
                "adr": adr.to_string(), "quantity": "100", "rate": POLL.as_millis().to_string(), "rateUnit": "ms",
                "delayOnStart": false, "startDelayTime": "", "server": client, "useIOFile": false, "ioFile": "",
                "useIOForPayload": false, "emptyMsgOnFail": false, "x": 200, "y": 40 * unit, "wires": [[out], []]
            }));
            nodes.push(json!({
                "id": out, "type": "mqtt out", "z": "tab", "name": "", "topic": format!("{prefix}u{unit:02}/r{adr}"),
                "qos": "0", "retain": "false", "respTopic": "", "contentType": "", "userProps": "", "correl": "",
                "expiry": "", "broker": "broker", "x": 500, "y": 40 * unit, "wires": []
            }));
        }
    }
    Value::Array(nodes)
}

/// modbus2mqtt's CSV: per unit two pollers of 100 holding registers every 0.25 s, and one
/// read-only reference (its own topic) per register.
fn modbus2mqtt_config(units: usize) -> String {
    let mut s = String::from("\"type\",\"topic\",\"col2\",\"col3\",\"col4\",\"col5\",\"col6\"\n");
    let rate = POLL.as_secs_f64();
    for unit in 1..=units {
        for start in [0usize, 100] {
            s.push_str(&format!("poll,u{unit:02},{unit},{start},100,holding_register,{rate}\n"));
            for r in start..start + 100 {
                s.push_str(&format!("ref,r{r},{r},r,uint16,\n"));
            }
        }
    }
    s
}

async fn onvif(ctx: &Ctx, installed: &Installed) -> Result<Vec<Row>> {
    eprintln!("  ONVIF, {CAMERAS} simulated cameras every 10 s: starting the simulator");
    let sim =
        SimProc::spawn(&ctx.self_bin, CAMERAS, 0, "zone-status-word", 0, device_sim::camera::DEFAULT_PICTURE_SIZE)?;
    let windows = ctx.pick(3, 2);
    let over = format!("{windows} windows of 10 s");
    let mut rows = Vec::new();

    // The gateway.
    eprintln!("  branch-gateway, {CAMERAS} cameras");
    let gw = onvif_gateway(ctx, &sim, windows).await;
    // The zeep loop.
    let zeep = match &installed.zeep {
        Ok(python) => {
            eprintln!("  onvif-zeep-async loop, {CAMERAS} cameras");
            onvif_zeep(ctx, &sim, python, windows).await
        }
        Err(_) => Err(anyhow::anyhow!("not installed (see its install row)")),
    };
    drop(sim);

    let per_camera = |label: &str, f: &Result<CameraFigures>, rows: &mut Vec<Row>, requests: f64, how: &str| match f {
        Ok(f) => {
            rows.push(
                Row::new(
                    SCENARIO,
                    &format!("CPU per camera probe, {label}"),
                    "ms",
                    Summary::of(&f.per_probe),
                    &over,
                    None,
                )
                .with_note(format!(
                    "{:.0} probes/s ({} failed); process CPU {:.2} % of a core; {how}",
                    f.probes_per_s, f.errors, f.cpu_percent
                )),
            );
            let per_request: Vec<f64> = f.per_probe.iter().map(|p| p / requests).collect();
            rows.push(Row::new(
                SCENARIO,
                &format!("CPU per camera request, {label}"),
                "ms",
                Summary::of(&per_request),
                &over,
                None,
            ));
            rows.push(Row::new(
                SCENARIO,
                &format!("RSS, {label}"),
                "MiB",
                Summary::of(&[f.rss_mib]),
                "largest VmRSS sampled",
                None,
            ));
        }
        Err(e) => rows.push(Row::error(SCENARIO, &format!("CPU per camera probe, {label}"), format!("{e:#}"))),
    };
    per_camera(
        &format!("branch-gateway, {CAMERAS} cameras"),
        &gw,
        &mut rows,
        GATEWAY_REQUESTS_PER_PROBE,
        "probes = cameras × window ÷ 10 s; per request: ÷ 3.33 (GetDeviceInformation, RTSP DESCRIBE, PullMessages; GetSystemDateAndTime and the snapshot every 6th probe)",
    );
    per_camera(
        &format!("onvif-zeep-async loop, {CAMERAS} cameras"),
        &zeep,
        &mut rows,
        ZEEP_REQUESTS_PER_PROBE,
        "probes counted by the loop; per request: ÷ 4 (GetSystemDateAndTime, GetDeviceInformation, GetStreamUri, the snapshot)",
    );
    let figure = "gateway ÷ zeep loop, CPU per camera probe";
    match (&gw, &zeep) {
        (Ok(g), Ok(z)) => {
            let (g, z) = (Summary::of(&g.per_probe), Summary::of(&z.per_probe));
            match (g, z) {
                (Some(g), Some(z)) => rows.push(
                    Row::new(
                        SCENARIO,
                        figure,
                        "×",
                        Summary::of(&[g.median / z.median]),
                        "medians of the windows",
                        Budget::at_most(0.05),
                    )
                    .with_note(format!(
                        "{:.3} ms ÷ {:.3} ms; per request {:.3} ÷ {:.3} ms = {:.3}",
                        g.median,
                        z.median,
                        g.median / GATEWAY_REQUESTS_PER_PROBE,
                        z.median / ZEEP_REQUESTS_PER_PROBE,
                        (g.median / GATEWAY_REQUESTS_PER_PROBE) / (z.median / ZEEP_REQUESTS_PER_PROBE)
                    )),
                ),
                _ => rows.push(Row::error(SCENARIO, figure, "no window measured")),
            }
        }
        _ => rows.push(Row::error(SCENARIO, figure, "the gateway or the zeep loop could not be measured")),
    }
    Ok(rows)
}

struct CameraFigures {
    /// CPU per probe, ms, one per window.
    per_probe: Vec<f64>,
    probes_per_s: f64,
    errors: u64,
    cpu_percent: f64,
    rss_mib: f64,
}

async fn onvif_gateway(ctx: &Ctx, sim: &SimProc, windows: usize) -> Result<CameraFigures> {
    let branch = "bench-peers-onvif";
    let mut site = Site::new(branch);
    site.camera_poll = CAMERA_POLL;
    site.cameras = sim.cameras.clone();
    let mut sub = Subscriber::start(ctx.broker.port, &format!("branches/{branch}/#")).await?;
    let mut gw = Gateway::spawn(&ctx.gateway_bin, &ctx.dir("peers-gateway-onvif"), &site, ctx.broker.port)?;
    let r = async {
        wait_devices(&mut sub, &mut gw, branch, &site.device_ids(), Duration::from_secs(120)).await?;
        // One whole period after the first probes (media URIs and subscriptions are set up then).
        tokio::time::sleep(CAMERA_POLL).await;
        gw.check_alive()?;
        let (mut per_probe, mut cpu_s, mut wall_s, mut rss) = (Vec::new(), 0.0, 0.0, 0u64);
        for _ in 0..windows {
            sub.drain();
            let w = measure(gw.pid(), CAMERA_POLL).await?;
            let probes = CAMERAS as f64 * w.wall / CAMERA_POLL.as_secs_f64();
            per_probe.push(w.cpu * 1000.0 / probes);
            cpu_s += w.cpu;
            wall_s += w.wall;
            rss = rss.max(w.rss_max);
        }
        Ok(CameraFigures {
            per_probe,
            probes_per_s: CAMERAS as f64 / CAMERA_POLL.as_secs_f64(),
            errors: 0,
            cpu_percent: 100.0 * cpu_s / wall_s.max(1e-9),
            rss_mib: rss as f64 / MIB,
        })
    }
    .await;
    gw.stop();
    r
}

async fn onvif_zeep(ctx: &Ctx, sim: &SimProc, python: &Path, windows: usize) -> Result<CameraFigures> {
    let dir = ctx.dir("peers-zeep");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let list = dir.join("cameras.json");
    let urls: Vec<&str> = sim.cameras.iter().map(|c| c.onvif.as_str()).collect();
    std::fs::write(&list, serde_json::to_string(&urls)?)?;
    let script = harness::workspace_root().join("bench/peers/onvif_zeep_loop.py");
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg("--cameras")
        .arg(&list)
        .args(["--interval", &CAMERA_POLL.as_secs().to_string()])
        .current_dir(&dir);
    let mut zeep = LineChild::spawn(&mut cmd, "the onvif-zeep-async loop", &dir.join("zeep.log"))?;
    let ready = zeep.line(Duration::from_secs(300)).await.context("the zeep loop's set-up")?;
    let n = ready["cameras"].as_u64().unwrap_or(0) as usize;
    if n < CAMERAS {
        bail!("the zeep loop set up {n} of {CAMERAS} cameras; first error: {}", ready["first_error"]);
    }
    tokio::time::sleep(CAMERA_POLL).await;
    let counts = |v: &Value| (v["probes"].as_u64().unwrap_or(0), v["errors"].as_u64().unwrap_or(0));
    let (mut per_probe, mut cpu_s, mut wall_s, mut rss, mut probes_all, mut errors) =
        (Vec::new(), 0.0, 0.0, 0u64, 0u64, 0u64);
    for _ in 0..windows {
        let (p0, e0) = counts(&zeep.ask("counts").await?);
        let w = measure(zeep.pid(), CAMERA_POLL).await?;
        let (p1, e1) = counts(&zeep.ask("counts").await?);
        let probes = p1.saturating_sub(p0);
        if probes == 0 {
            bail!("the zeep loop finished no probe in a window ({} failed)", e1 - e0);
        }
        per_probe.push(w.cpu * 1000.0 / probes as f64);
        cpu_s += w.cpu;
        wall_s += w.wall;
        rss = rss.max(w.rss_max);
        probes_all += probes;
        errors += e1.saturating_sub(e0);
    }
    Ok(CameraFigures {
        per_probe,
        probes_per_s: probes_all as f64 / wall_s.max(1e-9),
        errors,
        cpu_percent: 100.0 * cpu_s / wall_s.max(1e-9),
        rss_mib: rss as f64 / MIB,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_profile_is_valid_and_has_200_zones() {
        let p = protocols::modbus::parse(PROFILE).expect("the bench's profile");
        assert_eq!(p.points.len(), REGISTERS);
        // Merged into two reads (125 + 75 registers), as the peers make two of 100.
        assert_eq!(p.plan(p.max_gap).len(), 2);
    }

    #[test]
    fn free_ports_never_repeat() {
        let ports = free_ports(64).unwrap();
        let distinct: std::collections::HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), 64);
    }

    #[test]
    fn modbus2mqtt_gets_two_pollers_and_200_references_per_unit() {
        let csv = modbus2mqtt_config(2);
        assert_eq!(csv.lines().filter(|l| l.starts_with("poll,")).count(), 4);
        assert_eq!(csv.lines().filter(|l| l.starts_with("ref,")).count(), 400);
        assert!(csv.contains("poll,u02,2,100,100,holding_register,0.25\n"));
    }

    #[test]
    fn node_red_reads_each_unit_twice_and_publishes_each_read() {
        let flows = node_red_flows(&[1502, 1503], 1883, "peers/node-red/");
        let nodes = flows.as_array().unwrap();
        let count = |t: &str| nodes.iter().filter(|n| n["type"] == t).count();
        assert_eq!((count("modbus-client"), count("modbus-read"), count("mqtt out")), (2, 4, 4));
        assert!(nodes.iter().any(|n| n["topic"] == "peers/node-red/u02/r100"));
    }
}
