//! The control API, checked by what a real client of the simulated devices sees: a camera
//! switched down refuses TCP connections, a panel point set over HTTP is what an independent
//! Modbus client (tokio-modbus) reads, a wedged panel stops answering, a stopped heartbeat
//! stops counting. Bad requests get 4xx with a JSON message naming the problem. The `ctl`
//! client does the same from a shell.

use crate::sim_common;

use std::time::Duration;

use serde_json::Value;
use sim_common::{Sim, accepts, eventually, http};
use tokio_modbus::Slave;
use tokio_modbus::client::Reader;

fn serve(dir: &std::path::Path) -> (Sim, String) {
    let mut sim = Sim::spawn(&["serve", "--cameras", "2", "--events-json"], dir).unwrap();
    let control = sim.control().unwrap();
    sim.started().unwrap();
    (sim, control)
}

/// One holding register, or `None` if the panel does not answer in time (or answers an
/// exception).
async fn read(ctx: &mut tokio_modbus::client::Context, address: u16) -> Option<u16> {
    match tokio::time::timeout(Duration::from_millis(800), ctx.read_holding_registers(address, 1)).await {
        Ok(Ok(Ok(v))) => v.first().copied(),
        _ => None,
    }
}

fn post(base: &str, path: &str, body: &str) -> (u16, Value) {
    http(base, "POST", path, body).unwrap()
}

