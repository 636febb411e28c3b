//! Scenario 7 — head office's web console at bank scale: a release `hq serve --with-listener`
//! on SQLite (the embedded default; the page is served from the console's in-memory overview,
//! so the database's kind does not enter the page time), a branch directory of 2,000 branches
//! (Chinese names, 20 regions) and the retained state of each published through mosquitto:
//! gateway status, 12 devices, a coverage report of 3 zones; 5 % of the branches with a camera
//! down and a required zone uncovered, 50 with an alarm waiting for acknowledgement.
//!
//! - **Overview page**: `GET /` (tiles) and `GET /?view=table` for 2,000 branches, signed in,
//!   30 sequential requests each after 3 warm-ups, timed from sending the request to the last
//!   byte of the body. Budget: ≤ 200 ms.
//! - **Live updates**: 50 event streams (`/events`, 50 open pages) stay connected while 200
//!   coverage changes are published (50–500 ms apart, at random); for each change, publish (PUBACK) → the
//!   `tiles` event naming that branch on the first stream. The browser's own figure (message →
//!   tile red in Chromium) comes from the `console_browser` test.
//! - **Memory**: the server's resident set (`VmRSS`) and peak (`VmHWM`) with the 50 streams
//!   open, after the changes. Budget: ≤ 100 MiB.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use harness::Proc;
use mqtt_setup::ClientOptions;
use protocols::coverage::COVERAGE_SCHEMA;
use protocols::status::{DEVICE_HEALTH_SCHEMA, GATEWAY_STATUS_SCHEMA};
use protocols::topics::Topics as BranchTopics;
use protocols::{
    AlarmLinkDetails, Alert, AlertBody, AlertState, BranchId, CoverageReport, CoverageTotals, DeviceHealth, DeviceId,
    DeviceRef, DeviceType, GatewayState, GatewayStatus, LinkedCamera, Seq, Severity, ZoneCoverage, ZoneId,
};
use rumqttc::{AsyncClient, Event, Packet, QoS};

use super::{Ctx, ms};
use crate::procfs;
use crate::report::{Budget, Row};
use crate::stats::Summary;

