//! Commissioning: poll every configured device once with full diagnostics and say, per
//! device, what passed, what failed and how to fix it — the report an installer signs off.
//!
//! It runs the same pollers as the gateway (one cycle each, all devices in parallel), so a
//! branch that commissions clean behaves the same in service. The uplink is checked by a real
//! MQTT CONNECT with the configured TLS files and credentials, then a test publish into the
//! branch's own subtree (refused by the broker's ACL when the username does not fit it).

use i18n::{Lang, Text, text, tr};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{CameraConfig, PanelConfig, SiteConfig};
use crate::mqtt::{Link, LinkEvent, LinkOptions, MqttVersion, TryPublish};
use crate::pollers::camera::spawn_camera_poller;
use crate::pollers::panel::{load_profile, spawn_panel_poller};
use crate::pollers::{CameraObservation, Observation, PanelFault, PanelOutcome, Reach, Video};

/// Clock skew beyond this fails (GB 50396 asks for device clocks within 10 s).
pub const MAX_SKEW_MS: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not checked because an earlier step failed.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    /// What was seen, and how to fix a failure, in both languages; `--json` carries the English
    /// (tooling reads the names and verdicts, people read the text report).
    #[serde(serialize_with = "english")]
    pub detail: Text,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "english_opt")]
    pub fix: Option<Text>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    pub id: String,
    pub kind: &'static str,
    pub name: String,
    pub address: String,
    pub ready: bool,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub branch: String,
    pub ready: bool,
    pub devices: Vec<DeviceReport>,
}

fn english<S: serde::Serializer>(t: &Text, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.en)
}
fn english_opt<S: serde::Serializer>(t: &Option<Text>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.en),
        None => s.serialize_none(),
    }
}

fn pass(name: &'static str, detail: Text) -> Check {
    Check { name, verdict: Verdict::Pass, detail, fix: None }
}
fn fail(name: &'static str, detail: Text, fix: Text) -> Check {
    Check { name, verdict: Verdict::Fail, detail, fix: Some(fix) }
}
fn skipped(name: &'static str) -> Check {
    let detail = text!("not checked: an earlier step failed", "未检查：前一步已失败");
    Check { name, verdict: Verdict::Skipped, detail, fix: None }
}

/// Runs every check. Never fails as a whole: each problem is a failed check.
pub async fn commission(cfg: &SiteConfig) -> Report {
    let mut tasks = Vec::new();
    for c in &cfg.cameras {
        let (c, base) = (c.clone(), cfg.base_dir.clone());
        tasks.push(tokio::spawn(async move { camera_report(c, base).await }));
    }
    for p in &cfg.panels {
        let (p, base) = (p.clone(), cfg.base_dir.clone());
        tasks.push(tokio::spawn(async move { panel_report(p, base).await }));
    }
    let uplink = tokio::spawn(uplink_report(cfg.clone()));
    let mut devices = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await {
            devices.push(r);
        }
    }
    if let Ok(r) = uplink.await {
        devices.push(r);
    }
    let ready = devices.iter().all(|d| d.ready);
    Report { branch: cfg.branch.id.clone(), ready, devices }
}

async fn first_observation(
    spawn: impl FnOnce(mpsc::Sender<Observation>, CancellationToken) -> tokio::task::JoinHandle<()>,
    wait: Duration,
) -> Option<Observation> {
    let (tx, mut rx) = mpsc::channel(4);
    let stop = CancellationToken::new();
    let task = spawn(tx, stop.clone());
    let obs = tokio::time::timeout(wait, rx.recv()).await.ok().flatten();
    stop.cancel();
    let _ = task.await;
    obs
}

async fn camera_report(cfg: CameraConfig, base: std::path::PathBuf) -> DeviceReport {
    let wait = cfg.timeout * 12 + Duration::from_secs(2);
    let c2 = cfg.clone();
    let obs = first_observation(move |tx, stop| spawn_camera_poller(c2, base, tx, stop), wait).await;
    let checks = match obs {
        Some(Observation::Camera(o)) => camera_checks(&cfg, &o),
        _ => vec![fail(
            "reachable",
            text!("the probe did not finish", "探测未能完成"),
            text!("check the camera's address and the network", "检查摄像机地址和网络"),
        )],
    };
    DeviceReport {
        id: cfg.id.clone(),
        kind: "camera",
        name: cfg.name.clone(),
        address: cfg.onvif.clone(),
        ready: checks.iter().all(|c| c.verdict == Verdict::Pass),
        checks,
    }
}

