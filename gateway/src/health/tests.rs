//! The engine's rules, one test each, and a model test of restarts.

use super::camera::camera_view;
use super::*;
use crate::config::SiteConfig;
use crate::pollers::{PanelRead, PointValue};
use protocols::BranchId;

const CFG: &str = r#"
[branch]
id = "b01"
name = "Test branch"
[uplink]
broker = "mqtt://127.0.0.1:1883"
[health]
offline_after = 3
online_after = 2
[[zone]]
id = "vault"
name = "Vault"
coverage_required = true
[[camera]]
id = "cam-1"
name = "Vault cam"
onvif = "http://127.0.0.1:1/onvif/device_service"
zones = ["vault"]
[[camera]]
id = "cam-2"
name = "Hall cam"
onvif = "http://127.0.0.1:2/onvif/device_service"
[[panel]]
id = "alarm-1"
name = "Intrusion panel"
kind = "alarm"
address = "127.0.0.1:502"
profile = "generic-alarm"
[[panel]]
id = "access-1"
name = "Doors"
kind = "access"
address = "127.0.0.1:503"
profile = "generic-access"
[[alarm_zone]]
id = "z-vault"
name = "Vault door contact"
panel = "alarm-1"
point = "zone.1"
partition = "partition.1"
linked_cameras = ["cam-1"]
[[alarm_zone]]
id = "z-panic"
name = "Counter panic button"
panel = "alarm-1"
point = "zone.2"
twenty_four_hour = true
[[door]]
id = "d-staff"
name = "Staff door"
panel = "access-1"
point = "door.1"
held_open_limit = "5s"
linked_cameras = ["cam-2"]
"#;

fn engine(now: Instant) -> Engine {
    engine_from(CFG, now)
}

fn engine_from(text: &str, now: Instant) -> Engine {
    use protocols::modbus::Role;
    let cfg = SiteConfig::parse_str(text).unwrap();
    let topics = Topics::new("branches", BranchId::new("b01").unwrap()).unwrap();
    let mut roles = BTreeMap::new();
    roles.insert(
        "alarm-1".to_string(),
        vec![
            ("zone.1".to_string(), Role::Zone),
            ("zone.2".to_string(), Role::Zone),
            ("partition.1".to_string(), Role::Partition),
            ("heartbeat".to_string(), Role::Heartbeat),
            ("fault.ac".to_string(), Role::PanelFault),
        ],
    );
    roles.insert("access-1".to_string(), vec![("door.1".to_string(), Role::Door)]);
    let site = Site::new(&cfg, &roles).unwrap();
    Engine::new(&site, topics, now)
}

fn cam(id: &str, reach: Reach, video: Video) -> Observation {
    Observation::Camera(CameraObservation {
        device: DeviceId::new(id).unwrap(),
        at: protocols::time::now(),
        reach,
        video,
        reason: (reach != Reach::Online).then(|| "connect: connection refused".to_string()),
        clock_skew_ms: Some(5),
        stream_uri: Some(format!("rtsp://127.0.0.1/{id}")),
        snapshot_uri: None,
        events: vec![],
        stream: None,
        duration: Duration::ZERO,
    })
}

fn panel(id: &str, points: &[(&str, f64, &str)]) -> Observation {
    Observation::Panel(PanelObservation {
        device: DeviceId::new(id).unwrap(),
        at: protocols::time::now(),
        outcome: PanelOutcome::Read(PanelRead {
            complete: false,
            changed: points
                .iter()
                .map(|(k, raw, s)| (std::sync::Arc::from(*k), PointValue { raw: *raw, state: Some(s.to_string()) }))
                .collect(),
        }),
        duration: Duration::ZERO,
    })
}

fn kinds(out: &Output) -> Vec<(AlertKindState, String)> {
    out.alerts.iter().map(|a| ((a.kind(), a.state), a.device.id.to_string())).collect()
}
type AlertKindState = (protocols::AlertKind, AlertState);

