//! `branch-demo`: the whole product in one command, with nothing to install.
//!
//! It starts an embedded MQTT broker (rumqttd) on a free loopback port, a simulated branch
//! (8 ONVIF cameras, an intrusion-alarm panel and a door controller over Modbus TCP), the real
//! gateway on a generated site config in a temporary directory, and head office: a view that
//! subscribes to the broker and prints each alert and the coverage table as they arrive, and
//! the real `hq` listener storing everything in a SQLite database (the embedded default), from
//! which the assessment of the demo's minutes is printed at the end.
//! A scripted scenario then plays — a camera is lost, an alarm zone fires, a door is forced,
//! the camera recovers — over real sockets. The traffic is real, not a replay.

// Data here comes from devices, networks, files, databases and users: no unwrap or expect
// outside tests (a test's panic is its failure).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use device_sim::camera::{AuthMode, CameraFault, CameraFleet, CameraSpec};
use device_sim::panel::{PanelFleet, PanelSpec};
use gateway::config::SiteConfig;
use gateway::pollers::panel::ProfileStore;
use headoffice::db::{DbUrl, OpenMode, Role, Store, UserChange};
use headoffice::directory::Directory;
use headoffice::listen::{self, ListenConfig};
use headoffice::mqtt::BrokerSettings;
use headoffice::report::{self, Window};
use headoffice::web::{self, ServeConfig};
use i18n::{Lang, tr};
use protocols::topics::{TopicKind, parse};
use protocols::{Alert, AlertState, CoverageReport, Severity};
use rumqttc::{Event, Incoming, QoS};
use tokio_util::sync::CancellationToken;

const PREFIX: &str = "branches";
const BRANCH: &str = "demo-0101";

#[derive(Parser)]
#[command(name = "branch-demo", about = "Run a simulated branch, the gateway and a head-office view, all on loopback")]
struct Args {
    /// Exit this long after the scenario starts (default: run until Ctrl-C).
    #[arg(long, value_parser = humantime_parse)]
    exit_after: Option<Duration>,
    /// Cameras in the simulated branch.
    #[arg(long, default_value_t = 8)]
    cameras: usize,
    /// Language of the demo's output and of the alerts: en or zh-CN (default: the locale).
    #[arg(long, value_parser = i18n::parse_flag)]
    lang: Option<Lang>,
    /// Head office's database (default: a SQLite file in the demo's temporary directory, gone
    /// at exit). Give e.g. sqlite://demo-hq.db to keep it and read it with `hq report`.
    #[arg(long, value_name = "URL")]
    hq_db: Option<String>,
    /// Port of head office's web console on 127.0.0.1 (default: a free one).
    #[arg(long, default_value_t = 0)]
    console_port: u16,
}