const SCENARIO: &str = "7 console";
const MIB: f64 = 1024.0 * 1024.0;
const CAMERAS: usize = 10;
const STREAMS: usize = 50;

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let branches = 2_000;
    let (requests, changes) = ctx.pick((30, 200), (10, 40));
    let dir = ctx.dir("console");
    std::fs::create_dir_all(&dir)?;
    let db = format!("sqlite://{}", dir.join("hq.db").display());
    let directory = dir.join("branches.csv");
    let mut csv = String::from("id,name,region,address,contacts\n");
    for b in 0..branches {
        csv.push_str(&format!(
            "{},第{}支行,区域{:02},某市某路 {} 号,值班电话 {}\n",
            branch(b),
            b + 1,
            b % 20,
            b + 1,
            95500 + b
        ));
    }
    std::fs::write(&directory, csv)?;
    output(&ctx.hq_bin, &["migrate", "--db", &db])?;
    std::fs::write(dir.join("pw"), "bench-password-1\n")?;
    let pw = dir.join("pw");
    output(
        &ctx.hq_bin,
        &["user", "add", "bench", "--role", "operator", "--user-password-file", path(&pw)?, "--db", &db],
    )?;

    let port = harness::free_port();
    let bind = format!("127.0.0.1:{port}");
    // A broker of its own that queues without limit for the listener, as a head office's
    // broker is configured (deploy/mosquitto): 28,000 retained messages arrive at once.
    let mosq = harness::Mosquitto::start_with(super::hq::ingest::BROKER_CONF).context("start mosquitto")?;
    let broker = format!("mqtt://127.0.0.1:{}", mosq.port);
    let log = dir.join("hq-serve.log");
    let out = std::fs::File::create(&log)?;
    let child = Command::new(&ctx.hq_bin)
        .args(["serve", "--bind", &bind, "--with-listener", "--broker", &broker, "--db", &db])
        .args(["--directory", path(&directory)?, "--client-id", "bench-console"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("spawn hq serve")?;
    let mut server = Proc { child, name: "hq serve".into() };
    let base = format!("http://{bind}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("subscribed") {
        if let Ok(Some(st)) = server.child.try_wait() {
            bail!("hq serve exited ({st}): {}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        if Instant::now() > deadline {
            bail!("hq serve did not start within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The bank's state, retained, through the broker.
    let now = Utc::now();
    let mut msgs: Vec<(String, Vec<u8>, bool)> = Vec::new();
    for b in 0..branches {
        state(b, now, b % 20 == 7, &mut msgs)?;
        if b % 40 == 3 {
            let a = alarm(b, now)?;
            let t = BranchTopics::new(protocols::topics::DEFAULT_PREFIX, a.branch.clone())?;
            msgs.push((t.alert(a.kind()), serde_json::to_vec(&a)?, false));
        }
    }
    let pubr = Publisher::connect(mosq.port).await?;
    let t0 = Instant::now();
    for (topic, payload, retain) in &msgs {
        pubr.client.publish(topic.clone(), QoS::AtLeastOnce, *retain, payload.clone()).await?;
    }
    pubr.wait_acks(msgs.len(), Duration::from_secs(120)).await?;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let cookie = login(&http, &base).await?;
    // Every branch on the overview, with its coverage.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v: serde_json::Value = serde_json::from_str(&get(&http, &base, "/api/overview", &cookie).await?.1)?;
        let list = v["branches"].as_array().map(Vec::as_slice).unwrap_or_default();
        let with_data = list.iter().filter(|b| b["state"] != "grey").count();
        if with_data >= branches {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {with_data} of {branches} branches reached the overview within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("  {} retained messages stored and on the overview in {:.1} s", msgs.len(), t0.elapsed().as_secs_f64());

    let mut rows = Vec::new();
    for (path, figure) in
        [("/", "overview page, 2,000 branches as tiles"), ("/?view=table", "overview page, 2,000 branches as a table")]
    {
        let mut times = Vec::new();
        let mut bytes = 0;
        for i in 0..requests + 3 {
            let t = Instant::now();
            let (status, body) = get(&http, &base, path, &cookie).await?;
            let d = t.elapsed();
            if status != 200 || !body.contains("第2000支行") {
                bail!("GET {path}: {status}, {} bytes, without the last branch", body.len());
            }
            bytes = body.len();
            if i >= 3 {
                times.push(ms(d));
            }
        }
        let s = Summary::of(&times);
        eprintln!("  GET {path}: median {:.1} ms, {} KiB", s.map_or(0.0, |s| s.median), bytes / 1024);
        rows.push(
            Row::new(SCENARIO, figure, "ms", s, format!("{requests} requests, signed in"), Budget::at_most(200.0))
                .with_note(format!("request sent → last byte of a {} KiB page; loopback, one client", bytes / 1024)),
        );
    }

    // 50 open pages.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, String)>();
    let mut streams = Vec::new();
    for n in 0..STREAMS {
        let resp = http.get(format!("{base}/events")).header("cookie", &cookie).send().await?;
        if resp.status() != 200 {
            bail!("GET /events: {}", resp.status());
        }
        let tx = tx.clone();
        streams.push(tokio::spawn(async move {
            let mut resp = resp;
            // Every page reads its stream; the first one's is timed.
            while let Ok(Some(chunk)) = resp.chunk().await {
                if n == 0 {
                    let _ = tx.send((Instant::now(), String::from_utf8_lossy(&chunk).into_owned()));
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    while rx.try_recv().is_ok() {}
    let mut lat = Vec::new();
    for i in 0..changes {
        let b = (i * 37 + 11) % branches;
        let mut m = Vec::new();
        state(b, Utc::now(), i % 2 == 0, &mut m)?;
        let (topic, payload, _) = m.pop().context("coverage message")?;
        let needle = format!("\"id\":\"{}\"", branch(b));
        let sent = Instant::now();
        pubr.client.publish(topic, QoS::AtLeastOnce, true, payload).await?;
        let deadline = sent + Duration::from_secs(5);
        let mut got = None;
        // An event may arrive in several chunks: look in what came so far.
        let mut seen = String::new();
        while got.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some((at, text))) => {
                    seen.push_str(&text);
                    if seen.contains(&needle) {
                        got = Some(at);
                    }
                }
                _ => break,
            }
        }
        match got {
            Some(at) => lat.push(ms(at - sent)),
            None => eprintln!("  change {i} (branch {}) did not reach the first stream within 5 s", branch(b)),
        }
        // Random spacing, so that changes do not fall into step with the console's poll.
        tokio::time::sleep(Duration::from_millis(rand::random_range(50..500))).await;
    }
    let pid = server.pid();
    let (rss, hwm) = procfs::memory(pid)?;
    let cpu = procfs::cpu_time(pid)?;
    rows.push(
        Row::new(
            SCENARIO,
            "coverage message → tile event on an open page",
            "ms",
            Summary::of(&lat),
            format!("{} of {changes} changes, {STREAMS} pages open", lat.len()),
            Budget::at_most(2000.0),
        )
        .with_note(
            "publish → the `tiles` SSE event naming the branch; the listener in the same process tells the console \
             after each commit (separate `hq listen` processes: the console's 500 ms look adds up to 500 ms)",
        ),
    );
    rows.push(
        Row::new(
            SCENARIO,
            &format!("server memory with {STREAMS} live pages (VmRSS)"),
            "MiB",
            Summary::of(&[rss as f64 / MIB]),
            format!("2,000 branches, after {changes} changes; peak (VmHWM) {:.1} MiB", hwm as f64 / MIB),
            Budget::at_most(100.0),
        )
        .with_note(format!("the whole `hq serve --with-listener` process; CPU so far {:.1} s", cpu.as_secs_f64())),
    );
    for s in streams {
        s.abort();
    }
    server.signal("TERM");
    let _ = server.wait_exit(Duration::from_secs(10));
    Ok(rows)
}

fn branch(b: usize) -> String {
    format!("bj-{:04}", b + 1)
}

fn path(p: &Path) -> Result<&str> {
    p.to_str().context("a UTF-8 path")
}

fn output(hq: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(hq).args(args).stdin(Stdio::null()).output().with_context(|| format!("run hq {args:?}"))?;
    if !out.status.success() {
        bail!("hq {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Signs in; returns the session cookie.
async fn login(http: &reqwest::Client, base: &str) -> Result<String> {
    let r = http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=bench&password=bench-password-1&next=%2F")
        .send()
        .await?;
    let c = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()).context("no session cookie")?;
    Ok(c.split(';').next().unwrap_or_default().to_string())
}

async fn get(http: &reqwest::Client, base: &str, path: &str, cookie: &str) -> Result<(u16, String)> {
    let r = http.get(format!("{base}{path}")).header("cookie", cookie).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.text().await?))
}

fn id<T: std::str::FromStr>(s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| anyhow::anyhow!("{s}: {e}"))
}

/// A branch's retained state: gateway, devices, and last its coverage report.
fn state(b: usize, at: chrono::DateTime<Utc>, degraded: bool, out: &mut Vec<(String, Vec<u8>, bool)>) -> Result<()> {
    let bid: BranchId = id(&branch(b))?;
    let t = BranchTopics::new(protocols::topics::DEFAULT_PREFIX, bid.clone())?;
    let g = GatewayStatus {
        schema: GATEWAY_STATUS_SCHEMA.into(),
        branch: bid.clone(),
        status: GatewayState::Online,
        reason: None,
        at: Some(at),
        version: "bench".into(),
    };
    out.push((t.gateway(), serde_json::to_vec(&g)?, true));
    let mut devices: Vec<(String, DeviceType)> =
        (1..=CAMERAS).map(|c| (format!("cam-{c:02}"), DeviceType::Camera)).collect();
    devices.push(("alarm-1".into(), DeviceType::AlarmPanel));
    devices.push(("door-1".into(), DeviceType::AccessController));
    for (i, (d, ty)) in devices.iter().enumerate() {
        let h = DeviceHealth {
            schema: DEVICE_HEALTH_SCHEMA.into(),
            branch: bid.clone(),
            device: DeviceRef { id: id(d)?, device_type: *ty, name: format!("设备 {d}"), zones: vec![] },
            state: if degraded && i == 0 { "offline".into() } else { "online".into() },
            status: (degraded && i == 0).then(|| "unreachable".into()),
            since: at,
            updated_at: at,
            reason: None,
            clock_skew_ms: None,
            resolution: None,
            encoding: None,
        };
        out.push((t.device(&h.device.id), serde_json::to_vec(&h)?, true));
    }
    let zone = |zid: &str, name: &str, required: bool, cam: &str, covered: bool| -> Result<ZoneCoverage> {
        Ok(ZoneCoverage {
            id: id(zid)?,
            name: name.into(),
            required,
            min_live_cameras: 1,
            cameras: vec![id::<DeviceId>(cam)?],
            cameras_online: u32::from(covered),
            cameras_live_video: u32::from(covered),
            covered,
            uncovered_since: (!covered).then_some(at),
        })
    };
    let c = CoverageReport {
        schema: COVERAGE_SCHEMA.into(),
        branch: bid,
        at,
        totals: CoverageTotals {
            cameras_configured: CAMERAS as u32,
            cameras_online: CAMERAS as u32 - u32::from(degraded),
            cameras_live_video: CAMERAS as u32 - u32::from(degraded),
            required_zones: 2,
            required_zones_uncovered: u32::from(degraded),
        },
        zones: vec![
            zone("vault", "金库", true, "cam-01", !degraded)?,
            zone("counter", "柜台", true, "cam-02", true)?,
            zone("lobby", "大堂", false, "cam-03", true)?,
        ],
    };
    out.push((t.coverage(), serde_json::to_vec(&c)?, true));
    Ok(())
}

fn alarm(b: usize, at: chrono::DateTime<Utc>) -> Result<Alert> {
    let bid: BranchId = id(&branch(b))?;
    let dev = DeviceRef {
        id: id("alarm-1")?,
        device_type: DeviceType::AlarmPanel,
        name: "入侵报警主机".into(),
        zones: vec![],
    };
    let mut a = Alert::new(
        bid,
        dev,
        AlertState::Raised,
        Severity::Critical,
        at,
        "金库门报警".into(),
        AlertBody::AlarmLink(AlarmLinkDetails {
            zone: id::<ZoneId>("vault-door")?,
            zone_name: "金库门".into(),
            zone_state: "alarm".into(),
            partition: Some("1".into()),
            armed: true,
            twenty_four_hour: false,
            area: Some(id("vault")?),
            cameras: vec![LinkedCamera {
                id: id("cam-01")?,
                name: "金库".into(),
                online: true,
                stream_alive: true,
                frozen: false,
                picture: None,
                stream_uri: None,
                snapshot_uri: None,
            }],
            follow_up_of: None,
            snapshots: vec![],
        }),
    );
    a.seq = Seq(1);
    Ok(a)
}

/// One QoS 1 connection; counts PUBACKs.
struct Publisher {
    client: AsyncClient,
    acked: tokio::sync::watch::Receiver<usize>,
    _task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    async fn connect(port: u16) -> Result<Publisher> {
        let (client, mut eventloop) = ClientOptions::loopback(port, "bench-console-pub").v311_client(1000, |o| {
            o.set_inflight(100);
        });
        let (tx, acked) = tokio::sync::watch::channel(0usize);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut n = 0;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        n += 1;
                        let _ = tx.send(n);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx).await.context("publisher connect")??;
        Ok(Publisher { client, acked, _task: task })
    }

    async fn wait_acks(&self, n: usize, timeout: Duration) -> Result<()> {
        let mut rx = self.acked.clone();
        tokio::time::timeout(timeout, rx.wait_for(|v| *v >= n)).await.context("PUBACKs")?.context("PUBACKs")?;
        Ok(())
    }
}