#[test]
fn a_camera_switched_down_refuses_connections_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, control) = serve(dir.path());
    let port = sim.camera_port("cam-01").unwrap();
    assert!(accepts(port));

    let (status, body) = post(&control, "/cameras/cam-01/faults", r#"{"fault":"down","on":true}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"]["fault"], "down");
    assert!(eventually(Duration::from_secs(5), || !accepts(port)), "cam-01 still accepts after down");
    assert!(accepts(sim.camera_port("cam-02").unwrap()), "the other camera is untouched");

    // GET /devices shows the fault; slow and clock-skew carry their parameters.
    post(&control, "/cameras/cam-02/faults", r#"{"fault":"slow","ms":250}"#);
    post(&control, "/cameras/cam-02/faults", r#"{"fault":"clock-skew","seconds":-90}"#);
    post(&control, "/cameras/cam-02/events", r#"{"kind":"tamper","active":true}"#);
    let (status, dev) = http(&control, "GET", "/devices", "").unwrap();
    assert_eq!(status, 200);
    let cams = dev["cameras"].as_array().unwrap();
    assert_eq!(cams[0]["faults"], serde_json::json!([{"fault": "down"}]));
    assert_eq!(cams[0]["onvif"], format!("http://127.0.0.1:{port}/onvif/device_service"));
    let f2 = &cams[1]["faults"];
    assert!(f2.as_array().unwrap().contains(&serde_json::json!({"fault": "slow", "ms": 250})), "{f2}");
    assert!(f2.as_array().unwrap().contains(&serde_json::json!({"fault": "clock-skew", "seconds": -90})), "{f2}");
    assert_eq!(cams[1]["events"]["tamper"], true);

    // The shell client: same effect, exit 0.
    let out = sim_common::device_sim()
        .args(["ctl", "--control", &control, "camera", "cam-01", "down", "off"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(eventually(Duration::from_secs(5), || accepts(port)), "cam-01 did not come back on the same port");

    // Every control action is journaled on stdout with its source.
    std::thread::sleep(Duration::from_millis(100));
    let ev = sim.events();
    assert!(ev.iter().all(|e| e["source"] == "control" && e["ok"] == true), "{ev:?}");
    assert_eq!(ev.len(), 5, "{ev:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panel_points_faults_and_heartbeat_are_what_a_modbus_client_sees() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, control) = serve(dir.path());
    let addr = sim.panel_addr("alarm-1").unwrap();
    let mut ctx = tokio_modbus::client::tcp::connect_slave(addr, Slave(1)).await.unwrap();
    // generic-alarm: zone.2 is holding register 1, the heartbeat is holding 21.
    assert_eq!(read(&mut ctx, 1).await, Some(0));
    let (status, body) = post(&control, "/panels/alarm-1/points/zone.2", r#"{"state":"alarm"}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(read(&mut ctx, 1).await, Some(1));
    let (status, _) = post(&control, "/panels/alarm-1/points/zone.2", r#"{"raw":3}"#);
    assert_eq!(status, 200);
    assert_eq!(read(&mut ctx, 1).await, Some(3));

    // The heartbeat counts once a second; stopped, it holds still.
    let (status, _) = post(&control, "/panels/alarm-1/heartbeat", r#"{"running":false}"#);
    assert_eq!(status, 200);
    let h1 = read(&mut ctx, 21).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(read(&mut ctx, 21).await, h1, "a stopped heartbeat moved");
    post(&control, "/panels/alarm-1/heartbeat", r#"{"running":true}"#);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_ne!(read(&mut ctx, 21).await, h1, "a running heartbeat did not move");

    // An exception fault is an exception response, not silence.
    post(&control, "/panels/alarm-1/faults", r#"{"fault":"exception","code":6}"#);
    let r = tokio::time::timeout(Duration::from_secs(1), ctx.read_holding_registers(1, 1)).await;
    assert!(matches!(r, Ok(Ok(Err(tokio_modbus::ExceptionCode::ServerDeviceBusy)))), "{r:?}");
    post(&control, "/panels/alarm-1/faults", r#"{"fault":"exception","on":false}"#);

    // A wedged module: the request is never answered.
    let (status, _) = post(&control, "/panels/alarm-1/faults", r#"{"fault":"no-answer","on":true}"#);
    assert_eq!(status, 200);
    let mut fresh = tokio_modbus::client::tcp::connect_slave(addr, Slave(1)).await.unwrap();
    assert_eq!(read(&mut fresh, 1).await, None, "a no-answer panel answered");
    let (_, dev) = http(&control, "GET", "/devices", "").unwrap();
    let alarm = dev["panels"].as_array().unwrap().iter().find(|p| p["id"] == "alarm-1").unwrap().clone();
    assert_eq!(alarm["faults"], serde_json::json!([{"fault": "no-answer"}]));
    assert_eq!(alarm["points"]["zone.2"]["state"], "fault");
    assert_eq!(alarm["points"]["zone.2"]["raw"], 3.0);
    assert_eq!(alarm["address"], addr.to_string());
    post(&control, "/panels/alarm-1/faults", r#"{"fault":"no-answer","on":false}"#);
    let mut again = tokio_modbus::client::tcp::connect_slave(addr, Slave(1)).await.unwrap();
    assert_eq!(read(&mut again, 1).await, Some(3));

    // Doors through the shell client.
    let out = sim_common::device_sim()
        .args(["ctl", "--control", &control, "point", "access-1", "door.1", "forced"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let door_addr = sim.panel_addr("access-1").unwrap();
    let mut door = tokio_modbus::client::tcp::connect_slave(door_addr, Slave(1)).await.unwrap();
    assert_eq!(read(&mut door, 0).await, Some(2), "generic-access: forced = 2");
}

#[test]
fn bad_requests_get_4xx_with_a_message_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, control) = serve(dir.path());
    let cases: &[(&str, &str, &str, u16, &[&str])] = &[
        ("POST", "/cameras/cam-09/faults", r#"{"fault":"down"}"#, 404, &["cam-09"]),
        ("POST", "/cameras/cam-01/faults", r#"{"fault":"dwn"}"#, 400, &["dwn", "down, hung"]),
        ("POST", "/cameras/cam-01/faults", r#"{"fault":"slow"}"#, 400, &["delay", "\"ms\""]),
        ("POST", "/cameras/cam-01/faults", r#"{"fault":"down","of":true}"#, 400, &["unknown field `of`"]),
        ("POST", "/cameras/cam-01/faults", "not json", 400, &["bad JSON"]),
        ("POST", "/cameras/cam-01/events", r#"{"kind":"smoke"}"#, 400, &["smoke", "signal-loss"]),
        ("POST", "/panels/alarm-1/points/zone.99", r#"{"state":"alarm"}"#, 404, &["zone.99"]),
        ("POST", "/panels/alarm-1/points/zone.1", r#"{"state":"open"}"#, 400, &["\"open\"", "normal, alarm"]),
        ("POST", "/panels/alarm-1/points/zone.1", r#"{"state":"alarm","raw":1}"#, 400, &["exactly one"]),
        ("POST", "/panels/alarm-1/points/zone.1", r#"{"raw":70000}"#, 400, &["70000"]),
        ("POST", "/panels/nope/heartbeat", r#"{"running":false}"#, 404, &["nope"]),
        ("POST", "/panels/alarm-1/faults", r#"{"fault":"exception","code":0}"#, 400, &["code"]),
        ("POST", "/link", r#"{"up":false}"#, 404, &["link proxy"]),
        ("GET", "/cameras/cam-01/faults", "", 405, &["POST"]),
        ("POST", "/devices", "{}", 405, &["GET"]),
        ("GET", "/nothing/here", "", 404, &["/nothing/here"]),
    ];
    for (method, path, body, want, words) in cases {
        let (status, json) = http(&control, method, path, body).unwrap();
        assert_eq!(status, *want, "{method} {path} {body}: {json}");
        let msg = json["error"].as_str().unwrap_or_else(|| panic!("{method} {path}: no JSON error: {json}"));
        for w in *words {
            assert!(msg.contains(w), "{method} {path} {body}: {msg:?} does not mention {w:?}");
        }
    }
    // Bodies are bounded.
    let big = format!(r#"{{"fault":"down","pad":"{}"}}"#, "x".repeat(64 * 1024));
    let (status, json) = http(&control, "POST", "/cameras/cam-01/faults", &big).unwrap();
    assert_eq!(status, 413, "{json}");
    // The shell client reports a refusal on stderr with exit 1.
    let out = sim_common::device_sim()
        .args(["ctl", "--control", &control, "camera", "cam-01", "dwn", "on"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 400: unknown camera fault \"dwn\""));
}

#[test]
fn the_control_api_listens_on_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = sim_common::device_sim()
        .args(["serve", "--cameras", "1", "--control", "0.0.0.0:0"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"), "{}", String::from_utf8_lossy(&out.stderr));
}
