//! `device-sim`: serves a simulated branch on loopback (or any local address) so that an
//! installer can commission a gateway before the real devices are on site, and plays
//! scenario files (a branch plus a timeline of faults and events) for demos and tests.
//!
//! Subcommands: `serve` (N generic devices), `run SCENARIO` (play a scenario file), `check
//! SCENARIO…` (validate files), `ctl` (a client of the control API). docs/SIMULATOR.md is the
//! manual. Stdout carries only the documented lines (device addresses, `control URL`, and with
//! `--events-json` one JSON object per action); logs go to stderr.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use device_sim::camera::AuthMode;
use device_sim::control;
use device_sim::panel::PanelKindSim;
use device_sim::scenario::{
    self, AlarmZoneDef, BranchDef, CameraDef, DoorDef, GatewayDef, LiveBranch, PanelDef, Scenario, ZoneDef,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast::error::RecvError;

#[derive(Parser)]
#[command(
    name = "device-sim",
    version,
    about = "Simulated ONVIF cameras and Modbus alarm/access panels for commissioning and tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Auth {
    UsernameToken,
    Digest,
}

/// Options shared by `serve` and `run`.
#[derive(clap::Args)]
struct HostOpts {
    /// Address the simulated devices listen on (each on its own free port).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Where the control API listens (loopback only; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    control: SocketAddr,
    /// Also write a matching gateway site config to this file (password files next to it).
    #[arg(long)]
    emit_config: Option<PathBuf>,
    /// The broker the emitted config (and the link proxy) points at; overrides the scenario's.
    #[arg(long)]
    broker: Option<String>,
    /// Print one JSON line per applied action (timeline and control API) on stdout.
    #[arg(long)]
    events_json: bool,
    /// Answer WS-Discovery probes for the cameras (UDP 3702 multicast on the `--bind` address;
    /// off by default so that several simulators can share a machine).
    #[arg(long)]
    discovery: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a generic branch: N cameras, alarm panels and door controllers, each on its own port.
    Serve {
        #[arg(long, default_value_t = 8)]
        cameras: usize,
        #[arg(long, default_value_t = 1)]
        alarm_panels: usize,
        #[arg(long, default_value_t = 1)]
        access_panels: usize,
        #[arg(long, value_enum, default_value_t = Auth::UsernameToken)]
        auth: Auth,
        #[arg(long, default_value = "admin")]
        username: String,
        #[arg(long, default_value = "admin")]
        password: String,
        #[command(flatten)]
        host: HostOpts,
    },
    /// Play a scenario file: start its branch, then apply its timeline on schedule.
    Run {
        /// The scenario (TOML; see docs/SIMULATOR.md and deploy/scenarios/).
        scenario: PathBuf,
        /// Timeline speed factor: 2 plays twice as fast, 0.5 half as fast.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Exit once the timeline (and the scenario's `duration`) is over, instead of serving on.
        #[arg(long)]
        exit_when_done: bool,
        #[command(flatten)]
        host: HostOpts,
    },
    /// Check scenario files and list every problem (exit 2 if there is any).
    Check {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Drive a running simulator through its control API.
    Ctl {
        /// The control address `device-sim` printed (`http://127.0.0.1:PORT` or `127.0.0.1:PORT`).
        #[arg(long)]
        control: String,
        #[command(subcommand)]
        what: Ctl,
    },
}

#[derive(Subcommand)]
enum Ctl {
    /// Show every device: addresses, faults, events, point states.
    Devices,
    /// Switch a camera fault: `camera cam-03 down on`, `camera cam-03 slow on --ms 1500`.
    Camera {
        id: String,
        fault: String,
        #[arg(value_enum)]
        state: OnOff,
        #[arg(long)]
        ms: Option<u64>,
        #[arg(long, allow_hyphen_values = true)]
        seconds: Option<i64>,
    },
    /// Set a camera health condition: `event cam-03 tamper on`.
    Event {
        id: String,
        kind: String,
        #[arg(value_enum)]
        state: OnOff,
    },
    /// Set a panel point: `point alarm-1 zone.2 alarm`, or `point alarm-1 zone.2 --raw 3`.
    Point {
        panel: String,
        point: String,
        state: Option<String>,
        #[arg(long, conflicts_with = "state")]
        raw: Option<f64>,
    },
    /// Switch a panel fault: `panel alarm-1 no-answer on`, `panel alarm-1 exception on --code 6`.
    Panel {
        id: String,
        fault: String,
        #[arg(value_enum)]
        state: OnOff,
        #[arg(long)]
        ms: Option<u64>,
        #[arg(long)]
        code: Option<i64>,
    },
    /// Stop or restart a panel's heartbeat: `heartbeat alarm-1 off`.
    Heartbeat {
        panel: String,
        #[arg(value_enum)]
        state: OnOff,
    },
    /// Cut or restore the MQTT link proxy: `link down`.
    Link {
        #[arg(value_enum)]
        state: UpDown,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, ValueEnum)]
enum UpDown {
    Up,
    Down,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(2),
            };
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("device-sim: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async {
        match cli.command {
            Command::Check { scenarios } => check(&scenarios),
            Command::Ctl { control, what } => match ctl(&control, what).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("device-sim ctl: {e:#}");
                    ExitCode::from(1)
                }
            },
            Command::Run { scenario, speed, exit_when_done, host } => {
                if !(speed.is_finite() && (0.01..=1000.0).contains(&speed)) {
                    eprintln!("device-sim: --speed {speed} is out of range (fix: give a factor from 0.01 to 1000)");
                    return ExitCode::from(2);
                }
                let scn = match scenario::load(&scenario) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::from(2);
                    }
                };
                report(host_branch(scn, host, speed, exit_when_done).await)
            }
            Command::Serve { cameras, alarm_panels, access_panels, auth, username, password, host } => {
                let scn = match generic_branch(cameras, alarm_panels, access_panels, auth, &username, &password) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("device-sim: {e:#}");
                        return ExitCode::from(2);
                    }
                };
                report(host_branch(scn, host, 1.0, false).await)
            }
        }
    })
}

