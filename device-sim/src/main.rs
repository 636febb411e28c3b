//! `device-sim`: serves a simulated branch on loopback (or any local address) so that an
//! installer can commission a gateway before the real devices are on site, and plays
//! scenario files (a branch plus a timeline of faults and events) for demos and tests.
//!
//! Subcommands: `serve` (N generic devices), `run SCENARIO` (play a scenario file), `check
//! SCENARIO…` (validate files), `ctl` (a client of the control API). docs/SIMULATOR.md is the
//! manual. Stdout carries only the documented lines (device addresses, `control URL`, and with
//! `--events-json` one JSON object per action); logs go to stderr.
//!
//! What a person reads is in English or Chinese (`--lang`, else the locale); the lines scripts
//! parse (device addresses, `control`, `discovery`, JSON) never change. Exit codes: 0 success;
//! 1 a runtime failure (a port taken, the control API unreachable…); 2 bad usage or a bad
//! scenario.

// Data here comes from devices, networks, files, databases and users: no unwrap or expect
// outside tests (a test's panic is its failure).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use device_sim::camera::{self, AuthMode};
use device_sim::control;
use device_sim::panel::{self, PanelKindSim};
use device_sim::scenario::emit::EmitError;
use device_sim::scenario::link::LinkError;
use device_sim::scenario::ports::PortPlan;
use device_sim::scenario::{
    self, AlarmZoneDef, BranchDef, CameraDef, DoorDef, GatewayDef, LiveBranch, PanelDef, Scenario, StartError, ZoneDef,
};
use i18n::{Lang, tr};
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
    /// The language of what a person reads (en or zh-CN); default: the locale (LC_ALL,
    /// LC_MESSAGES, LANG), English unless it is zh_*. The lines scripts read (device
    /// addresses, `control`, JSON), field names, codes and exit statuses never change.
    #[arg(long, global = true, value_name = "LANG", value_parser = i18n::parse_flag)]
    lang: Option<Lang>,
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
    /// Address the simulated devices listen on (each on its own port: free, or see --base-port).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Stable ports, so that an emitted config survives a restart: camera i (file order, from
    /// 0) listens on BASE+2i (ONVIF) and BASE+2i+1 (RTSP), panel j on BASE+2C+j (C cameras),
    /// the link proxy on BASE+2C+P (P panels), the control API on BASE+2C+P+1. A `port` on a
    /// scenario entry wins; overrides the scenario's `base_port`.
    #[arg(long, value_name = "BASE", value_parser = clap::value_parser!(u16).range(1..))]
    base_port: Option<u16>,
    /// Where the control API listens (loopback only; port 0 picks a free port, or the one
    /// after the devices' with --base-port).
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
    // clap's own handling: help and version on stdout with exit 0, a usage error on stderr with
    // exit 2 — the same in every program of the workspace.
    let cli = Cli::parse();
    let lang = Lang::choose(cli.lang);
    lang.set_current();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            fail(&tr!(lang, "cannot start the runtime: {e}", "无法启动异步运行时：{e}"));
            return ExitCode::from(1);
        }
    };
    rt.block_on(async {
        match cli.command {
            Command::Check { scenarios } => check(&scenarios, lang),
            Command::Ctl { control, what } => match ctl(&control, what, lang).await {
                Ok(code) => code,
                Err(e) => {
                    // i18n-exempt: the program's name; the message is translated where it is made
                    eprintln!("device-sim ctl: {e:#}");
                    ExitCode::from(1)
                }
            },
            Command::Run { scenario, speed, exit_when_done, host } => {
                if !(speed.is_finite() && (0.01..=1000.0).contains(&speed)) {
                    fail(&tr!(
                        lang,
                        "--speed {speed} is out of range (fix: give a factor from 0.01 to 1000)",
                        "--speed {speed} 超出范围（修正：给一个 0.01 到 1000 之间的倍数）"
                    ));
                    return ExitCode::from(2);
                }
                let scn = match scenario::load(&scenario) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("{}", e.render(lang));
                        return ExitCode::from(2);
                    }
                };
                report(host_branch(scn, host, speed, exit_when_done, lang).await)
            }
            Command::Serve { cameras, alarm_panels, access_panels, auth, username, password, host } => {
                let scn = match generic_branch(cameras, alarm_panels, access_panels, auth, &username, &password, lang) {
                    Ok(s) => s,
                    Err(e) => {
                        fail(&format!("{e:#}"));
                        return ExitCode::from(2);
                    }
                };
                report(host_branch(scn, host, 1.0, false, lang).await)
            }
        }
    })
}

/// `device-sim: MESSAGE` on stderr.
fn fail(message: &str) {
    eprintln!("device-sim: {message}");
}

