//! A scenario played by `device-sim run`, watched by the real `branch-gateway` (configured
//! from the simulator's own `--emit-config`), seen at head office through a real mosquitto
//! and an independent paho-mqtt subscriber: the alerts arrive in the timeline's order and
//! close to their scheduled offsets. And a link outage played through the simulator's link
//! proxy: head office sees the gateway go offline, and the alarm raised meanwhile arrives
//! after the link returns.

use crate::sim_common;

use std::time::{Duration, Instant};

use harness::{Mosquitto, PahoSubscriber, Received, spawn_bin, write_file};
use sim_common::Sim;

/// How far an alert may be from its step's offset (detection + delivery + scheduling).
const TOLERANCE: Duration = Duration::from_secs(3);

fn devices(branch: &str, extra: &str) -> String {
    format!(
        r#"
[scenario]
name = "e2e"

[branch]
id = "{branch}"
name = "Timeline test branch"

[gateway]
camera_poll_interval = "1s"
camera_timeout = "500ms"
panel_poll_interval = "100ms"
panel_timeout = "500ms"
offline_after = 1
online_after = 1
keep_alive = "5s"
metrics_listen = "127.0.0.1:0"   # several gateways run at once in the test suite
{extra}
[[zone]]
id = "vault"
coverage_required = true

[[camera]]
id = "cam-1"
name = "Vault camera"
zones = ["vault"]

[[camera]]
id = "cam-2"
name = "Door camera"
auth = "digest"

[[panel]]
id = "alarm-1"
kind = "alarm"
points = {{ "partition.1" = "armed" }}

[[panel]]
id = "access-1"
kind = "access"

[[alarm_zone]]
id = "vault-contact"
name = "Vault door contact"
panel = "alarm-1"
point = "zone.1"
partition = "partition.1"
area = "vault"
linked_cameras = ["cam-1"]

[[door]]
id = "staff-door"
name = "Staff door"
panel = "access-1"
point = "door.1"
linked_cameras = ["cam-2"]
"#
    )
}

fn is_alert(m: &Received, kind: &str, state: &str) -> bool {
    m.topic.ends_with(&format!("/alerts/{kind}")) && m.json()["state"] == state
}

#[test]
fn the_gateways_alerts_follow_the_timeline() {
    let broker = Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let branch = "sim-e2e-timeline";
    let text = format!(
        "{}
[[timeline]]
at = \"6s\"
camera = \"cam-1\"
fault = \"down\"

[[timeline]]
at = \"9s\"
alarm_zone = \"vault-contact\"
state = \"alarm\"

[[timeline]]
at = \"11s\"
alarm_zone = \"vault-contact\"
state = \"normal\"

[[timeline]]
at = \"13s\"
camera = \"cam-1\"
fault = \"down\"
on = false

[[timeline]]
at = \"16s\"
door = \"staff-door\"
state = \"forced\"

[[timeline]]
at = \"18s\"
door = \"staff-door\"
state = \"closed\"
",
        devices(branch, "")
    );
    let scenario = write_file(dir.path(), "scenario.toml", &text).unwrap();
    let cfg = dir.path().join("site.toml");
    let mut sub = PahoSubscriber::start(broker.port, &["branches/#"]).unwrap();
    let mut sim = Sim::spawn(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--emit-config",
            cfg.to_str().unwrap(),
            "--broker",
            &broker.url(),
            "--events-json",
        ],
        dir.path(),
    )
    .unwrap();
    let start = sim.started().unwrap();
    let _gw =
        spawn_bin("branch-gateway", &["run", cfg.to_str().unwrap()], dir.path(), &[("RUST_LOG", "info")]).unwrap();

    // (kind, state, device, the step's offset)
    let expected: [(&str, &str, &str, u64); 6] = [
        ("camera-offline", "raised", "cam-1", 6),
        ("alarm-link", "raised", "vault-contact", 9),
        ("alarm-link", "cleared", "vault-contact", 11),
        ("camera-offline", "cleared", "cam-1", 13),
        ("door-status", "raised", "staff-door", 16),
        ("door-status", "cleared", "staff-door", 18),
    ];
    let mut seqs = Vec::new();
    for (kind, state, device, at) in expected {
        let m = sub
            .wait_for(Duration::from_secs(25), |m| is_alert(m, kind, state))
            .unwrap_or_else(|| panic!("no {kind} {state}; seen: {:?}; device-sim: {:?}", sub.alerts(), sim.stdout()));
        let offset = Instant::now().duration_since(start);
        let v = m.json();
        let scheduled = Duration::from_secs(at);
        assert!(
            offset + TOLERANCE >= scheduled && offset <= scheduled + TOLERANCE,
            "{kind} {state} arrived at {offset:?}, step at {scheduled:?}: {v}"
        );
        let who = if kind == "camera-offline" { &v["device"]["id"] } else { &v["details"][kind_key(kind)] };
        assert_eq!(who, device, "{v}");
        seqs.push(v["seq"].as_u64().unwrap_or_default());
        if (kind, state) == ("alarm-link", "raised") {
            assert_eq!(v["details"]["cameras"][0]["id"], "cam-1");
            assert_eq!(v["details"]["cameras"][0]["online"], false, "the linked camera was down: {v}");
        }
        if (kind, state) == ("door-status", "raised") {
            assert_eq!(v["details"]["door_state"], "forced-open");
        }
    }
    // Timeline order is head office's order.
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "alerts out of order: {seqs:?}");

    // The simulator played each step on time (its own journal).
    let ev = sim.events();
    assert_eq!(ev.len(), 6, "{ev:?}");
    for e in &ev {
        let (at, t) = (e["at_ms"].as_u64().unwrap(), e["t_ms"].as_u64().unwrap());
        assert!(t + 5 >= at && t <= at + 200, "step at {at} ms played at {t} ms");
    }
}