fn report(r: Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("device-sim: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut bad = false;
    for f in files {
        match scenario::load(f) {
            Ok(s) => println!(
                "{}: ok (branch {}, {} camera(s), {} panel(s), {} zone(s), {} alarm zone(s), {} door(s), {} step(s) over {})",
                f.display(),
                s.branch.id,
                s.cameras.len(),
                s.panels.len(),
                s.zones.len(),
                s.alarm_zones.len(),
                s.doors.len(),
                s.timeline.len(),
                humantime::format_duration(s.last_step())
            ),
            Err(e) => {
                bad = true;
                eprintln!("{e}");
            }
        }
    }
    if bad { ExitCode::from(2) } else { ExitCode::SUCCESS }
}

/// `serve`'s branch as a scenario without a timeline: N cameras watching one required zone,
/// alarm panels with `zone.1` as an alarm zone, access panels with `door.1` as a door.
fn generic_branch(
    cameras: usize,
    alarm_panels: usize,
    access_panels: usize,
    auth: Auth,
    username: &str,
    password: &str,
) -> Result<Scenario> {
    if cameras + alarm_panels + access_panels > scenario::MAX_DEVICES {
        bail!("at most {} devices per process (fix: run several simulators)", scenario::MAX_DEVICES);
    }
    let profile = |kind: PanelKindSim| {
        protocols::modbus::builtin(kind.profile_name())
            .map(Arc::new)
            .with_context(|| format!("built-in profile {}", kind.profile_name()))
    };
    let alarm_profile = profile(PanelKindSim::Alarm)?;
    let access_profile = profile(PanelKindSim::Access)?;
    let camera_ids: Vec<String> = (1..=cameras).map(|i| format!("cam-{i:02}")).collect();
    let mut panels = Vec::new();
    let (mut alarm_zones, mut doors) = (Vec::new(), Vec::new());
    for (kind, count, prefix, prof) in [
        (PanelKindSim::Alarm, alarm_panels, "alarm", &alarm_profile),
        (PanelKindSim::Access, access_panels, "access", &access_profile),
    ] {
        for i in 1..=count {
            let id = format!("{prefix}-{i}");
            if kind == PanelKindSim::Alarm {
                alarm_zones.push(AlarmZoneDef {
                    id: format!("{id}-zone-1"),
                    name: format!("Alarm panel {i}, zone 1"),
                    panel: id.clone(),
                    point: "zone.1".into(),
                    partition: None,
                    twenty_four_hour: false,
                    area: Some("branch".into()),
                    linked_cameras: camera_ids.iter().take(1).cloned().collect(),
                });
            } else {
                doors.push(DoorDef {
                    id: format!("{id}-door-1"),
                    name: format!("Door controller {i}, door 1"),
                    panel: id.clone(),
                    point: "door.1".into(),
                    area: Some("branch".into()),
                    linked_cameras: camera_ids.iter().take(1).cloned().collect(),
                    held_open_limit: None,
                });
            }
            panels.push(PanelDef {
                name: if kind == PanelKindSim::Alarm {
                    format!("Alarm panel {i}")
                } else {
                    format!("Door controller {i}")
                },
                id,
                kind,
                profile_name: kind.profile_name().into(),
                profile: prof.clone(),
                unit_id: 1,
                faults: Vec::new(),
                heartbeat: true,
                points: Vec::new(),
                poll_interval: None,
            });
        }
    }
    Ok(Scenario {
        source: PathBuf::from("(serve)"),
        name: "serve".into(),
        description: "device-sim serve".into(),
        duration: None,
        branch: BranchDef { id: "sim-branch".into(), name: "Simulated branch".into() },
        gateway: GatewayDef::default(),
        link: None,
        zones: vec![ZoneDef {
            id: "branch".into(),
            name: "Whole branch".into(),
            coverage_required: true,
            min_live_cameras: None,
        }],
        cameras: camera_ids
            .iter()
            .enumerate()
            .map(|(i, id)| CameraDef {
                id: id.clone(),
                name: format!("Camera {}", i + 1),
                zones: vec!["branch".into()],
                auth: match auth {
                    Auth::UsernameToken => AuthMode::UsernameToken,
                    Auth::Digest => AuthMode::Digest,
                },
                username: username.into(),
                password: password.into(),
                faults: Vec::new(),
                events: Vec::new(),
                maintenance: false,
                poll_interval: None,
            })
            .collect(),
        panels,
        alarm_zones,
        doors,
        timeline: Vec::new(),
    })
}

/// Starts the branch, prints where everything is, emits the config, serves the control API,
/// plays the timeline, and serves on until Ctrl-C / SIGTERM (or the end, with
/// `exit_when_done`).
async fn host_branch(scn: Scenario, host: HostOpts, speed: f64, exit_when_done: bool) -> Result<()> {
    let broker = host.broker.clone().unwrap_or_else(|| scn.gateway.broker.clone());
    let branch = Arc::new(LiveBranch::start(&scn, host.bind, &broker).await.context("start the branch")?);
    let result = serve_branch(&scn, &branch, &host, &broker, speed, exit_when_done).await;
    branch.shutdown().await;
    result
}

async fn serve_branch(
    scn: &Scenario,
    branch: &Arc<LiveBranch>,
    host: &HostOpts,
    broker: &str,
    speed: f64,
    exit_when_done: bool,
) -> Result<()> {
    for c in branch.cameras() {
        println!("camera {} onvif={} rtsp={} snapshot={}", c.id, c.device_url, c.rtsp_uri, c.snapshot_uri);
    }
    for p in branch.panels() {
        println!("panel  {} modbus={} unit={}", p.id, p.addr, p.unit_id);
    }
    if let Some(l) = branch.link() {
        println!("link   listen={} target={}", l.listen(), l.target());
    }
    let _discovery = if host.discovery {
        let d = branch.start_discovery(host.bind).context("start the WS-Discovery responder")?;
        println!("discovery udp/3702 on {}", host.bind);
        Some(d)
    } else {
        None
    };
    let server = control::serve(host.control, branch.clone()).await.context("start the control API")?;
    println!("control {}", server.url());
    if let Some(path) = &host.emit_config {
        let files = scenario::emit::write(path, scn, branch, broker)?;
        println!("wrote a matching gateway config to {} (and {} password file(s))", path.display(), files.len() - 1);
    }
    let mut journal = host.events_json.then(|| branch.subscribe());
    if !scn.timeline.is_empty() {
        println!(
            "playing {}: {} step(s) over {} at speed {speed}",
            scn.source.display(),
            scn.timeline.len(),
            humantime::format_duration(scn.last_step())
        );
    }
    println!("serving; Ctrl-C to stop");
    let start = branch.start_clock();
    let end = scn.end();
    let play = async {
        let refused = scenario::play(branch, &scn.timeline, speed, start).await;
        if let Some(d) = Duration::try_from_secs_f64(end.as_secs_f64() / speed).ok().and_then(|d| start.checked_add(d))
        {
            tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
        }
        refused
    };
    tokio::pin!(play);
    let mut played: Option<usize> = None;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            rec = recv(&mut journal) => match rec {
                Ok(rec) => println!("{}", rec.to_json()),
                Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "events-json output fell behind"),
                Err(RecvError::Closed) => journal = None,
            },
            refused = &mut play, if played.is_none() => {
                played = Some(refused);
                if !scn.timeline.is_empty() {
                    tracing::info!(steps = scn.timeline.len(), refused, "timeline done");
                }
                if exit_when_done {
                    break;
                }
            }
            r = &mut stop => {
                r?;
                break;
            }
        }
    }
    // Print what was journaled before the end.
    if let Some(j) = journal.as_mut() {
        while let Ok(rec) = j.try_recv() {
            println!("{}", rec.to_json());
        }
    }
    server.shutdown();
    match played {
        Some(n) if n > 0 && exit_when_done => bail!("{n} timeline step(s) were refused (see the log)"),
        _ => Ok(()),
    }
}

