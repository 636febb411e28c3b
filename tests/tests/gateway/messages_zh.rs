//! Messages in Chinese: with `language = "zh-CN"` the alert `message` is Chinese, device and
//! zone names come from the config as written, and the payload still validates against the
//! same JSON Schema (field names and codes stay English).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use device_sim::camera::{AuthMode, CameraFault};
use harness::{Mosquitto, PahoSubscriber, spawn_bin, validate_with_schemas, write_file};

fn has_cjk(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zh_cn_alerts_are_chinese_and_still_valid() {
    let _lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let broker = Mosquitto::start().unwrap();
    let cams = harness::sim::cameras(&[("cam-1", "金库")], AuthMode::UsernameToken).await;
    let panels = harness::sim::panels(&[("alarm-1", "generic-alarm")]).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[branch]
id = "zh-1"
name = "浦东支行"
language = "zh-CN"
[uplink]
broker = "mqtt://127.0.0.1:{}"
[storage]
path = "outbox"
[health]
offline_after = 2
online_after = 1
[[zone]]
id = "vault"
name = "金库区"
coverage_required = true
[[camera]]
id = "cam-1"
name = "金库摄像机"
onvif = "{}"
username = "admin"
password = "pw"
zones = ["vault"]
poll_interval = "1s"
timeout = "500ms"
[[panel]]
id = "alarm-1"
name = "报警主机"
kind = "alarm"
address = "{}"
profile = "generic-alarm"
poll_interval = "100ms"
[[alarm_zone]]
id = "vault-door"
name = "金库门磁"
panel = "alarm-1"
point = "zone.1"
linked_cameras = ["cam-1"]
"#,
        broker.port,
        cams.cameras()[0].device_url,
        panels.panels()[0].addr
    );
    let cfg = write_file(dir.path(), "site.toml", &text).unwrap();
    let mut sub = PahoSubscriber::start(broker.port, &["branches/zh-1/alerts/#"]).unwrap();
    let _gw = spawn_bin("branch-gateway", &["run", cfg.to_str().unwrap()], dir.path(), &[]).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    cams.set_fault("cam-1", CameraFault::Down, true).unwrap();
    let t = Duration::from_secs(20);
    let lost = sub.wait_for(t, |m| m.topic.ends_with("/camera-offline")).expect("camera-offline").json();
    panels.set_point("alarm-1", "zone.1", "alarm").unwrap();
    let alarm = sub.wait_for(t, |m| m.topic.ends_with("/alarm-link")).expect("alarm-link").json();

    let lost_msg = lost["message"].as_str().unwrap();
    assert!(has_cjk(lost_msg) && lost_msg.contains("金库摄像机") && lost_msg.contains("金库区"), "{lost_msg}");
    let alarm_msg = alarm["message"].as_str().unwrap();
    assert!(alarm_msg.contains("金库门磁") && alarm_msg.contains("联动摄像机离线"), "{alarm_msg}");
    // Field names and codes stay English.
    assert_eq!(lost["kind"], "camera-offline");
    assert_eq!(lost["details"]["status"], "unreachable");
    assert_eq!(alarm["details"]["zone_state"], "alarm");

    let verdicts = validate_with_schemas(&[lost, alarm]).unwrap();
    for v in verdicts {
        assert!(v.is_empty(), "schema errors: {v:?}");
    }
    cams.shutdown().await;
    panels.shutdown().await;
}
