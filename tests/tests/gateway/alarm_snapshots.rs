//! Alarm snapshots: an alarm zone with `snapshot = true` makes the gateway fetch a picture
//! from each linked camera within 4 s, keep it on disk, and name it in a follow-up event
//! that points at the alarm (`follow_up_of`) and validates against the schema.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use device_sim::camera::AuthMode;
use harness::{Mosquitto, PahoSubscriber, spawn_bin, validate_with_schemas, write_file};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_brings_snapshots_from_its_linked_cameras() {
    let _lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let broker = Mosquitto::start().unwrap();
    let cams = harness::sim::cameras(&[("cam-1", "cam-1"), ("cam-2", "cam-2")], AuthMode::Digest).await;
    let panels = harness::sim::panels(&[("alarm-1", "generic-alarm")]).await;
    let c = cams.cameras();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[branch]
id = "snap-1"
name = "Snapshots"
[uplink]
broker = "mqtt://127.0.0.1:{}"
[storage]
path = "outbox"
snapshots_keep = 10
[metrics]
enabled = false
[[camera]]
id = "cam-1"
name = "Vault 1"
onvif = "{}"
username = "admin"
password = "pw"
auth = "digest"
poll_interval = "1s"
timeout = "500ms"
[[camera]]
id = "cam-2"
name = "Vault 2"
onvif = "{}"
username = "admin"
password = "pw"
auth = "digest"
poll_interval = "1s"
timeout = "500ms"
[[panel]]
id = "alarm-1"
name = "Alarm"
kind = "alarm"
address = "{}"
profile = "generic-alarm"
poll_interval = "100ms"
[[alarm_zone]]
id = "vault-door"
name = "Vault door"
panel = "alarm-1"
point = "zone.1"
linked_cameras = ["cam-1", "cam-2"]
snapshot = true
"#,
        broker.port,
        c[0].device_url,
        c[1].device_url,
        panels.panels()[0].addr
    );
    let cfg = write_file(dir.path(), "site.toml", &text).unwrap();
    let mut sub = PahoSubscriber::start(broker.port, &["branches/snap-1/alerts/#"]).unwrap();
    let _gw = spawn_bin("branch-gateway", &["run", cfg.to_str().unwrap()], dir.path(), &[]).unwrap();
    // Let the cameras be probed once, so their snapshot URIs are known.
    tokio::time::sleep(Duration::from_secs(3)).await;

    panels.set_point("alarm-1", "zone.1", "alarm").unwrap();
    let t = Duration::from_secs(15);
    let alarm = sub
        .wait_for(t, |m| m.topic.ends_with("/alarm-link") && m.json()["details"]["follow_up_of"].is_null())
        .expect("alarm")
        .json();
    let follow = sub
        .wait_for(t, |m| m.topic.ends_with("/alarm-link") && !m.json()["details"]["follow_up_of"].is_null())
        .expect("follow-up with snapshots")
        .json();
    assert_eq!(follow["details"]["follow_up_of"], alarm["id"]);
    assert_ne!(follow["id"], alarm["id"]);
    assert_eq!(follow["seq"].as_u64().unwrap(), alarm["seq"].as_u64().unwrap() + 1);
    let snaps = follow["details"]["snapshots"].as_array().expect("snapshots");
    assert_eq!(snaps.len(), 2, "{follow}");
    let occurred = chrono::DateTime::parse_from_rfc3339(alarm["occurred_at"].as_str().unwrap()).unwrap();
    for s in snaps {
        assert!(s["error"].is_null(), "{s}");
        let file = dir.path().join("outbox/snapshots").join(s["file"].as_str().unwrap());
        let pic = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(&pic[..2], &[0xFF, 0xD8], "not a JPEG");
        assert_eq!(pic.len() as u64, s["bytes"].as_u64().unwrap());
        let taken = chrono::DateTime::parse_from_rfc3339(s["taken_at"].as_str().unwrap()).unwrap();
        assert!((taken - occurred).num_milliseconds() < 4000, "picture taken too late: {s}");
    }
    let verdicts = validate_with_schemas(&[alarm, follow]).unwrap();
    assert!(verdicts.iter().all(Vec::is_empty), "{verdicts:?}");
    cams.shutdown().await;
    panels.shutdown().await;
}
