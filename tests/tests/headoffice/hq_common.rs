//! Shared by the `hq_*` tests: a branch publisher (rumqttc, QoS 1, waits for every PUBACK),
//! payload builders from the `protocols` types with scripted timestamps, and helpers to run
//! `hq` and wait for it.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, TimeZone, Utc};
use device_sim::camera::{AuthMode, CameraFleet, CameraSpec};
use device_sim::panel::PanelFleet;
use harness::{Proc, bin, spawn_bin, write_file};
use protocols::alert::ALERT_SCHEMA;
use protocols::coverage::COVERAGE_SCHEMA;
use protocols::status::{DEVICE_HEALTH_SCHEMA, GATEWAY_STATUS_SCHEMA};
use protocols::{
    AlarmLinkDetails, Alert, AlertBody, AlertState, BranchId, CameraOfflineDetails, CoverageReport, CoverageTotals,
    DeviceFaultDetails, DeviceHealth, DeviceId, DeviceRef, DeviceType, GatewayState, GatewayStatus, LinkedCamera, Seq,
    Severity, ZoneCoverage, ZoneId,
};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

/// 2026-01-01 10:00 UTC plus `m` minutes: the scripted clock.
pub fn t(m: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).single().unwrap_or_default() + chrono::Duration::minutes(m)
}

/// A client that publishes like a branch gateway: QoS 1, and `flush` waits for every PUBACK.
pub struct Publisher {
    client: Client,
    acks: mpsc::Receiver<()>,
    sent: usize,
    acked: usize,
}

impl Publisher {
    pub fn connect(port: u16, id: &str) -> Result<Publisher> {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(10));
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut conn) = Client::new(o, 256);
        let (tx, acks) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        if tx.send(()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).context("the test publisher could not connect")?;
        Ok(Publisher { client, acks, sent: 0, acked: 0 })
    }

    pub fn raw(&mut self, topic: &str, payload: &[u8], retain: bool) -> Result<()> {
        self.client.publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())?;
        self.sent += 1;
        // Keep publishes in order and within the broker's in-flight window.
        self.flush()
    }

    pub fn json<T: serde::Serialize>(&mut self, topic: &str, v: &T, retain: bool) -> Result<()> {
        self.raw(topic, &serde_json::to_vec(v)?, retain)
    }

    /// Publishes without waiting for the PUBACK (a burst); `flush` waits for all of them. At
    /// most 100 are left unacknowledged, rumqttc's in-flight window.
    pub fn alert_burst(&mut self, a: &Alert) -> Result<()> {
        let topic = format!("branches/{}/alerts/{}", a.branch, a.kind().as_str());
        self.client.publish(topic, QoS::AtLeastOnce, false, serde_json::to_vec(a)?)?;
        self.sent += 1;
        while self.sent - self.acked > 90 {
            self.acks.recv_timeout(Duration::from_secs(10)).context("PUBACKs did not arrive")?;
            self.acked += 1;
        }
        Ok(())
    }

    pub fn alert(&mut self, a: &Alert) -> Result<()> {
        self.json(&format!("branches/{}/alerts/{}", a.branch, a.kind().as_str()), a, false)
    }
    pub fn gateway(&mut self, g: &GatewayStatus) -> Result<()> {
        self.json(&format!("branches/{}/gateway", g.branch), g, true)
    }
    pub fn device(&mut self, d: &DeviceHealth) -> Result<()> {
        self.json(&format!("branches/{}/devices/{}", d.branch, d.device.id), d, true)
    }
    pub fn coverage(&mut self, c: &CoverageReport) -> Result<()> {
        self.json(&format!("branches/{}/coverage", c.branch), c, true)
    }

    /// Waits until the broker has acknowledged everything published.
    pub fn flush(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.acked < self.sent {
            let left = deadline.checked_duration_since(Instant::now()).context("PUBACKs did not arrive")?;
            self.acks.recv_timeout(left).context("PUBACKs did not arrive")?;
            self.acked += 1;
        }
        Ok(())
    }
}

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    match s.parse() {
        Ok(v) => v,
        Err(e) => panic!("test id {s:?}: {e:?}"),
    }
}