#[test]
fn camera_offline_is_raised_once_after_n_failures_and_cleared_once_after_m() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let mut alerts = Vec::new();
    for i in 0..6 {
        let out = e.observe(cam("cam-1", Reach::Unreachable, Video::Unknown), t0 + Duration::from_secs(i));
        alerts.extend(out.alerts);
        if i == 1 {
            assert!(alerts.is_empty(), "raised before the third failure");
        }
    }
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].state, AlertState::Raised);
    // cam-1 is the only camera of a required zone: critical, and the zone is named.
    assert_eq!(alerts[0].severity, Severity::Critical);
    match &alerts[0].body {
        AlertBody::CameraOffline(d) => {
            assert_eq!(d.status, "unreachable");
            assert_eq!(d.uncovered_zones, vec![ZoneId::new("vault").unwrap()]);
        }
        other => panic!("{other:?}"),
    }
    let mut cleared = Vec::new();
    for i in 6..10 {
        cleared.extend(e.observe(cam("cam-1", Reach::Online, Video::Live), t0 + Duration::from_secs(i)).alerts);
    }
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].state, AlertState::Cleared);
}

#[test]
fn a_blip_shorter_than_n_probes_does_not_alert() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let mut n = 0;
    for i in 0..20 {
        let (r, v) = if i % 3 == 0 { (Reach::Unreachable, Video::Unknown) } else { (Reach::Online, Video::Live) };
        n += e.observe(cam("cam-2", r, v), t0 + Duration::from_secs(i)).alerts.len();
    }
    assert_eq!(n, 0);
}

#[test]
fn a_flapping_camera_is_reported_as_flapping_not_as_a_storm() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let mut alerts = Vec::new();
    let mut t = 0;
    for _cycle in 0..10 {
        for _ in 0..3 {
            alerts.extend(
                e.observe(cam("cam-2", Reach::Unreachable, Video::Unknown), t0 + Duration::from_secs(t)).alerts,
            );
            t += 1;
        }
        for _ in 0..2 {
            alerts.extend(e.observe(cam("cam-2", Reach::Online, Video::Live), t0 + Duration::from_secs(t)).alerts);
            t += 1;
        }
    }
    // Two plain cycles, then one raised "flapping" held until it settles.
    assert!(alerts.len() <= 5, "storm: {} alerts", alerts.len());
    let last = alerts.last().unwrap();
    assert_eq!(last.state, AlertState::Raised);
    match &last.body {
        AlertBody::CameraOffline(d) => assert_eq!(d.status, "flapping"),
        other => panic!("{other:?}"),
    }
    // Stays good past the settle time: cleared exactly once.
    let later = t0 + Duration::from_secs(t + 120);
    let out = e.tick(later, protocols::time::now());
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].state, AlertState::Cleared);

    // Flapping again soon after: the settle time doubles (60 s → 120 s).
    let mut t = t + 121;
    for _cycle in 0..3 {
        for _ in 0..3 {
            e.observe(cam("cam-2", Reach::Unreachable, Video::Unknown), t0 + Duration::from_secs(t));
            t += 1;
        }
        for _ in 0..2 {
            e.observe(cam("cam-2", Reach::Online, Video::Live), t0 + Duration::from_secs(t));
            t += 1;
        }
    }
    let id = DeviceId::new("cam-2").unwrap();
    assert!(e.cameras[&id].flapping, "not flapping again");
    assert_eq!(e.cameras[&id].settle, Duration::from_secs(120));
    let early = e.tick(t0 + Duration::from_secs(t + 90), protocols::time::now());
    assert!(early.alerts.is_empty(), "cleared before the doubled settle time");
    let late = e.tick(t0 + Duration::from_secs(t + 125), protocols::time::now());
    assert_eq!(late.alerts.len(), 1, "not cleared after the doubled settle time");
}

