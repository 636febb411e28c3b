//! The device health states on the wire are the documented ones: every camera and panel fault
//! the simulator can produce, through the real gateway binary to a real broker, one device per
//! fault, all at once. The documented vocabulary is read from the published schema
//! (`docs/schemas/branch-device-1.json`, the `examples` of `state` and `status`), not copied
//! here: a state the gateway sends and the schema does not list fails, and so does a documented
//! state that no fault produces.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use device_sim::camera::{AuthMode, CameraEventKind, CameraFault};
use device_sim::panel::PanelFaultSim;
use harness::{Mosquitto, PahoSubscriber, spawn_bin, workspace_root, write_file};

/// The documented values of one property of the device health schema.
fn documented(property: &str) -> BTreeSet<String> {
    let path = workspace_root().join("docs/schemas/branch-device-1.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let examples = schema["properties"][property]["examples"]
        .as_array()
        .unwrap_or_else(|| panic!("the schema lists no examples of {property}"));
    examples.iter().map(|v| v.as_str().unwrap_or_else(|| panic!("{v} is not a string")).to_string()).collect()
}

const CAMERAS: [&str; 20] = [
    "cam-ok",
    "cam-never",
    "cam-down",
    "cam-hung",
    "cam-slow",
    "cam-auth",
    "cam-soap",
    "cam-500",
    "cam-rtsp",
    "cam-frozen",
    "cam-skew",
    "cam-signal",
    "cam-tamper",
    "cam-storage",
    "cam-flap",
    "cam-maint",
    "cam-covered",
    "cam-dark",
    "cam-blurred",
    "cam-lowres",
];
const PANELS: [&str; 7] = ["p-ok", "p-noanswer", "p-slow", "p-exc", "p-drop", "p-tid", "p-hb"];

/// What each device must end up as: (state, status).
fn expected() -> BTreeMap<&'static str, (&'static str, Option<&'static str>)> {
    BTreeMap::from([
        ("cam-ok", ("online", None)),
        // Mute from the start: `unknown` until it is reported lost.
        ("cam-never", ("offline", Some("tcp-only"))),
        ("cam-down", ("offline", Some("unreachable"))),
        ("cam-hung", ("offline", Some("tcp-only"))),
        ("cam-slow", ("offline", Some("tcp-only"))),
        ("cam-auth", ("auth-failed", Some("auth-failed"))),
        ("cam-soap", ("offline", Some("tcp-only"))),
        ("cam-500", ("offline", Some("tcp-only"))),
        ("cam-rtsp", ("stream-down", Some("stream-down"))),
        ("cam-frozen", ("frozen", Some("frozen"))),
        // A skewed clock is reported, not an outage; camera-pushed faults are device-fault
        // alerts of their own and leave the state alone (signal loss aside: no video).
        ("cam-skew", ("online", None)),
        ("cam-signal", ("signal-lost", Some("signal-lost"))),
        ("cam-tamper", ("online", None)),
        ("cam-storage", ("online", None)),
        ("cam-flap", ("flapping", Some("unreachable"))),
        ("cam-maint", ("maintenance", None)),
        // The picture checks: the camera answers, its picture shows nothing usable.
        ("cam-covered", ("obstructed", Some("obstructed"))),
        ("cam-dark", ("dark", Some("dark"))),
        ("cam-blurred", ("defocused", Some("defocused"))),
        // Below the HD minimum: a device fault of its own; the camera still watches.
        ("cam-lowres", ("online", None)),
        ("p-ok", ("online", None)),
        ("p-noanswer", ("offline", Some("unreachable"))),
        ("p-slow", ("offline", Some("unreachable"))),
        ("p-exc", ("offline", Some("modbus-exception"))),
        ("p-drop", ("offline", Some("unreachable"))),
        ("p-tid", ("offline", Some("protocol-error"))),
        ("p-hb", ("hung", Some("heartbeat-stopped"))),
        ("p-maint", ("maintenance", None)),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_simulated_fault_publishes_a_documented_state() {
    let states = documented("state");
    let statuses = documented("status");
    assert!(states.contains("online") && states.contains("offline"), "{states:?}");

    let broker = Mosquitto::start().unwrap();
    let cam_names: Vec<(&str, &str)> = CAMERAS.iter().map(|c| (*c, *c)).collect();
    let cams = harness::sim::cameras(&cam_names, AuthMode::UsernameToken).await;
    let mut panel_profiles: Vec<(&str, &str)> = PANELS.iter().map(|p| (*p, "generic-alarm")).collect();
    panel_profiles.push(("p-maint", "generic-alarm"));
    let panels = harness::sim::panels(&panel_profiles).await;
    cams.set_fault("cam-never", CameraFault::Hung, true).unwrap();
    // Reset to a low resolution before the gateway first reads its encoder settings.
    cams.set_fault("cam-lowres", CameraFault::LowResolution, true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!(
        r#"
[branch]
id = "states"
name = "States"
[uplink]
broker = "mqtt://127.0.0.1:{}"
[storage]
path = "outbox"
[metrics]
enabled = false
[health]
offline_after = 2
online_after = 2
frozen_check_every = 2
"#,
        broker.port
    );
    for c in cams.cameras() {
        text.push_str(&format!(
            "[[camera]]\nid = \"{0}\"\nname = \"{0}\"\nonvif = \"{1}\"\nusername = \"admin\"\npassword = \"pw\"\n\
             poll_interval = \"1s\"\ntimeout = \"500ms\"\nmaintenance = {2}\n",
            c.id,
            c.device_url,
            c.id == "cam-maint"
        ));
    }
    for p in panels.panels() {
        text.push_str(&format!(
            "[[panel]]\nid = \"{0}\"\nname = \"{0}\"\nkind = \"alarm\"\naddress = \"{1}\"\nprofile = \"generic-alarm\"\n\
             poll_interval = \"200ms\"\ntimeout = \"300ms\"\nmaintenance = {2}\n",
            p.id,
            p.addr,
            p.id == "p-maint"
        ));
    }
    let cfg = write_file(dir.path(), "site.toml", &text).unwrap();
    let mut sub = PahoSubscriber::start(broker.port, &["branches/states/devices/+"]).unwrap();
    let _gw = spawn_bin("branch-gateway", &["run", cfg.to_str().unwrap()], dir.path(), &[]).unwrap();

    // Every device proven first (the maintenance ones say so from the start).
    let latest = |sub: &PahoSubscriber, dev: &str| -> Option<serde_json::Value> {
        sub.seen.iter().rev().find(|m| m.topic.ends_with(&format!("/devices/{dev}"))).map(|m| m.json())
    };
    let all: Vec<&str> = CAMERAS.iter().chain(PANELS.iter()).copied().chain(["p-maint"]).collect();
    let settle = |sub: &mut PahoSubscriber, want: &dyn Fn(&str) -> (&'static str, Option<&'static str>)| {
        let deadline = std::time::Instant::now() + Duration::from_secs(45);
        loop {
            let missing: Vec<String> = all
                .iter()
                .filter_map(|d| {
                    let (state, status) = want(d);
                    let got = latest(sub, d);
                    let ok = got.as_ref().is_some_and(|j| j["state"] == state && j["status"].as_str() == status);
                    (!ok).then(|| format!("{d}: want {state}/{status:?}, got {got:?}"))
                })
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "devices not as expected:\n{}", missing.join("\n"));
            sub.drain_for(Duration::from_millis(500));
        }
    };
    let exp = expected();
    let first = |d: &str| match d {
        "cam-maint" | "p-maint" | "cam-never" => exp[d],
        _ => ("online", None),
    };
    settle(&mut sub, &first);

    // A defocused lens is told against the camera's own baseline: let it learn its scene first
    // (5 healthy pictures; the snapshot comes every second probe here).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while cams.snapshot_requests("cam-blurred").unwrap() < 6 {
        assert!(std::time::Instant::now() < deadline, "cam-blurred's pictures were never fetched");
        sub.drain_for(Duration::from_millis(300));
    }

    // Every fault at once, one device each.
    for (cam, fault) in [
        ("cam-down", CameraFault::Down),
        ("cam-hung", CameraFault::Hung),
        ("cam-slow", CameraFault::Slow(Duration::from_secs(2))),
        ("cam-auth", CameraFault::AuthFailure),
        ("cam-soap", CameraFault::SoapFault),
        ("cam-500", CameraFault::Http500),
        ("cam-rtsp", CameraFault::RtspDown),
        ("cam-frozen", CameraFault::Frozen),
        ("cam-skew", CameraFault::ClockSkew(40)),
        ("cam-covered", CameraFault::Covered),
        ("cam-dark", CameraFault::Dark),
        ("cam-blurred", CameraFault::Blurred),
    ] {
        cams.set_fault(cam, fault, true).unwrap();
    }
    cams.emit_event("cam-signal", CameraEventKind::SignalLoss, true).unwrap();
    cams.emit_event("cam-tamper", CameraEventKind::Tamper, true).unwrap();
    cams.emit_event("cam-storage", CameraEventKind::StorageFailure, true).unwrap();
    for (panel, fault) in [
        ("p-noanswer", PanelFaultSim::NoAnswer),
        ("p-slow", PanelFaultSim::Slow(Duration::from_secs(1))),
        ("p-exc", PanelFaultSim::Exception(4)),
        ("p-drop", PanelFaultSim::DropConnection),
        ("p-tid", PanelFaultSim::WrongTransactionId),
    ] {
        panels.set_fault(panel, fault, true).unwrap();
    }
    panels.set_heartbeat_running("p-hb", false).unwrap();
    // The flapping camera: lost and back twice, then lost again.
    for _ in 0..2 {
        for (down, state) in [(true, "offline"), (false, "online")] {
            cams.set_fault("cam-flap", CameraFault::Down, down).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while latest(&sub, "cam-flap").is_none_or(|j| j["state"] != state) {
                assert!(std::time::Instant::now() < deadline, "cam-flap never {state}");
                sub.drain_for(Duration::from_millis(200));
            }
        }
    }
    cams.set_fault("cam-flap", CameraFault::Down, true).unwrap();
    settle(&mut sub, &|d| exp[d]);

    // Everything published on the way is documented, and every documented state was seen.
    let mut seen_states = BTreeSet::new();
    for m in sub.seen.iter().filter(|m| m.topic.contains("/devices/")) {
        let j = m.json();
        let state = j["state"].as_str().unwrap_or_default().to_string();
        assert!(states.contains(&state), "{}: state {state:?} is not documented in the schema {states:?}", m.topic);
        if let Some(status) = j["status"].as_str() {
            assert!(statuses.contains(status), "{}: status {status:?} is not documented {statuses:?}", m.topic);
            assert!(!["online", "unknown", "maintenance"].contains(&state.as_str()), "{}: {j}", m.topic);
        } else {
            assert!(["online", "unknown", "maintenance"].contains(&state.as_str()), "{}: no status: {j}", m.topic);
        }
        seen_states.insert(state);
    }
    // Every camera that told its encoder settings carries them; the low one says so.
    let lowres = latest(&sub, "cam-lowres").expect("cam-lowres");
    assert_eq!(lowres["resolution"], "640x480", "{lowres}");
    assert_eq!(latest(&sub, "cam-ok").expect("cam-ok")["resolution"], "1920x1080");
    let missing: Vec<&String> = states.difference(&seen_states).collect();
    assert!(missing.is_empty(), "documented states no simulated fault produced: {missing:?} (seen {seen_states:?})");
    cams.shutdown().await;
}