pub fn branch(b: &str) -> BranchId {
    id(b)
}

pub fn device(id_: &str, ty: DeviceType, name: &str) -> DeviceRef {
    DeviceRef { id: id(id_), device_type: ty, name: name.into(), zones: vec![] }
}

pub fn camera(id_: &str) -> DeviceRef {
    device(id_, DeviceType::Camera, &format!("Camera {id_}"))
}

fn alert(b: &str, seq: u64, dev: DeviceRef, state: AlertState, at: DateTime<Utc>, body: AlertBody) -> Alert {
    Alert {
        schema: ALERT_SCHEMA.into(),
        id: format!("{b}-alert-{seq}"),
        seq: Seq(seq),
        branch: branch(b),
        state,
        severity: if state == AlertState::Raised { Severity::Major } else { Severity::Info },
        device: dev,
        occurred_at: at,
        detected_at: at + chrono::Duration::seconds(2),
        message: format!("scripted alert {seq}"),
        body,
    }
}

pub fn camera_offline(b: &str, seq: u64, cam: &str, state: AlertState, at: DateTime<Utc>) -> Alert {
    let raised = state == AlertState::Raised;
    alert(
        b,
        seq,
        camera(cam),
        state,
        at,
        AlertBody::CameraOffline(CameraOfflineDetails {
            status: if raised { "unreachable".into() } else { "online".into() },
            reason: if raised { "connect: connection refused".into() } else { "back".into() },
            consecutive_failures: if raised { 3 } else { 0 },
            armed: false,
            uncovered_zones: vec![],
            clock_skew_ms: None,
        }),
    )
}

pub fn linked(cam: &str, online: bool) -> LinkedCamera {
    LinkedCamera {
        id: id(cam),
        name: format!("Camera {cam}"),
        online,
        stream_alive: online,
        frozen: false,
        picture: None,
        stream_uri: Some(format!("rtsp://127.0.0.1:8554/{cam}")),
        snapshot_uri: None,
    }
}

pub fn alarm(b: &str, seq: u64, at: DateTime<Utc>, cams: Vec<LinkedCamera>) -> Alert {
    alert(
        b,
        seq,
        device("panel-1", DeviceType::AlarmPanel, "Intrusion panel"),
        AlertState::Raised,
        at,
        AlertBody::AlarmLink(AlarmLinkDetails {
            follow_up_of: None,
            snapshots: Vec::new(),
            zone: id("z-vault"),
            zone_name: "Vault door".into(),
            zone_state: "alarm".into(),
            partition: Some("1".into()),
            armed: true,
            twenty_four_hour: false,
            area: Some(id("vault")),
            cameras: cams,
        }),
    )
}

pub fn fault(b: &str, seq: u64, dev: DeviceRef, code: &str, state: AlertState, at: DateTime<Utc>) -> Alert {
    alert(
        b,
        seq,
        dev,
        state,
        at,
        AlertBody::DeviceFault(DeviceFaultDetails {
            fault: code.into(),
            reason: code.into(),
            dropped_events: None,
            outage_ms: None,
            waiting_events: None,
        }),
    )
}

pub fn gateway(b: &str, status: GatewayState, reason: Option<&str>, at: Option<DateTime<Utc>>) -> GatewayStatus {
    GatewayStatus {
        schema: GATEWAY_STATUS_SCHEMA.into(),
        branch: branch(b),
        status,
        reason: reason.map(str::to_string),
        at,
        version: "0.1.0".into(),
    }
}

pub fn health(b: &str, dev: DeviceRef, state: &str, since: DateTime<Utc>) -> DeviceHealth {
    DeviceHealth {
        schema: DEVICE_HEALTH_SCHEMA.into(),
        branch: branch(b),
        device: dev,
        state: state.into(),
        status: None,
        since,
        updated_at: since,
        reason: None,
        clock_skew_ms: None,
        resolution: None,
        encoding: None,
    }
}