#[test]
fn maintenance_cameras_never_alert() {
    let cfg_text = CFG.replace("name = \"Hall cam\"", "name = \"Hall cam\"\nmaintenance = true");
    let t0 = Instant::now();
    let mut e = engine_from(&cfg_text, t0);
    let mut n = 0;
    for i in 0..10 {
        n += e.observe(cam("cam-2", Reach::Unreachable, Video::Unknown), t0 + Duration::from_secs(i)).alerts.len();
    }
    assert_eq!(n, 0);
}

#[test]
fn frozen_picture_is_its_own_status() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let mut alerts = Vec::new();
    for i in 0..3 {
        alerts.extend(e.observe(cam("cam-2", Reach::Online, Video::Frozen), t0 + Duration::from_secs(i)).alerts);
    }
    assert_eq!(alerts.len(), 1);
    match &alerts[0].body {
        AlertBody::CameraOffline(d) => assert_eq!(d.status, "frozen"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn alarm_zone_fires_only_when_armed_but_panic_zones_always() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    e.observe(cam("cam-1", Reach::Online, Video::Live), t0);
    let base = [
        ("zone.1", 0.0, "normal"),
        ("zone.2", 0.0, "normal"),
        ("partition.1", 0.0, "disarmed"),
        ("heartbeat", 1.0, ""),
    ];
    assert!(e.observe(panel("alarm-1", &base), t0).alerts.is_empty());
    // Disarmed: the vault contact opening is not an alarm.
    let out = e.observe(
        panel("alarm-1", &[("zone.1", 1.0, "alarm"), ("zone.2", 0.0, "normal"), ("partition.1", 0.0, "disarmed")]),
        t0,
    );
    assert!(out.alerts.is_empty(), "{:?}", kinds(&out));
    // The panic zone fires even disarmed.
    let out = e.observe(
        panel("alarm-1", &[("zone.1", 1.0, "alarm"), ("zone.2", 1.0, "alarm"), ("partition.1", 0.0, "disarmed")]),
        t0,
    );
    assert_eq!(kinds(&out), vec![((protocols::AlertKind::AlarmLink, AlertState::Raised), "alarm-1".to_string())]);
    // Arming with the contact open: the vault zone fires, carrying its camera's state.
    let out = e.observe(
        panel("alarm-1", &[("zone.1", 1.0, "alarm"), ("zone.2", 1.0, "alarm"), ("partition.1", 1.0, "armed")]),
        t0,
    );
    assert_eq!(out.alerts.len(), 1);
    match &out.alerts[0].body {
        AlertBody::AlarmLink(d) => {
            assert_eq!(d.zone.as_str(), "z-vault");
            assert!(d.armed);
            assert_eq!(d.cameras.len(), 1);
            assert!(d.cameras[0].online);
            assert_eq!(d.cameras[0].stream_uri.as_deref(), Some("rtsp://127.0.0.1/cam-1"));
        }
        other => panic!("{other:?}"),
    }
    // Both back to normal: two clears.
    let out = e.observe(
        panel("alarm-1", &[("zone.1", 0.0, "normal"), ("zone.2", 0.0, "normal"), ("partition.1", 1.0, "armed")]),
        t0,
    );
    assert_eq!(out.alerts.iter().filter(|a| a.state == AlertState::Cleared).count(), 2);
}

#[test]
fn a_hand_over_carries_only_changes_and_the_rest_stands_as_last_read() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    e.observe(cam("cam-1", Reach::Online, Video::Live), t0);
    let all =
        [("zone.1", 0.0, "normal"), ("zone.2", 0.0, "normal"), ("partition.1", 1.0, "armed"), ("heartbeat", 1.0, "")];
    assert!(e.observe(panel("alarm-1", &all), t0).alerts.is_empty());
    // Only the vault contact changed: it fires in the armed partition read before.
    let out = e.observe(panel("alarm-1", &[("zone.1", 1.0, "alarm")]), t0);
    assert_eq!(kinds(&out), vec![((protocols::AlertKind::AlarmLink, AlertState::Raised), "alarm-1".to_string())]);
    // Nothing changed: nothing is handed over, nothing is said, and the zone stays in alarm.
    for _ in 0..3 {
        let out = e.observe(panel("alarm-1", &[]), t0);
        assert!(out.alerts.is_empty() && out.retained.is_empty(), "{:?}", kinds(&out));
    }
    // Disarming alone, the contact still open as read before: the vault zone clears, once…
    let out = e.observe(panel("alarm-1", &[("partition.1", 0.0, "disarmed")]), t0);
    assert_eq!(kinds(&out), vec![((protocols::AlertKind::AlarmLink, AlertState::Cleared), "alarm-1".to_string())]);
    // …and the contact closing in the disarmed partition says nothing more.
    assert!(e.observe(panel("alarm-1", &[("zone.1", 0.0, "normal")]), t0).alerts.is_empty());
}