async fn recv(
    j: &mut Option<tokio::sync::broadcast::Receiver<scenario::Record>>,
) -> Result<scenario::Record, RecvError> {
    match j {
        Some(j) => j.recv().await,
        None => std::future::pending().await,
    }
}

/// Ctrl-C or SIGTERM (systemd, `kill`, a test harness).
async fn shutdown_signal() -> Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("install the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("wait for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("wait for Ctrl-C")
    }
}

/// The client side of the control API: one request, the JSON answer on stdout, exit 1 on a
/// refusal (the API's message on stderr).
async fn ctl(control: &str, what: Ctl) -> Result<ExitCode> {
    let addr = control.trim_start_matches("http://").trim_end_matches('/');
    let on = |s: OnOff| matches!(s, OnOff::On);
    let (method, path, body): (&str, String, Option<Value>) = match what {
        Ctl::Devices => ("GET", "/devices".into(), None),
        Ctl::Camera { id, fault, state, ms, seconds } => {
            let mut b = json!({"fault": fault, "on": on(state)});
            if let Some(ms) = ms {
                b["ms"] = json!(ms);
            }
            if let Some(s) = seconds {
                b["seconds"] = json!(s);
            }
            ("POST", format!("/cameras/{id}/faults"), Some(b))
        }
        Ctl::Event { id, kind, state } => {
            ("POST", format!("/cameras/{id}/events"), Some(json!({"kind": kind, "active": on(state)})))
        }
        Ctl::Point { panel, point, state, raw } => {
            let b = match (state, raw) {
                (Some(s), None) => json!({"state": s}),
                (None, Some(r)) => json!({"raw": r}),
                _ => bail!("give a state (e.g. alarm) or --raw N"),
            };
            ("POST", format!("/panels/{panel}/points/{point}"), Some(b))
        }
        Ctl::Panel { id, fault, state, ms, code } => {
            let mut b = json!({"fault": fault, "on": on(state)});
            if let Some(ms) = ms {
                b["ms"] = json!(ms);
            }
            if let Some(c) = code {
                b["code"] = json!(c);
            }
            ("POST", format!("/panels/{id}/faults"), Some(b))
        }
        Ctl::Heartbeat { panel, state } => {
            ("POST", format!("/panels/{panel}/heartbeat"), Some(json!({"running": on(state)})))
        }
        Ctl::Link { state } => ("POST", "/link".into(), Some(json!({"up": matches!(state, UpDown::Up)}))),
    };
    let (status, text) =
        tokio::time::timeout(Duration::from_secs(10), http_request(addr, method, &path, body.as_ref()))
            .await
            .with_context(|| format!("no answer from {addr} within 10 s"))??;
    if (200..300).contains(&status) {
        println!("{}", text.trim_end());
        Ok(ExitCode::SUCCESS)
    } else {
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        eprintln!("device-sim ctl: HTTP {status}: {msg}");
        Ok(ExitCode::from(1))
    }
}

/// A minimal HTTP/1.1 exchange (`Connection: close`), enough for the loopback control API.
async fn http_request(addr: &str, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, String)> {
    let mut stream =
        tokio::net::TcpStream::connect(addr).await.with_context(|| format!("connect to the control API at {addr}"))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.context("send the request")?;
    let mut buf = Vec::new();
    stream.take(4 * 1024 * 1024).read_to_end(&mut buf).await.context("read the answer")?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").context("the answer is not HTTP")?;
    let status =
        head.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok()).context("the answer has no HTTP status")?;
    Ok((status, body.to_string()))
}