fn humantime_parse(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}; write e.g. 45s or 2m"))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    // One language for the whole demo: its lines, the gateway's alerts, the log.
    Lang::choose(args.lang).set_current();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rumqttd=off"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    if let Err(e) = run(args).await {
        eprintln!("branch-demo: {e:#}");
        std::process::exit(1);
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The embedded broker: an MQTT 3.1.1 listener on `port` (head office's listener and the
/// demo's subscriber) and an MQTT 5 listener on `port5` (the gateway, which speaks MQTT 5 so
/// that a refused publish is seen), both on one router.
fn start_broker(port: u16, port5: u16) -> Result<()> {
    use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
    let listener = |name: &str, port: u16| ServerSettings {
        name: name.into(),
        listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 1024 * 1024,
            max_inflight_count: 200,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let v4 = HashMap::from([("1".to_string(), listener("v4-1", port))]);
    let v5 = HashMap::from([("1".to_string(), listener("v5-1", port5))]);
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 64,
            max_outgoing_packet_count: 200,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(v4),
        v5: Some(v5),
        ..Default::default()
    };
    std::thread::Builder::new().name("broker".into()).spawn(move || {
        let mut broker = Broker::new(config);
        if let Err(e) = broker.start() {
            eprintln!(
                "branch-demo: {}",
                tr!(Lang::current(), "embedded broker stopped: {e}", "内置消息服务器已停止：{e}")
            );
        }
    })?;
    // Wait until both accept.
    for _ in 0..100 {
        let up = |p: u16| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok();
        if up(port) && up(port5) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("the embedded broker did not start on 127.0.0.1:{port}")
}

const CAMERA_NAMES: [&str; 8] = [
    "Main entrance",
    "Cash counter 1",
    "Cash counter 2",
    "Vault door",
    "Self-service area",
    "Cash handover",
    "Staff door",
    "Lobby",
];
const CAMERA_ZONES: [&str; 8] =
    ["entrance", "counters", "counters", "vault", "self-service", "handover", "entrance", "lobby"];

fn site_config(dir: &Path, broker_port: u16, cams: &CameraFleet, panels: &PanelFleet, lang: &str) -> Result<String> {
    let mut s = format!(
        r#"# Generated by branch-demo: a simulated branch on loopback.
[branch]
id = "{BRANCH}"
name = "Demo branch"
language = "{lang}"

[uplink]
broker = "mqtt://127.0.0.1:{broker_port}"
topic_prefix = "{PREFIX}"
keep_alive = "10s"

[storage]
path = "outbox"

[metrics]
listen = "127.0.0.1:0"

[health]
offline_after = 2
online_after = 2
coverage_period = "30s"

[[zone]]
id = "entrance"
name = "Entrance"
coverage_required = true
[[zone]]
id = "counters"
name = "Cash counters"
coverage_required = true
min_live_cameras = 2
[[zone]]
id = "vault"
name = "Vault"
coverage_required = true
[[zone]]
id = "self-service"
name = "Self-service area"
coverage_required = true
[[zone]]
id = "handover"
name = "Cash handover area"
coverage_required = true
[[zone]]
id = "lobby"
name = "Lobby"
"#
    );
    std::fs::write(dir.join("camera.pass"), "demo-pass\n")?;
    for (i, c) in cams.cameras().iter().enumerate() {
        let zone = CAMERA_ZONES.get(i).copied().unwrap_or("lobby");
        let name = CAMERA_NAMES.get(i).map(|n| n.to_string()).unwrap_or_else(|| format!("Camera {}", i + 1));
        s.push_str(&format!(
            r#"
[[camera]]
id = "{}"
name = "{name}"
onvif = "{}"
username = "admin"
password_file = "camera.pass"
zones = ["{zone}"]
poll_interval = "1s"
timeout = "500ms"
"#,
            c.id, c.device_url
        ));
    }
    for p in panels.panels() {
        let (kind, profile, name) = if p.id.starts_with("alarm") {
            ("alarm", "generic-alarm", "Intrusion alarm panel")
        } else {
            ("access", "generic-access", "Door controller")
        };
        s.push_str(&format!(
            r#"
[[panel]]
id = "{}"
name = "{name}"
kind = "{kind}"
address = "{}"
unit_id = {}
profile = "{profile}"
poll_interval = "250ms"
timeout = "500ms"
"#,
            p.id, p.addr, p.unit_id
        ));
    }
    s.push_str(
        r#"
[[alarm_zone]]
id = "vault-contact"
name = "Vault door contact"
panel = "alarm-1"
point = "zone.1"
partition = "partition.1"
area = "vault"
linked_cameras = ["cam-04"]

[[alarm_zone]]
id = "counter-panic"
name = "Counter panic button"
panel = "alarm-1"
point = "zone.2"
twenty_four_hour = true
area = "counters"
linked_cameras = ["cam-02", "cam-03"]

[[door]]
id = "staff-door"
name = "Staff door"
panel = "access-1"
point = "door.1"
area = "entrance"
held_open_limit = "30s"
linked_cameras = ["cam-07"]
"#,
    );
    Ok(s)
}

async fn run(args: Args) -> Result<()> {
    let port = free_port()?;
    let port5 = free_port()?;
    start_broker(port, port5)?;
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let specs = (0..args.cameras)
        .map(|i| CameraSpec {
            id: format!("cam-{:02}", i + 1),
            name: CAMERA_NAMES.get(i).map(|n| n.to_string()).unwrap_or_else(|| format!("Camera {}", i + 1)),
            username: "admin".into(),
            password: "demo-pass".into(),
            auth: if i % 2 == 0 { AuthMode::UsernameToken } else { AuthMode::Digest },
        })
        .collect();
    let cams = CameraFleet::start(loopback, specs).await.context("start simulated cameras")?;
    let alarm_profile = protocols::modbus::builtin("generic-alarm").context("built-in profile generic-alarm")?;
    let access_profile = protocols::modbus::builtin("generic-access").context("built-in profile generic-access")?;
    let panels = PanelFleet::start(
        loopback,
        vec![
            PanelSpec {
                id: "alarm-1".into(),
                name: "Intrusion alarm panel".into(),
                profile: alarm_profile,
                unit_id: 1,
            },
            PanelSpec { id: "access-1".into(), name: "Door controller".into(), profile: access_profile, unit_id: 1 },
        ],
    )
    .await
    .context("start simulated panels")?;

    let dir = tempfile::tempdir()?;
    let cfg_path = dir.path().join("branch.toml");
    std::fs::write(&cfg_path, site_config(dir.path(), port5, &cams, &panels, Lang::current().code())?)?;
    let cfg = SiteConfig::load(&cfg_path, &ProfileStore).map_err(|e| anyhow::anyhow!("{e}"))?;

    let l = Lang::current();
    let n = args.cameras;
    println!("{}", l.t("Branch security gateway — demo", "网点安防网关 — 演示"));
    println!(
        "{}",
        tr!(
            l,
            "  broker      mqtt://127.0.0.1:{port} (embedded; MQTT 5 for the gateway on {port5})",
            "  消息服务器  mqtt://127.0.0.1:{port}（内置；网关经 {port5} 端口使用 MQTT 5）"
        )
    );
    println!(
        "{}",
        tr!(
            l,
            "  branch      {BRANCH}: {n} cameras, 1 alarm panel, 1 door controller (simulated)",
            "  网点        {BRANCH}：{n} 台摄像机、1 台报警主机、1 台门禁控制器（模拟）"
        )
    );
    println!("{}", tr!(l, "  site config {}", "  网点配置    {}", cfg_path.display()));
    let db_url = match &args.hq_db {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", dir.path().join("hq.db").display()),
    };
    let db_url = DbUrl::parse(&db_url).context("--hq-db")?;
    let store = Store::open(&db_url, OpenMode::Create).await.context("open head office's database")?;
    println!(
        "{}",
        tr!(
            l,
            "  head office subscribed to {PREFIX}/#; hq listen stores into {}",
            "  总行        已订阅 {PREFIX}/#；hq listen 存入 {}",
            db_url.display
        )
    );
    let console_stop = CancellationToken::new();
    let committed = std::sync::Arc::new(tokio::sync::Notify::new());
    let console = start_console(&store, args.console_port, committed.clone(), console_stop.clone()).await?;
    println!();

    let stop = CancellationToken::new();
    let hq = tokio::spawn(head_office_view(port, stop.clone()));
    let hq_stop = CancellationToken::new();
    let listener = {
        let (store, stop) = (store.clone(), hq_stop.clone());
        let cfg = ListenConfig {
            broker: BrokerSettings { clean_session: false, ..BrokerSettings::loopback(port, "demo-hq-listen") },
            prefix: PREFIX.into(),
            share_group: None,
            committed: Some(committed),
        };
        tokio::spawn(async move { listen::listen(&cfg, &store, stop).await })
    };
    let started = protocols::time::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gw_stop = CancellationToken::new();
    let gw = tokio::spawn(gateway::app::run(cfg, gw_stop.clone()));

    let scenario = tokio::spawn(play(cams.clone(), panels.clone()));
    let ctrl_c = tokio::signal::ctrl_c();
    match args.exit_after {
        Some(d) => {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = ctrl_c => {}
            }
        }
        None => {
            let _ = ctrl_c.await;
        }
    }
    scenario.abort();
    say(
        l.t("demo", "演示"),
        l.t(
            "stopping: gateway publishes `offline` after flushing its outbox",
            "正在停止：网关清空发件箱后发布 `offline`",
        ),
    );
    gw_stop.cancel();
    match gw.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("gateway: {e:#}"),
        Err(e) => eprintln!("{}", tr!(Lang::current(), "gateway task: {e}", "网关任务：{e}")),
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let _ = hq.await;
    hq_stop.cancel();
    console_stop.cancel();
    let _ = console.await;
    match listener.await {
        Ok(Ok(stats)) => print_assessment(&store, &db_url, started, stats.new_alerts, args.hq_db.is_some()).await,
        Ok(Err(e)) => eprintln!("hq listen: {e:#}"),
        Err(e) => eprintln!("{}", tr!(Lang::current(), "hq listen task: {e}", "hq listen 任务：{e}")),
    }
    store.close().await;
    cams.shutdown().await;
    panels.shutdown().await;
    Ok(())
}

/// The demo user of the console; its password is made up anew at every run.
const CONSOLE_USER: &str = "demo";

/// Starts head office's web console (`hq serve`) on the demo's database, with a demo user.
async fn start_console(
    store: &Store,
    port: u16,
    committed: std::sync::Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let password = format!("demo-{:08x}", rand_u32());
    let hash = web::hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = protocols::time::now();
    if !store.create_user(CONSOLE_USER, &hash, Role::Admin, now).await? {
        let change = UserChange { password_hash: Some(hash), disabled: Some(false), ..UserChange::default() };
        store.update_user(CONSOLE_USER, &change, now).await?;
    }
    let directory = Directory::parse(format!("id,name,region\n{BRANCH},示范支行 Demo branch,Demo\n").as_bytes())
        .map_err(|(line, e)| anyhow::anyhow!("demo directory line {line}: {e}"))?;
    let tcp = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("console: cannot listen on 127.0.0.1:{port}"))?;
    let addr = tcp.local_addr()?;
    println!(
        "{}",
        tr!(
            Lang::current(),
            "  console     http://{addr}/  (sign in as {CONSOLE_USER} / {password}; watch {BRANCH} turn red)",
            "  网页控制台  http://{addr}/（以 {CONSOLE_USER} / {password} 登录，看 {BRANCH} 变红）"
        )
    );
    let cfg =
        ServeConfig { directory: std::sync::Arc::new(directory), changed: Some(committed), ..ServeConfig::default() };
    Ok(tokio::spawn(web::serve(tcp, store.clone(), cfg, stop)))
}