/// Why `run` or `serve` stopped: the message (already in the reader's language) and the exit
/// code (2: fix the scenario or the flags; 1: something at run time).
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: String) -> Failure {
        Failure { code: 2, message }
    }

    fn runtime(message: String) -> Failure {
        Failure { code: 1, message }
    }
}

fn report(r: Result<(), Failure>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            for line in f.message.lines() {
                fail(line);
            }
            ExitCode::from(f.code)
        }
    }
}

fn check(files: &[PathBuf], lang: Lang) -> ExitCode {
    let mut bad = false;
    for f in files {
        match scenario::load(f) {
            Ok(s) => {
                let (file, branch) = (f.display(), &s.branch.id);
                let (cams, panels, zones) = (s.cameras.len(), s.panels.len(), s.zones.len());
                let (alarm_zones, doors, steps) = (s.alarm_zones.len(), s.doors.len(), s.timeline.len());
                let over = humantime::format_duration(s.last_step());
                println!(
                    "{}",
                    tr!(
                        lang,
                        "{file}: ok (branch {branch}, {cams} camera(s), {panels} panel(s), {zones} zone(s), \
                         {alarm_zones} alarm zone(s), {doors} door(s), {steps} step(s) over {over})",
                        "{file}：正常（网点 {branch}，摄像机 {cams} 台，报警主机/门禁控制器 {panels} 台，区域 {zones} 个，\
                         防区 {alarm_zones} 个，门 {doors} 个，时间线 {steps} 步，历时 {over}）"
                    )
                );
            }
            Err(e) => {
                bad = true;
                eprintln!("{}", e.render(lang));
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
    lang: Lang,
) -> Result<Scenario> {
    let max = scenario::MAX_DEVICES;
    if cameras + alarm_panels + access_panels > max {
        bail!(
            "{}",
            tr!(
                lang,
                "at most {max} devices per process (fix: run several simulators)",
                "每个进程最多 {max} 台设备（修正：分几个模拟器运行）"
            )
        );
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
                port: None,
            });
        }
    }
    Ok(Scenario {
        source: PathBuf::from("(serve)"),
        name: "serve".into(),
        description: "device-sim serve".into(),
        duration: None,
        base_port: None,
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
                port: None,
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
async fn host_branch(
    scn: Scenario,
    host: HostOpts,
    speed: f64,
    exit_when_done: bool,
    lang: Lang,
) -> Result<(), Failure> {
    let plan = scenario::ports::plan(&scn, host.base_port, host.control.port())
        .map_err(|errors| Failure::usage(errors.iter().map(|e| e.render(lang)).collect::<Vec<_>>().join("\n")))?;
    let broker = host.broker.clone().unwrap_or_else(|| scn.gateway.broker.clone());
    let branch = match LiveBranch::start_on(&scn, host.bind, &broker, &plan).await {
        Ok(b) => Arc::new(b),
        Err(e) => return Err(start_failure(&e, &scn, &plan, lang)),
    };
    let result = serve_branch(&scn, &branch, &host, &plan, &broker, speed, exit_when_done, lang).await;
    branch.shutdown().await;
    result
}

/// Why the branch did not start, in `lang`; a taken or forbidden port names the device it was
/// meant for and what to do.
fn start_failure(e: &StartError, scn: &Scenario, plan: &PortPlan, lang: Lang) -> Failure {
    let bind = match e {
        StartError::Cameras(camera::SimError::Bind { addr, source })
        | StartError::Panels(panel::SimError::Bind { addr, source, .. })
        | StartError::Link(LinkError::Bind { addr, source }) => Some((addr, source)),
        _ => None,
    };
    if let Some((addr, source)) = bind {
        let who = plan.owner(scn, addr.port()).map(|t| t.get(lang).to_string());
        return Failure::runtime(bind_message(*addr, source, who.as_deref(), lang));
    }
    match e {
        StartError::Ports(errors) => {
            Failure::usage(errors.iter().map(|e| e.render(lang)).collect::<Vec<_>>().join("\n"))
        }
        StartError::Link(LinkError::BadBroker(url)) => Failure::usage(tr!(
            lang,
            "broker URL {url:?} has no host (fix: write mqtt://HOST:PORT)",
            "消息服务器地址 {url:?} 中没有主机（修正：写成 mqtt://主机:端口）"
        )),
        StartError::Initial(e) => {
            let why = e.text();
            let why = why.get(lang);
            Failure::runtime(tr!(lang, "cannot set the branch's initial state: {why}", "无法设置网点的初始状态：{why}"))
        }
        other => Failure::runtime(tr!(lang, "cannot start the branch: {other}", "无法启动网点：{other}")),
    }
}

/// A listener that could not be opened: the address, the device, the cause and the fix.
fn bind_message(addr: SocketAddr, source: &std::io::Error, who: Option<&str>, lang: Lang) -> String {
    let port = addr.port();
    let who = who.map(|w| tr!(lang, " for {w}", "（{w}）")).unwrap_or_default();
    match source.kind() {
        std::io::ErrorKind::AddrInUse => tr!(
            lang,
            "port {port} on {addr} is taken{who}: {source} (fix: stop the program that listens there \
             (`ss -ltnp 'sport = :{port}'` shows it), or choose another --base-port or `port`)",
            "{addr} 的端口 {port} 已被占用{who}：{source}（修正：停掉占用它的程序\
             （`ss -ltnp 'sport = :{port}'` 可以查到），或换一个 --base-port 或 `port`）"
        ),
        std::io::ErrorKind::PermissionDenied => tr!(
            lang,
            "cannot listen on port {port} of {addr}{who}: {source} (fix: ports below 1024 need root; choose one from 1024 up)",
            "无法在 {addr} 的端口 {port} 上监听{who}：{source}（修正：1024 以下的端口需要 root 权限；请用 1024 及以上的端口）"
        ),
        _ => tr!(
            lang,
            "cannot listen on port {port} of {addr}{who}: {source} (fix: check --bind and the port)",
            "无法在 {addr} 的端口 {port} 上监听{who}：{source}（修正：检查 --bind 和端口）"
        ),
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_branch(
    scn: &Scenario,
    branch: &Arc<LiveBranch>,
    host: &HostOpts,
    plan: &PortPlan,
    broker: &str,
    speed: f64,
    exit_when_done: bool,
    lang: Lang,
) -> Result<(), Failure> {
    for c in branch.cameras() {
        // i18n-exempt: machine-read line
        println!("camera {} onvif={} rtsp={} snapshot={}", c.id, c.device_url, c.rtsp_uri, c.snapshot_uri);
    }
    for p in branch.panels() {
        // i18n-exempt: machine-read line
        println!("panel  {} modbus={} unit={}", p.id, p.addr, p.unit_id);
    }
    if let Some(l) = branch.link() {
        // i18n-exempt: machine-read line
        println!("link   listen={} target={}", l.listen(), l.target());
    }
    let _discovery = if host.discovery {
        let d = branch.start_discovery(host.bind).map_err(|e| {
            Failure::runtime(tr!(
                lang,
                "cannot start the WS-Discovery responder: {e} (fix: run without --discovery, or stop the \
                 program that holds UDP port 3702)",
                "无法启动 WS-Discovery 应答：{e}（修正：去掉 --discovery，或停掉占用 UDP 3702 端口的程序）"
            ))
        })?;
        // i18n-exempt: machine-read line
        println!("discovery udp/3702 on {}", host.bind);
        Some(d)
    } else {
        None
    };
    let control_addr = SocketAddr::new(host.control.ip(), plan.control);
    let server = control::serve(control_addr, branch.clone()).await.map_err(|e| match e {
        control::ControlError::NotLoopback(addr) => Failure::runtime(tr!(
            lang,
            "the control API has no authentication and listens on loopback only; {addr} is not a loopback \
             address (fix: use 127.0.0.1:PORT, and an SSH tunnel to reach it from elsewhere)",
            "控制接口没有认证，只在本机回环地址上监听；{addr} 不是回环地址（修正：用 127.0.0.1:端口，\
             从别处访问请用 SSH 隧道）"
        )),
        control::ControlError::Bind { addr, source } => {
            let who = i18n::text!("the control API", "控制接口");
            Failure::runtime(bind_message(addr, &source, Some(who.get(lang)), lang))
        }
    })?;
    // i18n-exempt: machine-read line
    println!("control {}", server.url());
    if let Some(path) = &host.emit_config {
        let files = scenario::emit::write(path, scn, branch, broker).map_err(|e| {
            server.shutdown();
            Failure::runtime(emit_message(&e, lang))
        })?;
        let (path, n) = (path.display(), files.len() - 1);
        println!(
            "{}",
            tr!(
                lang,
                "wrote a matching gateway config to {path} (and {n} password file(s))",
                "已把匹配的网关配置写到 {path}（另有 {n} 个密码文件）"
            )
        );
    }
    let mut journal = host.events_json.then(|| branch.subscribe());
    if !scn.timeline.is_empty() {
        let (file, steps) = (scn.source.display(), scn.timeline.len());
        let over = humantime::format_duration(scn.last_step());
        println!(
            "{}",
            tr!(
                lang,
                "playing {file}: {steps} step(s) over {over} at speed {speed}",
                "正在播放 {file}：时间线共 {steps} 步，历时 {over}，速度 {speed} 倍"
            )
        );
    }
    println!("{}", lang.t("serving; Ctrl-C to stop", "正在运行；按 Ctrl-C 停止"));
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
    let mut stopped = Ok(());
    loop {
        tokio::select! {
            rec = recv(&mut journal) => match rec {
                // i18n-exempt: machine-read line (one JSON object)
                Ok(rec) => println!("{}", rec.to_json()),
                Err(RecvError::Lagged(n)) => tracing::warn!(
                    missed = n,
                    "{}",
                    lang.t("events-json output fell behind", "--events-json 的输出跟不上，漏掉了一些记录")
                ),
                Err(RecvError::Closed) => journal = None,
            },
            refused = &mut play, if played.is_none() => {
                played = Some(refused);
                if !scn.timeline.is_empty() {
                    tracing::info!(steps = scn.timeline.len(), refused, "{}", lang.t("timeline done", "时间线播放完毕"));
                }
                if exit_when_done {
                    break;
                }
            }
            r = &mut stop => {
                stopped = r.map_err(|e| {
                    Failure::runtime(tr!(lang, "cannot wait for Ctrl-C: {e:#}", "无法等待 Ctrl-C：{e:#}"))
                });
                break;
            }
        }
    }
    // Print what was journaled before the end.
    if let Some(j) = journal.as_mut() {
        while let Ok(rec) = j.try_recv() {
            // i18n-exempt: machine-read line (one JSON object)
            println!("{}", rec.to_json());
        }
    }
    server.shutdown();
    stopped?;
    match played {
        Some(n) if n > 0 && exit_when_done => Err(Failure::runtime(tr!(
            lang,
            "{n} timeline step(s) were refused (see the log)",
            "时间线有 {n} 步被拒绝（见日志）"
        ))),
        _ => Ok(()),
    }
}

fn emit_message(e: &EmitError, lang: Lang) -> String {
    match e {
        EmitError::Write { path, source } => {
            let path = path.display();
            tr!(
                lang,
                "cannot write {path}: {source} (fix: check that the directory exists and is writable)",
                "无法写入 {path}：{source}（修正：检查目录是否存在、是否可写）"
            )
        }
        EmitError::Render(err) => tr!(lang, "cannot render the site config: {err}", "无法生成网点配置：{err}"),
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
/// refusal (the API's message on stderr, in `lang`: the request says `Accept-Language`).
async fn ctl(control: &str, what: Ctl, lang: Lang) -> Result<ExitCode> {
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
                _ => bail!("{}", lang.t("give a state (e.g. alarm) or --raw N", "请给出状态（例如 alarm）或 --raw N")),
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
        tokio::time::timeout(Duration::from_secs(10), http_request(addr, method, &path, body.as_ref(), lang))
            .await
            .map_err(|_| {
            anyhow::anyhow!(
                "{}",
                tr!(
                    lang,
                    "no answer from {addr} within 10 s (fix: check the address device-sim printed on its control line)",
                    "{addr} 在 10 秒内没有应答（修正：核对 device-sim 在 control 一行打印的地址）"
                )
            )
        })??;
    if (200..300).contains(&status) {
        // i18n-exempt: machine-read line (the API's JSON answer)
        println!("{}", text.trim_end());
        Ok(ExitCode::SUCCESS)
    } else {
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        // i18n-exempt: the program's name and the HTTP status; the API's message is in `lang`
        eprintln!("device-sim ctl: HTTP {status}: {msg}");
        Ok(ExitCode::from(1))
    }
}

/// A minimal HTTP/1.1 exchange (`Connection: close`), enough for the loopback control API.
async fn http_request(addr: &str, method: &str, path: &str, body: Option<&Value>, lang: Lang) -> Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.with_context(|| {
        tr!(
            lang,
            "cannot connect to the control API at {addr} (fix: is device-sim running? use the address of its control line)",
            "无法连接 {addr} 上的控制接口（修正：device-sim 是否在运行？请用它 control 一行打印的地址）"
        )
    })?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept-Language: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        lang.code(),
        body.len()
    );
    stream.write_all(req.as_bytes()).await.with_context(|| lang.t("send the request", "发送请求"))?;
    let mut buf = Vec::new();
    stream.take(4 * 1024 * 1024).read_to_end(&mut buf).await.with_context(|| lang.t("read the answer", "读取应答"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) =
        text.split_once("\r\n\r\n").with_context(|| lang.t("the answer is not HTTP", "应答不是 HTTP"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| lang.t("the answer has no HTTP status", "应答中没有 HTTP 状态码"))?;
    Ok((status, body.to_string()))
}