#[test]
fn an_alarm_while_its_camera_is_down_says_so() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    for i in 0..3 {
        e.observe(cam("cam-1", Reach::Unreachable, Video::Unknown), t0 + Duration::from_secs(i));
    }
    let out = e.observe(panel("alarm-1", &[("zone.1", 1.0, "alarm"), ("partition.1", 1.0, "armed")]), t0);
    let a = out.alerts.iter().find(|a| a.kind() == protocols::AlertKind::AlarmLink).unwrap();
    assert!(a.message.contains("DOWN"), "{}", a.message);
    match &a.body {
        AlertBody::AlarmLink(d) => assert!(!d.cameras[0].online),
        other => panic!("{other:?}"),
    }
}

#[test]
fn forced_door_raises_at_once_and_closing_clears() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    e.observe(panel("access-1", &[("door.1", 0.0, "closed")]), t0);
    let out = e.observe(panel("access-1", &[("door.1", 2.0, "forced")]), t0);
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].severity, Severity::Critical);
    assert!(out.alerts[0].is_priority());
    let out = e.observe(panel("access-1", &[("door.1", 0.0, "closed")]), t0);
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].state, AlertState::Cleared);
}

#[test]
fn door_held_open_past_its_limit_raises_once() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    e.observe(panel("access-1", &[("door.1", 1.0, "open")]), t0);
    assert!(e.tick(t0 + Duration::from_secs(4), protocols::time::now()).alerts.is_empty());
    let out = e.tick(t0 + Duration::from_secs(6), protocols::time::now());
    assert_eq!(out.alerts.len(), 1);
    match &out.alerts[0].body {
        AlertBody::DoorStatus(d) => assert_eq!(d.door_state, DoorState::HeldOpen),
        other => panic!("{other:?}"),
    }
    assert!(e.tick(t0 + Duration::from_secs(9), protocols::time::now()).alerts.is_empty());
    let out = e.observe(panel("access-1", &[("door.1", 0.0, "closed")]), t0 + Duration::from_secs(10));
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].state, AlertState::Cleared);
}

#[test]
fn a_stopped_heartbeat_is_a_hung_panel() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    e.observe(panel("alarm-1", &[("heartbeat", 7.0, "")]), t0);
    e.observe(panel("alarm-1", &[("heartbeat", 7.0, "")]), t0 + Duration::from_secs(5));
    let out = e.tick(t0 + Duration::from_secs(11), protocols::time::now());
    assert_eq!(out.alerts.len(), 1);
    match &out.alerts[0].body {
        AlertBody::DeviceFault(d) => assert_eq!(d.fault, "heartbeat-stopped"),
        other => panic!("{other:?}"),
    }
    let out = e.observe(panel("alarm-1", &[("heartbeat", 8.0, "")]), t0 + Duration::from_secs(12));
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].state, AlertState::Cleared);
}