/// Turns one probe into the installer's checklist.
pub fn camera_checks(cfg: &CameraConfig, o: &CameraObservation) -> Vec<Check> {
    let reason = o.reason.clone().unwrap_or_default();
    let mut v = Vec::new();
    if o.reach == Reach::Unreachable {
        v.push(fail(
            "reachable",
            text!("no TCP connection to {}: {reason}", "无法与 {} 建立 TCP 连接：{reason}", cfg.onvif),
            text!(
                "check the camera is powered and cabled, the IP address and port in `onvif`, and any firewall",
                "检查摄像机的供电和网线、`onvif` 中的 IP 地址和端口，以及防火墙"
            ),
        ));
        for n in ["onvif", "credentials", "clock", "profiles-and-stream-uri", "rtsp-stream", "snapshot"] {
            v.push(skipped(n));
        }
        return v;
    }
    v.push(pass("reachable", text!("TCP connects to {}", "TCP 可连通 {}", cfg.onvif)));
    if o.reach == Reach::TcpOnly {
        v.push(fail(
            "onvif",
            text!("the device does not answer ONVIF: {reason}", "设备不应答 ONVIF：{reason}"),
            text!(
                "enable ONVIF on the camera (often off by default) and check the device service path, usually \
                 /onvif/device_service",
                "在摄像机上开启 ONVIF（出厂时常常是关闭的），并检查设备服务路径，通常是 /onvif/device_service"
            ),
        ));
        for n in ["credentials", "clock", "profiles-and-stream-uri", "rtsp-stream", "snapshot"] {
            v.push(skipped(n));
        }
        return v;
    }
    v.push(pass("onvif", text!("GetSystemDateAndTime answered", "GetSystemDateAndTime 有应答")));
    match o.clock_skew_ms {
        Some(s) if s.abs() > MAX_SKEW_MS => v.push(fail(
            "clock",
            text!("camera clock is off by {:.1} s", "摄像机时钟偏差 {:.1} 秒", s as f64 / 1000.0),
            text!(
                "set the camera to use the branch NTP server; skew breaks WS-Security and makes recordings useless \
                 as evidence",
                "把摄像机设为使用网点的 NTP 服务器校时；时钟偏差会使 WS-Security 认证失败，录像也无法作为证据"
            ),
        )),
        Some(s) => v.push(pass("clock", text!("skew {:.1} s", "偏差 {:.1} 秒", s as f64 / 1000.0))),
        None => v.push(pass("clock", text!("camera did not report its time", "摄像机未报告其时间"))),
    }
    if o.reach == Reach::AuthFailed {
        v.push(fail(
            "credentials",
            text!(
                "the camera refuses the configured credentials: {reason}",
                "摄像机拒绝所配置的用户名和密码：{reason}"
            ),
            text!(
                "check username/password for {} (an ONVIF user, not only a web user) and the auth mode (`auth = \
                 \"username-token\"` or \"digest\")",
                "检查 {} 的用户名和密码（须是 ONVIF 用户，而不只是网页登录用户）以及认证方式（`auth = \
                 \"username-token\"` 或 \"digest\"）",
                cfg.id
            ),
        ));
        for n in ["profiles-and-stream-uri", "rtsp-stream", "snapshot"] {
            v.push(skipped(n));
        }
        return v;
    }
    v.push(pass(
        "credentials",
        text!("GetDeviceInformation with credentials succeeded", "带用户名密码的 GetDeviceInformation 成功"),
    ));
    match &o.stream_uri {
        Some(u) => v.push(pass("profiles-and-stream-uri", text!("stream {u}", "码流 {u}"))),
        None => v.push(fail(
            "profiles-and-stream-uri",
            text!("no media profile or stream URI: {reason}", "没有媒体配置或码流地址：{reason}"),
            text!("create a media profile on the camera (Media service)", "在摄像机上创建媒体配置（Media 服务）"),
        )),
    }
    match o.video {
        Video::StreamDown => v.push(fail(
            "rtsp-stream",
            text!("RTSP DESCRIBE failed: {reason}", "RTSP DESCRIBE 失败：{reason}"),
            text!(
                "check RTSP is enabled (port 554) and reachable from the gateway",
                "检查 RTSP 已开启（端口 554）且网关能访问"
            ),
        )),
        Video::SignalLost => v.push(fail(
            "rtsp-stream",
            text!("the camera reports video signal loss", "摄像机报告视频丢失"),
            text!("check the lens/sensor cable", "检查镜头/传感器的连接线"),
        )),
        _ => v.push(pass("rtsp-stream", text!("DESCRIBE answered", "DESCRIBE 有应答"))),
    }
    match (&o.snapshot_uri, o.video) {
        (None, _) => v.push(fail(
            "snapshot",
            text!("the camera gives no snapshot URI", "摄像机没有提供抓图地址"),
            text!(
                "enable snapshots (JPEG) on the camera; the gateway uses them to detect a frozen picture",
                "在摄像机上开启抓图（JPEG）；网关靠它发现画面冻结"
            ),
        )),
        (Some(_), Video::Unknown) if reason.contains("snapshot") || reason.contains("picture") => v.push(fail(
            "snapshot",
            text!("snapshot failed: {reason}", "抓图失败：{reason}"),
            text!("check the snapshot URL accepts the same credentials", "检查抓图地址接受同一套用户名和密码"),
        )),
        (Some(u), _) => v.push(pass("snapshot", text!("picture fetched from {u}", "已从 {u} 取得图片"))),
    }
    v
}

