//! The spine, end to end: simulated devices on real sockets → the `branch-gateway` binary →
//! a real mosquitto → an independent paho-mqtt subscriber. The three alert kinds arrive with
//! the documented fields and contiguous `seq`; the retained gateway status goes `offline`
//! when the gateway is killed; a broker that is down at start-up does not stop the gateway.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use device_sim::camera::{AuthMode, CameraFault, CameraFleet, CameraSpec};
use device_sim::panel::{PanelFaultSim, PanelFleet, PanelSpec};
use harness::{Mosquitto, PahoSubscriber, Proc, Received, TcpProxy, assert_contiguous_seq, spawn_bin, write_file};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

struct Branch {
    cams: CameraFleet,
    panels: PanelFleet,
}

async fn branch() -> Branch {
    let cams = CameraFleet::start(
        LOOPBACK,
        vec![
            CameraSpec {
                id: "cam-1".into(),
                name: "Vault cam".into(),
                username: "admin".into(),
                password: "pw".into(),
                auth: AuthMode::UsernameToken,
            },
            CameraSpec {
                id: "cam-2".into(),
                name: "Door cam".into(),
                username: "admin".into(),
                password: "pw".into(),
                auth: AuthMode::Digest,
            },
        ],
    )
    .await
    .expect("cameras");
    let panels = PanelFleet::start(
        LOOPBACK,
        vec![
            PanelSpec {
                id: "alarm-1".into(),
                name: "Intrusion panel".into(),
                profile: protocols::modbus::builtin("generic-alarm").unwrap(),
                unit_id: 1,
            },
            PanelSpec {
                id: "access-1".into(),
                name: "Doors".into(),
                profile: protocols::modbus::builtin("generic-access").unwrap(),
                unit_id: 1,
            },
        ],
    )
    .await
    .expect("panels");
    Branch { cams, panels }
}

fn site(dir: &Path, broker_port: u16, b: &Branch, branch_id: &str) -> std::path::PathBuf {
    write_file(dir, "cam.pass", "pw\n").unwrap();
    let cams = b.cams.cameras();
    let panels = b.panels.panels();
    let alarm = panels.iter().find(|p| p.id == "alarm-1").unwrap();
    let access = panels.iter().find(|p| p.id == "access-1").unwrap();
    let text = format!(
        r#"
[branch]
id = "{branch_id}"
name = "Spine test branch"
[uplink]
broker = "mqtt://127.0.0.1:{broker_port}"
keep_alive = "5s"
[storage]
path = "outbox"
[health]
offline_after = 2
online_after = 2
[[zone]]
id = "vault"
name = "Vault"
coverage_required = true
[[camera]]
id = "cam-1"
name = "Vault cam"
onvif = "{}"
username = "admin"
password_file = "cam.pass"
zones = ["vault"]
poll_interval = "1s"
timeout = "500ms"
[[camera]]
id = "cam-2"
name = "Door cam"
onvif = "{}"
username = "admin"
password_file = "cam.pass"
auth = "digest"
poll_interval = "1s"
timeout = "500ms"
[[panel]]
id = "alarm-1"
name = "Intrusion panel"
kind = "alarm"
address = "{}"
profile = "generic-alarm"
poll_interval = "100ms"
timeout = "500ms"
[[panel]]
id = "access-1"
name = "Doors"
kind = "access"
address = "{}"
profile = "generic-access"
poll_interval = "100ms"
timeout = "500ms"
[[alarm_zone]]
id = "vault-contact"
name = "Vault door contact"
panel = "alarm-1"
point = "zone.1"
area = "vault"
linked_cameras = ["cam-1"]
[[door]]
id = "staff-door"
name = "Staff door"
panel = "access-1"
point = "door.1"
linked_cameras = ["cam-2"]
"#,
        cams[0].device_url, cams[1].device_url, alarm.addr, access.addr
    );
    write_file(dir, "site.toml", &text).unwrap()
}

fn alert_of(seen: &[Received], kind: &str, state: &str) -> Option<serde_json::Value> {
    seen.iter()
        .filter(|m| m.topic.ends_with(&format!("/alerts/{kind}")))
        .map(Received::json)
        .find(|v| v["state"] == state)
}

