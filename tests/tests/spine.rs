//! The spine, end to end: simulated devices on real sockets → the `branch-gateway` binary →
//! a real mosquitto → an independent paho-mqtt subscriber. The three alert kinds arrive with
//! the documented fields and contiguous `seq`; the retained gateway status goes `offline`
//! when the gateway is killed; a broker that is down at start-up does not stop the gateway.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use device_sim::camera::{AuthMode, CameraFault, CameraFleet, CameraSpec};
use device_sim::panel::{PanelFleet, PanelSpec};
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
