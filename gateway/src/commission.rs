//! Commissioning: poll every configured device once with full diagnostics and say, per
//! device, what passed, what failed and how to fix it — the report an installer signs off.
//!
//! It runs the same pollers as the gateway (one cycle each, all devices in parallel), so a
//! branch that commissions clean behaves the same in service. The uplink is checked by a real
//! MQTT CONNECT with the configured TLS files and credentials, then a test publish into the
//! branch's own subtree (refused by the broker's ACL when the username does not fit it).

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
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
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

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check { name, verdict: Verdict::Pass, detail: detail.into(), fix: None }
}
fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { name, verdict: Verdict::Fail, detail: detail.into(), fix: Some(fix.into()) }
}
fn skipped(name: &'static str) -> Check {
    Check { name, verdict: Verdict::Skipped, detail: "not checked: an earlier step failed".into(), fix: None }
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
        _ => vec![fail("reachable", "the probe did not finish", "check the camera's address and the network")],
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
            format!("no TCP connection to {}: {reason}", cfg.onvif),
            "check the camera is powered and cabled, the IP address and port in `onvif`, and any firewall",
        ));
        for n in ["onvif", "credentials", "clock", "profiles-and-stream-uri", "rtsp-stream", "snapshot"] {
            v.push(skipped(n));
        }
        return v;
    }
    v.push(pass("reachable", format!("TCP connects to {}", cfg.onvif)));
    if o.reach == Reach::TcpOnly {
        v.push(fail(
            "onvif",
            format!("the device does not answer ONVIF: {reason}"),
            "enable ONVIF on the camera (often off by default) and check the device service path, usually /onvif/device_service",
        ));
        for n in ["credentials", "clock", "profiles-and-stream-uri", "rtsp-stream", "snapshot"] {
            v.push(skipped(n));
        }
        return v;
    }
    v.push(pass("onvif", "GetSystemDateAndTime answered"));
    match o.clock_skew_ms {
        Some(s) if s.abs() > MAX_SKEW_MS => v.push(fail(
            "clock",
            format!("camera clock is off by {:.1} s", s as f64 / 1000.0),
            "set the camera to use the branch NTP server; skew breaks WS-Security and makes recordings useless as evidence",
        )),
        Some(s) => v.push(pass("clock", format!("skew {:.1} s", s as f64 / 1000.0))),
        None => v.push(pass("clock", "camera did not report its time")),
    }
    if o.reach == Reach::AuthFailed {
        v.push(fail(
            "credentials",
            format!("the camera refuses the configured credentials: {reason}"),
            format!(
                "check username/password for {} (an ONVIF user, not only a web user) and the auth mode (`auth = \"username-token\"` or \"digest\")",
                cfg.id
            ),
        ));
        for n in ["profiles-and-stream-uri", "rtsp-stream", "snapshot"] {
            v.push(skipped(n));
        }
        return v;
    }
    v.push(pass("credentials", "GetDeviceInformation with credentials succeeded"));
    match &o.stream_uri {
        Some(u) => v.push(pass("profiles-and-stream-uri", format!("stream {u}"))),
        None => v.push(fail(
            "profiles-and-stream-uri",
            format!("no media profile or stream URI: {reason}"),
            "create a media profile on the camera (Media service)",
        )),
    }
    match o.video {
        Video::StreamDown => v.push(fail(
            "rtsp-stream",
            format!("RTSP DESCRIBE failed: {reason}"),
            "check RTSP is enabled (port 554) and reachable from the gateway",
        )),
        Video::SignalLost => {
            v.push(fail("rtsp-stream", "the camera reports video signal loss", "check the lens/sensor cable"))
        }
        _ => v.push(pass("rtsp-stream", "DESCRIBE answered")),
    }
    match (&o.snapshot_uri, o.video) {
        (None, _) => v.push(fail(
            "snapshot",
            "the camera gives no snapshot URI",
            "enable snapshots (JPEG) on the camera; the gateway uses them to detect a frozen picture",
        )),
        (Some(_), Video::Unknown) if reason.contains("snapshot") || reason.contains("picture") => v.push(fail(
            "snapshot",
            format!("snapshot failed: {reason}"),
            "check the snapshot URL accepts the same credentials",
        )),
        (Some(u), _) => v.push(pass("snapshot", format!("picture fetched from {u}"))),
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
        Err(e) => checks.push(fail("profile", e, "fix the profile file (docs/PROFILES.md)")),
        Ok(profile) => {
            let n_points = profile.points().len();
            checks.push(pass("profile", format!("{} ({n_points} points)", profile.name)));
            let wait = cfg.timeout * 4 + Duration::from_secs(2);
            let c2 = cfg.clone();
            let obs = first_observation(move |tx, stop| spawn_panel_poller(c2, profile, tx, stop), wait).await;
            match obs {
                Some(Observation::Panel(p)) => match p.outcome {
                    PanelOutcome::Read(points) => {
                        checks.push(pass("reachable", format!("Modbus TCP {} unit {}", cfg.address, cfg.unit_id)));
                        let undecoded: Vec<&String> =
                            points.iter().filter(|(_, v)| v.state.is_none()).map(|(k, _)| k).collect();
                        let summary: Vec<String> = points
                            .iter()
                            .take(6)
                            .map(|(k, v)| format!("{k}={}", v.state.clone().unwrap_or_else(|| v.raw.to_string())))
                            .collect();
                        checks.push(pass(
                            "points-readable",
                            format!(
                                "{} points read and decoded ({}{})",
                                points.len(),
                                summary.join(", "),
                                if points.len() > 6 { ", …" } else { "" }
                            ),
                        ));
                        let _ = undecoded;
                    }
                    PanelOutcome::Failed { fault, reason } => {
                        let (name, fix) = match fault {
                            PanelFault::Unreachable => (
                                "reachable",
                                "check the integration module's IP/port, that Modbus TCP is enabled, and the firewall",
                            ),
                            PanelFault::Exception => (
                                "points-readable",
                                "the device refuses a read: check the unit id and that the profile's addresses exist (0-based; docs/PROFILES.md)",
                            ),
                            PanelFault::Protocol => (
                                "reachable",
                                "the answer is not valid Modbus TCP: check the port belongs to a Modbus server",
                            ),
                        };
                        if name == "points-readable" {
                            checks.push(pass("reachable", format!("Modbus TCP {} answers", cfg.address)));
                        }
                        checks.push(fail(name, reason, fix));
                    }
                },
                _ => checks.push(fail("reachable", "no answer within the deadline", "check the address and network")),
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
        Err(e) => checks.push(fail("settings", format!("{e:#}"), "fix [uplink] in the site config")),
        Ok(s) => match probe(&s, Duration::from_secs(8)).await {
            Err(Probe::Connect(e)) => {
                let lower = e.to_lowercase();
                let (detail, fix) = if let Some((what, fix)) = crate::mqtt::explain_tls(&e, &s.host) {
                    (format!("{what} ({e})"), fix)
                } else if lower.contains("auth") || lower.contains("password") || lower.contains("not authorized") {
                    (e, "check [uplink] username and password_file / password_env against head office's broker credentials".into())
                } else if lower.contains("tls") || lower.contains("certificate") || lower.contains("handshake") {
                    (e, "check [uplink.tls] ca_file (head office's CA) and the client certificate and key".into())
                } else {
                    (e, "check [uplink] broker host and port, DNS and the firewall towards head office".into())
                };
                checks.push(fail("broker", detail, fix));
                checks.push(skipped("publish"));
            }
            Err(Probe::Publish(e)) => {
                checks.push(pass("broker", format!("CONNECT accepted by {}:{}", s.host, s.port)));
                let user = s.username.as_deref().unwrap_or("(none)");
                checks.push(fail(
                    "publish",
                    format!("the broker refused a test publish to {}: {e}", s.topics.commission()),
                    format!(
                        "head office's broker must let the user {user:?} publish under {}: with the shipped ACL \
                         (pattern write {}/%u/#) the [uplink] username must equal the branch id {:?}; \
                         otherwise ask head office to add this user to the ACL",
                        s.topics.subtree(),
                        s.topics.prefix(),
                        s.topics.branch().as_str()
                    ),
                ));
            }
            Ok(()) => {
                checks.push(pass("broker", format!("CONNECT accepted by {}:{}", s.host, s.port)));
                checks.push(match s.version {
                    MqttVersion::V5 => {
                        pass("publish", format!("a test publish to {} was accepted", s.topics.commission()))
                    }
                    // Under 3.1.1 a refused publish is acknowledged too: say what was not checked.
                    MqttVersion::V311 => pass(
                        "publish",
                        "not verifiable under MQTT 3.1.1 (a broker acknowledges a publish its ACL refused); set \
                         [uplink] mqtt_version = \"5\" if the broker supports it",
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
    Connect(String),
    Publish(String),
}

/// One MQTT CONNECT with the gateway's broker, protocol version, TLS files and credentials,
/// under its own client id (`…-commission`, clean session, no Will) so that it never takes over
/// the running gateway's session; then one QoS 1 publish to the branch's `commission` topic,
/// whose PUBACK says (under MQTT 5) whether the broker lets this branch publish at all.
async fn probe(s: &crate::uplink::UplinkSettings, deadline: Duration) -> Result<(), Probe> {
    let tls = match &s.tls {
        Some(files) => Some(crate::uplink::load_tls(files).map_err(|e| Probe::Connect(format!("TLS files: {e:#}")))?),
        None => None,
    };
    let o = LinkOptions {
        version: s.version,
        host: s.host.clone(),
        port: s.port,
        client_id: format!("{}-commission", s.client_id),
        username: s.username.clone(),
        password: s.password.clone(),
        keep_alive: Duration::from_secs(10),
        tls,
        clean: true,
        will: None,
        capacity: 8,
        inflight: 8,
        max_packet_bytes: 64 * 1024,
        connect_timeout_secs: deadline.as_secs().max(1),
    };
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
        Err(Probe::Connect(format!("no answer from {}:{} within {} s", s.host, s.port, deadline.as_secs())))
    });
    link.try_disconnect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    result
}

/// The report as the installer reads it.
pub fn render_text(r: &Report) -> String {
    let mut s = format!("Commissioning report for branch {}\n\n", r.branch);
    for d in &r.devices {
        s.push_str(&format!(
            "{} {} {} ({}) — {}\n",
            if d.ready { "PASS" } else { "FAIL" },
            d.kind,
            d.id,
            d.name,
            d.address
        ));
        for c in &d.checks {
            let mark = match c.verdict {
                Verdict::Pass => "ok  ",
                Verdict::Fail => "FAIL",
                Verdict::Skipped => "skip",
            };
            s.push_str(&format!("    [{mark}] {:<24} {}\n", c.name, c.detail));
            if let Some(f) = &c.fix {
                s.push_str(&format!("           fix: {f}\n"));
            }
        }
    }
    let failed = r.devices.iter().filter(|d| !d.ready).count();
    s.push_str(&if r.ready {
        format!("\nREADY: all {} checks passed.\n", r.devices.len())
    } else {
        format!("\nNOT READY: {failed} of {} device(s) failed.\n", r.devices.len())
    });
    s
}