fn check_common_fields(a: &serde_json::Value, branch: &str) {
    for f in [
        "schema",
        "id",
        "seq",
        "branch",
        "kind",
        "state",
        "severity",
        "device",
        "occurred_at",
        "detected_at",
        "message",
        "details",
    ] {
        assert!(!a[f].is_null(), "field {f} missing in {a}");
    }
    assert_eq!(a["schema"], "branch-alert/1");
    assert_eq!(a["branch"], branch);
    for f in ["id", "type", "name", "zones"] {
        assert!(!a["device"][f].is_null(), "device.{f} missing in {a}");
    }
    let ts = a["occurred_at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z'), "{ts}");
}

fn gateway_status(m: &Received) -> Option<String> {
    m.topic.ends_with("/gateway").then(|| m.json()["status"].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_loss_alarm_and_forced_door_reach_head_office() {
    let broker = Mosquitto::start().unwrap();
    let b = branch().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = site(dir.path(), broker.port, &b, "spine-1");
    let mut sub = PahoSubscriber::start(broker.port, &["branches/#"]).unwrap();
    let gw: Proc =
        spawn_bin("branch-gateway", &["run", cfg.to_str().unwrap()], dir.path(), &[("RUST_LOG", "info")]).unwrap();

    let t = Duration::from_secs(20);
    assert!(sub.wait_for(t, |m| gateway_status(m).as_deref() == Some("online")).is_some(), "gateway never online");
    // Let every device be seen healthy once before the faults.
    assert!(sub.wait_for(t, |m| m.topic.ends_with("/coverage")).is_some(), "no coverage report");

    b.cams.set_fault("cam-1", CameraFault::Down, true).unwrap();
    let raised = sub
        .wait_for(t, |m| m.topic == "branches/spine-1/alerts/camera-offline" && m.json()["state"] == "raised")
        .expect("camera-offline raised");
    assert!(!raised.retain && raised.qos == 1);
    let v = raised.json();
    check_common_fields(&v, "spine-1");
    assert_eq!(v["device"]["id"], "cam-1");
    assert_eq!(v["device"]["type"], "camera");
    assert_eq!(v["details"]["status"], "unreachable");
    assert_eq!(v["severity"], "critical", "the vault's only camera: {v}");
    assert_eq!(v["details"]["uncovered_zones"][0], "vault");

    // An alarm while its camera is down says so.
    b.panels.set_point("alarm-1", "zone.1", "alarm").unwrap();
    let alarm = sub
        .wait_for(t, |m| m.topic.ends_with("/alerts/alarm-link") && m.json()["state"] == "raised")
        .expect("alarm-link raised")
        .json();
    check_common_fields(&alarm, "spine-1");
    assert_eq!(alarm["details"]["zone"], "vault-contact");
    assert_eq!(alarm["details"]["cameras"][0]["id"], "cam-1");
    assert_eq!(alarm["details"]["cameras"][0]["online"], false);
    b.panels.set_point("alarm-1", "zone.1", "normal").unwrap();
    assert!(sub.wait_for(t, |m| m.topic.ends_with("/alerts/alarm-link") && m.json()["state"] == "cleared").is_some());

    b.panels.set_point("access-1", "door.1", "forced").unwrap();
    let door = sub
        .wait_for(t, |m| m.topic.ends_with("/alerts/door-status") && m.json()["state"] == "raised")
        .expect("door-status raised")
        .json();
    check_common_fields(&door, "spine-1");
    assert_eq!(door["details"]["door_state"], "forced-open");
    assert_eq!(door["details"]["cameras"][0]["id"], "cam-2");
    assert_eq!(door["details"]["cameras"][0]["online"], true);
    b.panels.set_point("access-1", "door.1", "closed").unwrap();

    b.cams.set_fault("cam-1", CameraFault::Down, false).unwrap();
    let cleared = sub
        .wait_for(t, |m| m.topic.ends_with("/alerts/camera-offline") && m.json()["state"] == "cleared")
        .expect("camera-offline cleared")
        .json();
    assert_eq!(cleared["device"]["id"], "cam-1");
    sub.wait_for(t, |m| m.topic.ends_with("/alerts/door-status") && m.json()["state"] == "cleared")
        .expect("door closed");

    // Exactly one raised and one cleared camera-offline; seq contiguous.
    sub.drain_for(Duration::from_millis(500));
    let alerts = sub.alerts();
    let cam_alerts: Vec<_> = alerts.iter().filter(|a| a["kind"] == "camera-offline").collect();
    assert_eq!(cam_alerts.len(), 2, "{cam_alerts:?}");
    assert!(alert_of(&sub.seen, "door-status", "raised").is_some());
    assert_contiguous_seq(&alerts).unwrap();

    // Retained device state and coverage exist.
    assert!(
        sub.seen
            .iter()
            .any(|m| m.topic == "branches/spine-1/devices/cam-1" && m.retain || m.topic.ends_with("/devices/cam-1"))
    );

    // Killed: the broker publishes the Will.
    gw.signal("KILL");
    assert!(
        sub.wait_for(t, |m| gateway_status(m).as_deref() == Some("offline") && m.json()["reason"] == "connection-lost")
            .is_some(),
        "no Will after SIGKILL"
    );
    // And it is retained: a newcomer sees it.
    let mut late = PahoSubscriber::start(broker.port, &["branches/spine-1/gateway"]).unwrap();
    let st = late.wait_for(Duration::from_secs(10), |m| m.topic.ends_with("/gateway")).expect("retained status");
    assert!(st.retain);
    assert_eq!(st.json()["status"], "offline");
    b.cams.shutdown().await;
    b.panels.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_at_startup_does_not_stop_the_gateway() {
    let broker = Mosquitto::start().unwrap();
    let b = branch().await;
    let dir = tempfile::tempdir().unwrap();
    // The gateway talks to a link that is down until we bring it up.
    let link = TcpProxy::start_on(harness::free_port(), broker.port, false).unwrap();
    let cfg = site(dir.path(), link.port, &b, "spine-2");
    let mut sub = PahoSubscriber::start(broker.port, &["branches/#"]).unwrap();
    let mut gw = spawn_bin("branch-gateway", &["run", cfg.to_str().unwrap()], dir.path(), &[]).unwrap();

    // Events happen while there is no broker: they must be stored.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(gw.child.try_wait().unwrap().is_none(), "the gateway exited without a broker");
    b.panels.set_point("alarm-1", "zone.1", "alarm").unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    b.panels.set_point("access-1", "door.1", "forced").unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(sub.alerts().is_empty());

    link.set_up(true);
    let t = Duration::from_secs(30);
    assert!(sub.wait_for(t, |m| m.topic.ends_with("/alerts/alarm-link")).is_some(), "stored alarm not delivered");
    assert!(sub.wait_for(t, |m| m.topic.ends_with("/alerts/door-status")).is_some(), "stored door event not delivered");
    sub.drain_for(Duration::from_secs(1));
    let max = assert_contiguous_seq(&sub.alerts()).unwrap();
    assert!(max >= 2);

    // A clean stop (SIGTERM) publishes `offline` with reason shutdown, exit 0.
    gw.signal("TERM");
    assert_eq!(gw.wait_exit(Duration::from_secs(15)), Some(0));
    assert!(
        sub.wait_for(Duration::from_secs(5), |m| gateway_status(m).as_deref() == Some("offline")
            && m.json()["reason"] == "shutdown")
            .is_some()
    );
    b.cams.shutdown().await;
    b.panels.shutdown().await;
}

/// The condition an alert raises or clears: kind, device and subject (CONTRACT.md 4.3).
fn condition(a: &serde_json::Value) -> String {
    let d = &a["details"];
    let subject = d["zone"].as_str().or(d["door"].as_str()).or(d["fault"].as_str()).unwrap_or("");
    format!("{}/{}/{}", a["kind"].as_str().unwrap_or(""), a["device"]["id"].as_str().unwrap_or(""), subject)
}

/// Raise/clear pairs survive restarts. A camera lost, an alarm and a forced door are raised;
/// the gateway is killed (SIGKILL); the alarm zone returns to normal while it is down; after
/// the restart the alarm is cleared (saying it was observed after a restart) and the camera
/// and the door, still true, are not raised again. Then a clean restart (SIGTERM) around the
/// camera's and the door's recovery: each is cleared once. At head office every raise has
/// exactly one clear, and `seq` runs on without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raise_clear_pairs_survive_kill_and_clean_restarts() {
    let broker = Mosquitto::start().unwrap();
    let b = branch().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = site(dir.path(), broker.port, &b, "spine-3");
    let cfg = cfg.to_str().unwrap().to_string();
    let mut sub = PahoSubscriber::start(broker.port, &["branches/spine-3/#"]).unwrap();
    let run = || spawn_bin("branch-gateway", &["run", &cfg], dir.path(), &[("RUST_LOG", "info")]).unwrap();
    let t = Duration::from_secs(20);
    let alert = |m: &Received, kind: &str, state: &str| {
        m.topic.ends_with(&format!("/alerts/{kind}")) && m.json()["state"] == state
    };

    let gw = run();
    assert!(sub.wait_for(t, |m| m.topic.ends_with("/coverage")).is_some(), "no coverage report");
    b.cams.set_fault("cam-1", CameraFault::Down, true).unwrap();
    b.panels.set_point("alarm-1", "zone.1", "alarm").unwrap();
    b.panels.set_point("access-1", "door.1", "forced").unwrap();
    for kind in ["camera-offline", "alarm-link", "door-status"] {
        assert!(sub.wait_for(t, |m| alert(m, kind, "raised")).is_some(), "{kind} not raised");
    }
    gw.signal("KILL");
    assert!(sub.wait_for(t, |m| gateway_status(m).as_deref() == Some("offline")).is_some(), "no Will");

    // While the gateway is down the alarm zone returns to normal; the camera and door stay.
    b.panels.set_point("alarm-1", "zone.1", "normal").unwrap();
    let mut gw = run();
    let cleared = sub.wait_for(t, |m| alert(m, "alarm-link", "cleared")).unwrap_or_else(|| {
        let log = std::fs::read_to_string(dir.path().join("branch-gateway.log")).unwrap_or_default();
        panic!("alarm not cleared after restart; gateway log:\n{log}")
    });
    let msg = cleared.json()["message"].as_str().unwrap_or("").to_string();
    assert!(msg.contains("restart"), "the clear does not say it was observed after a restart: {msg}");
    // Several polls of every device: nothing still true is raised again.
    tokio::time::sleep(Duration::from_secs(4)).await;

    // A clean restart around the camera's and the door's recovery.
    gw.signal("TERM");
    assert_eq!(gw.wait_exit(Duration::from_secs(15)), Some(0), "no clean exit");
    b.cams.set_fault("cam-1", CameraFault::Down, false).unwrap();
    b.panels.set_point("access-1", "door.1", "closed").unwrap();
    let mut gw = run();
    assert!(sub.wait_for(t, |m| alert(m, "camera-offline", "cleared")).is_some(), "camera not cleared");
    assert!(sub.wait_for(t, |m| alert(m, "door-status", "cleared")).is_some(), "door not cleared");
    tokio::time::sleep(Duration::from_secs(2)).await;
    gw.signal("TERM");
    assert_eq!(gw.wait_exit(Duration::from_secs(15)), Some(0));
    sub.drain_for(Duration::from_millis(500));

    // At least once: a kill -9 may re-deliver what was already delivered. Dedupe on the id,
    // as head office does.
    let mut ids = std::collections::BTreeSet::new();
    let alerts: Vec<serde_json::Value> =
        sub.alerts().into_iter().filter(|a| ids.insert(a["id"].as_str().unwrap_or("").to_string())).collect();
    let mut pairs: std::collections::BTreeMap<String, (u32, u32)> = Default::default();
    for a in &alerts {
        let e = pairs.entry(condition(a)).or_default();
        if a["state"] == "raised" { e.0 += 1 } else { e.1 += 1 }
    }
    for kind in ["camera-offline/cam-1/", "alarm-link/alarm-1/vault-contact", "door-status/access-1/staff-door"] {
        assert_eq!(pairs.get(kind), Some(&(1, 1)), "{kind}: (raised, cleared) at head office; all: {pairs:?}");
    }
    for (k, (r, c)) in &pairs {
        assert!(r == c || k.ends_with("/outbox-overflow"), "{k}: raised {r}, cleared {c}");
    }
    assert_contiguous_seq(&alerts).unwrap();
    let log = std::fs::read_to_string(dir.path().join("branch-gateway.log")).unwrap();
    assert!(!log.contains('\u{1b}'), "ANSI escape codes in a log that is not a terminal");
    b.cams.shutdown().await;
    b.panels.shutdown().await;
}

/// A camera that never answers correctly is `unknown` until proven (not `online`), never
/// counts as live video, and goes `offline` after the configured failures; the zone it alone
/// watches is reported uncovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_never_answered_is_unknown_not_online() {
    let broker = Mosquitto::start().unwrap();
    let b = branch().await;
    b.cams.set_fault("cam-1", CameraFault::Hung, true).unwrap();
    b.panels.set_fault("alarm-1", PanelFaultSim::WrongTransactionId, true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = site(dir.path(), broker.port, &b, "spine-4");
    let mut sub = PahoSubscriber::start(broker.port, &["branches/spine-4/#"]).unwrap();
    let mut gw = spawn_bin("branch-gateway", &["run", cfg.to_str().unwrap()], dir.path(), &[]).unwrap();
    let t = Duration::from_secs(30);
    let state_of = |m: &Received, dev: &str| {
        m.topic.ends_with(&format!("/devices/{dev}")).then(|| m.json()["state"].as_str().unwrap_or("").to_string())
    };
    let raised =
        sub.wait_for(t, |m| m.topic.ends_with("/alerts/camera-offline") && m.json()["device"]["id"] == "cam-1");
    assert!(raised.is_some(), "the hung camera was never reported lost");
    assert!(sub.wait_for(t, |m| state_of(m, "alarm-1").as_deref() == Some("offline")).is_some(), "panel not offline");
    sub.drain_for(Duration::from_millis(300));
    for dev in ["cam-1", "alarm-1"] {
        let states: Vec<String> = sub.seen.iter().filter_map(|m| state_of(m, dev)).collect();
        assert!(!states.is_empty(), "{dev}: no state published");
        assert!(!states.iter().any(|s| s == "online"), "{dev} was reported online before any good answer: {states:?}");
    }
    // The vault (cam-1 alone) was never counted as watched.
    for m in sub.seen.iter().filter(|m| m.topic.ends_with("/coverage")) {
        let j = m.json();
        let vault = j["zones"].as_array().and_then(|z| z.iter().find(|z| z["id"] == "vault")).cloned();
        if let Some(v) = vault {
            assert_ne!(v["covered"], true, "the vault counted as covered by an unproven camera: {j}");
        }
    }
    gw.signal("TERM");
    assert_eq!(gw.wait_exit(Duration::from_secs(15)), Some(0));
    b.cams.shutdown().await;
    b.panels.shutdown().await;
}

/// The systemd protocol, with the test as the service manager: `READY=1` once the pipeline
/// runs, `WATCHDOG=1` at half of `WATCHDOG_USEC` from the engine loop, `STOPPING=1` on SIGTERM.
/// With `--log-format json` every log line is one JSON object, and no line carries ANSI codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_watchdog_and_stopping_and_logs_are_json() {
    let broker = Mosquitto::start().unwrap();
    let b = branch().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = site(dir.path(), broker.port, &b, "spine-5");
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    // systemd sets WATCHDOG_PID to the main process's pid: a shell that execs the gateway
    // knows it in advance ($$ survives exec).
    let log = std::fs::File::create(dir.path().join("branch-gateway.log")).unwrap();
    let child = std::process::Command::new("sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
        .arg(harness::bin("branch-gateway"))
        .args(["run", "--log-format", "json", cfg.to_str().unwrap()])
        .envs([("NOTIFY_SOCKET", sock_path.to_str().unwrap()), ("WATCHDOG_USEC", "1000000"), ("RUST_LOG", "info")])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut gw = Proc { child, name: "branch-gateway".into() };
    let mut heard: Vec<(std::time::Instant, String)> = Vec::new();
    let listen = |heard: &mut Vec<(std::time::Instant, String)>, until: std::time::Instant, want: &str| {
        let mut buf = [0u8; 512];
        while std::time::Instant::now() < until {
            if let Ok(n) = sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                heard.push((std::time::Instant::now(), msg.clone()));
                if msg.lines().any(|l| l == want) {
                    return true;
                }
            }
        }
        false
    };
    let soon = || std::time::Instant::now() + Duration::from_secs(20);
    assert!(listen(&mut heard, soon(), "READY=1"), "no READY=1: {heard:?}");
    let t = std::time::Instant::now();
    listen(&mut heard, t + Duration::from_secs(3), "never");
    let pets = heard.iter().filter(|(at, m)| *at >= t && m.lines().any(|l| l == "WATCHDOG=1")).count();
    assert!((3..=12).contains(&pets), "{pets} WATCHDOG=1 in 3 s at a 1 s watchdog: {heard:?}");
    gw.signal("TERM");
    assert!(listen(&mut heard, soon(), "STOPPING=1"), "no STOPPING=1: {heard:?}");
    assert_eq!(gw.wait_exit(Duration::from_secs(15)), Some(0));

    let log = std::fs::read_to_string(dir.path().join("branch-gateway.log")).unwrap();
    assert!(!log.contains('\u{1b}'), "ANSI escape codes in a non-terminal log");
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{log}");
    for l in &lines {
        let j: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(j["level"].is_string() && j["fields"].is_object(), "{l}");
    }
    assert!(lines.iter().any(|l| l.contains("\"branch\":\"spine-5\"")), "no span with the branch id: {log}");
    b.cams.shutdown().await;
    b.panels.shutdown().await;
}