#[test]
fn unreadable_panel_raises_one_device_fault() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let mut n = 0;
    for i in 0..10 {
        let out = e.observe(
            Observation::Panel(PanelObservation {
                device: DeviceId::new("alarm-1").unwrap(),
                at: protocols::time::now(),
                outcome: PanelOutcome::Failed { fault: PanelFault::Unreachable, reason: "timeout".into() },
                duration: Duration::ZERO,
            }),
            t0 + Duration::from_millis(250 * i),
        );
        n += out.alerts.len();
    }
    assert_eq!(n, 1);
}

#[test]
fn coverage_reports_the_uncovered_required_zone() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    e.observe(cam("cam-2", Reach::Online, Video::Live), t0);
    let out = e.observe(cam("cam-1", Reach::Online, Video::Live), t0);
    let cov = out.retained.iter().find(|r| r.topic == "branches/b01/coverage").expect("first coverage");
    let v: serde_json::Value = serde_json::from_slice(&cov.payload).unwrap();
    assert_eq!(v["totals"]["required_zones_uncovered"], 0);
    let mut last = None;
    for i in 1..4 {
        let out = e.observe(cam("cam-1", Reach::Unreachable, Video::Unknown), t0 + Duration::from_secs(i));
        if let Some(r) = out.retained.into_iter().find(|r| r.topic.ends_with("/coverage")) {
            last = Some(r);
        }
    }
    let v: serde_json::Value = serde_json::from_slice(&last.expect("coverage changed").payload).unwrap();
    assert_eq!(v["totals"]["required_zones_uncovered"], 1);
    assert_eq!(v["zones"][0]["covered"], false);
    assert!(v["zones"][0]["uncovered_since"].is_string());
}