fn kind_key(kind: &str) -> &'static str {
    match kind {
        "alarm-link" => "zone",
        _ => "door",
    }
}

#[test]
fn a_link_outage_takes_the_gateway_offline_and_delays_but_keeps_its_alerts() {
    let broker = Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let branch = "sim-e2e-link";
    let text = format!(
        "{}
[[timeline]]
at = \"5s\"
link = \"down\"

[[timeline]]
at = \"7s\"
door = \"staff-door\"
state = \"forced\"

[[timeline]]
at = \"9s\"
door = \"staff-door\"
state = \"closed\"

[[timeline]]
at = \"11s\"
link = \"up\"
",
        devices(branch, "[link]\nlisten = \"127.0.0.1:0\"\n")
    );
    let scenario = write_file(dir.path(), "scenario.toml", &text).unwrap();
    let cfg = dir.path().join("site.toml");
    let mut sub = PahoSubscriber::start(broker.port, &["branches/#"]).unwrap();
    let mut sim = Sim::spawn(
        &["run", scenario.to_str().unwrap(), "--emit-config", cfg.to_str().unwrap(), "--broker", &broker.url()],
        dir.path(),
    )
    .unwrap();
    let start = sim.started().unwrap();
    let site = std::fs::read_to_string(&cfg).unwrap();
    assert!(!site.contains(&format!("127.0.0.1:{}\"", broker.port)), "the gateway must go through the proxy:\n{site}");
    let _gw =
        spawn_bin("branch-gateway", &["run", cfg.to_str().unwrap()], dir.path(), &[("RUST_LOG", "info")]).unwrap();

    let status = |m: &Received| m.topic == format!("branches/{branch}/gateway");
    sub.wait_for(Duration::from_secs(10), |m| status(m) && m.json()["status"] == "online").expect("gateway online");
    // The cut: the broker loses the gateway's connection and publishes its Will.
    sub.wait_for(Duration::from_secs(15), |m| status(m) && m.json()["status"] == "offline")
        .unwrap_or_else(|| panic!("no offline status after the cut; seen {:?}", sub.seen));
    let cut_seen = Instant::now().duration_since(start);
    assert!(
        cut_seen + TOLERANCE >= Duration::from_secs(5) && cut_seen <= Duration::from_secs(5) + TOLERANCE,
        "{cut_seen:?}"
    );
    // The forced door happened during the outage; it arrives only after the link is back.
    let door = sub
        .wait_for(Duration::from_secs(40), |m| is_alert(m, "door-status", "raised"))
        .unwrap_or_else(|| panic!("the door alarm raised during the outage was lost; seen {:?}", sub.seen));
    let arrived = Instant::now().duration_since(start);
    assert!(arrived >= Duration::from_millis(10_500), "delivered at {arrived:?}, before the link came back at 11 s");
    let v = door.json();
    assert_eq!(v["details"]["door"], "staff-door");
    // occurred_at is when the door was forced, not when the alert got through.
    let occurred = chrono::DateTime::parse_from_rfc3339(v["occurred_at"].as_str().unwrap()).unwrap();
    let detected = chrono::DateTime::parse_from_rfc3339(v["detected_at"].as_str().unwrap()).unwrap();
    assert!(detected >= occurred);
    assert!(
        sub.wait_for(Duration::from_secs(10), |m| is_alert(m, "door-status", "cleared")).is_some(),
        "the door's clear was lost"
    );
    assert!(sub.seen.iter().filter(|m| status(m)).any(|m| m.json()["status"] == "online"));
}