/// A random number for the demo password (from the OS's hasher seeds: no extra dependency).
fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish() as u32
}

/// What head office's database says about the demo's minutes: the assessment of `hq report`.
async fn print_assessment(store: &Store, db: &DbUrl, from: protocols::time::Timestamp, stored: u64, kept: bool) {
    let to = protocols::time::now();
    let Ok(w) = Window::new(from, to) else { return };
    let data = match store.report_data(w).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("hq report: {e}");
            return;
        }
    };
    let r = report::build(data, w);
    let t = &r.totals;
    let l = Lang::current();
    let availability = t.camera_availability_pct.map(|p| format!("{p:.1} %")).unwrap_or_else(|| "-".into());
    let (uncovered, alarms, down) = (t.required_zone_uncovered_minutes, t.alarms, t.alarms_with_camera_down);
    println!();
    println!(
        "{}",
        tr!(
            l,
            "Head office's database ({}): {stored} alerts stored. The assessment of these minutes:",
            "总行数据库（{}）：已存 {stored} 条告警。这几分钟的考核：",
            db.display
        )
    );
    println!(
        "{}",
        tr!(
            l,
            "  camera availability {availability}; required zones uncovered {uncovered:.1} min; alarms {alarms}, with a camera down: {down}",
            "  摄像机可用率 {availability}；必防区无人看护 {uncovered:.1} 分钟；报警 {alarms} 次，其中联动摄像机故障 {down} 次"
        )
    );
    for m in &r.mttr {
        let (kind, minutes, repairs) = (&m.device_type, m.mean_minutes, m.repairs);
        println!(
            "{}",
            tr!(
                l,
                "  mean time to repair ({kind}): {minutes:.1} min over {repairs} repair(s)",
                "  平均修复时间（{kind}）：{minutes:.1} 分钟，共 {repairs} 次修复"
            )
        );
    }
    if kept {
        println!(
            "{}",
            tr!(
                l,
                "  (the same, and more: hq report --db {} --from -1h --format html --out report.html)",
                "  （同样的内容及更多：hq report --db {} --from -1h --format html --out report.html）",
                db.display
            )
        );
    } else {
        println!(
            "{}",
            l.t(
                "  (the database goes with the demo; keep it with --hq-db sqlite://demo-hq.db, then hq report --db …)",
                "  （数据库随演示结束而删除；要保留请加 --hq-db sqlite://demo-hq.db，再用 hq report --db … 查看）"
            )
        );
    }
}