#[test]
fn a_covered_dark_or_defocused_picture_uncovers_its_zone_with_the_reason() {
    for (video, status) in [(Video::Obstructed, "obstructed"), (Video::Dark, "dark"), (Video::Defocused, "defocused")] {
        let t0 = Instant::now();
        let mut e = engine(t0);
        e.observe(cam("cam-2", Reach::Online, Video::Live), t0);
        e.observe(cam("cam-1", Reach::Online, Video::Live), t0);
        let (mut alerts, mut retained) = (Vec::new(), Vec::new());
        for i in 1..=3 {
            let out = e.observe(cam("cam-1", Reach::Online, video), t0 + Duration::from_secs(i));
            alerts.extend(out.alerts);
            retained.extend(out.retained);
        }
        assert_eq!(alerts.len(), 1, "{status}: raised once");
        match &alerts[0].body {
            AlertBody::CameraOffline(d) => {
                assert_eq!(d.status, status);
                assert_eq!(d.uncovered_zones, vec![ZoneId::new("vault").unwrap()]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(alerts[0].severity, Severity::Critical, "a required zone left unwatched");
        let device = retained.iter().rev().find(|r| r.topic == "branches/b01/devices/cam-1").expect("state");
        let v: serde_json::Value = serde_json::from_slice(&device.payload).unwrap();
        assert_eq!((v["state"].as_str(), v["status"].as_str()), (Some(status), Some(status)));
        assert!(protocols::status::DEVICE_STATES.contains(&status));
        let cov = retained.iter().rev().find(|r| r.topic.ends_with("/coverage")).expect("coverage");
        let v: serde_json::Value = serde_json::from_slice(&cov.payload).unwrap();
        assert_eq!(v["zones"][0]["covered"], false, "{status}");
        assert_eq!(v["zones"][0]["cameras_online"], 1, "{status}: the camera still answers");
        // Back: cleared once, covered again.
        let mut cleared = Vec::new();
        for i in 4..=6 {
            cleared.extend(e.observe(cam("cam-1", Reach::Online, Video::Live), t0 + Duration::from_secs(i)).alerts);
        }
        assert_eq!(cleared.len(), 1, "{status}: cleared once");
        assert_eq!(cleared[0].state, AlertState::Cleared);
        let views = e.camera_views();
        assert!(views[&DeviceId::new("cam-1").unwrap()].live_video);
    }
}

#[test]
fn a_stream_below_the_minimum_resolution_is_one_fault_raised_and_cleared_once() {
    use crate::picture::Resolution;
    let t0 = Instant::now();
    let mut e = engine(t0);
    let with_stream = |w: u32, h: u32| {
        let mut o = cam("cam-1", Reach::Online, Video::Live);
        if let Observation::Camera(c) = &mut o {
            c.stream = Some(crate::pollers::StreamInfo {
                resolution: Resolution { width: w, height: h },
                encoding: "H264".into(),
                minimum: Resolution::HD,
            });
        }
        o
    };
    let out = e.observe(with_stream(1920, 1080), t0);
    assert!(out.alerts.is_empty());
    let health = out.retained.iter().find(|r| r.topic.ends_with("/devices/cam-1")).expect("state");
    let v: serde_json::Value = serde_json::from_slice(&health.payload).unwrap();
    assert_eq!((v["resolution"].as_str(), v["encoding"].as_str()), (Some("1920x1080"), Some("H264")));
    let mut raised = Vec::new();
    for i in 1..=4 {
        let out = e.observe(with_stream(640, 480), t0 + Duration::from_secs(i));
        raised.extend(out.alerts);
        if i == 1 {
            let h = out.retained.iter().find(|r| r.topic.ends_with("/devices/cam-1")).expect("resolution changed");
            let v: serde_json::Value = serde_json::from_slice(&h.payload).unwrap();
            assert_eq!(v["resolution"], "640x480");
            assert_eq!(v["state"], "online", "a low resolution still watches");
        }
    }
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].severity, Severity::Warning);
    match &raised[0].body {
        AlertBody::DeviceFault(d) => {
            assert_eq!(d.fault, "low-resolution");
            assert!(d.reason.contains("640x480") && d.reason.contains("1280x720"), "{}", d.reason);
        }
        other => panic!("{other:?}"),
    }
    assert!(raised[0].message.contains("640x480"), "{}", raised[0].message);
    assert!(e.camera_views()[&DeviceId::new("cam-1").unwrap()].live_video, "the zone stays covered");
    let cleared = e.observe(with_stream(1280, 720), t0 + Duration::from_secs(9)).alerts;
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].state, AlertState::Cleared);
}

// ---- restarts: the conditions the outbox keeps ----

/// What the outbox does with the conditions of the alerts appended to it.
fn keep(open: &mut BTreeMap<String, Alert>, a: &Alert) {
    if let Some(k) = a.condition_key() {
        match a.state {
            AlertState::Raised => open.insert(k, a.clone()),
            AlertState::Cleared => open.remove(&k),
        };
    }
}