/// A zone of a coverage report: (id, name, required, cameras, covered).
pub struct Z<'a>(pub &'a str, pub &'a str, pub bool, pub &'a [&'a str], pub bool);

/// A coverage report; `uncovered_since` of an uncovered zone is the report's `at`.
pub fn coverage(b: &str, at: DateTime<Utc>, zones: &[Z<'_>], cameras_online: u32) -> CoverageReport {
    let mut cams: Vec<&str> = zones.iter().flat_map(|z| z.3.iter().copied()).collect();
    cams.sort_unstable();
    cams.dedup();
    let zones: Vec<ZoneCoverage> = zones
        .iter()
        .map(|z| ZoneCoverage {
            id: id::<ZoneId>(z.0),
            name: z.1.into(),
            required: z.2,
            min_live_cameras: 1,
            cameras: z.3.iter().map(|c| id::<DeviceId>(c)).collect(),
            cameras_online: if z.4 { 1 } else { 0 },
            cameras_live_video: if z.4 { 1 } else { 0 },
            covered: z.4,
            uncovered_since: if z.4 { None } else { Some(at) },
        })
        .collect();
    CoverageReport {
        schema: COVERAGE_SCHEMA.into(),
        branch: branch(b),
        at,
        totals: CoverageTotals {
            cameras_configured: cams.len() as u32,
            cameras_online,
            cameras_live_video: cameras_online,
            required_zones: zones.iter().filter(|z| z.required).count() as u32,
            required_zones_uncovered: zones.iter().filter(|z| z.required && !z.covered).count() as u32,
        },
        zones,
    }
}

/// Which database a test runs against: every head-office test that reads or writes history runs
/// once on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database for one test: a SQLite file in `dir`, or a fresh PostgreSQL server of its own.
pub struct TestDb {
    pub url: String,
    pub pg: Option<harness::pg::Postgres>,
}

impl TestDb {
    pub fn new(backend: Backend, dir: &Path) -> Result<TestDb> {
        match backend {
            Backend::Sqlite => Ok(TestDb { url: format!("sqlite://{}", dir.join("hq.db").display()), pg: None }),
            Backend::Postgres => {
                let pg = harness::pg::Postgres::start()?;
                let url = pg.create_db("hq")?;
                Ok(TestDb { url, pg: Some(pg) })
            }
        }
    }
}

/// `hq listen` on `port`, writing to the database at `db`, logging to `log_dir/hq.log`;
/// returns once subscribed (or back in its persistent session).
pub fn start_listen(port: u16, db: &str, log_dir: &Path, extra: &[&str]) -> Result<Proc> {
    let broker = format!("mqtt://127.0.0.1:{port}");
    let mut args = vec!["listen", "--broker", broker.as_str(), "--db", db];
    args.extend_from_slice(extra);
    let mut p = spawn_bin("hq", &args, log_dir, &[("RUST_LOG", "info")])?;
    let log = log_dir.join("hq.log");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // A resumed persistent session is already subscribed; its SUBACK may queue behind
        // everything the broker kept meanwhile.
        if text.contains("subscribed") || text.contains("session_present=true") {
            return Ok(p);
        }
        if let Ok(Some(st)) = p.child.try_wait() {
            bail!("hq listen exited early ({st}):\n{text}");
        }
        if Instant::now() > deadline {
            p.kill();
            bail!("hq listen did not subscribe within 15 s:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `hq args` in `cwd`; returns (exit code, stdout, stderr).
pub fn hq_raw(cwd: &Path, args: &[&str]) -> Result<(i32, String, String)> {
    let out = Command::new(bin("hq")).args(args).current_dir(cwd).output().context("run hq (built?)")?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Runs `hq args` in a locale (`LANG=lang`, with LC_ALL and LC_MESSAGES unset, as a login
/// shell on a Chinese desktop has it) and returns stdout; fails unless it exits 0.
pub fn hq_in_locale(cwd: &Path, lang: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(bin("hq"))
        .args(args)
        .current_dir(cwd)
        .env("LANG", lang)
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .output()
        .context("run hq (built?)")?;
    if !out.status.success() {
        bail!("hq {args:?} (LANG={lang}) exited {:?}:\n{}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `hq args` and returns stdout; fails unless it exits 0.
pub fn hq(cwd: &Path, args: &[&str]) -> Result<String> {
    let (code, out, err) = hq_raw(cwd, args)?;
    if code != 0 {
        bail!("hq {args:?} exited {code}:\n{err}");
    }
    Ok(out)
}

/// `hq … --format json`, parsed.
pub fn hq_json(cwd: &Path, args: &[&str]) -> Result<serde_json::Value> {
    let out = hq(cwd, args)?;
    serde_json::from_str(&out).with_context(|| format!("hq {args:?} printed no JSON:\n{out}"))
}

/// `hq alerts --format json` (one alert per line) from the database at `db`.
pub fn stored_alerts(cwd: &Path, db: &str) -> Result<Vec<serde_json::Value>> {
    let out = hq(cwd, &["alerts", "--db", db, "--format", "json"])?;
    out.lines().map(|l| serde_json::from_str(l).context("an alert line is not JSON")).collect()
}

/// Polls `f` until it returns `Some`, or fails after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {timeout:?} {last}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops `p` with SIGTERM and returns its exit code.
pub fn stop(p: &mut Proc) -> Option<i32> {
    p.signal("TERM");
    p.wait_exit(Duration::from_secs(10))
}

pub fn approx(v: &serde_json::Value, expected: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - expected).abs() < 0.01)
}

// ---------------------------------------------------------------------------------------------
// The web console (`hq serve`)

/// Adds a console user with `hq user add`, the password given in a file.
pub fn add_user(cwd: &Path, db: &str, name: &str, role: &str, password: &str) -> Result<()> {
    let file = cwd.join(format!("pw-{name}"));
    std::fs::write(&file, format!("{password}\n"))?;
    hq(
        cwd,
        &["user", "add", name, "--role", role, "--user-password-file", file.to_str().context("path")?, "--db", db],
    )?;
    Ok(())
}

/// `hq serve --with-listener` on a free port of 127.0.0.1, storing what the broker on
/// `broker_port` carries; returns once it serves and is subscribed. Logs to `log_dir/hq.log`.
pub fn start_console(broker_port: u16, db: &str, log_dir: &Path, extra: &[&str]) -> Result<(Proc, String)> {
    let port = harness::free_port();
    let bind = format!("127.0.0.1:{port}");
    let broker = format!("mqtt://127.0.0.1:{broker_port}");
    let mut args = vec!["serve", "--bind", bind.as_str(), "--with-listener", "--broker", broker.as_str(), "--db", db];
    args.extend_from_slice(extra);
    let mut p = spawn_bin("hq", &args, log_dir, &[("RUST_LOG", "info")])?;
    let log = log_dir.join("hq.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("console serving") && (text.contains("subscribed") || text.contains("session_present=true")) {
            return Ok((p, format!("http://{bind}")));
        }
        if let Ok(Some(st)) = p.child.try_wait() {
            bail!("hq serve exited early ({st}):\n{text}");
        }
        if Instant::now() > deadline {
            p.kill();
            bail!("hq serve did not start within 20 s:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One response, read whole.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> Result<String> {
        let i = self.body.find("name=\"csrf\" value=\"").context("no CSRF token on the page")?;
        let rest = &self.body[i + "name=\"csrf\" value=\"".len()..];
        Ok(rest[..rest.find('"').context("unterminated token")?].to_string())
    }
}

/// A browser-less client of the console: keeps its session cookie, follows no redirects.
pub struct Web {
    pub base: String,
    client: reqwest::Client,
    pub cookie: Option<String>,
    pub accept_language: String,
}

/// Form encoding (application/x-www-form-urlencoded).
pub fn form(fields: &[(&str, &str)]) -> String {
    let enc = headoffice::web::encode;
    fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

impl Web {
    pub fn new(base: &str) -> Result<Web> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Web { base: base.to_string(), client, cookie: None, accept_language: "zh-CN,zh;q=0.9".into() })
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<Page> {
        let mut rb = rb.header("accept-language", &self.accept_language);
        if let Some(c) = &self.cookie {
            rb = rb.header("cookie", c);
        }
        let r = rb.send().await?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.text().await?;
        Ok(Page { status, headers, body })
    }

    pub async fn get(&self, path: &str) -> Result<Page> {
        self.send(self.client.get(format!("{}{path}", self.base))).await
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Result<Page> {
        self.post_with(path, fields, &[]).await
    }

    pub async fn post_with(&self, path: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Result<Page> {
        let mut rb = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(fields));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        self.send(rb).await
    }

    /// Signs in; keeps the session cookie. Returns the sign-in response.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<Page> {
        let p = self.post("/login", &[("user", user), ("password", password), ("next", "/")]).await?;
        if let Some(c) = p.headers.get("set-cookie").and_then(|v| v.to_str().ok()) {
            self.cookie = c.split(';').next().map(str::to_string);
        }
        Ok(p)
    }

    /// The CSRF token of this session (from the overview's forms).
    pub async fn csrf(&self) -> Result<String> {
        self.get("/").await?.csrf()
    }
}

// ---------------------------------------------------------------------------------------------
// A real branch: simulated devices and the gateway

/// A simulated branch (two cameras, an alarm panel) and its real gateway, polling every second.
pub struct Branch {
    pub id: String,
    pub cams: CameraFleet,
    pub panels: PanelFleet,
    pub gw: Proc,
}

/// Cameras "Vault" (cam-1, the required zone `vault`) and "Lobby" (cam-2), an alarm zone
/// `vault-door` linked to cam-1; the gateway's files and log under `dir/<id>/`.
pub async fn start_branch(id: &str, broker: u16, dir: &Path) -> Result<Branch> {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let specs = ["cam-1", "cam-2"]
        .iter()
        .map(|c| CameraSpec {
            id: c.to_string(),
            name: if *c == "cam-1" { "Vault".into() } else { "Lobby".into() },
            username: "admin".into(),
            password: "pw".into(),
            auth: AuthMode::UsernameToken,
        })
        .collect();
    let cams = CameraFleet::start(lo, specs).await?;
    let panels = harness::sim::panels(&[("alarm-1", "generic-alarm")]).await;
    let c = cams.cameras();
    let bdir = dir.join(id);
    std::fs::create_dir_all(&bdir)?;
    let text = format!(
        r#"
[branch]
id = "{id}"
name = "Branch {id}"
[uplink]
broker = "mqtt://127.0.0.1:{broker}"
keep_alive = "5s"
[storage]
path = "outbox"
[metrics]
enabled = false
[health]
offline_after = 2
online_after = 2
coverage_period = "5s"
[[zone]]
id = "vault"
name = "Vault"
coverage_required = true
[[zone]]
id = "lobby"
name = "Lobby"
[[camera]]
id = "cam-1"
name = "Vault"
onvif = "{}"
username = "admin"
password = "pw"
zones = ["vault"]
poll_interval = "1s"
timeout = "400ms"
[[camera]]
id = "cam-2"
name = "Lobby"
onvif = "{}"
username = "admin"
password = "pw"
zones = ["lobby"]
poll_interval = "1s"
timeout = "400ms"
[[panel]]
id = "alarm-1"
name = "Alarm"
kind = "alarm"
address = "{}"
profile = "generic-alarm"
poll_interval = "200ms"
[[alarm_zone]]
id = "vault-door"
name = "Vault door"
panel = "alarm-1"
point = "zone.1"
area = "vault"
linked_cameras = ["cam-1"]
"#,
        c[0].device_url,
        c[1].device_url,
        panels.panels()[0].addr
    );
    let cfg = write_file(&bdir, "site.toml", &text)?;
    let gw = spawn_bin("branch-gateway", &["run", cfg.to_str().context("a UTF-8 path")?], &bdir, &[])?;
    Ok(Branch { id: id.to_string(), cams, panels, gw })
}