async fn panel_report(cfg: PanelConfig, base: std::path::PathBuf) -> DeviceReport {
    let kind = match cfg.kind {
        crate::config::PanelKind::Alarm => "alarm-panel",
        crate::config::PanelKind::Access => "access-controller",
    };
    let mut checks = Vec::new();
    match load_profile(&cfg.profile, &base) {
        Err(e) => checks.push(fail(
            "profile",
            Text::verbatim(e),
            text!("fix the profile file (docs/PROFILES.md)", "修改配置模板文件（见 docs/PROFILES.zh-CN.md）"),
        )),
        Ok(profile) => {
            let n_points = profile.points().len();
            checks.push(pass("profile", text!("{} ({n_points} points)", "{}（{n_points} 个点位）", profile.name)));
            let wait = cfg.timeout * 4 + Duration::from_secs(2);
            let c2 = cfg.clone();
            let obs = first_observation(move |tx, stop| spawn_panel_poller(c2, profile, tx, stop), wait).await;
            match obs {
                Some(Observation::Panel(p)) => match p.outcome {
                    PanelOutcome::Read(read) => {
                        // The first read of a poller carries every point (`complete`).
                        let points = &read.changed;
                        checks.push(pass(
                            "reachable",
                            text!("Modbus TCP {} unit {}", "Modbus TCP {} 单元 {}", cfg.address, cfg.unit_id),
                        ));
                        let undecoded: Vec<&std::sync::Arc<str>> =
                            points.iter().filter(|(_, v)| v.state.is_none()).map(|(k, _)| k).collect();
                        let summary: Vec<String> = points
                            .iter()
                            .take(6)
                            .map(|(k, v)| format!("{k}={}", v.state.clone().unwrap_or_else(|| v.raw.to_string())))
                            .collect();
                        let (n, more) = (points.len(), if points.len() > 6 { ", …" } else { "" });
                        let summary = summary.join(", ");
                        checks.push(pass(
                            "points-readable",
                            text!(
                                "{n} points read and decoded ({summary}{more})",
                                "已读取并解码 {n} 个点位（{summary}{more}）"
                            ),
                        ));
                        let _ = undecoded;
                    }
                    PanelOutcome::Failed { fault, reason } => {
                        let (name, fix) = match fault {
                            PanelFault::Unreachable => (
                                "reachable",
                                text!(
                                    "check the integration module's IP/port, that Modbus TCP is enabled, and the \
                                     firewall",
                                    "检查联网模块的 IP 和端口、Modbus TCP 是否开启，以及防火墙"
                                ),
                            ),
                            PanelFault::Exception => (
                                "points-readable",
                                text!(
                                    "the device refuses a read: check the unit id and that the profile's addresses \
                                     exist (0-based; docs/PROFILES.md)",
                                    "设备拒绝读取：检查单元号（unit id），以及配置模板中的地址是否存在（从 0 起算；\
                                     见 docs/PROFILES.zh-CN.md）"
                                ),
                            ),
                            PanelFault::Protocol => (
                                "reachable",
                                text!(
                                    "the answer is not valid Modbus TCP: check the port belongs to a Modbus server",
                                    "应答不是有效的 Modbus TCP：检查该端口是否属于 Modbus 服务"
                                ),
                            ),
                        };
                        if name == "points-readable" {
                            checks.push(pass(
                                "reachable",
                                text!("Modbus TCP {} answers", "Modbus TCP {} 有应答", cfg.address),
                            ));
                        }
                        checks.push(fail(name, Text::verbatim(reason), fix));
                    }
                },
                _ => checks.push(fail(
                    "reachable",
                    text!("no answer within the deadline", "在时限内没有应答"),
                    text!("check the address and network", "检查地址和网络"),
                )),
            }
        }
    }
    DeviceReport {
        id: cfg.id.clone(),
        kind,
        name: cfg.name.clone(),
        address: cfg.address.clone(),
        ready: checks.iter().all(|c| c.verdict == Verdict::Pass),
        checks,
    }
}