#[test]
fn a_restart_holds_what_is_still_true_and_clears_what_is_over() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let mut open = BTreeMap::new();
    let mut delivered = Vec::new();
    let feed = |e: &mut Engine, obs: Observation, delivered: &mut Vec<Alert>, open: &mut BTreeMap<String, Alert>| {
        for a in e.observe(obs, t0).alerts {
            keep(open, &a);
            delivered.push(a);
        }
    };
    let armed = |z1: &str| {
        panel(
            "alarm-1",
            &[
                ("zone.1", 1.0, z1),
                ("zone.2", 0.0, "normal"),
                ("partition.1", 1.0, "armed"),
                ("fault.ac", 1.0, "ac-loss"),
            ],
        )
    };
    for _ in 0..3 {
        feed(&mut e, cam("cam-1", Reach::Unreachable, Video::Unknown), &mut delivered, &mut open);
    }
    feed(&mut e, armed("alarm"), &mut delivered, &mut open);
    feed(&mut e, panel("access-1", &[("door.1", 2.0, "forced")]), &mut delivered, &mut open);
    assert_eq!(open.len(), 4, "camera, zone, door, ac-loss: {:?}", open.keys());

    // Restart: the zone is back to normal, the rest still true.
    let mut e = engine(t0);
    let out = e.restore(open.values().cloned().collect());
    assert!(out.alerts.is_empty(), "nothing is cleared before it is observed: {:?}", kinds(&out));
    let before = delivered.len();
    feed(&mut e, cam("cam-1", Reach::Unreachable, Video::Unknown), &mut delivered, &mut open);
    feed(&mut e, armed("normal"), &mut delivered, &mut open);
    feed(&mut e, panel("access-1", &[("door.1", 2.0, "forced")]), &mut delivered, &mut open);
    let after: Vec<_> = delivered[before..].iter().map(|a| (a.kind(), a.state)).collect();
    assert_eq!(after, [(protocols::AlertKind::AlarmLink, AlertState::Cleared)], "only the zone's clear");
    assert!(delivered[before].message.contains("restart"), "{}", delivered[before].message);

    // Another restart; everything is over now: one clear each, at the first observation.
    let mut e = engine(t0);
    assert!(e.restore(open.values().cloned().collect()).alerts.is_empty());
    feed(&mut e, cam("cam-1", Reach::Online, Video::Live), &mut delivered, &mut open);
    feed(
        &mut e,
        panel("alarm-1", &[("zone.1", 0.0, "normal"), ("partition.1", 1.0, "armed"), ("fault.ac", 0.0, "ok")]),
        &mut delivered,
        &mut open,
    );
    feed(&mut e, panel("access-1", &[("door.1", 0.0, "closed")]), &mut delivered, &mut open);
    assert!(open.is_empty(), "still open: {:?}", open.keys());
    let mut pairs: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for a in &delivered {
        let p = pairs.entry(a.condition_key().unwrap_or_default()).or_default();
        if a.state == AlertState::Raised { p.0 += 1 } else { p.1 += 1 }
    }
    assert!(pairs.values().all(|&(r, c)| r == 1 && c == 1), "{pairs:?}");
}

#[test]
fn conditions_of_removed_or_maintenance_devices_are_cleared_at_start() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let mut open = BTreeMap::new();
    for _ in 0..3 {
        for a in e.observe(cam("cam-2", Reach::Unreachable, Video::Unknown), t0).alerts {
            keep(&mut open, &a);
        }
    }
    let mut gone = open.values().next().cloned().expect("cam-2 raised");
    gone.device.id = DeviceId::new("cam-9").unwrap();
    let out = engine(t0).restore(vec![gone]);
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].state, AlertState::Cleared);
    assert!(out.alerts[0].message.contains("removed from the configuration"), "{}", out.alerts[0].message);
}

