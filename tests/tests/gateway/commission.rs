//! `branch-gateway commission`: one diagnostic poll of every device, a pass/fail line per
//! check with the fix, and an exit status that says whether the branch is ready. Each class
//! of failure an installer meets is produced for real with the simulator and mosquitto.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use device_sim::camera::{AuthMode, CameraFault, CameraFleet, CameraSpec};
use device_sim::panel::{PanelFaultSim, PanelFleet};
use harness::{Mosquitto, bin, which, write_file};

struct Site {
    cams: CameraFleet,
    panels: PanelFleet,
    broker: Mosquitto,
    dir: tempfile::TempDir,
}

async fn site() -> Site {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let cams = CameraFleet::start(
        lo,
        ["cam-1", "cam-2", "cam-3"]
            .iter()
            .map(|id| CameraSpec {
                id: id.to_string(),
                name: id.to_string(),
                username: "admin".into(),
                password: "right".into(),
                auth: AuthMode::UsernameToken,
            })
            .collect(),
    )
    .await
    .unwrap();
    let panels = harness::sim::panels(&[("alarm-1", "generic-alarm")]).await;
    let dir = tempfile::tempdir().unwrap();
    // The broker knows one branch user, c1 / mqtt-pw.
    let passwd = dir.path().join("passwd");
    let tool = which("mosquitto_passwd").expect("mosquitto_passwd (run scripts/test)");
    let st = Command::new(tool).arg("-b").arg("-c").arg(&passwd).arg("c1").arg("mqtt-pw").status().unwrap();
    assert!(st.success());
    // As root, mosquitto would drop to its own user, who cannot read our private temp dir.
    let broker = Mosquitto::start_with(&format!(
        "user root\nlistener {{port}} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
        passwd.display()
    ))
    .unwrap_or_else(|e| panic!("mosquitto: {e}"));
    Site { cams, panels, broker, dir }
}

fn config(s: &Site, cam_passwords: [&str; 3], mqtt_password: &str) -> std::path::PathBuf {
    let c = s.cams.cameras();
    let mut text = format!(
        r#"
[branch]
id = "c1"
name = "Commissioning"
[uplink]
broker = "mqtt://127.0.0.1:{}"
username = "c1"
password = "{mqtt_password}"
[storage]
path = "outbox"
[metrics]
enabled = false
"#,
        s.broker.port
    );
    for (i, cam) in c.iter().enumerate() {
        text.push_str(&format!(
            "[[camera]]\nid = \"{}\"\nname = \"{}\"\nonvif = \"{}\"\nusername = \"admin\"\npassword = \"{}\"\ntimeout = \"500ms\"\n",
            cam.id, cam.id, cam.device_url, cam_passwords[i]
        ));
    }
    text.push_str(&format!(
        "[[panel]]\nid = \"alarm-1\"\nname = \"Alarm\"\nkind = \"alarm\"\naddress = \"{}\"\nprofile = \"generic-alarm\"\ntimeout = \"500ms\"\n",
        s.panels.panels()[0].addr
    ));
    write_file(s.dir.path(), "site.toml", &text).unwrap()
}

fn commission(cfg: &Path) -> (i32, serde_json::Value) {
    let out = Command::new(bin("branch-gateway")).arg("commission").arg(cfg).arg("--json").output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().unwrap_or(-1), v)
}

fn check<'a>(report: &'a serde_json::Value, device: &str, check: &str) -> &'a serde_json::Value {
    report["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|x| x["id"] == device))
        .and_then(|d| d["checks"].as_array())
        .and_then(|c| c.iter().find(|x| x["name"] == check))
        .unwrap_or_else(|| panic!("no check {device}/{check} in {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_branch_is_ready() {
    let s = site().await;
    let cfg = config(&s, ["right", "right", "right"], "mqtt-pw");
    let (code, r) = commission(&cfg);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["ready"], true);
    assert_eq!(check(&r, "alarm-1", "points-readable")["verdict"], "pass");
    assert_eq!(check(&r, "cam-1", "snapshot")["verdict"], "pass");
    assert_eq!(check(&r, "uplink", "broker")["verdict"], "pass");
    // The text report says READY.
    let out = Command::new(bin("branch-gateway")).arg("commission").arg(&cfg).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("READY"), "{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_class_of_failure_is_reported_with_its_fix() {
    let s = site().await;
    // cam-1: wrong password; cam-2: unreachable; cam-3: clock 45 s off.
    s.cams.set_fault("cam-2", CameraFault::Down, true).unwrap();
    s.cams.set_fault("cam-3", CameraFault::ClockSkew(45), true).unwrap();
    // The panel refuses reads with an exception (e.g. an address the module does not have).
    s.panels.set_fault("alarm-1", PanelFaultSim::Exception(2), true).unwrap();
    let cfg = config(&s, ["wrong", "right", "right"], "not-the-password");
    let (code, r) = commission(&cfg);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["ready"], false);

    let c = check(&r, "cam-1", "credentials");
    assert_eq!(c["verdict"], "fail", "{c}");
    assert!(c["fix"].as_str().unwrap().contains("username/password"), "{c}");

    let c = check(&r, "cam-2", "reachable");
    assert_eq!(c["verdict"], "fail", "{c}");
    assert!(c["fix"].as_str().unwrap().contains("powered"), "{c}");
    assert_eq!(check(&r, "cam-2", "credentials")["verdict"], "skipped");

    let c = check(&r, "cam-3", "clock");
    assert_eq!(c["verdict"], "fail", "{c}");
    // Cameras tell time in whole seconds: the skew is 45 s give or take one.
    let skew: f64 = c["detail"]
        .as_str()
        .and_then(|d| d.split("off by ").nth(1))
        .and_then(|d| d.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no skew figure in {c}"));
    assert!((44.0..=46.0).contains(&skew), "{c}");
    assert!(c["fix"].as_str().unwrap().contains("NTP"), "{c}");

    let c = check(&r, "alarm-1", "points-readable");
    assert_eq!(c["verdict"], "fail", "{c}");
    assert!(c["fix"].as_str().unwrap().contains("unit id"), "{c}");

    let c = check(&r, "uplink", "broker");
    assert_eq!(c["verdict"], "fail", "{c}");
    assert!(c["fix"].as_str().unwrap().contains("password"), "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installer_with_a_chinese_locale_reads_the_fix_in_chinese() {
    let s = site().await;
    let cfg = config(&s, ["wrong", "right", "right"], "mqtt-pw");
    let out = Command::new(bin("branch-gateway"))
        .arg("commission")
        .arg(&cfg)
        .env("LANG", "zh_CN.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "not ready: {text}");
    for s in [
        "开通调试报告",
        "[失败] credentials",
        "摄像机拒绝所配置的用户名和密码",
        "修正：检查 cam-1 的用户名和密码（须是 ONVIF 用户",
        "尚不能投入使用",
    ] {
        assert!(text.contains(s), "no {s:?} in:\n{text}");
    }
    // The healthy devices pass in Chinese too; names and check names stay as they are.
    assert!(text.contains("[正常] points-readable"), "{text}");
    // --json stays English whatever the locale: tools read it.
    let (_, r) = commission(&cfg);
    assert!(check(&r, "cam-1", "credentials")["fix"].as_str().unwrap().contains("username/password"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(
        dir.path(),
        "site.toml",
        "[branch]\nid = \"a/b\"\nname = \"x\"\n[uplink]\nbroker = \"mqtt://127.0.0.1:1\"\n",
    )
    .unwrap();
    let out = Command::new(bin("branch-gateway")).arg("commission").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = Duration::ZERO;
}