async fn uplink_report(cfg: SiteConfig) -> DeviceReport {
    let mut checks = Vec::new();
    match crate::app::uplink_settings(&cfg) {
        Err(e) => checks.push(fail(
            "settings",
            Text::verbatim(format!("{e:#}")),
            text!("fix [uplink] in the site config", "修改站点配置中的 [uplink]"),
        )),
        Ok(s) => match probe(&s, Duration::from_secs(8)).await {
            Err(Probe::Setup(e)) => {
                let fix = text!(
                    "fix the file in [uplink.tls] (ca_file, client_cert_file, client_key_file)",
                    "修正 [uplink.tls] 中的文件（ca_file、client_cert_file、client_key_file）"
                );
                checks.push(fail("broker", e.text(), fix));
                checks.push(skipped("publish"));
            }
            Err(Probe::Connect(e)) => {
                let lower = e.to_lowercase();
                let (detail, fix) = if let Some((what, fix)) = crate::mqtt::explain_tls(&e, &s.host) {
                    (Text::new(format!("{} ({e})", what.en), format!("{}（{e}）", what.zh)), fix)
                } else if lower.contains("auth") || lower.contains("password") || lower.contains("not authorized") {
                    let fix = text!(
                        "check [uplink] username and password_file / password_env against head office's broker \
                         credentials",
                        "对照总行消息服务器的账号，检查 [uplink] 的 username 和 password_file / password_env"
                    );
                    (Text::verbatim(e), fix)
                } else if lower.contains("tls") || lower.contains("certificate") || lower.contains("handshake") {
                    let fix = text!(
                        "check [uplink.tls] ca_file (head office's CA) and the client certificate and key",
                        "检查 [uplink.tls] 的 ca_file（总行的 CA）以及客户端证书和私钥"
                    );
                    (Text::verbatim(e), fix)
                } else {
                    let fix = text!(
                        "check [uplink] broker host and port, DNS and the firewall towards head office",
                        "检查 [uplink] broker 的主机和端口、DNS，以及通往总行的防火墙"
                    );
                    (Text::verbatim(e), fix)
                };
                checks.push(fail("broker", detail, fix));
                checks.push(skipped("publish"));
            }
            Err(Probe::Publish(e)) => {
                checks.push(pass("broker", text!("CONNECT accepted by {}", "{} 接受了 CONNECT", s.broker_authority())));
                let user = s.username.as_deref().unwrap_or("(none)");
                checks.push(fail(
                    "publish",
                    text!(
                        "the broker refused a test publish to {}: {e}",
                        "消息服务器拒收了发往 {} 的测试消息：{e}",
                        s.topics.commission()
                    ),
                    text!(
                        "head office's broker must let the user {user:?} publish under {}: with the shipped ACL \
                         (pattern write {}/%u/#) the [uplink] username must equal the branch id {:?}; \
                         otherwise ask head office to add this user to the ACL",
                        "总行的消息服务器必须允许用户 {user:?} 在 {} 下发布：按随附的 ACL（pattern write {}/%u/#），\
                         [uplink] 的 username 必须等于网点 id {:?}；否则请总行把这个用户加进 ACL",
                        s.topics.subtree(),
                        s.topics.prefix(),
                        s.topics.branch().as_str()
                    ),
                ));
            }
            Ok(()) => {
                checks.push(pass("broker", text!("CONNECT accepted by {}", "{} 接受了 CONNECT", s.broker_authority())));
                checks.push(match s.version {
                    MqttVersion::V5 => pass(
                        "publish",
                        text!("a test publish to {} was accepted", "发往 {} 的测试消息已被接受", s.topics.commission()),
                    ),
                    // Under 3.1.1 a refused publish is acknowledged too: say what was not checked.
                    MqttVersion::V311 => pass(
                        "publish",
                        text!(
                            "not verifiable under MQTT 3.1.1 (a broker acknowledges a publish its ACL refused); set \
                             [uplink] mqtt_version = \"5\" if the broker supports it",
                            "MQTT 3.1.1 下无法确认（消息服务器对 ACL 拒收的消息也会确认）；消息服务器支持时，\
                             请设 [uplink] mqtt_version = \"5\""
                        ),
                    ),
                });
            }
        },
    }
    DeviceReport {
        id: "uplink".into(),
        kind: "uplink",
        name: "MQTT link to head office".into(),
        address: cfg.uplink.broker.clone(),
        ready: checks.iter().all(|c| c.verdict == Verdict::Pass),
        checks,
    }
}