fn say(who: &str, what: &str) {
    let now = chrono::Local::now().format("%H:%M:%S%.3f");
    println!("{now} [{who}] {what}");
    let _ = std::io::stdout().flush();
}

/// The scripted scenario, about 30 seconds.
async fn play(cams: CameraFleet, panels: PanelFleet) -> Result<()> {
    let step = |secs: u64| tokio::time::sleep(Duration::from_secs(secs));
    step(4).await;
    say(
        Lang::current().t("scenario", "场景"),
        Lang::current().t("arming the intrusion alarm (partition 1)", "布防入侵报警（分区 1）"),
    );
    panels.set_point("alarm-1", "partition.1", "armed")?;
    step(2).await;
    say(
        Lang::current().t("scenario", "场景"),
        Lang::current().t("cam-04 (Vault door) loses power", "cam-04（金库门）断电"),
    );
    cams.set_fault("cam-04", CameraFault::Down, true)?;
    step(6).await;
    say(Lang::current().t("scenario", "场景"), Lang::current().t("the vault door contact opens", "金库门磁打开"));
    panels.set_point("alarm-1", "zone.1", "alarm")?;
    step(3).await;
    panels.set_point("alarm-1", "zone.1", "normal")?;
    step(2).await;
    say(
        Lang::current().t("scenario", "场景"),
        Lang::current().t("the staff door is forced open", "员工通道门被强行打开"),
    );
    panels.set_point("access-1", "door.1", "forced")?;
    step(3).await;
    say(Lang::current().t("scenario", "场景"), Lang::current().t("the staff door closes", "员工通道门关闭"));
    panels.set_point("access-1", "door.1", "closed")?;
    step(3).await;
    say(Lang::current().t("scenario", "场景"), Lang::current().t("cam-04 comes back", "cam-04 恢复"));
    cams.set_fault("cam-04", CameraFault::Down, false)?;
    step(5).await;
    say(
        Lang::current().t("scenario", "场景"),
        Lang::current()
            .t("done — the gateway keeps running; press Ctrl-C to stop", "场景结束——网关继续运行；按 Ctrl-C 停止"),
    );
    Ok(())
}