#[test]
fn unproven_devices_are_unknown_and_watch_nothing() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let out = e.observe(cam("cam-1", Reach::TcpOnly, Video::Unknown), t0);
    let states: Vec<String> = out
        .retained
        .iter()
        .filter(|r| r.topic.ends_with("/devices/cam-1"))
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap()["state"].as_str().unwrap_or("").to_string()
        })
        .collect();
    assert_eq!(states, ["unknown"]);
    assert!(!camera_view(&e.cameras[&DeviceId::new("cam-1").unwrap()]).live_video);
    let out = e.observe(cam("cam-1", Reach::Online, Video::Live), t0);
    assert!(
        out.retained
            .iter()
            .any(|r| r.topic.ends_with("/devices/cam-1") && String::from_utf8_lossy(&r.payload).contains("\"online\""))
    );
}

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Flip one fact of the world: 0 camera, 1 vault zone, 2 panic zone, 3 door, 4 AC power.
        Flip(u8),
        /// Poll one device (0 cam-1, 1 alarm-1, 2 access-1).
        Poll(u8),
        /// Poll, then crash after storing only the first `keep` of its alerts, and restart.
        PollAndCrash(u8, u8),
        /// A clean restart.
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..5).prop_map(Op::Flip),
            6 => (0u8..3).prop_map(Op::Poll),
            1 => ((0u8..3), (0u8..4)).prop_map(|(d, k)| Op::PollAndCrash(d, k)),
            1 => Just(Op::Restart),
        ]
    }

    #[derive(Default)]
    struct World {
        bad: [bool; 5],
    }

    impl World {
        fn observe(&mut self, dev: u8) -> Observation {
            let s = |b: bool, yes: &'static str, no: &'static str| if b { yes } else { no };
            match dev {
                0 if self.bad[0] => cam("cam-1", Reach::Unreachable, Video::Unknown),
                0 => cam("cam-1", Reach::Online, Video::Live),
                1 => panel(
                    "alarm-1",
                    &[
                        ("zone.1", 0.0, s(self.bad[1], "alarm", "normal")),
                        ("zone.2", 0.0, s(self.bad[2], "alarm", "normal")),
                        ("partition.1", 1.0, "armed"),
                        ("fault.ac", 0.0, s(self.bad[4], "ac-loss", "ok")),
                    ],
                ),
                _ => panel("access-1", &[("door.1", 0.0, s(self.bad[3], "forced", "closed"))]),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Observations, crashes mid-delivery and restarts in any order: the delivered stream
        /// pairs every raise with exactly one clear, and once the world is all good and every
        /// device was polled, nothing is left open.
        #[test]
        fn every_raise_gets_exactly_one_clear(ops in proptest::collection::vec(op(), 1..60)) {
            let t0 = Instant::now();
            let mut world = World::default();
            let mut open: BTreeMap<String, Alert> = BTreeMap::new();
            let mut delivered: Vec<Alert> = Vec::new();
            let mut e = engine(t0);
            let restart = |open: &BTreeMap<String, Alert>, delivered: &mut Vec<Alert>, open_mut: &mut Vec<Alert>| {
                let mut e = engine(t0);
                let out = e.restore(open.values().cloned().collect());
                open_mut.extend(out.alerts.iter().cloned());
                delivered.extend(out.alerts);
                e
            };
            for op in ops {
                match op {
                    Op::Flip(i) => world.bad[i as usize] = !world.bad[i as usize],
                    Op::Poll(d) => {
                        for a in e.observe(world.observe(d), t0).alerts {
                            keep(&mut open, &a);
                            delivered.push(a);
                        }
                    }
                    Op::PollAndCrash(d, k) => {
                        for a in e.observe(world.observe(d), t0).alerts.into_iter().take(k as usize) {
                            keep(&mut open, &a);
                            delivered.push(a);
                        }
                        let mut extra = Vec::new();
                        e = restart(&open, &mut delivered, &mut extra);
                        for a in &extra { keep(&mut open, a); }
                    }
                    Op::Restart => {
                        let mut extra = Vec::new();
                        e = restart(&open, &mut delivered, &mut extra);
                        for a in &extra { keep(&mut open, a); }
                    }
                }
            }
            // The tail: the world all good, every device polled enough to clear.
            world.bad = [false; 5];
            for _ in 0..4 {
                for d in 0..3 {
                    for a in e.observe(world.observe(d), t0).alerts {
                        keep(&mut open, &a);
                        delivered.push(a);
                    }
                }
            }
            prop_assert!(open.is_empty(), "left open: {:?}", open.keys().collect::<Vec<_>>());
            let mut last: BTreeMap<String, AlertState> = BTreeMap::new();
            for a in &delivered {
                let Some(k) = a.condition_key() else { continue };
                let prev = last.insert(k.clone(), a.state);
                let ok = match a.state {
                    AlertState::Raised => prev != Some(AlertState::Raised),
                    AlertState::Cleared => prev == Some(AlertState::Raised),
                };
                prop_assert!(ok, "{k}: {:?} after {:?}", a.state, prev);
            }
            prop_assert!(last.values().all(|s| *s == AlertState::Cleared), "{last:?}");
        }
    }
}