enum Probe {
    /// The TLS files could not be used: nothing was sent.
    Setup(mqtt_setup::SetupError),
    Connect(String),
    Publish(String),
}

/// One MQTT CONNECT with the gateway's broker, protocol version, TLS files and credentials,
/// under its own client id (`…-commission`, clean session, no Will) so that it never takes over
/// the running gateway's session; then one QoS 1 publish to the branch's `commission` topic,
/// whose PUBACK says (under MQTT 5) whether the broker lets this branch publish at all.
async fn probe(s: &crate::uplink::UplinkSettings, deadline: Duration) -> Result<(), Probe> {
    let mut client = s.client_options().map_err(Probe::Setup)?;
    client.client_id = format!("{}-commission", s.client_id);
    client.keep_alive = Duration::from_secs(10);
    client.clean_session = true;
    client.max_packet_bytes = 64 * 1024;
    client.connect_timeout = deadline;
    let o = LinkOptions { version: s.version, client, will: None, capacity: 8, inflight: 8 };
    let mut link = Link::connect(&o);
    let payload = format!("{{\"probe\":\"commission\",\"at\":\"{}\"}}", chrono::Utc::now().to_rfc3339());
    let result = tokio::time::timeout(deadline, async {
        let mut published = None;
        loop {
            match link.events.recv().await {
                Some(Ok(LinkEvent::ConnAck(Ok(_)))) => {
                    if !matches!(
                        link.try_publish(s.topics.commission(), false, payload.clone().into_bytes()),
                        TryPublish::Queued
                    ) {
                        return Err(Probe::Publish("could not queue the test publish".into()));
                    }
                }
                Some(Ok(LinkEvent::ConnAck(Err(why)))) => {
                    return Err(Probe::Connect(format!("broker refused the connection: {why}")));
                }
                Some(Ok(LinkEvent::Published(pkid))) => published = Some(pkid),
                Some(Ok(LinkEvent::PubAck { pkid, refused })) if Some(pkid) == published => {
                    return match refused {
                        None => Ok(()),
                        Some(reason) => Err(Probe::Publish(reason)),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) if published.is_some() => return Err(Probe::Publish(e)),
                Some(Err(e)) => return Err(Probe::Connect(e)),
                None => return Err(Probe::Connect("the connection ended".into())),
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        Err(Probe::Connect(format!("no answer from {} within {} s", s.broker_authority(), deadline.as_secs())))
    });
    link.try_disconnect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    result
}

/// The report as the installer reads it, in `lang` (device ids, kinds and check names stay as
/// they are: they match `--json` and the docs).
pub fn render_text(r: &Report, lang: Lang) -> String {
    let mut s = tr!(lang, "Commissioning report for branch {}\n\n", "网点 {} 开通调试报告\n\n", r.branch);
    for d in &r.devices {
        let verdict = if d.ready { lang.t("PASS", "通过") } else { lang.t("FAIL", "未通过") };
        let name =
            if d.kind == "uplink" { lang.t("MQTT link to head office", "到总行的 MQTT 链路") } else { &d.name };
        s.push_str(&format!("{verdict} {} {} ({name}) — {}\n", d.kind, d.id, d.address));
        for c in &d.checks {
            let mark = match c.verdict {
                Verdict::Pass => lang.t("ok  ", "正常"),
                Verdict::Fail => lang.t("FAIL", "失败"),
                Verdict::Skipped => lang.t("skip", "跳过"),
            };
            s.push_str(&format!("    [{mark}] {:<24} {}\n", c.name, c.detail.get(lang)));
            if let Some(f) = &c.fix {
                s.push_str(&tr!(lang, "           fix: {}\n", "           修正：{}\n", f.get(lang)));
            }
        }
    }
    let (failed, n) = (r.devices.iter().filter(|d| !d.ready).count(), r.devices.len());
    s.push_str(&if r.ready {
        tr!(lang, "\nREADY: all {n} checks passed.\n", "\n可以投入使用：{n} 项检查全部通过。\n")
    } else {
        tr!(
            lang,
            "\nNOT READY: {failed} of {n} device(s) failed.\n",
            "\n尚不能投入使用：{n} 台设备中有 {failed} 台未通过。\n"
        )
    });
    s
}