/// A head-office view: subscribes to every branch and prints what arrives.
async fn head_office_view(port: u16, stop: CancellationToken) {
    let opts =
        BrokerSettings { keep_alive: Duration::from_secs(10), ..BrokerSettings::loopback(port, "demo-head-office") };
    let (client, mut el) = opts.v311_client(64, |_| {});
    if let Err(e) = client.subscribe(format!("{PREFIX}/#"), QoS::AtLeastOnce).await {
        eprintln!("head office: subscribe: {e}");
        return;
    }
    let mut last_cov: Option<String> = None;
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => return,
            ev = el.poll() => ev,
        };
        match ev {
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                let Some(kind) = parse(PREFIX, &p.topic) else { continue };
                match kind {
                    TopicKind::Alert { .. } => match serde_json::from_slice::<Alert>(&p.payload) {
                        Ok(a) => print_alert(&a),
                        Err(e) => say(
                            Lang::current().t("head office", "总行"),
                            &tr!(Lang::current(), "unreadable alert on {}: {e}", "{} 上的告警无法解析：{e}", p.topic),
                        ),
                    },
                    TopicKind::Gateway { branch } => {
                        let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap_or_default();
                        let status = v["status"].as_str().unwrap_or("?");
                        say(
                            Lang::current().t("head office", "总行"),
                            &tr!(Lang::current(), "gateway {branch} is {status}", "网关 {branch}：{status}"),
                        );
                    }
                    TopicKind::Coverage { .. } => {
                        if let Ok(r) = serde_json::from_slice::<CoverageReport>(&p.payload) {
                            let table = coverage_table(&r);
                            if last_cov.as_deref() != Some(table.as_str()) {
                                println!("{table}");
                                last_cov = Some(table);
                            }
                        }
                    }
                    TopicKind::Device { .. } => {}
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

fn print_alert(a: &Alert) {
    let state = match a.state {
        AlertState::Raised => "RAISED ",
        AlertState::Cleared => "cleared",
    };
    let sev = match a.severity {
        Severity::Critical => "CRITICAL",
        Severity::Major => "major   ",
        Severity::Warning => "warning ",
        Severity::Info => "info    ",
    };
    say(
        Lang::current().t("head office", "总行"),
        // i18n-exempt: codes and the alert's own message, already in the branch's language
        &format!("#{:<4} {state} {sev} {:<15} {:<9} {}", a.seq.0, a.kind().as_str(), a.device.id.as_str(), a.message),
    );
}

fn coverage_table(r: &CoverageReport) -> String {
    let l = Lang::current();
    let (branch, live, all) = (&r.branch, r.totals.cameras_live_video, r.totals.cameras_configured);
    let (uncovered, required) = (r.totals.required_zones_uncovered, r.totals.required_zones);
    let mut s = tr!(
        l,
        "    coverage of {branch}: {live}/{all} cameras live, {uncovered} of {required} required zones uncovered\n",
        "    {branch} 的看护情况：{live}/{all} 台摄像机画面正常，{required} 个必防区中 {uncovered} 个无人看护\n"
    );
    s.push_str(l.t(
        "    zone                 required  live/min  covered\n",
        "    区域                 必防      正常/最少 有看护\n",
    ));
    for z in &r.zones {
        s.push_str(&format!(
            // i18n-exempt: a table row of names and numbers; its words are translated below
            "    {:<20} {:<9} {:>4}/{:<4} {}\n",
            z.name,
            if z.required { l.t("yes", "是") } else { l.t("no", "否") },
            z.cameras_live_video,
            z.min_live_cameras,
            if z.covered { l.t("yes", "是") } else { l.t("NO — unwatched", "否——无人看护") }
        ));
    }
    s
}
